//! The policy chain: one [`Request`] in, one [`Verdict`] out.
//!
//! The chain is ordered: static allow/deny lists ([`crate::lists`]), the ban list
//! ([`crate::auth::ban`], shared with the log jails and the auth policy), rate limits
//! ([`crate::limits`]) first, then the DNS-based sender checks ([`crate::checks`]: HELO, DNSBL,
//! SPF), then greylisting ([`crate::greylist`]) at the RCPT stage. The first check with an
//! opinion decides. Headers that checks want prepended are handed out one per reply
//! ([`crate::prepend`]). The binary builds one [`Policy`] per configuration (and swaps it on
//! SIGHUP), gives it a resolver and a timer ([`Policy::with_resolver`], [`Policy::with_timer`])
//! and calls [`Policy::decide`] for each request.
//!
//! Store failures never stop mail: the policy answers [`Action::Dunno`] with `decided_by`
//! [`STORE_ERROR`], which the binary maps to its configured fail-open answer and counts.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::checks::{
    Checked, DnsblSettings, HeloSettings, SenderChecks, SpfSettings, StepSettings,
};
use crate::clock::{Clock, UnixTime};
use crate::dns::Resolver;
use crate::greylist::GreylistSettings;
use crate::lists::{ListMatch, StaticLists};
use crate::prepend::{HeaderQueue, stage_allows_prepend};
use crate::request::{Request, Stage};
use crate::store::{AwlRecord, Prefetched, ReadKey, Store, StoreError, prefetched_or};
use crate::verdict::{Action, STORE_ERROR, Verdict};

/// Validated policy settings.
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    pub lists: StaticLists,
    /// `None` when `[greylist] enabled = false`.
    pub greylist: Option<GreylistSettings>,
    /// `[[limit]]` rate limits and quotas (empty: none).
    pub limits: crate::limits::LimitSettings,
    /// `[account]` containment; `None` when off (admin locks are honoured either way).
    pub containment: Option<crate::account::ContainmentSettings>,
    /// `[helo]` HELO / reverse-DNS checks; `None` when off.
    pub helo: Option<HeloSettings>,
    /// `[dnsbl]` weighted DNSBL/DNSWL scoring; `None` when off.
    pub dnsbl: Option<DnsblSettings>,
    /// `[spf]` policyd-spf compatible SPF checks; `None` when off.
    pub spf: Option<SpfSettings>,
    /// `[bans] policy_check`: the reject text for a client on the ban list; `None` when off.
    pub ban_reject_text: Option<String>,
}

/// How many message instances are remembered to add `X-Greylist:` once per message.
/// postgrey remembers 10 on its single connection; mxguard serves many connections at once,
/// so it keeps more, still bounded.
const RECENT_INSTANCES: usize = 4096;

/// A bounded set of recently seen `instance` values (FIFO eviction).
#[derive(Debug, Default)]
struct RecentInstances {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl RecentInstances {
    /// postgrey `is_new_instance`: `true` (and remember it) if `instance` was not seen
    /// recently. An empty instance (not supplied by the client) is always new.
    fn insert_new(&mut self, instance: &str) -> bool {
        if instance.is_empty() {
            return true;
        }
        if self.seen.contains(instance) {
            return false;
        }
        if self.order.len() >= RECENT_INSTANCES
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(instance.to_owned());
        self.seen.insert(instance.to_owned());
        true
    }
}

/// The decision engine for policy requests.
#[derive(Debug)]
pub struct Policy {
    settings: PolicySettings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    instances: Mutex<RecentInstances>,
    guard: crate::limits::Guard,
    checks: SenderChecks,
    headers: Mutex<HeaderQueue>,
}

impl Policy {
    pub fn new(settings: PolicySettings, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let guard = crate::limits::Guard::new(
            settings.limits.clone(),
            settings.containment.clone(),
            store.clone(),
            clock.clone(),
        );
        Policy {
            guard,
            settings,
            store,
            clock,
            instances: Mutex::new(RecentInstances::default()),
            checks: SenderChecks::default(),
            headers: Mutex::new(HeaderQueue::default()),
        }
    }

    /// Uses `resolver` for the DNS-based checks (without one, every lookup fails: SPF
    /// temperror, DNSBL not listed).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.checks.resolver = resolver;
        self
    }

    /// Uses `timer` to bound the DNS-based checks by their time budgets (without one, only
    /// the resolver's own timeouts apply).
    pub fn with_timer(mut self, timer: Arc<dyn crate::checks::Timer>) -> Self {
        self.checks.timer = timer;
        self
    }

    /// Tells `observer` what the checks find (limit breaches, SPF results, DNSBL scores),
    /// for metrics ([`crate::observe`]).
    pub fn with_observer(mut self, observer: Arc<dyn crate::observe::Observer>) -> Self {
        self.guard.observer = observer.clone();
        self.checks.observer = observer;
        self
    }

