//! The planner's decisions, the same for both executors: which windows to start, when to stop
//! early, and when an import is over. Pure functions over data, tested without I/O.

use std::collections::BTreeMap;

use super::Window;
use crate::ledger::WindowStatus;
use crate::ledger::record::{ImportState, MAX_PROBLEM_RECORDS, WindowRecord};

/// Where a window's run (its Job) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    Active,
    Succeeded,
    Failed,
}

/// A window's run as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRun {
    pub phase: RunPhase,
    /// Why a failed run failed (a Job's Failed condition).
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

/// What the finished windows say about an import: how many are done, which did not import
/// cleanly, and whether the rest must not be started (every other window would meet the same
/// fate). The one set of rules for both executors: the scheduler's `decide` and a local `run`
/// add each window's final record here.
#[derive(Debug)]
pub struct Tally {
    /// The import's oldest sample, to say how long an out-of-order window must be.
    oldest_ms: i64,
    now_ms: i64,
    pub done: usize,
    pub failed: usize,
    first_problem: Option<String>,
    stop: Option<String>,
}

impl Tally {
    pub fn new(oldest_ms: i64, now_ms: i64) -> Self {
        Tally {
            oldest_ms,
            now_ms,
            done: 0,
            failed: 0,
            first_problem: None,
            stop: None,
        }
    }

    /// Adds a window's final record.
    pub fn add(&mut self, window: Window, record: &WindowRecord) {
        if record.status == WindowStatus::Done {
            self.done += 1;
            return;
        }
        self.failed += 1;
        if self.first_problem.is_none() {
            self.first_problem = Some(format!("window {window} {}", describe(record)));
        }
        if self.stop.is_some() {
            return;
        }
        if record.stops_import {
            self.stop = Some(match &record.error {
                Some(error) => format!(
                    "window {window} failed in a way every window would: {}",
                    error.message
                ),
                None => {
                    let days = (self.now_ms - self.oldest_ms).div_euclid(86_400_000) + 1;
                    format!(
                        "the destination refused all of window {window} ({}), and the other windows would meet the same \
                         refusal; the oldest sample of this import is {days} days old, so the destination's \
                         out-of-order window must be at least {days}d (see the fix above)",
                        // The reason without its fix, which the summary and status show once.
                        record
                            .reasons
                            .first()
                            .map_or("refused", |r| r.split("; fix: ").next().unwrap_or(r))
                    )
                }
            });
        } else if self.failed >= MAX_PROBLEM_RECORDS {
            self.stop = Some(format!(
                "{} windows did not import cleanly, first: {}; fix the cause, then resume",
                self.failed,
                self.first_problem.as_deref().unwrap_or_default()
            ));
        }
    }

    /// Why no more windows may start, once a window said so.
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop.as_deref()
    }

    /// The import's final state once nothing runs any more, of `planned` windows in all.
    pub fn verdict(&self, planned: usize) -> (ImportState, String) {
        match (&self.stop, &self.first_problem) {
            (Some(reason), _) => (ImportState::Failed, format!("stopped early: {reason}")),
            (None, None) => (
                ImportState::Finished,
                format!("{} windows imported, every sample accepted", self.done),
            ),
            (None, Some(first)) => (
                ImportState::Failed,
                format!(
                    "{} of {planned} windows did not import cleanly; first: {first}",
                    self.failed
                ),
            ),
        }
    }
}

