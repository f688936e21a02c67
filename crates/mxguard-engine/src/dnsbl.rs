//! Weighted DNSBL / DNSWL scoring with Postfix postscreen's syntax (postconf(5),
//! `postscreen_dnsbl_sites`, `postscreen_dnsbl_threshold`, `postscreen_dnsbl_allowlist_threshold`).
//!
//! A site is `domain[=filter][*weight]`, e.g. `zen.spamhaus.org=127.0.0.[2..11]*3` or
//! `list.dnswl.org=127.0.[0..255].[1..3]*-2`. For a client, every distinct domain is queried once
//! (all at the same time) for the client's reversed address; each site entry whose filter
//! matches one of the returned A records adds its weight. The client is listed when the score
//! reaches the threshold, and allowlisted when an allowlist threshold (negative) is set and the
//! score is at or below it. A list that fails or times out counts as not listed (and is
//! reported). Time limits are the resolver's (per query); the policy service maps the
//! [`DnsblVerdict`] to its configured action. No I/O here beyond the [`Resolver`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use crate::dns::{DnsFuture, Lookup, Resolver, join_all};

/// A filter on the A record a list answers: four octet patterns (a number, or `[..]` holding
/// `;`-separated numbers and `n..m` ranges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerFilter {
    octets: [Vec<(u8, u8)>; 4],
}

impl AnswerFilter {
    /// Whether `addr` matches every octet.
    pub fn matches(&self, addr: Ipv4Addr) -> bool {
        addr.octets()
            .iter()
            .zip(&self.octets)
            .all(|(o, ranges)| ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&o)))
    }
}

impl FromStr for AnswerFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Split on the dots between octets, not the ones of `n..m` inside brackets.
        let mut parts = Vec::new();
        let mut depth = 0u32;
        let mut start = 0;
        for (i, c) in s.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '.' if depth == 0 => {
                    parts.push(s.get(start..i).unwrap_or(""));
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(s.get(start..).unwrap_or(""));
        if parts.len() != 4 {
            return Err(format!("filter {s:?} must have four octets"));
        }
        let mut octets: [Vec<(u8, u8)>; 4] = Default::default();
        for (slot, part) in octets.iter_mut().zip(&parts) {
            let octet = |t: &str| {
                t.parse::<u8>()
                    .map_err(|_| format!("bad octet {t:?} in filter {s:?}"))
            };
            if let Some(inner) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
                for item in inner.split(';') {
                    let range = match item.split_once("..") {
                        Some((lo, hi)) => (octet(lo)?, octet(hi)?),
                        None => (octet(item)?, octet(item)?),
                    };
                    if range.0 > range.1 {
                        return Err(format!("empty range {item:?} in filter {s:?}"));
                    }
                    slot.push(range);
                }
            } else {
                let n = octet(part)?;
                slot.push((n, n));
            }
        }
        Ok(AnswerFilter { octets })
    }
}

/// One `postscreen_dnsbl_sites` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsblSite {
    /// The list's DNS zone, e.g. `zen.spamhaus.org`.
    pub domain: String,
    /// Only answers matching this count; any answer counts without it.
    pub filter: Option<AnswerFilter>,
    /// Added to the score on a match; negative for allowlists (default 1).
    pub weight: i32,
}

impl FromStr for DnsblSite {
    type Err = String;

    /// Parses `domain[=filter][*weight]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, weight) = match s.rsplit_once('*') {
            Some((r, w)) => (
                r,
                w.parse::<i32>()
                    .map_err(|_| format!("bad weight {w:?} in {s:?}"))?,
            ),
            None => (s, 1),
        };
        let (domain, filter) = match rest.split_once('=') {
            Some((d, f)) => (d, Some(f.parse::<AnswerFilter>()?)),
            None => (rest, None),
        };
        let domain = domain.trim_end_matches('.');
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!("bad DNSBL domain {domain:?} in {s:?}"));
        }
        Ok(DnsblSite {
            domain: domain.to_ascii_lowercase(),
            filter,
            weight,
        })
    }
}

impl fmt::Display for DnsblSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.domain)?;
        if self.filter.is_some() {
            write!(f, "=<filter>")?;
        }
        write!(f, "*{}", self.weight)
    }
}

