//! `HickoryResolver` against a small authoritative DNS server on 127.0.0.1 (UDP, started by
//! the test on a free port): records of every type the engine asks for, NXDOMAIN and no-data
//! kept apart, a name whose queries are never answered (timeout within the budget), positive and
//! negative caching, and an SPF check end to end through the real resolver.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, PTR, SOA, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record};
use mxguard::dns::{DnsSettings, HickoryResolver, spf_within};
use mxguard_engine::UnixTime;
use mxguard_engine::dns::{DnsError, Lookup, Resolver};
use mxguard_engine::spf::policyd_spf::{MessageInfo, PolicydSpf};
use mxguard_engine::spf::{SpfChecker, SpfQuery, SpfResult};
use mxguard_engine::verdict::Action;
use tokio::net::UdpSocket;

type Zone = HashMap<String, Vec<RData>>;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn zone() -> Zone {
    let mut z: Zone = HashMap::new();
    let mut add = |n: &str, d: RData| z.entry(n.to_string()).or_default().push(d);
    add(
        "example.test.",
        RData::TXT(TXT::new(vec![
            "v=spf1 ip4:192.0.2.0/24 ".into(),
            "-all".into(),
        ])),
    );
    add(
        "example.test.",
        RData::TXT(TXT::new(vec!["some other text".into()])),
    );
    add("example.test.", RData::A(A("192.0.2.1".parse().unwrap())));
    add(
        "example.test.",
        RData::MX(MX::new(10, name("mx.example.test."))),
    );
    add(
        "mx.example.test.",
        RData::AAAA(AAAA("2001:db8::25".parse().unwrap())),
    );
    add(
        "1.2.0.192.in-addr.arpa.",
        RData::PTR(PTR(name("mail.example.test."))),
    );
    z
}

/// Serves `zone` on 127.0.0.1:<free port>; never answers names under `slow.test.`. Counts the
/// queries it receives.
async fn serve(zone: Zone) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            let qname = q.name().to_ascii().to_ascii_lowercase();
            if qname.ends_with("slow.test.") {
                continue;
            }
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            reply.metadata.authoritative = true;
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.add_query(q.clone());
            match zone.get(&qname) {
                Some(records) => {
                    for d in records.iter().filter(|d| d.record_type() == q.query_type()) {
                        reply.add_answer(Record::from_rdata(q.name().clone(), 300, d.clone()));
                    }
                }
                None => reply.metadata.response_code = ResponseCode::NXDomain,
            }
            if reply.answers.is_empty() {
                // An SOA lets the resolver cache the negative answer (RFC 2308).
                let soa = SOA::new(name("ns.test."), name("admin.test."), 1, 60, 60, 600, 300);
                reply.add_authority(Record::from_rdata(name("test."), 300, RData::SOA(soa)));
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    (addr, count)
}

