//! A bit writer for the decoders' tests: chunks encoded from the format descriptions alone
//! (Prometheus' docs/bstream.md and tsdb/chunkenc), so every branch of the decoders is reached
//! on inputs built here; golden chunks from a real Prometheus are tested in tests/.

#[derive(Default)]
pub struct BitWriter {
    pub bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    pub fn write(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if (value >> i) & 1 == 1 {
                let last = self.bytes.len() - 1;
                self.bytes[last] |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
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

    fn width(&mut self, ones: u32) {
        let prefix = if ones == 8 {
            0xff
        } else {
            (1u64 << (ones + 1)) - 2
        };
        self.write(prefix, if ones == 8 { 8 } else { ones + 1 });
    }

    pub fn varbit_int(&mut self, v: i64) {
        const WIDTHS: [u32; 7] = [3, 6, 9, 12, 18, 25, 56];
        if v == 0 {
            return self.write(0, 1);
        }
        for (i, n) in WIDTHS.iter().enumerate() {
            if -((1i64 << (n - 1)) - 1) <= v && v <= 1i64 << (n - 1) {
                self.width(i as u32 + 1);
                return self.write(v as u64 & ((1u64 << n) - 1), *n);
            }
        }
        self.width(8);
        self.write(v as u64, 64);
    }

    pub fn varbit_uint(&mut self, v: u64) {
        const WIDTHS: [u32; 7] = [3, 6, 9, 12, 18, 25, 56];
        if v == 0 {
            return self.write(0, 1);
        }
        for (i, n) in WIDTHS.iter().enumerate() {
            if v < 1u64 << n {
                self.width(i as u32 + 1);
                return self.write(v, *n);
            }
        }
        self.width(8);
        self.write(v, 64);
    }

    /// One XOR-compressed value; `state` is (leading, trailing), leading 0xff at first.
    pub fn xor(&mut self, previous: u64, value: u64, state: &mut (u32, u32)) {
        let xor = value ^ previous;
        if xor == 0 {
            return self.write(0, 1);
        }
        self.write(1, 1);
        let lead = xor.leading_zeros().min(31);
        let trail = xor.trailing_zeros();
        let (leading, trailing) = *state;
        if leading != 0xff && lead >= leading && trail >= trailing {
            self.write(0, 1);
            self.write(xor >> trailing, 64 - leading - trailing);
        } else {
            *state = (lead, trail);
            let significant = 64 - lead - trail;
            self.write(1, 1);
            self.write(u64::from(lead), 5);
            self.write(u64::from(significant) & 63, 6);
            self.write(xor >> trail, significant);
        }
    }
}
