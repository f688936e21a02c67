//! The Redis / Valkey backend: state shared by several MX and submission hosts (issue 10).
//!
//! Every record is one Redis string under `<prefix><kind>:<key>` (`mxguard:gl:<triplet>`,
//! `awl:<ip>`, `lim:<key>`, `acct:<user>`, `ban:<cidr>`), so one Redis can serve several
//! deployments with different prefixes and `redis-cli --scan --pattern 'mxguard:ban:*'` shows
//! the ban list. Values: triplets `first last`, auto-whitelist `count last` (Unix seconds as
//! text), bans `since\tuntil\tcount\tjail\treason`, GCRA states and accounts in the embedded
//! store's byte layouts (`store::codec`). Expiry is Redis's own (`EX`, a time to live set with
//! each write from the same rules the embedded store's cleanup applies, counted from the
//! engine clock's "now", so a fake clock in tests and a host clock a little off both work),
//! so [`Store::expire`] has nothing to do.
//!
//! Atomic updates: the two that every greylisted request makes (triplet touch, auto-whitelist
//! bump) are Lua scripts, one round trip each (`EVALSHA`), applying the same rules as
//! `TripletRecord::touched` and `AwlRecord::bumped`; a differential test on a real Redis
//! (`tests/redis_store.rs`) runs random histories through both and requires equal results.
//! The others (GCRA charges, account hold) read the record, compute the new one with the
//! engine's own functions (`gcra::apply`, ...), and write it with a compare-and-set script
//! that succeeds only if the record is still what was read; on a conflict (another host won
//! the race) the update is computed again: two round trips. A GCRA *check* (the RCPT stage,
//! nothing charged) is one read.
//!
//! Redis Cluster (`[store] cluster`, `store::redis_cluster`): the same operations, with the
//! ban keys and the ban version under the hash tag `{ban}` so a ban write stays one atomic
//! transaction; listings scan every primary (`store::redis_scan`).
//!
//! Fail-open: each operation is bounded by `timeout`; an error or timeout is
//! `StoreError::Unavailable`, on which every check answers its fail-open verdict. The first
//! failure after a healthy period is logged once (warn) and the recovery once (info); counts
//! are in [`RedisHealth`]. The connection manager reconnects by itself (lazily: the daemon
//! starts even while Redis is down).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mxguard_engine::UnixTime;
use mxguard_engine::account::AccountRecord;
use mxguard_engine::auth::ban::BanRecord;
use mxguard_engine::limits::gcra::{self, GcraState, Mode, Outcome, Window};
use mxguard_engine::store::{
    AWL_MIN_INTERVAL_SECS, AwlEntry, AwlRecord, ExpireStats, GreylistEntry, GreylistKey,
    GreylistTimes, ReadKey, ReadValue, Store, StoreCounts, StoreError, StoreFuture, TouchOutcome,
    TripletRecord,
};
use redis::AsyncCommands;
use redis::aio::ConnectionManagerConfig;

use super::codec;
pub use super::redis_cluster::ClusterSettings;
use super::redis_target::{Conn, Target};
pub use super::redis_target::{SentinelSettings, node_url};

/// How often a conflicting update is recomputed before giving up (fail-open).
const CAS_ATTEMPTS: usize = 16;
/// While Redis is down, how often one operation tries it (the others fail at once).
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Keys read per SCAN step (listings).
pub(super) const SCAN_COUNT: usize = 1000;

/// Settings of the Redis backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:pass@]host:port/db`, `rediss://...`, or `unix:///path/redis.sock`.
    pub url: String,
    /// Prepended to every key (`mxguard:`).
    pub prefix: String,
    /// Bound on each operation, connection included.
    pub timeout: Duration,
    /// How long ended bans are remembered (`[bans] retention`).
    pub ban_retention: Duration,
    /// Find the primary through Redis Sentinel (then `url` gives only user, password and
    /// database).
    pub sentinel: Option<SentinelSettings>,
    /// Use a Redis Cluster found through these seed nodes (then `url` gives only user and
    /// password).
    pub cluster: Option<ClusterSettings>,
}

