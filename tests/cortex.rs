//! Cortex, where our users' history goes: a real Cortex v1.19.1 (../shared/cortex) with its
//! default limits (25 000 samples/s, burst 50 000, 30 labels per series), the tenant header set
//! as Opni sets it, and what landed read back through Cortex's own remote read and compared
//! series by series, sample by sample, bit by bit. The stories that tests/cortex_answers.rs also
//! tells to Cortex's recorded answers are written once, in `common::cortex_stories`.

use promimport_test_support as common;

use common::cortex::{Cortex, opni_certificates};
use common::cortex_stories::{self as stories, CortexLike, TENANT, tenant_header, verify};
use common::*;

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn an_import_at_the_default_rate_limit_lands_exactly_paced_and_verify_passes() {
    let source = recent_history_source("cortex-exact-src", 26, 1);
    let cortex = Cortex::start("cortex-exact", &[]);
    stories::an_import_at_the_rate_limit_is_paced_lands_exactly_and_verifies(&source, &cortex);
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn into_a_tenant_with_live_data_and_no_out_of_order_window_the_import_stops_with_the_cortex_fix() {
    let source = recent_history_source("cortex-ooo-src", 26, 1);
    let cortex = Cortex::start("cortex-ooo", &[("CORTEX_OOO_WINDOW", "0s")]);
    stories::into_live_data_without_an_out_of_order_window_the_import_stops_with_the_fix(
        &source, &cortex,
    );
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn series_over_the_label_limit_are_counted_exactly_and_every_other_series_lands() {
    let source = labels_source("cortex-labels-src", 40, 7);
    let cortex = Cortex::start("cortex-labels", &[]);
    stories::series_over_the_label_limit_are_counted_and_every_other_series_lands(&source, &cortex);
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn verify_wait_sees_history_through_a_store_gateway_sync() {
    // Ingesters ship blocks every 5 s and then drop the old ones; queriers see them again only
    // after the store-gateway's sync, every 90 s here (15 minutes by default).
    let source = recent_history_source("cortex-wait-src", 26, 1);
    let cortex = Cortex::start(
        "cortex-wait",
        &[
            ("CORTEX_SHIP_INTERVAL", "5s"),
            ("CORTEX_SYNC_INTERVAL", "90s"),
        ],
    );
    let (code, log) = stories::import(&source, &cortex, &[]);
    assert_eq!(code, Some(0), "{log}");
    let (start, end) = summary_range(&log);
    let expected = total_samples(&read_samples(&source, start, end));
    // Wait until part of the import has left the ingesters for the bucket, unseen. When that
    // happens depends on Cortex's own timers (head compaction every minute, then shipping); on
    // a loaded machine the unseen stretch can fall between two looks, so after 6 minutes the
    // test goes on without it and checks what a user needs either way: --wait ends in a match.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(360);
    let mut unseen = false;
    while std::time::Instant::now() < deadline {
        if total_samples(&cortex.read_samples(TENANT, start, end)) < expected {
            unseen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let (code, said) = verify(&source, &cortex, start, end, &["--wait", "5m"]);
    assert_eq!(code, Some(0), "{said}");
    if unseen {
        assert!(
            said.contains("do not match yet; checking them again"),
            "{said}"
        );
    } else {
        eprintln!("Cortex showed every sample throughout; the wait loop was not needed this time");
    }
    assert!(said.contains("match (bit for bit)"), "{said}");
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn verify_without_wait_says_history_may_not_be_visible_yet_and_how_long() {
    let source = recent_history_source("cortex-vis-src", 26, 1);
    let cortex = Cortex::start("cortex-vis", &[]);
    // Nothing imported: every sample is missing, as it is when the import has just shipped.
    let now = promimport::timespec::now_ms();
    let (code, said) = verify(&source, &cortex, now - 30 * HOUR_MS, now, &[]);
    assert_eq!(code, Some(1), "{said}");
    for needle in ["sync_interval", "15m", "--wait 30m", "re-run the import"] {
        assert!(said.contains(needle), "names {needle:?}: {said}");
    }
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn opni_mutual_tls_a_name_mismatch_fails_at_once_naming_the_certificate_and_the_server_name_lands_exactly()
 {
    let tls = opni_certificates("cortex-mtls");
    let cortex = Cortex::start("cortex-mtls", &[("CORTEX_TLS_DIR", tls.to_str().unwrap())]);
    assert!(
        cortex.url.starts_with("https://127.0.0.1:"),
        "{}",
        cortex.url
    );
    let source = recent_history_source("cortex-mtls-src", 6, 1);
    let file = |f: &str| tls.join(f).to_str().unwrap().to_string();
    let client = [
        "--dest-ca-file".to_string(),
        file("ca.crt"),
        "--dest-cert-file".to_string(),
        file("client.crt"),
        "--dest-key-file".to_string(),
        file("client.key"),
    ];
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    let run = |name: &str, more: &[&str]| {
        Run::new(&source.url("/api/v1/read"), &cortex.push_url())
            .flags(&["--start", "now-8h", "--end", "now"])
            .flag("--dest-header", &tenant_header())
            .flags(&client)
            .flags(more)
            .state(&temp_dir(name))
            .exec()
    };
    // The URL's host (127.0.0.1, as cortex-distributor.opni.svc from another namespace) is not
    // in the certificate: a permanent problem, said at once with the names it holds.
    let started = std::time::Instant::now();
    let (code, log) = run("cortex-mtls-mismatch", &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("TLS certificate problem"), "{log}");
    assert!(
        log.contains("cortex-distributor"),
        "the names in the certificate: {log}"
    );
    assert!(log.contains("--dest-tls-server-name"), "{log}");
    assert!(!log.contains("retrying"), "never retried: {log}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{log}"
    );
    // With the name to verify, the client certificate is accepted and the data lands.
    let (code, log) = run(
        "cortex-mtls-named",
        &["--dest-tls-server-name", "cortex-distributor"],
    );
    assert_eq!(code, Some(0), "{log}");
    let (start, end) = summary_range(&log);
    let expected = read_samples(&source, start, end);
    assert!(total_samples(&expected) > 10_000, "the range holds history");
    let reader = mtls_client(&tls);
    assert_same_data(
        &expected,
        &cortex.read_samples_with(&reader, TENANT, start, end),
    );
    // verify and query take the same options.
    let (code, said) = verify(
        &source,
        &cortex,
        start,
        end,
        &[&client[..], &["--dest-tls-server-name", "cortex-querier"]].concat(),
    );
    assert_eq!(code, Some(0), "{said}");
    let base = format!("{}/prometheus", cortex.url);
    let header = tenant_header();
    let out = promimport(
        &[
            &[
                "query",
                "count(count_over_time(test_requests_total[3h]))",
                "--dest",
                &base,
                "--dest-header",
                &header,
            ][..],
            &client,
            &["--dest-tls-server-name", "cortex-querier", "-o", "json"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // An instant vector, as Prometheus' API shapes it: one `value` per series.
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["result"][0]["value"][1], "16",
        "16 series of test_requests_total: {answer}"
    );
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn a_request_larger_than_the_tenants_burst_is_split_until_it_passes() {
    let source = recent_history_source("cortex-burst-src", 26, 1);
    let cortex = Cortex::start("cortex-burst", &[("CORTEX_INGESTION_BURST", "20000")]);
    stories::a_request_larger_than_the_burst_is_split_until_it_passes(&source, &cortex);
}

#[test]
#[ignore = "needs CORTEX_BIN (a Cortex v1.19 binary)"]
fn without_the_tenant_every_command_says_it_is_the_tenant_that_is_missing() {
    let source = recent_history_source("cortex-tenant-src", 2, 1);
    let cortex = Cortex::start("cortex-tenant", &[]);
    stories::without_the_tenant_every_command_says_so(&source, &cortex);
}
