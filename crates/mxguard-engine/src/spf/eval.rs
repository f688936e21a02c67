//! RFC 7208 check_host() (sections 4 to 6): one evaluation with its DNS budget.
//!
//! A [`Run`] holds the values of one check (client IP, sender, HELO) and the counters of
//! section 4.6.4 that span the whole evaluation, includes and redirects included. It fetches and
//! selects the record (4.4, 4.5), walks the directives (4.6, 5), follows `redirect=` (6.1) and,
//! for a final fail, builds the `exp=` explanation (6.2). Called by [`super::SpfChecker`] only.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use super::macros::{MacroString, Vars};
use super::record::{self, Mechanism, Qualifier};
use super::{SpfChecker, SpfResult};
use crate::dns::{Lookup, Resolver};

/// Ends an evaluation at once with temperror or permerror, wherever it is.
enum Abort {
    Temp(String),
    Perm(String),
}

/// A non-error result of one check_host() level, with the `exp=` to use if it is a fail.
struct Outcome {
    result: SpfResult,
    /// The `exp=` domain-spec of the record that failed, and that record's domain (`%{d}`).
    exp: Option<(MacroString, String)>,
}

impl Outcome {
    fn plain(result: SpfResult) -> Outcome {
        Outcome { result, exp: None }
    }
}

type Boxed<'s, T> = Pin<Box<dyn Future<Output = T> + Send + 's>>;

/// One evaluation of check_host(), with the section 4.6.4 counters.
pub(crate) struct Run<'a> {
    checker: &'a SpfChecker,
    resolver: &'a dyn Resolver,
    ip: IpAddr,
    sender: &'a str,
    local: &'a str,
    sender_domain: &'a str,
    helo: &'a str,
    now: u64,
    lookups: u32,
    voids: u32,
}

