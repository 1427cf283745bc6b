//! Real servers for the end-to-end tests: Prometheus (Debian bookworm's 2.42, or the 3.x that
//! `PROMTEST_PROMETHEUS` names) and VictoriaMetrics 1.79 from Debian, started on free loopback ports in temporary directories and killed when dropped; history made
//! with promtool; and an independent reader that fetches raw samples back (remote read in
//! SAMPLES mode, decoded here with prost alone, not with promimport's streamed decoder).
//! Native histograms are left out of SAMPLES answers by Prometheus 2.42, so `read_chunked`
//! reads them streamed with promimport's decoders; tests check those against what the
//! exporter in `exporter.rs` served, which is independent of both.

pub mod cluster;
pub mod cortex;
pub mod cortex_replay;
pub mod cortex_stories;
pub mod exporter;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use promimport::proto::{
    Label, LabelMatcher, Query, ReadRequest, ReadResponse, Sample, TimeSeries, WriteRequest,
    label_matcher, read_request,
};
use promimport::protocol;
use prost::Message;

/// Series key (sorted `name="value"` pairs) to (timestamp, value bits).
pub type Data = BTreeMap<String, Vec<(i64, u64)>>;

pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// 2026-11-01T00:00:00Z
pub const BASE_MS: i64 = 1_793_491_200_000;
pub const HOUR_MS: i64 = 3_600_000;

/// The tests' own variables are `PROMTEST_*`, never `PROMIMPORT_*`: a worker refuses a
/// `PROMIMPORT_` variable it does not know (a typo would be lost otherwise), and tests start
/// workers in their own environment.
///
/// Where the Prometheus under test comes from: `PROMTEST_PROMETHEUS`, a directory that holds
/// `prometheus` and `promtool` (scripts/test sets it to Prometheus 3's for its second pass), or
/// else the system's (Debian bookworm's 2.42, on the PATH).
pub fn prometheus_tool(name: &str) -> PathBuf {
    match std::env::var_os("PROMTEST_PROMETHEUS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(name),
        _ => PathBuf::from(name),
    }
}

/// The directory of Prometheus 3's `prometheus` and `promtool`, for the tests of what only 3.x
/// does: `PROMTEST_PROMETHEUS3`, or where scripts/prometheus3 unpacks them.
pub fn prometheus3_dir() -> PathBuf {
    let dir = match std::env::var_os("PROMTEST_PROMETHEUS3") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let cache = std::env::var_os("PROMIMPORT_CACHE").map_or_else(
                || PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/promimport"),
                PathBuf::from,
            );
            cache.join("prometheus-3/usr/bin")
        }
    };
    assert!(
        dir.join("prometheus").is_file(),
        "no Prometheus 3 in {}: run scripts/prometheus3 (scripts/test does)",
        dir.display()
    );
    dir
}

/// The major version of the Prometheus at `binary` (2 or 3), from its `--version`.
pub fn prometheus_major(binary: &Path) -> u32 {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{} --version: {e}", binary.display()));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    said.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no version in {said:?}"))
}

/// Whether the Prometheus under test is 3.x (some of its answers differ from 2.42's).
pub fn prometheus_under_test_is_3() -> bool {
    static MAJOR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MAJOR.get_or_init(|| prometheus_major(&prometheus_tool("prometheus"))) >= 3
}

/// The address the tests' servers listen on: loopback, or `PROMTEST_HOST` where pods
/// must reach them (scripts/cluster's node address, inside its network namespace).
pub fn test_host() -> String {
    std::env::var("PROMTEST_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into())
}

pub fn free_port() -> u16 {
    TcpListener::bind((test_host().as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "promimport-test-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server process that is killed when the test ends, however it ends.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", test_host(), self.port)
    }
}

#[derive(Default)]
pub struct PrometheusOptions<'a> {
    /// Accept remote write (to be a sink, or to seed stale markers into a source).
    pub receiver: bool,
    pub out_of_order_window: Option<&'a str>,
    pub max_bytes_in_frame: Option<usize>,
    /// An OpenMetrics file turned into blocks with promtool before start.
    pub history: Option<&'a Path>,
    /// The directory of the `prometheus` and `promtool` to run; `None`: the Prometheus under
    /// test (`prometheus_tool`).
    pub tools: Option<&'a Path>,
    /// The client that asks whether it is ready, for a Prometheus that requires a client
    /// certificate (`mtls_client`); `None`: one that trusts any certificate.
    pub ready_client: Option<&'a reqwest::blocking::Client>,
}

pub fn start_prometheus(name: &str, options: PrometheusOptions) -> Server {
    start_prometheus_with(name, options, &[])
}

/// `start_prometheus` with extra flags, e.g. `--web.enable-admin-api`.
pub fn start_prometheus_with(name: &str, options: PrometheusOptions, extra: &[&str]) -> Server {
    let config = match options.out_of_order_window {
        Some(window) => format!("storage:\n  tsdb:\n    out_of_order_time_window: {window}\n"),
        None => String::new(),
    };
    start_prometheus_config(name, &config, options, extra)
}

