//! The embedded store's in-memory state: compact sharded maps plus the log of changes not yet
//! written to disk.
//!
//! Triplets are keyed by the 128-bit keyed hash of their key text
//! ([`mxguard_engine::store::keyed_hash128`]) and hold two `u32` times (seconds since the
//! epoch, valid until 2106): 24 bytes a slot, so one million triplets take about 50 MB of
//! hash table instead of the ~150 MB that readable keys would need. The key text is kept
//! only in the pending-write log and on disk (for `mxguard greylist list`).
//!
//! Each map is split into shards behind `std::sync::Mutex`es; a lock is held for one map
//! operation and never across an `.await`. Every change also lands in its shard's pending
//! log, which the flusher takes as a whole once a second ([`TripletMap::take_pending`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use mxguard_engine::UnixTime;
use mxguard_engine::store::{AwlRecord, GreylistTimes, KeyHash, TouchOutcome, TripletRecord};

/// Number of shards: enough that request threads rarely meet on one lock, few enough that a
/// pass over all of them (flush, expiry) is cheap.
const SHARDS: usize = 64;

/// A triplet key hash, stored as two `u64`s so the map slot is 8-byte aligned (24 bytes a
/// slot instead of 32 with `u128`'s 16-byte alignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key128 {
    lo: u64,
    hi: u64,
}

impl From<KeyHash> for Key128 {
    fn from(h: KeyHash) -> Self {
        Key128 {
            lo: h.0 as u64,
            hi: (h.0 >> 64) as u64,
        }
    }
}

impl From<Key128> for KeyHash {
    fn from(k: Key128) -> Self {
        KeyHash((u128::from(k.hi) << 64) | u128::from(k.lo))
    }
}

impl Key128 {
    /// Which of `n` shards holds this key: the high word picks the shard, the low word the
    /// slot inside it.
    pub(crate) fn shard(self, n: usize) -> usize {
        (self.hi >> 58) as usize % n
    }
}

impl Hash for Key128 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The key is already a keyed PRF output: its low word is uniformly distributed.
        state.write_u64(self.lo);
    }
}

/// Passes an already random `u64` through; anything else is folded (never used by
/// `Key128`, present so the hasher is correct for any input).
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type PassThroughMap<V> = HashMap<Key128, V, BuildHasherDefault<PassThrough>>;

/// Two times in 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packed {
    first: u32,
    last: u32,
}

fn to_u32(t: UnixTime) -> u32 {
    u32::try_from(t.0).unwrap_or(u32::MAX)
}

impl From<TripletRecord> for Packed {
    fn from(r: TripletRecord) -> Self {
        Packed {
            first: to_u32(r.first),
            last: to_u32(r.last),
        }
    }
}

impl From<Packed> for TripletRecord {
    fn from(p: Packed) -> Self {
        TripletRecord {
            first: UnixTime(u64::from(p.first)),
            last: UnixTime(u64::from(p.last)),
        }
    }
}

/// A change not yet on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending<T> {
    Put(T),
    Delete,
}

/// A triplet write: the record and its key text (kept on disk for admin listings).
pub(crate) type TripletWrite = (Box<str>, TripletRecord);

#[derive(Default)]
struct TripletShard {
    map: PassThroughMap<Packed>,
    pending: PassThroughMap<Pending<TripletWrite>>,
}

impl TripletShard {
    fn log_put(&mut self, key: Key128, text: &str, rec: TripletRecord) {
        match self.pending.get_mut(&key) {
            // Repeated updates within one flush interval reuse the logged text.
            Some(Pending::Put((t, r))) if &**t == text => *r = rec,
            _ => {
                self.pending.insert(key, Pending::Put((text.into(), rec)));
            }
        }
    }
}

/// Locks a store mutex. Every critical section in the store is one map operation or one
/// flag update, so a lock poisoned by a panic elsewhere still guards consistent data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sharded triplet map (see module docs).
pub(crate) struct TripletMap {
    shards: Box<[Mutex<TripletShard>]>,
}

