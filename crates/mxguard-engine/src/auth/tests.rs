//! Scenarios of the auth policy on a fake clock and a memory store.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::account::{AccountRecord, Lock, LockedBy};
use crate::clock::{FakeClock, UnixTime};
use crate::dns::block_on;
use crate::store::MemoryStore;

fn setup(s: AuthSettings) -> (AuthPolicy, FakeClock, Arc<MemoryStore>) {
    let clock = FakeClock::new(UnixTime(1_000_000));
    let store = Arc::new(MemoryStore::new());
    (
        AuthPolicy::new(s, store.clone(), Arc::new(clock.clone())),
        clock,
        store,
    )
}

fn at<'a>(login: &'a str, ip: &str, pw: &'a str) -> Attempt<'a> {
    Attempt {
        login,
        remote: Some(ip.parse::<IpAddr>().unwrap()),
        pwhash: pw,
    }
}

fn fail(p: &AuthPolicy, a: &Attempt<'_>) -> ReportOutcome {
    block_on(p.report(a, false, false))
}

fn allow(p: &AuthPolicy, a: &Attempt<'_>) -> Decision {
    block_on(p.allow(a))
}

#[test]
fn failures_escalate_from_tarpit_to_ban_and_ban_expires() {
    let (p, clock, store) = setup(AuthSettings::default());
    let pw = [
        "a001", "a002", "a003", "a004", "a005", "a006", "a007", "a008", "a009", "a010",
    ];
    let mut answers = Vec::new();
    for (i, pw) in pw.iter().enumerate() {
        // Different logins: the IP counter is what escalates.
        let login = format!("user{i}");
        let a = at(&login, "198.51.100.7", pw);
        answers.push(allow(&p, &a).answer);
        let out = fail(&p, &a);
        assert!(out.counted);
        if i < 9 {
            assert!(out.banned.is_empty());
        } else {
            assert_eq!(out.banned.len(), 1);
            assert_eq!(out.banned[0].0, "198.51.100.7/32");
        }
    }
    assert_eq!(answers[..3], [Answer::Allow; 3]);
    assert_eq!(answers[3], Answer::Tarpit(1));
    assert_eq!(answers[9], Answer::Tarpit(7));
    let d = allow(&p, &at("someone", "198.51.100.7", "ffff"));
    assert_eq!(d, Decision::new(Answer::Reject, "ban"));
    // A correct password from the banned IP is refused too (same allow call).
    assert_eq!(
        allow(&p, &at("user0", "198.51.100.7", "0000")).answer,
        Answer::Reject
    );
    // Another IP is unaffected.
    assert_eq!(
        allow(&p, &at("user0", "198.51.100.8", "0000")).answer,
        Answer::Allow
    );
    // The ban, not the decaying counter, decides: right after the hour the IP is clean.
    clock.advance(Duration::from_secs(3599));
    assert_eq!(
        allow(&p, &at("x", "198.51.100.7", "0")).answer,
        Answer::Reject
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        allow(&p, &at("x", "198.51.100.7", "0")).answer,
        Answer::Allow
    );
    // The record is kept: the next ban is twice as long.
    let rec = block_on(store.ban_get("198.51.100.7/32")).unwrap().unwrap();
    assert_eq!(rec.count, 1);
    for i in 0..10 {
        let login = format!("again{i}");
        fail(&p, &at(&login, "198.51.100.7", "beef"));
    }
    let rec = block_on(store.ban_get("198.51.100.7/32")).unwrap().unwrap();
    assert_eq!(rec.count, 2);
    assert_eq!(rec.until.since(clock.now()), 7200);
}

#[test]
fn stale_password_is_counted_once() {
    let (p, _clock, _) = setup(AuthSettings::default());
    let a = at("alice", "192.0.2.10", "02ce");
    for i in 0..50 {
        let out = fail(&p, &a);
        assert_eq!(out.counted, i == 0, "attempt {i}");
        assert_eq!(out.stale, i > 0);
    }
    assert_eq!(allow(&p, &a).answer, Answer::Allow);
    // A different wrong password does count.
    assert!(fail(&p, &at("alice", "192.0.2.10", "1234")).counted);
    // Without a pwhash (attribute not configured) every failure counts.
    for _ in 0..3 {
        assert!(fail(&p, &at("alice", "192.0.2.10", "")).counted);
    }
    assert_eq!(allow(&p, &a).answer, Answer::Tarpit(3));
}

#[test]
fn locked_account_is_refused_even_from_clean_ip() {
    let (p, clock, store) = setup(AuthSettings::default());
    let rec = AccountRecord {
        locked: Some(Lock {
            since: clock.now(),
            by: LockedBy::Admin,
            reason: "test".into(),
        }),
        held: Vec::new(),
    };
    block_on(store.account_put("carol@example.test", rec)).unwrap();
    let d = allow(&p, &at("Carol@Example.test", "192.0.2.1", "77aa"));
    assert_eq!(d, Decision::new(Answer::Reject, "locked"));
    assert_eq!(
        allow(&p, &at("dave@example.test", "192.0.2.1", "77aa")).answer,
        Answer::Allow
    );
    // Exempt IPs do not bypass a lock.
    let s = AuthSettings {
        exempt: vec!["192.0.2.0/24".parse().unwrap()],
        ..AuthSettings::default()
    };
    let p2 = p.with_settings(s);
    assert_eq!(
        allow(&p2, &at("carol@example.test", "192.0.2.1", "x")).answer,
        Answer::Reject
    );
}

