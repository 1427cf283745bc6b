//! End to end into VictoriaMetrics 1.79 (Debian), a receiver that is permissive where Prometheus
//! is strict: it takes old samples without an out-of-order window, and stores values as decimals
//! with about 12 significant digits (by design), so values are compared within that precision.
//! Two more of its ways are documented in the README: it leaves NaN and stale markers out of
//! /api/v1/export, and a huge value (1.7e308) flattens the small values stored beside it.

mod common;

use std::collections::BTreeMap;

use common::*;

/// Series key to (timestamp, value) from VictoriaMetrics' /api/v1/export, after a flush.
fn export(vm: &Server, start_ms: i64, end_ms: i64) -> BTreeMap<String, Vec<(i64, Option<f64>)>> {
    let client = reqwest::blocking::Client::new();
    client.get(vm.url("/internal/force_flush")).send().unwrap();
    let body = client
        .post(vm.url("/api/v1/export"))
        .form(&[
            ("match[]", r#"{__name__=~".+"}"#),
            ("start", &(start_ms / 1000).to_string()),
            ("end", &(end_ms / 1000 + 1).to_string()),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut data = BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let labels: Vec<promimport::proto::Label> = row["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(n, v)| promimport::proto::Label {
                name: n.clone(),
                value: v.as_str().unwrap().to_string(),
            })
            .collect();
        let samples: Vec<(i64, Option<f64>)> = row["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(row["values"].as_array().unwrap())
            .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64()))
            .collect();
        data.entry(series_key(&labels))
            .or_insert_with(Vec::new)
            .extend(samples);
    }
    for samples in data.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    data
}

#[test]
fn an_import_into_victoria_metrics_lands_every_series_timestamp_and_value() {
    let dir = temp_dir("vm-history");
    let history = dir.join("history.om");
    // No 1.7e308 here: VictoriaMetrics encodes a block of values as decimals with one exponent,
    // so next to 1.7e308 every ordinary value of the block reads back as 0 (seen on 1.79).
    write_history(&history, 6, false);
    let source = start_prometheus(
        "vm-src",
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            max_bytes_in_frame: Some(1024),
            history: Some(&history),
        },
    );
    seed_stale_series(&source);
    let vm = start_victoria_metrics("vm-sink", "100y");
    let (start, end) = (BASE_MS + 30 * 60_000, BASE_MS + 6 * HOUR_MS - 45_000);
    let state = temp_dir("vm-state");
    let out = promimport(&[
        "run",
        "--source",
        &source.url("/api/v1/read"),
        "--dest",
        &vm.url("/api/v1/write"),
        "--start",
        &rfc3339(start),
        "--end",
        &rfc3339(end),
        "--window",
        "1h",
        "--state",
        state.to_str().unwrap(),
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");

    let expected = read_samples(&source, start, end);
    let landed = export(&vm, start - 24 * HOUR_MS, end + 24 * HOUR_MS);
    assert_eq!(
        landed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same series"
    );
    let mut nan = 0;
    let mut compared = 0;
    for (key, samples) in &expected {
        let got: BTreeMap<i64, Option<f64>> = landed[key].iter().copied().collect();
        for &(t, bits) in samples {
            let want = f64::from_bits(bits);
            if want.is_nan() {
                // VictoriaMetrics 1.79 stores NaN and stale markers for its own staleness
                // handling but leaves them out of /api/v1/export: absent or NaN is all we can see.
                assert!(
                    got.get(&t).is_none_or(|v| v.is_none_or(f64::is_nan)),
                    "{key} at {t}: NaN expected, {:?} found",
                    got.get(&t)
                );
                nan += 1;
                continue;
            }
            let Some(Some(value)) = got.get(&t).copied() else {
                panic!("{key}: sample at {t} ({want}) is missing");
            };
            let tolerance = want.abs() * 1e-11 + 1e-300;
            assert!(
                (value - want).abs() <= tolerance,
                "{key} at {t}: {want} expected, {value} found"
            );
            compared += 1;
        }
        let expected_finite = samples
            .iter()
            .filter(|s| !f64::from_bits(s.1).is_nan())
            .count();
        let landed_finite = got
            .values()
            .filter(|v| v.is_some_and(|v| !v.is_nan()))
            .count();
        assert_eq!(
            landed_finite, expected_finite,
            "{key}: extra samples landed"
        );
    }
    assert!(compared > 10_000, "{compared} samples compared");
    assert!(nan > 0, "NaN and stale samples were part of the comparison");
}
