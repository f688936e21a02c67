//! The embedded store's rate-limit states in memory: keyed by hash, packed small.
//!
//! A busy submission host tracks a key per login, client, network and sender domain for
//! every limit, a million keys and more (issue 7 budgets 200 MB for a million). A map from
//! readable keys to `GcraState` costs ~170 bytes a key (key text, a `Vec` per state, slack);
//! here a key is its 128-bit keyed hash ([`Key128`], as for greylist triplets) and a state
//! of one or two windows whose TATs fit in `u64` (any rate below ten billion cells per
//! window at today's clock) is stored inline in 24 bytes: 40 bytes a slot. Bigger states
//! (three or more windows, huge byte counts) are boxed as they are.
//!
//! Nothing here needs the key text back: limits are looked up, charged and removed by key,
//! never listed. The text travels with each pending write (the redb table is keyed by it),
//! and drained states are dropped from memory without logging a delete; the flusher prunes
//! drained rows on disk by their stored `idle_at` (`embedded::expire`). A drained state
//! equals no state (`gcra` module docs), so a drained row left on disk a while changes
//! nothing.

use std::sync::{Mutex, MutexGuard};

use mxguard_engine::UnixTime;
use mxguard_engine::limits::gcra::GcraState;
use mxguard_engine::store::keyed_hash128;

use super::compact::{Key128, PassThroughMap, Pending, lock};

const SHARDS: usize = 64;

/// A stored GCRA state (see module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// `len` (1 or 2) TATs, `idle_at` in seconds (until 2106).
    Small {
        len: u8,
        idle_at: u32,
        tats: [u64; 2],
    },
    Big(Box<GcraState>),
}

impl Slot {
    fn pack(s: GcraState) -> Slot {
        let small = (1..=2).contains(&s.tats.len())
            && s.tats.iter().all(|t| u64::try_from(*t).is_ok())
            && u32::try_from(s.idle_at.0).is_ok();
        if !small {
            return Slot::Big(Box::new(s));
        }
        let mut tats = [0u64; 2];
        for (slot, t) in tats.iter_mut().zip(&s.tats) {
            *slot = *t as u64;
        }
        Slot::Small {
            len: s.tats.len() as u8,
            idle_at: s.idle_at.0 as u32,
            tats,
        }
    }

    fn unpack(&self) -> GcraState {
        match self {
            Slot::Small { len, idle_at, tats } => GcraState {
                tats: tats[..usize::from(*len)]
                    .iter()
                    .map(|t| u128::from(*t))
                    .collect(),
                idle_at: UnixTime(u64::from(*idle_at)),
            },
            Slot::Big(s) => (**s).clone(),
        }
    }

    fn idle_at(&self) -> UnixTime {
        match self {
            Slot::Small { idle_at, .. } => UnixTime(u64::from(*idle_at)),
            Slot::Big(s) => s.idle_at,
        }
    }
}

/// A logged change: the key text (the disk table's key) and what to write.
pub(crate) type LimitWrite = (Box<str>, Pending<GcraState>);

#[derive(Default)]
struct Shard {
    map: PassThroughMap<Slot>,
    pending: PassThroughMap<LimitWrite>,
}

/// The sharded rate-limit map (see module docs).
pub(crate) struct LimitMap {
    /// The store's hash key (`embedded` meta table), so keys cannot be chosen to collide.
    seed: [u64; 2],
    shards: Box<[Mutex<Shard>]>,
}

impl std::fmt::Debug for LimitMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitMap")
            .field("len", &self.len())
            .finish()
    }
}