/// Outage and error counters (for logs, `/metrics` and status).
#[derive(Debug, Default)]
pub struct RedisHealth {
    down: AtomicBool,
    /// Operations sent to Redis: each is one round trip (a command, a script or a pipeline).
    pub operations: AtomicU64,
    /// Operations that failed or timed out.
    pub errors: AtomicU64,
    /// Healthy -> failing transitions.
    pub outages: AtomicU64,
    /// Update retries after a concurrent write.
    pub conflicts: AtomicU64,
    /// With Sentinel: the primary's address in use (`None` until one is named).
    pub primary: std::sync::Mutex<Option<String>>,
    /// With a cluster: its primaries (`host:port`) as the last listing saw them.
    pub cluster_primaries: std::sync::Mutex<Vec<String>>,
}

impl RedisHealth {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

/// The Redis store.
#[derive(Clone)]
pub struct RedisStore {
    pub(super) target: Arc<Target>,
    pub(super) settings: Arc<RedisSettings>,
    pub(super) health: Arc<RedisHealth>,
    /// The kind part of ban keys: `ban`, or on a cluster `{ban}` (a hash tag, see
    /// `store::redis_cluster`).
    ban_kind: &'static str,
    cas: Arc<redis::Script>,
    greylist_touch: Arc<redis::Script>,
    awl_bump: Arc<redis::Script>,
    gcra: Arc<redis::Script>,
    /// Monotonic base of `next_probe_ms`.
    epoch: tokio::time::Instant,
    /// While down: when (ms after `epoch`) the next operation may try Redis again.
    next_probe_ms: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Writes `ARGV[2]` to `KEYS[1]` only if it still holds `ARGV[1]` (`""` = absent), with a
/// time to live of `ARGV[3]` seconds unless it is `0`. Returns 1 on success, 0 on a conflict.
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  end
  return 1
end
return 0
";

/// postgrey's triplet update ([`TripletRecord::touched`]) in one round trip. `KEYS[1]` the
/// triplet; `ARGV` now, delay, retry window, max age (seconds). Stores `"first now"` with the
/// time to live after which postgrey's cleanup would delete it (`TripletRecord::removable`) and returns `{previous value or "", first}`. Numbers stay
/// far below 2^53, so Lua's doubles are exact. Kept equal to the Rust rule by the differential
/// test in `tests/redis_store.rs`.
const GREYLIST_TOUCH_SCRIPT: &str = r"
local now, delay, rw, maxage = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function since(a, b) if a > b then return a - b end return 0 end
local cur = redis.call('GET', KEYS[1])
local first = now
if cur then
  local pf, pl = string.match(cur, '^(%d+) (%d+)$')
  if not pf then return redis.error_reply('corrupt greylist record') end
  pf, pl = tonumber(pf), tonumber(pl)
  if since(now, pl) <= maxage then
    first = pf
    if since(pl, pf) < delay and since(now, first) > rw then first = now end
    if first > now then first = now end
  end
else
  cur = ''
end
local keep = maxage
if since(now, first) < delay then keep = math.min(rw, maxage) end
redis.call('SET', KEYS[1], string.format('%.0f %.0f', first, now), 'EX', string.format('%.0f', keep + 1))
return {cur, string.format('%.0f', first)}
";

/// The auto-whitelist update ([`AwlRecord::bumped`]) in one round trip. `KEYS[1]` the
/// client; `ARGV` now, max age, minimum interval. Returns `{count, last}`.
const AWL_BUMP_SCRIPT: &str = r"
local now, maxage, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = redis.call('GET', KEYS[1])
local count, last = 1, now
if cur then
  local c, l = string.match(cur, '^(%d+) (%d+)$')
  if not c then return redis.error_reply('corrupt auto-whitelist record') end
  c, l = tonumber(c), tonumber(l)
  local age = 0
  if now > l then age = now - l end
  if age <= maxage then
    if now >= l + interval or l > now then
      count, last = math.min(c + 1, 4294967295), now
    else
      count, last = c, l
    end
  end
end
local ttl = last + maxage + 1 - now
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.0f %.0f', count, last), 'EX', string.format('%.0f', ttl))
return {string.format('%.0f', count), string.format('%.0f', last)}
";

/// [`gcra::apply`] in one round trip. `KEYS[1]` the limit state (text: `idle tat1 tat2 ...`,
/// scaled units as in `limits::gcra`); `ARGV` now, cost, mode (`check`, `conform`,
/// `force`), the number of windows, then count, period and burst of each. Returns
/// `{allowed 0/1, refused window index or -1, retry_after, remaining}` (numbers as text,
/// `max` for "never" / unbounded), or `{"range"}` when a value is at or past 2^53, where
/// Lua's doubles stop being exact: the caller then takes the compare-and-set path, which
/// computes in Rust's u128. Integer division is corrected after the float division, so
/// every result is the exact integer one. Kept equal to the Rust rule by the differential
/// test in `tests/redis_store.rs`.
const GCRA_SCRIPT: &str = r"
local LIM = 9007199254740992
local now, cost, mode, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if now >= LIM or cost >= LIM then return {'range'} end
local function floordiv(a, b)
  local q = math.floor(a / b)
  while q * b > a do q = q - 1 end
  while (q + 1) * b <= a do q = q + 1 end
  return q
end
local function ceildiv(a, b)
  local q = floordiv(a, b)
  if q * b < a then q = q + 1 end
  return q
end
local function fmt(x) if x == math.huge then return 'max' end return string.format('%.0f', x) end
local stored = {}
local cur = redis.call('GET', KEYS[1])
if cur then
  local i = 0
  for tok in string.gmatch(cur, '%S+') do
    local v = tonumber(tok)
    if v == nil or not string.match(tok, '^%d+$') then return redis.error_reply('corrupt rate-limit record') end
    if v >= LIM then return {'range'} end
    if i > 0 then stored[i] = v end
    i = i + 1
  end
  if i == 0 then return redis.error_reply('corrupt rate-limit record') end
  -- The configuration changed its windows: start afresh (gcra::tat_of).
  if i - 1 ~= n then stored = {} end
end
local ws, new = {}, {}
local refused, retry_of = -1, -1
for i = 1, n do
  local b = 5 + 3 * (i - 1)
  local c = math.max(tonumber(ARGV[b]), 1)
  local t = math.max(tonumber(ARGV[b + 1]), 1)
  local burst = tonumber(ARGV[b + 2])
  local w = {c = c, t = t, tol = burst * t, sc = now * c}
  ws[i] = w
  local tat = math.max(stored[i] or 0, w.sc)
  local nxt = tat + cost * t
  if w.sc >= LIM or w.tol >= LIM or nxt >= LIM then return {'range'} end
  if nxt - w.sc > w.tol then
    local retry
    if cost > burst then
      retry = math.huge
    else
      retry = math.max(ceildiv(nxt - w.tol, c) - now, 0)
    end
    if refused < 0 or retry > retry_of then refused, retry_of = i - 1, retry end
  end
  new[i] = nxt
end
local charge = mode == 'force' or (mode == 'conform' and refused < 0)
local after = stored
if charge then
  local idle = 0
  local parts = {}
  for i = 1, n do
    idle = math.max(idle, ceildiv(new[i], ws[i].c))
    parts[i + 1] = fmt(new[i])
  end
  parts[1] = fmt(idle)
  local ttl = math.max(idle + 1 - now, 1)
  redis.call('SET', KEYS[1], table.concat(parts, ' '), 'EX', fmt(ttl))
  after = new
end
local remaining = math.huge
for i = 1, n do
  local w = ws[i]
  local used = math.max(after[i] or 0, w.sc) - w.sc
  remaining = math.min(remaining, floordiv(math.max(w.tol - used, 0), w.t))
end
local allowed = 0
if refused < 0 then allowed = 1; retry_of = 0 end
return {tostring(allowed), tostring(refused), fmt(retry_of), fmt(remaining)}
";

/// An error of the backend as the engine sees it.
pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// A store for `settings`; connects on first use (so start-up does not depend on Redis).
    pub fn new(settings: RedisSettings) -> Result<RedisStore, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let health = Arc::new(RedisHealth::default());
        if settings.cluster.is_some() && settings.prefix.contains(['{', '}']) {
            // A brace in the prefix would make it the hash tag of every key: all of them
            // in one slot, and the ban keys no longer in theirs.
            return Err(unavailable(format!(
                "prefix {:?}: with a cluster it must not contain {{ or }}",
                settings.prefix
            )));
        }
        let target = Target::new(
            &settings.url,
            settings.sentinel.as_ref(),
            settings.cluster.as_ref(),
            config,
            settings.timeout,
            health.clone(),
        )?;
        Ok(RedisStore {
            ban_kind: if settings.cluster.is_some() {
                super::redis_cluster::BAN_KIND
            } else {
                "ban"
            },
            target: Arc::new(target),
            settings: Arc::new(settings),
            health,
            cas: Arc::new(redis::Script::new(CAS_SCRIPT)),
            greylist_touch: Arc::new(redis::Script::new(GREYLIST_TOUCH_SCRIPT)),
            awl_bump: Arc::new(redis::Script::new(AWL_BUMP_SCRIPT)),
            gcra: Arc::new(redis::Script::new(GCRA_SCRIPT)),
            epoch: tokio::time::Instant::now(),
            next_probe_ms: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn health(&self) -> &Arc<RedisHealth> {
        &self.health
    }

    pub(super) fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.settings.prefix)
    }

