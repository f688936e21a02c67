//! Static allow and deny lists, the first check of the policy chain.
//!
//! Entries are written as strings in the config (`[policy] allow = [...]`, `deny = [...]`,
//! parsed by [`ListEntry::parse`]):
//! - `192.0.2.1`, `10.0.0.0/8`, `2001:db8::/32`: client address or network;
//! - `client:mail.example.com` (exact verified name) or `client:.example.com` (any subdomain,
//!   Postfix's `parent_domain_matches_subdomains` style);
//! - `sender:user@example.com`, `sender:user@` (that local part in any domain),
//!   `sender:@example.com` or `sender:example.com` (the domain), `sender:.example.com`
//!   (its subdomains); `recipient:...` likewise;
//! - `sasl:user`: the authenticated SASL user name (exact).
//!
//! Matching is case-insensitive except for SASL names. The allow list is checked before the
//! deny list, so a specific host can be exempted from a denied network. An allow match means
//! "skip mxguard's other checks" and answers `DUNNO`, never `OK`: `OK` from a policy service
//! would also skip the Postfix restrictions after it (e.g. `reject_unauth_destination`) and
//! could open a relay. A deny match answers `REJECT` with the configured text.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::greylist::canonical_ip;
use crate::request::Request;

/// A list entry that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid list entry '{entry}': {message}")]
pub struct ListError {
    pub entry: String,
    pub message: String,
}

/// A host name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// Exactly this name (lowercased).
    Exact(String),
    /// Any subdomain of this name, stored with its leading dot (lowercased).
    Subdomains(String),
}

impl NamePattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => name.eq_ignore_ascii_case(n),
            NamePattern::Subdomains(suffix) => {
                name.len() > suffix.len()
                    && name
                        .get(name.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// An envelope address pattern (sender or recipient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// `user@domain`, exact.
    Address(String),
    /// `user@`: that local part in any domain.
    LocalPart(String),
    /// `@domain` / `domain` / `.domain`.
    Domain(NamePattern),
}

impl AddressPattern {
    fn matches(&self, address: &str) -> bool {
        match self {
            AddressPattern::Address(a) => address.eq_ignore_ascii_case(a),
            AddressPattern::LocalPart(l) => address
                .rsplit_once('@')
                .is_some_and(|(local, _)| local.eq_ignore_ascii_case(l)),
            AddressPattern::Domain(d) => address
                .rsplit_once('@')
                .is_some_and(|(_, domain)| d.matches(domain)),
        }
    }
}

/// One allow or deny entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// Client address or network.
    Network(IpNet),
    /// Verified client host name.
    Client(NamePattern),
    Sender(AddressPattern),
    Recipient(AddressPattern),
    /// SASL user name, exact (case-sensitive, as Dovecot user names can be).
    Sasl(String),
}

fn fail(entry: &str, message: &str) -> ListError {
    ListError {
        entry: entry.to_owned(),
        message: message.to_owned(),
    }
}

fn parse_name(entry: &str, name: &str) -> Result<NamePattern, ListError> {
    let name = name.to_ascii_lowercase();
    let bare = name.strip_prefix('.').unwrap_or(&name);
    if bare.is_empty() || bare.contains(|c: char| c.is_whitespace() || c == '@' || c == '/') {
        return Err(fail(entry, "expected a host or domain name"));
    }
    Ok(if name.starts_with('.') {
        NamePattern::Subdomains(name)
    } else {
        NamePattern::Exact(name)
    })
}

fn parse_address(entry: &str, value: &str) -> Result<AddressPattern, ListError> {
    if value.contains(char::is_whitespace) {
        return Err(fail(entry, "white space in address"));
    }
    match value.rsplit_once('@') {
        Some(("", domain)) => Ok(AddressPattern::Domain(parse_name(entry, domain)?)),
        Some((local, "")) => Ok(AddressPattern::LocalPart(local.to_ascii_lowercase())),
        Some(_) => Ok(AddressPattern::Address(value.to_ascii_lowercase())),
        None => Ok(AddressPattern::Domain(parse_name(entry, value)?)),
    }
}

impl ListEntry {
    /// Parses one entry (syntax in the module docs).
    pub fn parse(entry: &str) -> Result<ListEntry, ListError> {
        let s = entry.trim();
        if s.is_empty() {
            return Err(fail(entry, "empty entry"));
        }
        if let Some((kind, value)) = s.split_once(':') {
            let value = value.trim();
            match kind {
                "client" => return parse_name(entry, value).map(ListEntry::Client),
                "sender" => return parse_address(entry, value).map(ListEntry::Sender),
                "recipient" => return parse_address(entry, value).map(ListEntry::Recipient),
                "sasl" if !value.is_empty() => return Ok(ListEntry::Sasl(value.to_owned())),
                "sasl" => return Err(fail(entry, "empty SASL user name")),
                _ => {} // IPv6 contains ':' too
            }
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(ListEntry::Network(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ListEntry::Network(IpNet::from(ip)));
        }
        Err(fail(
            entry,
            "expected an IP address, a CIDR network, or client:, sender:, recipient:, sasl:",
        ))
    }

    /// Whether the entry matches the request.
    pub fn matches(&self, req: &Request) -> bool {
        match self {
            ListEntry::Network(net) => net.contains(&canonical_ip(req.client_ip)),
            ListEntry::Client(p) => req.client_name.as_deref().is_some_and(|n| p.matches(n)),
            ListEntry::Sender(p) => !req.sender.is_empty() && p.matches(&req.sender),
            ListEntry::Recipient(p) => !req.recipient.is_empty() && p.matches(&req.recipient),
            ListEntry::Sasl(u) => req.sasl_username.as_deref() == Some(u.as_str()),
        }
    }
}

/// The outcome of the static lists for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    Allow,
    Deny,
    None,
}

/// The validated allow and deny lists.
#[derive(Debug, Clone, Default)]
pub struct StaticLists {
    allow: Vec<ListEntry>,
    deny: Vec<ListEntry>,
    deny_text: String,
}

/// The reject text used when none is configured.
pub const DEFAULT_DENY_TEXT: &str = "5.7.1 Access denied by local policy";

impl StaticLists {
    /// Builds the lists; an empty `deny_text` becomes [`DEFAULT_DENY_TEXT`].
    pub fn new(allow: Vec<ListEntry>, deny: Vec<ListEntry>, deny_text: String) -> Self {
        let deny_text = if deny_text.trim().is_empty() {
            DEFAULT_DENY_TEXT.to_owned()
        } else {
            deny_text
        };
        StaticLists {
            allow,
            deny,
            deny_text,
        }
    }

    /// Allow is checked before deny (see module docs).
    pub fn check(&self, req: &Request) -> ListMatch {
        if self.allow.iter().any(|e| e.matches(req)) {
            ListMatch::Allow
        } else if self.deny.iter().any(|e| e.matches(req)) {
            ListMatch::Deny
        } else {
            ListMatch::None
        }
    }

    /// The text of the `REJECT` for denied requests.
    pub fn deny_text(&self) -> &str {
        &self.deny_text
    }
}
