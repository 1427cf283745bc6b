//! The ledger: which windows of an import are done, and what happened to the others. A window
//! is recorded once its worker has finished it; an import resumes by planning around the
//! windows recorded as done. Re-importing a window is harmless (receivers accept an identical
//! re-send), so the ledger may be at-least-once, never at-most-once.

pub mod file;
pub mod record;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::outcome::WindowOutcome;
use crate::window::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    /// Every sample read was accepted.
    Done,
    /// The destination refused samples, or some were skipped: needs a change, then a re-run.
    Rejected,
    /// The window could not be finished (source or destination errors).
    Failed,
}

impl WindowStatus {
    pub fn of(outcome: &WindowOutcome) -> Self {
        if outcome.error.is_some() {
            WindowStatus::Failed
        } else if outcome.is_complete() {
            WindowStatus::Done
        } else {
            WindowStatus::Rejected
        }
    }
}

/// The ledger seam: where a finished window is recorded, so that no later run imports it
/// again. A run here keeps a file (`file.rs`); an import in a cluster a ConfigMap
/// (`kube/ledger.rs`), written by each window's Job.
pub trait Ledger {
    /// Records one finished window; once this returns, the record survives a crash.
    fn record(&mut self, entry: &LedgerEntry) -> impl Future<Output = Result<()>> + Send;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub window: Window,
    pub status: WindowStatus,
    pub finished_at: String,
    pub outcome: WindowOutcome,
}

/// The windows recorded as done, the parts of a range a resumed import leaves out.
pub fn done_windows(entries: &[LedgerEntry]) -> Vec<Window> {
    entries
        .iter()
        .filter(|e| e.status == WindowStatus::Done)
        .map(|e| e.window)
        .collect()
}
