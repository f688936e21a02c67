//! HELO and client-name checks, as Postfix's `reject_invalid_helo_hostname`,
//! `reject_non_fqdn_helo_hostname`, `reject_unknown_reverse_client_hostname` and
//! `reject_unknown_client_hostname` (postconf(5)) do, plus "HELO claims to be us".
//!
//! [`HeloChecks::helo_problem`] looks at the HELO argument alone (no DNS);
//! [`HeloChecks::reverse_dns`] does forward-confirmed reverse DNS (FCrDNS) through the
//! [`Resolver`]. Clients in private, loopback, link-local and CGNAT ranges are exempt by default
//! ([`HeloChecks::is_exempt`]): internal hosts often have no reverse DNS, and flagging them is
//! the RDNS_NONE false positive the seed posts describe. This module only reports findings; the
//! policy service maps each to its configured action.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::dns::{Lookup, Resolver};

/// What is wrong with a HELO argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeloProblem {
    /// No HELO/EHLO argument at all.
    Missing,
    /// Not a valid host name nor an address literal (`reject_invalid_helo_hostname`).
    InvalidSyntax,
    /// A valid name without a dot (`reject_non_fqdn_helo_hostname`).
    NotFqdn,
    /// One of this server's own names.
    ClaimsOurName,
    /// One of this server's own addresses (literal or bare).
    ClaimsOurAddress,
}

impl HeloProblem {
    /// A short closed-set name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HeloProblem::Missing => "helo_missing",
            HeloProblem::InvalidSyntax => "helo_invalid",
            HeloProblem::NotFqdn => "helo_non_fqdn",
            HeloProblem::ClaimsOurName => "helo_our_name",
            HeloProblem::ClaimsOurAddress => "helo_our_address",
        }
    }
}

/// The outcome of forward-confirmed reverse DNS for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReverseDns {
    /// A PTR name whose A/AAAA records include the client.
    Confirmed(String),
    /// No PTR record (`reject_unknown_reverse_client_hostname`).
    NoPtr,
    /// PTR names exist but none resolves back to the client (`reject_unknown_client_hostname`).
    Forged(String),
    /// A lookup failed or timed out: Postfix answers 450 here, never 5xx.
    TempFail,
}

/// Settings of the HELO / client-name checks.
#[derive(Debug, Clone)]
pub struct HeloChecks {
    /// This server's host names (the HELO must not claim them).
    pub our_names: Vec<String>,
    /// This server's addresses.
    pub our_addresses: Vec<IpAddr>,
    /// Clients never flagged.
    pub exempt: Vec<IpNet>,
}

impl Default for HeloChecks {
    fn default() -> Self {
        HeloChecks {
            our_names: Vec::new(),
            our_addresses: Vec::new(),
            exempt: default_exempt(),
        }
    }
}

/// Loopback, RFC 1918, CGNAT (RFC 6598), link-local, and their IPv6 counterparts (ULA RFC 4193).
pub fn default_exempt() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

