//! The worker's options, one struct read two ways: from flags (`promimport run`) and from
//! `PROMIMPORT_*` environment variables (`promimport worker`, what a Kubernetes Job runs).
//! In the environment, list values (`PROMIMPORT_MATCH`, `..._HEADER`, `..._LABEL`) hold one
//! item per line, because selectors contain commas.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::blocks::{BlocksTarget, BucketTls};
use crate::destination::batch::BatchLimits;
use crate::endpoint::{EndpointConfig, Secret};
use crate::error::{Error, Result};
use crate::name_value::NameValue;
use crate::relabel::LabelRules;
use crate::remote_read::ReadLimits;
use crate::retry::RetryPolicy;
use crate::selector::{ALL_SERIES, Selector, parse_selector};
use crate::spec::ImportSpec;
use crate::timespec::parse_duration;

use super::WorkerSettings;

#[derive(Debug, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerOptions {
    /// Remote read URL of the source, e.g. http://prometheus:9090/api/v1/read
    #[arg(long, value_name = "URL")]
    pub source: String,

    /// Remote write URL of the destination, e.g. http://cortex/api/v1/push (or --dest-blocks)
    #[arg(
        long,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    #[serde(default)]
    pub dest: String,

    /// Write TSDB blocks instead of remote write, a 2h block each (no out-of-order window
    /// needed; --window 2h or a multiple): file:///DIR (a Prometheus data directory, or with --tenant a Cortex
    /// filesystem bucket), or with --tenant Cortex's bucket at s3://BUCKET[/PREFIX], gs://BUCKET
    /// or az://CONTAINER (credentials from AWS_*, GOOGLE_*, AZURE_* variables)
    #[arg(long, value_name = "URL", conflicts_with = "dest")]
    pub dest_blocks: Option<String>,

    /// With --dest-blocks: the Cortex tenant (X-Scope-OrgID) the blocks belong to
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,

    /// Series selector to import; repeatable [default: every series]
    #[arg(long = "match", value_name = "SELECTOR")]
    #[serde(rename = "match", default, deserialize_with = "match_lines")]
    pub selectors: Vec<Selector>,

    /// Label to remove from every series, e.g. prometheus_replica; repeatable
    #[arg(long, value_name = "NAME")]
    #[serde(default, deserialize_with = "drop_label_lines")]
    pub drop_label: Vec<String>,

    /// Label to set on every series; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    #[serde(default, deserialize_with = "set_label_lines")]
    pub set_label: Vec<NameValue>,

    /// Extra header for the source; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    #[serde(default, deserialize_with = "source_header_lines")]
    pub source_header: Vec<NameValue>,

    /// Extra header for the destination, e.g. X-Scope-OrgID=tenant for Cortex; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    #[serde(default, deserialize_with = "dest_header_lines")]
    pub dest_header: Vec<NameValue>,

    /// File holding the source's bearer token
    #[arg(long, value_name = "FILE")]
    pub source_bearer_token_file: Option<PathBuf>,
    /// Basic auth user for the source
    #[arg(long, value_name = "USER")]
    pub source_basic_user: Option<String>,
    /// File holding the source's basic auth password
    #[arg(long, value_name = "FILE")]
    pub source_basic_password_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify the source's certificate
    #[arg(long, value_name = "FILE")]
    pub source_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for the source
    #[arg(long, value_name = "FILE")]
    pub source_cert_file: Option<PathBuf>,
    /// Client key (PEM) for the source
    #[arg(long, value_name = "FILE")]
    pub source_key_file: Option<PathBuf>,
    /// Do not verify the source's TLS certificate (unsafe)
    #[arg(long)]
    #[serde(default)]
    pub source_insecure_skip_verify: bool,
    /// Verify the source's certificate for this name instead of the URL's host (needs
    /// --source-ca-file)
    #[arg(long, value_name = "NAME")]
    pub source_tls_server_name: Option<String>,

    /// File holding the destination's bearer token
    #[arg(long, value_name = "FILE")]
    pub dest_bearer_token_file: Option<PathBuf>,
    /// Basic auth user for the destination
    #[arg(long, value_name = "USER")]
    pub dest_basic_user: Option<String>,
    /// File holding the destination's basic auth password
    #[arg(long, value_name = "FILE")]
    pub dest_basic_password_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify the destination's certificate
    #[arg(long, value_name = "FILE")]
    pub dest_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for the destination
    #[arg(long, value_name = "FILE")]
    pub dest_cert_file: Option<PathBuf>,
    /// Client key (PEM) for the destination
    #[arg(long, value_name = "FILE")]
    pub dest_key_file: Option<PathBuf>,
    /// Do not verify the destination's TLS certificate (unsafe)
    #[arg(long)]
    #[serde(default)]
    pub dest_insecure_skip_verify: bool,
    /// Verify the destination's certificate for this name instead of the URL's host, e.g.
    /// cortex-distributor for Opni's Cortex reached as cortex-distributor.opni.svc (needs
    /// --dest-ca-file)
    #[arg(long, value_name = "NAME")]
    pub dest_tls_server_name: Option<String>,

    /// Longest silence while reading the source's answer (rancher-monitoring's proxy allows 180s)
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = duration_arg)]
    #[serde(
        default = "default_source_timeout",
        deserialize_with = "source_timeout_variable"
    )]
    pub source_timeout: Duration,

    /// A remote read answer that takes longer than this to begin means a loaded source: the
    /// reader then pauses as long before its next query
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration_arg)]
    #[serde(
        default = "default_source_slow_answer",
        deserialize_with = "source_slow_answer_variable"
    )]
    pub source_slow_answer: Duration,

    /// Longest time for one remote write request
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = duration_arg)]
    #[serde(
        default = "default_dest_timeout",
        deserialize_with = "dest_timeout_variable"
    )]
    pub dest_timeout: Duration,

    /// Most samples in one remote write request
    #[arg(long, value_name = "N", default_value_t = default_batch_samples())]
    #[serde(default = "default_batch_samples")]
    pub batch_samples: usize,

    /// Most bytes (uncompressed protobuf) in one remote write request
    #[arg(long, value_name = "BYTES", default_value_t = default_batch_bytes())]
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,

    /// Largest streamed remote read frame accepted from the source
    #[arg(long, value_name = "BYTES", default_value_t = default_max_frame_bytes())]
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,

    /// Largest SAMPLES answer accepted (held in memory whole)
    #[arg(long, value_name = "BYTES", default_value_t = default_max_samples_response_bytes())]
    #[serde(default = "default_max_samples_response_bytes")]
    pub max_samples_response_bytes: usize,

    /// Most samples per second sent to the destination; without it, the pace adapts to the
    /// ingestion rate limit that a Cortex or Mimir 429 names
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub max_samples_per_second: Option<f64>,

    /// Most samples per second read from the source, across the windows of this process (a
    /// Job in Kubernetes): a ceiling on the load the import puts on it
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub max_read_samples_per_second: Option<f64>,

    /// Metric names per remote read query: each window is read in queries of this many
    /// metrics (from the source's label values API), plus one for any metric not listed, so
    /// the source holds one group's series at a time, not the cluster's; 0 reads each selector
    /// in one query
    #[arg(long, value_name = "N", default_value_t = default_metrics_per_read())]
    #[serde(default = "default_metrics_per_read")]
    pub metrics_per_read: usize,

    /// Retries per request on network errors, 429 and 5xx (capped exponential backoff)
    #[arg(long, value_name = "N", default_value_t = default_retries())]
    #[serde(default = "default_retries")]
    pub retries: usize,

    /// Environment only (PROMIMPORT_SOURCE_BEARER_TOKEN): a Job passes the token from a Secret.
    /// There is no flag: a token on a command line is visible to every user of the machine.
    #[arg(skip)]
    #[serde(default)]
    pub source_bearer_token: Option<Secret>,

    /// Environment only (PROMIMPORT_DEST_BEARER_TOKEN), from a Secret.
    #[arg(skip)]
    #[serde(default)]
    pub dest_bearer_token: Option<Secret>,

    /// Environment only (PROMIMPORT_SOURCE_BASIC_PASSWORD), from a Secret.
    #[arg(skip)]
    #[serde(default)]
    pub source_basic_password: Option<Secret>,

    /// Environment only (PROMIMPORT_DEST_BASIC_PASSWORD), from a Secret.
    #[arg(skip)]
    #[serde(default)]
    pub dest_basic_password: Option<Secret>,

    /// `promimport worker` in a Job (PROMIMPORT_LEDGER): the ConfigMap ledger that the window's
    /// outcome is recorded in.
    #[arg(skip)]
    #[serde(default)]
    pub ledger: Option<String>,

    /// `promimport worker` in a Job (PROMIMPORT_NAMESPACE): the namespace of the ledger.
    #[arg(skip)]
    #[serde(default)]
    pub namespace: Option<String>,

    /// `promimport worker` only (PROMIMPORT_WINDOW_START): the start of its one window.
    #[arg(skip)]
    #[serde(default)]
    pub window_start: Option<String>,

    /// `promimport worker` only (PROMIMPORT_WINDOW_END): the end of its one window, excluded.
    #[arg(skip)]
    #[serde(default)]
    pub window_end: Option<String>,
}

