//! `promimport run`: an import in this process, with a file ledger.

use std::path::PathBuf;

use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::ledger::file::ImportIdentity;
use crate::local::{LocalRun, run_local};
use crate::plan::{check_plan, parse_window_length};
use crate::timespec::{now_ms, parse_time};
use crate::window::Window;
use crate::worker::options::WorkerOptions;

/// Runs `promimport run`; `import start --local` runs the same with a target's settings.
pub async fn run(args: RunArgs) -> Result<i32> {
    import_here(
        &args.options,
        &args.start,
        &args.end,
        &args.window,
        args.parallel,
        args.window_attempts,
        args.state,
    )
    .await
}

/// Imports a range here, in windows, `parallel` at once; prints the summary and returns the
/// exit code it calls for.
pub async fn import_here(
    options: &WorkerOptions,
    start: &str,
    end: &str,
    window: &str,
    parallel: usize,
    window_attempts: usize,
    state: Option<PathBuf>,
) -> Result<i32> {
    let settings = options.settings()?;
    let now = now_ms();
    let range = Window::new(
        parse_time("--start", start, now)?,
        parse_time("--end", end, now)?,
    )?;
    let window_ms = parse_window_length("--window", window)?;
    check_plan(range, window_ms)?;
    if settings.blocks.is_some() {
        crate::blocks::check_window("--window", window, window_ms)?;
    }
    if parallel == 0 || parallel > 64 {
        return Err(Error::invalid(
            "--parallel",
            parallel.to_string(),
            "give 1 to 64",
        ));
    }
    if parallel > 10 {
        tracing::warn!(
            parallel,
            "Prometheus serves 10 remote reads at once by default (--storage.remote.read-concurrent-limit); more windows will queue at the source"
        );
    }
    let identity = ImportIdentity {
        source: settings.source.display_url()?,
        dest: match &settings.blocks {
            Some(target) => target.describe(),
            None => settings.dest.display_url()?,
        },
        selectors: settings.selectors.iter().map(ToString::to_string).collect(),
        labels: settings.labels.clone(),
        dest_headers_crc32c: crc32c::crc32c(
            settings
                .dest
                .headers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
                .as_bytes(),
        ),
    };
    let state_dir = match state {
        Some(dir) => dir,
        None => {
            let dir = identity.default_state_dir()?;
            eprintln!(
                "state: {} (run the same command again to resume)",
                dir.display()
            );
            dir
        }
    };
    let local = LocalRun {
        range,
        window_ms,
        parallel,
        window_attempts: window_attempts.max(1),
        state_dir,
    };
    let summary = run_local(&settings, &local, &identity).await?;
    println!("{summary}");
    Ok(summary.exit_code())
}
