//! Policy sessions through [`Policy::decide`] with the DNS-based sender checks: every
//! policyd-spf knob and result with its exact reply and `Received-SPF:` header, HELO and
//! reverse-DNS findings under each action, DNSBL weights and thresholds, time budgets with a
//! DNS that never answers, the one-PREPEND-per-reply queue, and greylisting keyed on the
//! SPF-verified sender domain. Zone data is served by [`FakeResolver`]; time is a fake clock.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use mxguard_engine::checks::budget::testing::{ImmediateTimer, SilentResolver};
use mxguard_engine::checks::{CheckAction, DnsblSettings, HeloSettings, SpfSettings, Timer};
use mxguard_engine::dns::{DnsFuture, FakeResolver, Mx, Resolver, Txt, ZoneRecord, block_on};
use mxguard_engine::dnsbl::Dnsbl;
use mxguard_engine::helo::HeloChecks;
use mxguard_engine::spf::policyd_spf::{PolicydSpf, RejectPolicy};
use mxguard_engine::{
    Action, FakeClock, GreylistSettings, MemoryStore, Policy, PolicySettings, Request, Stage,
    UnixTime, Verdict,
};

const T0: u64 = 1_795_392_000;

fn zone() -> FakeResolver {
    let mut z = FakeResolver::new();
    let txt = |z: &mut FakeResolver, n: &str, t: &str| z.add(n, ZoneRecord::Txt(Txt::single(t)));
    txt(
        &mut z,
        "pass.example",
        "v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all",
    );
    txt(&mut z, "fail.example", "v=spf1 -all");
    txt(&mut z, "soft.example", "v=spf1 ~all");
    txt(&mut z, "neutral.example", "v=spf1 ?all");
    txt(&mut z, "perm.example", "v=spf1 ip4:300.0.0.1 -all");
    z.add("temp.example", ZoneRecord::Timeout);
    z.add("none.example", ZoneRecord::A("192.0.2.99".parse().unwrap()));
    txt(&mut z, "relay.example", "v=spf1 ip4:198.51.100.0/24 -all");
    txt(&mut z, "bad-helo.example", "v=spf1 -all");
    z.add_name("mail.other.example");
    // Reverse DNS: 192.0.2.1 is mail.other.example (confirmed), 192.0.2.2 is forged.
    z.add(
        "1.2.0.192.in-addr.arpa",
        ZoneRecord::Ptr("mail.other.example".into()),
    );
    z.add(
        "mail.other.example",
        ZoneRecord::A("192.0.2.1".parse().unwrap()),
    );
    z.add(
        "2.2.0.192.in-addr.arpa",
        ZoneRecord::Ptr("liar.example".into()),
    );
    // DNSBL answers for 192.0.2.1 and 192.0.2.5.
    z.add(
        "1.2.0.192.bl.example",
        ZoneRecord::A("127.0.0.2".parse().unwrap()),
    );
    z.add(
        "1.2.0.192.pbl.example",
        ZoneRecord::A("127.0.0.10".parse().unwrap()),
    );
    z.add(
        "5.2.0.192.wl.example",
        ZoneRecord::A("127.0.10.2".parse().unwrap()),
    );
    z
}

struct World {
    clock: FakeClock,
    policy: Policy,
}

fn world(settings: PolicySettings) -> World {
    world_with(settings, Arc::new(zone()), None)
}

fn world_with(
    settings: PolicySettings,
    resolver: Arc<dyn Resolver>,
    timer: Option<Arc<dyn Timer>>,
) -> World {
    let clock = FakeClock::new(UnixTime(T0));
    let mut policy = Policy::new(
        settings,
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
    )
    .with_resolver(resolver);
    if let Some(t) = timer {
        policy = policy.with_timer(t);
    }
    World { clock, policy }
}

