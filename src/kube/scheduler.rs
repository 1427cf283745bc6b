//! The scheduler: a reconcile loop that turns an import into one Job per window. It keeps no
//! state of its own: each round it reads the ledger and the Jobs that exist and decides what to
//! create, so it can be killed and run again at any time. A window never gets a second Job
//! (names are deterministic) and a window recorded as final is never imported again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, PostParams};

use super::jobs::job_for_window;
use super::ledger::{ConfigMapLedger, ImportState, LedgerView, MAX_WINDOWS, WindowRecord};
use super::{LABEL_IMPORT, LABEL_MANAGED_BY, LABEL_WINDOW, MANAGED_BY, is_status, kube_error};
use crate::error::{Error, Result};
use crate::ledger::{LedgerEntry, WindowStatus};
use crate::outcome::{WindowError, WindowOutcome};
use crate::plan::{Window, plan_windows};
use crate::spec::ImportSpec;
use crate::timespec::now_ms;
use crate::timespec::{format_ms, parse_duration, parse_time};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    Active,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    pub phase: JobPhase,
    /// Why a failed Job failed (its Failed condition).
    pub message: String,
}

/// What one round of the loop does.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    pub create: Vec<Window>,
    /// Windows whose Job failed for good without a final record from the worker.
    pub mark_failed: Vec<(Window, String)>,
    /// Set when nothing is left to do: the import's final state and why.
    pub finished: Option<(ImportState, String)>,
    pub done: usize,
    pub active: usize,
    pub failed: usize,
    pub pending: usize,
}

/// The pure core of the loop: from the planned windows, the ledger's records and the Jobs that
/// exist, what to create now (`free` Job slots at most) and whether the import is over.
pub fn decide(
    planned: &[Window],
    records: &BTreeMap<i64, WindowRecord>,
    jobs: &BTreeMap<i64, JobInfo>,
    free: usize,
) -> Decision {
    let mut decision = Decision::default();
    let mut stop_reason = None;
    let mut problems = Vec::new();
    let mut waiting = Vec::new();
    for window in planned {
        if let Some(record) = records.get(&window.start_ms).filter(|r| r.is_final()) {
            if record.status == WindowStatus::Done {
                decision.done += 1;
            } else {
                decision.failed += 1;
                problems.push(format!("window {window} {}", describe(record)));
                if record.stops_import && stop_reason.is_none() {
                    stop_reason = Some(format!(
                        "stopped early: window {window} {}",
                        describe(record)
                    ));
                }
            }
            continue;
        }
        match jobs
            .get(&window.start_ms)
            .map(|j| (j.phase, j.message.as_str()))
        {
            // A succeeded Job has recorded its window; the record shows on a later read.
            Some((JobPhase::Active | JobPhase::Succeeded, _)) => decision.active += 1,
            Some((JobPhase::Failed, message)) => {
                decision.failed += 1;
                decision.mark_failed.push((*window, message.to_string()));
            }
            None => waiting.push(*window),
        }
    }
    decision.pending = waiting.len();
    if stop_reason.is_none() {
        decision.create = waiting.into_iter().take(free).collect();
    }
    let nothing_left = decision.active == 0
        && decision.mark_failed.is_empty()
        && (decision.pending == 0 || stop_reason.is_some());
    if nothing_left {
        decision.finished = Some(match (stop_reason, problems.is_empty()) {
            (Some(reason), _) => (ImportState::Failed, reason),
            (None, true) => (
                ImportState::Finished,
                format!("{} windows imported, every sample accepted", decision.done),
            ),
            (None, false) => (
                ImportState::Failed,
                format!(
                    "{} of {} windows did not import cleanly; first: {}",
                    problems.len(),
                    planned.len(),
                    problems[0]
                ),
            ),
        });
    }
    decision
}

fn describe(record: &WindowRecord) -> String {
    match (&record.error, record.reasons.first()) {
        (Some(error), _) => format!("failed: {}", error.message),
        (None, Some(reason)) => format!("incomplete: {reason}"),
        (None, None) => format!("{:?}", record.status),
    }
}

