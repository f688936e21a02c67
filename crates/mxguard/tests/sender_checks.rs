//! The sender checks through the daemon on 127.0.0.1:0: `[spf]`, `[helo]`, `[dnsbl]` read from
//! the config file, replies on the wire byte for byte (policyd-spf's `550 5.7.23` text and
//! `Received-SPF:` header with its trailing space), one PREPEND per reply across RCPT and DATA,
//! and a DNS that answers only after 30 s never holding a reply past `[spf] time_budget`
//! (tokio's timer, real time). Zone data comes from the engine's `FakeResolver`, injected
//! through `StartOptions::resolver`.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use common::Client;
use mxguard::config;
use mxguard::service::{Daemon, StartOptions};
use mxguard_engine::dns::{DnsFuture, FakeResolver, Mx, Resolver, Txt, ZoneRecord};
use mxguard_engine::store::MemoryStore;
use mxguard_engine::{FakeClock, UnixTime};
use mxguard_proto::PolicyRequest;
use mxguard_proto::ProtocolState;

struct Running {
    daemon: Daemon,
    clock: FakeClock,
    _dir: tempfile::TempDir,
}

async fn start(extra: &str, resolver: Arc<dyn Resolver>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n[control]\nsocket = \"control.sock\"\n\
         [store]\ntype = \"memory\"\n{extra}"
    );
    let path = dir.path().join("mxguard.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = config::load(Some(&path)).unwrap_or_else(|e| panic!("config: {e}"));
    let clock = FakeClock::new(UnixTime(common::T0));
    let daemon = Daemon::start(
        cfg,
        StartOptions {
            config_path: Some(path),
            clock: Some(Arc::new(clock.clone())),
            store: Some(Arc::new(MemoryStore::new())),
            resolver: Some(resolver),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Running {
        daemon,
        clock,
        _dir: dir,
    }
}

impl Running {
    async fn connect(&self) -> Client<tokio::net::TcpStream> {
        Client::new(
            tokio::net::TcpStream::connect(self.daemon.policy_addrs[0])
                .await
                .unwrap(),
        )
    }
    async fn stop(self) {
        self.daemon.shutdown();
        self.daemon.wait().await.unwrap();
    }
}

fn zone() -> FakeResolver {
    let mut z = FakeResolver::new();
    z.add(
        "pass.example",
        ZoneRecord::Txt(Txt::single("v=spf1 ip4:192.0.2.0/24 -all")),
    );
    z.add("fail.example", ZoneRecord::Txt(Txt::single("v=spf1 -all")));
    z.add_name("mail.client.example");
    z.add(
        "9.2.0.192.bl.example",
        ZoneRecord::A("127.0.0.2".parse().unwrap()),
    );
    z
}

fn request(ip: &str, helo: &str, sender: &str, rcpt: &str, instance: &str) -> PolicyRequest {
    let mut r = PolicyRequest::rcpt(ip.parse::<IpAddr>().unwrap(), sender, rcpt);
    r.helo_name = helo.into();
    r.instance = instance.into();
    r
}

#[tokio::test]
async fn spf_replies_on_the_wire() {
    let d = start(
        "[spf]\nhostname = \"mx.test\"\n[greylist]\nenabled = false\n",
        Arc::new(zone()),
    )
    .await;
    let mut c = d.connect().await;
    let fail = request(
        "192.0.2.1",
        "mail.client.example",
        "Alice@Fail.example",
        "bob@rcpt.example",
        "m1",
    );
    assert_eq!(
        c.ask(&fail).await,
        "550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see \
         http://www.openspf.net/Why?s=mfrom;id=alice@fail.example;ip=192.0.2.1;r=rcpt.example"
    );
    let pass = request(
        "192.0.2.1",
        "mail.client.example",
        "alice@pass.example",
        "bob@rcpt.example",
        "m2",
    );
    assert_eq!(
        c.ask(&pass).await,
        "PREPEND Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.1; \
         helo=mail.client.example; envelope-from=alice@pass.example; receiver=rcpt.example "
    );
    assert_eq!(c.ask(&pass).await, "DUNNO", "once per message");
    d.stop().await;
}

#[tokio::test]
async fn helo_dnsbl_and_one_prepend_per_reply() {
    let d = start(
        "[spf]\n[helo]\nour_names = [\"mx.test\"]\n\
         [dnsbl]\nsites = [\"bl.example=127.0.0.[2..11]*3\"]\nthreshold = 3\n\
         [greylist]\ndelay = \"5m\"\nhostname = \"mx.test\"\n",
        Arc::new(zone()),
    )
    .await;
    let mut c = d.connect().await;
    assert_eq!(
        c.ask(&request(
            "192.0.2.1",
            "mx.test",
            "a@pass.example",
            "b@rcpt.example",
            "h"
        ))
        .await,
        "550 5.7.1 <mx.test>: Helo command rejected: host claims to be this server"
    );
    assert_eq!(
        c.ask(&request(
            "192.0.2.9",
            "mail.client.example",
            "a@pass.example",
            "b@rcpt.example",
            "l"
        ))
        .await,
        "550 5.7.1 Service unavailable; client [192.0.2.9] blocked using bl.example"
    );
    // Greylisted, then after the delay: Received-SPF at RCPT, X-Greylist at DATA.
    let r = request(
        "192.0.2.1",
        "mail.client.example",
        "a@pass.example",
        "b@rcpt.example",
        "g1",
    );
    assert!(c.ask(&r).await.starts_with("DEFER_IF_PERMIT "));
    d.clock.advance(Duration::from_secs(301));
    let r = request(
        "192.0.2.1",
        "mail.client.example",
        "a@pass.example",
        "b@rcpt.example",
        "g2",
    );
    assert!(
        c.ask(&r)
            .await
            .starts_with("PREPEND Received-SPF: Pass (mailfrom) ")
    );
    let mut data = r.clone();
    data.protocol_state = ProtocolState::Data;
    assert!(
        c.ask(&data)
            .await
            .starts_with("PREPEND X-Greylist: delayed 301 seconds by mxguard at mx.test; ")
    );
    data.protocol_state = ProtocolState::EndOfMessage;
    assert_eq!(c.ask(&data).await, "DUNNO");
    d.stop().await;
}

/// Answers from the zone, but only after 30 s: a DNS server far slower than any budget.
#[derive(Debug)]
struct Slow(FakeResolver);

impl Slow {
    fn slow<'a, T: Send + 'a>(&'a self, f: DnsFuture<'a, T>) -> DnsFuture<'a, T> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            f.await
        })
    }
}

