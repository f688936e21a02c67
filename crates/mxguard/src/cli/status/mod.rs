//! `mxguard status`: asks the running daemon over the control socket and prints its state.

use std::process::ExitCode;

use clap::Args;

pub mod daemon;

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
    } else if reply.ok
        && let Some(obj) = reply.data.as_object()
    {
        for (k, v) in obj {
            if k == "jails" {
                print_jails(v);
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            outln!("{k}: {v}");
        }
    }
    if !reply.ok {
        eprintln!("mxguard: error: {}", reply.error.unwrap_or_default());
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// The jails as `fail2ban-client status` users know them.
fn print_jails(v: &serde_json::Value) {
    let Some(list) = v.as_array() else { return };
    if list.is_empty() {
        outln!("jails: none");
        return;
    }
    outln!("jails:");
    for j in list {
        outln!(
            "  {}: filter {}, {}",
            j["name"].as_str().unwrap_or("?"),
            j["filter"].as_str().unwrap_or("(ban events)"),
            j["source"].as_str().unwrap_or("")
        );
        outln!(
            "    currently failed {}, total failed {}, ignored {}, currently banned {}",
            j["failures_pending"],
            j["failures_total"],
            j["ignored_total"],
            j["bans_active"]
        );
    }
}
