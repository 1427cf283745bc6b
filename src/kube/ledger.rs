//! The ConfigMap ledger: one per import (`promimport-NAME`), readable with kubectl. Each worker
//! records its own window under its own key (`w-START_MS-END_MS`, `Window::key`) with
//! server-side apply and a field manager per window, so concurrent writers never overwrite
//! each other: the API server merges their keys.
//!
//! Size: a ConfigMap holds at most 1 MiB, so the ledger is bounded by design. The scheduler
//! compacts runs of done windows into ranges with summed counts (key `done`), so a year of
//! windows costs a few hundred bytes; a record that is not done keeps bounded messages; and
//! an import stops once `MAX_PROBLEM_RECORDS` windows have failed. What is left per window is
//! at most `RECORD_BYTES`, so the ledger stays far below 1 MiB (measured in a test).
//!
//! State (`state`, `message`) changes are conditional: the scheduler moves an import only
//! from the state it last read (a resourceVersion precondition), so `promimport stop`, which
//! writes unconditionally, always wins over a scheduler mid-round.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::{LABEL_IMPORT, LABEL_LEDGER, LABEL_MANAGED_BY, MANAGED_BY};
use crate::error::{Error, Result, is_status, kube_error};
use crate::ledger::record::{DoneRange, ImportState, WindowRecord, merge_ranges};
use crate::ledger::{LedgerEntry, WindowStatus};
use crate::retry::kube_with_retries;
use crate::spec::ImportSpec;
use crate::timespec::format_ms;
use crate::window::Window;

/// The most resumes an import may have: each is part of its Job names (`kube::jobs::job_name`),
/// which must stay within 63 characters.
pub const MAX_GENERATION: u32 = 9_999_999;
const KEY_SPEC: &str = "import.yaml";
const KEY_STATE: &str = "state";
const KEY_MESSAGE: &str = "message";
const KEY_START: &str = "rangeStart";
const KEY_END: &str = "rangeEnd";
const KEY_DONE: &str = "done";
const KEY_GENERATION: &str = "generation";
const WINDOW_PREFIX: &str = "w-";
/// Conditional state changes lose a race to every worker's record; they try again this often.
const STATE_WRITE_TRIES: usize = 50;

/// Everything a ledger says about an import.
#[derive(Debug, Clone)]
pub struct LedgerView {
    pub spec: ImportSpec,
    pub state: ImportState,
    pub message: String,
    pub range_start_ms: i64,
    /// `None` for an incremental import, whose end moves with time.
    pub range_end_ms: Option<i64>,
    /// Window records not yet compacted, by window.
    pub windows: BTreeMap<Window, WindowRecord>,
    /// Compacted runs of done windows, in time order, not overlapping.
    pub done: Vec<DoneRange>,
    pub uid: String,
    pub created: Option<String>,
    /// What conditional writes compare against.
    pub resource_version: String,
    /// How often the import was resumed: part of the names of the Jobs made since.
    pub generation: u32,
}

impl LedgerView {
    /// Whether a compacted range holds the whole window.
    pub fn compacted(&self, window: Window) -> bool {
        let i = self
            .done
            .partition_point(|r| r.window.end_ms < window.end_ms);
        self.done.get(i).is_some_and(|r| {
            r.window.start_ms <= window.start_ms && window.end_ms <= r.window.end_ms
        })
    }

    /// The window's record, unless a compacted range already counts it as done.
    pub fn record(&self, window: Window) -> Option<&WindowRecord> {
        if self.compacted(window) {
            return None;
        }
        self.windows.get(&window)
    }

    /// The parts of the range recorded as done, compacted or not.
    pub fn done_windows(&self) -> Vec<Window> {
        let mut done: Vec<Window> = self.done.iter().map(|r| r.window).collect();
        done.extend(
            self.windows
                .iter()
                .filter(|(_, r)| r.status == WindowStatus::Done)
                .map(|(w, _)| *w),
        );
        done.sort();
        done
    }

