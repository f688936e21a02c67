//! Per-key state of the auth policy (per IP, per network prefix, per login, per login+IP)
//! and the seed-incident alerts computed from it.
//!
//! What is kept, and what is not: failure counters ([`Sliding`]), the last few failed
//! password tags per login (a 32-bit keyed hash of Dovecot's already truncated `pwhash`,
//! never the `pwhash` itself, forgotten after the window), small sets of 32-bit tags of the
//! IPs / logins that authenticated successfully within the window. All of it is in memory,
//! bounded by [`super::window::Tracker`]; nothing here is written to the store.

use std::fmt;

use super::window::{Expiring, Sliding};

/// How many distinct failed passwords are remembered per login for the stale-password
/// tolerance (nauthilus "repeating wrong password" keeps 3 per IP+account, §4.3).
pub const STALE_SLOTS: usize = 4;

/// At most this many distinct success tags are kept per set (alerts need only a count up to
/// their threshold; validation keeps thresholds below it).
pub const MAX_SET: usize = 64;

/// A small set of 32-bit tags with last-seen times.
#[derive(Debug, Default, Clone)]
pub struct TagSet(Vec<(u32, u64)>);

impl TagSet {
    /// Inserts `tag` seen at `now`, forgets tags older than `window`; returns the number of
    /// distinct tags within the window.
    pub fn insert(&mut self, tag: u32, now: u64, window: u64) -> usize {
        self.0.retain(|(_, t)| now.saturating_sub(*t) <= window);
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == tag) {
            slot.1 = now;
        } else if self.0.len() < MAX_SET {
            self.0.push((tag, now));
        }
        self.0.len()
    }

    fn idle(&self, now: u64, window: u64) -> bool {
        self.0.iter().all(|(_, t)| now.saturating_sub(*t) > window)
    }
}

/// Per client IP.
#[derive(Debug, Default)]
pub struct IpState {
    pub fails: Sliding,
    /// Logins that succeeded from this IP within the window.
    pub success_logins: TagSet,
    /// When an alert about this IP was last raised (0: never).
    pub alerted: u64,
}

impl Expiring for IpState {
    fn idle(&self, now: u64, window: u64) -> bool {
        self.fails.idle(now, window)
            && self.success_logins.idle(now, window)
            && now.saturating_sub(self.alerted) > window
    }
}

/// Per network prefix (/24, /64 by default).
#[derive(Debug, Default)]
pub struct PrefixState {
    pub fails: Sliding,
}

impl Expiring for PrefixState {
    fn idle(&self, now: u64, window: u64) -> bool {
        self.fails.idle(now, window)
    }
}

/// Per login.
#[derive(Debug, Default)]
pub struct LoginState {
    pub fails: Sliding,
    /// Tags of recently failed passwords and when they failed last.
    pub failed_pw: [(u32, u64); STALE_SLOTS],
    /// IPs that logged in successfully within the window.
    pub success_ips: TagSet,
    /// When this login first succeeded since it was tracked (0: never).
    pub first_success: u64,
    pub alerted: u64,
}

impl LoginState {
    /// Records a failed password tag at `now`; returns `true` if the same tag already failed
    /// within `window` (a device retrying a stale password: counted once).
    pub fn failed_again(&mut self, tag: u32, now: u64, window: u64) -> bool {
        let live = |t: u64| t != 0 && now.saturating_sub(t) <= window;
        if let Some(slot) = self
            .failed_pw
            .iter_mut()
            .find(|(k, t)| *k == tag && live(*t))
        {
            slot.1 = now;
            return true;
        }
        // Replace the oldest (or an empty) slot.
        if let Some(slot) = self.failed_pw.iter_mut().min_by_key(|(_, t)| *t) {
            *slot = (tag, now);
        }
        false
    }
}

impl Expiring for LoginState {
    fn idle(&self, now: u64, window: u64) -> bool {
        // A login that once succeeded is kept while its success set says something, so the
        // "first success" alert does not fire again for known users after a quiet hour;
        // memory stays bounded by the tracker either way.
        self.fails.idle(now, window)
            && self.success_ips.idle(now, window)
            && self
                .failed_pw
                .iter()
                .all(|(_, t)| now.saturating_sub(*t) > window)
            && (self.first_success == 0 || now.saturating_sub(self.first_success) > 30 * window)
    }
}

/// Per login + IP.
#[derive(Debug, Default)]
pub struct PairState {
    pub fails: Sliding,
    /// Last successful login of this login from this IP (0: none).
    pub last_success: u64,
}

impl Expiring for PairState {
    fn idle(&self, now: u64, window: u64) -> bool {
        self.fails.idle(now, window) && now.saturating_sub(self.last_success) > window
    }
}

/// Which seed-incident signal fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// Many logins with no earlier success succeeded within the window (a `passdb static
    /// nopassword=y` lets every guessed name in).
    NewLogins,
    /// One IP logged in successfully as many different logins.
    LoginsPerIp,
    /// One login succeeded from many different IPs.
    IpsPerLogin,
}

impl AlertKind {
    /// Closed-set name for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NewLogins => "new_logins",
            AlertKind::LoginsPerIp => "logins_per_ip",
            AlertKind::IpsPerLogin => "ips_per_login",
        }
    }
}

/// An alert event: the binary logs it and counts it in a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    /// The IP or login concerned; empty for [`AlertKind::NewLogins`].
    pub subject: String,
    /// The count that crossed the threshold.
    pub count: u32,
    /// Over how many seconds.
    pub window: u64,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            AlertKind::NewLogins => write!(
                f,
                "{} logins with no earlier success logged in within {}s",
                self.count, self.window
            ),
            AlertKind::LoginsPerIp => write!(
                f,
                "{} different logins succeeded from {} within {}s",
                self.count, self.subject, self.window
            ),
            AlertKind::IpsPerLogin => write!(
                f,
                "login {} succeeded from {} different IPs within {}s",
                self.subject, self.count, self.window
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_password_counts_once_and_is_forgotten() {
        let mut l = LoginState::default();
        assert!(!l.failed_again(7, 100, 60));
        assert!(l.failed_again(7, 110, 60));
        assert!(l.failed_again(7, 160, 60));
        // Four other passwords push it out of the slots.
        for tag in 1..=4 {
            assert!(!l.failed_again(tag, 161, 60));
        }
        assert!(!l.failed_again(7, 162, 60));
        // After the window the same tag is new again.
        assert!(!l.failed_again(9, 300, 60));
        assert!(!l.failed_again(7, 400, 60));
    }

    #[test]
    fn tag_sets_count_distinct_within_window() {
        let mut s = TagSet::default();
        assert_eq!(s.insert(1, 10, 60), 1);
        assert_eq!(s.insert(1, 20, 60), 1);
        assert_eq!(s.insert(2, 30, 60), 2);
        assert_eq!(s.insert(3, 85, 60), 2, "tag 1 last seen at 20 is gone");
        assert!(s.idle(200, 60));
    }
}
