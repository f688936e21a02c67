//! The ban manager: turns ban decisions (log jails, `mxguard ban`) into ban records in the
//! store and then into firewall actions, restores active bans at start, and lifts them at
//! expiry. The order is the durability rule of issue 5: **the store first, then the
//! actions**, so a crash between the two re-applies the ban at the next start rather than
//! losing it.
//!
//! One ban record per network in the store (key [`ban_key`]) is what the Postfix policy and
//! every MX sharing the store read. fail2ban keeps one ban per jail and address; to report
//! per-jail ban events the same way (and feed `recidive` with them), the manager also keeps
//! the per-jail view in memory ([`BanState`]): a second jail banning an address another jail
//! already banned is a new ban event for that jail, and the record is extended if it ends
//! later. After a restart the per-jail view is rebuilt from the records (one jail each: the
//! last one that banned).
//!
//! What it does not do: count failures (`jails::runner`), or decide for the auth policy,
//! which writes its own bans into the store and then hands them here
//! ([`BanManager::enforce_recorded`]) so the firewall actions enforce them too.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use mxguard_engine::auth::ban::{BanRecord, PERMANENT, ban_key};
use mxguard_engine::jail::{BanDecision, BanTime, JailSettings};
use mxguard_engine::store::{Store, StoreError};
use mxguard_engine::{Clock, UnixTime};

use super::JailMetrics;
use crate::output::firewall::{ActionRegistry, FirewallBan};

/// What became of one ban decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanOutcome {
    /// A new ban event for this jail (recorded, actions run).
    Banned(BanRecord),
    /// This jail had it banned already; the ban was extended to the later end.
    Prolonged(BanRecord),
    /// This jail had it banned already until at least that time.
    AlreadyBanned,
    /// The ban would already have ended (an old log line): ignored, as fail2ban does.
    Expired,
}

/// Which actions enforce which jail's bans.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Jail name -> action names.
    pub jails: HashMap<String, Vec<String>>,
    /// Actions for `mxguard ban`, auth-policy and restored bans of unknown jails.
    pub default: Vec<String>,
}

impl Routes {
    fn for_jail(&self, jail: &str) -> &[String] {
        self.jails.get(jail).unwrap_or(&self.default)
    }
}

/// The in-memory view: active bans per jail and the expiry queue.
#[derive(Debug, Default)]
pub struct BanState {
    /// (jail, network) -> end (Unix seconds; `u64::MAX` permanent).
    active: HashMap<(String, IpNet), u64>,
    /// (end, network, jail), earliest first.
    expiry: BinaryHeap<Reverse<(u64, IpNet, String)>>,
    /// Ban history per network, ended bans included: (times banned, last jail). Read for
    /// every counted failure (the observer weight), so it is kept here rather than read
    /// from the store per line; filled from the store at start.
    history: HashMap<IpNet, (u32, String)>,
    /// Entries of `active` per jail, kept with it: status and the gauges read this after
    /// every ban, and counting 100,000 entries each time would make a mass ban quadratic.
    /// An ended ban counts until the expiry job removes it (within a second).
    per_jail: HashMap<String, usize>,
}

/// The ban manager (one per daemon, shared with the control socket).
#[derive(Debug)]
pub struct BanManager {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    actions: ActionRegistry,
    routes: Mutex<Routes>,
    state: Mutex<BanState>,
    metrics: JailMetrics,
}

/// A ban for `mxguard ban`.
#[derive(Debug, Clone)]
pub struct ManualBan {
    pub net: IpNet,
    pub jail: String,
    /// `None`: permanent.
    pub duration: Option<Duration>,
    pub reason: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BanManager {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        actions: ActionRegistry,
        routes: Routes,
        metrics: JailMetrics,
    ) -> Self {
        BanManager {
            store,
            clock,
            actions,
            routes: Mutex::new(routes),
            state: Mutex::new(BanState::default()),
            metrics,
        }
    }

    /// Replaces the jail -> action routing (reload).
    pub fn set_routes(&self, routes: Routes) {
        *lock(&self.routes) = routes;
    }

    pub fn actions(&self) -> &ActionRegistry {
        &self.actions
    }

    pub fn metrics(&self) -> &JailMetrics {
        &self.metrics
    }

    /// Active bans per jail (status).
    pub fn active_by_jail(&self) -> BTreeMap<String, usize> {
        lock(&self.state)
            .per_jail
            .iter()
            .map(|(j, n)| (j.clone(), *n))
            .collect()
    }

