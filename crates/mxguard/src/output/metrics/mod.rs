//! Prometheus metrics: the counters every service updates, and the optional HTTP endpoint
//! (`[metrics] listen`) that serves them at `/metrics` in the text exposition format.
//! docs/metrics.md is the catalogue (a test checks it against a scrape).
//!
//! One [`Metrics`] per process, kept across reloads. The services own their parts and
//! register them here: the policy listener (this file), the checks ([`checks`], fed by the
//! engine's observer and by each verdict), the store wrapper ([`store`]), the DNS wrapper
//! ([`dns`]), the auth policy (`input::dovecot_auth::metrics`), the jails
//! (`jails::JailMetrics`) and Redis health (`redis`). Gauges of stored state (greylist
//! entries, locked accounts) are read from the store at scrape time ([`state`]).
//!
//! Label values come from closed sets only (action kinds, engine `decided_by` names, names
//! from the configuration), never from request data (DESIGN.md: no IP, user or sender).

pub mod checks;
pub mod dns;
mod redis;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::store::redis::RedisHealth;
use redis::RedisMetrics;
pub use state::Tally;

/// Labels of `mxguard_policy_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The reply's access(5) action kind (`dunno`, `defer_if_permit`, ...).
    pub action: &'static str,
    /// The check that decided (engine `decided_by`, or `malformed`).
    pub check: &'static str,
}

/// Labels of `mxguard_policy_malformed_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MalformedLabels {
    pub reason: &'static str,
}

/// Labels of `mxguard_config_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

/// All metrics of the daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub policy_requests: Family<RequestLabels, Counter>,
    /// Policy answers since start by action kind (for `mxguard status`).
    pub policy_answers: Tally<&'static str>,
    pub policy_duration: Histogram,
    pub policy_malformed: Family<MalformedLabels, Counter>,
    pub policy_connections_open: Gauge,
    pub policy_connections_refused: Counter,
    pub store_errors: Counter,
    pub reloads: Family<ReloadLabels, Counter>,
    /// `mxguard_auth_policy_*` (input::dovecot_auth).
    pub auth_policy: crate::input::dovecot_auth::AuthMetrics,
    /// Accounts locked by containment (synced from the engine's count at each scrape).
    pub accounts_locked: Counter,
    /// `mxguard_bans_*`, `mxguard_jail_*`, `mxguard_log_*` (jails).
    pub jails: crate::jails::JailMetrics,
    /// `mxguard_greylist_decisions_total`, `mxguard_limit_breaches_total`, `mxguard_spf_*`,
    /// `mxguard_dnsbl_*`: the engine's observer.
    pub checks: checks::ChecksMetrics,
    /// `mxguard_store_operation_*`.
    pub store: store::StoreMetrics,
    /// `mxguard_dns_*`.
    pub dns: dns::DnsMetrics,
    /// Gauges read from the store at scrape time.
    pub state: state::StateGauges,
    /// `mxguard_store_redis_*`, when Redis is the store.
    redis: Option<RedisMetrics>,
}

/// Raises `c` to `total` (counters kept elsewhere, copied at scrape time).
pub(crate) fn catch_up(c: &Counter, total: u64) {
    let seen = c.get();
    if total > seen {
        c.inc_by(total - seen);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_redis(None)
    }

    /// The metrics, with the `mxguard_store_redis_*` family when `redis` is the store's
    /// health.
    pub fn with_redis(redis: Option<Arc<RedisHealth>>) -> Self {
        dns::cache::install();
        let mut registry = Registry::with_prefix("mxguard");
        let info = Family::<state::BuildLabels, Gauge>::default();
        info.get_or_create(&state::BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        registry.register(
            "build_info",
            "Always 1; the label is the running mxguard version",
            info,
        );
        let policy_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "policy_requests",
            "Policy requests answered, by reply action and deciding check",
            policy_requests.clone(),
        );
        // 25 µs .. ~0.8 s: the target is p99 < 1 ms, store trouble shows in the upper buckets.
        let policy_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.000_025, 2.0, 16),
        );
        registry.register(
            "policy_request_duration_seconds",
            "Time from a complete request to its reply being queued",
            policy_duration.clone(),
        );
        let policy_malformed = Family::<MalformedLabels, Counter>::default();
        registry.register(
            "policy_malformed",
            "Malformed policy requests, answered with default_action",
            policy_malformed.clone(),
        );
        let policy_connections_open = Gauge::default();
        registry.register(
            "policy_connections_open",
            "Policy connections currently open",
            policy_connections_open.clone(),
        );
        let policy_connections_refused = Counter::default();
        registry.register(
            "policy_connections_refused",
            "Policy connections closed at once because max_connections was reached",
            policy_connections_refused.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Store failures; each request affected got the fail-open default_action",
            store_errors.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP), by result",
            reloads.clone(),
        );
        let auth_policy = crate::input::dovecot_auth::AuthMetrics::register(&mut registry);
        let accounts_locked = Counter::default();
        registry.register(
            "accounts_locked",
            "Accounts locked by compromised-account containment (docs/limits.md)",
            accounts_locked.clone(),
        );
        let jails = crate::jails::JailMetrics::register(&mut registry);
        let checks = checks::ChecksMetrics::register(&mut registry);
        let store = store::StoreMetrics::register(&mut registry);
        let dns = dns::DnsMetrics::register(&mut registry);
        let state = state::StateGauges::register(&mut registry);
        let redis = redis.map(|h| RedisMetrics::register(&mut registry, h));
        Metrics {
            jails,
            redis,
            registry,
            policy_requests,
            policy_answers: Tally::default(),
            policy_duration,
            policy_malformed,
            policy_connections_open,
            policy_connections_refused,
            store_errors,
            reloads,
            auth_policy,
            accounts_locked,
            checks,
            store,
            dns,
            state,
        }
    }

    /// Counts one policy answer: `action` is the reply's kind, `check` what decided.
    pub fn count_policy(&self, action: &'static str, check: &'static str) {
        self.policy_requests
            .get_or_create(&RequestLabels { action, check })
            .inc();
        self.policy_answers.add(action);
    }

    /// The text exposition of every metric. Counters kept elsewhere are copied in first;
    /// the stored-state gauges hold what the last [`state::StateGauges::refresh`] read.
    pub fn encode(&self) -> String {
        catch_up(
            &self.accounts_locked,
            mxguard_engine::account::locks_total(),
        );
        if let Some(r) = &self.redis {
            r.sync();
        }
        self.dns.sync();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    m.state.refresh().await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

/// Binds the metrics listener; separate from [`serve`] so bind errors surface at start-up
/// and tests can learn the port.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `/metrics` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            crate::input::postfix_policy::stopped(&mut shutdown).await;
        })
        .await
        .context("metrics server failed")
}