impl<'a> Run<'a> {
    #[allow(clippy::too_many_arguments)] // the fixed inputs of check_host(), section 4.1
    pub(crate) fn new(
        checker: &'a SpfChecker,
        resolver: &'a dyn Resolver,
        ip: IpAddr,
        sender: &'a str,
        local: &'a str,
        sender_domain: &'a str,
        helo: &'a str,
        now: u64,
    ) -> Run<'a> {
        Run {
            checker,
            resolver,
            ip,
            sender,
            local,
            sender_domain,
            helo,
            now,
            lookups: 0,
            voids: 0,
        }
    }

    /// check_host() for the identity's domain: result, explanation (fail only), problem
    /// (errors only).
    pub(crate) async fn check_host_top(
        &mut self,
        domain: &str,
    ) -> (SpfResult, Option<String>, Option<String>) {
        match self.check_host(domain.to_string()).await {
            Ok(o) if o.result == SpfResult::Fail => {
                let exp = self.explain(o.exp).await;
                (SpfResult::Fail, Some(exp), None)
            }
            Ok(o) => (o.result, None, None),
            Err(Abort::Temp(why)) => (SpfResult::TempError, None, Some(why)),
            Err(Abort::Perm(why)) => (SpfResult::PermError, None, Some(why)),
        }
    }

    fn vars<'b>(&'b self, domain: &'b str, validated: Option<&'b str>) -> Vars<'b> {
        Vars {
            sender: self.sender,
            local: self.local,
            sender_domain: self.sender_domain,
            domain,
            ip: self.ip,
            helo: self.helo,
            receiver: &self.checker.receiver,
            now: self.now,
            validated,
        }
    }

    /// Section 4.6.4: more than `lookup_limit` DNS-querying terms is a permerror.
    fn count_lookup(&mut self) -> Result<(), Abort> {
        self.lookups += 1;
        if self.lookups > self.checker.lookup_limit {
            return Err(Abort::Perm(format!(
                "more than {} DNS lookups",
                self.checker.lookup_limit
            )));
        }
        Ok(())
    }

    /// Section 4.6.4: more than `void_limit` lookups answering NXDOMAIN or nothing.
    fn count_void(&mut self) -> Result<(), Abort> {
        self.voids += 1;
        if self.voids > self.checker.void_limit {
            return Err(Abort::Perm(format!(
                "more than {} void DNS lookups",
                self.checker.void_limit
            )));
        }
        Ok(())
    }

    /// check_host(<ip>, <domain>, <sender>) of section 4, recursively for include/redirect.
    fn check_host(&mut self, domain: String) -> Boxed<'_, Result<Outcome, Abort>> {
        Box::pin(async move {
            // Section 4.3: a malformed or single-label domain gives "none".
            if !valid_name(&domain) || !has_valid_toplabel(&domain) {
                return Ok(Outcome::plain(SpfResult::None));
            }
            // Section 4.4: a DNS error is temperror; no records or NXDOMAIN is "none".
            let answer = match self.resolver.txt(&domain).await {
                Ok(a) => a,
                Err(e) => return Err(Abort::Temp(format!("{e} looking up TXT {domain}"))),
            };
            // Section 4.5: keep the v=spf1 records; more than one is a permerror.
            let mut spf: Vec<Vec<u8>> = answer
                .records()
                .iter()
                .map(|t| t.concat())
                .filter(|t| record::is_spf_record(t))
                .collect();
            if spf.len() > 1 {
                return Err(Abort::Perm(format!("multiple SPF records for {domain}")));
            }
            let Some(text) = spf.pop() else {
                return Ok(Outcome::plain(SpfResult::None));
            };
            let rec = record::parse(&text)
                .map_err(|e| Abort::Perm(format!("SPF record of {domain}: {e}")))?;

            // Section 4.6.2: the first matching directive decides.
            for d in &rec.directives {
                if self.matches(&d.mechanism, &domain).await? {
                    let result = match d.qualifier {
                        Qualifier::Pass => SpfResult::Pass,
                        Qualifier::Fail => SpfResult::Fail,
                        Qualifier::SoftFail => SpfResult::SoftFail,
                        Qualifier::Neutral => SpfResult::Neutral,
                    };
                    let exp = rec.exp.clone().map(|e| (e, domain.clone()));
                    return Ok(Outcome { result, exp });
                }
            }
            // Section 6.1: redirect= applies when nothing matched; its result is the result,
            // and a target without a record is a permerror. Its own exp= replaces ours.
            if let Some(spec) = &rec.redirect {
                self.count_lookup()?;
                let target = self.expand_domain(spec, &domain).await.unwrap_or_default();
                let outcome = self.check_host(target.clone()).await?;
                if outcome.result == SpfResult::None {
                    return Err(Abort::Perm(format!(
                        "redirect={target} from {domain} has no SPF record"
                    )));
                }
                return Ok(outcome);
            }
            Ok(Outcome::plain(SpfResult::Neutral))
        })
    }

    /// Whether one mechanism matches (section 5). DNS errors abort with temperror, except in
    /// `ptr` (section 5.5).
    async fn matches(&mut self, mech: &Mechanism, domain: &str) -> Result<bool, Abort> {
        match mech {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => Ok(in_net(self.ip, IpAddr::V4(*net), *len)),
            Mechanism::Ip6(net, len) => Ok(in_net(self.ip, IpAddr::V6(*net), *len)),
            Mechanism::Include(spec) => {
                self.count_lookup()?;
                let target = self.expand_domain(spec, domain).await.unwrap_or_default();
                // Section 5.2: pass matches; fail, softfail, neutral do not; none is a
                // permerror; errors propagate.
                let inner = self.check_host(target.clone()).await?;
                match inner.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::None => Err(Abort::Perm(format!(
                        "include:{target} from {domain} has no SPF record"
                    ))),
                    _ => Ok(false),
                }
            }
            Mechanism::A {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                self.count_lookup()?;
                let Some(target) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                let addrs = self.addresses(&target, true).await?;
                Ok(self.any_in(&addrs, *cidr4, *cidr6))
            }
            Mechanism::Mx {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                self.count_lookup()?;
                let Some(target) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                let mxs = match self.resolver.mx(&target).await {
                    Ok(l) => l,
                    Err(e) => return Err(Abort::Temp(format!("{e} looking up MX {target}"))),
                };
                if mxs.is_void() {
                    self.count_void()?;
                    return Ok(false);
                }
                // Section 4.6.4: no more than 10 MX records may be looked up; more is a
                // permerror for the mx mechanism.
                if mxs.records().len() > 10 {
                    return Err(Abort::Perm(format!("{target} has more than 10 MX records")));
                }
                for mx in mxs.records() {
                    if mx.exchange.is_empty() || !valid_name(&mx.exchange) {
                        continue; // RFC 7505 null MX, or junk: nothing to match
                    }
                    let addrs = self.addresses(&mx.exchange, false).await?;
                    if self.any_in(&addrs, *cidr4, *cidr6) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_lookup()?;
                let Some(target) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                let names = self.validated_names(true).await?;
                Ok(names.iter().any(|n| is_same_or_sub(n, &target)))
            }
            Mechanism::Exists(spec) => {
                self.count_lookup()?;
                let Some(target) = self.expand_domain(spec, domain).await else {
                    return Ok(false);
                };
                // Section 5.7: always an A query, whatever the client's address family.
                match self.resolver.a(&target).await {
                    Ok(Lookup::Records(_)) => Ok(true),
                    Ok(_) => {
                        self.count_void()?;
                        Ok(false)
                    }
                    Err(e) => Err(Abort::Temp(format!("{e} looking up A {target}"))),
                }
            }
        }
    }

    /// The mechanism's target: its expanded domain-spec, or the current domain.
    async fn target(&mut self, spec: Option<&MacroString>, domain: &str) -> Option<String> {
        match spec {
            Some(spec) => self.expand_domain(spec, domain).await,
            None => Some(domain.to_string()),
        }
    }

    /// Expands a domain-spec (section 7.3): trailing dot dropped, names over 253 characters
    /// shortened by removing labels on the left. `None` if the result is not a usable name
    /// (such a target matches nothing).
    async fn expand_domain(&mut self, spec: &MacroString, domain: &str) -> Option<String> {
        let validated = if spec.uses_validated_name() {
            self.validated_name(domain).await
        } else {
            None
        };
        let expanded = spec.expand(&self.vars(domain, validated.as_deref()));
        let mut name = expanded.strip_suffix('.').unwrap_or(&expanded);
        while name.len() > 253 {
            name = name.split_once('.').map(|(_, rest)| rest).unwrap_or("");
        }
        valid_name(name).then(|| name.to_string())
    }

    /// A or AAAA records of `name`, by the client's address family (sections 5.3, 5.4).
    async fn addresses(&mut self, name: &str, count_void: bool) -> Result<Vec<IpAddr>, Abort> {
        let found: Result<Lookup<IpAddr>, _> = match self.ip {
            IpAddr::V4(_) => self
                .resolver
                .a(name)
                .await
                .map(|l| map_lookup(l, IpAddr::V4)),
            IpAddr::V6(_) => self
                .resolver
                .aaaa(name)
                .await
                .map(|l| map_lookup(l, IpAddr::V6)),
        };
        match found {
            Ok(Lookup::Records(r)) => Ok(r),
            Ok(_) => {
                if count_void {
                    self.count_void()?;
                }
                Ok(Vec::new())
            }
            Err(e) => Err(Abort::Temp(format!("{e} looking up addresses of {name}"))),
        }
    }

    fn any_in(&self, addrs: &[IpAddr], cidr4: u8, cidr6: u8) -> bool {
        addrs.iter().any(|a| {
            let len = if a.is_ipv4() { cidr4 } else { cidr6 };
            in_net(self.ip, *a, len)
        })
    }

    /// The validated host names of the client (section 5.5): PTR names whose A/AAAA records
    /// include the client address, from the first 10 PTR names; lookup errors skip a name.
    /// A failed PTR lookup validates nothing.
    async fn validated_names(&mut self, count_void: bool) -> Result<Vec<String>, Abort> {
        let names = match self.resolver.ptr(self.ip).await {
            Ok(Lookup::Records(r)) => r,
            Ok(_) => {
                if count_void {
                    self.count_void()?;
                }
                return Ok(Vec::new());
            }
            Err(_) => return Ok(Vec::new()),
        };
        let mut validated = Vec::new();
        for name in names.into_iter().take(10) {
            if !valid_name(&name) {
                continue;
            }
            let ok = match self.ip {
                IpAddr::V4(ip) => self
                    .resolver
                    .a(&name)
                    .await
                    .is_ok_and(|l| l.records().contains(&ip)),
                IpAddr::V6(ip) => self
                    .resolver
                    .aaaa(&name)
                    .await
                    .is_ok_and(|l| l.records().contains(&ip)),
            };
            if ok {
                validated.push(name);
            }
        }
        Ok(validated)
    }

    /// `%{p}` (section 7.3): the validated name equal to `domain`, else one under it, else any;
    /// `None` ("unknown") if there is none.
    async fn validated_name(&mut self, domain: &str) -> Option<String> {
        let names = self.validated_names(false).await.ok()?;
        names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(domain))
            .or_else(|| names.iter().find(|n| is_same_or_sub(n, domain)))
            .or_else(|| names.first())
            .cloned()
    }

    /// The explanation of a fail (section 6.2). Any problem (no exp=, a bad name, a DNS error,
    /// not exactly one TXT record, non-ASCII text, a macro syntax error) gives the default.
    async fn explain(&mut self, exp: Option<(MacroString, String)>) -> String {
        let default = self.checker.default_explanation.clone();
        let Some((spec, domain)) = exp else {
            return default;
        };
        let Some(name) = self.expand_domain(&spec, &domain).await else {
            return default;
        };
        let text = match self.resolver.txt(&name).await {
            Ok(Lookup::Records(r)) if r.len() == 1 => r[0].concat(),
            _ => return default,
        };
        let Some(text) = std::str::from_utf8(&text).ok().filter(|t| t.is_ascii()) else {
            return default;
        };
        let Ok(m) = MacroString::parse(text, super::macros::Context::Explanation) else {
            return default;
        };
        let validated = if m.uses_validated_name() {
            self.validated_name(&domain).await
        } else {
            None
        };
        m.expand(&self.vars(&domain, validated.as_deref()))
    }
}

