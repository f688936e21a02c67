//! The ban list's record and rules: an address or network refused until a time, with an
//! escalation count so repeat offenders are banned longer (fail2ban's `bantime.increment`:
//! each new ban doubles the previous length, up to a cap; Stalwart's permanent bans are the
//! counter-example users complain about, stalwart#964).
//!
//! Bans live in the [`crate::store::Store`] (`ban_get`, `ban_put`, `ban_remove`, `ban_list`)
//! keyed by [`ban_key`], the network in canonical CIDR text (`192.0.2.7/32`,
//! `2001:db8::/64`), so the auth policy, the log jails and `mxguard ban` share one list, and
//! every MX sharing the store sees the same bans. A record is kept after it ends (until
//! [`BanRecord::forgettable`]) so the next ban of the same offender is longer.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::clock::UnixTime;

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    /// When the current (or last) ban started.
    pub since: UnixTime,
    /// When it ends; the ban is active while `now < until`.
    pub until: UnixTime,
    /// How many times this key was banned (1 for the first ban).
    pub count: u32,
    /// Who banned it: a jail name, `"auth"` (the auth policy) or `"manual"` (`mxguard ban`).
    pub jail: String,
    /// Who and why, for `mxguard bans` and logs (`auth: 10 failed logins in 3600s`).
    pub reason: String,
}

/// The `until` of a permanent ban (fail2ban `bantime = -1`).
pub const PERMANENT: UnixTime = UnixTime(u64::MAX);

impl BanRecord {
    /// Whether the ban never ends.
    pub fn permanent(&self) -> bool {
        self.until == PERMANENT
    }

    /// Whether the ban is in force at `now`.
    pub fn active(&self, now: UnixTime) -> bool {
        now < self.until
    }

    /// Whether the record may be deleted: ended longer ago than `memory` seconds (after that
    /// a new ban starts again from the base length).
    pub fn forgettable(&self, now: UnixTime, memory: u64) -> bool {
        now.since(self.until) > memory && !self.active(now)
    }

    /// The record after banning again at `now`: base length doubled per earlier ban, capped
    /// at `max` (fail2ban `bantime.increment` with `bantime.factor = 1`, `bantime.maxtime`).
    /// An active ban is extended, never shortened.
    pub fn escalated(
        prev: Option<&BanRecord>,
        now: UnixTime,
        base: u64,
        max: u64,
        jail: &str,
        reason: String,
    ) -> BanRecord {
        let count = prev.map_or(1, |p| p.count.saturating_add(1));
        let shift = (count - 1).min(32);
        let len = base.saturating_mul(1u64 << shift).min(max.max(base));
        let mut until = UnixTime(now.0.saturating_add(len));
        if let Some(p) = prev
            && p.until > until
        {
            until = p.until;
        }
        BanRecord {
            since: now,
            until,
            count,
            jail: jail.to_string(),
            reason,
        }
    }
}

/// The store key of a network: canonical CIDR text of the truncated network.
pub fn ban_key(net: IpNet) -> String {
    net.trunc().to_string()
}

/// Prefix lengths a ban may cover, and that a lookup of one address checks
/// ([`lookup_keys`]): one address, and the usual allocation sizes. Any other prefix would
/// need a lookup per length on every request, so `mxguard ban` and jails refuse it.
pub const BAN_PREFIXES_V4: [u8; 3] = [32, 24, 16];
pub const BAN_PREFIXES_V6: [u8; 4] = [128, 64, 56, 48];

/// Whether bans of `net` are found by [`lookup_keys`].
pub fn prefix_supported(net: IpNet) -> bool {
    match net {
        IpNet::V4(n) => BAN_PREFIXES_V4.contains(&n.prefix_len()),
        IpNet::V6(n) => BAN_PREFIXES_V6.contains(&n.prefix_len()),
    }
}

/// The store keys under which a ban covering `ip` can be recorded, most specific first.
pub fn lookup_keys(ip: IpAddr) -> Vec<String> {
    let ip = ip.to_canonical();
    let prefixes: &[u8] = match ip {
        IpAddr::V4(_) => &BAN_PREFIXES_V4,
        IpAddr::V6(_) => &BAN_PREFIXES_V6,
    };
    prefixes
        .iter()
        .filter_map(|&p| IpNet::new(ip, p).ok())
        .map(ban_key)
        .collect()
}

/// The store key of a single address (`/32` or `/128`); IPv4-mapped IPv6 is IPv4.
pub fn ip_key(ip: IpAddr) -> String {
    ban_key(IpNet::from(ip.to_canonical()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_double_and_cap() {
        let t = UnixTime(1000);
        let b1 = BanRecord::escalated(None, t, 600, 3000, "auth", "x".into());
        assert_eq!((b1.count, b1.until), (1, UnixTime(1600)));
        assert!(b1.active(UnixTime(1599)) && !b1.active(UnixTime(1600)));
        let b2 = BanRecord::escalated(Some(&b1), UnixTime(2000), 600, 3000, "auth", "x".into());
        assert_eq!((b2.count, b2.until), (2, UnixTime(3200)));
        let b3 = BanRecord::escalated(Some(&b2), UnixTime(4000), 600, 3000, "auth", "x".into());
        assert_eq!(b3.until, UnixTime(6400));
        let b4 = BanRecord::escalated(Some(&b3), UnixTime(7000), 600, 3000, "auth", "x".into());
        assert_eq!(b4.until, UnixTime(10_000), "capped at max");
        assert!(!b4.forgettable(UnixTime(10_050), 100));
        assert!(b4.forgettable(UnixTime(10_101), 100));
    }

    #[test]
    fn lookup_covers_the_supported_prefixes() {
        assert_eq!(
            lookup_keys("192.0.2.7".parse().unwrap()),
            ["192.0.2.7/32", "192.0.2.0/24", "192.0.0.0/16"]
        );
        assert_eq!(
            lookup_keys("2001:db8:1:2::5".parse().unwrap())[1],
            "2001:db8:1:2::/64"
        );
        assert!(prefix_supported("2001:db8::/56".parse().unwrap()));
        assert!(!prefix_supported("10.0.0.0/8".parse().unwrap()));
    }

    #[test]
    fn keys_are_canonical() {
        assert_eq!(ip_key("192.0.2.7".parse().unwrap()), "192.0.2.7/32");
        assert_eq!(ip_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7/32");
        assert_eq!(
            ban_key("2001:db8::1/64".parse().unwrap()),
            "2001:db8::/64".to_owned()
        );
    }
}