fn default_source_timeout() -> Duration {
    Duration::from_secs(180)
}
/// A Prometheus at rest begins a remote read answer within a second; ten is a source that
/// queues queries or swaps.
fn default_source_slow_answer() -> Duration {
    Duration::from_secs(10)
}
fn default_dest_timeout() -> Duration {
    Duration::from_secs(60)
}
/// 10k samples is ~150 KiB compressed: large enough to amortise a request, far below the 32 MiB
/// that Prometheus and VictoriaMetrics accept.
fn default_batch_samples() -> usize {
    10_000
}
fn default_batch_bytes() -> usize {
    8 << 20
}
/// Prometheus cuts frames at 1 MiB by default; 16 MiB leaves room for a tuned source.
fn default_max_frame_bytes() -> usize {
    16 << 20
}
fn default_max_samples_response_bytes() -> usize {
    512 << 20
}
/// A bound on the series one query holds, by construction; `scripts/bench-source-load` found it
/// costs the source nothing measurable against one query per window (README: "What an import
/// costs the source").
fn default_metrics_per_read() -> usize {
    32
}
fn default_retries() -> usize {
    RetryPolicy::default().retries
}

const ENV_PREFIX: &str = "PROMIMPORT_";

fn env_name(field: &str) -> String {
    format!("{ENV_PREFIX}{}", field.to_ascii_uppercase())
}

