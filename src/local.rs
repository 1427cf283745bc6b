//! Local mode: the whole import in one process, windows run `parallel` at a time, progress in a
//! state directory (`ledger/file.rs`) so Ctrl-C or a crash followed by the same command resumes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::SignalKind;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::blocks::BlocksTarget;
use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::ledger::file::{FileLedger, ImportIdentity};
use crate::ledger::record::WindowRecord;
use crate::ledger::{Ledger, LedgerEntry, WindowStatus, done_windows};
use crate::outcome::WindowOutcome;
use crate::plan::decide::Tally;
use crate::plan::{count_windows, plan_windows};
use crate::progress::{Progress, human};
use crate::timespec::{format_ms, now_ms};
use crate::window::Window;
use crate::worker::{LiveCounters, Worker, WorkerSettings};

pub struct LocalRun {
    pub range: Window,
    pub window_ms: i64,
    pub parallel: usize,
    /// Tries per window when it fails for a transient reason (a stream cut, a source restart).
    pub window_attempts: usize,
    pub state_dir: PathBuf,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub range: Option<Window>,
    pub windows_done_before: u64,
    pub windows_done: u64,
    pub windows_rejected: u64,
    pub windows_failed: u64,
    pub windows_not_attempted: u64,
    pub totals: WindowOutcome,
    pub seconds: f64,
    /// Why the import stopped before its last window.
    pub stopped_early: Option<String>,
    /// The signal that stopped the run (SIGINT from Ctrl-C, or SIGTERM), if one did.
    pub interrupted: Option<Signal>,
    /// Samples read by the runs before this one, from the ledger.
    pub samples_read_before: u64,
    /// The first few failed windows and why.
    pub failures: Vec<(Window, String)>,
    /// `--dest-blocks`: where the blocks went, and how many of this run's windows found their
    /// block already there (written by a run that stopped before recording it).
    pub blocks: Option<BlocksTarget>,
    pub blocks_found: u64,
}

/// Tries per window after a transient failure (a cut stream, a source restart).
pub const DEFAULT_WINDOW_ATTEMPTS: usize = 3;

/// Exit codes, documented in the README.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_REJECTED: i32 = 3;
/// 128 + the signal's number, as shells report a process a signal ended.
pub const EXIT_INTERRUPTED: i32 = 130;
pub const EXIT_TERMINATED: i32 = 143;

/// The signals that stop a run and keep its promise: a summary, and a resume that is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// What Kubernetes, systemd and `kill` send.
    Terminate,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

impl RunSummary {
    /// A summary of a run that finds `done_before` windows done by earlier runs.
    fn resuming(range: Window, done_before: usize, entries: &[LedgerEntry]) -> Self {
        RunSummary {
            range: Some(range),
            windows_done_before: done_before as u64,
            samples_read_before: entries
                .iter()
                .filter(|e| e.status == WindowStatus::Done)
                .map(|e| e.outcome.samples_read)
                .sum(),
            ..Default::default()
        }
    }

    /// Counts a window this run finished (and recorded), and applies the planner's rules to it:
    /// as the scheduler does, no more windows start once one says every other would fail the
    /// same way.
    fn window_finished(&mut self, entry: &LedgerEntry, tally: &mut Tally) {
        let outcome = &entry.outcome;
        match entry.status {
            WindowStatus::Done => self.windows_done += 1,
            WindowStatus::Rejected => self.windows_rejected += 1,
            WindowStatus::Failed => self.windows_failed += 1,
        }
        if let Some(error) = &outcome.error
            && self.failures.len() < MAX_FAILURES_SHOWN
        {
            self.failures.push((entry.window, error.message.clone()));
        }
        self.blocks_found += outcome.written_blocks.iter().filter(|b| b.existed).count() as u64;
        tally.add(entry.window, &WindowRecord::from_entry(entry));
        if self.stopped_early.is_none() {
            self.stopped_early = tally.stop_reason().map(str::to_string);
        }
        self.totals.absorb(outcome);
    }

    pub fn is_complete(&self) -> bool {
        self.windows_rejected == 0
            && self.windows_failed == 0
            && self.windows_not_attempted == 0
            && self.interrupted.is_none()
            && self.totals.is_complete()
    }

