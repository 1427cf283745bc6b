//! Kubernetes mode: one Job per window (`jobs.rs`), the scheduler's reconcile loop
//! (`scheduler.rs`), and the commands a person uses on a running import (`control.rs`); the
//! import's ConfigMap ledger is `ledger/configmap.rs`, beside the file ledger.

pub mod control;
pub mod discovery;
pub mod jobs;
pub mod scheduler;

use std::path::Path;

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result, kube_error};

/// Labels on everything promimport creates, so `kubectl get jobs,cm -l ...` finds it.
pub use crate::ledger::configmap::{LABEL_IMPORT, LABEL_LEDGER, LABEL_MANAGED_BY, MANAGED_BY};
pub const LABEL_WINDOW: &str = "promimport.io/window";

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
