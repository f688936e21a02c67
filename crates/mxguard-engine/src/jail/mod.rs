//! Log jails: fail2ban's failure counting and ban decisions, without the log reading or the
//! firewall (corpus/fail2ban/README.md §4, fail2ban 1.0.2 `server/failmanager.py`,
//! `server/actions.py`, `server/observer.py`).
//!
//! A [`Jail`] receives failures (an address and the time of its log line, already extracted by
//! a `mxguard-filter` filter) and answers, per failure, whether it is counted, ignored, or
//! completes a ban ([`BanDecision`]). The ban's length with `bantime.increment` comes from
//! [`JailSettings::ban_length`], given how often the address was banned before (the ban list
//! in the [`crate::store::Store`] knows that; the caller looks it up). The jail does not
//! decide "already banned", store bans, run actions or unban: the binary's ban manager does,
//! because those need the store and the clock of the whole daemon.
//!
//! Counting is per *network*: the failure's address truncated to `ipv4_prefix` /
//! `ipv6_prefix` (default /32 and /128, fail2ban's per-address tickets). With
//! `ipv6_prefix = 64` every address of a /64 counts towards one ticket and the ban covers the
//! /64 — an attacker rotating through its /64 is one offender (fail2ban cannot do this).

#[cfg(test)]
mod tests;
mod tickets;

use std::net::IpAddr;

use ipnet::IpNet;

pub use tickets::{Ticket, Tickets};

/// fail2ban jail.conf `[DEFAULT]`: `maxretry = 5`, `findtime = 10m`, `bantime = 10m`.
pub const DEFAULT_MAXRETRY: u32 = 5;
pub const DEFAULT_FINDTIME: u64 = 600;
pub const DEFAULT_BANTIME: u64 = 600;
/// jail.conf `[recidive]`: `bantime = 1w`, `findtime = 1d`.
pub const RECIDIVE_BANTIME: u64 = 7 * 86_400;
pub const RECIDIVE_FINDTIME: u64 = 86_400;
/// fail2ban's default formula caps the exponent at 20 (`ban.Count if ban.Count<20 else 20`).
const MAX_DOUBLINGS: u32 = 20;

/// How long a ban lasts (fail2ban `bantime`; a negative value there means permanent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanTime {
    Seconds(u64),
    Permanent,
}

/// fail2ban `bantime.formula`: the two formulas jail.conf documents. fail2ban evaluates any
/// Python expression; mxguard offers these two by name (docs/jails.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formula {
    /// `ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor` (the default).
    Power,
    /// `ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)`
    /// (jail.conf's alternative, used with `factor = 2.0 / 2.885385`).
    Exp,
}

/// fail2ban `bantime.increment` and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// `bantime.factor` (default 1).
    pub factor: f64,
    /// `bantime.formula`.
    pub formula: Formula,
    /// `bantime.multipliers`: when non-empty it replaces the formula:
    /// `Time * factor * multipliers[min(Count, len-1)]`.
    pub multipliers: Vec<f64>,
    /// `bantime.maxtime` cap (seconds); `None` = no cap.
    pub maxtime: Option<u64>,
    /// `bantime.rndtime`: up to this many seconds are added (against bots that retry exactly
    /// when the ban ends).
    pub rndtime: u64,
    /// `bantime.overalljails`: count earlier bans of the address by any jail, not only this one.
    pub overalljails: bool,
}

impl Default for Increment {
    fn default() -> Self {
        Increment {
            factor: 1.0,
            formula: Formula::Power,
            multipliers: Vec::new(),
            maxtime: None,
            rndtime: 0,
            overalljails: false,
        }
    }
}

/// Addresses a jail never counts (fail2ban `ignoreip`, after host names were resolved by the
/// caller, and `ignoreself`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    nets: Vec<IpNet>,
}

impl IgnoreList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        IgnoreList { nets }
    }

    /// Whether `ip` (IPv4-mapped IPv6 compared as IPv4) is ignored.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// One jail's validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JailSettings {
    pub name: String,
    pub maxretry: u32,
    pub findtime: u64,
    pub bantime: BanTime,
    pub increment: Option<Increment>,
    pub ignore: IgnoreList,
    /// Prefix length a failing IPv4 address is counted and banned under (32 = the address).
    pub ipv4_prefix: u8,
    /// Prefix length for IPv6 (128 = the address; 64 bans the whole /64).
    pub ipv6_prefix: u8,
}

impl JailSettings {
    /// A jail with fail2ban's jail.conf defaults.
    pub fn new(name: &str) -> Self {
        JailSettings {
            name: name.to_string(),
            maxretry: DEFAULT_MAXRETRY,
            findtime: DEFAULT_FINDTIME,
            bantime: BanTime::Seconds(DEFAULT_BANTIME),
            increment: None,
            ignore: IgnoreList::default(),
            ipv4_prefix: 32,
            ipv6_prefix: 128,
        }
    }

