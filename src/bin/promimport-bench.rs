//! Tools for `scripts/bench`, kept apart from the product:
//!   generate       remote-writes synthetic history shaped like node-exporter and
//!                  kube-state-metrics, with an application's native histograms, into a
//!                  Prometheus, in time order (promtool's OpenMetrics import re-reads its whole
//!                  input for every 2h block, too slow for 40M samples, and has no histograms)
//!   null-receiver  a remote write receiver that decodes every request, counts, and drops it,
//!                  so a benchmark into it measures promimport's own cost
//!
//! Both are load tools for loopback only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use promimport::proto::histogram::{Count, ResetHint, ZeroCount};
use promimport::proto::{BucketSpan, Histogram, Label, Sample, TimeSeries, WriteRequest};
use promimport::protocol;
use prost::Message;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write synthetic history into a remote write receiver, oldest first
    Generate {
        /// Remote write URL, e.g. http://127.0.0.1:9090/api/v1/write
        #[arg(long)]
        url: String,
        /// Hosts; each has 12 node-exporter series and 16 kube-state-metrics series (8 pods),
        /// so 75 hosts make 2 100 series: 42M samples over 7 days at 30 s
        #[arg(long, default_value_t = 75)]
        hosts: usize,
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// Hours of history instead of days (the real-pod memory test's one 2h window)
        #[arg(long, conflicts_with = "days")]
        hours: Option<i64>,
        #[arg(long, default_value_t = 30)]
        interval_seconds: i64,
        /// Native histogram series per host (an application's request latencies, 12 buckets):
        /// 3 make about 10% of all series. They need a source with the native-histograms
        /// feature on.
        #[arg(long, default_value_t = 3)]
        histograms_per_host: usize,
        /// End of the history, unix seconds [default: now, at a whole hour]
        #[arg(long)]
        end: Option<i64>,
    },
    /// Accept remote write on ADDRESS, decode and count (float and histogram samples); GET
    /// /stats answers the counts as JSON
    NullReceiver {
        #[arg(long, default_value = "127.0.0.1:9999")]
        listen: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            url,
            hosts,
            days,
            hours,
            interval_seconds,
            histograms_per_host,
            end,
        } => generate(
            &url,
            hosts,
            hours.map_or(days * 86_400, |h| h * 3_600),
            interval_seconds,
            histograms_per_host,
            end,
        ),
        Command::NullReceiver { listen } => null_receiver(&listen),
    }
}

/// A series and how its value moves.
struct Series {
    labels: Vec<Label>,
    counter: bool,
    value: f64,
    step: f64,
}

fn series_set(hosts: usize) -> Vec<Series> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let mut add = |pairs: &[(&str, String)], counter: bool, rng: &mut XorShift| {
        let mut labels: Vec<Label> = pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.clone(),
            })
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(Series {
            labels,
            counter,
            value: rng.next_f64() * 1000.0,
            step: 0.5 + rng.next_f64() * 10.0,
        });
    };
    for h in 0..hosts {
        let instance = format!("node-{h:03}.cluster.local:9100");
        let node = || {
            vec![
                ("job", "node-exporter".to_string()),
                ("instance", instance.clone()),
            ]
        };
        for cpu in 0..2 {
            for mode in ["idle", "system", "user", "iowait"] {
                let mut l = node();
                l.extend([
                    ("__name__", "node_cpu_seconds_total".into()),
                    ("cpu", cpu.to_string()),
                    ("mode", mode.into()),
                ]);
                add(&l, true, &mut rng);
            }
        }
        for (name, counter) in [
            ("node_memory_MemAvailable_bytes", false),
            ("node_load1", false),
            ("node_filesystem_avail_bytes", false),
        ] {
            let mut l = node();
            l.push(("__name__", name.into()));
            add(&l, counter, &mut rng);
        }
        let mut l = node();
        l.extend([
            ("__name__", "node_network_receive_bytes_total".into()),
            ("device", "eth0".into()),
        ]);
        add(&l, true, &mut rng);
        for p in 0..8 {
            let pod = format!("app-{h:03}-{p}-7d9f8c6b5-x{p}k2");
            let ksm = |name: &str| {
                vec![
                    ("__name__", name.to_string()),
                    ("job", "kube-state-metrics".to_string()),
                    ("namespace", format!("team-{}", h % 10)),
                    ("pod", pod.clone()),
                ]
            };
            let mut restarts = ksm("kube_pod_container_status_restarts_total");
            restarts.push(("container", "app".into()));
            add(&restarts, true, &mut rng);
            let mut phase = ksm("kube_pod_status_phase");
            phase.push(("phase", "Running".into()));
            add(&phase, false, &mut rng);
        }
    }
    out
}

