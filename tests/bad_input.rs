//! Bad input gets a clear error that names the input and the fix, a non-zero exit, no panic,
//! and no credential in the output.

use promimport_test_support as common;

use common::*;

fn run(source: &str, dest: &str, extra: &[&str]) -> (Option<i32>, String) {
    run_in(&temp_dir("bad-input-state"), source, dest, extra)
}

fn run_in(
    state: &std::path::Path,
    source: &str,
    dest: &str,
    extra: &[&str],
) -> (Option<i32>, String) {
    let (code, log) = Run::new(source, dest)
        .between(BASE_MS, BASE_MS + 2 * HOUR_MS)
        .flags(&["--retries", "1", "--window-attempts", "1"])
        .state(state)
        .flags(extra)
        .exec();
    assert!(!log.contains("panicked"), "{log}");
    (code, log)
}

/// A destination that takes every request: these tests are about the source and the input.
fn dest() -> String {
    static SINK: std::sync::OnceLock<FakeServer> = std::sync::OnceLock::new();
    SINK.get_or_init(|| FakeServer::start(|_, _| FakeResponse::new(204, "text/plain", "")))
        .url("/api/v1/write")
}

#[test]
fn an_unreachable_source_is_named() {
    let url = format!("http://127.0.0.1:{}/api/v1/read", free_port());
    let (code, log) = run(&url, &dest(), &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("source {url} is unreachable")),
        "{log}"
    );
}

#[test]
fn a_destination_with_nothing_listening_ends_the_import_at_once_with_what_to_check() {
    let source = FakeServer::start(|_, _| FakeResponse::new(500, "text/plain", "unused"));
    let url = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let (code, log) = run(&source.url("/api/v1/read"), &url, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("destination {url} is unreachable (3 tries)"))
            && log.contains("check the host and port in the URL"),
        "{log}"
    );
    assert_eq!(source.request_count(), 0, "no window was started: {log}");
}

#[test]
fn a_password_in_the_url_is_sent_as_typed_not_form_decoded() {
    use base64::Engine;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let source = FakeServer::start(move |request, _| {
        let auth = request.header("authorization");
        record.lock().unwrap().push(auth);
        FakeResponse::new(401, "text/plain", "Unauthorized")
    });
    // `+` stays a plus; %2B, %40, %3A and %25 are a plus, an at sign, a colon and a percent.
    let url = format!(
        "http://im%40porter:pa+ss%2Bw%40x%3Ay%25@127.0.0.1:{}/api/v1/read",
        source.port
    );
    let (code, log) = run(&url, &dest(), &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(!log.contains("pa+ss"), "the password is not shown: {log}");
    let auth = seen.lock().unwrap()[0].clone();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "im@porter:pa+ss+w@x:y%"
    );
}

#[test]
fn a_source_that_answers_html_is_not_mistaken_for_an_empty_one() {
    let proxy = FakeServer::start(|_, _| {
        FakeResponse::new(
            200,
            "text/html; charset=utf-8",
            "<html>Log in to Rancher</html>",
        )
    });
    let (code, log) = run(&proxy.url("/api/v1/read"), &dest(), &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("\"text/html; charset=utf-8\" instead of a remote read response"),
        "{log}"
    );
    assert!(
        log.contains("point --source at the server's /api/v1/read"),
        "{log}"
    );
}

#[test]
fn a_corrupt_frame_fails_the_window_with_its_checksum() {
    let mut body = Vec::new();
    promimport::decode::frame::encode_frame(b"\x0a\x00", &mut body);
    let last = body.len() - 1;
    body[last] ^= 0xff;
    let source = FakeServer::start(move |_, _| {
        FakeResponse::new(
            200,
            "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse",
            body.clone(),
        )
    });
    let (code, log) = run(&source.url("/api/v1/read"), &dest(), &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("corrupt remote read stream: frame 0 fails its CRC32C check"),
        "{log}"
    );
    assert!(
        log.contains("0 done now, 0 done before, 0 rejected, 1 failed"),
        "{log}"
    );
}

