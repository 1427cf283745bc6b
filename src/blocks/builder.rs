//! One window's block as it is built: each series' chunks (a float or a histogram chunk open
//! at a time, cut at 120 samples as Prometheus cuts them), written to the chunk segments as
//! they fill, then the index and `meta.json` into the staging directory (`Sealed`), which
//! `target.rs` puts in place.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chunks::{ENCODING_XOR, Segments};
use super::histogram::HistogramChunk;
use super::index::{ChunkMeta, FastHash, IndexSeries, write_index};
use super::meta::{BlockCounts, Meta};
use super::xor::XorChunk;
use super::{BlocksTarget, sync_dir, write_file};
use crate::answer::RejectReason;
use crate::destination::batch::{Batch, RawChunk};
use crate::destination::delivery::{Delivery, Refused};
use crate::error::{Error, Result};
use crate::proto::{Histogram, Label, Sample};
use crate::window::Window;

/// A series' chunks so far, and the chunk being filled.
#[derive(Default)]
struct SeriesChunks {
    chunks: Vec<ChunkMeta>,
    open: Option<OpenChunk>,
}

/// The chunk a series' decoded samples are encoded into: a series may change kind.
enum OpenChunk {
    Xor(XorChunk),
    Histogram(HistogramChunk),
}

impl OpenChunk {
    fn max_time(&self) -> i64 {
        match self {
            OpenChunk::Xor(c) => c.max_time(),
            OpenChunk::Histogram(c) => c.max_time(),
        }
    }
}

impl SeriesChunks {
    /// Writes the chunk being filled, if any.
    fn close_open(&mut self, segments: &mut Segments) -> Result<()> {
        let meta = match self.open.take() {
            None => return Ok(()),
            Some(OpenChunk::Xor(c)) => {
                segments.write(ENCODING_XOR, c.bytes(), c.min_time(), c.max_time())?
            }
            Some(OpenChunk::Histogram(c)) => {
                segments.write(c.encoding(), c.bytes(), c.min_time(), c.max_time())?
            }
        };
        self.chunks.push(meta);
        Ok(())
    }

    /// The time of the series' last sample in the block so far.
    fn last_time(&self) -> Option<i64> {
        match &self.open {
            Some(open) => Some(open.max_time()),
            None => self.chunks.last().map(|c| c.max_t),
        }
    }

    fn append_float(&mut self, s: &Sample, segments: &mut Segments) -> Result<()> {
        match &mut self.open {
            Some(OpenChunk::Xor(c)) if !c.is_full() => c.append(s.timestamp, s.value.to_bits()),
            _ => {
                self.close_open(segments)?;
                let mut c = XorChunk::default();
                c.append(s.timestamp, s.value.to_bits());
                self.open = Some(OpenChunk::Xor(c));
            }
        }
        Ok(())
    }

    /// Appends to the open histogram chunk, or starts one when it cannot follow there.
    fn append_histogram(
        &mut self,
        h: &Histogram,
        segments: &mut Segments,
    ) -> Result<std::result::Result<(), super::histogram::Unencodable>> {
        match &mut self.open {
            Some(OpenChunk::Histogram(c)) if c.takes(h) => c.append(h),
            _ => {
                let c = match HistogramChunk::start(h) {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(e)),
                };
                self.close_open(segments)?;
                self.open = Some(OpenChunk::Histogram(c));
            }
        }
        Ok(Ok(()))
    }
}

fn disordered_in_block(labels: &[Label], samples: u64, histograms: u64) -> Refused {
    Refused {
        reason: RejectReason::DisorderedInBlock,
        samples,
        histograms,
        message: format!(
            "series {} has samples at or before ones already in its block",
            crate::relabel::render(labels)
        ),
    }
}

/// One block being written: chunks go to disk as they fill; what the index needs (labels and
/// chunk references per series) stays in memory, which bounds memory by series, not samples.
pub(super) struct Builder {
    id: ulid::Ulid,
    window: Window,
    staging: PathBuf,
    /// Whether the staging directory becomes the block (a rename in a directory): then every
    /// file is synced before it is renamed. One uploaded to a bucket is read back at once
    /// and deleted; a crash only makes the window run again, so it is not synced.
    durable: bool,
    segments: Segments,
    /// Each series' labels (sorted by name, as the index holds them; shared with the batch
    /// they came in, not copied) and chunks, in the order they came; `index` finds one by its
    /// labels. The index file wants them sorted by labels, which `seal` does once.
    series: Vec<(Arc<[Label]>, SeriesChunks)>,
    index: HashMap<Arc<[Label]>, usize, FastHash>,
    samples: u64,
    /// The labels last added and where their series is: a series arrives chunk after chunk,
    /// and is looked up once, not once a chunk (comparing labels was most of the CPU).
    last_labels: Arc<[Label]>,
    last_series: usize,
}