/// `start_prometheus_with` and a configuration file of the test's (scrape targets); the
/// options' out-of-order window is then the configuration's business.
pub fn start_prometheus_config(
    name: &str,
    config_body: &str,
    options: PrometheusOptions,
    extra: &[&str],
) -> Server {
    let dir = temp_dir(name);
    spawn_prometheus(dir.clone(), &dir.join("data"), config_body, options, extra)
}

/// A Prometheus (no remote write receiver) on a data directory the test has filled, e.g. with
/// blocks that promimport wrote.
pub fn start_prometheus_on(name: &str, data: &Path, extra: &[&str]) -> Server {
    let options = PrometheusOptions::default();
    spawn_prometheus(temp_dir(name), data, "", options, extra)
}

fn spawn_prometheus(
    dir: PathBuf,
    data: &Path,
    config_body: &str,
    options: PrometheusOptions,
    extra: &[&str],
) -> Server {
    let tools = options
        .tools
        .map_or_else(|| prometheus_tool(""), Path::to_path_buf);
    if let Some(history) = options.history {
        let out = Command::new(tools.join("promtool"))
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(history)
            .arg(data)
            .output()
            .expect("promtool runs (Debian package prometheus; scripts/test installs it)");
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, config_body).unwrap();
    let port = free_port();
    let mut command = Command::new(tools.join("prometheus"));
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={}:{port}", test_host()))
        .arg("--storage.tsdb.retention.time=3650d")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap());
    if options.receiver {
        command.arg("--web.enable-remote-write-receiver");
    }
    if let Some(bytes) = options.max_bytes_in_frame {
        command.arg(format!("--storage.remote.read-max-bytes-in-frame={bytes}"));
    }
    command.args(extra);
    let child = command
        .spawn()
        .expect("prometheus runs (Debian package prometheus; scripts/test installs it)");
    let server = Server { child, port, dir };
    let tls = extra
        .iter()
        .any(|flag| flag.starts_with("--web.config.file"));
    let scheme = if tls { "https" } else { "http" };
    let ready = format!("{scheme}://{}:{}/-/ready", test_host(), server.port);
    match options.ready_client {
        Some(client) => wait_ready_with(&server, &ready, client),
        None => wait_ready_at(&server, &ready),
    }
    server
}

