//! The command line: parses arguments and hands over to the library.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use promimport::endpoint::EndpointConfig;
use promimport::kube::ledger::{ConfigMapLedger, ImportState};
use promimport::kube::scheduler::SchedulerOptions;
use promimport::kube::{self, control, scheduler};
use promimport::ledger::file::ImportIdentity;
use promimport::ledger::{LedgerEntry, WindowStatus};
use promimport::local::{EXIT_FAILED, EXIT_REJECTED, LocalRun, run_local};
use promimport::plan::{Window, check_plan, parse_window_length, plan_windows};
use promimport::query::QueryClient;
use promimport::spec::{EndpointSpec, ImportSpec, SecretKeyRef};
use promimport::targets::TargetStore;
use promimport::timespec::{format_ms, now_ms, parse_duration, parse_time};
use promimport::worker::options::WorkerOptions;
use promimport::worker::{LiveCounters, WindowReader, Worker};

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
    /// Run an import on Kubernetes: one Job per window, progress in a ConfigMap ledger. Exits
    /// when the import is finished, failed or stopped; run it again to continue.
    Schedule(ScheduleArgs),
    /// Show imports in the cluster: windows done / running / failed / pending, samples, errors.
    Status(StatusArgs),
    /// Stop an import: no new Jobs, running ones deleted; what was written stays.
    Stop(ControlArgs),
    /// Continue a stopped or failed import (windows that failed are imported again).
    Resume(ResumeArgs),
    /// Compare, window by window and series by series, what the source holds with what the
    /// destination holds. --dest is the destination's remote read URL (every value, bit for bit)
    /// or its query API base (VictoriaMetrics: timestamps, NaN left out). Exit 1 on a mismatch.
    Verify(Box<VerifyArgs>),
    /// Run a PromQL query against the destination's query API and print the result.
    Query(QueryArgs),
    /// List the Prometheus servers in the cluster (monitoring.coreos.com/v1 Prometheus), each
    /// with a remote read URL that works from inside the cluster.
    Discover(DiscoverArgs),
    /// Named sources and destinations that imports start from.
    #[command(subcommand)]
    Target(TargetCommand),
    /// Start imports of targets.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Add a target (checks the URLs, the name and, in a cluster, the Secrets it names)
    Add(Box<TargetArgs>),
    /// Change a target's given fields; refused while an import from it runs
    Edit(Box<TargetArgs>),
    /// List targets
    List {
        #[command(flatten)]
        scope: TargetScope,
        /// table or json
        #[arg(short, long, default_value = "table")]
        output: String,
    },
    /// Show one target as YAML
    Get {
        name: String,
        #[command(flatten)]
        scope: TargetScope,
    },
    /// Remove a target; refused while an import from it runs
    Remove {
        name: String,
        #[command(flatten)]
        scope: TargetScope,
    },
}

#[derive(clap::Args)]
struct TargetScope {
    /// Namespace of the target ConfigMaps [default: the current context's]
    #[arg(short, long, env = "PROMIMPORT_NAMESPACE")]
    namespace: Option<String>,
    /// Keep targets in a local directory instead of the cluster
    #[arg(long)]
    local: bool,
    /// The local directory [default: under $XDG_STATE_HOME or ~/.local/state]
    #[arg(long, value_name = "DIR", requires = "local")]
    state: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TargetArgs {
    /// DNS-safe name
    name: String,
    #[command(flatten)]
    scope: TargetScope,
    /// Remote read URL of the source
    #[arg(long, value_name = "URL")]
    source: Option<String>,
    /// Take the source from discovery: NAMESPACE/NAME of a Prometheus object
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "source")]
    from_discovery: Option<String>,
    /// Remote write URL of the destination
    #[arg(long, value_name = "URL")]
    dest: Option<String>,
    /// Series selector; repeatable (replaces the target's on edit)
    #[arg(long = "match", value_name = "SELECTOR")]
    selectors: Vec<String>,
    /// Label to remove from every series; repeatable
    #[arg(long, value_name = "NAME")]
    drop_label: Vec<String>,
    /// Label to set on every series; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    set_label: Vec<String>,
    /// Header for the source; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    source_header: Vec<String>,
    /// Header for the destination, e.g. X-Scope-OrgID=tenant; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    dest_header: Vec<String>,
    /// Secret with the source's bearer token
    #[arg(long, value_name = "SECRET/KEY")]
    source_bearer_secret: Option<String>,
    /// Secret with the destination's bearer token
    #[arg(long, value_name = "SECRET/KEY")]
    dest_bearer_secret: Option<String>,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import a target's history over a range: in the cluster through the scheduler, or here
    /// with --local
    Start(Box<ImportStartArgs>),
}

