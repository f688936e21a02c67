//! State the engine keeps between requests, behind the [`Store`] trait.
//!
//! The trait offers *semantic* operations, one per thing a check needs, rather than a generic
//! get/put: [`Store::greylist_touch`] is postgrey's whole read-modify-write of a triplet in one
//! call, [`Store::awl_bump`] the client auto-whitelist update. A networked backend (Redis) can
//! then do each call in one round trip (a Lua script applying the same rule), and the embedded
//! backend does it under one shard lock. The rules themselves are the pure functions
//! [`TripletRecord::touched`] and [`AwlRecord::bumped`], so every backend applies exactly the
//! same semantics and tests them once.
//!
//! This module does no I/O. Backends: [`MemoryStore`] here (tests, benches), the embedded redb
//! store and Redis in the `mxguard` binary (`store::embedded`, `store::redis`). The policy
//! ([`crate::policy::Policy`]) calls the trait; the binary's control socket calls the admin
//! operations (`*_list`, `*_remove`, `*_put`); a background job calls [`Store::expire`].

mod batch;
pub mod conformance;
mod hash;
mod memory;

pub use batch::{Prefetched, ReadKey, ReadValue, prefetched_or};
pub use hash::{KeyHash, keyed_hash128};
pub use memory::MemoryStore;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::account::AccountRecord;
use crate::auth::BanRecord;
use crate::clock::UnixTime;
use crate::limits::gcra::{GcraState, Mode, Outcome, Window};

/// The future every [`Store`] method returns: boxed so the trait stays dyn-compatible
/// (`Arc<dyn Store>`), `Send` so it can be awaited inside spawned tasks.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed. The policy fails open on any of these (see
/// [`crate::verdict::STORE_ERROR`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or timed out (network stores).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Reading or writing the backing file failed.
    #[error("store I/O error: {0}")]
    Io(String),
    /// Stored data could not be decoded.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// The store was closed (shutdown in progress).
    #[error("store closed")]
    Closed,
}

/// A greylist triplet key: `"<client network>/<normalised sender>/<recipient>"`, lowercased,
/// built by [`crate::greylist::GreylistSettings::key`] (postgrey's `lc "$net/$sender/$rcpt"`).
///
/// Backends may store the text (readable admin listings) or only a hash of it (compact
/// memory); [`KeyHash`] and [`keyed_hash128`] are the shared way to hash it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GreylistKey(String);

impl GreylistKey {
    /// Wraps an already normalised key text. Use `GreylistSettings::key` to build one from a
    /// request; this constructor exists for backends and admin tools that read keys back.
    pub fn from_normalised(text: String) -> Self {
        GreylistKey(text)
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GreylistKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The time parameters of greylisting, in seconds, as the store rules need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreylistTimes {
    /// postgrey `--delay`: how long a new triplet is deferred.
    pub delay: u64,
    /// postgrey `--retry-window`: the first successful retry must come within this time.
    pub retry_window: u64,
    /// postgrey `--max-age`: records (and AWL clients) unseen for longer are forgotten.
    pub max_age: u64,
}

/// postgrey's stored value for a triplet: `"first,last"` epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripletRecord {
    /// When the current greylisting round started (first attempt).
    pub first: UnixTime,
    /// The most recent attempt.
    pub last: UnixTime,
}

impl TripletRecord {
    /// Whether this record shows a successful pass: postgrey's `last - first >= delay`
    /// (`$last_was_successful`).
    pub fn passed(&self, times: &GreylistTimes) -> bool {
        self.last.since(self.first) >= times.delay
    }

    /// Whether the record is forgotten at `now` (unseen for more than `max_age`).
    ///
    /// Deliberate difference from postgrey 1.37: postgrey applies `--max-age` only in its
    /// nightly cleanup, so a stale record keeps passing until the cleanup runs; mxguard also
    /// applies it at lookup, so behaviour does not depend on when expiry last ran.
    pub fn expired(&self, now: UnixTime, times: &GreylistTimes) -> bool {
        now.since(self.last) > times.max_age
    }

    /// postgrey's update rule (`smtpd_access_policy`): the record after an attempt at `now`.
    ///
    /// - no record (or an expired one): `first = now`;
    /// - a record that has not passed yet and whose `first` is older than `retry_window`:
    ///   greylisting starts again, `first = now`;
    /// - a `first` in the future (clock moved back) is corrected to `now`;
    /// - `last` is always `now`.
    pub fn touched(prev: Option<TripletRecord>, now: UnixTime, times: &GreylistTimes) -> Self {
        let first = match prev {
            None => now,
            Some(p) if p.expired(now, times) => now,
            Some(p) => {
                let mut first = p.first;
                if !p.passed(times) && now.since(first) > times.retry_window {
                    first = now;
                }
                if first > now {
                    first = now;
                }
                first
            }
        };
        TripletRecord { first, last: now }
    }

