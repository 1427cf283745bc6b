//! `promimport import start TARGET`: an import of a target's history, in the cluster through
//! the scheduler, or here (`--local`) exactly as `promimport run` with the target's settings.

use crate::cli::ImportStartArgs;
use crate::error::{Error, Result};
use crate::kube::scheduler;
use crate::targets::TargetStore;
use crate::worker::options::WorkerOptions;

use super::{scheduler_options, state_exit_code};

pub async fn start(args: ImportStartArgs) -> Result<i32> {
    let store = super::target::store(&args.scope).await?;
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
        TargetStore::Cluster { client, namespace } => {
            let options = scheduler_options(namespace, &args.scheduling)?;
            let state = scheduler::run(client, &spec, &options).await?;
            println!("import {}: {}", spec.name, state.as_str());
            Ok(state_exit_code(state))
        }
        TargetStore::Local { dir } => {
            if !target.secret_refs().is_empty() {
                return Err(Error::invalid(
                    "target",
                    &target.name,
                    "it names Secrets, which a local import cannot read: use promimport run with --*-bearer-token-file",
                ));
            }
            let options = WorkerOptions::for_spec(&spec)?;
            let state = dir.join("imports").join(&spec.name);
            super::run::import_here(
                &options,
                &spec.start,
                &spec.end,
                &spec.window,
                spec.parallelism,
                crate::local::DEFAULT_WINDOW_ATTEMPTS,
                Some(state),
            )
            .await
        }
    }
}
