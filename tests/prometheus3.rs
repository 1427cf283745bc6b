//! What only Prometheus 3 shows: metric and label names outside the legacy character set (UTF-8
//! by default since 3.0), and out-of-order native histograms, which 2.42 refused. Every server
//! here is Prometheus 3 (Debian unstable's 3.5, from scripts/prometheus3), whatever the
//! Prometheus under test of the other files is; the Prometheus 2.42 sink below is the system's.

use promimport_test_support as common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::exporter::{Exporter, scraped_source_of};
use common::*;

/// Names Prometheus 2.42 could not hold: dots, a slash, non-ASCII, and names made of regular
/// expression metacharacters beside the names they would match unescaped (`a.b` and `axb`).
const METRICS: [&str; 7] = [
    "http.server.duration",
    "a.b",
    "axb",
    "a/b",
    "größe_bytes",
    "a.*",
    "(x|y)",
];

fn prometheus3() -> PathBuf {
    let dir = prometheus3_dir();
    assert_eq!(
        prometheus_major(&dir.join("prometheus")),
        3,
        "{}",
        dir.display()
    );
    dir
}

/// 4 hours of every name in `METRICS`, two series each (`"service.name"` and `"k8s.pod/ü"`
/// labels), 15 s apart, from BASE_MS.
fn utf8_source(tools: &Path) -> (Server, usize) {
    let dir = temp_dir("p3-utf8-history");
    let path = dir.join("history.om");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut samples = 0;
    for (i, name) in METRICS.iter().enumerate() {
        for pod in ["p-1", "p.2"] {
            for k in 0..4 * 240 {
                let t = BASE_MS / 1000 + k * 15;
                let value = (i as i64 * 1000 + k) as f64 / 4.0;
                writeln!(
                    out,
                    r#"{{"{name}","service.name"="a.b","k8s.pod/ü"="{pod}"}} {value} {t}"#
                )
                .unwrap();
                samples += 1;
            }
        }
    }
    writeln!(out, "# EOF").unwrap();
    drop(out);
    let source = start_prometheus(
        "p3-utf8-src",
        PrometheusOptions {
            history: Some(&path),
            tools: Some(tools),
            ..PrometheusOptions::default()
        },
    );
    (source, samples)
}

fn sink3(name: &str, tools: &Path, extra: &[&str]) -> Server {
    start_prometheus_with(
        name,
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            tools: Some(tools),
            ..PrometheusOptions::default()
        },
        extra,
    )
}

#[test]
fn utf8_metric_and_label_names_are_read_once_written_verified_and_named_exactly() {
    let tools = prometheus3();
    let (source, samples) = utf8_source(&tools);
    let (start, end) = (BASE_MS, BASE_MS + 4 * HOUR_MS);
    let expected = read_samples(&source, start, end);
    assert_eq!(expected.len(), METRICS.len() * 2);
    assert_eq!(total_samples(&expected), samples);
    let sink = sink3("p3-utf8-sink", &tools, &[]);
    // One metric name per query: `a.b` and `axb` each read by their own, exactly once.
    let (code, log) = Run::new(&source.url("/api/v1/read"), &sink.url("/api/v1/write"))
        .between(start, end)
        .flags(&["--metrics-per-read", "1"])
        .state(&temp_dir("p3-utf8-state"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!(
            "samples  read {samples}, written {samples}, rejected 0"
        )),
        "each series read once: {log}"
    );
    assert_same_data(&expected, &read_samples(&sink, start, end));
    let out = verify_range(&source, &sink.url("/api/v1/read"), start, end, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("match (bit for bit)"), "{}", text(&out));

    // A selector in Prometheus 3's own syntax picks exactly its series.
    let only = sink3("p3-utf8-only", &tools, &[]);
    let selector = r#"{"http.server.duration", "k8s.pod/ü"="p.2"}"#;
    let (code, log) = Run::new(&source.url("/api/v1/read"), &only.url("/api/v1/write"))
        .between(start, end)
        .flag("--match", selector)
        .state(&temp_dir("p3-utf8-only-state"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    let held = read_samples(&only, start, end);
    let picked: Data = expected
        .iter()
        .filter(|(key, _)| {
            key.contains(r#"__name__="http.server.duration""#) && key.contains(r#""p.2""#)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(picked.len(), 1);
    assert_same_data(&picked, &held);
    // What is missing there is named as Prometheus 3 writes it, quoted names and all.
    let out = verify_range(&source, &only.url("/api/v1/read"), start, end, &[]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(r#""k8s.pod/ü"="p-1""#) && said.contains(r#""service.name"="a.b""#),
        "{said}"
    );
}

#[test]
fn out_of_order_native_histograms_land_in_a_prometheus_3_sink_where_2_42_refused_them() {
    let tools = prometheus3();
    let exporter = Exporter::start();
    let (source, start, end) = scraped_source_of(Some(&tools), "p3-ooo-src", &exporter, 30);
    let (floats, histograms) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    assert!(!histograms.is_empty(), "the source holds native histograms");
    let native = ["--enable-feature=native-histograms"];
    let sink = sink3("p3-ooo-sink", &tools, &native);
    let old = start_prometheus_with(
        "p3-ooo-242",
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            tools: Some(Path::new("/usr/bin")),
            ..PrometheusOptions::default()
        },
        &native,
    );
    assert_eq!(prometheus_major(Path::new("/usr/bin/prometheus")), 2);
    // The range's second half first, then its first half: every histogram of the second run
    // is older than its series' newest in the sink.
    let times: Vec<i64> = histograms.values().flatten().map(|h| h.timestamp).collect();
    let middle = (times.iter().min().unwrap() + times.iter().max().unwrap()) / 2;
    let import = |dest: &Server, from: i64, to: i64| {
        Run::new(&source.url("/api/v1/read"), &dest.url("/api/v1/write"))
            .between(from, to)
            .flags(&["--window", "1m"])
            .state(&temp_dir("p3-ooo-state"))
            .exec()
    };
    for dest in [&sink, &old] {
        let (code, log) = import(dest, middle, end);
        assert_eq!(code, Some(0), "{log}");
    }
    let (code, log) = import(&sink, start, middle);
    assert_eq!(code, Some(0), "{log}");
    let (sink_floats, sink_histograms) = read_chunked(&sink.url("/api/v1/read"), &[], start, end);
    assert_same_data(&floats, &sink_floats);
    assert_same_histograms(&histograms, &sink_histograms);
    // Into 2.42 the same is refused, and counted, not lost silently.
    let (code, log) = import(&old, start, middle);
    assert_eq!(code, Some(3), "{log}");
    assert!(log.contains("out of order"), "{log}");
}
