//! `promimport verify`: compares, window by window and series by series, what the source holds
//! with what the destination holds.

use std::time::Duration;

use tokio::time::Instant;

use crate::cli::VerifyArgs;
use crate::endpoint::EndpointConfig;
use crate::error::{Error, Result};
use crate::kube::ledger::{ConfigMapLedger, LedgerView};
use crate::local::EXIT_FAILED;
use crate::plan::{check_plan, parse_window_length, plan_windows};
use crate::selector::{ALL_SERIES, parse_selector};
use crate::timespec::{format_ms, now_ms, parse_duration, parse_time};
use crate::verify::{DestinationReader, Precision, WindowCheck, compare, read_digests};
use crate::window::Window;
use crate::worker::{WindowReader, WorkerSettings};

use super::{cluster, json_output};

/// Verifies a range (--start, --end, --window) or, with --import, what an import in the
/// cluster covered (its range, window, selectors and relabelling from its ledger, where the
/// result is recorded too). Exit 1 when a window does not match, 4 when everything compared
/// matches but some samples could not be compared.
pub async fn verify(args: VerifyArgs) -> Result<i32> {
    let json = json_output(&args.output)?;
    let mut settings = args.options.settings()?;
    let (range, window_ms, ledger) = range_to_verify(&args, &mut settings).await?;
    check_plan(range, window_ms)?;
    let wait = match &args.wait {
        Some(wait) => parse_duration("--wait", wait)?,
        None => Duration::ZERO,
    };
    let (checks, precision) = check_range(&settings, range, window_ms, wait, json).await?;
    let bad = checks.iter().filter(|c| !c.matches()).count();
    let (nan, histograms) = checks.iter().fold((0, 0), |(n, h), c| {
        (n + c.not_verified_nan, h + c.not_verified_histograms)
    });
    if let Some(ledger) = ledger {
        record(&ledger, &checks, precision).await?;
    }
    if json {
        let text =
            serde_json::to_string_pretty(&checks).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{text}");
    } else if bad > 0 {
        println!(
            "verify: {bad} of {} windows do NOT match. {}",
            checks.len(),
            advice(&settings, &checks, wait)
        );
    } else if nan + histograms > 0 {
        let mut hidden = Vec::new();
        if nan > 0 {
            hidden.push(format!("{nan} NaN samples and stale markers"));
        }
        if histograms > 0 {
            hidden.push(format!("{histograms} native histogram samples"));
        }
        println!(
            "verify: NOT VERIFIED: what could be compared matches in all {} windows, but the \
             source's {} could not be compared: the destination's query API does not show them \
             exactly. Verify through the destination's remote read API (--dest ending in \
             /api/v1/read) to compare every sample.",
            checks.len(),
            hidden.join(" and ")
        );
    } else {
        println!(
            "verify: all {} windows match ({})",
            checks.len(),
            match precision {
                Precision::Exact => "bit for bit",
                _ => "timestamps of every sample; values are not compared through a query API",
            }
        );
    }
    Ok(if bad > 0 {
        EXIT_FAILED
    } else if nan + histograms > 0 {
        EXIT_NOT_VERIFIED
    } else {
        0
    })
}

/// Exit code when every sample compared matched but some could not be compared.
pub const EXIT_NOT_VERIFIED: i32 = 4;

/// How often `--wait` checks again: often enough to end soon after a store-gateway sync,
/// rarely enough that the source barely notices.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// Checks every window, then, within `wait`, the ones that did not match again.
async fn check_range(
    settings: &WorkerSettings,
    range: Window,
    window_ms: i64,
    wait: Duration,
    json: bool,
) -> Result<(Vec<WindowCheck>, Precision)> {
    let source = WindowReader::source(settings)?;
    let dest = DestinationReader::new(settings)?;
    let precision = dest.precision();
    let deadline = Instant::now() + wait;
    let mut checks = Vec::new();
    if !json {
        println!("{:<50} {:>10} {:>10}  RESULT", "WINDOW", "SOURCE", "DEST");
    }
    for window in plan_windows(range, window_ms, &[]) {
        let check = check_window(&source, &dest, window, precision).await?;
        if !json {
            print_row(&check);
        }
        checks.push(check);
    }
    // Waiting helps a window that does not match yet; what cannot be compared stays so.
    loop {
        let bad = checks.iter().filter(|c| !c.matches()).count();
        let left = deadline.saturating_duration_since(Instant::now());
        if bad == 0 || left.is_zero() {
            break;
        }
        let pause = RECHECK_EVERY.min(left);
        eprintln!(
            "verify: {bad} windows do not match yet; checking them again in {}s ({}s left of --wait)",
            pause.as_secs(),
            left.as_secs()
        );
        tokio::time::sleep(pause).await;
        for check in checks.iter_mut().filter(|c| !c.matches()) {
            *check = check_window(&source, &dest, check.window, precision).await?;
            if !json && check.matches() {
                print_row(check);
            }
        }
    }
    Ok((checks, precision))
}

async fn check_window(
    source: &WindowReader,
    dest: &DestinationReader,
    window: Window,
    precision: Precision,
) -> Result<WindowCheck> {
    let source_digests = read_digests(source, window, precision).await?;
    let dest_digests = dest.digests(window).await?;
    Ok(compare(window, &source_digests, &dest_digests))
}