pub fn start_victoria_metrics(name: &str, retention: &str) -> Server {
    let dir = temp_dir(name);
    let port = free_port();
    let child = Command::new("victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.join("data").display()))
        .arg(format!("-httpListenAddr={}:{port}", test_host()))
        .arg(format!("-retentionPeriod={retention}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("vm.log")).unwrap())
        .spawn()
        .expect(
            "victoria-metrics runs (Debian package victoria-metrics; scripts/test installs it)",
        );
    let server = Server { child, port, dir };
    wait_ready(&server, "/health");
    server
}

/// An S3-compatible server on loopback (moto, from PyPI; scripts/install-deps installs it)
/// holding one empty bucket, `bucket`. Its endpoint is `server.url("")`; it takes any keys.
pub fn start_s3(name: &str, bucket: &str) -> Server {
    start_s3_with(name, bucket, None)
}

/// The object keys of an S3 `ListObjectsV2` answer (moto answers it unsigned).
pub fn s3_keys(listing: &str) -> Vec<&str> {
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .collect()
}

/// `start_s3` serving HTTPS with the certificate and key `certificates` made, when given
/// (its endpoint is then `https://HOST:PORT`, the host `test_host()`).
pub fn start_s3_with(name: &str, bucket: &str, tls: Option<&Certificates>) -> Server {
    let dir = temp_dir(name);
    let port = free_port();
    let mut args = vec![
        "-m".to_string(),
        "moto.server".into(),
        "-H".into(),
        test_host(),
        "-p".into(),
        port.to_string(),
    ];
    if let Some(tls) = tls {
        args.extend(["-c".into(), tls.cert.display().to_string()]);
        args.extend(["-k".into(), tls.key.display().to_string()]);
    }
    let child = Command::new("python3")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("moto.log")).unwrap())
        .spawn()
        .expect("python3 runs moto.server (PyPI moto[server]; scripts/install-deps installs it)");
    let server = Server { child, port, dir };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{}:{port}", test_host());
    wait_ready_at(&server, &format!("{endpoint}/"));
    // Setting up, not what is tested: the test server's certificate is taken as it is.
    let made = reqwest::blocking::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .unwrap();
    assert!(made.status().is_success(), "bucket {bucket}: {made:?}");
    server
}

/// Every object of `tenant` in the moto bucket at `endpoint`, written into `dir` without the
/// tenant's prefix (ULID/meta.json, ...), where a Prometheus serves them; the number of blocks.
/// moto lists a bucket unsigned, and serves objects only to signed requests.
pub fn download_tenant(endpoint: &str, bucket: &str, tenant: &str, dir: &Path) -> usize {
    use object_store::ObjectStoreExt;
    let client = reqwest::blocking::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let listing = client
        .get(format!("{endpoint}/{bucket}?list-type=2&prefix={tenant}/"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id("x")
        .with_secret_access_key("y")
        .with_client_options(
            object_store::ClientOptions::new()
                .with_allow_http(true)
                .with_allow_invalid_certificates(true),
        )
        .build()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut blocks = 0;
    for key in s3_keys(&listing) {
        let location = object_store::path::Path::from(key);
        let bytes = runtime
            .block_on(async { store.get(&location).await?.bytes().await })
            .unwrap();
        let path = dir.join(key.trim_start_matches(&format!("{tenant}/")));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        blocks += usize::from(key.ends_with("/meta.json"));
    }
    blocks
}

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost (rustls refuses
/// a self-signed end certificate), as PEM files.
pub struct Certificates {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Signs the request `csr` in `dir` with the CA there (`ca.crt`, `ca.key`) for two days,
/// with the extensions in `ext`, into `out`.
pub fn sign_with_ca(dir: &Path, csr: &str, ext: &str, out: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            out,
        ],
    );
}

/// A client with the client certificate of `dir` (`ca.crt`, `client.crt`, `client.key`, as
/// `cortex::opni_certificates` writes them), trusting only that CA, for any host name: the
/// servers' certificates name only Opni's short Service names.
pub fn mtls_client(dir: &Path) -> reqwest::blocking::Client {
    let read = |f: &str| std::fs::read(dir.join(f)).expect("certificate files");
    let mut pem = read("client.crt");
    pem.extend(read("client.key"));
    reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&read("ca.crt")).unwrap())
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .tls_danger_accept_invalid_hostnames(true)
        .build()
        .unwrap()
}

pub fn certificates(dir: &Path) -> Certificates {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    sign_with_ca(dir, "tls.csr", "ext.cnf", "tls.crt");
    Certificates {
        ca: dir.join("ca.crt"),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

fn wait_ready(server: &Server, path: &str) {
    wait_ready_at(server, &server.url(path));
}

fn wait_ready_at(server: &Server, url: &str) {
    // Readiness only: a test server's self-signed certificate is not what is tested here.
    let client = reqwest::blocking::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    wait_ready_with(server, url, &client);
}

fn wait_ready_with(server: &Server, url: &str, client: &reqwest::blocking::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send()
            && response.status().is_success()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "server in {} did not become ready within 30s",
        server.dir.display()
    );
}

/// The test history: counters, gauges (with negative, tiny, NaN and, with `huge`, 1.7e308
/// values), series that start and stop mid-range, at 15 s and 30 s intervals, over
/// [BASE, BASE + hours).
pub fn write_history(path: &Path, hours: i64, huge: bool) {
    write_history_at(path, BASE_MS, hours, huge);
}

/// `write_history` over [base, base + hours); `base_ms` is cut to whole seconds (OpenMetrics
/// timestamps are seconds).
pub fn write_history_at(path: &Path, base_ms: i64, hours: i64, huge: bool) {
    let base_s = base_ms.div_euclid(1000);
    let mut out = String::new();
    let end_s = hours * 3600;
    out.push_str("# HELP test_requests_total Requests.\n# TYPE test_requests_total counter\n");
    for instance in 0..8 {
        for code in ["200", "500"] {
            let mut value = 0.0;
            for t in (0..end_s).step_by(15) {
                value += (t % 7 + instance) as f64 * if code == "200" { 1.0 } else { 0.01 };
                out.push_str(&format!(
                    "test_requests_total{{instance=\"host-{instance}:9100\",code=\"{code}\",job=\"node\"}} {value} {}\n",
                    base_s + t
                ));
            }
        }
    }
    out.push_str("# HELP test_temperature Gauge.\n# TYPE test_temperature gauge\n");
    for sensor in 0..6 {
        // Sensor k exists only for part of the range: it starts and stops mid-range.
        let (from, to) = (sensor * end_s / 12, end_s - sensor * end_s / 16);
        for t in (from..to).step_by(30) {
            let value = match (t / 30) % 9 {
                0 => "NaN".to_string(),
                1 => "-0.000001".to_string(),
                2 if huge => "1.7e308".to_string(),
                _ => format!("{}", ((t as f64) / 97.0).sin() * 40.0 + sensor as f64),
            };
            out.push_str(&format!(
                "test_temperature{{sensor=\"s{sensor}\",job=\"env\"}} {value} {}\n",
                base_s + t
            ));
        }
    }
    out.push_str("# EOF\n");
    std::fs::write(path, out).unwrap();
}

/// Labels and (timestamp, value) samples of one series to remote-write.
pub type SeriesToWrite<'a> = (&'a [(&'a str, &'a str)], Vec<(i64, f64)>);

/// A source Prometheus holding `write_history` over [BASE, BASE + hours) and accepting remote
/// write (with an out-of-order window, so stale markers can be seeded into its past).
pub fn history_source(name: &str, hours: i64, huge: bool) -> Server {
    history_source_framed(name, hours, huge, None)
}

/// `history_source` whose streamed remote read frames are cut at `max_bytes_in_frame`, so that
/// series are split across frames.
pub fn history_source_framed(
    name: &str,
    hours: i64,
    huge: bool,
    max_bytes_in_frame: Option<usize>,
) -> Server {
    history_source_at(name, BASE_MS, hours, huge, max_bytes_in_frame)
}

/// A source Prometheus holding `write_history` (no huge values) over the hours before now,
/// ending `hours_ago_end` hours ago: history as a user's Prometheus holds it, for the ranges
/// users type (`now-30h`). It accepts remote write too, for live samples.
pub fn recent_history_source(name: &str, hours: i64, hours_ago_end: i64) -> Server {
    let base = promimport::timespec::now_ms() - (hours + hours_ago_end) * HOUR_MS;
    history_source_at(name, base, hours, false, None)
}

/// A source Prometheus holding `write_history_at(base_ms, hours)`, accepting remote write.
fn history_source_at(
    name: &str,
    base_ms: i64,
    hours: i64,
    huge: bool,
    max_bytes_in_frame: Option<usize>,
) -> Server {
    let dir = temp_dir(&format!("{name}-history"));
    let history = dir.join("history.om");
    write_history_at(&history, base_ms, hours, huge);
    start_prometheus(
        name,
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            max_bytes_in_frame,
            history: Some(&history),
            ..PrometheusOptions::default()
        },
    )
}

