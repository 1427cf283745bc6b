//! What happened to a window: the numbers a worker reports, the ledger records and the summary
//! adds up. "Nothing silently dropped" means every sample read ends up in exactly one of
//! written, rejected or skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::answer::RejectReason;

/// Samples the destination refused for one reason, with the receiver's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub reason: RejectReason,
    /// Float and histogram samples; `histograms` counts the latter alone.
    pub samples: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub histograms: u64,
    pub requests: u64,
    /// The first line of the destination's answer to the first such request.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowError {
    pub message: String,
    /// Running the window again may succeed as it is.
    pub transient: bool,
    /// Every other window would fail the same way (credentials, URL, a receiver's refusal).
    pub stops_import: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowOutcome {
    pub series: u64,
    /// Samples of both kinds, float and native histogram; the `histograms_*` fields count the
    /// histogram samples among them, so floats are the difference.
    pub samples_read: u64,
    pub samples_written: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub histograms_read: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub histograms_written: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
    /// Samples read but not sent, by reason (disorder inside the source).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, u64>,
    /// Remote read answer bytes as received.
    pub bytes_read: u64,
    /// Remote write request bytes as sent (snappy-compressed).
    pub bytes_written: u64,
    pub requests: u64,
    pub retries: u64,
    /// Whether the source streamed chunks (false: it answered SAMPLES).
    pub streamed: bool,
    pub seconds: f64,
    /// Where the time went: decoding what was read, encoding requests, waiting for the
    /// destination. Reading overlaps with writing, so these do not add up to `seconds`.
    pub decode_seconds: f64,
    pub encode_seconds: f64,
    pub write_seconds: f64,
    /// Time spent waiting on the destination's ingestion rate limit, and the 429s naming it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_seconds: f64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub throttles: u64,
    /// Queries the source refused as over its own limits and that were read again in halves.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub source_splits: u64,
    /// Time spent waiting to keep to `--max-read-samples-per-second`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub read_throttled_seconds: f64,
    /// Queries the source took longer than `--source-slow-answer` to begin answering, and the
    /// time the reader then waited before its next query, to let the source recover.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub slow_answers: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slow_answer_wait_seconds: f64,
    /// The limit the destination named (samples per second), if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WindowError>,
    /// What a person should know that is not an error (a destination that could not be asked
    /// whether it kept native histograms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// `--dest-blocks`: the window's blocks (ID and bytes; one a 2h part), and how many
    /// blocks the windows absorbed here wrote. Read from a single `block` too, as written
    /// before windows could be longer than one block.
    #[serde(
        default,
        alias = "block",
        deserialize_with = "crate::outcome::one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub written_blocks: Vec<crate::outcome::BlockWritten>,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub blocks: u64,
    /// The first histogram sample written (labels as written, timestamp), to ask the
    /// destination for afterwards; not recorded.
    #[serde(skip)]
    pub first_histogram: Option<(Vec<crate::proto::Label>, i64)>,
}

