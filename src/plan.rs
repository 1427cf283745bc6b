//! Splitting an import's time range into windows (shards). Windows are aligned to multiples of
//! the window length since the epoch, like Prometheus' 2h TSDB blocks, so re-planning the same
//! range with a later "now" yields the same windows, and a window reads whole blocks.

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
}

/// The windows of `range`, minus the parts already `done`, in time order.
pub fn plan_windows(range: Window, window_ms: i64, done: &[Window]) -> Vec<Window> {
    let mut done: Vec<Window> = done.to_vec();
    done.sort();
    let mut windows = Vec::new();
    let mut start = range.start_ms;
    while start < range.end_ms {
        let boundary = (start.div_euclid(window_ms) + 1).saturating_mul(window_ms);
        let end = boundary.min(range.end_ms);
        subtract(
            Window {
                start_ms: start,
                end_ms: end,
            },
            &done,
            &mut windows,
        );
        start = end;
    }
    windows
}

/// Pushes the parts of `window` that no interval in `done` (sorted) covers.
fn subtract(window: Window, done: &[Window], out: &mut Vec<Window>) {
    let mut start = window.start_ms;
    for d in done {
        if d.end_ms <= start || d.start_ms >= window.end_ms {
            continue;
        }
        if d.start_ms > start {
            out.push(Window {
                start_ms: start,
                end_ms: d.start_ms,
            });
        }
        start = start.max(d.end_ms);
        if start >= window.end_ms {
            return;
        }
    }
    out.push(Window {
        start_ms: start,
        end_ms: window.end_ms,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn w(s: i64, e: i64) -> Window {
        Window {
            start_ms: s,
            end_ms: e,
        }
    }

    #[test]
    fn windows_align_to_multiples_of_their_length() {
        let got = plan_windows(w(H / 2, 5 * H + 10), 2 * H, &[]);
        assert_eq!(
            got,
            vec![w(H / 2, 2 * H), w(2 * H, 4 * H), w(4 * H, 5 * H + 10)]
        );
    }

    #[test]
    fn windows_cover_the_range_exactly_without_gaps_or_overlaps() {
        for (s, e, len) in [
            (0, 1, H),
            (7, 10 * H + 3, H),
            (-3 * H - 5, 2 * H, 2 * H),
            (13, 14, 1),
        ] {
            let got = plan_windows(w(s, e), len, &[]);
            assert_eq!(got.first().unwrap().start_ms, s);
            assert_eq!(got.last().unwrap().end_ms, e);
            for pair in got.windows(2) {
                assert_eq!(pair[0].end_ms, pair[1].start_ms);
            }
            assert!(
                got.iter()
                    .all(|x| x.start_ms < x.end_ms && x.end_ms - x.start_ms <= len)
            );
        }
    }

    #[test]
    fn done_parts_are_left_out_and_a_grown_range_imports_only_the_rest() {
        // A first run with end=now covered [0, 3h); the next run's plan to 5h keeps the rest.
        let done = [w(0, 2 * H), w(2 * H, 3 * H)];
        let got = plan_windows(w(0, 5 * H), 2 * H, &done);
        assert_eq!(got, vec![w(3 * H, 4 * H), w(4 * H, 5 * H)]);
        // A hole in the middle of a window is imported on its own.
        let got = plan_windows(w(0, 2 * H), 2 * H, &[w(0, H / 2), w(H, 2 * H)]);
        assert_eq!(got, vec![w(H / 2, H)]);
        assert!(plan_windows(w(0, 2 * H), 2 * H, &[w(-H, 3 * H)]).is_empty());
    }

    #[test]
    fn an_inverted_range_is_an_error_that_says_to_swap() {
        let err = Window::new(10, 5).unwrap_err().to_string();
        assert!(err.contains("swap --start and --end"), "{err}");
        assert!(Window::new(5, 5).is_err());
    }
}
