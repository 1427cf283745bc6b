//! What a ledger records, apart from where it is kept: an import's state, one window's record
//! (a compact JSON line a person can still read, bounded in size), and the compacted ranges of
//! done windows. The planner reads these; the ConfigMap ledger stores them.

use serde::{Deserialize, Serialize};

use super::{LedgerEntry, WindowStatus};
use crate::error::{Error, Result};
use crate::outcome::WindowError;
use crate::timespec::format_ms;
use crate::window::Window;

/// Windows that did not import cleanly before the import stops by itself: each keeps a
/// record (the scheduler cannot compact a failure), and a person should look long before.
pub const MAX_PROBLEM_RECORDS: usize = 200;
/// The most a window's record may take, messages included.
pub const RECORD_BYTES: usize = 2_048;
const MESSAGE_BYTES: usize = 300;
pub(crate) const REASONS_KEPT: usize = 3;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    Running,
    Stopped,
    Finished,
    Failed,
}

impl ImportState {
    pub(crate) fn parse(object: &str, text: &str) -> Result<Self> {
        match text.trim() {
            "running" => Ok(ImportState::Running),
            "stopped" => Ok(ImportState::Stopped),
            "finished" => Ok(ImportState::Finished),
            "failed" => Ok(ImportState::Failed),
            other => Err(Error::ClusterState {
                object: object.to_string(),
                reason: format!(
                    "state {other:?} is not running, stopped, finished or failed; was it edited by hand? `promimport stop` or `resume` sets it"
                ),
            }),
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
    /// Samples of both kinds; `histograms_*` count the native histogram samples among them.
    pub read: u64,
    pub written: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub histograms_read: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub histograms_written: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    pub seconds: f64,
    /// Seconds spent waiting on the destination's ingestion rate limit, and the limit.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub waited: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    pub at: String,
    /// Why samples were refused or skipped, with the fix (the first few, each bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WindowError>,
    /// The destination refused the whole window for a reason that applies to all history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stops_import: bool,
    /// `destination.blocks`: the window's blocks (one a 2h part), their IDs and bytes. Read
    /// from a single `block` too, as written before windows could be longer than one block.
    #[serde(
        default,
        alias = "block",
        deserialize_with = "crate::outcome::one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub blocks: Vec<crate::outcome::BlockWritten>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

/// At most about `bytes` bytes of `text`, cut at a character boundary and marked where cut.
fn bounded(text: &str, bytes: usize) -> String {
    if text.len() <= bytes {
        return text.to_string();
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl WindowRecord {
    pub fn from_entry(entry: &LedgerEntry) -> Self {
        let o = &entry.outcome;
        // A refusal of all history first: it is why the import stops, and what the fix is.
        let mut rejected: Vec<_> = o.rejected.iter().collect();
        rejected.sort_by_key(|r| !r.reason.rejects_all_history());
        let mut reasons: Vec<String> = rejected
            .into_iter()
            .map(|r| {
                let histograms = match r.histograms {
                    0 => String::new(),
                    n => format!(" ({n} native histogram)"),
                };
                format!(
                    "{}{histograms} samples rejected as {}: {:?}; fix: {}",
                    r.samples,
                    r.reason,
                    r.message,
                    r.reason.fix()
                )
            })
            .collect();
        reasons.extend(o.skipped.iter().map(|(reason, n)| format!("{n} {reason}")));
        reasons.extend(o.notes.iter().cloned());
        reasons.truncate(REASONS_KEPT);
        WindowRecord {
            status: entry.status,
            start: format_ms(entry.window.start_ms),
            end: format_ms(entry.window.end_ms),
            series: o.series,
            read: o.samples_read,
            written: o.samples_written,
            histograms_read: o.histograms_read,
            histograms_written: o.histograms_written,
            rejected: o.samples_rejected(),
            skipped: o.samples_skipped(),
            seconds: (o.seconds * 100.0).round() / 100.0,
            waited: (o.throttled_seconds * 100.0).round() / 100.0,
            rate_limit: o.rate_limit,
            at: entry.finished_at.clone(),
            reasons: reasons.iter().map(|r| bounded(r, MESSAGE_BYTES)).collect(),
            error: o.error.as_ref().map(|e| WindowError {
                message: bounded(&e.message, MESSAGE_BYTES),
                ..e.clone()
            }),
            stops_import: o.rejects_all_history()
                || o.error.as_ref().is_some_and(|e| e.stops_import),
            blocks: o.written_blocks.clone(),
        }
    }

    /// A final outcome: the scheduler does not run the window again by itself.
    pub fn is_final(&self) -> bool {
        !self.error.as_ref().is_some_and(|e| e.transient)
    }
}

/// A run of adjacent windows recorded as done, compacted into one entry of the `done` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneRange {
    pub window: Window,
    pub windows: u64,
    /// The most series of any one window.
    pub series: u64,
    pub read: u64,
    pub written: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub histograms_read: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub histograms_written: u64,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub waited: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// `destination.blocks`: blocks its windows wrote, and their bytes (a block's ID is made
    /// again from the import and its 2h part of a window: `BlockWriter::block_id`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blocks: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub block_bytes: u64,
    /// When its newest window finished.
    pub at: String,
}

impl DoneRange {
    pub(crate) fn of(window: Window, record: &WindowRecord) -> Self {
        DoneRange {
            window,
            windows: 1,
            series: record.series,
            read: record.read,
            written: record.written,
            histograms_read: record.histograms_read,
            histograms_written: record.histograms_written,
            seconds: record.seconds,
            waited: record.waited,
            rate_limit: record.rate_limit,
            blocks: record.blocks.len() as u64,
            block_bytes: record.blocks.iter().map(|b| b.bytes).sum(),
            at: record.at.clone(),
        }
    }

    fn absorb(&mut self, other: &DoneRange) {
        self.window.start_ms = self.window.start_ms.min(other.window.start_ms);
        self.window.end_ms = self.window.end_ms.max(other.window.end_ms);
        self.windows += other.windows;
        self.blocks += other.blocks;
        self.block_bytes += other.block_bytes;
        self.series = self.series.max(other.series);
        self.read += other.read;
        self.written += other.written;
        self.histograms_read += other.histograms_read;
        self.histograms_written += other.histograms_written;
        self.seconds = ((self.seconds + other.seconds) * 100.0).round() / 100.0;
        self.waited = ((self.waited + other.waited) * 100.0).round() / 100.0;
        self.rate_limit = self.rate_limit.or(other.rate_limit);
        if other.at > self.at {
            self.at = other.at.clone();
        }
    }
}

/// Merges ranges that touch or overlap into as few as cover the same time, keeping counts.
pub fn merge_ranges(mut ranges: Vec<DoneRange>) -> Vec<DoneRange> {
    ranges.sort_by_key(|r| r.window);
    let mut merged: Vec<DoneRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.window.start_ms <= last.window.end_ms => last.absorb(&range),
            _ => merged.push(range),
        }
    }
    merged
}
