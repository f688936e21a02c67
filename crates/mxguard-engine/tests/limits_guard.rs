//! The limits step through `Policy::decide` with a memory store and a fake clock: bytes
//! checked at RCPT and END-OF-MESSAGE, per-recipient-domain charging, sender/login mismatch
//! locking with a notifier, and failing open when the store cannot do limits.

#![allow(clippy::unwrap_used)]

mod common;

use common::block_on;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mxguard_engine::account::{ContainmentSettings, Notifier, SenderRule};
use mxguard_engine::limits::{Counted, KeyPart, Limit, LimitSettings, Window};
use mxguard_engine::store::{
    AwlEntry, AwlRecord, ExpireStats, GreylistEntry, GreylistKey, GreylistTimes, StoreCounts,
    StoreError, StoreFuture, TouchOutcome, TripletRecord,
};
use mxguard_engine::{
    Action, FakeClock, MemoryStore, Policy, PolicySettings, Request, Stage, Store, UnixTime,
};

fn limit(name: &str, key: Vec<KeyPart>, counted: Counted, w: Window) -> Limit {
    Limit {
        name: name.into(),
        key,
        counted,
        windows: vec![w],
        overrides: HashMap::new(),
        action: Action::Defer("over %n".into()),
        signal: true,
    }
}

fn policy(limits: Vec<Limit>, containment: Option<ContainmentSettings>) -> Policy {
    policy_on(limits, containment, Arc::new(MemoryStore::new()))
}

fn policy_on(
    limits: Vec<Limit>,
    containment: Option<ContainmentSettings>,
    store: Arc<dyn Store>,
) -> Policy {
    Policy::new(
        PolicySettings {
            limits: LimitSettings { limits },
            containment,
            ..Default::default()
        },
        store,
        Arc::new(FakeClock::new(UnixTime(1_000_000))),
    )
}

fn rcpt(user: &str, sender: &str, to: &str, instance: &str, size: u64) -> Request {
    let mut r = Request::rcpt("192.0.2.1".parse().unwrap(), sender, to);
    r.sasl_username = (!user.is_empty()).then(|| user.to_owned());
    r.instance = instance.into();
    r.size = size;
    r
}

fn eom(mut r: Request, count: u32, size: u64) -> Request {
    r.stage = Stage::EndOfMessage;
    r.recipient_count = count;
    r.size = size;
    r.queue_id = format!("Q{}", r.instance);
    if count > 1 {
        r.recipient.clear();
    }
    r
}

#[test]
fn bytes_are_checked_with_size_and_charged_with_the_real_size() {
    block_on(async {
        let p = policy(
            vec![limit(
                "bytes",
                vec![KeyPart::SenderDomain],
                Counted::Bytes,
                Window::new(10_000, 3600),
            )],
            None,
        );
        let r = rcpt("", "a@ex.org", "x@d.test", "m1", 6000);
        assert_eq!(p.decide(&r).await.action, Action::Dunno);
        assert_eq!(p.decide(&eom(r, 1, 6000)).await.action, Action::Dunno);
        // 4000 bytes left: SIZE=6000 is refused at RCPT.
        let r = rcpt("", "b@EX.org", "x@d.test", "m2", 6000);
        let v = p.decide(&r).await;
        assert_eq!(v.action, Action::Defer("over bytes".into()));
        assert_eq!(v.decided_by, "limit");
        // Without SIZE= the RCPT passes, the real size is refused at END-OF-MESSAGE, uncharged.
        let r = rcpt("", "b@ex.org", "x@d.test", "m3", 0);
        assert_eq!(p.decide(&r).await.action, Action::Dunno);
        assert!(matches!(
            p.decide(&eom(r, 1, 6000)).await.action,
            Action::Defer(_)
        ));
        let r = rcpt("", "b@ex.org", "x@d.test", "m4", 4000);
        assert_eq!(p.decide(&r).await.action, Action::Dunno);
    });
}

#[test]
fn recipient_domain_limits_charge_each_domain() {
    block_on(async {
        let p = policy(
            vec![limit(
                "per-domain",
                vec![KeyPart::RecipientDomain],
                Counted::Messages,
                Window::new(1, 3600),
            )],
            None,
        );
        let a = rcpt("", "s@ex.org", "a@x.test", "m1", 0);
        let b = rcpt("", "s@ex.org", "b@y.test", "m1", 0);
        assert_eq!(p.decide(&a).await.action, Action::Dunno);
        assert_eq!(p.decide(&b).await.action, Action::Dunno);
        assert_eq!(p.decide(&eom(b, 2, 100)).await.action, Action::Dunno);
        let c = rcpt("", "s@ex.org", "c@x.test", "m2", 0);
        assert!(matches!(p.decide(&c).await.action, Action::Defer(_)));
        let d = rcpt("", "s@ex.org", "d@y.test", "m3", 0);
        assert!(matches!(p.decide(&d).await.action, Action::Defer(_)));
        let e = rcpt("", "s@ex.org", "e@z.test", "m4", 0);
        assert_eq!(p.decide(&e).await.action, Action::Dunno);
    });
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(String, u32)>>);

