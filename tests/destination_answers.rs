//! How promimport treats what a destination answers, with a scripted receiver that decodes every
//! request (remote write 1.0: snappy block protobuf, sorted labels, ordered samples) in front of
//! a real Prometheus source.

use promimport_test_support as common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use promimport::proto::WriteRequest;
use prost::Message;

/// Checks one request against the remote write 1.0 spec and adds its samples to `data`.
fn receive(request: &FakeRequest, data: &Mutex<Data>) {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.0 == name)
            .map(|h| h.1.as_str())
    };
    assert_eq!(header("content-encoding"), Some("snappy"));
    assert_eq!(header("content-type"), Some("application/x-protobuf"));
    assert_eq!(header("x-prometheus-remote-write-version"), Some("0.1.0"));
    assert!(header("user-agent").is_some_and(|ua| ua.starts_with("promimport/")));
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&request.body)
        .expect("snappy block format");
    let write = WriteRequest::decode(raw.as_slice()).expect("a WriteRequest");
    let mut data = data.lock().unwrap();
    for series in write.timeseries {
        assert!(
            series.labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels sorted by name"
        );
        assert!(
            series
                .labels
                .iter()
                .all(|l| !l.name.is_empty() && !l.value.is_empty())
        );
        assert!(
            series
                .samples
                .windows(2)
                .all(|w| w[0].timestamp < w[1].timestamp),
            "samples in order"
        );
        data.entry(series_key(&series.labels)).or_default().extend(
            series
                .samples
                .iter()
                .map(|s| (s.timestamp, s.value.to_bits())),
        );
    }
}

fn import(source: &Server, dest: &str, extra: &[&str]) -> (Option<i32>, String) {
    let state = temp_dir("answers-state");
    let source_url = source.url("/api/v1/read");
    Run::new(&source_url, dest)
        .between(BASE_MS, BASE_MS + 2 * HOUR_MS)
        .state(&state)
        .flags(extra)
        .exec()
}

#[test]
fn a_receiver_that_is_busy_then_fine_gets_every_sample_after_the_wait_it_asked_for() {
    let source = history_source("busy-src", 2, true);
    let data = Arc::new(Mutex::new(Data::new()));
    let times = Arc::new(Mutex::new(Vec::new()));
    let (d, t) = (data.clone(), times.clone());
    let dest = FakeServer::start(move |request, n| {
        t.lock().unwrap().push(Instant::now());
        match n {
            0 => FakeResponse {
                status: 503,
                headers: vec![("Retry-After".into(), "1".into())],
                body: b"restarting".to_vec(),
            },
            1 => FakeResponse::new(429, "text/plain", "slow down"),
            2 => FakeResponse::new(502, "text/plain", "bad gateway"),
            _ => {
                receive(request, &d);
                FakeResponse::new(204, "text/plain", "")
            }
        }
    });
    let (code, log) = import(
        &source,
        &dest.url("/api/v1/write"),
        &["--parallel", "1", "--batch-samples", "2000"],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("(3 retries)"), "{log}");
    let times = times.lock().unwrap();
    assert!(
        times[1] - times[0] >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let expected = read_samples(&source, BASE_MS, BASE_MS + 2 * HOUR_MS);
    assert_same_data(&expected, &data.lock().unwrap());
}

#[test]
fn too_old_as_http_500_is_a_rejection_counted_exactly_not_a_retry_loop() {
    let source = history_source("too-old-src", 2, true);
    let dest = FakeServer::start(|_, _| FakeResponse::new(500, "text/plain", "too old sample"));
    let (code, log) = import(
        &source,
        &dest.url("/api/v1/write"),
        &["--parallel", "1", "--batch-samples", "1000"],
    );
    assert_eq!(code, Some(3), "{log}");
    let total = total_samples(&read_samples(&source, BASE_MS, BASE_MS + 2 * HOUR_MS));
    assert!(
        log.contains(&format!("written 0, rejected {total},")) && log.contains("as too old"),
        "{log}"
    );
    // A refused request of several series is asked again in parts until each series has its
    // own answer (a receiver may have stored some); none is sent again by the retry loop.
    let requests = log
        .lines()
        .find_map(|l| {
            l.split(" in ")
                .nth(1)?
                .strip_suffix(" requests (0 retries)")
        })
        .unwrap_or_else(|| panic!("a request count and no retries: {log}"));
    assert_eq!(dest.request_count().to_string(), requests, "{log}");
    assert!(dest.request_count() > total.div_ceil(1000), "{log}");
    assert!(log.contains("out_of_order_time_window: 30d"), "{log}");
}

#[test]
fn a_receiver_down_longer_than_the_retry_budget_fails_the_window_with_the_last_answer() {
    let source = history_source("down-src", 2, true);
    let dest = FakeServer::start(|_, _| FakeResponse::new(503, "text/plain", "maintenance"));
    let (code, log) = import(
        &source,
        &dest.url("/api/v1/write"),
        &["--retries", "2", "--window-attempts", "1"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("is unreachable after 3 attempts: last answer HTTP 503: maintenance"),
        "{log}"
    );
    assert!(log.contains("1 failed"), "{log}");
}

#[test]
fn a_burst_the_receiver_names_is_never_exceeded_once_named() {
    // Mimir's 429 names its burst: a request larger than that can never pass.
    let source = history_source("burst-src", 2, true);
    let data = Arc::new(Mutex::new(Data::new()));
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let (d, sz) = (data.clone(), sizes.clone());
    let dest = FakeServer::start(move |request, _| {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&request.body)
            .unwrap();
        let samples: usize = WriteRequest::decode(raw.as_slice())
            .unwrap()
            .timeseries
            .iter()
            .map(|s| s.samples.len())
            .sum();
        sz.lock().unwrap().push(samples);
        if samples > 1500 {
            return FakeResponse::new(
                429,
                "text/plain",
                "the request has been rejected because the tenant exceeded the ingestion rate \
                 limit, set to 1000000 items/s with a maximum allowed burst of 1500 \
                 (err-mimir-tenant-max-ingestion-rate)",
            );
        }
        receive(request, &d);
        FakeResponse::new(204, "text/plain", "")
    });
    let (code, log) = import(
        &source,
        &dest.url("/api/v1/write"),
        &["--parallel", "1", "--batch-samples", "5000"],
    );
    assert_eq!(code, Some(0), "{log}");
    let sizes = sizes.lock().unwrap();
    assert!(
        sizes[0] > 1500,
        "the first request met the burst: {sizes:?}"
    );
    assert!(
        sizes[1..].iter().all(|&n| n <= 1500),
        "none larger once named: {sizes:?}"
    );
    let expected = read_samples(&source, BASE_MS, BASE_MS + 2 * HOUR_MS);
    assert_same_data(&expected, &data.lock().unwrap());
}
