//! hickory's cache counters, bridged from the `metrics` facade it reports through.
//!
//! hickory-resolver (feature `metrics`) counts `hickory_resolver_cache_hit_total` and
//! `hickory_resolver_cache_miss_total` in its caching client, through the `metrics` crate's
//! global recorder. [`install`] sets a recorder that keeps exactly those two counters (in
//! process-wide atomics, as hickory's cache serves every engine of the process) and drops
//! every other hickory metric; `DnsMetrics::sync` copies them into
//! `mxguard_dns_cache_hits_total` / `mxguard_dns_cache_misses_total` at each scrape. Called
//! once from [`crate::output::metrics::Metrics::with_redis`], before any resolver is built
//! (hickory looks its counters up when the resolver is created). Nothing else in the daemon
//! uses the `metrics` facade.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);

/// hickory-resolver's names (hickory_resolver::metrics, 0.26).
const HIT: &str = "hickory_resolver_cache_hit_total";
const MISS: &str = "hickory_resolver_cache_miss_total";

/// Cache hits and misses counted since the process started.
pub fn totals() -> (u64, u64) {
    (HITS.load(Ordering::Relaxed), MISSES.load(Ordering::Relaxed))
}

/// One of the two atomics above, as a `metrics` counter.
#[derive(Debug)]
struct Total(&'static AtomicU64);

impl CounterFn for Total {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

/// The recorder: hickory's two cache counters, nothing else.
#[derive(Debug)]
struct CacheRecorder;

impl metrics::Recorder for CacheRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match key.name() {
            HIT => Counter::from_arc(Arc::new(Total(&HITS))),
            MISS => Counter::from_arc(Arc::new(Total(&MISSES))),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Installs the recorder once per process; later calls (a second daemon in tests) do
/// nothing.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if metrics::set_global_recorder(CacheRecorder).is_err() {
            tracing::debug!("a metrics recorder is already set; DNS cache counters stay at 0");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Recorder;

    #[test]
    fn only_the_cache_counters_are_kept() {
        let r = CacheRecorder;
        let meta = Metadata::new("test", metrics::Level::INFO, None);
        let (h0, m0) = totals();
        r.register_counter(&Key::from_static_name(HIT), &meta)
            .increment(2);
        r.register_counter(&Key::from_static_name(MISS), &meta)
            .increment(1);
        r.register_counter(
            &Key::from_static_name("hickory_resolver_outgoing_queries_total"),
            &meta,
        )
        .increment(5);
        let (h1, m1) = totals();
        // Other tests of this process may resolve too: at least ours are there.
        assert!(h1 - h0 >= 2 && m1 - m0 >= 1);
    }
}
