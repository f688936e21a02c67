//! Login brute-force protection: the decisions behind the Dovecot auth-policy endpoint.
//!
//! Two calls, mirroring Dovecot's protocol (notes/mail-e2e.md, notes/abuse-anchors.md §3.2):
//! [`AuthPolicy::allow`] answers "may this login go on?" (before the passdb, and again after
//! a correct password) and [`AuthPolicy::report`] takes the outcome. The engine knows nothing
//! about HTTP or JSON; `mxguard::input::dovecot_auth` maps Dovecot's fields to [`Attempt`]
//! and the [`Answer`] back to `{"status": N}`.
//!
//! Rules, in order:
//! 1. an IP in `exempt` (webmail, proxies: stalwart#661's self-ban) is never tarpitted,
//!    banned or counted;
//! 2. a locked account ([`crate::account`], by containment or `mxguard account lock`) is
//!    refused; Dovecot's after-auth `allow` makes that refuse a correct password;
//! 3. an active ban of the IP or its prefix ([`ban`], shared through the store) is refused,
//!    whatever the password;
//! 4. failure counters over a sliding `window` ([`window`]) per IP, per prefix (/24, /64),
//!    per login and per login+IP: from `tarpit_after` failures the answer is a tarpit of
//!    `tarpit_step` seconds per failure over the threshold, capped at `tarpit_max` (Dovecot
//!    does the waiting, before the passdb); at `ban_after` failures per IP (or
//!    `prefix_ban_after` per prefix) the address is banned for `ban_time`, doubled for each
//!    earlier ban up to `ban_max`. The per-login counter only tarpits (refusing a login for
//!    everyone would let an attacker lock users out) and spares IPs that logged in as that
//!    user within the window.
//!
//! A failed password whose `pwhash` already failed for the same login within the window
//! counts once (a phone retrying an old password must not get its owner's IP banned). The
//! `pwhash` is reduced to a 32-bit keyed tag and kept only in memory for the window.
//!
//! Successes feed the seed-incident alerts ([`state::AlertKind`]): many first-time logins,
//! many logins from one IP, one login from many IPs.
//!
//! Counters live in memory, bounded by `max_tracked` keys per kind ([`window::Tracker`]);
//! bans and locks live in the store. Store errors fail open (allow), as Dovecot itself does
//! when the policy server fails (`auth_policy_reject_on_fail = no`).

pub mod ban;
pub mod state;
pub mod window;

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;

use ipnet::IpNet;

use crate::account::account_key;
use crate::clock::Clock;
use crate::store::Store;
pub use ban::{BanRecord, ban_key, ip_key};
pub use state::{Alert, AlertKind};
use state::{IpState, LoginState, PairState, PrefixState};
use window::{Sliding, Tracker};

/// Validated `[auth_policy]` decision settings (the listener settings stay in the binary).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Counting window in seconds.
    pub window: u64,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Failures (per IP, per login+IP) from which answers are tarpits.
    pub tarpit_after: u32,
    /// Seconds of tarpit per failure at or over `tarpit_after`.
    pub tarpit_step: u32,
    /// Longest tarpit, seconds.
    pub tarpit_max: u32,
    /// Failures per IP within the window that ban it (0: never).
    pub ban_after: u32,
    /// Failures per prefix within the window that ban the prefix (0: never).
    pub prefix_ban_after: u32,
    /// Failures per login (all IPs) within the window from which it is tarpitted (0: never).
    pub login_tarpit_after: u32,
    /// First ban length, seconds; doubled per earlier ban up to `ban_max`.
    pub ban_time: u64,
    pub ban_max: u64,
    /// Never counted, tarpitted or banned (locks still apply).
    pub exempt: Vec<IpNet>,
    /// `msg` of refusals: Dovecot shows it to the client verbatim, so it stays generic.
    pub reject_text: String,
    /// Alerts (0 disables each): first-time logins per window (all logins together),
    /// distinct successful logins per IP, distinct successful IPs per login.
    pub alert_new_logins: u32,
    pub alert_logins_per_ip: u32,
    pub alert_ips_per_login: u32,
    /// Keys tracked per kind (IP, prefix, login, login+IP).
    pub max_tracked: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            window: 3600,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            tarpit_after: 3,
            tarpit_step: 1,
            tarpit_max: 15,
            ban_after: 10,
            prefix_ban_after: 50,
            login_tarpit_after: 20,
            ban_time: 3600,
            ban_max: 7 * 86_400,
            exempt: Vec::new(),
            reject_text: "Authentication refused".to_owned(),
            alert_new_logins: 50,
            alert_logins_per_ip: 10,
            alert_ips_per_login: 10,
            max_tracked: 1_000_000,
        }
    }
}

