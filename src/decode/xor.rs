//! Decoder for Prometheus' XOR chunk encoding (Gorilla compression; prometheus/tsdb/chunkenc/
//! xor.go and docs/bstream.md): a 2-byte big-endian sample count, then a bit stream holding the
//! first timestamp as a varint and value as raw bits, then delta-of-delta timestamps and
//! XOR-compressed values. Values stay as raw bits so stale markers survive bit-exact.

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq)]
pub enum ChunkError {
    #[error("chunk of {len} bytes is too short for its header")]
    NoHeader { len: usize },
    #[error("chunk ends inside sample {sample} of {count}")]
    Truncated { sample: u16, count: u16 },
    #[error(
        "sample {sample} has {leading} leading and {significant} significant bits, more than 64"
    )]
    BadValueBits {
        sample: u16,
        leading: u8,
        significant: u8,
    },
    #[error("a varint in the chunk runs past 10 bytes")]
    BadVarint,
    #[error("the chunk has encoding {number} ({name}), which this promimport cannot decode; {fix}")]
    UnknownEncoding {
        number: i32,
        name: &'static str,
        fix: &'static str,
    },
}

/// Samples as (timestamp ms, value bits). A reused buffer keeps decoding free of allocations.
pub type RawSamples = Vec<(i64, u64)>;

/// The number of samples a chunk declares; histogram chunks share this header.
pub fn declared_samples(chunk: &[u8]) -> Result<u16, ChunkError> {
    match chunk {
        [hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(ChunkError::NoHeader { len: chunk.len() }),
    }
}

/// Decodes every sample of an XOR chunk into `out` (cleared first).
pub fn decode_xor(chunk: &[u8], out: &mut RawSamples) -> Result<(), ChunkError> {
    out.clear();
    let count = declared_samples(chunk)?;
    out.reserve(usize::from(count));
    let mut bits = BitReader::new(&chunk[2..]);
    let truncated = |sample| move |_| ChunkError::Truncated { sample, count };
    if count == 0 {
        return Ok(());
    }
    let mut t = zigzag(bits.read_uvarint().map_err(truncated(0))?);
    let mut value = bits.read(64).ok_or(()).map_err(truncated(0))?;
    out.push((t, value));
    if count == 1 {
        return Ok(());
    }
    let mut delta = bits.read_uvarint().map_err(truncated(1))?;
    t = t.wrapping_add(delta as i64);
    let mut leading = 0u8;
    let mut trailing = 0u8;
    value = read_value(&mut bits, value, &mut leading, &mut trailing, 1, count)?;
    out.push((t, value));
    for sample in 2..count {
        let dod = read_dod(&mut bits).ok_or(ChunkError::Truncated { sample, count })?;
        delta = (delta as i64).wrapping_add(dod) as u64;
        t = t.wrapping_add(delta as i64);
        value = read_value(&mut bits, value, &mut leading, &mut trailing, sample, count)?;
        out.push((t, value));
    }
    Ok(())
}

/// Delta of delta: `0` for 0, then `10`, `110`, `1110` with 14, 17, 20 bits, `1111` with 64.
fn read_dod(bits: &mut BitReader) -> Option<i64> {
    let size = match bits.leading_ones(4)? {
        0 => return Some(0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => return Some(bits.read(64)? as i64),
    };
    let raw = bits.read(size)?;
    // Negative numbers come back as large unsigned ones (bstream.md): the encoder's range
    // is -(2^(n-1)-1) ..= 2^(n-1), so only values above 2^(n-1) are negative.
    Some(if raw > 1 << (size - 1) {
        raw as i64 - (1 << size)
    } else {
        raw as i64
    })
}

pub(super) fn read_value(
    bits: &mut BitReader,
    previous: u64,
    leading: &mut u8,
    trailing: &mut u8,
    sample: u16,
    count: u16,
) -> Result<u64, ChunkError> {
    let truncated = ChunkError::Truncated { sample, count };
    if bits.read(1).ok_or(truncated)? == 0 {
        return Ok(previous);
    }
    if bits.read(1).ok_or(truncated)? == 1 {
        *leading = bits.read(5).ok_or(truncated)? as u8;
        // 0 significant bits stands for 64: the 6-bit field cannot hold 64 itself.
        let significant = match bits.read(6).ok_or(truncated)? as u8 {
            0 => 64,
            n => n,
        };
        if u16::from(*leading) + u16::from(significant) > 64 {
            return Err(ChunkError::BadValueBits {
                sample,
                leading: *leading,
                significant,
            });
        }
        *trailing = 64 - *leading - significant;
    }
    let significant = 64 - u32::from(*leading) - u32::from(*trailing);
    let xor = bits.read(significant).ok_or(truncated)?;
    // A shift by 64 (all bits significant, none trailing) is fine: trailing is then 0.
    Ok(previous ^ (xor << *trailing))
}

fn zigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads big-endian bit fields of up to 64 bits.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        BitReader { data, position: 0 }
    }

    /// Bits not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.data.len() * 8 - self.position
    }

    /// The next `n` bits (0..=64) as the low bits of a u64, or None past the end.
    pub(super) fn read(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if self.position + n as usize > self.data.len() * 8 {
            return None;
        }
        if n > 56 {
            // One 8-byte load holds at most 57 bits past an arbitrary bit offset.
            let high = self.read(n - 32)?;
            let low = self.read(32)?;
            return Some((high << 32) | low);
        }
        let byte = self.position / 8;
        let offset = (self.position % 8) as u32;
        let word = match self.data.get(byte..byte + 8) {
            // All but a chunk's last 7 bytes: one load, no copy (the hot path of decoding).
            Some(eight) => u64::from_be_bytes(eight.try_into().unwrap_or([0; 8])),
            None => {
                let mut word = [0u8; 8];
                let available = self.data.len() - byte;
                word[..available].copy_from_slice(&self.data[byte..]);
                u64::from_be_bytes(word)
            }
        } << offset;
        self.position += n as usize;
        Some(word >> (64 - n))
    }

    /// Reads a prefix of one bits ended by a zero, at most `max` (1..=8) of them (then with no
    /// zero after): the number of ones, or `None` where the stream ends inside the prefix. One
    /// look at the next bits instead of a read per bit: such prefixes select the widths in both
    /// chunk encodings, before nearly every sample's fields.
    pub(super) fn leading_ones(&mut self, max: u32) -> Option<u32> {
        let available = self.remaining().min(max as usize) as u32;
        if available == 0 {
            return None;
        }
        let start = self.position;
        let window = self.read(available)?;
        self.position = start;
        // The window at the top of a word, inverted: its leading ones become leading zeros,
        // and the bits below it (ones after inverting) end the count.
        let ones = (!(window << (64 - available))).leading_zeros();
        if ones < available {
            self.position += ones as usize + 1;
            Some(ones)
        } else if ones == max {
            self.position += max as usize;
            Some(max)
        } else {
            None
        }
    }

    fn read_uvarint(&mut self) -> Result<u64, ()> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.read(8).ok_or(())?;
            value |= (byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(())
    }
}
