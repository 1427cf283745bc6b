//! What a person does with imports in a cluster: look at them (`status`), stop one (`stop`),
//! and continue it (`resume`).

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::ledger::{self, ConfigMapLedger, LedgerView};
use super::live_jobs::{delete_job, import_jobs, job_info, reopen};
use super::{LABEL_IMPORT, LABEL_MANAGED_BY, MANAGED_BY};
use crate::error::{Error, Result, kube_error};
use crate::ledger::WindowStatus;
use crate::ledger::record::ImportState;
use crate::plan::count_windows;
use crate::plan::decide::RunPhase;
use crate::progress::human;
use crate::timespec::now_ms;
use crate::timespec::parse_time;
use crate::window::Window;

/// One import as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportStatus {
    pub name: String,
    pub state: String,
    pub message: String,
    pub windows: usize,
    pub done: usize,
    pub running: usize,
    pub failed: usize,
    pub pending: usize,
    pub samples_read: u64,
    pub samples_written: u64,
    pub samples_rejected: u64,
    pub samples_skipped: u64,
    /// Native histogram samples among those read and written.
    pub histograms_read: u64,
    pub histograms_written: u64,
    /// Samples written per second since the import was created.
    pub samples_per_second: f64,
    pub eta_seconds: Option<f64>,
    /// Seconds windows spent waiting on the destination's ingestion rate limit (summed over
    /// windows running at once), and the limit it named.
    pub waited_seconds: f64,
    pub rate_limit: Option<f64>,
    /// The source's load: Jobs of every import in the namespace reading it now, and samples
    /// read from it per second by this import since it was created.
    pub source_jobs: usize,
    pub read_per_second: f64,
    /// `destination.blocks`: where, and the blocks written so far and their bytes.
    pub blocks_into: Option<String>,
    pub blocks: u64,
    pub block_bytes: u64,
    /// The most recent problems, newest first.
    pub last_errors: Vec<String>,
}

const LAST_ERRORS: usize = 3;

pub async fn status(
    client: kube::Client,
    namespace: &str,
    import: Option<&str>,
) -> Result<Vec<ImportStatus>> {
    let mut views = ledger::list(client.clone(), namespace).await?;
    if let Some(name) = import {
        views.retain(|v| v.spec.name == name);
        if views.is_empty() {
            return Err(not_found(name, namespace));
        }
    }
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let listed = jobs
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .await
        .map_err(kube_error("list Jobs"))?;
    let active: Vec<&Job> = listed
        .items
        .iter()
        .filter(|j| job_info(j).phase == RunPhase::Active)
        .collect();
    let label = |job: &Job, name: &str| {
        job.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(name).cloned())
    };
    let mut out = Vec::new();
    for view in views {
        let ours = Some(view.spec.name.clone());
        let running = active
            .iter()
            .filter(|j| label(j, LABEL_IMPORT) == ours)
            .count();
        let source = Some(super::source_label(&view.spec.source.url));
        let on_source = active
            .iter()
            .filter(|j| label(j, super::LABEL_SOURCE) == source)
            .count();
        out.push(summarize(&view, running, on_source));
    }
    Ok(out)
}

/// The numbers of one import, from its ledger (compacted ranges and records), its count of
/// running Jobs and the count of all imports' running Jobs on its source.
pub fn summarize(view: &LedgerView, running: usize, source_jobs: usize) -> ImportStatus {
    let window_ms = view.spec.window_ms().unwrap_or(2 * 3_600_000);
    let end = view.range_end_ms.unwrap_or_else(now_ms);
    let planned = if view.range_start_ms < end {
        count_windows(
            Window {
                start_ms: view.range_start_ms,
                end_ms: end,
            },
            window_ms,
        ) as usize
    } else {
        0
    };
    let (totals, last_errors) = add_up(view);
    let (done, failed) = (totals.done, totals.failed);
    let pending = planned.saturating_sub(done + failed + running);
    let (rate, eta) = pace(view, totals.written, done, pending + running);
    let (read_rate, _) = pace(view, totals.read, done, 0);
    ImportStatus {
        name: view.spec.name.clone(),
        state: view.state.as_str().to_string(),
        message: view.message.clone(),
        windows: planned,
        done,
        running,
        failed,
        pending,
        samples_read: totals.read,
        samples_written: totals.written,
        samples_rejected: totals.rejected,
        samples_skipped: totals.skipped,
        histograms_read: totals.histograms_read,
        histograms_written: totals.histograms_written,
        samples_per_second: rate,
        eta_seconds: eta,
        waited_seconds: totals.waited,
        rate_limit: totals.rate_limit,
        source_jobs,
        read_per_second: read_rate,
        blocks_into: view
            .spec
            .destination
            .blocks
            .as_ref()
            .map(|b| crate::blocks::describe(&b.url, b.tenant.as_deref())),
        blocks: totals.blocks,
        block_bytes: totals.block_bytes,
        last_errors,
    }
}

