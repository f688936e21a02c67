//! Tests of the SPF evaluator beyond the RFC suites (tests/spf_suite.rs), and of the
//! policyd-spf decisions: every knob, every result, the exact header and reply texts from
//! shared/notes/spf-policy.md (several of which were captured from the real policyd-spf 3.0.4).

use std::net::{IpAddr, Ipv4Addr};

use super::MessageMemo;
use super::policyd_spf::{MessageInfo, PolicydSpf, RejectPolicy};
use super::{Identity, SpfChecker, SpfQuery, SpfResult};
use crate::clock::UnixTime;
use crate::dns::{FakeResolver, Mx, Txt, ZoneRecord, block_on};
use crate::verdict::Action;

fn zone() -> FakeResolver {
    let mut z = FakeResolver::new();
    let txt = |z: &mut FakeResolver, n: &str, t: &str| z.add(n, ZoneRecord::Txt(Txt::single(t)));
    txt(&mut z, "b.example", "v=spf1 -all");
    txt(&mut z, "pass.example", "v=spf1 ip4:192.0.2.0/24 -all");
    txt(&mut z, "soft.example", "v=spf1 ~all");
    txt(&mut z, "neutral.example", "v=spf1 ?all");
    txt(&mut z, "broken.example", "v=spf1 a:museum -all");
    z.add("slow.example", ZoneRecord::Timeout);
    txt(&mut z, "helo-fail.example", "v=spf1 -all");
    txt(&mut z, "helo-pass.example", "v=spf1 +all");
    txt(&mut z, "relay.example", "v=spf1 ip4:192.0.2.1 -all");
    z.add("relay.example", ZoneRecord::A(Ipv4Addr::new(192, 0, 2, 44)));
    // 192.0.2.45 claims a name that does not resolve back; 192.0.2.46's does.
    z.add(
        "45.2.0.192.in-addr.arpa",
        ZoneRecord::Ptr("fake.ptr.example".into()),
    );
    z.add(
        "46.2.0.192.in-addr.arpa",
        ZoneRecord::Ptr("out1.ptr.example".into()),
    );
    z.add(
        "out1.ptr.example",
        ZoneRecord::A(Ipv4Addr::new(192, 0, 2, 46)),
    );
    // Ten DNS-querying terms, one of them an mx with three hosts: exactly at the limit.
    txt(&mut z, "ten.example", "v=spf1 a a a a a a a a a mx -all");
    z.add("ten.example", ZoneRecord::A(Ipv4Addr::new(198, 51, 100, 1)));
    for (i, host) in ["mx1.ten.example", "mx2.ten.example", "mx3.ten.example"]
        .iter()
        .enumerate()
    {
        z.add(
            "ten.example",
            ZoneRecord::Mx(Mx {
                preference: u16::try_from(i).unwrap(),
                exchange: host.to_string(),
            }),
        );
        z.add(
            host,
            ZoneRecord::A(Ipv4Addr::new(192, 0, 2, 10 + u8::try_from(i).unwrap())),
        );
    }
    z
}

fn query<'a>(ip: &str, helo: &'a str, sender: &'a str) -> SpfQuery<'a> {
    SpfQuery {
        ip: ip.parse().unwrap(),
        helo,
        sender,
        now: UnixTime(0),
    }
}

#[test]
fn ten_lookups_with_several_mx_hosts_pass() {
    // MX host address lookups do not count toward the limit of 10 terms (RFC 7208 4.6.4).
    let out = block_on(
        SpfChecker::default()
            .check_mail_from(&zone(), &query("192.0.2.12", "h.example", "u@ten.example")),
    );
    assert_eq!(out.result, SpfResult::Pass);
    let strict = SpfChecker {
        lookup_limit: 9,
        ..SpfChecker::default()
    };
    let out = block_on(
        strict.check_mail_from(&zone(), &query("192.0.2.12", "h.example", "u@ten.example")),
    );
    assert_eq!(out.result, SpfResult::PermError);
    assert!(out.problem.unwrap().contains("more than 9 DNS lookups"));
}

