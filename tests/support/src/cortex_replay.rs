//! Cortex's answers, played back: an in-process receiver that stands where a Cortex v1.19 would,
//! for the machines that have no Cortex binary (CI among them). What it answers (status, headers,
//! body) comes from the files in tests/data/cortex, each the answer a real Cortex gave to the
//! request it names (see each file's `origin`); which answer a request draws, and what is stored
//! meanwhile, follows what those files say Cortex does:
//! - no `X-Scope-OrgID`: `no-org-id`, for every path;
//! - a series with more labels than the limit: `too-many-labels`, the request's other series
//!   stored;
//! - more samples than the tenant's token bucket holds (rate, burst): `rate-limited`, nothing
//!   stored;
//! - with no out-of-order window, a sample older than the head's newest minus an hour (half of
//!   a 2h block: TSDB's `minValidTime`): `out-of-bounds`; older than its series' newest:
//!   `out-of-order`; the request's other samples stored;
//! - native histograms: 200, none stored (`native-histograms-not-stored`); otherwise `accepted`;
//! - the metric names of a range (`label-values`), from what the querier sees;
//! - remote read at `/prometheus/api/v1/read` (SAMPLES, as Cortex's querier serves it):
//!   `query-before-sync` while a sync is pending, without the samples that older than the
//!   ingesters' retention would by then be in the bucket; `query-after-sync` after it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promimport::proto::label_matcher::Type;
use promimport::proto::{
    Label, LabelMatcher, QueryResult, ReadRequest, ReadResponse, Sample, TimeSeries, WriteRequest,
};
use prost::Message;

use super::cortex_stories::CortexLike;
use super::{Data, FakeRequest, FakeResponse, FakeServer, series_key};

/// One answer of a real Cortex, as tests/data/cortex/NAME.json holds it.
pub struct Recorded {
    pub name: String,
    pub json: serde_json::Value,
}