impl HeloChecks {
    /// Whether the client is exempt from every check here.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.exempt.iter().any(|n| n.contains(&ip))
    }

    /// The first problem with the HELO argument, checked in this order: missing, syntax,
    /// claims our address, claims our name, not fully qualified.
    pub fn helo_problem(&self, helo: &str) -> Option<HeloProblem> {
        if helo.is_empty() {
            return Some(HeloProblem::Missing);
        }
        if let Some(ip) = address_literal(helo) {
            let ours = self.our_addresses.iter().any(|a| a.to_canonical() == ip);
            return ours.then_some(HeloProblem::ClaimsOurAddress);
        }
        // A bare address is no host name (Postfix rejects all-numeric names), but it is the
        // usual way to impersonate the server, so that finding comes first.
        if let Ok(ip) = helo.parse::<IpAddr>() {
            if self
                .our_addresses
                .iter()
                .any(|a| a.to_canonical() == ip.to_canonical())
            {
                return Some(HeloProblem::ClaimsOurAddress);
            }
            return Some(HeloProblem::InvalidSyntax);
        }
        if !valid_hostname(helo) {
            return Some(HeloProblem::InvalidSyntax);
        }
        let name = helo.strip_suffix('.').unwrap_or(helo);
        let claims_ours = self
            .our_names
            .iter()
            .any(|n| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(name));
        if claims_ours {
            return Some(HeloProblem::ClaimsOurName);
        }
        if !name.contains('.') {
            return Some(HeloProblem::NotFqdn);
        }
        None
    }

    /// Forward-confirmed reverse DNS: the client's PTR names (first 10), each looked up for
    /// the client's address family.
    pub async fn reverse_dns(&self, resolver: &dyn Resolver, ip: IpAddr) -> ReverseDns {
        let ip = ip.to_canonical();
        let names = match resolver.ptr(ip).await {
            Ok(Lookup::Records(r)) => r,
            Ok(_) => return ReverseDns::NoPtr,
            Err(_) => return ReverseDns::TempFail,
        };
        let mut temp_failed = false;
        for name in names.iter().take(10) {
            let confirmed = match ip {
                IpAddr::V4(v4) => match resolver.a(name).await {
                    Ok(l) => l.records().contains(&v4),
                    Err(_) => {
                        temp_failed = true;
                        false
                    }
                },
                IpAddr::V6(v6) => match resolver.aaaa(name).await {
                    Ok(l) => l.records().contains(&v6),
                    Err(_) => {
                        temp_failed = true;
                        false
                    }
                },
            };
            if confirmed {
                return ReverseDns::Confirmed(name.clone());
            }
        }
        match names.first() {
            _ if temp_failed => ReverseDns::TempFail,
            Some(first) => ReverseDns::Forged(first.clone()),
            None => ReverseDns::NoPtr,
        }
    }
}

/// Which findings reject, with Postfix's reply codes and texts (smtpd_check.c, postconf(5)
/// `invalid_hostname_reject_code` 501, `non_fqdn_reject_code` 504, `unknown_client_reject_code`
/// 450). Each flag is one of the chain's per-check enable switches.
#[derive(Debug, Clone, Default)]
pub struct HeloStep {
    pub checks: HeloChecks,
    /// `reject_invalid_helo_hostname` (also rejects a missing HELO).
    pub reject_invalid: bool,
    /// `reject_non_fqdn_helo_hostname`.
    pub reject_non_fqdn: bool,
    /// Reject a HELO that names this server or one of its addresses.
    pub reject_our_name: bool,
    /// `reject_unknown_reverse_client_hostname`: no PTR record.
    pub reject_unknown_reverse: bool,
    /// `reject_unknown_client_hostname`: no PTR, or PTR not confirmed by A/AAAA.
    pub reject_unknown_client: bool,
}

