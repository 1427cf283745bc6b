//! TSDB blocks as a destination: each window becomes one block written straight into a
//! Prometheus data directory, a Cortex bucket (`TENANT/ULID/`, on a filesystem or in S3, GCS,
//! Azure), so the receiver's out-of-order window does not matter (`--dest-blocks`).
//!
//! A block is written into a staging directory named `ULID.tmp-promimport` (a name neither
//! Prometheus nor Cortex loads: both load only directories named by a ULID), `meta.json` last,
//! then put in place (`target.rs`): every file synced and renamed in one step, or uploaded
//! with `meta.json` last. The ULID comes from the import and the 2h range, so a window written
//! again finds its block already there instead of adding a second copy of its samples.

pub mod bits;
pub mod histogram;
pub mod index;
mod target;
pub mod xor;

pub use target::{BlocksTarget, BucketTls, describe};

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use sha2::Digest;

use crate::answer::RejectReason;
use crate::destination::Destination;
use crate::destination::batch::{Batch, RawChunk};
use crate::destination::delivery::{Delivery, Refused, SendCosts};
use crate::destination::kept::HistogramCheck;
use crate::error::{Error, Result};
use crate::outcome::BlockWritten;
use crate::proto::{Histogram, Label, Sample};
use crate::window::Window;
use histogram::HistogramChunk;
use index::{ChunkMeta, FastHash, IndexSeries, write_index};
use xor::XorChunk;

/// The range of the blocks Prometheus and Cortex cut: each block written covers this much (or
/// less, at a range's ends), and `--window` is a multiple of it.
pub const BLOCK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// Checks a window length for blocks (`what` is `--window` or a spec's `window`, as typed in
/// `input`): a window is written as its 2h blocks, so it is a multiple of 2h.
pub fn check_window(what: &'static str, input: &str, window_ms: i64) -> Result<()> {
    if window_ms % BLOCK_RANGE_MS != 0 {
        return Err(Error::invalid(
            what,
            input,
            "with blocks a window is written as 2h TSDB blocks: give 2h (the default) or a multiple of it, e.g. 1d (twelve blocks a window, one Job in Kubernetes)",
        ));
    }
    Ok(())
}

/// Prometheus cuts chunk segment files at 512 MiB.
const SEGMENT_MAX_BYTES: u64 = 512 << 20;

/// What makes the IDs of an import's blocks (`BlockWriter::block_id`): what decides a block's
/// samples (the source, the selectors, the relabelling) and where it goes. The text is the one
/// 0.1.0 made from its types' `Debug` form, written out here so that it no longer moves with a
/// derive, a renamed field or Rust's escaping: a resumed import must find its blocks' IDs again.
pub fn block_identity(
    source: &str,
    selectors: &[crate::selector::Selector],
    labels: &crate::relabel::LabelRules,
    destination: &str,
) -> String {
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    let selectors = list(selectors.iter().map(|s| quoted(&s.to_string())).collect());
    let drop = list(labels.drop.iter().map(|name| quoted(name)).collect());
    let set = list(
        labels
            .set
            .iter()
            .map(|l| {
                format!(
                    "NameValue {{ name: {}, value: {} }}",
                    quoted(&l.name),
                    quoted(&l.value)
                )
            })
            .collect(),
    );
    format!("{source}\n{selectors}\nLabelRules {{ drop: {drop}, set: {set} }}\n{destination}")
}

/// `text` in double quotes, with quotes, backslashes and control characters escaped as Rust's
/// `Debug` wrote them in 0.1.0. That also escaped combining marks and the few other characters
/// its Unicode tables call unprintable (zero-width ones): an identity holding those differs
/// from 0.1.0's, and from now on stays as it is here, whatever Rust's tables become.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The blocks destination: one per import, and one builder per window (`for_window`).
#[derive(Clone)]
pub struct BlockWriter {
    target: Arc<BlocksTarget>,
    /// What makes a block's ID: the import (source, selectors, relabelling, destination).
    identity: Arc<String>,
    window: Option<Window>,
    builder: Arc<tokio::sync::Mutex<Option<Builder>>>,
    /// The most series a window of this import held so far: the next window's builder starts
    /// with room for as many, instead of growing its maps series by series.
    series_hint: Arc<AtomicUsize>,
}

impl BlockWriter {
    pub fn new(target: BlocksTarget, identity: String) -> Self {
        BlockWriter {
            target: Arc::new(target),
            identity: Arc::new(identity),
            window: None,
            builder: Arc::default(),
            series_hint: Arc::default(),
        }
    }

    /// The block's ID: the window's start as the ULID's time, and a hash of the import and
    /// window as its random part, so the same window of the same import has the same ID.
    pub fn block_id(&self, window: Window) -> ulid::Ulid {
        let digest = sha2::Sha256::digest(format!("{}\n{}", self.identity, window.key()));
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        ulid::Ulid::from_parts(window.start_ms.max(0) as u64, u128::from_be_bytes(random))
    }
}

impl Destination for BlockWriter {
    fn url(&self) -> String {
        self.target.describe()
    }