/// A list variable: one item per line, each parsed as its flag parses it; an error names the
/// variable (`from_vars` turns the backquoted field into `PROMIMPORT_...`).
fn lines<'de, D, T>(field: &str, deserializer: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            line.parse()
                .map_err(|e| serde::de::Error::custom(format!("`{field}`: {e}")))
        })
        .collect()
}

/// One deserializer per variable, since serde does not tell a `deserialize_with` function
/// which field it reads.
macro_rules! variable_parsers {
    ($($function:ident: $field:literal => $kind:ident($type:ty)),* $(,)?) => {$(
        fn $function<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<$type, D::Error> {
            variable_parsers!(@$kind $field, deserializer)
        }
    )*};
    (@list $field:literal, $deserializer:ident) => { lines($field, $deserializer) };
    (@duration $field:literal, $deserializer:ident) => {
        duration_arg(&String::deserialize($deserializer)?)
            .map_err(|e| serde::de::Error::custom(format!("`{}`: {e}", $field)))
    };
}

variable_parsers! {
    match_lines: "match" => list(Vec<Selector>),
    drop_label_lines: "drop_label" => list(Vec<String>),
    set_label_lines: "set_label" => list(Vec<NameValue>),
    source_header_lines: "source_header" => list(Vec<NameValue>),
    dest_header_lines: "dest_header" => list(Vec<NameValue>),
    source_timeout_variable: "source_timeout" => duration(Duration),
    dest_timeout_variable: "dest_timeout" => duration(Duration),
    source_slow_answer_variable: "source_slow_answer" => duration(Duration),
}

