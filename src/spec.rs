//! An import as a user defines it for Kubernetes: a YAML file (`promimport schedule -f`), or the
//! chart's values. Credentials are references to Secrets, never values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::name_value::NameValue;
use crate::relabel::LabelRules;
use crate::selector::{Selector, parse_selector};
use crate::timespec::{parse_duration, parse_time};

/// The longest import name: Job names add `-w` and the window's start in milliseconds (13
/// digits until the year 2286) and must stay within 63.
pub const MAX_NAME_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportSpec {
    /// DNS-safe name; the ledger ConfigMap is `promimport-NAME`, Jobs `NAME-wSTART_MS`.
    pub name: String,
    /// The target this import was started from (`promimport import start`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub source: EndpointSpec,
    pub destination: EndpointSpec,
    /// Start of the range (RFC 3339, unix seconds, `now-10d`); resolved once, when the import
    /// is first scheduled, and kept in the ledger.
    #[serde(default = "default_start")]
    pub start: String,
    /// End of the range, excluded; resolved once like `start`. Ignored in incremental mode.
    #[serde(default = "default_end")]
    pub end: String,
    /// Series selectors; empty means every series.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_labels: BTreeMap<String, String>,
    /// Window (shard) length, one Job each.
    #[serde(default = "default_window")]
    pub window: String,
    /// Jobs of this import running at once.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// Import up to `now - lag` on every run, from where the last run stopped (for a CronJob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalSpec>,
    #[serde(default)]
    pub worker: WorkerSpec,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointSpec {
    /// Remote read (source) or remote write (destination) URL; empty for a destination that
    /// names `blocks` instead.
    #[serde(default)]
    pub url: String,
    /// The destination only: TSDB blocks instead of remote write (`--dest-blocks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlocksSpec>,
    /// Extra headers, e.g. `X-Scope-OrgID: tenant` for Cortex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthSpec>,
    /// Secret holding a PEM CA bundle, mounted into the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// The name to verify the server's certificate for, when the URL's host is not in it
    /// (Opni's Cortex: `cortex-distributor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Secret holding a client certificate and key (`tls.crt`, `tls.key`), mounted into the
    /// worker: Opni's Cortex requires one (`cortex-client-cert-keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret: Option<ClientCertSecret>,
}

/// Where a worker writes blocks: `url` as `--dest-blocks` takes it, the Cortex tenant, and what
/// a Job needs to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BlocksSpec {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// A Secret whose keys become the worker's environment: the store's usual variables
    /// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT, AWS_REGION, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// For a `file://` URL: the Kubernetes volume that holds the directory (e.g.
    /// `{persistentVolumeClaim: {claimName: cortex-blocks}}`), mounted at the URL's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientCertSecret {
    pub name: String,
    #[serde(default = "default_cert_key")]
    pub cert_key: String,
    #[serde(default = "default_key_key")]
    pub key_key: String,
}

impl ClientCertSecret {
    /// A Secret with the keys cert-manager (and Opni) write: `tls.crt`, `tls.key`.
    pub fn named(name: &str) -> Self {
        ClientCertSecret {
            name: name.to_string(),
            cert_key: default_cert_key(),
            key_key: default_key_key(),
        }
    }
}

fn default_cert_key() -> String {
    "tls.crt".into()
}

