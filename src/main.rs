//! The command line: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use promimport::ledger::file::ImportIdentity;
use promimport::ledger::{LedgerEntry, WindowStatus};
use promimport::local::{EXIT_FAILED, EXIT_REJECTED, LocalRun, now_ms, run_local};
use promimport::plan::Window;
use promimport::timespec::{format_ms, parse_duration, parse_time};
use promimport::worker::options::WorkerOptions;
use promimport::worker::{LiveCounters, Worker};

#[derive(Parser)]
#[command(
    version,
    about = "Moves Prometheus history into any remote-write receiver, exactly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import a time range from a remote read source into a remote write destination, here.
    Run(Box<RunArgs>),
    /// Import one window configured by PROMIMPORT_* environment variables (what a Job runs);
    /// prints one JSON line.
    #[command(
        long_about = "Import one window, configured entirely by environment variables, and print \
one JSON line (the ledger entry) on stdout. This is what each Kubernetes Job runs.\n\n\
Every option of `promimport run` is read from PROMIMPORT_<OPTION> (--dest-header becomes \
PROMIMPORT_DEST_HEADER, --match becomes PROMIMPORT_MATCH); list values hold one item per line. \
The window is PROMIMPORT_WINDOW_START and PROMIMPORT_WINDOW_END (end excluded). \
Exit codes: 0 every sample accepted, 3 samples rejected or skipped, 1 failed."
    )]
    Worker,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    options: WorkerOptions,

    /// Start of the range: RFC 3339, unix seconds, `now` or `now-10d`
    #[arg(long, value_name = "TIME")]
    start: String,

    /// End of the range, excluded
    #[arg(long, value_name = "TIME", default_value = "now")]
    end: String,

    /// Window (shard) length; windows align to multiples of it, like TSDB blocks
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    window: String,

    /// Windows imported at once; Prometheus serves 10 remote reads at once by default
    #[arg(long, value_name = "N", default_value_t = 2)]
    parallel: usize,

    /// Tries per window after a transient failure (a cut stream, a restart)
    #[arg(long, value_name = "N", default_value_t = 3)]
    window_attempts: usize,

    /// State directory for resuming [default: under $XDG_STATE_HOME or ~/.local/state]
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    promimport::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED as u8)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => run(*args).await,
        Command::Worker => worker().await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let settings = args.options.settings()?;
    let now = now_ms();
    let range = Window::new(
        parse_time("--start", &args.start, now)?,
        parse_time("--end", &args.end, now)?,
    )?;
    let window = parse_duration("--window", &args.window)?;
    let window_ms = i64::try_from(window.as_millis()).context("--window is too long")?;
    if args.parallel == 0 || args.parallel > 64 {
        anyhow::bail!("invalid --parallel {}: give 1 to 64", args.parallel);
    }
    if args.parallel > 10 {
        tracing::warn!(
            parallel = args.parallel,
            "Prometheus serves 10 remote reads at once by default (--storage.remote.read-concurrent-limit); more windows will queue at the source"
        );
    }
    let identity = ImportIdentity {
        source: settings.source.build()?.display_url(),
        dest: settings.dest.build()?.display_url(),
        selectors: settings.selectors.iter().map(ToString::to_string).collect(),
        labels: settings.labels.clone(),
        dest_headers_crc32c: crc32c::crc32c(settings.dest.headers.join("\n").as_bytes()),
    };
    let state_dir = match args.state {
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
        parallel: args.parallel,
        window_attempts: args.window_attempts.max(1),
        state_dir,
    };
    let summary = run_local(&settings, &local, &identity).await?;
    println!("{summary}");
    Ok(summary.exit_code())
}

async fn worker() -> anyhow::Result<i32> {
    let options = WorkerOptions::from_env()?;
    let settings = options.settings()?;
    let now = now_ms();
    let start = options
        .window_start
        .as_deref()
        .context("PROMIMPORT_WINDOW_START is not set: give the window's start")?;
    let end = options
        .window_end
        .as_deref()
        .context("PROMIMPORT_WINDOW_END is not set: give the window's end")?;
    let window = Window::new(
        parse_time("PROMIMPORT_WINDOW_START", start, now)?,
        parse_time("PROMIMPORT_WINDOW_END", end, now)?,
    )?;
    let worker = Worker::new(&settings)?;
    let outcome = worker
        .import_window(window, std::sync::Arc::new(LiveCounters::default()))
        .await;
    let status = WindowStatus::of(&outcome);
    tracing::info!(
        window = %window,
        status = ?status,
        read = outcome.samples_read,
        written = outcome.samples_written,
        rejected = outcome.samples_rejected(),
        skipped = outcome.samples_skipped(),
        error = outcome.error.as_ref().map(|e| e.message.as_str()),
        "worker finished"
    );
    let entry = LedgerEntry {
        window,
        status,
        finished_at: format_ms(now_ms()),
        outcome,
    };
    println!("{}", serde_json::to_string(&entry)?);
    Ok(match status {
        WindowStatus::Done => 0,
        WindowStatus::Rejected => EXIT_REJECTED,
        WindowStatus::Failed => EXIT_FAILED,
    })
}