    /// Records the scheduler may fold into the `done` ranges, and ranges that result.
    fn compaction(&self) -> Option<(Vec<DoneRange>, Vec<Window>)> {
        let folded: Vec<Window> = self
            .windows
            .iter()
            .filter(|(w, r)| r.status == WindowStatus::Done || self.compacted(**w))
            .map(|(w, _)| *w)
            .collect();
        if folded.is_empty() {
            return None;
        }
        let mut ranges = self.done.clone();
        ranges.extend(
            folded
                .iter()
                .filter(|w| !self.compacted(**w))
                .map(|w| DoneRange::of(*w, &self.windows[w])),
        );
        Some((merge_ranges(ranges), folded))
    }
}

#[derive(Clone)]
pub struct ConfigMapLedger {
    api: Api<ConfigMap>,
    pub name: String,
}

pub fn window_key(window: Window) -> String {
    format!("{WINDOW_PREFIX}{}", window.key())
}

fn window_manager(window: Window) -> String {
    format!("promimport-w{}", window.key())
}

/// A ledger as a scheduler opened it.
pub struct Opened {
    pub view: LedgerView,
    /// The ledger held an earlier spec of this import (another parallelism, worker resources,
    /// limits), which this scheduler's spec replaced: a new revision of the chart, say.
    pub spec_changed: bool,
}

