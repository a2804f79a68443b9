//! The `bizrelay` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bizrelay::cli::run(bizrelay::cli::Cli::parse())
}
