//! `promimport target add|edit|list|get|remove`: named sources and destinations, kept in the
//! cluster (ConfigMaps) or locally (`--local`).

use std::collections::BTreeMap;

use crate::cli::{TargetArgs, TargetCommand, TargetScope};
use crate::error::{Error, Result};
use crate::name_value::NameValue;
use crate::spec::{BasicAuthSpec, ClientCertSecret, EndpointSpec, SecretKeyRef};
use crate::targets::{Target, TargetStore, from_discovery};

use super::{cluster, json_output};

pub async fn target(command: TargetCommand) -> Result<i32> {
    match command {
        TargetCommand::Add(args) => save(*args, false).await,
        TargetCommand::Edit(args) => save(*args, true).await,
        TargetCommand::List { scope, output } => {
            let json = json_output(&output)?;
            let targets = store(&scope).await?.list().await?;
            if json {
                let text = serde_json::to_string_pretty(&targets)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                println!("{text}");
            } else {
                println!("{:<24} {:<60} DESTINATION", "NAME", "SOURCE");
                for t in &targets {
                    println!("{:<24} {:<60} {}", t.name, t.source.url, t.destination.url);
                }
            }
            Ok(0)
        }
        TargetCommand::Get { name, scope } => {
            let target = store(&scope).await?.get(&name).await?;
            let text =
                serde_saphyr::to_string(&target).map_err(|e| Error::Internal(e.to_string()))?;
            print!("{text}");
            Ok(0)
        }
        TargetCommand::Remove { name, scope } => {
            store(&scope).await?.remove(&name).await?;
            println!("target {name} removed");
            Ok(0)
        }
    }
}

/// The store the flags name: a local directory with --local, else the cluster's namespace.
pub async fn store(scope: &TargetScope) -> Result<TargetStore> {
    if scope.local {
        let dir = match &scope.state {
            Some(dir) => dir.clone(),
            None => TargetStore::default_local_dir()?,
        };
        return Ok(TargetStore::Local { dir });
    }
    let (client, namespace) = cluster(&scope.cluster).await?;
    Ok(TargetStore::Cluster { client, namespace })
}

/// Adds a target, or (`replace`) changes the fields given of an existing one.
async fn save(args: TargetArgs, replace: bool) -> Result<i32> {
    let store = store(&args.scope).await?;
    let mut target = if replace {
        let mut target = store.get(&args.name).await?;
        if let Some(url) = &args.source {
            target.source.url = url.clone();
        }
        if let Some(url) = &args.dest {
            target.destination.url = url.clone();
        }
        target
    } else {
        new_target(&args).await?
    };
    apply_flags(&args, &mut target)?;
    store.save(&target, replace).await?;
    println!(
        "target {} {}",
        target.name,
        if replace { "changed" } else { "added" }
    );
    Ok(0)
}

/// A new target from --source, or from a discovered Prometheus object.
async fn new_target(args: &TargetArgs) -> Result<Target> {
    let destination = EndpointSpec {
        url: args.dest.clone().ok_or_else(|| {
            Error::invalid("--dest", "", "give the destination's remote write URL")
        })?,
        ..Default::default()
    };
    match (&args.source, &args.from_discovery) {
        (Some(url), _) => Ok(Target {
            name: args.name.clone(),
            source: EndpointSpec {
                url: url.clone(),
                ..Default::default()
            },
            destination,
            selectors: Vec::new(),
            drop_labels: Vec::new(),
            set_labels: BTreeMap::new(),
        }),
        (None, Some(object)) => {
            let (namespace, name) = object
                .split_once('/')
                .ok_or_else(|| Error::invalid("--from-discovery", object, "give NAMESPACE/NAME"))?;
            let client = super::client(&args.scope.cluster.kube).await?;
            let found = crate::kube::discovery::discover(client, Some(namespace)).await?;
            let prometheus = found
                .prometheuses
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    Error::invalid(
                        "--from-discovery",
                        object,
                        format!(
                            "no such Prometheus; `promimport discover` lists them{}",
                            found.note.map(|n| format!(" ({n})")).unwrap_or_default()
                        ),
                    )
                })?;
            Ok(from_discovery(&args.name, prometheus, destination))
        }
        (None, None) => Err(Error::invalid(
            "--source",
            "",
            "give --source URL or --from-discovery NAMESPACE/NAME",
        )),
    }
}