    pub fn exit_code(&self) -> i32 {
        if let Some(signal) = self.interrupted {
            match signal {
                Signal::Interrupt => EXIT_INTERRUPTED,
                Signal::Terminate => EXIT_TERMINATED,
            }
        } else if self.windows_failed > 0 {
            EXIT_FAILED
        } else if !self.is_complete() {
            EXIT_REJECTED
        } else {
            0
        }
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.totals;
        let verdict = if self.is_complete() {
            "complete: every sample read was accepted".to_string()
        } else if let Some(signal) = self.interrupted {
            format!(
                "interrupted by {}: run the same command again to resume",
                signal.name()
            )
        } else {
            "INCOMPLETE".to_string()
        };
        if let Some(range) = self.range {
            writeln!(f, "import {range}: {verdict}")?;
        }
        self.write_counts(f)?;
        self.write_blocks(f)?;
        write_findings(f, t)?;
        for (window, message) in &self.failures {
            write!(f, "\n  FAILED   {window}: {message}")?;
        }
        // Only when no run of this import read anything: a resumed run whose last windows
        // are empty says nothing about the range.
        if t.samples_read == 0 && self.samples_read_before == 0 && self.windows_done > 0 {
            write!(
                f,
                "\n  NOTE     the source returned no samples: check the range against its retention and the --match selectors"
            )?;
        }
        if let Some(reason) = &self.stopped_early {
            write!(f, "\n  STOPPED  early: {reason}")?;
        }
        Ok(())
    }
}

impl RunSummary {
    /// The summary's counts: windows, series, samples, histograms, bytes and time.
    fn write_counts(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.totals;
        writeln!(
            f,
            "  windows  {} done now, {} done before, {} rejected, {} failed, {} not attempted",
            self.windows_done,
            self.windows_done_before,
            self.windows_rejected,
            self.windows_failed,
            self.windows_not_attempted
        )?;
        writeln!(f, "  series   {} in the largest window", t.series)?;
        writeln!(
            f,
            "  samples  read {}, written {}, rejected {}, skipped {}",
            t.samples_read - t.histograms_read,
            t.samples_written - t.histograms_written,
            t.samples_rejected() - t.histograms_rejected(),
            t.samples_skipped()
        )?;
        if t.histograms_read > 0 {
            writeln!(
                f,
                "  histograms read {}, written {}, rejected {} (native histogram samples)",
                t.histograms_read,
                t.histograms_written,
                t.histograms_rejected()
            )?;
        }
        write!(
            f,
            "  bytes    read {}B, written {}B",
            human(t.bytes_read as f64),
            human(t.bytes_written as f64),
        )?;
        // Blocks are written without requests.
        if self.blocks.is_none() {
            write!(f, " in {} requests ({} retries)", t.requests, t.retries)?;
        }
        writeln!(f)?;
        let rate = t.samples_written as f64 / self.seconds.max(0.001);
        write!(
            f,
            "  time     {:.1}s, {} samples/s written",
            self.seconds,
            human(rate)
        )?;
        Ok(())
    }

    /// Where the blocks went, and when the destination shows them.
    fn write_blocks(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.totals;
        if let Some(target) = &self.blocks {
            let found = match self.blocks_found {
                0 => String::new(),
                n => format!(
                    " ({n} more were already there from an earlier run of the same windows)"
                ),
            };
            write!(
                f,
                "\n  blocks   {} written into {}{found}; {}",
                t.blocks - self.blocks_found,
                target.describe(),
                target.visibility()
            )?;
        }
        Ok(())
    }
}

/// The summary's lines on what happened to samples on the way: split reads, waits, refusals,
/// skips and notes, one line each.
fn write_findings(f: &mut std::fmt::Formatter<'_>, t: &WindowOutcome) -> std::fmt::Result {
    if let Some(line) = t.source_splitting() {
        write!(f, "\n  SPLIT    {line}")?;
    }
    for line in [t.read_pacing(), t.slow_source(), t.throttling()]
        .into_iter()
        .flatten()
    {
        write!(f, "\n  PACED    {line}")?;
    }
    for r in &t.rejected {
        let histograms = match r.histograms {
            0 => String::new(),
            n => format!(" ({n} of them native histogram samples)"),
        };
        write!(
            f,
            "\n  REJECTED {} samples{histograms} in {} requests as {}: destination said {:?}\n           fix: {}",
            r.samples,
            r.requests,
            r.reason,
            r.message,
            r.reason.fix()
        )?;
    }
    for (reason, n) in &t.skipped {
        write!(f, "\n  SKIPPED  {n} {reason}")?;
    }
    for note in &t.notes {
        write!(f, "\n  NOTE     {note}")?;
    }
    Ok(())
}

const MAX_FAILURES_SHOWN: usize = 5;

pub async fn run_local(
    settings: &WorkerSettings,
    run: &LocalRun,
    identity: &ImportIdentity,
) -> Result<RunSummary> {
    let span = tracing::info_span!("import", state = %run.state_dir.display());
    run_local_in_span(settings, run, identity)
        .instrument(span)
        .await
}