#[derive(clap::Args)]
struct ImportStartArgs {
    target: String,
    #[command(flatten)]
    scope: TargetScope,
    /// The import's name [default: the target's]
    #[arg(long)]
    name: Option<String>,
    /// Start of the range: RFC 3339, unix seconds, `now` or `now-10d`
    #[arg(long, value_name = "TIME", default_value = "now-10d")]
    start: String,
    /// End of the range, excluded
    #[arg(long, value_name = "TIME", default_value = "now")]
    end: String,
    /// Window length
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    window: String,
    /// Windows at once
    #[arg(long, value_name = "N", default_value_t = 2)]
    parallelism: usize,
    /// The worker image (cluster)
    #[arg(long)]
    image: Option<String>,
    #[command(flatten)]
    scheduling: SchedulingArgs,
}

#[derive(clap::Args)]
struct DiscoverArgs {
    /// Only this namespace [default: every namespace]
    #[arg(short, long)]
    namespace: Option<String>,
    /// table or json
    #[arg(short, long, default_value = "table")]
    output: String,
}

#[derive(clap::Args)]
struct VerifyArgs {
    #[command(flatten)]
    options: WorkerOptions,
    /// An import in the cluster: its range, window, selectors and relabelling come from its
    /// ledger, and the result is recorded there (key `verify`). --source and --dest are still
    /// given: URLs reachable from where verify runs (a port-forward, say).
    #[arg(long, value_name = "NAME")]
    import: Option<String>,
    /// Namespace of the import [default: the current context's]
    #[arg(short, long, env = "PROMIMPORT_NAMESPACE", requires = "import")]
    namespace: Option<String>,
    /// Start of the range to verify (without --import)
    #[arg(long, value_name = "TIME", required_unless_present = "import")]
    start: Option<String>,
    /// End of the range, excluded
    #[arg(long, value_name = "TIME", default_value = "now")]
    end: String,
    /// Window length, as the import used
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    window: String,
    /// table or json
    #[arg(short, long, default_value = "table")]
    output: String,
}

#[derive(clap::Args)]
struct QueryArgs {
    /// PromQL expression
    expr: String,
    /// The query API's base: http://prometheus:9090, http://cortex/prometheus, http://vm:8428
    #[arg(long, value_name = "URL")]
    dest: String,
    /// Extra header, e.g. X-Scope-OrgID=tenant for Cortex; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    dest_header: Vec<String>,
    /// File holding a bearer token
    #[arg(long, value_name = "FILE")]
    dest_bearer_token_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify the server's certificate
    #[arg(long, value_name = "FILE")]
    dest_ca_file: Option<PathBuf>,
    /// Evaluate at this time [default: now]
    #[arg(long, value_name = "TIME", conflicts_with = "range")]
    at: Option<String>,
    /// Evaluate over a range: START END STEP
    #[arg(long, num_args = 3, value_names = ["START", "END", "STEP"])]
    range: Option<Vec<String>>,
    /// table or json
    #[arg(short, long, default_value = "table")]
    output: String,
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// Namespace [default: the current context's]
    #[arg(short, long, env = "PROMIMPORT_NAMESPACE")]
    namespace: Option<String>,
}

#[derive(clap::Args)]
struct SchedulingArgs {
    /// Active Jobs across all imports in the namespace
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_active_jobs: usize,

    /// How often the scheduler looks at the ledger and the Jobs
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    poll: String,

    /// Give up waiting after this long (the import goes on when scheduled again)
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,

    /// A ConfigMap that owns the ledger, so deleting it deletes the import's ledger and Jobs
    /// (the chart passes its own)
    #[arg(long, value_name = "NAME", env = "PROMIMPORT_OWNER_CONFIGMAP")]
    owner_configmap: Option<String>,
}

#[derive(clap::Args)]
struct ScheduleArgs {
    /// Import spec (YAML); `-` reads stdin [default: the PROMIMPORT_SPEC variable]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    scheduling: SchedulingArgs,
}

#[derive(clap::Args)]
struct StatusArgs {
    /// One import [default: all in the namespace]
    import: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// table or json
    #[arg(short, long, default_value = "table")]
    output: String,
    /// Keep showing progress, with a bar per import, until none shown is running
    #[arg(short, long)]
    watch: bool,
}

