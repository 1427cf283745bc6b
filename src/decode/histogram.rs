//! Decoder for Prometheus' native histogram chunks (prometheus/tsdb/chunkenc/histogram.go,
//! float_histogram.go, histogram_meta.go, varbit.go): a 2-byte sample count and a flags byte
//! whose top two bits say how the chunk began (counter reset, none, gauge, unknown), then the
//! layout of the first sample (zero threshold, schema, positive and negative spans, custom
//! bounds for the custom-buckets schema) and the samples.
//!
//! Integer histograms (encoding 2) store every field as a raw value, then a delta, then deltas
//! of deltas, in "varbit" integers; their buckets are themselves deltas between neighbouring
//! buckets, exactly remote write's `positive_deltas`. Float histograms (encoding 3) store the
//! first sample's fields as raw 64-bit floats and later ones XOR-compressed like XOR chunk
//! values. A stale marker is a sample whose sum is the stale NaN; it carries no buckets.
//! Every float stays bit-exact (the sum, counts and bounds pass through as bits).

use super::xor::{BitReader, ChunkError, read_value};
use crate::proto::{
    BucketSpan, Histogram,
    histogram::{Count, ResetHint, ZeroCount},
};

/// Prometheus' stale marker (model/value/value.go).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// The custom-buckets schema, whose chunks carry their bucket bounds in the layout.
const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// Decodes every sample of an integer (`float == false`) or float histogram chunk into `out`
/// (cleared first), in the order the chunk holds them.
pub fn decode_histograms(
    chunk: &[u8],
    float: bool,
    out: &mut Vec<Histogram>,
) -> Result<(), ChunkError> {
    out.clear();
    let (count, flags, body) = match chunk {
        [hi, lo, flags, body @ ..] => (u16::from_be_bytes([*hi, *lo]), *flags, body),
        _ => return Err(ChunkError::NoHeader { len: chunk.len() }),
    };
    if count == 0 {
        return Ok(());
    }
    let mut bits = BitReader::new(body);
    let mut reader = Reader {
        bits: &mut bits,
        sample: 0,
        count,
    };
    let layout = reader.layout(float)?;
    if float {
        decode_float(&mut reader, &layout, flags, out)
    } else {
        decode_int(&mut reader, &layout, flags, out)
    }
}

struct Layout {
    zero_threshold: f64,
    schema: i32,
    positive: Vec<BucketSpan>,
    negative: Vec<BucketSpan>,
    custom_values: Vec<f64>,
    positive_buckets: usize,
    negative_buckets: usize,
}

struct Reader<'r, 'a> {
    bits: &'r mut BitReader<'a>,
    sample: u16,
    count: u16,
}

impl Reader<'_, '_> {
    fn truncated(&self) -> ChunkError {
        ChunkError::Truncated {
            sample: self.sample,
            count: self.count,
        }
    }

