//! Metrics of every subsystem after a scripted scenario (issue 11: "every metric named in the
//! docs is present in /metrics"), the Grafana dashboard in examples/, and `mxguard status`.
//!
//! One daemon on 127.0.0.1:0 with a fake clock, a memory store and the engine's
//! `FakeResolver`: greylisting, two limits, SPF, a DNSBL, a jail following a temp log file,
//! the auth-policy endpoint and the metrics listener. Traffic goes through each of them,
//! then `/metrics` is scraped over HTTP. A second daemon with a Redis store that cannot be
//! reached adds the `mxguard_store_redis_*` family (it exists only with that backend).
//! The checks: every `mxguard_*` metric named in docs/*.md is exposed, every exposed metric
//! is in docs/metrics.md, values moved, and every metric the dashboard queries is documented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, T0, http_get};
use mxguard::config;
use mxguard::control::{ControlRequest, request};
use mxguard::service::{Daemon, StartOptions};
use mxguard_engine::dns::{FakeResolver, Txt, ZoneRecord};
use mxguard_engine::store::MemoryStore;
use mxguard_engine::{FakeClock, UnixTime};
use mxguard_proto::{PolicyRequest, ProtocolState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn filter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/fail2ban/config")
}

/// Names in docs that are not metrics: crate names, a JSON key of `mxguard audit --json`,
/// and prefixes written as `mxguard_auth_policy_*`.
fn not_a_metric(name: &str) -> bool {
    [
        "mxguard_engine",
        "mxguard_filter",
        "mxguard_proto",
        "mxguard_version",
    ]
    .contains(&name)
        || name.ends_with('_')
}

/// Every `mxguard_[a-z0-9_]+` word of `text`.
fn metric_words(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\bmxguard_[a-z0-9_]+").unwrap();
    re.find_iter(text)
        .map(|m| m.as_str().to_owned())
        .filter(|n| !not_a_metric(n))
        .collect()
}

/// A scrape: for each `# TYPE` family, the sample names it exposes, and the canonical
/// name (the one docs use: `_total` for counters).
struct Scrape {
    text: String,
    /// (canonical name, every sample name of the family)
    families: Vec<(String, Vec<String>)>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut families = Vec::new();
        for l in text.lines() {
            let Some(rest) = l.strip_prefix("# TYPE ") else {
                continue;
            };
            let (name, kind) = rest.split_once(' ').unwrap();
            let (canonical, samples) = match kind {
                "counter" => (
                    format!("{name}_total"),
                    vec![format!("{name}_total"), format!("{name}_created")],
                ),
                "histogram" => (
                    name.to_owned(),
                    ["", "_bucket", "_sum", "_count"]
                        .iter()
                        .map(|s| format!("{name}{s}"))
                        .collect(),
                ),
                "info" => (format!("{name}_info"), vec![format!("{name}_info")]),
                _ => (name.to_owned(), vec![name.to_owned()]),
            };
            families.push((canonical, samples));
        }
        Scrape { text, families }
    }

    fn exposes(&self, name: &str) -> bool {
        self.families
            .iter()
            .any(|(_, s)| s.iter().any(|x| x == name))
    }

    /// The sum of the samples whose line starts with `prefix`.
    fn sum(&self, prefix: &str) -> f64 {
        self.text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The value of the sample line starting with `series` (name and labels as printed).
    fn value(&self, series: &str) -> f64 {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in\n{}", self.text))
    }
}

const LIMITS: &str = r#"
[[limit]]
name = "per-user"
key = ["sasl_username"]
count = "messages"
rate = ["1/1h"]
action = "DEFER quota %n reached, try again in %s seconds"

[[limit]]
name = "per-network"
key = ["client_prefix"]
count = "messages"
rate = ["1000/1m"]

[lists]
allow = ["sasl:alice"]
"#;

