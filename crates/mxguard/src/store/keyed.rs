//! A sharded map with string keys and a pending-write log, for the embedded store's small
//! state kinds that are listed by key (account records, bans). Rate-limit states, far more
//! numerous and never listed, live in the hashed [`super::limit_map`].
//!
//! Same discipline as [`super::compact`]: one `std::sync::Mutex` per shard, held for one map
//! operation, never across an `.await`; every change is logged for the flusher's next batch.
//! These kinds are few, so keys stay readable.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::compact::{Pending, lock};

const SHARDS: usize = 16;

/// What an update does to the entry.
pub(crate) enum Change<V> {
    Put(V),
    Delete,
}

struct Shard<V> {
    map: HashMap<Box<str>, V>,
    pending: HashMap<Box<str>, Pending<V>>,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Shard {
            map: HashMap::new(),
            pending: HashMap::new(),
        }
    }
}

pub(crate) struct KeyedMap<V> {
    shards: Box<[Mutex<Shard<V>>]>,
}

impl<V: Clone> std::fmt::Debug for KeyedMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedMap")
            .field("len", &self.len())
            .finish()
    }
}

/// FNV-1a: only spreads keys over shards (the maps inside use std's keyed hasher).
fn shard_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl<V: Clone> KeyedMap<V> {
    pub(crate) fn new() -> Self {
        KeyedMap {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard<V>> {
        lock(&self.shards[shard_of(key)])
    }

    /// Inserts a value read from disk (not logged).
    pub(crate) fn load(&self, key: &str, value: V) {
        self.shard(key).map.insert(key.into(), value);
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        self.shard(key).map.get(key).cloned()
    }

    /// Atomically reads, decides and writes one entry.
    pub(crate) fn update<R>(&self, key: &str, f: impl FnOnce(Option<&V>) -> (R, Change<V>)) -> R {
        let mut shard = self.shard(key);
        let (result, change) = f(shard.map.get(key));
        match change {
            Change::Put(v) => {
                shard.map.insert(key.into(), v.clone());
                shard.pending.insert(key.into(), Pending::Put(v));
            }
            Change::Delete => {
                shard.map.remove(key);
                shard.pending.insert(key.into(), Pending::Delete);
            }
        }
        result
    }

    pub(crate) fn remove(&self, key: &str) -> bool {
        self.update(key, |old| (old.is_some(), Change::Delete))
    }

    /// Up to `limit` entries, sorted by key.
    pub(crate) fn list(&self, limit: usize) -> Vec<(String, V)> {
        let mut out: Vec<(String, V)> = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            out.extend(shard.map.iter().map(|(k, v)| (k.to_string(), v.clone())));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.truncate(limit);
        out
    }

    /// Drops entries for which `keep` is false, one shard at a time; returns how many.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&V) -> bool) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let Shard { map, pending } = &mut *shard;
            map.retain(|k, v| {
                let k_keep = keep(v);
                if !k_keep {
                    pending.insert(k.clone(), Pending::Delete);
                    removed += 1;
                }
                k_keep
            });
        }
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).pending.len()).sum()
    }

    pub(crate) fn take_pending(&self) -> Vec<(Box<str>, Pending<V>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(std::mem::take(&mut lock(shard).pending));
        }
        out
    }

    pub(crate) fn requeue(&self, ops: Vec<(Box<str>, Pending<V>)>) {
        for (key, op) in ops {
            self.shard(&key).pending.entry(key.clone()).or_insert(op);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_logs_changes_and_requeue_keeps_newer() {
        let m: KeyedMap<u32> = KeyedMap::new();
        let r = m.update("a", |old| (old.copied(), Change::Put(1)));
        assert_eq!(r, None);
        assert_eq!(m.get("a"), Some(1));
        assert_eq!(m.get("b"), None);
        let ops = m.take_pending();
        assert_eq!(ops.len(), 1);
        assert!(m.remove("a"));
        m.requeue(ops);
        let ops = m.take_pending();
        assert_eq!(ops.len(), 1);
        assert!(matches!(ops[0].1, Pending::Delete));
        for i in 0..50 {
            m.update(&format!("k{i}"), |_| ((), Change::Put(i)));
        }
        assert_eq!(m.retain(|v| v % 2 == 0), 25);
        assert_eq!(m.len(), 25);
        assert_eq!(
            m.list(3)
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            ["k0", "k10", "k12"]
        );
    }
}
