//! DNS metrics: [`InstrumentedResolver`] wraps the resolver the sender checks use (hickory,
//! or a fixed one in tests) and counts every lookup by record type and outcome, with its
//! latency; the cache hit and miss counters come from hickory's own cache ([`cache`]).
//!
//! Labels are closed sets: the record type (`a`, `aaaa`, `txt`, `mx`, `ptr`) and the outcome
//! (`records`, `nxdomain`, `nodata`, `timeout`, `servfail`), never the name asked for. It
//! changes no answer. `service::build_engine` wraps the resolver of every engine it builds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use mxguard_engine::dns::{DnsError, DnsFuture, DnsResult, Lookup, Mx, Resolver, Txt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub mod cache;

/// Labels of `mxguard_dns_queries_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub r#type: &'static str,
    pub result: &'static str,
}

/// Labels of `mxguard_dns_lookup_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: &'static str,
}

fn dns_histogram() -> Histogram {
    // 50 µs (cache) .. ~1.6 s; the default 2 s timeout lands in +Inf.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// `mxguard_dns_*`; clones share the series.
#[derive(Debug, Clone)]
pub struct DnsMetrics {
    pub queries: Family<QueryLabels, Counter>,
    pub duration: Family<TypeLabels, Histogram, fn() -> Histogram>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
}

impl DnsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = DnsMetrics {
            queries: Family::default(),
            duration: Family::new_with_constructor(dns_histogram),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
        };
        registry.register(
            "dns_queries",
            "DNS lookups of the sender checks (HELO, DNSBL, SPF), by record type and outcome",
            m.queries.clone(),
        );
        registry.register(
            "dns_lookup_duration_seconds",
            "Time a DNS lookup took, cache hits included, by record type",
            m.duration.clone(),
        );
        registry.register(
            "dns_cache_hits",
            "DNS lookups answered from the resolver's cache (hickory; positive and negative)",
            m.cache_hits.clone(),
        );
        registry.register(
            "dns_cache_misses",
            "DNS lookups the resolver's cache could not answer (sent to a server)",
            m.cache_misses.clone(),
        );
        m
    }

    /// Copies hickory's process-wide cache counters (see [`cache`]).
    pub(super) fn sync(&self) {
        let (hits, misses) = cache::totals();
        super::catch_up(&self.cache_hits, hits);
        super::catch_up(&self.cache_misses, misses);
    }
}

/// A [`Resolver`] that measures the one it wraps (module docs).
#[derive(Debug)]
pub struct InstrumentedResolver {
    inner: Arc<dyn Resolver>,
    metrics: DnsMetrics,
}

impl InstrumentedResolver {
    pub fn new(inner: Arc<dyn Resolver>, metrics: DnsMetrics) -> Self {
        InstrumentedResolver { inner, metrics }
    }

    fn timed<'a, T: Send + 'a>(
        &'a self,
        r#type: &'static str,
        fut: DnsFuture<'a, T>,
    ) -> DnsFuture<'a, T> {
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let r: DnsResult<T> = fut.await;
            self.metrics
                .duration
                .get_or_create(&TypeLabels { r#type })
                .observe(start.elapsed().as_secs_f64());
            let result = match &r {
                Ok(Lookup::Records(_)) => "records",
                Ok(Lookup::NxDomain) => "nxdomain",
                Ok(Lookup::NoData) => "nodata",
                Err(DnsError::Timeout) => "timeout",
                Err(_) => "servfail",
            };
            self.metrics
                .queries
                .get_or_create(&QueryLabels { r#type, result })
                .inc();
            r
        })
    }
}

impl Resolver for InstrumentedResolver {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Txt> {
        self.timed("txt", self.inner.txt(name))
    }

    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv4Addr> {
        self.timed("a", self.inner.a(name))
    }

    fn aaaa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Ipv6Addr> {
        self.timed("aaaa", self.inner.aaaa(name))
    }

    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Mx> {
        self.timed("mx", self.inner.mx(name))
    }

    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, String> {
        self.timed("ptr", self.inner.ptr(ip))
    }
}
