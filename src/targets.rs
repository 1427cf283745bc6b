//! Import targets: a named source and destination (with credentials as Secret references,
//! default selectors and relabelling) that imports start from. In a cluster they are ConfigMaps
//! labelled `promimport.io/target` (no CRD to install, the Roles promimport already has, and
//! readable with kubectl); locally they are YAML files in the state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::error::{is_status, kube_error};
use crate::ledger::configmap::{LABEL_MANAGED_BY, MANAGED_BY};
use crate::spec::{EndpointSpec, ImportSpec, WorkerSpec, validate_name};

pub const LABEL_TARGET: &str = "promimport.io/target";
const KEY: &str = "target.yaml";

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
            TargetStore::Cluster { client, namespace } => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                let list = api
                    .list(&ListParams::default().labels(LABEL_TARGET))
                    .await
                    .map_err(kube_error(format!("list targets in namespace {namespace}")))?;
                list.items.iter().map(parse_config_map).collect()
            }
            TargetStore::Local { dir } => {
                let mut targets = Vec::new();
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(targets),
                    Err(source) => {
                        return Err(Error::ReadFile {
                            what: "targets directory",
                            path: dir.clone(),
                            source,
                        });
                    }
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "yaml") {
                        let text =
                            std::fs::read_to_string(&path).map_err(|source| Error::ReadFile {
                                what: "target",
                                path: path.clone(),
                                source,
                            })?;
                        targets.push(parse(&path.display().to_string(), &text)?);
                    }
                }
                targets.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(targets)
            }
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

    /// Adds a target (`replace`: edits one), after checking it and the Secrets it names.
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
                self.refuse_if_importing(&target.name, "edit").await?;
                let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
                for (name, key) in target.secret_refs() {
                    let secret = secrets
                        .get_opt(&name)
                        .await
                        .map_err(kube_error(format!("read Secret {name}")))?
                        .ok_or_else(|| {
                            Error::invalid(
                                "Secret",
                                &name,
                                format!(
                                    "no Secret {name} in namespace {namespace}: create it first"
                                ),
                            )
                        })?;
                    let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(&key))
                        || secret
                            .string_data
                            .as_ref()
                            .is_some_and(|d| d.contains_key(&key));
                    if !has_key {
                        return Err(Error::invalid(
                            "Secret key",
                            format!("{name}/{key}"),
                            "the Secret has no such key",
                        ));
                    }
                }
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                let config_map = ConfigMap {
                    metadata: kube::api::ObjectMeta {
                        name: Some(config_map_name(&target.name)),
                        labels: Some(BTreeMap::from([
                            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                            (LABEL_TARGET.to_string(), target.name.clone()),
                        ])),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([(KEY.to_string(), text)])),
                    ..Default::default()
                };
                let result = if replace {
                    api.replace(
                        &config_map_name(&target.name),
                        &PostParams::default(),
                        &with_version(&api, config_map, &target.name).await?,
                    )
                    .await
                } else {
                    api.create(&PostParams::default(), &config_map).await
                };
                result
                    .map(|_| ())
                    .map_err(kube_error(format!("save target {}", target.name)))
            }
            TargetStore::Local { dir } => {
                let failed = |path: &std::path::Path| {
                    let path = path.to_path_buf();
                    move |source| Error::WriteFile {
                        what: "target",
                        path,
                        source,
                    }
                };
                std::fs::create_dir_all(dir).map_err(failed(dir))?;
                let path = dir.join(format!("{}.yaml", target.name));
                std::fs::write(&path, text).map_err(failed(&path))
            }
        }
    }

    pub async fn remove(&self, name: &str) -> Result<()> {
        self.get(name).await?;
        match self {
            TargetStore::Cluster { client, namespace } => {
                self.refuse_if_importing(name, "remove").await?;
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                match api
                    .delete(&config_map_name(name), &Default::default())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if is_status(&e, 404) => Ok(()),
                    Err(e) => Err(kube_error(format!("remove target {name}"))(e)),
                }
            }
            TargetStore::Local { dir } => {
                let path = dir.join(format!("{name}.yaml"));
                std::fs::remove_file(&path).map_err(|source| Error::WriteFile {
                    what: "target",
                    path,
                    source,
                })
            }
        }
    }

    /// Changing a target under a running import would make its windows differ: refuse.
    async fn refuse_if_importing(&self, target: &str, verb: &str) -> Result<()> {
        let TargetStore::Cluster { client, namespace } = self else {
            return Ok(());
        };
        let running: Vec<String> = crate::ledger::configmap::list(client.clone(), namespace)
            .await?
            .into_iter()
            .filter(|v| {
                v.spec.target.as_deref() == Some(target)
                    && v.state == crate::ledger::configmap::ImportState::Running
            })
            .map(|v| v.spec.name)
            .collect();
        if running.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                "target",
                target,
                format!(
                    "cannot {verb} it while import {} from it runs; `promimport stop` it first",
                    running.join(", ")
                ),
            ))
        }
    }
}

async fn with_version(
    api: &Api<ConfigMap>,
    mut config_map: ConfigMap,
    name: &str,
) -> Result<ConfigMap> {
    let current = api
        .get(&config_map_name(name))
        .await
        .map_err(kube_error(format!("read target {name}")))?;
    config_map.metadata.resource_version = current.metadata.resource_version;
    Ok(config_map)
}

fn config_map_name(target: &str) -> String {
    format!("promimport-target-{target}")
}

fn parse(source: &str, text: &str) -> Result<Target> {
    let target: Target = serde_saphyr::from_str(text)
        .map_err(|e| Error::invalid("target", source, e.to_string()))?;
    Ok(target)
}

fn parse_config_map(config_map: &ConfigMap) -> Result<Target> {
    let name = config_map.metadata.name.clone().unwrap_or_default();
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .ok_or_else(|| Error::invalid("target", &name, format!("the ConfigMap has no {KEY}")))?;
    parse(&name, text)
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