/// One authentication as Dovecot describes it, already decoded.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The user name as typed (normalised here with [`account_key`]).
    pub login: &'a str,
    /// The client address; `None` when Dovecot did not send one.
    pub remote: Option<IpAddr>,
    /// Dovecot's truncated password hash (may be empty when not configured).
    pub pwhash: &'a str,
}

/// The answer to `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    /// Delay the login this many seconds, then go on.
    Tarpit(u32),
    Reject,
}

/// An answer and the rule that gave it (closed set, for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub answer: Answer,
    /// `none`, `exempt`, `locked`, `ban`, `ip`, `prefix`, `login`, `login_ip`, `store_error`.
    pub decided_by: &'static str,
}

impl Decision {
    const fn new(answer: Answer, decided_by: &'static str) -> Self {
        Decision { answer, decided_by }
    }
}

/// What a `report` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// A failure was counted.
    pub counted: bool,
    /// A failure was a repeat of a recent wrong password (not counted).
    pub stale: bool,
    /// Bans placed: (store key, record).
    pub banned: Vec<(String, BanRecord)>,
    pub alerts: Vec<Alert>,
    /// A store call failed (the ban could not be written).
    pub store_error: bool,
}

/// Sizes of the in-memory state (metrics, `mxguard status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracked {
    pub ips: usize,
    pub prefixes: usize,
    pub logins: usize,
    pub pairs: usize,
}

/// The brute-force policy (see module docs). One per configuration; counters are kept across
/// reloads by [`AuthPolicy::with_settings`].
#[derive(Debug)]
pub struct AuthPolicy {
    settings: AuthSettings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    state: Arc<Counters>,
}

/// The in-memory state, shared across reloads.
#[derive(Debug)]
struct Counters {
    hasher: std::collections::hash_map::RandomState,
    ips: Tracker<IpAddr, IpState>,
    prefixes: Tracker<IpNet, PrefixState>,
    logins: Tracker<u64, LoginState>,
    pairs: Tracker<(u64, IpAddr), PairState>,
    /// First successes of logins (all logins), and when the alert last fired.
    new_logins: Mutex<(Sliding, u64)>,
    started: u64,
}

impl AuthPolicy {
    pub fn new(settings: AuthSettings, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let (cap, w) = (settings.max_tracked, settings.window);
        let started = clock.now().0;
        let state = Arc::new(Counters {
            hasher: std::collections::hash_map::RandomState::new(),
            ips: Tracker::new(cap, w),
            prefixes: Tracker::new(cap, w),
            logins: Tracker::new(cap, w),
            pairs: Tracker::new(cap, w),
            new_logins: Mutex::new((Sliding::default(), 0)),
            started,
        });
        AuthPolicy {
            settings,
            store,
            clock,
            state,
        }
    }

