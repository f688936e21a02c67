//! DNS as the engine sees it: the [`Resolver`] trait and [`FakeResolver`], an in-memory zone.
//!
//! Checks that need DNS (SPF now; HELO/FCrDNS and DNSBL later) ask a `Resolver` for TXT, A,
//! AAAA, MX and PTR records. Every lookup keeps the outcomes SPF must tell apart (RFC 7208
//! section 4.6.4 counts NXDOMAIN and "no records" as void lookups; section 2.6.6 turns a timeout
//! or server failure into temperror): [`Lookup::Records`], [`Lookup::NxDomain`],
//! [`Lookup::NoData`], or a [`DnsError`]. The trait is async and dyn-compatible (boxed futures),
//! so the engine needs no runtime of its own; the `mxguard` binary implements it on top of a real
//! resolver with caching. This module does no network I/O. [`FakeResolver`] answers from zone
//! data held in memory, answers at once, and is what tests (including the RFC 7208 suite) use.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

/// The answer to one query, when the DNS gave a definite one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// One or more records (never empty: an empty answer is [`Lookup::NoData`]).
    Records(Vec<T>),
    /// The name does not exist (RCODE 3, NXDOMAIN).
    NxDomain,
    /// The name exists but has no records of the asked type (NOERROR with an empty answer).
    NoData,
}

impl<T> Lookup<T> {
    /// The records, or an empty slice for NXDOMAIN / no data.
    pub fn records(&self) -> &[T] {
        match self {
            Lookup::Records(r) => r,
            Lookup::NxDomain | Lookup::NoData => &[],
        }
    }

    /// True for NXDOMAIN and for no data: RFC 7208 section 4.6.4 calls both "void".
    pub fn is_void(&self) -> bool {
        self.records().is_empty()
    }

    /// Builds a lookup from a record list: an empty list becomes [`Lookup::NoData`].
    pub fn from_records(records: Vec<T>) -> Lookup<T> {
        if records.is_empty() {
            Lookup::NoData
        } else {
            Lookup::Records(records)
        }
    }
}

/// A lookup that got no definite answer. SPF maps both to temperror (RFC 7208 section 2.6.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// No answer within the resolver's time budget.
    #[error("DNS timeout")]
    Timeout,
    /// SERVFAIL, REFUSED, a malformed reply, a CNAME loop or any other failure.
    #[error("DNS failure: {0}")]
    ServFail(String),
}

/// The result of one lookup.
pub type DnsResult<T> = Result<Lookup<T>, DnsError>;

/// A boxed lookup future, so that [`Resolver`] stays dyn-compatible.
pub type DnsFuture<'a, T> = Pin<Box<dyn Future<Output = DnsResult<T>> + Send + 'a>>;

/// One TXT record: its character-strings (RFC 1035 section 3.3.14), bytes as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txt {
    /// The character-strings in order; SPF joins them without separator (RFC 7208 section 3.3).
    pub strings: Vec<Vec<u8>>,
}

impl Txt {
    /// A record made of one character-string.
    pub fn single(text: impl Into<Vec<u8>>) -> Txt {
        Txt {
            strings: vec![text.into()],
        }
    }

    /// The character-strings joined without separator.
    pub fn concat(&self) -> Vec<u8> {
        self.strings.concat()
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    /// Lower is preferred.
    pub preference: u16,
    /// The mail exchanger's host name, without trailing dot.
    pub exchange: String,
}

/// Asynchronous DNS lookups. Names are given without trailing dot and compared
/// case-insensitively; implementations follow CNAMEs.
pub trait Resolver: Send + Sync + std::fmt::Debug {
    /// TXT records at `name`.
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Txt>;
    /// IPv4 addresses of `name`.
    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv4Addr>;
    /// IPv6 addresses of `name`.
    fn aaaa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv6Addr>;
    /// MX records of `name`.
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Mx>;
    /// Host names of `ip` (PTR at its `in-addr.arpa` / `ip6.arpa` name), without trailing dot.
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, String>;
}

/// The reverse-lookup name of `ip` (RFC 1035 section 3.5, RFC 3596 section 2.5), lowercase,
/// without trailing dot.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0x0f, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// Lowercases a name and strips one trailing dot: the key form used by [`FakeResolver`].
fn key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// One record of test zone data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneRecord {
    Txt(Txt),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(Mx),
    Ptr(String),
    Cname(String),
    /// Lookups at this name time out, except for types whose records were added before it (the
    /// convention of the openspf test suite's driver).
    Timeout,
}

