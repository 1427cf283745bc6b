//! Discovery: the Prometheus servers of a cluster (`monitoring.coreos.com/v1`, kind
//! `Prometheus`, as the Prometheus operator and rancher-monitoring run them), each with a remote
//! read URL that works from inside the cluster. URLs are built from the object, never from
//! `spec.externalUrl`, which rancher-monitoring points at Rancher's authenticated proxy.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;

/// rancher-monitoring's Prometheus: the migration source this tool was made for.
pub const RANCHER_NAMESPACE: &str = "cattle-monitoring-system";
pub const RANCHER_NAME: &str = "rancher-monitoring-prometheus";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveredPrometheus {
    pub namespace: String,
    pub name: String,
    pub remote_read_url: String,
    /// The governing service the operator creates for every Prometheus in a namespace.
    pub service: String,
    pub retention: String,
    pub replicas: i64,
    pub shards: i64,
    /// The range it likely holds: now - retention .. now.
    pub likely_range: String,
    /// Set when spec.externalUrl is usable from inside the cluster (not Rancher's proxy).
    pub external_url: Option<String>,
    pub rancher_monitoring: bool,
}

/// What discovery found, or why it found nothing.
#[derive(Debug, Default, Serialize)]
pub struct Discovery {
    pub prometheuses: Vec<DiscoveredPrometheus>,
    /// Why the list is empty when the cluster could not be asked (no CRD, no permission).
    pub note: Option<String>,
}

pub async fn discover(client: kube::Client, namespace: Option<&str>) -> Result<Discovery> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "Prometheus"),
        "prometheuses",
    );
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    let scope = namespace.map_or("the cluster".to_string(), |ns| format!("namespace {ns}"));
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(e) if crate::error::is_status(&e, 404) => {
            return Ok(Discovery {
                prometheuses: Vec::new(),
                note: Some(format!(
                    "no Prometheus servers: {scope} has no monitoring.coreos.com/v1 Prometheus resource (the Prometheus operator's CRD is not installed)"
                )),
            });
        }
        Err(e) if crate::error::is_status(&e, 403) => {
            return Ok(Discovery {
                prometheuses: Vec::new(),
                note: Some(format!(
                    "cannot list Prometheus servers in {scope}: this account may not list prometheuses.monitoring.coreos.com; \
                     grant it (the chart's rbac.discoveryClusterRole) or give the source URL yourself"
                )),
            });
        }
        Err(e) => {
            return Err(crate::error::kube_error(format!(
                "list Prometheus objects in {scope}"
            ))(e));
        }
    };
    let now = crate::timespec::now_ms();
    let mut found: Vec<DiscoveredPrometheus> = list
        .items
        .iter()
        .map(|object| describe(object, now))
        .collect();
    // The migration source first.
    found.sort_by_key(|p| (!p.rancher_monitoring, p.namespace.clone(), p.name.clone()));
    Ok(Discovery {
        prometheuses: found,
        note: None,
    })
}

/// Builds the in-cluster remote read URL and the rest from one Prometheus object (pure).
pub fn describe(object: &DynamicObject, now_ms: i64) -> DiscoveredPrometheus {
    let spec = object.data.get("spec").cloned().unwrap_or(Value::Null);
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let scheme = if spec.pointer("/web/tlsConfig").is_some_and(|t| !t.is_null()) {
        "https"
    } else {
        "http"
    };
    let prefix = spec["routePrefix"]
        .as_str()
        .unwrap_or("/")
        .trim_end_matches('/');
    let prefix = if prefix.is_empty() || prefix.starts_with('/') {
        prefix.to_string()
    } else {
        format!("/{prefix}")
    };
    // The operator's governing service, prometheus-operated, serves every Prometheus pod of the
    // namespace on port 9090 (named by spec.portName, "web" by default).
    let service = format!("prometheus-operated.{namespace}.svc");
    let retention = spec["retention"].as_str().unwrap_or("24h").to_string();
    let likely_range = match humantime::parse_duration(&retention) {
        Ok(d) => format!(
            "{} .. now",
            crate::timespec::format_ms(now_ms - i64::try_from(d.as_millis()).unwrap_or(0))
        ),
        Err(_) => format!("the last {retention}"),
    };
    let external_url = spec["externalUrl"]
        .as_str()
        .filter(|u| !is_rancher_proxy(u))
        .map(str::to_string);
    DiscoveredPrometheus {
        remote_read_url: format!("{scheme}://{service}:9090{prefix}/api/v1/read"),
        rancher_monitoring: namespace == RANCHER_NAMESPACE && name == RANCHER_NAME,
        replicas: spec["replicas"].as_i64().unwrap_or(1),
        shards: spec["shards"].as_i64().unwrap_or(1),
        namespace,
        name,
        service,
        retention,
        likely_range,
        external_url,
    }
}

/// Rancher's authenticated proxy: .../k8s/clusters/ID/api/v1/namespaces/NS/services/.../proxy
fn is_rancher_proxy(url: &str) -> bool {
    url.contains("/k8s/clusters/")
        || (url.contains("/api/v1/namespaces/") && url.contains("/proxy"))
}

pub fn render_table(discovery: &Discovery) -> String {
    let mut out = format!(
        "{:<26} {:<34} {:<9} {:>8} {:>6}  {}\n",
        "NAMESPACE", "NAME", "RETENTION", "REPLICAS", "SHARDS", "REMOTE READ URL"
    );
    for p in &discovery.prometheuses {
        out.push_str(&format!(
            "{:<26} {:<34} {:<9} {:>8} {:>6}  {}{}\n",
            p.namespace,
            p.name,
            p.retention,
            p.replicas,
            p.shards,
            p.remote_read_url,
            if p.rancher_monitoring {
                "  <- rancher-monitoring: the migration source"
            } else {
                ""
            }
        ));
    }
    if let Some(note) = &discovery.note {
        out.push_str(note);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(namespace: &str, name: &str, spec: Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"namespace": namespace, "name": name}, "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn rancher_monitoring_is_recognised_and_its_proxy_url_not_offered() {
        let p = describe(
            &object(
                RANCHER_NAMESPACE,
                RANCHER_NAME,
                serde_json::json!({
                    "retention": "10d",
                    "externalUrl": "https://rancher.example/k8s/clusters/local/api/v1/namespaces/cattle-monitoring-system/services/http:rancher-monitoring-prometheus:9090/proxy",
                }),
            ),
            10 * 86_400_000,
        );
        assert!(p.rancher_monitoring);
        assert_eq!(
            p.remote_read_url,
            "http://prometheus-operated.cattle-monitoring-system.svc:9090/api/v1/read"
        );
        assert_eq!(p.external_url, None);
        assert_eq!(p.likely_range, "1970-01-01T00:00:00Z .. now");
    }

    #[test]
    fn tls_and_a_route_prefix_shape_the_url() {
        let p = describe(
            &object(
                "monitoring",
                "kps",
                serde_json::json!({
                    "routePrefix": "prom/", "web": {"tlsConfig": {"keySecret": {"name": "k", "key": "k"}}},
                    "replicas": 2, "shards": 3, "externalUrl": "https://prometheus.example.com/prom",
                }),
            ),
            0,
        );
        assert_eq!(
            p.remote_read_url,
            "https://prometheus-operated.monitoring.svc:9090/prom/api/v1/read"
        );
        assert_eq!((p.replicas, p.shards, p.retention.as_str()), (2, 3, "24h"));
        assert_eq!(
            p.external_url.as_deref(),
            Some("https://prometheus.example.com/prom")
        );
        assert!(!p.rancher_monitoring);
    }
}
