//! What each command does, one file per command: `main` parses the command line (`cli`) and
//! hands the parsed command to `dispatch`. Every command returns its exit code, documented in
//! the README: 0 done, 1 failed, 3 refused or incomplete, 130/143 interrupted.

mod control;
mod discover;
mod import;
mod query;
mod run;
mod schedule;
mod target;
mod verify;
mod worker;

use crate::cli::{ClusterArgs, Command, ImportCommand, KubeconfigArgs, SchedulingArgs};
use crate::error::{Error, Result};
use crate::kube::scheduler::SchedulerOptions;
use crate::ledger::record::ImportState;
use crate::local::EXIT_REJECTED;
use crate::timespec::parse_duration;

/// Runs one command.
pub async fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run(args) => run::run(*args).await,
        Command::Worker => worker::worker().await,
        Command::Schedule(args) => schedule::schedule(args).await,
        Command::Status(args) | Command::Import(ImportCommand::Status(args)) => {
            control::status(args).await
        }
        Command::Stop(args) | Command::Import(ImportCommand::Stop(args)) => {
            control::stop(args).await
        }
        Command::Resume(args) | Command::Import(ImportCommand::Resume(args)) => {
            control::resume(args).await
        }
        Command::Verify(args) => verify::verify(*args).await,
        Command::Query(args) => query::query(args).await,
        Command::Discover(args) => discover::discover(args).await,
        Command::Target(command) => target::target(command).await,
        Command::Import(ImportCommand::Start(args)) => import::start(*args).await,
    }
}

/// `-o table` or `-o json`.
fn json_output(output: &str) -> Result<bool> {
    match output {
        "table" => Ok(false),
        "json" => Ok(true),
        other => Err(Error::invalid("--output", other, "give table or json")),
    }
}

/// A client for the cluster the flags name, and the namespace to work in.
async fn cluster(args: &ClusterArgs) -> Result<(kube::Client, String)> {
    let client = client(&args.kube).await?;
    let namespace = crate::kube::namespace(&client, args.namespace.as_deref());
    Ok((client, namespace))
}

async fn client(args: &KubeconfigArgs) -> Result<kube::Client> {
    crate::kube::client(args.kubeconfig.as_deref(), args.context.as_deref()).await
}

fn scheduler_options(namespace: String, scheduling: &SchedulingArgs) -> Result<SchedulerOptions> {
    if scheduling.max_active_jobs == 0 {
        return Err(Error::invalid("--max-active-jobs", "0", "give at least 1"));
    }
    if scheduling.max_jobs_per_source == 0 {
        return Err(Error::invalid(
            "--max-jobs-per-source",
            "0",
            "give at least 1",
        ));
    }
    Ok(SchedulerOptions {
        namespace,
        max_active_jobs: scheduling.max_active_jobs,
        max_jobs_per_source: scheduling.max_jobs_per_source,
        poll: parse_duration("--poll", &scheduling.poll)?,
        timeout: scheduling
            .timeout
            .as_deref()
            .map(|t| parse_duration("--timeout", t))
            .transpose()?,
        owner_config_map: scheduling.owner_configmap.clone(),
    })
}

/// A scheduler's exit code: stopped and caught-up imports are fine, failed ones are not.
fn state_exit_code(state: ImportState) -> i32 {
    match state {
        ImportState::Finished | ImportState::Running | ImportState::Stopped => 0,
        ImportState::Failed => EXIT_REJECTED,
    }
}
