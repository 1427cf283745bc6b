//! The stateless worker: imports one window from the source into the destination and reports
//! what happened. Reading and decoding run in one task and encoding and sending in another,
//! joined by a channel of two batches, so memory is bounded by the batch size, not the window.

pub mod assembler;
pub mod options;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::answer::RejectReason;
use crate::blocks::{BlockWriter, BlocksTarget};
use crate::destination::Destination;
use crate::destination::batch::{Batch, BatchLimits};
use crate::destination::delivery::SendCosts;
use crate::destination::kept::HistogramCheck;
use crate::endpoint::EndpointConfig;
use crate::error::{Error, Result};
use crate::outcome::{WindowError, WindowOutcome};
use crate::proto::LabelMatcher;
use crate::relabel::LabelRules;
use crate::remote_read::shards::name_shards;
use crate::remote_read::{ReadLimits, ReadPart, SourceReader};
use crate::remote_write::DestinationWriter;
use crate::remote_write::pace::Pacer;
use crate::retry::RetryPolicy;
use crate::selector::Selector;
use crate::window::Window;
use assembler::{WindowAssembler, chunk_error};

/// Everything that decides how a window is imported; the same for every window of an import.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub source: EndpointConfig,
    pub dest: EndpointConfig,
    /// `--dest-blocks`: blocks are written there instead of remote writing to `dest`.
    pub blocks: Option<BlocksTarget>,
    pub selectors: Vec<Selector>,
    pub labels: LabelRules,
    pub batch: BatchLimits,
    pub read_limits: ReadLimits,
    pub retry: RetryPolicy,
    /// `--max-samples-per-second`: the most the destination is sent, whatever its limit.
    pub max_samples_per_second: Option<f64>,
    /// `--metrics-per-read`: a window's read is split into queries of this many metric names
    /// (0: one query per selector).
    pub metrics_per_read: usize,
    /// `--max-read-samples-per-second`: the most read from the source, across windows.
    pub max_read_samples_per_second: Option<f64>,
    /// `--source-slow-answer`: a query whose answer takes longer than this to begin is
    /// followed by a pause as long, before the next.
    pub source_slow_answer: Duration,
}

/// Live counters a progress display reads while windows run.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub samples_read: AtomicU64,
    pub samples_written: AtomicU64,
}

/// Imports windows: reads with `reader`, writes to a `Destination` (remote write unless said).
#[derive(Clone)]
pub struct Worker<D = DestinationWriter> {
    reader: WindowReader,
    writer: D,
    /// What the destination did with the first native histograms it accepted: asked once
    /// per worker, then applied to every window.
    histograms: Arc<tokio::sync::Mutex<Option<HistogramCheck>>>,
}

/// The reading half of a worker: a window's series from a remote read endpoint, clipped,
/// merged and relabelled, as remote write batches. `verify` reads with it too.
#[derive(Clone)]
pub struct WindowReader {
    reader: SourceReader,
    selectors: Arc<Vec<Selector>>,
    labels: Arc<LabelRules>,
    batch: BatchLimits,
    /// `--metrics-per-read`: metric names per query of a window; 0 reads a selector in one.
    metrics_per_read: usize,
    /// `--max-read-samples-per-second`, shared by every window this reader reads.
    read_pace: Option<Arc<Pacer>>,
    /// `--source-slow-answer`.
    slow_answer: Duration,
    /// The destination stores chunks (blocks): whole chunks inside the window pass undecoded.
    copy_chunks: bool,
}

impl WindowReader {
    pub fn new(
        endpoint: &EndpointConfig,
        selectors: Vec<Selector>,
        labels: LabelRules,
        settings: &WorkerSettings,
    ) -> Result<Self> {
        Ok(WindowReader {
            reader: SourceReader::new(endpoint.build()?, settings.read_limits, settings.retry),
            selectors: Arc::new(selectors),
            labels: Arc::new(labels),
            batch: settings.batch,
            metrics_per_read: settings.metrics_per_read,
            read_pace: settings
                .max_read_samples_per_second
                .map(|cap| Arc::new(Pacer::new(Some(cap)))),
            slow_answer: settings.source_slow_answer,
            copy_chunks: settings.blocks.is_some(),
        })
    }

