//! `--dest-blocks`: an import written as TSDB blocks, read back by the real readers — promtool,
//! a Prometheus 2.42 started on the directory, and Cortex v1.19.1 with no out-of-order window
//! serving them from its bucket — and compared series by series, sample by sample, bit by bit.

use promimport_test_support as common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cortex::Cortex;
use common::cortex_stories::CortexLike;
use common::*;

/// The block directories (named by a ULID) under `dir`.
fn blocks_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 26 && n.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    names.sort();
    names
}

#[test]
fn an_import_into_a_prometheus_data_dir_is_read_back_exactly_by_promtool_and_prometheus() {
    let source = recent_history_source("blocks-prom-src", 26, 1);
    let data = temp_dir("blocks-prom-data");
    let state = temp_dir("blocks-prom-state");
    // What a user types: relative times, the default 2h windows.
    let run = Run::blocks(&source.url("/api/v1/read"), &data)
        .flags(&["--start", "now-30h", "--end", "now"])
        .state(&state);
    let (code, log) = run.exec();
    assert_eq!(code, Some(0), "{log}");
    let (start, end) = summary_range(&log);
    let expected = read_samples(&source, start, end);
    assert!(
        total_samples(&expected) > 100_000,
        "the range holds history"
    );
    let blocks = blocks_in(&data);
    // 26 hours of history cut at 2h boundaries: 13 or 14 blocks, one per window with samples.
    assert!((13..=14).contains(&blocks.len()), "{blocks:?}");
    assert!(
        log.contains(&format!("blocks   {} written into file://", blocks.len())),
        "{log}"
    );
    assert!(log.contains("next block reload"), "{log}");
    for block in &blocks {
        let out = Command::new(prometheus_tool("promtool"))
            .args(["tsdb", "analyze"])
            .arg(&data)
            .arg(block)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Block ID"),
            "promtool tsdb analyze {block}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sink = start_prometheus_on("blocks-prom-sink", &data, &[]);
    assert_same_data(&expected, &read_samples(&sink, start, end));
    drop(sink);
    // promtool's dump reads every chunk of every block, one line a sample (it opens the
    // directory as a database, with the WAL directory the Prometheus above made).
    let dump = Command::new(prometheus_tool("promtool"))
        .args(["tsdb", "dump"])
        .arg(&data)
        .output()
        .expect("promtool runs");
    assert!(dump.status.success(), "{}", text(&dump));
    let lines = String::from_utf8_lossy(&dump.stdout).lines().count();
    assert_eq!(lines, total_samples(&expected), "promtool tsdb dump");

    // The same import again with a new state directory (a lost ledger), and day-long windows
    // this time, each written as its 2h blocks: every block is found already there, by an ID
    // made from its 2h part whatever the window, and no block is added.
    let again = Run::blocks(&source.url("/api/v1/read"), &data)
        .between(start, end)
        .flags(&["--window", "1d"])
        .state(&temp_dir("blocks-prom-state-2"));
    let (code, log) = again.exec();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!(
            "blocks   0 written into file://{} ({} more were already there",
            data.display(),
            blocks.len()
        )),
        "{log}"
    );
    assert_eq!(blocks_in(&data), blocks);

    // A sample added to the source in an old window since: that window's block, found again
    // by its ID, no longer holds what the source does. Said, with the block and the fix; the
    // other windows are found as they were.
    let late = start + 5 * HOUR_MS + 1234;
    remote_write(
        &source.url("/api/v1/write"),
        &[(
            &[("__name__", "late_metric"), ("job", "late")],
            vec![(late, 7.0)],
        )],
    );
    let (code, log) = Run::blocks(&source.url("/api/v1/read"), &data)
        .between(start, end)
        .state(&temp_dir("blocks-prom-state-3"))
        .exec();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("is there already for this window and holds")
            && log.contains("Delete the block"),
        "{log}"
    );
    let changed: Vec<String> = blocks
        .iter()
        .filter(|b| log.contains(b.as_str()))
        .cloned()
        .collect();
    assert_eq!(changed.len(), 1, "{log}");
    std::fs::remove_dir_all(data.join(&changed[0])).unwrap();
    let (code, log) = Run::blocks(&source.url("/api/v1/read"), &data)
        .between(start, end)
        .flags(&["--window", "1d"])
        .state(&temp_dir("blocks-prom-state-4"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!(
            "blocks   1 written into file://{} ({} more were already there",
            data.display(),
            blocks.len() - 1
        )),
        "{log}"
    );
    assert_eq!(blocks_in(&data), blocks, "the same IDs");
    let expected = read_samples(&source, start, end);
    assert!(expected.keys().any(|k| k.contains("late_metric")));
    let sink = start_prometheus_on("blocks-prom-sink-2", &data, &[]);
    assert_same_data(&expected, &read_samples(&sink, start, end));
}

