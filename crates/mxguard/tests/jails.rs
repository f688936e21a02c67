//! Log jails in the daemon: failures from log lines ban through the store and the actions,
//! the Postfix policy refuses banned clients, bans come back after a restart with their
//! remaining time, expire, feed recidive, and `ban`/`unban`/`bans` work through the control
//! socket's handler. Lines are fed with `jails::process_batch` on a fake clock (no sleeps);
//! the background follower watches a file the tests never write.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mxguard::config;
use mxguard::control::{self, ControlRequest};
use mxguard::input::logtail::LogLine;
use mxguard::output::firewall::{ActionRegistry, FirewallBan, Recorded, RecordingAction};
use mxguard::service::{Daemon, StartOptions};
use mxguard_engine::store::{MemoryStore, Store};
use mxguard_engine::{FakeClock, UnixTime};

use common::{Client, T0};

fn filter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/fail2ban/config")
}

struct World {
    daemon: Option<Daemon>,
    clock: FakeClock,
    store: Arc<dyn Store>,
    action: Arc<RecordingAction>,
    _dir: tempfile::TempDir,
}

const JAILS: &str = r#"
[greylist]
enabled = false

[[action]]
name = "rec"
type = "command"
ban = ["/bin/true", "<ip>"]

[[jail]]
name = "postfix-sasl"
filter = "postfix[mode=auth]"
filter_dir = "FILTERS"
logpath = ["UNUSED"]
maxretry = 3
findtime = "10m"
bantime = "1h"
bantime_increment = { maxtime = "1d" }
ipv6_prefix = 64

[[jail]]
name = "recidive"
maxretry = 2
"#;

async fn start(store: Arc<dyn Store>, clock: FakeClock, extra: &str) -> World {
    start_jails(JAILS, store, clock, extra).await
}