    /// The source as the settings describe it: its endpoint, selectors and relabelling.
    pub fn source(settings: &WorkerSettings) -> Result<Self> {
        Self::new(
            &settings.source,
            settings.selectors.clone(),
            settings.labels.clone(),
            settings,
        )
    }

    pub fn url(&self) -> String {
        self.reader.url()
    }

    fn check_limits(&self, labels: &[crate::proto::Label], series_so_far: u64) -> Result<()> {
        let limit = |what: String| Error::SourceLimit {
            url: self.url(),
            what,
            fix: "check that --source is the Prometheus you meant; if the data is real, narrow --match",
        };
        assembler::check_limits(labels).map_err(limit)?;
        if series_so_far >= assembler::MAX_SERIES_PER_WINDOW {
            return Err(limit(format!(
                "more than {} series in one window",
                assembler::MAX_SERIES_PER_WINDOW
            )));
        }
        Ok(())
    }

    pub async fn read(
        &self,
        window: Window,
        tx: mpsc::Sender<Batch>,
        live: &LiveCounters,
        outcome: &mut WindowOutcome,
    ) -> Result<()> {
        let mut read = WindowRead {
            assembler: WindowAssembler::new(window, &self.labels, self.batch, self.copy_chunks),
            tx: &tx,
            live,
            outcome,
            decode: Duration::ZERO,
        };
        let result = async {
            for selector in self.selectors.iter() {
                for shard in self.shards(window, selector).await {
                    let mut matchers = selector.matchers.clone();
                    matchers.extend(shard);
                    if !self.read_in_parts(window, &matchers, &mut read).await? {
                        // The sender stopped on an error of its own, which it reports.
                        return Ok(());
                    }
                }
            }
            read.assembler.finish();
            while let Some(batch) = read.assembler.take_ready() {
                if tx.send(batch).await.is_err() {
                    return Ok(());
                }
            }
            Ok(())
        }
        .await;
        let WindowRead {
            mut assembler,
            decode,
            outcome,
            ..
        } = read;
        outcome.series = assembler.series;
        outcome.samples_read = assembler.samples + assembler.skipped.values().sum::<u64>();
        outcome.histograms_read = assembler.histograms + assembler.histograms_skipped;
        outcome.first_histogram = assembler.first_histogram.take();
        outcome.skipped = std::mem::take(&mut assembler.skipped);
        outcome.decode_seconds = decode.as_secs_f64();
        result
    }

    /// The queries a selector's read of a window is split into (see `remote_read::shards`):
    /// by metric name when `--metrics-per-read` is set and the source lists its names, else
    /// one.
    async fn shards(&self, window: Window, selector: &Selector) -> Vec<Option<LabelMatcher>> {
        if self.metrics_per_read == 0 {
            return vec![None];
        }
        match self
            .reader
            .metric_names(window.start_ms, window.end_ms, &selector.text)
            .await
        {
            Some(names) => name_shards(&names, self.metrics_per_read),
            None => vec![None],
        }
    }