impl Builder {
    /// How many series the block holds so far.
    pub(super) fn series_count(&self) -> usize {
        self.series.len()
    }

    pub(super) fn start(
        target: &BlocksTarget,
        id: ulid::Ulid,
        window: Window,
        capacity: usize,
    ) -> Result<Self> {
        let staging = target.staging_dir(id);
        // What a worker killed mid-block left behind: never loaded, now replaced.
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|source| Error::WriteFile {
                what: "an unfinished block of an earlier run",
                path: staging.clone(),
                source,
            })?;
        }
        let durable = target.renames_staging();
        let segments = Segments::create(staging.join("chunks"), durable)?;
        Ok(Builder {
            id,
            window,
            staging,
            durable,
            segments,
            series: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, FastHash::default()),
            samples: 0,
            last_labels: Arc::from([]),
            last_series: 0,
        })
    }

    /// Adds a batch: its samples, encoded into the series' open chunk, and the source's whole
    /// chunks, copied as they came, each in its place among them.
    pub(super) fn add(&mut self, batch: Batch) -> Result<Delivery> {
        let mut delivery = Delivery::default();
        let mut chunks = batch.chunks.into_iter().peekable();
        for (position, ts) in batch.request.timeseries.into_iter().enumerate() {
            while let Some(raw) = chunks.next_if(|c| c.position <= position) {
                self.add_chunk(raw, &mut delivery)?;
            }
            self.add_samples(ts, &mut delivery)?;
        }
        for raw in chunks {
            self.add_chunk(raw, &mut delivery)?;
        }
        self.samples += delivery.written;
        Ok(delivery)
    }

    /// Decoded samples (a chunk the window's edge cut, or an overlap), encoded into the
    /// series' open chunk in time order.
    fn add_samples(&mut self, ts: crate::proto::TimeSeries, delivery: &mut Delivery) -> Result<()> {
        if ts.samples.is_empty() && ts.histograms.is_empty() {
            return Ok(());
        }
        let (entry, segments) = self.entry(&ts.labels.into());
        let mut floats = ts.samples.iter().peekable();
        let mut histograms = ts.histograms.iter().peekable();
        let (mut disordered, mut disordered_histograms) = (0, 0);
        let mut unencodable = None;
        loop {
            // Each in time order; a series that changed kind in the window has both.
            let (t, float) = match (floats.peek(), histograms.peek()) {
                (Some(f), Some(h)) if h.timestamp < f.timestamp => (h.timestamp, false),
                (Some(f), _) => (f.timestamp, true),
                (None, Some(h)) => (h.timestamp, false),
                (None, None) => break,
            };
            let in_order = entry.last_time().is_none_or(|last| t > last);
            if float {
                let Some(s) = floats.next() else { break };
                if !in_order {
                    disordered += 1;
                    continue;
                }
                entry.append_float(s, segments)?;
            } else {
                let Some(h) = histograms.next() else { break };
                if !in_order {
                    disordered_histograms += 1;
                    continue;
                }
                if let Err(e) = entry.append_histogram(h, segments)? {
                    let (count, _) = unencodable.get_or_insert((0u64, e));
                    *count += 1;
                    continue;
                }
                delivery.written_histograms += 1;
            }
            delivery.written += 1;
        }
        if disordered + disordered_histograms > 0 {
            delivery.refused.push(disordered_in_block(
                &self.last_labels,
                disordered + disordered_histograms,
                disordered_histograms,
            ));
        }
        if let Some((count, super::histogram::Unencodable(why))) = unencodable {
            delivery.refused.push(Refused {
                reason: RejectReason::InvalidHistogram,
                samples: count,
                histograms: count,
                message: format!(
                    "series {}: a native histogram sample {why}",
                    crate::relabel::render(&self.last_labels)
                ),
            });
        }
        Ok(())
    }

    /// The series' chunks (made on first use) and the segments to write them to.
    fn entry(&mut self, labels: &Arc<[Label]>) -> (&mut SeriesChunks, &mut Segments) {
        let same = self.last_labels.len() == labels.len()
            && (Arc::ptr_eq(labels, &self.last_labels) || *labels == self.last_labels);
        if !same || self.series.is_empty() {
            let next = self.series.len();
            self.last_series = match self.index.entry(labels.clone()) {
                Entry::Occupied(found) => *found.get(),
                Entry::Vacant(place) => {
                    place.insert(next);
                    let sorted = sorted_by_name(labels);
                    self.series.push((sorted, SeriesChunks::default()));
                    next
                }
            };
            self.last_labels = labels.clone();
        }
        (&mut self.series[self.last_series].1, &mut self.segments)
    }

    /// A source's chunk, copied: the chunk file holds the same bytes as the source's block.
    fn add_chunk(&mut self, raw: RawChunk, delivery: &mut Delivery) -> Result<()> {
        let histograms = if raw.histograms { raw.samples } else { 0 };
        let (entry, segments) = self.entry(&raw.labels);
        if entry
            .last_time()
            .is_some_and(|last| raw.chunk.min_time_ms <= last)
        {
            delivery
                .refused
                .push(disordered_in_block(&raw.labels, raw.samples, histograms));
            return Ok(());
        }
        entry.close_open(segments)?;
        // The proto's encodings are the chunk files' (XOR 1, histogram 2, float histogram 3).
        let encoding = u8::try_from(raw.chunk.r#type)
            .map_err(|_| Error::Internal(format!("chunk encoding {}", raw.chunk.r#type)))?;
        entry.chunks.push(segments.write(
            encoding,
            &raw.chunk.data,
            raw.chunk.min_time_ms,
            raw.chunk.max_time_ms,
        )?);
        delivery.written += raw.samples;
        delivery.written_histograms += histograms;
        Ok(())
    }

    /// Writes the last chunks, the index and `meta.json` (last), synced when they are to be
    /// renamed: the block is complete in its staging directory, ready to be put in place.
    pub(super) fn seal(mut self, tenant: Option<&str>) -> Result<Sealed> {
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::WriteFile { what, path, source }
        };
        for (_, entry) in &mut self.series {
            entry.close_open(&mut self.segments)?;
        }
        // Prometheus' label set order: pair by pair, name then value, a shorter set first.
        fn pairs(l: &[Label]) -> impl Iterator<Item = (&String, &String)> {
            l.iter().map(|l| (&l.name, &l.value))
        }
        self.series
            .sort_unstable_by(|a, b| pairs(&a.0).cmp(pairs(&b.0)));
        let chunks: u64 = self.series.iter().map(|(_, s)| s.chunks.len() as u64).sum();
        let segment_files = self.segments.close()?;
        let index_path = self.staging.join("index");
        let file = File::create(&index_path).map_err(io("a block's index", &index_path))?;
        let mut out = BufWriter::new(file);
        let series = self.series.iter().map(|(labels, s)| IndexSeries {
            labels: labels.as_ref(),
            chunks: &s.chunks,
        });
        let index_bytes =
            write_index(&mut out, series).map_err(io("a block's index", &index_path))?;
        let file = out
            .into_inner()
            .map_err(|e| io("a block's index", &index_path)(e.into_error()))?;
        if self.durable {
            file.sync_all()
                .map_err(io("a block's index", &index_path))?;
        }

        let counts = BlockCounts {
            samples: self.samples,
            series: self.series.len() as u64,
            chunks,
        };
        let meta = Meta::new(self.id, self.window, counts, tenant, &segment_files);
        let meta_path = self.staging.join("meta.json");
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Internal(e.to_string()))?;
        write_file(&meta_path, &json, self.durable)
            .map_err(io("a block's meta.json", &meta_path))?;
        if self.durable {
            sync_dir(&self.staging).map_err(io("a block's directory", &self.staging))?;
        }
        let mut files: Vec<String> = segment_files
            .iter()
            .map(|name| format!("chunks/{name}"))
            .collect();
        files.extend(["index".to_string(), "meta.json".to_string()]);
        Ok(Sealed {
            id: self.id.to_string(),
            staging: self.staging,
            files,
            bytes: self.segments.bytes + index_bytes + json.len() as u64,
            samples: self.samples,
        })
    }

    pub(super) fn remove(self) {
        remove_staging(&self.staging);
    }
}

/// Removes a staging directory; one left behind is never loaded, and the next run of its
/// window replaces it.
fn remove_staging(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(path = %dir.display(), error = %e, "could not remove a block's staging directory; no reader loads it, and the next run of its window replaces it");
    }
}