/// Sets what the flags give: selectors and dropped labels replace, the rest add up.
fn apply_flags(args: &TargetArgs, target: &mut Target) -> Result<()> {
    if !args.selectors.is_empty() {
        target.selectors = args.selectors.clone();
    }
    if !args.drop_label.is_empty() {
        target.drop_labels = args.drop_label.clone();
    }
    target.set_labels.extend(
        args.set_label
            .iter()
            .map(|pair| (pair.name.clone(), pair.value.clone())),
    );
    let source = EndpointFlags {
        role: "source",
        headers: &args.source_header,
        bearer: &args.source_bearer_secret,
        user: &args.source_basic_user,
        password: &args.source_basic_password_secret,
        ca: &args.source_ca_secret,
        client_cert: &args.source_client_cert_secret,
        server_name: &args.source_tls_server_name,
        insecure: args.source_insecure_skip_verify,
    };
    let dest = EndpointFlags {
        role: "dest",
        headers: &args.dest_header,
        bearer: &args.dest_bearer_secret,
        user: &args.dest_basic_user,
        password: &args.dest_basic_password_secret,
        ca: &args.dest_ca_secret,
        client_cert: &args.dest_client_cert_secret,
        server_name: &args.dest_tls_server_name,
        insecure: args.dest_insecure_skip_verify,
    };
    source.apply(&mut target.source)?;
    dest.apply(&mut target.destination)
}

/// One endpoint's flags of `target add` / `target edit`.
struct EndpointFlags<'a> {
    role: &'static str,
    headers: &'a [NameValue],
    bearer: &'a Option<String>,
    user: &'a Option<String>,
    password: &'a Option<String>,
    ca: &'a Option<String>,
    client_cert: &'a Option<String>,
    server_name: &'a Option<String>,
    insecure: bool,
}

impl EndpointFlags<'_> {
    /// Sets what was given on the endpoint; what was not given stays as it was.
    fn apply(&self, endpoint: &mut EndpointSpec) -> Result<()> {
        let role = self.role;
        endpoint.headers.extend(
            self.headers
                .iter()
                .map(|h| (h.name.clone(), h.value.trim().to_string())),
        );
        if let Some(secret) = self.bearer {
            endpoint.bearer_token_secret = Some(secret_ref(role, "bearer-secret", secret)?);
        }
        if let (Some(username), Some(secret)) = (self.user, self.password) {
            endpoint.basic_auth = Some(BasicAuthSpec {
                username: username.clone(),
                password_secret: secret_ref(role, "basic-password-secret", secret)?,
            });
        }
        if let Some(secret) = self.ca {
            endpoint.ca_secret = Some(secret_ref(role, "ca-secret", secret)?);
        }
        if let Some(name) = self.client_cert {
            endpoint.client_cert_secret = Some(ClientCertSecret::named(name));
        }
        if let Some(name) = self.server_name {
            endpoint.tls_server_name = Some(name.clone());
        }
        endpoint.insecure_skip_verify |= self.insecure;
        Ok(())
    }
}

fn secret_ref(role: &str, flag: &str, value: &str) -> Result<SecretKeyRef> {
    match value.split_once('/') {
        Some((name, key)) if !name.is_empty() && !key.is_empty() => Ok(SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }),
        _ => Err(Error::invalid(
            "secret reference",
            format!("--{role}-{flag} {value}"),
            "expected SECRET/KEY, e.g. cortex-credentials/token",
        )),
    }
}