impl Recorded {
    pub fn load(name: &str) -> Recorded {
        let path = answers_dir().join(format!("{name}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Recorded {
            name: name.to_string(),
            json,
        }
    }

    pub fn status(&self) -> u16 {
        let status = self.json["answer"]["status"].as_u64();
        status.unwrap_or_else(|| panic!("{}: answer.status", self.name)) as u16
    }

    pub fn body(&self) -> String {
        self.json["answer"]["body"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The answer as the receiver sends it, `body` in place of the recorded one where given
    /// (a remote read answer is the data asked for).
    pub fn response(&self, body: Option<Vec<u8>>) -> FakeResponse {
        let headers = string_pairs(&self.json["answer"]["headers"]);
        FakeResponse {
            status: self.status(),
            headers,
            body: body.unwrap_or_else(|| self.body().into_bytes()),
        }
    }
}

/// A recording's JSON object of strings (headers, settings) as name and value pairs.
pub fn string_pairs(object: &serde_json::Value) -> Vec<(String, String)> {
    object.as_object().map_or_else(Vec::new, |o| {
        o.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    })
}

pub fn answers_dir() -> PathBuf {
    super::repo_root().join("tests/data/cortex")
}

/// The limits of the tenant the receiver plays, as `../shared/cortex/up` names them.
#[derive(Clone)]
pub struct ReplayLimits {
    /// `ingestion_rate` and `ingestion_burst_size`, samples.
    pub rate: f64,
    pub burst: f64,
    /// `max_label_names_per_series`.
    pub max_labels: usize,
    /// `out_of_order_time_window`; `None` is 0s, Cortex's default and Opni's.
    pub out_of_order: Option<Duration>,
    /// The store-gateway's next sync, counted from the receiver's start; `None`: everything
    /// pushed is served at once (the ingesters still hold it).
    pub sync_after: Option<Duration>,
}

impl Default for ReplayLimits {
    /// Cortex's own defaults, with the 240h out-of-order window that `up` sets.
    fn default() -> Self {
        ReplayLimits {
            rate: 25_000.0,
            burst: 50_000.0,
            max_labels: 30,
            out_of_order: Some(Duration::from_secs(240 * 3600)),
            sync_after: None,
        }
    }
}

/// One series a tenant holds: its labels and samples, in the order they were appended.
struct HeldSeries {
    labels: Vec<Label>,
    samples: Vec<(i64, f64)>,
}

#[derive(Default)]
struct Tenant {
    series: BTreeMap<String, HeldSeries>,
    head_max: Option<i64>,
}

struct State {
    tenants: BTreeMap<String, Tenant>,
    tokens: f64,
    refilled: Instant,
    /// Every answer given, by recording name, in order.
    answered: Vec<String>,
}

/// A receiver that answers as Cortex does, from the recordings; killed with the test process.
pub struct CortexReplay {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

/// Ingesters keep 6h of blocks after shipping them (`-blocks-storage.tsdb.retention-period`);
/// older pushed samples are in the bucket only, unseen until the store-gateway's sync.
const INGESTER_RETENTION_MS: i64 = 6 * 3_600_000;

impl CortexReplay {
    pub fn start(limits: ReplayLimits) -> CortexReplay {
        let answers: BTreeMap<&str, Recorded> = [
            "accepted",
            "no-org-id",
            "rate-limited",
            "too-many-labels",
            "out-of-bounds",
            "out-of-order",
            "native-histograms-not-stored",
            "query-before-sync",
            "query-after-sync",
            "label-values",
        ]
        .into_iter()
        .map(|name| (name, Recorded::load(name)))
        .collect();
        let state = Arc::new(Mutex::new(State {
            tenants: BTreeMap::new(),
            tokens: limits.burst,
            refilled: Instant::now(),
            answered: Vec::new(),
        }));
        let started = Instant::now();
        let shared = state.clone();
        let server = FakeServer::start(move |request, _| {
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            let (name, body) = answer(&mut state, &limits, started, request);
            state.answered.push(name.to_string());
            answers[name].response(body)
        });
        CortexReplay { server, state }
    }

    /// Every float sample the tenant holds, as the tests' readers key them.
    pub fn held(&self, tenant: &str) -> Data {
        let state = self.state.lock().unwrap();
        let mut data = Data::new();
        if let Some(t) = state.tenants.get(tenant) {
            for (key, held) in &t.series {
                let mut samples: Vec<(i64, u64)> = held
                    .samples
                    .iter()
                    .map(|&(t, v)| (t, v.to_bits()))
                    .collect();
                samples.sort_by_key(|s| s.0);
                data.insert(key.clone(), samples);
            }
        }
        data
    }

    /// How often each recorded answer was given.
    pub fn answered(&self, name: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.answered.iter().filter(|n| *n == name).count()
    }
}

impl CortexLike for CortexReplay {
    fn base_url(&self) -> String {
        self.server.url("")
    }

    fn holds(&self, tenant: &str, start_ms: i64, end_ms: i64) -> Data {
        let mut held = self.held(tenant);
        held.retain(|_, samples| {
            samples.retain(|&(t, _)| start_ms <= t && t < end_ms);
            !samples.is_empty()
        });
        held
    }
}

fn answer(
    state: &mut State,
    limits: &ReplayLimits,
    started: Instant,
    request: &FakeRequest,
) -> (&'static str, Option<Vec<u8>>) {
    let tenant = request.header("x-scope-orgid");
    if tenant.is_empty() {
        return ("no-org-id", None);
    }
    let synced = limits
        .sync_after
        .is_none_or(|after| started.elapsed() >= after);
    let hidden_before = if synced {
        i64::MIN
    } else {
        promimport::timespec::now_ms() - INGESTER_RETENTION_MS
    };
    if request
        .path
        .starts_with("/prometheus/api/v1/label/__name__/values")
    {
        let body = metric_names(state.tenants.get(&tenant), &request.path, hidden_before);
        return ("label-values", Some(body));
    }
    if request.path.starts_with("/prometheus/api/v1/read") {
        let body = read(state.tenants.get(&tenant), &request.body, hidden_before);
        let name = if synced {
            "query-after-sync"
        } else {
            "query-before-sync"
        };
        return (name, Some(body));
    }
    assert!(
        request.path.starts_with("/api/v1/push"),
        "the replay has no answer recorded for {}",
        request.path
    );
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&request.body)
        .expect("a snappy body");
    let write = WriteRequest::decode(raw.as_slice()).expect("a WriteRequest");
    // The distributor validates first (labels), then takes the valid samples from the
    // tenant's token bucket: a request over it is refused whole.
    let (valid, too_many): (Vec<TimeSeries>, Vec<TimeSeries>) = write
        .timeseries
        .into_iter()
        .partition(|s| s.labels.len() <= limits.max_labels);
    let floats: usize = valid.iter().map(|s| s.samples.len()).sum();
    let histograms: usize = valid.iter().map(|s| s.histograms.len()).sum();
    let now = Instant::now();
    let refill = now.duration_since(state.refilled).as_secs_f64() * limits.rate;
    state.tokens = (state.tokens + refill).min(limits.burst);
    state.refilled = now;
    let wanted = (floats + histograms) as f64;
    if wanted > state.tokens {
        return ("rate-limited", None);
    }
    state.tokens -= wanted;
    let tenant = state.tenants.entry(tenant).or_default();
    let mut refused = None;
    for series in valid {
        let key = series_key(&series.labels);
        let mut samples = series.samples.clone();
        samples.sort_by_key(|s| s.timestamp);
        for sample in samples {
            match append(tenant, limits, &key, &series.labels, sample) {
                Ok(()) => {}
                Err(name) => {
                    refused.get_or_insert(name);
                }
            }
        }
    }
    if !too_many.is_empty() {
        return ("too-many-labels", None);
    }
    match refused {
        Some(name) => (name, None),
        // Histograms: accepted, not stored.
        None if histograms > 0 => ("native-histograms-not-stored", None),
        None => ("accepted", None),
    }
}

/// Appends one sample as a TSDB head without an out-of-order window does, or names the answer
/// that refuses it.
fn append(
    tenant: &mut Tenant,
    limits: &ReplayLimits,
    key: &str,
    labels: &[Label],
    sample: Sample,
) -> Result<(), &'static str> {
    let held = tenant.series.get(key).map_or(&[][..], |s| &s.samples[..]);
    if let Some(same) = held.iter().find(|s| s.0 == sample.timestamp) {
        // An exact re-send is accepted; another value at the same time is not, but the tests
        // never send one.
        assert_eq!(
            same.1.to_bits(),
            sample.value.to_bits(),
            "duplicate sample for {key}"
        );
        return Ok(());
    }
    if limits.out_of_order.is_none() {
        if let Some(max) = tenant.head_max
            && sample.timestamp < max - 3_600_000
        {
            return Err("out-of-bounds");
        }
        if held.last().is_some_and(|last| sample.timestamp < last.0) {
            return Err("out-of-order");
        }
    }
    let entry = tenant
        .series
        .entry(key.to_string())
        .or_insert_with(|| HeldSeries {
            labels: labels.to_vec(),
            samples: Vec::new(),
        });
    entry.samples.push((sample.timestamp, sample.value));
    tenant.head_max = Some(
        tenant
            .head_max
            .map_or(sample.timestamp, |m| m.max(sample.timestamp)),
    );
    Ok(())
}

/// A SAMPLES answer to `body` (a snappy ReadRequest) from what `tenant` holds, leaving out
/// samples before `hidden_before`.
fn read(tenant: Option<&Tenant>, body: &[u8], hidden_before: i64) -> Vec<u8> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("a snappy body");
    let request = ReadRequest::decode(raw.as_slice()).expect("a ReadRequest");
    let results = request
        .queries
        .iter()
        .map(|query| QueryResult {
            timeseries: tenant
                .into_iter()
                .flat_map(|t| t.series.values())
                .filter(|held| query.matchers.iter().all(|m| matches(m, &held.labels)))
                .filter_map(|HeldSeries { labels, samples }| {
                    let mut samples: Vec<Sample> = samples
                        .iter()
                        .filter(|&&(t, _)| {
                            t >= hidden_before
                                && query.start_timestamp_ms <= t
                                && t <= query.end_timestamp_ms
                        })
                        .map(|&(timestamp, value)| Sample { value, timestamp })
                        .collect();
                    samples.sort_by_key(|s| s.timestamp);
                    (!samples.is_empty()).then(|| TimeSeries {
                        labels: labels.clone(),
                        samples,
                        histograms: Vec::new(),
                    })
                })
                .collect(),
        })
        .collect();
    let answer = ReadResponse { results };
    snap::raw::Encoder::new()
        .compress_vec(&answer.encode_to_vec())
        .expect("snappy")
}

/// The label values answer for `__name__` (`path` with its query: start, end, match[]) from what
/// `tenant` holds, leaving out samples before `hidden_before`.
fn metric_names(tenant: Option<&Tenant>, path: &str, hidden_before: i64) -> Vec<u8> {
    let url = reqwest::Url::parse(&format!("http://replay{path}")).expect("a request path");
    let arg = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let ms = |name: &str| {
        arg(name).map_or(i64::MIN, |v| {
            (v.parse::<f64>().expect("seconds") * 1000.0).round() as i64
        })
    };
    let (start, end) = (ms("start").max(hidden_before), ms("end"));
    // promimport asks with the import's selector; the tests' imports select every series.
    let selector = arg("match[]").unwrap_or_default();
    assert_eq!(
        selector, "{__name__=~\".+\"}",
        "the replay answers for every series only"
    );
    let names: std::collections::BTreeSet<&str> = tenant
        .into_iter()
        .flat_map(|t| t.series.values())
        .filter(|held| held.samples.iter().any(|&(t, _)| start <= t && t <= end))
        .filter_map(|held| held.labels.iter().find(|l| l.name == "__name__"))
        .map(|l| l.value.as_str())
        .collect();
    serde_json::json!({"status": "success", "data": names})
        .to_string()
        .into_bytes()
}

/// A label matcher as Prometheus evaluates it: a missing label is the empty value, regular
/// expressions are anchored.
fn matches(matcher: &LabelMatcher, labels: &[Label]) -> bool {
    let value = labels
        .iter()
        .find(|l| l.name == matcher.name)
        .map_or("", |l| l.value.as_str());
    let regex =
        || regex::Regex::new(&format!("^(?:{})$", matcher.value)).expect("a matcher's regex");
    match Type::try_from(matcher.r#type).expect("a matcher type") {
        Type::Eq => value == matcher.value,
        Type::Neq => value != matcher.value,
        Type::Re => regex().is_match(value),
        Type::Nre => !regex().is_match(value),
    }
}
