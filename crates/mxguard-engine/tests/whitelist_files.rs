//! postgrey whitelist file formats (whitelist_clients, whitelist_recipients) and the static
//! list entry syntax.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::IpAddr;

use mxguard_engine::{ClientWhitelist, ListEntry, RecipientWhitelist, Request};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const CLIENTS: &str = include_str!("fixtures/whitelist_clients");
const RECIPIENTS: &str = include_str!("fixtures/whitelist_recipients");

#[test]
fn client_fixture_every_entry_kind() {
    let wl = ClientWhitelist::parse("fixtures/whitelist_clients", CLIENTS).unwrap();
    assert_eq!(wl.len(), 11);
    let any = ip("192.0.2.99");
    // Host name suffixes: the name and its subdomains, case-insensitive, not look-alikes.
    assert!(wl.matches(any, Some("bigmail.example")));
    assert!(wl.matches(any, Some("MX1.BigMail.Example")));
    assert!(!wl.matches(any, Some("notbigmail.example")));
    assert!(wl.matches(any, Some("mx.retry-broken.example")));
    // Regexes.
    assert!(wl.matches(any, Some("out12.mailer.example")));
    assert!(!wl.matches(any, Some("out12.mailer.example.evil")));
    assert!(wl.matches(any, Some("smtp3-g21.provider.example")));
    assert!(wl.matches(any, Some("a.b.relay.example")));
    assert!(!wl.matches(any, None));
    // IPv4 address, network, partial /24, partial /16.
    assert!(wl.matches(ip("192.0.2.10"), None));
    assert!(!wl.matches(ip("192.0.2.11"), None));
    assert!(wl.matches(ip("198.51.100.127"), None));
    assert!(!wl.matches(ip("198.51.100.128"), None));
    assert!(wl.matches(ip("203.0.113.255"), None));
    assert!(wl.matches(ip("10.20.255.1"), None));
    assert!(!wl.matches(ip("10.21.0.1"), None));
    // IPv4-mapped IPv6 counts as IPv4.
    assert!(wl.matches(ip("::ffff:192.0.2.10"), None));
    // IPv6 address and network.
    assert!(wl.matches(ip("2001:db8:1::25"), None));
    assert!(!wl.matches(ip("2001:db8:1::26"), None));
    assert!(wl.matches(ip("2001:db8:ff12::1"), None));
    assert!(!wl.matches(ip("2001:db8:fe00::1"), None));
}

#[test]
fn recipient_fixture_every_entry_kind() {
    let wl = RecipientWhitelist::parse("fixtures/whitelist_recipients", RECIPIENTS).unwrap();
    assert_eq!(wl.len(), 5);
    assert!(wl.matches("postmaster@any.example"));
    assert!(wl.matches("PostMaster+tag@any.example"));
    assert!(!wl.matches("postmasterx@any.example"));
    assert!(!wl.matches("xpostmaster@any.example"));
    assert!(wl.matches("sales@shop.example"));
    assert!(wl.matches("sales+q4@shop.example"));
    assert!(!wl.matches("sales@shop.example.org"));
    assert!(!wl.matches("sales@other.example"));
    assert!(wl.matches("anyone@noreply.example"));
    assert!(wl.matches("anyone@eu.noreply.example"));
    assert!(!wl.matches("anyone@xnoreply.example"));
    assert!(wl.matches("list-dev@lists.example"));
    assert!(!wl.matches("owner@lists.example"));
}

#[test]
fn files_merge() {
    let mut a = ClientWhitelist::parse("a", "one.example\n").unwrap();
    let b = ClientWhitelist::parse("b", "192.0.2.0/24\n").unwrap();
    a.merge(b);
    assert_eq!(a.len(), 2);
    assert!(a.matches(ip("192.0.2.1"), Some("x.one.example")));
    assert!(a.matches(ip("192.0.2.1"), None));
    let mut r = RecipientWhitelist::parse("a", "abuse@\n").unwrap();
    r.merge(RecipientWhitelist::parse("b", "example.org\n").unwrap());
    assert!(r.matches("abuse@x.example") && r.matches("u@example.org"));
}

