//! End to end into VictoriaMetrics 1.79 (Debian), a receiver that is permissive where Prometheus
//! is strict: it takes old samples without an out-of-order window, and stores values as decimals
//! with about 12 significant digits (by design), so values are compared within that precision.
//! Two more of its ways are documented in the README: it leaves NaN and stale markers out of
//! /api/v1/export, and a huge value (1.7e308) flattens the small values stored beside it.

use promimport_test_support as common;

use common::*;

#[test]
fn an_import_into_victoria_metrics_lands_every_series_timestamp_and_value() {
    // No 1.7e308 here: VictoriaMetrics encodes a block of values as decimals with one exponent,
    // so next to 1.7e308 every ordinary value of the block reads back as 0 (seen on 1.79).
    let source = history_source_framed("vm-src", 6, false, Some(1024));
    seed_stale_series(&source);
    let vm = start_victoria_metrics("vm-sink", "100y");
    let (start, end) = (BASE_MS + 30 * 60_000, BASE_MS + 6 * HOUR_MS - 45_000);
    let state = temp_dir("vm-state");
    let out = Run::new(&source.url("/api/v1/read"), &vm.url("/api/v1/write"))
        .between(start, end)
        .flags(&["--window", "1h", "--parallel", "3"])
        .state(&state)
        .output();
    let log = text(&out);
    assert!(out.status.success(), "{log}");

    let expected = read_samples(&source, start, end);
    let (compared, nan) = assert_same_in_victoria_metrics(&expected, &vm);
    assert!(compared > 10_000, "{compared} samples compared");
    assert!(nan > 0, "NaN and stale samples were part of the comparison");
}
