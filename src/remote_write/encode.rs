//! A `WriteRequest` as protobuf, written by hand: the remote write path's hottest loop.
//!
//! Two reasons not to leave it to prost. Exactness: prost (like the gogo code Prometheus
//! generates) leaves a proto3 `double` out when it compares equal to 0.0, and -0.0 does, so a
//! sample of -0.0 would arrive as 0.0. Here a value is left out only when its bits are zero.
//! Cost: prost measures each series and each sample again for every length prefix around
//! it; here a series is measured once and written in one pass, into a buffer of the exact size.

use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint};

use crate::proto::{Label, Sample, TimeSeries, WriteRequest};

/// Field keys (field number << 3 | wire type): 2 is length-delimited, 1 a 64-bit value, 0 a
/// varint.
const TIMESERIES: u8 = 1 << 3 | 2;
const LABELS: u8 = 1 << 3 | 2;
const SAMPLES: u8 = 2 << 3 | 2;
const HISTOGRAMS: u8 = 4 << 3 | 2;
const LABEL_NAME: u8 = 1 << 3 | 2;
const LABEL_VALUE: u8 = 2 << 3 | 2;
const SAMPLE_VALUE: u8 = 1 << 3 | 1;
const SAMPLE_TIMESTAMP: u8 = 2 << 3;

/// The request's protobuf encoding, as any protobuf decoder reads it into the same message
/// (and -0.0 into -0.0).
pub fn encode_write_request(request: &WriteRequest) -> Vec<u8> {
    // A histogram is measured once (prost measures its spans again inside), and kept here for
    // its length prefix.
    let mut histogram_lengths = Vec::new();
    let lengths: Vec<usize> = request
        .timeseries
        .iter()
        .map(|series| series_len(series, &mut histogram_lengths))
        .collect();
    let total = lengths.iter().map(|&n| delimited_len(n)).sum();
    let mut out = Vec::with_capacity(total);
    let mut histogram_lengths = histogram_lengths.into_iter();
    for (series, &len) in request.timeseries.iter().zip(&lengths) {
        out.push(TIMESERIES);
        encode_varint(len as u64, &mut out);
        for label in &series.labels {
            out.push(LABELS);
            encode_varint(label_len(label) as u64, &mut out);
            string(LABEL_NAME, &label.name, &mut out);
            string(LABEL_VALUE, &label.value, &mut out);
        }
        for sample in &series.samples {
            out.push(SAMPLES);
            out.push(sample_len(sample) as u8);
            if sample.value.to_bits() != 0 {
                out.push(SAMPLE_VALUE);
                out.extend_from_slice(&sample.value.to_le_bytes());
            }
            if sample.timestamp != 0 {
                out.push(SAMPLE_TIMESTAMP);
                encode_varint(sample.timestamp as u64, &mut out);
            }
        }
        for (histogram, len) in series.histograms.iter().zip(&mut histogram_lengths) {
            out.push(HISTOGRAMS);
            encode_varint(len as u64, &mut out);
            histogram.encode_raw(&mut out);
        }
    }
    debug_assert_eq!(out.len(), total);
    out
}

/// A length-delimited field's whole size: its key, its length's varint and its body.
fn delimited_len(body: usize) -> usize {
    1 + encoded_len_varint(body as u64) + body
}

/// A series' encoded size; its histograms' sizes are appended to `histogram_lengths`.
fn series_len(series: &TimeSeries, histogram_lengths: &mut Vec<usize>) -> usize {
    let labels: usize = series
        .labels
        .iter()
        .map(|l| delimited_len(label_len(l)))
        .sum();
    // A sample is at most 20 bytes, so its length is one byte.
    let samples: usize = series.samples.iter().map(|s| 2 + sample_len(s)).sum();
    let mut histograms = 0;
    for histogram in &series.histograms {
        let len = histogram.encoded_len();
        histogram_lengths.push(len);
        histograms += delimited_len(len);
    }
    labels + samples + histograms
}

/// Empty strings are left out, as proto3 does.
fn string_len(text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        delimited_len(text.len())
    }
}

fn label_len(label: &Label) -> usize {
    string_len(&label.name) + string_len(&label.value)
}

fn string(key: u8, text: &str, out: &mut Vec<u8>) {
    if !text.is_empty() {
        out.push(key);
        encode_varint(text.len() as u64, out);
        out.extend_from_slice(text.as_bytes());
    }
}

fn sample_len(sample: &Sample) -> usize {
    let value = if sample.value.to_bits() != 0 { 9 } else { 0 };
    let timestamp = match sample.timestamp {
        0 => 0,
        t => 1 + encoded_len_varint(t as u64),
    };
    value + timestamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Histogram;
    use proptest::prelude::*;

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn minus_zero_keeps_its_sign_where_prost_would_drop_it() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![label("__name__", "g")],
                samples: vec![
                    Sample {
                        value: -0.0,
                        timestamp: 1,
                    },
                    Sample {
                        value: 0.0,
                        timestamp: 2,
                    },
                ],
                histograms: Vec::new(),
            }],
        };
        let decoded = WriteRequest::decode(encode_write_request(&request).as_slice()).unwrap();
        let bits: Vec<u64> = decoded.timeseries[0]
            .samples
            .iter()
            .map(|s| s.value.to_bits())
            .collect();
        assert_eq!(bits, [(-0.0f64).to_bits(), 0]);
        // What prost does with it: the reason for this encoder.
        let by_prost = WriteRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(by_prost.timeseries[0].samples[0].value.to_bits(), 0);
    }

    proptest! {
        /// Whatever the request, a protobuf decoder reads back the same message, bit for bit,
        /// and where no value is -0.0 the bytes are prost's own.
        #[test]
        fn decodes_to_the_same_request_and_matches_prost_byte_for_byte(
            series in proptest::collection::vec(
                (
                    proptest::collection::vec(("[a-z_]{0,12}", "\\PC{0,40}"), 0..6),
                    proptest::collection::vec((any::<u64>(), any::<i64>()), 0..30),
                    0usize..3,
                ),
                0..8,
            )
        ) {
            let request = WriteRequest {
                timeseries: series
                    .into_iter()
                    .map(|(labels, samples, histograms)| TimeSeries {
                        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
                        samples: samples
                            .iter()
                            .map(|&(bits, timestamp)| Sample {
                                value: f64::from_bits(bits),
                                timestamp,
                            })
                            .collect(),
                        histograms: (0..histograms)
                            .map(|i| Histogram {
                                timestamp: i as i64,
                                sum: i as f64,
                                ..Histogram::default()
                            })
                            .collect(),
                    })
                    .collect(),
            };
            let encoded = encode_write_request(&request);
            let decoded = WriteRequest::decode(encoded.as_slice()).unwrap();
            prop_assert_eq!(decoded.timeseries.len(), request.timeseries.len());
            for (got, sent) in decoded.timeseries.iter().zip(&request.timeseries) {
                prop_assert_eq!(&got.labels, &sent.labels);
                prop_assert_eq!(&got.histograms, &sent.histograms);
                let bits = |s: &[Sample]| -> Vec<(u64, i64)> {
                    s.iter().map(|s| (s.value.to_bits(), s.timestamp)).collect()
                };
                prop_assert_eq!(bits(&got.samples), bits(&sent.samples));
            }
            let minus_zero = request
                .timeseries
                .iter()
                .flat_map(|t| &t.samples)
                .any(|s| s.value.to_bits() == (-0.0f64).to_bits());
            if !minus_zero {
                prop_assert_eq!(encoded, request.encode_to_vec());
            }
        }
    }
}
