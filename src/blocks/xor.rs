//! Encoder for Prometheus' XOR chunk encoding, the inverse of `decode::xor`: what a block's
//! chunk files hold for float samples. Written from the format (prometheus/tsdb/chunkenc/xor.go,
//! docs/bstream.md) and tested against the decoder here and against `promtool` in tests/.

use super::bits::{BitWriter, XorState};

/// The samples Prometheus puts in one chunk; readers accept any count up to 65 535, but this is
/// what every tool that reads blocks is tuned for.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// One XOR chunk being appended to: samples in strictly increasing timestamp order.
#[derive(Debug, Clone)]
pub struct XorChunk {
    /// The 2-byte sample count, then the bit stream.
    bits: BitWriter,
    count: u16,
    min_t: i64,
    t: i64,
    delta: i64,
    value: u64,
    xor: XorState,
}

impl Default for XorChunk {
    fn default() -> Self {
        XorChunk {
            bits: BitWriter::with_header(2),
            count: 0,
            min_t: 0,
            t: 0,
            delta: 0,
            value: 0,
            xor: XorState::default(),
        }
    }
}

impl XorChunk {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= SAMPLES_PER_CHUNK
    }

    /// The first and last timestamps held (meaningless while empty).
    pub fn min_time(&self) -> i64 {
        self.min_t
    }

    pub fn max_time(&self) -> i64 {
        self.t
    }

    /// Appends a sample; the caller keeps timestamps increasing (a block's reader assumes it).
    pub fn append(&mut self, t: i64, value: u64) {
        match self.count {
            0 => {
                self.min_t = t;
                self.bits.varint(((t << 1) ^ (t >> 63)) as u64);
                self.bits.write(value, 64);
            }
            1 => {
                self.delta = t.wrapping_sub(self.t);
                self.bits.varint(self.delta as u64);
                self.bits.xor(self.value, value, &mut self.xor);
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                self.delta_of_delta(delta.wrapping_sub(self.delta));
                self.delta = delta;
                self.bits.xor(self.value, value, &mut self.xor);
            }
        }
        self.t = t;
        self.value = value;
        self.count += 1;
        self.bits.header_mut()[..2].copy_from_slice(&self.count.to_be_bytes());
    }

    /// The chunk's bytes as a block's chunk file holds them (after the encoding byte).
    pub fn bytes(&self) -> &[u8] {
        self.bits.bytes()
    }

    /// XOR chunks' own widths for timestamps (not varbit's).
    fn delta_of_delta(&mut self, dod: i64) {
        // Prometheus' bitRange: the widths hold -(2^(n-1)-1) ..= 2^(n-1).
        let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1 << (n - 1);
        let mask = |n: u32| dod as u64 & ((1u64 << n) - 1);
        let w = &mut self.bits;
        if dod == 0 {
            w.write(0, 1);
        } else if fits(14) {
            w.write(0b10, 2);
            w.write(mask(14), 14);
        } else if fits(17) {
            w.write(0b110, 3);
            w.write(mask(17), 17);
        } else if fits(20) {
            w.write(0b1110, 4);
            w.write(mask(20), 20);
        } else {
            w.write(0b1111, 4);
            w.write(dod as u64, 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::xor::decode_xor;
    use proptest::prelude::*;

    fn encode(samples: &[(i64, u64)]) -> Vec<u8> {
        let mut chunk = XorChunk::default();
        for &(t, v) in samples {
            chunk.append(t, v);
        }
        chunk.bytes().to_vec()
    }

    proptest! {
        #[test]
        fn what_is_encoded_decodes_to_the_same_bits(
            start in -1i64 << 40..1i64 << 42,
            steps in prop::collection::vec((1i64..1i64 << 36, any::<u64>(), 0u8..4), 1..200),
        ) {
            let mut t = start;
            let mut samples = Vec::new();
            let mut previous = 0u64;
            for (step, bits, kind) in steps {
                // Scrape-like steps and values as well as arbitrary ones.
                let step = if kind == 0 { step } else { 15_000 + (step % 3) - 1 };
                let value = match kind {
                    1 => previous,
                    2 => (f64::from_bits(previous) + 1.0).to_bits(),
                    _ => bits,
                };
                samples.push((t, value));
                previous = value;
                t += step;
            }
            let mut out = Vec::new();
            decode_xor(&encode(&samples), &mut out).unwrap();
            prop_assert_eq!(out, samples);
        }
    }

    #[test]
    fn the_header_counts_the_samples_and_the_times_are_kept() {
        let mut chunk = XorChunk::default();
        assert!(chunk.is_empty());
        for i in 0..120 {
            chunk.append(1_000 + i * 15_000, 0x7ff0_0000_0000_0002);
        }
        assert!(chunk.is_full());
        assert_eq!(&chunk.bytes()[..2], &120u16.to_be_bytes());
        assert_eq!(
            (chunk.min_time(), chunk.max_time()),
            (1_000, 1_000 + 119 * 15_000)
        );
    }
}
