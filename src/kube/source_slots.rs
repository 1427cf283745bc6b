//! Reads on one source, bounded across every import in a namespace. Each worker Job is one
//! remote read at a time, and Prometheus serves 10 at once (`--storage.remote.read-concurrent-
//! limit`), the rest of them for its own dashboards and rules: so the Jobs reading one source
//! are limited together, whichever import they belong to (`--max-jobs-per-source`).
//!
//! Counting the Jobs that exist is not enough: two schedulers whose rounds overlap both see
//! the same free slots. So a Job is created only after its name is written into the source's
//! slot ConfigMap, `promimport-source.LABEL` (the dot keeps it apart from ledgers: import names
//! have none), by a patch conditional on the version read: of two schedulers taking slots at
//! once, one wins and the other tries again next round, having seen the winner's names. A slot
//! is free again once its Job has finished; one whose Job never appeared (its scheduler died in
//! between) after `ABANDONED_MS`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use super::{LABEL_MANAGED_BY, LABEL_SOURCE, MANAGED_BY};
use crate::error::{Error, Result, is_status, kube_error};

/// A slot whose Job did not appear this long after it was taken is free again.
pub const ABANDONED_MS: i64 = 120_000;

/// The Jobs in the namespace as one listing saw them.
#[derive(Debug, Default)]
pub struct JobsSeen {
    /// Every promimport Job's name.
    pub existing: BTreeSet<String>,
    /// The names of those still running that read this source.
    pub active_on_source: BTreeSet<String>,
}

/// The slots a source's ConfigMap records after a round: those still held, and the new Jobs
/// granted one. Pure, so the rules are tested without a cluster.
pub fn take_slots(
    held: &BTreeMap<String, String>,
    seen: &JobsSeen,
    wanted: &[String],
    limit: usize,
    now_ms: i64,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut kept: BTreeMap<String, String> = held
        .iter()
        .filter(|(job, taken)| {
            seen.active_on_source.contains(*job)
                || (!seen.existing.contains(*job)
                    && taken
                        .parse::<i64>()
                        .is_ok_and(|t| now_ms - t < ABANDONED_MS))
        })
        .map(|(job, taken)| (job.clone(), taken.clone()))
        .collect();
    // Jobs this listing sees running on the source hold a slot whether or not the ConfigMap
    // says so (one created before it existed, or after it was deleted with its owner).
    for job in &seen.active_on_source {
        kept.entry(job.clone())
            .or_insert_with(|| now_ms.to_string());
    }
    // A Job already holding a slot (taken in an earlier round whose create failed) may be
    // created; the others take free slots, in the order asked.
    let mut free = limit.saturating_sub(kept.len());
    let mut granted = Vec::new();
    for job in wanted {
        if kept.contains_key(job) {
            granted.push(job.clone());
        } else if free > 0 {
            free -= 1;
            kept.insert(job.clone(), now_ms.to_string());
            granted.push(job.clone());
        }
    }
    (kept, granted)
}