impl ConfigMapLedger {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        ConfigMapLedger {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
        }
    }

    fn object(&self) -> String {
        format!("ledger ConfigMap {}", self.name)
    }

    /// Creates the ledger of a new import, or returns the existing one. An existing ledger
    /// keeps its range; the spec's other settings (parallelism, worker) are updated from `spec`,
    /// and `Opened::spec_changed` says whether they were.
    pub async fn create_or_load(
        &self,
        spec: &ImportSpec,
        range_start_ms: i64,
        range_end_ms: Option<i64>,
        owner: Option<serde_json::Value>,
    ) -> Result<Opened> {
        if let Some(view) = self.load().await? {
            let stored = &view.spec;
            self.check_same_import(stored, spec)?;
            let spec_changed = stored != spec;
            if spec_changed {
                self.apply(
                    "promimport-spec",
                    BTreeMap::from([(KEY_SPEC.to_string(), to_yaml(spec)?)]),
                )
                .await?;
            }
            return Ok(Opened {
                view: LedgerView {
                    spec: spec.clone(),
                    ..view
                },
                spec_changed,
            });
        }
        self.create(spec, range_start_ms, range_end_ms, owner).await
    }

    /// An import's ledger may take a new spec only where the import stays the same: its
    /// source, destination, selectors, labels and window decide what its records mean.
    fn check_same_import(&self, stored: &ImportSpec, spec: &ImportSpec) -> Result<()> {
        if stored.source.url != spec.source.url
            || stored.destination.url != spec.destination.url
            || stored
                .destination
                .blocks
                .as_ref()
                .map(|b| (&b.url, &b.tenant))
                != spec
                    .destination
                    .blocks
                    .as_ref()
                    .map(|b| (&b.url, &b.tenant))
            || stored.selectors != spec.selectors
            || stored.window != spec.window
            || stored.drop_labels != spec.drop_labels
            || stored.set_labels != spec.set_labels
        {
            return Err(Error::ClusterState {
                object: self.object(),
                reason: format!(
                    "holds an import named {} with another source, destination, selectors, labels or window; \
                     choose another name, or delete the ConfigMap to start over",
                    spec.name
                ),
            });
        }
        Ok(())
    }

    async fn create(
        &self,
        spec: &ImportSpec,
        range_start_ms: i64,
        range_end_ms: Option<i64>,
        owner: Option<serde_json::Value>,
    ) -> Result<Opened> {
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
            Err(e) => return Err(kube_error(format!("create {}", self.object()))(e)),
        }
        let view = self.load().await?.ok_or_else(|| Error::ClusterState {
            object: self.object(),
            reason: "it vanished right after it was created; was it deleted?".into(),
        })?;
        Ok(Opened {
            view,
            spec_changed: false,
        })
    }

    pub async fn load(&self) -> Result<Option<LedgerView>> {
        let api = self.api.clone();
        let name = self.name.clone();
        let found = kube_with_retries(format!("read {}", self.object()), || {
            let (api, name) = (api.clone(), name.clone());
            async move { api.get_opt(&name).await }
        })
        .await?;
        match found {
            Some(config_map) => parse_view(&self.name, &config_map).map(Some),
            None => Ok(None),
        }
    }

    /// Records one window's outcome under the window's own field manager. A transient answer
    /// of the API server (a conflict, an overload, a restart) is retried, so a finished
    /// window is not imported again for want of its record.
    pub async fn record(&self, entry: &LedgerEntry) -> Result<()> {
        let record = serde_json::to_string(&WindowRecord::from_entry(entry))
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.apply(
            &window_manager(entry.window),
            BTreeMap::from([(window_key(entry.window), record)]),
        )
        .await
    }

    /// Removes windows' records, so the scheduler imports them again.
    pub async fn forget(&self, windows: &[Window]) -> Result<()> {
        if windows.is_empty() {
            return Ok(());
        }
        let data: serde_json::Map<String, serde_json::Value> = windows
            .iter()
            .map(|w| (window_key(*w), serde_json::Value::Null))
            .collect();
        self.merge(serde_json::json!({ "data": data })).await
    }

    /// Folds done windows' records into the `done` ranges, in one write that holds only if
    /// nothing changed since `view` was read (another scheduler compacting at once makes it
    /// fail, harmlessly: the next round compacts again). Returns whether it wrote.
    pub async fn compact(&self, view: &LedgerView) -> Result<bool> {
        let Some((ranges, folded)) = view.compaction() else {
            return Ok(false);
        };
        let mut data = serde_json::Map::new();
        data.insert(
            KEY_DONE.to_string(),
            serde_json::Value::String(
                serde_json::to_string(&ranges).map_err(|e| Error::Internal(e.to_string()))?,
            ),
        );
        for window in &folded {
            data.insert(window_key(*window), serde_json::Value::Null);
        }
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": view.resource_version },
            "data": data,
        });
        match self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(kube_error(format!("compact {}", self.object()))(e)),
        }
    }

    /// Records the last `promimport verify` of the import (key `verify`, one JSON line).
    pub async fn record_verify(&self, result: &serde_json::Value) -> Result<()> {
        self.apply(
            "promimport-verify",
            BTreeMap::from([("verify".to_string(), result.to_string())]),
        )
        .await
    }

    /// Makes the import runnable again under the next generation of Job names (see
    /// `jobs::job_name`).
    pub async fn resume(&self, view: &LedgerView, message: &str) -> Result<()> {
        let generation = view.generation + 1;
        if generation > MAX_GENERATION {
            return Err(Error::ClusterState {
                object: self.object(),
                reason: "was resumed more times than Job names can count; delete it to start over"
                    .into(),
            });
        }
        self.merge(serde_json::json!({
            "data": {
                KEY_STATE: ImportState::Running.as_str(),
                KEY_MESSAGE: message,
                KEY_GENERATION: generation.to_string(),
            },
        }))
        .await
    }

    /// Sets the state whatever it is: what a person's `stop` does.
    pub async fn set_state(&self, state: ImportState, message: &str) -> Result<()> {
        self.merge(serde_json::json!({
            "data": { KEY_STATE: state.as_str(), KEY_MESSAGE: message },
        }))
        .await
    }

    /// Moves the import to `to` only while it is in one of `from`, as read just before the
    /// write: a scheduler's change never overwrites a person's `stop` that came in between.
    /// Returns the state found instead when it was not in `from`.
    pub async fn transition(
        &self,
        from: &[ImportState],
        to: ImportState,
        message: &str,
    ) -> Result<std::result::Result<(), ImportState>> {
        for _ in 0..STATE_WRITE_TRIES {
            let view = self.load().await?.ok_or_else(|| Error::ClusterState {
                object: self.object(),
                reason: "was deleted; the import is gone".into(),
            })?;
            if !from.contains(&view.state) {
                return Ok(Err(view.state));
            }
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": view.resource_version },
                "data": { KEY_STATE: to.as_str(), KEY_MESSAGE: message },
            });
            match self
                .api
                .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(Ok(())),
                // A worker's record changed the object since it was read: read it again.
                Err(e) if is_status(&e, 409) => continue,
                Err(e) => return Err(kube_error(format!("update {}", self.object()))(e)),
            }
        }
        Err(Error::ClusterState {
            object: self.object(),
            reason: format!(
                "changed under every one of {STATE_WRITE_TRIES} tries to set its state to {}; try again",
                to.as_str()
            ),
        })
    }

    async fn merge(&self, patch: serde_json::Value) -> Result<()> {
        let (api, name) = (self.api.clone(), self.name.clone());
        kube_with_retries(format!("update {}", self.object()), || {
            let (api, name, patch) = (api.clone(), name.clone(), patch.clone());
            async move {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
        })
        .await?;
        Ok(())
    }

    async fn apply(&self, manager: &str, data: BTreeMap<String, String>) -> Result<()> {
        let patch = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": self.name },
            "data": data,
        });
        let (api, name, manager) = (self.api.clone(), self.name.clone(), manager.to_string());
        kube_with_retries(format!("update {}", self.object()), || {
            let (api, name, patch) = (api.clone(), name.clone(), patch.clone());
            let params = PatchParams::apply(&manager).force();
            async move { api.patch(&name, &params, &Patch::Apply(&patch)).await }
        })
        .await?;
        Ok(())
    }
}

