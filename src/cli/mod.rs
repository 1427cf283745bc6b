//! The command line as clap parses it: raw flags, turned into typed values once by the
//! commands (`src/commands/`). Flags every command shares live in one group each here:
//! `ClusterArgs` (namespace, kubeconfig, context) for everything that talks to a cluster.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::name_value::NameValue;
use crate::worker::options::WorkerOptions;

#[derive(Parser)]
#[command(
    version,
    about = "Moves Prometheus history into any remote-write receiver, exactly"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    #[command(mut_arg("dest", |a| a.help(
        "The destination's remote read URL (e.g. http://cortex/prometheus/api/v1/read: every value, bit for bit) \
         or its query API base (e.g. http://vm:8428: timestamps)"
    )))]
    // Batching and pacing only shape what is written; verify writes nothing.
    #[command(
        mut_arg("batch_samples", |a| a.hide(true)),
        mut_arg("batch_bytes", |a| a.hide(true)),
        mut_arg("max_samples_per_second", |a| a.hide(true)),
        mut_arg("dest_blocks", |a| a.hide(true)),
        mut_arg("tenant", |a| a.hide(true))
    )]
    Verify(Box<VerifyArgs>),
    /// Run a PromQL query against the destination's query API and print the result.
    Query(QueryArgs),
    /// List the Prometheus servers in the cluster (monitoring.coreos.com/v1 Prometheus), each
    /// with a remote read URL that works from inside the cluster.
    Discover(DiscoverArgs),
    /// Named sources and destinations that imports start from.
    #[command(subcommand)]
    Target(TargetCommand),
    /// Start imports of targets; status, stop and resume are here too, as at the top
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
pub enum TargetCommand {
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
        /// The target's name
        name: String,
        #[command(flatten)]
        scope: TargetScope,
    },
    /// Remove a target; refused while an import from it runs
    Remove {
        /// The target's name
        name: String,
        #[command(flatten)]
        scope: TargetScope,
    },
}

#[derive(clap::Args)]
pub struct TargetScope {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Keep targets in a local directory instead of the cluster
    #[arg(long)]
    pub local: bool,
    /// The local directory [default: under $XDG_STATE_HOME or ~/.local/state]
    #[arg(long, value_name = "DIR", requires = "local")]
    pub state: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct TargetArgs {
    /// The target's name: DNS-safe, at most 40 characters (imports started from it take it)
    pub name: String,
    #[command(flatten)]
    pub scope: TargetScope,
    /// Remote read URL of the source
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// Take the source from discovery: NAMESPACE/NAME of a Prometheus object
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "source")]
    pub from_discovery: Option<String>,
    /// Remote write URL of the destination
    #[arg(long, value_name = "URL")]
    pub dest: Option<String>,
    /// Series selector; repeatable (replaces the target's on edit)
    #[arg(long = "match", value_name = "SELECTOR")]
    pub selectors: Vec<String>,
    /// Label to remove from every series; repeatable
    #[arg(long, value_name = "NAME")]
    pub drop_label: Vec<String>,
    /// Label to set on every series; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    pub set_label: Vec<NameValue>,
    /// Header for the source; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    pub source_header: Vec<NameValue>,
    /// Header for the destination, e.g. X-Scope-OrgID=tenant; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    pub dest_header: Vec<NameValue>,
    /// Secret with the source's bearer token
    #[arg(long, value_name = "SECRET/KEY")]
    pub source_bearer_secret: Option<String>,
    /// Secret with the destination's bearer token
    #[arg(long, value_name = "SECRET/KEY")]
    pub dest_bearer_secret: Option<String>,
    /// Basic auth user for the source (with --source-basic-password-secret)
    #[arg(long, value_name = "USER", requires = "source_basic_password_secret")]
    pub source_basic_user: Option<String>,
    /// Secret with the source's basic auth password
    #[arg(long, value_name = "SECRET/KEY", requires = "source_basic_user")]
    pub source_basic_password_secret: Option<String>,
    /// Basic auth user for the destination (with --dest-basic-password-secret)
    #[arg(long, value_name = "USER", requires = "dest_basic_password_secret")]
    pub dest_basic_user: Option<String>,
    /// Secret with the destination's basic auth password
    #[arg(long, value_name = "SECRET/KEY", requires = "dest_basic_user")]
    pub dest_basic_password_secret: Option<String>,
    /// Secret with a CA bundle (PEM) to verify the source's certificate
    #[arg(long, value_name = "SECRET/KEY")]
    pub source_ca_secret: Option<String>,
    /// Secret with a CA bundle (PEM) to verify the destination's certificate
    #[arg(long, value_name = "SECRET/KEY")]
    pub dest_ca_secret: Option<String>,
    /// Secret with the source's client certificate and key (keys tls.crt and tls.key)
    #[arg(long, value_name = "SECRET")]
    pub source_client_cert_secret: Option<String>,
    /// Secret with the destination's client certificate and key (keys tls.crt and tls.key), e.g.
    /// cortex-client-cert-keys for Opni's Cortex
    #[arg(long, value_name = "SECRET")]
    pub dest_client_cert_secret: Option<String>,
    /// Verify the source's certificate for this name instead of the URL's host
    #[arg(long, value_name = "NAME")]
    pub source_tls_server_name: Option<String>,
    /// Verify the destination's certificate for this name instead of the URL's host, e.g.
    /// cortex-distributor
    #[arg(long, value_name = "NAME")]
    pub dest_tls_server_name: Option<String>,
    /// Do not verify the source's TLS certificate (unsafe)
    #[arg(long)]
    pub source_insecure_skip_verify: bool,
    /// Do not verify the destination's TLS certificate (unsafe)
    #[arg(long)]
    pub dest_insecure_skip_verify: bool,
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import a target's history over a range: in the cluster through the scheduler, or here
    /// with --local
    Start(Box<ImportStartArgs>),
    /// The same as `promimport status`
    Status(StatusArgs),
    /// The same as `promimport stop`
    Stop(ControlArgs),
    /// The same as `promimport resume`
    Resume(ResumeArgs),
}

