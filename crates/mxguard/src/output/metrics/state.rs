//! Gauges of stored state, read from the store when `/metrics` is scraped: greylist
//! entries (triplets and auto-whitelisted clients), accounts locked, and mail held for
//! locked or over-limit accounts. Also [`Tally`], the small counters-by-name that
//! `mxguard status` reads, and the `mxguard_build_info` labels.
//!
//! Counting state can be a scan (Redis `SCAN`), so a refresh happens at most every
//! [`MIN_REFRESH`], is bounded by [`REFRESH_TIMEOUT`], and a failed one keeps the previous
//! values (the failure shows in `mxguard_store_operation_errors_total`). The metrics handler
//! calls [`StateGauges::refresh`]; `service::Daemon::start` gives it the store
//! ([`StateGauges::watch`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mxguard_engine::store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Scrapes closer together than this reuse the last values.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// How long a refresh may take before it is given up.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);
/// Account records looked at per refresh (the containment state is bounded far below).
const ACCOUNT_SCAN: usize = 100_000;

/// Labels of `mxguard_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}

/// Labels of `mxguard_greylist_entries`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntryLabels {
    /// `triplet` or `client` (auto-whitelist).
    pub kind: &'static str,
}

/// Counts by key since the process started, readable (unlike a metric family) for
/// `mxguard status`.
#[derive(Debug)]
pub struct Tally<K>(Mutex<BTreeMap<K, u64>>);

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally(Mutex::new(BTreeMap::new()))
    }
}

impl<K: Ord + Clone> Tally<K> {
    pub fn add(&self, key: K) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(key).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<K, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The stored-state gauges (module docs).
#[derive(Debug, Default)]
pub struct StateGauges {
    pub greylist_entries: Family<EntryLabels, Gauge>,
    pub accounts_locked: Gauge,
    pub held_messages: Gauge,
    store: OnceLock<Arc<dyn Store>>,
    last: Mutex<Option<tokio::time::Instant>>,
}

impl StateGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let m = StateGauges::default();
        registry.register(
            "greylist_entries",
            "Greylist records in the store, by kind (triplet, client); read at scrape time",
            m.greylist_entries.clone(),
        );
        registry.register(
            "account_locks_active",
            "Accounts locked now (containment or mxguard account lock); read at scrape time",
            m.accounts_locked.clone(),
        );
        registry.register(
            "account_held_messages",
            "Queue ids held for locked or over-limit accounts, awaiting release; read at \
             scrape time",
            m.held_messages.clone(),
        );
        m
    }

    /// Reads state from `store` from now on (first call wins).
    pub fn watch(&self, store: Arc<dyn Store>) {
        let _ = self.store.set(store);
    }

    /// Re-reads the gauges unless the last refresh was less than [`MIN_REFRESH`] ago.
    pub async fn refresh(&self) {
        let Some(store) = self.store.get() else {
            return;
        };
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < MIN_REFRESH) {
                return;
            }
            *last = Some(now);
        }
        if let Ok(Ok(c)) = tokio::time::timeout(REFRESH_TIMEOUT, store.counts()).await {
            self.set_entries("triplet", c.triplets);
            self.set_entries("client", c.clients);
        }
        if let Ok(Ok(accounts)) =
            tokio::time::timeout(REFRESH_TIMEOUT, store.account_list(ACCOUNT_SCAN)).await
        {
            let locked = accounts.iter().filter(|(_, r)| r.is_locked()).count();
            let held: usize = accounts.iter().map(|(_, r)| r.held.len()).sum();
            self.accounts_locked.set(locked as i64);
            self.held_messages.set(held as i64);
        }
    }

    fn set_entries(&self, kind: &'static str, n: u64) {
        self.greylist_entries
            .get_or_create(&EntryLabels { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_engine::UnixTime;
    use mxguard_engine::store::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn gauges_follow_the_store_at_most_every_few_seconds() {
        let g = StateGauges::default();
        let store = Arc::new(MemoryStore::new());
        g.watch(store.clone());
        let ip = "192.0.2.7".parse().unwrap();
        store.awl_bump(ip, UnixTime(10), 3600).await.unwrap();
        g.refresh().await;
        let clients = || {
            g.greylist_entries
                .get(&EntryLabels { kind: "client" })
                .map(|v| v.get())
        };
        assert_eq!(clients(), Some(1));
        store.awl_remove(ip).await.unwrap();
        g.refresh().await;
        assert_eq!(
            clients(),
            Some(1),
            "within MIN_REFRESH the last values stay"
        );
        tokio::time::advance(MIN_REFRESH).await;
        g.refresh().await;
        assert_eq!(clients(), Some(0));
    }

    #[test]
    fn tally_counts_by_key() {
        let t = Tally::default();
        t.add("dunno");
        t.add("reject");
        t.add("dunno");
        assert_eq!(
            t.snapshot().into_iter().collect::<Vec<_>>(),
            [("dunno", 2), ("reject", 1)]
        );
    }
}
