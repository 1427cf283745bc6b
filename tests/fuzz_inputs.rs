//! The fuzz targets' seeds and every input that once crashed one (`fuzz/corpus/TARGET`,
//! `fuzz/regressions/TARGET`), run through the same decoders and parsers with the same checks,
//! in every test run. Fuzzing itself (`scripts/fuzz`, libFuzzer with AddressSanitizer) builds
//! the whole crate again under the sanitizer, which costs CI more than it has time for; it is
//! run by hand, and what it finds is kept here as a regression.

use std::path::{Path, PathBuf};

use promimport::decode::frame::FrameReader;
use promimport::decode::histogram::decode_histograms;
use promimport::decode::xor::{declared_samples, decode_xor};
use promimport::proto::ChunkedReadResponse;
use promimport::remote_read::decode_samples_response;
use promimport::selector::parse_selector;
use promimport::timespec::{parse_duration, parse_time};
use prost::Message;

/// Every seed and regression of `target`; there is at least one.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut found = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            found.push((path, data));
        }
    }
    assert!(!found.is_empty(), "no inputs for {target}");
    found
}

#[test]
fn frame_reader_inputs_decode_or_fail_cleanly() {
    let mut decoded = 0;
    for (_, data) in inputs("frame_reader") {
        let Some((&split, body)) = data.split_first() else {
            continue;
        };
        let split = usize::from(split).min(body.len());
        let mut frames = FrameReader::new(1 << 20);
        let mut samples = Vec::new();
        for piece in [&body[..split], &body[split..]] {
            frames.push(piece);
            while let Ok(Some(frame)) = frames.next_frame() {
                let Ok(message) = ChunkedReadResponse::decode(frame) else {
                    continue;
                };
                for series in &message.chunked_series {
                    for chunk in &series.chunks {
                        let _ = decode_xor(&chunk.data, &mut samples);
                    }
                }
            }
        }
        let _ = frames.finish();
        decoded += samples.len();
    }
    // The golden seed is a real Prometheus answer: the harness reaches the decoders.
    assert!(decoded > 0, "no seed decoded to samples");
}

#[test]
fn xor_and_histogram_chunk_inputs_decode_to_the_count_they_declare_or_fail() {
    let mut whole = 0;
    for (path, data) in inputs("xor_chunk") {
        let mut samples = Vec::new();
        if decode_xor(&data, &mut samples).is_ok() {
            whole += 1;
            let declared = usize::from(declared_samples(&data).unwrap_or(0));
            assert_eq!(samples.len(), declared, "{}", path.display());
        }
    }
    for (path, data) in inputs("histogram_chunk") {
        let mut samples = Vec::new();
        for float in [false, true] {
            if decode_histograms(&data, float, &mut samples).is_ok() {
                whole += 1;
                let declared = usize::from(declared_samples(&data).unwrap_or(0));
                assert_eq!(samples.len(), declared, "{}", path.display());
            }
        }
    }
    assert!(whole > 0, "the golden seeds are whole chunks");
}

#[test]
fn samples_response_time_and_selector_inputs_parse_or_fail_cleanly() {
    for (_, data) in inputs("samples_response") {
        let _ = decode_samples_response(&data, 1 << 20, "http://fuzz/api/v1/read");
    }
    for (path, data) in inputs("time_and_selector") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let _ = parse_time("--start", text, 1_793_491_200_000);
        let _ = parse_duration("--window", text);
        if let Ok(selector) = parse_selector(text) {
            assert!(!selector.matchers.is_empty(), "{}", path.display());
        }
    }
}
