//! postgrey's whitelist files: `whitelist_clients` and `whitelist_recipients`.
//!
//! The parsers take a file's text (the binary reads the files and passes their path as the
//! source name) and accept Debian's `/etc/postgrey/whitelist_clients` and
//! `whitelist_recipients` as they are. Formats (postgrey 1.37 `read_clients_whitelists`,
//! `read_recipients_whitelists`): one entry per line, `#` starts a comment anywhere on the
//! line, blank lines ignored.
//!
//! Clients:
//! - `/regex/`: case-insensitive, matched against the verified client name (`unknown` when
//!   Postfix could not verify it, as postgrey sees it);
//! - `a.b.c.d` or `a.b.c.d/len`: IPv4 address or network; `a.b.c`: a /24;
//! - `a.b`: a /16 (deliberate difference: postgrey documents /16 but builds /24, a bug);
//! - anything with two `:`, optionally `/len`: IPv6 address or network;
//! - any other token: a host name suffix matching that name and its subdomains.
//!
//! Recipients (access(5) style): `/regex/` against the whole address; `user@domain` (also
//! `user+ext@domain`); `user@` (any domain); `domain` (that domain and its subdomains).
//!
//! Unlike postgrey, which warns and skips, a line that cannot be parsed (bad regex, bad
//! address, embedded white space) is an error naming the file and line: a config check should
//! catch it. Regexes use Rust's `regex` syntax, which covers what the shipped files use.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// A whitelist line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct WhitelistError {
    /// The file (or other source) name given to `parse`.
    pub source_name: String,
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Case-insensitive regexes matched as one [`RegexSet`] (one pass over the client name
/// whatever the number of entries; postgrey's shipped file has 34).
#[derive(Debug, Clone, Default)]
struct Patterns {
    sources: Vec<String>,
    set: Option<RegexSet>,
}

impl Patterns {
    fn push(&mut self, re: &Regex) {
        self.sources.push(re.as_str().to_owned());
    }

    fn extend(&mut self, other: Patterns) {
        self.sources.extend(other.sources);
    }

    /// Compiles the set; every pattern compiled alone already, so this fails only on size
    /// limits, in which case the patterns are matched one by one.
    fn build(&mut self) {
        self.set = RegexSetBuilder::new(&self.sources)
            .case_insensitive(true)
            .build()
            .ok();
    }

    fn len(&self) -> usize {
        self.sources.len()
    }

    fn is_match(&self, text: &str) -> bool {
        match &self.set {
            Some(set) => set.is_match(text),
            None => self.sources.iter().any(|p| {
                RegexBuilder::new(p)
                    .case_insensitive(true)
                    .build()
                    .is_ok_and(|r| r.is_match(text))
            }),
        }
    }
}

/// Parsed `whitelist_clients` entries (see module docs).
#[derive(Debug, Clone, Default)]
pub struct ClientWhitelist {
    regexes: Patterns,
    /// Lowercased host name suffixes.
    suffixes: Vec<String>,
    nets: Vec<IpNet>,
}

/// Parsed `whitelist_recipients` entries (see module docs).
#[derive(Debug, Clone, Default)]
pub struct RecipientWhitelist {
    regexes: Patterns,
    /// `user@domain`, lowercased.
    addresses: Vec<(String, String)>,
    /// `user@`, lowercased user.
    users: Vec<String>,
    /// `domain`, lowercased.
    domains: Vec<String>,
}

/// Lines of a whitelist file with comments stripped and white space trimmed, numbered from 1.
fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.split('#').next().unwrap_or_default().trim();
        (!line.is_empty()).then_some((i + 1, line))
    })
}

fn error(source: &str, line: usize, message: impl Into<String>) -> WhitelistError {
    WhitelistError {
        source_name: source.to_owned(),
        line,
        message: message.into(),
    }
}

/// `/regex/` with no white space inside (postgrey `^\/(\S+)\/$`), compiled case-insensitively.
fn parse_regex(source: &str, line: usize, entry: &str) -> Option<Result<Regex, WhitelistError>> {
    let inner = entry.strip_prefix('/')?.strip_suffix('/')?;
    if inner.is_empty() || inner.contains(char::is_whitespace) {
        return None;
    }
    Some(
        RegexBuilder::new(inner)
            .case_insensitive(true)
            .build()
            .map_err(|e| error(source, line, format!("invalid regex /{inner}/: {e}"))),
    )
}

/// Dotted decimal with `n` parts of 1-3 digits each.
fn dotted_parts(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split('.') {
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n += 1;
    }
    Some(n)
}