impl LimitMap {
    pub(crate) fn new(seed: [u64; 2]) -> Self {
        LimitMap {
            seed,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn hash(&self, text: &str) -> Key128 {
        keyed_hash128(self.seed, text.as_bytes()).into()
    }

    fn shard(&self, key: Key128) -> MutexGuard<'_, Shard> {
        lock(&self.shards[key.shard(SHARDS)])
    }

    /// Inserts a state read from disk (not logged).
    pub(crate) fn load(&self, text: &str, state: GcraState) {
        let key = self.hash(text);
        self.shard(key).map.insert(key, Slot::pack(state));
    }

    pub(crate) fn get(&self, text: &str) -> Option<GcraState> {
        let key = self.hash(text);
        self.shard(key).map.get(&key).map(Slot::unpack)
    }

    /// Atomically reads the state of `text`, lets `f` decide, and stores (and logs) the new
    /// state `f` returns, if any.
    pub(crate) fn update<R>(
        &self,
        text: &str,
        f: impl FnOnce(Option<&GcraState>) -> (R, Option<GcraState>),
    ) -> R {
        let key = self.hash(text);
        let mut shard = self.shard(key);
        let old = shard.map.get(&key).map(Slot::unpack);
        let (result, new) = f(old.as_ref());
        if let Some(state) = new {
            shard.map.insert(key, Slot::pack(state.clone()));
            shard
                .pending
                .insert(key, (text.into(), Pending::Put(state)));
        }
        result
    }

    /// Removes `text` now and on disk at the next batch.
    pub(crate) fn remove(&self, text: &str) -> bool {
        let key = self.hash(text);
        let mut shard = self.shard(key);
        let existed = shard.map.remove(&key).is_some();
        shard.pending.insert(key, (text.into(), Pending::Delete));
        existed
    }

    /// Drops the states that have drained by `now` from memory, one shard at a time
    /// (the disk rows are pruned separately, see module docs); returns how many.
    pub(crate) fn expire(&self, now: UnixTime) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let before = shard.map.len();
            shard.map.retain(|_, s| s.idle_at() > now);
            removed += (before - shard.map.len()) as u64;
        }
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).pending.len()).sum()
    }

    /// The changes logged since the last call, for one batch.
    pub(crate) fn take_pending(&self) -> Vec<LimitWrite> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(std::mem::take(&mut lock(shard).pending).into_values());
        }
        out
    }

    /// Puts back the writes of a failed batch, unless a newer change of the key is logged.
    pub(crate) fn requeue(&self, ops: Vec<LimitWrite>) {
        for (text, op) in ops {
            let key = self.hash(&text);
            self.shard(key).pending.entry(key).or_insert((text, op));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(tats: &[u128], idle: u64) -> GcraState {
        GcraState {
            tats: tats.to_vec(),
            idle_at: UnixTime(idle),
        }
    }

    #[test]
    fn small_states_pack_inline_and_big_ones_round_trip_boxed() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
        for s in [
            state(&[5], 10),
            state(&[1_800_000_000 * 500, 1_800_000_000 * 100], 1_800_086_400),
        ] {
            assert!(matches!(Slot::pack(s.clone()), Slot::Small { .. }));
            assert_eq!(Slot::pack(s.clone()).unpack(), s);
        }
        for s in [
            state(&[1, 2, 3], 10),
            state(&[u128::from(u64::MAX) + 1], 10),
            state(&[7], u64::from(u32::MAX) + 1),
            state(&[], 0),
        ] {
            assert!(matches!(Slot::pack(s.clone()), Slot::Big(_)));
            assert_eq!(Slot::pack(s.clone()).unpack(), s);
        }
    }

    #[test]
    fn updates_are_logged_with_their_text_and_requeue_keeps_newer_changes() {
        let m = LimitMap::new([1, 2]);
        let r = m.update("per-user/alice", |old| {
            (old.is_none(), Some(state(&[9], 100)))
        });
        assert!(r);
        m.update("per-user/bob", |_| ((), None));
        assert_eq!(m.get("per-user/alice"), Some(state(&[9], 100)));
        assert_eq!(m.get("per-user/bob"), None);
        let ops = m.take_pending();
        assert_eq!(ops.len(), 1);
        assert!(
            matches!(&ops[0], (t, Pending::Put(s)) if &**t == "per-user/alice" && s.tats == [9])
        );
        assert!(m.remove("per-user/alice"));
        assert!(!m.remove("per-user/carol"));
        m.requeue(ops);
        let mut ops = m.take_pending();
        ops.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(ops.len(), 2);
        assert!(matches!(&ops[0], (t, Pending::Delete) if &**t == "per-user/alice"));
        assert!(matches!(&ops[1], (t, Pending::Delete) if &**t == "per-user/carol"));
    }

    #[test]
    fn expire_drops_drained_states_without_logging() {
        let m = LimitMap::new([3, 4]);
        for i in 0..100u64 {
            m.load(&format!("k{i}"), state(&[u128::from(i)], i));
        }
        assert_eq!(m.expire(UnixTime(49)), 50);
        assert_eq!(m.len(), 50);
        assert_eq!(m.pending_len(), 0);
        assert_eq!(m.get("k49"), None);
        assert_eq!(m.get("k50"), Some(state(&[50], 50)));
    }
}
