//! `mxguard status`: asks the running daemon over the control socket and prints its state:
//! version, uptime, config file, listeners, store health, jails, counters since start.
//! `--json` prints the daemon's reply as is ([`daemon`] builds it, its keys are a contract);
//! the text form is [`text::render`].

use std::process::ExitCode;

use clap::Args;

pub mod daemon;
pub mod text;

pub use daemon::Listeners;

use super::{ClientArgs, EXIT_FAILURE, EXIT_OK, runtime};
use crate::control::{ControlRequest, request};

#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  mxguard status
  mxguard status --config /etc/mxguard/mxguard.toml --json

Exit status: 0 the daemon answered, 1 it could not be reached or reported an error,
2 usage or configuration error.")]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the raw JSON reply instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let socket = match args.client.socket_path() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let reply = runtime()?.block_on(request(&socket, &ControlRequest::Status))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reply)?);
    } else if reply.ok {
        out!("{}", text::render(&reply.data));
    }
    if !reply.ok {
        eprintln!("mxguard: error: {}", reply.error.unwrap_or_default());
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(ExitCode::from(EXIT_OK))
}
