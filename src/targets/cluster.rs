//! Targets in a cluster: ConfigMaps `promimport-target-NAME` labelled `promimport.io/target`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};

use super::{Target, parse};
use crate::error::{Error, Result, is_status, kube_error};
use crate::kube::{LABEL_MANAGED_BY, MANAGED_BY};
use crate::ledger::record::ImportState;

pub const LABEL_TARGET: &str = "promimport.io/target";
const KEY: &str = "target.yaml";

pub async fn list(client: &kube::Client, namespace: &str) -> Result<Vec<Target>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(LABEL_TARGET))
        .await
        .map_err(kube_error(format!("list targets in namespace {namespace}")))?;
    list.items.iter().map(parse_config_map).collect()
}

/// Creates (or with `replace`, replaces) the target's ConfigMap, once the Secrets it names
/// are there and no import from it runs.
pub async fn save(
    client: &kube::Client,
    namespace: &str,
    target: &Target,
    text: String,
    replace: bool,
) -> Result<()> {
    refuse_if_importing(client, namespace, &target.name, "edit").await?;
    check_secrets(client, namespace, target).await?;
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

/// Each Secret and key the target names exists in the namespace.
async fn check_secrets(client: &kube::Client, namespace: &str, target: &Target) -> Result<()> {
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
                    format!("no Secret {name} in namespace {namespace}: create it first"),
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
    Ok(())
}

pub async fn remove(client: &kube::Client, namespace: &str, name: &str) -> Result<()> {
    refuse_if_importing(client, namespace, name, "remove").await?;
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

/// Changing a target under a running import would make its windows differ: refuse.
async fn refuse_if_importing(
    client: &kube::Client,
    namespace: &str,
    target: &str,
    verb: &str,
) -> Result<()> {
    let running: Vec<String> = crate::kube::ledger::list(client.clone(), namespace)
        .await?
        .into_iter()
        .filter(|v| v.spec.target.as_deref() == Some(target) && v.state == ImportState::Running)
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

fn parse_config_map(config_map: &ConfigMap) -> Result<Target> {
    let name = config_map.metadata.name.clone().unwrap_or_default();
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .ok_or_else(|| Error::invalid("target", &name, format!("the ConfigMap has no {KEY}")))?;
    parse(&name, text)
}
