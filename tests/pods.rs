//! The chart on real pods, as a user installs it: the image that scripts/image built, run in
//! containers by a real kubelet (containerd, runc) in the project's own cluster
//! (scripts/cluster), with the in-cluster configuration (the service account token the kubelet
//! mounts, the `kubernetes` Service through kube-proxy), and the chart's defaults.
//!
//! scripts/test runs this binary inside the cluster's network namespace with
//! `PROMTEST_CLUSTER` set (and the servers listening on the node's address, which pods
//! reach), one test at a time: the node has 2 CPUs and a worker requests 500m, so one import
//! holds the node. Elsewhere its tests are ignored, never passed.

use promimport_test_support as common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Ledger, TestNamespace, cluster};
use common::cortex::opni_certificates;
use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `helm VERB RELEASE charts/promimport -n NAMESPACE MORE... --set SETS...` into the cluster;
/// it must succeed.
fn helm(
    cluster: &Cluster,
    verb: &str,
    release: &str,
    namespace: &str,
    more: &[&str],
    sets: &[String],
) {
    let mut command = Command::new(repo().join("scripts/helm"));
    command
        .args([verb, release, "charts/promimport", "-n", namespace])
        .args(more)
        .current_dir(repo())
        .env("KUBECONFIG", cluster.admin());
    for set in sets {
        command.args(["--set", set]);
    }
    let out = command.output().expect("scripts/helm runs");
    assert!(out.status.success(), "{}", text(&out));
}

/// `helm install history` with `sets` and the image the cluster holds, as a user points the
/// chart at theirs.
fn helm_install(cluster: &Cluster, namespace: &str, sets: &[String]) {
    let mut sets = sets.to_vec();
    sets.extend(cluster.image_sets());
    helm(cluster, "install", "history", namespace, &[], &sets);
}

