//! Greylisting lifecycle through `Policy::decide` on a fake clock and the in-memory store:
//! postgrey 1.37's behaviour request by request.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::block_on;
use mxguard_engine::greylist::GreylistSettings;
use mxguard_engine::store::{
    AwlEntry, AwlRecord, ExpireStats, GreylistEntry, GreylistKey, GreylistTimes, MemoryStore,
    Store, StoreCounts, StoreError, StoreFuture, TouchOutcome, TripletRecord,
};
use mxguard_engine::{
    Action, FakeClock, ListEntry, Policy, PolicySettings, Request, Stage, StaticLists, UnixTime,
    Verdict,
};

const T0: u64 = 1_790_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn settings() -> GreylistSettings {
    GreylistSettings {
        greylist_text: "Greylisted for %s seconds (%r)".to_owned(),
        hostname: "mx.test".to_owned(),
        ..GreylistSettings::default()
    }
}

struct World {
    clock: FakeClock,
    store: Arc<MemoryStore>,
    policy: Policy,
}

fn world_with(gl: GreylistSettings, lists: StaticLists) -> World {
    let clock = FakeClock::new(UnixTime(T0));
    let store = Arc::new(MemoryStore::new());
    let policy = Policy::new(
        PolicySettings {
            lists,
            greylist: Some(gl),
            ..Default::default()
        },
        store.clone(),
        Arc::new(clock.clone()),
    );
    World {
        clock,
        store,
        policy,
    }
}

fn world() -> World {
    world_with(settings(), StaticLists::default())
}