#[test]
fn errors_name_source_and_line() {
    let e = ClientWhitelist::parse("/etc/x", "# c\nok.example\n/[unclosed/\n").unwrap_err();
    assert_eq!((e.source_name.as_str(), e.line), ("/etc/x", 3));
    assert!(e.to_string().starts_with("/etc/x:3: invalid regex"), "{e}");
    let e = ClientWhitelist::parse("f", "192.0.2.300\n").unwrap_err();
    assert_eq!(e.line, 1);
    let e = ClientWhitelist::parse("f", "\n\n2001:db8::/200\n").unwrap_err();
    assert_eq!(e.line, 3);
    let e = ClientWhitelist::parse("f", "two words\n").unwrap_err();
    assert_eq!(e.line, 1);
    let e = RecipientWhitelist::parse("g", "a@b\nc d\n").unwrap_err();
    assert_eq!((e.source_name.as_str(), e.line), ("g", 2));
    assert!(ClientWhitelist::parse("empty", "").unwrap().is_empty());
}

/// Debian's packaged file, parsed as it is when the postgrey package is installed (the
/// fixture above covers the formats when it is not).
#[test]
fn debian_packaged_files_parse_when_present() {
    for path in [
        "/etc/postgrey/whitelist_clients",
        "/etc/postfix/postgrey_whitelist_clients",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            let wl = ClientWhitelist::parse(path, &text).unwrap();
            assert!(wl.len() > 100, "{path}: {} entries", wl.len());
        }
    }
    for path in [
        "/etc/postgrey/whitelist_recipients",
        "/etc/postfix/postgrey_whitelist_recipients",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            let wl = RecipientWhitelist::parse(path, &text).unwrap();
            assert!(wl.matches("postmaster@example.org"), "{path}");
        }
    }
}

fn req(client: &str, name: Option<&str>, sender: &str, rcpt: &str, sasl: Option<&str>) -> Request {
    let mut r = Request::rcpt(ip(client), sender, rcpt);
    r.client_name = name.map(str::to_owned);
    r.sasl_username = sasl.map(str::to_owned);
    r
}

#[test]
fn static_list_entries() {
    let base = req(
        "192.0.2.1",
        Some("mail.example.com"),
        "u@example.com",
        "r@dest.example",
        Some("Joe"),
    );
    let m = |e: &str, r: &Request| ListEntry::parse(e).unwrap().matches(r);
    assert!(m("192.0.2.1", &base));
    assert!(m("192.0.2.0/24", &base));
    assert!(!m("10.0.0.0/8", &base));
    assert!(m("client:mail.example.com", &base));
    assert!(m("client:MAIL.example.com", &base));
    assert!(m("client:.example.com", &base));
    assert!(!m("client:.mail.example.com", &base));
    assert!(!m("client:example.com", &base));
    assert!(m("sender:u@example.com", &base));
    assert!(m("sender:u@", &base));
    assert!(m("sender:@example.com", &base));
    assert!(m("sender:example.com", &base));
    assert!(!m("sender:.example.com", &base));
    assert!(!m("sender:v@example.com", &base));
    assert!(m("recipient:dest.example", &base));
    assert!(!m("recipient:u@example.com", &base));
    assert!(m("sasl:Joe", &base));
    assert!(!m("sasl:joe", &base));
    let v6 = req("2001:db8::5", None, "", "r@dest.example", None);
    assert!(m("2001:db8::/32", &v6));
    assert!(m("2001:db8::5", &v6));
    assert!(!m("client:.example.com", &v6));
    // The null sender never matches a sender entry.
    assert!(!m("sender:example.com", &v6));
    for bad in [
        "",
        "nonsense",
        "client:",
        "sasl:",
        "sender:a b",
        "10.0.0.0/33",
        "foo:bar",
    ] {
        assert!(ListEntry::parse(bad).is_err(), "{bad:?} should not parse");
    }
    let e = ListEntry::parse("10.0.0.0/33").unwrap_err();
    assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
}
