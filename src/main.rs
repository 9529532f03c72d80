//! The `latchkey` command: parse the command line, set up logging, hand over to the library.

use clap::Parser;
use latchkey::cli::{Cli, run};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    latchkey::cli::init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "latchkey failed");
            eprintln!("latchkey: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
