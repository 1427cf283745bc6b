//! The scheduler: a reconcile loop that turns an import into one Job per window. It keeps no
//! state of its own: each round it reads the ledger and the Jobs that exist and decides what to
//! create, so it can be killed and run again at any time. A window never gets a second Job
//! (names are deterministic) and a window recorded as final is never imported again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams};
use tracing::Instrument;

use super::jobs::{job_for_window, job_name};
use super::ledger::{ConfigMapLedger, LedgerView};
use super::live_jobs::{delete_job, job_info, reopen};
use super::source_slots::JobsSeen;
use super::{LABEL_IMPORT, LABEL_MANAGED_BY, LABEL_WINDOW, MANAGED_BY};
use crate::error::{Error, Result, is_status, kube_error};
use crate::ledger::record::ImportState;
use crate::ledger::{LedgerEntry, WindowStatus};
use crate::outcome::{WindowError, WindowOutcome};
use crate::plan::decide::{RunPhase, Tally, WindowRun, decide};
use crate::plan::{check_plan, plan_windows};
use crate::spec::ImportSpec;
use crate::timespec::now_ms;
use crate::timespec::{format_ms, parse_duration, parse_time};
use crate::window::Window;

pub struct SchedulerOptions {
    pub namespace: String,
    /// Active Jobs across every import in the namespace.
    pub max_active_jobs: usize,
    /// Active Jobs reading one source, across every import in the namespace: each reads one
    /// query at a time, and Prometheus serves 10 remote reads at once by default.
    pub max_jobs_per_source: usize,
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
    let ledger = match begin(client.clone(), spec, options).await? {
        Ok(ledger) => ledger,
        Err(state) => return Ok(state),
    };
    let window_ms = spec.window_ms()?;
    let apis = Apis {
        jobs: Api::namespaced(client.clone(), &options.namespace),
        config_maps: Api::namespaced(client.clone(), &options.namespace),
        pods: Api::namespaced(client, &options.namespace),
    };
    tracing::info!(ledger = %ledger.name, "scheduler starting");
    loop {
        if let Some(state) = round(&ledger, &apis, spec, options, window_ms).await? {
            return Ok(state);
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

/// Resolves the range, creates (or finds) the ledger, wakes a finished incremental import,
/// and checks both ends answer. `Err(state)` when the import is not to run now.
async fn begin(
    client: kube::Client,
    spec: &ImportSpec,
    options: &SchedulerOptions,
) -> Result<std::result::Result<ConfigMapLedger, ImportState>> {
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
    let opened = ledger
        .create_or_load(spec, range_start, range_end, owner)
        .await?;
    let view = opened.view;
    if spec.incremental.is_none() && opened.spec_changed && view.state == ImportState::Failed {
        // A new revision of the import (`helm upgrade` with more memory, a higher limit) is
        // the fix its failure asked for: try the windows that did not end done again. A
        // stopped import stays stopped: a person stopped it.
        let jobs: Api<Job> = Api::namespaced(client.clone(), &options.namespace);
        let again = reopen(&ledger, &jobs, &view, "the import's spec changed").await?;
        tracing::info!(
            windows = again,
            "a failed import's spec changed: its failed windows run again"
        );
    }
    if spec.incremental.is_some()
        && matches!(view.state, ImportState::Finished | ImportState::Failed)
    {
        // A finished or failed incremental import runs again on the next schedule; a stopped
        // one stays stopped, even if `stop` comes in between this read and the write.
        let from = [ImportState::Finished, ImportState::Failed];
        if let Err(state) = ledger.transition(&from, ImportState::Running, "").await? {
            return Ok(Err(state));
        }
    }
    if let Err(error) = probe_endpoints(spec).await {
        let message = format!("stopped before the first window: {error}");
        tracing::error!(%message, "an endpoint is unreachable");
        let transition = ledger
            .transition(&[ImportState::Running], ImportState::Failed, &message)
            .await?;
        return Ok(Err(
            transition.map_or_else(|state| state, |()| ImportState::Failed)
        ));
    }
    Ok(Ok(ledger))
}

/// One round of the loop: compact the ledger, look at the Jobs, create what `decide` says.
/// `Some(state)` when the scheduler is done.
async fn round(
    ledger: &ConfigMapLedger,
    apis: &Apis,
    spec: &ImportSpec,
    options: &SchedulerOptions,
    window_ms: i64,
) -> Result<Option<ImportState>> {
    let mut view = load(ledger).await?;
    if view.state != ImportState::Running {
        tracing::info!(state = view.state.as_str(), reason = %view.message, "import is not running; scheduler exits");
        return Ok(Some(view.state));
    }
    if ledger.compact(&view).await? {
        view = load(ledger).await?;
    }
    let Some(range) = range_of(&view, spec, window_ms)? else {
        tracing::info!("nothing to import yet");
        return Ok(Some(ImportState::Running));
    };
    check_plan(range, window_ms)?;
    let planned = plan_windows(range, window_ms, &[]);
    let jobs = &apis.jobs;
    let (ours, active) = list_jobs(jobs, spec).await?;
    let ours_active = ours
        .values()
        .filter(|j| j.phase == RunPhase::Active)
        .count();
    let free = spec
        .parallelism
        .saturating_sub(ours_active)
        .min(options.max_active_jobs.saturating_sub(active.everywhere));
    let tally = Tally::new(view.range_start_ms, now_ms());
    let decision = decide(
        &planned,
        &view.windows,
        &|w| view.compacted(w),
        &ours,
        free,
        tally,
    );
    for (window, message) in &decision.mark_failed {
        let message = failed_message(message, pods_ending(&apis.pods, spec, *window).await);
        ledger.record(&failed_entry(*window, &message)).await?;
    }
    let slots = SlotRequest {
        api: &apis.config_maps,
        ledger,
        view: &view,
        seen: &active.seen,
    };
    let allowed = source_slots(slots, spec, options, &decision.create).await?;
    let created = create_jobs(jobs, spec, &view, &allowed).await?;
    if let Some(state) = take_back_if_stopped(ledger, jobs, &created).await? {
        return Ok(Some(state));
    }
    tracing::info!(
        done = decision.done,
        active = decision.active + decision.create.len(),
        failed = decision.failed,
        pending = decision.pending - decision.create.len().min(decision.pending),
        "progress"
    );
    match decision.finished {
        Some((state, message)) => conclude(ledger, spec, range, state, message)
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// `stop` may have listed the Jobs before `created` were: look again, and take them back if
/// the import is no longer running, so a stop always wins. The state found then, if so.
async fn take_back_if_stopped(
    ledger: &ConfigMapLedger,
    jobs: &Api<Job>,
    created: &[String],
) -> Result<Option<ImportState>> {
    if created.is_empty() {
        return Ok(None);
    }
    let state = load(ledger).await?.state;
    if state == ImportState::Running {
        return Ok(None);
    }
    for name in created {
        delete_job(jobs, name).await?;
    }
    tracing::info!(
        state = state.as_str(),
        "import changed state while Jobs were created; they were deleted"
    );
    Ok(Some(state))
}

/// Records how the import ended, unless a person changed its state meanwhile. An incremental
/// import that caught up stays running, for its next schedule.
async fn conclude(
    ledger: &ConfigMapLedger,
    spec: &ImportSpec,
    range: Window,
    state: ImportState,
    message: String,
) -> Result<ImportState> {
    let (state, message) = match (&spec.incremental, state) {
        (Some(_), ImportState::Finished) => (
            ImportState::Running,
            format!("caught up to {}", format_ms(range.end_ms)),
        ),
        _ => (state, message),
    };
    match ledger
        .transition(&[ImportState::Running], state, &message)
        .await?
    {
        Ok(()) => {
            tracing::info!(state = state.as_str(), %message, "import over");
            Ok(if state == ImportState::Running {
                ImportState::Finished
            } else {
                state
            })
        }
        Err(other) => Ok(other),
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
        // A bucket's credentials are the workers' (their Secret), not the scheduler's: the
        // first Job says when it cannot be reached.
        if endpoint.blocks.is_some() {
            continue;
        }
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

/// The API clients a round uses.
struct Apis {
    jobs: Api<Job>,
    config_maps: Api<ConfigMap>,
    pods: Api<Pod>,
}

/// What taking slots on the source needs from a round.
struct SlotRequest<'a> {
    api: &'a Api<ConfigMap>,
    ledger: &'a ConfigMapLedger,
    view: &'a LedgerView,
    seen: &'a JobsSeen,
}

/// Active promimport Jobs in the namespace, and every promimport Job's name with those
/// reading the import's source.
#[derive(Debug, Default)]
struct ActiveJobs {
    everywhere: usize,
    seen: JobsSeen,
}

/// The windows of `wanted` whose Jobs may be created now: each takes a slot on the source
/// (`source_slots`), so that the Jobs of all imports on one source stay within
/// `--max-jobs-per-source`.
async fn source_slots(
    request: SlotRequest<'_>,
    spec: &ImportSpec,
    options: &SchedulerOptions,
    wanted: &[Window],
) -> Result<Vec<Window>> {
    let names: Vec<String> = wanted
        .iter()
        .map(|w| job_name(&spec.name, *w, request.view.generation))
        .collect();
    let owner = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": request.ledger.name, "uid": request.view.uid,
    });
    let granted = super::source_slots::acquire(
        request.api,
        &super::source_label(&spec.source.url),
        request.seen,
        &names,
        options.max_jobs_per_source,
        owner,
        now_ms(),
    )
    .await?;
    Ok(wanted
        .iter()
        .zip(&names)
        .filter(|(_, name)| granted.contains(name))
        .map(|(window, _)| *window)
        .collect())
}

/// This import's Jobs by window (from their labels), and what the namespace's promimport Jobs
/// tell the limits: how many are active, their names, and which read this import's source.
async fn list_jobs(
    jobs: &Api<Job>,
    spec: &ImportSpec,
) -> Result<(BTreeMap<Window, WindowRun>, ActiveJobs)> {
    let import = &spec.name;
    let source = super::source_label(&spec.source.url);
    let all = jobs
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .await
        .map_err(kube_error("list Jobs"))?;
    let mut ours = BTreeMap::new();
    let mut active = ActiveJobs::default();
    for job in &all.items {
        let info = job_info(job);
        let labels = job.metadata.labels.as_ref();
        let name = job.metadata.name.clone().unwrap_or_default();
        if info.phase == RunPhase::Active {
            active.everywhere += 1;
            if labels.and_then(|l| l.get(super::LABEL_SOURCE)) == Some(&source) {
                active.seen.active_on_source.insert(name.clone());
            }
        }
        active.seen.existing.insert(name);
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
    Ok((ours, active))
}

/// How a failed window's worker pods ended, where that says more than the Job's condition
/// (which only says the Job reached its backoff limit): killed at the memory limit above all.
/// `None` when no pod says more, or the pods cannot be listed (the failure is recorded anyway).
async fn pods_ending(pods: &Api<Pod>, spec: &ImportSpec, window: Window) -> Option<String> {
    let selector = format!(
        "{LABEL_IMPORT}={},{LABEL_WINDOW}={}",
        spec.name,
        window.key()
    );
    match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(listed) => oom_killed(&listed.items),
        Err(e) => {
            tracing::warn!(%window, error = %e, "cannot list the failed window's pods to say why they ended");
            None
        }
    }
}

/// The advice for pods the kubelet killed at their memory limit (`OOMKilled`): the limit, and
/// a value to raise it to.
pub fn oom_killed(pods: &[Pod]) -> Option<String> {
    let killed = pods.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        let status = statuses.iter().find(|status| {
            [&status.state, &status.last_state]
                .into_iter()
                .any(|state| {
                    let terminated = state.as_ref().and_then(|s| s.terminated.as_ref());
                    terminated.and_then(|t| t.reason.as_deref()) == Some("OOMKilled")
                })
        })?;
        let container = pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .find(|c| c.name == status.name)?;
        let limit = container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| q.0.clone());
        Some(limit)
    })?;
    Some(match killed {
        Some(limit) => {
            let raise = doubled(&limit).map_or_else(String::new, |more| format!(" (e.g. {more})"));
            // Short: the ledger bounds a message, and `failed_entry` adds what to run then.
            format!(
                "its worker was OOMKilled at its memory limit of {limit}: raise \
                 worker.resources.limits.memory{raise} or import a shorter window"
            )
        }
        None => {
            "its worker was OOMKilled (no memory limit of its own: the node ran out of memory): \
                 give it worker.resources.requests.memory or import a shorter window"
                .to_string()
        }
    })
}

/// Twice a memory quantity written with a binary suffix (`256Mi` -> `512Mi`), for advice.
fn doubled(quantity: &str) -> Option<String> {
    let split = quantity.find(|c: char| !c.is_ascii_digit())?;
    let (number, suffix) = quantity.split_at(split);
    let number: u64 = number.parse().ok()?;
    ["Ki", "Mi", "Gi", "Ti"]
        .contains(&suffix)
        .then(|| format!("{}{suffix}", number * 2))
}

/// Why a window's Job failed: what its pods say where they say more (the Job's own condition
/// only says that it reached its backoff limit), else the Job's condition.
fn failed_message(job: &str, pods: Option<String>) -> String {
    match pods {
        Some(why) => format!("Job failed: {why}"),
        None => job.to_string(),
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
                    "{message}; its pod's log has the last error; `promimport resume` or a helm upgrade with the fix retries"
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
    use crate::ledger::record::WindowRecord;

    fn pod(limit: Option<&str>, reason: &str) -> Pod {
        let resources = limit.map_or(
            serde_json::json!({}),
            |l| serde_json::json!({"limits": {"memory": l}}),
        );
        serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "worker", "resources": resources}]},
            "status": {"containerStatuses": [{
                "name": "worker", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": reason}},
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn a_worker_killed_at_its_memory_limit_is_named_with_the_limit_and_a_value_to_raise_it_to() {
        let said = oom_killed(&[pod(Some("16Mi"), "Error"), pod(Some("16Mi"), "OOMKilled")])
            .expect("an OOMKilled pod");
        assert!(
            said.contains("OOMKilled at its memory limit of 16Mi"),
            "{said}"
        );
        assert!(
            said.contains("worker.resources.limits.memory (e.g. 32Mi)"),
            "{said}"
        );
        // The whole advice survives the ledger's bound on a message, with the Job condition
        // that the kubelet's kill comes with, so the way on is never cut off.
        let job = "Job failed (BackoffLimitExceeded): Job has reached the specified backoff limit";
        for said in [said, oom_killed(&[pod(None, "OOMKilled")]).unwrap()] {
            let entry = failed_entry(
                Window::new(0, 7_200_000).unwrap(),
                &failed_message(job, Some(said)),
            );
            let recorded = WindowRecord::from_entry(&entry);
            let message = recorded.error.map(|e| e.message).unwrap_or_default();
            assert!(
                message.ends_with("`promimport resume` or a helm upgrade with the fix retries"),
                "{message}"
            );
        }
        let said = oom_killed(&[pod(None, "OOMKilled")]).unwrap();
        assert!(said.contains("no memory limit of its own"), "{said}");
        assert_eq!(oom_killed(&[pod(Some("16Mi"), "Error")]), None);
        assert_eq!(doubled("1G"), None, "a decimal suffix is left to the user");
        assert_eq!(doubled("256Mi").as_deref(), Some("512Mi"));
    }
}
