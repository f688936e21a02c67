//! Command line: parses arguments with clap and dispatches to one module per subcommand.
//!
//! Exit codes (DESIGN.md): 0 success, 1 failure (the thing checked is bad or an operation
//! failed), 2 usage or configuration error. Every subcommand module exposes
//! `run(args) -> anyhow::Result<ExitCode>`; errors print their whole chain on stderr.

pub mod audit;
pub mod test_filter;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure (check failed, operation failed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// mxguard protects Postfix + Dovecot mail servers: policy service (greylisting, lists, limits),
/// fail2ban-compatible log jails, bans, and a configuration audit.
#[derive(Debug, Parser)]
#[command(
    name = "mxguard",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check Postfix and Dovecot settings for dangerous or broken configuration.
    Audit(audit::AuditArgs),
    /// Test a fail2ban filter against a log file (replaces fail2ban-regex).
    TestFilter(test_filter::TestFilterArgs),
}

/// Parses the command line, runs the subcommand and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0 and usage errors with exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let result = match cli.command {
        Command::Audit(args) => audit::run(&args),
        Command::TestFilter(args) => test_filter::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mxguard: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