    /// The settings this policy runs with.
    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// The rate-limit and containment step (account lock/unlock for the control socket).
    pub fn guard(&self) -> &crate::limits::Guard {
        &self.guard
    }

    /// The store this policy uses (for the control socket's greylist commands).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Decides one request (see module docs for the order), with at most one header.
    pub async fn decide(&self, req: &Request) -> Verdict {
        let mut headers = Vec::new();
        let verdict = self.chain(req, &mut headers).await;
        self.one_header(req, verdict, headers)
    }

    /// Queues this request's new headers after the message's pending ones, and answers the
    /// first pending header instead of a plain `DUNNO` (crate::prepend). A reject, defer, hold
    /// or `OK` wins, and a store error keeps its fail-open meaning.
    fn one_header(
        &self,
        req: &Request,
        verdict: Verdict,
        mut headers: Vec<(String, &'static str)>,
    ) -> Verdict {
        let verdict = match verdict.action {
            Action::Prepend(h) => {
                headers.push((h, verdict.decided_by));
                Verdict::new(Action::Dunno, verdict.decided_by)
            }
            _ => verdict,
        };
        let may_prepend = verdict.action == Action::Dunno
            && !verdict.is_store_error()
            && stage_allows_prepend(req.stage);
        if req.instance.is_empty() {
            // No message to remember them for: the first header now, the others are lost.
            return match headers.into_iter().next() {
                Some((h, by)) if may_prepend => Verdict::new(Action::Prepend(h), by),
                _ => verdict,
            };
        }
        let mut queue = self.headers.lock().unwrap_or_else(|e| e.into_inner());
        queue.push(&req.instance, headers);
        if may_prepend && let Some((h, by)) = queue.pop(&req.instance) {
            return Verdict::new(Action::Prepend(h), by);
        }
        verdict
    }

    /// The records the chain will look at for `req`, read in one batch
    /// ([`crate::store::batch`]): ban-list entries, the guard's account and limit states,
    /// the client's auto-whitelist entry.
    async fn prefetch(&self, req: &Request, listed: ListMatch) -> Prefetched {
        let mut keys = Vec::new();
        if listed == ListMatch::None && self.settings.ban_reject_text.is_some() {
            keys.extend(
                crate::auth::ban::lookup_keys(req.client_ip)
                    .into_iter()
                    .map(ReadKey::Ban),
            );
        }
        if listed != ListMatch::Deny {
            keys.extend(self.guard.reads(req));
        }
        if let Some(gl) = &self.settings.greylist
            && listed == ListMatch::None
            && req.stage == Stage::Rcpt
            && !req.recipient.is_empty()
            && gl.auto_whitelist_clients > 0
        {
            keys.push(ReadKey::Awl(req.client_ip));
        }
        if keys.is_empty() {
            return Prefetched::empty();
        }
        let values = self.store.read_many(&keys).await;
        Prefetched::new(keys, values)
    }

    async fn chain(&self, req: &Request, headers: &mut Vec<(String, &'static str)>) -> Verdict {
        let listed = self.settings.lists.check(req);
        let pre = self.prefetch(req, listed).await;
        // The ban list (log jails, auth policy, `mxguard ban`): after the allow list, so an
        // allowed host is never refused, and before anything that counts or charges.
        if listed == ListMatch::None
            && let Some(text) = &self.settings.ban_reject_text
            && let Some(v) = self.banned(req, text, &pre).await
        {
            return v;
        }
        // Rate limits and account containment run before the allow list (webmail on an
        // allowed host must not exempt its logins, seed 002) and before greylisting.
        if listed != ListMatch::Deny
            && let Some(v) = self.guard.decide(req, &pre).await
        {
            return v;
        }
        match listed {
            ListMatch::Allow => return Verdict::new(Action::Dunno, "static_allow"),
            ListMatch::Deny => {
                let text = self.settings.lists.deny_text().to_owned();
                return Verdict::new(Action::Reject(text), "static_deny");
            }
            ListMatch::None => {}
        }
        let s = &self.settings;
        let steps = StepSettings {
            helo: s.helo.as_ref(),
            dnsbl: s.dnsbl.as_ref(),
            spf: s.spf.as_ref(),
        };
        let checked: Checked = self.checks.run(steps, req, self.clock.now()).await;
        headers.extend(checked.headers);
        if let Some(v) = checked.verdict {
            return v;
        }
        if let Some(gl) = &self.settings.greylist
            && req.stage == Stage::Rcpt
            && !req.recipient.is_empty()
        {
            if checked.allowlisted {
                return Verdict::new(Action::Dunno, "dnsbl");
            }
            let domain = checked.verified_domain.as_deref();
            return match self.greylist(gl, req, domain, &pre).await {
                Ok(v) => {
                    self.observe_greylist(&v);
                    v
                }
                Err(e) => {
                    tracing::warn!(error = %e, "greylist store failed; failing open");
                    Verdict::new(Action::Dunno, STORE_ERROR)
                }
            };
        }
        Verdict::dunno()
    }

    /// The ban-list step: a reject when a ban covering the client is active. A store error
    /// fails open (no verdict; the next steps decide).
    async fn banned(&self, req: &Request, text: &str, pre: &Prefetched) -> Option<Verdict> {
        let now = self.clock.now();
        for key in crate::auth::ban::lookup_keys(req.client_ip) {
            match prefetched_or(pre.ban(&key), || self.store.ban_get(&key)).await {
                Ok(Some(b)) if b.active(now) => {
                    return Some(Verdict::new(Action::Reject(text.to_owned()), "ban"));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "ban list lookup failed; not refusing");
                    return None;
                }
            }
        }
        None
    }

    /// postgrey 1.37 `smtpd_access_policy` from the whitelists on (module docs of
    /// [`crate::greylist`]).
    ///
    /// `verified_domain` is the MAIL FROM domain an SPF pass verified for this message; with
    /// `spf_domain_key` it replaces the client network in the triplet.
    async fn greylist(
        &self,
        gl: &GreylistSettings,
        req: &Request,
        verified_domain: Option<&str>,
        pre: &Prefetched,
    ) -> Result<Verdict, StoreError> {
        if gl
            .whitelist_clients
            .matches(req.client_ip, req.client_name.as_deref())
            || gl.whitelist_recipients.matches(&req.recipient)
        {
            return Ok(Verdict::new(Action::Dunno, "greylist_whitelist"));
        }
        let times = gl.times();
        let now = self.clock.now();
        let awl = gl.auto_whitelist_clients;
        let awl_rec = match awl {
            0 => None,
            _ => {
                prefetched_or(pre.awl(req.client_ip), || self.store.awl_get(req.client_ip)).await?
            }
        };
        if let Some(rec) = awl_rec
            && !rec.expired(now, times.max_age)
            && rec.count >= awl
        {
            // Refresh last-seen (and the statistics count) at most hourly; the rule lives
            // in AwlRecord::bumped, so skip the round trip when it would change nothing.
            if AwlRecord::bumped(Some(rec), now, times.max_age) != rec {
                self.store
                    .awl_bump(req.client_ip, now, times.max_age)
                    .await?;
            }
            return Ok(Verdict::new(Action::Dunno, "greylist_awl"));
        }

        let key = match verified_domain {
            Some(domain) if gl.spf_domain_key => gl.domain_key(domain, &req.sender, &req.recipient),
            _ => gl.key(req.client_ip, &req.sender, &req.recipient),
        };
        let outcome = self.store.greylist_touch(&key, now, times).await?;
        let last_was_successful = outcome
            .previous
            .is_some_and(|p| !p.expired(now, &times) && p.passed(&times));
        let waited = now.since(outcome.current.first);
        if waited < times.delay {
            let left = times.delay - waited;
            let text = gl.defer_text(left, &req.recipient);
            return Ok(Verdict::new(Action::DeferIfPermit(text), "greylist"));
        }
        if last_was_successful {
            return Ok(Verdict::new(Action::Dunno, "greylist"));
        }
        // First pass after greylisting: counts towards the client AWL (at most once an hour,
        // enforced by the bump rule).
        if awl > 0 {
            self.store
                .awl_bump(req.client_ip, now, times.max_age)
                .await?;
        }
        if gl.header && self.new_instance(&req.instance) {
            return Ok(Verdict::new(
                Action::Prepend(gl.header_text(waited, now)),
                "greylist",
            ));
        }
        Ok(Verdict::new(Action::Dunno, "greylist"))
    }

    /// Tells the observer what greylisting decided.
    fn observe_greylist(&self, v: &Verdict) {
        let result = match (v.decided_by, &v.action) {
            ("greylist", Action::DeferIfPermit(_)) => "deferred",
            ("greylist_awl", _) => "awl",
            ("greylist_whitelist", _) => "whitelisted",
            _ => "passed",
        };
        self.checks.observer.greylisted(result);
    }

    fn new_instance(&self, instance: &str) -> bool {
        let mut recent = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        recent.insert_new(instance)
    }

    /// The current time of this policy's clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_instances_are_bounded_and_fifo() {
        let mut r = RecentInstances::default();
        assert!(r.insert_new("a"));
        assert!(!r.insert_new("a"));
        assert!(r.insert_new(""));
        assert!(r.insert_new(""));
        for i in 0..RECENT_INSTANCES {
            assert!(r.insert_new(&format!("m{i}")));
        }
        assert_eq!(r.order.len(), RECENT_INSTANCES);
        assert_eq!(r.seen.len(), RECENT_INSTANCES);
        // "a" was evicted first.
        assert!(r.insert_new("a"));
        assert!(!r.insert_new(&format!("m{}", RECENT_INSTANCES - 1)));
    }
}
