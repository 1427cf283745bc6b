//! Kubernetes mode: one Job per window (`jobs.rs`), a ConfigMap ledger per import
//! (`ledger.rs`), the scheduler's reconcile loop (`scheduler.rs`), and the commands a person
//! uses on a running import (`control.rs`).

pub mod control;
pub mod discovery;
pub mod jobs;
pub mod ledger;
pub mod scheduler;

use std::path::Path;

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// Labels on everything promimport creates, so `kubectl get jobs,cm -l ...` finds it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "promimport";
pub const LABEL_IMPORT: &str = "promimport.io/import";
pub const LABEL_WINDOW: &str = "promimport.io/window";
pub const LABEL_LEDGER: &str = "promimport.io/ledger";

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

/// Wraps a kube error with what we were doing; the error keeps the API server's answer.
pub fn kube_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |cause| Error::Kubernetes { action, cause }
}

/// Sends a request again while the API server's answer is transient (the Kubernetes rows of
/// the retry table), within `retry::kube_backoff`.
pub async fn with_retries<T, F, Fut>(action: String, request: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
{
    use backon::Retryable;
    request
        .retry(crate::retry::kube_backoff())
        .when(crate::retry::kube_is_transient)
        .notify(|e, after| tracing::warn!(%action, error = %e, ?after, "Kubernetes API answer is transient; trying again"))
        .await
        .map_err(kube_error(action.clone()))
}

/// Whether a kube error is the API server saying 404 / 409.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}
