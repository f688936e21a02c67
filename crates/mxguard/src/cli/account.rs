//! `mxguard account {list,show,lock,unlock}`: account containment administration through the
//! running daemon's control socket, and the daemon side of those control requests
//! ([`handle`], called by `control.rs`).
//!
//! A locked account's mail is answered HOLD by the policy service and its logins are refused
//! by the Dovecot auth-policy endpoint. `unlock --release` then runs `postsuper -H` (as the
//! CLI's user, normally root, on the mail host) for the queue ids recorded while it was
//! locked; without `--release` the held mail stays in the hold queue.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use clap::{Args, Subcommand};
use mxguard_engine::account::{AccountRecord, LockedBy, account_key};
use serde_json::json;

use super::{ClientArgs, EXIT_OK, ask_daemon};
use crate::config;
use crate::control::{ControlReply, ControlRequest};
use crate::service::Shared;

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub command: AccountCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List accounts that are locked or have held mail.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value_t = 1000, value_name = "N")]
        limit: usize,
        /// Print the raw JSON reply.
        #[arg(long)]
        json: bool,
    },
    /// Show one account: lock, reason, held queue ids, containment score.
    Show {
        #[command(flatten)]
        client: ClientArgs,
        /// The SASL login (or `ip:ADDRESS` for mail held by a client-keyed limit).
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Lock an account: its mail is held, Dovecot refuses its logins.
    Lock {
        #[command(flatten)]
        client: ClientArgs,
        user: String,
        /// Why (shown by `account show` and in logs).
        #[arg(long, default_value = "locked by an administrator")]
        reason: String,
    },
    /// Unlock an account; with --release, release its held mail (postsuper -H).
    #[command(after_long_help = "\
Unlocking forgets the account's containment signals and resets the limits keyed on the
login alone, so it starts from a clean slate. Held mail stays in Postfix's hold queue unless
--release is given: then `postsuper [-c DIR] -H -` is run with the recorded queue ids.

Example:
  mxguard account unlock alice@example.org --release --postfix-config /etc/postfix")]
    Unlock {
        #[command(flatten)]
        client: ClientArgs,
        user: String,
        /// Release the held mail with postsuper -H.
        #[arg(long)]
        release: bool,
        /// Postfix configuration directory for postsuper -c (default: the account
        /// table's postfix_config, else Postfix's default).
        #[arg(long, value_name = "DIR")]
        postfix_config: Option<PathBuf>,
    },
}

fn record_json(user: &str, r: Option<&AccountRecord>, score: u32) -> serde_json::Value {
    json!({
        "user": user,
        "locked": r.is_some_and(|r| r.is_locked()),
        "since": r.and_then(|r| r.locked.as_ref()).map(|l| l.since.0),
        "by": r.and_then(|r| r.locked.as_ref()).map(|l| l.by.as_str()),
        "reason": r.and_then(|r| r.locked.as_ref()).map(|l| l.reason.clone()),
        "held": r.map(|r| r.held.clone()).unwrap_or_default(),
        "score": score,
    })
}

/// Daemon side: executes an account control request.
pub async fn handle(req: ControlRequest, shared: &Shared) -> ControlReply {
    let live = shared.live.load();
    let guard = live.engine.guard();
    let store = &shared.store;
    let reply = |r: Result<serde_json::Value, mxguard_engine::StoreError>| match r {
        Ok(v) => ControlReply {
            ok: true,
            error: None,
            data: v,
        },
        Err(e) => ControlReply {
            ok: false,
            error: Some(e.to_string()),
            data: serde_json::Value::Null,
        },
    };
    match req {
        ControlRequest::AccountList { limit } => reply(store.account_list(limit).await.map(|l| {
            json!(
                l.iter()
                    .map(|(u, r)| record_json(u, Some(r), guard.score(u)))
                    .collect::<Vec<_>>()
            )
        })),
        ControlRequest::AccountShow { user } => {
            let u = account_key(&user);
            reply(
                store
                    .account_get(&u)
                    .await
                    .map(|r| record_json(&u, r.as_ref(), guard.score(&u))),
            )
        }
        ControlRequest::AccountLock { user, reason } => {
            let u = account_key(&user);
            let r = guard.lock(&u, LockedBy::Admin, &reason).await;
            if r.is_ok() {
                tracing::warn!(target: "mxguard::account", sasl_username = %u, reason = %reason, "account locked by an administrator");
                let _ = store.flush().await;
            }
            reply(r.map(|r| record_json(&u, Some(&r), guard.score(&u))))
        }
        ControlRequest::AccountUnlock { user } => {
            let u = account_key(&user);
            let r = guard.unlock(&u).await;
            if r.is_ok() {
                tracing::info!(target: "mxguard::account", sasl_username = %u, "account unlocked");
                let _ = store.flush().await;
            }
            reply(r.map(|old| record_json(&u, old.as_ref(), 0)))
        }
        _ => ControlReply {
            ok: false,
            error: Some("not an account request".into()),
            data: serde_json::Value::Null,
        },
    }
}

