//! Store latency and errors: [`InstrumentedStore`] wraps whatever backend `[store]` opened
//! (memory, embedded redb, Redis) and times every operation into
//! `mxguard_store_operation_duration_seconds{operation}`, counting failures in
//! `mxguard_store_operation_errors_total{operation}`.
//!
//! The wrapper forwards every [`Store`] method, defaulted ones included, so a backend's own
//! batching (`read_many` as one Redis MGET) and refusals stay exactly as they were. It does
//! not decide anything about failures (the callers fail open and count
//! `mxguard_store_errors_total`). The operation label is the method name: a closed set.
//! `service::Daemon::start` wraps the store once, before anything uses it.

use std::net::IpAddr;
use std::sync::Arc;

use mxguard_engine::UnixTime;
use mxguard_engine::account::AccountRecord;
use mxguard_engine::auth::ban::BanRecord;
use mxguard_engine::limits::gcra::{GcraState, Mode, Outcome, Window};
use mxguard_engine::store::{
    AwlEntry, AwlRecord, ExpireStats, GreylistEntry, GreylistKey, GreylistTimes, ReadKey,
    ReadValue, Store, StoreCounts, StoreError, StoreFuture, TouchOutcome, TripletRecord,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels with a store operation (a [`Store`] method name).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

fn store_histogram() -> Histogram {
    // 10 µs .. ~0.3 s: an embedded lookup is microseconds, a Redis round trip a fraction
    // of a millisecond on a LAN; the configured Redis timeout shows in the top buckets.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 16))
}

/// `mxguard_store_operation_*`; clones share the series.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    pub duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub errors: Family<OperationLabels, Counter>,
}

impl StoreMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = StoreMetrics {
            duration: Family::new_with_constructor(store_histogram),
            errors: Family::default(),
        };
        registry.register(
            "store_operation_duration_seconds",
            "Time each store operation took, by operation (any backend)",
            m.duration.clone(),
        );
        registry.register(
            "store_operation_errors",
            "Store operations that failed, by operation (any backend)",
            m.errors.clone(),
        );
        m
    }
}

/// A [`Store`] that measures the one it wraps (module docs).
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: StoreMetrics,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Self {
        InstrumentedStore { inner, metrics }
    }

    /// Times `fut` as `operation`.
    fn timed<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        fut: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let r = fut.await;
            let labels = OperationLabels { operation };
            self.metrics
                .duration
                .get_or_create(&labels)
                .observe(start.elapsed().as_secs_f64());
            if r.is_err() {
                self.metrics.errors.get_or_create(&labels).inc();
            }
            r
        })
    }
}

impl Store for InstrumentedStore {
    fn greylist_touch<'a>(
        &'a self,
        key: &'a GreylistKey,
        now: UnixTime,
        times: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome> {
        self.timed("greylist_touch", self.inner.greylist_touch(key, now, times))
    }

    fn greylist_get<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>> {
        self.timed("greylist_get", self.inner.greylist_get(key))
    }

