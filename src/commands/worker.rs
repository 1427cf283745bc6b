//! `promimport worker`: one window, configured by the environment; what each Job runs.

use std::sync::Arc;

use tracing::Instrument;

use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::kube::ledger::ConfigMapLedger;
use crate::ledger::{LedgerEntry, WindowStatus};
use crate::local::{EXIT_FAILED, EXIT_REJECTED, EXIT_TERMINATED};
use crate::outcome::WindowOutcome;
use crate::timespec::{format_ms, now_ms, parse_time};
use crate::window::Window;
use crate::worker::options::WorkerOptions;
use crate::worker::{LiveCounters, Worker};

/// Imports the window PROMIMPORT_WINDOW_START..END, prints its ledger entry as one JSON line
/// and, in a Job, records it in the import's ledger.
pub async fn worker() -> Result<i32> {
    let options = WorkerOptions::from_env()?;
    let settings = options.settings()?;
    let now = now_ms();
    let time = |variable: &'static str, value: &Option<String>| match value {
        Some(text) => parse_time(variable, text, now),
        None => Err(Error::invalid(
            "environment",
            variable,
            format!(
                "{variable} is not set: give the window, PROMIMPORT_WINDOW_START and PROMIMPORT_WINDOW_END"
            ),
        )),
    };
    let window = Window::new(
        time("PROMIMPORT_WINDOW_START", &options.window_start)?,
        time("PROMIMPORT_WINDOW_END", &options.window_end)?,
    )?;
    let ledger = match &options.ledger {
        Some(name) => {
            let client = crate::kube::client(None, None).await?;
            let namespace = crate::kube::namespace(&client, options.namespace.as_deref());
            Some(ConfigMapLedger::new(client, &namespace, name))
        }
        None => None,
    };
    let span = tracing::info_span!("window", ledger = options.ledger.as_deref().unwrap_or(""), window = %window);
    async move {
        let outcome = match &settings.blocks {
            Some(target) => until_terminated(Worker::blocks(&settings, target)?, window).await?,
            None => until_terminated(Worker::new(&settings)?, window).await?,
        };
        let Some(outcome) = outcome else {
            return Ok(EXIT_TERMINATED);
        };
        let status = WindowStatus::of(&outcome);
        let transient = outcome.error.as_ref().is_some_and(|e| e.transient);
        tracing::info!(
            status = ?status,
            read = outcome.samples_read,
            written = outcome.samples_written,
            rejected = outcome.samples_rejected(),
            skipped = outcome.samples_skipped(),
            error = outcome.error.as_ref().map(|e| e.message.as_str()),
            peak_memory_mib = peak_memory_mib(),
            "worker finished"
        );
        let entry = LedgerEntry {
            window,
            status,
            finished_at: format_ms(now_ms()),
            outcome,
        };
        let line = serde_json::to_string(&entry).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{line}");
        if let Some(ledger) = ledger {
            // Without its record the window would look unfinished: fail, and let the Job retry.
            ledger.record(&entry).await?;
            // In a Job, a final outcome (done, refused, a permanent error) is recorded and must
            // not be retried by the Job's backoff; only a transient failure is.
            return Ok(if transient { EXIT_FAILED } else { 0 });
        }
        Ok(match status {
            WindowStatus::Done => 0,
            WindowStatus::Rejected => EXIT_REJECTED,
            WindowStatus::Failed => EXIT_FAILED,
        })
    }
    .instrument(span)
    .await
}

/// The process's peak resident memory (VmHWM) in MiB, rounded up: what a Job's memory limit
/// must leave room for. `None` where /proc does not say.
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib.div_ceil(1024))
}

/// The window's outcome, or `None` when SIGTERM stopped it first.
async fn until_terminated<D: Destination>(
    worker: Worker<D>,
    window: Window,
) -> Result<Option<WindowOutcome>> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Internal(format!("cannot listen for SIGTERM: {e}")))?;
    tokio::select! {
        outcome = worker.import_window(window, Arc::new(LiveCounters::default())) => Ok(Some(outcome)),
        _ = terminate.recv() => {
            // Stopped (promimport stop deletes the Job): nothing is recorded, so the window
            // is imported again, whole, on resume.
            tracing::warn!("stopped by SIGTERM; the window will be imported again on resume");
            Ok(None)
        }
    }
}
