//! The decoders' own tests (decode/), on chunks written by this crate's encoders and bit
//! writer: here, beside the encoders, so that decode/ depends on nothing above it. The golden
//! chunks of a real Prometheus are tested in tests/golden_chunks.rs.

mod xor {
    use crate::decode::xor::*;

    use crate::blocks::bits::BitWriter;

    /// The encoder blocks are written with (`blocks::xor`), written from the format
    /// description; the golden chunks from a real Prometheus are tested in
    /// tests/golden_chunks.rs, and blocks it writes are read by promtool in tests/blocks.rs.
    fn encode(samples: &[(i64, u64)]) -> Vec<u8> {
        let mut chunk = crate::blocks::xor::XorChunk::default();
        for &(t, v) in samples {
            chunk.append(t, v);
        }
        chunk.bytes().to_vec()
    }

    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    #[test]
    fn round_trips_every_timestamp_and_value_branch() {
        let mut samples = vec![(-5_000i64, 1.0f64.to_bits())];
        let mut t = -5_000;
        let deltas = [
            15_000, 15_000, 15_001, 14_000, 30_000, 120_000, 1_000_000, 86_400_000, 1, 15_000,
        ];
        let values = [
            1.0,
            2.5,
            2.5,
            -3.0e300,
            f64::MIN_POSITIVE,
            0.0,
            -0.0,
            f64::INFINITY,
            7.0,
            7.000001,
        ];
        for (d, v) in deltas.iter().zip(values) {
            t += d;
            samples.push((t, v.to_bits()));
        }
        samples.push((t + 15_000, STALE_NAN));
        samples.push((t + 30_000, 42.0f64.to_bits()));
        samples.push((t + 45_000, u64::MAX));
        let mut out = Vec::new();
        decode_xor(&encode(&samples), &mut out).unwrap();
        assert_eq!(out, samples);
    }

    #[test]
    fn a_single_sample_and_an_empty_chunk_decode() {
        let mut out = vec![(1, 1)];
        decode_xor(&[0, 0], &mut out).unwrap();
        assert!(out.is_empty());
        let one = [(1_700_000_000_000i64, STALE_NAN)];
        decode_xor(&encode(&one), &mut out).unwrap();
        assert_eq!(out, one);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let samples: Vec<_> = (0..50)
            .map(|i| (i * 15_000 + i % 7, (i as f64 * 1.5).to_bits()))
            .collect();
        let chunk = encode(&samples);
        let mut out = Vec::new();
        for len in 0..chunk.len() - 1 {
            assert!(decode_xor(&chunk[..len], &mut out).is_err(), "len {len}");
        }
    }

    #[test]
    fn impossible_bit_widths_are_rejected() {
        // Two samples; the second's value claims 31 leading and 40 significant bits.
        let mut w = BitWriter::with_header(0);
        w.write(2, 16);
        w.varint(0);
        w.write(0, 64);
        w.varint(1);
        w.write(0b11, 2);
        w.write(31, 5);
        w.write(40, 6);
        w.write(0, 40);
        let err = decode_xor(w.bytes(), &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, ChunkError::BadValueBits { sample: 1, .. }),
            "{err}"
        );
    }
}

mod histogram {
    use crate::blocks::bits::BitWriter;
    use crate::blocks::histogram::test_chunk;
    use crate::decode::histogram::*;
    use crate::decode::xor::ChunkError;
    use crate::proto::{
        BucketSpan, Histogram,
        histogram::{Count, ResetHint, ZeroCount},
    };

    fn spans(list: &[(i32, u32)]) -> Vec<BucketSpan> {
        list.iter()
            .map(|&(offset, length)| BucketSpan { offset, length })
            .collect()
    }

    fn int(t: i64, count: u64, sum: f64, positive: Vec<i64>, negative: Vec<i64>) -> Histogram {
        Histogram {
            count: Some(Count::CountInt(count)),
            zero_count: Some(ZeroCount::ZeroCountInt(count / 7)),
            sum,
            schema: 3,
            zero_threshold: 2f64.powi(-128),
            positive_spans: spans(&[(-2, 2), (3, 1)]),
            negative_spans: spans(&[(0, 2)]),
            positive_deltas: positive,
            negative_deltas: negative,
            reset_hint: ResetHint::No as i32,
            timestamp: t,
            ..Histogram::default()
        }
    }