/// The range a `promimport run` summary names (`import [START, END): ...`), to the
/// millisecond: what a relative `--start` resolved to.
pub fn summary_range(log: &str) -> (i64, i64) {
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("import ["))
        .unwrap_or_else(|| panic!("no summary in: {log}"));
    let (start, rest) = line.split_once(", ").unwrap();
    let end = rest.split_once(')').unwrap().0;
    let parse = |t: &str| promimport::timespec::parse_time("summary", t, 0).unwrap();
    (parse(start), parse(end))
}

/// Writes samples with remote write, as a live Prometheus would; used to put stale markers into
/// a source (promtool's OpenMetrics input cannot express them) and live data into a sink.
pub fn remote_write(url: &str, series: &[SeriesToWrite]) {
    remote_write_with(url, &[], series)
}

/// `remote_write` with extra headers (a Cortex tenant).
pub fn remote_write_with(url: &str, headers: &[(&str, &str)], series: &[SeriesToWrite]) {
    let timeseries = series
        .iter()
        .map(|(labels, samples)| TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            histograms: Vec::new(),
        })
        .collect();
    remote_write_series(url, headers, timeseries);
}

/// `remote_write_with` of series as the protocol holds them.
pub fn remote_write_series(url: &str, headers: &[(&str, &str)], timeseries: Vec<TimeSeries>) {
    let request = WriteRequest { timeseries };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let response = protobuf_post(
        &reqwest::blocking::Client::new(),
        url,
        headers,
        (
            protocol::REMOTE_WRITE_VERSION_HEADER,
            protocol::REMOTE_WRITE_VERSION,
        ),
        body,
    )
    .send()
    .unwrap();
    assert!(
        response.status().is_success(),
        "seeding {url}: {} {}",
        response.status(),
        response.text().unwrap_or_default()
    );
}

/// A series that goes stale twice: Prometheus writes this bit pattern when a target vanishes.
pub fn seed_stale_series(source: &Server) {
    let samples: Vec<(i64, f64)> = (0..200)
        .map(|i| {
            let t = BASE_MS + HOUR_MS / 2 + i * 60_000;
            let v = if i % 50 == 49 {
                f64::from_bits(STALE_NAN)
            } else {
                i as f64
            };
            (t, v)
        })
        .collect();
    remote_write(
        &source.url("/api/v1/write"),
        &[(&[("__name__", "test_flapping"), ("job", "flappy")], samples)],
    );
}

/// Every raw sample a Prometheus holds in [start, end), read with remote read in SAMPLES mode.
pub fn read_samples(server: &Server, start_ms: i64, end_ms: i64) -> Data {
    let (_, body) = raw_read(
        &server.url("/api/v1/read"),
        start_ms,
        end_ms,
        read_request::ResponseType::Samples,
    );
    decode_samples(&body, start_ms, end_ms)
}

/// Decodes a SAMPLES answer (snappy `ReadResponse`) into data, keeping [start, end).
pub fn decode_samples(body: &[u8], start_ms: i64, end_ms: i64) -> Data {
    let bytes = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let answer = ReadResponse::decode(bytes.as_slice()).unwrap();
    let mut data = Data::new();
    for series in answer.results.into_iter().flat_map(|r| r.timeseries) {
        let samples: Vec<(i64, u64)> = series
            .samples
            .iter()
            .filter(|s| start_ms <= s.timestamp && s.timestamp < end_ms)
            .map(|s| (s.timestamp, s.value.to_bits()))
            .collect();
        if !samples.is_empty() {
            data.insert(series_key(&series.labels), samples);
        }
    }
    data
}

/// Native histogram samples by series key, in timestamp order.
pub type Histograms = BTreeMap<String, Vec<promimport::proto::Histogram>>;

