//! `promimport worker`: one window, configured only by PROMIMPORT_* variables, one JSON line out.
//! This is what each Kubernetes Job runs.

use promimport_test_support as common;

use std::process::Command;

use common::*;

fn worker(env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promimport"));
    command.arg("worker").env("RUST_LOG", "info");
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("PROMIMPORT_")) {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_worker_imports_its_window_with_the_selectors_and_relabelling_it_was_given() {
    let dir = temp_dir("worker-history");
    let history = dir.join("history.om");
    write_history(&history, 2, true);
    let source = start_prometheus(
        "worker-src",
        PrometheusOptions {
            history: Some(&history),
            ..PrometheusOptions::default()
        },
    );
    let sink = start_prometheus(
        "worker-sink",
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            ..PrometheusOptions::default()
        },
    );
    let (start, end) = (BASE_MS + HOUR_MS, BASE_MS + 2 * HOUR_MS);
    let (code, stdout, stderr) = worker(&[
        ("PROMIMPORT_SOURCE", &source.url("/api/v1/read")),
        ("PROMIMPORT_DEST", &sink.url("/api/v1/write")),
        ("PROMIMPORT_WINDOW_START", &rfc3339(start)),
        ("PROMIMPORT_WINDOW_END", &rfc3339(end)),
        // Two selectors, one per line: a comma inside a selector is not a separator.
        (
            "PROMIMPORT_MATCH",
            "test_requests_total{code=\"500\",job=\"node\"}\n{__name__=\"test_temperature\", sensor=\"s1\"}\n",
        ),
        ("PROMIMPORT_DROP_LABEL", "job"),
        ("PROMIMPORT_SET_LABEL", "cluster=old\n"),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let line: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("one JSON line on stdout");
    assert_eq!(line["status"], "done");

    let mut expected = Data::new();
    for (key, samples) in read_samples(&source, start, end) {
        if key.contains("code=\"500\"") || key.contains("sensor=\"s1\"") {
            let key = key.replace(",job=\"node\"", "").replace(",job=\"env\"", "");
            expected.insert(
                format!("__name__{}", &key["__name__".len()..]).replacen(
                    ",",
                    ",cluster=\"old\",",
                    1,
                ),
                samples,
            );
        }
    }
    assert_eq!(
        expected.len(),
        9,
        "8 instances with code 500 and one sensor"
    );
    let total = total_samples(&expected) as u64;
    assert_eq!(line["outcome"]["samples_read"], total);
    assert_eq!(line["outcome"]["samples_written"], total);
    assert_same_data(
        &expected,
        &read_samples(&sink, BASE_MS, BASE_MS + 4 * HOUR_MS),
    );
}

#[test]
fn a_worker_without_its_window_or_with_a_misspelt_variable_says_which() {
    let (code, _, stderr) = worker(&[
        ("PROMIMPORT_SOURCE", "http://127.0.0.1:9/api/v1/read"),
        ("PROMIMPORT_DEST", "http://127.0.0.1:9/api/v1/write"),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("PROMIMPORT_WINDOW_START is not set"),
        "{stderr}"
    );
    let (code, _, stderr) = worker(&[
        ("PROMIMPORT_SOURCE", "http://127.0.0.1:9/api/v1/read"),
        ("PROMIMPORT_DESTINATION", "x"),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("unknown field PROMIMPORT_DESTINATION, expected one of PROMIMPORT_SOURCE"),
        "{stderr}"
    );
}
