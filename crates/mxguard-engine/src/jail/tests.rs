//! Jail semantics on explicit times (the fake clock is the `now` argument).

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn jail(maxretry: u32, findtime: u64) -> Jail {
    let mut s = JailSettings::new("postfix");
    s.maxretry = maxretry;
    s.findtime = findtime;
    Jail::new(s)
}

/// Feeds failures at the given log times with `now` equal to the line time.
fn feed(j: &mut Jail, addr: &str, times: &[i64]) -> Vec<FailureOutcome> {
    times
        .iter()
        .map(|&t| j.failure(ip(addr), t, t, 1.0))
        .collect()
}

#[test]
fn maxretry_failures_within_findtime_ban_at_the_last() {
    let mut j = jail(3, 600);
    let out = feed(&mut j, "192.0.2.1", &[1000, 1100, 1200]);
    assert_eq!(out[0], FailureOutcome::Counted(1.0));
    assert_eq!(out[1], FailureOutcome::Counted(2.0));
    let FailureOutcome::Ban(b) = &out[2] else {
        panic!("expected a ban, got {:?}", out[2]);
    };
    assert_eq!(b.net.to_string(), "192.0.2.1/32");
    assert_eq!((b.time, b.failures), (1200, 3));
    assert_eq!(b.end(BanTime::Seconds(600)), Some(1800));
    assert_eq!(j.pending(), 0, "the ticket leaves the counter when banned");
}

#[test]
fn one_short_of_maxretry_does_not_ban() {
    let mut j = jail(3, 600);
    let out = feed(&mut j, "192.0.2.1", &[1000, 1100]);
    assert!(out.iter().all(|o| matches!(o, FailureOutcome::Counted(_))));
    assert_eq!(j.pending(), 1);
}

#[test]
fn findtime_edge_rescales_like_fail2ban() {
    // README §4.1: failures at 0 s, 300 s, 700 s with findtime 600: at 700 s the count is
    // rescaled round(2/700*600) = 2, then 3.
    let mut j = jail(10, 600);
    let out = feed(&mut j, "192.0.2.1", &[10_000, 10_300, 10_700]);
    assert_eq!(out[2], FailureOutcome::Counted(3.0));
    let t = j.ticket(&"192.0.2.1/32".parse().unwrap()).unwrap();
    assert_eq!((t.first, t.last, t.failures), (10_100, 10_700, 3));
}

#[test]
fn failures_spread_wider_than_findtime_never_reach_maxretry() {
    // One failure every 400 s with findtime 600: fail2ban's rate estimate settles at 3
    // (round(3/1000*600) + 1), so maxretry 4 is never reached.
    let mut j = jail(4, 600);
    let times: Vec<i64> = (0..20).map(|i| 10_000 + i * 400).collect();
    let out = feed(&mut j, "192.0.2.1", &times);
    assert!(
        out.iter().all(|o| !matches!(o, FailureOutcome::Ban(_))),
        "{out:?}"
    );
    assert_eq!(out[19], FailureOutcome::Counted(3.0));
    // With maxretry 3 the same rate bans at the third failure (the estimate rounds 1.5 to 2).
    let mut j = jail(3, 600);
    let out = feed(&mut j, "192.0.2.1", &times[..3]);
    assert!(matches!(out[2], FailureOutcome::Ban(_)), "{out:?}");
}

#[test]
fn ticket_older_than_findtime_starts_again() {
    let mut j = jail(3, 600);
    feed(&mut j, "192.0.2.1", &[1000, 1100]);
    // 600 s after the last failure the ticket is gone: this is failure 1 again.
    assert_eq!(
        j.failure(ip("192.0.2.1"), 1700, 1700, 1.0),
        FailureOutcome::Counted(1.0)
    );
}

#[test]
fn lines_older_than_findtime_before_now_are_not_counted() {
    let mut j = jail(3, 600);
    assert_eq!(
        j.failure(ip("192.0.2.1"), 1000, 1601, 1.0),
        FailureOutcome::TooOld
    );
    assert_eq!(
        j.failure(ip("192.0.2.1"), 1001, 1601, 1.0),
        FailureOutcome::Counted(1.0)
    );
}

