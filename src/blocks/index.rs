//! Writes a block's `index` file, format v2 (prometheus/tsdb/docs/format/index.md): symbols,
//! series (each 16-byte aligned, its ID the offset / 16), label indices, postings, their
//! offset tables and the table of contents. Every section carries a CRC32 Castagnoli.
//! The series are given sorted, so the whole file is written in one pass.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use crate::proto::Label;

/// The hasher of the index's and the block builder's maps: they hash every label of every
/// series of a window, where SipHash was a tenth of a block's CPU. foldhash is seeded per
/// process, so crafted label values cannot aim at its collisions.
pub type FastHash = foldhash::fast::RandomState;

/// A chunk as the index refers to it: its time range and where it is in the chunk files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_t: i64,
    pub max_t: i64,
    /// Segment sequence (0 for `000001`) in the high 32 bits, byte offset in the low.
    pub reference: u64,
}

/// A series as the index holds it: labels sorted by name, chunks by time.
#[derive(Clone, Copy)]
pub struct IndexSeries<'a> {
    pub labels: &'a [Label],
    pub chunks: &'a [ChunkMeta],
}

const MAGIC: u32 = 0xBAAA_D700;
const VERSION: u8 = 2;

/// Writes the index of `series` (sorted by labels, as the format requires) to `out`; returns
/// the bytes written. Section by section, in the order of the file.
pub fn write_index<'a, W: Write>(
    out: W,
    series: impl Iterator<Item = IndexSeries<'a>> + Clone,
) -> io::Result<u64> {
    let symbols = Symbols::of(series.clone());
    let mut w = Counting { out, written: 0 };
    w.write_all(&MAGIC.to_be_bytes())?;
    w.write_all(&[VERSION])?;
    let mut body = Vec::new();
    let symbols_at = w.written;
    write_symbols(&mut w, &symbols, &mut body)?;
    w.pad(16)?;
    let series_at = w.written;
    let (postings, all) = write_series(&mut w, series, &symbols, &mut body)?;
    let (label_indices_at, label_table_at) =
        write_label_indices(&mut w, &postings, &symbols, &mut body)?;
    let (postings_at, postings_table_at) = write_postings(&mut w, &postings, &all, &mut body)?;
    // The table of contents.
    body.clear();
    for at in [
        symbols_at,
        series_at,
        label_indices_at,
        label_table_at,
        postings_at,
        postings_table_at,
    ] {
        body.extend(at.to_be_bytes());
    }
    w.write_all(&body)?;
    w.write_all(&crc32c::crc32c(&body).to_be_bytes())?;
    w.flush()?;
    Ok(w.written)
}

/// Every label name and value of a block, sorted, and each one's ID (its place).
struct Symbols<'a> {
    sorted: Vec<&'a str>,
    /// Looked up for every label of every series: hashed, not compared along a tree.
    ids: HashMap<&'a str, u32, FastHash>,
}

impl<'a> Symbols<'a> {
    fn of(series: impl Iterator<Item = IndexSeries<'a>>) -> Self {
        let mut unique: HashSet<&str, FastHash> = HashSet::default();
        for s in series {
            for l in s.labels {
                unique.insert(l.name.as_str());
                unique.insert(l.value.as_str());
            }
        }
        let mut sorted: Vec<&str> = unique.into_iter().collect();
        sorted.sort_unstable();
        let ids = sorted
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();
        Symbols { sorted, ids }
    }
}

fn write_symbols<W: Write>(
    w: &mut Counting<W>,
    symbols: &Symbols,
    body: &mut Vec<u8>,
) -> io::Result<()> {
    body.clear();
    body.extend((symbols.sorted.len() as u32).to_be_bytes());
    for s in &symbols.sorted {
        string(body, s);
    }
    w.section_u32_len(body)
}

/// Each label pair's series IDs, in label order.
type Postings<'a> = Vec<((&'a str, &'a str), Vec<u32>)>;

