//! The Postfix policy delegation service (SMTPD_POLICY_README): `inet:` and `unix:`
//! listeners, one task per connection, many requests per connection.
//!
//! Per connection (DESIGN.md "Runtime shape"): a semaphore permit (over `max_connections` a
//! connection is closed at once and counted, so nothing queues unseen), a bounded
//! [`PolicyDecoder`], an idle timeout on reads and writes. A malformed request is logged and
//! answered with `default_action`; the connection goes on when the decoder resynchronised,
//! and is closed when it could not. An error ends its connection only. On shutdown the
//! listener stops accepting, connections finish the request they are in, and whatever is left
//! after `drain_timeout` is aborted.
//!
//! Wire <-> engine mapping lives here (`to_engine`, `to_reply`), so Postfix's spelling
//! (`unknown`, empty attributes) never reaches the engine.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mxguard_engine::{Action, Request, Stage, Verdict};
use mxguard_proto::{PolicyDecoder, PolicyRequest, ProtocolState, ReplyAction, encode_reply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::ListenAddr;
use crate::output::metrics::{MalformedLabels, Metrics};
use crate::service::LiveHandle;

/// A bound policy listener.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr`. For `unix:` the parent directory is created, a stale socket file is
    /// removed (a live one is refused: another daemon is using it), and the mode is set.
    pub async fn bind(addr: &ListenAddr, socket_mode: u32) -> anyhow::Result<Listener> {
        match addr {
            ListenAddr::Inet(hp) => {
                let l = TcpListener::bind(hp.as_str())
                    .await
                    .with_context(|| format!("cannot listen on inet:{hp}"))?;
                Ok(Listener::Tcp(l))
            }
            ListenAddr::Unix(path) => {
                let l = bind_unix(path, socket_mode).await?;
                Ok(Listener::Unix(l, path.clone()))
            }
        }
    }

    /// The TCP address actually bound (port 0 resolved), for tests and logs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("inet:{a}"),
                Err(_) => "inet:?".to_owned(),
            },
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Binds a unix socket at `path` (shared with the control socket).
pub async fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        // A socket nobody answers on is stale (left by kill -9); one that answers belongs to
        // a running daemon and must not be stolen.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            anyhow::bail!("{} is in use by another process", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on unix:{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode of {}", path.display()))?;
    Ok(l)
}

/// What every connection of every policy listener shares.
#[derive(Debug, Clone)]
pub struct PolicyContext {
    pub live: LiveHandle,
    pub metrics: Arc<Metrics>,
    pub connections: Arc<Semaphore>,
    pub drain_timeout: Duration,
}

