//! Encoder for native histogram chunks, the inverse of `decode::histogram`: what a block holds
//! for histogram samples a window's edge (or an overlap) made us decode, since a chunk cut
//! by the window cannot be copied. Written from the format (prometheus/tsdb/chunkenc/
//! histogram.go, float_histogram.go, histogram_meta.go) and tested against the decoder here
//! and against a real Prometheus in tests/native_histograms.rs.
//!
//! A chunk holds one layout (schema, zero threshold, spans, custom bounds) and one kind
//! (integer or float; counter or gauge). Prometheus' appender recodes a chunk when buckets
//! appear; this one starts another chunk instead, which readers take the same way. The reset
//! hint of every sample survives: a chunk's first sample carries it in the header, and a
//! sample whose hint is not "no reset" (a counter reset, or unknown) starts a chunk.

use super::bits::{BitWriter, XorState};
use super::xor::SAMPLES_PER_CHUNK;
use crate::decode::histogram::STALE_NAN;
use crate::proto::{
    BucketSpan, Histogram,
    histogram::{Count, ResetHint, ZeroCount},
};

/// The custom-buckets schema, whose chunks carry their bucket bounds in the layout.
const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// The header's top two bits (histogram_meta.go's CounterResetHeader).
const HEADER_RESET: u8 = 0b1000_0000;
const HEADER_NO_RESET: u8 = 0b0100_0000;
const HEADER_GAUGE: u8 = 0b1100_0000;
const HEADER_UNKNOWN: u8 = 0;

/// A histogram sample the chunk format cannot hold as it is.
#[derive(Debug, PartialEq)]
pub struct Unencodable(pub &'static str);

/// One histogram chunk being appended to, samples in strictly increasing timestamp order.
#[derive(Debug, Clone)]
pub struct HistogramChunk {
    bits: BitWriter,
    float: bool,
    gauge: bool,
    layout: Layout,
    count: u16,
    min_t: i64,
    t: i64,
    t_delta: i64,
    fields: Fields,
}

/// What every sample of a chunk shares, as its first sample gave it.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    schema: i32,
    zero_threshold: u64,
    positive: Vec<BucketSpan>,
    negative: Vec<BucketSpan>,
    custom_values: Vec<u64>,
}

impl Layout {
    fn of(h: &Histogram) -> Layout {
        Layout {
            schema: h.schema,
            zero_threshold: h.zero_threshold.to_bits(),
            positive: h.positive_spans.clone(),
            negative: h.negative_spans.clone(),
            custom_values: h.custom_values.iter().map(|v| v.to_bits()).collect(),
        }
    }

    fn matches(&self, h: &Histogram) -> bool {
        self.schema == h.schema
            && self.zero_threshold == h.zero_threshold.to_bits()
            && self.positive == h.positive_spans
            && self.negative == h.negative_spans
            && self.custom_values.len() == h.custom_values.len()
            && (self.custom_values.iter())
                .zip(&h.custom_values)
                .all(|(a, b)| *a == b.to_bits())
    }

    fn write(&self, w: &mut BitWriter) {
        // putZeroThreshold: 0, or 2^(b-244) for b in 1..=253 as the byte b, or 255 and the bits.
        let exponent = (self.zero_threshold >> 52) as i64 - 1023;
        if self.zero_threshold == 0 {
            w.write(0, 8);
        } else if self.zero_threshold & ((1 << 52) - 1) == 0 && (-243..=9).contains(&exponent) {
            w.write((exponent + 244) as u64, 8);
        } else {
            w.write(255, 8);
            w.write(self.zero_threshold, 64);
        }
        w.varbit_int(i64::from(self.schema));
        for spans in [&self.positive, &self.negative] {
            w.varbit_uint(spans.len() as u64);
            for s in spans {
                w.varbit_uint(u64::from(s.length));
                w.varbit_int(i64::from(s.offset));
            }
        }
        if self.schema == CUSTOM_BUCKETS_SCHEMA {
            w.varbit_uint(self.custom_values.len() as u64);
            for &bits in &self.custom_values {
                // Multiples of 0.001 up to 33554.43 as 1000x+1 (putCustomBound), when that
                // reads back to the same bits; any other bound as 0 and its raw bits.
                let bound = f64::from_bits(bits);
                let scaled = (bound * 1000.0).round();
                if (0.0..=33_554_430.0).contains(&scaled) && (scaled / 1000.0).to_bits() == bits {
                    w.varbit_uint(scaled as u64 + 1);
                } else {
                    w.varbit_uint(0);
                    w.write(bits, 64);
                }
            }
        }
    }

