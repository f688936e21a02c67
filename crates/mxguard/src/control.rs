//! The control socket: a local unix socket (mode 0600, `[control] socket`) that the CLI's
//! client commands (`mxguard status`, `mxguard greylist ...`) talk to.
//!
//! Protocol: one JSON object per line each way. A request is `{"op": "...", ...}`
//! ([`ControlRequest`]); the reply is `{"ok": true, "data": ...}` or
//! `{"ok": false, "error": "..."}` ([`ControlReply`]). Lines are bounded (64 KiB) and a
//! connection may send several requests. Access control is the file mode: only the daemon's
//! user (normally root) can connect.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use mxguard_engine::store::{AwlRecord, GreylistKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::service::Shared;

/// Longest accepted request line.
const MAX_LINE: u64 = 64 * 1024;

/// A control request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    /// Daemon state: version, uptime, listeners, store counts, last reload.
    Status,
    /// Greylist triplets and auto-whitelisted clients, at most `limit` of each.
    GreylistList { limit: usize },
    /// Puts a client IP on the auto-whitelist (as if it had passed greylisting
    /// `auto_whitelist_clients` times); it ages out after `max_age` like any AWL entry.
    GreylistWhitelist { client: IpAddr },
    /// Removes a triplet (`net/sender/recipient`) or an auto-whitelisted client (an IP).
    GreylistRemove { target: String },
    /// Re-reads the configuration file, like SIGHUP.
    Reload,
    /// Account records (locked accounts, held mail), at most `limit`.
    AccountList { limit: usize },
    /// One account: lock, held queue ids, containment score.
    AccountShow { user: String },
    /// Locks an account: its mail is held and Dovecot refuses its logins.
    AccountLock { user: String, reason: String },
    /// Unlocks an account; the reply lists the held queue ids to release.
    AccountUnlock { user: String },
    /// `mxguard ban`: `seconds = None` is permanent.
    Ban {
        target: String,
        jail: String,
        seconds: Option<u64>,
        reason: String,
    },
    /// `mxguard unban TARGET | --all`.
    Unban { target: Option<String>, all: bool },
    /// `mxguard bans`.
    Bans { jail: Option<String>, all: bool },
}

/// A control reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlReply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl ControlReply {
    pub fn ok(data: serde_json::Value) -> Self {
        ControlReply {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        ControlReply {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// Binds the control socket with mode 0600.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    crate::input::postfix_policy::bind_unix(path, 0o600).await
}

/// Serves control connections until shutdown.
pub async fn run(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = crate::input::postfix_policy::stopped(&mut shutdown) => return Ok(()),
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(s, &shared).await {
                            tracing::debug!(error = %e, "control connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn connection(s: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut r).take(MAX_LINE).read_line(&mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let reply = if !line.ends_with('\n') && n as u64 >= MAX_LINE {
            let mut out = serde_json::to_vec(&ControlReply::err("request line too long"))?;
            out.push(b'\n');
            w.write_all(&out).await?;
            return Ok(());
        } else {
            match serde_json::from_str::<ControlRequest>(line.trim()) {
                Ok(req) => handle(req, shared).await,
                Err(e) => ControlReply::err(format!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&reply)?;
        out.push(b'\n');
        w.write_all(&out).await?;
    }
}

/// Executes one request.
pub async fn handle(req: ControlRequest, shared: &Shared) -> ControlReply {
    match req {
        ControlRequest::Status => crate::cli::status::daemon::status(shared).await,
        ControlRequest::Reload => match shared.reload() {
            Ok(()) => ControlReply::ok(json!({"reloaded": true})),
            Err(e) => ControlReply::err(format!("reload refused, old configuration kept:\n{e}")),
        },
        ControlRequest::AccountList { .. }
        | ControlRequest::AccountShow { .. }
        | ControlRequest::AccountLock { .. }
        | ControlRequest::AccountUnlock { .. } => crate::cli::account::handle(req, shared).await,
        ControlRequest::Ban { .. } | ControlRequest::Unban { .. } | ControlRequest::Bans { .. } => {
            crate::cli::bans::handle(req, shared).await
        }
        ControlRequest::GreylistList { limit } => {
            let triplets = match shared.store.greylist_list(limit).await {
                Ok(t) => t,
                Err(e) => return ControlReply::err(e.to_string()),
            };
            let clients = match shared.store.awl_list(limit).await {
                Ok(c) => c,
                Err(e) => return ControlReply::err(e.to_string()),
            };
            ControlReply::ok(json!({
                "triplets": triplets.iter().map(|t| json!({
                    "key": t.key, "first": t.record.first.0, "last": t.record.last.0,
                })).collect::<Vec<_>>(),
                "clients": clients.iter().map(|c| json!({
                    "client": c.client.to_string(), "count": c.record.count, "last": c.record.last.0,
                })).collect::<Vec<_>>(),
            }))
        }
        ControlRequest::GreylistWhitelist { client } => {
            let cfg = shared.config.load();
            let Some(gl) = cfg.greylist.as_ref() else {
                return ControlReply::err("greylisting is disabled ([greylist] enabled = false)");
            };
            if gl.auto_whitelist_clients == 0 {
                return ControlReply::err(
                    "the client auto-whitelist is off ([greylist] auto_whitelist_clients = 0); \
                     list the client in a whitelist_clients file or in [lists] allow instead",
                );
            }
            let record = AwlRecord {
                count: gl.auto_whitelist_clients,
                last: shared.clock.now(),
            };
            match shared.store.awl_put(client, record).await {
                Ok(()) => {
                    ControlReply::ok(json!({"client": client.to_string(), "count": record.count}))
                }
                Err(e) => ControlReply::err(e.to_string()),
            }
        }
        ControlRequest::GreylistRemove { target } => {
            let target = target.trim();
            let removed = if let Ok(ip) = target.parse::<IpAddr>() {
                shared.store.awl_remove(ip).await
            } else if target.contains('/') {
                let key = GreylistKey::from_normalised(target.to_ascii_lowercase());
                shared.store.greylist_remove(&key).await
            } else {
                return ControlReply::err(format!(
                    "{target:?} is neither a client IP nor a triplet key (net/sender/recipient)"
                ));
            };
            match removed {
                Ok(found) => ControlReply::ok(json!({"removed": found, "target": target})),
                Err(e) => ControlReply::err(e.to_string()),
            }
        }
    }
}

/// Client side: sends one request to the socket at `path` and reads the reply.
pub async fn request(path: &Path, req: &ControlRequest) -> anyhow::Result<ControlReply> {
    use anyhow::Context;
    let s = UnixStream::connect(path).await.with_context(|| {
        format!(
            "cannot connect to the control socket {} (is `mxguard serve` running, and are you \
             its user? --config or --socket select the socket)",
            path.display()
        )
    })?;
    let (r, mut w) = s.into_split();
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    let mut line = String::new();
    BufReader::new(r)
        .take(64 * 1024 * 1024)
        .read_line(&mut line)
        .await?;
    serde_json::from_str(&line).context("malformed reply from the control socket")
}
