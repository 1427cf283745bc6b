//! A window: the half-open time range one worker imports, `[start_ms, end_ms)`. Its identity
//! is that exact range: `Window::key` and `Window::from_key` are its one text form, used by the
//! ledgers' keys and the Jobs' labels, so a window is found again from either, to the
//! millisecond (a relative start such as `now-10d` carries milliseconds).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::timespec::format_ms;

/// A half-open time range `[start_ms, end_ms)` in unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}, {})",
            format_ms(self.start_ms),
            format_ms(self.end_ms)
        )
    }
}

impl Window {
    pub fn new(start_ms: i64, end_ms: i64) -> Result<Self> {
        if start_ms >= end_ms {
            return Err(Error::invalid(
                "time range",
                format!("{} .. {}", format_ms(start_ms), format_ms(end_ms)),
                "the start must be before the end; swap --start and --end",
            ));
        }
        Ok(Window { start_ms, end_ms })
    }

    pub fn contains(&self, t: i64) -> bool {
        self.start_ms <= t && t < self.end_ms
    }

    /// The window cut at every multiple of `length` (from the epoch) inside it, in order: a
    /// range's windows, and the 2h blocks a longer window is written as.
    pub fn parts(self, length: i64) -> impl Iterator<Item = Window> {
        let mut start = self.start_ms;
        std::iter::from_fn(move || {
            if start >= self.end_ms {
                return None;
            }
            let boundary = (start.div_euclid(length) + 1).saturating_mul(length);
            let part = Window {
                start_ms: start,
                end_ms: boundary.min(self.end_ms),
            };
            start = part.end_ms;
            Some(part)
        })
    }

    /// `START_MS-END_MS`: digits and one dash, so it is at once a valid ConfigMap key suffix
    /// and a valid label value (at most 27 characters). `from_key` is its inverse.
    pub fn key(&self) -> String {
        format!("{}-{}", self.start_ms, self.end_ms)
    }

    /// Reads a key written by `key`. `what` names where the key was found (a ledger key, a
    /// Job's label), because a hand-edited object is the only way to get a bad one.
    pub fn from_key(what: &str, key: &str) -> Result<Self> {
        let bad = |reason: &str| {
            Error::invalid(
                "window key",
                format!("{what}: {key}"),
                format!(
                    "{reason}; expected START_MS-END_MS as promimport writes it (was the object edited by hand?)"
                ),
            )
        };
        let (start, end) = key
            .split_once('-')
            .ok_or_else(|| bad("no dash between start and end"))?;
        let number = |text: &str| -> Result<i64> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not unsigned whole milliseconds"));
            }
            text.parse::<i64>()
                .map_err(|_| bad("a number out of range"))
        };
        let (start_ms, end_ms) = (number(start)?, number(end)?);
        if start_ms >= end_ms {
            return Err(bad("the start is not before the end"));
        }
        Ok(Window { start_ms, end_ms })
    }
}