/// Every float and native histogram sample a server holds in [start, end), read as streamed
/// chunks (the only way Prometheus 2.42 returns histograms) and decoded with promimport's
/// chunk decoders, overlapping chunks' repeats dropped; or as SAMPLES from a server that
/// answers only those (Cortex).
pub fn read_chunked(
    url: &str,
    headers: &[(&str, &str)],
    start_ms: i64,
    end_ms: i64,
) -> (Data, Histograms) {
    use promimport::decode::{frame::FrameReader, histogram::decode_histograms, xor::decode_xor};
    use promimport::proto::{ChunkedReadResponse, chunk::Encoding};
    let (content_type, body) = raw_read_with(
        &reqwest::blocking::Client::new(),
        url,
        headers,
        start_ms,
        end_ms,
        read_request::ResponseType::StreamedXorChunks,
    );
    let (mut floats, mut histograms) = (Data::new(), Histograms::new());
    if !content_type.contains("streamed") {
        // Cortex answers SAMPLES whatever is asked; its histograms are in `histograms`.
        let bytes = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let answer = ReadResponse::decode(bytes.as_slice()).unwrap();
        for series in answer.results.into_iter().flat_map(|r| r.timeseries) {
            let key = series_key(&series.labels);
            let inside = |t: i64| (start_ms..end_ms).contains(&t);
            floats.insert(
                key.clone(),
                series
                    .samples
                    .iter()
                    .filter(|s| inside(s.timestamp))
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect(),
            );
            histograms.insert(
                key,
                series
                    .histograms
                    .into_iter()
                    .filter(|h| inside(h.timestamp))
                    .collect(),
            );
        }
        floats.retain(|_, v| !v.is_empty());
        histograms.retain(|_, v| !v.is_empty());
        return (floats, histograms);
    }
    let mut frames = FrameReader::new(64 << 20);
    frames.push(&body);
    let (mut xor, mut decoded) = (Vec::new(), Vec::new());
    while let Some(frame) = frames.next_frame().unwrap() {
        for series in ChunkedReadResponse::decode(frame).unwrap().chunked_series {
            let key = series_key(&series.labels);
            for chunk in &series.chunks {
                match Encoding::try_from(chunk.r#type).unwrap() {
                    Encoding::Xor => {
                        decode_xor(&chunk.data, &mut xor).unwrap();
                        let samples = floats.entry(key.clone()).or_default();
                        for &(t, v) in &xor {
                            if (start_ms..end_ms).contains(&t)
                                && samples.last().is_none_or(|l| l.0 < t)
                            {
                                samples.push((t, v));
                            }
                        }
                    }
                    encoding => {
                        let float = encoding == Encoding::FloatHistogram;
                        decode_histograms(&chunk.data, float, &mut decoded).unwrap();
                        let samples = histograms.entry(key.clone()).or_default();
                        for h in decoded.drain(..) {
                            if (start_ms..end_ms).contains(&h.timestamp)
                                && samples.last().is_none_or(|l| l.timestamp < h.timestamp)
                            {
                                samples.push(h);
                            }
                        }
                    }
                }
            }
        }
    }
    frames.finish().unwrap();
    floats.retain(|_, v| !v.is_empty());
    histograms.retain(|_, v| !v.is_empty());
    (floats, histograms)
}

/// Asserts two sets of histogram samples are equal, series by series, sample by sample and
/// field by field (as `verify` compares them: buckets by index, empty buckets left out).
pub fn assert_same_histograms(expected: &Histograms, actual: &Histograms) {
    use promimport::verify::CanonicalHistogram;
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let canonical = |data: &Histograms| -> Vec<CanonicalHistogram> {
            data.get(key)
                .map(|v| v.iter().map(CanonicalHistogram::of).collect())
                .unwrap_or_default()
        };
        let (want, got) = (canonical(expected), canonical(actual));
        if want != got {
            let first = want
                .iter()
                .zip(&got)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.len()));
            panic!(
                "histogram series {key}: {} samples expected, {} found; first difference at index {first}:\nexpected {:?}\nfound    {:?}",
                want.len(),
                got.len(),
                want.get(first),
                got.get(first)
            );
        }
    }
}

pub fn series_key(labels: &[Label]) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Asserts two data sets are equal series by series, sample by sample, bit by bit, with a
/// message that names the first difference instead of dumping both.
pub fn assert_same_data(expected: &Data, actual: &Data) {
    for (key, samples) in expected {
        let Some(got) = actual.get(key) else {
            panic!(
                "series {key} is missing ({} samples expected)",
                samples.len()
            );
        };
        if got != samples {
            let first = samples
                .iter()
                .zip(got.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(samples.len().min(got.len()));
            panic!(
                "series {key}: {} samples expected, {} found; first difference at index {first}: expected {:?}, found {:?}",
                samples.len(),
                got.len(),
                samples.get(first),
                got.get(first)
            );
        }
    }
    for key in actual.keys() {
        assert!(expected.contains_key(key), "unexpected series {key}");
    }
}

pub fn total_samples(data: &Data) -> usize {
    data.values().map(Vec::len).sum()
}

/// Runs `openssl ARGS` in `dir` (test certificates), failing the test with its output.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// A POST of a snappy protobuf body with the given protocol version header and extra headers
/// (a Cortex tenant), as both remote write and remote read send it.
pub fn protobuf_post(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(&str, &str)],
    version: (&str, &str),
    body: Vec<u8>,
) -> reqwest::blocking::RequestBuilder {
    let mut request = client.post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .header("Content-Encoding", protocol::CONTENT_ENCODING)
        .header("Content-Type", protocol::PROTOBUF)
        .header(version.0, version.1)
        .body(body)
}

