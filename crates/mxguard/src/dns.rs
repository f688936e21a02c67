//! The daemon's DNS: hickory-resolver behind the engine's `Resolver` trait.
//!
//! SPF, HELO/FCrDNS and DNSBL checks in `mxguard-engine` ask [`mxguard_engine::dns::Resolver`]
//! for records; [`HickoryResolver`] answers with hickory-resolver, either from the system's
//! resolv.conf or from the configured servers (`[dns] servers = ["127.0.0.1:53"]`). hickory's
//! cache honours record TTLs and caches negative answers (NXDOMAIN and no-data, for the SOA's
//! negative TTL, RFC 2308), so one cache serves every check. Each query has a hard time limit
//! ([`DnsSettings::timeout`]) on top of hickory's own per-attempt timeout, so a slow or dead
//! server turns into [`DnsError::Timeout`] (SPF temperror, DNSBL "not listed") and never stalls
//! a reply; [`spf_within`] bounds a whole SPF decision the same way. NXDOMAIN and "no records"
//! stay distinct, as RFC 7208's void-lookup limit needs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use mxguard_engine::checks::NoResolver;
use mxguard_engine::checks::budget::{Sleep, Timer};
use mxguard_engine::dns::{DnsError, DnsFuture, DnsResult, Lookup, Mx, Resolver, Txt};
use mxguard_engine::spf::policyd_spf::{MessageInfo, PolicydSpf, SpfDecision};

/// How the daemon resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Name servers to ask; empty means the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    /// Hard limit for one query, retries included.
    pub timeout: Duration,
    /// Cached answers (positive and negative), in responses.
    pub cache_size: u64,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            cache_size: 32_768,
        }
    }
}

/// A server address as written in the config: `IP`, `IP:port`, `[IPv6]:port` (port 53 when
/// absent).
pub fn parse_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("invalid DNS server {s:?} (expected IP or IP:port)"))
}

/// Why the resolver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("cannot read the system resolver configuration: {0}")]
    System(String),
    #[error("cannot build the resolver: {0}")]
    Build(String),
}

/// hickory-resolver as an engine `Resolver`.
#[derive(Debug, Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
    timeout: Duration,
}

impl HickoryResolver {
    /// Builds the resolver. Must run inside a tokio runtime.
    pub fn new(settings: &DnsSettings) -> Result<HickoryResolver, DnsSetupError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if settings.servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| DnsSetupError::System(e.to_string()))?
        } else {
            let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
            for server in &settings.servers {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                config.add_name_server(NameServerConfig::new(server.ip(), true, vec![udp, tcp]));
            }
            TokioResolver::builder_with_config(config, provider)
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        // One attempt per server within our budget: the hard limit below is what counts.
        opts.timeout = settings.timeout;
        opts.attempts = 1;
        opts.cache_size = settings.cache_size;
        opts.ndots = 0;
        let inner = builder
            .build()
            .map_err(|e| DnsSetupError::Build(e.to_string()))?;
        Ok(HickoryResolver {
            inner,
            timeout: settings.timeout,
        })
    }

    /// Runs one lookup with the hard time limit and maps hickory's outcome.
    async fn query<T>(
        &self,
        fut: impl Future<Output = Result<hickory_resolver::lookup::Lookup, NetError>>,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> DnsResult<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(DnsError::Timeout),
            Ok(Ok(lookup)) => Ok(Lookup::from_records(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| pick(&r.data))
                    .collect(),
            )),
            Ok(Err(e)) => classify(e),
        }
    }
}

/// NXDOMAIN and no-data are answers; everything else is a failure (RFC 7208 section 2.6.6).
fn classify<T>(e: NetError) -> DnsResult<T> {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(nr)) => {
            if nr.response_code == ResponseCode::NXDomain {
                Ok(Lookup::NxDomain)
            } else {
                Ok(Lookup::NoData)
            }
        }
        NetError::Timeout => Err(DnsError::Timeout),
        other => Err(DnsError::ServFail(other.to_string())),
    }
}