#[test]
fn a_window_that_is_not_a_block_and_a_bucket_url_are_refused_with_the_fix() {
    let data = temp_dir("blocks-bad-data");
    let dest = format!("file://{}", data.display());
    let ca = temp_dir("blocks-bad-ca").join("ca.crt");
    std::fs::write(&ca, "a CA").unwrap();
    let ca = ca.display().to_string();
    for (args, needle) in [
        (
            vec!["--dest-blocks", dest.as_str(), "--window", "3h"],
            "invalid --window \"3h\": with blocks a window is written as 2h TSDB blocks: give 2h (the default) or a multiple of it",
        ),
        (vec!["--dest-blocks", "ftp://host/blocks"], "s3://BUCKET"),
        (vec!["--dest-blocks", "http://host/blocks"], "file:///DIR"),
        (vec!["--dest-blocks", "file://relative/dir"], "absolute"),
        (
            vec!["--dest-blocks", dest.as_str(), "--tenant", "a/b"],
            "no '/'",
        ),
        (
            vec!["--dest", "http://127.0.0.1:1/api/v1/push", "--tenant", "t"],
            "X-Scope-OrgID",
        ),
        (vec![], "--dest-blocks file:///DIR"),
        // Remote write's credentials are refused, not ignored; a directory takes no TLS.
        (
            vec![
                "--dest-blocks",
                "s3://bucket",
                "--dest-bearer-token-file",
                "/token",
            ],
            "invalid --dest-bearer-token-file \"\": goes with --dest (remote write)",
        ),
        (
            vec![
                "--dest-blocks",
                dest.as_str(),
                "--dest-ca-file",
                ca.as_str(),
            ],
            "TLS settings go with a bucket",
        ),
    ] {
        let mut all = vec![
            "run",
            "--source",
            "http://127.0.0.1:1/api/v1/read",
            "--start",
            "now-1d",
        ];
        all.extend(args.iter().copied());
        let out = promimport(&all);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(said.contains(needle), "{args:?} names {needle:?}: {said}");
    }
    assert!(blocks_in(&data).is_empty());
}