/// Starts a daemon with the jails `jails` (FILTERS and UNUSED replaced as in [`JAILS`]).
async fn start_jails(jails: &str, store: Arc<dyn Store>, clock: FakeClock, extra: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n[store]\ntype = \"memory\"\n[control]\nsocket = \"{}\"\n{}\n{extra}",
        dir.path().join("ctl.sock").display(),
        jails
            .replace("FILTERS", &filter_dir().display().to_string())
            .replace(
                "UNUSED",
                &dir.path().join("never-written.log").display().to_string()
            ),
    );
    let path = dir.path().join("mxguard.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = config::load(Some(&path)).unwrap_or_else(|e| panic!("config: {e}"));
    let action = Arc::new(RecordingAction::new("rec"));
    let mut reg = ActionRegistry::new();
    reg.insert(action.clone());
    let daemon = Daemon::start(
        cfg,
        StartOptions {
            config_path: Some(path),
            clock: Some(Arc::new(clock.clone())),
            store: Some(store.clone()),
            actions: Some(reg),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    World {
        daemon: Some(daemon),
        clock,
        store,
        action,
        _dir: dir,
    }
}

impl World {
    fn d(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }

    fn now(&self) -> u64 {
        self.clock.now_secs()
    }

    /// Feeds SASL failure lines of `ip` at the current time to the postfix-sasl jail.
    async fn sasl_failures(&self, ip: &str, n: usize) {
        let ts = jiff::Timestamp::from_second(self.now() as i64).unwrap();
        let stamp = ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let lines: Vec<LogLine> = (0..n)
            .map(|_| LogLine {
                watches: vec![0usize].into(),
                bytes: format!(
                    "{stamp} mail postfix/submission/smtpd[4242]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
                )
                .into_bytes(),
                time: None,
            })
            .collect();
        let svc = self.d().shared.jails.clone().unwrap();
        mxguard::jails::process_batch(&svc, &lines, self.now() as i64).await;
    }

    async fn policy(&self, ip: &str) -> String {
        let s = tokio::net::TcpStream::connect(self.d().policy_addrs[0])
            .await
            .unwrap();
        let mut c = Client::new(s);
        c.rcpt(ip, "a@sender.example", "b@rcpt.example", "").await
    }

    async fn control(&self, req: ControlRequest) -> serde_json::Value {
        let r = control::handle(req, &self.d().shared).await;
        assert!(r.ok, "control error: {:?}", r.error);
        r.data
    }

    fn bans(&self) -> Vec<Vec<FirewallBan>> {
        self.action
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Recorded::Ban(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    fn unbans(&self) -> Vec<Vec<FirewallBan>> {
        self.action
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Recorded::Unban(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    async fn stop(mut self) {
        let d = self.daemon.take().unwrap();
        d.shutdown();
        d.wait().await.unwrap();
    }
}

trait NowSecs {
    fn now_secs(&self) -> u64;
}

impl NowSecs for FakeClock {
    fn now_secs(&self) -> u64 {
        use mxguard_engine::Clock;
        self.now().0
    }
}

fn new_world() -> (Arc<dyn Store>, FakeClock) {
    (Arc::new(MemoryStore::new()), FakeClock::new(UnixTime(T0)))
}

#[tokio::test]
async fn maxretry_failures_ban_in_the_store_the_action_and_the_policy() {
    let (store, clock) = new_world();
    let w = start(store, clock, "").await;
    assert_eq!(w.action.calls().first(), Some(&Recorded::Setup));
    w.sasl_failures("192.0.2.10", 2).await;
    assert!(
        w.store.ban_get("192.0.2.10/32").await.unwrap().is_none(),
        "2 < maxretry"
    );
    assert!(w.policy("192.0.2.10").await.starts_with("DUNNO"));
    w.sasl_failures("192.0.2.10", 1).await;
    let rec = w
        .store
        .ban_get("192.0.2.10/32")
        .await
        .unwrap()
        .expect("banned");
    assert_eq!(rec.jail, "postfix-sasl");
    assert_eq!(
        rec.since,
        UnixTime(T0),
        "the ban starts at the log line's time"
    );
    assert_eq!(rec.until, UnixTime(T0 + 3600));
    let bans = w.bans();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0][0].net.to_string(), "192.0.2.10/32");
    assert_eq!(bans[0][0].timeout, Some(Duration::from_secs(3600)));
    let reply = w.policy("192.0.2.10").await;
    assert!(
        reply.starts_with("REJECT 5.7.1 Client host is banned"),
        "{reply}"
    );
    assert!(w.policy("192.0.2.11").await.starts_with("DUNNO"));
    // Loopback is in the default ignoreip.
    w.sasl_failures("127.0.0.1", 5).await;
    assert!(w.store.ban_get("127.0.0.1/32").await.unwrap().is_none());
    w.stop().await;
}

#[tokio::test]
async fn ipv6_failures_ban_the_64() {
    let (store, clock) = new_world();
    let w = start(store, clock, "").await;
    w.sasl_failures("2001:db8:7:8::1", 1).await;
    w.sasl_failures("2001:db8:7:8::2", 1).await;
    w.sasl_failures("2001:db8:7:8:aaaa::3", 1).await;
    assert!(
        w.store
            .ban_get("2001:db8:7:8::/64")
            .await
            .unwrap()
            .is_some()
    );
    let reply = w.policy("2001:db8:7:8:ffff::9").await;
    assert!(
        reply.starts_with("REJECT"),
        "another address of the /64: {reply}"
    );
    w.stop().await;
}

#[tokio::test]
async fn bans_are_restored_after_a_restart_with_their_remaining_time() {
    let (store, clock) = new_world();
    let w = start(store.clone(), clock.clone(), "").await;
    w.sasl_failures("198.51.100.7", 3).await;
    w.stop().await;
    clock.advance(Duration::from_secs(1000));
    // kill -9 equivalent for the in-memory store: nothing but the store survives.
    let w = start(store, clock, "").await;
    let calls = w.action.calls();
    assert_eq!(calls[0], Recorded::Setup, "setup before the restore batch");
    let Recorded::Ban(batch) = &calls[1] else {
        panic!("{calls:?}");
    };
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].net.to_string(), "198.51.100.7/32");
    assert_eq!(batch[0].timeout, Some(Duration::from_secs(2600)));
    assert!(w.policy("198.51.100.7").await.starts_with("REJECT"));
    w.stop().await;
}

#[tokio::test]
async fn bans_end_at_expiry_and_repeat_offenders_are_banned_longer() {
    let (store, clock) = new_world();
    let w = start(store, clock.clone(), "").await;
    w.sasl_failures("203.0.113.5", 3).await;
    clock.advance(Duration::from_secs(3599));
    assert_eq!(w.d().shared.bans.expire_due().await, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(w.d().shared.bans.expire_due().await, 1);
    let unbans = w.unbans();
    assert_eq!(unbans.len(), 1);
    assert_eq!(unbans[0][0].net.to_string(), "203.0.113.5/32");
    assert!(w.policy("203.0.113.5").await.starts_with("DUNNO"));
    // Second offence: bantime_increment doubles the ban (1h -> 2h).
    w.sasl_failures("203.0.113.5", 3).await;
    let bans = w.bans();
    assert_eq!(bans.len(), 3, "{bans:?}");
    assert_eq!(bans[1][0].jail, "postfix-sasl");
    assert_eq!(bans[1][0].timeout, Some(Duration::from_secs(7200)));
    // Two bans by postfix-sasl within recidive's findtime: recidive bans for a week.
    assert_eq!(bans[2][0].jail, "recidive");
    assert_eq!(bans[2][0].timeout, Some(Duration::from_secs(7 * 86_400)));
    let rec = w.store.ban_get("203.0.113.5/32").await.unwrap().unwrap();
    assert_eq!((rec.jail.as_str(), rec.count), ("recidive", 3), "{rec:?}");
    assert_eq!(rec.until.0, w.now() + 7 * 86_400);
    w.stop().await;
}

#[tokio::test]
async fn a_repeat_offender_is_banned_after_fewer_failures_even_after_a_restart() {
    // fail2ban's observer: with bantime_increment, a failure of an address banned n times
    // before counts min(2^n/2 + 1, maxretry): 2 after one ban, so 2 failures reach
    // maxretry = 3. The history comes from the store after a restart.
    let (store, clock) = new_world();
    let w = start(store.clone(), clock.clone(), "").await;
    w.sasl_failures("203.0.113.77", 3).await;
    assert_eq!(w.bans().len(), 1);
    w.stop().await;
    clock.advance(Duration::from_secs(3600));
    let w = start(store, clock, "").await;
    let restored = w.bans().len();
    assert_eq!(restored, 0, "the first ban has ended: nothing to restore");
    w.sasl_failures("203.0.113.77", 1).await;
    assert!(w.bans().is_empty(), "one weighted failure (2) < maxretry 3");
    w.sasl_failures("203.0.113.77", 1).await;
    let bans = w.bans();
    assert_eq!(
        bans.len(),
        1,
        "the second failure (2 + 2 >= 3) bans: {bans:?}"
    );
    assert_eq!(bans[0][0].timeout, Some(Duration::from_secs(7200)));
    // A first offender still needs all three.
    w.sasl_failures("203.0.113.78", 2).await;
    assert_eq!(w.bans().len(), 1);
    w.stop().await;
}

#[tokio::test]
async fn ignoreip_host_names_and_ignoreself_are_resolved_at_start() {
    // `localhost` resolves through /etc/hosts to 127.0.0.1 (and ::1); with the defaults
    // replaced by this list and ignoreself off, only the name keeps loopback from a ban.
    let by_name = JAILS.replace(
        "ipv6_prefix = 64",
        "ipv6_prefix = 64\nignoreip = [\"localhost\", \"192.0.2.128/25\"]\nignoreself = false",
    );
    let (store, clock) = new_world();
    let w = start_jails(&by_name, store, clock, "").await;
    w.sasl_failures("127.0.0.1", 3).await;
    w.sasl_failures("192.0.2.200", 3).await;
    assert!(w.bans().is_empty(), "{:?}", w.bans());
    w.sasl_failures("192.0.2.20", 3).await;
    assert_eq!(w.bans().len(), 1, "an address outside the list is banned");
    w.stop().await;

    // ignoreself: the loopback interface's 127.0.0.1 is one of this host's own addresses,
    // 127.0.0.2 is not (and no ignoreip covers it here).
    let own = JAILS.replace(
        "ipv6_prefix = 64",
        "ipv6_prefix = 64\nignoreip = []\nignoreself = true",
    );
    let (store, clock) = new_world();
    let w = start_jails(&own, store, clock, "").await;
    w.sasl_failures("127.0.0.1", 3).await;
    assert!(w.bans().is_empty(), "{:?}", w.bans());
    w.sasl_failures("127.0.0.2", 3).await;
    assert_eq!(w.bans().len(), 1);
    w.stop().await;

    // Neither: loopback is banned like any address.
    let none = JAILS.replace(
        "ipv6_prefix = 64",
        "ipv6_prefix = 64\nignoreip = []\nignoreself = false",
    );
    let (store, clock) = new_world();
    let w = start_jails(&none, store, clock, "").await;
    w.sasl_failures("127.0.0.1", 3).await;
    assert_eq!(w.bans().len(), 1);
    w.stop().await;
}

/// One auth-policy report of a failed login (Dovecot's body, `Connection: close`).
async fn auth_failure(addr: std::net::SocketAddr, ip: &str, pw: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!(
        "{{\"login\":\"victim\",\"protocol\":\"imap\",\"pwhash\":\"{pw}\",\"remote\":\"{ip}\",\
         \"success\":false,\"policy_reject\":false,\"tls\":false}}"
    );
    let req = format!(
        "POST /?command=report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn auth_policy_bans_reach_the_firewall_actions_and_recidive() {
    let (store, clock) = new_world();
    let auth = "[auth_policy]\nlisten = \"127.0.0.1:0\"\nban_after = 3\nban_time = \"10m\"\n";
    let w = start(store, clock, auth).await;
    let addr = w.d().auth_policy_addr.unwrap();
    for pw in ["0001", "0002", "0003"] {
        auth_failure(addr, "198.51.100.50", pw).await;
    }
    // The action runs beside the HTTP answer: wait (bounded) for the spawned task.
    for _ in 0..2000 {
        if !w.bans().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bans = w.bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0][0].net.to_string(), "198.51.100.50/32");
    assert_eq!(bans[0][0].jail, "auth");
    assert_eq!(bans[0][0].timeout, Some(Duration::from_secs(600)));
    let status = w.control(ControlRequest::Status).await;
    assert_eq!(status["bans_active"], 1, "{status}");
    // A jail's ban of the same address is its second ban event: recidive (maxretry 2).
    w.sasl_failures("198.51.100.50", 3).await;
    let jails: Vec<String> = w.bans().iter().map(|b| b[0].jail.clone()).collect();
    assert_eq!(jails, ["auth", "postfix-sasl", "recidive"]);
    w.stop().await;
}

#[tokio::test]
async fn manual_ban_unban_and_listing_through_the_control_handler() {
    let (store, clock) = new_world();
    let w = start(store, clock, "").await;
    let d = w
        .control(ControlRequest::Ban {
            target: "192.0.2.0/24".into(),
            jail: "manual".into(),
            seconds: Some(600),
            reason: "test".into(),
        })
        .await;
    assert_eq!(d["net"], "192.0.2.0/24");
    assert!(w.policy("192.0.2.99").await.starts_with("REJECT"));
    assert_eq!(
        w.bans().len(),
        1,
        "manual bans go to [bans] action (all actions)"
    );
    let list = w
        .control(ControlRequest::Bans {
            jail: None,
            all: false,
        })
        .await;
    assert_eq!(list["bans"][0]["net"], "192.0.2.0/24");
    assert_eq!(list["bans"][0]["remaining"], 600);
    let none = w
        .control(ControlRequest::Bans {
            jail: Some("postfix-sasl".into()),
            all: false,
        })
        .await;
    assert_eq!(none["bans"].as_array().unwrap().len(), 0);
    let r = w
        .control(ControlRequest::Unban {
            target: Some("192.0.2.0/24".into()),
            all: false,
        })
        .await;
    assert_eq!(r["removed"], 1);
    assert_eq!(w.unbans().len(), 1);
    assert!(w.policy("192.0.2.99").await.starts_with("DUNNO"));
    // An unsupported prefix is a clear error, not a ban the policy would never find.
    let r = control::handle(
        ControlRequest::Ban {
            target: "10.0.0.0/8".into(),
            jail: "manual".into(),
            seconds: None,
            reason: "x".into(),
        },
        &w.d().shared,
    )
    .await;
    assert!(!r.ok && r.error.unwrap().contains("/[32, 24, 16]"));
    // Permanent ban and unban --all.
    w.control(ControlRequest::Ban {
        target: "2001:db8::1".into(),
        jail: "manual".into(),
        seconds: None,
        reason: "x".into(),
    })
    .await;
    let r = w
        .control(ControlRequest::Unban {
            target: None,
            all: true,
        })
        .await;
    assert_eq!(r["removed"], 1);
    w.stop().await;
}

#[tokio::test]
async fn policy_check_can_be_turned_off() {
    let (store, clock) = new_world();
    let w = start(store, clock, "[bans]\npolicy_check = false\n").await;
    w.sasl_failures("192.0.2.20", 3).await;
    assert!(w.store.ban_get("192.0.2.20/32").await.unwrap().is_some());
    assert!(w.policy("192.0.2.20").await.starts_with("DUNNO"));
    w.stop().await;
}

#[test]
fn config_errors_name_the_jail_and_key() {
    let text = format!(
        "[[jail]]\nname = \"x\"\nfilter = \"no-such-filter\"\nfilter_dir = \"{}\"\nlogpath = [\"/dev/null\"]\n\
         [[jail]]\nname = \"y\"\nfilter = \"postfix\"\nfilter_dir = \"{0}\"\nlogpath = [\"/dev/null\"]\nmaxretry = 0\naction = [\"nope\"]\n\
         ignoreip = [\"192.0.2.300\", \"mx1.example.org\"]\n",
        filter_dir().display()
    );
    let e = config::parse("t.toml", &text, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml:3:") && e.contains("[[jail]] x: filter \"no-such-filter\""),
        "{e}"
    );
    assert!(
        e.contains("[[jail]] y: maxretry = 0 is out of range"),
        "{e}"
    );
    assert!(e.contains("no [[action]] is named \"nope\""), "{e}");
    assert!(
        e.contains("ignoreip: \"192.0.2.300\" is not an IP address, CIDR network or host name"),
        "{e}"
    );
    assert!(
        !e.contains("mx1.example.org"),
        "a host name is accepted: {e}"
    );
}