#[test]
fn ipv4_mapped_clients_are_checked_as_ipv4() {
    let out = block_on(SpfChecker::default().check_mail_from(
        &zone(),
        &query("::ffff:192.0.2.7", "h.example", "u@pass.example"),
    ));
    assert_eq!(out.result, SpfResult::Pass);
}

#[test]
fn helo_identity_and_null_sender() {
    let c = SpfChecker::default();
    let q = query("192.0.2.9", "helo-fail.example", "");
    let helo = block_on(c.check_helo(&zone(), &q));
    assert_eq!(
        (helo.identity, helo.result),
        (Identity::Helo, SpfResult::Fail)
    );
    assert_eq!(helo.sender, "postmaster@helo-fail.example");
    assert_eq!(
        helo.explanation.as_deref(),
        Some("SPF fail - not authorized")
    );
    let mail = block_on(c.check_mail_from(&zone(), &q));
    assert_eq!(
        (mail.identity, mail.domain.as_str()),
        (Identity::MailFrom, "helo-fail.example")
    );
}

fn msg<'a>(ip: &'a str, helo: &'a str, sender: &'a str) -> MessageInfo<'a> {
    MessageInfo {
        client_ip: ip.parse::<IpAddr>().unwrap(),
        helo: helo.into(),
        sender: sender.into(),
        receiver: "example.net".into(),
        now: UnixTime(0),
    }
}

fn decide(p: &PolicydSpf, m: &MessageInfo<'_>) -> Action {
    block_on(p.decide(&zone(), m)).action
}

#[test]
fn default_rejects_mail_from_fail_with_policyd_text() {
    let d = block_on(PolicydSpf::default().decide(
        &zone(),
        &msg("192.0.2.1", "mail.example.com", "a@b.example"),
    ));
    assert_eq!(
        d.action,
        Action::Reply(
            "550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see \
             http://www.openspf.net/Why?s=mfrom;id=a@b.example;ip=192.0.2.1;r=example.net"
                .into()
        )
    );
    assert_eq!(d.helo.as_ref().unwrap().result, SpfResult::None);
    assert_eq!(d.verified_sender_domain(), None);
}

#[test]
fn loopback_is_skipped_with_x_comment() {
    // Captured from policyd-spf 3.0.4 (trailing space included).
    let a = decide(
        &PolicydSpf::default(),
        &msg("127.0.0.1", "mail.example.com", "user@example.com"),
    );
    assert_eq!(
        a,
        Action::Prepend(
            "X-Comment: SPF check N/A for local connections - client-ip=127.0.0.1; \
             helo=mail.example.com; envelope-from=user@example.com; receiver=example.net "
                .into()
        )
    );
}

#[test]
fn none_prepends_the_mailfrom_header() {
    // Captured from policyd-spf 3.0.4: the comment is the literal "mailfrom".
    let a = decide(
        &PolicydSpf::default(),
        &msg("192.0.2.1", "mail.example.com", "user@example.com"),
    );
    assert_eq!(
        a,
        Action::Prepend(
            "Received-SPF: None (mailfrom) identity=mailfrom; client-ip=192.0.2.1; \
             helo=mail.example.com; envelope-from=user@example.com; receiver=example.net "
                .into()
        )
    );
}

#[test]
fn pass_prepends_and_remembers_the_domain() {
    let d = block_on(PolicydSpf::default().decide(
        &zone(),
        &msg("192.0.2.5", "mail.example.com", "u@pass.example"),
    ));
    assert_eq!(
        d.action,
        Action::Prepend(
            "Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.5; \
             helo=mail.example.com; envelope-from=u@pass.example; receiver=example.net "
                .into()
        )
    );
    assert_eq!(d.verified_sender_domain(), Some("pass.example"));
}

#[test]
fn mail_from_none_keeps_the_helo_header() {
    let a = decide(
        &PolicydSpf::default(),
        &msg("192.0.2.5", "helo-pass.example", "u@nothing.example"),
    );
    assert_eq!(
        a,
        Action::Prepend(
            "Received-SPF: Pass (sender SPF authorized) identity=helo; client-ip=192.0.2.5; \
             helo=helo-pass.example; envelope-from=u@nothing.example; receiver=example.net "
                .into()
        )
    );
}

