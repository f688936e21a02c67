//! Scripted policy sessions against the daemon on 127.0.0.1:0 with a fake clock: the
//! greylist lifecycle (postgrey 1.37 semantics), whitelists, static lists, many requests per
//! connection, the unix listener and the store fail-open path.

mod common;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::{Client, start, start_full, start_with};
use mxguard_engine::UnixTime;
use mxguard_engine::store::{
    AwlEntry, AwlRecord, ExpireStats, GreylistEntry, GreylistKey, GreylistTimes, Store,
    StoreCounts, StoreError, StoreFuture, TouchOutcome, TripletRecord,
};
use mxguard_proto::PolicyRequest;

const GL: &str = "[greylist]\ndelay = \"5m\"\nretry_window = \"2d\"\nmax_age = \"35d\"\n\
text = \"Greylisted for %s seconds\"\nhostname = \"mx.test\"\n";

#[tokio::test]
async fn greylist_lifecycle_defer_retry_pass_prepend_once() {
    let d = start(GL).await;
    let mut c = d.connect().await;
    let (ip, from) = ("192.0.2.10", "alice@sender.example");
    // First sight: deferred for the whole delay.
    assert_eq!(
        c.rcpt(ip, from, "bob@example.test", "m1").await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );
    assert_eq!(
        c.rcpt(ip, from, "carol@example.test", "m1").await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );
    // Early retry: still deferred, with the time left.
    d.advance(100);
    assert_eq!(
        c.rcpt(ip, from, "bob@example.test", "m2").await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 200 seconds"
    );
    // After the delay: passes, X-Greylist once per message (instance m3).
    d.advance(250);
    let first = c.rcpt(ip, from, "bob@example.test", "m3").await;
    assert!(
        first.starts_with("PREPEND X-Greylist: delayed 350 seconds by mxguard at mx.test; "),
        "{first}"
    );
    assert_eq!(c.rcpt(ip, from, "carol@example.test", "m3").await, "DUNNO");
    // Later messages on the passed triplet: no opinion, no header.
    d.advance(60);
    assert_eq!(c.rcpt(ip, from, "bob@example.test", "m4").await, "DUNNO");
    // Same /24 network, same sender: the triplet is the network's.
    assert_eq!(
        c.rcpt("192.0.2.99", from, "bob@example.test", "m5").await,
        "DUNNO"
    );
    // Another network is greylisted on its own.
    assert_eq!(
        c.rcpt("198.51.100.7", from, "bob@example.test", "m6").await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );
    d.stop().await;
}