    /// The same counters under new settings (SIGHUP). A changed `window` or `max_tracked`
    /// applies to the trackers only after a restart.
    pub fn with_settings(&self, settings: AuthSettings) -> Self {
        AuthPolicy {
            settings,
            store: self.store.clone(),
            clock: self.clock.clone(),
            state: self.state.clone(),
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn hash<T: Hash>(&self, v: T) -> u64 {
        self.state.hasher.hash_one(v)
    }

    fn exempt(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.settings.exempt.iter().any(|n| n.contains(&ip)))
    }

    fn prefix(&self, ip: IpAddr) -> IpNet {
        crate::limits::prefix(ip, self.settings.ipv4_prefix, self.settings.ipv6_prefix)
    }

    /// Seconds of tarpit for `count` failures (0: none).
    fn tarpit_for(&self, count: u32) -> u32 {
        let s = &self.settings;
        if s.tarpit_after == 0 || count < s.tarpit_after {
            return 0;
        }
        (count - s.tarpit_after + 1)
            .saturating_mul(s.tarpit_step)
            .min(s.tarpit_max)
    }

    /// Dovecot `command=allow` (see module docs for the rules).
    pub async fn allow(&self, a: &Attempt<'_>) -> Decision {
        let now = self.clock.now();
        let ip = a.remote.map(|ip| ip.to_canonical());
        let login = account_key(a.login);
        // A store error skips only the check that needed the store (fail-open); the
        // in-memory counters still apply.
        let mut store_error = false;
        if !login.is_empty() {
            match self.store.account_get(&login).await {
                Ok(Some(rec)) if rec.is_locked() => {
                    return Decision::new(Answer::Reject, "locked");
                }
                Ok(_) => {}
                Err(_) => store_error = true,
            }
        }
        let none = if store_error { "store_error" } else { "none" };
        let Some(ip) = ip else {
            return Decision::new(Answer::Allow, none);
        };
        if self.exempt(Some(ip)) {
            return Decision::new(Answer::Allow, "exempt");
        }
        let prefix = self.prefix(ip);
        for key in [ip_key(ip), ban_key(prefix)] {
            match self.store.ban_get(&key).await {
                Ok(Some(b)) if b.active(now) => return Decision::new(Answer::Reject, "ban"),
                Ok(_) => {}
                Err(_) => store_error = true,
            }
        }
        let none = if store_error { "store_error" } else { "none" };
        let (t, w, s) = (now.0, self.settings.window, &self.settings);
        let st = &self.state;
        let ip_fails = st.ips.read(&ip, self.hash(ip), |v| {
            v.map_or(0, |v| v.fails.estimate(t, w))
        });
        if s.ban_after > 0 && ip_fails >= s.ban_after {
            return Decision::new(Answer::Reject, "ip");
        }
        let prefix_fails = st.prefixes.read(&prefix, self.hash(prefix), |v| {
            v.map_or(0, |v| v.fails.estimate(t, w))
        });
        if s.prefix_ban_after > 0 && prefix_fails >= s.prefix_ban_after {
            return Decision::new(Answer::Reject, "prefix");
        }
        let lh = self.hash(login.as_str());
        let (pair_fails, known_ip) = st.pairs.read(&(lh, ip), lh ^ self.hash(ip), |v| {
            v.map_or((0, false), |v| {
                let known = v.last_success != 0 && t.saturating_sub(v.last_success) <= w;
                (v.fails.estimate(t, w), known)
            })
        });
        let mut best = Decision::new(Answer::Allow, none);
        let mut consider = |secs: u32, by: &'static str| {
            let cur = match best.answer {
                Answer::Tarpit(n) => n,
                _ => 0,
            };
            if secs > cur {
                best = Decision::new(Answer::Tarpit(secs), by);
            }
        };
        consider(self.tarpit_for(ip_fails), "ip");
        consider(self.tarpit_for(pair_fails), "login_ip");
        if s.login_tarpit_after > 0 && !known_ip && !login.is_empty() {
            let login_fails = st
                .logins
                .read(&lh, lh, |v| v.map_or(0, |v| v.fails.estimate(t, w)));
            if login_fails >= s.login_tarpit_after {
                let over = login_fails - s.login_tarpit_after + 1;
                consider(
                    over.saturating_mul(s.tarpit_step).min(s.tarpit_max),
                    "login",
                );
            }
        }
        best
    }

    /// Dovecot `command=report`: counts a failure (or records a success) and bans at the
    /// thresholds. `policy_reject` outcomes (our own refusals) are not counted again.
    pub async fn report(
        &self,
        a: &Attempt<'_>,
        success: bool,
        policy_reject: bool,
    ) -> ReportOutcome {
        let mut out = ReportOutcome::default();
        let ip = a.remote.map(|ip| ip.to_canonical());
        if policy_reject || self.exempt(ip) {
            return out;
        }
        let now = self.clock.now();
        let (t, w) = (now.0, self.settings.window);
        let login = account_key(a.login);
        let lh = self.hash(login.as_str());
        if success {
            self.success(&login, lh, ip, t, &mut out);
            return out;
        }
        let s = &self.settings;
        let st = &self.state;
        if !login.is_empty() {
            let stale = !a.pwhash.is_empty() && {
                // 32 bits of a keyed hash: enough to tell guesses apart, useless to anyone
                // reading memory (Dovecot's pwhash is itself only 12 bits by default).
                let tag = self.hash((lh, a.pwhash)) as u32;
                st.logins.update(&lh, lh, t, |v| v.failed_again(tag, t, w))
            };
            if stale {
                out.stale = true;
                return out;
            }
            st.logins.update(&lh, lh, t, |v| v.fails.add(t, w, 1));
        }
        out.counted = true;
        let Some(ip) = ip else { return out };
        if !login.is_empty() {
            st.pairs
                .update(&(lh, ip), lh ^ self.hash(ip), t, |v| v.fails.add(t, w, 1));
        }
        let ip_fails = st
            .ips
            .update(&ip, self.hash(ip), t, |v| v.fails.add(t, w, 1));
        let prefix = self.prefix(ip);
        let prefix_fails = st
            .prefixes
            .update(&prefix, self.hash(prefix), t, |v| v.fails.add(t, w, 1));
        // Once banned, the count starts again (fail2ban): the ban, not the decaying counter,
        // decides how long the address is refused.
        if s.ban_after > 0 && ip_fails >= s.ban_after {
            let why = format!("auth: {ip_fails} failed logins within {w}s");
            if self.ban(ip_key(ip), now, why, &mut out).await {
                st.ips
                    .update(&ip, self.hash(ip), t, |v| v.fails = Sliding::default());
            }
        }
        if s.prefix_ban_after > 0 && prefix_fails >= s.prefix_ban_after {
            let why = format!("auth: {prefix_fails} failed logins from {prefix} within {w}s");
            if self.ban(ban_key(prefix), now, why, &mut out).await {
                st.prefixes.update(&prefix, self.hash(prefix), t, |v| {
                    v.fails = Sliding::default()
                });
            }
        }
        out
    }