fn zone() -> FakeResolver {
    let mut z = FakeResolver::new();
    z.add(
        "pass.example",
        ZoneRecord::Txt(Txt::single("v=spf1 ip4:192.0.2.0/24 -all")),
    );
    z.add_name("mail.client.example");
    // A list whose server fails: a CNAME loop is a SERVFAIL.
    for ip in ["1.2.0.192", "9.2.0.192"] {
        let name = format!("{ip}.down.example");
        z.add(&name, ZoneRecord::Cname(name.clone()));
    }
    z.add(
        "9.2.0.192.bl.example",
        ZoneRecord::A("127.0.0.2".parse().unwrap()),
    );
    z
}

struct Running {
    daemon: Daemon,
    clock: FakeClock,
    dir: tempfile::TempDir,
}

async fn start(extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, "").unwrap();
    let text = format!(
        "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n[control]\nsocket = \"control.sock\"\n\
         [store]\ntype = \"memory\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [auth_policy]\nlisten = \"127.0.0.1:0\"\nalert_logins_per_ip = 2\n\
         [greylist]\ndelay = \"5m\"\n[spf]\n\
         [dnsbl]\nsites = [\"bl.example=127.0.0.[2..11]*3\", \"down.example\"]\nthreshold = 3\n\
         [[action]]\nname = \"broken\"\ntype = \"command\"\nban = [\"false\"]\nunban = [\"true\"]\n\
         [bans]\npoll_interval = \"10ms\"\n\
         [[jail]]\nname = \"postfix-sasl\"\nfilter = \"postfix[mode=auth]\"\nfilter_dir = \"{}\"\n\
         logpath = [\"{}\"]\naction = [\"broken\"]\nmaxretry = 3\nfindtime = \"10m\"\nbantime = \"1h\"\n{LIMITS}{extra}",
        filter_dir().display(),
        log.display(),
    );
    let path = dir.path().join("mxguard.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = config::load(Some(&path)).unwrap_or_else(|e| panic!("config: {e}"));
    let clock = FakeClock::new(UnixTime(T0));
    let daemon = Daemon::start(
        cfg,
        StartOptions {
            config_path: Some(path),
            clock: Some(Arc::new(clock.clone())),
            store: Some(Arc::new(MemoryStore::new())),
            resolver: Some(Arc::new(zone())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Running { daemon, clock, dir }
}

fn rcpt(ip: &str, helo: &str, sender: &str, instance: &str) -> PolicyRequest {
    let mut r = PolicyRequest::rcpt(ip.parse::<IpAddr>().unwrap(), sender, "bob@rcpt.example");
    r.helo_name = helo.into();
    r.instance = instance.into();
    r
}

fn sasl(stage: ProtocolState, user: &str, instance: &str) -> PolicyRequest {
    let mut r = rcpt("198.51.100.7", "client.example", "a@pass.example", instance);
    r.protocol_state = stage;
    r.sasl_username = user.into();
    r.queue_id = format!("Q{instance}");
    r.recipient_count = 1;
    r
}

/// One HTTP/1.0 POST; the status line and body.
async fn post(addr: SocketAddr, path: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn auth_body(login: &str, ip: &str, success: Option<bool>) -> String {
    let extra = success.map_or(String::new(), |s| {
        format!(",\"success\":{s},\"policy_reject\":false")
    });
    format!(
        "{{\"device_id\":\"\",\"login\":\"{login}\",\"protocol\":\"imap\",\"pwhash\":\"0a1b\",\
         \"remote\":\"{ip}\",\"session_id\":\"s1\"{extra},\"tls\":false}}"
    )
}

async fn control(d: &Daemon, req: ControlRequest) -> serde_json::Value {
    let r = request(&d.control_socket, &req).await.unwrap();
    assert!(r.ok, "{r:?}");
    r.data
}

/// A policy connection to `d`'s first listener.
async fn policy_client(d: &Daemon) -> Client<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(d.policy_addrs[0]).await;
    Client::new(s.unwrap())
}

/// Drives every subsystem once (module docs).
async fn scenario(r: &Running) {
    let d = &r.daemon;
    let mut c = policy_client(d).await;
    // DNSBL: listed client rejected.
    let listed = c
        .ask(&rcpt(
            "192.0.2.9",
            "mail.client.example",
            "a@pass.example",
            "l",
        ))
        .await;
    assert!(listed.starts_with("550 "), "{listed}");
    // SPF pass, greylisted, then passed after the delay.
    let g = rcpt("192.0.2.1", "mail.client.example", "a@pass.example", "g1");
    assert!(c.ask(&g).await.starts_with("DEFER_IF_PERMIT "));
    r.clock.advance(Duration::from_secs(301));
    let g = rcpt("192.0.2.1", "mail.client.example", "a@pass.example", "g2");
    let passed = c.ask(&g).await;
    assert!(passed.starts_with("PREPEND Received-SPF: Pass"), "{passed}");
    // Limits: one message per hour for alice; the second is refused by "per-user".
    assert_eq!(
        c.ask(&sasl(ProtocolState::Rcpt, "alice", "m1")).await,
        "DUNNO"
    );
    assert_eq!(
        c.ask(&sasl(ProtocolState::EndOfMessage, "alice", "m1"))
            .await,
        "DUNNO"
    );
    let refused = c.ask(&sasl(ProtocolState::Rcpt, "alice", "m2")).await;
    assert!(
        refused.starts_with("DEFER quota per-user reached"),
        "{refused}"
    );
    // A locked account: its mail is held and its queue id recorded.
    control(
        d,
        ControlRequest::AccountLock {
            user: "carol".into(),
            reason: "test".into(),
        },
    )
    .await;
    assert!(
        c.ask(&sasl(ProtocolState::Rcpt, "carol", "h1"))
            .await
            .starts_with("HOLD ")
    );
    assert!(
        c.ask(&sasl(ProtocolState::EndOfMessage, "carol", "h1"))
            .await
            .starts_with("HOLD ")
    );
    // A malformed request (no client_address) gets default_action.
    c.send_raw(b"request=smtpd_access_policy\nprotocol_state=RCPT\n\n")
        .await;
    assert_eq!(c.reply().await.as_deref(), Some("DUNNO"));
    // Auth policy: an allow, a failed-login report, a malformed body.
    let auth = d.auth_policy_addr.unwrap();
    let a = post(
        auth,
        "/?command=allow",
        &auth_body("dave", "203.0.113.5", None),
    )
    .await;
    assert!(
        a.starts_with("HTTP/1.0 200") || a.starts_with("HTTP/1.1 200"),
        "{a}"
    );
    let body = auth_body("dave", "203.0.113.5", Some(false));
    let rep = post(auth, "/?command=report", &body).await;
    assert!(rep.contains(" 200 "), "{rep}");
    // One IP logging in as three logins: the logins-per-IP alert (seed incident 1).
    for login in ["erin", "frank", "gina"] {
        let ok = post(
            auth,
            "/?command=report",
            &auth_body(login, "203.0.113.9", Some(true)),
        )
        .await;
        assert!(ok.contains(" 200 "), "{ok}");
    }
    let bad = post(auth, "/?command=allow", "{not json").await;
    assert!(bad.contains(" 400 "), "{bad}");
    // The jail: three SASL failures in the followed log file ban the client.
    let stamp = jiff::Timestamp::from_second(mxguard_engine::Clock::now(&r.clock).0 as i64)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut lines = String::new();
    for _ in 0..3 {
        lines.push_str(&format!(
            "{stamp} mail postfix/submission/smtpd[4242]: warning: unknown[203.0.113.77]: \
             SASL LOGIN authentication failed: UGFzc3dvcmQ6\n"
        ));
    }
    lines.push_str(&format!(
        "{stamp} mail postfix/smtpd[1]: connect from x[192.0.2.3]\n"
    ));
    std::fs::write(r.dir.path().join("mail.log"), lines).unwrap();
    // The follower polls every 10 ms (real time): wait for the ban, bounded.
    let action_failed = || {
        d.shared
            .metrics
            .jails
            .action_errors
            .get(&mxguard::jails::ActionLabel {
                action: "broken".into(),
            })
            .map_or(0, |c| c.get())
    };
    let banned = async {
        while d.shared.bans.active_by_jail().get("postfix-sasl").copied() != Some(1)
            || action_failed() == 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), banned)
        .await
        .expect("the jail banned within 20 s");
    // A reload, counted by result.
    control(d, ControlRequest::Reload).await;
}

fn docs_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            names.extend(metric_words(&std::fs::read_to_string(&p).unwrap()));
        }
    }
    names
}