#[derive(clap::Args)]
pub struct ImportStartArgs {
    /// The target to import from (`promimport target list` shows them)
    pub target: String,
    #[command(flatten)]
    pub scope: TargetScope,
    /// The import's name [default: the target's]
    #[arg(long)]
    pub name: Option<String>,
    /// Start of the range: RFC 3339, unix seconds, `now` or `now-10d`
    #[arg(long, value_name = "TIME", default_value = "now-10d")]
    pub start: String,
    /// End of the range, excluded
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub end: String,
    /// Window length
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub window: String,
    /// Windows imported at once
    #[arg(
        long,
        visible_alias = "parallel",
        value_name = "N",
        default_value_t = 2
    )]
    pub parallelism: usize,
    /// The worker image (cluster)
    #[arg(long)]
    pub image: Option<String>,
    #[command(flatten)]
    pub scheduling: SchedulingArgs,
}

#[derive(clap::Args)]
pub struct DiscoverArgs {
    /// Only this namespace [default: every namespace]
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
    /// table or json
    #[arg(short, long, default_value = "table")]
    pub output: String,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub options: WorkerOptions,
    /// An import in the cluster: its range, window, selectors and relabelling come from its
    /// ledger, and the result is recorded there (key `verify`). --source and --dest are still
    /// given: URLs reachable from where verify runs (a port-forward, say).
    #[arg(long, value_name = "NAME")]
    pub import: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Start of the range to verify (without --import)
    #[arg(long, value_name = "TIME", required_unless_present = "import")]
    pub start: Option<String>,
    /// End of the range, excluded
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub end: String,
    /// Window length, as the import used
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub window: String,
    /// Check windows that do not match again, every 30s, until they do or this much time has
    /// passed: Cortex and Mimir show history imported minutes ago only after the store-gateway's
    /// next bucket sync (15m by default)
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
    /// table or json
    #[arg(short, long, default_value = "table")]
    pub output: String,
}