fn is_zero(n: &f64) -> bool {
    *n == 0.0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl WindowOutcome {
    pub fn samples_rejected(&self) -> u64 {
        self.rejected.iter().map(|r| r.samples).sum()
    }

    pub fn samples_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }

    pub fn histograms_rejected(&self) -> u64 {
        self.rejected.iter().map(|r| r.histograms).sum()
    }

    /// Every sample read was accepted and nothing went wrong.
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.rejected.is_empty() && self.skipped.is_empty()
    }

    /// The destination refused this whole window for a reason that applies to all older data
    /// too, so importing further windows is pointless until the receiver is changed.
    /// Other refusals may come with it (a series over a label limit is refused either way).
    pub fn rejects_all_history(&self) -> bool {
        self.samples_written == 0 && self.rejected.iter().any(|r| r.reason.rejects_all_history())
    }

    /// Records refused samples: `samples` of both kinds, `histograms` of them histograms.
    pub fn add_rejection(
        &mut self,
        reason: RejectReason,
        samples: u64,
        histograms: u64,
        message: &str,
    ) {
        match self.rejected.iter_mut().find(|r| r.reason == reason) {
            Some(r) => {
                r.samples += samples;
                r.histograms += histograms;
                r.requests += 1;
            }
            None => self.rejected.push(Rejection {
                reason,
                samples,
                histograms,
                requests: 1,
                message: message.to_string(),
            }),
        }
    }

    /// Adds another window's numbers into a running total. Series are not additive (the same
    /// series spans many windows), so the total keeps the largest window's count.
    pub fn absorb(&mut self, other: &WindowOutcome) {
        self.series = self.series.max(other.series);
        self.samples_read += other.samples_read;
        self.samples_written += other.samples_written;
        self.histograms_read += other.histograms_read;
        self.histograms_written += other.histograms_written;
        for r in &other.rejected {
            match self
                .rejected
                .iter_mut()
                .find(|mine| mine.reason == r.reason)
            {
                Some(mine) => {
                    mine.samples += r.samples;
                    mine.histograms += r.histograms;
                    mine.requests += r.requests;
                }
                None => self.rejected.push(r.clone()),
            }
        }
        for (reason, n) in &other.skipped {
            *self.skipped.entry(reason.clone()).or_default() += n;
        }
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.requests += other.requests;
        self.retries += other.retries;
        self.decode_seconds += other.decode_seconds;
        self.encode_seconds += other.encode_seconds;
        self.write_seconds += other.write_seconds;
        self.throttled_seconds += other.throttled_seconds;
        self.read_throttled_seconds += other.read_throttled_seconds;
        self.source_splits += other.source_splits;
        self.slow_answers += other.slow_answers;
        self.slow_answer_wait_seconds += other.slow_answer_wait_seconds;
        self.blocks += other.blocks;
        self.throttles += other.throttles;
        self.rate_limit = self.rate_limit.or(other.rate_limit);
        for note in &other.notes {
            if !self.notes.contains(note) {
                self.notes.push(note.clone());
            }
        }
    }

    /// The summary's line about queries the source found too large, when there were any.
    pub fn source_splitting(&self) -> Option<String> {
        (self.source_splits > 0).then(|| {
            format!(
                "the source refused {} queries as larger than its own limits (e.g. Prometheus' \
                 --storage.remote.read-sample-limit); each was read again in halves of its time \
                 range, and nothing is missing. Fewer metrics per query (--metrics-per-read) ask \
                 less of it at once",
                self.source_splits
            )
        })
    }

    /// The summary's line about reading slower than the source could answer, by choice.
    pub fn read_pacing(&self) -> Option<String> {
        (self.read_throttled_seconds >= 0.05).then(|| {
            format!(
                "windows waited {:.1}s in all to keep to --max-read-samples-per-second (the \
                 source's load)",
                self.read_throttled_seconds
            )
        })
    }

    /// The summary's line about a source that answered slowly, when one did.
    pub fn slow_source(&self) -> Option<String> {
        (self.slow_answers > 0).then(|| {
            format!(
                "the source took longer than --source-slow-answer to begin {} answers; each \
                 time the read paused as long as that answer took to begin ({:.1}s in all), so \
                 the source was never asked more than half the time. A source this slow is \
                 loaded: fewer --parallel windows or a lower --max-read-samples-per-second ease it",
                self.slow_answers, self.slow_answer_wait_seconds
            )
        })
    }

    /// The summary's line about the destination's rate limit, when the import waited on one.
    pub fn throttling(&self) -> Option<String> {
        if self.throttles == 0 && self.throttled_seconds < 0.05 {
            return None;
        }
        Some(match self.rate_limit {
            Some(rate) => format!(
                "windows waited {:.1}s in all on the destination's ingestion rate limit ({rate} \
                 samples/s; 429s for it: {}, each request sent again, slower). To import faster \
                 raise the tenant's `ingestion_rate` and `ingestion_burst_size` (Cortex limits or \
                 runtime overrides; Mimir -distributor.ingestion-rate-limit / -burst-size)",
                self.throttled_seconds, self.throttles
            ),
            None => format!(
                "windows waited {:.1}s in all to keep to --max-samples-per-second",
                self.throttled_seconds
            ),
        })
    }
}

/// What a window's block came to, for the outcome and the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct BlockWritten {
    pub id: String,
    pub bytes: u64,
    /// The block was there already, from an earlier run of this window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existed: bool,
}

/// Reads a list of blocks, or the one block a record held before windows could be longer
/// than a block.
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<BlockWritten>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(BlockWritten),
        Many(Vec<BlockWritten>),
    }
    Ok(
        match <Option<OneOrMany> as serde::Deserialize>::deserialize(deserializer)? {
            None => Vec::new(),
            Some(OneOrMany::One(block)) => vec![block],
            Some(OneOrMany::Many(blocks)) => blocks,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_complete_only_when_every_sample_was_accepted() {
        let mut o = WindowOutcome {
            samples_read: 10,
            samples_written: 10,
            ..Default::default()
        };
        assert!(o.is_complete());
        o.skipped.insert("samples out of order".into(), 1);
        assert!(!o.is_complete());
    }

    #[test]
    fn only_a_fully_rejected_window_with_a_history_wide_reason_stops_the_import() {
        let mut o = WindowOutcome::default();
        o.add_rejection(RejectReason::OutOfBounds, 5, 0, "out of bounds");
        o.add_rejection(RejectReason::OutOfBounds, 7, 0, "out of bounds");
        assert_eq!(o.samples_rejected(), 12);
        assert_eq!(o.rejected[0].requests, 2);
        assert!(o.rejects_all_history());
        o.samples_written = 1;
        assert!(!o.rejects_all_history());
        let mut dup = WindowOutcome::default();
        dup.add_rejection(RejectReason::DuplicateSample, 5, 0, "duplicate sample");
        assert!(!dup.rejects_all_history());
        // Refused for its age and, besides, some series for their labels: still history-wide.
        let mut mixed = WindowOutcome::default();
        mixed.add_rejection(
            RejectReason::TooManyLabels,
            5,
            0,
            "series has too many labels",
        );
        assert!(!mixed.rejects_all_history());
        mixed.add_rejection(RejectReason::OutOfBounds, 7, 0, "out of bounds");
        assert!(mixed.rejects_all_history());
    }
}