impl Notifier for Recorder {
    fn account_locked(&self, user: &str, score: u32, _reasons: &[String]) {
        self.0.lock().unwrap().push((user.to_owned(), score));
    }
}

#[test]
fn sender_mismatch_locks_the_login_and_notifies() {
    block_on(async {
        let rec = Arc::new(Recorder::default());
        let c = ContainmentSettings {
            sender_rule: SenderRule::SameDomain,
            points_sender_mismatch: 50,
            notifier: Some(rec.clone()),
            ..Default::default()
        };
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let p = policy_on(vec![], Some(c), store.clone());
        let own = rcpt("alice@ex.org", "alice@ex.org", "x@d.test", "m1", 0);
        assert_eq!(p.decide(&own).await.action, Action::Dunno);
        let spoof = rcpt("alice@ex.org", "ceo@bank.test", "x@d.test", "m2", 0);
        assert_eq!(p.decide(&spoof).await.action, Action::Dunno);
        let spoof2 = rcpt("alice@ex.org", "ceo@bank.test", "y@d.test", "m2", 0);
        let v = p.decide(&spoof2).await;
        assert!(matches!(v.action, Action::Hold(_)));
        assert_eq!(v.decided_by, "account_locked");
        assert_eq!(
            *rec.0.lock().unwrap(),
            vec![("alice@ex.org".to_owned(), 100)]
        );
        assert!(
            store
                .account_get("alice@ex.org")
                .await
                .unwrap()
                .unwrap()
                .is_locked()
        );
        // Even mail with her own sender is now held; another login is not.
        assert!(matches!(p.decide(&own).await.action, Action::Hold(_)));
        let bob = rcpt("bob@ex.org", "bob@ex.org", "x@d.test", "m3", 0);
        assert_eq!(p.decide(&bob).await.action, Action::Dunno);
        p.guard().unlock("ALICE@ex.org").await.unwrap();
        assert_eq!(p.decide(&own).await.action, Action::Dunno);
    });
}

/// A store that only does greylisting: limits and accounts use the trait's refusing defaults.
#[derive(Debug, Default)]
struct GreylistOnly(MemoryStore);

impl Store for GreylistOnly {
    fn greylist_touch<'a>(
        &'a self,
        k: &'a GreylistKey,
        n: UnixTime,
        t: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome> {
        self.0.greylist_touch(k, n, t)
    }
    fn greylist_get<'a>(&'a self, k: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>> {
        self.0.greylist_get(k)
    }
    fn greylist_put<'a>(&'a self, k: &'a GreylistKey, r: TripletRecord) -> StoreFuture<'a, ()> {
        self.0.greylist_put(k, r)
    }
    fn greylist_remove<'a>(&'a self, k: &'a GreylistKey) -> StoreFuture<'a, bool> {
        self.0.greylist_remove(k)
    }
    fn greylist_list(&self, l: usize) -> StoreFuture<'_, Vec<GreylistEntry>> {
        self.0.greylist_list(l)
    }
    fn awl_get(&self, c: std::net::IpAddr) -> StoreFuture<'_, Option<AwlRecord>> {
        self.0.awl_get(c)
    }
    fn awl_bump(&self, c: std::net::IpAddr, n: UnixTime, m: u64) -> StoreFuture<'_, AwlRecord> {
        self.0.awl_bump(c, n, m)
    }
    fn awl_put(&self, c: std::net::IpAddr, r: AwlRecord) -> StoreFuture<'_, ()> {
        self.0.awl_put(c, r)
    }
    fn awl_remove(&self, c: std::net::IpAddr) -> StoreFuture<'_, bool> {
        self.0.awl_remove(c)
    }
    fn awl_list(&self, l: usize) -> StoreFuture<'_, Vec<AwlEntry>> {
        self.0.awl_list(l)
    }
    fn expire(&self, n: UnixTime, t: GreylistTimes) -> StoreFuture<'_, ExpireStats> {
        self.0.expire(n, t)
    }
    fn counts(&self) -> StoreFuture<'_, StoreCounts> {
        self.0.counts()
    }
    fn flush(&self) -> StoreFuture<'_, ()> {
        self.0.flush()
    }
}

#[test]
fn a_store_without_limits_fails_open() {
    block_on(async {
        let store: Arc<dyn Store> = Arc::new(GreylistOnly::default());
        let err = store.limit_get("x").await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)));
        let p = policy_on(
            vec![limit(
                "u",
                vec![KeyPart::SaslUsername],
                Counted::Messages,
                Window::new(1, 60),
            )],
            None,
            store,
        );
        let r = rcpt("alice", "a@ex.org", "x@d.test", "m1", 0);
        let v = p.decide(&r).await;
        assert_eq!(v.action, Action::Dunno);
        assert!(v.is_store_error());
    });
}