    /// Whether the cleanup pass may delete this record at `now` (postgrey `do_maintenance`):
    /// unseen for more than `max_age`, or never passed and unseen for more than `retry_window`.
    pub fn removable(&self, now: UnixTime, times: &GreylistTimes) -> bool {
        self.expired(now, times)
            || (!self.passed(times) && now.since(self.last) > times.retry_window)
    }
}

/// The result of [`Store::greylist_touch`]: the record before and after the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TouchOutcome {
    pub previous: Option<TripletRecord>,
    pub current: TripletRecord,
}

/// postgrey counts at most one successful delivery per client per hour towards the
/// auto-whitelist (`$now >= $cawl_last + 3600`), and refreshes a whitelisted client's
/// last-seen time at most hourly.
pub const AWL_MIN_INTERVAL_SECS: u64 = 3600;

/// postgrey's client auto-whitelist value (`postgrey_clients.db`): `"count,last"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwlRecord {
    /// Successful deliveries counted (at most one per hour).
    pub count: u32,
    /// When the count last moved.
    pub last: UnixTime,
}

impl AwlRecord {
    /// The AWL update rule: count one more delivery at `now` unless one was already counted
    /// within the last [`AWL_MIN_INTERVAL_SECS`]. A `last` in the future counts (postgrey's
    /// `$cawl_last > $now` correction). A record unseen for more than `max_age` starts again
    /// (postgrey deletes it in cleanup; mxguard applies that at lookup too).
    pub fn bumped(prev: Option<AwlRecord>, now: UnixTime, max_age: u64) -> Self {
        match prev {
            Some(p) if now.since(p.last) <= max_age => {
                if now.0 >= p.last.0.saturating_add(AWL_MIN_INTERVAL_SECS) || p.last > now {
                    AwlRecord {
                        count: p.count.saturating_add(1),
                        last: now,
                    }
                } else {
                    p
                }
            }
            _ => AwlRecord {
                count: 1,
                last: now,
            },
        }
    }

    /// Whether the client is forgotten at `now`.
    pub fn expired(&self, now: UnixTime, max_age: u64) -> bool {
        now.since(self.last) > max_age
    }
}

/// One triplet as the admin listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistEntry {
    /// The key text when the backend keeps it, else `#` followed by the key hash in hex.
    pub key: String,
    pub record: TripletRecord,
}

/// One auto-whitelisted (or counting) client as the admin listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwlEntry {
    pub client: IpAddr,
    pub record: AwlRecord,
}

/// What one [`Store::expire`] pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireStats {
    pub triplets_removed: u64,
    pub clients_removed: u64,
}

/// How much state a store holds (for `mxguard status` and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    pub triplets: u64,
    pub clients: u64,
}

