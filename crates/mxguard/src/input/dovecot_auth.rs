//! The Dovecot auth-policy endpoint (`auth_policy_server_url`, `[auth_policy] listen`): an
//! HTTP/1.1 server (axum) answering Dovecot's `allow` and `report` questions with the
//! engine's [`AuthPolicy`].
//!
//! Protocol (observed from Dovecot 2.3.19, notes/mail-e2e.md; dovecot/core
//! `src/auth/auth-policy.c`): `POST <url>?command=allow|report` with a one-line JSON body
//! over keep-alive connections; wforce's `/command/allow` path form is accepted too, and so
//! is any path prefix (the URL is the admin's choice). The reply is `{"status": N, "msg":
//! "..."}`: -1 refuses, 0 allows, N > 0 makes Dovecot wait N seconds before the passdb (the
//! tarpit is Dovecot's; this server answers at once). Dovecot shows `msg` to the client, so
//! it is the configured generic `reject_text`, never the internal reason.
//!
//! Failure design: Dovecot gives up after 2 s (`http_client_request_absolute_timeout`) and
//! then, with the default `auth_policy_reject_on_fail = no`, lets the login go on. This
//! server therefore never waits long: every answer has a deadline (`answer_timeout`, 500 ms
//! by default) after which it answers 0 itself, and store errors answer 0 too. Malformed
//! JSON, oversized bodies, a wrong API header, an unknown command or method get a 4xx (which
//! Dovecot treats like a failure: fail-open) and are counted in
//! `mxguard_auth_policy_errors_total`; no request can crash the daemon. Connections beyond
//! `max_connections` wait in the kernel's accept queue.
//!
//! The engine is rebuilt when the daemon's configuration is swapped (SIGHUP): each request
//! compares the config pointer, so counters survive reloads ([`AuthPolicy::with_settings`]).
//! The listen address needs a restart. Called by `service::Daemon::start`.

mod conn;
pub mod metrics;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mxguard_engine::auth::{Answer, Attempt, AuthPolicy};
use mxguard_proto::dovecot::{AuthPolicyCommand, AuthPolicyReply, AuthPolicyRequest};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::config::auth_policy::AuthPolicy as AuthConfig;
use crate::service::Shared;
pub use metrics::AuthMetrics;
use metrics::{AlertLabels, DecisionLabels, ErrorLabels};

/// What requests read; rebuilt when the configuration changes.
#[derive(Debug)]
struct Live {
    /// The configuration this was built from (compared by pointer).
    config: Arc<Config>,
    cfg: AuthConfig,
    engine: AuthPolicy,
}

/// Server state.
#[derive(Debug)]
pub struct AuthState {
    shared: Arc<Shared>,
    live: ArcSwap<Live>,
}

impl AuthState {
    /// State for the current configuration; `None` when it has no `[auth_policy]`.
    pub fn new(shared: Arc<Shared>) -> Option<Arc<AuthState>> {
        let config = shared.config.load_full();
        let cfg = config.auth_policy.clone()?;
        let engine = AuthPolicy::new(
            cfg.settings.clone(),
            shared.store.clone(),
            shared.clock.clone(),
        );
        Some(Arc::new(AuthState {
            live: ArcSwap::from_pointee(Live {
                config,
                cfg,
                engine,
            }),
            shared,
        }))
    }

    /// The live state, rebuilt first if the daemon's configuration was swapped.
    fn current(&self) -> Arc<Live> {
        let live = self.live.load_full();
        let config = self.shared.config.load();
        if Arc::ptr_eq(&live.config, &config) {
            return live;
        }
        let config = arc_swap::Guard::into_inner(config);
        let Some(cfg) = config.auth_policy.clone() else {
            tracing::warn!("[auth_policy] removed: the endpoint keeps its settings until restart");
            let keep = Arc::new(Live {
                config,
                cfg: live.cfg.clone(),
                engine: live.engine.with_settings(live.cfg.settings.clone()),
            });
            self.live.store(keep.clone());
            return keep;
        };
        if cfg.listen != live.cfg.listen {
            tracing::warn!("[auth_policy] listen changed: takes effect after a restart");
        }
        let new = Arc::new(Live {
            config,
            engine: live.engine.with_settings(cfg.settings.clone()),
            cfg,
        });
        self.live.store(new.clone());
        new
    }
}

/// Binds the endpoint; separate from [`run`] so a bad address fails start-up.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for the Dovecot auth policy on {addr}"))
}

/// Serves until `shutdown` turns true; also drops idle counters once per window.
pub async fn run(
    listener: TcpListener,
    state: Arc<AuthState>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let max = state.current().cfg.max_connections;
    let expiry = tokio::spawn(expire_job(state.clone(), shutdown.clone()));
    let app = Router::new().fallback(handle).with_state(state);
    let r = axum::serve(conn::Limited::new(listener, max), app)
        .with_graceful_shutdown(async move {
            crate::input::postfix_policy::stopped(&mut shutdown).await;
        })
        .await
        .context("auth policy server failed");
    expiry.abort();
    r
}

async fn expire_job(state: Arc<AuthState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let every = Duration::from_secs(state.current().engine.settings().window.clamp(60, 3600));
        tokio::select! {
            _ = crate::input::postfix_policy::stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(every) => {}
        }
        let live = state.current();
        let n = live.engine.expire();
        let t = live.engine.tracked();
        let m = &state.shared.metrics.auth_policy;
        for (kind, v) in [
            ("ip", t.ips),
            ("prefix", t.prefixes),
            ("login", t.logins),
            ("login_ip", t.pairs),
        ] {
            m.tracked
                .get_or_create(&metrics::TrackedLabels { kind })
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        tracing::debug!(removed = n, "auth policy: idle counters dropped");
    }
}