/// The sites and thresholds.
#[derive(Debug, Clone)]
pub struct Dnsbl {
    pub sites: Vec<DnsblSite>,
    /// `postscreen_dnsbl_threshold`: listed when the score is at least this (default 1).
    pub threshold: i32,
    /// `postscreen_dnsbl_allowlist_threshold`: allowlisted when negative and the score is at
    /// most this (default 0: off).
    pub allowlist_threshold: i32,
}

impl Default for Dnsbl {
    fn default() -> Self {
        Dnsbl {
            sites: Vec::new(),
            threshold: 1,
            allowlist_threshold: 0,
        }
    }
}

/// One site entry that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsblHit {
    pub domain: String,
    pub weight: i32,
    /// The first returned record that matched the filter.
    pub answer: Ipv4Addr,
}

/// What the lists said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsblVerdict {
    /// The score reached the threshold.
    Listed,
    /// The score is at or below the (negative) allowlist threshold.
    Allowlisted,
    /// Neither.
    Neutral,
}

/// The score of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsblScore {
    pub score: i32,
    pub verdict: DnsblVerdict,
    pub hits: Vec<DnsblHit>,
    /// Lists whose lookup failed or timed out (counted as not listed).
    pub failed: Vec<String>,
}

/// The DNSBL query name for `ip` under `zone`: reversed octets, or reversed nibbles for IPv6.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let rev = crate::dns::reverse_name(ip.to_canonical());
    let base = rev
        .strip_suffix(".in-addr.arpa")
        .or_else(|| rev.strip_suffix(".ip6.arpa"))
        .unwrap_or(&rev);
    format!("{base}.{zone}")
}