#[test]
fn cleanup_removes_tickets_at_the_findtime_boundary() {
    let mut j = jail(5, 600);
    feed(&mut j, "192.0.2.1", &[1000]);
    feed(&mut j, "192.0.2.2", &[1001]);
    assert_eq!(j.cleanup(1600), 1, "last <= now - findtime is removed");
    assert_eq!(j.pending(), 1);
    assert_eq!(j.cleanup(1601), 1);
    assert_eq!(j.pending(), 0);
}

#[test]
fn ignoreip_addresses_and_networks_are_not_counted() {
    let mut s = JailSettings::new("dovecot");
    s.ignore = IgnoreList::new(vec![
        "127.0.0.1/8".parse().unwrap(),
        "2001:db8:1::/48".parse().unwrap(),
        "198.51.100.9/32".parse().unwrap(),
    ]);
    let mut j = Jail::new(s);
    for a in [
        "127.3.4.5",
        "2001:db8:1:2::7",
        "198.51.100.9",
        "::ffff:127.0.0.1",
    ] {
        assert_eq!(
            j.failure(ip(a), 1000, 1000, 1.0),
            FailureOutcome::Ignored,
            "{a}"
        );
    }
    assert_eq!(
        j.failure(ip("198.51.100.10"), 1000, 1000, 1.0),
        FailureOutcome::Counted(1.0)
    );
}

#[test]
fn ipv6_prefix_counts_and_bans_the_whole_network() {
    let mut s = JailSettings::new("postfix");
    s.maxretry = 3;
    s.ipv6_prefix = 64;
    let mut j = Jail::new(s);
    j.failure(ip("2001:db8:5:6::1"), 1000, 1000, 1.0);
    j.failure(ip("2001:db8:5:6::2"), 1001, 1001, 1.0);
    j.failure(ip("2001:db8:5:7::3"), 1001, 1001, 1.0);
    let FailureOutcome::Ban(b) = j.failure(ip("2001:db8:5:6:ffff::9"), 1002, 1002, 1.0) else {
        panic!("three failures in one /64 ban it");
    };
    assert_eq!(b.net.to_string(), "2001:db8:5:6::/64");
    // IPv4 keeps /32 by default.
    assert_eq!(
        j.settings().network_of(ip("192.0.2.77")).to_string(),
        "192.0.2.77/32"
    );
}

#[test]
fn ipv4_mapped_addresses_count_as_ipv4() {
    let mut j = jail(2, 600);
    j.failure(ip("::ffff:192.0.2.5"), 1000, 1000, 1.0);
    let FailureOutcome::Ban(b) = j.failure(ip("192.0.2.5"), 1001, 1001, 1.0) else {
        panic!("mapped and plain are one address");
    };
    assert_eq!(b.net.to_string(), "192.0.2.5/32");
}

#[test]
fn increment_doubles_and_caps_like_the_default_formula() {
    let mut s = JailSettings::new("postfix");
    s.increment = Some(Increment {
        maxtime: Some(3000),
        ..Increment::default()
    });
    assert_eq!(s.ban_length(0, 0.0), BanTime::Seconds(600));
    assert_eq!(s.ban_length(1, 0.0), BanTime::Seconds(1200));
    assert_eq!(s.ban_length(2, 0.0), BanTime::Seconds(2400));
    assert_eq!(s.ban_length(3, 0.0), BanTime::Seconds(3000), "maxtime caps");
    assert_eq!(s.ban_length(40, 0.0), BanTime::Seconds(3000));
}

#[test]
fn increment_multipliers_replace_the_formula() {
    let mut s = JailSettings::new("postfix");
    s.increment = Some(Increment {
        multipliers: vec![1.0, 5.0, 30.0],
        factor: 2.0,
        rndtime: 100,
        ..Increment::default()
    });
    assert_eq!(s.ban_length(1, 0.0), BanTime::Seconds(6000));
    assert_eq!(s.ban_length(2, 0.0), BanTime::Seconds(36_000));
    assert_eq!(
        s.ban_length(9, 0.0),
        BanTime::Seconds(36_000),
        "last multiplier repeats"
    );
    assert_eq!(
        s.ban_length(1, 0.5),
        BanTime::Seconds(6050),
        "rndtime adds rnd * rndtime"
    );
}