fn map_lookup<T>(l: Lookup<T>, f: fn(T) -> IpAddr) -> Lookup<IpAddr> {
    match l {
        Lookup::Records(r) => Lookup::Records(r.into_iter().map(f).collect()),
        Lookup::NxDomain => Lookup::NxDomain,
        Lookup::NoData => Lookup::NoData,
    }
}

/// True if `ip` is in `net`/`len`; addresses of different families never match (section 5.6).
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A name that can be queried: at most 253 characters, labels of 1 to 63 printable ASCII
/// characters (RFC 1035 section 2.3.4; RFC 7208 section 4.3 calls anything else malformed).
/// Spaces are allowed: `%_` puts them in names on purpose (RFC 7208 section 7.3), and DNS
/// labels may hold any octet (RFC 2181 section 11).
fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| (0x20..=0x7e).contains(&b))
        })
}

/// Section 4.3: the checked domain must be a multi-label name ending in a valid top label, which
/// also rules out address literals such as `[192.0.2.1]`.
fn has_valid_toplabel(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.rsplit_once('.')
        .is_some_and(|(_, top)| record::is_toplabel(top))
}

/// `name` equals `domain` or ends with `.domain`, ignoring case (section 5.5).
fn is_same_or_sub(name: &str, domain: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let domain = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    name == domain || name.ends_with(&format!(".{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_net(ip("192.0.2.77"), ip("192.0.2.0"), 24));
        assert!(!in_net(ip("192.0.3.1"), ip("192.0.2.0"), 24));
        assert!(in_net(ip("10.0.0.1"), ip("192.0.2.0"), 0));
        assert!(in_net(ip("2001:db8::1"), ip("2001:db8::"), 32));
        assert!(!in_net(ip("192.0.2.1"), ip("::"), 0));
    }

    #[test]
    fn names() {
        assert!(valid_name("a.example.com."));
        assert!(!valid_name("a..example.com"));
        assert!(valid_name("macro%percent  space%20url-space.example.com"));
        assert!(!valid_name("tab\there.example.com"));
        assert!(has_valid_toplabel("mail.example.com"));
        assert!(!has_valid_toplabel("[1.2.3.5]"));
        assert!(!has_valid_toplabel("OEMCOMPUTER"));
        assert!(is_same_or_sub("mail.Example.com", "example.COM"));
        assert!(!is_same_or_sub("badexample.com", "example.com"));
    }
}