    /// Bumped with every ban write and removal (`ban-version`, outside the `ban:` keys so
    /// listings do not see it; `{ban}-version` on a cluster, in the ban keys' slot): what
    /// other hosts poll to pick up changed bans.
    fn ban_version_key(&self) -> String {
        format!("{}{}-version", self.settings.prefix, self.ban_kind)
    }

    /// Runs one operation within the time budget and keeps the health state. While Redis is
    /// down, only one operation per [`PROBE_INTERVAL`] goes to it (the probe that notices
    /// the recovery); the others fail at once, so a paused Redis costs each request nothing
    /// rather than `timeout` per store operation.
    pub(super) async fn op<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.health.is_down() && !self.take_probe() {
            self.health.errors.fetch_add(1, Ordering::Relaxed);
            return Err(unavailable(
                "down (waiting for the next reconnection probe)",
            ));
        }
        let r = match self.target.current() {
            Err(e) => Err(e),
            Ok(conn) => {
                self.health.operations.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(self.settings.timeout, f(conn)).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(unavailable(e)),
                    Err(_) => Err(unavailable(format!(
                        "no answer within {:?}",
                        self.settings.timeout
                    ))),
                }
            }
        };
        match &r {
            Ok(_) => {
                if self.health.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = %redacted(&self.settings.url), "redis store reachable again");
                }
            }
            Err(e) => {
                self.target.failed();
                self.health.errors.fetch_add(1, Ordering::Relaxed);
                let next = self.epoch.elapsed() + PROBE_INTERVAL;
                self.next_probe_ms
                    .store(next.as_millis() as u64, Ordering::Relaxed);
                if !self.health.down.swap(true, Ordering::Relaxed) {
                    self.health.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %redacted(&self.settings.url), error = %e,
                        "redis store unavailable: checks answer their fail-open verdict until it is back");
                }
            }
        }
        r
    }

    /// Whether this operation may probe a Redis that is down (at most one per interval).
    fn take_probe(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        let due = self.next_probe_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .next_probe_ms
                .compare_exchange(
                    due,
                    now + PROBE_INTERVAL.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.op(move |mut c| async move { c.get::<_, Option<Vec<u8>>>(key).await })
            .await
    }

    /// Sets `key`, with a time to live of `ttl` seconds (0: none).
    async fn set_raw(&self, key: &str, value: Vec<u8>, ttl: u64) -> Result<(), StoreError> {
        let set = set_cmd(key, value, ttl);
        self.op(move |mut c| async move { set.query_async::<()>(&mut c).await })
            .await
    }

    /// The values of `full` (complete key names), in order, in one `MGET`.
    pub(super) async fn mget(&self, full: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.op(move |mut c| async move { redis::cmd("MGET").arg(full).query_async(&mut c).await })
            .await
    }

    async fn del(&self, key: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .op(move |mut c| async move { c.del(key).await })
            .await?;
        Ok(n > 0)
    }

    /// Read, compute, compare-and-set, again on conflict. `f` gets the current value and
    /// returns the result, the new value (`None`: leave the record as it is) and its time
    /// to live in seconds (0: none).
    async fn update<T>(
        &self,
        key: &str,
        mut f: impl FnMut(Option<&[u8]>) -> Result<(T, Option<(Vec<u8>, u64)>), StoreError>,
    ) -> Result<T, StoreError> {
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Two writers on one pipelined connection can lose to each other in lockstep
                // forever; a random pause breaks the tie.
                tokio::time::sleep(conflict_pause(attempt)).await;
            }
            let cur = self.get_raw(key).await?;
            let (out, new) = f(cur.as_deref())?;
            let Some((value, ttl)) = new else {
                return Ok(out);
            };
            if cur.as_deref() == Some(value.as_slice()) && ttl == 0 {
                return Ok(out);
            }
            let inv = self.cas.clone();
            let expected = cur.unwrap_or_default();
            let done: i64 = self
                .op(move |mut c| async move {
                    inv.key(key)
                        .arg(expected)
                        .arg(value)
                        .arg(ttl)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            if done == 1 {
                return Ok(out);
            }
            self.health.conflicts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key, "redis: concurrent update, computing again");
        }
        Err(unavailable("too many concurrent updates of one key"))
    }

    /// A GCRA charge or check in one round trip ([`GCRA_SCRIPT`]); `None` when a number is
    /// too large for the script's exact range (the caller computes it in Rust instead).
    async fn gcra_script(
        &self,
        key: &str,
        windows: &[Window],
        now: UnixTime,
        cost: u64,
        mode: Mode,
    ) -> Result<Option<Outcome>, StoreError> {
        let mut inv = self.gcra.key(key);
        inv.arg(now.0).arg(cost).arg(match mode {
            Mode::Check => "check",
            Mode::Conform => "conform",
            Mode::Force => "force",
        });
        inv.arg(windows.len());
        for w in windows {
            inv.arg(w.count).arg(w.period_secs).arg(w.burst);
        }
        let reply: Vec<String> = self
            .op(move |mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let number = |s: &str| -> Result<u64, StoreError> {
            if s == "max" {
                return Ok(u64::MAX);
            }
            s.parse()
                .map_err(|_| StoreError::Corrupt(format!("gcra script reply {reply:?}")))
        };
        match reply.as_slice() {
            [r] if r == "range" => Ok(None),
            [allowed, window, retry, remaining] => Ok(Some(Outcome {
                allowed: allowed == "1",
                window: window.parse::<usize>().ok(),
                retry_after: number(retry)?,
                remaining: number(remaining)?,
            })),
            _ => Err(StoreError::Corrupt(format!("gcra script reply {reply:?}"))),
        }
    }
}