fn print_record(v: &serde_json::Value) {
    let user = v["user"].as_str().unwrap_or("?");
    if v["locked"].as_bool() == Some(true) {
        outln!(
            "{user}: LOCKED since {} by {}: {}",
            v["since"],
            v["by"].as_str().unwrap_or("?"),
            v["reason"].as_str().unwrap_or("")
        );
    } else {
        outln!("{user}: not locked");
    }
    let held = v["held"].as_array().map_or(0, Vec::len);
    outln!("  held messages: {held}  containment score: {}", v["score"]);
}

/// Runs `postsuper [-c DIR] -H -` with `ids` on stdin.
fn release(ids: &[String], dir: Option<&PathBuf>) -> anyhow::Result<()> {
    let mut cmd = Command::new("postsuper");
    if let Some(d) = dir {
        cmd.arg("-c").arg(d);
    }
    cmd.args(["-H", "-"]).stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .context("running postsuper (is Postfix installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        for id in ids {
            writeln!(stdin, "{id}")?;
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "postsuper -H failed: {status}");
    Ok(())
}

pub fn run(args: &AccountArgs) -> anyhow::Result<ExitCode> {
    let (client, req, json_out) = match &args.command {
        AccountCommand::List {
            client,
            limit,
            json,
        } => (client, ControlRequest::AccountList { limit: *limit }, *json),
        AccountCommand::Show { client, user, json } => (
            client,
            ControlRequest::AccountShow { user: user.clone() },
            *json,
        ),
        AccountCommand::Lock {
            client,
            user,
            reason,
        } => (
            client,
            ControlRequest::AccountLock {
                user: user.clone(),
                reason: reason.clone(),
            },
            false,
        ),
        AccountCommand::Unlock { client, user, .. } => (
            client,
            ControlRequest::AccountUnlock { user: user.clone() },
            false,
        ),
    };
    let data = match ask_daemon(client, &req)? {
        Ok(data) => data,
        Err(code) => return Ok(code),
    };
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(ExitCode::from(EXIT_OK));
    }
    match &args.command {
        AccountCommand::List { .. } => {
            let empty = Vec::new();
            let list = data.as_array().unwrap_or(&empty);
            outln!("accounts ({}):", list.len());
            list.iter().for_each(print_record);
        }
        AccountCommand::Show { .. } | AccountCommand::Lock { .. } => print_record(&data),
        AccountCommand::Unlock {
            client,
            user,
            release: rel,
            postfix_config,
        } => {
            let ids: Vec<String> = data["held"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|q| q.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            outln!(
                "{}: unlocked ({} held messages)",
                account_key(user),
                ids.len()
            );
            if *rel && !ids.is_empty() {
                let dir = postfix_config.clone().or_else(|| {
                    let path = config::resolve_path(client.config.as_deref());
                    config::load(path.as_deref())
                        .ok()
                        .and_then(|c| c.limits.postfix_config)
                });
                release(&ids, dir.as_ref())?;
                outln!("released {} messages from the hold queue", ids.len());
            } else if !ids.is_empty() {
                outln!(
                    "held queue ids (release with postsuper -H): {}",
                    ids.join(" ")
                );
            }
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}