#[derive(clap::Args)]
struct ControlArgs {
    import: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args)]
struct ResumeArgs {
    import: String,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    scheduling: SchedulingArgs,
    /// Only mark the import runnable; a scheduler (the chart's Job or CronJob) does the rest
    #[arg(long)]
    detach: bool,
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
        Command::Schedule(args) => schedule(args).await,
        Command::Status(args) => status(args).await,
        Command::Stop(args) => stop(args).await,
        Command::Resume(args) => resume(args).await,
        Command::Verify(args) => verify(*args).await,
        Command::Query(args) => query(args).await,
        Command::Discover(args) => discover(args).await,
        Command::Target(command) => target(command).await,
        Command::Import(ImportCommand::Start(args)) => import_start(*args).await,
    }
}

async fn target_store(scope: &TargetScope) -> anyhow::Result<TargetStore> {
    if scope.local {
        let dir = match &scope.state {
            Some(dir) => dir.clone(),
            None => TargetStore::default_local_dir()?,
        };
        return Ok(TargetStore::Local { dir });
    }
    let client = kube::client().await?;
    let namespace = kube::namespace(&client, scope.namespace.as_deref());
    Ok(TargetStore::Cluster { client, namespace })
}

fn secret_ref(flag: &str, value: &str) -> anyhow::Result<SecretKeyRef> {
    match value.split_once('/') {
        Some((name, key)) if !name.is_empty() && !key.is_empty() => Ok(SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }),
        _ => anyhow::bail!(
            "invalid {flag} {value:?}: expected SECRET/KEY, e.g. cortex-credentials/token"
        ),
    }
}

fn headers(flag: &str, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => anyhow::bail!("invalid {flag} {pair:?}: expected NAME=VALUE"),
        })
        .collect()
}

async fn target(command: TargetCommand) -> anyhow::Result<i32> {
    match command {
        TargetCommand::Add(args) => save_target(*args, false).await,
        TargetCommand::Edit(args) => save_target(*args, true).await,
        TargetCommand::List { scope, output } => {
            let json = json_output(&output)?;
            let targets = target_store(&scope).await?.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&targets)?);
            } else {
                println!("{:<24} {:<60} DESTINATION", "NAME", "SOURCE");
                for t in &targets {
                    println!("{:<24} {:<60} {}", t.name, t.source.url, t.destination.url);
                }
            }
            Ok(0)
        }
        TargetCommand::Get { name, scope } => {
            let target = target_store(&scope).await?.get(&name).await?;
            print!("{}", serde_saphyr::to_string(&target)?);
            Ok(0)
        }
        TargetCommand::Remove { name, scope } => {
            target_store(&scope).await?.remove(&name).await?;
            println!("target {name} removed");
            Ok(0)
        }
    }
}

async fn save_target(args: TargetArgs, replace: bool) -> anyhow::Result<i32> {
    let store = target_store(&args.scope).await?;
    let mut target = if replace {
        store.get(&args.name).await?
    } else {
        let destination = args
            .dest
            .clone()
            .context("give --dest, the destination's remote write URL")?;
        let destination = EndpointSpec {
            url: destination,
            ..Default::default()
        };
        match (&args.source, &args.from_discovery) {
            (Some(url), _) => promimport::targets::Target {
                name: args.name.clone(),
                source: EndpointSpec {
                    url: url.clone(),
                    ..Default::default()
                },
                destination,
                selectors: Vec::new(),
                drop_labels: Vec::new(),
                set_labels: BTreeMap::new(),
            },
            (None, Some(object)) => {
                let (namespace, name) = object
                    .split_once('/')
                    .context("--from-discovery takes NAMESPACE/NAME")?;
                let found =
                    promimport::kube::discovery::discover(kube::client().await?, Some(namespace))
                        .await?;
                let prometheus = found
                    .prometheuses
                    .iter()
                    .find(|p| p.name == name)
                    .with_context(|| {
                        format!(
                            "no Prometheus {object} found; `promimport discover` lists them{}",
                            found.note.map(|n| format!(" ({n})")).unwrap_or_default()
                        )
                    })?;
                promimport::targets::from_discovery(&args.name, prometheus, destination)
            }
            (None, None) => anyhow::bail!("give --source URL or --from-discovery NAMESPACE/NAME"),
        }
    };
    if let (true, Some(url)) = (replace, &args.source) {
        target.source.url = url.clone();
    }
    if let (true, Some(url)) = (replace, &args.dest) {
        target.destination.url = url.clone();
    }
    if !args.selectors.is_empty() {
        target.selectors = args.selectors.clone();
    }
    if !args.drop_label.is_empty() {
        target.drop_labels = args.drop_label.clone();
    }
    target
        .set_labels
        .extend(promimport::relabel::LabelRules::parse_set(&args.set_label)?);
    target
        .source
        .headers
        .extend(headers("--source-header", &args.source_header)?);
    target
        .destination
        .headers
        .extend(headers("--dest-header", &args.dest_header)?);
    if let Some(secret) = &args.source_bearer_secret {
        target.source.bearer_token_secret = Some(secret_ref("--source-bearer-secret", secret)?);
    }
    if let Some(secret) = &args.dest_bearer_secret {
        target.destination.bearer_token_secret = Some(secret_ref("--dest-bearer-secret", secret)?);
    }
    store.save(&target, replace).await?;
    println!(
        "target {} {}",
        target.name,
        if replace { "changed" } else { "added" }
    );
    Ok(0)
}