impl World {
    fn ask(&self, req: &Request) -> Verdict {
        block_on(self.policy.decide(req))
    }
    fn wait(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn rcpt(client: &str, sender: &str, recipient: &str, instance: &str) -> Request {
    let mut r = Request::rcpt(ip(client), sender, recipient);
    r.instance = instance.to_owned();
    r
}

fn deferred_secs(v: &Verdict) -> u64 {
    match &v.action {
        Action::DeferIfPermit(t) => {
            assert!(t.starts_with("4.2.0 Greylisted for "), "text: {t}");
            t.trim_start_matches("4.2.0 Greylisted for ")
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        }
        other => panic!("expected DEFER_IF_PERMIT, got {other:?}"),
    }
}

#[test]
fn first_defer_early_retry_pass_then_dunno() {
    let w = world();
    let r = rcpt(
        "192.0.2.7",
        "alice@sender.example",
        "bob@rcpt.example",
        "i1",
    );
    let v = w.ask(&r);
    assert_eq!(v.decided_by, "greylist");
    assert_eq!(deferred_secs(&v), 300);
    assert_eq!(
        v.action,
        Action::DeferIfPermit("4.2.0 Greylisted for 300 seconds (rcpt.example)".into())
    );

    w.wait(100);
    assert_eq!(deferred_secs(&w.ask(&r)), 200);
    w.wait(150);
    assert_eq!(deferred_secs(&w.ask(&r)), 50);
    w.wait(49);
    assert_eq!(deferred_secs(&w.ask(&r)), 1);

    w.wait(1);
    let v = w.ask(&rcpt(
        "192.0.2.7",
        "alice@sender.example",
        "bob@rcpt.example",
        "i2",
    ));
    match &v.action {
        Action::Prepend(h) => {
            assert!(
                h.starts_with("X-Greylist: delayed 300 seconds by mxguard at mx.test; "),
                "{h}"
            );
            assert!(h.ends_with(" UTC"), "{h}");
        }
        other => panic!("expected PREPEND, got {other:?}"),
    }
    // Later messages of the same triplet pass without a header.
    w.wait(3600);
    let v = w.ask(&rcpt(
        "192.0.2.7",
        "alice@sender.example",
        "bob@rcpt.example",
        "i3",
    ));
    assert_eq!(v, Verdict::new(Action::Dunno, "greylist"));
}

#[test]
fn header_only_once_per_message() {
    let w = world();
    let a = rcpt("192.0.2.7", "alice@sender.example", "a@rcpt.example", "");
    let b = rcpt("192.0.2.7", "alice@sender.example", "b@rcpt.example", "");
    assert_eq!(deferred_secs(&w.ask(&a)), 300);
    assert_eq!(deferred_secs(&w.ask(&b)), 300);
    w.wait(400);
    // The retried message has two recipients, both passing for the first time.
    let mut a2 = a.clone();
    a2.instance = "msg-1".into();
    let mut b2 = b.clone();
    b2.instance = "msg-1".into();
    assert!(matches!(w.ask(&a2).action, Action::Prepend(_)));
    assert_eq!(w.ask(&b2), Verdict::new(Action::Dunno, "greylist"));
}

#[test]
fn expired_retry_window_restarts_greylisting() {
    let w = world();
    let r = rcpt("192.0.2.7", "alice@sender.example", "bob@rcpt.example", "");
    assert_eq!(deferred_secs(&w.ask(&r)), 300);
    // First retry only after the 2-day retry window: greylisting starts again.
    w.wait(2 * 86_400 + 1);
    assert_eq!(deferred_secs(&w.ask(&r)), 300);
    w.wait(300);
    assert!(matches!(w.ask(&r).action, Action::Prepend(_)));
}

#[test]
fn passed_triplet_survives_retry_window_but_not_max_age() {
    let w = world();
    let r = rcpt("192.0.2.7", "alice@sender.example", "bob@rcpt.example", "");
    w.ask(&r);
    w.wait(300);
    assert!(matches!(w.ask(&r).action, Action::Prepend(_)));
    // A passed triplet is no longer subject to the retry window.
    w.wait(10 * 86_400);
    assert_eq!(w.ask(&r).action, Action::Dunno);
    // Unseen for more than max_age (35 days): forgotten.
    w.wait(35 * 86_400 + 1);
    assert_eq!(deferred_secs(&w.ask(&r)), 300);
}

#[test]
fn client_network_and_sender_normalisation_share_a_triplet() {
    let w = world();
    w.ask(&rcpt(
        "192.0.2.7",
        "bounce-1234@lists.example",
        "Bob@Rcpt.Example",
        "",
    ));
    w.wait(300);
    // Another host of the same /24, another bounce number, other case: same triplet.
    let v = w.ask(&rcpt(
        "192.0.2.200",
        "bounce-99@lists.example",
        "bob@rcpt.example",
        "",
    ));
    assert!(matches!(v.action, Action::Prepend(_)), "{v:?}");
    // Another /24 is a new triplet.
    let v = w.ask(&rcpt(
        "192.0.3.7",
        "bounce-5@lists.example",
        "bob@rcpt.example",
        "",
    ));
    assert_eq!(deferred_secs(&v), 300);
    // IPv6 /64.
    w.ask(&rcpt(
        "2001:db8:0:1::1",
        "x@y.example",
        "bob@rcpt.example",
        "",
    ));
    w.wait(300);
    let v = w.ask(&rcpt(
        "2001:db8:0:1:ffff::2",
        "x@y.example",
        "bob@rcpt.example",
        "",
    ));
    assert!(matches!(v.action, Action::Prepend(_)), "{v:?}");
}

/// Lets one triplet of `client` pass for the first time (new recipient each call).
fn pass_once(w: &World, client: &str, n: u32) -> Verdict {
    let r = rcpt(
        client,
        "s@sender.example",
        &format!("r{n}@rcpt.example"),
        "",
    );
    assert_eq!(deferred_secs(&w.ask(&r)), 300);
    w.wait(300);
    w.ask(&r)
}

#[test]
fn auto_whitelist_after_five_deliveries_counted_hourly() {
    let w = world();
    let c = "198.51.100.9";
    // Two first passes within the same hour count once.
    pass_once(&w, c, 0);
    pass_once(&w, c, 1);
    let rec = block_on(w.store.awl_get(ip(c))).unwrap().unwrap();
    assert_eq!(rec.count, 1);
    for n in 2..6 {
        w.wait(3600);
        pass_once(&w, c, n);
    }
    let rec = block_on(w.store.awl_get(ip(c))).unwrap().unwrap();
    assert_eq!(rec.count, 5);
    // Now a brand-new triplet from this client passes at once.
    let v = w.ask(&rcpt(c, "new@other.example", "x@rcpt.example", ""));
    assert_eq!(v, Verdict::new(Action::Dunno, "greylist_awl"));
    // The AWL is per address, not per network.
    let v = w.ask(&rcpt(
        "198.51.100.10",
        "new@other.example",
        "x@rcpt.example",
        "",
    ));
    assert_eq!(deferred_secs(&v), 300);
    // Refresh at most hourly: within the hour the record does not move.
    let before = block_on(w.store.awl_get(ip(c))).unwrap().unwrap();
    w.wait(10);
    w.ask(&rcpt(c, "n2@other.example", "x@rcpt.example", ""));
    assert_eq!(block_on(w.store.awl_get(ip(c))).unwrap().unwrap(), before);
    w.wait(3600);
    w.ask(&rcpt(c, "n3@other.example", "x@rcpt.example", ""));
    let after = block_on(w.store.awl_get(ip(c))).unwrap().unwrap();
    assert_eq!(after.last, w.policy.now());
    // Unseen for more than max_age: the client has to earn its place again.
    w.wait(35 * 86_400 + 1);
    let v = w.ask(&rcpt(c, "n4@other.example", "x@rcpt.example", ""));
    assert_eq!(deferred_secs(&v), 300);
}

#[test]
fn auto_whitelist_off_with_zero() {
    let w = world_with(
        GreylistSettings {
            auto_whitelist_clients: 0,
            ..settings()
        },
        StaticLists::default(),
    );
    for n in 0..7 {
        pass_once(&w, "198.51.100.9", n);
        w.wait(3600);
    }
    assert_eq!(block_on(w.store.awl_get(ip("198.51.100.9"))).unwrap(), None);
}

#[test]
fn whitelisted_clients_and_recipients_pass() {
    let mut gl = settings();
    gl.whitelist_clients = mxguard_engine::ClientWhitelist::parse(
        "clients",
        "bigmail.example\n/^out\\d+\\.mailer\\.example$/\n203.0.113.0/24\n",
    )
    .unwrap();
    gl.whitelist_recipients =
        mxguard_engine::RecipientWhitelist::parse("rcpts", "postmaster@\n").unwrap();
    let w = world_with(gl, StaticLists::default());
    let wl = Verdict::new(Action::Dunno, "greylist_whitelist");

    let mut r = rcpt("192.0.2.1", "a@b.example", "c@d.example", "");
    r.client_name = Some("mx3.BigMail.example".into());
    assert_eq!(w.ask(&r), wl);
    r.client_name = Some("out17.mailer.example".into());
    assert_eq!(w.ask(&r), wl);
    r.client_name = None;
    assert_eq!(deferred_secs(&w.ask(&r)), 300);
    assert_eq!(
        w.ask(&rcpt("203.0.113.77", "a@b.example", "c@d.example", "")),
        wl
    );
    assert_eq!(
        w.ask(&rcpt(
            "192.0.2.1",
            "a@b.example",
            "postmaster+x@d.example",
            ""
        )),
        wl
    );
    // Whitelisted requests leave no state behind.
    let counts = block_on(w.store.counts()).unwrap();
    assert_eq!(
        counts,
        StoreCounts {
            triplets: 1,
            clients: 0
        }
    );
}

#[test]
fn only_rcpt_stage_is_greylisted() {
    let w = world();
    for stage in [
        Stage::Connect,
        Stage::Helo,
        Stage::Mail,
        Stage::Data,
        Stage::EndOfMessage,
    ] {
        let mut r = rcpt("192.0.2.1", "a@b.example", "c@d.example", "");
        r.stage = stage;
        assert_eq!(w.ask(&r), Verdict::dunno(), "{stage:?}");
    }
    // RCPT without a recipient cannot form a triplet.
    assert_eq!(
        w.ask(&rcpt("192.0.2.1", "a@b.example", "", "")),
        Verdict::dunno()
    );
    assert_eq!(block_on(w.store.counts()).unwrap().triplets, 0);
}

#[test]
fn greylisting_disabled_means_dunno() {
    let store = Arc::new(MemoryStore::new());
    let p = Policy::new(
        PolicySettings::default(),
        store,
        Arc::new(FakeClock::new(UnixTime(T0))),
    );
    let v = block_on(p.decide(&rcpt("192.0.2.1", "a@b.example", "c@d.example", "")));
    assert_eq!(v, Verdict::dunno());
}

#[test]
fn static_lists_come_first() {
    let allow = vec![ListEntry::parse("192.0.2.5").unwrap()];
    let deny = vec![
        ListEntry::parse("192.0.2.0/24").unwrap(),
        ListEntry::parse("sender:@spam.example").unwrap(),
    ];
    let w = world_with(
        settings(),
        StaticLists::new(allow, deny, "5.7.1 go away".into()),
    );
    assert_eq!(
        w.ask(&rcpt("192.0.2.5", "a@b.example", "c@d.example", "")),
        Verdict::new(Action::Dunno, "static_allow")
    );
    assert_eq!(
        w.ask(&rcpt("192.0.2.6", "a@b.example", "c@d.example", "")),
        Verdict::new(Action::Reject("5.7.1 go away".into()), "static_deny")
    );
    assert_eq!(
        w.ask(&rcpt("198.51.100.1", "x@SPAM.example", "c@d.example", ""))
            .decided_by,
        "static_deny"
    );
    assert_eq!(
        deferred_secs(&w.ask(&rcpt("198.51.100.1", "x@ok.example", "c@d.example", ""))),
        300
    );
}

/// A store whose every operation fails, to check that the policy fails open.
#[derive(Debug)]
struct BrokenStore;

fn broken<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Err(StoreError::Unavailable(
        "down".into(),
    ))))
}