#[test]
fn helo_fail_rejects_before_mail_from() {
    let d = block_on(PolicydSpf::default().decide(
        &zone(),
        &msg("192.0.2.5", "helo-fail.example", "u@pass.example"),
    ));
    assert_eq!(
        d.action,
        Action::Reply(
            "550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see \
             http://www.openspf.net/Why?s=helo;id=helo-fail.example;ip=192.0.2.5;r=example.net"
                .into()
        )
    );
    assert!(d.mail_from.is_none());
}

#[test]
fn helo_null_rejects_only_null_senders() {
    let p = PolicydSpf {
        helo_reject: RejectPolicy::Null,
        ..PolicydSpf::default()
    };
    let a = decide(&p, &msg("192.0.2.5", "helo-fail.example", "u@pass.example"));
    assert!(matches!(a, Action::Prepend(ref h) if h.starts_with("Received-SPF: Pass (mailfrom)")));
    let a = decide(&p, &msg("192.0.2.5", "helo-fail.example", ""));
    assert!(
        matches!(a, Action::Reply(ref r) if r.starts_with("550 5.7.23 ") && r.contains("s=helo;"))
    );
}

#[test]
fn reject_policies_follow_policyd_spf() {
    let with = |p: RejectPolicy| PolicydSpf {
        mail_from_reject: p,
        ..PolicydSpf::default()
    };
    let m_fail = msg("192.0.2.1", "mail.example.com", "a@b.example");
    let m_soft = msg("192.0.2.1", "mail.example.com", "a@soft.example");
    let m_neutral = msg("192.0.2.1", "mail.example.com", "a@neutral.example");
    let rejects =
        |p: RejectPolicy, m: &MessageInfo<'_>| matches!(decide(&with(p), m), Action::Reply(_));
    assert!(rejects(RejectPolicy::Fail, &m_fail) && !rejects(RejectPolicy::Fail, &m_soft));
    assert!(
        rejects(RejectPolicy::Softfail, &m_soft) && !rejects(RejectPolicy::Softfail, &m_neutral)
    );
    assert!(rejects(RejectPolicy::SpfNotPass, &m_neutral));
    assert_eq!(
        decide(&with(RejectPolicy::Softfail), &m_soft),
        Action::Reply(
            "550 5.7.23 Message rejected due to: domain owner discourages use of this host. \
             Please see http://www.openspf.net/Why?s=mfrom;id=a@soft.example;ip=192.0.2.1;r=example.net"
                .into()
        )
    );
    // False only prepends, even a fail.
    assert_eq!(
        decide(&with(RejectPolicy::False), &m_fail),
        Action::Prepend(
            "Received-SPF: Fail (mailfrom) identity=mailfrom; client-ip=192.0.2.1; \
             helo=mail.example.com; envelope-from=a@b.example; receiver=example.net "
                .into()
        )
    );
}

#[test]
fn permerror_and_temperror_knobs() {
    let m_perm = msg("192.0.2.1", "mail.example.com", "a@broken.example");
    let m_temp = msg("192.0.2.1", "mail.example.com", "a@slow.example");
    let default = PolicydSpf::default();
    assert!(
        matches!(decide(&default, &m_perm), Action::Prepend(ref h) if h.starts_with("Received-SPF: Permerror (mailfrom)"))
    );
    assert!(
        matches!(decide(&default, &m_temp), Action::Prepend(ref h) if h.starts_with("Received-SPF: Temperror (mailfrom)"))
    );
    let strict = PolicydSpf {
        permerror_reject: true,
        temperror_defer: true,
        ..PolicydSpf::default()
    };
    assert!(
        matches!(decide(&strict, &m_perm), Action::Reply(ref r) if r.starts_with("550 5.7.24 Message rejected due to: "))
    );
    assert!(
        matches!(decide(&strict, &m_temp), Action::DeferIfPermit(ref r) if r.starts_with("4.7.24 Message deferred due to: "))
    );
    let plain = PolicydSpf {
        enhanced_status_codes: false,
        ..strict.clone()
    };
    assert!(
        matches!(decide(&plain, &m_perm), Action::Reply(ref r) if r.starts_with("550 Message rejected"))
    );
    // False never rejects or defers, not even errors.
    let off = PolicydSpf {
        mail_from_reject: RejectPolicy::False,
        ..strict
    };
    assert!(matches!(decide(&off, &m_temp), Action::Prepend(_)));
}

