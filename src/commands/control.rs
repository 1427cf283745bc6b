//! `promimport status`, `stop` and `resume`: what a person does with imports in a cluster.

use crate::cli::{ControlArgs, ResumeArgs, StatusArgs};
use crate::error::Result;
use crate::kube::{control, scheduler};

use super::{cluster, json_output, scheduler_options, state_exit_code};

/// Shows imports (a table, JSON, or with --watch a bar each until none is running).
pub async fn status(args: StatusArgs) -> Result<i32> {
    let json = json_output(&args.output)?;
    let (client, namespace) = cluster(&args.cluster).await?;
    loop {
        let imports = control::status(client.clone(), &namespace, args.import.as_deref()).await?;
        if json {
            let text = serde_json::to_string_pretty(&imports)
                .map_err(|e| crate::Error::Internal(e.to_string()))?;
            println!("{text}");
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

/// Stops an import: no new Jobs, running ones deleted.
pub async fn stop(args: ControlArgs) -> Result<i32> {
    let (client, namespace) = cluster(&args.cluster).await?;
    let deleted = control::stop(client, &namespace, &args.import).await?;
    println!(
        "import {} stopped; {deleted} running Jobs deleted; `promimport resume {}` continues",
        args.import, args.import
    );
    Ok(0)
}

/// Makes a stopped or failed import runnable and, unless --detach, runs its scheduler.
pub async fn resume(args: ResumeArgs) -> Result<i32> {
    let (client, namespace) = cluster(&args.cluster).await?;
    let options = scheduler_options(namespace, &args.scheduling)?;
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
