//! `verify` proves what landed equals what was read, and catches what answer codes hide;
//! `query` shows the imported data. Real Prometheus and VictoriaMetrics servers.

use promimport_test_support as common;

use common::*;

fn import(source: &Server, dest: &str) {
    let state = temp_dir("verify-state");
    // One window of 1h at a time keeps a Prometheus sink's appends in order (see
    // prometheus_sink).
    let out = Run::new(&source.url("/api/v1/read"), dest)
        .between(BASE_MS, BASE_MS + 6 * HOUR_MS)
        .flags(&["--parallel", "1", "--window", "1h"])
        .state(&state)
        .output();
    assert!(out.status.success(), "{}", text(&out));
}

fn verify(source: &Server, dest: &str) -> (Option<i32>, String) {
    let out = verify_range(source, dest, BASE_MS, BASE_MS + 6 * HOUR_MS, &[]);
    (out.status.code(), text(&out))
}

#[test]
fn verify_passes_a_clean_import_and_names_the_windows_a_deleted_series_leaves_short() {
    let source = history_source("verify-src", 6, true);
    seed_stale_series(&source);
    let sink = start_prometheus_with(
        "verify-sink",
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            ..PrometheusOptions::default()
        },
        &["--web.enable-admin-api"],
    );
    import(&source, &sink.url("/api/v1/write"));
    let (code, log) = verify(&source, &sink.url("/api/v1/read"));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("verify: all 3 windows match (bit for bit)"),
        "{log}"
    );

    // Sensor s2 exists from 1h to 5h37m; delete it from 2h on.
    let response = reqwest::blocking::Client::new()
        .post(sink.url("/api/v1/admin/tsdb/delete_series"))
        .query(&[
            ("match[]", r#"test_temperature{sensor="s2"}"#),
            ("start", &((BASE_MS + 2 * HOUR_MS) / 1000).to_string()),
        ])
        .send()
        .unwrap();
    assert!(response.status().is_success());
    let (code, log) = verify(&source, &sink.url("/api/v1/read"));
    assert_eq!(code, Some(1), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].ends_with("ok"), "{log}");
    for line in &lines[1..] {
        assert!(
            line.contains("missing") && line.contains("sensor=\"s2\""),
            "{line}"
        );
    }
    assert!(log.contains("2 of 3 windows do NOT match"), "{log}");
}

#[test]
fn verify_catches_victoria_metrics_dropping_samples_past_its_retention_after_answering_204() {
    let source = history_source("retention-src", 6, false);
    seed_stale_series(&source);
    // The history is three weeks old; this VictoriaMetrics keeps two.
    let short = start_victoria_metrics("retention-vm", "14d");
    import(&source, &short.url("/api/v1/write"));
    reqwest::blocking::get(short.url("/internal/force_flush")).unwrap();
    let (code, log) = verify(&source, &short.url(""));
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with('[') && l.contains("missing"))
            .count(),
        3,
        "{log}"
    );

    let long = start_victoria_metrics("retention-vm-long", "100y");
    import(&source, &long.url("/api/v1/write"));
    reqwest::blocking::get(long.url("/internal/force_flush")).unwrap();
    let (code, log) = verify(&source, &long.url(""));
    // Every timestamp matches, but a query API shows no NaN or stale marker: those the source
    // holds are counted as not verified, and verify does not say "match".
    let nan = read_samples(&source, BASE_MS, BASE_MS + 6 * HOUR_MS)
        .values()
        .flatten()
        .filter(|(_, v)| f64::from_bits(*v).is_nan())
        .count();
    assert!(nan > 0);
    assert_eq!(code, Some(4), "{log}");
    assert!(
        log.contains(&format!(
            "NOT VERIFIED: what could be compared matches in all 3 windows, but the source's {nan} NaN samples and stale markers could not be compared"
        )) && !log.contains("windows match"),
        "{log}"
    );
}

#[test]
fn query_shows_the_imported_data_as_a_table_or_json() {
    let source = history_source("query-src", 6, true);
    seed_stale_series(&source);
    let sink = prometheus_sink("query-sink");
    import(&source, &sink.url("/api/v1/write"));
    let at = rfc3339(BASE_MS + 2 * HOUR_MS);
    let out = promimport(&[
        "query",
        r#"count_over_time(test_requests_total{instance="host-1:9100",code="200"}[1h])"#,
        "--dest",
        &sink.url(""),
        "--at",
        &at,
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    // 15 s samples over [1h, 2h]: 241 of them; Prometheus 3 leaves a range's start out
    // ("left-open range selectors", 3.0's migration guide): 240 over (1h, 2h].
    let count = if prometheus_under_test_is_3() {
        240
    } else {
        241
    };
    assert!(log.contains(&format!("{at:<24} {count}")), "{log}");
    let out = promimport(&[
        "query",
        r#"test_flapping"#,
        "--dest",
        &sink.url(""),
        "-o",
        "json",
        "--range",
        &rfc3339(BASE_MS + HOUR_MS),
        &rfc3339(BASE_MS + HOUR_MS + 300_000),
        "60s",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["resultType"], "matrix");
    assert_eq!(
        json["result"][0]["values"].as_array().unwrap().len(),
        6,
        "{json}"
    );
    let out = promimport(&["query", "sum(", "--dest", &sink.url("")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("bad_data"), "{}", text(&out));
}
