//! End to end against real Prometheus servers: a source with history made by promtool (and
//! stale markers written like a live Prometheus would), a sink, and promimport between them.

use promimport_test_support as common;

use common::*;

struct Setup {
    source: Server,
    history_hours: i64,
}

/// A source whose frames are cut at 256 bytes, so every series of a 1h window (two chunks of
/// 120 samples) is split across frames.
fn source(name: &str) -> Setup {
    let history_hours = 12;
    let source = history_source_framed(name, history_hours, true, Some(256));
    seed_stale_series(&source);
    Setup {
        source,
        history_hours,
    }
}

#[test]
fn an_import_lands_every_sample_once_and_nothing_outside_the_range() {
    let setup = source("exact-src");
    let sink = prometheus_sink("exact-sink");
    // Start and end fall inside TSDB chunks and mid-window, so clipping is exercised. One window
    // of 1h at a time keeps every append in order: see prometheus_sink for why. Concurrent
    // windows are compared exactly in tests/import_victoria_metrics.rs.
    let (start, end) = (
        BASE_MS + HOUR_MS + 7_500,
        BASE_MS + (setup.history_hours - 1) * HOUR_MS - 22_500,
    );
    let state = temp_dir("exact-state");
    let out = Run::new(
        &setup.source.url("/api/v1/read"),
        &sink.url("/api/v1/write"),
    )
    .between(start, end)
    .flags(&[
        "--window",
        "1h",
        "--parallel",
        "1",
        "--batch-samples",
        "1000",
    ])
    .state(&state)
    .output();
    let log = text(&out);
    assert!(out.status.success(), "{log}");

    let expected = read_samples(&setup.source, start, end);
    let landed = read_samples(&sink, start - 24 * HOUR_MS, end + 24 * HOUR_MS);
    assert!(
        expected.len() >= 20,
        "the source holds the test history: {} series",
        expected.len()
    );
    let stale = expected
        .values()
        .flatten()
        .filter(|(_, bits)| *bits == STALE_NAN)
        .count();
    assert!(stale >= 3, "the source holds stale markers ({stale})");
    // Equal over a far wider range than imported: nothing outside [start, end) was written.
    assert_same_data(&expected, &landed);
    let total = total_samples(&expected);
    // A series split across frames is one series: the summary counts it once per window.
    let largest_window = (0..11)
        .map(|w| {
            let (from, to) = (
                (start / HOUR_MS + w) * HOUR_MS,
                (start / HOUR_MS + w + 1) * HOUR_MS,
            );
            read_samples(&setup.source, from.max(start), to.min(end)).len()
        })
        .max()
        .unwrap();
    assert!(
        log.contains(&format!("series   {largest_window} in the largest window")),
        "{largest_window} series: {log}"
    );
    assert!(
        log.contains(&format!(
            "read {total}, written {total}, rejected 0, skipped 0"
        )),
        "{log}"
    );
    assert!(
        log.contains("complete: every sample read was accepted"),
        "{log}"
    );
}

#[test]
fn a_sink_without_an_out_of_order_window_rejects_history_and_the_import_stops_early() {
    let setup = source("oob-src");
    let sink = start_prometheus(
        "oob-sink",
        PrometheusOptions {
            receiver: true,
            ..PrometheusOptions::default()
        },
    );
    // The sink already receives live data, as Opni's Cortex does when the migration starts.
    let now = promimport::timespec::now_ms();
    remote_write(
        &sink.url("/api/v1/write"),
        &[(
            &[("__name__", "live_metric"), ("job", "live")],
            vec![(now, 1.0)],
        )],
    );

    let state = temp_dir("oob-state");
    let out = Run::new(
        &setup.source.url("/api/v1/read"),
        &sink.url("/api/v1/write"),
    )
    .between(BASE_MS, BASE_MS + setup.history_hours * HOUR_MS)
    .flags(&["--window", "1h", "--parallel", "1"])
    .state(&state)
    .output();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("REJECTED"), "{log}");
    assert!(log.contains("out of bounds"), "{log}");
    assert!(
        log.contains("out_of_order_time_window"),
        "the fix is named: {log}"
    );
    assert!(log.contains("STOPPED  early"), "{log}");
    // One window was tried, the other eleven were not sent to the same fate.
    assert!(
        log.contains("0 done now, 0 done before, 1 rejected, 0 failed, 11 not attempted"),
        "{log}"
    );
    assert!(
        read_samples(&sink, BASE_MS, BASE_MS + setup.history_hours * HOUR_MS).is_empty(),
        "no history landed"
    );
}