pub struct SchedulerOptions {
    pub namespace: String,
    /// Active Jobs across every import in the namespace.
    pub max_active_jobs: usize,
    pub poll: Duration,
    pub timeout: Option<Duration>,
    /// A ConfigMap that owns the ledger (the chart's spec ConfigMap), so that deleting it
    /// (`helm uninstall`) deletes the ledger, and with it the Jobs and their pods.
    pub owner_config_map: Option<String>,
}

/// Runs the loop until the import is finished, failed or stopped (an incremental import: until
/// it has caught up). Returns the final state.
pub async fn run(
    client: kube::Client,
    spec: &ImportSpec,
    options: &SchedulerOptions,
) -> Result<ImportState> {
    let started = Instant::now();
    let now = now_ms();
    let window_ms = spec.window_ms()?;
    let range_start = parse_time("start", &spec.start, now)?;
    let range_end = match &spec.incremental {
        Some(_) => None,
        None => Some(parse_time("end", &spec.end, now)?),
    };
    if let Some(end) = range_end {
        Window::new(range_start, end)?;
    }
    let ledger = ConfigMapLedger::new(client.clone(), &options.namespace, &spec.ledger_name());
    let owner = match &options.owner_config_map {
        Some(name) => Some(owner_reference(client.clone(), &options.namespace, name).await?),
        None => None,
    };
    let view = ledger
        .create_or_load(spec, range_start, range_end, owner)
        .await?;
    if view.state != ImportState::Running
        && spec.incremental.is_some()
        && view.state != ImportState::Stopped
    {
        // A finished or failed incremental import runs again on the next schedule.
        ledger.set_state(ImportState::Running, "").await?;
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &options.namespace);
    tracing::info!(import = %spec.name, namespace = %options.namespace, ledger = %ledger.name, "scheduler starting");
    loop {
        let view = ledger.load().await?.ok_or_else(|| Error::Kubernetes {
            action: format!("schedule import {}", spec.name),
            message: format!("the ledger ConfigMap {} was deleted", ledger.name),
        })?;
        if view.state != ImportState::Running {
            tracing::info!(import = %spec.name, state = view.state.as_str(), message = %view.message, "import is not running; scheduler exits");
            return Ok(view.state);
        }
        let range = match range_of(&view, spec, window_ms)? {
            Some(range) => range,
            None => {
                tracing::info!(import = %spec.name, "nothing to import yet");
                return Ok(ImportState::Running);
            }
        };
        let planned = plan_windows(range, window_ms, &[]);
        if planned.len() > MAX_WINDOWS {
            return Err(Error::invalid(
                "window",
                &spec.window,
                format!(
                    "{} windows do not fit the ConfigMap ledger (at most {MAX_WINDOWS}); use a longer window",
                    planned.len()
                ),
            ));
        }
        let (ours, active_everywhere) = list_jobs(&jobs, &spec.name).await?;
        let ours_active = ours
            .values()
            .filter(|j| j.phase == JobPhase::Active)
            .count();
        let free = spec
            .parallelism
            .saturating_sub(ours_active)
            .min(options.max_active_jobs.saturating_sub(active_everywhere));
        let decision = decide(&planned, &view.windows, &ours, free);
        for (window, message) in &decision.mark_failed {
            ledger.record(&failed_entry(*window, message)).await?;
        }
        for window in &decision.create {
            let job = job_for_window(spec, &ledger.name, &view.uid, *window)?;
            match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => tracing::info!(import = %spec.name, window = %window, "created Job"),
                // It exists: created by an earlier round or another scheduler, or still being deleted.
                Err(e) if is_status(&e, 409) => {}
                Err(e) => return Err(kube_error(format!("create the Job for window {window}"))(e)),
            }
        }
        tracing::info!(
            import = %spec.name,
            done = decision.done,
            active = decision.active + decision.create.len(),
            failed = decision.failed,
            pending = decision.pending - decision.create.len().min(decision.pending),
            "progress"
        );
        if let Some((state, message)) = decision.finished {
            return match (&spec.incremental, state) {
                (Some(_), ImportState::Finished) => {
                    let message = format!("caught up to {}", format_ms(range.end_ms));
                    ledger.set_state(ImportState::Running, &message).await?;
                    tracing::info!(import = %spec.name, %message, "incremental run finished");
                    Ok(ImportState::Finished)
                }
                _ => {
                    ledger.set_state(state, &message).await?;
                    tracing::info!(import = %spec.name, state = state.as_str(), %message, "import over");
                    Ok(state)
                }
            };
        }
        if let Some(timeout) = options.timeout
            && started.elapsed() > timeout
        {
            return Err(Error::Kubernetes {
                action: format!("finish import {} within {timeout:?}", spec.name),
                message: "the scheduler timed out; the import goes on when it runs again".into(),
            });
        }
        tokio::time::sleep(options.poll).await;
    }
}

