//! What a window's samples became on the way out, whichever destination took them: what the
//! destination holds of a batch (written, and refused with the reason) and what sending cost.

use std::time::Duration;

use crate::answer::{RateLimit, RejectReason};

/// What the destination did with one batch, once every part of it had an answer: the counts
/// are what the destination holds, not an upper bound.
#[derive(Debug, Default, PartialEq)]
pub struct Delivery {
    /// Samples written, float and histogram; `written_histograms` counts the latter alone.
    pub written: u64,
    pub written_histograms: u64,
    pub refused: Vec<Refused>,
}

/// Samples of one part of a batch the destination refused.
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub reason: RejectReason,
    /// Float and histogram samples; `histograms` counts the latter alone.
    pub samples: u64,
    pub histograms: u64,
    /// The first line of the receiver's answer.
    pub message: String,
}

/// Costs of sending, for the outcome.
#[derive(Debug, Default)]
pub struct SendCosts {
    pub bytes: u64,
    pub requests: u64,
    pub retries: u64,
    pub encode: Duration,
    pub write: Duration,
    /// Time spent waiting on the destination's rate limit (pacing and 429s naming it).
    pub throttled: Duration,
    pub throttles: u64,
    /// The rate limit the destination named, if it named one.
    pub limit: Option<RateLimit>,
}