async fn run_local_in_span(
    settings: &WorkerSettings,
    run: &LocalRun,
    identity: &ImportIdentity,
) -> Result<RunSummary> {
    match &settings.blocks {
        Some(target) => {
            let mut summary = run_windows(Worker::blocks(settings, target)?, run, identity).await?;
            summary.blocks = Some(target.clone());
            Ok(summary)
        }
        None => run_windows(Worker::new(settings)?, run, identity).await,
    }
}

async fn run_windows<D: Destination>(
    worker: Worker<D>,
    run: &LocalRun,
    identity: &ImportIdentity,
) -> Result<RunSummary> {
    let started = Instant::now();
    let (mut ledger, entries) = FileLedger::open(&run.state_dir, identity)?;
    let all = count_windows(run.range, run.window_ms) as usize;
    let todo = plan_windows(run.range, run.window_ms, &done_windows(&entries));
    let mut summary = RunSummary::resuming(run.range, all.saturating_sub(todo.len()), &entries);
    if !todo.is_empty() {
        worker.probe().await?;
    }
    tracing::info!(
        source = %worker.source_url(),
        dest = %worker.dest_url(),
        range = %run.range,
        windows = todo.len(),
        done_before = summary.windows_done_before,
        state = %run.state_dir.display(),
        "import starting"
    );

    let live = Arc::new(LiveCounters::default());
    let progress = Progress::new(todo.len() as u64, summary.windows_done_before, live.clone());
    let mut pending = todo.into_iter();
    let mut running: JoinSet<(Window, WindowOutcome)> = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut tally = Tally::new(run.range.start_ms, now_ms());
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;

    loop {
        if summary.stopped_early.is_none() && summary.interrupted.is_none() {
            start_windows(&mut pending, &mut running, &worker, run, &live);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let (window, outcome) = match joined {
                    Ok(finished) => finished,
                    // Aborted by a signal: nothing was recorded, so the window is imported
                    // again, whole, on resume.
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => return Err(Error::Internal(format!("a window task ended: {e}"))),
                };
                let status = WindowStatus::of(&outcome);
                let entry = LedgerEntry { window, status, finished_at: format_ms(now_ms()), outcome };
                ledger.record(&entry).await?;
                progress.window_finished(window, &entry.outcome);
                summary.window_finished(&entry, &mut tally);
            }
            _ = ticker.tick() => progress.tick(),
            _ = interrupt.recv(), if summary.interrupted.is_none() => {
                interrupted(&mut summary, &mut running, Signal::Interrupt);
            }
            _ = terminate.recv(), if summary.interrupted.is_none() => {
                interrupted(&mut summary, &mut running, Signal::Terminate);
            }
        }
    }
    progress.finish();
    summary.windows_not_attempted = pending.count() as u64;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Starts pending windows until `run.parallel` are in flight, each in a span that names it.
fn start_windows<D: Destination>(
    pending: &mut impl Iterator<Item = Window>,
    running: &mut JoinSet<(Window, WindowOutcome)>,
    worker: &Worker<D>,
    run: &LocalRun,
    live: &Arc<LiveCounters>,
) {
    while running.len() < run.parallel {
        let Some(window) = pending.next() else { break };
        let span = tracing::info_span!("window", window = %window);
        running.spawn(
            import_with_attempts(worker.clone(), window, run.window_attempts, live.clone())
                .instrument(span),
        );
    }
}

fn interrupted(
    summary: &mut RunSummary,
    running: &mut JoinSet<(Window, WindowOutcome)>,
    signal: Signal,
) {
    tracing::warn!(
        signal = signal.name(),
        windows_in_flight = running.len(),
        "stopping; windows in flight are imported again on resume"
    );
    summary.interrupted = Some(signal);
    running.abort_all();
}

fn signal(kind: SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind)
        .map_err(|e| Error::Internal(format!("cannot listen for signals: {e}")))
}

async fn import_with_attempts<D: Destination>(
    worker: Worker<D>,
    window: Window,
    attempts: usize,
    live: Arc<LiveCounters>,
) -> (Window, WindowOutcome) {
    let mut attempt = 1;
    loop {
        let outcome = worker.import_window(window, live.clone()).await;
        match &outcome.error {
            Some(error) if error.transient && attempt < attempts => {
                tracing::warn!(window = %window, attempt, error = %error.message, "window failed; importing it again");
                tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
                attempt += 1;
            }
            _ => return (window, outcome),
        }
    }
}