/// A native histogram series: absolute bucket counts that grow at random.
struct HistogramSeries {
    labels: Vec<Label>,
    buckets: Vec<i64>,
    sum: f64,
}

const HISTOGRAM_BUCKETS: usize = 12;

fn histogram_set(hosts: usize, per_host: usize) -> Vec<HistogramSeries> {
    let handlers = [
        "/api/orders",
        "/api/users",
        "/login",
        "/healthz",
        "/metrics",
    ];
    (0..hosts)
        .flat_map(|h| {
            handlers.iter().take(per_host).map(move |handler| {
                let mut labels: Vec<Label> = [
                    ("__name__", "http_request_duration_seconds".to_string()),
                    ("job", "app".to_string()),
                    ("instance", format!("node-{h:03}.cluster.local:8080")),
                    ("handler", handler.to_string()),
                ]
                .into_iter()
                .map(|(n, v)| Label {
                    name: n.into(),
                    value: v,
                })
                .collect();
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                HistogramSeries {
                    labels,
                    buckets: vec![0; HISTOGRAM_BUCKETS],
                    sum: 0.0,
                }
            })
        })
        .collect()
}

impl HistogramSeries {
    /// The next scrape: a few observations per bucket, most in the middle ones.
    fn next(&mut self, t: i64, rng: &mut XorShift) -> Histogram {
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            let weight = (HISTOGRAM_BUCKETS / 2).abs_diff(i) as f64 + 1.0;
            let n = (rng.next_f64() * 20.0 / weight) as i64;
            *bucket += n;
            self.sum += n as f64 * 2f64.powf((i as f64 - 8.0) / 8.0);
        }
        let mut previous = 0;
        let deltas = self
            .buckets
            .iter()
            .map(|&b| {
                let d = b - previous;
                previous = b;
                d
            })
            .collect();
        Histogram {
            count: Some(Count::CountInt(self.buckets.iter().sum::<i64>() as u64)),
            zero_count: Some(ZeroCount::ZeroCountInt(0)),
            sum: self.sum,
            schema: 3,
            zero_threshold: 2f64.powi(-128),
            positive_spans: vec![BucketSpan {
                offset: -8,
                length: HISTOGRAM_BUCKETS as u32,
            }],
            positive_deltas: deltas,
            reset_hint: ResetHint::No as i32,
            timestamp: t,
            ..Histogram::default()
        }
    }
}

/// The next samples of every float series, at `times`: counters rise, gauges wander.
fn float_steps(
    series: &mut [Series],
    times: impl Iterator<Item = i64> + Clone,
    rng: &mut XorShift,
) -> Vec<TimeSeries> {
    series
        .iter_mut()
        .map(|s| {
            let samples = times
                .clone()
                .map(|timestamp| {
                    s.value = if s.counter {
                        s.value + s.step * (0.5 + rng.next_f64())
                    } else {
                        (s.value + s.step * (rng.next_f64() - 0.5)).abs()
                    };
                    Sample {
                        value: s.value,
                        timestamp,
                    }
                })
                .collect();
            TimeSeries {
                labels: s.labels.clone(),
                samples,
                histograms: Vec::new(),
            }
        })
        .collect()
}

