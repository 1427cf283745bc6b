//! `promimport discover` on a real control plane: without the Prometheus CRD, with objects
//! shaped like rancher-monitoring's and a kube-prometheus-stack's, and as an account that may
//! not list them.

use promimport_test_support as common;

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
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_discovery_finds_rancher_monitoring_first_and_explains_an_empty_list() {
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

    // A target filled in from discovery.
    cluster.namespace("fromdiscovery");
    let out = promimport_as(
        &admin,
        &[
            "target",
            "add",
            "rancher",
            "-n",
            "fromdiscovery",
            "--from-discovery",
            "cattle-monitoring-system/rancher-monitoring-prometheus",
            "--dest",
            "http://cortex.opni.svc:8080/api/v1/push",
        ],
    );
    assert!(out.0 == Some(0), "{}", out.1);
    let (_, yaml) = promimport_as(&admin, &["target", "get", "rancher", "-n", "fromdiscovery"]);
    assert!(
        yaml.contains(
            "url: http://prometheus-operated.cattle-monitoring-system.svc:9090/api/v1/read"
        ),
        "{yaml}"
    );
    assert!(yaml.contains("- prometheus_replica"), "{yaml}");
}

fn promimport_as(kubeconfig: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_promimport"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_targets_round_trip_in_the_cluster_and_an_import_starts_from_one() {
    let cluster = cluster();
    let admin = cluster.admin();
    cluster.namespace("targets");
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "cortex-creds",
        "-n",
        "targets",
        "--from-literal=token=t0ken",
    ]);
    let dir = temp_dir("targets-history");
    let history = dir.join("history.om");
    write_history(&history, 2, true);
    let source = start_prometheus(
        "targets-src",
        PrometheusOptions {
            history: Some(&history),
            ..PrometheusOptions::default()
        },
    );
    let sink = prometheus_sink("targets-sink");
    let (src, dst) = (source.url("/api/v1/read"), sink.url("/api/v1/write"));

    let add = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "target",
            "add",
            name,
            "-n",
            "targets",
            "--source",
            src.as_str(),
            "--dest",
            dst.as_str(),
        ];
        args.extend_from_slice(extra);
        promimport_as(&admin, &args)
    };
    let (code, log) = add(
        "old",
        &[
            "--dest-bearer-secret",
            "cortex-creds/token",
            "--dest-header",
            "X-Scope-OrgID=tenant",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    let labelled = cluster.kubectl(&[
        "get",
        "configmaps",
        "-n",
        "targets",
        "-l",
        "promimport.io/target=old",
        "-o",
        "name",
    ]);
    assert_eq!(labelled.trim(), "configmap/promimport-target-old");
    for (name, extra, needle) in [
        ("old", vec![], "a target of that name exists"),
        (
            "missing",
            vec!["--dest-bearer-secret", "nope/token"],
            "no Secret nope in namespace targets",
        ),
        (
            "nokey",
            vec!["--dest-bearer-secret", "cortex-creds/password"],
            "the Secret has no such key",
        ),
        ("Bad_Name", vec![], "invalid import name"),
        (
            "badmatch",
            vec!["--match", "{job=node}"],
            "invalid --match selector",
        ),
    ] {
        let (code, log) = add(name, &extra);
        assert_eq!(code, Some(1), "{name}: {log}");
        assert!(log.contains(needle), "{name}: {log}");
    }
    let (code, log) = promimport_as(
        &admin,
        &[
            "target",
            "edit",
            "old",
            "-n",
            "targets",
            "--match",
            "test_requests_total",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    let (_, list) = promimport_as(&admin, &["target", "list", "-n", "targets", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["match"][0], "test_requests_total");
    assert_eq!(
        list[0]["destination"]["bearerTokenSecret"]["name"],
        "cortex-creds"
    );

    // An import that has not finished (its scheduler gave up waiting) keeps its target fixed.
    let start = rfc3339(BASE_MS);
    let end = rfc3339(BASE_MS + 2 * HOUR_MS);
    let image = cluster.image();
    let import = |timeout: &str| {
        promimport_as(
            &admin,
            &[
                "import",
                "start",
                "old",
                "-n",
                "targets",
                "--start",
                &start,
                "--end",
                &end,
                "--window",
                "1h",
                "--parallelism",
                "1",
                "--image",
                &image,
                "--poll",
                "300ms",
                "--timeout",
                timeout,
            ],
        )
    };
    let (code, log) = import("1ms");
    assert_eq!(code, Some(1), "{log}");
    let (code, log) = promimport_as(&admin, &["target", "remove", "old", "-n", "targets"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("while import old from it runs"), "{log}");
    let (code, log) = import("3m");
    assert_eq!(code, Some(0), "{log}");
    let expected: Data = read_samples(&source, BASE_MS, BASE_MS + 2 * HOUR_MS)
        .into_iter()
        .filter(|(k, _)| k.contains("test_requests_total"))
        .collect();
    let (from, to) = history_range();
    assert_same_data(&expected, &read_samples(&sink, from, to));
    let (code, log) = promimport_as(&admin, &["target", "remove", "old", "-n", "targets"]);
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn local_targets_and_an_import_started_from_one() {
    let state = temp_dir("targets-local");
    let dir = temp_dir("local-target-history");
    let history = dir.join("history.om");
    write_history(&history, 2, true);
    let source = start_prometheus(
        "local-target-src",
        PrometheusOptions {
            history: Some(&history),
            ..PrometheusOptions::default()
        },
    );
    let sink = prometheus_sink("local-target-sink");
    let local = ["--local", "--state", state.to_str().unwrap()];
    let (src, dest) = (source.url("/api/v1/read"), sink.url("/api/v1/write"));
    let mut add = vec!["target", "add", "mine", "--source", src.as_str()];
    add.extend(["--dest", dest.as_str(), "--set-label", "origin=old"]);
    add.extend(local);
    let out = promimport(&add);
    assert!(out.status.success(), "{}", text(&out));
    let mut start = vec![
        "import",
        "start",
        "mine",
        "--start",
        "2026-11-01T00:00:00Z",
        "--end",
        "2026-11-01T02:00:00Z",
        "--parallelism",
        "1",
        "--window",
        "1h",
    ];
    start.extend(local);
    let out = promimport(&start);
    assert!(out.status.success(), "{}", text(&out));
    let (from, to) = history_range();
    let landed = read_samples(&sink, from, to);
    let expected = read_samples(&source, BASE_MS, BASE_MS + 2 * HOUR_MS);
    assert_eq!(landed.len(), expected.len());
    assert!(
        landed.keys().all(|k| k.contains("origin=\"old\"")),
        "{:?}",
        landed.keys().next()
    );
    assert_eq!(total_samples(&landed), total_samples(&expected));
}

#[test]
fn every_credential_a_target_file_holds_can_be_given_on_the_command_line() {
    let state = temp_dir("targets-creds");
    let local = ["--local", "--state", state.to_str().unwrap()];
    let mut add = vec![
        "target",
        "add",
        "secured",
        "--source",
        "https://prometheus:9090/api/v1/read",
        "--dest",
        "https://cortex/api/v1/push",
        "--source-ca-secret",
        "prom-ca/ca.crt",
        "--source-insecure-skip-verify",
        "--dest-basic-user",
        "importer",
        "--dest-basic-password-secret",
        "cortex/password",
        "--dest-ca-secret",
        "cortex-ca/ca.pem",
        "--dest-client-cert-secret",
        "cortex-client-cert-keys",
        "--dest-tls-server-name",
        "cortex-distributor",
    ];
    add.extend(local);
    let out = promimport(&add);
    assert!(out.status.success(), "{}", text(&out));
    let mut get = vec!["target", "get", "secured"];
    get.extend(local);
    let out = promimport(&get);
    let yaml = text(&out);
    for needle in [
        "name: prom-ca",
        "insecureSkipVerify: true",
        "username: importer",
        "name: cortex",
        "key: password",
        "name: cortex-ca",
        "name: cortex-client-cert-keys",
        "certKey: tls.crt",
        "keyKey: tls.key",
        "tlsServerName: cortex-distributor",
    ] {
        assert!(yaml.contains(needle), "{needle}: {yaml}");
    }
    // A user without its password Secret is refused by the parser, naming the missing flag.
    let mut bad = vec![
        "target",
        "add",
        "half",
        "--source",
        "http://p/api/v1/read",
        "--dest",
        "http://c/api/v1/push",
        "--dest-basic-user",
        "importer",
    ];
    bad.extend(local);
    let out = promimport(&bad);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--dest-basic-password-secret"),
        "{}",
        text(&out)
    );
    // A local import cannot read Secrets: it says so instead of importing without them.
    let mut start = vec!["import", "start", "secured"];
    start.extend(local);
    let out = promimport(&start);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("names Secrets"), "{}", text(&out));
}