    /// How often `net` was banned before, as jail `s` sees it (its own bans, or every
    /// jail's with `overalljails`): the history behind fail2ban's observer weight
    /// ([`JailSettings::failure_weight`]). 0 without `bantime_increment`.
    pub fn previous_bans(&self, s: &JailSettings, net: IpNet) -> u32 {
        let Some(inc) = &s.increment else {
            return 0;
        };
        match lock(&self.state).history.get(&net) {
            Some((count, jail)) if inc.overalljails || *jail == s.name => *count,
            _ => 0,
        }
    }

    /// Runs every action's setup (tables, sets, rules). Errors are logged and counted; the
    /// ban list in the store still holds and the policy still refuses banned clients.
    pub async fn setup(&self) {
        for a in self.actions.all() {
            if let Err(e) = a.setup().await {
                self.metrics.action_error(a.name());
                tracing::error!(error = %e, "action setup failed");
            }
        }
    }

    /// Re-applies every active ban of the store, one batch per action (issue 5: 100,000
    /// bans in one `nft -f` transaction). Returns how many bans were active.
    pub async fn restore(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let records = self.store.ban_list(usize::MAX).await?;
        let mut batches: BTreeMap<String, Vec<FirewallBan>> = BTreeMap::new();
        let mut n = 0;
        {
            let routes = lock(&self.routes).clone();
            let mut st = lock(&self.state);
            for (key, rec) in records {
                let Ok(net) = key.parse::<IpNet>() else {
                    tracing::warn!(key, "ban list: unreadable key skipped");
                    continue;
                };
                st.history.insert(net, (rec.count, rec.jail.clone()));
                if !rec.active(now) {
                    continue;
                }
                n += 1;
                st.insert(&rec.jail, net, rec.until.0);
                let fb = firewall_ban(net, &rec, now);
                for action in routes.for_jail(&rec.jail) {
                    batches.entry(action.clone()).or_default().push(fb.clone());
                }
            }
        }
        // Every action, even with no bans: its state is replaced by the store's.
        for a in self.actions.all() {
            let bans = batches.remove(a.name()).unwrap_or_default();
            if let Err(e) = a.restore(&bans).await {
                self.metrics.action_error(a.name());
                tracing::error!(error = %e, bans = bans.len(),
                    "restore action failed; the bans stay in the ban list");
            }
        }
        for name in batches.keys() {
            tracing::error!(action = name, "no such action");
        }
        self.sync_gauges();
        tracing::info!(bans = n, "restored active bans");
        Ok(n)
    }

    /// The store's ban version when other hosts share its ban list ([`Store::ban_version`]).
    pub async fn shared_version(&self) -> Result<Option<u64>, StoreError> {
        self.store.ban_version().await
    }

    /// Brings this host's firewall in line with a ban list other hosts also write (Redis):
    /// bans that are active in the store but not here (or end later there) are applied,
    /// bans that are active here but no longer in the store (unbanned elsewhere) are lifted.
    /// Ends are left to [`BanManager::expire_due`]. Returns (applied, lifted).
    pub async fn sync(&self) -> Result<(usize, usize), StoreError> {
        let now = self.clock.now();
        let records = self.store.ban_list(usize::MAX).await?;
        let mut add: BTreeMap<String, Vec<FirewallBan>> = BTreeMap::new();
        let mut lift: BTreeMap<String, Vec<FirewallBan>> = BTreeMap::new();
        let (mut applied, mut lifted) = (0, 0);
        {
            let routes = lock(&self.routes).clone();
            let mut st = lock(&self.state);
            let local = st.latest_ends();
            let mut in_store = std::collections::HashSet::new();
            for (key, rec) in &records {
                let Ok(net) = key.parse::<IpNet>() else {
                    continue;
                };
                in_store.insert(net);
                if !rec.active(now) || local.get(&net) >= Some(&rec.until.0) {
                    continue;
                }
                applied += 1;
                st.note_ban(&rec.jail, net, rec.until.0, rec.count);
                let fb = firewall_ban(net, rec, now);
                for action in routes.for_jail(&rec.jail) {
                    add.entry(action.clone()).or_default().push(fb.clone());
                }
            }
            let gone: std::collections::BTreeSet<IpNet> = st
                .active
                .iter()
                .filter(|((_, net), end)| **end > now.0 && !in_store.contains(net))
                .map(|((_, net), _)| *net)
                .collect();
            for net in gone {
                lifted += 1;
                st.history.remove(&net);
                for jail in st.remove_net(net) {
                    for action in routes.for_jail(&jail) {
                        lift.entry(action.clone()).or_default().push(FirewallBan {
                            net,
                            jail: jail.clone(),
                            timeout: None,
                        });
                    }
                }
            }
        }
        for (name, bans) in add {
            self.run_ban(&name, &bans).await;
        }
        for (name, bans) in lift {
            self.run_unban(&name, &bans, "unban (lifted on another host) failed")
                .await;
        }
        if applied + lifted > 0 {
            tracing::info!(applied, lifted, "ban list synced from the shared store");
            self.sync_gauges();
        }
        Ok((applied, lifted))
    }

