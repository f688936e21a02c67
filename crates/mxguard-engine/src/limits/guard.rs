//! [`Guard`]: the policy step that runs rate limits and account containment, before
//! greylisting (called by [`crate::policy::Policy::decide`]).
//!
//! Per stage (docs/limits.md has the full table):
//! - CONNECT: `connections` limits are charged (one per request) if they conform.
//! - RCPT: a locked account's mail is answered HOLD; containment sees the recipient; every
//!   limit is *checked* with the message's cost so far. A breach answers the limit's action;
//!   a HOLD breach lets the mail in, held, and uncharged.
//! - END-OF-MESSAGE: a held message's queue id is recorded for `account unlock`; otherwise the
//!   real cost is checked and then charged to every limit (rejected or aborted mail never
//!   reaches this stage, so it is never charged). RCPT requests minus `recipient_count` feed
//!   the rejected-recipients signal.
//!
//! Store failures fail open: the step logs, and answers `Dunno` with `decided_by`
//! `store_error` so the binary uses its fail-open answer and counts it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::gcra::Mode;
use super::instances::{Instances, Seen};
use super::{Budget, Counted, Limit, LimitSettings, domain, normalise_recipient, prefix};
use crate::account::{
    AccountRecord, ContainmentSettings, Lock, LockedBy, Signal, Signals, account_key,
};
use crate::clock::Clock;
use crate::request::{Request, Stage};
use crate::store::{Prefetched, ReadKey, Store, StoreError, prefetched_or};
use crate::verdict::{Action, STORE_ERROR, Verdict};

/// `decided_by` of a limit breach.
pub const LIMIT: &str = "limit";
/// `decided_by` of mail held because its account is locked.
pub const ACCOUNT_LOCKED: &str = "account_locked";

/// The limits-and-containment step (see module docs).
#[derive(Debug)]
pub struct Guard {
    limits: LimitSettings,
    containment: Option<ContainmentSettings>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    instances: Instances,
    signals: Signals,
    /// Told of every breach, by limit name (metrics).
    pub(crate) observer: Arc<dyn crate::observe::Observer>,
}

/// One charge to make at END-OF-MESSAGE.
struct Charge<'a> {
    limit: &'a Limit,
    key: String,
    windows: Vec<super::Window>,
    cost: u64,
}

impl Guard {
    pub fn new(
        limits: LimitSettings,
        containment: Option<ContainmentSettings>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Guard {
            limits,
            containment,
            store,
            clock,
            instances: Instances::default(),
            signals: Signals::default(),
            observer: Arc::new(crate::observe::NoObserver),
        }
    }

    /// The records [`Guard::decide`] will look at for `req` (read in one batch by the
    /// policy): at RCPT, the login's account and the state of every limit it checks.
    pub fn reads(&self, req: &Request) -> Vec<ReadKey> {
        if req.stage != Stage::Rcpt {
            return Vec::new();
        }
        let mut keys: Vec<ReadKey> = Self::user(req).map(ReadKey::Account).into_iter().collect();
        if self.active() {
            keys.extend(self.rcpt_limits(req).map(|(_, key, _)| ReadKey::Limit(key)));
        }
        keys
    }

