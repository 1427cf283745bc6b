//! The ConfigMap ledger: one per import (`promimport-NAME`), readable with kubectl. Each worker
//! records its own window under its own key (`w-START`) with server-side apply and a field
//! manager per window, so concurrent writers never overwrite each other: the API server merges
//! their keys. The scheduler and the control commands own `state` and `message`.
//!
//! Size: a ConfigMap holds at most 1 MiB. A window's record is about 200 bytes, so an import is
//! limited to `MAX_WINDOWS` windows (5 000: 200 days of 1h windows); a larger plan is refused
//! with the fix (a longer window) before anything runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};

use super::{LABEL_IMPORT, LABEL_LEDGER, LABEL_MANAGED_BY, MANAGED_BY, is_status, kube_error};
use crate::error::{Error, Result};
use crate::ledger::{LedgerEntry, WindowStatus};
use crate::outcome::WindowError;
use crate::plan::Window;
use crate::spec::ImportSpec;
use crate::timespec::format_ms;

pub const MAX_WINDOWS: usize = 5_000;
const KEY_SPEC: &str = "import.yaml";
const KEY_STATE: &str = "state";
const KEY_MESSAGE: &str = "message";
const KEY_START: &str = "rangeStart";
const KEY_END: &str = "rangeEnd";
const WINDOW_PREFIX: &str = "w-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    Running,
    Stopped,
    Finished,
    Failed,
}

impl ImportState {
    fn parse(text: &str) -> Self {
        match text.trim() {
            "stopped" => ImportState::Stopped,
            "finished" => ImportState::Finished,
            "failed" => ImportState::Failed,
            _ => ImportState::Running,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Running => "running",
            ImportState::Stopped => "stopped",
            ImportState::Finished => "finished",
            ImportState::Failed => "failed",
        }
    }
}

/// One window as the ledger keeps it: a compact JSON line a person can still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub status: WindowStatus,
    pub start: String,
    pub end: String,
    pub series: u64,
    pub read: u64,
    pub written: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    pub seconds: f64,
    pub at: String,
    /// Why samples were refused or skipped, with the fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WindowError>,
    /// The destination refused the whole window for a reason that applies to all history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stops_import: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl WindowRecord {
    pub fn from_entry(entry: &LedgerEntry) -> Self {
        let o = &entry.outcome;
        let mut reasons: Vec<String> = o
            .rejected
            .iter()
            .map(|r| {
                format!(
                    "{} samples rejected as {}: {:?}; fix: {}",
                    r.samples,
                    r.reason,
                    r.message,
                    r.reason.fix()
                )
            })
            .collect();
        reasons.extend(o.skipped.iter().map(|(reason, n)| format!("{n} {reason}")));
        WindowRecord {
            status: entry.status,
            start: format_ms(entry.window.start_ms),
            end: format_ms(entry.window.end_ms),
            series: o.series,
            read: o.samples_read,
            written: o.samples_written,
            rejected: o.samples_rejected(),
            skipped: o.samples_skipped(),
            seconds: (o.seconds * 100.0).round() / 100.0,
            at: entry.finished_at.clone(),
            reasons,
            error: o.error.clone(),
            stops_import: o.rejects_all_history()
                || o.error.as_ref().is_some_and(|e| e.stops_import),
        }
    }

    /// A final outcome: the scheduler does not run the window again by itself.
    pub fn is_final(&self) -> bool {
        !self.error.as_ref().is_some_and(|e| e.transient)
    }
}

/// Everything a ledger says about an import.
#[derive(Debug, Clone)]
pub struct LedgerView {
    pub spec: ImportSpec,
    pub state: ImportState,
    pub message: String,
    pub range_start_ms: i64,
    /// `None` for an incremental import, whose end moves with time.
    pub range_end_ms: Option<i64>,
    /// By window start.
    pub windows: BTreeMap<i64, WindowRecord>,
    pub uid: String,
    pub created: Option<String>,
}

#[derive(Clone)]
pub struct ConfigMapLedger {
    api: Api<ConfigMap>,
    pub name: String,
}

pub fn window_key(start_ms: i64) -> String {
    format!("{WINDOW_PREFIX}{}", start_ms.div_euclid(1000))
}

fn window_manager(start_ms: i64) -> String {
    format!("promimport-w{}", start_ms.div_euclid(1000))
}

