//! What promimport does with each answer Cortex gives, on machines without a Cortex binary: a
//! real Prometheus source, and in Cortex's place a receiver that plays back the answers a real
//! Cortex v1.19 gave (tests/data/cortex; `common::cortex_replay` says which request draws
//! which). tests/cortex.rs runs the same stories against a real Cortex where `CORTEX_BIN` is
//! set; `record_cortex_answers` (scripts/record-cortex) refreshes the recordings from one.

use promimport_test_support as common;

use std::time::Duration;

use common::cortex_replay::{CortexReplay, Recorded, ReplayLimits, string_pairs};
use common::cortex_stories::{self as stories, CortexLike, TENANT, tenant_header, verify};
use common::*;
use promimport::proto::read_request::ResponseType;
use promimport::proto::{ReadResponse, Sample, TimeSeries};
use prost::Message;

#[test]
fn every_recording_names_its_origin_the_request_that_drew_it_and_the_answer() {
    let dir = common::cortex_replay::answers_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 9, "{names:?}");
    for name in names {
        let recorded = Recorded::load(name.trim_end_matches(".json"));
        let json = &recorded.json;
        for field in ["origin", "what", "request", "answer", "stored"] {
            assert!(!json[field].is_null(), "{name}: no {field}");
        }
        assert!(json["request"]["path"].is_string(), "{name}: request.path");
        assert!((200..600).contains(&recorded.status()), "{name}");
    }
}

#[test]
fn at_the_default_rate_limit_the_import_is_paced_to_the_429s_rate_and_lands_exactly() {
    let source = recent_history_source("replay-rate-src", 26, 1);
    let cortex = CortexReplay::start(ReplayLimits::default());
    stories::an_import_at_the_rate_limit_is_paced_lands_exactly_and_verifies(&source, &cortex);
    assert!(cortex.answered("rate-limited") > 0, "the limit was met");
}

#[test]
fn a_request_larger_than_the_tenants_burst_is_split_until_it_passes() {
    let source = recent_history_source("replay-burst-src", 26, 1);
    let cortex = CortexReplay::start(ReplayLimits {
        burst: 20_000.0,
        ..ReplayLimits::default()
    });
    stories::a_request_larger_than_the_burst_is_split_until_it_passes(&source, &cortex);
    assert!(cortex.answered("rate-limited") > 0);
}

#[test]
fn series_over_the_label_limit_are_counted_exactly_and_every_other_series_lands() {
    let source = labels_source("replay-labels-src", 40, 7);
    let cortex = CortexReplay::start(ReplayLimits::default());
    stories::series_over_the_label_limit_are_counted_and_every_other_series_lands(&source, &cortex);
    assert!(cortex.answered("too-many-labels") > 0);
}

#[test]
fn into_a_tenant_with_live_data_and_no_out_of_order_window_the_import_stops_with_the_cortex_fix() {
    let source = recent_history_source("replay-ooo-src", 26, 1);
    let cortex = CortexReplay::start(ReplayLimits {
        out_of_order: None,
        ..ReplayLimits::default()
    });
    stories::into_live_data_without_an_out_of_order_window_the_import_stops_with_the_fix(
        &source, &cortex,
    );
    assert!(cortex.answered("out-of-bounds") > 0);
}