impl Dnsbl {
    /// Parses a whitespace- or comma-separated `postscreen_dnsbl_sites` value.
    pub fn parse_sites(value: &str) -> Result<Vec<DnsblSite>, String> {
        value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    /// Queries every list for `ip` at once and adds up the weights.
    pub async fn score(&self, resolver: &dyn Resolver, ip: IpAddr) -> DnsblScore {
        // One query per distinct domain, as postscreen does.
        let domains: BTreeMap<&str, String> = self
            .sites
            .iter()
            .map(|s| (s.domain.as_str(), query_name(ip, &s.domain)))
            .collect();
        let futures: Vec<DnsFuture<'_, Ipv4Addr>> =
            domains.values().map(|name| resolver.a(name)).collect();
        let answers = join_all(futures).await;
        let mut by_domain = BTreeMap::new();
        let mut failed = Vec::new();
        for ((domain, _), answer) in domains.iter().zip(answers) {
            match answer {
                Ok(Lookup::Records(r)) => {
                    by_domain.insert(*domain, r);
                }
                Ok(_) => {}
                Err(_) => failed.push((*domain).to_string()),
            }
        }
        let mut score = 0i32;
        let mut hits = Vec::new();
        for site in &self.sites {
            let Some(records) = by_domain.get(site.domain.as_str()) else {
                continue;
            };
            let matched = records
                .iter()
                .find(|a| site.filter.as_ref().is_none_or(|f| f.matches(**a)));
            if let Some(answer) = matched {
                score = score.saturating_add(site.weight);
                hits.push(DnsblHit {
                    domain: site.domain.clone(),
                    weight: site.weight,
                    answer: *answer,
                });
            }
        }
        let verdict = if score >= self.threshold {
            DnsblVerdict::Listed
        } else if self.allowlist_threshold < 0 && score <= self.allowlist_threshold {
            DnsblVerdict::Allowlisted
        } else {
            DnsblVerdict::Neutral
        };
        DnsblScore {
            score,
            verdict,
            hits,
            failed,
        }
    }
}

impl DnsblScore {
    /// postscreen's reply for a listed client, naming the list with the largest weight:
    /// `550 5.7.1 Service unavailable; client [<ip>] blocked using <list>`. `None` unless listed.
    pub fn reply(&self, ip: IpAddr) -> Option<crate::verdict::Action> {
        if self.verdict != DnsblVerdict::Listed {
            return None;
        }
        let list = self
            .hits
            .iter()
            .max_by_key(|h| h.weight)
            .map_or("DNSBL", |h| h.domain.as_str());
        Some(crate::verdict::Action::Reply(format!(
            "550 5.7.1 Service unavailable; client [{ip}] blocked using {list}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{FakeResolver, ZoneRecord, block_on};

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_postscreen_syntax() {
        let s: DnsblSite = "zen.spamhaus.org=127.0.0.[2..11]*3".parse().unwrap();
        assert_eq!((s.domain.as_str(), s.weight), ("zen.spamhaus.org", 3));
        let f = s.filter.unwrap();
        assert!(f.matches(ip4("127.0.0.2")) && f.matches(ip4("127.0.0.11")));
        assert!(!f.matches(ip4("127.0.0.12")) && !f.matches(ip4("127.0.1.2")));
        let w: DnsblSite = "list.dnswl.org=127.0.[0..255].[1..3]*-2".parse().unwrap();
        assert_eq!(w.weight, -2);
        let f: AnswerFilter = "127.0.0.[2;4;6..7]".parse().unwrap();
        assert!(f.matches(ip4("127.0.0.4")) && f.matches(ip4("127.0.0.7")));
        assert!(!f.matches(ip4("127.0.0.5")));
        let plain: DnsblSite = "bl.example.org".parse().unwrap();
        assert_eq!((plain.filter, plain.weight), (None, 1));
        for bad in [
            "",
            "x=127.0.0",
            "x=127.0.0.[3..2]",
            "x*y",
            "bad domain",
            "x=127.0.0.256",
        ] {
            assert!(bad.parse::<DnsblSite>().is_err(), "{bad}");
        }
        assert_eq!(
            Dnsbl::parse_sites("a.example*2, b.example").unwrap().len(),
            2
        );
    }

    #[test]
    fn query_names() {
        assert_eq!(
            query_name("192.0.2.1".parse().unwrap(), "zen.example"),
            "1.2.0.192.zen.example"
        );
        assert!(query_name("2001:db8::1".parse().unwrap(), "bl.example").starts_with("1.0.0.0."));
        assert!(
            query_name("2001:db8::1".parse().unwrap(), "bl.example").ends_with(".2.bl.example")
        );
    }

    fn zone() -> FakeResolver {
        let mut z = FakeResolver::new();
        z.add("1.2.0.192.zen.example", ZoneRecord::A(ip4("127.0.0.4")));
        z.add("1.2.0.192.bad.example", ZoneRecord::A(ip4("127.0.0.2")));
        z.add("2.2.0.192.wl.example", ZoneRecord::A(ip4("127.0.10.2")));
        z.add("1.2.0.192.slow.example", ZoneRecord::Timeout);
        z
    }

    fn dnsbl(sites: &str) -> Dnsbl {
        Dnsbl {
            sites: Dnsbl::parse_sites(sites).unwrap(),
            threshold: 3,
            allowlist_threshold: -1,
        }
    }

    #[test]
    fn weights_add_up_and_filters_apply() {
        let d = dnsbl(
            "zen.example=127.0.0.[2..11]*2 zen.example=127.0.0.4 bad.example=127.0.0.3*5 slow.example*9",
        );
        let s = block_on(d.score(&zone(), "192.0.2.1".parse().unwrap()));
        // Both zen entries match (2 + 1); bad.example answers outside its filter; slow times out.
        assert_eq!(s.score, 3);
        assert_eq!(s.verdict, DnsblVerdict::Listed);
        assert_eq!(s.hits.len(), 2);
        assert_eq!(s.failed, vec!["slow.example".to_string()]);
        assert_eq!(
            s.reply("192.0.2.1".parse().unwrap()),
            Some(crate::verdict::Action::Reply(
                "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.example"
                    .into()
            ))
        );
        let below = dnsbl("zen.example*2");
        let s = block_on(below.score(&zone(), "192.0.2.1".parse().unwrap()));
        assert_eq!((s.score, s.verdict.clone()), (2, DnsblVerdict::Neutral));
        assert_eq!(s.reply("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn allowlists_have_negative_weights() {
        let d = dnsbl("zen.example*3 wl.example=127.0.[0..255].[1..3]*-2");
        let s = block_on(d.score(&zone(), "192.0.2.2".parse().unwrap()));
        assert_eq!((s.score, s.verdict), (-2, DnsblVerdict::Allowlisted));
        let off = Dnsbl {
            allowlist_threshold: 0,
            ..d
        };
        let s = block_on(off.score(&zone(), "192.0.2.2".parse().unwrap()));
        assert_eq!(s.verdict, DnsblVerdict::Neutral);
    }
}