/// The counts of compacted ranges and of records (a record a range already holds counts once),
/// and the most recent problems, newest first.
fn add_up(view: &LedgerView) -> (Totals, Vec<String>) {
    let mut totals = Totals::default();
    for range in &view.done {
        totals.done += range.windows as usize;
        totals.read += range.read;
        totals.written += range.written;
        totals.histograms_read += range.histograms_read;
        totals.histograms_written += range.histograms_written;
        totals.waited += range.waited;
        totals.rate_limit = totals.rate_limit.or(range.rate_limit);
        totals.blocks += range.blocks;
        totals.block_bytes += range.block_bytes;
    }
    let mut problems: Vec<(&str, String)> = Vec::new();
    for (window, record) in &view.windows {
        if view.compacted(*window) {
            continue;
        }
        totals.read += record.read;
        totals.written += record.written;
        totals.histograms_read += record.histograms_read;
        totals.histograms_written += record.histograms_written;
        totals.rejected += record.rejected;
        totals.skipped += record.skipped;
        totals.waited += record.waited;
        totals.rate_limit = totals.rate_limit.or(record.rate_limit);
        totals.blocks += record.blocks.len() as u64;
        totals.block_bytes += record.blocks.iter().map(|b| b.bytes).sum::<u64>();
        match (record.status, record.is_final()) {
            (WindowStatus::Done, _) => totals.done += 1,
            (_, true) => totals.failed += 1,
            (_, false) => {}
        }
        if record.status != WindowStatus::Done {
            let why = record
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .or_else(|| record.reasons.first().cloned())
                .unwrap_or_default();
            problems.push((
                &record.at,
                format!("[{}, {}): {why}", record.start, record.end),
            ));
        }
    }
    problems.sort_by(|a, b| b.0.cmp(a.0));
    let last = problems
        .into_iter()
        .take(LAST_ERRORS)
        .map(|p| p.1)
        .collect();
    (totals, last)
}

/// Samples (written, or read) per second since the import was created, and the time left at
/// that pace.
/// A running import's rate is up to now; a finished one's up to its last window.
fn pace(view: &LedgerView, written: u64, done: usize, left: usize) -> (f64, Option<f64>) {
    let last_record = view
        .windows
        .values()
        .map(|r| r.at.as_str())
        .chain(view.done.iter().map(|r| r.at.as_str()))
        .filter_map(|at| parse_time("at", at, 0).ok())
        .max();
    let until = match view.state {
        ImportState::Running => now_ms(),
        _ => last_record.unwrap_or_else(now_ms),
    };
    let elapsed = view
        .created
        .as_deref()
        .and_then(|c| parse_time("created", c, 0).ok())
        .map(|created| ((until - created) as f64 / 1000.0).max(1.0));
    let rate = elapsed.map_or(0.0, |e| written as f64 / e);
    let eta = match (elapsed, view.state) {
        (Some(e), ImportState::Running) if done > 0 => Some(e / done as f64 * left as f64),
        _ => None,
    };
    (rate, eta)
}

#[derive(Default)]
struct Totals {
    done: usize,
    failed: usize,
    read: u64,
    written: u64,
    histograms_read: u64,
    histograms_written: u64,
    rejected: u64,
    skipped: u64,
    waited: f64,
    rate_limit: Option<f64>,
    blocks: u64,
    block_bytes: u64,
}

/// `[=========>          ]  45%`: windows finished (done or failed) of all.
pub fn progress_bar(status: &ImportStatus) -> String {
    const WIDTH: usize = 30;
    let finished = status.done + status.failed;
    let fraction = if status.windows == 0 {
        1.0
    } else {
        finished as f64 / status.windows as f64
    };
    let filled = ((fraction * WIDTH as f64).round() as usize).min(WIDTH);
    let arrow = if filled < WIDTH { ">" } else { "" };
    format!(
        "{:<28} [{}{arrow}{}] {:>3.0}%",
        status.name,
        "=".repeat(filled),
        " ".repeat(WIDTH - filled - arrow.len()),
        fraction * 100.0
    )
}