/// A random pause of up to `attempt` x 500 µs.
fn conflict_pause(attempt: usize) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_micros(r % (500 * attempt as u64 + 1))
}

/// The URL without its password, for logs.
fn redacted(url: &str) -> String {
    let (Some((scheme, rest)), Some((_, host))) = (url.split_once("://"), url.rsplit_once('@'))
    else {
        return url.to_string();
    };
    if rest.contains('@') {
        format!("{scheme}://***@{host}")
    } else {
        url.to_string()
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("bad {what} record in redis"))
}

fn two_numbers(v: &[u8], what: &str) -> Result<(u64, u64), StoreError> {
    let text = std::str::from_utf8(v).map_err(|_| corrupt(what))?;
    let mut it = text.split(' ').map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), None) => Ok((a, b)),
        _ => Err(corrupt(what)),
    }
}

fn encode_triplet(r: &TripletRecord) -> Vec<u8> {
    format!("{} {}", r.first.0, r.last.0).into_bytes()
}

fn decode_triplet(v: &[u8]) -> Result<TripletRecord, StoreError> {
    let (first, last) = two_numbers(v, "greylist")?;
    Ok(TripletRecord {
        first: UnixTime(first),
        last: UnixTime(last),
    })
}

/// Seconds from `now` to `end`, at least 1 (Redis refuses a zero time to live).
fn ttl_until(end: u64, now: UnixTime) -> u64 {
    end.saturating_sub(now.0).max(1)
}