fn parse_client_net(
    source: &str,
    line: usize,
    entry: &str,
) -> Option<Result<IpNet, WhitelistError>> {
    let bad = |what: &str| error(source, line, format!("invalid {what} '{entry}'"));
    let (addr, len) = match entry.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (entry, None),
    };
    if let Some(parts) = dotted_parts(addr) {
        let (text, prefix) = match (parts, len) {
            (4, None) => (addr.to_owned(), 32),
            (4, Some(l)) if l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()) => {
                match l.parse::<u8>() {
                    Ok(p) => (addr.to_owned(), p),
                    Err(_) => return Some(Err(bad("IPv4 prefix length"))),
                }
            }
            (3, None) => (format!("{addr}.0"), 24),
            (2, None) => (format!("{addr}.0.0"), 16),
            _ => return None,
        };
        let net = text
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .and_then(|a| ipnet::Ipv4Net::new(a, prefix).ok())
            .map(|n| IpNet::V4(n.trunc()));
        return Some(net.ok_or_else(|| bad("IPv4 address or network")));
    }
    if addr.matches(':').count() >= 2 {
        let net = match len {
            None => addr.parse::<IpAddr>().ok().map(IpNet::from),
            Some(l) => l
                .parse::<u8>()
                .ok()
                .and_then(|p| {
                    addr.parse::<IpAddr>()
                        .ok()
                        .and_then(|a| IpNet::new(a, p).ok())
                })
                .map(|n| n.trunc()),
        };
        return Some(net.ok_or_else(|| bad("IPv6 address or network")));
    }
    None
}

impl ClientWhitelist {
    /// Parses a `whitelist_clients` file; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Self, WhitelistError> {
        let mut wl = ClientWhitelist::default();
        for (line, entry) in entries(text) {
            if let Some(re) = parse_regex(source, line, entry) {
                wl.regexes.push(&re?);
            } else if let Some(net) = parse_client_net(source, line, entry) {
                wl.nets.push(net?);
            } else if entry.contains(char::is_whitespace) || entry.contains('/') {
                return Err(error(
                    source,
                    line,
                    format!("'{entry}' does not look like a host name, address or /regex/"),
                ));
            } else {
                wl.suffixes.push(entry.to_ascii_lowercase());
            }
        }
        wl.regexes.build();
        Ok(wl)
    }

    /// Adds the entries of `other` (several files combine, as repeated postgrey options do).
    pub fn merge(&mut self, other: ClientWhitelist) {
        self.regexes.extend(other.regexes);
        self.regexes.build();
        self.suffixes.extend(other.suffixes);
        self.nets.extend(other.nets);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.regexes.len() + self.suffixes.len() + self.nets.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a client is whitelisted. `client_name` is Postfix's verified name, `None` when
    /// unverified (postgrey then matches against the literal `unknown`).
    pub fn matches(&self, client_ip: IpAddr, client_name: Option<&str>) -> bool {
        let name = client_name.unwrap_or("unknown");
        if !self.suffixes.is_empty() {
            let lower = name.to_ascii_lowercase();
            // postgrey: `(?:^|\.)\Qname\E$`, i.e. the name itself or any subdomain.
            let hit = self.suffixes.iter().any(|s| {
                lower
                    .strip_suffix(s.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
            });
            if hit {
                return true;
            }
        }
        if self.regexes.is_match(name) {
            return true;
        }
        let ip = canonical_ip(client_ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are treated as the IPv4 address.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl RecipientWhitelist {
    /// Parses a `whitelist_recipients` file; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Self, WhitelistError> {
        let mut wl = RecipientWhitelist::default();
        for (line, entry) in entries(text) {
            if let Some(re) = parse_regex(source, line, entry) {
                wl.regexes.push(&re?);
                continue;
            }
            if entry.contains(char::is_whitespace) {
                return Err(error(
                    source,
                    line,
                    format!("'{entry}' does not look like an address"),
                ));
            }
            let lower = entry.to_ascii_lowercase();
            match lower.split_once('@') {
                Some((user, "")) => wl.users.push(user.to_owned()),
                Some((user, domain)) => wl.addresses.push((user.to_owned(), domain.to_owned())),
                None => wl.domains.push(lower),
            }
        }
        wl.regexes.build();
        Ok(wl)
    }

    /// Adds the entries of `other`.
    pub fn merge(&mut self, other: RecipientWhitelist) {
        self.regexes.extend(other.regexes);
        self.regexes.build();
        self.addresses.extend(other.addresses);
        self.users.extend(other.users);
        self.domains.extend(other.domains);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.regexes.len() + self.addresses.len() + self.users.len() + self.domains.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a recipient address is whitelisted.
    pub fn matches(&self, recipient: &str) -> bool {
        if self.regexes.is_match(recipient) {
            return true;
        }
        let lower = recipient.to_ascii_lowercase();
        // postgrey: `^\Quser\E(?:\+[^@]+)?\@` — the user, optionally with a +extension.
        let user_then_at = |user: &str| -> Option<&str> {
            let rest = lower.strip_prefix(user)?;
            if let Some(after) = rest.strip_prefix('@') {
                return Some(after);
            }
            let ext = rest.strip_prefix('+')?;
            let at = ext.find('@')?;
            (at > 0).then(|| ext.get(at + 1..).unwrap_or_default())
        };
        if self.users.iter().any(|u| user_then_at(u).is_some()) {
            return true;
        }
        if self
            .addresses
            .iter()
            .any(|(u, d)| user_then_at(u).is_some_and(|dom| dom == d))
        {
            return true;
        }
        // postgrey: `(?:\@|\.)\Qdomain\E$`.
        self.domains.iter().any(|d| {
            lower
                .strip_suffix(d.as_str())
                .is_some_and(|rest| rest.ends_with('@') || rest.ends_with('.'))
        })
    }
}