/// An in-memory zone answering at once: for tests, never for production.
///
/// A name that was never added answers NXDOMAIN; a name that has some records answers
/// [`Lookup::NoData`] for other types. CNAMEs are followed (at most 8 deep; a longer chain or a
/// loop is a [`DnsError::ServFail`], as a real resolver would report it).
#[derive(Debug, Clone, Default)]
pub struct FakeResolver {
    zone: HashMap<String, Vec<ZoneRecord>>,
}

/// Which record type a fake lookup asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Txt,
    A,
    Aaaa,
    Mx,
    Ptr,
}

impl FakeResolver {
    /// An empty zone: every name is NXDOMAIN.
    pub fn new() -> FakeResolver {
        FakeResolver::default()
    }

    /// Adds one record at `name` (any case, trailing dot optional).
    pub fn add(&mut self, name: &str, record: ZoneRecord) {
        self.zone.entry(key(name)).or_default().push(record);
    }

    /// Makes `name` exist without records (so lookups there answer no data, not NXDOMAIN).
    pub fn add_name(&mut self, name: &str) {
        self.zone.entry(key(name)).or_default();
    }

    /// Records of one kind at `name`, following CNAMEs.
    fn lookup(&self, name: &str, kind: Kind) -> DnsResult<ZoneRecord> {
        let mut current = key(name);
        for _ in 0..8 {
            let Some(records) = self.zone.get(&current) else {
                return Ok(Lookup::NxDomain);
            };
            let mut found = Vec::new();
            let mut cname = None;
            for r in records {
                let matches = matches!(
                    (kind, r),
                    (Kind::Txt, ZoneRecord::Txt(_))
                        | (Kind::A, ZoneRecord::A(_))
                        | (Kind::Aaaa, ZoneRecord::Aaaa(_))
                        | (Kind::Mx, ZoneRecord::Mx(_))
                        | (Kind::Ptr, ZoneRecord::Ptr(_))
                );
                if matches {
                    found.push(r.clone());
                } else if let ZoneRecord::Cname(target) = r {
                    cname = Some(key(target));
                } else if *r == ZoneRecord::Timeout {
                    if found.is_empty() {
                        return Err(DnsError::Timeout);
                    }
                    break; // records after the TIMEOUT entry are never served
                }
            }
            match cname {
                Some(target) if found.is_empty() => current = target,
                _ => return Ok(Lookup::from_records(found)),
            }
        }
        Err(DnsError::ServFail(format!(
            "CNAME chain too long at {name}"
        )))
    }

    fn typed<T: Send + 'static>(
        &self,
        name: &str,
        kind: Kind,
        pick: fn(ZoneRecord) -> Option<T>,
    ) -> DnsFuture<'static, T> {
        let result = self.lookup(name, kind).map(|l| match l {
            Lookup::Records(r) => Lookup::from_records(r.into_iter().filter_map(pick).collect()),
            Lookup::NxDomain => Lookup::NxDomain,
            Lookup::NoData => Lookup::NoData,
        });
        Box::pin(std::future::ready(result))
    }
}

impl Resolver for FakeResolver {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Txt> {
        self.typed(name, Kind::Txt, |r| match r {
            ZoneRecord::Txt(t) => Some(t),
            _ => None,
        })
    }

    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv4Addr> {
        self.typed(name, Kind::A, |r| match r {
            ZoneRecord::A(a) => Some(a),
            _ => None,
        })
    }