/// A timeout as a flag takes it (`3m`, `90s`); the flag's name is in clap's own message.
fn duration_arg(text: &str) -> std::result::Result<Duration, String> {
    parse_duration("duration", text).map_err(|e| e.to_string())
}

impl Default for WorkerOptions {
    /// No endpoints, and every limit and timeout at its documented default.
    fn default() -> Self {
        WorkerOptions {
            source: String::new(),
            dest: String::new(),
            dest_blocks: None,
            tenant: None,
            selectors: Vec::new(),
            drop_label: Vec::new(),
            set_label: Vec::new(),
            source_header: Vec::new(),
            dest_header: Vec::new(),
            source_bearer_token_file: None,
            source_basic_user: None,
            source_basic_password_file: None,
            source_ca_file: None,
            source_cert_file: None,
            source_key_file: None,
            source_insecure_skip_verify: false,
            source_tls_server_name: None,
            dest_bearer_token_file: None,
            dest_basic_user: None,
            dest_basic_password_file: None,
            dest_ca_file: None,
            dest_cert_file: None,
            dest_key_file: None,
            dest_insecure_skip_verify: false,
            dest_tls_server_name: None,
            source_timeout: default_source_timeout(),
            source_slow_answer: default_source_slow_answer(),
            dest_timeout: default_dest_timeout(),
            batch_samples: default_batch_samples(),
            batch_bytes: default_batch_bytes(),
            max_frame_bytes: default_max_frame_bytes(),
            max_samples_response_bytes: default_max_samples_response_bytes(),
            retries: default_retries(),
            max_samples_per_second: None,
            metrics_per_read: default_metrics_per_read(),
            max_read_samples_per_second: None,
            source_bearer_token: None,
            dest_bearer_token: None,
            source_basic_password: None,
            dest_basic_password: None,
            ledger: None,
            namespace: None,
            window_start: None,
            window_end: None,
        }
    }
}

impl WorkerOptions {
    /// What a worker here needs of an import spec (`import start --local`): the endpoints with
    /// their headers and TLS choice, selectors, relabelling and the worker's limits. Secrets are
    /// references a local process cannot read; the caller refuses specs that name any.
    pub fn for_spec(spec: &ImportSpec) -> Result<Self> {
        let defaults = WorkerOptions::default();
        Ok(WorkerOptions {
            source: spec.source.url.clone(),
            dest: spec.destination.url.clone(),
            dest_blocks: spec.destination.blocks.as_ref().map(|b| b.url.clone()),
            tenant: spec
                .destination
                .blocks
                .as_ref()
                .and_then(|b| b.tenant.clone()),
            selectors: spec.parsed_selectors()?,
            drop_label: spec.drop_labels.clone(),
            set_label: NameValue::from_map(&spec.set_labels),
            source_header: NameValue::from_map(&spec.source.headers),
            dest_header: NameValue::from_map(&spec.destination.headers),
            source_insecure_skip_verify: spec.source.insecure_skip_verify,
            dest_insecure_skip_verify: spec.destination.insecure_skip_verify,
            source_tls_server_name: spec.source.tls_server_name.clone(),
            dest_tls_server_name: spec.destination.tls_server_name.clone(),
            batch_samples: spec.worker.batch_samples.unwrap_or(defaults.batch_samples),
            retries: spec.worker.retries.unwrap_or(defaults.retries),
            max_samples_per_second: spec.worker.max_samples_per_second,
            metrics_per_read: spec
                .worker
                .metrics_per_read
                .unwrap_or(defaults.metrics_per_read),
            max_read_samples_per_second: spec.worker.max_read_samples_per_second,
            ..defaults
        })
    }