/// The `promimport` binary of this build. Cargo tells only integration tests where it is
/// (`CARGO_BIN_EXE_promimport`), so this crate finds it beside the running test binary
/// (`target/PROFILE/deps/TEST-HASH` -> `target/PROFILE/promimport`), where cargo builds it for
/// every integration test.
pub fn promimport_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in target/PROFILE/deps");
    let bin = profile_dir.join(format!("promimport{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "no {}: build it with cargo test",
        bin.display()
    );
    bin
}

/// The repository's root, for the chart, manifests and ../shared beside it.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn promimport(args: &[&str]) -> Output {
    Command::new(promimport_bin())
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// `promimport verify` of [start, end) between a source Prometheus and `dest`, with flags the
/// test adds.
/// Every raw sample (floats and native histograms, as Prometheus' own engine decodes them)
/// of every series in [start, end), through the query API's range selector, sorted by series:
/// what a reader of the server sees, with none of promimport's decoders in between.
pub fn query_raw(server: &Server, start_ms: i64, end_ms: i64) -> Vec<serde_json::Value> {
    // Prometheus 2's range selector takes [time - range, time] (3.0 made it left-open);
    // [start, end) in milliseconds is that.
    let (time, range) = (end_ms - 1, end_ms - 1 - start_ms);
    let body = reqwest::blocking::Client::new()
        .get(server.url("/api/v1/query"))
        .query(&[
            ("query", format!("{{__name__=~\".+\"}}[{range}ms]")),
            ("time", format!("{}.{:03}", time / 1000, time % 1000)),
        ])
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["status"], "success", "{answer}");
    let mut series = answer["data"]["result"].as_array().unwrap().clone();
    series.sort_by_key(|s| s["metric"].to_string());
    series
}

pub fn verify_range(
    source: &Server,
    dest: &str,
    start_ms: i64,
    end_ms: i64,
    more: &[&str],
) -> Output {
    let (from, start, end) = (
        source.url("/api/v1/read"),
        rfc3339(start_ms),
        rfc3339(end_ms),
    );
    let mut args = vec![
        "verify", "--source", &from, "--dest", dest, "--start", &start, "--end", &end,
    ];
    args.extend_from_slice(more);
    promimport(&args)
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn rfc3339(ms: i64) -> String {
    promimport::timespec::format_ms(ms)
}

/// One request as a scripted fake server saw it.
pub struct FakeRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FakeRequest {
    /// A header's value (names are lowercase), or "" when the request had none.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|h| h.0 == name)
            .map(|h| h.1.clone())
            .unwrap_or_default()
    }
}

