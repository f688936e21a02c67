//! `mxguard ban`, `mxguard unban`, `mxguard bans`: the ban list through the running daemon's
//! control socket (so the ban is recorded and applied by the daemon's actions at once), and
//! the daemon side of those control requests ([`handle`], called by `control.rs`).
//!
//! A ban covers an address (/32, /128) or a network of a supported prefix
//! (`mxguard_engine::auth::ban::BAN_PREFIXES_V4`/`_V6`): the Postfix policy looks those up.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Args;
use ipnet::IpNet;
use mxguard_engine::auth::ban::{BAN_PREFIXES_V4, BAN_PREFIXES_V6, prefix_supported};
use serde_json::json;

use super::{ClientArgs, EXIT_OK, EXIT_USAGE, ask_daemon};
use crate::config::parse_duration;
use crate::control::{ControlReply, ControlRequest};
use crate::jails::ManualBan;
use crate::service::Shared;

#[derive(Debug, Args)]
pub struct BanArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// An address or network (`192.0.2.7`, `2001:db8:1:2::/64`).
    pub target: String,
    /// The jail to file the ban under (its actions enforce it).
    #[arg(long, default_value = "manual")]
    pub jail: String,
    /// How long (`1h`, `7d`); permanent when omitted.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    #[arg(long, default_value = "banned by an administrator")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct UnbanArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// An address or network to unban.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub target: Option<String>,
    /// Remove every ban (and the ban history).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct BansArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only bans filed under this jail.
    #[arg(long)]
    pub jail: Option<String>,
    /// Include ended bans still remembered for escalation.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

/// Parses an address or a network of a supported prefix length.
pub fn parse_target(s: &str) -> Result<IpNet, String> {
    let net = match s.parse::<IpAddr>() {
        Ok(ip) => IpNet::from(ip.to_canonical()),
        Err(_) => s
            .parse::<IpNet>()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?
            .trunc(),
    };
    if !prefix_supported(net) {
        return Err(format!(
            "{s}: a ban covers an address or a /{:?} (IPv4) or /{:?} (IPv6) network",
            BAN_PREFIXES_V4, BAN_PREFIXES_V6
        ));
    }
    Ok(net)
}