async fn owner_reference(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<serde_json::Value> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, namespace);
    let owner = api
        .get(name)
        .await
        .map_err(kube_error(format!("read the owner ConfigMap {name}")))?;
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": name,
        "uid": owner.metadata.uid.unwrap_or_default(),
    }))
}

/// The range this round plans: the recorded one, or for an incremental import everything from
/// the start to `now - lag`, cut at a window boundary so only whole windows are imported.
fn range_of(view: &LedgerView, spec: &ImportSpec, window_ms: i64) -> Result<Option<Window>> {
    let end = match (&spec.incremental, view.range_end_ms) {
        (Some(incremental), _) => {
            let lag = parse_duration("incremental.lag", &incremental.lag)?;
            let until = now_ms() - i64::try_from(lag.as_millis()).unwrap_or(i64::MAX / 2);
            until.div_euclid(window_ms) * window_ms
        }
        (None, Some(end)) => end,
        (None, None) => {
            return Err(Error::Internal(format!(
                "ledger {} has no range end",
                spec.ledger_name()
            )));
        }
    };
    Ok((view.range_start_ms < end).then_some(Window {
        start_ms: view.range_start_ms,
        end_ms: end,
    }))
}

/// This import's Jobs by window start, and the number of active Jobs of every import.
async fn list_jobs(jobs: &Api<Job>, import: &str) -> Result<(BTreeMap<i64, JobInfo>, usize)> {
    let all = jobs
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .await
        .map_err(kube_error("list Jobs"))?;
    let mut ours = BTreeMap::new();
    let mut active_everywhere = 0;
    for job in &all.items {
        let info = job_info(job);
        if info.phase == JobPhase::Active {
            active_everywhere += 1;
        }
        let labels = job.metadata.labels.as_ref();
        let is_ours = labels
            .and_then(|l| l.get(LABEL_IMPORT))
            .is_some_and(|i| i == import);
        let start = labels
            .and_then(|l| l.get(LABEL_WINDOW))
            .and_then(|s| s.parse::<i64>().ok());
        if let (true, Some(start), None) =
            (is_ours, start, job.metadata.deletion_timestamp.as_ref())
        {
            ours.insert(start * 1000, info);
        }
    }
    Ok((ours, active_everywhere))
}

pub fn job_info(job: &Job) -> JobInfo {
    let status = job.status.as_ref();
    let failed = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"));
    if let Some(condition) = failed {
        let message = format!(
            "Job failed ({}): {}",
            condition.reason.as_deref().unwrap_or("unknown"),
            condition.message.as_deref().unwrap_or("see the pod's log")
        );
        return JobInfo {
            phase: JobPhase::Failed,
            message,
        };
    }
    if status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        return JobInfo {
            phase: JobPhase::Succeeded,
            message: String::new(),
        };
    }
    JobInfo {
        phase: JobPhase::Active,
        message: String::new(),
    }
}

