//! Log jails and the ban list in the daemon: the service that reads logs ([`crate::input::logtail`]),
//! runs them through the jails ([`runner`]), records bans and runs the firewall actions
//! ([`bans`]). fail2ban's daemon for a mail server, with the semantics in
//! `mxguard_engine::jail` and docs/jails.md.
//!
//! Start-up order (issue 5, "bans that hold"): action setup, then the restore of every active
//! ban from the store in one batch per action, then log reading. A ban is in the store before
//! any action runs. The Postfix policy refuses banned clients from the store, so bans hold
//! even without a firewall action, and even if an action fails.

pub mod actions;
pub mod bans;
pub mod ignore;
pub mod runner;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{Mutex, mpsc, watch};

pub use bans::{BanManager, BanOutcome, ManualBan, Routes};
pub use runner::{JailRunner, JailStatus};

use crate::config::jails::Jails;
use crate::input::logtail::{Batch, LogLine, LogTail, TailSettings};

/// Labels with a jail name (closed set: the configured jails).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JailLabel {
    pub jail: String,
}

/// Labels with an action name (closed set: the configured actions).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

/// `mxguard_bans_*`, `mxguard_ban_*`, `mxguard_log_lines_read_total`.
#[derive(Debug, Clone, Default)]
pub struct JailMetrics {
    pub bans: Family<JailLabel, Counter>,
    pub active: Family<JailLabel, Gauge>,
    pub action_errors: Family<ActionLabel, Counter>,
    pub store_errors: Counter,
    pub log_lines: Counter,
    /// Lines (or ban events, for recidive) each jail's filter matched, copied from the
    /// runner's per-jail counts after each batch.
    pub matched: Family<JailLabel, Counter>,
    /// Matches dropped by `ignoreip` / `ignoreself`, by jail.
    pub ignored: Family<JailLabel, Counter>,
}

impl JailMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = JailMetrics::default();
        registry.register("bans", "Ban events, by jail", m.bans.clone());
        registry.register("bans_active", "Bans in force, by jail", m.active.clone());
        registry.register(
            "ban_action_errors",
            "Firewall action runs that failed, by action (the ban stays in the ban list)",
            m.action_errors.clone(),
        );
        registry.register(
            "ban_store_errors",
            "Bans that could not be recorded in the store",
            m.store_errors.clone(),
        );
        registry.register(
            "log_lines_read",
            "Log lines read by the log follower",
            m.log_lines.clone(),
        );
        registry.register(
            "log_lines_matched",
            "Failures a jail's filter matched (log lines; ban events for recidive), by jail",
            m.matched.clone(),
        );
        registry.register(
            "log_lines_ignored",
            "Matched failures dropped by ignoreip / ignoreself, by jail",
            m.ignored.clone(),
        );
        m
    }

    /// Copies the runner's per-jail totals into `matched` / `ignored`.
    pub fn sync_jails(&self, status: &[JailStatus]) {
        for s in status {
            let l = Self::label(&s.name);
            crate::output::metrics::catch_up(&self.matched.get_or_create(&l), s.failures);
            crate::output::metrics::catch_up(&self.ignored.get_or_create(&l), s.ignored);
        }
    }

    fn label(jail: &str) -> JailLabel {
        JailLabel {
            jail: jail.to_string(),
        }
    }

    pub fn banned(&self, jail: &str) {
        self.bans.get_or_create(&Self::label(jail)).inc();
    }

    pub fn set_active(&self, jail: &str, n: i64) {
        self.active.get_or_create(&Self::label(jail)).set(n);
    }

    pub fn action_error(&self, action: &str) {
        self.action_errors
            .get_or_create(&ActionLabel {
                action: action.to_string(),
            })
            .inc();
    }

    pub fn store_error(&self) {
        self.store_errors.inc();
    }
}

/// The jail service's parts, kept by the daemon for the control socket.
#[derive(Debug)]
pub struct JailService {
    pub runner: Arc<Mutex<JailRunner>>,
    pub bans: Arc<BanManager>,
}

/// The log follower settings for `jails`.
pub fn tail_settings(jails: &Jails, watches: Vec<Vec<String>>) -> TailSettings {
    TailSettings {
        watches,
        checkpoint: jails.bans.checkpoint.clone(),
        max_line: jails.bans.max_line,
        start_at_end: jails.bans.start_at_end,
        batch_lines: 4096,
    }
}

