//! Command line: parses arguments with clap and dispatches to one module per subcommand.
//!
//! Exit codes (DESIGN.md): 0 success, 1 failure (the thing checked is bad or an operation
//! failed), 2 usage or configuration error. Every subcommand module exposes
//! `run(args) -> anyhow::Result<ExitCode>`; errors print their whole chain on stderr.
//! Client subcommands (`status`, `greylist`) find the daemon's control socket through
//! [`ClientArgs`]: `--socket`, else `[control] socket` of `--config` (or of the default
//! config / built-in defaults).
//!
//! Subcommands print with `outln!`/`out!` instead of `println!`: when the reader of stdout
//! goes away (`mxguard bans | head`, `| grep -q`), `println!` panics on EPIPE, while these end
//! the process quietly with exit code 0, as a well-behaved Unix filter does.

/// Like `println!`, but a closed stdout (broken pipe) ends the process quietly.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Like `print!`, but a closed stdout (broken pipe) ends the process quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

pub mod account;
pub mod audit;
pub mod bans;
pub mod check_config;
pub mod generate;
pub mod greylist;
pub mod report;
pub mod serve;
pub mod status;
pub mod test_filter;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigErrors};

/// Writes to stdout for `outln!`/`out!`. On a broken pipe the reader has gone: exit 0
/// without a panic or a message. Other write errors are reported on stderr and exit 1.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(EXIT_OK));
        }
        eprintln!("mxguard: error: writing to stdout: {e}");
        std::process::exit(i32::from(EXIT_FAILURE));
    }
}

/// Sends one request to the daemon's control socket named by `client` and returns the reply's
/// data. `Ok(Err(code))`: the socket could not be located, or the daemon refused the request;
/// either is already reported on stderr and `code` is the exit code to return.
pub(crate) fn ask_daemon(
    client: &ClientArgs,
    req: &crate::control::ControlRequest,
) -> anyhow::Result<Result<serde_json::Value, ExitCode>> {
    let socket = match client.socket_path() {
        Ok(s) => s,
        Err(code) => return Ok(Err(code)),
    };
    let reply = runtime()?.block_on(crate::control::request(&socket, req))?;
    if !reply.ok {
        eprintln!("mxguard: error: {}", reply.error.unwrap_or_default());
        return Ok(Err(ExitCode::from(EXIT_FAILURE)));
    }
    Ok(Ok(reply.data))
}

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
    max_term_width = 100,
    after_long_help = "\
Quick start:
  mxguard serve                          run the policy service on 127.0.0.1:10040
  mxguard check-config -c FILE           validate a configuration file
  mxguard status                         ask the running daemon how it is doing

Exit status: 0 success, 1 failure, 2 usage or configuration error.
Run `mxguard help COMMAND` for the details of a command."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: Postfix policy service (greylisting, static lists), control socket,
    /// metrics.
    Serve(serve::ServeArgs),
    /// Validate a configuration file exactly as the daemon does; print every error.
    CheckConfig(check_config::CheckConfigArgs),
    /// Show the running daemon's state (over the control socket).
    Status(status::StatusArgs),
    /// Greylist administration: list, whitelist a client, remove entries.
    Greylist(greylist::GreylistArgs),
    /// Account containment: list, show, lock and unlock accounts (release held mail).
    Account(account::AccountArgs),
    /// Check Postfix and Dovecot settings for dangerous or broken configuration.
    Audit(audit::AuditArgs),
    /// Test a fail2ban filter against a log file (replaces fail2ban-regex).
    TestFilter(test_filter::TestFilterArgs),
    /// Log analytics: rejects by reason, auth failures, bans, account volume (text/JSON/HTML).
    Report(report::ReportArgs),
    /// Ban an address or network now (recorded, then applied by the daemon's actions).
    Ban(bans::BanArgs),
    /// Lift a ban (or every ban with --all).
    Unban(bans::UnbanArgs),
    /// List the ban list.
    Bans(bans::BansArgs),
    /// Generate man pages, shell completions or the systemd drop-in (packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// How a client subcommand finds the control socket.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The daemon's configuration file; its control socket is used. Default:
    /// /etc/mxguard/mxguard.toml if present, else the built-in defaults
    /// (/run/mxguard/control.sock when /run is writable, else ./mxguard-state/control.sock).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Talk to this control socket directly (overrides --config).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl ClientArgs {
    /// The socket path, or the exit code after printing configuration errors.
    pub fn socket_path(&self) -> Result<PathBuf, ExitCode> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        let path = config::resolve_path(self.config.as_deref());
        match config::load(path.as_deref()) {
            Ok(cfg) => Ok(cfg.control.socket),
            Err(errors) => {
                print_config_errors(&errors);
                Err(ExitCode::from(EXIT_USAGE))
            }
        }
    }
}

/// Prints configuration errors, one `file:line:column: message` per line, on stderr.
pub fn print_config_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    eprintln!(
        "mxguard: {} configuration error{}",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
}

/// A multi-threaded tokio runtime for the subcommands that need one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs to stderr, filtered by `[log] level` (`RUST_LOG` overrides it).
pub fn init_logging(log: &config::Log) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if log.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
        Command::Serve(args) => serve::run(&args),
        Command::CheckConfig(args) => check_config::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Greylist(args) => greylist::run(&args),
        Command::Account(args) => account::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::TestFilter(args) => test_filter::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Ban(args) => bans::run_ban(&args),
        Command::Unban(args) => bans::run_unban(&args),
        Command::Bans(args) => bans::run_bans(&args),
        Command::Generate(args) => generate::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mxguard: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