impl World {
    fn ask(&self, r: &Request) -> Verdict {
        block_on(self.policy.decide(r))
    }
    fn wait(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn req(ip: &str, helo: &str, sender: &str, rcpt: &str, instance: &str) -> Request {
    let mut r = Request::rcpt(ip.parse::<IpAddr>().unwrap(), sender, rcpt);
    r.helo_name = helo.into();
    r.instance = instance.into();
    r
}

fn mail(ip: &str, sender: &str, instance: &str) -> Request {
    req(
        ip,
        "mail.other.example",
        sender,
        "bob@rcpt.example",
        instance,
    )
}

fn spf_with(p: PolicydSpf) -> PolicySettings {
    PolicySettings {
        spf: Some(SpfSettings {
            policyd: p,
            ..SpfSettings::default()
        }),
        ..Default::default()
    }
}

fn spf_default() -> PolicySettings {
    spf_with(PolicydSpf::default())
}

fn prepend(v: &Verdict) -> &str {
    match &v.action {
        Action::Prepend(h) => h,
        other => panic!("expected PREPEND, got {other:?}"),
    }
}

#[test]
fn received_spf_header_format_is_policyd_spfs() {
    let w = world(spf_default());
    let v = w.ask(&mail("192.0.2.1", "alice@pass.example", "m1"));
    assert_eq!(v.decided_by, "spf");
    assert_eq!(
        prepend(&v),
        "Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.1; \
         helo=mail.other.example; envelope-from=alice@pass.example; receiver=rcpt.example "
    );
    // The header once per message: the second recipient gets DUNNO.
    let mut second = mail("192.0.2.1", "alice@pass.example", "m1");
    second.recipient = "carol@rcpt.example".into();
    assert_eq!(w.ask(&second), Verdict::new(Action::Dunno, "none"));
    // A HELO-only check (null sender) carries pyspf's reason in the comment.
    let v = w.ask(&req(
        "192.0.2.1",
        "pass.example",
        "",
        "bob@rcpt.example",
        "m2",
    ));
    assert_eq!(
        prepend(&v),
        "Received-SPF: Pass (sender SPF authorized) identity=helo; client-ip=192.0.2.1; \
         helo=pass.example; envelope-from=<>; receiver=rcpt.example "
    );
}

#[test]
fn default_knobs_reject_fail_and_prepend_the_rest() {
    let w = world(spf_default());
    let v = w.ask(&mail("192.0.2.1", "a@fail.example", "f"));
    assert_eq!(
        v,
        Verdict::new(
            Action::Reply(
                "550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see \
                 http://www.openspf.net/Why?s=mfrom;id=a@fail.example;ip=192.0.2.1;r=rcpt.example"
                    .into()
            ),
            "spf"
        )
    );
    // The reject is remembered for the message's later recipients.
    assert_eq!(w.ask(&mail("192.0.2.1", "a@fail.example", "f")), v);
    for (sender, result) in [
        ("a@soft.example", "Softfail"),
        ("a@neutral.example", "Neutral"),
        ("a@perm.example", "Permerror"),
        ("a@temp.example", "Temperror"),
        ("a@none.example", "None"),
    ] {
        let v = w.ask(&mail("192.0.2.1", sender, sender));
        assert!(
            prepend(&v).starts_with(&format!(
                "Received-SPF: {result} (mailfrom) identity=mailfrom; client-ip=192.0.2.1; "
            )),
            "{sender}: {v:?}"
        );
    }
}

#[test]
fn mail_from_reject_policies() {
    let reply_of = |policy: RejectPolicy, sender: &str| {
        let w = world(spf_with(PolicydSpf {
            mail_from_reject: policy,
            ..PolicydSpf::default()
        }));
        w.ask(&mail("192.0.2.1", sender, "m")).action
    };
    let rejected = |a: &Action| matches!(a, Action::Reply(r) if r.starts_with("550 5.7.23 "));
    assert!(rejected(&reply_of(
        RejectPolicy::Softfail,
        "a@soft.example"
    )));
    assert!(!rejected(&reply_of(
        RejectPolicy::Softfail,
        "a@neutral.example"
    )));
    assert!(rejected(&reply_of(
        RejectPolicy::SpfNotPass,
        "a@neutral.example"
    )));
    assert!(!rejected(&reply_of(
        RejectPolicy::SpfNotPass,
        "a@pass.example"
    )));
    assert!(!rejected(&reply_of(RejectPolicy::False, "a@fail.example")));
    assert!(matches!(
        reply_of(RejectPolicy::False, "a@fail.example"),
        Action::Prepend(h) if h.starts_with("Received-SPF: Fail (mailfrom)")
    ));
    // No_Check: MAIL FROM is not checked; the HELO (none here) header stands.
    assert!(matches!(
        reply_of(RejectPolicy::NoCheck, "a@fail.example"),
        Action::Prepend(h) if h.starts_with("Received-SPF: None (no SPF record) identity=helo")
    ));
}

#[test]
fn helo_reject_policies() {
    let ask = |policy: RejectPolicy, sender: &str| {
        let w = world(spf_with(PolicydSpf {
            helo_reject: policy,
            ..PolicydSpf::default()
        }));
        w.ask(&req(
            "192.0.2.1",
            "bad-helo.example",
            sender,
            "b@rcpt.example",
            "m",
        ))
        .action
    };
    let helo_reject = |a: &Action| matches!(a, Action::Reply(r) if r.starts_with("550 5.7.23 ") && r.contains("s=helo;id=bad-helo.example"));
    // Fail (default): a HELO fail rejects before MAIL FROM is looked at.
    assert!(helo_reject(&ask(RejectPolicy::Fail, "a@pass.example")));
    // Null: only for the null sender.
    assert!(!helo_reject(&ask(RejectPolicy::Null, "a@pass.example")));
    assert!(helo_reject(&ask(RejectPolicy::Null, "")));
    // No_Check: HELO skipped, MAIL FROM passes.
    assert!(
        matches!(ask(RejectPolicy::NoCheck, "a@pass.example"), Action::Prepend(h) if h.starts_with("Received-SPF: Pass"))
    );
}

#[test]
fn error_knobs_test_only_and_header_switch() {
    let w = world(spf_with(PolicydSpf {
        permerror_reject: true,
        temperror_defer: true,
        ..PolicydSpf::default()
    }));
    let v = w.ask(&mail("192.0.2.1", "a@perm.example", "p"));
    assert!(
        matches!(&v.action, Action::Reply(r) if r.starts_with("550 5.7.24 Message rejected due to: ")),
        "{v:?}"
    );
    let v = w.ask(&mail("192.0.2.1", "a@temp.example", "t"));
    assert!(
        matches!(&v.action, Action::DeferIfPermit(r) if r.starts_with("4.7.24 Message deferred due to: ")),
        "{v:?}"
    );
    // TestOnly = 0 (test_only = true): a reject becomes DUNNO.
    let w = world(spf_with(PolicydSpf {
        enforce: false,
        ..PolicydSpf::default()
    }));
    assert_eq!(
        w.ask(&mail("192.0.2.1", "a@fail.example", "f")).action,
        Action::Dunno
    );
    // Header_Type = None (header = false): no header, still rejects.
    let w = world(PolicySettings {
        spf: Some(SpfSettings {
            header: false,
            ..SpfSettings::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        w.ask(&mail("192.0.2.1", "a@pass.example", "p")),
        Verdict::new(Action::Dunno, "none")
    );
    assert!(matches!(
        w.ask(&mail("192.0.2.1", "a@fail.example", "f")).action,
        Action::Reply(_)
    ));
}

#[test]
fn bypass_lists_prepend_x_comment() {
    let w = world(spf_with(PolicydSpf {
        whitelist: vec!["203.0.113.0/24".parse().unwrap()],
        domain_whitelist: vec!["relay.example".into()],
        ..PolicydSpf::default()
    }));
    let v = w.ask(&mail("127.0.0.1", "a@fail.example", "l"));
    assert_eq!(
        prepend(&v),
        "X-Comment: SPF check N/A for local connections - client-ip=127.0.0.1; \
         helo=mail.other.example; envelope-from=a@fail.example; receiver=rcpt.example "
    );
    let v = w.ask(&mail("203.0.113.5", "a@fail.example", "w"));
    assert!(prepend(&v).starts_with("X-Comment: SPF skipped for whitelisted relay - "));
    let v = w.ask(&mail("198.51.100.7", "a@fail.example", "d"));
    assert!(prepend(&v).starts_with("X-Comment: SPF skipped for whitelisted relay domain - "));
    // skip_addresses = [] checks loopback too.
    let w = world(spf_with(PolicydSpf {
        skip_addresses: Vec::new(),
        ..PolicydSpf::default()
    }));
    assert!(matches!(
        w.ask(&mail("127.0.0.1", "a@fail.example", "l")).action,
        Action::Reply(_)
    ));
}

#[test]
fn authenticated_and_non_mail_stages_are_not_checked() {
    let w = world(spf_default());
    let mut r = mail("192.0.2.1", "a@fail.example", "s");
    r.sasl_username = Some("alice".into());
    assert_eq!(w.ask(&r).action, Action::Dunno);
    let mut r = mail("192.0.2.1", "a@fail.example", "c");
    r.stage = Stage::Connect;
    assert_eq!(w.ask(&r).action, Action::Dunno);
}

fn helo_settings() -> HeloSettings {
    HeloSettings {
        checks: HeloChecks {
            our_names: vec!["mx.rcpt.example".into()],
            ..HeloChecks::default()
        },
        ..HeloSettings::default()
    }
}

fn helo_world(h: HeloSettings) -> World {
    world(PolicySettings {
        helo: Some(h),
        ..spf_default()
    })
}

#[test]
fn helo_findings_under_each_action() {
    let w = helo_world(helo_settings());
    let ask = |w: &World, ip: &str, helo: &str| {
        w.ask(&req(ip, helo, "a@pass.example", "b@rcpt.example", ""))
    };
    assert_eq!(
        ask(&w, "192.0.2.1", "OEMCOMPUTER"),
        Verdict::new(
            Action::Reply(
                "504 5.5.2 <OEMCOMPUTER>: Helo command rejected: need fully-qualified hostname"
                    .into()
            ),
            "helo"
        )
    );
    assert!(
        matches!(ask(&w, "192.0.2.1", "mx.rcpt.example").action, Action::Reply(r) if r.starts_with("550 5.7.1 <mx.rcpt.example>: Helo command rejected: host claims"))
    );
    assert!(
        matches!(ask(&w, "192.0.2.1", "bad name").action, Action::Reply(r) if r.starts_with("501 5.5.2 "))
    );
    // Private clients are exempt (SPF still has its say).
    assert_eq!(ask(&w, "10.1.2.3", "OEMCOMPUTER").decided_by, "spf");

    let w = helo_world(HeloSettings {
        non_fqdn: Some(CheckAction::Defer),
        ..helo_settings()
    });
    assert_eq!(
        ask(&w, "192.0.2.1", "OEMCOMPUTER").action,
        Action::Reply(
            "404 4.5.2 <OEMCOMPUTER>: Helo command rejected: need fully-qualified hostname".into()
        )
    );
    let w = helo_world(HeloSettings {
        non_fqdn: Some(CheckAction::Hold),
        ..helo_settings()
    });
    assert_eq!(
        ask(&w, "192.0.2.1", "OEMCOMPUTER").action,
        Action::Hold("<OEMCOMPUTER>: Helo command rejected: need fully-qualified hostname".into())
    );
    // warn: logged only; the chain goes on to SPF.
    let w = helo_world(HeloSettings {
        non_fqdn: Some(CheckAction::Warn),
        ..helo_settings()
    });
    let v = ask(&w, "192.0.2.1", "OEMCOMPUTER");
    assert_eq!(v.decided_by, "spf");
    // off: not looked at.
    let w = helo_world(HeloSettings {
        non_fqdn: None,
        ..helo_settings()
    });
    assert_eq!(ask(&w, "192.0.2.1", "OEMCOMPUTER").decided_by, "spf");
}

#[test]
fn reverse_dns_findings() {
    let w = helo_world(HeloSettings {
        unknown_reverse: Some(CheckAction::Reject),
        ..helo_settings()
    });
    let ask = |w: &World, ip: &str| w.ask(&req(ip, "mail.other.example", "", "b@rcpt.example", ""));
    assert_eq!(
        ask(&w, "192.0.2.3"),
        Verdict::new(
            Action::Reply(
                "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.3]"
                    .into()
            ),
            "helo"
        )
    );
    // A forged PTR is only flagged by unknown_client.
    assert_ne!(ask(&w, "192.0.2.2").decided_by, "helo");
    let w = helo_world(HeloSettings {
        unknown_client: Some(CheckAction::Reject),
        ..helo_settings()
    });
    assert!(
        matches!(ask(&w, "192.0.2.2").action, Action::Reply(r) if r == "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.2]")
    );
    assert_ne!(
        ask(&w, "192.0.2.1").decided_by,
        "helo",
        "confirmed name passes"
    );
}

fn dnsbl(sites: &str, threshold: i32, allowlist: i32) -> DnsblSettings {
    DnsblSettings {
        dnsbl: Dnsbl {
            sites: Dnsbl::parse_sites(sites).unwrap(),
            threshold,
            allowlist_threshold: allowlist,
        },
        action: CheckAction::Reject,
        budget: Duration::from_secs(2),
    }
}

#[test]
fn dnsbl_weights_and_thresholds() {
    let sites = "bl.example=127.0.0.[2..11]*2 pbl.example=127.0.0.[10..11]*1 wl.example=127.0.[0..255].[1..3]*-2";
    let w = world(PolicySettings {
        dnsbl: Some(dnsbl(sites, 3, -1)),
        greylist: Some(GreylistSettings::default()),
        ..Default::default()
    });
    // 2 + 1 = 3 reaches the threshold.
    assert_eq!(
        w.ask(&mail("192.0.2.1", "a@x.example", "a")),
        Verdict::new(
            Action::Reply(
                "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.example".into()
            ),
            "dnsbl"
        )
    );
    // Below the threshold: no opinion, so greylisting decides.
    let w2 = world(PolicySettings {
        dnsbl: Some(dnsbl(sites, 4, -1)),
        greylist: Some(GreylistSettings::default()),
        ..Default::default()
    });
    assert!(matches!(
        w2.ask(&mail("192.0.2.1", "a@x.example", "a")).action,
        Action::DeferIfPermit(_)
    ));
    // DNSWL: -2 is at or below the allowlist threshold: greylisting is skipped.
    assert_eq!(
        w.ask(&mail("192.0.2.5", "a@x.example", "b")),
        Verdict::new(Action::Dunno, "dnsbl")
    );
    // An unlisted client is greylisted as usual.
    assert!(matches!(
        w.ask(&mail("192.0.2.6", "a@x.example", "c")).action,
        Action::DeferIfPermit(_)
    ));
    // defer action: the reply as a temporary error.
    let w = world(PolicySettings {
        dnsbl: Some(DnsblSettings {
            action: CheckAction::Defer,
            ..dnsbl(sites, 3, 0)
        }),
        ..Default::default()
    });
    assert_eq!(
        w.ask(&mail("192.0.2.1", "a@x.example", "a")).action,
        Action::Reply(
            "450 4.7.1 Service unavailable; client [192.0.2.1] blocked using bl.example".into()
        )
    );
}

/// A resolver that answers from the zone, except that names containing "slow" never answer.
#[derive(Debug)]
struct PartlySilent(FakeResolver);

impl Resolver for PartlySilent {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Txt> {
        if name.contains("slow") {
            return SilentResolver.txt(name);
        }
        self.0.txt(name)
    }
    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, std::net::Ipv4Addr> {
        if name.contains("slow") {
            return SilentResolver.a(name);
        }
        self.0.a(name)
    }
    fn aaaa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, std::net::Ipv6Addr> {
        self.0.aaaa(name)
    }
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Mx> {
        self.0.mx(name)
    }
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, String> {
        self.0.ptr(ip)
    }
}

/// Decides on another thread: a check that ignored its budget would hang `block_on`, and this
/// turns that into a test failure instead.
fn decide_within_10s(w: World, r: Request) -> Verdict {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(block_on(w.policy.decide(&r)));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the reply waited for a DNS server that never answers")
}

#[test]
fn a_dns_server_that_never_answers_never_stalls_the_reply() {
    let silent = || -> (Arc<dyn Resolver>, Option<Arc<dyn Timer>>) {
        (Arc::new(SilentResolver), Some(Arc::new(ImmediateTimer)))
    };
    // SPF: the temperror answer, as policyd-spf would give it.
    let (r, t) = silent();
    let w = world_with(spf_default(), r, t);
    let v = decide_within_10s(w, mail("192.0.2.1", "a@pass.example", "m"));
    assert!(
        prepend(&v).starts_with("Received-SPF: Temperror (mailfrom) identity=mailfrom; "),
        "{v:?}"
    );
    let (r, t) = silent();
    let w = world_with(
        spf_with(PolicydSpf {
            temperror_defer: true,
            ..PolicydSpf::default()
        }),
        r,
        t,
    );
    let v = decide_within_10s(w, mail("192.0.2.1", "a@pass.example", "m"));
    assert!(matches!(v.action, Action::DeferIfPermit(ref t) if t.starts_with("4.7.24 ")));
    // Reverse DNS: Postfix's temporary-failure reply.
    let (r, t) = silent();
    let w = world_with(
        PolicySettings {
            helo: Some(HeloSettings {
                unknown_client: Some(CheckAction::Reject),
                ..helo_settings()
            }),
            ..Default::default()
        },
        r,
        t,
    );
    let v = decide_within_10s(w, mail("192.0.2.1", "a@pass.example", "m"));
    assert_eq!(
        v.action,
        Action::Reply(
            "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]".into()
        )
    );
    // DNSBL: a list that does not answer counts as not listed; the others still count.
    let w = world_with(
        PolicySettings {
            dnsbl: Some(dnsbl("bl.example*3 slow.example*5", 3, 0)),
            ..Default::default()
        },
        Arc::new(PartlySilent(zone())),
        Some(Arc::new(ImmediateTimer)),
    );
    let v = decide_within_10s(w, mail("192.0.2.1", "a@x.example", "m"));
    assert_eq!(v.decided_by, "dnsbl", "{v:?}");
    let w = world_with(
        PolicySettings {
            dnsbl: Some(dnsbl("slow.example*5", 1, 0)),
            ..Default::default()
        },
        Arc::new(PartlySilent(zone())),
        Some(Arc::new(ImmediateTimer)),
    );
    assert_eq!(
        decide_within_10s(w, mail("192.0.2.1", "a@x.example", "m")).action,
        Action::Dunno
    );
}

fn greylist() -> GreylistSettings {
    GreylistSettings {
        hostname: "mx.test".into(),
        ..GreylistSettings::default()
    }
}

#[test]
fn one_prepend_per_reply_spf_first_then_x_greylist() {
    let w = world(PolicySettings {
        greylist: Some(greylist()),
        ..spf_default()
    });
    let from = "alice@pass.example";
    // First attempt: greylisted; the SPF header stays queued for the message.
    let v = w.ask(&mail("192.0.2.1", from, "m1"));
    assert!(matches!(v.action, Action::DeferIfPermit(_)), "{v:?}");
    w.wait(301);
    // The retry (a new message instance): RCPT gets Received-SPF, DATA gets X-Greylist,
    // END-OF-MESSAGE nothing (PREPEND is not allowed there).
    let v = w.ask(&mail("192.0.2.1", from, "m2"));
    assert!(
        prepend(&v).starts_with("Received-SPF: Pass (mailfrom)"),
        "{v:?}"
    );
    assert_eq!(v.decided_by, "spf");
    let mut data = mail("192.0.2.1", from, "m2");
    data.stage = Stage::Data;
    let v = w.ask(&data);
    assert!(
        prepend(&v).starts_with("X-Greylist: delayed 301 seconds by mxguard at mx.test; "),
        "{v:?}"
    );
    assert_eq!(v.decided_by, "greylist");
    let mut eom = data.clone();
    eom.stage = Stage::EndOfMessage;
    assert_eq!(w.ask(&eom).action, Action::Dunno);
    assert_eq!(w.ask(&data).action, Action::Dunno, "each header only once");
}

#[test]
fn a_reject_or_defer_wins_over_a_pending_header() {
    let w = world(PolicySettings {
        greylist: Some(greylist()),
        ..spf_default()
    });
    let from = "alice@pass.example";
    // Pass the triplet for bob.
    w.ask(&mail("192.0.2.1", from, "m1"));
    w.wait(301);
    // m2 to bob (passes) and to carol (new triplet: deferred): bob's RCPT takes Received-SPF,
    // carol's is deferred, and X-Greylist waits for the next DUNNO answer of m2.
    assert!(prepend(&w.ask(&mail("192.0.2.1", from, "m2"))).starts_with("Received-SPF: "));
    let mut carol = mail("192.0.2.1", from, "m2");
    carol.recipient = "carol@rcpt.example".into();
    assert!(matches!(w.ask(&carol).action, Action::DeferIfPermit(_)));
    let mut data = mail("192.0.2.1", from, "m2");
    data.stage = Stage::Data;
    assert!(prepend(&w.ask(&data)).starts_with("X-Greylist: "));
    // Requests without an instance get their own first header at once.
    let v = w.ask(&mail("192.0.2.1", from, ""));
    assert!(prepend(&v).starts_with("Received-SPF: "));
}

#[test]
fn greylisting_by_spf_verified_domain_lets_rotating_pools_pass() {
    let retry_from_another_network = |spf_domain_key: bool, from: &str| {
        let w = world(PolicySettings {
            greylist: Some(GreylistSettings {
                spf_domain_key,
                ..greylist()
            }),
            ..spf_default()
        });
        let first = w.ask(&mail("192.0.2.1", from, "m1"));
        assert!(
            matches!(first.action, Action::DeferIfPermit(_)),
            "{first:?}"
        );
        w.wait(301);
        // The provider retries from another pool address, in another /24.
        w.ask(&mail("203.0.113.9", from, "m2")).action
    };
    // SPF pass for pass.example from both networks: the triplet is the domain's.
    assert!(
        matches!(retry_from_another_network(true, "bounce-1@pass.example"), Action::Prepend(ref h) if h.starts_with("Received-SPF: Pass")),
    );
    // Off: postgrey's network key, so the other /24 starts over.
    assert!(matches!(
        retry_from_another_network(false, "bounce-1@pass.example"),
        Action::DeferIfPermit(_)
    ));
    // Without an SPF pass there is no verified domain: keyed on the network.
    assert!(matches!(
        retry_from_another_network(true, "bounce-1@soft.example"),
        Action::DeferIfPermit(_)
    ));
}