#[test]
fn out_of_order_samples_are_counted_as_such_with_the_same_fix() {
    let recorded = Recorded::load("out-of-order");
    assert!(recorded.body().contains("out of order sample"));
    // A source whose newest hour the tenant already holds a minute ahead of: every sample of
    // the range is older than its series' newest in the tenant, and inside the head's bounds.
    let source = recent_history_source("replay-order-src", 1, 0);
    let cortex = CortexReplay::start(ReplayLimits {
        out_of_order: None,
        ..ReplayLimits::default()
    });
    let now = promimport::timespec::now_ms();
    let (start, end) = (now - HOUR_MS + 60_000, now - 60_000);
    let held = read_samples(&source, start, end);
    let (_, body) = raw_read(
        &source.url("/api/v1/read"),
        start,
        end,
        ResponseType::Samples,
    );
    let answer = ReadResponse::decode(
        snap::raw::Decoder::new()
            .decompress_vec(&body)
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let ahead = answer
        .results
        .into_iter()
        .flat_map(|r| r.timeseries)
        .map(|series| TimeSeries {
            samples: vec![Sample {
                value: 0.0,
                timestamp: now,
            }],
            ..series
        })
        .collect();
    remote_write_series(&cortex.push_url(), &[("X-Scope-OrgID", TENANT)], ahead);
    let (code, log) = Run::new(&source.url("/api/v1/read"), &cortex.push_url())
        .between(start, end)
        .flag("--dest-header", &tenant_header())
        .state(&temp_dir("replay-order-state"))
        .exec();
    assert_eq!(code, Some(3), "{log}");
    assert!(cortex.answered("out-of-order") > 0);
    assert!(
        log.contains(&format!("written 0, rejected {},", total_samples(&held))),
        "{log}"
    );
    assert!(log.contains("as out of order"), "{log}");
    assert!(log.contains("out_of_order_time_window"), "{log}");
}

#[test]
fn without_the_tenant_every_command_says_it_is_the_tenant_that_is_missing() {
    let source = recent_history_source("replay-tenant-src", 2, 1);
    let cortex = CortexReplay::start(ReplayLimits::default());
    stories::without_the_tenant_every_command_says_so(&source, &cortex);
    assert!(cortex.answered("no-org-id") >= 3);
    assert!(cortex.held(TENANT).is_empty());
}

#[test]
fn verify_says_history_may_not_be_visible_yet_and_with_wait_sees_it_after_the_sync() {
    let source = recent_history_source("replay-wait-src", 26, 1);
    // No rate limit to wait on here; the store-gateway syncs 30 s after the start.
    let cortex = CortexReplay::start(ReplayLimits {
        rate: 1e9,
        burst: 1e9,
        sync_after: Some(Duration::from_secs(30)),
        ..ReplayLimits::default()
    });
    let (code, log) = stories::import(&source, &cortex, &[]);
    assert_eq!(code, Some(0), "{log}");
    let (start, end) = summary_range(&log);
    assert_same_data(&read_samples(&source, start, end), &cortex.held(TENANT));
    // Held, but the querier does not show what is older than the ingesters' retention yet.
    let (code, said) = verify(&source, &cortex, start, end, &[]);
    assert_eq!(code, Some(1), "{said}");
    for needle in ["sync_interval", "15m", "--wait 30m", "re-run the import"] {
        assert!(said.contains(needle), "names {needle:?}: {said}");
    }
    assert!(cortex.answered("query-before-sync") > 0);
    let (code, said) = verify(&source, &cortex, start, end, &["--wait", "3m"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("do not match yet; checking them again"),
        "{said}"
    );
    assert!(said.contains("match (bit for bit)"), "{said}");
    assert!(cortex.answered("query-after-sync") > 0);
}

/// Refreshes tests/data/cortex from a real Cortex: each file's request sent again (with the
/// `before` requests first, to a Cortex started with the file's settings), its answer written
/// back with a new `origin`. Run by scripts/record-cortex.
#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary); rewrites tests/data/cortex; run by scripts/record-cortex"]
fn record_cortex_answers() {
    let binary = std::env::var("CORTEX_BIN").expect("CORTEX_BIN names a Cortex v1.19 binary");
    let version = std::process::Command::new(&binary)
        .arg("-version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let today = promimport::timespec::now_ms();
    let dir = common::cortex_replay::answers_dir();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut recorded = Recorded::load(&name);
        let settings = string_pairs(&recorded.json["settings"]);
        let settings: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let cortex = common::cortex::Cortex::start(&format!("record-{name}"), &settings);
        let request = recorded.json["request"].clone();
        let answer = if request["read"].is_string() {
            record_read(&cortex, &name, &request)
        } else {
            for before in request["before"].as_array().into_iter().flatten() {
                let status = push(&cortex, &request, std::slice::from_ref(before));
                assert_eq!(status["status"], 200, "{name}: the request before");
            }
            let series = request["series"].as_array().expect("request.series");
            push(&cortex, &request, series)
        };
        recorded.json["answer"] = answer;
        recorded.json["cortex"] = version.clone().into();
        recorded.json["origin"] = format!(
            "recorded from a real Cortex ({version}) by record_cortex_answers, at {}",
            rfc3339(today)
        )
        .into();
        let text = serde_json::to_string_pretty(&recorded.json).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
}

/// The headers a recording keeps: what promimport reads, not the date or the length.
const KEPT_HEADERS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "retry-after",
    "x-content-type-options",
];

fn recorded_answer(response: reqwest::blocking::Response, body: bool) -> serde_json::Value {
    let status = response.status().as_u16();
    let headers: serde_json::Map<String, serde_json::Value> = response
        .headers()
        .iter()
        .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (canonical(k.as_str()), v.to_str().unwrap_or_default().into()))
        .collect();
    let text = response.text().unwrap_or_default();
    serde_json::json!({
        "status": status,
        "headers": headers,
        "body": if body { serde_json::Value::from(text) } else { serde_json::Value::Null },
    })
}

/// `content-type` as `Content-Type`.
fn canonical(header: &str) -> String {
    header
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Sends the recording's series (as `request` describes them) in one push; the answer.
fn push(
    cortex: &common::cortex::Cortex,
    request: &serde_json::Value,
    series: &[serde_json::Value],
) -> serde_json::Value {
    use promimport::proto::{Histogram, Label, WriteRequest, histogram};
    let now = promimport::timespec::now_ms();
    let mut timeseries = Vec::new();
    for spec in series {
        let count = spec["count"].as_u64().unwrap_or(1);
        for i in 0..count {
            let mut labels: Vec<Label> = spec["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(n, v)| Label {
                    name: n.clone(),
                    value: v.as_str().unwrap_or_default().into(),
                })
                .collect();
            for j in 0..spec["extra_labels"].as_u64().unwrap_or(0) {
                labels.push(Label {
                    name: format!("label_l{j:02}"),
                    value: format!("v{j}"),
                });
            }
            if count > 1 {
                labels.push(Label {
                    name: "series".into(),
                    value: i.to_string(),
                });
            }
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            let samples = spec["samples"].as_i64().unwrap_or(1);
            let step = spec["step_ms"].as_i64().unwrap_or(15_000);
            let last = now - spec["end_ago_ms"].as_i64().unwrap_or(0);
            let times = (0..samples).map(|k| last - (samples - 1 - k) * step);
            let mut one = TimeSeries {
                labels,
                samples: Vec::new(),
                histograms: Vec::new(),
            };
            if spec["histogram"].as_bool().unwrap_or(false) {
                one.histograms = times
                    .enumerate()
                    .map(|(k, timestamp)| Histogram {
                        count: Some(histogram::Count::CountInt(k as u64 + 1)),
                        sum: k as f64,
                        zero_threshold: 0.001,
                        zero_count: Some(histogram::ZeroCount::ZeroCountInt(k as u64 + 1)),
                        timestamp,
                        ..Histogram::default()
                    })
                    .collect();
            } else {
                one.samples = times
                    .map(|timestamp| Sample {
                        value: 1.0,
                        timestamp,
                    })
                    .collect();
            }
            timeseries.push(one);
        }
    }
    let body = snap::raw::Encoder::new()
        .compress_vec(&WriteRequest { timeseries }.encode_to_vec())
        .unwrap();
    let headers = string_pairs(&request["headers"]);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let response = protobuf_post(
        &reqwest::blocking::Client::new(),
        &format!("{}{}", cortex.url, request["path"].as_str().expect("path")),
        &headers,
        (
            promimport::protocol::REMOTE_WRITE_VERSION_HEADER,
            promimport::protocol::REMOTE_WRITE_VERSION,
        ),
        body,
    )
    .send()
    .expect("Cortex answers");
    recorded_answer(response, true)
}

/// The querier's remote read answer while pushed history has been shipped and is not synced
/// yet (`query-before-sync`), or after the sync (`query-after-sync`): 26h of one series pushed,
/// then read until the answer is the one named (6 minutes at most).
fn record_read(
    cortex: &common::cortex::Cortex,
    name: &str,
    request: &serde_json::Value,
) -> serde_json::Value {
    let history = serde_json::json!([{
        "labels": {"__name__": "replay_history", "job": "replay"},
        "samples": 26 * 240, "step_ms": 15_000, "end_ago_ms": 0,
    }]);
    let status = push(
        cortex,
        &serde_json::json!({"path": "/api/v1/push", "headers": request["headers"]}),
        history.as_array().unwrap(),
    );
    assert_eq!(status["status"], 200, "{name}: the history pushed");
    let now = promimport::timespec::now_ms();
    let tenant = request["headers"]["X-Scope-OrgID"].as_str().unwrap();
    let want_all = name.ends_with("after-sync");
    let deadline = std::time::Instant::now() + Duration::from_secs(360);
    let mut seen_fewer = false;
    loop {
        let held = total_samples(&cortex.read_samples(tenant, now - 27 * HOUR_MS, now + 1));
        seen_fewer |= held < 26 * 240;
        if (want_all && seen_fewer && held == 26 * 240) || (!want_all && held < 26 * 240) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: Cortex held {held} of {} samples after 6 minutes",
            26 * 240
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let query = promimport::proto::ReadRequest {
        queries: vec![promimport::proto::Query {
            start_timestamp_ms: now - 27 * HOUR_MS,
            end_timestamp_ms: now,
            matchers: vec![promimport::proto::LabelMatcher {
                r#type: promimport::proto::label_matcher::Type::Eq as i32,
                name: "__name__".into(),
                value: "replay_history".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![
            promimport::proto::read_request::ResponseType::StreamedXorChunks as i32,
            promimport::proto::read_request::ResponseType::Samples as i32,
        ],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&query.encode_to_vec())
        .unwrap();
    let response = protobuf_post(
        &reqwest::blocking::Client::new(),
        &cortex.read_url(),
        &[("X-Scope-OrgID", tenant)],
        (
            promimport::protocol::REMOTE_READ_VERSION_HEADER,
            promimport::protocol::REMOTE_READ_VERSION,
        ),
        body,
    )
    .send()
    .expect("Cortex answers");
    recorded_answer(response, false)
}