/// The absolute form of `name`, so no search domain is ever appended.
fn fqdn(name: &str) -> Option<Name> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// A name hickory cannot even encode does not exist.
fn unencodable<T: Send + 'static>() -> DnsFuture<'static, T> {
    Box::pin(std::future::ready(Ok(Lookup::NxDomain)))
}

impl Resolver for HickoryResolver {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Txt> {
        let Some(n) = fqdn(name) else {
            return unencodable();
        };
        Box::pin(self.query(self.inner.txt_lookup(n), |d| match d {
            RData::TXT(t) => Some(Txt {
                strings: t.txt_data.iter().map(|s| s.to_vec()).collect(),
            }),
            _ => None,
        }))
    }

    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv4Addr> {
        let Some(n) = fqdn(name) else {
            return unencodable();
        };
        Box::pin(self.query(self.inner.ipv4_lookup(n), |d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        }))
    }

    fn aaaa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv6Addr> {
        let Some(n) = fqdn(name) else {
            return unencodable();
        };
        Box::pin(self.query(self.inner.ipv6_lookup(n), |d| match d {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        }))
    }

    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Mx> {
        let Some(n) = fqdn(name) else {
            return unencodable();
        };
        Box::pin(self.query(self.inner.mx_lookup(n), |d| match d {
            RData::MX(m) => Some(Mx {
                preference: m.preference,
                exchange: m.exchange.to_ascii().trim_end_matches('.').to_string(),
            }),
            _ => None,
        }))
    }

    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, String> {
        let Some(n) = fqdn(&mxguard_engine::dns::reverse_name(ip)) else {
            return unencodable();
        };
        Box::pin(self.query(self.inner.reverse_lookup(n), |d| match d {
            RData::PTR(p) => Some(p.0.to_ascii().trim_end_matches('.').to_string()),
            _ => None,
        }))
    }
}

/// The engine's [`Timer`] on tokio's clock: bounds the DNS-based checks by their budgets.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The resolver the policy engine uses: a fixed one (tests), or hickory built from `[dns]`,
/// rebuilt only when `[dns]` changes so its cache survives a reload.
#[derive(Debug)]
pub struct ResolverSlot {
    fixed: Option<Arc<dyn Resolver>>,
    built: Mutex<Option<(DnsSettings, Arc<dyn Resolver>)>>,
}

impl ResolverSlot {
    /// A slot that builds from the configuration, or always answers `fixed` when given.
    pub fn new(fixed: Option<Arc<dyn Resolver>>) -> ResolverSlot {
        ResolverSlot {
            fixed,
            built: Mutex::new(None),
        }
    }

    /// The resolver for `settings`. Must run inside a tokio runtime. A resolver that cannot be
    /// built (no readable resolv.conf) is logged and replaced by one whose every lookup fails:
    /// SPF answers temperror, DNSBLs count as not listed; mail keeps flowing.
    pub fn get(&self, settings: &DnsSettings) -> Arc<dyn Resolver> {
        if let Some(r) = &self.fixed {
            return r.clone();
        }
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, r)) = built.as_ref()
            && s == settings
        {
            return r.clone();
        }
        let r: Arc<dyn Resolver> = match HickoryResolver::new(settings) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                tracing::error!(error = %e, "DNS resolver unavailable; DNS-based checks fail open");
                Arc::new(NoResolver)
            }
        };
        *built = Some((settings.clone(), r.clone()));
        r
    }
}

/// policyd-spf's decision for one message within `budget`: past it, the answer is the one for
/// a temperror ([`PolicydSpf::timed_out`]), so a slow or dead DNS server never holds up Postfix.
pub async fn spf_within(
    policy: &PolicydSpf,
    resolver: &dyn Resolver,
    message: &MessageInfo<'_>,
    budget: Duration,
) -> SpfDecision {
    match tokio::time::timeout(budget, policy.decide(resolver, message)).await {
        Ok(decision) => decision,
        Err(_) => policy.timed_out(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server("127.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_server("127.0.0.1").unwrap().port(), 53);
        assert_eq!(parse_server("[::1]:54").unwrap().port(), 54);
        assert_eq!(parse_server("::1").unwrap().port(), 53);
        assert!(parse_server("localhost:53").is_err());
    }
}
