//! The Helm chart: lint and render (default, incremental-only, a bad value), and on real pods
//! (the project's cluster, scripts/cluster, with the image scripts/image built): the rendered
//! manifests against its API server, `helm install` running a migration between real
//! Prometheus servers, then `helm uninstall` removing all of it, a relative start, the CronJob
//! firing, and Cortex where `CORTEX_BIN` is given.
//!
//! The tests on real pods (`in_cluster_`) are ignored outside scripts/test's real-pod pass,
//! which runs them inside the cluster's network namespace, one at a time (tests/pods.rs says
//! why).

use promimport_test_support as common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Ledger, TestNamespace, cluster};
use common::cortex::{Cortex, opni_certificates};
use common::cortex_stories::CortexLike;
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

/// `helm install RELEASE charts/promimport -n NAMESPACE --set ...` into the test cluster; the
/// install must succeed, and what helm printed (the NOTES) is returned.
fn helm_install(release: &str, namespace: &str, sets: &[String]) -> String {
    let mut args = vec!["install", release, "charts/promimport", "-n", namespace];
    // The image the cluster's containerd holds, as a user points the chart at theirs.
    let image = cluster().image_sets();
    for set in sets.iter().chain(&image) {
        args.extend(["--set", set.as_str()]);
    }
    let (ok, log) = helm(Some(&cluster().admin()), &args);
    assert!(ok, "{log}");
    log
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
        (
            "destination.blocks.url=ftp://bucket",
            "destination.blocks.url: Does not match pattern",
        ),
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
        !ok && log.contains("set destination.url (remote write")
            && log.contains("destination.blocks.url"),
        "{log}"
    );
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_the_committed_manifests_match_the_chart_and_apply_to_a_real_api_server() {
    let out = Command::new(repo().join("scripts/render-manifests"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let cluster = cluster();
    let _namespace = TestNamespace::create(cluster, "manifests");
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
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_helm_install_runs_a_migration_and_helm_uninstall_removes_everything() {
    let cluster = cluster();
    let _namespace = TestNamespace::create(cluster, "helm");
    let dir = temp_dir("chart-history");
    let history = dir.join("history.om");
    write_history(&history, 4, true);
    let source = start_prometheus(
        "chart-src",
        PrometheusOptions {
            history: Some(&history),
            ..PrometheusOptions::default()
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
    let log = helm_install("history", "helm", &sets);
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
    cluster.wait_until_release_gone("helm", Duration::from_secs(60));
}

/// This import's worker Jobs, by the window label each carries, in time order.
fn worker_job_windows(namespace: &str, import: &str) -> Vec<promimport::window::Window> {
    cluster().job_uids(namespace, import).into_keys().collect()
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_helm_install_with_only_the_urls_and_a_relative_start_finishes_exact_with_one_job_per_window()
 {
    let cluster = cluster();
    let _namespace = TestNamespace::create(cluster, "helm-defaults");
    let source = recent_history_source("chart-defaults-src", 30, 2);
    let vm = start_victoria_metrics("chart-defaults-vm", "100y");
    // What a user types: the two URLs and how far back. The window (2h) and the parallelism
    // (4) are the chart's defaults; `now-30h` resolves to a start with milliseconds.
    let sets = [
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", vm.url("/api/v1/write")),
        "start=now-30h".to_string(),
    ];
    helm_install("defaults", "helm-defaults", &sets);
    let ledger = finished("helm-defaults");
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    let planned = promimport::plan::plan_windows(
        promimport::window::Window::new(start, end).unwrap(),
        2 * HOUR_MS,
        &[],
    );
    assert_eq!(
        worker_job_windows("helm-defaults", "rancher-monitoring"),
        planned,
        "one Job per window"
    );
    assert_eq!(
        (ledger.windows(), ledger.spans()),
        (planned.len() as u64, vec![(start, end)]),
        "{ledger:?}"
    );
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 1_000);
    assert_same_in_victoria_metrics_over(&expected, &vm, start - 48 * HOUR_MS, end + HOUR_MS);
}

/// Waits for the chart's import in `namespace` to finish; its ledger.
fn finished(namespace: &str) -> Ledger {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ledger = cluster().ledger(namespace, "rancher-monitoring");
        let state = ledger.as_ref().map_or("", |l| l.state.as_str());
        assert_ne!(state, "failed", "the import failed: {ledger:?}");
        if state == "finished" {
            return ledger.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the chart's import did not finish: {ledger:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary), and runs on real pods"]
fn in_cluster_helm_install_into_cortex_with_the_tenant_lands_exactly() {
    helm_install_into_cortex("helm-cortex", false);
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary), and runs on real pods"]
fn in_cluster_helm_install_into_opnis_cortex_with_client_certificates_from_secrets_lands_exactly() {
    helm_install_into_cortex("helm-opni", true);
}

/// `helm install` with the destination and the tenant set, into a real Cortex; with `opni`, a
/// Cortex as Opni runs it (mutual TLS, a certificate naming only the short Service names) and
/// the CA and client certificate from Secrets named as Opni's.
fn helm_install_into_cortex(namespace: &str, opni: bool) {
    let cluster = cluster();
    let _namespace = TestNamespace::create(cluster, namespace);
    let tls = opni_certificates(namespace);
    let settings: &[(&str, &str)] = if opni {
        &[("CORTEX_TLS_DIR", tls.to_str().unwrap())]
    } else {
        &[]
    };
    let cortex = Cortex::start(namespace, settings);
    let source = recent_history_source(&format!("{namespace}-src"), 6, 1);
    let mut sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", cortex.push_url()),
        "destination.headers.X-Scope-OrgID=c-7xk2p".to_string(),
        "start=now-8h".to_string(),
    ];
    if opni {
        // The Secrets Opni's namespace holds, copied into the import's namespace as a user does.
        let file = |key: &str, f: &str| format!("--from-file={key}={}", tls.join(f).display());
        let (ca, cert, key) = (
            file("ca.crt", "ca.crt"),
            file("tls.crt", "client.crt"),
            file("tls.key", "client.key"),
        );
        for (name, files) in [
            ("cortex-serving-cert-keys", vec![&ca]),
            ("cortex-client-cert-keys", vec![&cert, &key, &ca]),
        ] {
            let mut args = vec!["-n", namespace, "create", "secret", "generic", name];
            args.extend(files.iter().map(|f| f.as_str()));
            cluster.kubectl(&args);
        }
        sets.extend(
            [
                "destination.caSecret.name=cortex-serving-cert-keys",
                "destination.caSecret.key=ca.crt",
                "destination.clientCertSecret.name=cortex-client-cert-keys",
                "destination.tlsServerName=cortex-distributor",
            ]
            .map(String::from),
        );
    }
    helm_install("cortex", namespace, &sets);
    let ledger = finished(namespace);
    assert!(ledger.all_exact(), "{ledger:?}");
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 10_000, "the range holds history");
    let reader = if opni {
        mtls_client(&tls)
    } else {
        reqwest::blocking::Client::new()
    };
    assert_same_data(
        &expected,
        &cortex.read_samples_with(&reader, "c-7xk2p", start, end),
    );
    if opni {
        // The Jobs carry references to the Secrets, never a certificate or key.
        let jobs = cluster.kubectl(&["-n", namespace, "get", "jobs", "-o", "yaml"]);
        let key_pem = std::fs::read_to_string(tls.join("client.key")).unwrap();
        let key_line = key_pem.lines().nth(1).unwrap();
        assert!(!jobs.contains(key_line), "a key in a Job spec");
        assert!(jobs.contains("cortex-client-cert-keys"), "{jobs}");
    }
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary), and runs on real pods"]
fn in_cluster_helm_install_with_destination_blocks_uploads_one_block_per_window_into_cortexs_s3_bucket_exactly()
 {
    let namespace = "helm-blocks";
    let cluster = cluster();
    let _namespace = TestNamespace::create(cluster, namespace);
    let s3 = start_s3(&format!("{namespace}-s3"), "cortex-blocks");
    let endpoint = s3.url("");
    // Opni's default: no out-of-order window; remote write of this history would be refused.
    let cortex = Cortex::start_on_s3(
        namespace,
        &[("CORTEX_OOO_WINDOW", "0s"), ("CORTEX_SYNC_INTERVAL", "10s")],
        endpoint.trim_start_matches("http://"),
        "cortex-blocks",
    );
    let source = recent_history_source(&format!("{namespace}-src"), 6, 1);
    // The bucket's credentials as a user keeps them: a Secret of the store's usual variables.
    let literal = |k: &str, v: &str| format!("--from-literal={k}={v}");
    let secret = [
        literal("AWS_ENDPOINT", &endpoint),
        literal("AWS_ALLOW_HTTP", "true"),
        literal("AWS_REGION", "us-east-1"),
        literal("AWS_ACCESS_KEY_ID", "x"),
        literal("AWS_SECRET_ACCESS_KEY", "bucket-secret-value"),
    ];
    let mut args = vec![
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "cortex-bucket",
    ];
    args.extend(secret.iter().map(String::as_str));
    cluster.kubectl(&args);
    let sets = [
        format!("source.url={}", source.url("/api/v1/read")),
        "destination.blocks.url=s3://cortex-blocks".to_string(),
        "destination.blocks.tenant=c-7xk2p".to_string(),
        "destination.blocks.credentialsSecret=cortex-bucket".to_string(),
        "start=now-8h".to_string(),
    ];
    helm_install("blocks", namespace, &sets);
    let ledger = finished(namespace);
    assert!(ledger.all_exact(), "{ledger:?}");
    let jobs = worker_job_windows(namespace, "rancher-monitoring");
    assert_eq!(jobs.len() as u64, ledger.windows(), "one Job per window");
    let listing = reqwest::blocking::get(s3.url("/cortex-blocks?list-type=2&prefix=c-7xk2p/"))
        .unwrap()
        .text()
        .unwrap();
    let uploaded = listing.matches("/meta.json</Key>").count() as u64;
    let recorded: u64 = ledger
        .records
        .iter()
        .map(|(_, w)| {
            (w["blocks"].as_array().into_iter().flatten())
                .filter(|b| b["id"].is_string())
                .count() as u64
        })
        .chain(
            ledger
                .ranges
                .iter()
                .map(|r| r["blocks"].as_u64().unwrap_or(0)),
        )
        .sum();
    assert!(uploaded >= 3, "{listing}");
    assert_eq!(
        recorded, uploaded,
        "the ledger names every block: {ledger:?}"
    );
    let job_specs = cluster.kubectl(&["-n", namespace, "get", "jobs", "-o", "yaml"]);
    assert!(
        !job_specs.contains("bucket-secret-value"),
        "a credential in a Job spec"
    );
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 10_000, "the range holds history");
    // Served after Cortex's next sync of its bucket (10 s here).
    let held = cortex.read_samples_once_synced("c-7xk2p", start, end, total_samples(&expected));
    assert_same_data(&expected, &held);
}

/// Remote-writes a sample of a few live series every second at the current time, as a
/// scraping Prometheus would, until dropped.
struct LiveWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveWriter {
    fn start(url: String) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0.0;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let now = promimport::timespec::now_ms();
                n += 1.0;
                for instance in ["a", "b", "c"] {
                    remote_write(
                        &url,
                        &[(
                            &[("__name__", "live_requests_total"), ("instance", instance)],
                            vec![(now, n)],
                        )],
                    );
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        LiveWriter {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LiveWriter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The scheduler Jobs the CronJob created that succeeded.
fn succeeded_cron_runs(namespace: &str) -> usize {
    let json: serde_json::Value =
        serde_json::from_str(&cluster().kubectl(&["get", "jobs", "-n", namespace, "-o", "json"]))
            .unwrap();
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["metadata"]["ownerReferences"][0]["kind"] == "CronJob")
        .filter(|j| j["status"]["succeeded"].as_i64() == Some(1))
        .count()
}

/// "caught up to TIME" in the ledger's message: where the last incremental run stopped.
fn caught_up(ledger: &Ledger) -> Option<i64> {
    let time = ledger.message.strip_prefix("caught up to ")?;
    promimport::timespec::parse_time("ledger", time, 0).ok()
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_the_charts_cronjob_fires_twice_and_each_run_imports_only_what_is_new() {
    let cluster = cluster();
    let namespace = "helm-cron";
    let _namespace = TestNamespace::create(cluster, namespace);
    let source = recent_history_source("chart-cron-src", 1, 0);
    let live = LiveWriter::start(source.url("/api/v1/write"));
    let vm = start_victoria_metrics("chart-cron-vm", "100y");
    let sets = [
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", vm.url("/api/v1/write")),
        // Each 1m window is a pod, and the node runs three at once (500m each of 2 CPUs).
        "start=now-6m".to_string(),
        "window=1m".to_string(),
        "once.enabled=false".to_string(),
        "incremental.enabled=true".to_string(),
        "incremental.schedule=* * * * *".to_string(),
        "incremental.lag=1s".to_string(),
    ];
    helm_install("cron", namespace, &sets);

    // The CronJob controller fires at the next whole minute, then every minute (give or take
    // its 10 s sync). Two runs in the same minute may catch up to the same window boundary, so
    // this waits for runs until one has gone further than the first. Alone it takes under two
    // minutes; after the other Kubernetes tests in the same cluster, once over five (the
    // failure lists the CronJob's Jobs and pods to say why).
    let mut runs: Vec<(i64, Vec<promimport::window::Window>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(480);
    while runs.len() < 2 || runs.last().unwrap().0 == runs[0].0 {
        assert!(
            Instant::now() < deadline,
            "the CronJob did not fire twice with new data: {runs:?}\n{}\n{:?}",
            cluster.kubectl(&["get", "cronjobs,jobs,pods", "-n", namespace, "-o", "wide"]),
            cluster.ledger(namespace, "rancher-monitoring"),
        );
        std::thread::sleep(Duration::from_millis(500));
        if succeeded_cron_runs(namespace) <= runs.len() {
            continue;
        }
        let ledger = cluster.ledger(namespace, "rancher-monitoring").unwrap();
        let end =
            caught_up(&ledger).unwrap_or_else(|| panic!("no 'caught up' message: {ledger:?}"));
        runs.push((end, worker_job_windows(namespace, "rancher-monitoring")));
    }
    cluster.kubectl(&[
        "patch",
        "cronjob",
        "cron-promimport-incremental",
        "-n",
        namespace,
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    drop(live);

    let start = cluster
        .ledger(namespace, "rancher-monitoring")
        .unwrap()
        .range_start_ms;
    // One Job per window over everything imported, and each run's Jobs are the earlier runs'
    // plus new ones after where the run before stopped: it imported only what was new.
    let planned = |end: i64| {
        promimport::plan::plan_windows(
            promimport::window::Window::new(start, end).unwrap(),
            60_000,
            &[],
        )
    };
    for (end, jobs) in &runs {
        assert_eq!(jobs, &planned(*end));
    }
    for pair in runs.windows(2) {
        let ((before_end, before), (_, after)) = (&pair[0], &pair[1]);
        assert_eq!(&after[..before.len()], &before[..]);
        assert!(
            after[before.len()..]
                .iter()
                .all(|w| w.start_ms >= *before_end)
        );
    }
    let second_end = &runs.last().unwrap().0;
    // A later run may have landed more since; what the second run covered is compared.
    let expected = read_samples(&source, start, *second_end);
    assert!(
        expected.keys().any(|k| k.contains("live_requests_total")),
        "live samples were imported"
    );
    let landed = export(&vm, start - HOUR_MS, *second_end);
    let landed: std::collections::BTreeMap<String, Vec<(i64, Option<f64>)>> = landed
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.into_iter()
                    .filter(|s| s.0 < *second_end)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_eq!(
        landed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, samples) in &expected {
        let want: Vec<(i64, Option<f64>)> = samples
            .iter()
            .filter(|s| !f64::from_bits(s.1).is_nan())
            .map(|s| (s.0, Some(f64::from_bits(s.1))))
            .collect();
        let got: Vec<(i64, Option<f64>)> = landed[key]
            .iter()
            .copied()
            .filter(|s| s.1.is_some_and(|v| !v.is_nan()))
            .collect();
        assert_eq!(got.len(), want.len(), "{key}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{key}");
            let (g, w) = (g.1.unwrap(), w.1.unwrap());
            assert!(
                (g - w).abs() <= w.abs() * 1e-11,
                "{key}: {w} expected, {g} found"
            );
        }
    }
}
