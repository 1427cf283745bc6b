//! The chart on real pods, as a user installs it: the image that scripts/image built, run in
//! containers by a real kubelet (containerd, runc) in the project's own cluster
//! (scripts/cluster), with the in-cluster configuration (the service account token the kubelet
//! mounts, the `kubernetes` Service through kube-proxy), and the chart's defaults.
//!
//! scripts/test runs this binary inside the cluster's network namespace with
//! `PROMIMPORT_CLUSTER` set (and the servers listening on the node's address, which pods
//! reach); elsewhere its tests are ignored, never passed.

use promimport_test_support as common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Ledger, real_cluster};
use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The image the cluster's containerd holds, as `image.repository` and `image.tag`.
fn image_sets(cluster: &Cluster) -> [String; 2] {
    let image = std::fs::read_to_string(cluster.dir.join("image"))
        .expect("scripts/cluster up writes DIR/image");
    let (repository, tag) = image.trim().rsplit_once(':').expect("REPOSITORY:TAG");
    [
        format!("image.repository={repository}"),
        format!("image.tag={tag}"),
    ]
}

fn helm_install(cluster: &Cluster, release: &str, namespace: &str, sets: &[String]) {
    let mut command = Command::new(repo().join("scripts/helm"));
    command
        .args(["install", release, "charts/promimport", "-n", namespace])
        .current_dir(repo())
        .env("KUBECONFIG", cluster.admin());
    for set in sets {
        command.args(["--set", set]);
    }
    let out = command.output().expect("scripts/helm runs");
    assert!(out.status.success(), "{}", text(&out));
}

/// Waits for the import in `namespace` to finish; its ledger.
fn finished(cluster: &Cluster, namespace: &str, import: &str, within: Duration) -> Ledger {
    let deadline = Instant::now() + within;
    loop {
        let ledger = cluster.ledger(namespace, import);
        let state = ledger.as_ref().map_or("", |l| l.state.as_str());
        assert_ne!(state, "failed", "the import failed: {ledger:?}");
        if state == "finished" {
            return ledger.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the import did not finish in {within:?}: {ledger:?}\n{}",
            cluster.kubectl(&["get", "pods", "-n", namespace, "-o", "wide"])
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn on_real_pods_helm_install_with_the_charts_defaults_migrates_ten_days_exactly() {
    let cluster = real_cluster();
    let namespace = "pods-defaults";
    cluster.kubectl(&["create", "namespace", namespace]);
    // rancher-monitoring keeps 10 days: the chart's default start, now-10d, takes all of it.
    let source = recent_history_source("pods-src", 10 * 24, 1);
    let sink = prometheus_sink("pods-sink");
    // What a user sets: the image, the source and the destination. Everything else (start,
    // window, parallelism, resources, security context) is the chart's default.
    let mut sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink.url("/api/v1/write")),
    ];
    sets.extend(image_sets(&cluster));
    helm_install(&cluster, "history", namespace, &sets);
    let import = "rancher-monitoring";
    let ledger = finished(&cluster, namespace, import, Duration::from_secs(900));
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    let planned = promimport::plan::plan_windows(
        promimport::plan::Window::new(start, end).unwrap(),
        2 * HOUR_MS,
        &[],
    );
    assert!(planned.len() > 100, "ten days in 2h windows");
    assert_eq!(
        (ledger.windows(), ledger.spans()),
        (planned.len() as u64, vec![(start, end)]),
        "{ledger:?}"
    );
    assert!(ledger.all_exact(), "{ledger:?}");
    // `kubectl get jobs -l` finds the import's Jobs: one per window.
    let jobs = cluster.job_uids(namespace, import);
    assert_eq!(
        jobs.into_keys().collect::<Vec<_>>(),
        planned,
        "one Job per window"
    );
    // Every series, timestamp and value.
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 500_000, "ten days of history");
    assert_same_data(&expected, &read_samples(&sink, start, end));

    // The pods ran the image in containers, with the in-cluster configuration only.
    let pods = cluster.kubectl(&[
        "get",
        "pods",
        "-n",
        namespace,
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image} {.status.containerStatuses[0].containerID} {.spec.containers[0].env[*].name}{\"\\n\"}{end}",
    ]);
    let pods: Vec<&str> = pods.lines().collect();
    assert!(!pods.is_empty());
    for pod in &pods {
        assert!(pod.contains("localhost/promimport:"), "{pod}");
        assert!(pod.contains("containerd://"), "run by containerd: {pod}");
        assert!(
            !pod.contains("KUBECONFIG"),
            "in-cluster configuration: {pod}"
        );
    }
    // `kubectl logs` of a worker's Job shows its structured summary.
    let job = cluster
        .kubectl(&[
            "get",
            "jobs",
            "-n",
            namespace,
            "-l",
            &format!("promimport.io/import={import},promimport.io/window"),
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
        .trim()
        .to_string();
    let logs = cluster.kubectl(&["logs", "-n", namespace, &format!("job/{job}")]);
    assert!(
        logs.contains("\"message\":\"worker finished\"") && logs.contains("\"status\":\"Done\""),
        "{logs}"
    );
}