fn default_key_key() -> String {
    "tls.key".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuthSpec {
    pub username: String,
    pub password_secret: SecretKeyRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IncrementalSpec {
    /// How far behind now each run stops, so the source has finished writing what is imported.
    #[serde(default = "default_lag")]
    pub lag: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkerSpec {
    #[serde(default = "default_image")]
    pub image: String,
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: String,
    #[serde(default = "default_worker_account")]
    pub service_account_name: String,
    /// Container resources, as in a pod spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// Pod restarts per window for transient failures (the Job's backoffLimit).
    #[serde(default = "default_backoff_limit")]
    pub backoff_limit: i32,
    /// The longest a window's Job may run.
    #[serde(default = "default_active_deadline")]
    pub active_deadline_seconds: i64,
    /// How long finished Jobs stay for `kubectl` to inspect.
    #[serde(default = "default_ttl")]
    pub ttl_seconds_after_finished: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_samples: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<usize>,
    /// The most samples per second a worker sends, whatever the destination's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_samples_per_second: Option<f64>,
    /// The most samples per second a worker reads from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_read_samples_per_second: Option<f64>,
    /// Metric names per remote read query (0: one query per selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_per_read: Option<usize>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        WorkerSpec {
            image: default_image(),
            image_pull_policy: default_pull_policy(),
            service_account_name: default_worker_account(),
            resources: None,
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: default_active_deadline(),
            ttl_seconds_after_finished: default_ttl(),
            batch_samples: None,
            retries: None,
            max_samples_per_second: None,
            max_read_samples_per_second: None,
            metrics_per_read: None,
        }
    }
}

fn default_start() -> String {
    "now-10d".into()
}
fn default_end() -> String {
    "now".into()
}
fn default_window() -> String {
    "2h".into()
}
fn default_parallelism() -> usize {
    2
}
fn default_lag() -> String {
    "5m".into()
}
fn default_image() -> String {
    // Build it from the Dockerfile and push it to your registry; see README.
    concat!("promimport/promimport:", env!("CARGO_PKG_VERSION")).into()
}
fn default_pull_policy() -> String {
    "IfNotPresent".into()
}
fn default_worker_account() -> String {
    "promimport-worker".into()
}
fn default_backoff_limit() -> i32 {
    3
}
fn default_active_deadline() -> i64 {
    3600
}
fn default_ttl() -> i32 {
    86_400
}

impl ImportSpec {
    pub fn from_yaml(source: &str, text: &str) -> Result<Self> {
        let spec: ImportSpec = serde_saphyr::from_str(text)
            .map_err(|e| Error::invalid("import spec", source, format!("{e}")))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every field a user typed, naming the field in the error.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        crate::endpoint::parse_url("source.url", &self.source.url)?;
        if self.source.blocks.is_some() {
            return Err(Error::invalid(
                "source.blocks",
                &self.source.url,
                "blocks are a destination: move them to destination.blocks",
            ));
        }
        match (&self.destination.blocks, self.destination.url.is_empty()) {
            (None, _) => {
                crate::endpoint::parse_url("destination.url", &self.destination.url)?;
            }
            (Some(blocks), true) => {
                // The CA comes from a Secret only the worker reads; the URL and tenant here.
                crate::blocks::BlocksTarget::parse(
                    &blocks.url,
                    blocks.tenant.as_deref(),
                    &crate::blocks::BucketTls::default(),
                )?;
                if let Some(volume) = &blocks.volume
                    && !(volume.is_object() && blocks.url.starts_with("file://"))
                {
                    return Err(Error::invalid(
                        "destination.blocks.volume",
                        volume.to_string(),
                        "a volume source such as {persistentVolumeClaim: {claimName: NAME}}, for a file:// url (a bucket needs none)",
                    ));
                }
                crate::blocks::check_window("window", &self.window, self.window_ms()?)?;
            }
            (Some(_), false) => {
                return Err(Error::invalid(
                    "destination",
                    &self.destination.url,
                    "give destination.url (remote write) or destination.blocks (TSDB blocks), not both",
                ));
            }
        }
        parse_time("start", &self.start, 0)?;
        parse_time("end", &self.end, 0)?;
        self.window_ms()?;
        self.parsed_selectors()?;
        if self.parallelism == 0 || self.parallelism > 64 {
            return Err(Error::invalid(
                "parallelism",
                self.parallelism.to_string(),
                "give 1 to 64",
            ));
        }
        if let Some(incremental) = &self.incremental {
            parse_duration("incremental.lag", &incremental.lag)?;
        }
        for (name, value) in [("source", &self.source), ("destination", &self.destination)] {
            for header in value.headers.keys() {
                reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|e| {
                    Error::invalid(
                        "header name",
                        format!("{name}.headers.{header}"),
                        e.to_string(),
                    )
                })?;
            }
            if value.bearer_token_secret.is_some() && value.basic_auth.is_some() {
                return Err(Error::invalid(
                    name,
                    &value.url,
                    "give basicAuth or bearerTokenSecret, not both",
                ));
            }
        }
        Ok(())
    }

    pub fn window_ms(&self) -> Result<i64> {
        crate::plan::parse_window_length("window", &self.window)
    }

    pub fn ledger_name(&self) -> String {
        format!("promimport-{}", self.name)
    }
}

/// A DNS-1123 label short enough to prefix Job names.
impl ImportSpec {
    /// The selectors as a worker reads them: parsed, each error naming the selector (an empty
    /// list stays empty: the worker reads every series then).
    pub fn parsed_selectors(&self) -> Result<Vec<Selector>> {
        self.selectors.iter().map(|s| parse_selector(s)).collect()
    }

    /// The relabelling as a worker applies it.
    pub fn label_rules(&self) -> LabelRules {
        LabelRules {
            drop: self.drop_labels.clone(),
            set: NameValue::from_map(&self.set_labels),
        }
    }
}

pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "import name",
            name,
            format!(
                "use lowercase letters, digits and '-', start with a letter, at most {MAX_NAME_LEN} characters"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
name: rancher-history
source:
  url: http://rancher-monitoring-prometheus.cattle-monitoring-system.svc:9090/api/v1/read
destination:
  url: http://cortex.opni.svc:8080/api/v1/push
  headers: {X-Scope-OrgID: tenant-a}
  bearerTokenSecret: {name: cortex, key: token}
match: ['{job="node"}']
dropLabels: [prometheus_replica]
window: 1h
"#;

    #[test]
    fn a_spec_reads_with_defaults() {
        let spec = ImportSpec::from_yaml("import.yaml", SPEC).unwrap();
        assert_eq!(spec.start, "now-10d");
        assert_eq!(spec.window_ms().unwrap(), 3_600_000);
        assert_eq!(spec.parallelism, 2);
        assert_eq!(spec.worker.backoff_limit, 3);
        assert_eq!(spec.destination.headers["X-Scope-OrgID"], "tenant-a");
        assert_eq!(spec.ledger_name(), "promimport-rancher-history");
    }

    #[test]
    fn a_spec_written_to_the_ledger_reads_back_the_same() {
        let spec = ImportSpec::from_yaml("import.yaml", SPEC).unwrap();
        let text = serde_saphyr::to_string(&spec).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert_eq!(ImportSpec::from_yaml("ledger", &text).unwrap(), spec);
    }

    #[test]
    fn a_typo_or_a_bad_value_is_named() {
        let typo = SPEC.replace("dropLabels", "dropLabel");
        let err = ImportSpec::from_yaml("import.yaml", &typo)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("import.yaml") && err.contains("dropLabel"),
            "{err}"
        );
        for (from, to, needle) in [
            (
                "name: rancher-history",
                "name: Rancher_History",
                "invalid import name",
            ),
            ("window: 1h", "window: soon", "invalid window"),
            (
                "['{job=\"node\"}']",
                "['{job=node}']",
                "invalid --match selector",
            ),
            (
                "url: http://cortex",
                "url: cortex",
                "invalid destination.url",
            ),
        ] {
            let err = ImportSpec::from_yaml("import.yaml", &SPEC.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{to}: {err}");
        }
    }

    #[test]
    fn names_must_fit_in_job_names() {
        assert!(validate_name("a").is_ok());
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