impl std::fmt::Debug for TripletMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TripletMap")
            .field("len", &self.len())
            .finish()
    }
}

impl TripletMap {
    pub(crate) fn new() -> Self {
        TripletMap {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, key: Key128) -> MutexGuard<'_, TripletShard> {
        lock(&self.shards[key.shard(SHARDS)])
    }

    /// Inserts a record read from disk (not logged).
    pub(crate) fn load(&self, key: Key128, rec: TripletRecord) {
        self.shard(key).map.insert(key, rec.into());
    }

    pub(crate) fn touch(
        &self,
        key: Key128,
        text: &str,
        now: UnixTime,
        times: &GreylistTimes,
    ) -> TouchOutcome {
        let mut shard = self.shard(key);
        let previous = shard.map.get(&key).map(|p| TripletRecord::from(*p));
        let current = TripletRecord::touched(previous, now, times);
        shard.map.insert(key, current.into());
        shard.log_put(key, text, current);
        TouchOutcome { previous, current }
    }

    pub(crate) fn get(&self, key: Key128) -> Option<TripletRecord> {
        self.shard(key).map.get(&key).map(|p| (*p).into())
    }

    pub(crate) fn put(&self, key: Key128, text: &str, rec: TripletRecord) {
        let mut shard = self.shard(key);
        shard.map.insert(key, rec.into());
        shard.log_put(key, text, rec);
    }

    pub(crate) fn remove(&self, key: Key128) -> bool {
        let mut shard = self.shard(key);
        let existed = shard.map.remove(&key).is_some();
        shard.pending.insert(key, Pending::Delete);
        existed
    }

    /// Removes what postgrey's cleanup removes, one shard lock at a time so requests wait at
    /// most for one shard's pass.
    pub(crate) fn expire(&self, now: UnixTime, times: &GreylistTimes) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let TripletShard { map, pending } = &mut *shard;
            map.retain(|k, p| {
                let keep = !TripletRecord::from(*p).removable(now, times);
                if !keep {
                    pending.insert(*k, Pending::Delete);
                    removed += 1;
                }
                keep
            });
        }
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Takes every pending change (each shard's log is swapped out under its lock).
    pub(crate) fn take_pending(&self) -> Vec<(Key128, Pending<TripletWrite>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut lock(shard).pending);
            out.extend(taken);
        }
        out
    }

    /// Puts back changes whose write failed, unless a newer change for the key is pending.
    pub(crate) fn requeue(&self, ops: Vec<(Key128, Pending<TripletWrite>)>) {
        for (key, op) in ops {
            self.shard(key).pending.entry(key).or_insert(op);
        }
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).pending.len()).sum()
    }
}

#[derive(Default)]
struct ClientShard {
    map: HashMap<IpAddr, AwlRecord>,
    pending: HashMap<IpAddr, Pending<AwlRecord>>,
}

/// The auto-whitelist map: far fewer entries than triplets (one per client address), kept
/// with plain `IpAddr` keys so admin listings show them.
pub(crate) struct ClientMap {
    shards: Box<[Mutex<ClientShard>]>,
}

impl std::fmt::Debug for ClientMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMap")
            .field("len", &self.len())
            .finish()
    }
}

const CLIENT_SHARDS: usize = 16;