/// One scripted answer; status 0 closes the connection without one.
pub struct FakeResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FakeResponse {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        FakeResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

/// A scripted HTTP/1.1 server on loopback for edge cases real servers will not produce on
/// demand (a login page, a corrupt frame, a 503 with Retry-After). `answer` gets the request
/// and its number (from 0); the server stops with the test process.
pub struct FakeServer {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeServer {
    pub fn start(
        answer: impl Fn(&FakeRequest, usize) -> FakeResponse + Send + Sync + 'static,
    ) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind((test_host().as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        let answer = std::sync::Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let answer = answer.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let mut headers = Vec::new();
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                                return;
                            }
                            let header = header.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':') {
                                headers.push((
                                    name.trim().to_ascii_lowercase(),
                                    value.trim().to_string(),
                                ));
                            }
                        }
                        let length = headers
                            .iter()
                            .find(|h| h.0 == "content-length")
                            .and_then(|h| h.1.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let response = answer(
                            &FakeRequest {
                                path,
                                headers,
                                body,
                            },
                            n,
                        );
                        if response.status == 0 {
                            // Status 0: hang up without an answer, as a crashed server does.
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        let mut out = format!(
                            "HTTP/1.1 {} Fake\r\nContent-Length: {}\r\n",
                            response.status,
                            response.body.len()
                        );
                        for (name, value) in &response.headers {
                            out.push_str(&format!("{name}: {value}\r\n"));
                        }
                        out.push_str("\r\n");
                        let mut writer = &stream;
                        if writer
                            .write_all(out.as_bytes())
                            .and_then(|_| writer.write_all(&response.body))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        FakeServer { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", test_host(), self.port)
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A remote read answer exactly as a server sent it: content type and raw body.
pub fn raw_read(
    url: &str,
    start_ms: i64,
    end_ms: i64,
    response_type: read_request::ResponseType,
) -> (String, Vec<u8>) {
    raw_read_with(
        &reqwest::blocking::Client::new(),
        url,
        &[],
        start_ms,
        end_ms,
        response_type,
    )
}

/// `raw_read` with a client and extra headers (a Cortex tenant, client certificates).
pub fn raw_read_with(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(&str, &str)],
    start_ms: i64,
    end_ms: i64,
    response_type: read_request::ResponseType,
) -> (String, Vec<u8>) {
    let request = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start_ms,
            end_timestamp_ms: end_ms - 1,
            matchers: vec![LabelMatcher {
                r#type: label_matcher::Type::Re as i32,
                name: "__name__".into(),
                value: ".+".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![response_type as i32],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    // Prometheus 2.42 sometimes fails a read of out-of-order data it holds with 500 "cannot
    // populate chunk ... not found" (see prometheus_sink); the same read a moment later works.
    // promimport retries 5xx itself; this reader does too, a few times.
    let mut attempt = 0;
    let response = loop {
        let response = protobuf_post(
            client,
            url,
            headers,
            (
                protocol::REMOTE_READ_VERSION_HEADER,
                protocol::REMOTE_READ_VERSION,
            ),
            body.clone(),
        )
        .send()
        .unwrap();
        let status = response.status();
        if status.is_success() {
            break response;
        }
        let text = response.text().unwrap_or_default();
        attempt += 1;
        assert!(
            attempt < 5 && text.contains("cannot populate chunk"),
            "raw read of {url}: {status} {text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (content_type, response.bytes().unwrap().to_vec())
}

/// A proxy to a real receiver that holds each request for `delay` first: a slow link, so that
/// windows last long enough to be interrupted.
pub fn slow_proxy(target: String, delay: Duration) -> FakeServer {
    let client = reqwest::blocking::Client::new();
    FakeServer::start(move |request, _| {
        std::thread::sleep(delay);
        forward(&client, &target, request)
    })
}

/// Passes a request on to `target` (a base URL) with its headers and body, and brings back the
/// answer; a failure to reach `target` comes back as a 502.
pub fn forward(
    client: &reqwest::blocking::Client,
    target: &str,
    request: &FakeRequest,
) -> FakeResponse {
    let mut forward = client
        .post(format!("{target}{}", request.path))
        .body(request.body.clone());
    for (name, value) in &request.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            forward = forward.header(name, value);
        }
    }
    match forward.send() {
        Ok(response) => {
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_string();
            FakeResponse::new(
                status,
                &content_type,
                response.bytes().map(|b| b.to_vec()).unwrap_or_default(),
            )
        }
        Err(e) => FakeResponse::new(502, "text/plain", e.to_string()),
    }
}

/// A Prometheus sink for exact comparisons: an out-of-order window configured, an empty range,
/// and (in the tests that use it) windows of at most 1h written one at a time, oldest first, so
/// every sample is appended in order. (Prometheus takes a sample in order only if it is no more
/// than 1h older than the newest sample of any series: with 2h windows, the first series of a
/// window moves that mark past the start of the next series.)
///
/// Why not out of order: Prometheus 2.42's out-of-order ingestion acknowledges samples it then
/// does not return, even after a restart, and sometimes fails queries with "cannot populate
/// chunk ... from block 00000000000000000000000000: not found". Seen here in about 1 import of
/// 12 of the 12h test history, with --parallel 3 and with --parallel 1 into a sink that already
/// had a newer sample; the missing runs were multiples of 32 samples (its out-of-order chunk
/// size), and its own counters said every sample was appended. The README documents it; tests
/// that need concurrent writers use VictoriaMetrics.
pub fn prometheus_sink(name: &str) -> Server {
    start_prometheus(
        name,
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            ..PrometheusOptions::default()
        },
    )
}

/// A source with `narrow` series of 3 labels and `wide` series of 37 (kube-state-metrics'
/// `*_labels` series with the operator's external labels get there), 15 s apart over the 4
/// hours that ended 2 hours ago.
pub fn labels_source(name: &str, narrow: usize, wide: usize) -> Server {
    let dir = temp_dir(&format!("{name}-history"));
    let path = dir.join("history.om");
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let end = promimport::timespec::now_ms() / 1000 - 2 * 3600;
    writeln!(out, "# TYPE kube_pod_labels gauge").unwrap();
    for i in 0..narrow + wide {
        let mut labels = format!("pod=\"p{i}\",namespace=\"ns\"");
        if i >= narrow {
            for j in 0..35 {
                labels.push_str(&format!(",label_l{j:02}=\"v{j}\""));
            }
        }
        for t in (end - 4 * 3600..end).step_by(15) {
            writeln!(out, "kube_pod_labels{{{labels}}} 1 {t}").unwrap();
        }
    }
    writeln!(out, "# EOF").unwrap();
    drop(out);
    source_with_history(name, &path)
}

/// A Prometheus source holding the OpenMetrics history in `path`.
pub fn source_with_history(name: &str, path: &Path) -> Server {
    start_prometheus(
        name,
        PrometheusOptions {
            history: Some(path),
            ..PrometheusOptions::default()
        },
    )
}

/// Where the test history lives, a day either side: never the live sample at now.
pub fn history_range() -> (i64, i64) {
    (BASE_MS - 24 * HOUR_MS, BASE_MS + 48 * HOUR_MS)
}

/// Compares data with what VictoriaMetrics holds over the history range: the same series, every
/// timestamp, every value within VictoriaMetrics' decimal precision. VictoriaMetrics 1.79 stores
/// NaN and stale markers for its own staleness handling but leaves them out of /api/v1/export,
/// so those may only be absent (or NaN). Returns the samples compared and the NaNs among them.
pub fn assert_same_in_victoria_metrics(expected: &Data, vm: &Server) -> (usize, usize) {
    let (from, to) = history_range();
    assert_same_in_victoria_metrics_over(expected, vm, from, to)
}

/// `assert_same_in_victoria_metrics` over what VictoriaMetrics holds in [from, to).
pub fn assert_same_in_victoria_metrics_over(
    expected: &Data,
    vm: &Server,
    from: i64,
    to: i64,
) -> (usize, usize) {
    let landed = export(vm, from, to);
    assert_eq!(
        landed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same series"
    );
    let mut nan = 0;
    let mut compared = 0;
    for (key, samples) in expected {
        let got: BTreeMap<i64, Option<f64>> = landed[key].iter().copied().collect();
        for &(t, bits) in samples {
            let want = f64::from_bits(bits);
            if want.is_nan() {
                assert!(
                    got.get(&t).is_none_or(|v| v.is_none_or(f64::is_nan)),
                    "{key} at {t}: NaN expected, {:?} found",
                    got.get(&t)
                );
                nan += 1;
                continue;
            }
            let Some(Some(value)) = got.get(&t).copied() else {
                panic!("{key}: sample at {t} ({want}) is missing");
            };
            let tolerance = want.abs() * 1e-11 + 1e-300;
            assert!(
                (value - want).abs() <= tolerance,
                "{key} at {t}: {want} expected, {value} found"
            );
            compared += 1;
        }
        let expected_finite = samples
            .iter()
            .filter(|s| !f64::from_bits(s.1).is_nan())
            .count();
        let landed_finite = got
            .values()
            .filter(|v| v.is_some_and(|v| !v.is_nan()))
            .count();
        assert_eq!(
            landed_finite, expected_finite,
            "{key}: extra samples landed"
        );
    }
    (compared, nan)
}

/// Series key to (timestamp, value) from VictoriaMetrics' /api/v1/export, after a flush.
pub fn export(
    vm: &Server,
    start_ms: i64,
    end_ms: i64,
) -> BTreeMap<String, Vec<(i64, Option<f64>)>> {
    let client = reqwest::blocking::Client::new();
    client.get(vm.url("/internal/force_flush")).send().unwrap();
    let body = client
        .post(vm.url("/api/v1/export"))
        .form(&[
            ("match[]", r#"{__name__=~".+"}"#),
            ("start", &(start_ms / 1000).to_string()),
            ("end", &(end_ms / 1000 + 1).to_string()),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut data = BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let labels: Vec<promimport::proto::Label> = row["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(n, v)| promimport::proto::Label {
                name: n.clone(),
                value: v.as_str().unwrap().to_string(),
            })
            .collect();
        let samples: Vec<(i64, Option<f64>)> = row["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(row["values"].as_array().unwrap())
            .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64()))
            .collect();
        data.entry(series_key(&labels))
            .or_insert_with(Vec::new)
            .extend(samples);
    }
    for samples in data.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    data
}

/// `promimport run` as the tests invoke it: the source and destination, then the range, the
/// state directory and whatever flags a test adds. `args` gives the argument list (for a
/// process a test spawns and signals), `output` runs it to its end.
pub struct Run {
    args: Vec<String>,
}

impl Run {
    pub fn new(source: &str, dest: &str) -> Self {
        Run {
            args: ["run", "--source", source, "--dest", dest]
                .map(String::from)
                .to_vec(),
        }
    }

    /// `promimport run` writing TSDB blocks into `dir` (`--dest-blocks file://DIR`).
    pub fn blocks(source: &str, dir: &Path) -> Self {
        Run {
            args: vec![
                "run".into(),
                "--source".into(),
                source.into(),
                "--dest-blocks".into(),
                format!("file://{}", dir.display()),
            ],
        }
    }

    /// `--start` and `--end` as RFC 3339, to the millisecond.
    pub fn between(self, start_ms: i64, end_ms: i64) -> Self {
        self.flag("--start", &rfc3339(start_ms))
            .flag("--end", &rfc3339(end_ms))
    }

    pub fn state(self, dir: &Path) -> Self {
        self.flag("--state", dir.to_str().unwrap())
    }

    pub fn flag(mut self, name: &str, value: &str) -> Self {
        self.args.extend([name.to_string(), value.to_string()]);
        self
    }

    pub fn flags(mut self, more: &[&str]) -> Self {
        self.args.extend(more.iter().map(|s| s.to_string()));
        self
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn output(&self) -> Output {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        promimport(&args)
    }

    /// The exit code and everything printed.
    pub fn exec(&self) -> (Option<i32>, String) {
        let out = self.output();
        (out.status.code(), text(&out))
    }
}
