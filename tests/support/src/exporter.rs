//! A scrape target serving native histograms in the protobuf exposition format (client_model's
//! `metrics.proto`, length-delimited `MetricFamily` messages): the only way Prometheus 2.42
//! ingests them, so the history a test imports is made by Prometheus itself, not by any
//! encoder of ours. Each scrape serves the next step of a scripted history and records what it
//! served under its scrape number, which it also serves as the gauge `exporter_scrape`: a test
//! matches every sample Prometheus stored with what was served at that timestamp.
//!
//! The history: integer histograms with several schemas, positive, negative and empty buckets,
//! a counter reset, a bucket that appears, a schema change and values wide enough for every
//! varbit width; a float histogram; a series that vanishes for a while (a stale marker); and
//! float series beside them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use promimport::proto::histogram::{Count, ZeroCount};
use promimport::proto::{BucketSpan, Histogram, Label};
use prost::Message;

use std::time::{Duration, Instant};

use super::{
    FakeResponse, FakeServer, PrometheusOptions, Server, series_key, start_prometheus_config,
};

#[derive(Clone, PartialEq, prost::Message)]
struct MetricFamily {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    help: String,
    /// COUNTER 0, GAUGE 1, HISTOGRAM 4, GAUGE_HISTOGRAM 5.
    #[prost(int32, tag = "3")]
    kind: i32,
    #[prost(message, repeated, tag = "4")]
    metric: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Metric {
    #[prost(message, repeated, tag = "1")]
    label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    gauge: Option<Value>,
    #[prost(message, optional, tag = "3")]
    counter: Option<Value>,
    #[prost(message, optional, tag = "7")]
    histogram: Option<DtoHistogram>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LabelPair {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    #[prost(double, tag = "1")]
    value: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DtoSpan {
    #[prost(sint32, tag = "1")]
    offset: i32,
    #[prost(uint32, tag = "2")]
    length: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DtoHistogram {
    #[prost(uint64, tag = "1")]
    sample_count: u64,
    #[prost(double, tag = "4")]
    sample_count_float: f64,
    #[prost(double, tag = "2")]
    sample_sum: f64,
    #[prost(sint32, tag = "5")]
    schema: i32,
    #[prost(double, tag = "6")]
    zero_threshold: f64,
    #[prost(uint64, tag = "7")]
    zero_count: u64,
    #[prost(double, tag = "8")]
    zero_count_float: f64,
    #[prost(message, repeated, tag = "9")]
    negative_span: Vec<DtoSpan>,
    #[prost(sint64, repeated, tag = "10")]
    negative_delta: Vec<i64>,
    #[prost(double, repeated, tag = "11")]
    negative_count: Vec<f64>,
    #[prost(message, repeated, tag = "12")]
    positive_span: Vec<DtoSpan>,
    #[prost(sint64, repeated, tag = "13")]
    positive_delta: Vec<i64>,
    #[prost(double, repeated, tag = "14")]
    positive_count: Vec<f64>,
}

/// One native histogram as served, in both forms: the exposition's and remote write's.
struct Served {
    dto: DtoHistogram,
    proto: Histogram,
}

fn spans(list: &[(i32, u32)]) -> (Vec<DtoSpan>, Vec<BucketSpan>) {
    (
        list.iter()
            .map(|&(offset, length)| DtoSpan { offset, length })
            .collect(),
        list.iter()
            .map(|&(offset, length)| BucketSpan { offset, length })
            .collect(),
    )
}

/// Absolute bucket counts to the deltas both formats carry for integer histograms.
fn deltas(counts: &[i64]) -> Vec<i64> {
    let mut previous = 0;
    counts
        .iter()
        .map(|&c| {
            let d = c - previous;
            previous = c;
            d
        })
        .collect()
}

struct IntShape<'a> {
    schema: i32,
    zero_threshold: f64,
    zero: u64,
    sum: f64,
    positive: (&'a [(i32, u32)], &'a [i64]),
    negative: (&'a [(i32, u32)], &'a [i64]),
}

fn int_histogram(shape: IntShape) -> Served {
    let count = shape.zero + shape.positive.1.iter().chain(shape.negative.1).sum::<i64>() as u64;
    let (dto_pos, pos) = spans(shape.positive.0);
    let (dto_neg, neg) = spans(shape.negative.0);
    Served {
        dto: DtoHistogram {
            sample_count: count,
            sample_sum: shape.sum,
            schema: shape.schema,
            zero_threshold: shape.zero_threshold,
            zero_count: shape.zero,
            positive_span: dto_pos,
            positive_delta: deltas(shape.positive.1),
            negative_span: dto_neg,
            negative_delta: deltas(shape.negative.1),
            ..DtoHistogram::default()
        },
        proto: Histogram {
            count: Some(Count::CountInt(count)),
            zero_count: Some(ZeroCount::ZeroCountInt(shape.zero)),
            sum: shape.sum,
            schema: shape.schema,
            zero_threshold: shape.zero_threshold,
            positive_spans: pos,
            positive_deltas: deltas(shape.positive.1),
            negative_spans: neg,
            negative_deltas: deltas(shape.negative.1),
            ..Histogram::default()
        },
    }
}

fn float_histogram(n: f64) -> Served {
    let positive = [0.1 * n, 0.0, 1.5 * n + 0.3];
    let negative = [0.25 * n];
    let zero = 0.75 * n;
    let count = zero + positive.iter().chain(&negative).sum::<f64>();
    let sum = -1.25 * n + 0.001;
    let (dto_pos, pos) = spans(&[(-1, 3)]);
    let (dto_neg, neg) = spans(&[(2, 1)]);
    Served {
        dto: DtoHistogram {
            sample_count_float: count,
            sample_sum: sum,
            schema: 1,
            // Above 0, or Prometheus 2.42 takes a float-count histogram for a classic one.
            zero_threshold: 0.5,
            zero_count_float: zero,
            positive_span: dto_pos,
            positive_count: positive.to_vec(),
            negative_span: dto_neg,
            negative_count: negative.to_vec(),
            ..DtoHistogram::default()
        },
        proto: Histogram {
            count: Some(Count::CountFloat(count)),
            zero_count: Some(ZeroCount::ZeroCountFloat(zero)),
            sum,
            schema: 1,
            zero_threshold: 0.5,
            positive_spans: pos,
            positive_counts: positive.to_vec(),
            negative_spans: neg,
            negative_counts: negative.to_vec(),
            ..Histogram::default()
        },
    }
}

/// A gauge histogram (a queue's length distribution): counts go up and down.
fn gauge_histogram(n: i64) -> Served {
    let level = [3i64, 7, 2, 9, 1][(n % 5) as usize] + n % 3;
    int_histogram(IntShape {
        schema: 0,
        zero_threshold: 0.0,
        zero: 0,
        sum: 2.0 * level as f64,
        positive: (&[(0, 2)], &[level, level / 2]),
        negative: (&[], &[]),
    })
}

/// Every histogram of scrape `n` (from 1), by (metric name, `path` label or "").
fn histograms_at(n: i64) -> Vec<(&'static str, &'static str, Served)> {
    let mut out = Vec::new();
    // A counter that resets at scrape 61; an empty bucket throughout.
    let m = if n >= 61 { n - 60 } else { n };
    out.push((
        "test_latency_seconds",
        "/a",
        int_histogram(IntShape {
            schema: 3,
            zero_threshold: 2f64.powi(-128),
            zero: m as u64 / 3,
            sum: 0.37 * m as f64,
            positive: (&[(-2, 3), (2, 2)], &[m, 2 * m, 0, m + 1, 3]),
            negative: (&[(0, 1)], &[m / 2]),
        }),
    ));
    // A bucket appears at scrape 30 (Prometheus widens the chunk's layout); the series is
    // gone from scrapes 80 to 90, so Prometheus writes a stale marker for it.
    if !(80..=90).contains(&n) {
        let wide: &[(i32, u32)] = if n >= 30 {
            &[(0, 2), (3, 1)]
        } else {
            &[(0, 2)]
        };
        let counts = [n, n / 2, 5 * n];
        out.push((
            "test_latency_seconds",
            "/b",
            int_histogram(IntShape {
                schema: 0,
                zero_threshold: 0.001,
                zero: 0,
                sum: 12.5 * n as f64,
                positive: (wide, &counts[..if n >= 30 { 3 } else { 2 }]),
                negative: (&[], &[]),
            }),
        ));
    }
    // Counts growing by n^3 and a 2^40 offset: deltas of deltas of every varbit width. The
    // schema changes at scrape 50.
    let big = (1i64 << 40) + n.pow(3) * 997;
    out.push((
        "test_size_bytes",
        "",
        int_histogram(IntShape {
            schema: if n >= 50 { 1 } else { 5 },
            zero_threshold: 0.0,
            zero: n.pow(2) as u64,
            sum: big as f64 * 1.5,
            positive: (&[(7, 1), (1000, 1)], &[big, n * 1000]),
            negative: (&[(-3, 2)], &[n.pow(4), 1]),
        }),
    ));
    out.push(("test_ratio", "", float_histogram(n as f64)));
    out
}

#[derive(Default)]
struct State {
    /// Serve one gauge histogram instead of the counter history.
    gauge: bool,
    scrapes: i64,
    down: bool,
    /// By scrape number: series key to the histogram served.
    served: BTreeMap<i64, BTreeMap<String, Histogram>>,
}

pub struct Exporter {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

impl Exporter {
    pub fn start() -> Exporter {
        Self::serving(false)
    }

    /// An exporter of one gauge histogram, `queue_length`.
    pub fn gauge() -> Exporter {
        Self::serving(true)
    }

    fn serving(gauge: bool) -> Exporter {
        let state = Arc::new(Mutex::new(State {
            gauge,
            ..State::default()
        }));
        let shared = state.clone();
        let port = Arc::new(std::sync::OnceLock::<u16>::new());
        let own = port.clone();
        let server = FakeServer::start(move |_, _| {
            let mut state = shared.lock().unwrap();
            if state.down {
                return FakeResponse::new(503, "text/plain", "down");
            }
            state.scrapes += 1;
            let n = state.scrapes;
            let instance = format!("127.0.0.1:{}", own.get().copied().unwrap_or(0));
            let (body, served) = scrape(n, &instance, state.gauge);
            state.served.insert(n, served);
            FakeResponse::new(
                200,
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
                body,
            )
        });
        port.set(server.port).unwrap();
        Exporter { server, state }
    }

    /// The target, as a Prometheus configuration names it.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    pub fn scrapes(&self) -> i64 {
        self.state.lock().unwrap().scrapes
    }

    /// From now on every scrape fails: Prometheus marks every series stale.
    pub fn go_down(&self) {
        self.state.lock().unwrap().down = true;
    }

    /// What scrape `n` served: series key (with the job and instance Prometheus adds) to
    /// the histogram.
    pub fn served(&self, n: i64) -> BTreeMap<String, Histogram> {
        self.state
            .lock()
            .unwrap()
            .served
            .get(&n)
            .cloned()
            .unwrap_or_default()
    }
}

/// The exposition of scrape `n`, and the histograms in it by series key.
fn scrape(n: i64, instance: &str, gauge: bool) -> (Vec<u8>, BTreeMap<String, Histogram>) {
    let key = |name: &str, path: &str| {
        let mut labels = vec![
            Label {
                name: "__name__".into(),
                value: name.into(),
            },
            Label {
                name: "instance".into(),
                value: instance.into(),
            },
            Label {
                name: "job".into(),
                value: "native".into(),
            },
        ];
        if !path.is_empty() {
            labels.push(Label {
                name: "path".into(),
                value: path.into(),
            });
        }
        series_key(&labels)
    };
    let mut families: BTreeMap<&str, MetricFamily> = BTreeMap::new();
    let mut served = BTreeMap::new();
    let (histograms, kind) = if gauge {
        (vec![("queue_length", "", gauge_histogram(n))], 5)
    } else {
        (histograms_at(n), 4)
    };
    for (name, path, histogram) in histograms {
        let family = families.entry(name).or_insert_with(|| MetricFamily {
            name: name.into(),
            help: "a native histogram".into(),
            kind,
            metric: Vec::new(),
        });
        family.metric.push(Metric {
            label: if path.is_empty() {
                Vec::new()
            } else {
                vec![LabelPair {
                    name: "path".into(),
                    value: path.into(),
                }]
            },
            histogram: Some(histogram.dto),
            ..Metric::default()
        });
        served.insert(key(name, path), histogram.proto);
    }
    let floats = [
        ("exporter_scrape", 1, n as f64),
        ("test_requests_total", 0, 1.5 * n as f64),
    ];
    let mut body = Vec::new();
    for family in families.into_values() {
        family.encode_length_delimited(&mut body).unwrap();
    }
    for (name, kind, value) in floats {
        let metric = Metric {
            gauge: (kind == 1).then_some(Value { value }),
            counter: (kind == 0).then_some(Value { value }),
            ..Metric::default()
        };
        MetricFamily {
            name: name.into(),
            help: "a float series".into(),
            kind,
            metric: vec![metric],
        }
        .encode_length_delimited(&mut body)
        .unwrap();
    }
    (body, served)
}

/// A source Prometheus that scrapes the exporter every 200 ms until it served `scrapes`, then
/// sees it fail, so every series ends with a stale marker. Returns the source and a range
/// [start, end) holding all of it.
pub fn scraped_source(name: &str, exporter: &Exporter, scrapes: i64) -> (Server, i64, i64) {
    scraped_source_of(None, name, exporter, scrapes)
}

/// `scraped_source` of the Prometheus in `tools` (see `PrometheusOptions::tools`).
pub fn scraped_source_of(
    tools: Option<&std::path::Path>,
    name: &str,
    exporter: &Exporter,
    scrapes: i64,
) -> (Server, i64, i64) {
    let config = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: native\n    static_configs:\n      - targets: ['{}']\n",
        exporter.target()
    );
    let started = now_ms();
    let source = start_prometheus_config(
        name,
        &config,
        PrometheusOptions {
            max_bytes_in_frame: Some(4096),
            tools,
            ..PrometheusOptions::default()
        },
        &["--enable-feature=native-histograms"],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while exporter.scrapes() < scrapes {
        assert!(
            Instant::now() < deadline,
            "only {} scrapes in 120 s",
            exporter.scrapes()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    exporter.go_down();
    // A failed scrape or two later every series has its stale marker. Prometheus goes on
    // recording `up` and the scrape's own series, so the range ends in the past, where
    // nothing changes any more.
    std::thread::sleep(Duration::from_millis(1500));
    let end = now_ms();
    std::thread::sleep(Duration::from_millis(500));
    (source, started / 60_000 * 60_000, end)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
