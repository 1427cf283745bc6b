//! The Helm chart: lint and render (default, incremental-only, a bad value), the rendered
//! manifests against a real API server, and `helm install` into a real control plane running a
//! migration between real Prometheus servers, then `helm uninstall` removing all of it.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::cluster;
use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Helm through scripts/helm, which installs it when missing.
fn helm(kubeconfig: Option<&std::path::Path>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(repo().join("scripts/helm"));
    command.args(args).current_dir(repo());
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let out = command.output().expect("scripts/helm runs");
    (out.status.success(), text(&out))
}

const DEST: &str = "destination.url=http://cortex.example:8080/api/v1/push";

#[test]
fn the_chart_lints_strictly_and_renders_each_mode() {
    let (ok, log) = helm(
        None,
        &["lint", "--strict", "charts/promimport", "--set", DEST],
    );
    assert!(ok, "{log}");

    let (ok, once) = helm(None, &["template", "t", "charts/promimport", "--set", DEST]);
    assert!(ok, "{once}");
    assert!(
        once.contains("kind: Job") && !once.contains("kind: CronJob"),
        "{once}"
    );
    assert!(once.contains(
        "url: http://rancher-monitoring-prometheus.cattle-monitoring-system.svc:9090/api/v1/read"
    ));
    assert!(once.contains("start: now-10d"));
    // The scheduler's pod is hardened like the workers' (whose spec promimport writes itself).
    for hardening in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "- ALL",
        "type: RuntimeDefault",
    ] {
        assert!(once.contains(hardening), "{hardening}: {once}");
    }

    let (ok, cron) = helm(
        None,
        &[
            "template",
            "t",
            "charts/promimport",
            "--set",
            DEST,
            "--set",
            "once.enabled=false",
            "--set",
            "incremental.enabled=true",
        ],
    );
    assert!(ok, "{cron}");
    assert!(
        cron.contains("kind: CronJob") && cron.contains("apiVersion: batch/v1beta1"),
        "{cron}"
    );
    assert!(cron.contains("concurrencyPolicy: Forbid"));
    assert!(!cron.contains("-schedule-"), "no one-off Job: {cron}");
    let (ok, cron) = helm(
        None,
        &[
            "template",
            "t",
            "charts/promimport",
            "--set",
            DEST,
            "--set",
            "incremental.enabled=true",
            "--api-versions",
            "batch/v1/CronJob",
        ],
    );
    assert!(
        ok && cron.contains("apiVersion: batch/v1\nkind: CronJob"),
        "{cron}"
    );
}

#[test]
fn a_typo_or_a_bad_value_fails_with_the_field_named() {
    for (set, needle) in [
        (
            "paralellism=3",
            "Additional property paralellism is not allowed",
        ),
        (
            "parallelism=0",
            "parallelism: Must be greater than or equal to 1",
        ),
        ("window=two-hours", "window: Does not match pattern"),
        ("name=Rancher_Import", "name: Does not match pattern"),
    ] {
        let (ok, log) = helm(
            None,
            &[
                "template",
                "t",
                "charts/promimport",
                "--set",
                DEST,
                "--set",
                set,
            ],
        );
        assert!(!ok, "{set} was accepted");
        assert!(log.contains(needle), "{set}: {log}");
    }
    let (ok, log) = helm(None, &["template", "t", "charts/promimport"]);
    assert!(
        !ok && log.contains("destination.url: Does not match pattern"),
        "{log}"
    );
}

#[test]
fn the_committed_manifests_match_the_chart_and_apply_to_a_real_api_server() {
    let out = Command::new(repo().join("scripts/render-manifests"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let cluster = cluster();
    cluster.kubectl(&["create", "namespace", "manifests"]);
    let applied = cluster.kubectl(&[
        "apply",
        "--dry-run=server",
        "-n",
        "manifests",
        "-f",
        "manifests/rbac.yaml",
        "-f",
        "manifests/import.yaml",
    ]);
    assert!(
        applied.contains("job.batch/promimport-schedule-1 created (server dry run)"),
        "{applied}"
    );
}

#[test]
fn helm_install_runs_a_migration_and_helm_uninstall_removes_everything() {
    let cluster = cluster();
    cluster.kubectl(&["create", "namespace", "helm"]);
    let dir = temp_dir("chart-history");
    let history = dir.join("history.om");
    write_history(&history, 4, true);
    let source = start_prometheus(
        "chart-src",
        PrometheusOptions {
            receiver: false,
            out_of_order_window: None,
            max_bytes_in_frame: None,
            history: Some(&history),
        },
    );
    let sink = prometheus_sink("chart-sink");
    let admin = cluster.admin();
    let sets = [
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink.url("/api/v1/write")),
        format!("start={}", rfc3339(BASE_MS)),
        format!("end={}", rfc3339(BASE_MS + 4 * HOUR_MS)),
        "window=1h".to_string(),
        // One window at a time keeps a Prometheus sink's appends in order (see prometheus_sink).
        "parallelism=1".to_string(),
    ];
    let mut args = vec!["install", "history", "charts/promimport", "-n", "helm"];
    for set in &sets {
        args.extend(["--set", set.as_str()]);
    }
    let (ok, log) = helm(Some(&admin), &args);
    assert!(ok, "{log}");
    assert!(
        log.contains("promimport status rancher-monitoring -n helm --watch"),
        "NOTES tell how to watch: {log}"
    );

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let state = cluster.kubectl(&[
            "get",
            "configmap",
            "promimport-rancher-monitoring",
            "-n",
            "helm",
            "-o",
            "jsonpath={.data.state}",
            "--ignore-not-found",
        ]);
        if state == "finished" {
            break;
        }
        assert!(
            state != "failed",
            "the import failed: {}",
            cluster.kubectl(&[
                "get",
                "configmap",
                "promimport-rancher-monitoring",
                "-n",
                "helm",
                "-o",
                "yaml"
            ])
        );
        assert!(
            Instant::now() < deadline,
            "the chart's import did not finish (state {state:?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (from, to) = history_range();
    assert_same_data(
        &read_samples(&source, BASE_MS, BASE_MS + 4 * HOUR_MS),
        &read_samples(&sink, from, to),
    );
    let jobs = cluster.kubectl(&[
        "get",
        "jobs",
        "-n",
        "helm",
        "-l",
        "promimport.io/import=rancher-monitoring",
        "-o",
        "name",
    ]);
    assert_eq!(jobs.lines().count(), 4, "{jobs}");

    let (ok, log) = helm(Some(&admin), &["uninstall", "history", "-n", "helm"]);
    assert!(ok, "{log}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = cluster.kubectl(&[
            "get",
            "jobs,pods,configmaps,serviceaccounts,roles,rolebindings,secrets",
            "-n",
            "helm",
            "-o",
            "name",
        ]);
        // The namespace's own default account, its token and the API server's root CA stay.
        let ours: Vec<&str> = left
            .lines()
            .filter(|l| !l.contains("/default") && !l.contains("kube-root-ca"))
            .collect();
        if ours.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after helm uninstall: {ours:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