    fn buckets(spans: &[BucketSpan]) -> usize {
        spans.iter().map(|s| s.length as usize).sum()
    }
}

/// The per-sample fields as the previous sample left them.
#[derive(Debug, Clone)]
enum Fields {
    /// Integer histograms: count, zero count and buckets (deltas between neighbours) as
    /// raw values, deltas, then deltas of deltas; the sum XOR-compressed.
    Int {
        count: i64,
        zero: i64,
        count_delta: i64,
        zero_delta: i64,
        sum: u64,
        sum_xor: XorState,
        buckets: Vec<i64>,
        bucket_deltas: Vec<i64>,
    },
    /// Float histograms: count, zero count, sum and buckets, each XOR-compressed.
    Float {
        values: Vec<u64>,
        states: Vec<XorState>,
    },
}

fn is_float(h: &Histogram) -> bool {
    matches!(h.count, Some(Count::CountFloat(_)))
}

fn is_stale(h: &Histogram) -> bool {
    h.sum.to_bits() == STALE_NAN
}

fn int_fields(h: &Histogram) -> (i64, i64) {
    let count = match h.count {
        Some(Count::CountInt(n)) => n as i64,
        _ => 0,
    };
    let zero = match h.zero_count {
        Some(ZeroCount::ZeroCountInt(n)) => n as i64,
        _ => 0,
    };
    (count, zero)
}

/// A float histogram's fields in the order the chunk holds them.
fn float_fields(h: &Histogram) -> impl Iterator<Item = u64> + '_ {
    let count = match h.count {
        Some(Count::CountFloat(n)) => n,
        _ => 0.0,
    };
    let zero = match h.zero_count {
        Some(ZeroCount::ZeroCountFloat(n)) => n,
        _ => 0.0,
    };
    [count, zero, h.sum]
        .into_iter()
        .chain(h.positive_counts.iter().copied())
        .chain(h.negative_counts.iter().copied())
        .map(f64::to_bits)
}

impl HistogramChunk {
    /// A chunk whose first sample is `h`; its header tells readers `h`'s reset hint.
    pub fn start(h: &Histogram) -> Result<Self, Unencodable> {
        let float = is_float(h);
        // A stale marker carries no buckets and an empty layout (Prometheus writes it so).
        let stale = is_stale(h);
        let layout = match stale {
            true => Layout::of(&Histogram::default()),
            false => Layout::of(h),
        };
        if !stale {
            check_buckets(h, float)?;
        }
        let gauge = h.reset_hint == ResetHint::Gauge as i32;
        let header = match ResetHint::try_from(h.reset_hint) {
            Ok(ResetHint::Gauge) => HEADER_GAUGE,
            Ok(ResetHint::Yes) => HEADER_RESET,
            Ok(ResetHint::No) => HEADER_NO_RESET,
            _ => HEADER_UNKNOWN,
        };
        let mut bits = BitWriter::with_header(3);
        bits.header_mut()[2] = header;
        layout.write(&mut bits);
        bits.varbit_int(h.timestamp);
        let fields = if float {
            let values: Vec<u64> = match stale {
                true => vec![0, 0, STALE_NAN],
                false => float_fields(h).collect(),
            };
            for &v in &values {
                bits.write(v, 64);
            }
            let states = vec![XorState::default(); values.len()];
            Fields::Float { values, states }
        } else {
            let (count, zero) = if stale { (0, 0) } else { int_fields(h) };
            bits.varbit_uint(count as u64);
            bits.varbit_uint(zero as u64);
            bits.write(h.sum.to_bits(), 64);
            let buckets: Vec<i64> = match stale {
                true => Vec::new(),
                false => h
                    .positive_deltas
                    .iter()
                    .chain(&h.negative_deltas)
                    .copied()
                    .collect(),
            };
            for &b in &buckets {
                bits.varbit_int(b);
            }
            Fields::Int {
                count,
                zero,
                count_delta: 0,
                zero_delta: 0,
                sum: h.sum.to_bits(),
                sum_xor: XorState::default(),
                bucket_deltas: vec![0; buckets.len()],
                buckets,
            }
        };
        let mut chunk = HistogramChunk {
            bits,
            float,
            gauge,
            layout,
            count: 1,
            min_t: h.timestamp,
            t: h.timestamp,
            t_delta: 0,
            fields,
        };
        chunk.set_count();
        Ok(chunk)
    }