    /// The directory or bucket takes what an import writes.
    async fn probe(&self) -> Result<()> {
        self.target.probe().await
    }

    fn window_part_ms(&self) -> Option<i64> {
        Some(BLOCK_RANGE_MS)
    }

    fn for_window(&self, window: Window) -> Self {
        BlockWriter {
            target: self.target.clone(),
            identity: self.identity.clone(),
            window: Some(window),
            builder: Arc::default(),
            series_hint: self.series_hint.clone(),
        }
    }

    async fn send(&self, batch: Batch, costs: &mut SendCosts) -> Result<Delivery> {
        let window = self.window.ok_or_else(|| {
            Error::Internal("a block writer was sent samples outside a window".into())
        })?;
        let mut builder = self.builder.lock().await;
        if builder.is_none() {
            let capacity = self.series_hint.load(Ordering::Relaxed);
            *builder = Some(Builder::start(
                &self.target,
                self.block_id(window),
                window,
                capacity,
            )?);
        }
        let Some(builder) = builder.as_mut() else {
            return Err(Error::Internal("the block builder vanished".into()));
        };
        let started = std::time::Instant::now();
        let delivery = builder.add(batch);
        costs.encode += started.elapsed();
        delivery
    }

    /// Writes the window's block, if it has any samples, and moves it into place.
    async fn finish(&self) -> Result<Option<BlockWritten>> {
        let Some(builder) = self.builder.lock().await.take() else {
            return Ok(None);
        };
        self.series_hint
            .fetch_max(builder.series.len(), Ordering::Relaxed);
        let tenant = self.target.tenant.clone();
        let sealed = tokio::task::spawn_blocking(move || builder.seal(tenant.as_deref()))
            .await
            .map_err(|e| Error::Internal(format!("the block writer task ended: {e}")))??;
        self.target.place(sealed).await.map(Some)
    }

    /// Removes what an unfinished window wrote (an error stopped it).
    async fn abandon(&self) {
        if let Some(builder) = self.builder.lock().await.take() {
            builder.remove();
        }
    }