/// Reads log batches and runs them through the jails until shutdown. Commits the
/// checkpoint only after a batch's bans are recorded, so a crash re-reads lines rather than
/// losing them.
pub async fn run(
    svc: Arc<JailService>,
    tail: LogTail,
    journal: Option<crate::input::journal::JournalTail>,
    poll: Duration,
    clock: Arc<dyn mxguard_engine::Clock>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Batch>(4);
    let journal = journal.map(|j| tokio::spawn(j.run(tx.clone(), shutdown.clone())));
    let follower = tokio::spawn(tail.run(tx, poll, shutdown.clone()));
    let mut last_cleanup = 0i64;
    let mut shutdown = shutdown;
    loop {
        let batch = tokio::select! {
            _ = crate::input::postfix_policy::stopped(&mut shutdown) => break,
            b = rx.recv() => match b { Some(b) => b, None => break },
        };
        let now = clock.now().0 as i64;
        svc.bans
            .metrics()
            .log_lines
            .inc_by(batch.lines.len() as u64);
        process_batch(&svc, &batch.lines, now).await;
        // The position moves only once the batch's bans are recorded.
        if let Some(c) = &batch.checkpoint
            && let Err(e) = c.write()
        {
            tracing::warn!(error = %e, "cannot write the log position");
        }
        if now - last_cleanup >= 5 {
            svc.runner.lock().await.cleanup(now);
            last_cleanup = now;
        }
    }
    follower.abort();
    if let Some(j) = journal {
        j.abort();
    }
    Ok(())
}

/// Lifts ended bans every second (fail2ban's actions thread polls for at most 2 s).
pub async fn expiry_job(
    bans: Arc<BanManager>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = crate::input::postfix_policy::stopped(&mut shutdown) => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        bans.expire_due().await;
    }
}

/// Applies the bans other hosts decide (issue 10): with a store whose ban list several
/// hosts share, polls its ban version every `every` (one small read) and, when it changed,
/// syncs this host's firewall with the list ([`BanManager::sync`]). Ends at once for a store
/// only this process writes. A failed poll is retried at the next tick (the store logs the
/// outage once).
pub async fn sync_job(
    bans: Arc<BanManager>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut seen = None;
    loop {
        let version = match bans.shared_version().await {
            Ok(None) => return Ok(()),
            Ok(Some(v)) => Some(v),
            Err(_) => None,
        };
        if version.is_some() && version != seen {
            match bans.sync().await {
                Ok(_) => seen = version,
                Err(e) => tracing::debug!(error = %e, "ban sync failed; retrying"),
            }
        }
        tokio::select! {
            _ = crate::input::postfix_policy::stopped(&mut shutdown) => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Runs one batch of lines through the jails and applies the resulting bans (and the
/// recidive bans they trigger).
pub async fn process_batch(svc: &JailService, batch: &[LogLine], now: i64) {
    let mut decisions = Vec::new();
    {
        let mut runner = svc.runner.lock().await;
        // fail2ban's observer: a failure of an address banned before counts more.
        let mut weight = |s: &mxguard_engine::jail::JailSettings, ip: std::net::IpAddr| {
            s.failure_weight(svc.bans.previous_bans(s, s.network_of(ip)))
        };
        for l in batch {
            let text = String::from_utf8_lossy(&l.bytes);
            decisions.extend(runner.line(&l.watches, &text, l.time, now, &mut weight));
        }
        svc.bans.metrics().sync_jails(&runner.status());
    }
    apply(svc, decisions, now).await;
}

/// A ban recorded elsewhere (the auth policy): the firewall actions enforce it, and it
/// counts towards `recidive` like a jail's ban event.
pub async fn enforce_external(
    shared: &crate::service::Shared,
    key: &str,
    rec: &mxguard_engine::auth::ban::BanRecord,
) {
    let Some(net) = shared.bans.enforce_recorded(key, rec).await else {
        return;
    };
    if let Some(svc) = &shared.jails {
        let now = shared.clock.now().0 as i64;
        let event = (rec.jail.clone(), net, rec.since.0 as i64);
        let decisions = svc.runner.lock().await.ban_events(&[event], now);
        apply(svc, decisions, now).await;
    }
}

/// Applies decisions, then feeds the new ban events to recidive and applies its bans.
pub async fn apply(svc: &JailService, decisions: Vec<mxguard_engine::jail::BanDecision>, now: i64) {
    let mut decisions = decisions;
    // Two rounds at most: the jails' bans, then the recidive bans they cause (recidive's own
    // bans do not feed recidive).
    for _ in 0..2 {
        if decisions.is_empty() {
            return;
        }
        let settings: std::collections::HashMap<String, _> = {
            let runner = svc.runner.lock().await;
            decisions
                .iter()
                .filter_map(|d| runner.settings(&d.jail).map(|s| (d.jail.clone(), s)))
                .collect()
        };
        let outcomes = svc
            .bans
            .apply(std::mem::take(&mut decisions), &settings)
            .await;
        let events: Vec<(String, ipnet::IpNet, i64)> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, BanOutcome::Banned(_)))
            .map(|(d, _)| (d.jail.clone(), d.net, d.time))
            .collect();
        decisions = svc.runner.lock().await.ban_events(&events, now);
    }
}