async fn import_start(args: ImportStartArgs) -> anyhow::Result<i32> {
    let store = target_store(&args.scope).await?;
    let target = store.get(&args.target).await?;
    let mut spec = target.import_spec(
        args.name.as_deref().unwrap_or(&target.name),
        &args.start,
        &args.end,
    );
    spec.window = args.window.clone();
    spec.parallelism = args.parallelism;
    if let Some(image) = &args.image {
        spec.worker.image = image.clone();
    }
    spec.validate()?;
    match store {
        TargetStore::Cluster { client, .. } => {
            let options = scheduler_options(
                &client,
                &ClusterArgs {
                    namespace: args.scope.namespace.clone(),
                },
                &args.scheduling,
            )?;
            let state = scheduler::run(client, &spec, &options).await?;
            println!("import {}: {}", spec.name, state.as_str());
            Ok(state_exit_code(state))
        }
        TargetStore::Local { dir } => {
            if !target.secret_refs().is_empty() {
                anyhow::bail!(
                    "target {} names Secrets, which a local import cannot read: use promimport run with --*-bearer-token-file",
                    target.name
                );
            }
            // A local import is `promimport run` with the target's settings.
            let mut argv = vec![
                "promimport".to_string(),
                "run".into(),
                "--source".into(),
                spec.source.url.clone(),
                "--dest".into(),
                spec.destination.url.clone(),
            ];
            for (flag, values) in [
                ("--match", &spec.selectors),
                ("--drop-label", &spec.drop_labels),
            ] {
                for value in values.iter() {
                    argv.extend([flag.to_string(), value.clone()]);
                }
            }
            for (k, v) in &spec.set_labels {
                argv.extend(["--set-label".to_string(), format!("{k}={v}")]);
            }
            for (flag, endpoint) in [
                ("--source-header", &spec.source),
                ("--dest-header", &spec.destination),
            ] {
                for (k, v) in &endpoint.headers {
                    argv.extend([flag.to_string(), format!("{k}={v}")]);
                }
            }
            let state = dir.join("imports").join(&spec.name);
            argv.extend([
                "--start".into(),
                spec.start.clone(),
                "--end".into(),
                spec.end.clone(),
                "--window".into(),
                spec.window.clone(),
            ]);
            argv.extend([
                "--parallel".into(),
                spec.parallelism.to_string(),
                "--state".into(),
                state.display().to_string(),
            ]);
            match Cli::try_parse_from(argv)?.command {
                Command::Run(run_args) => run(*run_args).await,
                _ => anyhow::bail!("internal error: a local import did not parse as `run`"),
            }
        }
    }
}

async fn discover(args: DiscoverArgs) -> anyhow::Result<i32> {
    let json = json_output(&args.output)?;
    let client = kube::client().await?;
    let found = promimport::kube::discovery::discover(client, args.namespace.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{}", promimport::kube::discovery::render_table(&found));
    }
    Ok(0)
}