const TENANT: &str = "c-7xk2p";

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn into_cortex_without_an_out_of_order_window_blocks_are_served_exactly_where_remote_write_is_refused()
 {
    let source = recent_history_source("blocks-cortex-src", 26, 1);
    let cortex = Cortex::start(
        "blocks-cortex",
        &[("CORTEX_OOO_WINDOW", "0s"), ("CORTEX_SYNC_INTERVAL", "10s")],
    );
    // The tenant's live Prometheus already writes into it, as after Opni's agent is installed.
    let now = promimport::timespec::now_ms();
    remote_write_with(
        &cortex.push_url(),
        &[("X-Scope-OrgID", TENANT)],
        &[(&[("__name__", "up"), ("job", "live")], vec![(now, 1.0)])],
    );
    let header = format!("X-Scope-OrgID={TENANT}");
    let (code, log) = Run::new(&source.url("/api/v1/read"), &cortex.push_url())
        .flags(&["--start", "now-30h", "--end", "now"])
        .flag("--dest-header", &header)
        .state(&temp_dir("blocks-cortex-rw-state"))
        .exec();
    assert_eq!(code, Some(3), "remote write is refused: {log}");
    assert!(log.contains("written 0,"), "{log}");

    let bucket = cortex.dir.join("blocks");
    let (code, log) = Run::blocks(&source.url("/api/v1/read"), &bucket)
        .flags(&["--tenant", TENANT, "--start", "now-30h", "--end", "now"])
        .state(&temp_dir("blocks-cortex-state"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("store-gateway"), "{log}");
    let written = blocks_in(&bucket.join(TENANT));
    assert!(written.len() >= 13, "{written:?}");
    for block in &written {
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(bucket.join(TENANT).join(block).join("meta.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["version"], 1, "{meta}");
        assert_eq!(meta["thanos"]["labels"]["__org_id__"], TENANT, "{meta}");
    }
    let (start, end) = summary_range(&log);
    // The tenant holds the history exactly as the source does, beside its live sample.
    let mut expected = read_samples(&source, start, end);
    expected.insert(
        r#"__name__="up",job="live""#.to_string(),
        vec![(now, 1.0f64.to_bits())],
    );
    // Served after Cortex's next sync of its bucket (10 s here).
    let held = cortex.read_samples_once_synced(TENANT, start, end, total_samples(&expected));
    assert_same_data(&expected, &held);
    // verify compares the history: up to the live sample, which the source does not hold.
    let out = verify_range(
        &source,
        &cortex.read_url(),
        start,
        now,
        &["--dest-header", &header],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("match (bit for bit)"), "{}", text(&out));
}

/// The windows of the blocks in `dir`, from their meta.json.
fn block_ranges(dir: &Path) -> Vec<(i64, i64)> {
    blocks_in(dir)
        .iter()
        .map(|b| {
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join(b).join("meta.json")).unwrap())
                    .unwrap();
            (
                meta["minTime"].as_i64().unwrap(),
                meta["maxTime"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_worker_killed_mid_block_leaves_no_block_a_reader_loads_and_the_rerun_is_exact() {
    let source = recent_history_source("blocks-kill-src", 26, 1);
    let data = temp_dir("blocks-kill-data");
    let now = promimport::timespec::now_ms();
    let (start, end) = (now - 30 * HOUR_MS, now);
    // Read slowly, and hand samples to the block in small batches, so that blocks are being
    // written when the kill comes.
    let run = Run::blocks(&source.url("/api/v1/read"), &data)
        .between(start, end)
        .flags(&["--max-read-samples-per-second", "10000"])
        .flags(&["--batch-samples", "500"])
        .state(&temp_dir("blocks-kill-state"));
    let child = std::process::Command::new(promimport_bin())
        .args(run.args())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let unfinished = || -> Vec<String> {
        std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp-promimport"))
            .collect()
    };
    // Killed as soon as a block is being written, however slow the machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    while unfinished().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut child = child;
    child.wait().unwrap();
    assert!(
        !unfinished().is_empty(),
        "the kill came while a block was being written"
    );
    let done = block_ranges(&data);
    assert!(done.len() < 14, "the kill came before the end: {done:?}");
    // What a Prometheus loads now is exactly the finished blocks' windows, nothing partial.
    let expected = read_samples(&source, start, end);
    let within = |t: i64| done.iter().any(|&(a, b)| a <= t && t < b);
    let finished: Data = expected
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.iter().copied().filter(|s| within(s.0)).collect(),
            )
        })
        .filter(|(_, v): &(String, Vec<(i64, u64)>)| !v.is_empty())
        .collect();
    let sink = start_prometheus_on("blocks-kill-sink", &data, &[]);
    assert_same_data(&finished, &read_samples(&sink, start, end));
    drop(sink);

    let (code, log) = Run::blocks(&source.url("/api/v1/read"), &data)
        .between(start, end)
        .state(&temp_dir("blocks-kill-state-2"))
        .exec();
    assert_eq!(code, Some(0), "{log}");
    let left: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "unfinished blocks are replaced: {left:?}");
    let sink = start_prometheus_on("blocks-kill-sink-2", &data, &[]);
    assert_same_data(&expected, &read_samples(&sink, start, end));
}

/// `promimport run --dest-blocks s3://cortex-blocks` into moto, from `start` to `end` as typed.
fn import_into_s3(
    source: &Server,
    endpoint: &str,
    (start, end): (&str, &str),
    state: &str,
    extra: &[&str],
) -> (Option<i32>, String) {
    let out = std::process::Command::new(promimport_bin())
        .args(["run", "--source", &source.url("/api/v1/read")])
        .args(["--dest-blocks", "s3://cortex-blocks", "--tenant", TENANT])
        .args(["--start", start, "--end", end])
        .args(extra)
        .arg("--state")
        .arg(temp_dir(state))
        // What a user sets for an S3-compatible store; the keys are moto's, any will do.
        .env("AWS_ENDPOINT", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "secret-value-never-printed")
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn into_cortex_on_s3_blocks_land_meta_json_last_a_cut_upload_is_ignored_and_a_rerun_is_exact() {
    let source = recent_history_source("blocks-s3-src", 26, 1);
    let s3 = start_s3("blocks-s3", "cortex-blocks");
    let endpoint = s3.url("");
    let (code, log) = import_into_s3(
        &source,
        &endpoint,
        ("now-30h", "now"),
        "blocks-s3-state",
        &[],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("secret-value-never-printed"), "{log}");
    assert!(
        log.contains("written into s3://cortex-blocks (tenant c-7xk2p)"),
        "{log}"
    );
    let (start, end) = summary_range(&log);
    let expected = read_samples(&source, start, end);

    // Two uploads cut before their last file, meta.json: what a worker killed mid-upload (or
    // an upload that failed for good) leaves in the bucket.
    let listing =
        reqwest::blocking::get(s3.url(&format!("/cortex-blocks?list-type=2&prefix={TENANT}/")))
            .unwrap()
            .text()
            .unwrap();
    let metas: Vec<&str> = s3_keys(&listing)
        .into_iter()
        .filter(|k| k.ends_with("/meta.json"))
        .collect();
    assert!(metas.len() >= 13, "{listing}");
    // moto keeps objects private: reads and deletes are signed, as object_store signs them.
    use object_store::ObjectStoreExt;
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name("cortex-blocks")
        .with_access_key_id("x")
        .with_secret_access_key("y")
        .build()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut cut = Vec::new();
    for key in &metas[3..5] {
        let path = object_store::path::Path::from(*key);
        let bytes = runtime
            .block_on(async { bucket.get(&path).await?.bytes().await })
            .unwrap();
        let meta: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        cut.push((
            meta["minTime"].as_i64().unwrap(),
            meta["maxTime"].as_i64().unwrap(),
        ));
        runtime.block_on(bucket.delete(&path)).unwrap();
    }
    let cortex = Cortex::start_on_s3(
        "blocks-s3-cortex",
        &[("CORTEX_OOO_WINDOW", "0s"), ("CORTEX_SYNC_INTERVAL", "10s")],
        endpoint.trim_start_matches("http://"),
        "cortex-blocks",
    );
    // Cortex serves the complete blocks and ignores the cut ones: nothing partial, no error.
    let outside_cut: Data = expected
        .iter()
        .map(|(k, v)| {
            let kept = v
                .iter()
                .copied()
                .filter(|&(t, _)| !cut.iter().any(|&(a, b)| a <= t && t < b))
                .collect();
            (k.clone(), kept)
        })
        .filter(|(_, v): &(String, Vec<(i64, u64)>)| !v.is_empty())
        .collect();
    let held = cortex.read_samples_once_synced(TENANT, start, end, total_samples(&outside_cut));
    assert_same_data(&outside_cut, &held);

    // The same import again (a lost ledger; the range as the first run resolved it, since a
    // later `now` makes another last window): the complete blocks are found by their IDs, the
    // cut ones uploaded again whole, and Cortex then serves every sample.
    let range = (rfc3339(start), rfc3339(end));
    let (code, log) = import_into_s3(
        &source,
        &endpoint,
        (&range.0, &range.1),
        "blocks-s3-state-2",
        &[],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!(
            "blocks   2 written into s3://cortex-blocks (tenant c-7xk2p) ({} more were already there",
            metas.len() - 2
        )),
        "{log}"
    );
    let held = cortex.read_samples_once_synced(TENANT, start, end, total_samples(&expected));
    assert_same_data(&expected, &held);
}

/// A bucket endpoint served over HTTPS by a private CA (a MinIO or Ceph in the cluster): its
/// certificate is verified like every other endpoint's, the destination's CA flag makes it
/// pass, and the blocks that land there hold exactly the source's samples.
#[test]
fn a_bucket_behind_tls_is_verified_and_takes_the_destinations_ca() {
    let certificates = certificates(&temp_dir("blocks-tls-certs"));
    let s3 = start_s3_with("blocks-tls", "cortex-blocks", Some(&certificates));
    let endpoint = format!("https://127.0.0.1:{}", s3.port);
    let source = history_source("blocks-tls-src", 6, false);
    let range = (rfc3339(BASE_MS), rfc3339(BASE_MS + 6 * HOUR_MS));
    let range = (range.0.as_str(), range.1.as_str());
    let fail_fast = ["--retries", "0", "--window-attempts", "1"];

    let (code, log) = import_into_s3(&source, &endpoint, range, "blocks-tls-state", &fail_fast);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("blocks destination s3://cortex-blocks: TLS certificate problem")
            && log.contains("UnknownIssuer")
            && log.contains("--dest-ca-file"),
        "{log}"
    );

    let ca = certificates.ca.display().to_string();
    let (code, log) = import_into_s3(
        &source,
        &endpoint,
        range,
        "blocks-tls-state-2",
        &["--dest-ca-file", &ca],
    );
    assert_eq!(code, Some(0), "{log}");

    // Every object of the tenant, fetched into a data directory a Prometheus then serves.
    let data = temp_dir("blocks-tls-data");
    let metas = download_tenant(&endpoint, "cortex-blocks", TENANT, &data);
    assert_eq!(metas, 3, "three 2h blocks of the 6h");
    let expected = read_samples(&source, BASE_MS, BASE_MS + 6 * HOUR_MS);
    assert!(total_samples(&expected) > 0);
    let sink = start_prometheus_on("blocks-tls-sink", &data, &[]);
    assert_same_data(
        &expected,
        &read_samples(&sink, BASE_MS, BASE_MS + 6 * HOUR_MS),
    );
}

/// What an incremental run does: the same import later, over a range grown past where the
/// first ended. Only the new part is read; the 2h block range the first run's end cut gets a
/// second block beside the first, and a Prometheus on the directory serves the whole range
/// exactly.
#[test]
fn an_import_grown_later_writes_only_the_new_part_beside_the_blocks_there() {
    let source = history_source("blocks-grow-src", 6, false);
    let data = temp_dir("blocks-grow-data");
    let state = temp_dir("blocks-grow-state");
    let import = |hours: i64| {
        Run::blocks(&source.url("/api/v1/read"), &data)
            .between(BASE_MS, BASE_MS + hours * HOUR_MS)
            .state(&state)
            .exec()
    };
    let (code, log) = import(3);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("blocks   2 written into"), "{log}");
    let first = blocks_in(&data);
    let (code, log) = import(6);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("windows  2 done now, ")
            && !log.contains(", 0 done before")
            && log.contains("blocks   2 written into"),
        "{log}"
    );
    let all = blocks_in(&data);
    assert_eq!(all.len(), 4);
    assert!(first.iter().all(|b| all.contains(b)), "{first:?} {all:?}");
    let ranges = block_ranges(&data);
    assert!(ranges.contains(&(BASE_MS + 2 * HOUR_MS, BASE_MS + 3 * HOUR_MS)));
    assert!(ranges.contains(&(BASE_MS + 3 * HOUR_MS, BASE_MS + 4 * HOUR_MS)));
    let expected = read_samples(&source, BASE_MS, BASE_MS + 6 * HOUR_MS);
    let sink = start_prometheus_on("blocks-grow-sink", &data, &[]);
    assert_same_data(
        &expected,
        &read_samples(&sink, BASE_MS, BASE_MS + 6 * HOUR_MS),
    );
}