impl Store for BrokenStore {
    fn greylist_touch<'a>(
        &'a self,
        _: &'a GreylistKey,
        _: UnixTime,
        _: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome> {
        broken()
    }
    fn greylist_get<'a>(&'a self, _: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>> {
        broken()
    }
    fn greylist_put<'a>(&'a self, _: &'a GreylistKey, _: TripletRecord) -> StoreFuture<'a, ()> {
        broken()
    }
    fn greylist_remove<'a>(&'a self, _: &'a GreylistKey) -> StoreFuture<'a, bool> {
        broken()
    }
    fn greylist_list(&self, _: usize) -> StoreFuture<'_, Vec<GreylistEntry>> {
        broken()
    }
    fn awl_get(&self, _: IpAddr) -> StoreFuture<'_, Option<AwlRecord>> {
        broken()
    }
    fn awl_bump(&self, _: IpAddr, _: UnixTime, _: u64) -> StoreFuture<'_, AwlRecord> {
        broken()
    }
    fn awl_put(&self, _: IpAddr, _: AwlRecord) -> StoreFuture<'_, ()> {
        broken()
    }
    fn awl_remove(&self, _: IpAddr) -> StoreFuture<'_, bool> {
        broken()
    }
    fn awl_list(&self, _: usize) -> StoreFuture<'_, Vec<AwlEntry>> {
        broken()
    }
    fn expire(&self, _: UnixTime, _: GreylistTimes) -> StoreFuture<'_, ExpireStats> {
        broken()
    }
    fn counts(&self) -> StoreFuture<'_, StoreCounts> {
        broken()
    }
    fn flush(&self) -> StoreFuture<'_, ()> {
        broken()
    }
}

