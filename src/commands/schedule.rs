//! `promimport schedule`: runs an import on Kubernetes, one Job per window.

use crate::cli::ScheduleArgs;
use crate::error::{Error, Result};
use crate::kube::scheduler;
use crate::spec::ImportSpec;

use super::{cluster, scheduler_options, state_exit_code};

/// Reads the import spec (a file, stdin, or PROMIMPORT_SPEC) and runs the scheduler until the
/// import is over, stopped, or (incremental) caught up.
pub async fn schedule(args: ScheduleArgs) -> Result<i32> {
    let (source, text) = match &args.file {
        Some(path) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
                Error::ReadFile {
                    what: "import spec",
                    path: path.clone(),
                    source,
                }
            })?;
            ("stdin".to_string(), text)
        }
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                what: "import spec",
                path: path.clone(),
                source,
            })?,
        ),
        None => (
            "PROMIMPORT_SPEC".to_string(),
            std::env::var("PROMIMPORT_SPEC").map_err(|_| {
                Error::invalid(
                    "import spec",
                    "",
                    "give it with -f FILE, or in the PROMIMPORT_SPEC variable",
                )
            })?,
        ),
    };
    let spec = ImportSpec::from_yaml(&source, &text)?;
    let (client, namespace) = cluster(&args.cluster).await?;
    let options = scheduler_options(namespace, &args.scheduling)?;
    let state = scheduler::run(client, &spec, &options).await?;
    println!("import {}: {}", spec.name, state.as_str());
    Ok(state_exit_code(state))
}