/// A block complete in its staging directory.
pub(crate) struct Sealed {
    pub id: String,
    pub staging: PathBuf,
    /// Its files relative to the block's directory, `meta.json` last.
    pub files: Vec<String>,
    pub bytes: u64,
    /// Its samples, as its meta.json says: compared with a block of the same ID found in place.
    pub samples: u64,
}

impl Sealed {
    /// A block with this ID already in place: the same window of the same import. It holds the
    /// same samples unless the source changed since (samples added to an old window): then it
    /// is neither kept as if it held these nor replaced under a reader, but named.
    pub fn same_as(&self, existing_meta: &[u8], place: &str) -> Result<()> {
        let held = serde_json::from_slice::<serde_json::Value>(existing_meta)
            .ok()
            .and_then(|m| m["stats"]["numSamples"].as_u64());
        match held {
            Some(held) if held == self.samples => Ok(()),
            held => Err(Error::BlockDiffers {
                block: place.to_string(),
                held: held.map_or("an unreadable number of".into(), |n| n.to_string()),
                read: self.samples,
            }),
        }
    }

    /// The block's own files are no longer needed here (placed, or found in place already).
    pub fn remove(&self) {
        remove_staging(&self.staging);
    }
}

/// Labels sorted by name, as the index holds them: what the batcher gives already (relabelling
/// sorts them), so this copies only labels that came otherwise.
fn sorted_by_name(labels: &Arc<[Label]>) -> Arc<[Label]> {
    if labels.is_sorted_by(|a, b| a.name <= b.name) {
        return labels.clone();
    }
    let mut sorted = labels.to_vec();
    sorted.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    sorted.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{BLOCK_RANGE_MS, BucketTls};
    use crate::decode::histogram::decode_histograms;
    use crate::decode::xor::decode_xor;
    use crate::proto::TimeSeries;
    use crate::proto::histogram::{Count, ResetHint, ZeroCount};

    fn histogram(t: i64, count: u64) -> Histogram {
        Histogram {
            count: Some(Count::CountInt(count)),
            zero_count: Some(ZeroCount::ZeroCountInt(0)),
            sum: count as f64,
            schema: 0,
            positive_spans: vec![crate::proto::BucketSpan {
                offset: 0,
                length: 1,
            }],
            positive_deltas: vec![count as i64],
            reset_hint: ResetHint::No as i32,
            timestamp: t,
            ..Histogram::default()
        }
    }

    /// A series that turns from floats to native histograms and back within a window is
    /// written in time order, a chunk of each kind in turn; a sample at or before the last
    /// one written and a histogram no chunk can hold are refused and counted, not written.
    #[test]
    fn a_series_changing_kind_is_written_in_time_order_and_what_cannot_be_is_counted() {
        let dir = std::env::temp_dir().join(format!("promimport-builder-{}", std::process::id()));
        let target = BlocksTarget::parse(
            &format!("file://{}", dir.display()),
            None,
            &BucketTls::default(),
        )
        .unwrap();
        let window = Window {
            start_ms: 0,
            end_ms: BLOCK_RANGE_MS,
        };
        let mut builder = Builder::start(&target, ulid::Ulid::nil(), window, 0).unwrap();
        let labels = vec![Label {
            name: "__name__".into(),
            value: "m".into(),
        }];
        let float = |t: i64| Sample {
            value: t as f64,
            timestamp: t,
        };
        let mut invalid = histogram(35, 1);
        invalid.positive_deltas.clear();
        let series = TimeSeries {
            labels,
            samples: vec![float(10), float(20), float(50), float(60)],
            histograms: vec![
                histogram(30, 1),
                invalid,
                histogram(40, 2),
                histogram(50, 3),
            ],
        };
        let batch = Batch {
            request: crate::proto::WriteRequest {
                timeseries: vec![series],
            },
            samples: 8,
            chunks: Vec::new(),
        };
        let delivery = builder.add(batch).unwrap();
        assert_eq!((delivery.written, delivery.written_histograms), (6, 2));
        let refused: Vec<_> = (delivery.refused.iter())
            .map(|r| (r.reason.clone(), r.samples, r.histograms))
            .collect();
        // The histogram at 50 comes after the float at 50: one of the two is refused.
        assert_eq!(
            refused,
            [
                (RejectReason::DisorderedInBlock, 1, 1),
                (RejectReason::InvalidHistogram, 1, 1)
            ]
        );

        // Three chunks: floats 10-20, histograms 30-40, floats 50-60, in that order.
        let entry = &mut builder.series[0].1;
        entry.close_open(&mut builder.segments).unwrap();
        builder.segments.close().unwrap();
        let file = std::fs::read(builder.staging.join("chunks/000001")).unwrap();
        let mut decoded = Vec::new();
        for meta in &entry.chunks {
            let at = meta.reference as usize;
            let (len, encoding) = (file[at] as usize, file[at + 1]);
            let data = &file[at + 2..at + 2 + len];
            match encoding {
                ENCODING_XOR => {
                    let mut out = Vec::new();
                    decode_xor(data, &mut out).unwrap();
                    decoded.extend(out.iter().map(|&(t, _)| (t, "float")));
                }
                _ => {
                    let mut out = Vec::new();
                    decode_histograms(data, encoding == 3, &mut out).unwrap();
                    decoded.extend(out.iter().map(|h| (h.timestamp, "histogram")));
                }
            }
        }
        builder.remove();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            decoded,
            [
                (10, "float"),
                (20, "float"),
                (30, "histogram"),
                (40, "histogram"),
                (50, "float"),
                (60, "float")
            ]
        );
    }
}
