//! `mxguard greylist {list,whitelist,remove}`: greylist administration through the running
//! daemon's control socket.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{ClientArgs, EXIT_FAILURE, EXIT_OK, ask_daemon};
use crate::control::ControlRequest;

#[derive(Debug, Args)]
pub struct GreylistArgs {
    #[command(subcommand)]
    pub command: GreylistCommand,
}

#[derive(Debug, Subcommand)]
pub enum GreylistCommand {
    /// List greylist triplets and auto-whitelisted clients.
    #[command(after_long_help = "\
Each triplet is NETWORK/SENDER/RECIPIENT (the client network masked to ipv4_prefix /
ipv6_prefix, the sender normalised as postgrey does), with the first and last time it was
seen (Unix seconds). Clients are auto-whitelisted IPs with their pass count.

Example:
  mxguard greylist list --limit 20")]
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Show at most N triplets and N clients.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        /// Print the raw JSON reply.
        #[arg(long)]
        json: bool,
    },
    /// Put a client IP on the auto-whitelist so it skips greylisting.
    #[command(after_long_help = "\
The client is recorded as if it had passed greylisting auto_whitelist_clients times; like
any auto-whitelist entry it ages out after [greylist] max_age without mail. For a permanent
exemption use a whitelist_clients file or [lists] allow.

Example:
  mxguard greylist whitelist 192.0.2.25")]
    Whitelist {
        #[command(flatten)]
        client: ClientArgs,
        /// The client IP address (IPv4 or IPv6).
        ip: IpAddr,
    },
    /// Remove a triplet or an auto-whitelisted client.
    #[command(after_long_help = "\
TARGET is either a client IP (removes it from the auto-whitelist) or a triplet key as shown
by `mxguard greylist list` (the next delivery attempt is greylisted again).

Examples:
  mxguard greylist remove 192.0.2.25
  mxguard greylist remove 192.0.2.0/alice@example.org/bob@example.net")]
    Remove {
        #[command(flatten)]
        client: ClientArgs,
        /// A client IP or a NETWORK/SENDER/RECIPIENT key.
        target: String,
    },
}

pub fn run(args: &GreylistArgs) -> anyhow::Result<ExitCode> {
    let (client, req, json) = match &args.command {
        GreylistCommand::List {
            client,
            limit,
            json,
        } => (
            client,
            ControlRequest::GreylistList { limit: *limit },
            *json,
        ),
        GreylistCommand::Whitelist { client, ip } => (
            client,
            ControlRequest::GreylistWhitelist { client: *ip },
            false,
        ),
        GreylistCommand::Remove { client, target } => (
            client,
            ControlRequest::GreylistRemove {
                target: target.clone(),
            },
            false,
        ),
    };
    let data = match ask_daemon(client, &req)? {
        Ok(data) => data,
        Err(code) => return Ok(code),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(ExitCode::from(EXIT_OK));
    }
    match req {
        ControlRequest::GreylistList { .. } => print_list(&data),
        ControlRequest::GreylistWhitelist { client } => {
            outln!("{client}: auto-whitelisted");
        }
        ControlRequest::GreylistRemove { target } => {
            if data["removed"].as_bool() == Some(true) {
                outln!("{target}: removed");
            } else {
                outln!("{target}: not found");
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
        }
        _ => {}
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn print_list(data: &serde_json::Value) {
    let empty = Vec::new();
    let triplets = data["triplets"].as_array().unwrap_or(&empty);
    outln!("triplets ({}):", triplets.len());
    for t in triplets {
        outln!(
            "  {}  first={} last={}",
            t["key"].as_str().unwrap_or("?"),
            t["first"],
            t["last"]
        );
    }
    let clients = data["clients"].as_array().unwrap_or(&empty);
    outln!("auto-whitelisted clients ({}):", clients.len());
    for c in clients {
        outln!(
            "  {}  count={} last={}",
            c["client"].as_str().unwrap_or("?"),
            c["count"],
            c["last"]
        );
    }
}