    fn bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        let truncated = self.truncated();
        self.bits.read(n).ok_or(truncated)
    }

    /// The number of leading one bits (at most 8) that select a varbit's width.
    fn varbit_width(&mut self) -> Result<Option<u32>, ChunkError> {
        let truncated = self.truncated();
        Ok(match self.bits.leading_ones(8).ok_or(truncated)? {
            0 => None,
            1 => Some(3),
            2 => Some(6),
            3 => Some(9),
            4 => Some(12),
            5 => Some(18),
            6 => Some(25),
            7 => Some(56),
            _ => Some(64),
        })
    }

    fn varbit_uint(&mut self) -> Result<u64, ChunkError> {
        match self.varbit_width()? {
            None => Ok(0),
            Some(width) => self.bits(width),
        }
    }

    fn varbit_int(&mut self) -> Result<i64, ChunkError> {
        let Some(width) = self.varbit_width()? else {
            return Ok(0);
        };
        let raw = self.bits(width)?;
        // The encoder's range for n bits is -(2^(n-1)-1) ..= 2^(n-1); larger raw values are
        // negative. 64 bits hold the value itself.
        Ok(if width < 64 && raw > 1 << (width - 1) {
            raw as i64 - (1i64 << width)
        } else {
            raw as i64
        })
    }

    fn xor(
        &mut self,
        previous: u64,
        leading: &mut u8,
        trailing: &mut u8,
    ) -> Result<u64, ChunkError> {
        read_value(
            self.bits,
            previous,
            leading,
            trailing,
            self.sample,
            self.count,
        )
    }

    fn layout(&mut self, float: bool) -> Result<Layout, ChunkError> {
        let zero_threshold = match self.bits(8)? {
            0 => 0.0,
            255 => f64::from_bits(self.bits(64)?),
            // A power of two 2^(b-244), stored as its exponent: built from the bits so it is
            // exact (b is 1..=254, so the exponent is a normal one).
            b => f64::from_bits(((b as i64 - 244 + 1023) as u64) << 52),
        };
        let schema = self.varbit_int()? as i32;
        let positive = self.spans()?;
        let negative = self.spans()?;
        let custom_values = if schema == CUSTOM_BUCKETS_SCHEMA {
            self.custom_bounds()?
        } else {
            Vec::new()
        };
        let buckets = |spans: &[BucketSpan]| spans.iter().map(|s| s.length as usize).sum();
        let (positive_buckets, negative_buckets): (usize, usize) =
            (buckets(&positive), buckets(&negative));
        // The first sample stores every bucket in at least one bit (64 for floats): more
        // buckets than bits left is a corrupt layout, refused before anything is allocated.
        let per_bucket = if float { 64 } else { 1 };
        if positive_buckets.saturating_add(negative_buckets) > self.bits.remaining() / per_bucket {
            return Err(self.truncated());
        }
        Ok(Layout {
            zero_threshold,
            schema,
            positive,
            negative,
            custom_values,
            positive_buckets,
            negative_buckets,
        })
    }

    fn spans(&mut self) -> Result<Vec<BucketSpan>, ChunkError> {
        let n = self.varbit_uint()?;
        let mut spans = Vec::new();
        for _ in 0..n {
            // Each span takes at least two bits, so a corrupt count ends at the data's end.
            let length = self.varbit_uint()? as u32;
            let offset = self.varbit_int()? as i32;
            spans.push(BucketSpan { offset, length });
        }
        Ok(spans)
    }

    fn custom_bounds(&mut self) -> Result<Vec<f64>, ChunkError> {
        let n = self.varbit_uint()?;
        let mut bounds = Vec::new();
        for _ in 0..n {
            // Multiples of 0.001 up to 33554.43 are stored as 1000x+1; others as raw bits.
            let bound = match self.varbit_uint()? {
                0 => f64::from_bits(self.bits(64)?),
                b => (b - 1) as f64 / 1000.0,
            };
            bounds.push(bound);
        }
        Ok(bounds)
    }
}

/// The reset hint Prometheus gives a sample: a gauge chunk holds gauges; within a counter
/// chunk only its first sample can follow a reset, as the header says.
fn reset_hint(flags: u8, index: u16) -> ResetHint {
    match flags & 0b1100_0000 {
        0b1100_0000 => ResetHint::Gauge,
        _ if index > 0 => ResetHint::No,
        0b1000_0000 => ResetHint::Yes,
        _ => ResetHint::Unknown,
    }
}

/// What Prometheus returns for a stale marker: the stale sum and nothing else.
fn stale(t: i64, float: bool) -> Histogram {
    Histogram {
        count: Some(if float {
            Count::CountFloat(0.0)
        } else {
            Count::CountInt(0)
        }),
        zero_count: Some(if float {
            ZeroCount::ZeroCountFloat(0.0)
        } else {
            ZeroCount::ZeroCountInt(0)
        }),
        sum: f64::from_bits(STALE_NAN),
        timestamp: t,
        ..Histogram::default()
    }
}

fn sample(layout: &Layout, t: i64, sum: u64, flags: u8, index: u16) -> Histogram {
    Histogram {
        sum: f64::from_bits(sum),
        schema: layout.schema,
        zero_threshold: layout.zero_threshold,
        positive_spans: layout.positive.clone(),
        negative_spans: layout.negative.clone(),
        custom_values: layout.custom_values.clone(),
        reset_hint: reset_hint(flags, index) as i32,
        timestamp: t,
        ..Histogram::default()
    }
}

