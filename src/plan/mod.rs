//! Splitting an import's time range into windows (shards). Windows are aligned to multiples of
//! the window length since the epoch, like Prometheus' 2h TSDB blocks, so re-planning the same
//! range with a later "now" yields the same windows, and a window reads whole blocks. Only the
//! first and the last window of a range may be shorter.
//!
//! The window itself, and its text form, is `window.rs`.

pub mod decide;

use crate::error::{Error, Result};
use crate::timespec::{format_ms, parse_duration};
use crate::window::Window;

/// The shortest window: below a scrape interval or two a window holds almost nothing, and a
/// plan of millions of windows would only fill the ledger.
pub const MIN_WINDOW_MS: i64 = 60_000;

/// The most windows one import may plan: ten years of 1h windows. Done windows are kept as
/// compact ranges in either ledger, so this bounds the plan held in memory, not the ledger.
pub const MAX_WINDOWS: u64 = 100_000;

/// Parses a window length as a user types it (`2h`, `30m`) and checks it is usable.
pub fn parse_window_length(what: &'static str, input: &str) -> Result<i64> {
    let duration = parse_duration(what, input)?;
    let ms =
        i64::try_from(duration.as_millis()).map_err(|_| Error::invalid(what, input, "too long"))?;
    if ms < MIN_WINDOW_MS {
        return Err(Error::invalid(
            what,
            input,
            "windows shorter than 1m hold too little to be worth a request each; give 1m or more (1h and 2h suit most imports)",
        ));
    }
    Ok(ms)
}

/// Checks a range and window length before anything is planned: a range before 1970 has no
/// key, and a plan of more than `MAX_WINDOWS` windows is refused with the window that fits.
pub fn check_plan(range: Window, window_ms: i64) -> Result<u64> {
    if range.start_ms < 0 {
        return Err(Error::invalid(
            "start",
            format_ms(range.start_ms),
            "is before 1970; Prometheus history starts later: give a later --start",
        ));
    }
    if window_ms < 1 {
        return Err(Error::invalid(
            "window",
            format!("{window_ms}ms"),
            "must be longer than zero",
        ));
    }
    let windows = count_windows(range, window_ms);
    if windows > MAX_WINDOWS {
        let span = range.end_ms - range.start_ms;
        let fits = (span / MAX_WINDOWS as i64 / 3_600_000 + 1).max(1);
        return Err(Error::invalid(
            "window",
            humantime::format_duration(std::time::Duration::from_millis(window_ms as u64))
                .to_string(),
            format!(
                "the range {range} makes {windows} windows, more than the {MAX_WINDOWS} an import may plan; give --window {fits}h or longer, or a shorter range"
            ),
        ));
    }
    Ok(windows)
}

/// How many windows `plan_windows(range, window_ms, &[])` returns, without making them.
pub fn count_windows(range: Window, window_ms: i64) -> u64 {
    if range.start_ms >= range.end_ms {
        return 0;
    }
    let first = range.start_ms.div_euclid(window_ms);
    let last = (range.end_ms - 1).div_euclid(window_ms);
    (last - first + 1) as u64
}

/// The windows of `range`, minus the parts already `done`, in time order.
pub fn plan_windows(range: Window, window_ms: i64, done: &[Window]) -> Vec<Window> {
    let mut done: Vec<Window> = done.to_vec();
    done.sort();
    let mut windows = Vec::new();
    for window in range.parts(window_ms) {
        subtract(window, &done, &mut windows);
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

    /// A day's window written as blocks: its 2h parts, the same as 2h windows of the same
    /// range would be (block IDs come from them), a window's ragged ends included.
    #[test]
    fn a_window_in_parts_is_what_windows_of_the_part_length_would_be() {
        for (s, e) in [
            (0, 24 * H),
            (H / 2, 24 * H),
            (3 * H + 7, 23 * H - 1),
            (5, 6),
        ] {
            let parts: Vec<Window> = w(s, e).parts(2 * H).collect();
            assert_eq!(parts, plan_windows(w(s, e), 2 * H, &[]), "{s}..{e}");
        }
        assert_eq!(w(0, 24 * H).parts(2 * H).count(), 12);
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

    #[test]
    fn keys_round_trip_and_bad_keys_name_the_object() {
        let window = w(1_793_491_200_123, 1_793_498_400_000);
        assert_eq!(window.key(), "1793491200123-1793498400000");
        assert_eq!(Window::from_key("x", &window.key()).unwrap(), window);
        for bad in [
            "",
            "12",
            "-5-10",
            "5--10",
            "10-5",
            "1+2-3",
            "99999999999999999999-1",
            "1-2-3",
        ] {
            let err = Window::from_key("Job a-w1", bad).unwrap_err().to_string();
            assert!(err.contains("Job a-w1"), "{err}");
        }
    }

    #[test]
    fn short_windows_and_huge_plans_are_refused_with_the_fix() {
        let err = parse_window_length("--window", "1ms")
            .unwrap_err()
            .to_string();
        assert!(err.contains("give 1m or more"), "{err}");
        assert_eq!(parse_window_length("--window", "1m").unwrap(), 60_000);
        let ten_years = w(0, 3650 * 24 * H);
        assert_eq!(check_plan(ten_years, H).unwrap(), 87_600);
        let err = check_plan(ten_years, 60_000).unwrap_err().to_string();
        assert!(
            err.contains("5256000 windows") && err.contains("--window 1h"),
            "{err}"
        );
        let err = check_plan(w(-H, H), H).unwrap_err().to_string();
        assert!(err.contains("before 1970"), "{err}");
    }

    proptest::proptest! {
        /// Every planned window, whatever the range and length (starts with milliseconds
        /// included), is found again from its key, the plan covers the range exactly, only
        /// the first and last windows are partial, and a later "now" plans the same windows.
        #[test]
        fn every_planned_window_is_found_again_from_its_key(
            start in 0i64..4_000_000_000_000,
            span in 1i64..(40 * H),
            window in MIN_WINDOW_MS..(6 * H),
            later in 0i64..(10 * H),
        ) {
            let range = w(start, start + span);
            let planned = plan_windows(range, window, &[]);
            proptest::prop_assert_eq!(planned.len() as u64, count_windows(range, window));
            proptest::prop_assert_eq!(planned[0].start_ms, range.start_ms);
            proptest::prop_assert_eq!(planned[planned.len() - 1].end_ms, range.end_ms);
            let mut keys = std::collections::BTreeSet::new();
            for (i, x) in planned.iter().enumerate() {
                proptest::prop_assert_eq!(Window::from_key("ledger", &x.key()).unwrap(), *x);
                proptest::prop_assert!(keys.insert(x.key()), "two windows share a key");
                if i > 0 {
                    proptest::prop_assert_eq!(planned[i - 1].end_ms, x.start_ms);
                    proptest::prop_assert_eq!(x.start_ms.rem_euclid(window), 0);
                }
                if i + 1 < planned.len() {
                    proptest::prop_assert_eq!(x.end_ms.rem_euclid(window), 0);
                }
            }
            // The same range planned again later (an incremental run's end moved on): every
            // window but the old last one is planned again, identical.
            let grown = plan_windows(w(start, start + span + later), window, &[]);
            for x in &planned[..planned.len() - 1] {
                proptest::prop_assert!(grown.contains(x), "{} not planned again", x);
            }
        }
    }
}