    /// Whether `h` can follow in this chunk: same kind and layout, and nothing the header of
    /// a new chunk must say (a counter reset, an unknown one, a change between counter and
    /// gauge). A stale marker follows anything of its kind.
    pub fn takes(&self, h: &Histogram) -> bool {
        if self.count >= SAMPLES_PER_CHUNK || is_float(h) != self.float {
            return false;
        }
        if is_stale(h) {
            return true;
        }
        let hint_follows = match self.gauge {
            true => h.reset_hint == ResetHint::Gauge as i32,
            false => h.reset_hint == ResetHint::No as i32,
        };
        hint_follows && self.layout.matches(h) && check_buckets(h, self.float).is_ok()
    }

    /// Appends `h`, which `takes` accepted, after the last sample.
    pub fn append(&mut self, h: &Histogram) {
        let t_delta = h.timestamp.wrapping_sub(self.t);
        self.bits.varbit_int(t_delta.wrapping_sub(self.t_delta));
        let stale = is_stale(h);
        match &mut self.fields {
            Fields::Int {
                count,
                zero,
                count_delta,
                zero_delta,
                sum,
                sum_xor,
                buckets,
                bucket_deltas,
            } => {
                let (new_count, new_zero) = if stale { (0, 0) } else { int_fields(h) };
                let (d_count, d_zero) =
                    (new_count.wrapping_sub(*count), new_zero.wrapping_sub(*zero));
                self.bits.varbit_int(d_count.wrapping_sub(*count_delta));
                self.bits.varbit_int(d_zero.wrapping_sub(*zero_delta));
                self.bits.xor(*sum, h.sum.to_bits(), sum_xor);
                (*count, *zero, *count_delta, *zero_delta) = (new_count, new_zero, d_count, d_zero);
                *sum = h.sum.to_bits();
                // A stale marker writes no buckets and leaves their state as it was.
                if !stale {
                    let now = h.positive_deltas.iter().chain(&h.negative_deltas);
                    for ((b, last), delta) in now.zip(buckets.iter_mut()).zip(bucket_deltas) {
                        let d = b.wrapping_sub(*last);
                        self.bits.varbit_int(d.wrapping_sub(*delta));
                        (*delta, *last) = (d, *b);
                    }
                }
            }
            Fields::Float { values, states } => {
                let now: Vec<u64> = match stale {
                    true => vec![0, 0, STALE_NAN],
                    false => float_fields(h).collect(),
                };
                for ((v, last), state) in now.into_iter().zip(values.iter_mut()).zip(states) {
                    self.bits.xor(*last, v, state);
                    *last = v;
                }
            }
        }
        self.t_delta = t_delta;
        self.t = h.timestamp;
        self.count += 1;
        self.set_count();
    }

    fn set_count(&mut self) {
        self.bits.header_mut()[..2].copy_from_slice(&self.count.to_be_bytes());
    }

    /// The chunk's encoding in the chunk files: histogram 2, float histogram 3.
    pub fn encoding(&self) -> u8 {
        if self.float { 3 } else { 2 }
    }

    pub fn bytes(&self) -> &[u8] {
        self.bits.bytes()
    }

    pub fn min_time(&self) -> i64 {
        self.min_t
    }

    pub fn max_time(&self) -> i64 {
        self.t
    }
}