impl crate::ledger::Ledger for ConfigMapLedger {
    async fn record(&mut self, entry: &LedgerEntry) -> Result<()> {
        ConfigMapLedger::record(self, entry).await
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
    let object = format!("ledger ConfigMap {name}");
    let bad = |reason: String| Error::ClusterState {
        object: object.clone(),
        reason: format!("{reason}; was it edited by hand? delete it to start the import over"),
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
        let Some(window) = key.strip_prefix(WINDOW_PREFIX) else {
            continue;
        };
        let window = Window::from_key(&format!("{object} key {key}"), window)?;
        let record: WindowRecord =
            serde_json::from_str(value).map_err(|e| bad(format!("{key}: {e}")))?;
        windows.insert(window, record);
    }
    let done = match data.get(KEY_DONE) {
        Some(text) => {
            let ranges: Vec<DoneRange> =
                serde_json::from_str(text).map_err(|e| bad(format!("{KEY_DONE}: {e}")))?;
            if ranges.iter().any(|r| r.window.start_ms >= r.window.end_ms) {
                return Err(bad(format!("{KEY_DONE} holds an empty range")));
            }
            merge_ranges(ranges)
        }
        None => Vec::new(),
    };
    Ok(LedgerView {
        spec,
        state: ImportState::parse(&object, data.get(KEY_STATE).map_or("", String::as_str))?,
        message: data.get(KEY_MESSAGE).cloned().unwrap_or_default(),
        range_start_ms,
        range_end_ms: time(KEY_END)?,
        windows,
        done,
        uid: config_map.metadata.uid.clone().unwrap_or_default(),
        created: config_map
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        resource_version: config_map
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
        generation: data
            .get(KEY_GENERATION)
            .map(|g| match g.parse::<u32>() {
                Ok(g) if g <= MAX_GENERATION => Ok(g),
                _ => Err(bad(format!(
                    "{KEY_GENERATION} {g:?} is not a whole number up to {}",
                    MAX_GENERATION
                ))),
            })
            .transpose()?
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::RejectReason;
    use crate::ledger::record::{MAX_PROBLEM_RECORDS, REASONS_KEPT, RECORD_BYTES};
    use crate::outcome::{WindowError, WindowOutcome};

    const H: i64 = 3_600_000;
    const BASE: i64 = 1_793_491_200_000;

    fn entry(window: Window, status: WindowStatus, outcome: WindowOutcome) -> LedgerEntry {
        LedgerEntry {
            window,
            status,
            finished_at: "2026-11-24T21:00:00Z".into(),
            outcome,
        }
    }

    fn done(i: i64) -> (Window, WindowRecord) {
        let window = Window {
            start_ms: BASE + i * H,
            end_ms: BASE + (i + 1) * H,
        };
        let outcome = WindowOutcome {
            series: 10_000,
            samples_read: 4_800_000,
            samples_written: 4_800_000,
            seconds: 12.3456,
            ..Default::default()
        };
        (
            window,
            WindowRecord::from_entry(&entry(window, WindowStatus::Done, outcome)),
        )
    }

    fn failed(i: i64, message: &str) -> (Window, WindowRecord) {
        let window = Window {
            start_ms: BASE + i * H,
            end_ms: BASE + (i + 1) * H,
        };
        let mut outcome = WindowOutcome {
            samples_read: 5,
            ..Default::default()
        };
        for n in 0..6 {
            outcome.add_rejection(RejectReason::Other(format!("{n}{message}")), 1, 0, message);
        }
        outcome.error = Some(WindowError {
            message: message.into(),
            transient: false,
            stops_import: false,
        });
        (
            window,
            WindowRecord::from_entry(&entry(window, WindowStatus::Failed, outcome)),
        )
    }

    fn view(windows: BTreeMap<Window, WindowRecord>, done: Vec<DoneRange>) -> LedgerView {
        LedgerView {
            spec: ImportSpec::from_yaml(
                "t",
                "name: a\nsource: {url: \"http://s/api/v1/read\"}\ndestination: {url: \"http://d/api/v1/write\"}\n",
            )
            .unwrap(),
            state: ImportState::Running,
            message: String::new(),
            range_start_ms: BASE,
            range_end_ms: None,
            windows,
            done,
            uid: String::new(),
            created: None,
            resource_version: "1".into(),
            generation: 0,
        }
    }

    /// The ConfigMap's data as the scheduler leaves it after compacting: what the 1 MiB
    /// limit applies to.
    fn compacted_size(view: &LedgerView) -> usize {
        let (ranges, folded) = view.compaction().unwrap_or((view.done.clone(), Vec::new()));
        let mut size = serde_json::to_string(&ranges).unwrap().len() + KEY_DONE.len();
        for (window, record) in &view.windows {
            if !folded.contains(window) {
                size += window_key(*window).len() + serde_json::to_string(record).unwrap().len();
            }
        }
        size
    }

    #[test]
    fn a_record_reads_back_and_its_key_is_the_window_to_the_millisecond() {
        let (window, record) = done(0);
        let json = serde_json::to_string(&record).unwrap();
        let back: WindowRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.seconds, 12.35);
        assert!(back.is_final());
        let odd = Window {
            start_ms: window.start_ms + 123,
            end_ms: window.end_ms,
        };
        assert_eq!(window_key(odd), "w-1793491200123-1793494800000");
        assert_eq!(
            Window::from_key("k", window_key(odd).strip_prefix(WINDOW_PREFIX).unwrap()).unwrap(),
            odd
        );
    }

    /// A window's blocks read back, and a record written when a window had one block (its
    /// `block` object) reads as a list of that one.
    #[test]
    fn a_windows_blocks_read_back_and_a_single_block_record_still_reads() {
        let (_, mut record) = done(0);
        let block = |id: &str| crate::outcome::BlockWritten {
            id: id.into(),
            bytes: 100,
            existed: false,
        };
        record.blocks = vec![block("A"), block("B")];
        let json = serde_json::to_string(&record).unwrap();
        let back: WindowRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.blocks, record.blocks);
        let mut old = serde_json::to_value(&record).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("blocks");
        fields.insert("block".into(), serde_json::json!({"id": "A", "bytes": 100}));
        let back: WindowRecord = serde_json::from_value(old).unwrap();
        assert_eq!(back.blocks, [block("A")]);
        let range = DoneRange::of(Window::new(0, 1).unwrap(), &back);
        assert_eq!((range.blocks, range.block_bytes), (1, 100));
    }

    #[test]
    fn a_refused_window_carries_the_reason_and_stops_the_import() {
        let mut outcome = WindowOutcome {
            samples_read: 5,
            ..Default::default()
        };
        outcome.add_rejection(RejectReason::OutOfBounds, 5, 0, "out of bounds");
        let window = Window {
            start_ms: 0,
            end_ms: 1,
        };
        let record = WindowRecord::from_entry(&entry(window, WindowStatus::Rejected, outcome));
        assert!(record.stops_import);
        assert!(
            record.reasons[0].contains("out_of_order_time_window"),
            "{:?}",
            record.reasons
        );
    }

    #[test]
    fn a_record_with_huge_messages_stays_within_its_bound() {
        let (_, record) = failed(0, &"é".repeat(100_000));
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.len() < RECORD_BYTES, "{} bytes", json.len());
        assert_eq!(record.reasons.len(), REASONS_KEPT);
    }

