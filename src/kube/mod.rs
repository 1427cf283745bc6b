//! Kubernetes mode: one Job per window (`jobs.rs`), a ConfigMap ledger per import
//! (`ledger.rs`), the scheduler's reconcile loop (`scheduler.rs`), and the commands a person
//! uses on a running import (`control.rs`).

pub mod control;
pub mod discovery;
pub mod jobs;
pub mod ledger;
pub mod scheduler;

use crate::error::{Error, Result};

/// Labels on everything promimport creates, so `kubectl get jobs,cm -l ...` finds it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "promimport";
pub const LABEL_IMPORT: &str = "promimport.io/import";
pub const LABEL_WINDOW: &str = "promimport.io/window";
pub const LABEL_LEDGER: &str = "promimport.io/ledger";

/// A client from the environment: KUBECONFIG or ~/.kube/config, else the pod's service account.
pub async fn client() -> Result<kube::Client> {
    kube::Client::try_default()
        .await
        .map_err(|e| Error::Kubernetes {
            action: "connect to the cluster".into(),
            message: format!("{e}; set KUBECONFIG or run inside a pod"),
        })
}

/// The namespace to work in: the flag, else the current context's, else the pod's, else default.
pub fn namespace(client: &kube::Client, flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .unwrap_or_else(|| client.default_namespace().to_string())
}

/// Wraps a kube error with what we were doing, keeping the API server's message.
pub fn kube_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |e| {
        let message = match &e {
            kube::Error::Api(status) if status.code == 403 => format!(
                "{}; the service account lacks this permission: apply manifests/rbac.yaml (or the chart's Role)",
                status.message
            ),
            kube::Error::Api(status) => status.message.clone(),
            other => other.to_string(),
        };
        Error::Kubernetes { action, message }
    }
}

/// Whether a kube error is the API server saying 404 / 409.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}
