//! The embedded store: the engine's [`Store`] in memory, written behind to a redb file.
//!
//! Requests are served from compact in-memory maps (`store::compact`); no request ever
//! waits for the disk. A background thread takes the changes logged since its last pass
//! once a second and writes them in one redb write transaction (one fsync per batch, not
//! per request). redb commits are atomic and crash-safe, so after `kill -9` or a power cut
//! the file holds every batch committed before, never a torn one: at most the last ~1 s of
//! updates (the batch interval plus the commit in flight) is lost. Everything is loaded into
//! memory at open.
//!
//! Expiry (postgrey's cleanup: max_age, never-retried triplets past the retry window, stale
//! auto-whitelist clients) runs in the same thread every [`EXPIRE_INTERVAL`] once the daemon
//! has told the store its greylist times ([`EmbeddedStore::set_expiry`]); it locks one shard
//! at a time, so requests never wait for the whole pass.
//!
//! Rate-limit GCRA states use the same write-behind path, keyed by hash and packed in 40
//! bytes a key (`store::limit_map`; drained ones are pruned from memory and disk at
//! expiry). Account records (locks, held queue ids) and bans keep readable keys
//! (`store::keyed`); an account change wakes the flusher at once instead of waiting for the
//! next tick, so an admin lock is on disk within milliseconds.
//!
//! What it does not do: share state between hosts (that is the Redis backend), or keep the
//! triplet key text in memory (admin listings read it back from disk after a flush).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mxguard_engine::account::AccountRecord;
use mxguard_engine::auth::BanRecord;
use mxguard_engine::limits::gcra::{self, GcraState, Mode, Outcome, Window};
use mxguard_engine::store::{
    AwlEntry, AwlRecord, ExpireStats, GreylistEntry, GreylistKey, GreylistTimes, KeyHash, Store,
    StoreCounts, StoreError, StoreFuture, TouchOutcome, TripletRecord, keyed_hash128,
};
use mxguard_engine::{Clock, UnixTime};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec::{decode_account, decode_gcra, encode_account, encode_gcra};
use super::compact::{ClientMap, Key128, Pending, TripletMap, TripletWrite, lock};
use super::keyed::{Change, KeyedMap};
use super::limit_map::LimitMap;

/// Triplet key hash -> (first, last, key text).
const TRIPLETS: TableDefinition<u128, (u64, u64, &str)> = TableDefinition::new("greylist_triplets");
/// Client address (text) -> (count, last).
const CLIENTS: TableDefinition<&str, (u32, u64)> = TableDefinition::new("greylist_clients");
/// Rate-limit key -> GCRA state ([`super::codec`]).
const LIMITS: TableDefinition<&str, &[u8]> = TableDefinition::new("limits");
/// Account (normalised SASL user) -> account record ([`super::codec`]).
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// Ban key (CIDR text) -> (since, until, count, reason) (`mxguard_engine::auth::ban`).
/// `(since, until, count, reason, jail)`. The table name carries its version: "bans" (without
/// the jail) was replaced before any release and is ignored.
const BANS: TableDefinition<&str, (u64, u64, u32, &str, &str)> = TableDefinition::new("bans_v2");
/// Ended bans are remembered this long so the next ban of the same offender escalates.
/// Default `[bans] retention`.
const BAN_MEMORY: u64 = 30 * 86_400;
/// Store metadata: `format` (version), `seed` (the 16-byte hash key).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// On-disk format version; bump on incompatible changes.
const FORMAT: u8 = 1;
/// How often pending changes are written: the durability bound after a crash.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often expiry runs (postgrey tries hourly too, but only at night and blocking).
pub const EXPIRE_INTERVAL: u64 = 3600;
/// File name used when the configured path is a directory.
pub const FILE_NAME: &str = "mxguard.redb";
/// redb's page cache. Everything lives in memory anyway, so the cache only has to hold the
/// pages a batch touches; redb's 1 GiB default would double the resident set.
const CACHE_BYTES: usize = 32 << 20;