#[test]
fn a_run_killed_mid_way_resumes_with_exact_data_and_no_window_done_twice() {
    let setup = source("resume-src");
    let sink = prometheus_sink("resume-sink");
    let (start, end) = (BASE_MS, BASE_MS + setup.history_hours * HOUR_MS);
    let state = temp_dir("resume-state");
    let run = Run::new(
        &setup.source.url("/api/v1/read"),
        &sink.url("/api/v1/write"),
    )
    .between(start, end)
    .flags(&[
        "--window",
        "10m",
        "--parallel",
        "1",
        "--batch-samples",
        "100",
    ])
    .state(&state);
    let ledger = state.join("ledger.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_promimport"))
        .args(run.args())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once a few windows are recorded: mid-import, mid-window.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&ledger)
        .map(|l| l.lines().count())
        .unwrap_or(0)
        < 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run recorded no windows"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Complete lines only: the kill may tear the last one, and its window is then redone.
    let done_before = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .filter(|l| l.ends_with('}'))
        .count();
    assert!(
        done_before < 72,
        "the run was killed before it finished ({done_before} windows)"
    );

    let out = run.output();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    // The second run skipped exactly the windows the first one recorded, and did the rest.
    assert!(
        log.contains(&format!(
            "{} done now, {done_before} done before",
            72 - done_before
        )),
        "{log}"
    );

    let lines = std::fs::read_to_string(&ledger).unwrap();
    let mut windows: Vec<String> = lines
        .lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["window"].to_string())
        .collect();
    let recorded = windows.len();
    windows.sort();
    windows.dedup();
    assert_eq!(windows.len(), recorded, "a window was recorded twice");
    assert_eq!(recorded, 72, "every 10m window of 12h recorded once");
    assert_same_data(
        &read_samples(&setup.source, start, end),
        &read_samples(&sink, start - HOUR_MS, end + HOUR_MS),
    );
}

#[test]
fn minus_zero_lands_as_minus_zero_not_zero() {
    // A gauge that goes 1, -0, 0, -0, 2: prost and Prometheus' own remote write code leave a
    // value out when it equals 0.0, which -0.0 does, so it would land as 0.0. Read back as
    // chunks: a SAMPLES answer loses the sign on the way out of the sink as well.
    let dir = temp_dir("minus-zero");
    let history = dir.join("history.om");
    let values = ["1", "-0.0", "0", "-0", "2"];
    let mut text = String::from("# TYPE signed gauge\n");
    for (i, value) in values.iter().enumerate() {
        let t = BASE_MS / 1000 + 15 * i as i64;
        text.push_str(&format!("signed{{job=\"z\"}} {value} {t}\n"));
    }
    text.push_str("# EOF\n");
    std::fs::write(&history, text).unwrap();
    let source = source_with_history("minus-zero-src", &history);
    let sink = prometheus_sink("minus-zero-sink");
    let (start, end) = (BASE_MS, BASE_MS + HOUR_MS);
    let (code, log) = Run::new(&source.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start, end)
        .exec();
    assert_eq!(code, Some(0), "{log}");
    let (sent, _) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    let (landed, _) = read_chunked(&sink.url("/api/v1/read"), &[], start, end);
    let minus_zero = (-0.0f64).to_bits();
    let bits: Vec<u64> = sent.values().flatten().map(|&(_, v)| v).collect();
    assert_eq!(
        bits.iter().filter(|&&b| b == minus_zero).count(),
        2,
        "{bits:?}"
    );
    assert_same_data(&sent, &landed);
}