/// The pure core of the scheduler's loop: from the planned windows, the ledger's records (and
/// which windows its compacted ranges hold), and the runs that exist, what to start now
/// (`free` slots at most) and whether the import is over. Windows are matched exactly, by their
/// start and end to the millisecond.
pub fn decide(
    planned: &[Window],
    records: &BTreeMap<Window, WindowRecord>,
    compacted: &dyn Fn(Window) -> bool,
    runs: &BTreeMap<Window, WindowRun>,
    free: usize,
    mut tally: Tally,
) -> Decision {
    let mut decision = Decision::default();
    let mut waiting = Vec::new();
    for window in planned {
        if compacted(*window) {
            tally.done += 1;
            continue;
        }
        if let Some(record) = records.get(window).filter(|r| r.is_final()) {
            tally.add(*window, record);
            continue;
        }
        match runs.get(window).map(|j| (j.phase, j.message.as_str())) {
            // A succeeded run has recorded its window; the record shows on a later read.
            Some((RunPhase::Active | RunPhase::Succeeded, _)) => decision.active += 1,
            Some((RunPhase::Failed, message)) => {
                decision.mark_failed.push((*window, message.to_string()));
            }
            None => waiting.push(*window),
        }
    }
    decision.done = tally.done;
    decision.failed = tally.failed + decision.mark_failed.len();
    decision.pending = waiting.len();
    let stopping = tally.stop_reason().is_some();
    if !stopping {
        decision.create = waiting.into_iter().take(free).collect();
    }
    let nothing_left = decision.active == 0
        && decision.mark_failed.is_empty()
        && (decision.pending == 0 || stopping);
    if nothing_left {
        decision.finished = Some(tally.verdict(planned.len()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::WindowError;
    use crate::plan::plan_windows;

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
            histograms_read: 0,
            histograms_written: 0,
            rejected: 0,
            skipped: 0,
            seconds: 0.1,
            waited: 0.0,
            rate_limit: None,
            at: String::new(),
            reasons: vec!["1 samples rejected as out of bounds".into()],
            error: transient.map(|transient| WindowError {
                message: "boom".into(),
                transient,
                stops_import: false,
            }),
            stops_import: stops,
            blocks: Vec::new(),
        }
    }

    fn job(phase: RunPhase) -> WindowRun {
        WindowRun {
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

    fn decide_fresh(
        planned: &[Window],
        records: &BTreeMap<Window, WindowRecord>,
        compacted: &dyn Fn(Window) -> bool,
        runs: &BTreeMap<Window, WindowRun>,
        free: usize,
    ) -> Decision {
        decide(planned, records, compacted, runs, free, Tally::new(0, H))
    }

    #[test]
    fn creates_jobs_for_waiting_windows_up_to_the_free_slots_oldest_first() {
        let records = BTreeMap::from([(w(0), record(WindowStatus::Done, false, None))]);
        let jobs = BTreeMap::from([(w(1), job(RunPhase::Active))]);
        let d = decide_fresh(&windows(5), &records, &none, &jobs, 2);
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
        let jobs = BTreeMap::from([(key(first), job(RunPhase::Succeeded))]);
        let d = decide_fresh(&planned, &BTreeMap::new(), &none, &jobs, 10);
        assert!(!d.create.contains(&first), "no second Job for {first}");
        let records = BTreeMap::from([(key(first), record(WindowStatus::Done, false, None))]);
        let all_done: BTreeMap<Window, WindowRecord> = planned
            .iter()
            .map(|w| (key(*w), record(WindowStatus::Done, false, None)))
            .collect();
        assert_eq!(decide_fresh(&planned, &records, &none, &jobs, 10).done, 1);
        let d = decide_fresh(&planned, &all_done, &none, &BTreeMap::new(), 10);
        assert_eq!(d.finished.unwrap().0, ImportState::Finished);
    }

    #[test]
    fn compacted_windows_count_as_done_and_get_no_job() {
        let d = decide_fresh(
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
            (w(0), job(RunPhase::Succeeded)),
            (w(1), job(RunPhase::Succeeded)),
        ]);
        let d = decide_fresh(&windows(2), &records, &none, &jobs, 10);
        assert!(d.create.is_empty());
        assert!(d.finished.is_none(), "waits for the second window's record");
    }

    #[test]
    fn a_transient_record_waits_for_the_job_and_a_failed_job_is_marked() {
        let records = BTreeMap::from([(w(0), record(WindowStatus::Failed, false, Some(true)))]);
        let jobs = BTreeMap::from([(w(0), job(RunPhase::Failed))]);
        let d = decide_fresh(&windows(1), &records, &none, &jobs, 10);
        assert_eq!(
            d.mark_failed,
            vec![(w(0), "Job failed (BackoffLimitExceeded)".to_string())]
        );
        assert!(d.create.is_empty());
    }

    #[test]
    fn a_window_refused_whole_stops_new_jobs_and_fails_the_import_once_the_rest_are_done() {
        let records = BTreeMap::from([(w(0), record(WindowStatus::Rejected, true, None))]);
        let jobs = BTreeMap::from([(w(1), job(RunPhase::Active))]);
        let d = decide_fresh(&windows(4), &records, &none, &jobs, 10);
        assert!(d.create.is_empty());
        assert!(d.finished.is_none(), "the running window finishes first");
        let d = decide_fresh(&windows(4), &records, &none, &BTreeMap::new(), 10);
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
        let d = decide_fresh(&windows(n + 50), &records, &none, &BTreeMap::new(), 10);
        assert!(d.create.is_empty());
        let (state, message) = d.finished.unwrap();
        assert_eq!(state, ImportState::Failed);
        assert!(message.contains("fix the cause, then resume"), "{message}");
    }

    #[test]
    fn all_done_finishes_and_any_final_problem_fails() {
        let done: BTreeMap<_, _> = (0..3)
            .map(|i| (w(i), record(WindowStatus::Done, false, None)))
            .collect();
        assert_eq!(
            decide_fresh(&windows(3), &done, &none, &BTreeMap::new(), 1)
                .finished
                .unwrap()
                .0,
            ImportState::Finished
        );
        let mut some_failed = done.clone();
        some_failed.insert(w(1), record(WindowStatus::Failed, false, Some(false)));
        let (state, message) = decide_fresh(&windows(3), &some_failed, &none, &BTreeMap::new(), 1)
            .finished
            .unwrap();
        assert_eq!(state, ImportState::Failed);
        assert!(message.contains("1 of 3 windows"), "{message}");
    }

    #[test]
    fn a_refusal_of_all_history_says_how_long_the_out_of_order_window_must_be() {
        let day = 86_400_000;
        let mut tally = Tally::new(0, 10 * day + 5);
        let mut refused = record(WindowStatus::Rejected, true, None);
        refused.reasons =
            vec!["720 samples rejected as out of bounds: \"out of bounds\"; fix: enable it".into()];
        tally.add(w(0), &refused);
        let reason = tally.stop_reason().unwrap();
        assert!(reason.contains("must be at least 11d"), "{reason}");
        assert!(
            reason.contains("(720 samples rejected as out of bounds: \"out of bounds\")"),
            "{reason}"
        );
        let mut tally = Tally::new(0, day);
        let mut failed = record(WindowStatus::Failed, true, Some(false));
        failed.error.as_mut().unwrap().message = "HTTP 401".into();
        tally.add(w(1), &failed);
        assert!(
            tally
                .stop_reason()
                .unwrap()
                .ends_with("failed in a way every window would: HTTP 401")
        );
        assert_eq!(tally.verdict(3).0, ImportState::Failed);
    }
}