fn io<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Io(format!("{what}: {e}"))
}

/// State shared by the store handle and its flusher thread.
struct Inner {
    db: Database,
    path: PathBuf,
    seed: [u64; 2],
    clock: Arc<dyn Clock>,
    triplets: TripletMap,
    clients: ClientMap,
    limits: LimitMap,
    accounts: KeyedMap<AccountRecord>,
    bans: KeyedMap<BanRecord>,
    /// Set when a change should be written without waiting for the next tick.
    urgent: AtomicBool,
    /// Serialises batches (flusher thread and explicit `flush`).
    flush_lock: Mutex<()>,
    /// The greylist times for background expiry, and when it runs next.
    expiry: Mutex<Option<(GreylistTimes, UnixTime)>>,
    /// `[bans] retention`: how long ended bans are remembered (seconds).
    ban_memory: std::sync::atomic::AtomicU64,
    /// Set on close: the flusher writes a last batch and exits.
    stop: Mutex<bool>,
    wake: Condvar,
    /// Set by `simulate_crash` (tests): exit without writing.
    abandon: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// The embedded store (see module docs). Dropping it writes the pending batch.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("triplets", &self.inner.triplets)
            .field("clients", &self.inner.clients)
            .finish()
    }
}

/// A fresh 128-bit secret from the standard library's per-process random hasher keys (no
/// extra dependency; only needs to be unpredictable, not cryptographically strong).
fn random_seed() -> [u64; 2] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u64; 2];
    for (i, word) in out.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u64(std::process::id().into());
        *word = h.finish();
    }
    out
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`: a directory (created if missing) holding
    /// [`FILE_NAME`], or, if `path` is an existing file or ends in `.redb`/`.db`, that file. Loads everything into memory and starts the flusher thread.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<EmbeddedStore, StoreError> {
        // A directory (existing, or a new path without a `.redb`/`.db` extension) holds
        // FILE_NAME; anything else is the database file itself.
        let is_file_name = path.is_file()
            || path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("redb") || e.eq_ignore_ascii_case("db"));
        let file = if !is_file_name {
            std::fs::create_dir_all(path).map_err(io("creating the store directory"))?;
            path.join(FILE_NAME)
        } else {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io("creating the store directory"))?;
            }
            path.to_path_buf()
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&file)
            .map_err(|e| StoreError::Io(format!("opening {}: {e}", file.display())))?;
        let seed = init_meta(&db)?;
        let inner = Arc::new(Inner {
            db,
            path: file,
            seed,
            clock,
            triplets: TripletMap::new(),
            clients: ClientMap::new(),
            limits: LimitMap::new(seed),
            accounts: KeyedMap::new(),
            bans: KeyedMap::new(),
            urgent: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
            expiry: Mutex::new(None),
            ban_memory: std::sync::atomic::AtomicU64::new(BAN_MEMORY),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            abandon: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        load(&inner)?;
        let thread_inner = inner.clone();
        let flusher = std::thread::Builder::new()
            .name("mxguard-store".into())
            .spawn(move || flusher_loop(&thread_inner))
            .map_err(io("starting the store thread"))?;
        Ok(EmbeddedStore {
            inner,
            flusher: Mutex::new(Some(flusher)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Enables (or updates, after a reload) background expiry with these greylist times.
    /// The first pass runs at the flusher's next tick.
    pub fn set_expiry(&self, times: GreylistTimes) {
        let now = self.inner.clock.now();
        *lock(&self.inner.expiry) = Some((times, now));
    }

    /// Sets how long ended bans are kept for escalation (`[bans] retention`).
    pub fn set_ban_retention(&self, secs: u64) {
        self.inner.ban_memory.store(secs, Ordering::Relaxed);
    }

    /// Writes every pending change now, in one transaction.
    pub fn flush_now(&self) -> Result<usize, StoreError> {
        flush_batch(&self.inner)
    }

    /// Changes waiting for the next batch.
    pub fn pending_writes(&self) -> usize {
        self.inner.triplets.pending_len()
            + self.inner.clients.pending_len()
            + self.inner.limits.pending_len()
            + self.inner.accounts.pending_len()
            + self.inner.bans.pending_len()
    }

    /// The error of the last failed batch, cleared by the next successful one. Failed batches
    /// are retried; requests keep being served from memory meanwhile.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    /// Graceful shutdown: stops the flusher after a last batch and reports its error.
    pub fn close(self) -> Result<(), StoreError> {
        self.stop_flusher();
        flush_batch(&self.inner).map(|_| ())
    }

    /// Test hook: stops the flusher without writing pending changes, as a crash would lose
    /// them, then drops the store (committed batches stay on disk).
    #[doc(hidden)]
    pub fn simulate_crash(self) {
        self.inner.abandon.store(true, Ordering::SeqCst);
        self.stop_flusher();
    }

    fn stop_flusher(&self) {
        *lock(&self.inner.stop) = true;
        self.inner.wake.notify_all();
        if let Some(handle) = lock(&self.flusher).take() {
            // A panicked flusher has nothing more to write; the final flush below covers it.
            let _ = handle.join();
        }
    }

    fn key(&self, key: &GreylistKey) -> Key128 {
        keyed_hash128(self.inner.seed, key.as_str().as_bytes()).into()
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.stop_flusher();
        if !self.inner.abandon.load(Ordering::SeqCst)
            && let Err(e) = flush_batch(&self.inner)
        {
            tracing::error!(error = %e, "store: last batch could not be written");
        }
    }
}

/// Creates the tables on first open, checks the format, returns the hash seed.
fn init_meta(db: &Database) -> Result<[u64; 2], StoreError> {
    let txn = db.begin_write().map_err(io("begin"))?;
    let seed = {
        let mut meta = txn.open_table(META).map_err(io("meta table"))?;
        txn.open_table(TRIPLETS).map_err(io("triplets table"))?;
        txn.open_table(CLIENTS).map_err(io("clients table"))?;
        txn.open_table(LIMITS).map_err(io("limits table"))?;
        txn.open_table(ACCOUNTS).map_err(io("accounts table"))?;
        txn.open_table(BANS).map_err(io("bans table"))?;
        let format = meta
            .get("format")
            .map_err(io("meta"))?
            .map(|v| v.value().to_vec());
        match format.as_deref() {
            None => {
                meta.insert("format", [FORMAT].as_slice())
                    .map_err(io("meta"))?;
            }
            Some([FORMAT]) => {}
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "unsupported store format {other:?} (this version reads {FORMAT})"
                )));
            }
        }
        let stored = meta
            .get("seed")
            .map_err(io("meta"))?
            .map(|v| v.value().to_vec());
        match stored {
            Some(bytes) if bytes.len() == 16 => {
                let mut a = [0u8; 8];
                let mut b = [0u8; 8];
                a.copy_from_slice(&bytes[..8]);
                b.copy_from_slice(&bytes[8..]);
                [u64::from_le_bytes(a), u64::from_le_bytes(b)]
            }
            Some(_) => return Err(StoreError::Corrupt("bad hash seed".into())),
            None => {
                let seed = random_seed();
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&seed[0].to_le_bytes());
                bytes[8..].copy_from_slice(&seed[1].to_le_bytes());
                meta.insert("seed", bytes.as_slice()).map_err(io("meta"))?;
                seed
            }
        }
    };
    txn.commit().map_err(io("commit"))?;
    Ok(seed)
}

/// Reads both tables into memory.
fn load(inner: &Inner) -> Result<(), StoreError> {
    let txn = inner.db.begin_read().map_err(io("begin read"))?;
    let table = txn.open_table(TRIPLETS).map_err(io("triplets table"))?;
    for row in table.iter().map_err(io("reading triplets"))? {
        let (k, v) = row.map_err(io("reading triplets"))?;
        let (first, last, _text) = v.value();
        let rec = TripletRecord {
            first: UnixTime(first),
            last: UnixTime(last),
        };
        inner.triplets.load(KeyHash(k.value()).into(), rec);
    }
    let table = txn.open_table(CLIENTS).map_err(io("clients table"))?;
    for row in table.iter().map_err(io("reading clients"))? {
        let (k, v) = row.map_err(io("reading clients"))?;
        let ip: IpAddr = k
            .value()
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bad client address {:?}", k.value())))?;
        let (count, last) = v.value();
        inner.clients.load(
            ip,
            AwlRecord {
                count,
                last: UnixTime(last),
            },
        );
    }
    let table = txn.open_table(LIMITS).map_err(io("limits table"))?;
    for row in table.iter().map_err(io("reading limits"))? {
        let (k, v) = row.map_err(io("reading limits"))?;
        inner.limits.load(k.value(), decode_gcra(v.value())?);
    }
    let table = txn.open_table(ACCOUNTS).map_err(io("accounts table"))?;
    for row in table.iter().map_err(io("reading accounts"))? {
        let (k, v) = row.map_err(io("reading accounts"))?;
        inner.accounts.load(k.value(), decode_account(v.value())?);
    }
    let table = txn.open_table(BANS).map_err(io("bans table"))?;
    for row in table.iter().map_err(io("reading bans"))? {
        let (k, v) = row.map_err(io("reading bans"))?;
        let (since, until, count, reason, jail) = v.value();
        let rec = BanRecord {
            since: UnixTime(since),
            until: UnixTime(until),
            count,
            jail: jail.to_owned(),
            reason: reason.to_owned(),
        };
        inner.bans.load(k.value(), rec);
    }
    Ok(())
}

/// Writes all pending changes in one transaction; on failure they are requeued.
fn flush_batch(inner: &Inner) -> Result<usize, StoreError> {
    let _guard = lock(&inner.flush_lock);
    let mut triplets = inner.triplets.take_pending();
    let clients = inner.clients.take_pending();
    let limits = inner.limits.take_pending();
    let accounts = inner.accounts.take_pending();
    let bans = inner.bans.take_pending();
    // Keys are random hashes: writing them in key order walks the B-tree's pages in order
    // instead of jumping between them at random.
    triplets.sort_unstable_by_key(|(k, _)| KeyHash::from(*k));
    if triplets.is_empty()
        && clients.is_empty()
        && limits.is_empty()
        && accounts.is_empty()
        && bans.is_empty()
    {
        return Ok(0);
    }
    let n = triplets.len() + clients.len() + limits.len() + accounts.len() + bans.len();
    let batch = Batch {
        triplets: &triplets,
        clients: &clients,
        limits: &limits,
        accounts: &accounts,
        bans: &bans,
    };
    match write_batch(&inner.db, &batch) {
        Ok(()) => {
            *lock(&inner.last_error) = None;
            Ok(n)
        }
        Err(e) => {
            inner.triplets.requeue(triplets);
            inner.clients.requeue(clients);
            inner.limits.requeue(limits);
            inner.accounts.requeue(accounts);
            inner.bans.requeue(bans);
            *lock(&inner.last_error) = Some(e.to_string());
            Err(e)
        }
    }
}

/// The changes of one batch.
struct Batch<'a> {
    triplets: &'a [(Key128, Pending<TripletWrite>)],
    clients: &'a [(IpAddr, Pending<AwlRecord>)],
    limits: &'a [(Box<str>, Pending<GcraState>)],
    accounts: &'a [(Box<str>, Pending<AccountRecord>)],
    bans: &'a [(Box<str>, Pending<BanRecord>)],
}

fn write_batch(db: &Database, batch: &Batch<'_>) -> Result<(), StoreError> {
    let Batch {
        triplets,
        clients,
        limits,
        accounts,
        bans,
    } = *batch;
    let txn = db.begin_write().map_err(io("begin"))?;
    {
        let mut table = txn.open_table(TRIPLETS).map_err(io("triplets table"))?;
        for (key, op) in triplets {
            let k = KeyHash::from(*key).0;
            match op {
                Pending::Put((text, rec)) => {
                    table
                        .insert(k, (rec.first.0, rec.last.0, &**text))
                        .map_err(io("writing a triplet"))?;
                }
                Pending::Delete => {
                    table.remove(k).map_err(io("deleting a triplet"))?;
                }
            }
        }
        let mut table = txn.open_table(CLIENTS).map_err(io("clients table"))?;
        for (ip, op) in clients {
            let k = ip.to_string();
            match op {
                Pending::Put(rec) => {
                    table
                        .insert(k.as_str(), (rec.count, rec.last.0))
                        .map_err(io("writing a client"))?;
                }
                Pending::Delete => {
                    table.remove(k.as_str()).map_err(io("deleting a client"))?;
                }
            }
        }
        let mut table = txn.open_table(LIMITS).map_err(io("limits table"))?;
        for (k, op) in limits {
            match op {
                Pending::Put(state) => {
                    let bytes = encode_gcra(state);
                    table
                        .insert(&**k, bytes.as_slice())
                        .map_err(io("writing a rate limit"))?;
                }
                Pending::Delete => {
                    table.remove(&**k).map_err(io("deleting a rate limit"))?;
                }
            }
        }
        let mut table = txn.open_table(ACCOUNTS).map_err(io("accounts table"))?;
        for (k, op) in accounts {
            match op {
                Pending::Put(rec) => {
                    let bytes = encode_account(rec);
                    table
                        .insert(&**k, bytes.as_slice())
                        .map_err(io("writing an account"))?;
                }
                Pending::Delete => {
                    table.remove(&**k).map_err(io("deleting an account"))?;
                }
            }
        }
        let mut table = txn.open_table(BANS).map_err(io("bans table"))?;
        for (k, op) in bans {
            match op {
                Pending::Put(b) => {
                    let v = (
                        b.since.0,
                        b.until.0,
                        b.count,
                        b.reason.as_str(),
                        b.jail.as_str(),
                    );
                    table.insert(&**k, v).map_err(io("writing a ban"))?;
                }
                Pending::Delete => {
                    table.remove(&**k).map_err(io("deleting a ban"))?;
                }
            }
        }
    }
    txn.commit().map_err(io("commit"))
}

fn flusher_loop(inner: &Inner) {
    loop {
        let stopping = {
            let stop = lock(&inner.stop);
            if *stop {
                true
            } else if inner.urgent.swap(false, Ordering::SeqCst) {
                false
            } else {
                let (stop, _) = inner
                    .wake
                    .wait_timeout(stop, FLUSH_INTERVAL)
                    .unwrap_or_else(|e| e.into_inner());
                inner.urgent.store(false, Ordering::SeqCst);
                *stop
            }
        };
        if stopping {
            // `close`/`Drop` write the last batch after joining (or skip it on a crash test).
            return;
        }
        run_expiry_if_due(inner);
        if let Err(e) = flush_batch(inner) {
            tracing::warn!(error = %e, "store: batch write failed; will retry");
        }
    }
}

fn run_expiry_if_due(inner: &Inner) {
    let now = inner.clock.now();
    let times = {
        let mut expiry = lock(&inner.expiry);
        match &mut *expiry {
            Some((times, next)) if now >= *next => {
                *next = now.plus(Duration::from_secs(EXPIRE_INTERVAL));
                *times
            }
            _ => return,
        }
    };
    let stats = expire(inner, now, times);
    if stats != ExpireStats::default() {
        tracing::info!(
            triplets = stats.triplets_removed,
            clients = stats.clients_removed,
            "store: expired old greylist entries"
        );
    }
}

/// Deletes the rate-limit rows on disk that have drained by `now`, in one transaction.
/// Rows whose key has a newer state pending are rewritten by that batch anyway.
fn prune_drained_limits(inner: &Inner, now: UnixTime) -> Result<(), StoreError> {
    let _guard = lock(&inner.flush_lock);
    let txn = inner.db.begin_write().map_err(io("begin"))?;
    {
        let mut table = txn.open_table(LIMITS).map_err(io("limits table"))?;
        // A row that does not decode is kept: loading reports it, pruning must not hide it.
        table
            .retain(|_, v| decode_gcra(v).map_or(true, |s| s.idle_at > now))
            .map_err(io("pruning rate limits"))?;
    }
    txn.commit().map_err(io("commit"))
}

fn expire(inner: &Inner, now: UnixTime, times: GreylistTimes) -> ExpireStats {
    // A drained GCRA state equals no state (gcra module docs): drop it from memory, and
    // its row from disk (memory does not keep the key text a delete would need).
    inner.limits.expire(now);
    if let Err(e) = prune_drained_limits(inner, now) {
        tracing::warn!(error = %e, "store: pruning drained rate-limit rows failed; will retry");
    }
    let memory = inner.ban_memory.load(Ordering::Relaxed);
    inner.bans.retain(|b| !b.forgettable(now, memory));
    ExpireStats {
        triplets_removed: inner.triplets.expire(now, &times),
        clients_removed: inner.clients.expire(now, times.max_age),
    }
}

/// Asks the flusher to write the next batch now (account changes: locks must not wait).
fn wake_flusher(inner: &Inner) {
    inner.urgent.store(true, Ordering::SeqCst);
    let _stop = lock(&inner.stop);
    inner.wake.notify_all();
}

fn ready<'a, T: Send + 'a>(v: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Store for EmbeddedStore {
    fn greylist_touch<'a>(
        &'a self,
        key: &'a GreylistKey,
        now: UnixTime,
        times: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome> {
        let k = self.key(key);
        ready(Ok(self.inner.triplets.touch(k, key.as_str(), now, &times)))
    }

    fn greylist_get<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>> {
        ready(Ok(self.inner.triplets.get(self.key(key))))
    }

    fn greylist_put<'a>(
        &'a self,
        key: &'a GreylistKey,
        record: TripletRecord,
    ) -> StoreFuture<'a, ()> {
        self.inner.triplets.put(self.key(key), key.as_str(), record);
        ready(Ok(()))
    }

    fn greylist_remove<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, bool> {
        ready(Ok(self.inner.triplets.remove(self.key(key))))
    }

    /// Writes the pending batch, then reads up to `limit` rows (with their key text) from
    /// disk: an admin operation, it may take a few milliseconds.
    fn greylist_list(&self, limit: usize) -> StoreFuture<'_, Vec<GreylistEntry>> {
        let result = flush_batch(&self.inner).and_then(|_| {
            let txn = self.inner.db.begin_read().map_err(io("begin read"))?;
            let table = txn.open_table(TRIPLETS).map_err(io("triplets table"))?;
            let mut out = Vec::new();
            for row in table.iter().map_err(io("reading triplets"))?.take(limit) {
                let (k, v) = row.map_err(io("reading triplets"))?;
                let (first, last, text) = v.value();
                let key = if text.is_empty() {
                    format!("#{}", KeyHash(k.value()))
                } else {
                    text.to_owned()
                };
                out.push(GreylistEntry {
                    key,
                    record: TripletRecord {
                        first: UnixTime(first),
                        last: UnixTime(last),
                    },
                });
            }
            Ok(out)
        });
        ready(result)
    }

    fn awl_get(&self, client: IpAddr) -> StoreFuture<'_, Option<AwlRecord>> {
        ready(Ok(self.inner.clients.get(client)))
    }

    fn awl_bump(&self, client: IpAddr, now: UnixTime, max_age: u64) -> StoreFuture<'_, AwlRecord> {
        ready(Ok(self.inner.clients.bump(client, now, max_age)))
    }

    fn awl_put(&self, client: IpAddr, record: AwlRecord) -> StoreFuture<'_, ()> {
        self.inner.clients.put(client, record);
        ready(Ok(()))
    }

    fn awl_remove(&self, client: IpAddr) -> StoreFuture<'_, bool> {
        ready(Ok(self.inner.clients.remove(client)))
    }

    fn awl_list(&self, limit: usize) -> StoreFuture<'_, Vec<AwlEntry>> {
        let list = self
            .inner
            .clients
            .list(limit)
            .into_iter()
            .map(|(client, record)| AwlEntry { client, record })
            .collect();
        ready(Ok(list))
    }

    fn expire(&self, now: UnixTime, times: GreylistTimes) -> StoreFuture<'_, ExpireStats> {
        ready(Ok(expire(&self.inner, now, times)))
    }

    fn counts(&self) -> StoreFuture<'_, StoreCounts> {
        ready(Ok(StoreCounts {
            triplets: self.inner.triplets.len() as u64,
            clients: self.inner.clients.len() as u64,
        }))
    }

    /// Writes the pending batch synchronously (fsync included): for shutdown and admin use,
    /// never on the request path.
    fn flush(&self) -> StoreFuture<'_, ()> {
        ready(flush_batch(&self.inner).map(|_| ()))
    }

    fn limit_apply<'a>(
        &'a self,
        key: &'a str,
        windows: &'a [Window],
        now: UnixTime,
        cost: u64,
        mode: Mode,
    ) -> StoreFuture<'a, Outcome> {
        let outcome = self
            .inner
            .limits
            .update(key, |old| gcra::apply(old, windows, now, cost, mode));
        ready(Ok(outcome))
    }

    fn limit_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<GcraState>> {
        ready(Ok(self.inner.limits.get(key)))
    }

    fn limit_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        ready(Ok(self.inner.limits.remove(key)))
    }

    fn account_get<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<AccountRecord>> {
        ready(Ok(self.inner.accounts.get(user)))
    }

    fn account_put<'a>(&'a self, user: &'a str, record: AccountRecord) -> StoreFuture<'a, ()> {
        self.inner.accounts.update(user, |_| {
            let change = if record.is_empty() {
                Change::Delete
            } else {
                Change::Put(record)
            };
            ((), change)
        });
        wake_flusher(&self.inner);
        ready(Ok(()))
    }

    fn account_hold<'a>(&'a self, user: &'a str, queue_id: &'a str) -> StoreFuture<'a, ()> {
        self.inner.accounts.update(user, |old| {
            let mut rec = old.cloned().unwrap_or(AccountRecord {
                locked: None,
                held: Vec::new(),
            });
            rec.add_held(queue_id);
            ((), Change::Put(rec))
        });
        wake_flusher(&self.inner);
        ready(Ok(()))
    }

    fn account_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, AccountRecord)>> {
        ready(Ok(self.inner.accounts.list(limit)))
    }

    fn ban_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<BanRecord>> {
        ready(Ok(self.inner.bans.get(key)))
    }

    /// A new ban is written at once (like account locks), not at the next tick.
    fn ban_put<'a>(&'a self, key: &'a str, record: BanRecord) -> StoreFuture<'a, ()> {
        self.inner.bans.update(key, |_| ((), Change::Put(record)));
        wake_flusher(&self.inner);
        ready(Ok(()))
    }

    fn ban_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let removed = self.inner.bans.remove(key);
        wake_flusher(&self.inner);
        ready(Ok(removed))
    }

    fn ban_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, BanRecord)>> {
        ready(Ok(self.inner.bans.list(limit)))
    }
}
