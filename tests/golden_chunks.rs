//! Golden wire data recorded from a real Prometheus 2.42 (`scripts/record-golden` rewrites it):
//! the same two hours of history answered once as streamed XOR chunks and once as SAMPLES.
//! promimport's frame reader and XOR decoder must turn the first into exactly the second.
//! And native histograms: a streamed answer holding the integer and float histogram chunks
//! Prometheus made from what the test exporter served, with what it served beside it.

use promimport_test_support as common;

use std::path::PathBuf;

use common::*;
use promimport::decode::frame::FrameReader;
use promimport::decode::histogram::decode_histograms;
use promimport::decode::xor::decode_xor;
use promimport::proto::{
    ChunkedReadResponse, Histogram, Label, ReadResponse, chunk::Encoding,
    read_request::ResponseType,
};
use promimport::verify::CanonicalHistogram;
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

/// A source's streamed answer for [start, end), as it sent it.
fn streamed_answer(source: &Server, start: i64, end: i64) -> Vec<u8> {
    let (content_type, streamed) = raw_read(
        &source.url("/api/v1/read"),
        start,
        end,
        ResponseType::StreamedXorChunks,
    );
    assert_eq!(content_type, STREAMED_CONTENT_TYPE);
    streamed
}

#[test]
#[ignore = "rewrites tests/data/golden; run by scripts/record-golden"]
fn record_golden_answers() {
    let source = history_source_framed("golden", 2, true, Some(1024));
    seed_stale_series(&source);
    let (start, end) = golden_range();
    let streamed = streamed_answer(&source, start, end);
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
            ..PrometheusOptions::default()
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

#[test]
#[ignore = "rewrites tests/data/golden; run by scripts/record-golden"]
fn record_golden_histograms() {
    use common::exporter::{Exporter, scraped_source};
    use promimport::proto::{QueryResult, TimeSeries};
    let exporter = Exporter::start();
    let (source, start, end) = scraped_source("golden-native", &exporter, 100);
    let streamed = streamed_answer(&source, start, end);
    // What was served, at the timestamps Prometheus stored each scrape under (its float
    // `exporter_scrape` series, read with the XOR decoder the other recording proves); stale
    // markers where a series stops: the first scrape without it, and the failed scrape.
    let (floats, _) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    let scrapes = floats
        .iter()
        .find(|(k, _)| k.contains("exporter_scrape"))
        .unwrap()
        .1
        .clone();
    let mut series: std::collections::BTreeMap<String, TimeSeries> = Default::default();
    let mut previous: Vec<String> = Vec::new();
    for (t, bits) in scrapes {
        let served = if bits == STALE_NAN {
            Default::default()
        } else {
            exporter.served(f64::from_bits(bits) as i64)
        };
        for (key, h) in &served {
            let entry = series.entry(key.clone()).or_insert_with(|| TimeSeries {
                labels: labels_of(key),
                ..TimeSeries::default()
            });
            entry.histograms.push(Histogram {
                timestamp: t,
                ..h.clone()
            });
        }
        for gone in previous.iter().filter(|k| !served.contains_key(*k)) {
            series.get_mut(gone).unwrap().histograms.push(Histogram {
                timestamp: t,
                sum: f64::from_bits(STALE_NAN),
                ..Histogram::default()
            });
        }
        previous = served.keys().cloned().collect();
    }
    let expected = ReadResponse {
        results: vec![QueryResult {
            timeseries: series.into_values().collect(),
        }],
    };
    std::fs::write(golden("histograms-streamed.bin"), streamed).unwrap();
    std::fs::write(golden("histograms-served.bin"), expected.encode_to_vec()).unwrap();
}

/// `name="value",...` back to labels.
fn labels_of(key: &str) -> Vec<Label> {
    key.split("\",")
        .map(|pair| {
            let (name, value) = pair.split_once("=\"").unwrap();
            Label {
                name: name.to_string(),
                value: value.trim_end_matches('"').to_string(),
            }
        })
        .collect()
}

fn golden_histogram_chunks() -> Vec<(String, promimport::proto::Chunk)> {
    let body = std::fs::read(golden("histograms-streamed.bin")).unwrap();
    let mut frames = FrameReader::new(1 << 20);
    frames.push(&body);
    let mut chunks = Vec::new();
    while let Some(frame) = frames.next_frame().unwrap() {
        for series in ChunkedReadResponse::decode(frame).unwrap().chunked_series {
            let key = series_key(&series.labels);
            chunks.extend(series.chunks.into_iter().map(|c| (key.clone(), c)));
        }
    }
    frames.finish().unwrap();
    chunks
}

#[test]
fn golden_histogram_chunks_decode_to_what_the_exporter_served() {
    let served = ReadResponse::decode(
        std::fs::read(golden("histograms-served.bin"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let mut decoded: std::collections::BTreeMap<String, Vec<CanonicalHistogram>> =
        Default::default();
    let (mut integer, mut float) = (0, 0);
    let mut out = Vec::new();
    for (key, chunk) in golden_histogram_chunks() {
        let is_float = match Encoding::try_from(chunk.r#type).unwrap() {
            Encoding::Xor => continue,
            Encoding::Histogram => false,
            Encoding::FloatHistogram => true,
            Encoding::Unknown => panic!("unknown encoding"),
        };
        *(if is_float { &mut float } else { &mut integer }) += 1;
        decode_histograms(&chunk.data, is_float, &mut out).unwrap();
        assert_eq!(out.first().map(|h| h.timestamp), Some(chunk.min_time_ms));
        assert_eq!(out.last().map(|h| h.timestamp), Some(chunk.max_time_ms));
        let samples = decoded.entry(key).or_default();
        for h in &out {
            // Overlapping chunks repeat samples; the decoder must agree with itself there.
            let c = CanonicalHistogram::of(h);
            match samples.iter().find(|s| s.timestamp == c.timestamp) {
                Some(seen) => assert_eq!(seen, &c),
                None => samples.push(c),
            }
        }
    }
    assert!(
        integer > 3 && float > 0,
        "{integer} integer, {float} float chunks"
    );
    let expected: std::collections::BTreeMap<String, Vec<CanonicalHistogram>> = served.results[0]
        .timeseries
        .iter()
        .map(|s| {
            (
                series_key(&s.labels),
                s.histograms.iter().map(CanonicalHistogram::of).collect(),
            )
        })
        .collect();
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        decoded.keys().collect::<Vec<_>>()
    );
    for (key, want) in &expected {
        let got = &decoded[key];
        assert_eq!(want.len(), got.len(), "{key}");
        for (w, g) in want.iter().zip(got) {
            assert_eq!(w, g, "{key}");
        }
    }
}

#[test]
fn every_truncation_of_a_golden_histogram_chunk_is_an_error_not_a_panic() {
    let mut out = Vec::new();
    let mut tried = 0;
    for (_, chunk) in golden_histogram_chunks() {
        let float = chunk.r#type == Encoding::FloatHistogram as i32;
        if chunk.r#type == Encoding::Xor as i32 {
            continue;
        }
        for len in 0..chunk.data.len() {
            assert!(
                decode_histograms(&chunk.data[..len], float, &mut out).is_err(),
                "a chunk of {} bytes cut to {len} decoded",
                chunk.data.len()
            );
            tried += 1;
        }
    }
    assert!(tried > 1000, "{tried} truncations");
}