/// `SET key value`, with `EX ttl` unless `ttl` is 0 (no expiry).
fn set_cmd(key: &str, value: Vec<u8>, ttl: u64) -> redis::Cmd {
    let mut set = redis::cmd("SET");
    set.arg(key).arg(value);
    if ttl > 0 {
        set.arg("EX").arg(ttl);
    }
    set
}

/// Records written without a "now" (admin puts) are kept this long.
const ADMIN_TTL: u64 = 35 * 86_400;

/// Whether a GCRA call's numbers stay within the script's exact range (below 2^53), as far
/// as the arguments tell; a stored state past it makes the script answer "range" instead.
fn script_range(windows: &[Window], now: UnixTime, cost: u64) -> bool {
    const LIM: u128 = 1 << 53;
    !windows.is_empty()
        && windows.iter().all(|w| {
            let t = u128::from(w.period_secs.max(1));
            let scaled = u128::from(now.0) * u128::from(w.count.max(1));
            scaled + (u128::from(cost) + u128::from(w.burst)) * t < LIM
        })
}

/// GCRA state as text, `idle tat1 tat2 ...` (what [`GCRA_SCRIPT`] reads and writes).
fn encode_gcra(s: &GcraState) -> Vec<u8> {
    let mut out = s.idle_at.0.to_string();
    for t in &s.tats {
        out.push(' ');
        out.push_str(&t.to_string());
    }
    out.into_bytes()
}