#[test]
fn a_source_refusing_credentials_stops_the_import_with_the_fix() {
    // Remote reads apart from the metric names question, which the same 401 answers.
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = reads.clone();
    let source = FakeServer::start(move |request, _| {
        if request.path == "/api/v1/read" {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        FakeResponse::new(401, "text/plain", "Unauthorized")
    });
    let (code, log) = run(
        &source.url("/api/v1/read"),
        &dest(),
        &["--window", "30m", "--parallel", "1"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("answered HTTP 401: Unauthorized; check --source-bearer-token-file"),
        "{log}"
    );
    assert!(log.contains("STOPPED  early"), "{log}");
    assert_eq!(
        reads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a 401 is not retried, and no other window is tried"
    );
}

#[test]
fn an_inverted_time_range_says_to_swap() {
    let dest = dest();
    let out = promimport(&[
        "run", "--source", &dest, "--dest", &dest, "--start", "now", "--end", "now-1d",
    ]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("invalid time range") && log.contains("swap --start and --end"),
        "{log}"
    );
}

#[test]
fn bad_times_matchers_and_urls_are_named() {
    for (args, needle) in [
        (
            vec!["--start", "yesterday"],
            "invalid --start \"yesterday\"",
        ),
        (
            vec!["--match", "{job=node}"],
            "invalid value '{job=node}' for '--match <SELECTOR>': invalid --match selector",
        ),
        (vec!["--window", "0s"], "invalid --window \"0s\""),
        (vec!["--window", "1ms"], "give 1m or more"),
        (
            vec!["--start", "now-10y", "--window", "1m"],
            "give --window 1h or longer",
        ),
        (
            vec!["--set-label", "nolabel"],
            "invalid value 'nolabel' for '--set-label <NAME=VALUE>': expected NAME=VALUE",
        ),
        (
            vec!["--dest-header", "X-Scope-OrgID"],
            "invalid value 'X-Scope-OrgID' for '--dest-header <NAME=VALUE>': expected NAME=VALUE",
        ),
        (
            vec!["--source-timeout", "soon"],
            "invalid value 'soon' for '--source-timeout <DURATION>'",
        ),
    ] {
        let dest = dest();
        let mut full = vec!["run", "--source", &dest, "--dest", &dest];
        if !args.contains(&"--start") {
            full.extend(["--start", "now-1h"]);
        }
        full.extend(args);
        let out = promimport(&full);
        let log = text(&out);
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(log.contains(needle), "{needle}: {log}");
        assert!(!log.contains("panicked"), "{log}");
    }
    let out = promimport(&[
        "run",
        "--source",
        "prometheus:9090",
        "--dest",
        &dest(),
        "--start",
        "now-1h",
    ]);
    assert!(
        text(&out).contains("invalid --source \"prometheus:9090\""),
        "{}",
        text(&out)
    );
}

#[test]
fn a_destination_that_is_a_read_or_query_url_is_refused_before_anything_is_sent() {
    let source = FakeServer::start(|_, _| FakeResponse::new(500, "text/plain", "unused"));
    for (path, kind) in [
        ("/prometheus/api/v1/read", "a remote read URL"),
        ("/api/v1/query", "a query API URL"),
    ] {
        let dest = FakeServer::start(|_, _| FakeResponse::new(204, "text/plain", ""));
        let (code, log) = run(&source.url("/api/v1/read"), &dest.url(path), &[]);
        assert_eq!(code, Some(1), "{log}");
        assert!(log.contains(kind) && log.contains("/api/v1/push"), "{log}");
        assert_eq!(source.request_count() + dest.request_count(), 0, "{log}");
    }
}

#[test]
fn credentials_never_reach_the_output() {
    let dir = temp_dir("secret");
    let token = dir.join("token");
    std::fs::write(&token, "tok-PLANTED-SECRET\n").unwrap();
    let source = FakeServer::start(|request, _| {
        let auth = request.header("authorization");
        // The token arrives without its trailing newline.
        assert_eq!(auth, "Bearer tok-PLANTED-SECRET");
        FakeResponse::new(503, "text/plain", "overloaded")
    });
    let dest = dest().replace("http://", "http://alice:pw-PLANTED-SECRET@");
    let state = temp_dir("secret-state");
    let (code, log) = run_in(
        &state,
        &source.url("/api/v1/read"),
        &dest,
        &[
            "--source-bearer-token-file",
            token.to_str().unwrap(),
            "--dest-header",
            "X-Api-Key=key-PLANTED-SECRET",
        ],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(source.request_count() >= 1);
    assert!(!log.contains("PLANTED-SECRET"), "{log}");
    let mut recorded = String::new();
    for file in std::fs::read_dir(&state).unwrap() {
        recorded.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
    }
    assert!(
        recorded.contains("overloaded"),
        "the ledger recorded the failure: {recorded}"
    );
    assert!(!recorded.contains("PLANTED-SECRET"), "{recorded}");
}

#[test]
fn a_source_sending_a_monstrous_series_is_refused_by_a_limit_not_by_running_out_of_memory() {
    use prost::Message;
    let labels: Vec<promimport::proto::Label> = (0..300)
        .map(|i| promimport::proto::Label {
            name: format!("label_{i:03}"),
            value: "v".into(),
        })
        .collect();
    let message = promimport::proto::ChunkedReadResponse {
        chunked_series: vec![promimport::proto::ChunkedSeries {
            labels,
            chunks: Vec::new(),
        }],
        query_index: 0,
    };
    let mut body = Vec::new();
    promimport::decode::frame::encode_frame(&message.encode_to_vec(), &mut body);
    let source = FakeServer::start(move |_, _| {
        FakeResponse::new(
            200,
            "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse",
            body.clone(),
        )
    });
    let (code, log) = run(&source.url("/api/v1/read"), &dest(), &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("exceeded a limit: a series with 300 labels (at most 256)"),
        "{log}"
    );
}
