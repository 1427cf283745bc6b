//! The command line: parses arguments and hands over to the library (`promimport::commands`).

use std::process::ExitCode;

use clap::Parser;

use promimport::cli::Cli;
use promimport::local::EXIT_FAILED;

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
    match runtime.block_on(promimport::commands::dispatch(cli.command)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED as u8)
        }
    }
}