    /// Reads one query of the window, and again in halves of its time range (oldest first)
    /// whenever the source refuses a range as larger than its own limits; `false` when the
    /// sender has stopped.
    async fn read_in_parts(
        &self,
        window: Window,
        matchers: &[LabelMatcher],
        read: &mut WindowRead<'_, '_>,
    ) -> Result<bool> {
        let mut pending = vec![window];
        // A series read in several parts is counted in each; the window holds as many as the
        // part that held the most (every part asks for the same series).
        let series_before = read.assembler.series;
        let mut most_series = 0;
        while let Some(range) = pending.pop() {
            read.assembler.clip_to(range);
            let part_start = read.assembler.series;
            let result = self.read_query(Query { range, matchers }, read).await;
            most_series = most_series.max(read.assembler.series - part_start);
            read.assembler.series = part_start;
            match result {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                // The refusal comes with the answer's status, before any of it was read, so
                // reading the halves instead loses and repeats nothing.
                Err(e) if e.is_source_answer_over_limit() && range.end_ms - range.start_ms >= 2 => {
                    let middle = range.start_ms + (range.end_ms - range.start_ms) / 2;
                    tracing::info!(range = %range, error = %e, "the source refused a query as over its limit; reading it in two halves");
                    read.outcome.source_splits += 1;
                    pending.push(Window {
                        start_ms: middle,
                        end_ms: range.end_ms,
                    });
                    pending.push(Window {
                        start_ms: range.start_ms,
                        end_ms: middle,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        read.assembler.series = series_before + most_series;
        read.assembler.clip_to(window);
        Ok(true)
    }

    /// Reads one query's answer into the assembler and hands the batches it fills to the
    /// sender; `false` when the sender has stopped.
    async fn read_query(&self, query: Query<'_>, read: &mut WindowRead<'_, '_>) -> Result<bool> {
        let asked = Instant::now();
        let mut stream = self
            .reader
            .open(query.range.start_ms, query.range.end_ms, query.matchers)
            .await?;
        // A source that takes long to begin an answer is busy (its query gate, its memory, its
        // disk): the time it took is a measure of its load that needs no setting. Pausing as
        // long before the next query at most halves what this reader asks of it.
        let to_answer = asked.elapsed();
        let slow = to_answer > self.slow_answer;
        read.outcome.streamed = stream.is_streamed();
        while let Some(part) = stream.next().await? {
            let before = read.assembler.samples;
            // What one series filled is handed over before the next is decoded: a frame holds
            // up to a MiB of chunks, which decode into many batches (native histograms above
            // all), and holding them all at once is what a worker's memory would grow by.
            match part {
                ReadPart::Chunked(response) => {
                    for series in response.chunked_series {
                        let started = Instant::now();
                        self.feed_chunks(&mut read.assembler, series)?;
                        read.decode += started.elapsed();
                        if !hand_over(read).await {
                            return Ok(false);
                        }
                    }
                }
                ReadPart::Samples(result) => {
                    for series in result.timeseries {
                        let started = Instant::now();
                        self.feed_samples(&mut read.assembler, series)?;
                        read.decode += started.elapsed();
                        if !hand_over(read).await {
                            return Ok(false);
                        }
                    }
                }
            }
            let samples = read.assembler.samples - before;
            read.live.samples_read.fetch_add(samples, Ordering::Relaxed);
            if let Some(pace) = &self.read_pace {
                // Waiting here leaves the answer unread, so the source's writes block (TCP
                // flow control) and it works at our pace, not ahead of it.
                read.outcome.read_throttled_seconds += pace.admit(samples).await.as_secs_f64();
            }
        }
        read.outcome.bytes_read += stream.bytes_read();
        if slow {
            tracing::warn!(
                range = %query.range,
                seconds_to_answer = to_answer.as_secs_f64(),
                "the source was slow to answer; pausing as long before the next query"
            );
            tokio::time::sleep(to_answer).await;
            read.outcome.slow_answers += 1;
            read.outcome.slow_answer_wait_seconds += to_answer.as_secs_f64();
        }
        Ok(true)
    }

    /// One streamed series (or the part of it in this frame) into the assembler.
    fn feed_chunks(
        &self,
        assembler: &mut WindowAssembler<'_>,
        series: crate::proto::ChunkedSeries,
    ) -> Result<()> {
        self.check_limits(&series.labels, assembler.series)?;
        assembler.series(series.labels)?;
        for chunk in &series.chunks {
            assembler
                .chunk(chunk)
                .map_err(|e| chunk_error(self.reader.url(), assembler, e))?;
        }
        Ok(())
    }

    /// One series of a SAMPLES answer into the assembler.
    fn feed_samples(
        &self,
        assembler: &mut WindowAssembler<'_>,
        series: crate::proto::TimeSeries,
    ) -> Result<()> {
        self.check_limits(&series.labels, assembler.series)?;
        assembler.series(series.labels)?;
        for sample in &series.samples {
            assembler.sample(sample.timestamp, sample.value.to_bits());
        }
        for histogram in series.histograms {
            assembler.histogram(histogram);
        }
        Ok(())
    }
}

/// Sends the batches the assembler has filled; `false` when the sender has stopped.
async fn hand_over(read: &mut WindowRead<'_, '_>) -> bool {
    while let Some(batch) = read.assembler.take_ready() {
        if read.tx.send(batch).await.is_err() {
            return false;
        }
    }
    true
}

/// What one window's read carries from query to query: the assembler, the channel to the
/// sender, and the counters.
struct WindowRead<'a, 'b> {
    assembler: WindowAssembler<'a>,
    tx: &'b mpsc::Sender<Batch>,
    live: &'b LiveCounters,
    outcome: &'b mut WindowOutcome,
    decode: Duration,
}

/// One remote read query: a window, or the part of it the source would answer, and the
/// selector's matchers with the shard's.
#[derive(Clone, Copy)]
struct Query<'a> {
    range: Window,
    matchers: &'a [LabelMatcher],
}

impl Worker {
    /// A worker that remote-writes to the settings' destination.
    pub fn new(settings: &WorkerSettings) -> Result<Self> {
        let reader = WindowReader::source(settings)?;
        let dest = settings.dest.build()?;
        crate::remote_write::check_write_url(&dest.url)?;
        Ok(Worker::with_destination(
            reader,
            DestinationWriter::new(
                dest,
                settings.retry,
                settings.dest.timeout,
                settings.max_samples_per_second,
            ),
        ))
    }
}

impl Worker<BlockWriter> {
    /// A worker that writes each window as a block into `target`. A block's ID is made from
    /// what decides its samples, so a window written again has the same one.
    pub fn blocks(settings: &WorkerSettings, target: &BlocksTarget) -> Result<Self> {
        let reader = WindowReader::source(settings)?;
        let identity = crate::blocks::block_identity(
            &settings.source.display_url()?,
            &settings.selectors,
            &settings.labels,
            &target.describe(),
        );
        Ok(Worker::with_destination(
            reader,
            BlockWriter::new(target.clone(), identity),
        ))
    }
}

impl<D: Destination> Worker<D> {
    /// A worker that writes to any destination.
    pub fn with_destination(reader: WindowReader, writer: D) -> Self {
        Worker {
            reader,
            writer,
            histograms: Arc::default(),
        }
    }

    pub fn source_url(&self) -> String {
        self.reader.url()
    }

    pub fn dest_url(&self) -> String {
        self.writer.url()
    }

    /// Checks that both ends take a connection, before any window is planned to run.
    pub async fn probe(&self) -> Result<()> {
        self.reader.reader.probe().await?;
        self.writer.probe().await
    }

    /// Imports one window. Always returns an outcome: an error is recorded in it, along with
    /// whatever was written before the error. A destination that takes windows in parts
    /// (blocks) gets them one after another; the first that fails ends the window, and the
    /// window's next attempt finds the parts written before it.
    pub async fn import_window(&self, window: Window, live: Arc<LiveCounters>) -> WindowOutcome {
        let Some(part_ms) = self.writer.window_part_ms() else {
            return self.import_part(window, live).await;
        };
        let started = Instant::now();
        let mut total = WindowOutcome::default();
        for part in window.parts(part_ms) {
            let mut outcome = self.import_part(part, live.clone()).await;
            total.absorb(&outcome);
            total.written_blocks.append(&mut outcome.written_blocks);
            if outcome.error.is_some() {
                total.error = outcome.error;
                break;
            }
        }
        total.seconds = started.elapsed().as_secs_f64();
        total
    }

    /// Imports a window, or a part of one, in one pass.
    async fn import_part(&self, window: Window, live: Arc<LiveCounters>) -> WindowOutcome {
        let started = Instant::now();
        let (tx, rx) = mpsc::channel::<Batch>(2);
        let dest = self.writer.for_window(window);
        let writer = tokio::spawn(send_batches(dest.clone(), rx, live.clone()));
        let mut outcome = WindowOutcome::default();
        let read_result = self.reader.read(window, tx, &live, &mut outcome).await;
        let (sent, write_result) = match writer.await {
            Ok(done) => done,
            Err(join) => (
                WindowOutcome::default(),
                Err(Error::Internal(format!("the sender task ended: {join}"))),
            ),
        };
        outcome.samples_written = sent.samples_written;
        outcome.histograms_written = sent.histograms_written;
        outcome.rejected = sent.rejected;
        outcome.bytes_written = sent.bytes_written;
        outcome.requests = sent.requests;
        outcome.retries = sent.retries;
        outcome.encode_seconds = sent.encode_seconds;
        outcome.write_seconds = sent.write_seconds;
        outcome.throttled_seconds = sent.throttled_seconds;
        outcome.throttles = sent.throttles;
        outcome.rate_limit = sent.rate_limit;
        if outcome.histograms_written > 0 {
            let mut known = self.histograms.lock().await;
            // The first histogram read is asked for only when none of this window's was
            // refused, so it is one the destination accepted.
            if known.is_none()
                && outcome.histograms_rejected() == 0
                && let Some((labels, t)) = outcome.first_histogram.take()
            {
                *known = Some(self.writer.check_histograms(&labels, t).await);
            }
            if let Some(check) = known.clone() {
                account_histograms(&mut outcome, check);
            }
        }
        // The sender's error explains a reader stopped by a closed channel, so it comes first.
        let mut result = write_result.and(read_result);
        if result.is_ok() {
            match dest.finish().await {
                Ok(Some(block)) => {
                    outcome.bytes_written += block.bytes;
                    outcome.blocks = 1;
                    outcome.written_blocks.push(block);
                }
                Ok(None) => {}
                Err(e) => result = Err(e),
            }
        }
        if let Err(e) = result {
            dest.abandon().await;
            outcome.error = Some(WindowError {
                transient: e.is_transient(),
                stops_import: e.stops_import(),
                message: e.to_string(),
            });
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        outcome
    }
}

/// A destination that dropped the histograms it accepted holds none of this window's either:
/// they count as refused, with the reason, never as written.
fn account_histograms(outcome: &mut WindowOutcome, check: HistogramCheck) {
    match check {
        HistogramCheck::Kept => {}
        HistogramCheck::Dropped(asked) => {
            let n = outcome.histograms_written;
            outcome.samples_written -= n;
            outcome.histograms_written = 0;
            outcome.add_rejection(
                RejectReason::NativeHistogramsDropped,
                n,
                n,
                &format!("answered 2xx to native histogram samples, but {asked}"),
            );
        }
        HistogramCheck::Unconfirmed(why) => outcome.notes.push(format!(
            "native histogram samples were accepted, but whether the destination keeps them \
             could not be checked ({why}); `promimport verify` against its remote read API \
             compares every one"
        )),
    }
}

/// The sending half: one request in flight per window keeps each series' samples in order at
/// the receiver, which a receiver without an out-of-order window requires.
async fn send_batches<D: Destination>(
    writer: D,
    mut rx: mpsc::Receiver<Batch>,
    live: Arc<LiveCounters>,
) -> (WindowOutcome, Result<()>) {
    let mut sent = WindowOutcome::default();
    let mut costs = SendCosts::default();
    let mut result = Ok(());
    while let Some(batch) = rx.recv().await {
        match writer.send(batch, &mut costs).await {
            Ok(delivery) => {
                sent.samples_written += delivery.written;
                sent.histograms_written += delivery.written_histograms;
                live.samples_written
                    .fetch_add(delivery.written, Ordering::Relaxed);
                for r in delivery.refused {
                    sent.add_rejection(r.reason, r.samples, r.histograms, &r.message);
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    sent.requests = costs.requests;
    sent.bytes_written = costs.bytes;
    sent.retries = costs.retries;
    sent.encode_seconds = costs.encode.as_secs_f64();
    sent.write_seconds = costs.write.as_secs_f64();
    sent.throttled_seconds = costs.throttled.as_secs_f64();
    sent.throttles = costs.throttles;
    sent.rate_limit = costs.limit.map(|l| l.rate);
    (sent, result)
}
