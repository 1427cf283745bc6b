//! The scheduler in the project's own cluster (scripts/cluster: kube-apiserver, the controllers,
//! kube-scheduler, and a real kubelet running the image in containers, so RBAC, the in-cluster
//! configuration and the kubelet's SIGTERM are real), importing between real Prometheus servers
//! on the node's address. The scheduler runs here with its service account's token, as
//! `promimport schedule` run by hand does; its workers run as pods. Histories here have no 1.7e308 value:
//! most of these tests write to VictoriaMetrics (see import_victoria_metrics.rs for why).

use promimport_test_support as common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::cluster;
use common::*;
use promimport::window::Window;

/// One test's corner of the cluster: a namespace with promimport's RBAC applied, a kubeconfig
/// for its scheduler's service account (so the scheduler runs with exactly the permissions the
/// manifests give), and a directory for the test's import specs.
struct Scenario {
    scheduler: PathBuf,
    dir: PathBuf,
}

impl Scenario {
    fn new(namespace: &str) -> Self {
        Scenario {
            scheduler: cluster().namespace(namespace),
            dir: temp_dir(&format!("k8s-{namespace}")),
        }
    }

    /// Writes an import spec (`name`, the body, the test image) and returns its path.
    fn spec(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "name: {name}\n{body}\nworker:\n  image: {}\n",
                cluster().image()
            ),
        )
        .unwrap();
        path
    }
}

