//! Native histograms moved exactly between real Prometheus 2.42 servers: a source that scraped
//! them from a protobuf exporter (so Prometheus made every chunk), a sink with the feature on,
//! and every histogram sample compared field by field with what the exporter served.

use promimport_test_support as common;

use common::cortex_stories::CortexLike;
use common::exporter::{Exporter, scraped_source};
use common::*;

fn native_sink(name: &str, features: bool) -> Server {
    let extra: &[&str] = if features {
        &["--enable-feature=native-histograms"]
    } else {
        &[]
    };
    start_prometheus_with(
        name,
        PrometheusOptions {
            receiver: true,
            ..PrometheusOptions::default()
        },
        extra,
    )
}

/// Every histogram Prometheus stored equals what the exporter served in the scrape that the
/// float `exporter_scrape` names at the same timestamp: the check that does not depend on any
/// decoder of ours being right. Returns the number of (non-stale) histogram samples checked and
/// of stale markers seen.
fn assert_source_holds_what_was_served(
    exporter: &Exporter,
    floats: &Data,
    histograms: &Histograms,
) -> (usize, usize) {
    use promimport::verify::CanonicalHistogram;
    let scrape_series = floats
        .iter()
        .find(|(k, _)| k.contains("__name__=\"exporter_scrape\""))
        .expect("the scrape number series")
        .1;
    let scrape_at: std::collections::BTreeMap<i64, i64> = scrape_series
        .iter()
        .filter(|(_, v)| *v != STALE_NAN)
        .map(|&(t, v)| (t, f64::from_bits(v) as i64))
        .collect();
    let (mut checked, mut stale) = (0, 0);
    for (key, samples) in histograms {
        for h in samples {
            if h.sum.to_bits() == STALE_NAN {
                stale += 1;
                continue;
            }
            let n = scrape_at[&h.timestamp];
            let served = exporter.served(n);
            let expected = served
                .get(key)
                .unwrap_or_else(|| panic!("scrape {n} served no {key}"));
            assert_eq!(
                CanonicalHistogram::of(h),
                CanonicalHistogram::of(&promimport::proto::Histogram {
                    timestamp: h.timestamp,
                    ..expected.clone()
                }),
                "{key} at scrape {n}"
            );
            checked += 1;
        }
    }
    // Every scrape Prometheus stored is there, for every series it served.
    for (&t, &n) in &scrape_at {
        for key in exporter.served(n).keys() {
            assert!(
                histograms[key].iter().any(|h| h.timestamp == t),
                "{key} of scrape {n} is missing"
            );
        }
    }
    (checked, stale)
}

#[test]
fn native_histograms_scraped_by_prometheus_are_imported_field_for_field_and_verified() {
    let exporter = Exporter::start();
    let (source, start, end) = scraped_source("native-src", &exporter, 100);
    let (floats, histograms) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    let (checked, stale) = assert_source_holds_what_was_served(&exporter, &floats, &histograms);
    // Four histogram series over about 100 scrapes (a scrape that timed out on a busy machine
    // is missing from every series alike, which the checks above allow for).
    assert!(checked >= 4 * 50, "only {checked} histogram samples");
    // /b vanished for a while, and at the end every series went stale.
    assert!(stale >= 5, "{stale} stale histogram markers");
    let total: usize = histograms.values().map(Vec::len).sum();

    let sink = native_sink("native-sink", true);
    let state = temp_dir("native-state");
    // One-minute windows cut through the source's chunks, so clipping and merging are tested
    // on histogram chunks too.
    let (code, log) = Run::new(&source.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start, end)
        .flags(&["--window", "1m", "--parallel", "1"])
        .state(&state)
        .exec();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!(
            "histograms read {total}, written {total}, rejected 0"
        )),
        "{log}"
    );
    let (sink_floats, sink_histograms) = read_chunked(&sink.url("/api/v1/read"), &[], start, end);
    assert_same_data(&floats, &sink_floats);
    assert_same_histograms(&histograms, &sink_histograms);

    // verify: every field through remote read; through the query API it cannot.
    let verify = |dest: &str| verify_range(&source, dest, start, end, &[]);
    let out = verify(&sink.url("/api/v1/read"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("match (bit for bit)"), "{}", text(&out));
    let out = verify(&sink.url(""));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(4), "{log}");
    assert!(
        log.contains("NOT VERIFIED")
            && log.contains(&format!("{total} native histogram samples"))
            && !log.contains("all 1 windows match"),
        "{log}"
    );
}

