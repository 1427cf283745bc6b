//! Golden wire data recorded from a real Prometheus 2.42 (`scripts/record-golden` rewrites it):
//! the same two hours of history answered once as streamed XOR chunks and once as SAMPLES.
//! promimport's frame reader and XOR decoder must turn the first into exactly the second.

mod common;

use std::path::PathBuf;

use common::*;
use promimport::decode::frame::FrameReader;
use promimport::decode::xor::decode_xor;
use promimport::proto::{ChunkedReadResponse, chunk::Encoding, read_request::ResponseType};
use prost::Message;

const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(name)
}

fn golden_range() -> (i64, i64) {
    (BASE_MS, BASE_MS + 2 * HOUR_MS)
}

#[test]
#[ignore = "rewrites tests/data/golden; run by scripts/record-golden"]
fn record_golden_answers() {
    let source = history_source_framed("golden", 2, true, Some(1024));
    seed_stale_series(&source);
    let (start, end) = golden_range();
    let (content_type, streamed) = raw_read(
        &source.url("/api/v1/read"),
        start,
        end,
        ResponseType::StreamedXorChunks,
    );
    assert_eq!(content_type, STREAMED_CONTENT_TYPE);
    let (_, samples) = raw_read(
        &source.url("/api/v1/read"),
        start,
        end,
        ResponseType::Samples,
    );
    std::fs::write(golden("streamed.bin"), streamed).unwrap();
    std::fs::write(golden("samples.bin"), samples).unwrap();
}

#[test]
fn golden_streamed_chunks_decode_to_the_samples_prometheus_sent() {
    let (start, end) = golden_range();
    let expected = decode_samples(&std::fs::read(golden("samples.bin")).unwrap(), start, end);
    let body = std::fs::read(golden("streamed.bin")).unwrap();
    let mut frames = FrameReader::new(1 << 20);
    frames.push(&body);
    let mut decoded = Data::new();
    let mut buffer = Vec::new();
    let mut split = 0;
    while let Some(frame) = frames.next_frame().unwrap() {
        for series in ChunkedReadResponse::decode(frame).unwrap().chunked_series {
            let samples = decoded.entry(series_key(&series.labels)).or_default();
            split += usize::from(!samples.is_empty());
            for chunk in &series.chunks {
                assert_eq!(chunk.r#type, Encoding::Xor as i32);
                decode_xor(&chunk.data, &mut buffer).unwrap();
                assert_eq!(
                    buffer.first().map(|s| s.0),
                    Some(chunk.min_time_ms),
                    "chunk min time"
                );
                assert_eq!(
                    buffer.last().map(|s| s.0),
                    Some(chunk.max_time_ms),
                    "chunk max time"
                );
                samples.extend(buffer.iter().filter(|s| start <= s.0 && s.0 < end));
            }
        }
    }
    frames.finish().unwrap();
    assert!(frames.frames() > 10, "{} frames", frames.frames());
    assert!(split > 0, "the recording splits series across frames");
    assert!(
        expected.values().flatten().any(|s| s.1 == STALE_NAN),
        "the recording holds stale markers"
    );
    assert_same_data(&expected, &decoded);
}

#[test]
fn chunks_that_overrun_the_window_are_clipped_so_neighbours_never_overlap() {
    // The replaying source answers every query with the whole two hours, as a source that does
    // not trim its chunks does; promimport must keep only its window.
    let body = std::fs::read(golden("streamed.bin")).unwrap();
    let source =
        FakeServer::start(move |_, _| FakeResponse::new(200, STREAMED_CONTENT_TYPE, body.clone()));
    let sink = start_prometheus(
        "clip-sink",
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            max_bytes_in_frame: None,
            history: None,
        },
    );
    let (start, end) = (
        BASE_MS + 30 * 60_000 + 7_000,
        BASE_MS + HOUR_MS + 5 * 60_000,
    );
    let state = temp_dir("clip-state");
    let out = Run::new(&source.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start, end)
        .flags(&["--window", "10m", "--parallel", "1"])
        .state(&state)
        .output();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let (all_start, all_end) = golden_range();
    let everything = decode_samples(
        &std::fs::read(golden("samples.bin")).unwrap(),
        all_start,
        all_end,
    );
    let expected: Data = everything
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.into_iter()
                    .filter(|s| start <= s.0 && s.0 < end)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_same_data(&expected, &read_samples(&sink, all_start, all_end));
    // Every window read the full two hours, and each sample was written by one window only.
    let total = total_samples(&expected);
    assert!(log.contains(&format!("written {total},")), "{log}");
}