impl HeloStep {
    /// The reply for a client, or `None` to go on with the chain. The second value names the
    /// finding (closed set, for logs and metrics).
    pub async fn decide(
        &self,
        resolver: &dyn Resolver,
        ip: IpAddr,
        helo: &str,
    ) -> Option<(crate::verdict::Action, &'static str)> {
        use crate::verdict::Action;
        if self.checks.is_exempt(ip) {
            return None;
        }
        let helo_reply = match self.checks.helo_problem(helo) {
            Some(p @ (HeloProblem::Missing | HeloProblem::InvalidSyntax))
                if self.reject_invalid =>
            {
                Some((
                    format!("501 5.5.2 <{helo}>: Helo command rejected: Invalid name"),
                    p,
                ))
            }
            Some(p @ HeloProblem::NotFqdn) if self.reject_non_fqdn => Some((
                format!("504 5.5.2 <{helo}>: Helo command rejected: need fully-qualified hostname"),
                p,
            )),
            Some(p @ (HeloProblem::ClaimsOurName | HeloProblem::ClaimsOurAddress))
                if self.reject_our_name =>
            {
                Some((
                    format!(
                        "550 5.7.1 <{helo}>: Helo command rejected: host claims to be this server"
                    ),
                    p,
                ))
            }
            _ => None,
        };
        if let Some((text, p)) = helo_reply {
            return Some((Action::Reply(text), p.as_str()));
        }
        if !self.reject_unknown_reverse && !self.reject_unknown_client {
            return None;
        }
        let finding = match self.checks.reverse_dns(resolver, ip).await {
            ReverseDns::Confirmed(_) => return None,
            ReverseDns::NoPtr => "rdns_none",
            ReverseDns::Forged(_) if self.reject_unknown_client => "rdns_forged",
            ReverseDns::Forged(_) => return None,
            ReverseDns::TempFail => "rdns_tempfail",
        };
        // Postfix's texts: reject_unknown_client_hostname says "hostname",
        // reject_unknown_reverse_client_hostname "reverse hostname".
        let what = if self.reject_unknown_client {
            "hostname"
        } else {
            "reverse hostname"
        };
        Some((
            Action::Reply(format!(
                "450 4.7.25 Client host rejected: cannot find your {what}, [{ip}]"
            )),
            finding,
        ))
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 section 4.1.3).
fn address_literal(helo: &str) -> Option<IpAddr> {
    let inner = helo.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner
            .get(5..)?
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| IpAddr::V6(a).to_canonical()),
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// A host name as Postfix's `valid_hostname()` accepts it: labels of letters, digits, '-' and
/// '_' (not starting or ending with '-'), at most 63 characters each and 255 in all, one
/// optional trailing dot, and not all-numeric.
fn valid_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 255
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{FakeResolver, ZoneRecord, block_on};

    fn checks() -> HeloChecks {
        HeloChecks {
            our_names: vec!["mx.example.net".into()],
            our_addresses: vec!["198.51.100.25".parse().unwrap()],
            ..HeloChecks::default()
        }
    }

    #[test]
    fn helo_syntax_and_claims() {
        let c = checks();
        assert_eq!(c.helo_problem("mail.example.com"), None);
        assert_eq!(c.helo_problem("[192.0.2.1]"), None);
        assert_eq!(c.helo_problem("[IPv6:2001:db8::1]"), None);
        assert_eq!(c.helo_problem(""), Some(HeloProblem::Missing));
        assert_eq!(c.helo_problem("OEMCOMPUTER"), Some(HeloProblem::NotFqdn));
        assert_eq!(
            c.helo_problem("JUMPIN' JUPITER"),
            Some(HeloProblem::InvalidSyntax)
        );
        assert_eq!(
            c.helo_problem("-bad.example.com"),
            Some(HeloProblem::InvalidSyntax)
        );
        assert_eq!(
            c.helo_problem("192.0.2.1"),
            Some(HeloProblem::InvalidSyntax)
        );
        assert_eq!(
            c.helo_problem("[999.0.2.1]"),
            Some(HeloProblem::InvalidSyntax)
        );
        assert_eq!(
            c.helo_problem("MX.example.net."),
            Some(HeloProblem::ClaimsOurName)
        );
        assert_eq!(
            c.helo_problem("[198.51.100.25]"),
            Some(HeloProblem::ClaimsOurAddress)
        );
        assert_eq!(
            c.helo_problem("198.51.100.25"),
            Some(HeloProblem::ClaimsOurAddress)
        );
    }