    /// Places (or escalates) a ban unless one is already active; `true` if one was placed.
    async fn ban(
        &self,
        key: String,
        now: crate::clock::UnixTime,
        reason: String,
        out: &mut ReportOutcome,
    ) -> bool {
        let prev = match self.store.ban_get(&key).await {
            Ok(p) => p,
            Err(_) => {
                out.store_error = true;
                return false;
            }
        };
        if prev.as_ref().is_some_and(|p| p.active(now)) {
            return false;
        }
        let s = &self.settings;
        let rec = BanRecord::escalated(prev.as_ref(), now, s.ban_time, s.ban_max, "auth", reason);
        match self.store.ban_put(&key, rec.clone()).await {
            Ok(()) => {
                out.banned.push((key, rec));
                true
            }
            Err(_) => {
                out.store_error = true;
                false
            }
        }
    }

    fn success(&self, login: &str, lh: u64, ip: Option<IpAddr>, t: u64, out: &mut ReportOutcome) {
        let (s, st, w) = (&self.settings, &self.state, self.settings.window);
        let warm = t.saturating_sub(st.started) >= w;
        if !login.is_empty() {
            let iptag = ip.map_or(0, |ip| self.hash(ip) as u32);
            let (first, ips, alerted) = st.logins.update(&lh, lh, t, |v| {
                let first = v.first_success == 0;
                if first {
                    v.first_success = t;
                }
                let ips = v.success_ips.insert(iptag, t, w);
                let fire = s.alert_ips_per_login > 0
                    && ips >= s.alert_ips_per_login as usize
                    && t.saturating_sub(v.alerted) > w;
                if fire {
                    v.alerted = t;
                }
                (first, ips, fire)
            });
            if alerted {
                out.alerts.push(Alert {
                    kind: AlertKind::IpsPerLogin,
                    subject: login.to_owned(),
                    count: u32::try_from(ips).unwrap_or(u32::MAX),
                    window: w,
                });
            }
            // Before one window has passed every login is "new" (state is in memory): the
            // first-login alert waits for that warm-up.
            if first && warm && s.alert_new_logins > 0 {
                let mut g = st.new_logins.lock().unwrap_or_else(|e| e.into_inner());
                let n = g.0.add(t, w, 1);
                if n >= s.alert_new_logins && t.saturating_sub(g.1) > w {
                    g.1 = t;
                    out.alerts.push(Alert {
                        kind: AlertKind::NewLogins,
                        subject: String::new(),
                        count: n,
                        window: w,
                    });
                }
            }
        }
        let Some(ip) = ip else { return };
        st.pairs.update(&(lh, ip), lh ^ self.hash(ip), t, |v| {
            v.fails = Sliding::default();
            v.last_success = t;
        });
        let ltag = lh as u32;
        let (n, fire) = st.ips.update(&ip, self.hash(ip), t, |v| {
            let n = v.success_logins.insert(ltag, t, w);
            let fire = s.alert_logins_per_ip > 0
                && n >= s.alert_logins_per_ip as usize
                && t.saturating_sub(v.alerted) > w;
            if fire {
                v.alerted = t;
            }
            (n, fire)
        });
        if fire {
            out.alerts.push(Alert {
                kind: AlertKind::LoginsPerIp,
                subject: ip.to_string(),
                count: u32::try_from(n).unwrap_or(u32::MAX),
                window: w,
            });
        }
    }

    /// Drops idle in-memory state; returns how many keys (the binary's expiry job).
    pub fn expire(&self) -> usize {
        let t = self.clock.now().0;
        let st = &self.state;
        st.ips.expire(t) + st.prefixes.expire(t) + st.logins.expire(t) + st.pairs.expire(t)
    }

    /// How many keys of each kind are tracked.
    pub fn tracked(&self) -> Tracked {
        let st = &self.state;
        Tracked {
            ips: st.ips.len(),
            prefixes: st.prefixes.len(),
            logins: st.logins.len(),
            pairs: st.pairs.len(),
        }
    }
}

#[cfg(test)]
mod tests;
