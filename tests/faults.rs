//! Faults between promimport and its peers, injected by proxies written here in front of real
//! Prometheus servers: nothing is lost, nothing duplicated, and no window is recorded as done
//! unless all of it landed. Loopback only; every loop is bounded.

use promimport_test_support as common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// A deterministic fault schedule: request n meets fault `plan[n % plan.len()]`.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Pass,
    Status(u16),
    RetryAfter,
    /// Hold the request past the client's timeout, then forward it anyway.
    Slow,
    /// Close the connection without an answer.
    Reset,
}

const DEST_PLAN: [Fault; 10] = [
    Fault::Status(503),
    Fault::Pass,
    Fault::Status(500),
    Fault::RetryAfter,
    Fault::Pass,
    Fault::Status(502),
    Fault::Reset,
    Fault::Status(429),
    Fault::Slow,
    Fault::Pass,
];

/// Forwards to `target` unless the plan says otherwise.
fn fault_proxy(
    target: String,
    plan: &'static [Fault],
) -> (FakeServer, Arc<Mutex<Vec<&'static str>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = reqwest::blocking::Client::new();
    let server = FakeServer::start(move |request, n| {
        let fault = plan[n % plan.len()];
        log.lock().unwrap().push(match fault {
            Fault::Pass => "pass",
            Fault::Status(_) => "status",
            Fault::RetryAfter => "retry-after",
            Fault::Slow => "slow",
            Fault::Reset => "reset",
        });
        match fault {
            Fault::Status(code) => return FakeResponse::new(code, "text/plain", "injected fault"),
            Fault::RetryAfter => {
                return FakeResponse {
                    status: 503,
                    headers: vec![("Retry-After".into(), "1".into())],
                    body: b"busy".to_vec(),
                };
            }
            Fault::Reset => {
                return FakeResponse {
                    status: 0,
                    headers: Vec::new(),
                    body: Vec::new(),
                };
            }
            Fault::Slow => std::thread::sleep(Duration::from_millis(2_500)),
            Fault::Pass => {}
        }
        forward(&client, &target, request)
    });
    (server, seen)
}

fn run(source: &str, dest: &str, state: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    // One window at a time keeps a Prometheus sink's appends in order (see prometheus_sink).
    Run::new(source, dest)
        .between(BASE_MS, BASE_MS + 6 * HOUR_MS)
        .flags(&["--window", "1h", "--parallel", "1"])
        .state(state)
        .flags(extra)
        .exec()
}