#[tokio::test]
async fn retry_after_the_retry_window_starts_over() {
    let d = start(GL).await;
    let mut c = d.connect().await;
    let args = ("192.0.2.20", "late@sender.example", "bob@example.test");
    assert!(
        c.rcpt(args.0, args.1, args.2, "a")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    // Never retried within 2 days: the first retry after that is a new first sight.
    d.advance(2 * 86_400 + 60);
    assert_eq!(
        c.rcpt(args.0, args.1, args.2, "b").await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );
    d.advance(301);
    assert!(
        c.rcpt(args.0, args.1, args.2, "c")
            .await
            .starts_with("PREPEND X-Greylist: delayed 301 seconds")
    );
    d.stop().await;
}

#[tokio::test]
async fn client_auto_whitelist_after_n_passes() {
    let d = start(&format!("{GL}auto_whitelist_clients = 2\n")).await;
    let mut c = d.connect().await;
    let ip = "203.0.113.5";
    // Pass 1.
    assert!(
        c.rcpt(ip, "a@s.example", "u1@example.test", "i1")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    d.advance(400);
    assert!(
        c.rcpt(ip, "a@s.example", "u1@example.test", "i2")
            .await
            .starts_with("PREPEND")
    );
    // Pass 2, more than an hour later (postgrey counts at most one pass per hour).
    d.advance(3600);
    assert!(
        c.rcpt(ip, "b@s.example", "u2@example.test", "i3")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    d.advance(400);
    assert!(
        c.rcpt(ip, "b@s.example", "u2@example.test", "i4")
            .await
            .starts_with("PREPEND")
    );
    // Now the client is whitelisted: a never-seen triplet passes at once.
    assert_eq!(
        c.rcpt(ip, "new@other.example", "u3@example.test", "i5")
            .await,
        "DUNNO"
    );
    // Another client of the same network is not.
    assert!(
        c.rcpt("203.0.113.6", "new@other.example", "u3@example.test", "i6")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    d.stop().await;
}

#[tokio::test]
async fn postgrey_whitelist_files_and_static_lists() {
    let extra = format!(
        "{GL}whitelist_clients = [\"wl_clients\"]\nwhitelist_recipients = [\"wl_rcpts\"]\n\
         [lists]\nallow = [\"198.51.100.0/24\", \"sasl:trusted\"]\n\
         deny = [\"sender:@spam.example\", \"client:.bad.example\"]\n"
    );
    let d = start_with(&extra, |dir| {
        std::fs::write(
            dir.join("wl_clients"),
            "# postgrey format\n192.0.2.77\ntrusted.example\n/^mail\\d+\\.big\\.example$/\n",
        )
        .unwrap();
        std::fs::write(dir.join("wl_rcpts"), "postmaster@\nabuse@example.test\n").unwrap();
    })
    .await;
    let mut c = d.connect().await;
    assert_eq!(
        c.rcpt("192.0.2.77", "x@y.example", "u@example.test", "1")
            .await,
        "DUNNO"
    );
    let mut r = PolicyRequest::rcpt(
        "192.0.2.80".parse::<IpAddr>().unwrap(),
        "x@y.example",
        "u@example.test",
    );
    r.client_name = "mx1.trusted.example".into();
    assert_eq!(c.ask(&r).await, "DUNNO");
    r.client_name = "mail12.big.example".into();
    assert_eq!(c.ask(&r).await, "DUNNO");
    assert_eq!(
        c.rcpt("192.0.2.80", "x@y.example", "postmaster@example.test", "2")
            .await,
        "DUNNO"
    );
    assert_eq!(
        c.rcpt("192.0.2.80", "x@y.example", "abuse@example.test", "3")
            .await,
        "DUNNO"
    );
    // Not whitelisted: greylisted.
    assert!(
        c.rcpt("192.0.2.80", "x@y.example", "u@example.test", "4")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    // Static lists come first: allow, then deny.
    assert_eq!(
        c.rcpt("198.51.100.9", "x@spam.example", "u@example.test", "5")
            .await,
        "DUNNO"
    );
    assert_eq!(
        c.rcpt("192.0.2.81", "x@spam.example", "u@example.test", "6")
            .await,
        "REJECT 5.7.1 Access denied by local policy"
    );
    r.client_name = "host.bad.example".into();
    assert!(c.ask(&r).await.starts_with("REJECT"));
    let mut sasl = PolicyRequest::rcpt(
        "192.0.2.82".parse::<IpAddr>().unwrap(),
        "x@spam.example",
        "u@example.test",
    );
    sasl.sasl_username = "trusted".into();
    assert_eq!(c.ask(&sasl).await, "DUNNO");
    d.stop().await;
}

#[tokio::test]
async fn many_requests_per_connection_and_pipelined() {
    let d = start(GL).await;
    let mut c = d.connect().await;
    for i in 0..300 {
        let reply = c
            .rcpt(
                "192.0.2.1",
                &format!("s{i}@a.example"),
                "u@example.test",
                "",
            )
            .await;
        assert!(reply.starts_with("DEFER_IF_PERMIT"), "request {i}: {reply}");
    }
    // 50 requests in one write: 50 replies, in order.
    let mut wire = Vec::new();
    for i in 0..50 {
        PolicyRequest::rcpt(
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            &format!("s{i}@a.example"),
            "u@example.test",
        )
        .encode(&mut wire);
    }
    d.advance(301);
    c.send_raw(&wire).await;
    for i in 0..50 {
        let reply = c.reply().await.unwrap();
        // Empty instance: each counts as a new message, so each gets the header.
        assert!(
            reply.starts_with("PREPEND X-Greylist"),
            "pipelined {i}: {reply}"
        );
    }
    let counts = d.store().counts().await.unwrap();
    assert_eq!(counts.triplets, 300);
    d.stop().await;
}

#[tokio::test]
async fn unix_socket_listener_with_mode_and_stale_socket() {
    let extra = format!(
        "[policy]\nlisten = [\"inet:127.0.0.1:0\", \"unix:run/sub/policy.sock\"]\nsocket_mode = \"0660\"\n{GL}"
    );
    let d = start_with(&extra, |dir| {
        // A stale socket left by a killed daemon must not prevent start-up.
        std::fs::create_dir_all(dir.join("run/sub")).unwrap();
        drop(std::os::unix::net::UnixListener::bind(dir.join("run/sub/policy.sock")).unwrap());
    })
    .await;
    let path = d.dir.path().join("run/sub/policy.sock");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let mut c = Client::new(tokio::net::UnixStream::connect(&path).await.unwrap());
    for i in 0..20 {
        let reply = c
            .rcpt(
                "192.0.2.5",
                &format!("u{i}@x.example"),
                "r@example.test",
                "",
            )
            .await;
        assert!(reply.starts_with("DEFER_IF_PERMIT"));
    }
    d.stop().await;
    assert!(!path.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn greylisting_disabled_answers_dunno() {
    let d = start("[greylist]\nenabled = false\n").await;
    let mut c = d.connect().await;
    assert_eq!(
        c.rcpt("192.0.2.1", "a@b.example", "c@example.test", "")
            .await,
        "DUNNO"
    );
    d.stop().await;
}

/// A store that always fails, to exercise the fail-open path.
#[derive(Debug)]
struct BrokenStore;

fn down<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(async { Err(StoreError::Unavailable("test outage".into())) })
}

impl Store for BrokenStore {
    fn greylist_touch<'a>(
        &'a self,
        _: &'a GreylistKey,
        _: UnixTime,
        _: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome> {
        down()
    }
    fn greylist_get<'a>(&'a self, _: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>> {
        down()
    }
    fn greylist_put<'a>(&'a self, _: &'a GreylistKey, _: TripletRecord) -> StoreFuture<'a, ()> {
        down()
    }
    fn greylist_remove<'a>(&'a self, _: &'a GreylistKey) -> StoreFuture<'a, bool> {
        down()
    }
    fn greylist_list(&self, _: usize) -> StoreFuture<'_, Vec<GreylistEntry>> {
        down()
    }
    fn awl_get(&self, _: IpAddr) -> StoreFuture<'_, Option<AwlRecord>> {
        down()
    }
    fn awl_bump(&self, _: IpAddr, _: UnixTime, _: u64) -> StoreFuture<'_, AwlRecord> {
        down()
    }
    fn awl_put(&self, _: IpAddr, _: AwlRecord) -> StoreFuture<'_, ()> {
        down()
    }
    fn awl_remove(&self, _: IpAddr) -> StoreFuture<'_, bool> {
        down()
    }
    fn awl_list(&self, _: usize) -> StoreFuture<'_, Vec<AwlEntry>> {
        down()
    }
    fn expire(&self, _: UnixTime, _: GreylistTimes) -> StoreFuture<'_, ExpireStats> {
        down()
    }
    fn counts(&self) -> StoreFuture<'_, StoreCounts> {
        down()
    }
    fn flush(&self) -> StoreFuture<'_, ()> {
        down()
    }
}

#[tokio::test]
async fn store_outage_fails_open_with_default_action_and_is_counted() {
    let extra = format!(
        "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\ndefault_action = \"DUNNO\"\n{GL}[metrics]\nlisten = \"127.0.0.1:0\"\n"
    );
    let d = start_full(&extra, |_| {}, Arc::new(BrokenStore)).await;
    let mut c = d.connect().await;
    for _ in 0..3 {
        assert_eq!(
            c.rcpt("192.0.2.1", "a@b.example", "c@example.test", "")
                .await,
            "DUNNO"
        );
    }
    let m = common::http_get(d.daemon().metrics_addr.unwrap(), "/metrics").await;
    assert!(m.contains("mxguard_store_errors_total 3"), "{m}");
    assert!(
        m.contains("mxguard_policy_requests_total{action=\"dunno\",check=\"store_error\"} 3"),
        "{m}"
    );
    d.stop().await;
}
