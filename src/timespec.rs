//! Parsing the times and durations a user types: RFC 3339, unix seconds, `now`, `now-10d`.

use std::time::Duration;

use chrono::DateTime;

use crate::error::{Error, Result};

const TIME_FORMS: &str =
    "expected RFC 3339 (2026-11-01T00:00:00Z), unix seconds (1793491200), 'now' or 'now-10d'";

/// Parses a point in time into unix milliseconds; `now_ms` is the clock's reading, passed in so
/// that every time in one command agrees on what "now" is.
pub fn parse_time(what: &'static str, input: &str, now_ms: i64) -> Result<i64> {
    let text = input.trim();
    if let Some(offset) = text.strip_prefix("now") {
        let offset = offset.trim();
        if offset.is_empty() {
            return Ok(now_ms);
        }
        // By character, not byte: "now" followed by a multi-byte character is an error, not
        // a panic (found by fuzz/fuzz_targets/time_and_selector.rs).
        let (sign, duration) = match (offset.strip_prefix('-'), offset.strip_prefix('+')) {
            (Some(rest), _) => (-1, rest),
            (_, Some(rest)) => (1, rest),
            _ => return Err(Error::invalid(what, input, TIME_FORMS)),
        };
        let duration = humantime::parse_duration(duration.trim())
            .map_err(|e| Error::invalid(what, input, format!("{e}; {TIME_FORMS}")))?;
        let ms = i64::try_from(duration.as_millis())
            .map_err(|_| Error::invalid(what, input, "offset is too large"))?;
        return now_ms
            .checked_add(sign * ms)
            .ok_or_else(|| Error::invalid(what, input, "offset is too large"));
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds
            .checked_mul(1000)
            .ok_or_else(|| Error::invalid(what, input, "unix seconds out of range"));
    }
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
        && seconds.abs() < 1e15
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| Error::invalid(what, input, format!("{e}; {TIME_FORMS}")))
}

/// Parses a positive duration such as `2h` or `90s`.
pub fn parse_duration(what: &'static str, input: &str) -> Result<Duration> {
    let duration = humantime::parse_duration(input.trim()).map_err(|e| {
        Error::invalid(
            what,
            input,
            format!("{e}; expected a duration such as 2h, 30m or 1d"),
        )
    })?;
    if duration.is_zero() {
        return Err(Error::invalid(what, input, "must be longer than zero"));
    }
    Ok(duration)
}

/// The clock, in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Formats unix milliseconds as RFC 3339 for messages and the ledger.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000_000;

    #[test]
    fn accepts_every_documented_form() {
        let t = |s| parse_time("--start", s, NOW).unwrap();
        assert_eq!(t("2026-11-01T00:00:00Z"), 1_793_491_200_000);
        assert_eq!(t("2026-11-01T02:00:00+02:00"), 1_793_491_200_000);
        assert_eq!(t("1793491200"), 1_793_491_200_000);
        assert_eq!(t("1793491200.5"), 1_793_491_200_500);
        assert_eq!(t("now"), NOW);
        assert_eq!(t("now-10d"), NOW - 10 * 86_400_000);
        assert_eq!(t("now - 2h30m"), NOW - 9_000_000);
        assert_eq!(t("now+1h"), NOW + 3_600_000);
    }

    #[test]
    fn rejects_garbage_naming_the_flag_and_the_forms() {
        for bad in [
            "yesterday",
            "now-",
            "now*2h",
            "2026-13-01T00:00:00Z",
            "now-10 parsecs",
            "",
        ] {
            let err = parse_time("--end", bad, NOW).unwrap_err().to_string();
            assert!(err.starts_with("invalid --end"), "{err}");
            assert!(
                err.contains("RFC 3339") || err.contains("too large"),
                "{err}"
            );
        }
        assert!(parse_time("--end", "99999999999999999", NOW).is_err());
    }

    #[test]
    fn durations_must_be_positive() {
        assert_eq!(
            parse_duration("--window", "2h").unwrap(),
            Duration::from_secs(7200)
        );
        assert!(parse_duration("--window", "0s").is_err());
        assert!(parse_duration("--window", "two hours").is_err());
    }

    #[test]
    fn formats_milliseconds_as_rfc3339() {
        assert_eq!(format_ms(1_793_491_200_000), "2026-11-01T00:00:00Z");
        assert_eq!(format_ms(1_793_491_200_500), "2026-11-01T00:00:00.500Z");
    }
}