fn failed_entry(window: Window, message: &str) -> LedgerEntry {
    LedgerEntry {
        window,
        status: WindowStatus::Failed,
        finished_at: format_ms(now_ms()),
        outcome: WindowOutcome {
            error: Some(WindowError {
                message: format!(
                    "{message}; the last attempt's error is in its pod's log; `promimport resume` tries again"
                ),
                transient: false,
                stops_import: false,
            }),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn windows(n: i64) -> Vec<Window> {
        (0..n)
            .map(|i| Window {
                start_ms: i * H,
                end_ms: (i + 1) * H,
            })
            .collect()
    }

    fn record(status: WindowStatus, stops: bool, transient: Option<bool>) -> WindowRecord {
        WindowRecord {
            status,
            start: String::new(),
            end: String::new(),
            series: 1,
            read: 1,
            written: u64::from(status == WindowStatus::Done),
            rejected: 0,
            skipped: 0,
            seconds: 0.1,
            at: String::new(),
            reasons: vec!["1 samples rejected as out of bounds".into()],
            error: transient.map(|transient| WindowError {
                message: "boom".into(),
                transient,
                stops_import: false,
            }),
            stops_import: stops,
        }
    }

    fn job(phase: JobPhase) -> JobInfo {
        JobInfo {
            phase,
            message: "Job failed (BackoffLimitExceeded)".into(),
        }
    }

    #[test]
    fn creates_jobs_for_waiting_windows_up_to_the_free_slots_oldest_first() {
        let records = BTreeMap::from([(0, record(WindowStatus::Done, false, None))]);
        let jobs = BTreeMap::from([(H, job(JobPhase::Active))]);
        let d = decide(&windows(5), &records, &jobs, 2);
        assert_eq!(d.create, windows(5)[2..4].to_vec());
        assert_eq!((d.done, d.active, d.pending), (1, 1, 3));
        assert!(d.finished.is_none());
    }

    #[test]
    fn never_a_second_job_for_a_window_and_never_a_done_window_again() {
        let records = BTreeMap::from([(0, record(WindowStatus::Done, false, None))]);
        let jobs = BTreeMap::from([(0, job(JobPhase::Succeeded)), (H, job(JobPhase::Succeeded))]);
        let d = decide(&windows(2), &records, &jobs, 10);
        assert!(d.create.is_empty());
        assert!(d.finished.is_none(), "waits for the second window's record");
    }

    #[test]
    fn a_transient_record_waits_for_the_job_and_a_failed_job_is_marked() {
        let records = BTreeMap::from([(0, record(WindowStatus::Failed, false, Some(true)))]);
        let jobs = BTreeMap::from([(0, job(JobPhase::Failed))]);
        let d = decide(&windows(1), &records, &jobs, 10);
        assert_eq!(
            d.mark_failed,
            vec![(
                windows(1)[0],
                "Job failed (BackoffLimitExceeded)".to_string()
            )]
        );
        assert!(d.create.is_empty());
    }

    #[test]
    fn a_window_refused_whole_stops_new_jobs_and_fails_the_import_once_the_rest_are_done() {
        let records = BTreeMap::from([(0, record(WindowStatus::Rejected, true, None))]);
        let jobs = BTreeMap::from([(H, job(JobPhase::Active))]);
        let d = decide(&windows(4), &records, &jobs, 10);
        assert!(d.create.is_empty());
        assert!(d.finished.is_none(), "the running window finishes first");
        let d = decide(&windows(4), &records, &BTreeMap::new(), 10);
        let (state, message) = d.finished.unwrap();
        assert_eq!(state, ImportState::Failed);
        assert!(message.starts_with("stopped early"), "{message}");
    }

    #[test]
    fn all_done_finishes_and_any_final_problem_fails() {
        let done: BTreeMap<_, _> = (0..3)
            .map(|i| (i * H, record(WindowStatus::Done, false, None)))
            .collect();
        assert_eq!(
            decide(&windows(3), &done, &BTreeMap::new(), 1)
                .finished
                .unwrap()
                .0,
            ImportState::Finished
        );
        let mut some_failed = done.clone();
        some_failed.insert(H, record(WindowStatus::Failed, false, Some(false)));
        let (state, message) = decide(&windows(3), &some_failed, &BTreeMap::new(), 1)
            .finished
            .unwrap();
        assert_eq!(state, ImportState::Failed);
        assert!(message.contains("1 of 3 windows"), "{message}");
    }
}