/// Accepts connections until `shutdown`, then drains (module docs).
pub async fn run(
    listener: Listener,
    ctx: PolicyContext,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let name = listener.describe();
    tracing::info!(listen = %name, "policy service listening");
    let mut tasks = JoinSet::new();
    let conn_shutdown = shutdown.clone();
    loop {
        // Reap finished connection tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = accept(&listener) => match accepted {
                Ok(stream) => {
                    let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
                        ctx.metrics.policy_connections_refused.inc();
                        tracing::warn!(listen = %name, "max_connections reached; closing new connection");
                        drop(stream);
                        continue;
                    };
                    let ctx = ctx.clone();
                    let sd = conn_shutdown.clone();
                    tasks.spawn(async move {
                        ctx.metrics.policy_connections_open.inc();
                        let r = match stream {
                            Stream::Tcp(s) => connection(s, &ctx, sd).await,
                            Stream::Unix(s) => connection(s, &ctx, sd).await,
                        };
                        ctx.metrics.policy_connections_open.dec();
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "policy connection ended with an error");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning (mini-redis does the same).
                    tracing::warn!(listen = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let open = tasks.len();
    if open > 0 {
        tracing::info!(listen = %name, open, "draining policy connections");
        let drained = tokio::time::timeout(ctx.drain_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(listen = %name, left = tasks.len(), "drain deadline passed; closing the rest");
            tasks.abort_all();
        }
    }
    Ok(())
}

/// Like [`stopped`], owning the receiver so the future can live as long as a connection.
async fn stopped_owned(mut rx: watch::Receiver<bool>) {
    stopped(&mut rx).await;
}

/// Resolves once `rx` reads true. The guard `wait_for` returns is not `Send`, so it is
/// dropped here rather than held in a caller's `select!`.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Stream> {
    match l {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
        Listener::Unix(l, _) => Ok(Stream::Unix(l.accept().await?.0)),
    }
}

/// Serves one connection until EOF, idle timeout, fatal input or shutdown.
pub async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    ctx: &PolicyContext,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (limits, idle) = {
        let live = ctx.live.load();
        (live.limits, live.idle_timeout)
    };
    let mut dec = PolicyDecoder::new(limits);
    // A real request is ~600 bytes; 4 KiB keeps thousands of connections cheap.
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(512);
    let mut stopping = *shutdown.borrow();
    // One timer and one shutdown waiter for the whole connection, not one per read: the idle
    // deadline only moves forward, and the timer is re-armed when it fires early.
    let mut deadline = tokio::time::Instant::now() + idle;
    let idle_timer = tokio::time::sleep_until(deadline);
    tokio::pin!(idle_timer);
    let stop = stopped_owned(shutdown);
    tokio::pin!(stop);
    loop {
        let mut close = false;
        while let Some(item) = dec.next_request() {
            match item {
                Ok(req) => answer(&req, ctx, &mut out).await,
                Err(e) => {
                    ctx.metrics
                        .policy_malformed
                        .get_or_create(&MalformedLabels { reason: e.kind() })
                        .inc();
                    let live = ctx.live.load();
                    if e.is_fatal() {
                        tracing::warn!(error = %e, "malformed policy input; closing connection");
                        close = true;
                        break;
                    }
                    tracing::warn!(error = %e, "malformed policy request; answering default_action");
                    count(ctx, &live.default_action, "malformed");
                    encode_reply(&live.default_action, &mut out);
                }
            }
        }
        if !out.is_empty() {
            // Writes are bounded too: a peer that stops reading must not pin the task.
            match tokio::time::timeout(idle, stream.write_all(&out)).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            }
            out.clear();
        }
        if close {
            return Ok(());
        }
        if stopping && !dec.is_mid_request() {
            // Shutting down between requests. Bytes that already arrived may start a request
            // the client is waiting on: take them if a read is ready right now, else close.
            match tokio::time::timeout(Duration::ZERO, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    dec.feed(buf.get(..n).unwrap_or_default());
                    continue;
                }
                _ => return Ok(()),
            }
        }
        let read = tokio::select! {
            r = stream.read(&mut buf) => r,
            () = &mut idle_timer => {
                if tokio::time::Instant::now() >= deadline {
                    tracing::debug!("policy connection idle; closing");
                    return Ok(());
                }
                idle_timer.as_mut().reset(deadline);
                continue;
            }
            () = &mut stop, if !stopping => {
                stopping = true;
                continue;
            }
        };
        match read {
            Ok(0) => {
                if dec.is_mid_request() {
                    tracing::debug!("policy client disconnected in the middle of a request");
                }
                return Ok(());
            }
            Ok(n) => {
                deadline = tokio::time::Instant::now() + idle;
                dec.feed(buf.get(..n).unwrap_or_default());
            }
            Err(e) => return Err(e),
        }
    }
}

fn count(ctx: &PolicyContext, reply: &ReplyAction, check: &'static str) {
    ctx.metrics.count_policy(reply_kind(reply), check);
}

/// Decides one well-formed request and appends the reply to `out`.
async fn answer(req: &PolicyRequest, ctx: &PolicyContext, out: &mut Vec<u8>) {
    let start = tokio::time::Instant::now();
    let live = ctx.live.load_full();
    let (reply, check) = match to_engine(req) {
        Some(r) => {
            let verdict = live.engine.decide(&r).await;
            let check = verdict.decided_by;
            if verdict.is_store_error() {
                ctx.metrics.store_errors.inc();
                (live.default_action.clone(), check)
            } else {
                (to_reply(verdict), check)
            }
        }
        None => {
            // Postfix always sends client_address; a request without one cannot be
            // judged, so it gets the safe answer like any malformed request.
            tracing::warn!("policy request without client_address; answering default_action");
            ctx.metrics
                .policy_malformed
                .get_or_create(&MalformedLabels {
                    reason: "missing_client_address",
                })
                .inc();
            (live.default_action.clone(), "malformed")
        }
    };
    count(ctx, &reply, check);
    encode_reply(&reply, out);
    ctx.metrics
        .policy_duration
        .observe(start.elapsed().as_secs_f64());
}

