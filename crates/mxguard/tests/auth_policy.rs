//! Protocol sessions against the Dovecot auth-policy endpoint of an in-process daemon (fake
//! clock, memory store): every path form and field Dovecot sends, every reply, bad input
//! (malformed JSON, oversized bodies, wrong header, method, command), escalation on fake
//! time, locked accounts, stale-password tolerance, alerts, and bans kept by the embedded
//! store across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use mxguard_engine::account::{AccountRecord, Lock, LockedBy};
use mxguard_engine::auth::BanRecord;
use mxguard_engine::store::Store;
use mxguard_engine::{Clock, FakeClock, UnixTime};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal keep-alive HTTP/1.1 client (raw bytes, so bad requests can be sent too).
struct Http {
    s: TcpStream,
    buf: Vec<u8>,
}

struct Resp {
    status: u16,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
    fn dovecot_status(&self) -> i64 {
        assert_eq!(self.status, 200, "{}", self.body);
        self.json()["status"].as_i64().unwrap()
    }
}

impl Http {
    async fn new(addr: SocketAddr) -> Http {
        Http {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn raw(&mut self, bytes: &[u8]) -> Resp {
        self.s.write_all(bytes).await.unwrap();
        self.read().await
    }

    async fn read(&mut self) -> Resp {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into();
                    self.buf.drain(..end + 4 + len);
                    let status = head.get(9..12).unwrap().parse().unwrap();
                    return Resp { status, body };
                }
            }
            let mut chunk = [0u8; 4096];
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(5), self.s.read(&mut chunk))
                    .await
                    .expect("reply timed out")
                    .unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn post(&mut self, path: &str, headers: &str, body: &str) -> Resp {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dovecot/auth-policy-client\r\n\
             Connection: Keep-Alive\r\nContent-Type: application/json\r\n{headers}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.raw(req.as_bytes()).await
    }

    async fn allow(&mut self, login: &str, ip: &str, pw: &str) -> i64 {
        let b = body(login, ip, pw, None);
        self.post("/?command=allow", "", &b).await.dovecot_status()
    }

    async fn report(&mut self, login: &str, ip: &str, pw: &str, success: bool) {
        let b = body(login, ip, pw, Some(success));
        assert_eq!(
            self.post("/?command=report", "", &b).await.dovecot_status(),
            0
        );
    }
}

/// A body as Dovecot 2.3 sends it (keys sorted, one line).
fn body(login: &str, ip: &str, pw: &str, success: Option<bool>) -> String {
    let extra = match success {
        Some(s) => format!(",\"success\":{s},\"policy_reject\":false"),
        None => String::new(),
    };
    format!(
        "{{\"device_id\":\"\",\"login\":\"{login}\",\"protocol\":\"imap\",\"pwhash\":\"{pw}\",\
         \"remote\":\"{ip}\",\"session_id\":\"xDoVsvdg9L9/AAAB\"{extra},\"tls\":false}}"
    )
}

const CONF: &str = "[auth_policy]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 1024\n";

async fn start(extra: &str) -> (common::TestDaemon, SocketAddr) {
    let d = common::start(&format!("{CONF}{extra}")).await;
    let addr = d.daemon().auth_policy_addr.expect("auth policy bound");
    (d, addr)
}

fn metrics(d: &common::TestDaemon) -> String {
    d.daemon().shared.metrics.encode()
}