    fn greylist_put<'a>(
        &'a self,
        key: &'a GreylistKey,
        record: TripletRecord,
    ) -> StoreFuture<'a, ()> {
        self.timed("greylist_put", self.inner.greylist_put(key, record))
    }

    fn greylist_remove<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, bool> {
        self.timed("greylist_remove", self.inner.greylist_remove(key))
    }

    fn greylist_list(&self, limit: usize) -> StoreFuture<'_, Vec<GreylistEntry>> {
        self.timed("greylist_list", self.inner.greylist_list(limit))
    }

    fn awl_get(&self, client: IpAddr) -> StoreFuture<'_, Option<AwlRecord>> {
        self.timed("awl_get", self.inner.awl_get(client))
    }

    fn awl_bump(&self, client: IpAddr, now: UnixTime, max_age: u64) -> StoreFuture<'_, AwlRecord> {
        self.timed("awl_bump", self.inner.awl_bump(client, now, max_age))
    }

    fn awl_put(&self, client: IpAddr, record: AwlRecord) -> StoreFuture<'_, ()> {
        self.timed("awl_put", self.inner.awl_put(client, record))
    }

    fn awl_remove(&self, client: IpAddr) -> StoreFuture<'_, bool> {
        self.timed("awl_remove", self.inner.awl_remove(client))
    }

    fn awl_list(&self, limit: usize) -> StoreFuture<'_, Vec<AwlEntry>> {
        self.timed("awl_list", self.inner.awl_list(limit))
    }

    fn expire(&self, now: UnixTime, times: GreylistTimes) -> StoreFuture<'_, ExpireStats> {
        self.timed("expire", self.inner.expire(now, times))
    }

    fn counts(&self) -> StoreFuture<'_, StoreCounts> {
        self.timed("counts", self.inner.counts())
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.timed("flush", self.inner.flush())
    }

    fn limit_apply<'a>(
        &'a self,
        key: &'a str,
        windows: &'a [Window],
        now: UnixTime,
        cost: u64,
        mode: Mode,
    ) -> StoreFuture<'a, Outcome> {
        self.timed(
            "limit_apply",
            self.inner.limit_apply(key, windows, now, cost, mode),
        )
    }

    fn limit_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<GcraState>> {
        self.timed("limit_get", self.inner.limit_get(key))
    }

    fn limit_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        self.timed("limit_remove", self.inner.limit_remove(key))
    }

    fn account_get<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<AccountRecord>> {
        self.timed("account_get", self.inner.account_get(user))
    }

    fn account_put<'a>(&'a self, user: &'a str, record: AccountRecord) -> StoreFuture<'a, ()> {
        self.timed("account_put", self.inner.account_put(user, record))
    }

    fn account_hold<'a>(&'a self, user: &'a str, queue_id: &'a str) -> StoreFuture<'a, ()> {
        self.timed("account_hold", self.inner.account_hold(user, queue_id))
    }

    fn account_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, AccountRecord)>> {
        self.timed("account_list", self.inner.account_list(limit))
    }

    fn ban_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<BanRecord>> {
        self.timed("ban_get", self.inner.ban_get(key))
    }

    fn ban_put<'a>(&'a self, key: &'a str, record: BanRecord) -> StoreFuture<'a, ()> {
        self.timed("ban_put", self.inner.ban_put(key, record))
    }

    fn ban_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        self.timed("ban_remove", self.inner.ban_remove(key))
    }

    fn ban_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, BanRecord)>> {
        self.timed("ban_list", self.inner.ban_list(limit))
    }

    #[allow(clippy::type_complexity)]
    fn read_many<'a>(
        &'a self,
        keys: &'a [ReadKey],
    ) -> StoreFuture<'a, Vec<Result<ReadValue, StoreError>>> {
        self.timed("read_many", self.inner.read_many(keys))
    }

    fn ban_version(&self) -> StoreFuture<'_, Option<u64>> {
        self.timed("ban_version", self.inner.ban_version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_engine::store::MemoryStore;

    #[tokio::test]
    async fn operations_are_timed_and_answers_pass_through() {
        let mut registry = Registry::default();
        let m = StoreMetrics::register(&mut registry);
        let store = InstrumentedStore::new(Arc::new(MemoryStore::new()), m.clone());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(store.awl_get(ip).await, Ok(None));
        store.awl_bump(ip, UnixTime(100), 3600).await.unwrap();
        assert_eq!(store.awl_get(ip).await.unwrap().map(|r| r.count), Some(1));
        let get = OperationLabels {
            operation: "awl_get",
        };
        assert!(m.errors.get(&get).is_none());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("store_operation_duration_seconds_count{operation=\"awl_get\"} 2"),
            "{text}"
        );
        // The wrapped store's answers pass through unchanged, errors included.
        let direct = MemoryStore::new().ban_version().await;
        assert_eq!(store.ban_version().await, direct);
    }
}