impl Resolver for Slow {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Txt> {
        self.slow(self.0.txt(name))
    }
    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv4Addr> {
        self.slow(self.0.a(name))
    }
    fn aaaa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv6Addr> {
        self.slow(self.0.aaaa(name))
    }
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Mx> {
        self.slow(self.0.mx(name))
    }
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, String> {
        self.slow(self.0.ptr(ip))
    }
}

#[tokio::test]
async fn a_slow_dns_never_holds_a_reply_past_the_budget() {
    let d = start(
        "[spf]\ntime_budget = \"200ms\"\ntemperror_defer = true\n\
         [dnsbl]\nsites = [\"bl.example*3\"]\nthreshold = 3\ntimeout = \"200ms\"\n\
         [helo]\nunknown_client = \"reject\"\ntime_budget = \"200ms\"\n",
        Arc::new(Slow(zone())),
    )
    .await;
    let mut c = d.connect().await;
    // Each budget is 200 ms; a reply that waited for the DNS would take 30 s.
    let r = request(
        "192.0.2.9",
        "mail.client.example",
        "a@pass.example",
        "b@rcpt.example",
        "s",
    );
    let reply = tokio::time::timeout(Duration::from_secs(5), c.ask(&r))
        .await
        .expect("reply held up by the slow DNS");
    // Reverse DNS timed out first: Postfix's temporary-failure reply.
    assert_eq!(
        reply,
        "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.9]"
    );
    d.stop().await;

    let d = start(
        "[spf]\ntime_budget = \"200ms\"\ntemperror_defer = true\n\
         [dnsbl]\nsites = [\"bl.example*3\"]\ntimeout = \"200ms\"\n",
        Arc::new(Slow(zone())),
    )
    .await;
    let mut c = d.connect().await;
    let reply = tokio::time::timeout(Duration::from_secs(5), c.ask(&r))
        .await
        .expect("reply held up by the slow DNS");
    // The list did not answer (not listed); SPF ran out of time: policyd-spf's temperror
    // answer with TempError_Defer.
    assert!(
        reply.starts_with("DEFER_IF_PERMIT 4.7.24 Message deferred due to: "),
        "{reply}"
    );
    d.stop().await;
}

/// The commented sender-check block of examples/mxguard.toml, uncommented, is a valid
/// configuration with the values it claims.
#[test]
fn example_sender_check_block_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mxguard.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("# >>> sender checks").unwrap();
    let end = text.find("# <<< sender checks").unwrap();
    let block: String = text
        .get(start..end)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("##"))
        .map(|l| l.strip_prefix('#').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = config::parse("example", &block, None).unwrap_or_else(|e| panic!("{e}\n{block}"));
    let c = &cfg.checks;
    assert!(c.dns.servers.is_empty());
    assert_eq!(c.dns.timeout, Duration::from_secs(2));
    let spf = c.spf.as_ref().unwrap();
    assert_eq!(spf.budget, Duration::from_secs(10));
    assert!(spf.header && spf.policyd.enforce && !spf.policyd.permerror_reject);
    assert_eq!(spf.policyd.skip_addresses.len(), 3);
    let bl = c.dnsbl.as_ref().unwrap();
    assert_eq!(bl.dnsbl.sites.len(), 2);
    assert_eq!((bl.dnsbl.threshold, bl.dnsbl.allowlist_threshold), (3, -1));
    let helo = c.helo.as_ref().unwrap();
    assert_eq!(helo.checks.our_names, vec!["mx1.example.org".to_string()]);
    assert!(helo.unknown_client.is_none() && helo.invalid.is_some());
    // The shipped file itself leaves them off.
    let shipped = config::load(Some(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mxguard.toml"),
    ))
    .unwrap();
    assert!(shipped.checks.spf.is_none() && shipped.greylist.unwrap().spf_domain_key);
}