impl ConfigMapLedger {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        ConfigMapLedger {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
        }
    }

    /// Creates the ledger of a new import, or returns the existing one. An existing ledger
    /// keeps its range; the spec's other settings (parallelism, worker) are updated from `spec`.
    pub async fn create_or_load(
        &self,
        spec: &ImportSpec,
        range_start_ms: i64,
        range_end_ms: Option<i64>,
        owner: Option<serde_json::Value>,
    ) -> Result<LedgerView> {
        if let Some(view) = self.load().await? {
            let stored = &view.spec;
            if stored.source.url != spec.source.url
                || stored.destination.url != spec.destination.url
                || stored.selectors != spec.selectors
                || stored.window != spec.window
                || stored.drop_labels != spec.drop_labels
                || stored.set_labels != spec.set_labels
            {
                return Err(Error::Kubernetes {
                    action: format!("schedule import {}", spec.name),
                    message: format!(
                        "ConfigMap {} holds an import of that name with another source, destination, selectors, labels or window; \
                         choose another name, or delete the ConfigMap to start over",
                        self.name
                    ),
                });
            }
            if stored != spec {
                self.apply(
                    "promimport-spec",
                    BTreeMap::from([(KEY_SPEC.to_string(), to_yaml(spec)?)]),
                )
                .await?;
            }
            return Ok(LedgerView {
                spec: spec.clone(),
                ..view
            });
        }
        let mut data = BTreeMap::from([
            (KEY_SPEC.to_string(), to_yaml(spec)?),
            (
                KEY_STATE.to_string(),
                ImportState::Running.as_str().to_string(),
            ),
            (KEY_MESSAGE.to_string(), String::new()),
            (KEY_START.to_string(), format_ms(range_start_ms)),
        ]);
        if let Some(end) = range_end_ms {
            data.insert(KEY_END.to_string(), format_ms(end));
        }
        let config_map = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                    (LABEL_LEDGER.to_string(), "true".to_string()),
                    (LABEL_IMPORT.to_string(), spec.name.clone()),
                ])),
                owner_references: owner
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .map(|o| vec![o]),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        match self.api.create(&PostParams::default(), &config_map).await {
            Ok(_) => {}
            // Another scheduler created it first: theirs is as good as ours.
            Err(e) if is_status(&e, 409) => {}
            Err(e) => return Err(kube_error(format!("create ledger ConfigMap {}", self.name))(e)),
        }
        self.load().await?.ok_or_else(|| Error::Kubernetes {
            action: format!("read ledger ConfigMap {}", self.name),
            message: "it vanished right after it was created".into(),
        })
    }

    pub async fn load(&self) -> Result<Option<LedgerView>> {
        let Some(config_map) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(kube_error(format!("read ledger ConfigMap {}", self.name)))?
        else {
            return Ok(None);
        };
        parse_view(&self.name, &config_map).map(Some)
    }

    /// Records one window's outcome under the window's own field manager.
    pub async fn record(&self, entry: &LedgerEntry) -> Result<()> {
        let record = serde_json::to_string(&WindowRecord::from_entry(entry))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let key = window_key(entry.window.start_ms);
        self.apply(
            &window_manager(entry.window.start_ms),
            BTreeMap::from([(key, record)]),
        )
        .await
    }

    /// Removes a window's record, so the scheduler imports it again.
    pub async fn forget(&self, start_ms: i64) -> Result<()> {
        // Applying nothing as the key's only manager removes the key.
        self.apply(&window_manager(start_ms), BTreeMap::new()).await
    }

    /// Records the last `promimport verify` of the import (key `verify`, one JSON line).
    pub async fn record_verify(&self, result: &serde_json::Value) -> Result<()> {
        self.apply(
            "promimport-verify",
            BTreeMap::from([("verify".to_string(), result.to_string())]),
        )
        .await
    }

    pub async fn set_state(&self, state: ImportState, message: &str) -> Result<()> {
        let data = BTreeMap::from([
            (KEY_STATE.to_string(), state.as_str().to_string()),
            (KEY_MESSAGE.to_string(), message.to_string()),
        ]);
        self.apply("promimport-state", data).await
    }

    async fn apply(&self, manager: &str, data: BTreeMap<String, String>) -> Result<()> {
        let patch = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": self.name },
            "data": data,
        });
        self.api
            .patch(
                &self.name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(kube_error(format!("update ledger ConfigMap {}", self.name)))?;
        Ok(())
    }
}

/// Lists every import's ledger in a namespace.
pub async fn list(client: kube::Client, namespace: &str) -> Result<Vec<LedgerView>> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let list = api
        .list(&kube::api::ListParams::default().labels(&format!("{LABEL_LEDGER}=true")))
        .await
        .map_err(kube_error(format!(
            "list ledger ConfigMaps in namespace {namespace}"
        )))?;
    list.items
        .iter()
        .map(|cm| parse_view(cm.metadata.name.as_deref().unwrap_or(""), cm))
        .collect()
}