/// One remote write request to the receiver being filled; it must take all of it.
fn send(
    client: &reqwest::blocking::Client,
    url: &str,
    request: WriteRequest,
) -> anyhow::Result<()> {
    let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())?;
    let response = client
        .post(url)
        .header("Content-Encoding", protocol::CONTENT_ENCODING)
        .header("Content-Type", protocol::PROTOBUF)
        .header(
            protocol::REMOTE_WRITE_VERSION_HEADER,
            protocol::REMOTE_WRITE_VERSION,
        )
        .body(body)
        .send()
        .with_context(|| format!("writing to {url}"))?;
    if !response.status().is_success() {
        bail!(
            "{url} answered {}: {}",
            response.status(),
            response.text().unwrap_or_default()
        );
    }
    Ok(())
}

fn generate(
    url: &str,
    hosts: usize,
    seconds: i64,
    interval: i64,
    histograms_per_host: usize,
    end: Option<i64>,
) -> anyhow::Result<()> {
    let mut series = series_set(hosts);
    let mut histogram_series = histogram_set(hosts, histograms_per_host);
    let end = end.unwrap_or_else(|| promimport::timespec::now_ms() / 1000 / 3600 * 3600);
    let start = end - seconds;
    let steps = (end - start) / interval;
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let mut rng = XorShift(42);
    let started = Instant::now();
    let mut written = 0u64;
    let mut histograms = 0u64;
    // Time-major batches of 60 steps: every request is newer than the one before, so a
    // receiver without an out-of-order window takes all of it. Fewer steps for many series,
    // so that no request holds more than about 600k samples.
    let per_request =
        (600_000 / (series.len() + histogram_series.len()).max(1)).clamp(1, 60) as i64;
    let mut step = 0;
    while step < steps {
        let last = (step + per_request).min(steps);
        let times = (step..last).map(|k| (start + k * interval) * 1000);
        let mut timeseries = float_steps(&mut series, times.clone(), &mut rng);
        for h in &mut histogram_series {
            let samples: Vec<Histogram> = times.clone().map(|t| h.next(t, &mut rng)).collect();
            histograms += samples.len() as u64;
            timeseries.push(TimeSeries {
                labels: h.labels.clone(),
                samples: Vec::new(),
                histograms: samples,
            });
        }
        written += timeseries
            .iter()
            .map(|t| (t.samples.len() + t.histograms.len()) as u64)
            .sum::<u64>();
        send(&client, url, WriteRequest { timeseries })?;
        step = last;
    }
    let count = series.len() + histogram_series.len();
    eprintln!(
        "generated {count} series ({} native histogram), {written} samples ({histograms} \
         histogram) from {start} to {end} in {:.1}s",
        histogram_series.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{{\"series\":{count},\"histogram_series\":{},\"samples\":{written},\"histograms\":{histograms},\"start\":{start},\"end\":{end}}}",
        histogram_series.len()
    );
    Ok(())
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    samples: AtomicU64,
    bytes: AtomicU64,
}

fn null_receiver(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    let counts = Arc::new(Counts::default());
    eprintln!("null receiver on {listen}");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let counts = counts.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &counts) {
                eprintln!("connection: {e:#}");
            }
        });
    }
    Ok(())
}

/// HTTP/1.1 with keep-alive, Content-Length bodies only: what remote write clients send.
fn serve(mut stream: TcpStream, counts: &Counts) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let header_end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse())
            .transpose()?
            .unwrap_or(0);
        while buffer.len() < header_end + length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                bail!("connection closed inside a body");
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buffer
            .drain(..header_end + length)
            .skip(header_end)
            .collect();
        if head.starts_with("get /stats") {
            let json = format!(
                "{{\"requests\":{},\"samples\":{},\"bytes\":{}}}",
                counts.requests.load(Ordering::Relaxed),
                counts.samples.load(Ordering::Relaxed),
                counts.bytes.load(Ordering::Relaxed)
            );
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            )?;
            continue;
        }
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .context("snappy")?;
        let request = WriteRequest::decode(raw.as_slice()).context("protobuf")?;
        counts.requests.fetch_add(1, Ordering::Relaxed);
        counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        counts.samples.fetch_add(
            request
                .timeseries
                .iter()
                .map(|t| (t.samples.len() + t.histograms.len()) as u64)
                .sum(),
            Ordering::Relaxed,
        );
        stream.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")?;
    }
}

/// A small deterministic generator: the bench data is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