/// Engine state storage. Every method is one semantic operation that a backend performs
/// atomically (one lock, one transaction or one round trip).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Atomically applies [`TripletRecord::touched`] to the record of `key` at `now`, stores
    /// the result and returns the record before and after.
    fn greylist_touch<'a>(
        &'a self,
        key: &'a GreylistKey,
        now: UnixTime,
        times: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome>;

    /// The record of `key`, if any (admin, tests).
    fn greylist_get<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>>;

    /// Stores `record` for `key` (admin `greylist whitelist` of a triplet: a passed record).
    fn greylist_put<'a>(
        &'a self,
        key: &'a GreylistKey,
        record: TripletRecord,
    ) -> StoreFuture<'a, ()>;

    /// Removes `key`; `true` if it existed.
    fn greylist_remove<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, bool>;

    /// Up to `limit` triplets, in no particular order (admin listing).
    fn greylist_list(&self, limit: usize) -> StoreFuture<'_, Vec<GreylistEntry>>;

    /// The auto-whitelist record of a client (full address, as postgrey keys it).
    fn awl_get(&self, client: IpAddr) -> StoreFuture<'_, Option<AwlRecord>>;

    /// Atomically applies [`AwlRecord::bumped`] for `client` at `now` and returns the result.
    fn awl_bump(&self, client: IpAddr, now: UnixTime, max_age: u64) -> StoreFuture<'_, AwlRecord>;

    /// Stores an auto-whitelist record (admin `greylist whitelist` of a client).
    fn awl_put(&self, client: IpAddr, record: AwlRecord) -> StoreFuture<'_, ()>;

    /// Removes a client from the auto-whitelist; `true` if it was there.
    fn awl_remove(&self, client: IpAddr) -> StoreFuture<'_, bool>;

    /// Up to `limit` auto-whitelist records (admin listing).
    fn awl_list(&self, limit: usize) -> StoreFuture<'_, Vec<AwlEntry>>;

    /// Deletes what postgrey's cleanup deletes ([`TripletRecord::removable`], AWL clients
    /// unseen for more than `max_age`). Backends must not block requests for the whole pass.
    fn expire(&self, now: UnixTime, times: GreylistTimes) -> StoreFuture<'_, ExpireStats>;

    /// How many records the store holds.
    fn counts(&self) -> StoreFuture<'_, StoreCounts>;

    /// Makes every update so far durable (graceful shutdown, tests). A no-op for stores that
    /// write through.
    fn flush(&self) -> StoreFuture<'_, ()>;
    // Rate limits and accounts (crate::limits, crate::account). Default bodies refuse, so a
    // backend without them fails open (the policy answers its fail-open action).

    /// Atomically applies [`crate::limits::gcra::apply`] to the GCRA state of `key` and stores
    /// the result. Entries whose `idle_at` has passed equal no entry and may be expired.
    fn limit_apply<'a>(
        &'a self,
        key: &'a str,
        windows: &'a [Window],
        now: UnixTime,
        cost: u64,
        mode: Mode,
    ) -> StoreFuture<'a, Outcome> {
        let _ = (key, windows, now, cost, mode);
        unsupported("rate limits")
    }

    /// The GCRA state of `key` (admin, tests).
    fn limit_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<GcraState>> {
        let _ = key;
        unsupported("rate limits")
    }

    /// Forgets the GCRA state of `key` (admin: `account unlock` resets the account's limits).
    fn limit_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let _ = key;
        unsupported("rate limits")
    }

    /// The record of account `user` (already normalised by [`crate::account::account_key`]).
    fn account_get<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<AccountRecord>> {
        let _ = user;
        unsupported("accounts")
    }

    /// Stores the record of `user`; an empty record ([`AccountRecord::is_empty`]) deletes it.
    fn account_put<'a>(&'a self, user: &'a str, record: AccountRecord) -> StoreFuture<'a, ()> {
        let _ = (user, record);
        unsupported("accounts")
    }

    /// Atomically adds a held queue id to `user`'s record (creating an unlocked one).
    fn account_hold<'a>(&'a self, user: &'a str, queue_id: &'a str) -> StoreFuture<'a, ()> {
        let _ = (user, queue_id);
        unsupported("accounts")
    }

    /// Up to `limit` account records (admin listing).
    fn account_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, AccountRecord)>> {
        let _ = limit;
        unsupported("accounts")
    }

    // The ban list (crate::auth::ban), keyed by canonical CIDR text (`ban_key`). Shared by
    // the auth policy, the log jails and `mxguard ban`.

    /// The ban record of `key`, active or ended (its count drives escalation).
    fn ban_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<BanRecord>> {
        let _ = key;
        unsupported("bans")
    }

    /// Stores the ban record of `key`.
    fn ban_put<'a>(&'a self, key: &'a str, record: BanRecord) -> StoreFuture<'a, ()> {
        let _ = (key, record);
        unsupported("bans")
    }

    /// Removes `key` (unban); `true` if it existed.
    fn ban_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let _ = key;
        unsupported("bans")
    }

    /// Up to `limit` ban records, sorted by key (admin listing).
    fn ban_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, BanRecord)>> {
        let _ = limit;
        unsupported("bans")
    }

    /// Reads every key of `keys` (see `store::batch`), each result in its place: one round trip
    /// on a networked store (an error for the whole batch when that fails). The default
    /// reads them one by one with the single-record methods.
    #[allow(clippy::type_complexity)]
    fn read_many<'a>(
        &'a self,
        keys: &'a [ReadKey],
    ) -> StoreFuture<'a, Vec<Result<ReadValue, StoreError>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                out.push(match k {
                    ReadKey::Ban(k) => self.ban_get(k).await.map(ReadValue::Ban),
                    ReadKey::Account(u) => self.account_get(u).await.map(ReadValue::Account),
                    ReadKey::Limit(k) => self.limit_get(k).await.map(ReadValue::Limit),
                    ReadKey::Awl(ip) => self.awl_get(*ip).await.map(ReadValue::Awl),
                });
            }
            Ok(out)
        })
    }

    /// A number that changes with every ban written or removed, by any host, when the ban
    /// list is shared with other hosts (Redis); `None` for a store only this process
    /// writes. Hosts poll it to apply each other's bans to their own firewall.
    fn ban_version(&self) -> StoreFuture<'_, Option<u64>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

fn unsupported<'a, T: Send + 'a>(what: &str) -> StoreFuture<'a, T> {
    let e = StoreError::Unavailable(format!("{what} are not supported by this store backend"));
    Box::pin(std::future::ready(Err(e)))
}
