//! What an import asks of the source: each window read in series shards by metric name, every
//! series exactly once, against a real Prometheus 2.42 behind a proxy that counts the queries.

use std::sync::{Arc, Mutex};

use promimport_test_support as common;

use common::*;

/// How the proxy answers the label values API in front of the real source.
#[derive(Clone, Copy)]
enum NamesApi {
    /// Every name but `hidden`: as if that metric first appeared after the names were asked for.
    Hiding(&'static str),
    /// 404, as from a source that serves remote read alone.
    Missing,
}

/// A proxy to `source` that answers the label values API as `names` says, passes remote read
/// on, and keeps how many names it listed per window and how many reads it passed.
struct CountingProxy {
    server: FakeServer,
    listed: Arc<Mutex<Vec<usize>>>,
    reads: Arc<Mutex<usize>>,
}

fn counting_proxy(source: &Server, names: NamesApi) -> CountingProxy {
    let target = source.url("");
    let client = reqwest::blocking::Client::new();
    let listed = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(Mutex::new(0));
    let (seen, passed) = (listed.clone(), reads.clone());
    let server = FakeServer::start(move |request, _| {
        if request.path.starts_with("/api/v1/label/__name__/values") {
            let NamesApi::Hiding(hidden) = names else {
                return FakeResponse::new(404, "text/plain", "404 page not found");
            };
            let answer = client
                .get(format!("{target}{}", request.path))
                .send()
                .and_then(|r| r.text())
                .unwrap();
            let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
            let names: Vec<&str> = answer["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n.as_str())
                .filter(|n| *n != hidden)
                .collect();
            seen.lock().unwrap().push(names.len());
            let body = serde_json::json!({"status": "success", "data": names});
            return FakeResponse::new(200, "application/json", body.to_string());
        }
        *passed.lock().unwrap() += 1;
        forward(&client, &target, request)
    });
    CountingProxy {
        server,
        listed,
        reads,
    }
}

/// Metric names the source holds in its blocks beside the test history's two.
const BLOCK_METRICS: [&str; 6] = [
    "container_cpu_usage_seconds_total",
    "job:requests:rate5m",
    "kube_pod_info",
    "node_filesystem_avail_bytes",
    "node_load1",
    "up",
];

/// The test history plus six more metrics in its blocks, and two metrics only in its
/// out-of-order head (remote-written into its past, as an import into it would be): one with a
/// regular expression's metacharacters in its name. Prometheus 2.42's label values API does not
/// list names that only its out-of-order head holds, so these two are found only by the query
/// for unlisted names.
fn many_metrics_source(name: &str) -> Server {
    let hours = 4;
    let history = temp_dir(&format!("{name}-history")).join("history.om");
    write_history(&history, hours, false);
    let mut text = std::fs::read_to_string(&history).unwrap();
    text.truncate(text.len() - "# EOF\n".len());
    for (i, metric) in BLOCK_METRICS.iter().enumerate() {
        text.push_str(&format!("# TYPE {metric} gauge\n"));
        for instance in ["a", "b", "c"] {
            for k in 0..hours * 120 {
                text.push_str(&format!(
                    "{metric}{{instance=\"{instance}\",job=\"extra\"}} {} {}\n",
                    k * (i as i64 + 1),
                    BASE_MS / 1000 + k * 30
                ));
            }
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(&history, text).unwrap();
    let source = start_prometheus(
        name,
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            history: Some(&history),
            ..PrometheusOptions::default()
        },
    );
    seed_stale_series(&source);
    let samples: Vec<(i64, f64)> = (0..hours * 120)
        .map(|k| (BASE_MS + k * 30_000 + 7, k as f64))
        .collect();
    remote_write(
        &source.url("/api/v1/write"),
        &[(&[("__name__", "weird.name+(1)"), ("job", "extra")], samples)],
    );
    source
}

#[test]
fn a_window_read_in_metric_shards_lands_every_series_once_even_one_the_names_api_did_not_list() {
    let source = many_metrics_source("shards-src");
    let (start, end) = (BASE_MS + HOUR_MS + 1_500, BASE_MS + 3 * HOUR_MS);
    let expected = read_samples(&source, start, end);
    let names_in = |data: &Data, name: &str| {
        data.keys()
            .filter(|k| k.contains(&format!("__name__={name:?}")))
            .count()
    };
    assert_eq!(
        names_in(&expected, "node_load1"),
        3,
        "{:?}",
        expected.keys()
    );
    assert_eq!(names_in(&expected, "weird.name+(1)"), 1);
    assert_eq!(names_in(&expected, "test_flapping"), 1);

    for (names, what) in [
        (NamesApi::Hiding("node_load1"), "names listed but one"),
        (NamesApi::Missing, "no label values API"),
    ] {
        let proxy = counting_proxy(&source, names);
        let sink = prometheus_sink("shards-sink");
        let state = temp_dir("shards-state");
        let (code, log) = Run::new(
            &proxy.server.url("/api/v1/read"),
            &sink.url("/api/v1/write"),
        )
        .between(start, end)
        .flags(&[
            "--window",
            "1h",
            "--parallel",
            "1",
            "--metrics-per-read",
            "2",
        ])
        .state(&state)
        .exec();
        assert_eq!(code, Some(0), "{what}: {log}");
        let landed = read_samples(&sink, start - 24 * HOUR_MS, end + 24 * HOUR_MS);
        assert_same_data(&expected, &landed);

        // Two windows: each read in groups of two listed names, plus one query for the rest;
        // without the names API, each in one query.
        let listed = proxy.listed.lock().unwrap().clone();
        let reads = *proxy.reads.lock().unwrap();
        match names {
            NamesApi::Hiding(_) => {
                // The blocks' eight names but the hidden one; the head's two are not listed.
                assert_eq!(listed, [7, 7], "{what}: one names question per window");
                let queries: usize = listed.iter().map(|n| n.div_ceil(2) + 1).sum();
                assert_eq!(reads, queries, "{what}: {listed:?}");
            }
            NamesApi::Missing => {
                assert!(listed.is_empty());
                assert_eq!(reads, 2, "{what}: one query per window");
            }
        }
    }
}

#[test]
fn reading_is_held_to_max_read_samples_per_second() {
    let source = history_source("read-pace-src", 2, false);
    let (start, end) = (BASE_MS, BASE_MS + 2 * HOUR_MS);
    let total = total_samples(&read_samples(&source, start, end));
    let sink = prometheus_sink("read-pace-sink");
    let rate = 2_000;
    let began = std::time::Instant::now();
    let (code, log) = Run::new(&source.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start, end)
        .flags(&["--window", "1h", "--parallel", "1"])
        .flag("--max-read-samples-per-second", &rate.to_string())
        .state(&temp_dir("read-pace-state"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    // The pacer lets the first answer through at once and makes each next one wait for the
    // samples before it: all but the last answer's samples are paid for in time.
    let floor = (total as f64 / rate as f64) * 0.5;
    let took = began.elapsed().as_secs_f64();
    assert!(
        took >= floor,
        "{total} samples at {rate}/s took {took:.1}s, under {floor:.1}s: {log}"
    );
    assert!(
        log.contains("to keep to --max-read-samples-per-second"),
        "the summary says the import waited on purpose: {log}"
    );
    assert_same_data(
        &read_samples(&source, start, end),
        &read_samples(&sink, start - HOUR_MS, end + HOUR_MS),
    );
}

#[test]
fn a_source_slow_to_answer_is_given_as_long_again_before_each_next_query() {
    let source = history_source("slow-answer-src", 4, false);
    let (start, end) = (BASE_MS, BASE_MS + 4 * HOUR_MS);
    let sink = prometheus_sink("slow-answer-sink");
    // Every answer begins 1.5 s after its query, as from a source that queues them.
    let slow = slow_proxy(source.url(""), std::time::Duration::from_millis(1_500));
    let began = std::time::Instant::now();
    let (code, log) = Run::new(&slow.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start, end)
        .flags(&[
            "--window",
            "1h",
            "--parallel",
            "1",
            "--metrics-per-read",
            "0",
        ])
        .flag("--source-slow-answer", "1s")
        .state(&temp_dir("slow-answer-state"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    // Four windows of one query each: four slow answers, each followed by a pause as long.
    assert!(
        log.contains("to begin 4 answers"),
        "the summary says the import eased off: {log}"
    );
    let took = began.elapsed().as_secs_f64();
    assert!(
        took >= 4.0 * 3.0,
        "4 queries of 1.5 s and 4 pauses took {took:.1}s: {log}"
    );
    assert_same_data(
        &read_samples(&source, start, end),
        &read_samples(&sink, start - HOUR_MS, end + HOUR_MS),
    );
}

/// A proxy that asks the source for SAMPLES only, as a source that cannot stream answers
/// (older Prometheus, some proxies); other requests pass as they came.
fn samples_only_proxy(source: &Server) -> FakeServer {
    use promimport::proto::{ReadRequest, read_request::ResponseType};
    use prost::Message;
    let target = source.url("");
    let client = reqwest::blocking::Client::new();
    FakeServer::start(move |request, _| {
        let mut body = request.body.clone();
        if request.path == "/api/v1/read" {
            let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
            let mut read = ReadRequest::decode(raw.as_slice()).unwrap();
            read.accepted_response_types = vec![ResponseType::Samples as i32];
            body = snap::raw::Encoder::new()
                .compress_vec(&read.encode_to_vec())
                .unwrap();
        }
        let request = FakeRequest {
            path: request.path.clone(),
            headers: request.headers.clone(),
            body,
        };
        forward(&client, &target, &request)
    })
}

#[test]
fn a_source_refusing_a_window_over_its_sample_limit_is_read_in_parts_and_lands_exactly() {
    let history = temp_dir("sample-limit-history").join("history.om");
    write_history(&history, 3, false);
    let source = start_prometheus_with(
        "sample-limit-src",
        PrometheusOptions {
            history: Some(&history),
            ..PrometheusOptions::default()
        },
        &["--storage.remote.read-sample-limit=500"],
    );
    let (start, end) = (BASE_MS + 30 * 60_000, BASE_MS + 3 * HOUR_MS);
    // The independent reader asks in SAMPLES mode too: in slices under the limit.
    let mut expected = Data::new();
    for slice in (start..end).step_by(5 * 60_000) {
        for (series, samples) in read_samples(&source, slice, (slice + 5 * 60_000).min(end)) {
            expected.entry(series).or_default().extend(samples);
        }
    }
    let per_window = total_samples(&expected) / 3;
    assert!(
        per_window > 2_000,
        "each window is over the limit: {per_window}"
    );
    let proxy = samples_only_proxy(&source);
    let sink = prometheus_sink("sample-limit-sink");
    let (code, log) = Run::new(&proxy.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start, end)
        .flags(&["--window", "1h", "--parallel", "1"])
        .state(&temp_dir("sample-limit-state"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("SPLIT") && log.contains("as larger than its own limits"),
        "the summary says the source's limit was met and how: {log}"
    );
    assert!(
        log.contains(&format!(
            "series   {} in the largest window",
            expected.len()
        )),
        "a series read in several parts counts once: {log}"
    );
    let landed = read_samples(&sink, start - HOUR_MS, end + HOUR_MS);
    assert_same_data(&expected, &landed);
}