    /// Applies a batch of jail decisions: records first, then one action call per action
    /// for all new bans of the batch. `settings` holds each decision's jail settings.
    pub async fn apply(
        &self,
        decisions: Vec<BanDecision>,
        settings: &HashMap<String, JailSettings>,
    ) -> Vec<(BanDecision, BanOutcome)> {
        let now = self.clock.now();
        let mut out = Vec::new();
        let mut batches: BTreeMap<String, Vec<FirewallBan>> = BTreeMap::new();
        for d in decisions {
            let Some(s) = settings.get(&d.jail).cloned() else {
                continue;
            };
            match self.record(&d, &s, now).await {
                Ok(outcome) => {
                    if let BanOutcome::Banned(rec) | BanOutcome::Prolonged(rec) = &outcome {
                        let fb = firewall_ban(d.net, rec, now);
                        let routes = lock(&self.routes);
                        for action in routes.for_jail(&d.jail) {
                            batches.entry(action.clone()).or_default().push(fb.clone());
                        }
                    }
                    out.push((d, outcome));
                }
                Err(e) => {
                    self.metrics.store_error();
                    tracing::error!(error = %e, jail = d.jail, net = %d.net,
                        "cannot record a ban; it is not applied");
                }
            }
        }
        for (name, bans) in batches {
            self.run_ban(&name, &bans).await;
        }
        self.sync_gauges();
        out
    }

    /// Stores one decision (fail2ban `Actions.__checkBan`): the ban length from the
    /// address's ban history, "already banned" per jail, prolongation.
    async fn record(
        &self,
        d: &BanDecision,
        s: &JailSettings,
        now: UnixTime,
    ) -> Result<BanOutcome, StoreError> {
        let key = ban_key(d.net);
        let prev = self.store.ban_get(&key).await?;
        let history = match (&prev, &s.increment) {
            (Some(p), Some(inc)) if inc.overalljails || p.jail == s.name => p.count,
            _ => 0,
        };
        let length = s.ban_length(history, jitter(d));
        let until = match d.end(length) {
            None => PERMANENT,
            Some(end) if end <= now.0 as i64 => return Ok(BanOutcome::Expired),
            Some(end) => UnixTime(end as u64),
        };
        let jail_end = lock(&self.state).end_of(&s.name, d.net, now.0);
        if let Some(end) = jail_end
            && end >= until.0
        {
            return Ok(BanOutcome::AlreadyBanned);
        }
        let prolong = jail_end.is_some();
        let since = UnixTime(d.time.max(0) as u64);
        let rec = BanRecord {
            since,
            until: prev
                .as_ref()
                .filter(|p| p.active(now))
                .map_or(until, |p| p.until.max(until)),
            count: match &prev {
                Some(p) if prolong => p.count,
                Some(p) => p.count.saturating_add(1),
                None => 1,
            },
            jail: s.name.clone(),
            reason: format!("{}: {} failures", s.name, d.failures),
        };
        self.store.ban_put(&key, rec.clone()).await?;
        lock(&self.state).note_ban(&s.name, d.net, until.0, rec.count);
        let bantime = match length {
            BanTime::Permanent => -1,
            BanTime::Seconds(x) => x as i64,
        };
        if prolong {
            tracing::info!(jail = s.name, net = %d.net, until = rec.until.0, "prolong ban");
            Ok(BanOutcome::Prolonged(rec))
        } else {
            self.metrics.banned(&s.name);
            tracing::info!(jail = s.name, net = %d.net, until = rec.until.0, bantime,
                count = rec.count, failures = d.failures, "ban");
            Ok(BanOutcome::Banned(rec))
        }
    }