/// The worker Jobs of the chart's import in `namespace`: as kubectl prints them (JSON), and
/// each one's pod spec.
fn worker_pod_specs(cluster: &Cluster, namespace: &str) -> (String, Vec<serde_json::Value>) {
    let jobs = cluster.kubectl(&[
        "-n",
        namespace,
        "get",
        "jobs",
        "-l",
        "promimport.io/import=rancher-monitoring",
        "-o",
        "json",
    ]);
    let parsed: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    let pods = parsed["items"].as_array().unwrap().iter();
    let pods = pods
        .map(|job| job["spec"]["template"]["spec"].clone())
        .collect();
    (jobs, pods)
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
fn in_cluster_helm_install_with_the_charts_defaults_migrates_ten_days_exactly() {
    let cluster = cluster();
    let namespace = "pods-defaults";
    let _namespace = TestNamespace::create(cluster, namespace);
    // rancher-monitoring keeps 10 days: the chart's default start, now-10d, takes all of it.
    let source = recent_history_source("pods-src", 10 * 24, 1);
    let sink = prometheus_sink("pods-sink");
    // What a user sets: the image, the source and the destination. Everything else (start,
    // window, parallelism, resources, security context) is the chart's default.
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink.url("/api/v1/write")),
    ];
    helm_install(cluster, namespace, &sets);
    let import = "rancher-monitoring";
    let ledger = finished(cluster, namespace, import, Duration::from_secs(900));
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    let planned = promimport::plan::plan_windows(
        promimport::window::Window::new(start, end).unwrap(),
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

/// The names of the import's worker pods (all, or only those running).
fn worker_pods(cluster: &Cluster, namespace: &str, import: &str, running: bool) -> Vec<String> {
    let selector = format!("promimport.io/import={import},promimport.io/window");
    let mut args = vec![
        "get", "pods", "-n", namespace, "-l", &selector, "-o", "name",
    ];
    if running {
        args.extend(["--field-selector", "status.phase=Running"]);
    }
    cluster.kubectl(&args).lines().map(str::to_string).collect()
}

/// Waits until the import in `namespace` is in `state`; its ledger.
fn in_state(
    cluster: &Cluster,
    namespace: &str,
    import: &str,
    state: &str,
    within: Duration,
) -> Ledger {
    let deadline = Instant::now() + within;
    loop {
        if let Some(ledger) = cluster.ledger(namespace, import)
            && ledger.state == state
        {
            return ledger;
        }
        assert!(
            Instant::now() < deadline,
            "the import is not {state} after {within:?}: {:?}\n{}",
            cluster.ledger(namespace, import),
            cluster.kubectl(&["get", "pods", "-n", namespace, "-o", "wide"])
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `promimport ARGS` with the cluster's admin kubeconfig, as a user runs it.
fn promimport_in(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    Command::new(promimport_bin())
        .args(args)
        .env("KUBECONFIG", cluster.admin())
        .output()
        .expect("promimport runs")
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_a_worker_over_its_memory_limit_is_named_never_done_and_more_memory_lands_it_exactly()
{
    let cluster = cluster();
    let namespace = "pods-oom";
    let _namespace = TestNamespace::create(cluster, namespace);
    let source = wide_source("pods-oom-src", 3000);
    let sink = prometheus_sink("pods-oom-sink");
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink.url("/api/v1/write")),
        "start=now-4h".to_string(),
        // A worker that holds a whole window in one request (1.44M samples, tens of MB) under a
        // limit far too low: the kubelet kills it at the limit. (With the default batches the
        // same window fits in 8Mi: the kubelet enforces the limit, checked by hand here, and a
        // worker streams.)
        "worker.batchSamples=1500000".to_string(),
        "worker.resources.limits.memory=8Mi".to_string(),
        "worker.resources.requests.memory=8Mi".to_string(),
        "worker.backoffLimit=0".to_string(),
    ];
    helm_install(cluster, namespace, &sets);
    let import = "rancher-monitoring";
    let ledger = in_state(
        cluster,
        namespace,
        import,
        "failed",
        Duration::from_secs(600),
    );
    let errors: Vec<String> = ledger
        .records
        .iter()
        .map(|(_, r)| {
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(!errors.is_empty(), "{ledger:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.contains("OOMKilled at its memory limit of 8Mi")
                && e.contains("worker.resources.limits.memory (e.g. 16Mi)")),
        "every window names the limit and the value to raise: {errors:?}"
    );
    assert!(
        ledger.records.iter().all(|(_, r)| r["status"] != "done"),
        "no window killed is called done: {ledger:?}"
    );
    let status = promimport_in(cluster, &["status", import, "-n", namespace]);
    assert!(text(&status).contains("OOMKilled"), "{}", text(&status));

    // The fix as the message gives it: the chart upgraded with more memory. Its new scheduler
    // finds the failed import with a changed spec and runs the failed windows again; no
    // `resume` is needed (and one before the upgrade would let the old revision's scheduler,
    // restarting under its backoff limit, run them at 8Mi again).
    let more_memory = [
        "worker.resources.limits.memory=256Mi".to_string(),
        "worker.resources.requests.memory=64Mi".to_string(),
    ];
    helm(
        cluster,
        "upgrade",
        "history",
        namespace,
        &["--reuse-values"],
        &more_memory,
    );
    // The ledger says failed until the new revision's scheduler pod has started and reopened
    // the failed windows.
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster
        .ledger(namespace, import)
        .is_some_and(|l| l.state == "failed")
    {
        assert!(
            Instant::now() < deadline,
            "the upgraded scheduler did not run the failed windows again: {:?}\n{}",
            cluster.ledger(namespace, import),
            cluster.kubectl(&["get", "pods", "-n", namespace, "-o", "wide"])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ledger = finished(cluster, namespace, import, Duration::from_secs(600));
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    assert!(ledger.all_exact(), "{ledger:?}");
    let expected = read_samples(&source, start, end);
    assert_eq!(total_samples(&expected), 3000 * 480);
    assert_same_data(&expected, &read_samples(&sink, start, end));
}

/// A source of `series` series (kube-state-metrics' shape: one gauge per pod) over the 2 hours
/// that ended an hour ago, 15 s apart.
fn wide_source(name: &str, series: usize) -> Server {
    use std::io::Write;
    let dir = temp_dir(&format!("{name}-history"));
    let path = dir.join("history.om");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let end = promimport::timespec::now_ms() / 1000 / 60 * 60 - 3600;
    writeln!(out, "# TYPE kube_pod_status_ready gauge").unwrap();
    for i in 0..series {
        let labels = format!(
            "namespace=\"ns{}\",pod=\"pod-{i}\",condition=\"true\"",
            i % 40
        );
        for t in (end - 2 * 3600..end).step_by(15) {
            writeln!(out, "kube_pod_status_ready{{{labels}}} {} {t}", i % 2).unwrap();
        }
    }
    writeln!(out, "# EOF").unwrap();
    drop(out);
    source_with_history(name, &path)
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_stop_reaches_the_workers_as_sigterm_within_the_grace_period_and_resume_is_exact() {
    let cluster = cluster();
    let namespace = "pods-stop";
    let _namespace = TestNamespace::create(cluster, namespace);
    let source = recent_history_source("pods-stop-src", 24, 1);
    let sink = prometheus_sink("pods-stop-sink");
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink.url("/api/v1/write")),
        "start=now-26h".to_string(),
        // Slow enough that a window is still being written when `stop` comes: requests are
        // spaced by their size over the pace, and a window's first goes at once, so small
        // batches (a window of one batch would not wait at all). A worker seen Running for a
        // few seconds only may never be: the kubelet's status updates are rate-limited, and a
        // pod can go from Pending to Succeeded in the API.
        "worker.maxSamplesPerSecond=500".to_string(),
        "worker.batchSamples=250".to_string(),
    ];
    helm_install(cluster, namespace, &sets);
    let import = "rancher-monitoring";
    let workers = |running: bool| worker_pods(cluster, namespace, import, running);
    let deadline = Instant::now() + Duration::from_secs(300);
    while workers(true).is_empty() {
        assert!(Instant::now() < deadline, "no worker ran");
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = promimport_in(cluster, &["stop", import, "-n", namespace]);
    assert!(out.status.success(), "{}", text(&out));
    // The kubelet sends SIGTERM; a worker that ignored it would run on until it is killed at
    // the end of the pod's 30 s grace period. promimport's ends the window unrecorded at once,
    // and its pod goes (the pods of windows finished before stay, Succeeded).
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(25);
    while !workers(true).is_empty() {
        assert!(
            Instant::now() < deadline,
            "worker pods still running {:?} after stop: {:?}",
            stopped.elapsed(),
            workers(true)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ledger = in_state(
        cluster,
        namespace,
        import,
        "stopped",
        Duration::from_secs(10),
    );
    assert!(ledger.windows() < 14, "stopped part way: {ledger:?}");
    let out = promimport_in(cluster, &["resume", import, "-n", namespace]);
    assert!(out.status.success(), "{}", text(&out));
    let ledger = finished(cluster, namespace, import, Duration::from_secs(600));
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    let planned = promimport::plan::plan_windows(
        promimport::window::Window::new(start, end).unwrap(),
        2 * HOUR_MS,
        &[],
    );
    assert_eq!(
        (ledger.windows(), ledger.spans()),
        (planned.len() as u64, vec![(start, end)]),
        "every window once: {ledger:?}"
    );
    assert_same_data(
        &read_samples(&source, start, end),
        &read_samples(&sink, start, end),
    );
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_helm_uninstall_while_workers_run_removes_every_object_and_pod() {
    let cluster = cluster();
    let namespace = "pods-uninstall";
    let _namespace = TestNamespace::create(cluster, namespace);
    let source = recent_history_source("pods-uninstall-src", 8, 1);
    let sink = prometheus_sink("pods-uninstall-sink");
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink.url("/api/v1/write")),
        "start=now-10h".to_string(),
        // Slow enough that workers are still writing when the release goes (see the stop
        // test).
        "worker.maxSamplesPerSecond=500".to_string(),
        "worker.batchSamples=250".to_string(),
    ];
    helm_install(cluster, namespace, &sets);
    let import = "rancher-monitoring";
    let deadline = Instant::now() + Duration::from_secs(300);
    while worker_pods(cluster, namespace, import, true).is_empty() {
        assert!(Instant::now() < deadline, "no worker ran");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut uninstall = Command::new(repo().join("scripts/helm"));
    uninstall
        .args(["uninstall", "history", "-n", namespace])
        .current_dir(repo())
        .env("KUBECONFIG", cluster.admin());
    let out = uninstall.output().expect("scripts/helm runs");
    assert!(out.status.success(), "{}", text(&out));
    // The spec ConfigMap owns the ledger, which owns the Jobs, which own their pods: the
    // garbage collector removes them all, and a running worker gets its SIGTERM and goes
    // within the grace period.
    cluster.wait_until_release_gone(namespace, Duration::from_secs(90));
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_blocks_into_a_persistent_volume_shared_by_the_jobs_are_served_exactly_by_prometheus()
{
    use std::os::unix::fs::PermissionsExt;
    let cluster = cluster();
    let namespace = "pods-blocks";
    let _namespace = TestNamespace::create(cluster, namespace);
    let source = recent_history_source("pods-blocks-src", 12, 1);
    let data = temp_dir("pods-blocks-data");
    // The workers run as user 65532 and write the blocks; the read-only root filesystem is
    // theirs, the volume is where they may write (and stage each block before its rename).
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    // A PersistentVolume on the node's directory and a claim that the controller-manager
    // binds to it, as a user provides one; the chart names only the claim.
    let volume = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: pods-blocks}}\nspec:\n  \
         capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  storageClassName: manual\n  \
         claimRef: {{namespace: {namespace}, name: blocks}}\n  \
         hostPath: {{path: \"{}\", type: Directory}}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: blocks, namespace: {namespace}}}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: manual\n  volumeName: pods-blocks\n  \
         resources: {{requests: {{storage: 1Gi}}}}\n",
        data.display()
    );
    let manifest = data.with_extension("yaml");
    std::fs::write(&manifest, volume).unwrap();
    cluster.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.kubectl(&[
        "get",
        "pvc",
        "blocks",
        "-n",
        namespace,
        "-o",
        "jsonpath={.status.phase}",
    ]) != "Bound"
    {
        assert!(Instant::now() < deadline, "the claim was not bound");
        std::thread::sleep(Duration::from_millis(500));
    }
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        "destination.blocks.url=file:///blocks".to_string(),
        "destination.blocks.volume.persistentVolumeClaim.claimName=blocks".to_string(),
        "start=now-14h".to_string(),
    ];
    helm_install(cluster, namespace, &sets);
    let import = "rancher-monitoring";
    let ledger = finished(cluster, namespace, import, Duration::from_secs(600));
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    assert!(ledger.all_exact(), "{ledger:?}");
    // One block per 2h window that holds samples: 12 hours of history, so 6 or 7.
    let blocks: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 26 && n.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    assert!((6..=7).contains(&blocks.len()), "{blocks:?}");
    for block in &blocks {
        assert!(data.join(block).join("meta.json").is_file(), "{block}");
    }
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 40_000, "the range holds history");
    let served = start_prometheus_on("pods-blocks-served", &data, &[]);
    assert_same_data(&expected, &read_samples(&served, start, end));
    // The volume outlives the namespace (it is the cluster's); it goes once its claim has.
    cluster.kubectl(&["delete", "pv", "pods-blocks", "--wait=false"]);
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_mutual_tls_from_secret_volumes_into_a_sink_that_requires_a_client_certificate_lands_exactly()
 {
    let cluster = cluster();
    let namespace = "pods-mtls";
    let _namespace = TestNamespace::create(cluster, namespace);
    // Certificates as Opni issues them; the sink, a Prometheus, takes no request without a
    // client certificate its CA signed, and its own names only Opni's short Service names.
    let tls = opni_certificates(namespace);
    let web = tls.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\n  \
             client_ca_file: {0}/ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
            tls.display()
        ),
    )
    .unwrap();
    let client = mtls_client(&tls);
    let sink = start_prometheus_with(
        "pods-mtls-sink",
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("3650d"),
            ready_client: Some(&client),
            ..PrometheusOptions::default()
        },
        &[&format!("--web.config.file={}", web.display())],
    );
    let sink_url = |path: &str| format!("https://{}:{}{path}", test_host(), sink.port);
    let refused = reqwest::blocking::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(sink_url("/-/ready"))
        .send();
    assert!(refused.is_err(), "no request without a client certificate");
    let source = recent_history_source("pods-mtls-src", 6, 1);
    // The Secrets as Opni's namespace holds them, copied into the import's as a user does.
    let file = |key: &str, f: &str| format!("--from-file={key}={}", tls.join(f).display());
    for (name, files) in [
        ("cortex-serving-cert-keys", vec![file("ca.crt", "ca.crt")]),
        (
            "cortex-client-cert-keys",
            vec![file("tls.crt", "client.crt"), file("tls.key", "client.key")],
        ),
    ] {
        let mut args = vec!["-n", namespace, "create", "secret", "generic", name];
        args.extend(files.iter().map(String::as_str));
        cluster.kubectl(&args);
    }
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink_url("/api/v1/write")),
        "destination.caSecret.name=cortex-serving-cert-keys".to_string(),
        "destination.caSecret.key=ca.crt".to_string(),
        "destination.clientCertSecret.name=cortex-client-cert-keys".to_string(),
        "destination.tlsServerName=cortex-distributor".to_string(),
        "start=now-8h".to_string(),
    ];
    helm_install(cluster, namespace, &sets);
    let ledger = finished(
        cluster,
        namespace,
        "rancher-monitoring",
        Duration::from_secs(600),
    );
    assert!(ledger.all_exact(), "{ledger:?}");
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 10_000, "the range holds history");
    let (_, body) = raw_read_with(
        &client,
        &sink_url("/api/v1/read"),
        &[],
        start,
        end,
        promimport::proto::read_request::ResponseType::Samples,
    );
    assert_same_data(&expected, &decode_samples(&body, start, end));
    // The workers read the certificates from read-only Secret volumes: no certificate or key
    // is in a Job, and none in a worker's environment.
    let jobs = cluster.kubectl(&["-n", namespace, "get", "jobs", "-o", "json"]);
    let (_, workers) = worker_pod_specs(cluster, namespace);
    let key_pem = std::fs::read_to_string(tls.join("client.key")).unwrap();
    assert!(
        !jobs.contains(key_pem.lines().nth(1).unwrap()),
        "a key in a Job"
    );
    assert!(!workers.is_empty());
    for pod in &workers {
        let secrets: Vec<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["secret"]["secretName"].as_str())
            .collect();
        assert_eq!(
            secrets,
            ["cortex-serving-cert-keys", "cortex-client-cert-keys"],
            "{pod}"
        );
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        assert!(mounts.iter().all(|m| m["readOnly"] == true), "{pod}");
    }
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_a_2h_window_of_50k_series_stays_within_the_charts_default_memory_limit_and_lands_exactly()
 {
    let cluster = cluster();
    let namespace = "pods-50k";
    let _namespace = TestNamespace::create(cluster, namespace);
    // The benchmark's shape (node-exporter and kube-state-metrics series, a tenth native
    // histograms) at 1 613 hosts: 50 003 series, 30 s apart, over one 2h window that ended at
    // the last even hour.
    let native = ["--enable-feature=native-histograms"];
    let receiver = || PrometheusOptions {
        receiver: true,
        out_of_order_window: Some("3650d"),
        ..PrometheusOptions::default()
    };
    let source = start_prometheus_with("pods-50k-src", receiver(), &native);
    let sink = start_prometheus_with("pods-50k-sink", receiver(), &native);
    let end_s = promimport::timespec::now_ms() / 1000 / 7_200 * 7_200;
    let out = Command::new(env!("CARGO_BIN_EXE_promimport-bench"))
        .args(["generate", "--url", &source.url("/api/v1/write")])
        .args([
            "--hosts",
            "1613",
            "--hours",
            "2",
            "--end",
            &end_s.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(generated["series"], 50_003, "{generated}");
    let (start, end) = ((end_s - 7_200) * 1000, end_s * 1000);
    // Only the source, the destination, the range and the image: the window (2h), the
    // resources (256Mi) and everything else are the chart's defaults.
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        format!("destination.url={}", sink.url("/api/v1/write")),
        format!("start={}", rfc3339(start)),
        format!("end={}", rfc3339(end)),
    ];
    helm_install(cluster, namespace, &sets);
    let ledger = finished(
        cluster,
        namespace,
        "rancher-monitoring",
        Duration::from_secs(900),
    );
    assert!(ledger.all_exact(), "{ledger:?}");
    assert_eq!(ledger.windows(), 1, "one 2h window: {ledger:?}");
    // The window's one pod ran to the end: not OOMKilled, never retried.
    let pods = cluster.kubectl(&[
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        "promimport.io/window",
        "-o",
        "jsonpath={range .items[*]}{.status.containerStatuses[0].state.terminated.reason} {.spec.containers[0].resources.limits.memory}{\"\\n\"}{end}",
    ]);
    assert_eq!(pods.trim(), "Completed 256Mi", "{pods}");
    // Its summary in `kubectl logs` says how close it came: its peak resident memory.
    let logs = cluster.kubectl(&["logs", "-n", namespace, "-l", "promimport.io/window"]);
    let summary: serde_json::Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|l: &serde_json::Value| l["message"] == "worker finished")
        .unwrap_or_else(|| panic!("no summary in the worker's log: {logs}"));
    let peak = summary["peak_memory_mib"].as_u64().unwrap();
    eprintln!("a 2h window of 50 003 series: the worker's peak memory {peak} MiB of 256");
    assert!(peak < 256, "{summary}");
    let (floats, histograms) = read_chunked(&source.url("/api/v1/read"), &[], start, end);
    assert_eq!(
        total_samples(&floats) + histograms.values().map(Vec::len).sum::<usize>(),
        generated["samples"].as_u64().unwrap() as usize,
        "the source holds what was generated"
    );
    let (sunk_floats, sunk_histograms) = read_chunked(&sink.url("/api/v1/read"), &[], start, end);
    assert_same_data(&floats, &sunk_floats);
    assert_same_histograms(&histograms, &sunk_histograms);
}

#[test]
#[ignore = "runs on real pods: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_blocks_into_an_s3_bucket_are_staged_under_the_read_only_root_and_served_exactly() {
    let cluster = cluster();
    let namespace = "pods-s3";
    let _namespace = TestNamespace::create(cluster, namespace);
    let source = recent_history_source("pods-s3-src", 8, 1);
    let s3 = start_s3("pods-s3-bucket", "cortex-blocks");
    // The bucket's credentials as a user keeps them: a Secret of the store's usual variables.
    // Each block is staged on the pod's scratch volume before its upload: the root filesystem
    // is read-only, and nothing else is writable.
    let literal = |k: &str, v: &str| format!("--from-literal={k}={v}");
    let mut args = vec!["-n", namespace, "create", "secret", "generic", "bucket"];
    let secret = [
        literal("AWS_ENDPOINT", &s3.url("")),
        literal("AWS_ALLOW_HTTP", "true"),
        literal("AWS_REGION", "us-east-1"),
        literal("AWS_ACCESS_KEY_ID", "x"),
        literal("AWS_SECRET_ACCESS_KEY", "bucket-secret-value"),
    ];
    args.extend(secret.iter().map(String::as_str));
    cluster.kubectl(&args);
    let sets = vec![
        format!("source.url={}", source.url("/api/v1/read")),
        "destination.blocks.url=s3://cortex-blocks".to_string(),
        "destination.blocks.tenant=c-7xk2p".to_string(),
        "destination.blocks.credentialsSecret=bucket".to_string(),
        "start=now-10h".to_string(),
    ];
    helm_install(cluster, namespace, &sets);
    let ledger = finished(
        cluster,
        namespace,
        "rancher-monitoring",
        Duration::from_secs(600),
    );
    assert!(ledger.all_exact(), "{ledger:?}");
    let (start, end) = (ledger.range_start_ms, ledger.range_end_ms.unwrap());
    // The bucket as Cortex reads it (TENANT/ULID/...), downloaded into a directory that a
    // Prometheus serves.
    let data = temp_dir("pods-s3-data");
    let blocks = download_tenant(&s3.url(""), "cortex-blocks", "c-7xk2p", &data);
    assert!(
        (4..=5).contains(&blocks),
        "one block per 2h window of the 8h of history: {blocks}"
    );
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 20_000, "the range holds history");
    let served = start_prometheus_on("pods-s3-served", &data, &[]);
    assert_same_data(&expected, &read_samples(&served, start, end));
    // The staging directory is the pod's own scratch volume, and the key stays in its Secret.
    let (jobs, pods) = worker_pod_specs(cluster, namespace);
    assert!(
        !jobs.contains("bucket-secret-value"),
        "a credential in a Job"
    );
    for pod in &pods {
        assert_eq!(
            pod["volumes"][0]["emptyDir"],
            serde_json::json!({}),
            "{pod}"
        );
        let container = &pod["containers"][0];
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            container["volumeMounts"][0]["mountPath"],
            "/var/tmp/promimport"
        );
    }
}