#[test]
fn native_histograms_go_into_blocks_copied_whole_or_cut_by_the_range_and_read_back_field_for_field()
{
    let exporter = Exporter::start();
    let (source, start, end) = scraped_source("native-blocks-src", &exporter, 60);
    let (floats, histograms) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    let total: usize = histograms.values().map(Vec::len).sum();
    assert!(total >= 4 * 30, "only {total} histogram samples");

    // The whole history: every chunk inside the range, copied as Prometheus cut it.
    let whole = temp_dir("native-blocks-data");
    // A range starting and ending between two scrapes a third and two thirds in, as a
    // `--start now-10d` does: the chunks it cuts are decoded, clipped and encoded anew.
    let scrapes: Vec<i64> = floats
        .iter()
        .find(|(k, _)| k.contains("__name__=\"exporter_scrape\""))
        .expect("the scrape number series")
        .1
        .iter()
        .map(|&(t, _)| t)
        .collect();
    let (cut_start, cut_end) = (
        scrapes[scrapes.len() / 3] + 1,
        scrapes[2 * scrapes.len() / 3] + 1,
    );
    let cut = temp_dir("native-blocks-cut-data");
    for (dir, from, to) in [(&whole, start, end), (&cut, cut_start, cut_end)] {
        let (expected_floats, expected) = read_chunked(&source.url("/api/v1/read"), &[], from, to);
        let count: usize = expected.values().map(Vec::len).sum();
        if dir == &cut {
            // Every histogram series has samples on both sides of each cut.
            for (key, samples) in &histograms {
                let inside = expected.get(key).map_or(0, Vec::len);
                assert!(inside > 0 && inside < samples.len(), "{key}: {inside}");
            }
        }
        let (code, log) = Run::blocks(&source.url("/api/v1/read"), dir)
            .between(from, to)
            .state(&temp_dir("native-blocks-state"))
            .exec();
        assert_eq!(code, Some(0), "{log}");
        assert!(
            log.contains(&format!(
                "histograms read {count}, written {count}, rejected 0"
            )),
            "{log}"
        );
        let sink = start_prometheus_on(
            "native-blocks-sink",
            dir,
            &["--enable-feature=native-histograms"],
        );
        let (sink_floats, sink_histograms) =
            read_chunked(&sink.url("/api/v1/read"), &[], start, end);
        assert_same_data(&expected_floats, &sink_floats);
        assert_same_histograms(&expected, &sink_histograms);
        // Prometheus' own engine decodes the blocks' chunks to what it decodes its own to.
        let raw = query_raw(&sink, from, to);
        let with_histograms: Vec<String> = (raw.iter())
            .filter(|s| s.get("histograms").is_some())
            .map(|s| s["metric"].to_string())
            .collect();
        // The exporter's histogram series that hold more than stale markers in the range.
        assert!(with_histograms.len() >= 3, "{with_histograms:?}");
        assert_eq!(raw, query_raw(&source, from, to));
        // verify reads both sides again and compares every field.
        let out = verify_range(&source, &sink.url("/api/v1/read"), from, to, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
}

/// Receivers that take no native histograms: Prometheus without the feature flag refuses them
/// (500 "native histograms are disabled"); VictoriaMetrics 1.79 (and Cortex 1.19 by default,
/// below) answer 2xx and store none, which only reading one back shows. Each is a rejection with
/// its reason and fix, exit 3, never "complete"; the float series beside them land exactly.
#[test]
fn receivers_that_refuse_or_silently_drop_native_histograms_are_named_never_complete() {
    let exporter = Exporter::start();
    let (source, start, end) = scraped_source("refuse-src", &exporter, 30);
    let plain = native_sink("refuse-plain", false);
    let vm = start_victoria_metrics("refuse-vm", "100y");
    let refused = "native histograms not enabled at the destination: destination said \"native histograms are disabled\"";
    assert_histograms_rejected(
        &source,
        start,
        end,
        &plain.url("/api/v1/write"),
        &[],
        refused,
    );
    let dropped = "native histograms accepted, then not stored";
    assert_histograms_rejected(&source, start, end, &vm.url("/api/v1/write"), &[], dropped);
    // The float series landed exactly where they can be read back.
    let (floats, _) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    let (plain_floats, plain_histograms) =
        read_chunked(&plain.url("/api/v1/read"), &[], start, end);
    assert_same_data(&floats, &plain_floats);
    assert!(plain_histograms.is_empty());
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn cortex_by_default_accepts_native_histograms_stores_none_and_the_import_says_so() {
    let exporter = Exporter::start();
    let (source, start, end) = scraped_source("refuse-cortex-src", &exporter, 30);
    let cortex = common::cortex::Cortex::start("refuse", &[]);
    let tenant = ["--dest-header", "X-Scope-OrgID=t1"];
    let dropped = "native histograms accepted, then not stored";
    assert_histograms_rejected(&source, start, end, &cortex.push_url(), &tenant, dropped);
    let (floats, _) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    let (cortex_floats, cortex_histograms) =
        read_chunked(&cortex.read_url(), &[("X-Scope-OrgID", "t1")], start, end);
    assert_same_data(&floats, &cortex_floats);
    assert!(cortex_histograms.is_empty());
}

/// The same story where no Cortex binary is: Cortex's recorded answers played back.
#[test]
fn cortex_by_default_accepts_native_histograms_stores_none_and_the_import_says_so_replayed() {
    use common::cortex_replay::{CortexReplay, ReplayLimits};
    let exporter = Exporter::start();
    let (source, start, end) = scraped_source("refuse-replay-src", &exporter, 30);
    let cortex = CortexReplay::start(ReplayLimits::default());
    let tenant = ["--dest-header", "X-Scope-OrgID=t1"];
    let dropped = "native histograms accepted, then not stored";
    assert_histograms_rejected(&source, start, end, &cortex.push_url(), &tenant, dropped);
    assert!(cortex.answered("native-histograms-not-stored") > 0);
    let (floats, _) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    assert_same_data(&floats, &cortex.held("t1"));
}

/// Imports [start, end) of `source` into `dest` and asserts that every histogram sample is
/// counted rejected for `reason`, with the fix, and the import never called complete.
fn assert_histograms_rejected(
    source: &Server,
    start: i64,
    end: i64,
    dest: &str,
    extra: &[&str],
    reason: &str,
) {
    let (_, histograms) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    let total: usize = histograms.values().map(Vec::len).sum();
    assert!(total > 0, "the source holds histograms");
    let state = temp_dir("refuse-state");
    let (code, log) = Run::new(&source.url("/api/v1/read"), dest)
        .between(start, end)
        .flags(&["--window", "1m", "--parallel", "1"])
        .flags(extra)
        .state(&state)
        .exec();
    assert_eq!(code, Some(3), "{dest}: {log}");
    assert!(
        log.contains(&format!(
            "histograms read {total}, written 0, rejected {total}"
        )) && log.contains(reason)
            && log.contains("fix: the destination")
            && !log.contains("complete: every sample"),
        "{dest}: {log}"
    );
}

/// Prometheus 2.42 re-encodes chunks that stick out of the range asked or are still open, and
/// fails on gauge histograms after it has answered 200 and sent some frames: its error text
/// then ends the stream. promimport shows that text as the source's words, with what to do,
/// not "corrupt stream". Prometheus 3.5 serves the same range whole, and it lands exactly.
#[test]
fn a_source_failing_mid_stream_is_shown_in_its_own_words() {
    let exporter = Exporter::gauge();
    let (source, start, end) = scraped_source("gauge-src", &exporter, 40);
    let sink = native_sink("gauge-sink", true);
    let state = temp_dir("gauge-state");
    let (code, log) = Run::new(&source.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start + 3_000, end - 2_000)
        .flags(&["--retries", "1"])
        .state(&state)
        .exec();
    if prometheus_under_test_is_3() {
        // Prometheus 3 re-encodes those chunks without the error: the same range lands whole.
        assert_eq!(code, Some(0), "{log}");
        let (from, to) = (start + 3_000, end - 2_000);
        let (floats, histograms) = read_chunked(&source.url("/api/v1/read"), &[], from, to);
        let (sink_floats, sink_histograms) = read_chunked(&sink.url("/api/v1/read"), &[], from, to);
        assert!(!histograms.is_empty(), "the source holds gauge histograms");
        assert_same_data(&floats, &sink_floats);
        assert_same_histograms(&histograms, &sink_histograms);
        return;
    }
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("answered 200, then failed mid-stream")
            && log.contains("it wrote its own error instead of a frame: iterate chunk while re-encoding: detected unexpected counter reset in histogram")
            && log.contains("gauge histogram")
            && !log.contains("corrupt"),
        "{log}"
    );
}
