//! The command line: parses arguments and hands over to the library (`promimport::commands`).

use std::process::ExitCode;

use clap::Parser;

use promimport::cli::Cli;
use promimport::local::EXIT_FAILED;

fn main() -> ExitCode {
    // Bad input exits 1 like every other refusal (README: exit codes), not clap's 2; help and
    // --version still print and exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_FAILED as u8);
        }
    };
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