fn decode_gcra(v: &[u8]) -> Result<GcraState, StoreError> {
    let bad = || StoreError::Corrupt("bad rate-limit record".into());
    let text = std::str::from_utf8(v).map_err(|_| bad())?;
    let mut it = text.split(' ');
    let idle = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let tats = it
        .map(|t| t.parse::<u128>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GcraState {
        tats,
        idle_at: UnixTime(idle),
    })
}

fn encode_awl(r: &AwlRecord) -> Vec<u8> {
    format!("{} {}", r.count, r.last.0).into_bytes()
}

fn decode_awl(v: &[u8]) -> Result<AwlRecord, StoreError> {
    let (count, last) = two_numbers(v, "auto-whitelist")?;
    Ok(AwlRecord {
        count: u32::try_from(count).map_err(|_| corrupt("auto-whitelist"))?,
        last: UnixTime(last),
    })
}

fn encode_ban(b: &BanRecord) -> Vec<u8> {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        b.since.0,
        b.until.0,
        b.count,
        b.jail.replace('\t', " "),
        b.reason
    )
    .into_bytes()
}

fn decode_ban(v: &[u8]) -> Result<BanRecord, StoreError> {
    let text = std::str::from_utf8(v).map_err(|_| corrupt("ban"))?;
    let f: Vec<&str> = text.splitn(5, '\t').collect();
    let [since, until, count, jail, reason] = f[..] else {
        return Err(corrupt("ban"));
    };
    let n = |s: &str| s.parse::<u64>().map_err(|_| corrupt("ban"));
    Ok(BanRecord {
        since: UnixTime(n(since)?),
        until: UnixTime(n(until)?),
        count: u32::try_from(n(count)?).map_err(|_| corrupt("ban"))?,
        jail: jail.to_string(),
        reason: reason.to_string(),
    })
}