    fn aaaa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv6Addr> {
        self.typed(name, Kind::Aaaa, |r| match r {
            ZoneRecord::Aaaa(a) => Some(a),
            _ => None,
        })
    }

    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Mx> {
        self.typed(name, Kind::Mx, |r| match r {
            ZoneRecord::Mx(m) => Some(m),
            _ => None,
        })
    }

    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, String> {
        self.typed(&reverse_name(ip), Kind::Ptr, |r| match r {
            ZoneRecord::Ptr(p) => Some(p.strip_suffix('.').unwrap_or(&p).to_string()),
            _ => None,
        })
    }
}

/// Drives a future to completion on the current thread without a runtime.
///
/// Meant for futures that never wait on I/O (such as [`FakeResolver`]'s): it polls with a no-op
/// waker and yields the thread between polls. Tests and benchmarks use it; the daemon awaits.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Runs several futures at once and returns their outputs in order, without a runtime.
///
/// DNSBL scoring and FCrDNS ask several names at once; waiting for each in turn would add their
/// latencies. The futures are polled together by whoever awaits the result.
pub fn join_all<'a, T: Send + 'a>(
    futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>,
) -> impl Future<Output = Vec<T>> + Send + 'a {
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut all = true;
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(done.iter_mut().filter_map(Option::take).collect())
        } else {
            std::task::Poll::Pending
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> FakeResolver {
        let mut z = FakeResolver::new();
        z.add("Example.COM.", ZoneRecord::A(Ipv4Addr::new(192, 0, 2, 1)));
        z.add("example.com", ZoneRecord::Txt(Txt::single("v=spf1 -all")));
        z.add(
            "alias.example.com",
            ZoneRecord::Cname("example.com.".into()),
        );
        z.add(
            "loop.example.com",
            ZoneRecord::Cname("loop.example.com".into()),
        );
        z.add("slow.example.com", ZoneRecord::Txt(Txt::single("x")));
        z.add("slow.example.com", ZoneRecord::Timeout);
        z.add(
            "1.2.0.192.in-addr.arpa",
            ZoneRecord::Ptr("mail.example.com.".into()),
        );
        z
    }

    #[test]
    fn outcomes_are_distinct() {
        let z = zone();
        let a = block_on(z.a("example.com")).unwrap();
        assert_eq!(a, Lookup::Records(vec![Ipv4Addr::new(192, 0, 2, 1)]));
        assert_eq!(block_on(z.aaaa("example.com")).unwrap(), Lookup::NoData);
        assert_eq!(block_on(z.a("nope.example.com")).unwrap(), Lookup::NxDomain);
        assert_eq!(block_on(z.a("slow.example.com")), Err(DnsError::Timeout));
        // Records listed before the TIMEOUT entry are still served.
        assert_eq!(
            block_on(z.txt("slow.example.com")).unwrap().records().len(),
            1
        );
    }

    #[test]
    fn follows_cnames_and_reports_loops() {
        let z = zone();
        assert_eq!(
            block_on(z.a("ALIAS.example.com")).unwrap().records().len(),
            1
        );
        assert!(matches!(
            block_on(z.a("loop.example.com")),
            Err(DnsError::ServFail(_))
        ));
    }

    #[test]
    fn ptr_uses_reverse_names() {
        let z = zone();
        let names = block_on(z.ptr("192.0.2.1".parse().unwrap())).unwrap();
        assert_eq!(names, Lookup::Records(vec!["mail.example.com".to_string()]));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            reverse_name(v6),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn join_all_keeps_order() {
        let z = zone();
        let futs: Vec<DnsFuture<'_, Ipv4Addr>> = vec![
            z.a("example.com"),
            z.a("nope.example.com"),
            z.a("slow.example.com"),
        ];
        let out = block_on(join_all(futs));
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().unwrap().records().len(), 1);
        assert_eq!(out[1], Ok(Lookup::NxDomain));
        assert_eq!(out[2], Err(DnsError::Timeout));
    }

    #[test]
    fn resolver_is_dyn_compatible() {
        let z: Box<dyn Resolver> = Box::new(zone());
        let mx = block_on(z.mx("example.com")).unwrap();
        assert_eq!(mx, Lookup::NoData);
    }
}