fn print_row(check: &WindowCheck) {
    println!(
        "{:<50} {:>10} {:>10}  {}",
        check.window.to_string(),
        check.source_samples,
        check.dest_samples,
        check.describe()
    );
}

/// What to do about windows that do not match. Cortex and Mimir answer queries for history
/// from the bucket, which queriers see only after the store-gateway's next sync: samples
/// imported minutes ago can be safe in the bucket and still missing from every answer.
fn advice(settings: &WorkerSettings, checks: &[WindowCheck], wait: Duration) -> String {
    let only_missing = checks
        .iter()
        .filter(|c| !c.matches())
        .all(|c| c.extra == 0 && c.differing_series == 0);
    let rerun = "re-run the import for them (promimport run resumes only windows not done: give a new --state)";
    if !(only_missing && serves_history_from_a_bucket(&settings.dest)) {
        return format!("{rerun}.");
    }
    let what_to_do = if wait.is_zero() {
        format!(
            "If the import finished less than that ago, the samples may be safe in the bucket and \
             not visible yet: run verify again with --wait 30m. Otherwise {rerun}."
        )
    } else {
        format!(
            "They were still missing after --wait {}s: unless the import finished less than a sync \
             interval before verify began, they are not there; {rerun}.",
            wait.as_secs()
        )
    };
    format!(
        "Only samples are missing, from a Cortex or Mimir: these serve history older than the \
         ingesters' retention from the bucket, and queries see newly shipped blocks only after the \
         store-gateway's next sync (`blocks_storage.bucket_store.sync_interval`, 15m by default; with \
         the bucket index, also the compactor's `cleanup_interval`). {what_to_do}"
    )
}

/// The range and window length to compare, and the ledger to record the result in: from the
/// import's ledger with `--import` (its selectors and relabelling go into `settings` too), else
/// from the flags.
async fn range_to_verify(
    args: &VerifyArgs,
    settings: &mut WorkerSettings,
) -> Result<(Window, i64, Option<ConfigMapLedger>)> {
    Ok(match &args.import {
        Some(import) => {
            let (client, namespace) = cluster(&args.cluster).await?;
            let ledger = ConfigMapLedger::new(client, &namespace, &format!("promimport-{import}"));
            let view = ledger.load().await?.ok_or_else(|| Error::ClusterState {
                object: format!("import {import}"),
                reason: format!(
                    "not found in namespace {namespace}; `promimport status -n {namespace}` lists the imports"
                ),
            })?;
            let (range, window_ms) = from_ledger(&view, settings)?;
            (range, window_ms, Some(ledger))
        }
        None => {
            let start = args
                .start
                .as_deref()
                .ok_or_else(|| Error::invalid("--start", "", "give --start, or --import NAME"))?;
            let now = now_ms();
            let range = Window::new(
                parse_time("--start", start, now)?,
                parse_time("--end", &args.end, now)?,
            )?;
            (range, parse_window_length("--window", &args.window)?, None)
        }
    })
}

/// Cortex and Mimir: a tenant header, or their `/prometheus` API prefix.
fn serves_history_from_a_bucket(dest: &EndpointConfig) -> bool {
    let tenant = dest
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("X-Scope-OrgID"));
    let prefix = reqwest::Url::parse(&dest.url).is_ok_and(|u| u.path().starts_with("/prometheus/"));
    tenant || prefix
}

/// An import's range (an incremental one ends where its done windows do), window, selectors
/// and relabelling, as its ledger holds them.
fn from_ledger(view: &LedgerView, settings: &mut WorkerSettings) -> Result<(Window, i64)> {
    let end = view
        .range_end_ms
        .or_else(|| view.done_windows().iter().map(|w| w.end_ms).max())
        .unwrap_or(view.range_start_ms);
    settings.selectors = view.spec.parsed_selectors()?;
    if settings.selectors.is_empty() {
        settings.selectors = vec![parse_selector(ALL_SERIES)?];
    }
    settings.labels = view.spec.label_rules();
    Ok((
        Window::new(view.range_start_ms, end)?,
        view.spec.window_ms()?,
    ))
}

/// Records the result in the import's ledger (key `verify`).
async fn record(
    ledger: &ConfigMapLedger,
    checks: &[WindowCheck],
    precision: Precision,
) -> Result<()> {
    let mismatched: Vec<String> = checks
        .iter()
        .filter(|c| !c.is_ok())
        .take(20)
        .map(|c| format!("{} {}", c.window, c.describe()))
        .collect();
    ledger
        .record_verify(&serde_json::json!({
            "at": format_ms(now_ms()),
            "windows": checks.len(),
            "mismatched": checks.iter().filter(|c| !c.matches()).count(),
            "not_verified": {
                "nan_and_stale_markers": checks.iter().map(|c| c.not_verified_nan).sum::<u64>(),
                "native_histograms": checks.iter().map(|c| c.not_verified_histograms).sum::<u64>(),
            },
            "compared": if precision == Precision::Exact { "every value, bit for bit" } else { "timestamps" },
            "first_mismatches": mismatched,
        }))
        .await
}