#[test]
fn exempt_ips_are_never_counted() {
    let s = AuthSettings {
        exempt: vec!["10.0.0.0/8".parse().unwrap()],
        ..AuthSettings::default()
    };
    let (p, _, store) = setup(s);
    for i in 0..30 {
        let pw = format!("{i:04x}");
        assert!(!fail(&p, &at("bob", "10.1.2.3", &pw)).counted);
    }
    assert_eq!(allow(&p, &at("bob", "10.1.2.3", "0")).decided_by, "exempt");
    assert!(block_on(store.ban_list(10)).unwrap().is_empty());
}

#[test]
fn prefix_ban_covers_the_whole_network() {
    let s = AuthSettings {
        ban_after: 0,
        prefix_ban_after: 20,
        ..AuthSettings::default()
    };
    let (p, _, _) = setup(s);
    let mut banned = Vec::new();
    for i in 0..20 {
        let ip = format!("203.0.113.{}", i + 1);
        let login = format!("u{i}");
        banned.extend(fail(&p, &at(&login, &ip, "abcd")).banned);
    }
    assert_eq!(banned.len(), 1);
    assert_eq!(banned[0].0, "203.0.113.0/24");
    assert_eq!(
        allow(&p, &at("new", "203.0.113.200", "1")).answer,
        Answer::Reject
    );
    assert_eq!(
        allow(&p, &at("new", "203.0.114.1", "1")).answer,
        Answer::Allow
    );
    // IPv6 goes by /64.
    let p6 = setup(AuthSettings {
        ban_after: 0,
        prefix_ban_after: 3,
        ..AuthSettings::default()
    })
    .0;
    for i in 1..=3 {
        let ip = format!("2001:db8:1:2::{i}");
        fail(&p6, &at(&format!("v{i}"), &ip, "aa"));
    }
    assert_eq!(
        allow(&p6, &at("x", "2001:db8:1:2:ffff::9", "1")).answer,
        Answer::Reject
    );
    assert_eq!(
        allow(&p6, &at("x", "2001:db8:1:3::9", "1")).answer,
        Answer::Allow
    );
}

#[test]
fn login_counter_tarpits_strangers_but_not_known_ips() {
    let s = AuthSettings {
        login_tarpit_after: 5,
        ..AuthSettings::default()
    };
    let (p, _, _) = setup(s);
    // The owner logs in from home.
    block_on(p.report(&at("erin", "192.0.2.50", "good"), true, false));
    // A distributed attack: 5 IPs, one failure each.
    for i in 1..=5 {
        let ip = format!("198.18.{i}.1");
        fail(&p, &at("erin", &ip, &format!("{i:04}")));
    }
    let stranger = allow(&p, &at("erin", "198.18.99.1", "x"));
    assert_eq!(stranger, Decision::new(Answer::Tarpit(1), "login"));
    assert_eq!(
        allow(&p, &at("erin", "192.0.2.50", "good")).answer,
        Answer::Allow
    );
}

#[test]
fn success_clears_the_login_ip_counter() {
    let (p, _, _) = setup(AuthSettings::default());
    for pw in ["0001", "0002", "0003"] {
        fail(&p, &at("frank", "192.0.2.60", pw));
    }
    assert_eq!(allow(&p, &at("frank", "192.0.2.60", "ok")).decided_by, "ip");
    block_on(p.report(&at("frank", "192.0.2.60", "ok"), true, false));
    // The per-IP count stays (3 > tarpit_after), but the pair is clean.
    let d = allow(&p, &at("frank", "192.0.2.60", "ok"));
    assert_eq!(d.answer, Answer::Tarpit(1));
    assert_eq!(d.decided_by, "ip");
}

#[test]
fn policy_rejects_are_not_counted() {
    let (p, _, _) = setup(AuthSettings::default());
    for _ in 0..20 {
        let out = block_on(p.report(&at("g", "192.0.2.70", "1111"), false, true));
        assert!(!out.counted);
    }
    assert_eq!(allow(&p, &at("g", "192.0.2.70", "1")).answer, Answer::Allow);
}

