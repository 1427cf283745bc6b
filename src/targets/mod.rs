//! Import targets: a named source and destination (with credentials as Secret references,
//! default selectors and relabelling) that imports start from. In a cluster they are ConfigMaps
//! labelled `promimport.io/target` (no CRD to install, the Roles promimport already has, and
//! readable with kubectl, `cluster.rs`); locally they are YAML files in the state directory
//! (`local.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

mod cluster;
mod local;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::{EndpointSpec, ImportSpec, WorkerSpec, validate_name};

pub use cluster::LABEL_TARGET;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    pub name: String,
    pub source: EndpointSpec,
    pub destination: EndpointSpec,
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_labels: BTreeMap<String, String>,
}

impl Target {
    /// Checks the name, the URLs and the selectors, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        // The same checks as an import of it, so a target that is accepted can be imported.
        self.import_spec(&self.name, "now-1h", "now").validate()
    }

    /// An import of this target over a range.
    pub fn import_spec(&self, import: &str, start: &str, end: &str) -> ImportSpec {
        ImportSpec {
            name: import.to_string(),
            target: Some(self.name.clone()),
            source: self.source.clone(),
            destination: self.destination.clone(),
            start: start.to_string(),
            end: end.to_string(),
            selectors: self.selectors.clone(),
            drop_labels: self.drop_labels.clone(),
            set_labels: self.set_labels.clone(),
            window: "2h".into(),
            parallelism: 2,
            incremental: None,
            worker: WorkerSpec::default(),
        }
    }

    /// The Secrets the target refers to, as (name, key).
    pub fn secret_refs(&self) -> Vec<(String, String)> {
        let mut refs = Vec::new();
        for endpoint in [&self.source, &self.destination] {
            for secret in [&endpoint.bearer_token_secret, &endpoint.ca_secret]
                .into_iter()
                .flatten()
            {
                refs.push((secret.name.clone(), secret.key.clone()));
            }
            if let Some(basic) = &endpoint.basic_auth {
                refs.push((
                    basic.password_secret.name.clone(),
                    basic.password_secret.key.clone(),
                ));
            }
            if let Some(client) = &endpoint.client_cert_secret {
                refs.push((client.name.clone(), client.cert_key.clone()));
                refs.push((client.name.clone(), client.key_key.clone()));
            }
        }
        refs
    }
}

/// Where targets live: the one seam with two real implementations.
pub enum TargetStore {
    Cluster {
        client: kube::Client,
        namespace: String,
    },
    Local {
        dir: PathBuf,
    },
}

impl TargetStore {
    /// The local store's default directory: beside the local imports' state.
    pub fn default_local_dir() -> Result<PathBuf> {
        Ok(crate::ledger::file::state_home()?.join("targets"))
    }

    pub async fn list(&self) -> Result<Vec<Target>> {
        match self {
            TargetStore::Cluster { client, namespace } => cluster::list(client, namespace).await,
            TargetStore::Local { dir } => local::list(dir),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Target> {
        self.list()
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                Error::invalid(
                    "target",
                    name,
                    "no such target; `promimport target list` shows them",
                )
            })
    }

    /// Adds a target (`replace`: edits one), after checking it and, in a cluster, the Secrets
    /// it names and that no import from it runs.
    pub async fn save(&self, target: &Target, replace: bool) -> Result<()> {
        target.validate()?;
        let exists = self.list().await?.iter().any(|t| t.name == target.name);
        match (exists, replace) {
            (true, false) => {
                return Err(Error::invalid(
                    "target name",
                    &target.name,
                    "a target of that name exists; `promimport target edit` changes it",
                ));
            }
            (false, true) => {
                return Err(Error::invalid(
                    "target name",
                    &target.name,
                    "no such target; `promimport target add` creates it",
                ));
            }
            _ => {}
        }
        let text = serde_saphyr::to_string(target).map_err(|e| Error::Internal(e.to_string()))?;
        match self {
            TargetStore::Cluster { client, namespace } => {
                cluster::save(client, namespace, target, text, replace).await
            }
            TargetStore::Local { dir } => local::save(dir, &target.name, text),
        }
    }

    pub async fn remove(&self, name: &str) -> Result<()> {
        self.get(name).await?;
        match self {
            TargetStore::Cluster { client, namespace } => {
                cluster::remove(client, namespace, name).await
            }
            TargetStore::Local { dir } => local::remove(dir, name),
        }
    }
}

/// Reads a target's YAML; `source` names where it came from.
fn parse(source: &str, text: &str) -> Result<Target> {
    let target: Target = serde_saphyr::from_str(text)
        .map_err(|e| Error::invalid("target", source, e.to_string()))?;
    Ok(target)
}

/// A target from a discovered Prometheus: its in-cluster URL, and the operator's replica label
/// dropped so imported series match what one live Prometheus writes.
pub fn from_discovery(
    name: &str,
    found: &crate::kube::discovery::DiscoveredPrometheus,
    destination: EndpointSpec,
) -> Target {
    Target {
        name: name.to_string(),
        source: EndpointSpec {
            url: found.remote_read_url.clone(),
            ..Default::default()
        },
        destination,
        selectors: Vec::new(),
        drop_labels: vec!["prometheus_replica".into()],
        set_labels: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SecretKeyRef;

    fn target() -> Target {
        Target {
            name: "old-prom".into(),
            source: EndpointSpec {
                url: "http://prometheus:9090/api/v1/read".into(),
                ..Default::default()
            },
            destination: EndpointSpec {
                url: "http://cortex/api/v1/push".into(),
                bearer_token_secret: Some(SecretKeyRef {
                    name: "cortex".into(),
                    key: "token".into(),
                }),
                ..Default::default()
            },
            selectors: vec!["up".into()],
            drop_labels: vec![],
            set_labels: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn local_targets_round_trip_and_refuse_duplicates_and_bad_input() {
        let dir = std::env::temp_dir().join(format!("promimport-targets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = TargetStore::Local { dir: dir.clone() };
        store.save(&target(), false).await.unwrap();
        assert_eq!(store.get("old-prom").await.unwrap(), target());
        assert!(
            store
                .save(&target(), false)
                .await
                .unwrap_err()
                .to_string()
                .contains("target edit")
        );
        let mut edited = target();
        edited.selectors = vec!["node_load1".into()];
        store.save(&edited, true).await.unwrap();
        assert_eq!(store.list().await.unwrap(), vec![edited]);
        let mut bad = target();
        bad.name = "Old_Prom".into();
        assert!(
            store
                .save(&bad, false)
                .await
                .unwrap_err()
                .to_string()
                .contains("invalid import name")
        );
        bad = target();
        bad.source.url = "prometheus:9090".into();
        assert!(
            store
                .save(&bad, false)
                .await
                .unwrap_err()
                .to_string()
                .contains("source.url")
        );
        store.remove("old-prom").await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
        assert_eq!(
            target().secret_refs(),
            vec![("cortex".to_string(), "token".to_string())]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