    /// A block holds what was written into it; there is no receiver that might drop some.
    async fn check_histograms(&self, _: &[Label], _: i64) -> HistogramCheck {
        HistogramCheck::Kept
    }
}

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
    ) -> Result<std::result::Result<(), histogram::Unencodable>> {
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
struct Builder {
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
    fn start(
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
    fn add(&mut self, batch: Batch) -> Result<Delivery> {
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
        if let Some((count, histogram::Unencodable(why))) = unencodable {
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
    fn seal(mut self, tenant: Option<&str>) -> Result<Sealed> {
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

        let meta = Meta::new(&self, tenant, chunks, &segment_files);
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

    fn remove(self) {
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

fn write_file(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    match durable {
        true => file.sync_all(),
        false => Ok(()),
    }
}

/// A rename is durable once its directory is synced.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The chunk segment files (`chunks/000001`, ...): an 8-byte header, then each chunk as its
/// length, encoding, data and CRC32 Castagnoli (prometheus/tsdb/docs/format/chunks.md).
struct Segments {
    dir: PathBuf,
    /// Files are synced as they are closed (see `Builder::durable`).
    durable: bool,
    names: Vec<String>,
    file: Option<BufWriter<File>>,
    offset: u64,
    bytes: u64,
}

const CHUNKS_MAGIC: u32 = 0x85BD_40DD;
const ENCODING_XOR: u8 = 1;

impl Segments {
    fn create(dir: PathBuf, durable: bool) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|source| Error::WriteFile {
            what: "a block's chunks directory",
            path: dir.clone(),
            source,
        })?;
        Ok(Segments {
            dir,
            durable,
            names: Vec::new(),
            file: None,
            offset: 0,
            bytes: 0,
        })
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error::WriteFile {
            what: "a block's chunk file",
            path: self.dir.clone(),
            source,
        }
    }

    /// Appends a chunk (`encoding` as in the chunk files) and says where it is.
    fn write(&mut self, encoding: u8, data: &[u8], min_t: i64, max_t: i64) -> Result<ChunkMeta> {
        let mut head = Vec::with_capacity(11);
        index::uvarint(&mut head, data.len() as u64);
        head.push(encoding);
        let size = (head.len() + data.len() + 4) as u64;
        if self.file.is_none() || self.offset + size > SEGMENT_MAX_BYTES {
            self.cut().map_err(|e| self.error(e))?;
        }
        let reference = ((self.names.len() as u64 - 1) << 32) | self.offset;
        let mut crc = crc32c::crc32c(&[encoding]);
        crc = crc32c::crc32c_append(crc, data);
        let Some(file) = self.file.as_mut() else {
            return Err(Error::Internal("no open chunk segment".into()));
        };
        let written = file
            .write_all(&head)
            .and_then(|()| file.write_all(data))
            .and_then(|()| file.write_all(&crc.to_be_bytes()));
        written.map_err(|e| self.error(e))?;
        self.offset += size;
        self.bytes += size;
        Ok(ChunkMeta {
            min_t,
            max_t,
            reference,
        })
    }

    /// Closes the current segment and opens the next.
    fn cut(&mut self) -> std::io::Result<()> {
        self.close_current()?;
        let name = format!("{:06}", self.names.len() + 1);
        // Chunks are small (a few hundred bytes); large writes cost fewer system calls.
        let mut file = BufWriter::with_capacity(1 << 20, File::create(self.dir.join(&name))?);
        file.write_all(&CHUNKS_MAGIC.to_be_bytes())?;
        file.write_all(&[1, 0, 0, 0])?;
        self.names.push(name);
        self.file = Some(file);
        self.offset = 8;
        self.bytes += 8;
        Ok(())
    }

    fn close_current(&mut self) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            if self.durable {
                file.sync_all()?;
            }
        }
        Ok(())
    }

    /// Closes the last segment; the names of all, for meta.json.
    fn close(&mut self) -> Result<Vec<String>> {
        self.close_current().map_err(|e| self.error(e))?;
        if self.durable {
            sync_dir(&self.dir).map_err(|e| self.error(e))?;
        }
        Ok(self.names.clone())
    }
}

/// `meta.json` as Prometheus reads it, with the `thanos` section Cortex reads: its only label
/// `__org_id__`, the tenant (any other label would be added to every series it returns).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    ulid: String,
    min_time: i64,
    max_time: i64,
    stats: Stats,
    compaction: Compaction,
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    thanos: Option<Thanos>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    num_samples: u64,
    num_series: u64,
    num_chunks: u64,
}

#[derive(Serialize)]
struct Compaction {
    level: u32,
    sources: Vec<String>,
}

#[derive(Serialize)]
struct Thanos {
    labels: BTreeMap<String, String>,
    downsample: Downsample,
    source: &'static str,
    segment_files: Vec<String>,
}

#[derive(Serialize)]
struct Downsample {
    resolution: i64,
}

impl Meta {
    fn new(block: &Builder, tenant: Option<&str>, chunks: u64, segments: &[String]) -> Self {
        let id = block.id.to_string();
        Meta {
            ulid: id.clone(),
            // A block's range is half-open, as a window is.
            min_time: block.window.start_ms,
            max_time: block.window.end_ms,
            stats: Stats {
                num_samples: block.samples,
                num_series: block.series.len() as u64,
                num_chunks: chunks,
            },
            compaction: Compaction {
                level: 1,
                sources: vec![id],
            },
            version: 1,
            thanos: tenant.map(|t| Thanos {
                labels: BTreeMap::from([("__org_id__".to_string(), t.to_string())]),
                downsample: Downsample { resolution: 0 },
                source: "promimport",
                segment_files: segments.to_vec(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// Block IDs are what make a window written again (a resume, a Job's retry) land on its own
    /// block instead of beside it: they must not change between versions of promimport. These
    /// are the IDs that 0.1.0 gave; an import started by it and resumed by a later version
    /// must find the same ones.
    #[test]
    fn block_ids_are_those_of_earlier_versions() {
        let selectors: Vec<crate::selector::Selector> =
            ["{job=\"node\"}", "up", "{\"a.b\"=~\"x|\\\"y\"}"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        let labels = crate::relabel::LabelRules {
            drop: vec!["pod".into(), "instance".into()],
            set: vec![
                crate::name_value::NameValue::new("cluster", "größe\tä \"q\" \\ \u{7f}"),
                crate::name_value::NameValue::new("env", "prod\nnext"),
            ],
        };
        let identity = block_identity(
            "http://prometheus:9090/api/v1/read",
            &selectors,
            &labels,
            "s3://bucket/cortex (tenant anonymous)",
        );
        assert_eq!(
            identity,
            concat!(
                "http://prometheus:9090/api/v1/read\n",
                r#"["{job=\"node\"}", "up", "{\"a.b\"=~\"x|\\\"y\"}"]"#,
                "\n",
                r#"LabelRules { drop: ["pod", "instance"], set: [NameValue { name: "cluster", value: "größe\tä \"q\" \\ \u{7f}" }, NameValue { name: "env", value: "prod\nnext" }] }"#,
                "\ns3://bucket/cortex (tenant anonymous)"
            )
        );
        let target = |url: &str| BlocksTarget::parse(url, None, &BucketTls::default()).unwrap();
        let window = Window::new(1_793_491_200_000, 1_793_498_400_000).unwrap();
        let writer = BlockWriter::new(target("file:///nonexistent"), identity);
        assert_eq!(
            writer.block_id(window).to_string(),
            "01M6A6FT00D729HB1YPPG510WG"
        );
        let plain = block_identity(
            "http://p:9090/api/v1/read",
            &[],
            &Default::default(),
            "file:///data",
        );
        let plain = BlockWriter::new(target("file:///nonexistent"), plain);
        assert_eq!(
            plain.block_id(window).to_string(),
            "01M6A6FT00N5NJG90XHP3MXQVJ"
        );
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