fn json_output(output: &str) -> anyhow::Result<bool> {
    match output {
        "table" => Ok(false),
        "json" => Ok(true),
        other => anyhow::bail!("invalid --output {other:?}: give table or json"),
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<i32> {
    use promimport::verify::{DestinationReader, Precision, compare, read_digests};
    let json = json_output(&args.output)?;
    let mut settings = args.options.settings()?;
    let now = now_ms();
    let (range, window_ms, ledger) = match &args.import {
        Some(import) => {
            let client = kube::client().await?;
            let namespace = kube::namespace(&client, args.namespace.as_deref());
            let ledger = ConfigMapLedger::new(client, &namespace, &format!("promimport-{import}"));
            let view = ledger.load().await?.with_context(|| {
                format!(
                    "no import {import} in namespace {namespace}; `promimport status` lists them"
                )
            })?;
            // An incremental import's range ends where its windows do.
            let end = view
                .range_end_ms
                .or_else(|| view.done_windows().iter().map(|w| w.end_ms).max())
                .unwrap_or(view.range_start_ms);
            settings.selectors = view
                .spec
                .selectors
                .iter()
                .map(|s| promimport::selector::parse_selector(s))
                .collect::<Result<_, _>>()?;
            if settings.selectors.is_empty() {
                settings.selectors = vec![promimport::selector::parse_selector(
                    promimport::selector::ALL_SERIES,
                )?];
            }
            settings.labels = promimport::relabel::LabelRules {
                drop: view.spec.drop_labels.clone(),
                set: view
                    .spec
                    .set_labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            (
                Window::new(view.range_start_ms, end)?,
                view.spec.window_ms()?,
                Some(ledger),
            )
        }
        None => {
            let start = args.start.as_deref().context("give --start, or --import")?;
            let range = Window::new(
                parse_time("--start", start, now)?,
                parse_time("--end", &args.end, now)?,
            )?;
            let window_ms = parse_window_length("--window", &args.window)?;
            (range, window_ms, None)
        }
    };
    let source = WindowReader::new(
        &settings.source,
        settings.selectors.clone(),
        settings.labels.clone(),
        &settings,
    )?;
    check_plan(range, window_ms)?;
    let dest = DestinationReader::new(&settings)?;
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
    let bad = checks.iter().filter(|c| !c.is_ok()).count();
    if let Some(ledger) = ledger {
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
                "mismatched": bad,
                "compared": if precision == Precision::Exact { "every value, bit for bit" } else { "timestamps" },
                "first_mismatches": mismatched,
            }))
            .await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else if bad == 0 {
        println!(
            "verify: all {} windows match ({})",
            checks.len(),
            if precision == Precision::Exact {
                "bit for bit"
            } else {
                "timestamps of every sample but NaN; values are not compared through a query API"
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

async fn query(args: QueryArgs) -> anyhow::Result<i32> {
    let json = json_output(&args.output)?;
    let client = QueryClient::new(&EndpointConfig {
        role: "--dest",
        url: args.dest.clone(),
        headers: args.dest_header.clone(),
        bearer_token_file: args.dest_bearer_token_file.clone(),
        ca_file: args.dest_ca_file.clone(),
        connect_timeout: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_secs(120),
        ..Default::default()
    })?;
    let now = now_ms();
    let result = match &args.range {
        Some(range) => {
            let start = parse_time("--range START", &range[0], now)?;
            let end = parse_time("--range END", &range[1], now)?;
            let step = parse_duration("--range STEP", &range[2])?;
            client
                .range(
                    &args.expr,
                    start,
                    end,
                    i64::try_from(step.as_millis()).context("STEP is too long")?,
                )
                .await?
        }
        None => {
            client
                .instant(
                    &args.expr,
                    args.at
                        .as_deref()
                        .map(|t| parse_time("--at", t, now))
                        .transpose()?
                        .unwrap_or(now),
                )
                .await?
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&promimport::query::to_json(&result))?
        );
    } else {
        print!("{}", promimport::query::render_table(&result));
    }
    Ok(0)
}

async fn schedule(args: ScheduleArgs) -> anyhow::Result<i32> {
    let (source, text) = match &args.file {
        Some(path) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the import spec from stdin")?;
            ("stdin".to_string(), text)
        }
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read import spec {}", path.display()))?,
        ),
        None => (
            "PROMIMPORT_SPEC".to_string(),
            std::env::var("PROMIMPORT_SPEC")
                .context("give the import spec with -f FILE, or in the PROMIMPORT_SPEC variable")?,
        ),
    };
    let spec = ImportSpec::from_yaml(&source, &text)?;
    let client = kube::client().await?;
    let options = scheduler_options(&client, &args.cluster, &args.scheduling)?;
    let state = scheduler::run(client, &spec, &options).await?;
    println!("import {}: {}", spec.name, state.as_str());
    Ok(state_exit_code(state))
}

fn scheduler_options(
    client: &::kube::Client,
    cluster: &ClusterArgs,
    scheduling: &SchedulingArgs,
) -> anyhow::Result<SchedulerOptions> {
    if scheduling.max_active_jobs == 0 {
        anyhow::bail!("invalid --max-active-jobs 0: give at least 1");
    }
    Ok(SchedulerOptions {
        namespace: kube::namespace(client, cluster.namespace.as_deref()),
        max_active_jobs: scheduling.max_active_jobs,
        poll: parse_duration("--poll", &scheduling.poll)?,
        timeout: scheduling
            .timeout
            .as_deref()
            .map(|t| parse_duration("--timeout", t))
            .transpose()?,
        owner_config_map: scheduling.owner_configmap.clone(),
    })
}

fn state_exit_code(state: ImportState) -> i32 {
    match state {
        ImportState::Finished | ImportState::Running | ImportState::Stopped => 0,
        ImportState::Failed => EXIT_REJECTED,
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let json = json_output(&args.output)?;
    let client = kube::client().await?;
    let namespace = kube::namespace(&client, args.cluster.namespace.as_deref());
    loop {
        let imports = control::status(client.clone(), &namespace, args.import.as_deref()).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&imports)?);
        } else {
            if args.watch && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // Redraw in place: clear the screen, cursor home.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", control::render_table(&imports));
            if args.watch {
                for import in &imports {
                    println!("{}", control::progress_bar(import));
                }
            }
        }
        if !args.watch || imports.iter().all(|i| i.state != "running") {
            return Ok(0);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

async fn stop(args: ControlArgs) -> anyhow::Result<i32> {
    let client = kube::client().await?;
    let namespace = kube::namespace(&client, args.cluster.namespace.as_deref());
    let deleted = control::stop(client, &namespace, &args.import).await?;
    println!(
        "import {} stopped; {deleted} running Jobs deleted; `promimport resume {}` continues",
        args.import, args.import
    );
    Ok(0)
}

async fn resume(args: ResumeArgs) -> anyhow::Result<i32> {
    let client = kube::client().await?;
    let options = scheduler_options(&client, &args.cluster, &args.scheduling)?;
    let spec = control::prepare_resume(client.clone(), &options.namespace, &args.import).await?;
    if args.detach {
        println!(
            "import {} is running again; its scheduler will continue it",
            args.import
        );
        return Ok(0);
    }
    let state = scheduler::run(client, &spec, &options).await?;
    println!("import {}: {}", spec.name, state.as_str());
    Ok(state_exit_code(state))
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let settings = args.options.settings()?;
    let now = now_ms();
    let range = Window::new(
        parse_time("--start", &args.start, now)?,
        parse_time("--end", &args.end, now)?,
    )?;
    let window_ms = parse_window_length("--window", &args.window)?;
    check_plan(range, window_ms)?;
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
        source: settings.source.display_url()?,
        dest: settings.dest.display_url()?,
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
    let ledger = match &options.ledger {
        Some(name) => {
            let client = kube::client().await?;
            let namespace = kube::namespace(&client, options.namespace.as_deref());
            Some(ConfigMapLedger::new(client, &namespace, name))
        }
        None => None,
    };
    let worker = Worker::new(&settings)?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let outcome = tokio::select! {
        outcome = worker.import_window(window, std::sync::Arc::new(LiveCounters::default())) => outcome,
        _ = terminate.recv() => {
            // Stopped (promimport stop deletes the Job): nothing is recorded, so the window is
            // imported again, whole, on resume.
            tracing::warn!(window = %window, "stopped by SIGTERM; the window will be imported again on resume");
            return Ok(143);
        }
    };
    let status = WindowStatus::of(&outcome);
    let transient = outcome.error.as_ref().is_some_and(|e| e.transient);
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
    if let Some(ledger) = ledger {
        // Without its record the window would look unfinished: fail, and let the Job retry.
        ledger.record(&entry).await?;
        // In a Job, a final outcome (done, refused, a permanent error) is recorded and must not
        // be retried by the Job's backoff; only a transient failure is.
        return Ok(if transient { EXIT_FAILED } else { 0 });
    }
    Ok(match status {
        WindowStatus::Done => 0,
        WindowStatus::Rejected => EXIT_REJECTED,
        WindowStatus::Failed => EXIT_FAILED,
    })
}