pub fn render_table(imports: &[ImportStatus]) -> String {
    let mut out = format!(
        "{:<28} {:<9} {:>7} {:>6} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>9} {:>8}\n",
        "IMPORT",
        "STATE",
        "WINDOWS",
        "DONE",
        "RUNNING",
        "FAILED",
        "PENDING",
        "READ",
        "WRITTEN",
        "REJECTED",
        "RATE/s",
        "ETA"
    );
    for s in imports {
        out.push_str(&format!(
            "{:<28} {:<9} {:>7} {:>6} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>9} {:>8}\n",
            s.name,
            s.state,
            s.windows,
            s.done,
            s.running,
            s.failed,
            s.pending,
            human(s.samples_read as f64),
            human(s.samples_written as f64),
            human((s.samples_rejected + s.samples_skipped) as f64),
            human(s.samples_per_second),
            s.eta_seconds
                .map_or("-".to_string(), |e| humantime::format_duration(
                    std::time::Duration::from_secs(e as u64)
                )
                .to_string()),
        ));
        if !s.message.is_empty() {
            out.push_str(&format!("  {}\n", s.message));
        }
        if s.state == "running" {
            out.push_str(&format!(
                "  source: {} Jobs of all imports reading it now; this import read {} samples/s\n",
                s.source_jobs,
                human(s.read_per_second)
            ));
        }
        if let Some(into) = &s.blocks_into {
            out.push_str(&format!(
                "  blocks: {} written into {into}, {}B\n",
                s.blocks,
                human(s.block_bytes as f64)
            ));
        }
        if s.histograms_read > 0 {
            out.push_str(&format!(
                "  native histogram samples (counted in READ and WRITTEN): read {}, written {}\n",
                human(s.histograms_read as f64),
                human(s.histograms_written as f64)
            ));
        }
        if let Some(rate) = s.rate_limit {
            out.push_str(&format!(
                "  paced: windows waited {:.0}s in all on the destination's ingestion rate limit ({rate} samples/s; \
                 Cortex/Mimir `ingestion_rate`, `ingestion_burst_size`)\n",
                s.waited_seconds
            ));
        }
        for (i, error) in s.last_errors.iter().enumerate() {
            // The fix is the same for every window refused for one reason: say it once.
            let shown = match (i, error.split_once("; fix: ")) {
                (0, _) | (_, None) => error.as_str(),
                (_, Some((reason, _))) => reason,
            };
            out.push_str(&format!("  error {shown}\n"));
        }
    }
    out
}