    /// The limits a RCPT request is checked against: (limit, store key, windows).
    fn rcpt_limits<'a>(
        &'a self,
        req: &'a Request,
    ) -> impl Iterator<Item = (&'a Limit, String, Vec<super::Window>)> + 'a {
        self.limits.limits.iter().filter_map(move |l| {
            if l.counted == Counted::Connections {
                return None;
            }
            let v = l.key_value(req, &req.recipient)?;
            let Budget::Windows(w) = l.budget(&v) else {
                return None;
            };
            Some((l, l.store_key(&v), w))
        })
    }

    /// The verdict for `req`, or `None` to let the chain go on. `pre` holds what the policy
    /// read ahead ([`Guard::reads`]); anything missing from it is read here.
    pub async fn decide(&self, req: &Request, pre: &Prefetched) -> Option<Verdict> {
        match self.try_decide(req, pre).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "limits: store failed; failing open");
                Some(Verdict::new(Action::Dunno, STORE_ERROR))
            }
        }
    }

    fn user(req: &Request) -> Option<String> {
        req.sasl_username
            .as_deref()
            .map(account_key)
            .filter(|u| !u.is_empty())
    }

    /// Who held mail is recorded under: the login, else `ip:<client address>`.
    fn subject(req: &Request) -> String {
        Self::user(req).unwrap_or_else(|| format!("ip:{}", req.client_ip))
    }

    async fn locked(&self, user: &Option<String>, pre: &Prefetched) -> bool {
        let Some(u) = user else { return false };
        match prefetched_or(pre.account(u), || self.store.account_get(u)).await {
            Ok(rec) => rec.is_some_and(|r| r.is_locked()),
            Err(e) => {
                tracing::warn!(error = %e, "account lock lookup failed; treating as unlocked");
                false
            }
        }
    }

    fn hold_text(&self) -> String {
        self.containment
            .as_ref()
            .map(|c| c.hold_text.clone())
            .unwrap_or_else(|| ContainmentSettings::default().hold_text)
    }

    async fn try_decide(
        &self,
        req: &Request,
        pre: &Prefetched,
    ) -> Result<Option<Verdict>, StoreError> {
        let user = Self::user(req);
        match req.stage {
            Stage::Connect => self.connect(req).await,
            Stage::Rcpt => self.rcpt(req, &user, pre).await,
            Stage::EndOfMessage => self.end_of_message(req, &user).await,
            _ => Ok(None),
        }
    }

    async fn connect(&self, req: &Request) -> Result<Option<Verdict>, StoreError> {
        let now = self.clock.now();
        for l in &self.limits.limits {
            if l.counted != Counted::Connections {
                continue;
            }
            let Some(v) = l.key_value(req, "") else {
                continue;
            };
            let Budget::Windows(w) = l.budget(&v) else {
                continue;
            };
            let o = self
                .store
                .limit_apply(&l.store_key(&v), &w, now, 1, Mode::Conform)
                .await?;
            if !o.allowed {
                return Ok(Some(self.breach(req, l, o.retry_after).await?));
            }
        }
        Ok(None)
    }

    async fn rcpt(
        &self,
        req: &Request,
        user: &Option<String>,
        pre: &Prefetched,
    ) -> Result<Option<Verdict>, StoreError> {
        if self.locked(user, pre).await {
            if self.active() {
                self.instances.hold(&req.instance, &Self::subject(req));
            }
            return Ok(Some(Verdict::new(
                Action::Hold(self.hold_text()),
                ACCOUNT_LOCKED,
            )));
        }
        if !self.active() {
            return Ok(None);
        }
        let now = self.clock.now();
        let rcpt = normalise_recipient(&req.recipient);
        let would = self.instances.rcpt(&req.instance, &rcpt);
        if let (Some(c), Some(u)) = (&self.containment, user) {
            let sig = Signal::Rcpt {
                network: prefix(req.client_ip, c.ipv4_prefix, c.ipv6_prefix).to_string(),
                domain: domain(&req.recipient),
                sender: &req.sender,
            };
            if let Some((score, reasons)) = self.signals.observe(c, u, now, sig) {
                self.lock_account(u, score, reasons).await?;
                self.instances.hold(&req.instance, u);
                return Ok(Some(Verdict::new(
                    Action::Hold(c.hold_text.clone()),
                    ACCOUNT_LOCKED,
                )));
            }
        }
        // Every limit is only looked at here (Mode::Check charges nothing), so its state
        // comes from the policy's batch read and the check is computed here (the same
        // `gcra::apply` every backend runs). A state not in the batch, or one whose read
        // failed, is checked through the store, all of them concurrently. The first refused
        // limit in configuration order decides, as in a sequential loop.
        let mut checks = Vec::new();
        for (l, key, w) in self.rcpt_limits(req) {
            let cost = match l.counted {
                Counted::Messages => 1,
                Counted::Recipients if l.per_recipient() => {
                    let d = domain(&rcpt);
                    would.iter().filter(|r| domain(r) == d).count() as u64
                }
                Counted::Recipients => would.len() as u64,
                Counted::Bytes => req.size,
                Counted::Connections => 0,
            };
            let known = match pre.limit(&key) {
                Ok(Some(state)) => Some(super::gcra::apply(state, &w, now, cost, Mode::Check).0),
                _ => None,
            };
            checks.push((l, key, w, cost, known));
        }
        let outcomes = futures_util::future::join_all(checks.iter().map(
            |(_, key, w, cost, known)| async move {
                match known {
                    Some(o) => Ok(*o),
                    None => {
                        self.store
                            .limit_apply(key, w, now, *cost, Mode::Check)
                            .await
                    }
                }
            },
        ))
        .await;
        for ((l, ..), o) in checks.iter().zip(outcomes) {
            let o = o?;
            if !o.allowed {
                return Ok(Some(self.breach(req, l, o.retry_after).await?));
            }
        }
        self.instances.accept(&req.instance, &rcpt);
        Ok(None)
    }

    /// The answer to a breach of `l`; feeds containment and remembers a HOLD.
    async fn breach(
        &self,
        req: &Request,
        l: &Limit,
        retry_after: u64,
    ) -> Result<Verdict, StoreError> {
        let action = l.breach_action(retry_after);
        self.observer.limit_breached(&l.name);
        tracing::info!(
            limit = %l.name, client = %req.client_ip, sasl_username = req.sasl_username.as_deref().unwrap_or(""),
            sender = %req.sender, retry_after, action = action.kind(), "rate limit reached"
        );
        if let (Some(c), Some(u), true) = (&self.containment, Self::user(req), l.signal) {
            let now = self.clock.now();
            if let Some((score, reasons)) =
                self.signals
                    .observe(c, &u, now, Signal::LimitBreach(&l.name))
            {
                self.lock_account(&u, score, reasons).await?;
                self.instances.hold(&req.instance, &u);
                return Ok(Verdict::new(
                    Action::Hold(c.hold_text.clone()),
                    ACCOUNT_LOCKED,
                ));
            }
        }
        if matches!(action, Action::Hold(_)) {
            self.instances.hold(&req.instance, &Self::subject(req));
        }
        Ok(Verdict::new(action, LIMIT))
    }

    async fn end_of_message(
        &self,
        req: &Request,
        user: &Option<String>,
    ) -> Result<Option<Verdict>, StoreError> {
        let seen = if self.active() {
            self.instances.finish(&req.instance)
        } else {
            None
        };
        let held_for = seen.as_ref().and_then(|s| s.held_for.clone());
        if self.locked(user, &Prefetched::empty()).await || held_for.is_some() {
            let subject = held_for.unwrap_or_else(|| Self::subject(req));
            if !req.queue_id.is_empty() {
                self.store.account_hold(&subject, &req.queue_id).await?;
            }
            let decided = if user.as_deref() == Some(subject.as_str())
                && self.locked(user, &Prefetched::empty()).await
            {
                ACCOUNT_LOCKED
            } else {
                LIMIT
            };
            return Ok(Some(Verdict::new(Action::Hold(self.hold_text()), decided)));
        }
        let now = self.clock.now();
        if let (Some(c), Some(u), Some(s)) = (&self.containment, user, &seen) {
            let rejected = s.rcpt_requests.saturating_sub(req.recipient_count);
            if let Some((score, reasons)) =
                self.signals.observe(c, u, now, Signal::Rejected(rejected))
            {
                self.lock_account(u, score, reasons).await?;
                if !req.queue_id.is_empty() {
                    self.store.account_hold(u, &req.queue_id).await?;
                }
                return Ok(Some(Verdict::new(
                    Action::Hold(c.hold_text.clone()),
                    ACCOUNT_LOCKED,
                )));
            }
        }
        let charges = self.charges(req, seen.as_ref());
        for ch in &charges {
            let o = self
                .store
                .limit_apply(&ch.key, &ch.windows, now, ch.cost, Mode::Check)
                .await?;
            if !o.allowed {
                let v = self.breach(req, ch.limit, o.retry_after).await?;
                if matches!(v.action, Action::Hold(_)) && !req.queue_id.is_empty() {
                    self.store
                        .account_hold(&Self::subject(req), &req.queue_id)
                        .await?;
                }
                return Ok(Some(v));
            }
        }
        for ch in &charges {
            self.store
                .limit_apply(&ch.key, &ch.windows, now, ch.cost, Mode::Force)
                .await?;
        }
        Ok(None)
    }

    /// What END-OF-MESSAGE charges (module docs of [`super`]).
    fn charges<'a>(&'a self, req: &Request, seen: Option<&Seen>) -> Vec<Charge<'a>> {
        let seen_rcpts: &[String] = seen.map_or(&[], |s| &s.recipients);
        let count = u64::from(req.recipient_count);
        let recipients = if seen_rcpts.is_empty() {
            count
        } else {
            count.min(seen_rcpts.len() as u64)
        };
        let mut out = Vec::new();
        for l in &self.limits.limits {
            if l.counted == Counted::Connections {
                continue;
            }
            // (recipient used for the key, cost)
            let mut parts: Vec<(String, u64)> = Vec::new();
            if l.per_recipient() {
                let mut by_domain: BTreeMap<String, (String, u64)> = BTreeMap::new();
                if seen_rcpts.is_empty() && !req.recipient.is_empty() {
                    by_domain.insert(String::new(), (req.recipient.clone(), count.max(1)));
                }
                for r in seen_rcpts {
                    let e = by_domain
                        .entry(domain(r).unwrap_or_default())
                        .or_insert((r.clone(), 0));
                    e.1 += 1;
                }
                for (_, (r, n)) in by_domain {
                    let cost = match l.counted {
                        Counted::Messages => 1,
                        Counted::Recipients => n,
                        _ => req.size,
                    };
                    parts.push((r, cost));
                }
            } else {
                let cost = match l.counted {
                    Counted::Messages => 1,
                    Counted::Recipients => recipients,
                    _ => req.size,
                };
                parts.push((req.recipient.clone(), cost));
            }
            for (r, cost) in parts {
                if cost == 0 {
                    continue;
                }
                let Some(v) = l.key_value(req, &r) else {
                    continue;
                };
                if let Budget::Windows(windows) = l.budget(&v) {
                    out.push(Charge {
                        limit: l,
                        key: l.store_key(&v),
                        windows,
                        cost,
                    });
                }
            }
        }
        out
    }

    async fn lock_account(
        &self,
        user: &str,
        score: u32,
        reasons: Vec<String>,
    ) -> Result<(), StoreError> {
        let reason = format!("score {score}: {}", reasons.join("; "));
        self.lock(user, LockedBy::Containment, &reason).await?;
        crate::account::count_lock();
        tracing::warn!(
            target: "mxguard::account",
            sasl_username = user, score, reason = %reason,
            "account locked by containment; its mail is held"
        );
        if let Some(n) = self.containment.as_ref().and_then(|c| c.notifier.as_ref()) {
            n.account_locked(user, score, &reasons);
        }
        Ok(())
    }

    /// Locks `user` (admin or containment); keeps held ids; returns the new record.
    pub async fn lock(
        &self,
        user: &str,
        by: LockedBy,
        reason: &str,
    ) -> Result<AccountRecord, StoreError> {
        let key = account_key(user);
        let mut rec = self
            .store
            .account_get(&key)
            .await?
            .unwrap_or(AccountRecord {
                locked: None,
                held: Vec::new(),
            });
        if rec.locked.is_none() {
            rec.locked = Some(Lock {
                since: self.clock.now(),
                by,
                reason: reason.to_owned(),
            });
        }
        self.store.account_put(&key, rec.clone()).await?;
        Ok(rec)
    }

    /// Unlocks `user`: removes the lock and the held list (returned, for `postsuper -H`),
    /// forgets its signals and resets the limits keyed on the login alone.
    pub async fn unlock(&self, user: &str) -> Result<Option<AccountRecord>, StoreError> {
        let key = account_key(user);
        let old = self.store.account_get(&key).await?;
        self.store
            .account_put(
                &key,
                AccountRecord {
                    locked: None,
                    held: Vec::new(),
                },
            )
            .await?;
        self.signals.clear(&key);
        for l in &self.limits.limits {
            let value = match key.strip_prefix("ip:") {
                Some(ip) if l.key == [super::KeyPart::ClientAddress] => ip.to_owned(),
                None if l.key == [super::KeyPart::SaslUsername] => key.clone(),
                _ => continue,
            };
            self.store.limit_remove(&l.store_key(&value)).await?;
        }
        Ok(old)
    }

    /// The current containment score of `user`.
    pub fn score(&self, user: &str) -> u32 {
        match &self.containment {
            Some(c) => self.signals.score(c, &account_key(user), self.clock.now()),
            None => 0,
        }
    }

    /// Whether any limit or containment is configured; without them only admin locks apply
    /// and no per-message bookkeeping is done.
    fn active(&self) -> bool {
        !self.limits.limits.is_empty() || self.containment.is_some()
    }

    /// The configured limits.
    pub fn limits(&self) -> &LimitSettings {
        &self.limits
    }

    /// The store this step uses.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