    #[test]
    fn step_replies_like_postfix() {
        use crate::verdict::Action;
        let mut z = FakeResolver::new();
        z.add(
            "1.2.0.192.in-addr.arpa",
            ZoneRecord::Ptr("mail.example.com".into()),
        );
        z.add(
            "mail.example.com",
            ZoneRecord::A("192.0.2.1".parse().unwrap()),
        );
        z.add(
            "2.2.0.192.in-addr.arpa",
            ZoneRecord::Ptr("liar.example.com".into()),
        );
        let step = HeloStep {
            checks: checks(),
            reject_invalid: true,
            reject_non_fqdn: true,
            reject_our_name: true,
            reject_unknown_reverse: true,
            reject_unknown_client: false,
        };
        let run =
            |s: &HeloStep, ip: &str, helo: &str| block_on(s.decide(&z, ip.parse().unwrap(), helo));
        assert_eq!(run(&step, "192.0.2.1", "mail.example.com"), None);
        assert_eq!(
            run(&step, "192.0.2.1", "OEMCOMPUTER"),
            Some((
                Action::Reply(
                    "504 5.5.2 <OEMCOMPUTER>: Helo command rejected: need fully-qualified hostname"
                        .into()
                ),
                "helo_non_fqdn"
            ))
        );
        assert!(
            matches!(run(&step, "192.0.2.1", "a b"), Some((Action::Reply(ref r), "helo_invalid")) if r.starts_with("501 5.5.2 <a b>:"))
        );
        assert!(matches!(
            run(&step, "192.0.2.1", "mx.example.net"),
            Some((_, "helo_our_name"))
        ));
        assert_eq!(
            run(&step, "192.0.2.3", "mail.example.com"),
            Some((
                Action::Reply("450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.3]".into()),
                "rdns_none"
            ))
        );
        // A forged name is only rejected by reject_unknown_client.
        assert_eq!(run(&step, "192.0.2.2", "mail.example.com"), None);
        let strict = HeloStep {
            reject_unknown_client: true,
            ..step.clone()
        };
        assert_eq!(
            run(&strict, "192.0.2.2", "mail.example.com"),
            Some((
                Action::Reply(
                    "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.2]"
                        .into()
                ),
                "rdns_forged"
            ))
        );
        // Private clients are never flagged.
        assert_eq!(run(&strict, "10.0.0.8", "OEMCOMPUTER"), None);
        // Every check off: nothing is rejected.
        assert_eq!(run(&HeloStep::default(), "192.0.2.3", "a b"), None);
    }

    #[test]
    fn private_clients_are_exempt() {
        let c = checks();
        for ip in [
            "10.1.2.3",
            "192.168.1.1",
            "127.0.0.1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "fd00::5",
        ] {
            assert!(c.is_exempt(ip.parse().unwrap()), "{ip}");
        }
        assert!(!c.is_exempt("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn forward_confirmed_reverse_dns() {
        let mut z = FakeResolver::new();
        z.add(
            "1.2.0.192.in-addr.arpa",
            ZoneRecord::Ptr("mail.example.com".into()),
        );
        z.add(
            "mail.example.com",
            ZoneRecord::A("192.0.2.1".parse().unwrap()),
        );
        z.add(
            "2.2.0.192.in-addr.arpa",
            ZoneRecord::Ptr("liar.example.com".into()),
        );
        z.add(
            "liar.example.com",
            ZoneRecord::A("203.0.113.9".parse().unwrap()),
        );
        z.add(
            "3.2.0.192.in-addr.arpa",
            ZoneRecord::Ptr("slow.example.com".into()),
        );
        z.add("slow.example.com", ZoneRecord::Timeout);
        z.add("5.2.0.192.in-addr.arpa", ZoneRecord::Timeout);
        let c = checks();
        let rdns = |ip: &str| block_on(c.reverse_dns(&z, ip.parse().unwrap()));
        assert_eq!(
            rdns("192.0.2.1"),
            ReverseDns::Confirmed("mail.example.com".into())
        );
        assert_eq!(
            rdns("192.0.2.2"),
            ReverseDns::Forged("liar.example.com".into())
        );
        assert_eq!(rdns("192.0.2.3"), ReverseDns::TempFail);
        assert_eq!(rdns("192.0.2.4"), ReverseDns::NoPtr);
        assert_eq!(rdns("192.0.2.5"), ReverseDns::TempFail);
    }
}
