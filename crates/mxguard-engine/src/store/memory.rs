//! [`MemoryStore`]: a volatile [`Store`] in two mutex-protected hash maps.
//!
//! For tests and benchmarks, and as the reference behaviour the durable backends are checked
//! against. It keeps readable keys and loses everything when dropped. Every method completes
//! synchronously; the returned futures are already ready.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use super::{
    AwlEntry, AwlRecord, ExpireStats, GreylistEntry, GreylistKey, GreylistTimes, Store,
    StoreCounts, StoreError, StoreFuture, TouchOutcome, TripletRecord,
};
use crate::account::AccountRecord;
use crate::auth::BanRecord;
use crate::clock::UnixTime;
use crate::limits::gcra::{self, GcraState, Mode, Outcome, Window};

/// A volatile store (see the module docs).
#[derive(Debug, Default)]
pub struct MemoryStore {
    triplets: Mutex<HashMap<String, TripletRecord>>,
    clients: Mutex<HashMap<IpAddr, AwlRecord>>,
    limits: Mutex<HashMap<String, GcraState>>,
    accounts: Mutex<HashMap<String, AccountRecord>>,
    bans: Mutex<HashMap<String, BanRecord>>,
}

/// Locks a map; a poisoned lock (a panic elsewhere while holding it) still holds consistent
/// data because every critical section here is a single map operation.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ready<'a, T: Send + 'a>(v: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok::<T, StoreError>(v)))
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn greylist_touch<'a>(
        &'a self,
        key: &'a GreylistKey,
        now: UnixTime,
        times: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome> {
        let mut map = lock(&self.triplets);
        let previous = map.get(key.as_str()).copied();
        let current = TripletRecord::touched(previous, now, &times);
        map.insert(key.as_str().to_owned(), current);
        ready(TouchOutcome { previous, current })
    }

    fn greylist_get<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>> {
        ready(lock(&self.triplets).get(key.as_str()).copied())
    }

    fn greylist_put<'a>(
        &'a self,
        key: &'a GreylistKey,
        record: TripletRecord,
    ) -> StoreFuture<'a, ()> {
        lock(&self.triplets).insert(key.as_str().to_owned(), record);
        ready(())
    }

    fn greylist_remove<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, bool> {
        ready(lock(&self.triplets).remove(key.as_str()).is_some())
    }

    fn greylist_list(&self, limit: usize) -> StoreFuture<'_, Vec<GreylistEntry>> {
        let map = lock(&self.triplets);
        let list = map
            .iter()
            .take(limit)
            .map(|(k, r)| GreylistEntry {
                key: k.clone(),
                record: *r,
            })
            .collect();
        ready(list)
    }

    fn awl_get(&self, client: IpAddr) -> StoreFuture<'_, Option<AwlRecord>> {
        ready(lock(&self.clients).get(&client).copied())
    }

    fn awl_bump(&self, client: IpAddr, now: UnixTime, max_age: u64) -> StoreFuture<'_, AwlRecord> {
        let mut map = lock(&self.clients);
        let rec = AwlRecord::bumped(map.get(&client).copied(), now, max_age);
        map.insert(client, rec);
        ready(rec)
    }

    fn awl_put(&self, client: IpAddr, record: AwlRecord) -> StoreFuture<'_, ()> {
        lock(&self.clients).insert(client, record);
        ready(())
    }

    fn awl_remove(&self, client: IpAddr) -> StoreFuture<'_, bool> {
        ready(lock(&self.clients).remove(&client).is_some())
    }

    fn awl_list(&self, limit: usize) -> StoreFuture<'_, Vec<AwlEntry>> {
        let map = lock(&self.clients);
        let list = map
            .iter()
            .take(limit)
            .map(|(c, r)| AwlEntry {
                client: *c,
                record: *r,
            })
            .collect();
        ready(list)
    }

    fn expire(&self, now: UnixTime, times: GreylistTimes) -> StoreFuture<'_, ExpireStats> {
        let mut stats = ExpireStats::default();
        {
            let mut map = lock(&self.triplets);
            let before = map.len();
            map.retain(|_, r| !r.removable(now, &times));
            stats.triplets_removed = (before - map.len()) as u64;
        }
        {
            let mut map = lock(&self.clients);
            let before = map.len();
            map.retain(|_, r| !r.expired(now, times.max_age));
            stats.clients_removed = (before - map.len()) as u64;
        }
        lock(&self.limits).retain(|_, s| s.idle_at > now);
        ready(stats)
    }

    fn counts(&self) -> StoreFuture<'_, StoreCounts> {
        let triplets = lock(&self.triplets).len() as u64;
        let clients = lock(&self.clients).len() as u64;
        ready(StoreCounts { triplets, clients })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        ready(())
    }

    fn limit_apply<'a>(
        &'a self,
        key: &'a str,
        windows: &'a [Window],
        now: UnixTime,
        cost: u64,
        mode: Mode,
    ) -> StoreFuture<'a, Outcome> {
        let mut map = lock(&self.limits);
        let (outcome, new) = gcra::apply(map.get(key), windows, now, cost, mode);
        if let Some(new) = new {
            map.insert(key.to_owned(), new);
        }
        ready(outcome)
    }

    fn limit_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<GcraState>> {
        ready(lock(&self.limits).get(key).cloned())
    }

    fn limit_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        ready(lock(&self.limits).remove(key).is_some())
    }

    fn account_get<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<AccountRecord>> {
        ready(lock(&self.accounts).get(user).cloned())
    }

    fn account_put<'a>(&'a self, user: &'a str, record: AccountRecord) -> StoreFuture<'a, ()> {
        let mut map = lock(&self.accounts);
        if record.is_empty() {
            map.remove(user);
        } else {
            map.insert(user.to_owned(), record);
        }
        ready(())
    }

    fn account_hold<'a>(&'a self, user: &'a str, queue_id: &'a str) -> StoreFuture<'a, ()> {
        lock(&self.accounts)
            .entry(user.to_owned())
            .or_insert_with(|| AccountRecord {
                locked: None,
                held: Vec::new(),
            })
            .add_held(queue_id);
        ready(())
    }

    fn account_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, AccountRecord)>> {
        let map = lock(&self.accounts);
        let mut list: Vec<_> = map.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.truncate(limit);
        ready(list)
    }

    fn ban_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<BanRecord>> {
        ready(lock(&self.bans).get(key).cloned())
    }

    fn ban_put<'a>(&'a self, key: &'a str, record: BanRecord) -> StoreFuture<'a, ()> {
        lock(&self.bans).insert(key.to_owned(), record);
        ready(())
    }

    fn ban_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        ready(lock(&self.bans).remove(key).is_some())
    }

    fn ban_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, BanRecord)>> {
        let map = lock(&self.bans);
        let mut list: Vec<_> = map.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.truncate(limit);
        ready(list)
    }
}