#[test]
fn store_errors_fail_open() {
    let p = Policy::new(
        PolicySettings {
            lists: StaticLists::default(),
            greylist: Some(settings()),
            ..Default::default()
        },
        Arc::new(BrokenStore),
        Arc::new(FakeClock::new(UnixTime(T0))),
    );
    let v = block_on(p.decide(&rcpt("192.0.2.1", "a@b.example", "c@d.example", "")));
    assert_eq!(v.action, Action::Dunno);
    assert!(v.is_store_error());
    // With the AWL off the failure comes from the triplet update instead.
    let p = Policy::new(
        PolicySettings {
            lists: StaticLists::default(),
            greylist: Some(GreylistSettings {
                auto_whitelist_clients: 0,
                ..settings()
            }),
            ..Default::default()
        },
        Arc::new(BrokenStore),
        Arc::new(FakeClock::new(UnixTime(T0))),
    );
    let v = block_on(p.decide(&rcpt("192.0.2.1", "a@b.example", "c@d.example", "")));
    assert!(v.is_store_error());
}

#[test]
fn expire_removes_what_postgrey_cleanup_removes() {
    let w = world();
    let times = settings().times();
    // Never retried: removable after the retry window.
    w.ask(&rcpt("192.0.2.1", "a@b.example", "never@d.example", ""));
    // Passed: kept until max_age.
    let r = rcpt("192.0.2.1", "a@b.example", "passed@d.example", "");
    w.ask(&r);
    w.wait(300);
    w.ask(&r);
    w.wait(2 * 86_400 + 1);
    let stats = block_on(w.store.expire(w.policy.now(), times)).unwrap();
    assert_eq!(stats.triplets_removed, 1);
    assert_eq!(block_on(w.store.counts()).unwrap().triplets, 1);
    w.wait(35 * 86_400);
    let stats = block_on(w.store.expire(w.policy.now(), times)).unwrap();
    assert_eq!(stats.triplets_removed, 1);
    assert_eq!(stats.clients_removed, 1);
    assert_eq!(block_on(w.store.counts()).unwrap(), StoreCounts::default());
}

#[test]
fn no_header_when_disabled() {
    let w = world_with(
        GreylistSettings {
            header: false,
            ..settings()
        },
        StaticLists::default(),
    );
    let r = rcpt("192.0.2.7", "alice@sender.example", "bob@rcpt.example", "m");
    assert_eq!(deferred_secs(&w.ask(&r)), 300);
    w.wait(300);
    assert_eq!(w.ask(&r), Verdict::new(Action::Dunno, "greylist"));
    // The pass still counted towards the client's auto-whitelist.
    assert_eq!(
        block_on(w.store.awl_get(ip("192.0.2.7")))
            .unwrap()
            .unwrap()
            .count,
        1
    );
}
