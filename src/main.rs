//! The `callscribe` binary: parse the command line, run the command, report errors on one line.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = callscribe::cli::Cli::parse();
    callscribe::cli::init_logging(cli.verbose);
    callscribe::runtime::install_panic_hook();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", callscribe::cli::one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
