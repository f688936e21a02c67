//! Compromised-account containment: abuse signals per `sasl_username`, a score, and at the
//! threshold a lock ([`record`]) that makes the policy answer HOLD for the account's mail and
//! the Dovecot auth-policy endpoint refuse its logins.
//!
//! Signals (anchors: geoip-policyd's "at most N IPs per login", Exim BlockCracking's "100
//! nonexistent RCPTs per hour", Postfix `smtpd_sender_login_maps`; notes/abuse-anchors.md):
//! - a rate-limit breach of a limit with `signal = true`;
//! - recipient fan-out: `fanout_domains` distinct recipient domains within `window`;
//! - spread: `source_networks` distinct client networks (/24, /64) within `window`;
//! - sender mismatch: MAIL FROM not owned by the login ([`SenderRule`]);
//! - rejected recipients: `rejected_recipients` RCPTs Postfix refused within `window`
//!   (RCPT requests seen minus END-OF-MESSAGE `recipient_count`).
//!
//! Each signal adds its points; points older than `window` are forgotten; at `threshold` the
//! account is locked and [`Notifier::account_locked`] is called. The signal state is in memory
//! (bounded); the lock itself is in the store. Called by [`crate::limits::Guard`].

pub mod record;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

pub use record::{AccountRecord, Lock, LockedBy, account_key};

use crate::clock::UnixTime;

/// How MAIL FROM must relate to the login.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SenderRule {
    /// No sender check.
    #[default]
    Off,
    /// The sender's domain must be the login's domain (logins of the form `user@domain`;
    /// logins without `@` pass).
    SameDomain,
    /// `smtpd_sender_login_maps`-style map: sender address (or `@domain`) -> logins allowed
    /// to use it. Senders not in the map are a mismatch.
    Map(HashMap<String, Vec<String>>),
}

impl SenderRule {
    /// Whether `login` may send as `sender` (the null sender always may).
    pub fn allows(&self, login: &str, sender: &str) -> bool {
        let sender = sender.trim().to_lowercase();
        if sender.is_empty() {
            return true;
        }
        let login = account_key(login);
        match self {
            SenderRule::Off => true,
            SenderRule::SameDomain => match login.rsplit_once('@') {
                Some((_, d)) => crate::limits::domain(&sender).is_some_and(|s| s == d),
                None => true,
            },
            SenderRule::Map(map) => {
                let dom = crate::limits::domain(&sender).map(|d| format!("@{d}"));
                [Some(sender.clone()), dom]
                    .iter()
                    .flatten()
                    .filter_map(|k| map.get(k))
                    .any(|owners| owners.contains(&login))
            }
        }
    }
}

/// Told when containment locks an account (log, metric, command: the binary decides).
pub trait Notifier: Send + Sync + fmt::Debug {
    fn account_locked(&self, user: &str, score: u32, reasons: &[String]);
}

/// Validated `[account]` settings.
#[derive(Debug, Clone)]
pub struct ContainmentSettings {
    /// Score at which the account is locked.
    pub threshold: u32,
    /// How long signal points count.
    pub window: u64,
    pub points_limit_breach: u32,
    pub points_fanout: u32,
    pub points_networks: u32,
    pub points_sender_mismatch: u32,
    pub points_rejected: u32,
    pub fanout_domains: usize,
    pub source_networks: usize,
    pub rejected_recipients: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub sender_rule: SenderRule,
    /// The answer for a locked account's mail.
    pub hold_text: String,
    pub notifier: Option<Arc<dyn Notifier>>,
}

impl Default for ContainmentSettings {
    fn default() -> Self {
        ContainmentSettings {
            threshold: 100,
            window: 3600,
            points_limit_breach: 50,
            points_fanout: 50,
            points_networks: 50,
            points_sender_mismatch: 25,
            points_rejected: 50,
            fanout_domains: 30,
            source_networks: 5,
            rejected_recipients: 20,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            sender_rule: SenderRule::Off,
            hold_text: "account locked by mxguard, message held for review".to_owned(),
            notifier: None,
        }
    }
}