    /// `mxguard ban`: records and applies a ban at once (now, for `duration`).
    pub async fn ban_manual(&self, b: ManualBan) -> Result<BanRecord, StoreError> {
        let now = self.clock.now();
        let key = ban_key(b.net);
        let prev = self.store.ban_get(&key).await?;
        let until = match b.duration {
            None => PERMANENT,
            Some(d) => now.plus(d),
        };
        let rec = BanRecord {
            since: now,
            until,
            count: prev.map_or(1, |p| p.count.saturating_add(1)),
            jail: b.jail.clone(),
            reason: b.reason,
        };
        self.store.ban_put(&key, rec.clone()).await?;
        tracing::info!(jail = b.jail, net = %b.net, until = until.0, "ban (manual)");
        self.enforce(b.net, &rec, now).await;
        Ok(rec)
    }

    /// A ban another part of mxguard has already written to the store (the Dovecot auth
    /// policy, `jail = "auth"`): runs the actions for it (`[bans] action`), tracks it for
    /// expiry and status, and remembers it for `bantime_increment`. Returns the network when
    /// the key is one (a ban is always recorded first, so this only enforces).
    pub async fn enforce_recorded(&self, key: &str, rec: &BanRecord) -> Option<IpNet> {
        let Ok(net) = key.parse::<IpNet>() else {
            tracing::warn!(key, "ban list: unreadable key, no action run");
            return None;
        };
        self.enforce(net, rec, self.clock.now()).await;
        Some(net)
    }

    /// A new ban event already in the store: tracked for expiry, status and history, counted,
    /// and run through the actions of its jail.
    async fn enforce(&self, net: IpNet, rec: &BanRecord, now: UnixTime) {
        lock(&self.state).note_ban(&rec.jail, net, rec.until.0, rec.count);
        self.metrics.banned(&rec.jail);
        let fb = firewall_ban(net, rec, now);
        let names = lock(&self.routes).for_jail(&rec.jail).to_vec();
        for name in names {
            self.run_ban(&name, std::slice::from_ref(&fb)).await;
        }
        self.sync_gauges();
    }

    /// `mxguard unban NET`: removes the record (and its history, as fail2ban's unban
    /// deletes the address from its database) and lifts the ban in every action.
    pub async fn unban(&self, net: IpNet) -> Result<bool, StoreError> {
        let existed = self.store.ban_remove(&ban_key(net)).await?;
        let jails = {
            let mut st = lock(&self.state);
            st.history.remove(&net);
            st.remove_net(net)
        };
        let fb = FirewallBan {
            net,
            jail: jails.first().cloned().unwrap_or_else(|| "manual".into()),
            timeout: None,
        };
        for a in self.actions.all() {
            if let Err(e) = a.unban(std::slice::from_ref(&fb)).await {
                self.metrics.action_error(a.name());
                tracing::error!(error = %e, "unban action failed");
            }
        }
        if existed {
            tracing::info!(net = %net, "unban (manual)");
        }
        self.sync_gauges();
        Ok(existed || !jails.is_empty())
    }

    /// `mxguard unban --all`: every record in the ban list, active or not.
    pub async fn unban_all(&self) -> Result<usize, StoreError> {
        let records = self.store.ban_list(usize::MAX).await?;
        let mut nets = Vec::new();
        for (key, _) in &records {
            self.store.ban_remove(key).await?;
            if let Ok(n) = key.parse::<IpNet>() {
                nets.push(n);
            }
        }
        *lock(&self.state) = BanState::default();
        let bans: Vec<FirewallBan> = nets
            .iter()
            .map(|&net| FirewallBan {
                net,
                jail: "manual".into(),
                timeout: None,
            })
            .collect();
        for a in self.actions.all() {
            if let Err(e) = a.unban(&bans).await {
                self.metrics.action_error(a.name());
                tracing::error!(error = %e, "unban action failed");
            }
        }
        tracing::info!(bans = records.len(), "unban --all");
        self.sync_gauges();
        Ok(records.len())
    }

    /// Lifts the bans whose end has passed (fail2ban's unban at expiry): actions without
    /// kernel timeouts (commands) need it; nftables sets expire on their own. A record that
    /// was extended meanwhile (another jail, a re-ban) is left in force.
    pub async fn expire_due(&self) -> usize {
        let now = self.clock.now();
        let due = lock(&self.state).pop_due(now.0);
        if due.is_empty() {
            return 0;
        }
        let mut lift: BTreeMap<String, Vec<FirewallBan>> = BTreeMap::new();
        let mut n = 0;
        for (net, jail) in due {
            let still = match self.store.ban_get(&ban_key(net)).await {
                Ok(Some(r)) => r.active(now),
                Ok(None) => false,
                Err(_) => true, // keep it: lifting needs certainty
            };
            if still {
                continue;
            }
            n += 1;
            tracing::info!(jail, net = %net, "unban");
            let routes = lock(&self.routes).for_jail(&jail).to_vec();
            for action in routes {
                lift.entry(action).or_default().push(FirewallBan {
                    net,
                    jail: jail.clone(),
                    timeout: None,
                });
            }
        }
        for (name, bans) in lift {
            self.run_unban(&name, &bans, "unban at expiry failed").await;
        }
        self.sync_gauges();
        n
    }

