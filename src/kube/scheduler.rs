//! The scheduler: a reconcile loop that turns an import into one Job per window. It keeps no
//! state of its own: each round it reads the ledger and the Jobs that exist and decides what to
//! create, so it can be killed and run again at any time. A window never gets a second Job
//! (names are deterministic) and a window recorded as final is never imported again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, PostParams};
use tracing::Instrument;

use super::jobs::job_for_window;
use super::ledger::{ConfigMapLedger, ImportState, LedgerView, MAX_PROBLEM_RECORDS, WindowRecord};
use super::{LABEL_IMPORT, LABEL_MANAGED_BY, LABEL_WINDOW, MANAGED_BY, is_status, kube_error};
use crate::error::{Error, Result};
use crate::ledger::{LedgerEntry, WindowStatus};
use crate::outcome::{WindowError, WindowOutcome};
use crate::plan::{Window, check_plan, plan_windows};
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

/// The pure core of the loop: from the planned windows, the ledger's records (and which
/// windows its compacted ranges hold), and the Jobs that exist, what to create now (`free`
/// Job slots at most) and whether the import is over. Windows are matched exactly, by their
/// start and end to the millisecond.
pub fn decide(
    planned: &[Window],
    records: &BTreeMap<Window, WindowRecord>,
    compacted: &dyn Fn(Window) -> bool,
    jobs: &BTreeMap<Window, JobInfo>,
    free: usize,
) -> Decision {
    let mut decision = Decision::default();
    let mut stop_reason = None;
    let mut problems = Vec::new();
    let mut waiting = Vec::new();
    for window in planned {
        if compacted(*window) {
            decision.done += 1;
            continue;
        }
        if let Some(record) = records.get(window).filter(|r| r.is_final()) {
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
        match jobs.get(window).map(|j| (j.phase, j.message.as_str())) {
            // A succeeded Job has recorded its window; the record shows on a later read.
            Some((JobPhase::Active | JobPhase::Succeeded, _)) => decision.active += 1,
            Some((JobPhase::Failed, message)) => {
                decision.failed += 1;
                decision.mark_failed.push((*window, message.to_string()));
            }
            None => waiting.push(*window),
        }
    }
    if stop_reason.is_none() && decision.failed >= MAX_PROBLEM_RECORDS {
        stop_reason = Some(format!(
            "stopped early: {} windows did not import cleanly, first: {}; fix the cause, then `promimport resume`",
            decision.failed,
            problems
                .first()
                .map_or("see the Jobs' logs", String::as_str)
        ));
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
    let span = tracing::info_span!("import", import = %spec.name, namespace = %options.namespace);
    reconcile(client, spec, options).instrument(span).await
}

async fn reconcile(
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
        check_plan(Window::new(range_start, end)?, window_ms)?;
    } else if range_start < now {
        check_plan(Window::new(range_start, now)?, window_ms)?;
    }
    let ledger = ConfigMapLedger::new(client.clone(), &options.namespace, &spec.ledger_name());
    let owner = match &options.owner_config_map {
        Some(name) => Some(owner_reference(client.clone(), &options.namespace, name).await?),
        None => None,
    };
    let view = ledger
        .create_or_load(spec, range_start, range_end, owner)
        .await?;
    if spec.incremental.is_some()
        && matches!(view.state, ImportState::Finished | ImportState::Failed)
    {
        // A finished or failed incremental import runs again on the next schedule; a stopped
        // one stays stopped, even if `stop` comes in between this read and the write.
        let from = [ImportState::Finished, ImportState::Failed];
        if let Err(state) = ledger.transition(&from, ImportState::Running, "").await? {
            return Ok(state);
        }
    }
    if let Err(error) = probe_endpoints(spec).await {
        let message = format!("stopped before the first window: {error}");
        tracing::error!(import = %spec.name, %message, "an endpoint is unreachable");
        return Ok(
            match ledger
                .transition(&[ImportState::Running], ImportState::Failed, &message)
                .await?
            {
                Ok(()) => ImportState::Failed,
                Err(state) => state,
            },
        );
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &options.namespace);
    tracing::info!(import = %spec.name, namespace = %options.namespace, ledger = %ledger.name, "scheduler starting");
    loop {
        let mut view = load(&ledger).await?;
        if view.state != ImportState::Running {
            tracing::info!(import = %spec.name, state = view.state.as_str(), message = %view.message, "import is not running; scheduler exits");
            return Ok(view.state);
        }
        if ledger.compact(&view).await? {
            view = load(&ledger).await?;
        }
        let range = match range_of(&view, spec, window_ms)? {
            Some(range) => range,
            None => {
                tracing::info!(import = %spec.name, "nothing to import yet");
                return Ok(ImportState::Running);
            }
        };
        check_plan(range, window_ms)?;
        let planned = plan_windows(range, window_ms, &[]);
        let (ours, active_everywhere) = list_jobs(&jobs, &spec.name).await?;
        let ours_active = ours
            .values()
            .filter(|j| j.phase == JobPhase::Active)
            .count();
        let free = spec
            .parallelism
            .saturating_sub(ours_active)
            .min(options.max_active_jobs.saturating_sub(active_everywhere));
        let decision = decide(&planned, &view.windows, &|w| view.compacted(w), &ours, free);
        for (window, message) in &decision.mark_failed {
            ledger.record(&failed_entry(*window, message)).await?;
        }
        let created = create_jobs(&jobs, spec, &view, &decision.create).await?;
        if !created.is_empty() {
            // `stop` may have listed the Jobs before these were created: look again, and take
            // them back if the import is no longer running, so a stop always wins.
            let state = load(&ledger).await?.state;
            if state != ImportState::Running {
                for name in &created {
                    super::control::delete_job(&jobs, name).await?;
                }
                tracing::info!(import = %spec.name, state = state.as_str(), "import changed state while Jobs were created; they were deleted");
                return Ok(state);
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
            let (state, message) = match (&spec.incremental, state) {
                (Some(_), ImportState::Finished) => (
                    ImportState::Running,
                    format!("caught up to {}", format_ms(range.end_ms)),
                ),
                _ => (state, message),
            };
            return match ledger
                .transition(&[ImportState::Running], state, &message)
                .await?
            {
                Ok(()) => {
                    tracing::info!(import = %spec.name, state = state.as_str(), %message, "import over");
                    // An incremental import stays running between schedules; this run is done.
                    Ok(if state == ImportState::Running {
                        ImportState::Finished
                    } else {
                        state
                    })
                }
                Err(other) => Ok(other),
            };
        }
        if let Some(timeout) = options.timeout
            && started.elapsed() > timeout
        {
            return Err(Error::SchedulerTimeout {
                import: spec.name.clone(),
                timeout: humantime::format_duration(timeout).to_string(),
            });
        }
        tokio::time::sleep(options.poll).await;
    }
}

async fn load(ledger: &ConfigMapLedger) -> Result<LedgerView> {
    ledger.load().await?.ok_or_else(|| Error::ClusterState {
        object: format!("ledger ConfigMap {}", ledger.name),
        reason: "was deleted while the import ran; the import is gone".into(),
    })
}

/// Creates the windows' Jobs; returns the names of those this call created.
async fn create_jobs(
    jobs: &Api<Job>,
    spec: &ImportSpec,
    view: &LedgerView,
    windows: &[Window],
) -> Result<Vec<String>> {
    let mut created = Vec::new();
    for window in windows {
        let job = job_for_window(
            spec,
            &spec.ledger_name(),
            &view.uid,
            *window,
            view.generation,
        )?;
        match jobs.create(&PostParams::default(), &job).await {
            Ok(_) => {
                tracing::info!(import = %spec.name, window = %window, "created Job");
                created.push(job.metadata.name.unwrap_or_default());
            }
            // It exists: created by an earlier round or another scheduler, or still being deleted.
            Err(e) if is_status(&e, 409) => {}
            Err(e) => return Err(kube_error(format!("create the Job for window {window}"))(e)),
        }
    }
    Ok(created)
}

/// Checks once, quickly, that a connection can be made to both ends, so a wrong URL fails the
/// import in seconds instead of after every window's retries.
async fn probe_endpoints(spec: &ImportSpec) -> Result<()> {
    for (role, endpoint) in [("source", &spec.source), ("destination", &spec.destination)] {
        let url = crate::endpoint::parse_url(role, &endpoint.url)?;
        crate::endpoint::probe(role, &url).await?;
    }
    Ok(())
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

/// This import's Jobs by window (from their labels), and the number of active Jobs of every
/// import in the namespace.
async fn list_jobs(jobs: &Api<Job>, import: &str) -> Result<(BTreeMap<Window, JobInfo>, usize)> {
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
        if !is_ours || job.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = job.metadata.name.as_deref().unwrap_or("");
        let key = labels
            .and_then(|l| l.get(LABEL_WINDOW))
            .ok_or_else(|| Error::ClusterState {
                object: format!("Job {name}"),
                reason: format!("has no {LABEL_WINDOW} label; was it edited by hand? delete it"),
            })?;
        let window = Window::from_key(&format!("Job {name} label {LABEL_WINDOW}"), key)?;
        ours.insert(window, info);
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

    fn w(i: i64) -> Window {
        windows(i + 1)[i as usize]
    }

    fn none(_: Window) -> bool {
        false
    }

    #[test]
    fn creates_jobs_for_waiting_windows_up_to_the_free_slots_oldest_first() {
        let records = BTreeMap::from([(w(0), record(WindowStatus::Done, false, None))]);
        let jobs = BTreeMap::from([(w(1), job(JobPhase::Active))]);
        let d = decide(&windows(5), &records, &none, &jobs, 2);
        assert_eq!(d.create, windows(5)[2..4].to_vec());
        assert_eq!((d.done, d.active, d.pending), (1, 1, 3));
        assert!(d.finished.is_none());
    }

    #[test]
    fn a_first_window_starting_mid_second_is_found_from_its_record_and_its_job() {
        // `now-30h` carries milliseconds: the first window starts off a whole second.
        let range = Window {
            start_ms: 1_793_491_234_567,
            end_ms: 1_793_491_234_567 + 5 * H,
        };
        let planned = plan_windows(range, H, &[]);
        let first = planned[0];
        let key = |w: Window| Window::from_key("test", &w.key()).unwrap();
        let jobs = BTreeMap::from([(key(first), job(JobPhase::Succeeded))]);
        let d = decide(&planned, &BTreeMap::new(), &none, &jobs, 10);
        assert!(!d.create.contains(&first), "no second Job for {first}");
        let records = BTreeMap::from([(key(first), record(WindowStatus::Done, false, None))]);
        let all_done: BTreeMap<Window, WindowRecord> = planned
            .iter()
            .map(|w| (key(*w), record(WindowStatus::Done, false, None)))
            .collect();
        assert_eq!(decide(&planned, &records, &none, &jobs, 10).done, 1);
        let d = decide(&planned, &all_done, &none, &BTreeMap::new(), 10);
        assert_eq!(d.finished.unwrap().0, ImportState::Finished);
    }

    #[test]
    fn compacted_windows_count_as_done_and_get_no_job() {
        let d = decide(
            &windows(3),
            &BTreeMap::new(),
            &|w| w.end_ms <= 2 * H,
            &BTreeMap::new(),
            10,
        );
        assert_eq!((d.done, d.create.clone()), (2, vec![w(2)]));
    }

    #[test]
    fn never_a_second_job_for_a_window_and_never_a_done_window_again() {
        let records = BTreeMap::from([(w(0), record(WindowStatus::Done, false, None))]);
        let jobs = BTreeMap::from([
            (w(0), job(JobPhase::Succeeded)),
            (w(1), job(JobPhase::Succeeded)),
        ]);
        let d = decide(&windows(2), &records, &none, &jobs, 10);
        assert!(d.create.is_empty());
        assert!(d.finished.is_none(), "waits for the second window's record");
    }

    #[test]
    fn a_transient_record_waits_for_the_job_and_a_failed_job_is_marked() {
        let records = BTreeMap::from([(w(0), record(WindowStatus::Failed, false, Some(true)))]);
        let jobs = BTreeMap::from([(w(0), job(JobPhase::Failed))]);
        let d = decide(&windows(1), &records, &none, &jobs, 10);
        assert_eq!(
            d.mark_failed,
            vec![(w(0), "Job failed (BackoffLimitExceeded)".to_string())]
        );
        assert!(d.create.is_empty());
    }

    #[test]
    fn a_window_refused_whole_stops_new_jobs_and_fails_the_import_once_the_rest_are_done() {
        let records = BTreeMap::from([(w(0), record(WindowStatus::Rejected, true, None))]);
        let jobs = BTreeMap::from([(w(1), job(JobPhase::Active))]);
        let d = decide(&windows(4), &records, &none, &jobs, 10);
        assert!(d.create.is_empty());
        assert!(d.finished.is_none(), "the running window finishes first");
        let d = decide(&windows(4), &records, &none, &BTreeMap::new(), 10);
        let (state, message) = d.finished.unwrap();
        assert_eq!(state, ImportState::Failed);
        assert!(message.starts_with("stopped early"), "{message}");
    }

    #[test]
    fn so_many_failed_windows_that_the_ledger_would_fill_stop_the_import() {
        let n = MAX_PROBLEM_RECORDS as i64;
        let records: BTreeMap<_, _> = (0..n)
            .map(|i| (w(i), record(WindowStatus::Failed, false, Some(false))))
            .collect();
        let d = decide(&windows(n + 50), &records, &none, &BTreeMap::new(), 10);
        assert!(d.create.is_empty());
        let (state, message) = d.finished.unwrap();
        assert_eq!(state, ImportState::Failed);
        assert!(message.contains("promimport resume"), "{message}");
    }

    #[test]
    fn all_done_finishes_and_any_final_problem_fails() {
        let done: BTreeMap<_, _> = (0..3)
            .map(|i| (w(i), record(WindowStatus::Done, false, None)))
            .collect();
        assert_eq!(
            decide(&windows(3), &done, &none, &BTreeMap::new(), 1)
                .finished
                .unwrap()
                .0,
            ImportState::Finished
        );
        let mut some_failed = done.clone();
        some_failed.insert(w(1), record(WindowStatus::Failed, false, Some(false)));
        let (state, message) = decide(&windows(3), &some_failed, &none, &BTreeMap::new(), 1)
            .finished
            .unwrap();
        assert_eq!(state, ImportState::Failed);
        assert!(message.contains("1 of 3 windows"), "{message}");
    }
}
