//! Kubernetes mode: one Job per window (`jobs.rs`), the scheduler's reconcile loop
//! (`scheduler.rs`), and the commands a person uses on a running import (`control.rs`); both of
//! those stand on `live_jobs.rs` (what a Job says of its window, deleting Jobs, reopening
//! windows). The import's ConfigMap ledger is `ledger.rs`, the Kubernetes storage of the
//! ledger model (`crate::ledger`, which the file ledger of a local run shares).

pub mod control;
pub mod discovery;
pub mod jobs;
pub mod ledger;
pub mod live_jobs;
pub mod scheduler;
pub mod source_slots;

use std::path::Path;

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result, kube_error};

/// Labels on everything promimport creates, so `kubectl get jobs,cm -l ...` finds it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "promimport";
pub const LABEL_IMPORT: &str = "promimport.io/import";
pub const LABEL_LEDGER: &str = "promimport.io/ledger";
pub const LABEL_WINDOW: &str = "promimport.io/window";
/// Which source a Job reads (`source_label`), so the scheduler can bound the reads on one
/// source across every import in the namespace.
pub const LABEL_SOURCE: &str = "promimport.io/source";

/// The value of `LABEL_SOURCE` for a remote read URL: the CRC32C of its scheme, host, port
/// and path (no credentials, no query), in hex. Two URLs that reach one Prometheus by two
/// names (a Service and `prometheus-operated`) are two sources to it.
pub fn source_label(url: &str) -> String {
    let identity = match reqwest::Url::parse(url.trim()) {
        Ok(u) => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0),
            u.path()
        ),
        Err(_) => url.trim().to_string(),
    };
    format!("{:08x}", crc32c::crc32c(identity.as_bytes()))
}

/// A client for a cluster, found as kubectl finds it: the kubeconfig file given, else
/// KUBECONFIG, else ~/.kube/config, else (in a pod) its service account; the context given,
/// else the kubeconfig's current one.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<kube::Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| {
                Error::invalid("--kubeconfig", path.display().to_string(), e.to_string())
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| {
                    Error::invalid("--kubeconfig", path.display().to_string(), e.to_string())
                })?
        }
        (None, Some(name)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::invalid("--context", name, e.to_string()))?,
        (None, None) => {
            return kube::Client::try_default().await.map_err(kube_error(
                "connect to the cluster (KUBECONFIG, else ~/.kube/config, else the pod's service account)",
            ));
        }
    };
    kube::Client::try_from(config).map_err(kube_error("connect to the cluster"))
}

/// The namespace to work in: the flag, else the current context's, else the pod's, else default.
pub fn namespace(client: &kube::Client, flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .unwrap_or_else(|| client.default_namespace().to_string())
}