    /// Reads `PROMIMPORT_*` environment variables.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads `PROMIMPORT_*` variables from a list, as a Job's environment holds them.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        envy::prefixed(ENV_PREFIX)
            .from_iter::<_, WorkerOptions>(vars)
            .map_err(|e| {
                let reason = match e {
                    envy::Error::MissingValue(field) => format!("{} is not set", env_name(field)),
                    // serde names fields in backquotes; show them as the variables a user sets.
                    envy::Error::Custom(message) => message
                        .split('`')
                        .enumerate()
                        .map(|(i, part)| {
                            if i % 2 == 1 {
                                env_name(part)
                            } else {
                                part.to_string()
                            }
                        })
                        .collect(),
                };
                Error::invalid(
                    "environment",
                    format!("{ENV_PREFIX}*"),
                    format!("{reason}; see `promimport worker --help`"),
                )
            })
    }

    /// The batch and rate limits are usable.
    fn check_limits(&self) -> Result<()> {
        if self.batch_samples == 0 {
            return Err(Error::invalid("--batch-samples", "0", "must be at least 1"));
        }
        if self.batch_bytes < 1024 {
            return Err(Error::invalid(
                "--batch-bytes",
                self.batch_bytes.to_string(),
                "must be at least 1024",
            ));
        }
        for (flag, rate) in [
            ("--max-samples-per-second", self.max_samples_per_second),
            (
                "--max-read-samples-per-second",
                self.max_read_samples_per_second,
            ),
        ] {
            if let Some(rate) = rate
                && !(rate.is_finite() && rate >= 1.0)
            {
                return Err(Error::invalid(
                    flag,
                    rate.to_string(),
                    "must be a number of at least 1",
                ));
            }
        }
        Ok(())
    }

    /// The destination's kind: TSDB blocks (`Some`) or remote write, from the flags that give it.
    fn blocks_target(&self) -> Result<Option<BlocksTarget>> {
        Ok(match (&self.dest_blocks, self.dest.trim().is_empty()) {
            (Some(url), true) => Some(BlocksTarget::parse(
                url,
                self.tenant.as_deref(),
                &self.bucket_tls()?,
            )?),
            (None, false) if self.tenant.is_none() => None,
            (None, false) => {
                return Err(Error::invalid(
                    "--tenant",
                    self.tenant.clone().unwrap_or_default(),
                    "goes with --dest-blocks; for remote write give the tenant as --dest-header X-Scope-OrgID=TENANT",
                ));
            }
            (Some(_), false) => {
                return Err(Error::invalid(
                    "--dest",
                    &self.dest,
                    "give either --dest (remote write) or --dest-blocks (TSDB blocks), not both",
                ));
            }
            (None, true) => {
                return Err(Error::invalid(
                    "--dest",
                    "",
                    "is missing: give --dest URL (remote write) or --dest-blocks file:///DIR (TSDB blocks)",
                ));
            }
        })
    }

    /// Checks every value and turns the options into settings; every error names its input.
    pub fn settings(&self) -> Result<WorkerSettings> {
        let selectors = if self.selectors.is_empty() {
            vec![parse_selector(ALL_SERIES)?]
        } else {
            self.selectors.clone()
        };
        self.check_limits()?;
        let blocks = self.blocks_target()?;
        Ok(WorkerSettings {
            blocks,
            source: self.source_endpoint(),
            dest: self.dest_endpoint(),
            selectors,
            labels: LabelRules {
                drop: self.drop_label.clone(),
                set: self.set_label.clone(),
            },
            batch: BatchLimits {
                max_samples: self.batch_samples,
                max_bytes: self.batch_bytes,
            },
            read_limits: ReadLimits {
                max_frame_bytes: self.max_frame_bytes,
                max_samples_response_bytes: self.max_samples_response_bytes,
            },
            retry: RetryPolicy {
                retries: self.retries,
                ..RetryPolicy::default()
            },
            max_samples_per_second: self.max_samples_per_second,
            metrics_per_read: self.metrics_per_read,
            max_read_samples_per_second: self.max_read_samples_per_second,
            source_slow_answer: self.source_slow_answer,
        })
    }

    /// How long a connection to either end may take to open.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    fn source_endpoint(&self) -> EndpointConfig {
        EndpointConfig {
            role: "--source",
            url: self.source.clone(),
            basic_user: self.source_basic_user.clone(),
            basic_password_file: self.source_basic_password_file.clone(),
            basic_password: self.source_basic_password.clone(),
            bearer_token_file: self.source_bearer_token_file.clone(),
            bearer_token: self.source_bearer_token.clone(),
            headers: self.source_header.clone(),
            ca_file: self.source_ca_file.clone(),
            cert_file: self.source_cert_file.clone(),
            key_file: self.source_key_file.clone(),
            insecure_skip_verify: self.source_insecure_skip_verify,
            tls_server_name: self.source_tls_server_name.clone(),
            connect_timeout: Self::CONNECT_TIMEOUT,
            timeout: self.source_timeout,
        }
    }

    /// What of the destination's flags a bucket takes: its TLS. The others are remote
    /// write's, and refused rather than ignored.
    fn bucket_tls(&self) -> Result<BucketTls> {
        let dest = self.dest_endpoint();
        for (flag, given) in [
            ("--dest-header", !dest.headers.is_empty()),
            (
                "--dest-bearer-token-file",
                dest.bearer_token_file.is_some() || dest.bearer_token.is_some(),
            ),
            ("--dest-basic-user", dest.basic_user.is_some()),
            ("--dest-cert-file", dest.cert_file.is_some()),
            ("--dest-key-file", dest.key_file.is_some()),
            ("--dest-tls-server-name", dest.tls_server_name.is_some()),
        ] {
            if given {
                return Err(Error::invalid(
                    flag,
                    "",
                    "goes with --dest (remote write); with --dest-blocks a bucket's credentials \
                     come from the store's usual variables (AWS_ACCESS_KEY_ID, ...), and its TLS \
                     takes --dest-ca-file and --dest-insecure-skip-verify",
                ));
            }
        }
        Ok(BucketTls {
            ca_pem: dest.ca()?,
            insecure_skip_verify: dest.insecure_skip_verify,
        })
    }

    fn dest_endpoint(&self) -> EndpointConfig {
        EndpointConfig {
            role: "--dest",
            url: self.dest.clone(),
            basic_user: self.dest_basic_user.clone(),
            basic_password_file: self.dest_basic_password_file.clone(),
            basic_password: self.dest_basic_password.clone(),
            bearer_token_file: self.dest_bearer_token_file.clone(),
            bearer_token: self.dest_bearer_token.clone(),
            headers: self.dest_header.clone(),
            ca_file: self.dest_ca_file.clone(),
            cert_file: self.dest_cert_file.clone(),
            key_file: self.dest_key_file.clone(),
            insecure_skip_verify: self.dest_insecure_skip_verify,
            tls_server_name: self.dest_tls_server_name.clone(),
            connect_timeout: Self::CONNECT_TIMEOUT,
            timeout: self.dest_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        [
            ("PROMIMPORT_SOURCE", "http://prom:9090/api/v1/read"),
            ("PROMIMPORT_DEST", "http://cortex/api/v1/push"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_bad_line_of_a_variable_names_the_variable_and_the_line() {
        for (name, value, needle) in [
            (
                "PROMIMPORT_DEST_HEADER",
                "X-Scope-OrgID=a\nbroken",
                "\"broken\"",
            ),
            ("PROMIMPORT_SET_LABEL", "=old", "\"=old\""),
            ("PROMIMPORT_MATCH", "up\n{a=b", "\"{a=b\""),
            ("PROMIMPORT_SOURCE_TIMEOUT", "soon", "\"soon\""),
        ] {
            let err = WorkerOptions::from_vars(vars(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{name}: ")) && err.contains(needle),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn list_variables_are_parsed_line_by_line_into_their_types() {
        let options = WorkerOptions::from_vars(vars(&[
            ("PROMIMPORT_MATCH", "up\n\n  {job=\"a,b\"}  \n"),
            (
                "PROMIMPORT_DEST_HEADER",
                "X-Scope-OrgID=tenant\nX-Other=a=b",
            ),
            ("PROMIMPORT_DEST_TIMEOUT", "90s"),
        ]))
        .unwrap();
        let selectors: Vec<String> = options.selectors.iter().map(ToString::to_string).collect();
        assert_eq!(selectors, ["up", "{job=\"a,b\"}"]);
        assert_eq!(
            options.dest_header,
            [
                NameValue::new("X-Scope-OrgID", "tenant"),
                NameValue::new("X-Other", "a=b")
            ]
        );
        assert_eq!(options.dest_timeout, Duration::from_secs(90));
        assert_eq!(options.source_timeout, default_source_timeout());
    }
}