impl Store for RedisStore {
    fn greylist_touch<'a>(
        &'a self,
        key: &'a GreylistKey,
        now: UnixTime,
        times: GreylistTimes,
    ) -> StoreFuture<'a, TouchOutcome> {
        Box::pin(async move {
            let k = self.key("gl", key.as_str());
            let script = self.greylist_touch.clone();
            let (prev, first): (String, u64) = self
                .op(move |mut c| async move {
                    script
                        .key(&k)
                        .arg(now.0)
                        .arg(times.delay)
                        .arg(times.retry_window)
                        .arg(times.max_age)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            let previous = if prev.is_empty() {
                None
            } else {
                Some(decode_triplet(prev.as_bytes())?)
            };
            Ok(TouchOutcome {
                previous,
                current: TripletRecord {
                    first: UnixTime(first),
                    last: now,
                },
            })
        })
    }

    fn greylist_get<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, Option<TripletRecord>> {
        Box::pin(async move {
            let v = self.get_raw(&self.key("gl", key.as_str())).await?;
            v.as_deref().map(decode_triplet).transpose()
        })
    }

    fn greylist_put<'a>(
        &'a self,
        key: &'a GreylistKey,
        record: TripletRecord,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // No GreylistTimes here: keep it for the default max age (35 days); the next
            // touch sets the configured expiry.
            self.set_raw(
                &self.key("gl", key.as_str()),
                encode_triplet(&record),
                ADMIN_TTL,
            )
            .await
        })
    }

    fn greylist_remove<'a>(&'a self, key: &'a GreylistKey) -> StoreFuture<'a, bool> {
        Box::pin(async move { self.del(&self.key("gl", key.as_str())).await })
    }

    fn greylist_list(&self, limit: usize) -> StoreFuture<'_, Vec<GreylistEntry>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (key, v) in self.list("gl", limit).await? {
                out.push(GreylistEntry {
                    key,
                    record: decode_triplet(&v)?,
                });
            }
            Ok(out)
        })
    }

    fn awl_get(&self, client: IpAddr) -> StoreFuture<'_, Option<AwlRecord>> {
        Box::pin(async move {
            let v = self.get_raw(&self.key("awl", &client.to_string())).await?;
            v.as_deref().map(decode_awl).transpose()
        })
    }

    fn awl_bump(&self, client: IpAddr, now: UnixTime, max_age: u64) -> StoreFuture<'_, AwlRecord> {
        Box::pin(async move {
            let k = self.key("awl", &client.to_string());
            let script = self.awl_bump.clone();
            let (count, last): (u64, u64) = self
                .op(move |mut c| async move {
                    script
                        .key(&k)
                        .arg(now.0)
                        .arg(max_age)
                        .arg(AWL_MIN_INTERVAL_SECS)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(AwlRecord {
                count: u32::try_from(count).map_err(|_| corrupt("auto-whitelist"))?,
                last: UnixTime(last),
            })
        })
    }

    fn awl_put(&self, client: IpAddr, record: AwlRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.set_raw(
                &self.key("awl", &client.to_string()),
                encode_awl(&record),
                ADMIN_TTL,
            )
            .await
        })
    }

    fn awl_remove(&self, client: IpAddr) -> StoreFuture<'_, bool> {
        Box::pin(async move { self.del(&self.key("awl", &client.to_string())).await })
    }

    fn awl_list(&self, limit: usize) -> StoreFuture<'_, Vec<AwlEntry>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (key, v) in self.list("awl", limit).await? {
                let client = key.parse().map_err(|_| corrupt("auto-whitelist key"))?;
                out.push(AwlEntry {
                    client,
                    record: decode_awl(&v)?,
                });
            }
            Ok(out)
        })
    }

    /// Redis drops records at their time to live; this pass also applies the embedded
    /// store's cleanup rules at `now` (records written by admin puts, clocks that differ
    /// between hosts), one SCAN over the greylist and auto-whitelist keys.
    fn expire(&self, now: UnixTime, times: GreylistTimes) -> StoreFuture<'_, ExpireStats> {
        Box::pin(async move {
            let mut stats = ExpireStats::default();
            for (key, v) in self.list("gl", usize::MAX).await? {
                if decode_triplet(&v).is_ok_and(|r| r.removable(now, &times))
                    && self.del(&self.key("gl", &key)).await?
                {
                    stats.triplets_removed += 1;
                }
            }
            for (key, v) in self.list("awl", usize::MAX).await? {
                if decode_awl(&v).is_ok_and(|r| r.expired(now, times.max_age))
                    && self.del(&self.key("awl", &key)).await?
                {
                    stats.clients_removed += 1;
                }
            }
            Ok(stats)
        })
    }

    fn counts(&self) -> StoreFuture<'_, StoreCounts> {
        Box::pin(async move {
            Ok(StoreCounts {
                triplets: self.count("gl").await?,
                clients: self.count("awl").await?,
            })
        })
    }

    /// Writes go straight to Redis.
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn limit_apply<'a>(
        &'a self,
        key: &'a str,
        windows: &'a [Window],
        now: UnixTime,
        cost: u64,
        mode: Mode,
    ) -> StoreFuture<'a, Outcome> {
        Box::pin(async move {
            let k = self.key("lim", key);
            if script_range(windows, now, cost)
                && let Some(outcome) = self.gcra_script(&k, windows, now, cost, mode).await?
            {
                return Ok(outcome);
            }
            self.update(&k, |cur| {
                let old = cur.map(decode_gcra).transpose()?;
                let (outcome, new) = gcra::apply(old.as_ref(), windows, now, cost, mode);
                // A drained state equals no state: it may go at its idle time.
                let new = new.map(|s| (encode_gcra(&s), ttl_until(s.idle_at.0 + 1, now)));
                Ok((outcome, new))
            })
            .await
        })
    }

    fn limit_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<GcraState>> {
        Box::pin(async move {
            let v = self.get_raw(&self.key("lim", key)).await?;
            v.as_deref().map(decode_gcra).transpose()
        })
    }

    fn limit_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move { self.del(&self.key("lim", key)).await })
    }

    fn account_get<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Option<AccountRecord>> {
        Box::pin(async move {
            let v = self.get_raw(&self.key("acct", user)).await?;
            v.as_deref().map(codec::decode_account).transpose()
        })
    }

    fn account_put<'a>(&'a self, user: &'a str, record: AccountRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let k = self.key("acct", user);
            if record.is_empty() {
                self.del(&k).await.map(|_| ())
            } else {
                self.set_raw(&k, codec::encode_account(&record), 0).await
            }
        })
    }

    fn account_hold<'a>(&'a self, user: &'a str, queue_id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let k = self.key("acct", user);
            self.update(&k, |cur| {
                let mut rec =
                    cur.map(codec::decode_account)
                        .transpose()?
                        .unwrap_or(AccountRecord {
                            locked: None,
                            held: Vec::new(),
                        });
                rec.add_held(queue_id);
                Ok(((), Some((codec::encode_account(&rec), 0))))
            })
            .await
        })
    }

    fn account_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, AccountRecord)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (user, v) in self.list("acct", limit).await? {
                out.push((user, codec::decode_account(&v)?));
            }
            Ok(out)
        })
    }

    fn ban_get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<BanRecord>> {
        Box::pin(async move {
            let v = self.get_raw(&self.key(self.ban_kind, key)).await?;
            v.as_deref().map(decode_ban).transpose()
        })
    }

    fn ban_put<'a>(&'a self, key: &'a str, record: BanRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Kept `retention` after it ends, so the next ban escalates; permanent: kept.
            // No "now" here: counted from the ban's start, which is at or before now.
            let ttl = if record.permanent() {
                0
            } else {
                let end = record
                    .until
                    .0
                    .saturating_add(self.settings.ban_retention.as_secs())
                    .saturating_add(1);
                ttl_until(end, record.since)
            };
            let mut pipe = redis::pipe();
            pipe.atomic()
                .add_command(set_cmd(
                    &self.key(self.ban_kind, key),
                    encode_ban(&record),
                    ttl,
                ))
                .ignore()
                .incr(self.ban_version_key(), 1)
                .ignore();
            self.op(move |mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
        })
    }

    fn ban_remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .del(self.key(self.ban_kind, key))
                .incr(self.ban_version_key(), 1)
                .ignore();
            let (n,): (u64,) = self
                .op(move |mut c| async move { pipe.query_async(&mut c).await })
                .await?;
            Ok(n > 0)
        })
    }

    fn read_many<'a>(
        &'a self,
        keys: &'a [ReadKey],
    ) -> StoreFuture<'a, Vec<Result<ReadValue, StoreError>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let full: Vec<String> = keys
                .iter()
                .map(|k| match k {
                    ReadKey::Ban(k) => self.key(self.ban_kind, k),
                    ReadKey::Account(u) => self.key("acct", u),
                    ReadKey::Limit(k) => self.key("lim", k),
                    ReadKey::Awl(ip) => self.key("awl", &ip.to_string()),
                })
                .collect();
            let values = self.mget(full).await?;
            Ok(keys
                .iter()
                .zip(values)
                .map(|(k, v)| {
                    let v = v.as_deref();
                    Ok(match k {
                        ReadKey::Ban(_) => ReadValue::Ban(v.map(decode_ban).transpose()?),
                        ReadKey::Account(_) => {
                            ReadValue::Account(v.map(codec::decode_account).transpose()?)
                        }
                        ReadKey::Limit(_) => ReadValue::Limit(v.map(decode_gcra).transpose()?),
                        ReadKey::Awl(_) => ReadValue::Awl(v.map(decode_awl).transpose()?),
                    })
                })
                .collect())
        })
    }

    fn ban_version(&self) -> StoreFuture<'_, Option<u64>> {
        Box::pin(async move {
            let v = self.get_raw(&self.ban_version_key()).await?;
            let n = match v {
                None => 0,
                Some(b) => std::str::from_utf8(&b)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt("ban version is not a number".into()))?,
            };
            Ok(Some(n))
        })
    }

    fn ban_list(&self, limit: usize) -> StoreFuture<'_, Vec<(String, BanRecord)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (key, v) in self.list(self.ban_kind, limit).await? {
                out.push((key, decode_ban(&v)?));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_corrupt() {
        let t = TripletRecord {
            first: UnixTime(10),
            last: UnixTime(20),
        };
        assert_eq!(decode_triplet(&encode_triplet(&t)).unwrap(), t);
        let a = AwlRecord {
            count: 3,
            last: UnixTime(99),
        };
        assert_eq!(decode_awl(&encode_awl(&a)).unwrap(), a);
        let b = BanRecord {
            since: UnixTime(1),
            until: UnixTime(2),
            count: 3,
            jail: "postfix".into(),
            reason: "a\tb c".into(),
        };
        assert_eq!(decode_ban(&encode_ban(&b)).unwrap(), b);
        assert!(matches!(decode_triplet(b"1"), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_ban(b"1\t2"), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_awl(b"x y"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redacted("redis://:secret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