#[tokio::test]
async fn every_path_form_and_field_is_understood() {
    let (d, addr) = start("").await;
    let mut c = Http::new(addr).await;
    // Dovecot's default: the URL with `?command=` appended.
    assert_eq!(c.allow("alice", "192.0.2.1", "02ce").await, 0);
    let r = c
        .post(
            "/?command=allow",
            "",
            &body("alice", "192.0.2.1", "02ce", None),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"status": 0, "msg": ""}));
    // wforce's path form, a path prefix, a URL ending in `&`, trailing slash.
    for path in [
        "/command/allow",
        "/policy/?command=allow",
        "/policy?site=a&command=allow",
        "/wforce/command/allow/",
    ] {
        let r = c
            .post(path, "", &body("alice", "192.0.2.1", "02ce", None))
            .await;
        assert_eq!(r.dovecot_status(), 0, "{path}");
    }
    // Report with every field, including 2.4's fail_type and nested attrs.
    let full = r#"{"device_id":"phone-1","fail_type":"credentials","login":"alice","protocol":"smtp","pwhash":"0a1b","remote":"203.0.113.77","session_id":"","success":false,"policy_reject":false,"tls":true,"attrs":{"cos":"gold"}}"#;
    let r = c.post("/command/report", "", full).await;
    assert_eq!(r.dovecot_status(), 0);
    // Missing attributes default; an IPv6 remote works; an unparsable remote is no IP.
    for b in [
        r#"{"login":"bob"}"#,
        r#"{"login":"bob","remote":"2001:db8::1","pwhash":"ffff","tls":false}"#,
        r#"{"login":"bob","remote":"not-an-ip"}"#,
    ] {
        assert_eq!(
            c.post("/?command=allow", "", b).await.dovecot_status(),
            0,
            "{b}"
        );
    }
    let m = metrics(&d);
    assert!(
        m.contains(
            r#"mxguard_auth_policy_requests_total{command="allow",answer="allow",check="none"} 9"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"command="report",answer="failure",check="none"} 1"#),
        "{m}"
    );
    d.stop().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_are_counted_and_never_break_the_server() {
    let (d, addr) = start("").await;
    let mut c = Http::new(addr).await;
    let cases: [(&str, &str, u16); 6] = [
        ("/?command=allow", "{not json", 400),
        ("/?command=allow", "[1,2,3]", 400),
        ("/?command=allow", r#"{"login": 5}"#, 400),
        // A report must say how the login ended.
        (
            "/?command=report",
            r#"{"login":"a","remote":"192.0.2.1"}"#,
            400,
        ),
        ("/?command=frobnicate", "{}", 404),
        ("/", "{}", 404),
    ];
    for (path, b, want) in cases {
        let r = c.post(path, "", b).await;
        assert_eq!(r.status, want, "{path} {b}: {}", r.body);
    }
    // The same keep-alive connection still works.
    assert_eq!(c.allow("alice", "192.0.2.1", "1").await, 0);
    // Wrong method.
    let r = c
        .raw(b"GET /?command=allow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(r.status, 405);
    // Oversized by Content-Length (refused before reading) ...
    let big = format!("{{\"login\":\"{}\"}}", "a".repeat(2000));
    let mut c2 = Http::new(addr).await;
    assert_eq!(c2.post("/?command=allow", "", &big).await.status, 413);
    // ... and oversized while streaming a chunked body.
    let mut c3 = Http::new(addr).await;
    let chunked = format!(
        "POST /?command=allow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    assert_eq!(c3.raw(chunked.as_bytes()).await.status, 413);
    // Garbage that is not HTTP at all closes that connection only.
    let mut g = TcpStream::connect(addr).await.unwrap();
    g.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), g.read_to_end(&mut sink)).await;
    let mut c4 = Http::new(addr).await;
    assert_eq!(c4.allow("alice", "192.0.2.1", "1").await, 0);
    let m = metrics(&d);
    for (reason, n) in [
        ("malformed", 4),
        ("unknown_command", 2),
        ("method", 1),
        ("too_large", 2),
    ] {
        let line = format!("mxguard_auth_policy_errors_total{{reason=\"{reason}\"}} {n}");
        assert!(m.contains(&line), "missing {line} in\n{m}");
    }
    d.stop().await;
}

#[tokio::test]
async fn api_header_is_checked() {
    let (d, addr) = start("api_header = \"X-API-Key: s3cret\"\n").await;
    let mut c = Http::new(addr).await;
    let b = body("alice", "192.0.2.1", "1", None);
    assert_eq!(c.post("/?command=allow", "", &b).await.status, 401);
    assert_eq!(
        c.post("/?command=allow", "X-API-Key: wrong\r\n", &b)
            .await
            .status,
        401
    );
    let ok = c.post("/?command=allow", "x-api-key: s3cret\r\n", &b).await;
    assert_eq!(ok.dovecot_status(), 0);
    assert!(metrics(&d).contains(r#"mxguard_auth_policy_errors_total{reason="unauthorized"} 2"#));
    d.stop().await;
    // Dovecot's bare-value form means X-API-Key.
    let (d, addr) = start("api_header = \"bare\"\n").await;
    let mut c = Http::new(addr).await;
    assert_eq!(
        c.post("/?command=allow", "X-API-Key: bare\r\n", &b)
            .await
            .dovecot_status(),
        0
    );
    d.stop().await;
}

#[tokio::test]
async fn wrong_passwords_escalate_to_tarpit_then_reject_and_expire() {
    let (d, addr) = start("ban_after = 6\ntarpit_after = 2\ntarpit_step = \"2s\"\nban_time = \"10m\"\nwindow = \"10m\"\nreject_text = \"Sorry\"\n").await;
    let mut c = Http::new(addr).await;
    let ip = "198.51.100.9";
    let mut statuses = Vec::new();
    for i in 0..6 {
        let pw = format!("{i:04x}");
        statuses.push(c.allow("victim", ip, &pw).await);
        c.report("victim", ip, &pw, false).await;
    }
    assert_eq!(statuses, [0, 0, 2, 4, 6, 8]);
    // Banned: even the right password (second allow after auth) is refused, with the text.
    let r = c
        .post("/?command=allow", "", &body("victim", ip, "good", None))
        .await;
    assert_eq!(r.json(), serde_json::json!({"status": -1, "msg": "Sorry"}));
    // Clean IPs are unaffected, including for the same login.
    assert_eq!(c.allow("victim", "192.0.2.33", "good").await, 0);
    let bans = d.store().ban_list(10).await.unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].0, "198.51.100.9/32");
    assert!(metrics(&d).contains("mxguard_auth_policy_bans_total 1"));
    // After the ban and two windows the IP starts clean.
    d.advance(1201);
    assert_eq!(c.allow("victim", ip, "good").await, 0);
    d.stop().await;
}

#[tokio::test]
async fn locked_account_is_refused_with_the_right_password() {
    let (d, addr) = start("").await;
    let lock = AccountRecord {
        locked: Some(Lock {
            since: UnixTime(common::T0),
            by: LockedBy::Containment,
            reason: "fan-out".into(),
        }),
        held: Vec::new(),
    };
    d.store()
        .account_put("mallory@example.test", lock)
        .await
        .unwrap();
    let mut c = Http::new(addr).await;
    let r = c
        .post(
            "/?command=allow",
            "",
            &body("Mallory@example.test", "192.0.2.44", "good", None),
        )
        .await;
    assert_eq!(r.dovecot_status(), -1);
    assert!(metrics(&d).contains(r#"answer="reject",check="locked"} 1"#));
    // Unlock: logins work again.
    let open = AccountRecord {
        locked: None,
        held: Vec::new(),
    };
    d.store()
        .account_put("mallory@example.test", open)
        .await
        .unwrap();
    assert_eq!(
        c.allow("mallory@example.test", "192.0.2.44", "good").await,
        0
    );
    d.stop().await;
}

#[tokio::test]
async fn a_device_retrying_a_stale_password_is_not_banned() {
    let (d, addr) = start("ban_after = 5\n").await;
    let mut c = Http::new(addr).await;
    for _ in 0..40 {
        assert_eq!(c.allow("phone", "192.0.2.80", "7a3c").await, 0);
        c.report("phone", "192.0.2.80", "7a3c", false).await;
    }
    assert!(d.store().ban_list(10).await.unwrap().is_empty());
    assert!(metrics(&d).contains(r#"command="report",answer="stale",check="none"} 39"#));
    d.stop().await;
}

#[tokio::test]
async fn nopassword_incident_raises_an_alert() {
    let (d, addr) = start("alert_logins_per_ip = 5\n").await;
    let mut c = Http::new(addr).await;
    for i in 0..8 {
        let login = format!("ghost{i}");
        assert_eq!(c.allow(&login, "203.0.113.200", "0000").await, 0);
        c.report(&login, "203.0.113.200", "0000", true).await;
    }
    let m = metrics(&d);
    assert!(
        m.contains(r#"mxguard_auth_policy_alerts_total{kind="logins_per_ip"} 1"#),
        "{m}"
    );
    d.stop().await;
}

#[tokio::test]
async fn many_requests_on_one_keep_alive_connection() {
    let (d, addr) = start("").await;
    let mut c = Http::new(addr).await;
    for i in 0..500 {
        let ip = format!("10.{}.{}.1", i / 256, i % 256);
        assert_eq!(c.allow("user", &ip, "aaaa").await, 0);
    }
    d.stop().await;
}

#[tokio::test]
async fn config_errors_name_their_place() {
    let text = "[auth_policy]\nlisten = \"nowhere\"\nexempt = [\"10.0.0.0/8\", \"bogus\"]\nanswer_timeout = \"3s\"\nban_after = -1\n";
    let e = mxguard::config::parse("t.toml", text, None)
        .unwrap_err()
        .to_string();
    for want in [
        "t.toml:2:10: [auth_policy] listen",
        "t.toml:3:",
        "\"bogus\" is not an IP address",
        "t.toml:4:",
        "below Dovecot's 2s",
        "t.toml:5:",
        "ban_after = -1 is out of range",
    ] {
        assert!(e.contains(want), "{want:?} not in {e}");
    }
    let e = mxguard::config::parse("t.toml", "[auth_policy]\nlisen = \"x\"\n", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml:2:1") && e.contains("unknown field"),
        "{e}"
    );
    let ok = mxguard::config::parse("t.toml", "[auth_policy]\n", None).unwrap();
    let a = ok.auth_policy.unwrap();
    assert_eq!(a.listen.to_string(), "127.0.0.1:10041");
    assert!(
        mxguard::config::parse("t.toml", "", None)
            .unwrap()
            .auth_policy
            .is_none()
    );
}

#[test]
fn bans_survive_an_embedded_store_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(FakeClock::new(UnixTime(common::T0)));
    let s = mxguard::store::EmbeddedStore::open(dir.path(), clock.clone()).unwrap();
    let rec = BanRecord {
        since: UnixTime(common::T0),
        until: UnixTime(common::T0 + 3600),
        count: 2,
        jail: "auth".into(),
        reason: "auth: 10 failed logins within 3600s".into(),
    };
    tokio_block(s.ban_put("192.0.2.7/32", rec.clone())).unwrap();
    s.close().unwrap();
    let s = mxguard::store::EmbeddedStore::open(dir.path(), clock).unwrap();
    let got = tokio_block(s.ban_get("192.0.2.7/32")).unwrap();
    assert_eq!(got, Some(rec));
    assert!(tokio_block(s.ban_remove("192.0.2.7/32")).unwrap());
    assert!(tokio_block(s.ban_list(10)).unwrap().is_empty());
}

fn tokio_block<T>(f: mxguard_engine::StoreFuture<'_, T>) -> Result<T, mxguard_engine::StoreError> {
    mxguard_engine::dns::block_on(f)
}

#[test]
fn shipped_examples_agree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cfg = mxguard::config::load(Some(&root.join("examples/mxguard.toml"))).unwrap();
    let a = cfg
        .auth_policy
        .expect("examples/mxguard.toml has [auth_policy]");
    let d = mxguard_engine::auth::AuthSettings::default();
    assert_eq!(a.listen.to_string(), "127.0.0.1:10041");
    assert_eq!(a.api_header, Some(("x-api-key".into(), "change-me".into())));
    assert_eq!(
        (
            a.settings.window,
            a.settings.tarpit_after,
            a.settings.ban_after
        ),
        (d.window, d.tarpit_after, d.ban_after)
    );
    assert_eq!(
        (a.settings.ban_time, a.settings.ban_max),
        (d.ban_time, d.ban_max)
    );
    // The Dovecot snippet points at that listener with that header, and sets the nonce.
    let snippet = std::fs::read_to_string(root.join("examples/dovecot-auth-policy.conf")).unwrap();
    let setting = |k: &str| {
        snippet
            .lines()
            .find_map(|l| l.strip_prefix(k)?.trim_start().strip_prefix('='))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(
        setting("auth_policy_server_url").as_deref(),
        Some("http://127.0.0.1:10041/")
    );
    assert_eq!(
        setting("auth_policy_server_api_header").as_deref(),
        Some("X-API-Key: change-me")
    );
    for k in [
        "auth_policy_hash_nonce",
        "auth_policy_hash_truncate",
        "auth_policy_check_before_auth",
        "auth_policy_check_after_auth",
        "auth_policy_report_after_auth",
        "auth_policy_reject_on_fail",
    ] {
        assert!(setting(k).is_some(), "{k} missing from the snippet");
    }
}

#[tokio::test]
async fn reload_applies_new_settings_and_keeps_counters() {
    let (d, addr) = start("tarpit_after = 2\nreject_text = \"Old\"\n").await;
    let mut c = Http::new(addr).await;
    for pw in ["0001", "0002"] {
        c.report("ruth", "192.0.2.90", pw, false).await;
    }
    assert_eq!(c.allow("ruth", "192.0.2.90", "x").await, 1);
    // New text and a higher tarpit step; same listener (port 0 would rebind: keep the text).
    let text = std::fs::read_to_string(&d.config_path).unwrap().replace(
        "reject_text = \"Old\"",
        "reject_text = \"New\"\ntarpit_step = \"5s\"\nexempt = [\"198.51.100.0/24\"]",
    );
    std::fs::write(&d.config_path, text).unwrap();
    d.daemon().shared.reload().unwrap();
    // The two failures counted before the reload still count, with the new step.
    assert_eq!(c.allow("ruth", "192.0.2.90", "x").await, 5);
    // Exempt after reload: an address with a ban is let in (the documented unban path).
    let ban = BanRecord {
        since: UnixTime(common::T0),
        until: UnixTime(common::T0 + 3600),
        count: 1,
        jail: "manual".into(),
        reason: "test".into(),
    };
    d.store()
        .ban_put("198.51.100.5/32", ban.clone())
        .await
        .unwrap();
    d.store().ban_put("192.0.2.91/32", ban).await.unwrap();
    assert_eq!(c.allow("u", "198.51.100.5", "x").await, 0);
    let r = c
        .post("/?command=allow", "", &body("u", "192.0.2.91", "x", None))
        .await;
    assert_eq!(r.json(), serde_json::json!({"status": -1, "msg": "New"}));
    d.stop().await;
}