#[test]
fn reject_not_pass_domains_reason_message_test_only_hide_receiver() {
    let forced = PolicydSpf {
        reject_not_pass_domains: vec!["Soft.Example".into()],
        ..PolicydSpf::default()
    };
    assert_eq!(
        decide(
            &forced,
            &msg("192.0.2.1", "mail.example.com", "a@soft.example")
        ),
        Action::Reply(
            "550 5.7.23 Message rejected due to: Receiver policy for SPF Softfail. Please see \
             http://www.openspf.net/Why?s=mfrom;id=a@soft.example;ip=192.0.2.1;r=example.net"
                .into()
        )
    );
    // Other domains keep the normal policy (softfail is only prepended).
    assert!(matches!(
        decide(
            &forced,
            &msg("192.0.2.1", "mail.example.com", "a@neutral.example")
        ),
        Action::Prepend(_)
    ));
    let custom = PolicydSpf {
        reason_message: "SPF says {spf} ({rejectdefer}); see {url}".into(),
        ..PolicydSpf::default()
    };
    assert_eq!(
        decide(
            &custom,
            &msg("192.0.2.1", "mail.example.com", "a@b.example")
        ),
        Action::Reply(
            "550 5.7.23 SPF says SPF fail - not authorized (rejected); see \
             http://www.openspf.net/Why?s=mfrom;id=a@b.example;ip=192.0.2.1;r=example.net"
                .into()
        )
    );
    let test_only = PolicydSpf {
        enforce: false,
        ..PolicydSpf::default()
    };
    assert_eq!(
        decide(
            &test_only,
            &msg("192.0.2.1", "mail.example.com", "a@b.example")
        ),
        Action::Dunno
    );
    let hidden = PolicydSpf {
        hide_receiver: true,
        ..PolicydSpf::default()
    };
    assert_eq!(
        decide(
            &hidden,
            &msg("192.0.2.1", "mail.example.com", "user@example.com")
        ),
        Action::Prepend(
            "Received-SPF: None (mailfrom) identity=mailfrom; client-ip=192.0.2.1; \
             helo=mail.example.com; envelope-from=user@example.com; receiver=<UNKNOWN> "
                .into()
        )
    );
}

#[test]
fn whitelists_bypass_the_check() {
    let p = PolicydSpf {
        whitelist: vec!["198.51.100.0/24".parse().unwrap()],
        domain_whitelist: vec!["relay.example".into()],
        ..PolicydSpf::default()
    };
    assert_eq!(
        decide(&p, &msg("198.51.100.7", "mail.example.com", "a@b.example")),
        Action::Prepend(
            "X-Comment: SPF skipped for whitelisted relay - client-ip=198.51.100.7; \
             helo=mail.example.com; envelope-from=a@b.example; receiver=example.net "
                .into()
        )
    );
    assert!(matches!(
        decide(&p, &msg("192.0.2.1", "mail.example.com", "a@b.example")),
        Action::Prepend(ref h) if h.starts_with("X-Comment: SPF skipped for whitelisted relay domain - client-ip=192.0.2.1;")
    ));
    let by_name = PolicydSpf {
        helo_whitelist: vec!["relay.example".into()],
        domain_whitelist_ptr: vec!["ptr.example".into()],
        ..PolicydSpf::default()
    };
    assert!(matches!(
        decide(&by_name, &msg("192.0.2.44", "relay.example", "a@b.example")),
        Action::Prepend(ref h) if h.starts_with("X-Comment: SPF skipped for whitelisted HELO domain - client-ip=192.0.2.44;")
    ));
    // The HELO name must resolve to the client.
    assert!(matches!(
        decide(&by_name, &msg("192.0.2.45", "relay.example", "a@b.example")),
        Action::Reply(_)
    ));
    assert!(matches!(
        decide(
            &by_name,
            &msg("192.0.2.45", "mail.example.com", "a@b.example")
        ),
        Action::Reply(_)
    ));
    assert!(matches!(
        decide(&by_name, &msg("192.0.2.46", "mail.example.com", "a@b.example")),
        Action::Prepend(ref h) if h.starts_with("X-Comment: SPF skipped for PTR whitelisted relay domain - ")
    ));
    // Another client of the same sender is checked (and rejected).
    assert!(matches!(
        decide(&p, &msg("192.0.2.2", "mail.example.com", "a@b.example")),
        Action::Reply(_)
    ));
}