/// The `command` of a request: `?command=X` anywhere in the query, or a `/command/X` path.
fn command_of(uri: &axum::http::Uri) -> Option<&str> {
    if let Some(q) = uri.query() {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("command=") {
                return Some(v);
            }
        }
    }
    uri.path()
        .trim_end_matches('/')
        .rsplit_once("/command/")
        .map(|(_, c)| c)
}

fn reply(r: &AuthPolicyReply) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r.to_json(),
    )
        .into_response()
}

fn error(m: &AuthMetrics, status: StatusCode, reason: &'static str) -> Response {
    m.errors.get_or_create(&ErrorLabels { reason }).inc();
    let body = format!("{{\"error\":\"{reason}\"}}");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(State(state): State<Arc<AuthState>>, req: Request) -> Response {
    let m = &state.shared.metrics.auth_policy;
    let live = state.current();
    if req.method() != Method::POST {
        return error(m, StatusCode::METHOD_NOT_ALLOWED, "method");
    }
    let Some(command) = command_of(req.uri()).and_then(AuthPolicyCommand::parse) else {
        return error(m, StatusCode::NOT_FOUND, "unknown_command");
    };
    if let Some((name, value)) = &live.cfg.api_header {
        let ok = req
            .headers()
            .get(name.as_str())
            .is_some_and(|v| v.as_bytes() == value.as_bytes());
        if !ok {
            return error(m, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    let limit = live.cfg.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return error(m, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    }
    let body = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => return error(m, StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
    };
    let Ok(request) = AuthPolicyRequest::from_json(&body) else {
        return error(m, StatusCode::BAD_REQUEST, "malformed");
    };
    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(
        live.cfg.answer_timeout,
        decide(&live, &state.shared, command, &request),
    );
    let out = match answer.await {
        Ok(Ok(r)) => r,
        Ok(Err(())) => return error(m, StatusCode::BAD_REQUEST, "malformed"),
        Err(_) => {
            // Past the deadline: answer what Dovecot would do on a timeout, but at once.
            m.errors
                .get_or_create(&ErrorLabels { reason: "timeout" })
                .inc();
            AuthPolicyReply::allow()
        }
    };
    m.duration.observe(started.elapsed().as_secs_f64());
    reply(&out)
}

async fn decide(
    live: &Live,
    shared: &Arc<Shared>,
    command: AuthPolicyCommand,
    r: &AuthPolicyRequest,
) -> Result<AuthPolicyReply, ()> {
    let m = &shared.metrics.auth_policy;
    let remote = r.remote.trim().parse::<IpAddr>().ok();
    let attempt = Attempt {
        login: &r.login,
        remote,
        pwhash: &r.pwhash,
    };
    match command {
        AuthPolicyCommand::Allow => {
            let d = live.engine.allow(&attempt).await;
            if d.decided_by == "store_error" {
                m.store_errors.inc();
            }
            let (answer, out) = match d.answer {
                Answer::Allow => ("allow", AuthPolicyReply::allow()),
                Answer::Tarpit(n) => ("tarpit", AuthPolicyReply::tarpit(n)),
                Answer::Reject => (
                    "reject",
                    AuthPolicyReply::refuse(&live.engine.settings().reject_text),
                ),
            };
            if d.answer != Answer::Allow {
                tracing::info!(
                    login = %r.login, remote = %r.remote, protocol = %r.protocol,
                    session = %r.session_id, answer, status = out.status, rule = d.decided_by,
                    "auth policy: login held back"
                );
            }
            let labels = DecisionLabels {
                command: "allow",
                answer,
                check: d.decided_by,
            };
            m.decided(&labels);
            Ok(out)
        }
        AuthPolicyCommand::Report => {
            // wforce and Dovecot always send `success` with a report.
            let success = r.success.ok_or(())?;
            let policy_reject = r.policy_reject.unwrap_or(false);
            let o = live.engine.report(&attempt, success, policy_reject).await;
            let outcome = match () {
                _ if policy_reject => "policy_reject",
                _ if success => "success",
                _ if o.stale => "stale",
                _ => "failure",
            };
            if o.store_error {
                m.store_errors.inc();
            }
            for (key, ban) in &o.banned {
                m.bans.inc();
                tracing::warn!(
                    ban = %key, until = ban.until.0, count = ban.count, reason = %ban.reason,
                    "auth policy: banned"
                );
                // The firewall actions run beside the answer: Dovecot must not wait for nft.
                let (shared, key, ban) = (shared.clone(), key.clone(), ban.clone());
                tokio::spawn(async move {
                    crate::jails::enforce_external(&shared, &key, &ban).await;
                });
            }
            for a in &o.alerts {
                m.alerts
                    .get_or_create(&AlertLabels {
                        kind: a.kind.as_str(),
                    })
                    .inc();
                tracing::warn!(kind = a.kind.as_str(), alert = %a, "auth policy: ALERT");
            }
            let labels = DecisionLabels {
                command: "report",
                answer: outcome,
                check: "none",
            };
            m.decided(&labels);
            Ok(AuthPolicyReply::allow())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_from_query_and_path() {
        let c = |s: &str| command_of(&s.parse().unwrap()).map(str::to_owned);
        assert_eq!(c("/?command=allow").as_deref(), Some("allow"));
        assert_eq!(c("/policy?x=1&command=report").as_deref(), Some("report"));
        assert_eq!(c("/command/allow").as_deref(), Some("allow"));
        assert_eq!(c("/wforce/command/report/").as_deref(), Some("report"));
        assert_eq!(c("/"), None);
    }
}