fn decode_int(
    r: &mut Reader,
    layout: &Layout,
    flags: u8,
    out: &mut Vec<Histogram>,
) -> Result<(), ChunkError> {
    let mut t = r.varbit_int()?;
    let mut count = r.varbit_uint()?;
    let mut zero = r.varbit_uint()?;
    let mut sum = r.bits(64)?;
    let mut positive = Vec::with_capacity(layout.positive_buckets);
    for _ in 0..layout.positive_buckets {
        positive.push(r.varbit_int()?);
    }
    let mut negative = Vec::with_capacity(layout.negative_buckets);
    for _ in 0..layout.negative_buckets {
        negative.push(r.varbit_int()?);
    }
    let (mut t_delta, mut count_delta, mut zero_delta) = (0i64, 0i64, 0i64);
    let mut positive_delta = vec![0i64; positive.len()];
    let mut negative_delta = vec![0i64; negative.len()];
    let (mut leading, mut trailing) = (0u8, 0u8);
    for index in 0..r.count {
        r.sample = index;
        if index > 0 {
            // The second sample's deltas are deltas of deltas from zero.
            t_delta = t_delta.wrapping_add(r.varbit_int()?);
            t = t.wrapping_add(t_delta);
            count_delta = count_delta.wrapping_add(r.varbit_int()?);
            count = (count as i64).wrapping_add(count_delta) as u64;
            zero_delta = zero_delta.wrapping_add(r.varbit_int()?);
            zero = (zero as i64).wrapping_add(zero_delta) as u64;
            sum = r.xor(sum, &mut leading, &mut trailing)?;
            if sum != STALE_NAN {
                for (bucket, delta) in positive.iter_mut().zip(positive_delta.iter_mut()) {
                    *delta = delta.wrapping_add(r.varbit_int()?);
                    *bucket = bucket.wrapping_add(*delta);
                }
                for (bucket, delta) in negative.iter_mut().zip(negative_delta.iter_mut()) {
                    *delta = delta.wrapping_add(r.varbit_int()?);
                    *bucket = bucket.wrapping_add(*delta);
                }
            }
        }
        if sum == STALE_NAN {
            out.push(stale(t, false));
            continue;
        }
        let mut h = sample(layout, t, sum, flags, index);
        h.count = Some(Count::CountInt(count));
        h.zero_count = Some(ZeroCount::ZeroCountInt(zero));
        h.positive_deltas = positive.clone();
        h.negative_deltas = negative.clone();
        out.push(h);
    }
    Ok(())
}

/// XOR state of one float field.
#[derive(Clone, Copy, Default)]
struct XorField {
    bits: u64,
    leading: u8,
    trailing: u8,
}

impl XorField {
    fn read(&mut self, r: &mut Reader) -> Result<(), ChunkError> {
        self.bits = r.xor(self.bits, &mut self.leading, &mut self.trailing)?;
        Ok(())
    }
}

fn decode_float(
    r: &mut Reader,
    layout: &Layout,
    flags: u8,
    out: &mut Vec<Histogram>,
) -> Result<(), ChunkError> {
    let mut t = r.varbit_int()?;
    let raw = |r: &mut Reader| -> Result<XorField, ChunkError> {
        Ok(XorField {
            bits: r.bits(64)?,
            ..XorField::default()
        })
    };
    let mut count = raw(r)?;
    let mut zero = raw(r)?;
    let mut sum = raw(r)?;
    let mut positive = Vec::with_capacity(layout.positive_buckets);
    for _ in 0..layout.positive_buckets {
        positive.push(raw(r)?);
    }
    let mut negative = Vec::with_capacity(layout.negative_buckets);
    for _ in 0..layout.negative_buckets {
        negative.push(raw(r)?);
    }
    let mut t_delta = 0i64;
    for index in 0..r.count {
        r.sample = index;
        if index > 0 {
            t_delta = t_delta.wrapping_add(r.varbit_int()?);
            t = t.wrapping_add(t_delta);
            count.read(r)?;
            zero.read(r)?;
            sum.read(r)?;
            if sum.bits != STALE_NAN {
                for bucket in positive.iter_mut().chain(negative.iter_mut()) {
                    bucket.read(r)?;
                }
            }
        }
        if sum.bits == STALE_NAN {
            out.push(stale(t, true));
            continue;
        }
        let mut h = sample(layout, t, sum.bits, flags, index);
        h.count = Some(Count::CountFloat(f64::from_bits(count.bits)));
        h.zero_count = Some(ZeroCount::ZeroCountFloat(f64::from_bits(zero.bits)));
        h.positive_counts = positive.iter().map(|b| f64::from_bits(b.bits)).collect();
        h.negative_counts = negative.iter().map(|b| f64::from_bits(b.bits)).collect();
        out.push(h);
    }
    Ok(())
}