#[test]
fn increment_exp_formula_starts_at_bantime_and_grows() {
    let mut s = JailSettings::new("postfix");
    s.increment = Some(Increment {
        formula: Formula::Exp,
        factor: 2.0 / 2.885385,
        ..Increment::default()
    });
    let BanTime::Seconds(b1) = s.ban_length(1, 0.0) else {
        panic!()
    };
    let BanTime::Seconds(b2) = s.ban_length(2, 0.0) else {
        panic!()
    };
    // exp(2f)/exp(f) = exp(f) ≈ 2.0 with jail.conf's factor: roughly doubling.
    assert!((1190..=1210).contains(&b1), "{b1}");
    assert!((2380..=2420).contains(&b2), "{b2}");
}

#[test]
fn permanent_bantime_ignores_increment() {
    let mut s = JailSettings::new("postfix");
    s.bantime = BanTime::Permanent;
    s.increment = Some(Increment::default());
    assert_eq!(s.ban_length(3, 0.0), BanTime::Permanent);
    let b = BanDecision {
        jail: "postfix".into(),
        net: "192.0.2.1/32".parse().unwrap(),
        time: 5,
        failures: 1,
    };
    assert_eq!(b.end(BanTime::Permanent), None);
}

#[test]
fn repeat_offenders_need_fewer_failures_with_increment() {
    let mut s = JailSettings::new("postfix");
    s.maxretry = 5;
    s.increment = Some(Increment::default());
    // observer.py: n=1 -> 2, n=2 -> 3, n=3 -> 5 (capped at maxretry; "2, 3, 5, 9 ...").
    assert_eq!(s.failure_weight(0), 1.0);
    assert_eq!(s.failure_weight(1), 2.0);
    assert_eq!(s.failure_weight(2), 3.0);
    assert_eq!(s.failure_weight(3), 5.0);
    assert_eq!(s.failure_weight(10), 5.0);
    let mut j = Jail::new(s);
    let w = j.settings().failure_weight(2);
    assert_eq!(
        j.failure(ip("192.0.2.1"), 1000, 1000, w),
        FailureOutcome::Counted(3.0)
    );
    assert!(matches!(
        j.failure(ip("192.0.2.1"), 1001, 1001, w),
        FailureOutcome::Ban(_)
    ));
    // Without increment the weight is always 1.
    assert_eq!(JailSettings::new("x").failure_weight(5), 1.0);
}

#[test]
fn recidive_counts_ban_events_over_a_day() {
    let mut s = JailSettings::new("recidive");
    s.findtime = RECIDIVE_FINDTIME;
    s.bantime = BanTime::Seconds(RECIDIVE_BANTIME);
    let mut j = Jail::new(s);
    // Five bans of the same address by other jails within a day -> recidive bans it for a week.
    let mut last = None;
    for i in 0..5 {
        let t = 100_000 + i * 3_600;
        last = Some(j.failure(ip("203.0.113.4"), t, t, 1.0));
    }
    let Some(FailureOutcome::Ban(b)) = last else {
        panic!("{last:?}");
    };
    assert_eq!(
        b.end(j.settings().bantime),
        Some(100_000 + 4 * 3_600 + 7 * 86_400)
    );
}

#[test]
fn unordered_lines_count_without_moving_the_window() {
    let mut j = jail(10, 600);
    feed(&mut j, "192.0.2.1", &[2000]);
    j.failure(ip("192.0.2.1"), 1900, 2000, 1.0);
    let t = j.ticket(&"192.0.2.1/32".parse().unwrap()).unwrap();
    assert_eq!((t.first, t.last, t.retry), (2000, 2000, 2.0));
}
