//! `promimport discover` on a real control plane: without the Prometheus CRD, with objects
//! shaped like rancher-monitoring's and a kube-prometheus-stack's, and as an account that may
//! not list them.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cluster::cluster;
use common::*;

fn discover(kubeconfig: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_promimport"))
        .arg("discover")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/discovery")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn discovery_finds_rancher_monitoring_first_and_explains_an_empty_list() {
    let cluster = cluster();
    let admin = cluster.admin();

    let (code, log) = discover(&admin, &[]);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("the Prometheus operator's CRD is not installed"),
        "{log}"
    );

    cluster.kubectl(&["apply", "-f", &fixture("crd.yaml")]);
    cluster.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/prometheuses.monitoring.coreos.com",
    ]);
    for namespace in ["cattle-monitoring-system", "monitoring"] {
        cluster.kubectl(&["create", "namespace", namespace]);
    }
    cluster.kubectl(&[
        "apply",
        "-f",
        &fixture("rancher-monitoring.yaml"),
        "-f",
        &fixture("kube-prometheus-stack.yaml"),
    ]);

    let (code, log) = discover(&admin, &["-o", "json"]);
    assert_eq!(code, Some(0), "{log}");
    let found: serde_json::Value = serde_json::from_str(&log).unwrap();
    let list = found["prometheuses"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{log}");
    assert_eq!(list[0]["name"], "rancher-monitoring-prometheus");
    assert_eq!(list[0]["rancher_monitoring"], true);
    assert_eq!(
        list[0]["remote_read_url"],
        "http://prometheus-operated.cattle-monitoring-system.svc:9090/api/v1/read"
    );
    assert_eq!(list[0]["retention"], "10d");
    assert!(
        list[0]["external_url"].is_null(),
        "Rancher's proxy is not offered: {log}"
    );
    assert_eq!(
        list[1]["remote_read_url"],
        "https://prometheus-operated.monitoring.svc:9090/prom/api/v1/read"
    );
    assert_eq!(
        (list[1]["replicas"].as_i64(), list[1]["shards"].as_i64()),
        (Some(2), Some(1))
    );

    let (_, table) = discover(&admin, &["-n", "monitoring"]);
    assert!(
        table.contains("kps-prometheus") && !table.contains("rancher-monitoring-prometheus"),
        "{table}"
    );

    // An account without the discovery ClusterRole gets a reason and an empty list.
    let restricted = cluster.namespace("nodiscovery");
    let (code, log) = discover(&restricted, &[]);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("may not list prometheuses.monitoring.coreos.com"),
        "{log}"
    );
    assert!(!log.contains("kps-prometheus"), "{log}");
}