/// Takes slots on the source for as many of `wanted` (Job names) as are free, and returns
/// those granted: none when another scheduler changed the slots meanwhile (the next round
/// tries again). `owner` is the ledger's owner reference, so the ConfigMap goes with the last
/// import that recreated it.
pub async fn acquire(
    api: &Api<ConfigMap>,
    source_label: &str,
    seen: &JobsSeen,
    wanted: &[String],
    limit: usize,
    owner: serde_json::Value,
    now_ms: i64,
) -> Result<Vec<String>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let name = format!("promimport-source.{source_label}");
    let current = match api
        .get_opt(&name)
        .await
        .map_err(kube_error(format!("read ConfigMap {name}")))?
    {
        Some(current) => current,
        None => {
            let fresh = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([
                        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                        (LABEL_SOURCE.to_string(), source_label.to_string()),
                    ])),
                    owner_references: serde_json::from_value(serde_json::json!([owner])).ok(),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            };
            match api.create(&PostParams::default(), &fresh).await {
                Ok(created) => created,
                // Another scheduler created it first: its slots count from the next round.
                Err(e) if is_status(&e, 409) => return Ok(Vec::new()),
                Err(e) => return Err(kube_error(format!("create ConfigMap {name}"))(e)),
            }
        }
    };
    let held = current.data.clone().unwrap_or_default();
    let (kept, granted) = take_slots(&held, seen, wanted, limit, now_ms);
    if granted.is_empty() {
        return Ok(granted);
    }
    let mut data = serde_json::Map::new();
    for job in held.keys().filter(|job| !kept.contains_key(*job)) {
        data.insert(job.clone(), serde_json::Value::Null);
    }
    for (job, taken) in &kept {
        data.insert(job.clone(), taken.clone().into());
    }
    let version = current
        .metadata
        .resource_version
        .clone()
        .ok_or_else(|| Error::ClusterState {
            object: format!("ConfigMap {name}"),
            reason: "has no resourceVersion".into(),
        })?;
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": version },
        "data": data,
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(granted),
        // Another scheduler took slots since the read: it wins this round.
        Err(e) if is_status(&e, 409) => Ok(Vec::new()),
        Err(e) => Err(kube_error(format!("take slots in ConfigMap {name}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    fn seen(existing: &[&str], active: &[&str]) -> JobsSeen {
        JobsSeen {
            existing: names(existing).into_iter().collect(),
            active_on_source: names(active).into_iter().collect(),
        }
    }

    #[test]
    fn finished_jobs_free_their_slots_and_no_more_than_the_limit_are_granted() {
        let now = 1_000_000;
        let held = BTreeMap::from([
            ("a-w1".to_string(), (now - 5_000).to_string()),
            ("a-w2".to_string(), (now - 5_000).to_string()),
        ]);
        // a-w1 finished, a-w2 runs: one slot of two is free.
        let (kept, granted) = take_slots(
            &held,
            &seen(&["a-w1", "a-w2"], &["a-w2"]),
            &names(&["b-w1", "b-w2"]),
            2,
            now,
        );
        assert_eq!(granted, names(&["b-w1"]));
        assert_eq!(
            kept.keys().cloned().collect::<Vec<_>>(),
            names(&["a-w2", "b-w1"])
        );
    }

    #[test]
    fn a_slot_taken_moments_ago_holds_until_its_job_appears_or_is_abandoned() {
        let now = 1_000_000;
        let held = BTreeMap::from([("a-w1".to_string(), (now - 1_000).to_string())]);
        let nothing_seen = seen(&[], &[]);
        let (_, granted) = take_slots(&held, &nothing_seen, &names(&["b-w1"]), 1, now);
        assert!(granted.is_empty(), "another scheduler's Job is on its way");
        let later = now + ABANDONED_MS;
        let (kept, granted) = take_slots(&held, &nothing_seen, &names(&["b-w1"]), 1, later);
        assert_eq!(
            granted,
            names(&["b-w1"]),
            "its scheduler died before creating it"
        );
        assert!(!kept.contains_key("a-w1"));
    }

    #[test]
    fn running_jobs_the_configmap_does_not_name_still_count() {
        let (kept, granted) = take_slots(
            &BTreeMap::new(),
            &seen(&["old-w1", "old-w2"], &["old-w1", "old-w2"]),
            &names(&["new-w1"]),
            2,
            5,
        );
        assert!(granted.is_empty());
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn a_job_that_holds_its_slot_already_may_be_created_and_takes_no_second_one() {
        let held = BTreeMap::from([("a-w1".to_string(), "10".to_string())]);
        let (kept, granted) = take_slots(
            &held,
            &seen(&[], &[]),
            &names(&["a-w1", "a-w2", "a-w3"]),
            2,
            20,
        );
        assert_eq!(granted, names(&["a-w1", "a-w2"]));
        assert_eq!(kept.len(), 2);
    }
}