fn to_yaml(spec: &ImportSpec) -> Result<String> {
    serde_saphyr::to_string(spec)
        .map_err(|e| Error::Internal(format!("cannot write the import spec as YAML: {e}")))
}

fn parse_view(name: &str, config_map: &ConfigMap) -> Result<LedgerView> {
    let bad = |reason: String| Error::Kubernetes {
        action: format!("read ledger ConfigMap {name}"),
        message: format!("{reason}; was it edited by hand? delete it to start the import over"),
    };
    let empty = BTreeMap::new();
    let data = config_map.data.as_ref().unwrap_or(&empty);
    let spec_text = data
        .get(KEY_SPEC)
        .ok_or_else(|| bad(format!("no {KEY_SPEC}")))?;
    let spec = ImportSpec::from_yaml(&format!("{name}/{KEY_SPEC}"), spec_text)?;
    let time = |key: &str| -> Result<Option<i64>> {
        data.get(key)
            .map(|t| crate::timespec::parse_time("ledger time", t, 0))
            .transpose()
            .map_err(|e| bad(e.to_string()))
    };
    let range_start_ms = time(KEY_START)?.ok_or_else(|| bad(format!("no {KEY_START}")))?;
    let mut windows = BTreeMap::new();
    for (key, value) in data {
        let Some(seconds) = key.strip_prefix(WINDOW_PREFIX) else {
            continue;
        };
        let start: i64 = seconds
            .parse()
            .map_err(|_| bad(format!("key {key} is not w-UNIXSECONDS")))?;
        let record: WindowRecord =
            serde_json::from_str(value).map_err(|e| bad(format!("{key}: {e}")))?;
        windows.insert(start * 1000, record);
    }
    Ok(LedgerView {
        spec,
        state: ImportState::parse(data.get(KEY_STATE).map_or("", String::as_str)),
        message: data.get(KEY_MESSAGE).cloned().unwrap_or_default(),
        range_start_ms,
        range_end_ms: time(KEY_END)?,
        windows,
        uid: config_map.metadata.uid.clone().unwrap_or_default(),
        created: config_map
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    })
}

impl LedgerView {
    /// The windows of the range recorded as done.
    pub fn done(&self) -> Vec<Window> {
        self.windows
            .iter()
            .filter(|(_, r)| r.status == WindowStatus::Done)
            .filter_map(|(start, r)| {
                crate::timespec::parse_time("ledger time", &r.end, 0)
                    .ok()
                    .map(|end_ms| Window {
                        start_ms: *start,
                        end_ms,
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::WindowOutcome;
    use crate::retry::RejectReason;

    #[test]
    fn a_done_window_record_is_small_and_reads_back() {
        let entry = LedgerEntry {
            window: Window {
                start_ms: 1_793_491_200_000,
                end_ms: 1_793_494_800_000,
            },
            status: WindowStatus::Done,
            finished_at: "2026-11-24T21:00:00Z".into(),
            outcome: WindowOutcome {
                series: 10_000,
                samples_read: 4_800_000,
                samples_written: 4_800_000,
                seconds: 12.3456,
                ..Default::default()
            },
        };
        let json = serde_json::to_string(&WindowRecord::from_entry(&entry)).unwrap();
        // The ledger's size limit (MAX_WINDOWS) rests on this.
        assert!(
            json.len() + window_key(0).len() < 1_048_576 / MAX_WINDOWS - 20,
            "{} bytes: {json}",
            json.len()
        );
        let back: WindowRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.seconds, 12.35);
        assert!(back.is_final());
        assert_eq!(window_key(entry.window.start_ms), "w-1793491200");
    }

    #[test]
    fn a_refused_window_carries_the_reason_and_stops_the_import() {
        let mut outcome = WindowOutcome {
            samples_read: 5,
            ..Default::default()
        };
        outcome.add_rejection(RejectReason::OutOfBounds, 5, "out of bounds");
        let entry = LedgerEntry {
            window: Window {
                start_ms: 0,
                end_ms: 1,
            },
            status: WindowStatus::Rejected,
            finished_at: String::new(),
            outcome,
        };
        let record = WindowRecord::from_entry(&entry);
        assert!(record.stops_import);
        assert!(
            record.reasons[0].contains("out_of_order_time_window"),
            "{:?}",
            record.reasons
        );
    }
}