pub fn run_ban(a: &BanArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = parse_target(&a.target) {
        eprintln!("mxguard: error: {e}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let secs = match a.duration.as_deref().map(parse_duration) {
        None => None,
        Some(Ok(d)) if d.as_secs() > 0 => Some(d.as_secs()),
        Some(Ok(_)) => {
            eprintln!("mxguard: error: --for must be at least 1s");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Some(Err(e)) => {
            eprintln!("mxguard: error: --for: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let req = ControlRequest::Ban {
        target: a.target.clone(),
        jail: a.jail.clone(),
        seconds: secs,
        reason: a.reason.clone(),
    };
    match ask_daemon(&a.client, &req)? {
        Err(code) => Ok(code),
        Ok(d) => {
            outln!(
                "banned {} until {}",
                d["net"].as_str().unwrap_or("?"),
                until_text(&d["until"])
            );
            Ok(ExitCode::from(EXIT_OK))
        }
    }
}

pub fn run_unban(a: &UnbanArgs) -> anyhow::Result<ExitCode> {
    if let Some(t) = &a.target
        && let Err(e) = parse_target(t)
    {
        eprintln!("mxguard: error: {e}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let req = ControlRequest::Unban {
        target: a.target.clone(),
        all: a.all,
    };
    match ask_daemon(&a.client, &req)? {
        Err(code) => Ok(code),
        Ok(d) => {
            let n = d["removed"].as_u64().unwrap_or(0);
            if a.all {
                outln!("unbanned {n} entr{}", if n == 1 { "y" } else { "ies" });
            } else if n == 0 {
                outln!("{} was not banned", a.target.as_deref().unwrap_or(""));
            } else {
                outln!("unbanned {}", a.target.as_deref().unwrap_or(""));
            }
            Ok(ExitCode::from(EXIT_OK))
        }
    }
}

pub fn run_bans(a: &BansArgs) -> anyhow::Result<ExitCode> {
    let req = ControlRequest::Bans {
        jail: a.jail.clone(),
        all: a.all,
    };
    let d = match ask_daemon(&a.client, &req)? {
        Err(code) => return Ok(code),
        Ok(d) => d,
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(ExitCode::from(EXIT_OK));
    }
    let empty = Vec::new();
    let list = d["bans"].as_array().unwrap_or(&empty);
    outln!(
        "{:<40} {:<12} {:>5} {:<22} REASON",
        "NETWORK",
        "JAIL",
        "COUNT",
        "UNTIL"
    );
    for b in list {
        outln!(
            "{:<40} {:<12} {:>5} {:<22} {}",
            b["net"].as_str().unwrap_or(""),
            b["jail"].as_str().unwrap_or(""),
            b["count"].as_u64().unwrap_or(0),
            until_text(&b["until"]),
            b["reason"].as_str().unwrap_or("")
        );
    }
    outln!(
        "{} ban{}",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::from(EXIT_OK))
}

fn until_text(v: &serde_json::Value) -> String {
    match v.as_u64() {
        None => "permanent".into(),
        Some(t) => jiff::Timestamp::from_second(t as i64)
            .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_else(|_| t.to_string()),
    }
}

/// The daemon side of `Ban`, `Unban` and `Bans`.
pub async fn handle(req: ControlRequest, shared: &Shared) -> ControlReply {
    match req {
        ControlRequest::Ban {
            target,
            jail,
            seconds,
            reason,
        } => {
            let net = match parse_target(&target) {
                Ok(n) => n,
                Err(e) => return ControlReply::err(e),
            };
            let ban = ManualBan {
                net,
                jail,
                duration: seconds.map(std::time::Duration::from_secs),
                reason,
            };
            match shared.bans.ban_manual(ban).await {
                Ok(rec) => ControlReply::ok(json!({
                    "net": net.to_string(),
                    "until": (!rec.permanent()).then_some(rec.until.0),
                })),
                Err(e) => ControlReply::err(e.to_string()),
            }
        }
        ControlRequest::Unban { target, all } => {
            if all {
                return match shared.bans.unban_all().await {
                    Ok(n) => ControlReply::ok(json!({ "removed": n })),
                    Err(e) => ControlReply::err(e.to_string()),
                };
            }
            let Some(t) = target else {
                return ControlReply::err("unban: an address, a network or --all");
            };
            let net = match parse_target(&t) {
                Ok(n) => n,
                Err(e) => return ControlReply::err(e),
            };
            if let Some(j) = &shared.jails {
                j.runner.lock().await.forget(&net);
            }
            match shared.bans.unban(net).await {
                Ok(found) => ControlReply::ok(json!({ "removed": u64::from(found) })),
                Err(e) => ControlReply::err(e.to_string()),
            }
        }
        ControlRequest::Bans { jail, all } => {
            let now = shared.clock.now();
            match shared.store.ban_list(usize::MAX).await {
                Ok(list) => {
                    let bans: Vec<_> = list
                        .iter()
                        .filter(|(_, r)| all || r.active(now))
                        .filter(|(_, r)| jail.as_ref().is_none_or(|j| &r.jail == j))
                        .map(|(k, r)| {
                            json!({
                                "net": k,
                                "jail": r.jail,
                                "since": r.since.0,
                                "until": (!r.permanent()).then_some(r.until.0),
                                "remaining": (!r.permanent()).then(|| r.until.since(now)),
                                "count": r.count,
                                "active": r.active(now),
                                "reason": r.reason,
                            })
                        })
                        .collect();
                    ControlReply::ok(json!({ "bans": bans }))
                }
                Err(e) => ControlReply::err(e.to_string()),
            }
        }
        _ => ControlReply::err("not a ban request"),
    }
}