fn catalogue() -> BTreeSet<String> {
    metric_words(&std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap())
}

#[tokio::test]
async fn every_documented_metric_is_exposed_and_every_exposed_one_documented() {
    let r = start("").await;
    scenario(&r).await;
    let scrape = Scrape::parse(http_get(r.daemon.metrics_addr.unwrap(), "/metrics").await);
    assert!(scrape.text.starts_with("HTTP/1."), "{}", scrape.text);

    // Values moved in every subsystem.
    let v = |s: &str| scrape.value(s);
    assert_eq!(
        v(r#"mxguard_policy_requests_total{action="reply",check="dnsbl"}"#),
        1.0
    );
    assert_eq!(
        v(r#"mxguard_greylist_decisions_total{result="deferred"}"#),
        1.0
    );
    assert_eq!(
        v(r#"mxguard_greylist_decisions_total{result="passed"}"#),
        1.0
    );
    assert_eq!(v(r#"mxguard_limit_breaches_total{limit="per-user"}"#), 1.0);
    assert_eq!(v(r#"mxguard_dnsbl_hits_total{list="bl.example"}"#), 1.0);
    assert_eq!(v(r#"mxguard_dnsbl_checks_total{verdict="listed"}"#), 1.0);
    assert!(v(r#"mxguard_spf_results_total{identity="mail_from",result="pass"}"#) >= 1.0);
    assert!(v(r#"mxguard_dns_queries_total{type="a",result="records"}"#) >= 1.0);
    assert!(v(r#"mxguard_dns_lookup_duration_seconds_count{type="txt"}"#) >= 1.0);
    assert_eq!(v(r#"mxguard_greylist_entries{kind="triplet"}"#), 1.0);
    assert_eq!(v("mxguard_account_locks_active"), 1.0);
    assert_eq!(v("mxguard_account_held_messages"), 1.0);
    assert_eq!(
        v(r#"mxguard_policy_requests_total{action="hold",check="account_locked"}"#),
        2.0
    );
    assert_eq!(
        v(r#"mxguard_policy_malformed_total{reason="missing_client_address"}"#),
        1.0
    );
    assert_eq!(
        scrape.sum(r#"mxguard_auth_policy_requests_total{command="allow",answer="allow","#),
        1.0
    );
    assert_eq!(
        v(r#"mxguard_auth_policy_errors_total{reason="malformed"}"#),
        1.0
    );
    assert_eq!(v(r#"mxguard_bans_total{jail="postfix-sasl"}"#), 1.0);
    assert_eq!(
        v(r#"mxguard_ban_action_errors_total{action="broken"}"#),
        1.0
    );
    // Asked for each of the three unauthenticated RCPTs (DNSBL scores are not memoised).
    assert_eq!(
        v(r#"mxguard_dnsbl_lookup_failures_total{list="down.example"}"#),
        3.0
    );
    assert!(v(r#"mxguard_auth_policy_alerts_total{kind="logins_per_ip"}"#) >= 1.0);
    assert_eq!(v(r#"mxguard_auth_policy_tracked_keys{kind="login"}"#), 0.0);
    assert_eq!(v(r#"mxguard_bans_active{jail="postfix-sasl"}"#), 1.0);
    assert_eq!(
        v(r#"mxguard_log_lines_matched_total{jail="postfix-sasl"}"#),
        3.0
    );
    assert_eq!(v("mxguard_log_lines_read_total"), 4.0);
    assert!(
        v(r#"mxguard_store_operation_duration_seconds_count{operation="greylist_touch"}"#) >= 2.0
    );
    assert!(v(r#"mxguard_store_operation_duration_seconds_count{operation="read_many"}"#) >= 1.0);
    assert_eq!(v(r#"mxguard_config_reloads_total{result="ok"}"#), 1.0);
    assert!(v("mxguard_policy_request_duration_seconds_count") >= 8.0);
    assert_eq!(
        v(&format!(
            "mxguard_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );

    // The Redis family: a daemon whose Redis cannot be reached.
    let redis = redis_scrape().await;

    let documented = docs_metrics();
    let catalogue = catalogue();
    let missing: Vec<_> = documented
        .iter()
        .filter(|n| !scrape.exposes(n) && !redis.exposes(n))
        .collect();
    assert!(
        missing.is_empty(),
        "named in docs/*.md but not exposed: {missing:?}"
    );
    for s in [&scrape, &redis] {
        let undocumented: Vec<_> = s
            .families
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !catalogue.contains(*n))
            .collect();
        assert!(
            undocumented.is_empty(),
            "exposed but not in docs/metrics.md: {undocumented:?}"
        );
    }
    // The catalogue names nothing that does not exist.
    let stale: Vec<_> = catalogue
        .iter()
        .filter(|n| !scrape.exposes(n) && !redis.exposes(n))
        .collect();
    assert!(
        stale.is_empty(),
        "in docs/metrics.md but not exposed: {stale:?}"
    );

    status_reports_the_scenario(&r.daemon).await;
    r.daemon.shutdown();
    r.daemon.wait().await.unwrap();
}

/// A scrape of a daemon on a Redis store nobody listens on (fails open; `up` is 0).
async fn redis_scrape() -> Scrape {
    let dir = tempfile::tempdir().unwrap();
    let text = "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n[control]\nsocket = \"control.sock\"\n\
         [store]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:1/0\"\ntimeout = \"200ms\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n";
    let path = dir.path().join("mxguard.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = config::load(Some(&path)).unwrap_or_else(|e| panic!("config: {e}"));
    let d = Daemon::start(
        cfg,
        StartOptions {
            config_path: Some(path),
            clock: Some(Arc::new(FakeClock::new(UnixTime(T0)))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut c = policy_client(&d).await;
    let a = c
        .ask(&rcpt(
            "192.0.2.1",
            "mail.client.example",
            "a@x.example",
            "r1",
        ))
        .await;
    assert_eq!(a, "DUNNO", "fail-open answer");
    let s = Scrape::parse(http_get(d.metrics_addr.unwrap(), "/metrics").await);
    assert_eq!(s.value("mxguard_store_redis_up"), 0.0);
    assert!(s.value("mxguard_store_errors_total") >= 1.0);
    d.shutdown();
    d.wait().await.unwrap();
    s
}

/// `mxguard status --json` keys, old and new, with the scenario's counts.
async fn status_reports_the_scenario(d: &Daemon) {
    let s = control(d, ControlRequest::Status).await;
    for key in [
        "version",
        "uptime_seconds",
        "started_at",
        "config",
        "policy_listen",
        "listeners",
        "default_action",
        "greylist_enabled",
        "store",
        "store_healthy",
        "triplets",
        "clients",
        "store_error",
        "connections_open",
        "store_errors_total",
        "last_reload",
        "jails",
        "bans_active",
        "log_lines_read",
        "counters",
    ] {
        assert!(s.get(key).is_some(), "status lacks {key:?}: {s}");
    }
    let l = &s["listeners"];
    assert_eq!(l["policy"][0], format!("inet:{}", d.policy_addrs[0]));
    assert_eq!(l["auth_policy"], d.auth_policy_addr.unwrap().to_string());
    assert_eq!(l["metrics"], d.metrics_addr.unwrap().to_string());
    assert!(
        l["control_socket"]
            .as_str()
            .unwrap()
            .ends_with("control.sock")
    );
    assert_eq!(s["store_healthy"], true);
    let c = &s["counters"];
    assert_eq!(c["policy_requests"]["defer_if_permit"], 1);
    assert_eq!(c["policy_requests"]["hold"], 2);
    assert_eq!(c["holds"], 2);
    assert_eq!(c["auth_policy"]["allow"]["allow"], 1);
    assert_eq!(c["auth_policy"]["report"]["failure"], 1);
    assert_eq!(c["bans_by_jail"]["postfix-sasl"], 1);
    assert_eq!(c["bans"], 1);
    let j = &s["jails"][0];
    assert_eq!(
        (&j["name"], &j["bans_active"], &j["bans_total"]),
        (&"postfix-sasl".into(), &1.into(), &1.into())
    );
    assert_eq!(j["failures_total"], 3);
    // The text form has every section.
    let text = mxguard::cli::status::text::render(&s);
    for section in ["\nListeners\n", "\nStore\n", "\nSince start\n", "\nJails\n"] {
        assert!(text.contains(section), "{text}");
    }
}

#[test]
fn the_grafana_dashboard_queries_only_documented_metrics() {
    let path = repo().join("examples/grafana-dashboard.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS");
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let catalogue = catalogue();
    let mut queried = BTreeSet::new();
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            assert!(!expr.is_empty(), "panel {} has an empty query", p["title"]);
            for m in metric_words(expr) {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| m.strip_suffix(s).filter(|b| catalogue.contains(*b)))
                    .unwrap_or(&m)
                    .to_owned();
                queried.insert(base);
            }
        }
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {}",
                p["title"]
            );
        }
    }
    let undocumented: Vec<_> = queried.iter().filter(|m| !catalogue.contains(*m)).collect();
    assert!(
        undocumented.is_empty(),
        "dashboard queries undocumented metrics: {undocumented:?}"
    );
    for needed in [
        "mxguard_policy_requests_total",
        "mxguard_policy_request_duration_seconds",
        "mxguard_greylist_entries",
        "mxguard_limit_breaches_total",
        "mxguard_bans_active",
        "mxguard_auth_policy_requests_total",
        "mxguard_log_lines_read_total",
        "mxguard_store_operation_errors_total",
        "mxguard_dns_lookup_duration_seconds",
        "mxguard_dns_cache_hits_total",
    ] {
        assert!(queried.contains(needed), "no panel queries {needed}");
    }
}

/// Answers every A query for `cached.test.` with 192.0.2.1 (TTL 300) on 127.0.0.1:<free>,
/// counting the queries it receives.
async fn one_record_dns() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use hickory_resolver::proto::op::{Message, OpCode};
    use hickory_resolver::proto::rr::rdata::A;
    use hickory_resolver::proto::rr::{RData, Record};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            reply.metadata.authoritative = true;
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.add_query(q.clone());
            let a = RData::A(A("192.0.2.1".parse().unwrap()));
            reply.add_answer(Record::from_rdata(q.name().clone(), 300, a));
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    (addr, count)
}

/// The DNS cache counters come from hickory's own cache: a repeated lookup is a hit and
/// sends nothing to the server.
#[tokio::test]
async fn dns_cache_hits_and_misses_come_from_hickory() {
    use mxguard::output::metrics::Metrics;
    use mxguard::output::metrics::dns::InstrumentedResolver;
    use mxguard_engine::dns::Resolver;
    let metrics = Metrics::new(); // installs the bridge before the resolver exists
    let (addr, count) = one_record_dns().await;
    let hickory = mxguard::dns::HickoryResolver::new(&mxguard::dns::DnsSettings {
        servers: vec![addr],
        ..Default::default()
    })
    .unwrap();
    let r = InstrumentedResolver::new(Arc::new(hickory), metrics.dns.clone());
    let (hits0, misses0) = mxguard::output::metrics::dns::cache::totals();
    for _ in 0..3 {
        assert!(matches!(
            r.a("cached.test").await,
            Ok(mxguard_engine::dns::Lookup::Records(_))
        ));
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (hits, misses) = mxguard::output::metrics::dns::cache::totals();
    // Other tests of this binary use the fake resolver, not hickory: the deltas are ours.
    assert_eq!((hits - hits0, misses - misses0), (2, 1));
    let s = Scrape::parse(metrics.encode());
    assert!(s.value("mxguard_dns_cache_hits_total") >= 2.0);
    assert!(s.value("mxguard_dns_cache_misses_total") >= 1.0);
    assert_eq!(
        s.value(r#"mxguard_dns_queries_total{type="a",result="records"}"#),
        3.0
    );
}