/// The series, each 16-byte aligned; returns what the postings need of them: each label
/// pair's series IDs, and every series' ID.
fn write_series<'a, W: Write>(
    w: &mut Counting<W>,
    series: impl Iterator<Item = IndexSeries<'a>>,
    symbols: &Symbols,
    body: &mut Vec<u8>,
) -> io::Result<(Postings<'a>, Vec<u32>)> {
    let mut postings: HashMap<(&str, &str), Vec<u32>, FastHash> = HashMap::default();
    let mut all = Vec::new();
    let mut len = Vec::new();
    for s in series {
        w.pad(16)?;
        let id = u32::try_from(w.written / 16)
            .map_err(|_| io::Error::other("the index is over 64 GiB"))?;
        all.push(id);
        body.clear();
        uvarint(body, s.labels.len() as u64);
        for l in s.labels {
            let (name, value) = (l.name.as_str(), l.value.as_str());
            uvarint(body, u64::from(symbols.ids[name]));
            uvarint(body, u64::from(symbols.ids[value]));
            postings.entry((name, value)).or_default().push(id);
        }
        chunk_metas(body, s.chunks);
        len.clear();
        uvarint(&mut len, body.len() as u64);
        w.write_all(&len)?;
        w.write_all(body)?;
        w.write_all(&crc32c::crc32c(body).to_be_bytes())?;
    }
    let mut postings: Postings = postings.into_iter().collect();
    postings.sort_unstable_by_key(|(key, _)| *key);
    Ok((postings, all))
}

/// A series' chunks: the first one's time and reference whole, each next as deltas.
fn chunk_metas(body: &mut Vec<u8>, chunks: &[ChunkMeta]) {
    uvarint(body, chunks.len() as u64);
    let mut previous: Option<ChunkMeta> = None;
    for c in chunks {
        match previous {
            None => {
                varint(body, c.min_t);
                uvarint(body, c.max_t.wrapping_sub(c.min_t) as u64);
                uvarint(body, c.reference);
            }
            Some(p) => {
                uvarint(body, c.min_t.wrapping_sub(p.max_t) as u64);
                uvarint(body, c.max_t.wrapping_sub(c.min_t) as u64);
                varint(body, c.reference.wrapping_sub(p.reference) as i64);
            }
        }
        previous = Some(*c);
    }
}

/// Label indices: no longer read by Prometheus, written as its own writer does, for readers
/// that still look. Each name's values, in order, follow from the postings'. Returns where
/// they and their offset table begin.
fn write_label_indices<W: Write>(
    w: &mut Counting<W>,
    postings: &Postings,
    symbols: &Symbols,
    body: &mut Vec<u8>,
) -> io::Result<(u64, u64)> {
    let mut names: Vec<(&str, Vec<u32>)> = Vec::new();
    for ((name, value), _) in postings {
        match names.last_mut() {
            Some((last, values)) if last == name => values.push(symbols.ids[value]),
            _ => names.push((name, vec![symbols.ids[value]])),
        }
    }
    w.pad(4)?;
    let at = w.written;
    let mut offsets = Vec::new();
    for (name, values) in &names {
        w.pad(4)?;
        offsets.push((*name, w.written));
        body.clear();
        body.extend(1u32.to_be_bytes());
        body.extend((values.len() as u32).to_be_bytes());
        for v in values {
            body.extend(v.to_be_bytes());
        }
        w.section_u32_len(body)?;
    }
    let table_at = w.written;
    offset_table(
        body,
        offsets.iter().map(|(name, at)| ([*name].to_vec(), *at)),
    );
    w.section_u32_len(body)?;
    Ok((at, table_at))
}

/// Postings: every series first, under the empty name and value (what a query of only
/// negative matchers starts from), then each label pair's, in label order. Returns where they
/// and their offset table begin.
fn write_postings<W: Write>(
    w: &mut Counting<W>,
    postings: &Postings,
    all: &[u32],
    body: &mut Vec<u8>,
) -> io::Result<(u64, u64)> {
    w.pad(4)?;
    let at = w.written;
    let mut offsets = Vec::with_capacity(postings.len() + 1);
    let every = std::iter::once((("", ""), all));
    for (key, ids) in every.chain(postings.iter().map(|(k, v)| (*k, v.as_slice()))) {
        w.pad(4)?;
        offsets.push((key, w.written));
        body.clear();
        body.extend((ids.len() as u32).to_be_bytes());
        for id in ids {
            body.extend(id.to_be_bytes());
        }
        w.section_u32_len(body)?;
    }
    let table_at = w.written;
    offset_table(
        body,
        offsets
            .iter()
            .map(|((name, value), at)| ([*name, *value].to_vec(), *at)),
    );
    w.section_u32_len(body)?;
    Ok((at, table_at))
}