#[test]
fn no_check_and_missing_identities_give_dunno() {
    let p = PolicydSpf {
        helo_reject: RejectPolicy::NoCheck,
        mail_from_reject: RejectPolicy::NoCheck,
        ..PolicydSpf::default()
    };
    assert_eq!(
        decide(&p, &msg("192.0.2.1", "mail.example.com", "a@b.example")),
        Action::Dunno
    );
    assert_eq!(
        decide(&PolicydSpf::default(), &msg("192.0.2.1", "", "")),
        Action::Dunno
    );
}

#[test]
fn memo_answers_once_per_message() {
    let p = PolicydSpf::default();
    let mut memo = MessageMemo::default();
    let first = block_on(p.decide(
        &zone(),
        &msg("192.0.2.5", "mail.example.com", "u@pass.example"),
    ));
    assert!(memo.repeat("A1").is_none());
    memo.remember("A1", &first);
    assert_eq!(memo.repeat("A1").unwrap().action, Action::Dunno);
    assert!(memo.repeat("B2").is_none());
    let reject = block_on(p.decide(
        &zone(),
        &msg("192.0.2.1", "mail.example.com", "a@b.example"),
    ));
    memo.remember("B2", &reject);
    assert_eq!(memo.repeat("B2").unwrap().action, reject.action);
    assert_eq!(memo.verified_sender_domain("A1"), Some("pass.example"));
    assert_eq!(memo.verified_sender_domain("B2"), None);
    // Empty instances are never remembered; the oldest message goes first when full.
    memo.remember("", &first);
    assert!(memo.repeat("").is_none());
    let mut small = MessageMemo::with_capacity(2);
    for id in ["m1", "m2", "m3"] {
        small.remember(id, &first);
    }
    assert_eq!(small.len(), 2);
    assert!(small.repeat("m1").is_none() && small.repeat("m3").is_some());
}

#[test]
fn message_info_from_a_policy_request() {
    let mut req = crate::request::Request::rcpt(
        "192.0.2.5".parse().unwrap(),
        "u@pass.example",
        "Bob@Example.NET",
    );
    req.helo_name = "mail.example.com".into();
    let m = MessageInfo::from_request(&req, UnixTime(7));
    assert_eq!(
        (&*m.helo, &*m.sender, &*m.receiver),
        ("mail.example.com", "u@pass.example", "example.net")
    );
    req.recipient.clear();
    assert_eq!(
        MessageInfo::from_request(&req, UnixTime(7)).receiver,
        "<UNKNOWN>"
    );
}

#[test]
fn reject_policy_spellings() {
    assert_eq!("SPF_Not_Pass".parse(), Ok(RejectPolicy::SpfNotPass));
    assert_eq!("No_Check".parse(), Ok(RejectPolicy::NoCheck));
    assert_eq!("false".parse(), Ok(RejectPolicy::False));
    assert!("Maybe".parse::<RejectPolicy>().is_err());
}