    /// The network a failure of `ip` counts towards.
    pub fn network_of(&self, ip: IpAddr) -> IpNet {
        let ip = ip.to_canonical();
        let prefix = match ip {
            IpAddr::V4(_) => self.ipv4_prefix.min(32),
            IpAddr::V6(_) => self.ipv6_prefix.min(128),
        };
        // The prefix was clamped to the family's length just above.
        IpNet::new(ip, prefix)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(ip))
    }

    /// The length of a ban given `previous` earlier bans of the same network (0 for a first
    /// offender): fail2ban's `bantime.increment` (observer.py `calcBanTime`): with a history,
    /// `max(bantime, formula(bantime, previous))`, capped at `maxtime`, plus `rnd` ×
    /// `rndtime` (`rnd` in [0, 1), supplied by the caller so tests are deterministic).
    /// Without increment, or for a permanent bantime, it is the jail's bantime.
    pub fn ban_length(&self, previous: u32, rnd: f64) -> BanTime {
        let BanTime::Seconds(base) = self.bantime else {
            return BanTime::Permanent;
        };
        let Some(inc) = &self.increment else {
            return self.bantime;
        };
        if previous == 0 {
            return self.bantime;
        }
        let t = base as f64;
        let value = if !inc.multipliers.is_empty() {
            let i = (previous as usize).min(inc.multipliers.len() - 1);
            t * inc.factor * inc.multipliers[i]
        } else {
            match inc.formula {
                Formula::Power => t * f64::from(1u32 << previous.min(MAX_DOUBLINGS)) * inc.factor,
                Formula::Exp => t * (f64::from(previous + 1) * inc.factor).exp() / inc.factor.exp(),
            }
        };
        let mut secs = if value.is_finite() { value.max(t) } else { t };
        if let Some(max) = inc.maxtime {
            secs = secs.min(max as f64);
        }
        secs += rnd.clamp(0.0, 1.0) * inc.rndtime as f64;
        BanTime::Seconds(secs.min(u64::MAX as f64 / 2.0) as u64)
    }

    /// fail2ban's observer weight for a failure of an address banned `previous` times before
    /// (observer.py `failureFound`): `min(2^min(n,20)/2 + 1, maxretry)`. A failure then
    /// counts that much, so repeat offenders are banned after fewer attempts. 1 without
    /// increment or history.
    pub fn failure_weight(&self, previous: u32) -> f64 {
        if self.increment.is_none() || previous == 0 {
            return 1.0;
        }
        let w = f64::from(1u32 << previous.min(MAX_DOUBLINGS)) / 2.0 + 1.0;
        w.min(f64::from(self.maxretry.max(1)))
    }
}

/// What a jail did with one failure.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureOutcome {
    /// `ignoreip` covers the address.
    Ignored,
    /// The line is older than `findtime` before now (fail2ban: "Ignore line since time ...
    /// < ... - findtime"), so it cannot contribute to a ban.
    TooOld,
    /// Counted; the ticket now holds this (weighted) retry count.
    Counted(f64),
    /// The failure completed a ban: the ticket was removed from the counter.
    Ban(BanDecision),
}

/// A ban the jail decided; the ban manager stores it and runs the actions.
#[derive(Debug, Clone, PartialEq)]
pub struct BanDecision {
    pub jail: String,
    pub net: IpNet,
    /// The ban's start: the time of the last failure (fail2ban's ticket time = log time).
    pub time: i64,
    /// Raw number of failures in the ticket.
    pub failures: u32,
}

impl BanDecision {
    /// When a ban of `length` starting at the ticket time ends (`None`: permanent).
    pub fn end(&self, length: BanTime) -> Option<i64> {
        match length {
            BanTime::Permanent => None,
            BanTime::Seconds(s) => Some(
                self.time
                    .saturating_add(i64::try_from(s).unwrap_or(i64::MAX)),
            ),
        }
    }
}

/// One jail's counting state.
#[derive(Debug)]
pub struct Jail {
    settings: JailSettings,
    tickets: Tickets,
}

impl Jail {
    pub fn new(settings: JailSettings) -> Self {
        Jail {
            settings,
            tickets: Tickets::default(),
        }
    }

    pub fn settings(&self) -> &JailSettings {
        &self.settings
    }

    /// Replaces the settings (reload) and keeps the pending failures.
    pub fn set_settings(&mut self, settings: JailSettings) {
        self.settings = settings;
    }

    /// Counts a failure of `ip` whose log line has time `time`, at `now` (Unix seconds).
    /// `weight` is [`JailSettings::failure_weight`] of the address's ban history (1.0 without).
    pub fn failure(&mut self, ip: IpAddr, time: i64, now: i64, weight: f64) -> FailureOutcome {
        let s = &self.settings;
        if s.ignore.contains(ip) {
            return FailureOutcome::Ignored;
        }
        let findtime = i64::try_from(s.findtime).unwrap_or(i64::MAX);
        if time < now.saturating_sub(findtime) {
            return FailureOutcome::TooOld;
        }
        let net = s.network_of(ip);
        let ticket = self.tickets.add(net, time, now, findtime, weight);
        if ticket.retry >= f64::from(s.maxretry) {
            let failures = ticket.failures;
            let last = ticket.last;
            self.tickets.remove(&net);
            return FailureOutcome::Ban(BanDecision {
                jail: s.name.clone(),
                net,
                time: last,
                failures,
            });
        }
        FailureOutcome::Counted(ticket.retry)
    }

    /// Forgets tickets whose last failure is at or before `now - findtime` (fail2ban
    /// `FailManager.cleanup`). Returns how many were removed.
    pub fn cleanup(&mut self, now: i64) -> usize {
        let findtime = i64::try_from(self.settings.findtime).unwrap_or(i64::MAX);
        self.tickets.cleanup(now.saturating_sub(findtime))
    }

    /// Networks with failures counted but not banned yet ("Currently failed").
    pub fn pending(&self) -> usize {
        self.tickets.len()
    }

    /// The pending ticket of `net` (status, tests).
    pub fn ticket(&self, net: &IpNet) -> Option<&Ticket> {
        self.tickets.get(net)
    }

    /// Forgets the pending failures of `net` (`mxguard unban` also clears the counter, as
    /// fail2ban's unban deletes the ticket).
    pub fn forget(&mut self, net: &IpNet) -> bool {
        self.tickets.remove(net).is_some()
    }
}