#[test]
fn nopassword_incident_raises_alerts() {
    let s = AuthSettings {
        alert_new_logins: 5,
        alert_logins_per_ip: 4,
        alert_ips_per_login: 3,
        window: 600,
        ..AuthSettings::default()
    };
    let (p, clock, _) = setup(s);
    // Warm-up: first successes right after start are not "new" yet.
    let out = block_on(p.report(&at("known", "192.0.2.1", "x"), true, false));
    assert!(out.alerts.is_empty());
    clock.advance(Duration::from_secs(601));
    // One attacker IP logs in as many names (static nopassword passdb lets it).
    let mut alerts = Vec::new();
    for i in 0..6 {
        let login = format!("nosuchuser{i}");
        alerts.extend(block_on(p.report(&at(&login, "198.51.100.66", "0"), true, false)).alerts);
    }
    let kinds: Vec<_> = alerts.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&AlertKind::LoginsPerIp), "{kinds:?}");
    assert!(kinds.contains(&AlertKind::NewLogins), "{kinds:?}");
    // Raised once per window, not once per login.
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == AlertKind::LoginsPerIp)
            .count(),
        1
    );
    // One login from many IPs.
    let mut alerts = Vec::new();
    for i in 1..=3 {
        let ip = format!("203.0.113.{i}");
        alerts.extend(block_on(p.report(&at("known", &ip, "x"), true, false)).alerts);
    }
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::IpsPerLogin);
    assert!(alerts[0].to_string().contains("known"));
}

#[test]
fn store_errors_fail_open() {
    #[derive(Debug)]
    struct Broken;
    impl crate::store::Store for Broken {
        fn greylist_touch<'a>(
            &'a self,
            _: &'a crate::store::GreylistKey,
            _: UnixTime,
            _: crate::store::GreylistTimes,
        ) -> crate::store::StoreFuture<'a, crate::store::TouchOutcome> {
            unreachable!()
        }
        fn greylist_get<'a>(
            &'a self,
            _: &'a crate::store::GreylistKey,
        ) -> crate::store::StoreFuture<'a, Option<crate::store::TripletRecord>> {
            unreachable!()
        }
        fn greylist_put<'a>(
            &'a self,
            _: &'a crate::store::GreylistKey,
            _: crate::store::TripletRecord,
        ) -> crate::store::StoreFuture<'a, ()> {
            unreachable!()
        }
        fn greylist_remove<'a>(
            &'a self,
            _: &'a crate::store::GreylistKey,
        ) -> crate::store::StoreFuture<'a, bool> {
            unreachable!()
        }
        fn greylist_list(
            &self,
            _: usize,
        ) -> crate::store::StoreFuture<'_, Vec<crate::store::GreylistEntry>> {
            unreachable!()
        }
        fn awl_get(
            &self,
            _: IpAddr,
        ) -> crate::store::StoreFuture<'_, Option<crate::store::AwlRecord>> {
            unreachable!()
        }
        fn awl_bump(
            &self,
            _: IpAddr,
            _: UnixTime,
            _: u64,
        ) -> crate::store::StoreFuture<'_, crate::store::AwlRecord> {
            unreachable!()
        }
        fn awl_put(
            &self,
            _: IpAddr,
            _: crate::store::AwlRecord,
        ) -> crate::store::StoreFuture<'_, ()> {
            unreachable!()
        }
        fn awl_remove(&self, _: IpAddr) -> crate::store::StoreFuture<'_, bool> {
            unreachable!()
        }
        fn awl_list(&self, _: usize) -> crate::store::StoreFuture<'_, Vec<crate::store::AwlEntry>> {
            unreachable!()
        }
        fn expire(
            &self,
            _: UnixTime,
            _: crate::store::GreylistTimes,
        ) -> crate::store::StoreFuture<'_, crate::store::ExpireStats> {
            unreachable!()
        }
        fn counts(&self) -> crate::store::StoreFuture<'_, crate::store::StoreCounts> {
            unreachable!()
        }
        fn flush(&self) -> crate::store::StoreFuture<'_, ()> {
            unreachable!()
        }
    }
    let clock = FakeClock::new(UnixTime(1));
    let p = AuthPolicy::new(AuthSettings::default(), Arc::new(Broken), Arc::new(clock));
    let d = allow(&p, &at("x", "192.0.2.1", "1"));
    assert_eq!(d, Decision::new(Answer::Allow, "store_error"));
    let mut errs = 0;
    for i in 0..10 {
        let login = format!("l{i}");
        errs += usize::from(fail(&p, &at(&login, "192.0.2.1", "1")).store_error);
    }
    assert_eq!(errs, 1, "only the ban write fails");
}

#[test]
fn memory_is_bounded_and_state_expires() {
    let s = AuthSettings {
        max_tracked: 1000,
        window: 60,
        ..AuthSettings::default()
    };
    let (p, clock, _) = setup(s);
    for i in 0..20_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let login = format!("user{i}");
        let a = Attempt {
            login: &login,
            remote: Some(ip),
            pwhash: "abcd",
        };
        fail(&p, &a);
    }
    let t = p.tracked();
    let cap = 1000usize.div_ceil(window::SHARDS) * window::SHARDS;
    assert!(t.ips <= cap && t.logins <= cap && t.pairs <= cap, "{t:?}");
    assert!(t.ips > 0);
    clock.advance(Duration::from_secs(121));
    assert!(p.expire() > 0);
    assert_eq!(p.tracked(), Tracked::default());
}