/// Buckets as many as the spans say: the chunk stores the spans once and the buckets of
/// every sample, so a sample that disagrees would be read back with other buckets.
fn check_buckets(h: &Histogram, float: bool) -> Result<(), Unencodable> {
    let (positive, negative) = match float {
        true => (h.positive_counts.len(), h.negative_counts.len()),
        false => (h.positive_deltas.len(), h.negative_deltas.len()),
    };
    let other_kind = match float {
        true => h.positive_deltas.len() + h.negative_deltas.len(),
        false => h.positive_counts.len() + h.negative_counts.len(),
    };
    if positive != Layout::buckets(&h.positive_spans)
        || negative != Layout::buckets(&h.negative_spans)
        || other_kind != 0
    {
        return Err(Unencodable("its buckets are not as many as its spans say"));
    }
    Ok(())
}

/// One chunk of `samples` (which must share a chunk) with the header byte `flags`, for the
/// decoders' tests.
#[cfg(test)]
pub(crate) fn test_chunk(flags: u8, samples: &[Histogram]) -> Vec<u8> {
    let mut chunk = HistogramChunk::start(&samples[0]).expect("a valid first sample");
    for h in &samples[1..] {
        assert!(chunk.takes(h), "{h:?} does not follow in one chunk");
        chunk.append(h);
    }
    let mut bytes = chunk.bytes().to_vec();
    bytes[2] = flags;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::histogram::decode_histograms;
    use proptest::prelude::*;
    use prost::Message;

    /// Encodes `samples` into as many chunks as they need; what each chunk decodes to.
    fn round_trip(samples: &[Histogram]) -> (Vec<Histogram>, usize) {
        let mut chunks: Vec<HistogramChunk> = Vec::new();
        for h in samples {
            match chunks.last_mut() {
                Some(c) if c.takes(h) => c.append(h),
                _ => chunks.push(HistogramChunk::start(h).unwrap()),
            }
        }
        let mut all = Vec::new();
        let mut out = Vec::new();
        for c in &chunks {
            decode_histograms(c.bytes(), c.float, &mut out).unwrap();
            assert_eq!(
                (c.min_time(), c.max_time()),
                (out[0].timestamp, out[out.len() - 1].timestamp)
            );
            all.append(&mut out);
        }
        (all, chunks.len())
    }

    fn spans(list: &[(i32, u32)]) -> Vec<BucketSpan> {
        list.iter()
            .map(|&(offset, length)| BucketSpan { offset, length })
            .collect()
    }

    /// What the decoder gives for a stale marker.
    fn stale(t: i64, float: bool) -> Histogram {
        Histogram {
            count: Some(match float {
                true => Count::CountFloat(0.0),
                false => Count::CountInt(0),
            }),
            zero_count: Some(match float {
                true => ZeroCount::ZeroCountFloat(0.0),
                false => ZeroCount::ZeroCountInt(0),
            }),
            sum: f64::from_bits(STALE_NAN),
            timestamp: t,
            ..Histogram::default()
        }
    }

    /// Every field equal, bit for bit, and the hints readers act on: a counter reset and a
    /// gauge. "No reset" and "unknown" are one to a reader (Prometheus reads a chunk's first
    /// sample as "unknown" unless the chunk began at a reset: the chunk before it may be gone).
    fn same(a: &[Histogram], b: &[Histogram]) -> Result<(), TestCaseError> {
        let acted_on = |h: &Histogram| {
            let mut h = h.clone();
            if h.reset_hint == ResetHint::No as i32 {
                h.reset_hint = ResetHint::Unknown as i32;
            }
            h.encode_to_vec()
        };
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            prop_assert_eq!(acted_on(x), acted_on(y), "{:?}\n{:?}", x, y);
        }
        Ok(())
    }

    /// A histogram of either kind with arbitrary fields, one of a few layouts, and the hint a
    /// decoder gives (any hint starts a chunk; "no" follows one).
    fn histogram() -> impl Strategy<Value = (u8, bool, u8, u64, u64, u64, [i64; 3], u8)> {
        (
            0u8..3,
            any::<bool>(),
            0u8..4,
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<[i64; 3]>(),
            0u8..12,
        )
    }

    fn build(
        t: i64,
        (layout, float, hint, count, zero, sum, buckets, special): (
            u8,
            bool,
            u8,
            u64,
            u64,
            u64,
            [i64; 3],
            u8,
        ),
    ) -> Histogram {
        if special == 0 {
            return stale(t, float);
        }
        // Small or arbitrary values: the narrow widths and the wide ones.
        let small = special > 4;
        let (count, zero) = if small {
            (count % 100, zero % 10)
        } else {
            (count, zero)
        };
        let buckets = buckets.map(|b| if small { b % 50 } else { b });
        let (positive_spans, negative_spans, schema, zero_threshold, custom_values) = match layout {
            0 => (
                spans(&[(-2, 2)]),
                spans(&[(1, 1)]),
                3,
                2f64.powi(-128),
                vec![],
            ),
            1 => (spans(&[(0, 1), (5, 2)]), vec![], -4, 0.0, vec![]),
            _ => (
                spans(&[(0, 3)]),
                vec![],
                CUSTOM_BUCKETS_SCHEMA,
                0.0,
                vec![0.5, 33_554.43, 1e9],
            ),
        };
        // Every layout has three buckets.
        let all = buckets.to_vec();
        let (positive, negative) = match layout {
            0 => (all[..2].to_vec(), all[2..].to_vec()),
            _ => (all, vec![]),
        };
        let mut h = Histogram {
            sum: f64::from_bits(sum),
            schema,
            zero_threshold,
            positive_spans,
            negative_spans,
            custom_values,
            reset_hint: [
                ResetHint::Unknown,
                ResetHint::Yes,
                ResetHint::No,
                ResetHint::Gauge,
            ][usize::from(hint)] as i32,
            timestamp: t,
            ..Histogram::default()
        };
        if is_stale(&h) {
            h.sum = 1.0;
        }
        if float {
            h.count = Some(Count::CountFloat(f64::from_bits(count)));
            h.zero_count = Some(ZeroCount::ZeroCountFloat(f64::from_bits(zero)));
            h.positive_counts = positive.iter().map(|&b| f64::from_bits(b as u64)).collect();
            h.negative_counts = negative.iter().map(|&b| f64::from_bits(b as u64)).collect();
        } else {
            h.count = Some(Count::CountInt(count));
            h.zero_count = Some(ZeroCount::ZeroCountInt(zero));
            h.positive_deltas = positive;
            h.negative_deltas = negative;
        }
        h
    }

    proptest! {
        #[test]
        fn every_sample_decodes_to_the_same_fields_and_hint(
            start in -1i64 << 40..1i64 << 42,
            steps in prop::collection::vec((1i64..1i64 << 36, 0u8..3, histogram()), 1..300),
        ) {
            let mut t = start;
            let mut samples = Vec::new();
            for (step, kind, h) in steps {
                samples.push(build(t, h));
                t += if kind == 0 { step } else { 15_000 + (step % 3) - 1 };
            }
            let (decoded, _) = round_trip(&samples);
            // Within a chunk a decoder says "no reset" for every sample after the first; the
            // encoder starts a chunk for any other hint, so a reset or gauge comes back as such.
            same(&decoded, &samples)?;
        }
    }

    #[test]
    fn a_run_of_one_layout_fills_chunks_of_120() {
        let samples: Vec<Histogram> = (0..300)
            .map(|i| {
                let mut h = build(
                    i * 15_000,
                    (
                        0,
                        false,
                        2,
                        10 + i as u64,
                        1,
                        1.5f64.to_bits(),
                        [1, 2, 3],
                        5,
                    ),
                );
                h.sum = i as f64;
                h
            })
            .collect();
        let (decoded, chunks) = round_trip(&samples);
        assert_eq!(chunks, 3);
        let unknown: Vec<usize> = (decoded.iter().enumerate())
            .filter(|(_, h)| h.reset_hint != ResetHint::No as i32)
            .map(|(i, _)| i)
            .collect();
        // Each chunk's first sample reads as "unknown", as in a block Prometheus wrote.
        assert_eq!(unknown, [0, 120, 240]);
    }

    #[test]
    fn buckets_that_disagree_with_the_spans_are_refused() {
        let mut h = build(0, (0, false, 2, 1, 1, 0, [1, 2, 3], 5));
        h.positive_deltas.pop();
        assert!(HistogramChunk::start(&h).is_err());
        let good = build(0, (0, false, 2, 1, 1, 0, [1, 2, 3], 5));
        let chunk = HistogramChunk::start(&good).unwrap();
        h.timestamp = 1;
        assert!(!chunk.takes(&h));
    }
}
