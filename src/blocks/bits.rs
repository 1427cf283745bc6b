//! The bit stream chunks are written in (prometheus/tsdb/docs/bstream.md, chunkenc/varbit.go):
//! bits most significant first, "varbit" integers whose leading ones select a width, and the
//! XOR compression of floats shared by XOR and float histogram chunks. The decoders in
//! `decode::` are its inverse; both are tested against each other and against promtool.

/// A growing bit stream after a few header bytes the chunk fills in itself.
#[derive(Debug, Clone)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 means it is full, or there is none).
    bits_in_last: u8,
}

/// The widths a varbit integer may take, selected by 1 to 7 leading ones (8 ones: 64 bits).
const VARBIT_WIDTHS: [u32; 7] = [3, 6, 9, 12, 18, 25, 56];

/// XOR compression's state for one float field: the leading and trailing zeros of the last
/// value written in full, leading 0xff before the first.
#[derive(Debug, Clone, Copy)]
pub struct XorState {
    leading: u8,
    trailing: u8,
}

impl Default for XorState {
    fn default() -> Self {
        XorState {
            leading: 0xff,
            trailing: 0,
        }
    }
}

impl BitWriter {
    /// A stream after `header` zero bytes (a chunk's sample count and flags).
    pub fn with_header(header: usize) -> Self {
        BitWriter {
            bytes: vec![0; header],
            bits_in_last: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The header bytes, for the chunk to fill in.
    pub fn header_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Writes the low `n` bits of `value`, most significant first.
    pub fn write(&mut self, value: u64, n: u32) {
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

    /// An unsigned LEB128 varint, as XOR chunks hold their first timestamp and delta.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write((v & 0x7f) | 0x80, 8);
            v >>= 7;
        }
        self.write(v, 8);
    }

    /// The leading ones that select the `ones`-th width, and the zero that ends them.
    fn width(&mut self, ones: u32) {
        match ones {
            8 => self.write(0xff, 8),
            _ => self.write((1u64 << (ones + 1)) - 2, ones + 1),
        }
    }

    /// Prometheus' putVarbitInt: n bits hold -(2^(n-1)-1) ..= 2^(n-1).
    pub fn varbit_int(&mut self, v: i64) {
        if v == 0 {
            return self.write(0, 1);
        }
        for (i, &n) in VARBIT_WIDTHS.iter().enumerate() {
            if -((1i64 << (n - 1)) - 1) <= v && v <= 1i64 << (n - 1) {
                self.width(i as u32 + 1);
                return self.write(v as u64 & ((1u64 << n) - 1), n);
            }
        }
        self.width(8);
        self.write(v as u64, 64);
    }

    /// Prometheus' putVarbitUint.
    pub fn varbit_uint(&mut self, v: u64) {
        if v == 0 {
            return self.write(0, 1);
        }
        for (i, &n) in VARBIT_WIDTHS.iter().enumerate() {
            if v < 1u64 << n {
                self.width(i as u32 + 1);
                return self.write(v, n);
            }
        }
        self.width(8);
        self.write(v, 64);
    }

    /// One value XOR-compressed against the one before it.
    pub fn xor(&mut self, previous: u64, value: u64, state: &mut XorState) {
        let xor = value ^ previous;
        if xor == 0 {
            return self.write(0, 1);
        }
        self.write(1, 1);
        // Five bits hold the leading zeros, so they are counted up to 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if state.leading != 0xff && leading >= state.leading && trailing >= state.trailing {
            self.write(0, 1);
            let significant = 64 - u32::from(state.leading) - u32::from(state.trailing);
            self.write(xor >> state.trailing, significant);
            return;
        }
        *state = XorState { leading, trailing };
        let significant = 64 - u32::from(leading) - u32::from(trailing);
        self.write(1, 1);
        self.write(u64::from(leading), 5);
        // 64 significant bits do not fit in six; they are written as 0 (0 itself never
        // occurs: a zero XOR took the branch above).
        self.write(u64::from(significant) & 63, 6);
        self.write(xor >> trailing, significant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varbits_take_the_narrowest_width_prometheus_gives_them() {
        // (value, bits written): 1 bit for zero, then the prefix and the width.
        for (v, bits) in [
            (0i64, 1usize),
            (4, 5),
            (-3, 5),
            (5, 9),
            (-4, 9),
            (32, 9),
            (256, 13),
            (2048, 17),
            (131_072, 24),
            (16_777_216, 32),
            (1 << 55, 64),
            (i64::MIN, 72),
        ] {
            let mut w = BitWriter::with_header(0);
            w.varbit_int(v);
            w.write(1, 1);
            // The marker bit after the value lands at `bits`.
            let total = w.bytes().len() * 8 - usize::from((8 - w.bits_in_last) % 8);
            assert_eq!(total - 1, bits, "{v}");
        }
    }
}
