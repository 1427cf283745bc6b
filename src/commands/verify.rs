//! `promimport verify`: compares, window by window and series by series, what the source holds
//! with what the destination holds.

use crate::cli::VerifyArgs;
use crate::error::{Error, Result};
use crate::ledger::configmap::{ConfigMapLedger, LedgerView};
use crate::local::EXIT_FAILED;
use crate::plan::{Window, check_plan, parse_window_length, plan_windows};
use crate::relabel::LabelRules;
use crate::selector::{ALL_SERIES, parse_selector};
use crate::timespec::{format_ms, now_ms, parse_time};
use crate::verify::{DestinationReader, Precision, WindowCheck, compare, read_digests};
use crate::worker::{WindowReader, WorkerSettings};

use super::{cluster, json_output};

/// Verifies a range (--start, --end, --window) or, with --import, what an import in the
/// cluster covered (its range, window, selectors and relabelling from its ledger, where the
/// result is recorded too). Exit 1 when a window does not match.
pub async fn verify(args: VerifyArgs) -> Result<i32> {
    let json = json_output(&args.output)?;
    let mut settings = args.options.settings()?;
    let (range, window_ms, ledger) = match &args.import {
        Some(import) => {
            let (client, namespace) = cluster(&args.cluster).await?;
            let ledger = ConfigMapLedger::new(client, &namespace, &format!("promimport-{import}"));
            let view = ledger.load().await?.ok_or_else(|| Error::ClusterState {
                object: format!("import {import}"),
                reason: format!(
                    "not found in namespace {namespace}; `promimport status -n {namespace}` lists the imports"
                ),
            })?;
            let (range, window_ms) = from_ledger(&view, &mut settings)?;
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
    };
    check_plan(range, window_ms)?;
    let (checks, precision) = check_windows(&settings, range, window_ms, json).await?;
    let bad = checks.iter().filter(|c| !c.is_ok()).count();
    if let Some(ledger) = ledger {
        record(&ledger, &checks, precision).await?;
    }
    if json {
        let text =
            serde_json::to_string_pretty(&checks).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{text}");
    } else if bad == 0 {
        println!(
            "verify: all {} windows match ({})",
            checks.len(),
            match precision {
                Precision::Exact => "bit for bit",
                _ =>
                    "timestamps of every sample but NaN; values are not compared through a query API",
            }
        );
    } else {
        println!(
            "verify: {bad} of {} windows do NOT match; re-run the import for them (promimport run resumes only windows not done: give a new --state)",
            checks.len()
        );
    }
    Ok(if bad == 0 { 0 } else { EXIT_FAILED })
}

/// An import's range (an incremental one ends where its done windows do), window, selectors
/// and relabelling, as its ledger holds them.
fn from_ledger(view: &LedgerView, settings: &mut WorkerSettings) -> Result<(Window, i64)> {
    let end = view
        .range_end_ms
        .or_else(|| view.done_windows().iter().map(|w| w.end_ms).max())
        .unwrap_or(view.range_start_ms);
    settings.selectors = view
        .spec
        .selectors
        .iter()
        .map(|s| parse_selector(s))
        .collect::<Result<_>>()?;
    if settings.selectors.is_empty() {
        settings.selectors = vec![parse_selector(ALL_SERIES)?];
    }
    settings.labels = LabelRules {
        drop: view.spec.drop_labels.clone(),
        set: view
            .spec
            .set_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Ok((
        Window::new(view.range_start_ms, end)?,
        view.spec.window_ms()?,
    ))
}

/// Compares every window of the range; prints a table row per window unless `json`.
async fn check_windows(
    settings: &WorkerSettings,
    range: Window,
    window_ms: i64,
    json: bool,
) -> Result<(Vec<WindowCheck>, Precision)> {
    let source = WindowReader::new(
        &settings.source,
        settings.selectors.clone(),
        settings.labels.clone(),
        settings,
    )?;
    let dest = DestinationReader::new(settings)?;
    let precision = dest.precision();
    let mut checks = Vec::new();
    if !json {
        println!("{:<50} {:>10} {:>10}  RESULT", "WINDOW", "SOURCE", "DEST");
    }
    for window in plan_windows(range, window_ms, &[]) {
        let source_digests = read_digests(&source, window, precision).await?;
        let dest_digests = dest.digests(window).await?;
        let check = compare(window, &source_digests, &dest_digests);
        if !json {
            println!(
                "{:<50} {:>10} {:>10}  {}",
                window.to_string(),
                check.source_samples,
                check.dest_samples,
                check.describe()
            );
        }
        checks.push(check);
    }
    Ok((checks, precision))
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
            "mismatched": checks.iter().filter(|c| !c.is_ok()).count(),
            "compared": if precision == Precision::Exact { "every value, bit for bit" } else { "timestamps" },
            "first_mismatches": mismatched,
        }))
        .await
}