async fn resolver(addr: SocketAddr, timeout: Duration) -> HickoryResolver {
    HickoryResolver::new(&DnsSettings {
        servers: vec![addr],
        timeout,
        ..DnsSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn answers_every_record_type() {
    let (addr, _) = serve(zone()).await;
    let r = resolver(addr, Duration::from_secs(2)).await;
    let txt = r.txt("example.test").await.unwrap();
    let texts: Vec<Vec<u8>> = txt.records().iter().map(|t| t.concat()).collect();
    assert!(texts.contains(&b"v=spf1 ip4:192.0.2.0/24 -all".to_vec()));
    assert_eq!(texts.len(), 2);
    assert_eq!(
        r.a("EXAMPLE.test.").await.unwrap(),
        Lookup::Records(vec!["192.0.2.1".parse().unwrap()])
    );
    let mx = r.mx("example.test").await.unwrap();
    assert_eq!(mx.records()[0].exchange, "mx.example.test");
    assert_eq!(mx.records()[0].preference, 10);
    assert_eq!(r.aaaa("mx.example.test").await.unwrap().records().len(), 1);
    let ptr = r.ptr("192.0.2.1".parse::<IpAddr>().unwrap()).await.unwrap();
    assert_eq!(ptr, Lookup::Records(vec!["mail.example.test".to_string()]));
}

#[tokio::test]
async fn nxdomain_and_no_data_are_distinct() {
    let (addr, _) = serve(zone()).await;
    let r = resolver(addr, Duration::from_secs(2)).await;
    assert_eq!(r.a("nothing.example.test").await.unwrap(), Lookup::NxDomain);
    assert_eq!(r.aaaa("example.test").await.unwrap(), Lookup::NoData);
}

#[tokio::test]
async fn unanswered_queries_time_out_within_the_budget() {
    let (addr, _) = serve(zone()).await;
    let r = resolver(addr, Duration::from_millis(200)).await;
    #[allow(clippy::disallowed_methods)] // measuring elapsed wall time of a real network timeout
    let start = std::time::Instant::now();
    assert_eq!(r.txt("x.slow.test").await, Err(DnsError::Timeout));
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn answers_are_cached_positive_and_negative() {
    let (addr, count) = serve(zone()).await;
    let r = resolver(addr, Duration::from_secs(2)).await;
    r.a("example.test").await.unwrap();
    r.a("example.test").await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(r.a("gone.example.test").await.unwrap(), Lookup::NxDomain);
    assert_eq!(r.a("gone.example.test").await.unwrap(), Lookup::NxDomain);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn spf_through_the_real_resolver() {
    let (addr, _) = serve(zone()).await;
    let r = resolver(addr, Duration::from_secs(2)).await;
    let checker = SpfChecker::default();
    let q = |ip: &'static str| SpfQuery {
        ip: ip.parse().unwrap(),
        helo: "mail.example.test",
        sender: "user@example.test",
        now: UnixTime(0),
    };
    assert_eq!(
        checker.check_mail_from(&r, &q("192.0.2.77")).await.result,
        SpfResult::Pass
    );
    let fail = checker.check_mail_from(&r, &q("198.51.100.1")).await;
    assert_eq!(fail.result, SpfResult::Fail);
    assert_eq!(
        fail.explanation.as_deref(),
        Some("SPF fail - not authorized")
    );
    let none = SpfQuery {
        sender: "user@nothing.example.test",
        ..q("192.0.2.77")
    };
    assert_eq!(
        checker.check_mail_from(&r, &none).await.result,
        SpfResult::None
    );
    let slow = SpfQuery {
        sender: "user@a.slow.test",
        ..q("192.0.2.77")
    };
    let r2 = resolver(addr, Duration::from_millis(200)).await;
    assert_eq!(
        checker.check_mail_from(&r2, &slow).await.result,
        SpfResult::TempError
    );
}

#[tokio::test]
async fn a_dead_dns_never_holds_the_reply_past_the_budget() {
    let (addr, _) = serve(zone()).await;
    // The resolver would wait 5 s; the SPF budget is 150 ms.
    let r = resolver(addr, Duration::from_secs(5)).await;
    let m = MessageInfo {
        client_ip: "192.0.2.77".parse().unwrap(),
        helo: "mail.example.test".into(),
        sender: "user@a.slow.test".into(),
        receiver: "example.net".into(),
        now: UnixTime(0),
    };
    #[allow(clippy::disallowed_methods)] // measuring elapsed wall time of a real network wait
    let start = std::time::Instant::now();
    let d = spf_within(&PolicydSpf::default(), &r, &m, Duration::from_millis(150)).await;
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(d.action, Action::Prepend(ref h) if h.starts_with("Received-SPF: Temperror (mailfrom)")),
        "{:?}",
        d.action
    );
    // A healthy check finishes within the budget with its real result.
    let ok = MessageInfo {
        sender: "user@example.test".into(),
        ..m
    };
    let d = spf_within(&PolicydSpf::default(), &r, &ok, Duration::from_secs(2)).await;
    assert_eq!(d.verified_sender_domain(), Some("example.test"));
}
