//! Encoder for Prometheus' XOR chunk encoding, the inverse of `decode::xor`: what a block's
//! chunk files hold for float samples. Written from the format (prometheus/tsdb/chunkenc/xor.go,
//! docs/bstream.md) and tested against the decoder here and against `promtool` in tests/.

/// The samples Prometheus puts in one chunk; readers accept any count up to 65 535, but this is
/// what every tool that reads blocks is tuned for.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// One XOR chunk being appended to: samples in strictly increasing timestamp order.
#[derive(Debug, Clone)]
pub struct XorChunk {
    /// The 2-byte sample count, then the bit stream.
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 means it is full, or there is none).
    bits_in_last: u8,
    count: u16,
    min_t: i64,
    t: i64,
    delta: i64,
    value: u64,
    /// Leading and trailing zeros of the last value written in full; 0xff before the first.
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        XorChunk {
            bytes: vec![0, 0],
            bits_in_last: 0,
            count: 0,
            min_t: 0,
            t: 0,
            delta: 0,
            value: 0,
            leading: 0xff,
            trailing: 0,
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
                self.varint(((t << 1) ^ (t >> 63)) as u64);
                self.write(value, 64);
            }
            1 => {
                self.delta = t.wrapping_sub(self.t);
                self.varint(self.delta as u64);
                self.xor_value(value);
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                self.delta_of_delta(delta.wrapping_sub(self.delta));
                self.delta = delta;
                self.xor_value(value);
            }
        }
        self.t = t;
        self.value = value;
        self.count += 1;
        self.bytes[..2].copy_from_slice(&self.count.to_be_bytes());
    }

    /// The chunk's bytes as a block's chunk file holds them (after the encoding byte).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn delta_of_delta(&mut self, dod: i64) {
        // Prometheus' bitRange: the widths hold -(2^(n-1)-1) ..= 2^(n-1).
        let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1 << (n - 1);
        let mask = |n: u32| dod as u64 & ((1u64 << n) - 1);
        if dod == 0 {
            self.write(0, 1);
        } else if fits(14) {
            self.write(0b10, 2);
            self.write(mask(14), 14);
        } else if fits(17) {
            self.write(0b110, 3);
            self.write(mask(17), 17);
        } else if fits(20) {
            self.write(0b1110, 4);
            self.write(mask(20), 20);
        } else {
            self.write(0b1111, 4);
            self.write(dod as u64, 64);
        }
    }

    fn xor_value(&mut self, value: u64) {
        let xor = value ^ self.value;
        if xor == 0 {
            return self.write(0, 1);
        }
        self.write(1, 1);
        // Five bits hold the leading zeros, so they are counted up to 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.write(0, 1);
            let significant = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.write(xor >> self.trailing, significant);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let significant = 64 - u32::from(leading) - u32::from(trailing);
        self.write(1, 1);
        self.write(u64::from(leading), 5);
        // 64 significant bits do not fit in six; they are written as 0 (0 itself never
        // occurs: a zero XOR took the branch above).
        self.write(u64::from(significant) & 63, 6);
        self.write(xor >> trailing, significant);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write((v & 0x7f) | 0x80, 8);
            v >>= 7;
        }
        self.write(v, 8);
    }

    /// Writes the low `n` bits of `value`, most significant first.
    fn write(&mut self, value: u64, n: u32) {
        let mut left = n;
        while left > 0 {
            if self.bits_in_last == 0 {
                self.bytes.push(0);
            }
            let room = 8 - u32::from(self.bits_in_last);
            let take = room.min(left);
            let shift = left - take;
            let part = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= part << (room - take);
            self.bits_in_last = ((u32::from(self.bits_in_last) + take) % 8) as u8;
            left -= take;
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