fn windows_in_ledger(state: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(state.join("ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["window"].to_string(),
                v["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_exact(source: &Server, sink: &Server) {
    let (from, to) = history_range();
    assert_same_data(
        &read_samples(source, BASE_MS, BASE_MS + 6 * HOUR_MS),
        &read_samples(sink, from, to),
    );
}

#[test]
fn a_destination_that_fails_in_every_way_still_gets_every_sample_once() {
    let source = history_source("faulty-dest-src", 6, true);
    let sink = prometheus_sink("faulty-dest-sink");
    let (proxy, seen) = fault_proxy(format!("http://127.0.0.1:{}", sink.port), &DEST_PLAN);
    let state = temp_dir("faulty-dest-state");
    let (code, log) = run(
        &source.url("/api/v1/read"),
        &proxy.url("/api/v1/write"),
        &state,
        &["--batch-samples", "3000", "--dest-timeout", "1s"],
    );
    assert_eq!(code, Some(0), "{log}");
    let seen = seen.lock().unwrap();
    for fault in ["status", "retry-after", "slow", "reset"] {
        assert!(
            seen.contains(&fault),
            "the {fault} fault was exercised: {seen:?}"
        );
    }
    assert_exact(&source, &sink);
    assert!(windows_in_ledger(&state).iter().all(|w| w.1 == "done"));
}

#[test]
fn a_source_stream_cut_mid_frame_or_corrupted_is_read_again_never_recorded_half_done() {
    let source = history_source("faulty-src", 6, true);
    let sink = prometheus_sink("faulty-src-sink");
    let target = format!("http://127.0.0.1:{}", source.port);
    let client = reqwest::blocking::Client::new();
    let cuts = Arc::new(AtomicUsize::new(0));
    let counter = cuts.clone();
    // Every other answer is damaged: cut in the middle of a frame, or one byte flipped.
    let proxy = FakeServer::start(move |request, n| {
        let mut response = forward(&client, &target, request);
        match n % 4 {
            1 => {
                response.body.truncate(response.body.len() / 2);
                counter.fetch_add(1, Ordering::SeqCst);
            }
            3 => {
                let middle = response.body.len() / 2;
                response.body[middle] ^= 0x40;
                counter.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        response
    });
    let state = temp_dir("faulty-src-state");
    // One query per window (no metric shards): every other attempt of a window then meets a
    // damaged answer. With shards, two reads an attempt would always include a damaged one.
    let (code, log) = run(
        &proxy.url("/api/v1/read"),
        &sink.url("/api/v1/write"),
        &state,
        &["--window-attempts", "5", "--metrics-per-read", "0"],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(cuts.load(Ordering::SeqCst) >= 3, "faults were injected");
    assert!(log.contains("window failed; importing it again"), "{log}");
    assert_exact(&source, &sink);
    let windows = windows_in_ledger(&state);
    assert_eq!(windows.len(), 6, "each window recorded once: {windows:?}");

    // With no attempts to spare, a damaged window fails and says why; it is not "done".
    let state = temp_dir("faulty-src-state-2");
    let (code, log) = run(
        &proxy.url("/api/v1/read"),
        &sink.url("/api/v1/write"),
        &state,
        &["--window-attempts", "1", "--metrics-per-read", "0"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("corrupt remote read stream") || log.contains("is not valid protobuf"),
        "{log}"
    );
    assert!(windows_in_ledger(&state).iter().any(|w| w.1 == "failed"));
}

#[test]
fn a_destination_down_past_the_retry_budget_fails_the_window_and_a_resume_completes_it() {
    let source = history_source("down-src", 6, true);
    let sink = prometheus_sink("down-sink");
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switch = up.clone();
    let target = format!("http://127.0.0.1:{}", sink.port);
    let client = reqwest::blocking::Client::new();
    let proxy = FakeServer::start(move |request, _| {
        if switch.load(Ordering::SeqCst) {
            forward(&client, &target, request)
        } else {
            FakeResponse::new(503, "text/plain", "down for maintenance")
        }
    });
    let state = temp_dir("down-state");
    let (code, log) = run(
        &source.url("/api/v1/read"),
        &proxy.url("/api/v1/write"),
        &state,
        &["--retries", "1", "--window-attempts", "1"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("unreachable after 2 attempts: last answer HTTP 503: down for maintenance"),
        "{log}"
    );
    assert!(
        windows_in_ledger(&state).iter().all(|w| w.1 == "failed"),
        "the ledger says so"
    );

    up.store(true, Ordering::SeqCst);
    let (code, log) = run(
        &source.url("/api/v1/read"),
        &proxy.url("/api/v1/write"),
        &state,
        &[],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("6 done now, 0 done before"), "{log}");
    assert_exact(&source, &sink);
}

#[test]
fn a_run_killed_again_and_again_ends_exact_with_each_window_done_once() {
    let source = history_source("kill-src", 6, true);
    let sink = prometheus_sink("kill-sink");
    // Slow the destination so that kills land mid-window.
    let slow = slow_proxy(
        format!("http://127.0.0.1:{}", sink.port),
        Duration::from_millis(40),
    );
    let state = temp_dir("kill-state");
    let args = [
        "run",
        "--source",
        &source.url("/api/v1/read") as &str,
        "--dest",
        &slow.url("/api/v1/write"),
        "--start",
        "2026-11-01T00:00:00Z",
        "--end",
        "2026-11-01T06:00:00Z",
        "--window",
        "20m",
        "--parallel",
        "1",
        "--batch-samples",
        "500",
        "--state",
        state.to_str().unwrap(),
    ];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..8 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_promimport"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + rng % 700));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let out = promimport(&args);
    assert!(out.status.success(), "{}", text(&out));
    let windows = windows_in_ledger(&state);
    let mut keys: Vec<&String> = windows.iter().map(|w| &w.0).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), windows.len(), "no window recorded twice");
    assert_eq!(windows.len(), 18);
    assert_exact(&source, &sink);
}