impl ClientMap {
    pub(crate) fn new() -> Self {
        ClientMap {
            shards: (0..CLIENT_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, ip: IpAddr) -> MutexGuard<'_, ClientShard> {
        let last = match ip {
            IpAddr::V4(v4) => v4.octets()[3],
            IpAddr::V6(v6) => v6.octets()[15],
        };
        lock(&self.shards[usize::from(last) % CLIENT_SHARDS])
    }

    pub(crate) fn load(&self, ip: IpAddr, rec: AwlRecord) {
        self.shard(ip).map.insert(ip, rec);
    }

    pub(crate) fn get(&self, ip: IpAddr) -> Option<AwlRecord> {
        self.shard(ip).map.get(&ip).copied()
    }

    pub(crate) fn bump(&self, ip: IpAddr, now: UnixTime, max_age: u64) -> AwlRecord {
        let mut shard = self.shard(ip);
        let prev = shard.map.get(&ip).copied();
        let rec = AwlRecord::bumped(prev, now, max_age);
        if prev != Some(rec) {
            shard.map.insert(ip, rec);
            shard.pending.insert(ip, Pending::Put(rec));
        }
        rec
    }

    pub(crate) fn put(&self, ip: IpAddr, rec: AwlRecord) {
        let mut shard = self.shard(ip);
        shard.map.insert(ip, rec);
        shard.pending.insert(ip, Pending::Put(rec));
    }

    pub(crate) fn remove(&self, ip: IpAddr) -> bool {
        let mut shard = self.shard(ip);
        let existed = shard.map.remove(&ip).is_some();
        shard.pending.insert(ip, Pending::Delete);
        existed
    }

    pub(crate) fn list(&self, limit: usize) -> Vec<(IpAddr, AwlRecord)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            out.extend(
                shard
                    .map
                    .iter()
                    .take(limit - out.len())
                    .map(|(ip, r)| (*ip, *r)),
            );
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    pub(crate) fn expire(&self, now: UnixTime, max_age: u64) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let ClientShard { map, pending } = &mut *shard;
            map.retain(|ip, r| {
                let keep = !r.expired(now, max_age);
                if !keep {
                    pending.insert(*ip, Pending::Delete);
                    removed += 1;
                }
                keep
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

    pub(crate) fn take_pending(&self) -> Vec<(IpAddr, Pending<AwlRecord>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(std::mem::take(&mut lock(shard).pending));
        }
        out
    }

    pub(crate) fn requeue(&self, ops: Vec<(IpAddr, Pending<AwlRecord>)>) {
        for (ip, op) in ops {
            self.shard(ip).pending.entry(ip).or_insert(op);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times() -> GreylistTimes {
        GreylistTimes {
            delay: 300,
            retry_window: 172_800,
            max_age: 3_024_000,
        }
    }

    #[test]
    fn slot_is_24_bytes() {
        assert_eq!(std::mem::size_of::<(Key128, Packed)>(), 24);
    }

    #[test]
    fn touch_logs_one_pending_write_per_key() {
        let m = TripletMap::new();
        let k = Key128::from(KeyHash(0xdead_beef_u128 << 70 | 7));
        let o = m.touch(k, "a/b/c", UnixTime(1000), &times());
        assert_eq!(o.previous, None);
        let o = m.touch(k, "a/b/c", UnixTime(1400), &times());
        assert_eq!(o.previous.map(|p| p.first), Some(UnixTime(1000)));
        assert_eq!(m.pending_len(), 1);
        let ops = m.take_pending();
        assert_eq!(
            ops,
            vec![(
                k,
                Pending::Put((
                    "a/b/c".into(),
                    TripletRecord {
                        first: UnixTime(1000),
                        last: UnixTime(1400)
                    }
                ))
            )]
        );
        assert_eq!(m.pending_len(), 0);
        // A failed write is requeued, but a newer change wins.
        assert!(m.remove(k));
        m.requeue(ops);
        assert_eq!(m.take_pending(), vec![(k, Pending::Delete)]);
    }

    #[test]
    fn expire_logs_deletes() {
        let m = TripletMap::new();
        for i in 0..100u128 {
            m.touch(
                Key128::from(KeyHash(i << 64 | i)),
                "k",
                UnixTime(1000),
                &times(),
            );
        }
        m.take_pending();
        assert_eq!(m.expire(UnixTime(1000 + 172_801), &times()), 100);
        assert_eq!(m.len(), 0);
        assert_eq!(m.pending_len(), 100);
    }
}