    #[test]
    fn a_year_of_hourly_windows_compacts_to_one_small_range_with_summed_counts() {
        let windows: BTreeMap<_, _> = (0..24 * 365).map(done).collect();
        let uncompacted = view(windows, Vec::new());
        let (ranges, folded) = uncompacted.compaction().unwrap();
        assert_eq!(folded.len(), 24 * 365);
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].windows, 24 * 365);
        assert_eq!(ranges[0].read, 24 * 365 * 4_800_000);
        assert_eq!(
            ranges[0].window.end_ms - ranges[0].window.start_ms,
            24 * 365 * H
        );
        let size = compacted_size(&uncompacted);
        assert!(size < 1_024, "a year of windows takes {size} bytes");
        // Compacted, every window reads as done and no record is left to count twice.
        let after = view(BTreeMap::new(), ranges);
        assert!((0..24 * 365).all(|i| after.compacted(done(i).0)));
        assert!(!after.compacted(done(24 * 365).0));
        assert_eq!(after.done_windows().len(), 1);
    }

    #[test]
    fn many_failed_windows_with_long_messages_keep_the_ledger_under_a_mebibyte() {
        // The worst the scheduler lets happen: MAX_PROBLEM_RECORDS failures with huge
        // messages, each between two done windows so no two done runs merge, plus a full
        // round of done records not yet compacted.
        let mut windows = BTreeMap::new();
        for i in 0..MAX_PROBLEM_RECORDS as i64 {
            let (w, r) = failed(2 * i, &"x".repeat(50_000));
            windows.insert(w, r);
            let (w, r) = done(2 * i + 1);
            windows.insert(w, r);
        }
        let size = compacted_size(&view(windows, Vec::new()));
        assert!(size < 1_048_576 / 2, "{size} bytes");
        eprintln!("ledger with {MAX_PROBLEM_RECORDS} long failures: {size} bytes");
    }

    #[test]
    fn ranges_that_touch_merge_and_a_half_compacted_ledger_counts_each_window_once() {
        let a = DoneRange::of(done(0).0, &done(0).1);
        let b = DoneRange::of(done(1).0, &done(1).1);
        let c = DoneRange::of(done(5).0, &done(5).1);
        let merged = merge_ranges(vec![c.clone(), b, a]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].windows, 2);
        // A record the last compaction folded but did not remove (it failed in between):
        // it is covered, so it is folded again without being added twice.
        let half = view(BTreeMap::from([done(0)]), merged.clone());
        assert!(half.record(done(0).0).is_none());
        let (ranges, folded) = half.compaction().unwrap();
        assert_eq!(ranges, merged);
        assert_eq!(folded, vec![done(0).0]);
    }
}
