//! The Cortex stories, written once: tests/cortex.rs tells them to a real Cortex (where
//! `CORTEX_BIN` is set), tests/cortex_answers.rs to Cortex's recorded answers played back.

use super::*;

/// In Opni the tenant is the cluster's ID.
pub const TENANT: &str = "c-7xk2p";

/// What a story needs of a Cortex: a real one (`cortex::Cortex`) or its answers played back
/// (`cortex_replay::CortexReplay`).
pub trait CortexLike {
    /// The base URL: push at `/api/v1/push`, query at `/prometheus/api/v1/...`.
    fn base_url(&self) -> String;
    /// Every float sample the tenant holds in [start, end), as Cortex serves it.
    fn holds(&self, tenant: &str, start_ms: i64, end_ms: i64) -> Data;

    fn push_url(&self) -> String {
        format!("{}/api/v1/push", self.base_url())
    }

    fn read_url(&self) -> String {
        format!("{}/prometheus/api/v1/read", self.base_url())
    }
}

pub fn tenant_header() -> String {
    format!("X-Scope-OrgID={TENANT}")
}

/// `promimport run` from `source` into the tenant, `--start now-30h --end now` and `more`;
/// the exit code and log.
pub fn import(source: &Server, cortex: &dyn CortexLike, more: &[&str]) -> (Option<i32>, String) {
    Run::new(&source.url("/api/v1/read"), &cortex.push_url())
        .flags(&["--start", "now-30h", "--end", "now"])
        .flag("--dest-header", &tenant_header())
        .flags(more)
        .state(&temp_dir("cortex-state"))
        .exec()
}

/// `promimport verify` of [start, end) between `source` and the tenant; exit code and output.
pub fn verify(
    source: &Server,
    cortex: &dyn CortexLike,
    start: i64,
    end: i64,
    more: &[&str],
) -> (Option<i32>, String) {
    let header = tenant_header();
    let flags = [&["--dest-header", header.as_str()][..], more].concat();
    let out = verify_range(source, &cortex.read_url(), start, end, &flags);
    (out.status.code(), text(&out))
}

/// At the default rate limit (25 000 samples/s, burst 50 000) 26 hours of history (~120 000
/// samples) land exactly, paced, the summary naming the limit and the setting; verify passes.
pub fn an_import_at_the_rate_limit_is_paced_lands_exactly_and_verifies(
    source: &Server,
    cortex: &dyn CortexLike,
) {
    let (code, log) = import(source, cortex, &[]);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("PACED") && log.contains("ingestion rate limit (25000 samples/s"),
        "the summary names the limit it waited on: {log}"
    );
    assert!(log.contains("ingestion_rate"), "and the setting: {log}");
    let (start, end) = summary_range(&log);
    let expected = read_samples(source, start, end);
    assert!(
        total_samples(&expected) > 100_000,
        "the range holds history"
    );
    assert_same_data(&expected, &cortex.holds(TENANT, start, end));
    let (code, said) = verify(source, cortex, start, end, &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("match (bit for bit)"), "{said}");
}

/// A burst below the rate (20 000 and 25 000) and requests of 22 000 samples: a request never
/// passes whole, however long it waits (the 429 names the rate, not the burst), so it is split
/// until it passes. A run once hung here on a window's last request of 21 687 samples, smaller
/// than a second of the rate, which was the old condition for splitting.
pub fn a_request_larger_than_the_burst_is_split_until_it_passes(
    source: &Server,
    cortex: &dyn CortexLike,
) {
    let (code, log) = import(
        source,
        cortex,
        &["--window", "1d", "--batch-samples", "22000"],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("PACED"), "{log}");
    let (start, end) = summary_range(&log);
    assert_same_data(
        &read_samples(source, start, end),
        &cortex.holds(TENANT, start, end),
    );
}

/// From `labels_source(_, 40, 7)`: the 7 series over `max_label_names_per_series` are counted
/// rejected exactly, with the fix, and exactly the 40 others are held.
pub fn series_over_the_label_limit_are_counted_and_every_other_series_lands(
    source: &Server,
    cortex: &dyn CortexLike,
) {
    let (code, log) = import(source, cortex, &[]);
    assert_eq!(code, Some(3), "{log}");
    let (start, end) = summary_range(&log);
    let (wide, narrow): (Data, Data) = read_samples(source, start, end)
        .into_iter()
        .partition(|(key, _)| key.contains("label_l00"));
    assert_eq!((narrow.len(), wide.len()), (40, 7));
    let written = format!(
        "written {}, rejected {},",
        total_samples(&narrow),
        total_samples(&wide)
    );
    assert!(log.contains(&written), "exact counts ({written}): {log}");
    assert!(log.contains("as too many labels"), "{log}");
    assert!(
        log.contains("--drop-label") && log.contains("max_label_names_per_series"),
        "{log}"
    );
    // Nothing the summary called written is missing, nothing it called rejected is there.
    assert_same_data(&narrow, &cortex.holds(TENANT, start, end));
}

/// Into a tenant with no out-of-order window whose live Prometheus already writes into it (as
/// after Opni's agent is installed), the history is refused as out of bounds: the import stops
/// early, naming every way to the fix.
pub fn into_live_data_without_an_out_of_order_window_the_import_stops_with_the_fix(
    source: &Server,
    cortex: &dyn CortexLike,
) {
    let now = promimport::timespec::now_ms();
    remote_write_with(
        &cortex.push_url(),
        &[("X-Scope-OrgID", TENANT)],
        &[(&[("__name__", "up"), ("job", "live")], vec![(now, 1.0)])],
    );
    let (code, log) = import(source, cortex, &[]);
    assert_eq!(code, Some(3), "{log}");
    assert!(log.contains("written 0,"), "{log}");
    assert!(log.contains("as out of bounds"), "{log}");
    assert!(log.contains("STOPPED  early"), "{log}");
    for needle in [
        "out_of_order_time_window: 30d",
        "runtime overrides file",
        "-ingester.out-of-order-time-window",
        "--parallel 1",
        "no live data",
    ] {
        assert!(log.contains(needle), "the fix names {needle:?}: {log}");
    }
    // Only the live sample is there.
    let held = cortex.holds(TENANT, now - 31 * HOUR_MS, now + 1);
    assert_eq!(held.len(), 1, "{held:?}");
}

/// Without `X-Scope-OrgID`, `run`, `query` and `verify` each say it is the tenant that is
/// missing, and how to give it; no credential is suggested instead.
pub fn without_the_tenant_every_command_says_so(source: &Server, cortex: &dyn CortexLike) {
    let (code, log) = Run::new(&source.url("/api/v1/read"), &cortex.push_url())
        .flags(&["--start", "now-4h", "--end", "now"])
        .state(&temp_dir("cortex-tenant-state"))
        .exec();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("X-Scope-OrgID=TENANT"), "run: {log}");
    let base = format!("{}/prometheus", cortex.base_url());
    let out = promimport(&["query", "up", "--dest", &base]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("X-Scope-OrgID=TENANT"),
        "query: {}",
        text(&out)
    );
    let now = promimport::timespec::now_ms();
    let from = source.url("/api/v1/read");
    let (start, end) = (rfc3339(now - 4 * HOUR_MS), rfc3339(now));
    let out = promimport(&[
        "verify",
        "--source",
        &from,
        "--dest",
        &cortex.read_url(),
        "--start",
        &start,
        "--end",
        &end,
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("destination") && said.contains("X-Scope-OrgID=TENANT"),
        "verify: {said}"
    );
    assert!(!said.contains("bearer"), "verify: {said}");
}
