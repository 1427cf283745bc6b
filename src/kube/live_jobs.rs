//! An import's Jobs as they are in the cluster: what a Job says of its window, deleting one, and
//! reopening the windows that did not end done. The scheduler and the person's commands
//! (`stop`, `resume`) both stand on this module; neither reaches into the other.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, PropagationPolicy};

use super::ledger::{ConfigMapLedger, LedgerView};
use super::{LABEL_IMPORT, LABEL_WINDOW};
use crate::error::{Result, is_status, kube_error};
use crate::ledger::WindowStatus;
use crate::plan::decide::{RunPhase, WindowRun};
use crate::window::Window;

/// What a Job's status says of its window's run.
pub fn job_info(job: &Job) -> WindowRun {
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
        return WindowRun {
            phase: RunPhase::Failed,
            message,
        };
    }
    if status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        return WindowRun {
            phase: RunPhase::Succeeded,
            message: String::new(),
        };
    }
    WindowRun {
        phase: RunPhase::Active,
        message: String::new(),
    }
}

/// Deletes a Job and, in the background, its pods; a Job already gone is fine.
pub async fn delete_job(jobs: &Api<Job>, name: &str) -> Result<()> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match jobs.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(kube_error(format!("delete Job {name}"))(e)),
    }
}

/// The import's Jobs (whatever generation named them).
pub async fn import_jobs(jobs: &Api<Job>, import: &str) -> Result<Vec<Job>> {
    let listed = jobs
        .list(&ListParams::default().labels(&format!("{LABEL_IMPORT}={import}")))
        .await
        .map_err(kube_error("list Jobs"))?;
    Ok(listed.items)
}

/// Makes the import in `view` run again: the windows that failed or were refused are forgotten
/// and their Jobs deleted, so the scheduler imports them again under the next generation's Job
/// names. Returns how many windows are to be imported again.
pub async fn reopen(
    ledger: &ConfigMapLedger,
    jobs: &Api<Job>,
    view: &LedgerView,
    why: &str,
) -> Result<usize> {
    let retry: Vec<Window> = view
        .windows
        .iter()
        .filter(|(w, r)| r.status != WindowStatus::Done && !view.compacted(**w))
        .map(|(w, _)| *w)
        .collect();
    for job in import_jobs(jobs, &view.spec.name).await? {
        let window = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_WINDOW))
            .and_then(|key| Window::from_key("Job label", key).ok());
        if window.is_some_and(|w| retry.contains(&w)) {
            delete_job(jobs, job.metadata.name.as_deref().unwrap_or_default()).await?;
        }
    }
    ledger.forget(&retry).await?;
    ledger
        .resume(
            view,
            &format!("{why}; {} windows to import again", retry.len()),
        )
        .await?;
    Ok(retry.len())
}