/// A writer that knows its offset, which every reference in the index is.
struct Counting<W> {
    out: W,
    written: u64,
}

impl<W: Write> Counting<W> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Zero bytes up to the next multiple of `align` (readers skip them).
    fn pad(&mut self, align: u64) -> io::Result<()> {
        let gap = (align - self.written % align) % align;
        self.write_all(&vec![0; gap as usize])
    }

    /// A section as most are framed: 4-byte length, the body, its CRC.
    fn section_u32_len(&mut self, body: &[u8]) -> io::Result<()> {
        let len = u32::try_from(body.len())
            .map_err(|_| io::Error::other("an index section is over 4 GiB"))?;
        self.write_all(&len.to_be_bytes())?;
        self.write_all(body)?;
        self.write_all(&crc32c::crc32c(body).to_be_bytes())
    }
}

/// The label offset table (keys of one string, the name) or the postings offset table (keys
/// of two, name and value): the entry count, then each entry's string count, strings and
/// offset.
fn offset_table<'a>(
    body: &mut Vec<u8>,
    entries: impl ExactSizeIterator<Item = (Vec<&'a str>, u64)>,
) {
    body.clear();
    body.extend((entries.len() as u32).to_be_bytes());
    for (key, offset) in entries {
        body.push(key.len() as u8);
        for part in key {
            string(body, part);
        }
        uvarint(body, offset);
    }
}

/// A string as the index holds it: its length in bytes, then the bytes.
fn string(out: &mut Vec<u8>, s: &str) {
    uvarint(out, s.len() as u64);
    out.extend(s.as_bytes());
}

pub fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(out: &mut Vec<u8>, v: i64) {
    uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    /// The parts of the format a reader starts from, checked by hand: the header, the table of
    /// contents and its CRC, the symbols. promtool reads whole blocks in tests/blocks.rs.
    #[test]
    fn the_table_of_contents_points_at_checksummed_sections() {
        let a = labels(&[("__name__", "up"), ("job", "a")]);
        let b = labels(&[("__name__", "up"), ("job", "b")]);
        let chunks = [ChunkMeta {
            min_t: 1000,
            max_t: 2000,
            reference: 8,
        }];
        let mut file = Vec::new();
        let series = [&a, &b].map(|l| IndexSeries {
            labels: l,
            chunks: &chunks,
        });
        let written = write_index(&mut file, series.into_iter()).unwrap();
        assert_eq!(written as usize, file.len());
        assert_eq!(&file[..5], &[0xBA, 0xAA, 0xD7, 0x00, 2]);
        let toc = &file[file.len() - 52..];
        assert_eq!(
            crc32c::crc32c(&toc[..48]).to_be_bytes(),
            toc[48..],
            "TOC checksum"
        );
        let at = |i: usize| u64::from_be_bytes(toc[i * 8..i * 8 + 8].try_into().unwrap()) as usize;
        assert_eq!(at(0), 5, "symbols follow the header");
        let len = u32::from_be_bytes(file[5..9].try_into().unwrap()) as usize;
        let body = &file[9..9 + len];
        assert_eq!(crc32c::crc32c(body).to_be_bytes(), file[9 + len..13 + len]);
        // __name__, a, b, job, up: sorted and deduplicated.
        assert_eq!(u32::from_be_bytes(body[..4].try_into().unwrap()), 5);
        assert_eq!(at(1) % 16, 0, "series are 16-byte aligned");
        assert!(at(1) < at(2) && at(2) <= at(3) && at(3) < at(4) && at(4) < at(5));
    }
}
