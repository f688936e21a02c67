//! The Redis store against a real `redis-server` started here on a loopback port from a temp
//! dir (stopped by its pid): the backend-independent store scenario, bans, GCRA limits and
//! accounts, key prefixes, two "hosts" sharing one Redis, and fail-open: with Redis killed
//! every operation returns `Unavailable` (the outage counted once), and after a restart on
//! the same port the store reconnects by itself. The same scenarios on a real three-node
//! Redis Cluster are in `redis_store/cluster.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "redis_store/cluster.rs"]
mod cluster;
#[path = "redis_store/cluster_setup.rs"]
mod cluster_setup;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use mxguard::store::{RedisSettings, RedisStore};
use mxguard_engine::UnixTime;
use mxguard_engine::account::AccountRecord;
use mxguard_engine::auth::ban::BanRecord;
use mxguard_engine::limits::gcra::{Mode, Window};
use mxguard_engine::store::{Store, StoreError};

struct Redis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (package redis-server)")
}

async fn wait_up(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("redis-server did not start on port {port}");
}

impl Redis {
    async fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = spawn(port, dir.path());
        wait_up(port).await;
        Redis { child, port, dir }
    }

    fn store(&self, prefix: &str) -> RedisStore {
        RedisStore::new(RedisSettings {
            url: format!("redis://127.0.0.1:{}/0", self.port),
            prefix: prefix.into(),
            timeout: Duration::from_millis(300),
            ban_retention: Duration::from_secs(30 * 86_400),
            sentinel: None,
            cluster: None,
        })
        .unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn restart(&mut self) {
        self.child = spawn(self.port, self.dir.path());
        wait_up(self.port).await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

const T: u64 = 1_795_392_000;

#[tokio::test]
async fn the_store_scenario_bans_limits_and_accounts_on_redis() {
    let redis = Redis::start().await;
    scenario(&redis.store("t1:"), &redis.store("t2:")).await;
}

/// The backend-independent conformance suite, then bans, GCRA limits and accounts, on `s`;
/// `other` is another deployment (another key prefix) on the same Redis.
async fn scenario(s: &RedisStore, other: &RedisStore) {
    mxguard_engine::store::conformance::check(s).await.unwrap();

    let ban = BanRecord {
        since: UnixTime(T),
        until: UnixTime(T + 3600),
        count: 2,
        jail: "postfix".into(),
        reason: "postfix: 5 failures".into(),
    };
    s.ban_put("192.0.2.7/32", ban.clone()).await.unwrap();
    s.ban_put("2001:db8::/64", ban.clone()).await.unwrap();
    assert_eq!(s.ban_get("192.0.2.7/32").await.unwrap(), Some(ban.clone()));
    let keys: Vec<String> = s
        .ban_list(10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["192.0.2.7/32", "2001:db8::/64"], "sorted by key");
    assert!(s.ban_remove("192.0.2.7/32").await.unwrap());
    assert!(!s.ban_remove("192.0.2.7/32").await.unwrap());

    // GCRA: 3 per hour admits exactly 3, then refuses; Check mode charges nothing.
    let w = [Window::new(3, 3600)];
    let now = UnixTime(T);
    let check = s.limit_apply("u", &w, now, 1, Mode::Check).await.unwrap();
    assert!(check.allowed);
    for i in 0..3 {
        let o = s.limit_apply("u", &w, now, 1, Mode::Conform).await.unwrap();
        assert!(o.allowed, "message {i}");
    }
    let o = s.limit_apply("u", &w, now, 1, Mode::Conform).await.unwrap();
    assert!(!o.allowed && o.retry_after > 0, "{o:?}");
    assert!(s.limit_get("u").await.unwrap().is_some());
    assert!(s.limit_remove("u").await.unwrap());

    s.account_hold("alice@example.org", "4XyZ1").await.unwrap();
    s.account_hold("alice@example.org", "4XyZ2").await.unwrap();
    let acct = s.account_get("alice@example.org").await.unwrap().unwrap();
    assert_eq!(acct.held, ["4XyZ1", "4XyZ2"]);
    assert_eq!(s.account_list(10).await.unwrap().len(), 1);
    s.account_put(
        "alice@example.org",
        AccountRecord {
            locked: None,
            held: vec![],
        },
    )
    .await
    .unwrap();
    assert!(s.account_get("alice@example.org").await.unwrap().is_none());

    // Another prefix is another deployment: it sees nothing of t1:.
    assert!(other.ban_list(10).await.unwrap().is_empty());
    assert_eq!(other.counts().await.unwrap().triplets, 0);
    assert!(s.counts().await.unwrap().triplets > 0);
}

#[tokio::test]
async fn two_hosts_share_limits_and_concurrent_updates_are_not_lost() {
    let redis = Redis::start().await;
    shared_limit_and_ban(redis.store("mx:"), redis.store("mx:")).await;
}

/// Two "hosts" `a` and `b` on one Redis: concurrent charges of one limit all count, and a
/// ban written by one is read by the other.
async fn shared_limit_and_ban(a: RedisStore, b: RedisStore) {
    let w = [Window::new(100, 3600)];
    let now = UnixTime(T);
    // 50 charges from each "host" at once: every one counts (compare-and-set retries).
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            let w = [Window::new(100, 3600)];
            for _ in 0..50 {
                let o = store.limit_apply("user", &w, now, 1, Mode::Force).await;
                assert!(o.unwrap().allowed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let o = a
        .limit_apply("user", &w, now, 1, Mode::Conform)
        .await
        .unwrap();
    assert!(
        !o.allowed,
        "100 charged across both hosts: the 101st is refused"
    );
    let ban = BanRecord {
        since: UnixTime(T),
        until: UnixTime(T + 60),
        count: 1,
        jail: "auth".into(),
        reason: "r".into(),
    };
    a.ban_put("198.51.100.9/32", ban.clone()).await.unwrap();
    assert_eq!(b.ban_get("198.51.100.9/32").await.unwrap(), Some(ban));
}

#[tokio::test]
async fn redis_down_fails_fast_is_counted_once_and_reconnects() {
    let mut redis = Redis::start().await;
    let s = redis.store("f:");
    s.ban_put(
        "192.0.2.1/32",
        BanRecord {
            since: UnixTime(T),
            until: UnixTime(T + 600),
            count: 1,
            jail: "j".into(),
            reason: "r".into(),
        },
    )
    .await
    .unwrap();
    redis.kill();
    for _ in 0..5 {
        let e = s.ban_get("192.0.2.1/32").await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    }
    let h = s.health();
    assert!(h.is_down());
    assert_eq!(
        h.outages.load(Ordering::Relaxed),
        1,
        "one outage, logged once"
    );
    assert!(h.errors.load(Ordering::Relaxed) >= 5);
    // Back on the same port (empty: no persistence here): the store reconnects by itself.
    redis.restart().await;
    assert!(answers_again(&s).await, "no reconnect");
    assert!(!s.health().is_down());
}

#[tokio::test]
async fn the_daemon_greylists_through_redis_and_reports_its_health() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = Redis::start().await;
    let (d, _dir) = daemon(&redis, "d:", "", None).await;
    let mut s = tokio::net::TcpStream::connect(d.policy_addrs[0])
        .await
        .unwrap();
    s.write_all(
        b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.44\n\
          sender=a@sender.example\nrecipient=b@rcpt.example\n\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(reply.starts_with("action=DEFER_IF_PERMIT"), "{reply}");
    let shared = redis.store("d:");
    assert_eq!(
        shared.counts().await.unwrap().triplets,
        1,
        "the triplet is in redis"
    );
    let st = mxguard::control::handle(mxguard::control::ControlRequest::Status, &d.shared).await;
    assert_eq!(st.data["store"]["type"], "redis", "{}", st.data);
    assert_eq!(st.data["store"]["reachable"], true, "{}", st.data);
    d.shutdown();
    d.wait().await.unwrap();
}

/// A small deterministic generator (xorshift64*), so a failing history can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The greylist and auto-whitelist Lua scripts against the engine's Rust rules
/// (`TripletRecord::touched`, `AwlRecord::bumped`): random histories (attempt gaps around
/// the delay, the retry window, the max age and the hour, clock steps backwards) must give
/// the same records step by step, and the key's time to live must end when postgrey's
/// cleanup would remove the record.
#[tokio::test]
async fn lua_scripts_apply_exactly_the_engine_rules() {
    use mxguard_engine::store::{AwlRecord, GreylistKey, GreylistTimes, TripletRecord};
    let redis = Redis::start().await;
    let s = redis.store("diff:");
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", redis.port)).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let times = GreylistTimes {
        delay: 300,
        retry_window: 7200,
        max_age: 86_400,
    };
    let gaps = [0, 1, 299, 300, 301, 3599, 3600, 7200, 7201, 86_400, 86_401];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for history in 0..20u32 {
        let key = GreylistKey::from_normalised(format!("192.0.2.0/s{history}@x/r@y"));
        let ip = std::net::IpAddr::from([198, 51, 100, history as u8]);
        let (mut now, mut gl, mut awl) = (T, None::<TripletRecord>, None::<AwlRecord>);
        for step in 0..25 {
            let gap = gaps[rng.below(gaps.len() as u64) as usize];
            now = if rng.below(10) == 0 {
                now - gap.min(400)
            } else {
                now + gap
            };
            let at = UnixTime(now);
            let o = s.greylist_touch(&key, at, times).await.unwrap();
            let want = TripletRecord::touched(gl, at, &times);
            assert_eq!(o.previous, gl, "history {history} step {step}");
            assert_eq!(o.current, want, "history {history} step {step}");
            gl = Some(want);
            let ttl: i64 = redis::cmd("TTL")
                .arg(format!("diff:gl:{}", key.as_str()))
                .query_async(&mut raw)
                .await
                .unwrap();
            let removable_after = (1..=times.max_age + 2)
                .find(|d| want.removable(UnixTime(now + d), &times))
                .unwrap();
            let ttl = ttl as u64;
            assert!(
                ttl == removable_after || ttl + 1 == removable_after,
                "history {history} step {step}: ttl {ttl}, removable after {removable_after}"
            );
            let a = s.awl_bump(ip, at, times.max_age).await.unwrap();
            let want = AwlRecord::bumped(awl, at, times.max_age);
            assert_eq!(a, want, "history {history} step {step}");
            awl = Some(want);
        }
    }
}

/// One host's ban manager on the shared Redis `store`, with an action that records its calls.
fn host(
    store: RedisStore,
    clock: &mxguard_engine::FakeClock,
) -> (
    mxguard::jails::BanManager,
    std::sync::Arc<mxguard::output::firewall::RecordingAction>,
) {
    use mxguard::output::firewall::{ActionRegistry, RecordingAction};
    let action = std::sync::Arc::new(RecordingAction::new("rec"));
    let mut reg = ActionRegistry::new();
    reg.insert(action.clone());
    let mut registry = prometheus_client::registry::Registry::default();
    let mgr = mxguard::jails::BanManager::new(
        std::sync::Arc::new(store),
        std::sync::Arc::new(clock.clone()),
        reg,
        mxguard::jails::Routes {
            default: vec!["rec".into()],
            ..Default::default()
        },
        mxguard::jails::JailMetrics::register(&mut registry),
    );
    (mgr, action)
}

/// The networks the recorded calls of kind `ban` (or unban) carried, in order.
fn nets(action: &mxguard::output::firewall::RecordingAction, bans: bool) -> Vec<String> {
    use mxguard::output::firewall::Recorded;
    action
        .calls()
        .into_iter()
        .flat_map(|c| match (c, bans) {
            (Recorded::Ban(b), true) | (Recorded::Unban(b), false) => b,
            _ => Vec::new(),
        })
        .map(|b| b.net.to_string())
        .collect()
}

#[tokio::test]
async fn a_ban_decided_on_one_host_reaches_the_other_hosts_firewall_and_so_does_its_unban() {
    let redis = Redis::start().await;
    ban_propagation(redis.store("sync:"), redis.store("sync:")).await;
}

/// The ban managers of two hosts on stores `a` and `b` (one shared Redis): a ban, its
/// escalation and its unban on A reach B's firewall through the ban version B polls.
async fn ban_propagation(a: RedisStore, b: RedisStore) {
    let clock = mxguard_engine::FakeClock::new(UnixTime(T));
    let (a, _) = host(a, &clock);
    let (b, b_fw) = host(b, &clock);
    let v0 = b
        .shared_version()
        .await
        .unwrap()
        .expect("redis shares bans");
    assert_eq!(b.sync().await.unwrap(), (0, 0), "nothing to do yet");

    let net: ipnet::IpNet = "203.0.113.7/32".parse().unwrap();
    a.ban_manual(mxguard::jails::ManualBan {
        net,
        jail: "postfix-sasl".into(),
        duration: Some(Duration::from_secs(3600)),
        reason: "test".into(),
    })
    .await
    .unwrap();
    let v1 = b.shared_version().await.unwrap().unwrap();
    assert_ne!(v1, v0, "a ban write changes the version other hosts poll");
    assert_eq!(b.sync().await.unwrap(), (1, 0));
    assert_eq!(nets(&b_fw, true), ["203.0.113.7/32"]);
    assert_eq!(b.active_by_jail().get("postfix-sasl"), Some(&1));
    // The firewall gets the remaining time, not the whole ban again.
    clock.advance(Duration::from_secs(600));
    assert_eq!(b.sync().await.unwrap(), (0, 0), "applied once");

    // A ban that ends later on A (escalation) is applied again on B with the new end.
    a.ban_manual(mxguard::jails::ManualBan {
        net,
        jail: "recidive".into(),
        duration: Some(Duration::from_secs(86_400)),
        reason: "test".into(),
    })
    .await
    .unwrap();
    assert_eq!(b.sync().await.unwrap(), (1, 0));
    let calls = b_fw.calls();
    let Some(mxguard::output::firewall::Recorded::Ban(last)) = calls.last() else {
        panic!("no ban call: {calls:?}");
    };
    assert_eq!(last[0].timeout, Some(Duration::from_secs(86_400)));

    // Unbanned on A: lifted on B.
    assert!(a.unban(net).await.unwrap());
    assert_eq!(b.sync().await.unwrap(), (0, 1));
    assert_eq!(nets(&b_fw, false), ["203.0.113.7/32", "203.0.113.7/32"]);
    assert!(b.active_by_jail().values().all(|&n| n == 0));
}

#[tokio::test]
async fn a_paused_redis_costs_one_timeout_then_operations_fail_at_once_until_it_is_back() {
    let redis = Redis::start().await;
    let s = redis.store("p:");
    s.ban_get("192.0.2.1/32").await.unwrap();
    let pid = redis.child.id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    let t = tokio::time::Instant::now();
    let e = s.ban_get("192.0.2.1/32").await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    let first = t.elapsed();
    assert!(
        first >= Duration::from_millis(250) && first < Duration::from_secs(2),
        "the first operation waits its timeout (300 ms), took {first:?}"
    );
    // While it is down, the others do not wait for it.
    let t = tokio::time::Instant::now();
    for _ in 0..50 {
        assert!(s.ban_get("192.0.2.1/32").await.is_err());
    }
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "50 operations on a known-down Redis took {:?}",
        t.elapsed()
    );
    assert!(s.health().is_down());
    assert_eq!(s.health().outages.load(Ordering::Relaxed), 1);
    signal("-CONT");
    assert!(answers_again(&s).await, "no recovery after SIGCONT");
    assert!(!s.health().is_down());
}

/// The GCRA Lua script against the engine's `gcra::apply`: random multi-window limits,
/// costs, modes and time steps (clock steps backwards and window changes included) give the
/// same outcome and the same stored state step by step; in the script's exact range each
/// call is one round trip, and past 2^53 (a bytes limit) the compare-and-set path takes
/// over with the same results.
#[tokio::test]
async fn the_gcra_script_applies_exactly_the_engine_rule_in_one_round_trip() {
    use mxguard_engine::limits::gcra::{self, GcraState};
    let redis = Redis::start().await;
    let s = redis.store("gcra:");
    let ops = || s.health().operations.load(Ordering::Relaxed);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let modes = [Mode::Check, Mode::Conform, Mode::Force];
    let (mut script_calls, mut fallbacks) = (0, 0);
    for history in 0..40u32 {
        let big = history % 8 == 7;
        let window = |rng: &mut Rng| {
            let (count, period) = if big {
                (100_000_000 + rng.below(1000), 86_400)
            } else {
                (1 + rng.below(60), [60, 3600, 86_400][rng.below(3) as usize])
            };
            let burst = if rng.below(3) == 0 {
                1 + rng.below(count)
            } else {
                count
            };
            Window {
                count,
                period_secs: period,
                burst,
            }
        };
        let mut windows: Vec<Window> = (0..1 + rng.below(3)).map(|_| window(&mut rng)).collect();
        let key = format!("h{history}");
        let (mut now, mut state) = (T, None::<GcraState>);
        for step in 0..30 {
            let gap = [0, 0, 1, 30, 72, 600, 3600, 90_000][rng.below(8) as usize];
            now = if rng.below(12) == 0 {
                now - 5
            } else {
                now + gap
            };
            if rng.below(25) == 0 {
                windows.push(window(&mut rng)); // a reload changed the limit
            }
            let cost = if big {
                rng.below(50_000_000)
            } else {
                rng.below(8)
            };
            let mode = modes[rng.below(3) as usize];
            let before = ops();
            let got = s
                .limit_apply(&key, &windows, UnixTime(now), cost, mode)
                .await
                .unwrap();
            let used = ops() - before;
            let (want, new) = gcra::apply(state.as_ref(), &windows, UnixTime(now), cost, mode);
            assert_eq!(
                got, want,
                "history {history} step {step} {mode:?} cost {cost}"
            );
            if new.is_some() {
                state = new;
            }
            let stored = s.limit_get(&key).await.unwrap();
            assert_eq!(stored, state, "history {history} step {step}");
            if big {
                // Past the script's exact range: read, then compare-and-set (just the read
                // for a check, or when nothing changes).
                assert!(
                    used == 1 || used == 2,
                    "history {history} step {step}: {used}"
                );
                fallbacks += 1;
            } else {
                assert_eq!(used, 1, "one round trip (history {history} step {step})");
                script_calls += 1;
            }
        }
    }
    assert!(
        script_calls > 500 && fallbacks > 50,
        "{script_calls} {fallbacks}"
    );
}

/// Round trips per request through the daemon on Redis: a RCPT request of a SASL client with
/// the ban list, greylisting (auto-whitelist on) and two rate limits is one batch read
/// (`MGET`) plus the greylist script; the first retry after the delay adds the
/// auto-whitelist count (once per triplet, postgrey's rule).
#[tokio::test]
async fn a_greylisted_rcpt_request_with_two_limits_costs_two_round_trips() {
    let redis = Redis::start().await;
    let store = format!("url = \"redis://127.0.0.1:{}/0\"\n", redis.port);
    let steps = rcpt_round_trips(&store, || 0).await;
    assert_eq!(steps[0].0, 2, "RCPT, greylisted: MGET + greylist script");
    assert_eq!(
        steps[1].0, 3,
        "RCPT, first pass: MGET + greylist script + auto-whitelist count"
    );
    assert_eq!(steps[2].0, 2, "RCPT, known triplet: MGET + greylist script");
}

/// The daemon on a Redis whose `[store]` lines are `store`, asked the same RCPT request
/// three times (greylisted; first pass after the delay; known triplet) after a warm-up:
/// per request, the store's operations and the change of `server()` (e.g. commands the
/// servers counted).
async fn rcpt_round_trips(store: &str, server: impl Fn() -> u64) -> [(u64, u64); 3] {
    let clock = mxguard_engine::FakeClock::new(UnixTime(T));
    let (d, _dir) = daemon_on(
        store,
        "rt:",
        "[greylist]\ndelay = \"300s\"\n\
         [[limit]]\nname = \"client\"\nkey = [\"client_address\"]\nrate = [\"1000/1m\"]\n\
         [[limit]]\nname = \"user\"\nkey = [\"sasl_username\"]\ncount = \"recipients\"\n\
         rate = [\"200/1h\", \"1000/1d\"]\n",
        Some(clock.clone()),
    )
    .await;
    let health = d.shared.redis.clone().unwrap();
    let ops = || health.operations.load(Ordering::Relaxed);
    let mut client = common_client(d.policy_addrs[0]).await;
    let rcpt = "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.44\n\
                sasl_username=alice@example.org\nsender=alice@example.org\n\
                recipient=b@rcpt.example\ninstance=i1\n\n";
    // Let the scripts load (the first call of each may need a second EVAL).
    ask(&mut client, rcpt).await;
    let mut out = [(0, 0); 3];
    for (i, step) in out.iter_mut().enumerate() {
        if i == 1 {
            clock.advance(Duration::from_secs(301));
        }
        let (before, server_before) = (ops(), server());
        let reply = ask(&mut client, rcpt).await;
        let deferred = reply.starts_with("action=DEFER");
        assert!(
            if i == 0 {
                reply.starts_with("action=DEFER_IF_PERMIT")
            } else {
                !deferred
            },
            "request {i}: {reply}"
        );
        *step = (ops() - before, server() - server_before);
    }
    d.shutdown();
    d.wait().await.unwrap();
    out
}

async fn common_client(addr: std::net::SocketAddr) -> tokio::io::BufReader<tokio::net::TcpStream> {
    tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap())
}

/// Sends one request and returns the reply's first line.
async fn ask(c: &mut tokio::io::BufReader<tokio::net::TcpStream>, req: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    c.get_mut().write_all(req.as_bytes()).await.unwrap();
    let mut first = String::new();
    c.read_line(&mut first).await.unwrap();
    let mut blank = String::new();
    while c.read_line(&mut blank).await.unwrap() > 1 {
        blank.clear();
    }
    first.trim_end().to_string()
}

/// Redis Sentinel: a primary, a replica and one Sentinel on loopback ports. The store finds
/// the primary through the Sentinel; when the primary is killed, the Sentinel promotes the
/// replica and the store follows it by itself (operations fail open meanwhile), with the
/// data written before the failover still there.
#[tokio::test]
async fn the_store_follows_a_sentinel_failover() {
    let dir = tempfile::tempdir().unwrap();
    let (pp, rp, sp) = (free_port(), free_port(), free_port());
    let mut primary = spawn(pp, dir.path());
    wait_up(pp).await;
    let rdir = dir.path().join("replica");
    std::fs::create_dir(&rdir).unwrap();
    let mut replica = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &rp.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--replicaof",
            "127.0.0.1",
            &pp.to_string(),
        ])
        .arg("--dir")
        .arg(&rdir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_up(rp).await;
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sp}\nbind 127.0.0.1\nsentinel monitor mx 127.0.0.1 {pp} 1\n\
             sentinel down-after-milliseconds mx 400\nsentinel failover-timeout mx 2000\n"
        ),
    )
    .unwrap();
    let mut sentinel = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_up(sp).await;
    let s = RedisStore::new(RedisSettings {
        url: "redis://127.0.0.1/0".into(),
        prefix: "s:".into(),
        timeout: Duration::from_millis(300),
        ban_retention: Duration::from_secs(86_400),
        sentinel: Some(mxguard::store::redis::SentinelSettings {
            sentinels: vec![format!("127.0.0.1:{sp}")],
            master_name: "mx".into(),
        }),
        cluster: None,
    })
    .unwrap();
    let ban = BanRecord {
        since: UnixTime(T),
        until: UnixTime(T + 600),
        count: 1,
        jail: "j".into(),
        reason: "r".into(),
    };
    let mut written = false;
    for _ in 0..100 {
        if s.ban_put("192.0.2.9/32", ban.clone()).await.is_ok() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(written, "no write through the sentinel-named primary");
    // Wait until the replica has it, then kill the primary.
    let mut raw = redis::Client::open(format!("redis://127.0.0.1:{rp}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut replicated = false;
    for _ in 0..100 {
        let v: Option<String> = redis::cmd("GET")
            .arg("s:ban:192.0.2.9/32")
            .query_async(&mut raw)
            .await
            .unwrap();
        if v.is_some() {
            replicated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replicated, "the replica never got the ban");
    let _ = primary.kill();
    let _ = primary.wait();
    // Sentinel notices (400 ms), promotes the replica; the store follows it.
    let mut after = None;
    for _ in 0..300 {
        if let Ok(Some(b)) = s.ban_get("192.0.2.9/32").await
            && s.ban_put("192.0.2.10/32", ban.clone()).await.is_ok()
        {
            after = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        after,
        Some(ban),
        "the store did not follow the failover within 15 s"
    );
    // The promoted replica dropped its clients: a fresh connection asks its role.
    let mut raw = redis::Client::open(format!("redis://127.0.0.1:{rp}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut raw).await.unwrap();
    assert!(format!("{:?}", role[0]).contains("master"), "{role:?}");
    assert!(s.health().outages.load(Ordering::Relaxed) >= 1);
    let primary = s.health().primary.lock().unwrap().clone();
    assert_eq!(
        primary,
        Some(format!("127.0.0.1:{rp}")),
        "status shows the new primary"
    );
    for c in [&mut replica, &mut sentinel] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Polls `s` (bounded: 5 s) until an operation succeeds again.
async fn answers_again(s: &RedisStore) -> bool {
    for _ in 0..100 {
        if s.ban_get("192.0.2.1/32").await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A daemon on `redis` with key prefix `prefix`, config `extra` appended, and `clock`.
async fn daemon(
    redis: &Redis,
    prefix: &str,
    extra: &str,
    clock: Option<mxguard_engine::FakeClock>,
) -> (mxguard::service::Daemon, tempfile::TempDir) {
    let store = format!("url = \"redis://127.0.0.1:{}/0\"\n", redis.port);
    daemon_on(&store, prefix, extra, clock).await
}

/// A daemon whose `[store]` (type redis) has the lines `store`, prefix `prefix`, config
/// `extra` appended, and `clock`.
async fn daemon_on(
    store: &str,
    prefix: &str,
    extra: &str,
    clock: Option<mxguard_engine::FakeClock>,
) -> (mxguard::service::Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n[store]\ntype = \"redis\"\n\
         {store}prefix = \"{prefix}\"\n[control]\nsocket = \"{}/ctl.sock\"\n{extra}",
        dir.path().display()
    );
    let path = dir.path().join("mxguard.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = mxguard::config::load(Some(&path)).unwrap();
    let clock: Option<std::sync::Arc<dyn mxguard_engine::Clock>> =
        clock.map(|c| std::sync::Arc::new(c) as _);
    let d = mxguard::service::Daemon::start(
        cfg,
        mxguard::service::StartOptions {
            config_path: Some(path),
            clock,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (d, dir)
}
