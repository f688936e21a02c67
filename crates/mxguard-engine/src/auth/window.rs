//! The counting machinery of the auth policy: a two-bucket sliding-window counter
//! ([`Sliding`]) and a sharded, bounded map of per-key state ([`Tracker`]).
//!
//! [`Sliding`] is the approximation nauthilus uses for its brute-force buckets
//! (`cur + prev * (1 - elapsed/window)`, notes/abuse-anchors.md §4.3): two integers and a
//! bucket start per key, no timestamps per event, and no cliff at a fixed window edge. A key
//! untouched for two windows counts zero and may be dropped.
//!
//! [`Tracker`] bounds memory: every shard holds at most `cap / SHARDS` keys. When a shard is
//! full it first drops idle keys (at most once per second per shard, so a flood of new keys
//! does not rescan the shard on every insert), then evicts an arbitrary key. This is what
//! weakforced's StatsDB lacked (weakforced#360: keys never expired until `MaxSize`). Time
//! comes from the caller (the engine's [`crate::Clock`]); nothing here reads a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// Shards per tracker: enough that two cores rarely contend on one lock.
pub const SHARDS: usize = 32;

/// A sliding-window event counter (see module docs). All times are Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sliding {
    /// Start of the current bucket.
    start: u64,
    cur: u32,
    prev: u32,
}

impl Sliding {
    /// Moves the buckets forward to `now`.
    fn roll(&mut self, now: u64, window: u64) {
        let window = window.max(1);
        let elapsed = now.saturating_sub(self.start);
        if elapsed >= 2 * window || (self.cur == 0 && self.prev == 0) {
            *self = Sliding {
                start: now,
                cur: 0,
                prev: 0,
            };
        } else if elapsed >= window {
            self.prev = self.cur;
            self.cur = 0;
            self.start = self.start.saturating_add(window);
        }
    }

    /// The estimated number of events in the `window` seconds before `now`.
    pub fn estimate(&self, now: u64, window: u64) -> u32 {
        let mut s = *self;
        s.roll(now, window);
        let window = window.max(1);
        let into = now.saturating_sub(s.start).min(window);
        let carried = u64::from(s.prev) * (window - into) / window;
        s.cur
            .saturating_add(u32::try_from(carried).unwrap_or(u32::MAX))
    }

    /// Counts `n` events at `now` and returns the new estimate.
    pub fn add(&mut self, now: u64, window: u64, n: u32) -> u32 {
        self.roll(now, window);
        self.cur = self.cur.saturating_add(n);
        self.estimate(now, window)
    }

    /// Whether the counter says nothing any more at `now` (two windows without events).
    pub fn idle(&self, now: u64, window: u64) -> bool {
        (self.cur == 0 && self.prev == 0) || now.saturating_sub(self.start) >= 2 * window.max(1)
    }
}

/// State kept per key: tells the tracker when it may be dropped.
pub trait Expiring {
    /// Whether the entry carries no information any more at `now`, with counting window
    /// `window` seconds.
    fn idle(&self, now: u64, window: u64) -> bool;
}

struct Shard<K, V> {
    map: HashMap<K, V>,
    last_sweep: u64,
}

/// A bounded, sharded map of per-key state (see module docs).
pub struct Tracker<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    cap_per_shard: usize,
    window: u64,
}

impl<K, V> std::fmt::Debug for Tracker<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("cap_per_shard", &self.cap_per_shard)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one map operation: a poisoned lock still holds a usable map.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Hash + Eq + Clone, V: Default + Expiring> Tracker<K, V> {
    /// A tracker holding at most about `cap` keys (at least one per shard), whose entries
    /// count over `window` seconds.
    pub fn new(cap: usize, window: u64) -> Self {
        let cap_per_shard = cap.div_ceil(SHARDS).max(1);
        Tracker {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        last_sweep: 0,
                    })
                })
                .collect(),
            cap_per_shard,
            window,
        }
    }

    fn shard(&self, shard_hash: u64) -> MutexGuard<'_, Shard<K, V>> {
        lock(&self.shards[(shard_hash % SHARDS as u64) as usize])
    }

    /// Reads the state of `key` (if any) without creating it.
    pub fn read<R>(&self, key: &K, shard_hash: u64, f: impl FnOnce(Option<&V>) -> R) -> R {
        let shard = self.shard(shard_hash);
        f(shard.map.get(key))
    }

    /// Updates the state of `key`, creating it (and making room) if needed.
    pub fn update<R>(&self, key: &K, shard_hash: u64, now: u64, f: impl FnOnce(&mut V) -> R) -> R {
        let window = self.window;
        let mut shard = self.shard(shard_hash);
        if !shard.map.contains_key(key) && shard.map.len() >= self.cap_per_shard {
            if now != shard.last_sweep {
                shard.last_sweep = now;
                shard.map.retain(|_, v| !v.idle(now, window));
            }
            if shard.map.len() >= self.cap_per_shard
                && let Some(victim) = shard.map.keys().next().cloned()
            {
                shard.map.remove(&victim);
            }
        }
        f(shard.map.entry(key.clone()).or_default())
    }

    /// Drops every idle entry; returns how many (the periodic expiry job).
    pub fn expire(&self, now: u64) -> usize {
        let mut removed = 0;
        for s in self.shards.iter() {
            let mut s = lock(s);
            let before = s.map.len();
            s.map.retain(|_, v| !v.idle(now, self.window));
            removed += before - s.map.len();
        }
        removed
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Count(Sliding);
    impl Expiring for Count {
        fn idle(&self, now: u64, window: u64) -> bool {
            self.0.idle(now, window)
        }
    }

    #[test]
    fn sliding_counts_carry_over_and_decay() {
        let mut s = Sliding::default();
        for _ in 0..10 {
            s.add(1000, 100, 1);
        }
        assert_eq!(s.estimate(1000, 100), 10);
        assert_eq!(s.estimate(1099, 100), 10);
        // Half-way through the next bucket half of the previous one still counts.
        assert_eq!(s.estimate(1150, 100), 5);
        assert_eq!(s.add(1150, 100, 1), 6);
        // Two windows later nothing is left.
        assert_eq!(s.estimate(1400, 100), 0);
        assert!(s.idle(1400, 100));
        assert!(!s.idle(1150, 100));
    }

    #[test]
    fn tracker_is_bounded_and_expires() {
        let t: Tracker<u64, Count> = Tracker::new(SHARDS * 2, 100);
        for k in 0..1000u64 {
            t.update(&k, k, 10, |c| c.0.add(10, 100, 1));
        }
        assert!(t.len() <= SHARDS * 2, "len {}", t.len());
        assert_eq!(
            t.read(&999, 999, |c| c.map(|c| c.0.estimate(10, 100))),
            Some(1)
        );
        assert_eq!(t.expire(10), 0);
        let n = t.len();
        assert!(n > 0);
        assert_eq!(t.expire(500), n);
        assert!(t.is_empty());
    }
}
