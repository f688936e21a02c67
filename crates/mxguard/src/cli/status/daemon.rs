//! The daemon side of `mxguard status`: the JSON object the control socket answers to a
//! `status` request ([`status`], called by `control::handle`). Keys are a contract for
//! scripts (`mxguard status --json`): new ones may be added, existing ones keep their name
//! and meaning. The text rendering is the CLI's ([`super`]).
//!
//! Everything here is read from memory (config, metrics, ban list, jail runner) except the
//! greylist counts, one store call whose failure is reported, not fatal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde_json::json;

use crate::config::{Config, ListenAddr, StoreKind};
use crate::control::ControlReply;
use crate::jails::JailLabel;
use crate::service::Shared;

/// Where the daemon listens, as bound (a configured port 0 shows the real port).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listeners {
    /// `inet:IP:PORT` or `unix:/path`, in `[policy] listen` order.
    pub policy: Vec<String>,
    pub auth_policy: Option<String>,
    pub metrics: Option<String>,
    pub control_socket: String,
}

impl Listeners {
    /// `policy_addrs` are the bound TCP addresses, in the order of the `inet:` entries.
    pub fn new(
        cfg: &Config,
        policy_addrs: &[SocketAddr],
        auth_policy: Option<SocketAddr>,
        metrics: Option<SocketAddr>,
    ) -> Self {
        let mut bound = policy_addrs.iter();
        let policy = cfg
            .policy
            .listen
            .iter()
            .map(|l| match l {
                ListenAddr::Inet(_) => bound
                    .next()
                    .map_or_else(|| l.to_string(), |a| format!("inet:{a}")),
                ListenAddr::Unix(_) => l.to_string(),
            })
            .collect();
        Listeners {
            policy,
            auth_policy: auth_policy.map(|a| a.to_string()),
            metrics: metrics.map(|a| a.to_string()),
            control_socket: cfg.control.socket.display().to_string(),
        }
    }
}

/// The store's description and health.
fn store_json(shared: &Shared, cfg: &Config) -> serde_json::Value {
    match &cfg.store.kind {
        StoreKind::Embedded(p) => json!({"type": "embedded", "path": p.display().to_string()}),
        StoreKind::Memory => json!({"type": "memory"}),
        StoreKind::Redis {
            prefix,
            sentinel,
            cluster,
            ..
        } => {
            let h = shared.redis.as_ref();
            let primary = h.and_then(|h| {
                h.primary
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            });
            let primaries = h.map(|h| {
                h.cluster_primaries
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            });
            let n = |f: fn(&crate::store::redis::RedisHealth) -> u64| h.map(|h| f(h));
            json!({
                "type": "redis", "prefix": prefix,
                "reachable": h.map(|h| !h.is_down()),
                "errors_total": n(|h| h.errors.load(Ordering::Relaxed)),
                "outages_total": n(|h| h.outages.load(Ordering::Relaxed)),
                "conflicts_total": n(|h| h.conflicts.load(Ordering::Relaxed)),
                "sentinel": sentinel.as_ref().map(|s| json!({
                    "master_name": s.master_name, "primary": primary,
                })),
                // The primaries as the store's last listing (the counts above) saw them.
                "cluster": cluster.as_ref().map(|c| json!({
                    "seeds": c.nodes, "primaries": primaries,
                })),
            })
        }
    }
}

/// Auth-policy answers since start: `{"allow": {"allow": n, ...}, "report": {...}}`.
fn auth_json(shared: &Shared) -> serde_json::Value {
    let mut out: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for ((command, answer), n) in shared.metrics.auth_policy.answers.snapshot() {
        out.entry(command).or_default().insert(answer, n);
    }
    json!(out)
}

/// Answers a `status` control request.
pub async fn status(shared: &Shared) -> ControlReply {
    let cfg = shared.config.load();
    let counts = shared.store.counts().await;
    let last_reload = shared
        .last_reload
        .lock()
        .map(|r| r.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    let now = shared.clock.now();
    let active = shared.bans.active_by_jail();
    let m = &shared.metrics;
    let ban_events = |jail: &str| {
        m.jails
            .bans
            .get(&JailLabel {
                jail: jail.to_string(),
            })
            .map_or(0, |c| c.get())
    };
    let jails: Vec<serde_json::Value> = match &shared.jails {
        Some(j) => j
            .runner
            .lock()
            .await
            .status()
            .into_iter()
            .map(|s| {
                json!({
                    "name": s.name, "filter": s.filter, "source": s.source,
                    "failures_pending": s.pending, "failures_total": s.failures,
                    "ignored_total": s.ignored,
                    "bans_active": active.get(&s.name).copied().unwrap_or(0),
                    "bans_total": ban_events(&s.name),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let mut bans_by_jail: BTreeMap<String, u64> = BTreeMap::new();
    for j in cfg.jails.jails.iter().map(|j| j.settings.name.as_str()) {
        bans_by_jail.insert(j.to_string(), ban_events(j));
    }
    for j in active.keys() {
        bans_by_jail
            .entry(j.clone())
            .or_insert_with(|| ban_events(j));
    }
    let answers = m.policy_answers.snapshot();
    let store_healthy = counts.is_ok() && shared.redis.as_ref().is_none_or(|h| !h.is_down());
    ControlReply::ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": now.since(shared.started),
        "started_at": shared.started.0,
        "config": cfg.source.as_ref().map(|p| p.display().to_string()),
        "policy_listen": cfg.policy.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "listeners": shared.listeners.get(),
        "default_action": cfg.policy.default_action.to_string(),
        "greylist_enabled": cfg.greylist.is_some(),
        "store": store_json(shared, &cfg),
        "store_healthy": store_healthy,
        "triplets": counts.as_ref().ok().map(|c| c.triplets),
        "clients": counts.as_ref().ok().map(|c| c.clients),
        "store_error": counts.as_ref().err().map(ToString::to_string),
        "connections_open": m.policy_connections_open.get(),
        "store_errors_total": m.store_errors.get(),
        "last_reload": last_reload,
        "jails": jails,
        "bans_active": active.values().sum::<usize>(),
        "log_lines_read": m.jails.log_lines.get(),
        "counters": {
            "policy_requests": answers,
            "policy_requests_total": answers.values().sum::<u64>(),
            "holds": answers.get("hold").copied().unwrap_or(0),
            "auth_policy": auth_json(shared),
            "auth_policy_bans": m.auth_policy.bans.get(),
            "bans_by_jail": bans_by_jail,
            "bans": bans_by_jail.values().sum::<u64>(),
            "accounts_locked": mxguard_engine::account::locks_total(),
            "log_lines_read": m.jails.log_lines.get(),
        },
    }))
}