#[test]
fn timed_out_answers_as_a_temperror() {
    let m = msg("192.0.2.1", "mail.example.com", "a@slow.example");
    let d = PolicydSpf::default().timed_out(&m);
    assert_eq!(
        d.action,
        Action::Prepend(
            "Received-SPF: Temperror (mailfrom) identity=mailfrom; client-ip=192.0.2.1; \
             helo=mail.example.com; envelope-from=a@slow.example; receiver=example.net "
                .into()
        )
    );
    assert_eq!(d.mail_from.unwrap().result, SpfResult::TempError);
    let defer = PolicydSpf {
        temperror_defer: true,
        ..PolicydSpf::default()
    };
    let helo_only = msg("192.0.2.1", "mail.example.com", "");
    let d = defer.timed_out(&helo_only);
    assert!(
        matches!(d.action, Action::DeferIfPermit(ref t) if t.starts_with("4.7.24 Message deferred due to: SPF check exceeded its time budget. Please see http://www.openspf.net/Why?s=helo;id=mail.example.com;"))
    );
    assert!(d.helo.is_some() && d.mail_from.is_none());
}

mod never_panics {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::super::{SpfChecker, SpfQuery, SpfResult};
    use crate::clock::UnixTime;
    use crate::dns::{FakeResolver, Txt, ZoneRecord, block_on};

    /// Fragments of SPF syntax, so random records reach deep into the parser and evaluator.
    const PIECES: &[&str] = &[
        "a",
        "mx",
        "ptr",
        "all",
        "-all",
        "~all",
        "?",
        "+",
        "include:",
        "exists:",
        "ip4:",
        "ip6:",
        "redirect=",
        "exp=",
        "foo=",
        "%{",
        "}",
        "%{d}",
        "%{i}",
        "%{ir}",
        "%{l1r-}",
        "%{p}",
        "%{h}",
        "%%",
        "%_",
        "%-",
        "/",
        "//",
        "24",
        "0",
        "128",
        "33",
        ":",
        ".",
        "example",
        "fuzz.example",
        "loop.example",
        "192.0.2.1",
        "::1",
        " ",
        "  ",
        "\t",
        "é",
    ];

    fn zone(record: &str) -> FakeResolver {
        let mut z = FakeResolver::new();
        z.add("fuzz.example", ZoneRecord::Txt(Txt::single(record)));
        z.add("fuzz.example", ZoneRecord::A(Ipv4Addr::new(192, 0, 2, 1)));
        z.add("loop.example", ZoneRecord::Txt(Txt::single(record)));
        z.add(
            "1.2.0.192.in-addr.arpa",
            ZoneRecord::Ptr("fuzz.example".into()),
        );
        z
    }

    proptest! {
        /// Any record evaluates to a result without panicking; a selected record never gives
        /// "none" (a missing include/redirect target is a permerror, RFC 7208 5.2 and 6.1).
        #[test]
        fn random_records_evaluate(pieces in proptest::collection::vec(0..PIECES.len(), 0..24), ip in any::<u32>()) {
            let body: String = pieces.iter().map(|&i| PIECES[i]).collect();
            let record = format!("v=spf1 {body}");
            let z = zone(&record);
            let q = SpfQuery {
                ip: Ipv4Addr::from(ip).into(),
                helo: "h.example",
                sender: "u@fuzz.example",
                now: UnixTime(0),
            };
            let out = block_on(SpfChecker::default().check_mail_from(&z, &q));
            prop_assert_ne!(out.result, SpfResult::None, "{}", record);
        }

        /// Arbitrary printable text after the version never panics either.
        #[test]
        fn random_text_evaluates(body in "[ -~]{0,60}") {
            let record = format!("v=spf1 {body}");
            let z = zone(&record);
            let q = SpfQuery {
                ip: Ipv4Addr::new(192, 0, 2, 1).into(),
                helo: "h.example",
                sender: "u@fuzz.example",
                now: UnixTime(0),
            };
            let out = block_on(SpfChecker::default().check_mail_from(&z, &q));
            prop_assert_ne!(out.result, SpfResult::None, "{}", record);
        }
    }
}