    fn same(a: &[Histogram], b: &[Histogram]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.encode_to_vec(), y.encode_to_vec(), "{x:?}\n{y:?}");
        }
    }

    use prost::Message;

    /// Integer samples with every varbit width in times, counts and buckets, a stale marker,
    /// and a sample after it.
    fn int_samples() -> Vec<Histogram> {
        let mut samples = vec![int(-5_000, 10, 1.5, vec![1, 2, -1], vec![3, 0])];
        let steps = [
            15_000i64,
            15_000,
            15_003,
            14_000,
            300_000,
            86_400_000,
            1,
            15_000,
            1 << 40,
        ];
        let mut t = -5_000;
        for (i, step) in steps.iter().enumerate() {
            t += step;
            let i = i as i64;
            samples.push(int(
                t,
                10 + (i as u64).pow(7),
                1.5 * i as f64,
                vec![1 + i * 1000, 2 - i, -1 + (1 << (i * 6))],
                vec![3 + i, i * i * 50],
            ));
        }
        samples.push(Histogram {
            count: Some(Count::CountInt(0)),
            zero_count: Some(ZeroCount::ZeroCountInt(0)),
            sum: f64::from_bits(STALE_NAN),
            timestamp: t + 15_000,
            ..Histogram::default()
        });
        samples.push(int(t + 30_000, 5, 2.0, vec![1, 1, 1], vec![0, 0]));
        samples
    }

    #[test]
    fn integer_histograms_round_trip_with_every_width_and_a_stale_marker() {
        let samples = int_samples();
        let mut expected = samples.clone();
        // A chunk that began at a counter reset says so on its first sample only.
        expected[0].reset_hint = ResetHint::Yes as i32;
        let mut out = Vec::new();
        decode_histograms(&test_chunk(0b1000_0000, &samples), false, &mut out).unwrap();
        same(&out, &expected);
    }

    #[test]
    fn float_histograms_round_trip_bit_for_bit_and_gauges_say_so() {
        let mut samples = Vec::new();
        for i in 0..20 {
            samples.push(Histogram {
                count: Some(Count::CountFloat(10.5 + i as f64)),
                zero_count: Some(ZeroCount::ZeroCountFloat(0.25 * i as f64)),
                sum: if i == 7 { f64::NAN } else { -3.75 * i as f64 },
                schema: -53,
                zero_threshold: 0.001,
                positive_spans: spans(&[(0, 3)]),
                positive_counts: vec![1.0, 0.0, 1e300 * i as f64],
                custom_values: vec![0.5, 1.0, 33_554.43, 1e9, -1.5],
                reset_hint: ResetHint::Gauge as i32,
                timestamp: 1_700_000_000_000 + i * 60_000 + i % 3,
                ..Histogram::default()
            });
        }
        samples.push(Histogram {
            count: Some(Count::CountFloat(0.0)),
            zero_count: Some(ZeroCount::ZeroCountFloat(0.0)),
            sum: f64::from_bits(STALE_NAN),
            timestamp: 1_700_000_000_000 + 20 * 60_000,
            ..Histogram::default()
        });
        let mut out = Vec::new();
        decode_histograms(&test_chunk(0b1100_0000, &samples), true, &mut out).unwrap();
        same(&out, &samples);
    }

    #[test]
    fn an_unknown_reset_header_gives_unknown_then_no() {
        let samples = int_samples();
        let mut out = Vec::new();
        decode_histograms(&test_chunk(0, &samples[..3]), false, &mut out).unwrap();
        let hints: Vec<i32> = out.iter().map(|h| h.reset_hint).collect();
        assert_eq!(
            hints,
            [ResetHint::Unknown, ResetHint::No, ResetHint::No].map(|h| h as i32)
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let samples = int_samples();
        let mut out = Vec::new();
        for (chunk, float) in [
            (test_chunk(0, &samples), false),
            (
                test_chunk(
                    0,
                    &samples
                        .iter()
                        .map(|h| Histogram {
                            count: Some(Count::CountFloat(1.0)),
                            zero_count: Some(ZeroCount::ZeroCountFloat(0.0)),
                            positive_counts: vec![1.0; 3],
                            negative_counts: vec![2.0; 2],
                            positive_deltas: Vec::new(),
                            negative_deltas: Vec::new(),
                            ..h.clone()
                        })
                        .collect::<Vec<_>>(),
                ),
                true,
            ),
        ] {
            decode_histograms(&chunk, float, &mut out).unwrap();
            for len in 0..chunk.len() - 1 {
                assert!(
                    decode_histograms(&chunk[..len], float, &mut out).is_err(),
                    "float {float}, len {len}"
                );
            }
        }
    }

    #[test]
    fn a_layout_claiming_more_buckets_than_bits_is_refused_without_allocating() {
        let mut w = BitWriter::with_header(0);
        w.write(1, 16);
        w.write(0, 8);
        w.write(0, 8); // zero threshold 0
        w.varbit_int(0); // schema
        w.varbit_uint(1); // one positive span ...
        w.varbit_uint(u64::from(u32::MAX)); // ... of 4 billion buckets
        w.varbit_int(0);
        w.varbit_uint(0);
        w.write(0, 64);
        for float in [false, true] {
            let err = decode_histograms(w.bytes(), float, &mut Vec::new()).unwrap_err();
            assert!(matches!(err, ChunkError::Truncated { .. }), "{err}");
        }
    }
}