#[derive(clap::Args)]
pub struct QueryArgs {
    /// PromQL expression
    pub expr: String,
    /// The query API's base: http://prometheus:9090, http://cortex/prometheus, http://vm:8428
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// Extra header, e.g. X-Scope-OrgID=tenant for Cortex; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    pub dest_header: Vec<NameValue>,
    /// File holding a bearer token
    #[arg(long, value_name = "FILE")]
    pub dest_bearer_token_file: Option<PathBuf>,
    /// Basic auth user
    #[arg(long, value_name = "USER")]
    pub dest_basic_user: Option<String>,
    /// File holding the basic auth password
    #[arg(long, value_name = "FILE")]
    pub dest_basic_password_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify the server's certificate
    #[arg(long, value_name = "FILE")]
    pub dest_ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for a server that requires one (Opni's Cortex does)
    #[arg(long, value_name = "FILE")]
    pub dest_cert_file: Option<PathBuf>,
    /// Client key (PEM)
    #[arg(long, value_name = "FILE")]
    pub dest_key_file: Option<PathBuf>,
    /// Verify the server's certificate for this name instead of the URL's host, e.g.
    /// cortex-querier (needs --dest-ca-file)
    #[arg(long, value_name = "NAME")]
    pub dest_tls_server_name: Option<String>,
    /// Do not verify the server's TLS certificate (unsafe)
    #[arg(long)]
    pub dest_insecure_skip_verify: bool,
    /// Evaluate at this time [default: now]
    #[arg(long, value_name = "TIME", conflicts_with = "range")]
    pub at: Option<String>,
    /// Evaluate over a range: START END STEP
    #[arg(long, num_args = 3, value_names = ["START", "END", "STEP"])]
    pub range: Option<Vec<String>>,
    /// table or json
    #[arg(short, long, default_value = "table")]
    pub output: String,
}

#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Namespace [default: the current context's]
    #[arg(short, long, env = "PROMIMPORT_NAMESPACE")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
}

/// Which cluster: like kubectl, --kubeconfig, else KUBECONFIG, else ~/.kube/config, else (in a
/// pod) its service account; --context, else the kubeconfig's current context.
#[derive(clap::Args, Clone, Default)]
pub struct KubeconfigArgs {
    /// Kubeconfig file [default: KUBECONFIG, else ~/.kube/config, else the pod's service account]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context [default: its current context]
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(clap::Args)]
pub struct SchedulingArgs {
    /// Active Jobs across all imports in the namespace
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_active_jobs: usize,

    /// Active Jobs reading one source, across all imports in the namespace (each is one remote
    /// read at a time; Prometheus serves 10 at once by default)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_jobs_per_source: usize,

    /// How often the scheduler looks at the ledger and the Jobs
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub poll: String,

    /// Give up waiting after this long (the import goes on when scheduled again)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// A ConfigMap that owns the ledger, so deleting it deletes the import's ledger and Jobs
    /// (the chart passes its own)
    #[arg(long, value_name = "NAME", env = "PROMIMPORT_OWNER_CONFIGMAP")]
    pub owner_configmap: Option<String>,
}

#[derive(clap::Args)]
pub struct ScheduleArgs {
    /// Import spec (YAML); `-` reads stdin [default: the PROMIMPORT_SPEC variable]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub scheduling: SchedulingArgs,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// One import [default: all in the namespace]
    pub import: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// table or json
    #[arg(short, long, default_value = "table")]
    pub output: String,
    /// Keep showing progress, with a bar per import, until none shown is running
    #[arg(short, long)]
    pub watch: bool,
}

#[derive(clap::Args)]
pub struct ControlArgs {
    /// The import's name (its ledger is the ConfigMap promimport-IMPORT)
    pub import: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(clap::Args)]
pub struct ResumeArgs {
    /// The import's name (its ledger is the ConfigMap promimport-IMPORT)
    pub import: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub scheduling: SchedulingArgs,
    /// Only mark the import runnable; a scheduler (the chart's Job or CronJob) does the rest
    #[arg(long)]
    pub detach: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub options: WorkerOptions,

    /// Start of the range: RFC 3339, unix seconds, `now` or `now-10d`
    #[arg(long, value_name = "TIME")]
    pub start: String,

    /// End of the range, excluded
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub end: String,

    /// Window (shard) length; windows align to multiples of it, like TSDB blocks
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub window: String,

    /// Windows imported at once; Prometheus serves 10 remote reads at once by default
    #[arg(
        long,
        visible_alias = "parallelism",
        value_name = "N",
        default_value_t = 2
    )]
    pub parallel: usize,

    /// Tries per window after a transient failure (a cut stream, a restart)
    #[arg(long, value_name = "N", default_value_t = crate::local::DEFAULT_WINDOW_ATTEMPTS)]
    pub window_attempts: usize,

    /// State directory for resuming [default: under $XDG_STATE_HOME or ~/.local/state]
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}