/// Stops an import: no new Jobs, running Jobs deleted (their pods get SIGTERM). What was
/// written stays in the destination; `resume` continues.
pub async fn stop(client: kube::Client, namespace: &str, import: &str) -> Result<usize> {
    let ledger = ConfigMapLedger::new(client.clone(), namespace, &format!("promimport-{import}"));
    if ledger.load().await?.is_none() {
        return Err(not_found(import, namespace));
    }
    ledger
        .set_state(
            ImportState::Stopped,
            "stopped by promimport stop; promimport resume continues",
        )
        .await?;
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let mut deleted = 0;
    for job in import_jobs(&jobs, import)
        .await?
        .iter()
        .filter(|j| job_info(j).phase == RunPhase::Active)
    {
        let name = job.metadata.name.clone().unwrap_or_default();
        delete_job(&jobs, &name).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Makes a stopped or failed import runnable again: windows that failed or were refused are
/// forgotten (and their Jobs deleted) so the scheduler imports them again. Returns the spec to
/// schedule.
pub async fn prepare_resume(
    client: kube::Client,
    namespace: &str,
    import: &str,
) -> Result<crate::spec::ImportSpec> {
    let ledger = ConfigMapLedger::new(client.clone(), namespace, &format!("promimport-{import}"));
    let view = ledger
        .load()
        .await?
        .ok_or_else(|| not_found(import, namespace))?;
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    reopen(&ledger, &jobs, &view, "resumed").await?;
    Ok(view.spec)
}

fn not_found(import: &str, namespace: &str) -> Error {
    Error::ClusterState {
        object: format!("import {import}"),
        reason: format!(
            "no ledger ConfigMap promimport-{import} in namespace {namespace}; `promimport status -n {namespace}` lists the imports"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn status_counts_compacted_ranges_and_records_once_each() {
        use crate::ledger::record::{DoneRange, WindowRecord};
        let spec = crate::spec::ImportSpec::from_yaml(
            "t",
            "name: a\nsource: {url: \"http://s/api/v1/read\"}\ndestination: {url: \"http://d/api/v1/write\"}\nwindow: 1h\n",
        )
        .unwrap();
        let h = 3_600_000;
        let w = |i: i64| Window {
            start_ms: i * h,
            end_ms: (i + 1) * h,
        };
        let record = |status: WindowStatus, read: u64, written: u64| WindowRecord {
            status,
            start: String::new(),
            end: String::new(),
            series: 1,
            read,
            written,
            histograms_read: 2,
            histograms_written: 1,
            rejected: read - written,
            skipped: 0,
            seconds: 0.0,
            waited: 1.5,
            rate_limit: Some(25_000.0),
            at: "2026-11-24T00:00:00Z".into(),
            reasons: Vec::new(),
            error: None,
            stops_import: false,
            blocks: Vec::new(),
        };
        let view = LedgerView {
            spec,
            state: ImportState::Running,
            message: String::new(),
            range_start_ms: 0,
            range_end_ms: Some(6 * h),
            // Window 0 is both compacted and still recorded (a compaction cut short).
            windows: BTreeMap::from([
                (w(0), record(WindowStatus::Done, 10, 10)),
                (w(4), record(WindowStatus::Done, 5, 5)),
                (w(5), record(WindowStatus::Rejected, 7, 3)),
            ]),
            done: vec![DoneRange {
                window: Window {
                    start_ms: 0,
                    end_ms: 3 * h,
                },
                windows: 3,
                series: 1,
                read: 30,
                written: 30,
                histograms_read: 6,
                histograms_written: 6,
                seconds: 0.0,
                waited: 10.0,
                rate_limit: None,
                blocks: 2,
                block_bytes: 2_000,
                at: "2026-11-24T00:00:00Z".into(),
            }],
            uid: String::new(),
            created: None,
            resource_version: String::new(),
            generation: 0,
        };
        let status = summarize(&view, 0, 0);
        assert_eq!(
            (status.windows, status.done, status.failed, status.pending),
            (6, 4, 1, 1)
        );
        assert_eq!(
            (
                status.samples_read,
                status.samples_written,
                status.samples_rejected
            ),
            (42, 38, 4)
        );
        // Waiting on the rate limit adds up over compacted ranges and records (window 0's
        // record is compacted, so counted once), and the table names the limit.
        assert_eq!(
            (status.waited_seconds, status.rate_limit),
            (13.0, Some(25_000.0))
        );
        // Histogram samples add up the same way: 6 compacted, 1+1+1 read and 1+1+1 written in
        // windows 4 and 5 (window 0's record is compacted).
        assert_eq!((status.histograms_read, status.histograms_written), (10, 8));
        assert_eq!((status.blocks, status.block_bytes), (2, 2_000));
        let table = render_table(&[status]);
        assert!(
            table.contains("waited 13s in all") && table.contains("25000 samples/s"),
            "{table}"
        );
        assert!(
            table.contains(
                "native histogram samples (counted in READ and WRITTEN): read 10, written 8"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_watch_bar_counts_finished_windows() {
        let mut status = ImportStatus {
            name: "a".into(),
            state: "running".into(),
            message: String::new(),
            windows: 4,
            done: 1,
            running: 1,
            failed: 1,
            pending: 1,
            samples_read: 0,
            samples_written: 0,
            samples_rejected: 0,
            samples_skipped: 0,
            histograms_read: 0,
            histograms_written: 0,
            samples_per_second: 0.0,
            eta_seconds: None,
            waited_seconds: 0.0,
            rate_limit: None,
            source_jobs: 2,
            read_per_second: 12_500.0,
            blocks_into: Some("s3://cortex-blocks (tenant c-7xk2p)".into()),
            blocks: 3,
            block_bytes: 4_096,
            last_errors: Vec::new(),
        };
        let table = render_table(std::slice::from_ref(&status));
        assert!(
            table.contains(
                "  source: 2 Jobs of all imports reading it now; this import read 12.5k samples/s"
            ),
            "a running import shows what it asks of its source: {table}"
        );
        assert!(
            table.contains("  blocks: 3 written into s3://cortex-blocks (tenant c-7xk2p), 4096B"),
            "{table}"
        );
        assert!(
            progress_bar(&status).ends_with("[===============>              ]  50%"),
            "{}",
            progress_bar(&status)
        );
        status.done = 3;
        assert!(
            progress_bar(&status).ends_with("[==============================] 100%"),
            "{}",
            progress_bar(&status)
        );
    }
}