/// Accounts locked by containment since the process started (all policies of this
/// process; the binary exports it as `mxguard_accounts_locked_total`).
static LOCKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many accounts containment has locked since the process started.
pub fn locks_total() -> u64 {
    LOCKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one containment lock (called by [`crate::limits::Guard`]).
pub(crate) fn count_lock() {
    LOCKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// At most this many accounts have signal state; beyond it, the least recently created is
/// dropped (an attacker cycling logins cannot grow memory without bound).
pub const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
struct UserSignals {
    points: VecDeque<(UnixTime, u32, String)>,
    domains: HashMap<String, UnixTime>,
    networks: HashMap<String, UnixTime>,
    rejected: VecDeque<(UnixTime, u32)>,
}

impl UserSignals {
    fn prune(&mut self, now: UnixTime, window: u64) {
        let old = |t: &UnixTime| now.since(*t) > window;
        while self.points.front().is_some_and(|(t, _, _)| old(t)) {
            self.points.pop_front();
        }
        while self.rejected.front().is_some_and(|(t, _)| old(t)) {
            self.rejected.pop_front();
        }
        self.domains.retain(|_, t| !old(t));
        self.networks.retain(|_, t| !old(t));
    }

    fn score(&self) -> u32 {
        self.points.iter().map(|(_, p, _)| *p).sum()
    }
}

/// One observation about an account's traffic.
#[derive(Debug, Clone)]
pub enum Signal<'a> {
    LimitBreach(&'a str),
    /// A RCPT of the account: client network, recipient domain, sender.
    Rcpt {
        network: String,
        domain: Option<String>,
        sender: &'a str,
    },
    /// END-OF-MESSAGE: this many of the message's RCPTs were refused.
    Rejected(u32),
}

/// Signal state for every account (see module docs).
#[derive(Debug, Default)]
pub struct Signals {
    users: Mutex<(HashMap<String, UserSignals>, VecDeque<String>)>,
}

impl Signals {
    /// Records `signal` for `user` at `now`; returns `Some((score, reasons))` when the score
    /// reaches the threshold (the caller locks the account and the state is cleared).
    pub fn observe(
        &self,
        s: &ContainmentSettings,
        user: &str,
        now: UnixTime,
        signal: Signal<'_>,
    ) -> Option<(u32, Vec<String>)> {
        let mut g = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *g;
        if !map.contains_key(user) {
            if order.len() >= MAX_TRACKED
                && let Some(old) = order.pop_front()
            {
                map.remove(&old);
            }
            order.push_back(user.to_owned());
        }
        let u = map.entry(user.to_owned()).or_default();
        u.prune(now, s.window);
        match signal {
            Signal::LimitBreach(name) => {
                u.points
                    .push_back((now, s.points_limit_breach, format!("limit {name} breached")));
            }
            Signal::Rcpt {
                network,
                domain,
                sender,
            } => {
                u.networks.insert(network, now);
                if u.networks.len() >= s.source_networks {
                    let n = u.networks.len();
                    u.networks.clear();
                    u.points.push_back((
                        now,
                        s.points_networks,
                        format!("{n} client networks within {}s", s.window),
                    ));
                }
                if let Some(d) = domain {
                    u.domains.insert(d, now);
                    if u.domains.len() >= s.fanout_domains {
                        let n = u.domains.len();
                        u.domains.clear();
                        u.points.push_back((
                            now,
                            s.points_fanout,
                            format!("{n} recipient domains within {}s", s.window),
                        ));
                    }
                }
                if !s.sender_rule.allows(user, sender) {
                    u.points.push_back((
                        now,
                        s.points_sender_mismatch,
                        format!("MAIL FROM <{sender}> not owned by the login"),
                    ));
                }
            }
            Signal::Rejected(n) if n > 0 => {
                u.rejected.push_back((now, n));
                let total: u32 = u.rejected.iter().map(|(_, n)| *n).sum();
                if total >= s.rejected_recipients {
                    u.rejected.clear();
                    u.points.push_back((
                        now,
                        s.points_rejected,
                        format!("{total} rejected recipients within {}s", s.window),
                    ));
                }
            }
            Signal::Rejected(_) => {}
        }
        let score = u.score();
        if score >= s.threshold && s.threshold > 0 {
            let reasons = u.points.iter().map(|(_, _, r)| r.clone()).collect();
            *u = UserSignals::default();
            return Some((score, reasons));
        }
        None
    }

    /// The current score of `user` (points within the window).
    pub fn score(&self, s: &ContainmentSettings, user: &str, now: UnixTime) -> u32 {
        let mut g = self.users.lock().unwrap_or_else(|e| e.into_inner());
        g.0.get_mut(user).map_or(0, |u| {
            u.prune(now, s.window);
            u.score()
        })
    }

    /// Forgets `user`'s signals (unlock: the account starts from zero).
    pub fn clear(&self, user: &str) {
        let mut g = self.users.lock().unwrap_or_else(|e| e.into_inner());
        g.0.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt<'a>(net: &str, dom: &str, sender: &'a str) -> Signal<'a> {
        Signal::Rcpt {
            network: net.into(),
            domain: Some(dom.into()),
            sender,
        }
    }

    #[test]
    fn sender_rules() {
        assert!(SenderRule::SameDomain.allows("alice@ex.org", "bob@EX.org"));
        assert!(!SenderRule::SameDomain.allows("alice@ex.org", "ceo@bank.test"));
        assert!(SenderRule::SameDomain.allows("alice", "x@y"));
        assert!(SenderRule::SameDomain.allows("alice@ex.org", ""));
        let map = SenderRule::Map(HashMap::from([
            ("alice@ex.org".to_owned(), vec!["alice".to_owned()]),
            ("@shared.test".to_owned(), vec!["bob".to_owned()]),
        ]));
        assert!(map.allows("Alice", "alice@ex.org"));
        assert!(!map.allows("bob", "alice@ex.org"));
        assert!(map.allows("bob", "any@shared.test"));
        assert!(!map.allows("alice", "x@other.test"));
    }

    #[test]
    fn fanout_and_networks_reach_threshold_and_window_forgets() {
        let s = ContainmentSettings {
            fanout_domains: 3,
            source_networks: 3,
            ..Default::default()
        };
        let sig = Signals::default();
        let t = UnixTime(10_000);
        assert!(sig.observe(&s, "u", t, rcpt("n1", "a", "")).is_none());
        assert!(sig.observe(&s, "u", t, rcpt("n1", "b", "")).is_none());
        // Third domain: 50 points, not yet 100.
        assert!(sig.observe(&s, "u", t, rcpt("n2", "c", "")).is_none());
        assert_eq!(sig.score(&s, "u", t), 50);
        // After the window the points are gone.
        let later = UnixTime(t.0 + 3601);
        assert_eq!(sig.score(&s, "u", later), 0);
        assert!(sig.observe(&s, "u", later, rcpt("n1", "a", "")).is_none());
        assert!(sig.observe(&s, "u", later, rcpt("n2", "a", "")).is_none());
        // Third network: 50 points; a breach adds 50: locked.
        assert!(sig.observe(&s, "u", later, rcpt("n3", "a", "")).is_none());
        let (score, reasons) = sig
            .observe(&s, "u", later, Signal::LimitBreach("per-user"))
            .unwrap();
        assert_eq!(score, 100);
        assert_eq!(reasons.len(), 2);
        assert_eq!(sig.score(&s, "u", later), 0);
    }

    #[test]
    fn rejected_recipients_and_sender_mismatch() {
        let s = ContainmentSettings {
            rejected_recipients: 5,
            sender_rule: SenderRule::SameDomain,
            ..Default::default()
        };
        let sig = Signals::default();
        let t = UnixTime(1);
        assert!(
            sig.observe(&s, "a@ex.org", t, Signal::Rejected(4))
                .is_none()
        );
        assert!(
            sig.observe(&s, "a@ex.org", t, Signal::Rejected(1))
                .is_none()
        );
        assert_eq!(sig.score(&s, "a@ex.org", t), 50);
        assert!(
            sig.observe(&s, "a@ex.org", t, rcpt("n", "d", "x@spoof.test"))
                .is_none()
        );
        let hit = sig.observe(&s, "a@ex.org", t, rcpt("n", "d", "y@spoof.test"));
        assert_eq!(hit.map(|h| h.0), Some(100));
        sig.clear("a@ex.org");
        assert_eq!(sig.score(&s, "a@ex.org", t), 0);
    }
}
