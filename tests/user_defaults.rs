//! What users type, as they type it: relative times (`now-30h`, whose start carries
//! milliseconds), the default window and parallelism, Ctrl-C and SIGTERM in the middle of a
//! run, `import start` with its default range. Each into VictoriaMetrics, which takes
//! concurrent windows exactly (see import_victoria_metrics.rs), compared sample by sample.

use promimport_test_support as common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// What the source holds over [start, end), compared with what landed in VictoriaMetrics;
/// the number of samples compared.
fn assert_landed(source: &Server, vm: &Server, start: i64, end: i64) -> usize {
    let expected = read_samples(source, start, end);
    assert!(total_samples(&expected) > 1_000, "the range holds history");
    let (compared, _) =
        assert_same_in_victoria_metrics_over(&expected, vm, start - 48 * HOUR_MS, end + HOUR_MS);
    compared
}

#[test]
fn run_from_now_minus_30h_to_now_with_the_defaults_lands_every_sample_once() {
    // History from 32h to 2h ago: the range's relative start cuts through it mid-second.
    let source = recent_history_source("defaults-run-src", 30, 2);
    let vm = start_victoria_metrics("defaults-run-vm", "100y");
    let state = temp_dir("defaults-run-state");
    let out = Run::new(&source.url("/api/v1/read"), &vm.url("/api/v1/write"))
        .flags(&["--start", "now-30h", "--end", "now"])
        .state(&state)
        .output();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("complete: every sample read was accepted"),
        "{log}"
    );
    let (start, end) = summary_range(&log);
    assert_landed(&source, &vm, start, end);
    // 2h windows aligned to the epoch: a partial first and last window, 16 in all at most.
    let windows = std::fs::read_to_string(state.join("ledger.jsonl")).unwrap();
    let expected = promimport::plan::count_windows(
        promimport::window::Window::new(start, end).unwrap(),
        2 * HOUR_MS,
    );
    assert_eq!(windows.lines().count() as u64, expected, "each window once");
}

#[test]
fn ctrl_c_and_sigterm_at_uneven_points_end_with_a_summary_and_the_resume_is_exact() {
    let source = recent_history_source("signal-src", 30, 2);
    let vm = start_victoria_metrics("signal-vm", "100y");
    // A slow destination, so windows are in flight when the signal comes.
    let slow = slow_proxy(vm.url(""), Duration::from_millis(400));
    let state = temp_dir("signal-state");
    // What `now-30h` resolves to, to the millisecond, typed as an absolute time so that every
    // run of the same command means the same range.
    let now = promimport::timespec::now_ms();
    let (start, end) = (now - 30 * HOUR_MS + 123, now);
    let run = Run::new(&source.url("/api/v1/read"), &slow.url("/api/v1/write"))
        .between(start, end)
        .flags(&["--window", "1h"])
        .state(&state);
    let mut interrupted = 0;
    for (signal, after_ms, code) in [
        ("-INT", 900, 130),
        ("-TERM", 1_700, 143),
        ("-INT", 2_300, 130),
        ("-TERM", 450, 143),
    ] {
        let child = Command::new(env!("CARGO_BIN_EXE_promimport"))
            .args(run.args())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(after_ms));
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        let log = text(&out);
        assert!(!log.contains("internal error"), "{log}");
        if out.status.code() == Some(0) {
            // The import finished before the signal: nothing left to interrupt.
            break;
        }
        assert_eq!(
            out.status.code(),
            Some(code),
            "{signal} after {after_ms}ms: {log}"
        );
        let name = if signal == "-INT" {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        assert!(
            log.contains(&format!(
                "interrupted by {name}: run the same command again to resume"
            )),
            "{log}"
        );
        assert!(
            log.contains("  samples  read "),
            "the summary is printed: {log}"
        );
        interrupted += 1;
    }
    assert!(
        interrupted >= 2,
        "at least two runs were interrupted mid-way"
    );
    let (code, log) = run.exec();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        !log.contains("the source returned no samples"),
        "a resumed run's empty rest is not mistaken for an empty source: {log}"
    );
    assert_landed(&source, &vm, start, end);
    // Interrupted windows were not recorded: every window is in the ledger once, done.
    let ledger = std::fs::read_to_string(state.join("ledger.jsonl")).unwrap();
    let mut windows: Vec<String> = ledger
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["window"].to_string())
        .collect();
    let recorded = windows.len();
    windows.sort();
    windows.dedup();
    assert_eq!(
        windows.len(),
        recorded,
        "no window recorded twice: {ledger}"
    );
}

#[test]
fn import_start_of_a_local_target_with_its_default_range_lands_every_sample() {
    let source = recent_history_source("target-default-src", 30, 2);
    let vm = start_victoria_metrics("target-default-vm", "100y");
    let dir = temp_dir("target-default");
    let state = dir.to_str().unwrap();
    let out = promimport(&[
        "target",
        "add",
        "old-prometheus",
        "--local",
        "--state",
        state,
        "--source",
        &source.url("/api/v1/read"),
        "--dest",
        &vm.url("/api/v1/write"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // No range given: the last 10 days, in 2h windows, 2 at a time.
    let out = promimport(&[
        "import",
        "start",
        "old-prometheus",
        "--local",
        "--state",
        state,
    ]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let (start, end) = summary_range(&log);
    let days = (end - start) as f64 / (24.0 * HOUR_MS as f64);
    assert!(
        (days - 10.0).abs() < 0.01,
        "the default range is 10 days: {days}"
    );
    assert_landed(&source, &vm, start, end);
}