fn reply_kind(a: &ReplyAction) -> &'static str {
    match a {
        ReplyAction::Dunno => "dunno",
        ReplyAction::Ok => "ok",
        ReplyAction::Reject(_) => "reject",
        ReplyAction::Defer(_) => "defer",
        ReplyAction::DeferIfPermit(_) => "defer_if_permit",
        ReplyAction::Hold(_) => "hold",
        ReplyAction::Prepend(_) => "prepend",
        ReplyAction::Reply(_) => "reply",
    }
}

/// Postfix's `unknown` and empty values become `None`.
fn known(s: &str) -> Option<String> {
    (!s.is_empty() && !s.eq_ignore_ascii_case("unknown")).then(|| s.to_owned())
}

/// Maps a wire request to the engine's request; `None` without a client address.
pub fn to_engine(r: &PolicyRequest) -> Option<Request> {
    let stage = match &r.protocol_state {
        ProtocolState::Connect => Stage::Connect,
        ProtocolState::Ehlo | ProtocolState::Helo => Stage::Helo,
        ProtocolState::Mail => Stage::Mail,
        ProtocolState::Rcpt => Stage::Rcpt,
        ProtocolState::Data => Stage::Data,
        ProtocolState::EndOfMessage => Stage::EndOfMessage,
        ProtocolState::Vrfy => Stage::Vrfy,
        ProtocolState::Etrn => Stage::Etrn,
        ProtocolState::Other(_) => Stage::Other,
    };
    Some(Request {
        stage,
        client_ip: r.client_address?,
        client_name: known(&r.client_name),
        reverse_client_name: known(&r.reverse_client_name),
        helo_name: r.helo_name.clone(),
        sender: r.sender.clone(),
        recipient: r.recipient.clone(),
        recipient_count: r.recipient_count,
        size: r.size,
        sasl_username: (!r.sasl_username.is_empty()).then(|| r.sasl_username.clone()),
        instance: r.instance.clone(),
        queue_id: r.queue_id.clone(),
    })
}

/// Maps the engine's action to the wire reply.
pub fn to_reply(v: Verdict) -> ReplyAction {
    match v.action {
        Action::Dunno => ReplyAction::Dunno,
        Action::Ok => ReplyAction::Ok,
        Action::Reject(t) => ReplyAction::Reject(t),
        Action::Defer(t) => ReplyAction::Defer(t),
        Action::DeferIfPermit(t) => ReplyAction::DeferIfPermit(t),
        Action::Hold(t) => ReplyAction::Hold(t),
        Action::Prepend(t) => ReplyAction::Prepend(t),
        Action::Reply(t) => ReplyAction::Reply(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_spelling_stays_out_of_the_engine() {
        let mut w = PolicyRequest::rcpt([192, 0, 2, 1].into(), "a@b.example", "c@d.example");
        w.protocol_state = ProtocolState::Ehlo;
        w.client_name = "unknown".into();
        w.reverse_client_name = "mx.b.example".into();
        w.sasl_username = String::new();
        let r = to_engine(&w).unwrap();
        assert_eq!(r.stage, Stage::Helo);
        assert_eq!(r.client_name, None);
        assert_eq!(r.reverse_client_name.as_deref(), Some("mx.b.example"));
        assert_eq!(r.sasl_username, None);
        w.sasl_username = "alice".into();
        w.protocol_state = ProtocolState::EndOfMessage;
        let r = to_engine(&w).unwrap();
        assert_eq!(r.sasl_username.as_deref(), Some("alice"));
        assert_eq!(r.stage, Stage::EndOfMessage);
        w.client_address = None;
        assert!(to_engine(&w).is_none());
    }

    #[test]
    fn every_engine_action_maps_to_its_reply() {
        let cases = [
            (Action::Dunno, "DUNNO"),
            (Action::Ok, "OK"),
            (Action::Reject("5.7.1 no".into()), "REJECT 5.7.1 no"),
            (Action::Defer("later".into()), "DEFER later"),
            (Action::DeferIfPermit("grey".into()), "DEFER_IF_PERMIT grey"),
            (Action::Hold("held".into()), "HOLD held"),
            (Action::Prepend("X-A: b".into()), "PREPEND X-A: b"),
            (Action::Reply("450 4.7.1 x".into()), "450 4.7.1 x"),
        ];
        for (action, wire) in cases {
            let kind = action.kind();
            let reply = to_reply(Verdict::new(action, "none"));
            assert_eq!(reply.to_string(), wire);
            assert_eq!(
                reply_kind(&reply),
                kind,
                "metrics label matches the engine's kind"
            );
        }
    }
}