    async fn run_ban(&self, name: &str, bans: &[FirewallBan]) {
        let Some(a) = self.actions.get(name) else {
            tracing::error!(action = name, "no such action");
            return;
        };
        if let Err(e) = a.ban(bans).await {
            self.metrics.action_error(name);
            tracing::error!(error = %e, bans = bans.len(), "ban action failed; the ban stays in the ban list");
        }
    }

    /// Lifts `bans` with action `name`; a failure is counted and logged as `what`.
    async fn run_unban(&self, name: &str, bans: &[FirewallBan], what: &str) {
        if let Some(a) = self.actions.get(name)
            && let Err(e) = a.unban(bans).await
        {
            self.metrics.action_error(name);
            tracing::warn!(error = %e, "{what}");
        }
    }

    fn sync_gauges(&self) {
        for (jail, n) in self.active_by_jail() {
            self.metrics.set_active(&jail, n as i64);
        }
    }
}

impl BanState {
    fn insert(&mut self, jail: &str, net: IpNet, end: u64) {
        let slot = match self.active.entry((jail.to_string(), net)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                *self.per_jail.entry(jail.to_string()).or_insert(0) += 1;
                e.insert(0)
            }
        };
        *slot = (*slot).max(end);
        if end != u64::MAX {
            self.expiry.push(Reverse((end, net, jail.to_string())));
        }
    }

    /// `jail` banned `net` until `end`, its `count`th ban (active view and history).
    fn note_ban(&mut self, jail: &str, net: IpNet, end: u64, count: u32) {
        self.insert(jail, net, end);
        self.history.insert(net, (count, jail.to_string()));
    }

    fn uncount(&mut self, jail: &str) {
        if let Some(n) = self.per_jail.get_mut(jail) {
            *n = n.saturating_sub(1);
        }
    }

    /// The latest end of each network's bans in the active view (any jail).
    fn latest_ends(&self) -> HashMap<IpNet, u64> {
        let mut out: HashMap<IpNet, u64> = HashMap::with_capacity(self.active.len());
        for ((_, net), end) in &self.active {
            let e = out.entry(*net).or_insert(0);
            *e = (*e).max(*end);
        }
        out
    }

    /// The end of `jail`'s active ban of `net`, if any.
    fn end_of(&self, jail: &str, net: IpNet, now: u64) -> Option<u64> {
        self.active
            .get(&(jail.to_string(), net))
            .copied()
            .filter(|&end| end > now)
    }

    fn remove_net(&mut self, net: IpNet) -> Vec<String> {
        let jails: Vec<String> = self
            .active
            .keys()
            .filter(|(_, n)| *n == net)
            .map(|(j, _)| j.clone())
            .collect();
        for j in &jails {
            if self.active.remove(&(j.clone(), net)).is_some() {
                self.uncount(j);
            }
        }
        jails
    }

    /// Entries whose end is at or before `now` and still current (not superseded).
    fn pop_due(&mut self, now: u64) -> Vec<(IpNet, String)> {
        let mut out = Vec::new();
        while let Some(Reverse((end, _, _))) = self.expiry.peek() {
            if *end > now {
                break;
            }
            let Some(Reverse((end, net, jail))) = self.expiry.pop() else {
                break;
            };
            let key = (jail, net);
            if self.active.get(&key) == Some(&end) {
                self.active.remove(&key);
                self.uncount(&key.0);
                out.push((key.1, key.0));
            }
        }
        out
    }
}

fn firewall_ban(net: IpNet, rec: &BanRecord, now: UnixTime) -> FirewallBan {
    FirewallBan {
        net,
        jail: rec.jail.clone(),
        timeout: (!rec.permanent()).then(|| Duration::from_secs(rec.until.since(now).max(1))),
    }
}

/// fail2ban's `bantime.rndtime` uses `random()`; a hash of the decision gives the same
/// spread without a random source, and the same input always gets the same ban.
fn jitter(d: &BanDecision) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (d.net, d.time, &d.jail).hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