fn promimport_as(kubeconfig: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_promimport"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

fn spawn_as(kubeconfig: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_promimport"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn hourly(start_ms: i64, hours: i64) -> Vec<Window> {
    promimport::plan::plan_windows(
        Window::new(start_ms, start_ms + hours * HOUR_MS).unwrap(),
        HOUR_MS,
        &[],
    )
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn range_spec(
    source: &str,
    dest: &str,
    hours: i64,
    window: &str,
    parallelism: usize,
    extra: &str,
) -> String {
    format!(
        "source: {{url: \"{source}\"}}\ndestination: {{url: \"{dest}\"}}\nstart: {}\nend: {}\nwindow: {window}\nparallelism: {parallelism}\n{extra}",
        rfc3339(BASE_MS),
        rfc3339(BASE_MS + hours * HOUR_MS)
    )
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_an_import_scheduled_as_jobs_lands_every_sample_once_and_the_ledger_says_finished() {
    let cluster = cluster();
    let world = Scenario::new("exact");
    let scheduler = &world.scheduler;
    let source = history_source("k8s-exact-src", 6, false);
    // One window at a time keeps a Prometheus sink's appends in order (see prometheus_sink);
    // the tests below run windows concurrently into VictoriaMetrics.
    let sink = prometheus_sink("k8s-exact-sink");
    let spec = world.spec(
        "exact",
        &range_spec(
            &source.url("/api/v1/read"),
            &sink.url("/api/v1/write"),
            6,
            "1h",
            1,
            "",
        ),
    );
    let (code, log) = promimport_as(
        scheduler,
        &[
            "schedule",
            "-f",
            spec.to_str().unwrap(),
            "--poll",
            "300ms",
            "--timeout",
            "3m",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("import exact: finished"), "{log}");

    let (from, to) = history_range();
    assert_same_data(
        &read_samples(&source, BASE_MS, BASE_MS + 6 * HOUR_MS),
        &read_samples(&sink, from, to),
    );
    let recorded = cluster.ledger("exact", "exact").unwrap();
    assert_eq!(recorded.state, "finished");
    assert_eq!(recorded.windows(), 6);
    assert!(recorded.all_exact(), "{:?}", recorded.ranges);
    // The scheduler compacted the done windows into one range.
    assert!(recorded.records.is_empty(), "{:?}", recorded.records);
    // kubectl finds the Jobs by import and window, one per window, owned by the ledger.
    let jobs = cluster.kubectl(&["get", "jobs", "-n", "exact", "-l", "promimport.io/import=exact", "-o", "jsonpath={range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].name}{\"\\n\"}{end}"]);
    assert_eq!(jobs.lines().count(), 6, "{jobs}");
    assert!(
        jobs.lines().all(|l| l.ends_with(" promimport-exact")),
        "{jobs}"
    );
    let one = cluster.kubectl(&[
        "get",
        "jobs",
        "-n",
        "exact",
        "-l",
        &format!("promimport.io/window={}", hourly(BASE_MS, 1)[0].key()),
        "-o",
        "name",
    ]);
    assert_eq!(one.trim(), "job.batch/exact-w1793491200000");

    // verify takes the range, window and selectors from the ledger and records its result there.
    let (code, log) = promimport_as(
        &cluster.admin(),
        &[
            "verify",
            "--import",
            "exact",
            "-n",
            "exact",
            "--source",
            &source.url("/api/v1/read"),
            "--dest",
            &sink.url("/api/v1/read"),
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("verify: all 6 windows match (bit for bit)"),
        "{log}"
    );
    let recorded = cluster.kubectl(&[
        "get",
        "configmap",
        "promimport-exact",
        "-n",
        "exact",
        "-o",
        "jsonpath={.data.verify}",
    ]);
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(
        (
            recorded["windows"].as_i64(),
            recorded["mismatched"].as_i64()
        ),
        (Some(6), Some(0)),
        "{recorded}"
    );

    let (code, status) = promimport_as(&cluster.admin(), &["status", "exact", "-n", "exact"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(status.contains("finished"), "{status}");
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_worker_pods_deleted_again_and_again_and_a_killed_scheduler_still_finish_exact_with_one_job_per_window()
 {
    let cluster = cluster();
    let world = Scenario::new("chaos");
    let scheduler = &world.scheduler;
    let source = history_source("k8s-chaos-src", 6, false);
    let sink = start_victoria_metrics("k8s-chaos-sink", "100y");
    // Each request waits 150 ms: a window of 30 requests lasts about 5 s, long enough to kill.
    let slow = slow_proxy(
        format!("http://{}:{}", test_host(), sink.port),
        Duration::from_millis(150),
    );
    let spec = world.spec(
        "chaos",
        &range_spec(
            &source.url("/api/v1/read"),
            &slow.url("/api/v1/write"),
            6,
            "1h",
            2,
            "",
        ),
    );
    std::fs::write(
        &spec,
        std::fs::read_to_string(&spec).unwrap().replace(
            "worker:\n",
            "worker:\n  batchSamples: 100\n  backoffLimit: 10\n",
        ),
    )
    .unwrap();
    let args = [
        "schedule",
        "-f",
        spec.to_str().unwrap(),
        "--poll",
        "300ms",
        "--timeout",
        "4m",
    ];

    let mut first = spawn_as(scheduler, &args);
    wait_for("running worker pods", Duration::from_secs(60), || {
        cluster
            .kubectl(&[
                "get",
                "pods",
                "-n",
                "chaos",
                "--field-selector=status.phase=Running",
                "-o",
                "name",
            ])
            .lines()
            .count()
            >= 2
    });
    // Kill the scheduler; then, while a new one runs, delete a running worker pod three times at
    // uneven intervals (each Job may lose a pod: backoffLimit is raised for that).
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn_as(scheduler, &args);
    for delay in [300u64, 1_100, 700] {
        wait_for("a running worker pod", Duration::from_secs(60), || {
            !cluster
                .kubectl(&[
                    "get",
                    "pods",
                    "-n",
                    "chaos",
                    "--field-selector=status.phase=Running",
                    "-o",
                    "name",
                ])
                .trim()
                .is_empty()
        });
        std::thread::sleep(Duration::from_millis(delay));
        let pod = cluster.kubectl(&[
            "get",
            "pods",
            "-n",
            "chaos",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ]);
        if !pod.is_empty() {
            // The pod may finish between the listing and the deletion.
            cluster.kubectl(&[
                "delete",
                "pod",
                "-n",
                "chaos",
                &pod,
                "--wait=false",
                "--ignore-not-found",
            ]);
        }
    }
    assert!(
        second.wait().unwrap().success(),
        "the scheduler finished the import"
    );
    assert_same_in_victoria_metrics(
        &read_samples(&source, BASE_MS, BASE_MS + 6 * HOUR_MS),
        &sink,
    );
    let recorded = cluster.ledger("chaos", "chaos").unwrap();
    assert_eq!(
        (recorded.state.as_str(), recorded.windows()),
        ("finished", 6)
    );
    assert!(recorded.all_exact());
    let jobs = cluster.kubectl(&["get", "jobs", "-n", "chaos", "-o", "name"]);
    assert_eq!(
        jobs.lines().count(),
        6,
        "one Job per window, never a second: {jobs}"
    );
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_an_import_stopped_mid_way_and_resumed_ends_exact() {
    let cluster = cluster();
    let world = Scenario::new("pause");
    let scheduler = &world.scheduler;
    let source = history_source("k8s-pause-src", 6, false);
    let sink = start_victoria_metrics("k8s-pause-sink", "100y");
    let slow = slow_proxy(
        format!("http://{}:{}", test_host(), sink.port),
        Duration::from_millis(100),
    );
    let spec = world.spec(
        "pause",
        &range_spec(
            &source.url("/api/v1/read"),
            &slow.url("/api/v1/write"),
            6,
            "30m",
            2,
            "",
        ),
    );
    std::fs::write(
        &spec,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("worker:\n", "worker:\n  batchSamples: 200\n"),
    )
    .unwrap();
    let spec = spec.to_str().unwrap();

    let mut running = spawn_as(
        scheduler,
        &["schedule", "-f", spec, "--poll", "300ms", "--timeout", "4m"],
    );
    let mut most_running = 0;
    wait_for("two windows done", Duration::from_secs(60), || {
        let running = cluster
            .kubectl(&[
                "get",
                "jobs",
                "-n",
                "pause",
                "-o",
                "jsonpath={range .items[*]}{.status.active}{\"\\n\"}{end}",
            ])
            .lines()
            .filter(|l| l.trim() == "1")
            .count();
        most_running = most_running.max(running);
        cluster.ledger("pause", "pause").unwrap().windows() >= 2
    });
    assert!(
        most_running <= 2,
        "parallelism 2 was respected ({most_running} Jobs ran at once)"
    );
    let (code, log) = promimport_as(&cluster.admin(), &["stop", "pause", "-n", "pause"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        running.wait().unwrap().success(),
        "the scheduler exits when the import is stopped"
    );
    let stopped = cluster.ledger("pause", "pause").unwrap();
    assert_eq!(stopped.state, "stopped");
    let before = stopped.done_of(&hourly(BASE_MS, 12));
    assert!(
        before.len() < 12,
        "stopped before the end: {}",
        before.len()
    );
    let uids_before = cluster.job_uids("pause", "pause");
    wait_for("no running Jobs", Duration::from_secs(30), || {
        cluster
            .kubectl(&[
                "get",
                "pods",
                "-n",
                "pause",
                "--field-selector=status.phase=Running",
                "-o",
                "name",
            ])
            .trim()
            .is_empty()
    });

    let (code, log) = promimport_as(
        scheduler,
        &[
            "resume",
            "pause",
            "-n",
            "pause",
            "--poll",
            "300ms",
            "--timeout",
            "4m",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("import pause: finished"), "{log}");
    let after = cluster.ledger("pause", "pause").unwrap();
    assert_eq!(after.windows(), 12);
    let uids_after = cluster.job_uids("pause", "pause");
    for window in &before {
        assert_eq!(
            uids_before.get(window),
            uids_after.get(window),
            "window {window} finished before the stop was not imported again"
        );
    }
    assert_same_in_victoria_metrics(
        &read_samples(&source, BASE_MS, BASE_MS + 6 * HOUR_MS),
        &sink,
    );
}

/// What several imports of `hours` of history hold together in one sink, each source's series
/// with the `origin` label its import sets.
fn by_origin(sources: &[(&Server, &str)], hours: i64) -> Data {
    let mut expected = Data::new();
    for (server, origin) in sources {
        for (key, samples) in read_samples(server, BASE_MS, BASE_MS + hours * HOUR_MS) {
            let label = format!("origin={origin:?}");
            let mut pairs: Vec<&str> = key.split(',').collect();
            pairs.push(&label);
            pairs.sort();
            expected.insert(pairs.join(","), samples);
        }
    }
    expected
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_two_imports_at_once_from_different_sources_are_both_exact_with_separate_ledgers() {
    let cluster = cluster();
    let world = Scenario::new("twins");
    let scheduler = &world.scheduler;
    let (a, b) = (
        history_source("k8s-twin-a", 4, false),
        history_source("k8s-twin-b", 4, false),
    );
    let sink = start_victoria_metrics("k8s-twins-sink", "100y");
    let spec_a = world.spec(
        "twin-a",
        &range_spec(
            &a.url("/api/v1/read"),
            &sink.url("/api/v1/write"),
            4,
            "1h",
            2,
            "setLabels: {origin: a}",
        ),
    );
    let spec_b = world.spec(
        "twin-b",
        &range_spec(
            &b.url("/api/v1/read"),
            &sink.url("/api/v1/write"),
            4,
            "30m",
            3,
            "setLabels: {origin: b}",
        ),
    );
    let mut first = Command::new(env!("CARGO_BIN_EXE_promimport"))
        .args([
            "schedule",
            "-f",
            spec_a.to_str().unwrap(),
            "--poll",
            "300ms",
            "--timeout",
            "3m",
        ])
        .env("KUBECONFIG", scheduler)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, log) = promimport_as(
        scheduler,
        &[
            "schedule",
            "-f",
            spec_b.to_str().unwrap(),
            "--poll",
            "300ms",
            "--timeout",
            "3m",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(first.wait().unwrap().success());

    // Both imports' series, told apart by the label each sets.
    let expected = by_origin(&[(&a, "a"), (&b, "b")], 4);
    assert_same_in_victoria_metrics(&expected, &sink);
    let a = cluster.ledger("twins", "twin-a").unwrap();
    let b = cluster.ledger("twins", "twin-b").unwrap();
    assert_eq!((a.state.as_str(), a.windows()), ("finished", 4));
    assert_eq!((b.state.as_str(), b.windows()), ("finished", 8));
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_two_imports_from_one_source_never_run_more_jobs_on_it_than_the_per_source_limit() {
    let cluster = cluster();
    let world = Scenario::new("one-source");
    let source = history_source("k8s-one-source", 4, false);
    let sink = start_victoria_metrics("k8s-one-source-sink", "100y");
    let specs: Vec<PathBuf> = ["first", "second"]
        .iter()
        .map(|name| {
            world.spec(
                name,
                &range_spec(
                    &source.url("/api/v1/read"),
                    &sink.url("/api/v1/write"),
                    4,
                    "30m",
                    3,
                    &format!("setLabels: {{origin: {name}}}"),
                ),
            )
        })
        .collect();
    let label = promimport::kube::source_label(&source.url("/api/v1/read"));
    let schedulers: Vec<Child> = specs
        .iter()
        .map(|spec| {
            spawn_as(
                &world.scheduler,
                &[
                    "schedule",
                    "-f",
                    spec.to_str().unwrap(),
                    "--poll",
                    "300ms",
                    "--timeout",
                    "4m",
                    "--max-jobs-per-source",
                    "2",
                ],
            )
        })
        .collect();
    // Each import alone would run 3 Jobs at once; together, on one source, never more than 2.
    let mut most = 0;
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let jobs: serde_json::Value = serde_json::from_str(&cluster.kubectl(&[
            "get",
            "jobs",
            "-n",
            "one-source",
            "-l",
            &format!("promimport.io/source={label}"),
            "-o",
            "json",
        ]))
        .unwrap();
        let items = jobs["items"].as_array().unwrap();
        let finished = |job: &serde_json::Value| {
            job["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["status"] == "True"))
        };
        let active = items.iter().filter(|job| !finished(job)).count();
        most = most.max(active);
        seen = seen.max(items.len());
        let done = ["first", "second"].iter().all(|name| {
            cluster
                .ledger("one-source", name)
                .is_some_and(|l| l.state == "finished")
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the imports did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    for mut scheduler in schedulers {
        assert!(scheduler.wait().unwrap().success());
    }
    assert!(most <= 2, "{most} Jobs read the source at once");
    assert!(most >= 1 && seen == 16, "{seen} Jobs for 16 windows");
    let expected = by_origin(&[(&source, "first"), (&source, "second")], 4);
    assert_same_in_victoria_metrics(&expected, &sink);
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_the_ledger_loses_no_update_under_25_concurrent_workers() {
    let cluster = cluster();
    cluster.namespace("ledger");
    let worker = cluster.service_account_kubeconfig("ledger", "promimport-worker");
    // The ledger exists before workers write to it, as the scheduler creates it.
    let spec = "name: busy\nsource: {url: \"http://127.0.0.1:1/api/v1/read\"}\ndestination: {url: \"http://127.0.0.1:1/api/v1/write\"}\n";
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: promimport-busy\n  labels: {{promimport.io/ledger: \"true\", promimport.io/import: busy}}\ndata:\n  import.yaml: |\n{}  state: running\n  rangeStart: \"2026-11-01T00:00:00Z\"\n",
        spec.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let file = temp_dir("ledger-cm").join("cm.yaml");
    std::fs::write(&file, manifest).unwrap();
    cluster.kubectl(&["apply", "-n", "ledger", "-f", file.to_str().unwrap()]);

    // 25 workers record their windows at the same moment, as the worker service account.
    let writers: Vec<Child> = (0..25)
        .map(|i| {
            let start = rfc3339(BASE_MS + i * HOUR_MS);
            let end = rfc3339(BASE_MS + (i + 1) * HOUR_MS);
            Command::new(env!("CARGO_BIN_EXE_promimport"))
                .arg("worker")
                .env("KUBECONFIG", &worker)
                .env("PROMIMPORT_SOURCE", "http://127.0.0.1:9/api/v1/read")
                .env("PROMIMPORT_DEST", "http://127.0.0.1:9/api/v1/write")
                .env("PROMIMPORT_RETRIES", "0")
                .env("PROMIMPORT_WINDOW_START", start)
                .env("PROMIMPORT_WINDOW_END", end)
                .env("PROMIMPORT_LEDGER", "promimport-busy")
                .env("PROMIMPORT_NAMESPACE", "ledger")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut said = Vec::new();
    for writer in writers {
        // The source is unreachable: each window fails transiently and says so (exit 1).
        let out = writer.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        said.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let windows = cluster.ledger("ledger", "busy").unwrap().records;
    assert_eq!(
        windows.len(),
        25,
        "every worker's record is there; the first worker said: {}",
        said[0]
    );
    assert!(
        windows.iter().all(|(_, w)| w["error"]["transient"] == true),
        "{windows:?}"
    );
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_an_incremental_import_run_twice_imports_only_the_new_range() {
    let cluster = cluster();
    let world = Scenario::new("cron");
    let scheduler = &world.scheduler;
    let source = start_prometheus(
        "k8s-cron-src",
        PrometheusOptions {
            receiver: true,
            out_of_order_window: Some("1d"),
            ..PrometheusOptions::default()
        },
    );
    let sink = prometheus_sink("k8s-cron-sink");
    let window = 60_000i64;
    let start = (promimport::timespec::now_ms() / window - 8) * window;
    let write = |from: i64, to: i64| {
        let samples: Vec<(i64, f64)> = (from..to)
            .step_by(2_000)
            .map(|t| (t, (t / 1000) as f64))
            .collect();
        remote_write(
            &source.url("/api/v1/write"),
            &[(&[("__name__", "cron_metric"), ("job", "cron")], samples)],
        );
    };
    let first_data_end = promimport::timespec::now_ms() - 3_000;
    write(start, first_data_end);
    let spec = world.spec("cron",
        &format!(
            // One window at a time, so a Prometheus sink appends in order (see prometheus_sink).
            "source: {{url: \"{}\"}}\ndestination: {{url: \"{}\"}}\nstart: {}\nwindow: 1m\nparallelism: 1\nincremental: {{lag: 3s}}",
            source.url("/api/v1/read"),
            sink.url("/api/v1/write"),
            rfc3339(start)
        ),
    );
    let args = [
        "schedule",
        "-f",
        spec.to_str().unwrap(),
        "--poll",
        "300ms",
        "--timeout",
        "3m",
    ];
    let caught_up = || {
        let message = cluster.kubectl(&[
            "get",
            "configmap",
            "promimport-cron",
            "-n",
            "cron",
            "-o",
            "jsonpath={.data.message}",
        ]);
        let time = message
            .strip_prefix("caught up to ")
            .unwrap_or_else(|| panic!("{message}"));
        promimport::timespec::parse_time("message", time, 0).unwrap()
    };
    let plan =
        |end: i64| promimport::plan::plan_windows(Window::new(start, end).unwrap(), window, &[]);
    let (code, log) = promimport_as(scheduler, &args);
    assert_eq!(code, Some(0), "{log}");
    let first_end = caught_up();
    let first = cluster.job_uids("cron", "cron");
    assert_eq!(first.keys().copied().collect::<Vec<_>>(), plan(first_end));

    // New data arrives after the first run's end; the second run starts there.
    wait_for("another window to pass", Duration::from_secs(90), || {
        promimport::timespec::now_ms() - 3_000 >= first_end + window
    });
    // (Data arriving later than the lag, inside a window already imported, is not imported
    // again: that is what the lag is for. So the new data starts at the first run's end.)
    write(
        first_end.max(first_data_end),
        promimport::timespec::now_ms() - 3_000,
    );
    let (code, log) = promimport_as(scheduler, &args);
    assert_eq!(code, Some(0), "{log}");
    let recorded = cluster.ledger("cron", "cron").unwrap();
    assert_eq!(
        recorded.state, "running",
        "an incremental import waits for its next run"
    );
    let second_end = caught_up();
    assert!(second_end > first_end, "{first_end} then {second_end}");
    let second = cluster.job_uids("cron", "cron");
    assert_eq!(
        second.keys().copied().collect::<Vec<_>>(),
        plan(second_end),
        "one Job per window over both runs"
    );
    for (window, uid) in &first {
        assert_eq!(
            &second[window], uid,
            "window {window} was not imported twice"
        );
    }
    assert_same_data(
        &read_samples(&source, start, second_end),
        &read_samples(&sink, start - HOUR_MS, second_end + HOUR_MS),
    );
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_the_worker_and_scheduler_accounts_can_do_only_what_they_use() {
    let cluster = cluster();
    cluster.namespace("rbac");
    cluster.kubectl(&["create", "namespace", "rbac-other"]);
    let can = |account: &str, verb: &str, resource: &str, namespace: &str| {
        let out = Command::new("kubectl")
            .args([
                "auth",
                "can-i",
                verb,
                resource,
                "-n",
                namespace,
                "--as",
                &format!("system:serviceaccount:rbac:{account}"),
            ])
            .env("KUBECONFIG", cluster.admin())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    let worker = "promimport-worker";
    assert!(
        can(worker, "patch", "configmaps", "rbac"),
        "a worker records its window"
    );
    for (verb, resource, namespace) in [
        ("create", "jobs", "rbac"),
        ("get", "secrets", "rbac"),
        ("list", "secrets", "rbac"),
        ("get", "configmaps", "rbac"),
        ("patch", "configmaps", "rbac-other"),
        ("create", "pods", "rbac"),
    ] {
        assert!(
            !can(worker, verb, resource, namespace),
            "the worker may not {verb} {resource} in {namespace}"
        );
    }
    let scheduler = "promimport-scheduler";
    for (verb, resource) in [
        ("create", "jobs"),
        ("list", "jobs"),
        ("delete", "jobs"),
        ("create", "configmaps"),
        ("patch", "configmaps"),
        ("list", "pods"),
    ] {
        assert!(
            can(scheduler, verb, resource, "rbac"),
            "the scheduler may {verb} {resource}"
        );
    }
    for (verb, resource, namespace) in [
        ("create", "jobs", "rbac-other"),
        ("patch", "configmaps", "rbac-other"),
        ("get", "secrets", "rbac"),
        ("create", "pods", "rbac"),
        ("delete", "pods", "rbac"),
        ("list", "pods", "rbac-other"),
        ("update", "jobs", "rbac"),
    ] {
        assert!(
            !can(scheduler, verb, resource, namespace),
            "the scheduler may not {verb} {resource} in {namespace}"
        );
    }
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_a_credential_from_a_secret_reaches_the_worker_and_nowhere_else() {
    let cluster = cluster();
    let world = Scenario::new("secrets");
    let scheduler = &world.scheduler;
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "dest-token",
        "-n",
        "secrets",
        "--from-literal=token=tok-PLANTED-K8S",
    ]);
    let source = history_source("k8s-secret-src", 2, false);
    let sink = prometheus_sink("k8s-secret-sink");
    // In front of the sink: records the Authorization header each request carries.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let target = format!("http://{}:{}", test_host(), sink.port);
    let client = reqwest::blocking::Client::new();
    let proxy = FakeServer::start(move |request, _| {
        let auth = request.header("authorization");
        record.lock().unwrap().push(auth);
        forward(&client, &target, request)
    });
    let spec = world.spec("secret",
        &format!(
            "source: {{url: \"{}\"}}\ndestination: {{url: \"{}\", bearerTokenSecret: {{name: dest-token, key: token}}}}\nstart: {}\nend: {}\nwindow: 1h\nparallelism: 1",
            source.url("/api/v1/read"),
            proxy.url("/api/v1/write"),
            rfc3339(BASE_MS),
            rfc3339(BASE_MS + 2 * HOUR_MS)
        ),
    );
    let (code, log) = promimport_as(
        scheduler,
        &[
            "schedule",
            "-f",
            spec.to_str().unwrap(),
            "--poll",
            "300ms",
            "--timeout",
            "3m",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    let seen = seen.lock().unwrap();
    assert!(
        !seen.is_empty() && seen.iter().all(|a| a == "Bearer tok-PLANTED-K8S"),
        "the worker sent the token: {seen:?}"
    );

    let (_, status) = promimport_as(&cluster.admin(), &["status", "-n", "secrets", "-o", "json"]);
    let objects = cluster.kubectl(&["get", "jobs,pods,configmaps", "-n", "secrets", "-o", "yaml"]);
    // What `kubectl logs` shows of every worker pod of the import.
    let pods = cluster.kubectl(&["get", "pods", "-n", "secrets", "-o", "name"]);
    let pod_logs: String = pods
        .lines()
        .map(|pod| cluster.kubectl(&["logs", "-n", "secrets", pod]))
        .collect();
    assert!(!pod_logs.is_empty(), "the pods' logs were read");
    for (what, text) in [
        ("the scheduler's log", &log),
        ("status", &status),
        ("Jobs, pods and the ledger", &objects),
        ("the pods' logs", &pod_logs),
    ] {
        assert!(
            !text.contains("PLANTED"),
            "the credential leaked into {what}"
        );
    }
    assert!(
        objects.contains("secretKeyRef"),
        "the Job refers to the Secret instead"
    );
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_stop_wins_over_a_scheduler_mid_round_again_and_again_and_the_resume_is_exact() {
    let cluster = cluster();
    let world = Scenario::new("race");
    let scheduler = &world.scheduler;
    let source = history_source("k8s-race-src", 12, false);
    let sink = start_victoria_metrics("k8s-race-sink", "100y");
    let spec = world.spec(
        "race",
        &range_spec(
            &source.url("/api/v1/read"),
            &sink.url("/api/v1/write"),
            12,
            "1h",
            4,
            "",
        ),
    );
    let spec = spec.to_str().unwrap();
    let active_jobs = || {
        let json: serde_json::Value =
            serde_json::from_str(&cluster.kubectl(&["get", "jobs", "-n", "race", "-o", "json"]))
                .unwrap();
        json["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["metadata"]["deletionTimestamp"].is_null())
            .filter(|j| j["status"]["active"].as_i64().unwrap_or(0) > 0)
            .filter(|j| j["status"]["succeeded"].as_i64().unwrap_or(0) == 0)
            .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // The stop lands at a different point of the scheduler's round each time.
    let mut stopped_rounds = 0;
    for (round, delay_ms) in [350u64, 820, 1_270, 560, 1_930].into_iter().enumerate() {
        if round > 0 {
            let (code, log) =
                promimport_as(scheduler, &["resume", "race", "-n", "race", "--detach"]);
            assert_eq!(code, Some(0), "{log}");
        }
        let mut running = spawn_as(
            scheduler,
            &["schedule", "-f", spec, "--poll", "100ms", "--timeout", "2m"],
        );
        std::thread::sleep(Duration::from_millis(delay_ms));
        // `import stop` is the same command as `stop`; both are used.
        let stop: &[&str] = if round % 2 == 0 {
            &["stop", "race", "-n", "race"]
        } else {
            &["import", "stop", "race", "-n", "race"]
        };
        let (code, log) = promimport_as(&cluster.admin(), stop);
        assert_eq!(code, Some(0), "{log}");
        assert!(
            running.wait().unwrap().success(),
            "the scheduler exits on stop"
        );
        let recorded = cluster.ledger("race", "race").unwrap();
        if recorded.state == "finished" {
            // It finished before the stop came: nothing left to race.
            break;
        }
        assert_eq!(recorded.state, "stopped", "round {round}: the stop stands");
        stopped_rounds += 1;
        let survivors = active_jobs();
        assert!(
            survivors.is_empty(),
            "round {round}: Jobs running after the stop: {survivors:?}"
        );
    }
    assert!(
        stopped_rounds >= 3,
        "only {stopped_rounds} rounds were stopped mid-import"
    );
    let (code, log) = promimport_as(
        scheduler,
        &[
            "resume",
            "race",
            "-n",
            "race",
            "--poll",
            "300ms",
            "--timeout",
            "3m",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("import race: finished"), "{log}");
    let recorded = cluster.ledger("race", "race").unwrap();
    assert_eq!(recorded.windows(), 12);
    assert!(recorded.all_exact());
    // A Job that `stop` deleted after its window was recorded done leaves no Job behind; no
    // window has more than its one (names are per window), and none is outside the plan.
    let planned = hourly(BASE_MS, 12);
    assert!(
        cluster
            .job_uids("race", "race")
            .keys()
            .all(|w| planned.contains(w))
    );
    assert_same_in_victoria_metrics(
        &read_samples(&source, BASE_MS, BASE_MS + 12 * HOUR_MS),
        &sink,
    );
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_import_start_of_a_cluster_target_with_its_default_range_lands_exact_with_one_job_per_window()
 {
    let cluster = cluster();
    let admin = cluster.admin();
    cluster.namespace("defaults");
    let source = recent_history_source("k8s-defaults-src", 30, 2);
    let sink = start_victoria_metrics("k8s-defaults-sink", "100y");
    let (code, log) = promimport_as(
        &admin,
        &[
            "target",
            "add",
            "old",
            "-n",
            "defaults",
            "--source",
            &source.url("/api/v1/read"),
            "--dest",
            &sink.url("/api/v1/write"),
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    // No range: the last 10 days (`now-10d`, milliseconds and all) in 2h windows.
    let (code, log) = promimport_as(
        &admin,
        &[
            "import",
            "start",
            "old",
            "-n",
            "defaults",
            "--parallelism",
            "10",
            "--image",
            &cluster.image(),
            "--poll",
            "300ms",
            "--timeout",
            "5m",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("import old: finished"), "{log}");
    let recorded = cluster.ledger("defaults", "old").unwrap();
    let (start, end) = (recorded.range_start_ms, recorded.range_end_ms.unwrap());
    assert_eq!(end - start, 10 * 24 * HOUR_MS);
    let planned =
        promimport::plan::plan_windows(Window::new(start, end).unwrap(), 2 * HOUR_MS, &[]);
    assert_eq!(
        cluster
            .job_uids("defaults", "old")
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        planned,
        "one Job per window"
    );
    assert_eq!(recorded.windows(), planned.len() as u64);
    assert!(recorded.all_exact());
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 1_000);
    assert_same_in_victoria_metrics_over(&expected, &sink, start - HOUR_MS, end + HOUR_MS);
}

#[test]
#[ignore = "runs in the cluster: scripts/test runs it inside scripts/cluster's network namespace"]
fn in_cluster_a_source_with_nothing_listening_fails_the_import_before_any_job_with_what_to_check() {
    let cluster = cluster();
    let world = Scenario::new("nowhere");
    let scheduler = &world.scheduler;
    let sink = start_victoria_metrics("k8s-nowhere-sink", "100y");
    let source = format!("http://{}:{}/api/v1/read", test_host(), free_port());
    let spec = world.spec(
        "nowhere",
        &range_spec(&source, &sink.url("/api/v1/write"), 6, "1h", 2, ""),
    );
    let (code, log) = promimport_as(
        scheduler,
        &["schedule", "-f", spec.to_str().unwrap(), "--timeout", "1m"],
    );
    assert_eq!(code, Some(3), "{log}");
    assert!(log.contains("import nowhere: failed"), "{log}");
    // As kubectl users say which cluster: --kubeconfig and --context, no KUBECONFIG.
    let out = Command::new(env!("CARGO_BIN_EXE_promimport"))
        .args([
            "status",
            "nowhere",
            "-n",
            "nowhere",
            "--context",
            "c",
            "--kubeconfig",
        ])
        .arg(scheduler)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let status = text(&out);
    assert!(out.status.success(), "{status}");
    let (code, log) = promimport_as(
        scheduler,
        &["status", "nowhere", "-n", "nowhere", "--context", "nope"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("invalid --context \"nope\""), "{log}");
    assert!(
        status.contains(&format!("source {source} is unreachable (3 tries)"))
            && status.contains("check the host and port"),
        "{status}"
    );
    let jobs = cluster.kubectl(&["get", "jobs", "-n", "nowhere", "-o", "name"]);
    assert!(jobs.trim().is_empty(), "no Job was created: {jobs}");
}
