//! Scripted policy sessions for rate limits, quotas and account containment, against the
//! daemon on 127.0.0.1:0 with a fake clock and a memory store (docs/limits.md): quotas over a
//! day, charging at END-OF-MESSAGE with recipient_count, rejected mail not charged,
//! overrides, HOLD on breach, containment lock and unlock through the control socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::{Client, TestDaemon, start};
use mxguard::control::{ControlReply, ControlRequest, request};
use mxguard_proto::{PolicyRequest, ProtocolState};
use tokio::net::TcpStream;

const NO_GREYLIST: &str = "[greylist]\nenabled = false\n";

fn req(stage: ProtocolState, user: &str, ip: &str, sender: &str, rcpt: &str) -> PolicyRequest {
    let mut r = PolicyRequest::rcpt(ip.parse::<IpAddr>().unwrap(), sender, rcpt);
    r.protocol_state = stage;
    r.sasl_username = user.to_owned();
    r
}

/// One message: RCPTs then END-OF-MESSAGE (recipient empty when several, as Postfix does).
/// Returns the RCPT replies and the END-OF-MESSAGE reply.
async fn message(
    c: &mut Client<TcpStream>,
    user: &str,
    instance: &str,
    rcpts: &[&str],
    queue_id: &str,
) -> (Vec<String>, String) {
    let mut replies = Vec::new();
    let mut accepted = 0;
    for r in rcpts {
        let mut q = req(ProtocolState::Rcpt, user, "192.0.2.10", "alice@ex.org", r);
        q.instance = instance.to_owned();
        q.size = 1000;
        let a = c.ask(&q).await;
        if a == "DUNNO" || a.starts_with("HOLD") {
            accepted += 1;
        }
        replies.push(a);
    }
    if accepted == 0 {
        // Postfix never gets to DATA without a recipient.
        return (replies, String::new());
    }
    let only = if accepted == 1 { rcpts[0] } else { "" };
    let mut q = req(
        ProtocolState::EndOfMessage,
        user,
        "192.0.2.10",
        "alice@ex.org",
        only,
    );
    q.instance = instance.to_owned();
    q.recipient_count = accepted;
    q.size = 2048;
    q.queue_id = queue_id.to_owned();
    let eom = c.ask(&q).await;
    (replies, eom)
}

async fn sent(c: &mut Client<TcpStream>, user: &str, n: usize) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let (r, _) = message(c, user, &format!("{user}{i}"), &["x@d.test"], "Q").await;
        if r[0] == "DUNNO" {
            ok += 1;
        }
    }
    ok
}

async fn connect(c: &mut Client<TcpStream>, ip: &str) -> String {
    c.ask(&req(ProtocolState::Connect, "", ip, "", "")).await
}

async fn control(d: &TestDaemon, r: ControlRequest) -> ControlReply {
    request(&d.daemon().control_socket, &r).await.unwrap()
}

#[tokio::test]
async fn quota_per_user_over_a_day_with_a_fake_clock() {
    let d = start(&format!(
        "{NO_GREYLIST}[[limit]]\nname = \"daily\"\nkey = [\"sasl_username\"]\ncount = \"messages\"\n\
         rate = [\"3/1d\"]\naction = \"DEFER quota %n reached, retry in %s seconds\"\n"
    ))
    .await;
    let mut c = d.connect().await;
    for i in 0..3 {
        let (r, eom) = message(&mut c, "alice", &format!("m{i}"), &["x@dest.test"], "Q").await;
        assert_eq!(r, vec!["DUNNO"], "message {i}");
        assert_eq!(eom, "DUNNO");
    }
    let (r, _) = message(&mut c, "alice", "m3", &["x@dest.test"], "Q").await;
    // 3 per day: one message per 28800 s; all three were sent at T0.
    assert_eq!(r, vec!["DEFER quota daily reached, retry in 28800 seconds"]);
    // Another user and unauthenticated mail have their own (or no) quota.
    let (r, _) = message(&mut c, "bob", "b0", &["x@dest.test"], "Q").await;
    assert_eq!(r, vec!["DUNNO"]);
    let (r, _) = message(&mut c, "", "u0", &["x@dest.test"], "Q").await;
    assert_eq!(r, vec!["DUNNO"]);
    d.advance(28_799);
    let (r, _) = message(&mut c, "alice", "m4", &["x@dest.test"], "Q").await;
    assert!(r[0].starts_with("DEFER"), "{r:?}");
    d.advance(1);
    let (r, eom) = message(&mut c, "Alice", "m5", &["x@dest.test"], "Q").await;
    assert_eq!((r[0].as_str(), eom.as_str()), ("DUNNO", "DUNNO"));
    d.stop().await;
}

#[tokio::test]
async fn recipients_charged_at_end_of_message_with_recipient_count() {
    let d = start(&format!(
        "{NO_GREYLIST}[[limit]]\nname = \"rcpts\"\nkey = [\"sasl_username\"]\ncount = \"recipients\"\n\
         rate = [\"5/1h\"]\n"
    ))
    .await;
    let mut c = d.connect().await;
    // Three RCPTs, but bob+a and bob+b are one mailbox (plus extensions stripped): two
    // recipients are charged, although Postfix says recipient_count=3.
    let (r, eom) = message(
        &mut c,
        "alice",
        "m1",
        &["bob+a@dest.test", "bob+b@dest.test", "carol@dest.test"],
        "Q1",
    )
    .await;
    assert_eq!(r, vec!["DUNNO"; 3]);
    assert_eq!(eom, "DUNNO");
    // 2 charged, 3 left: a 4-recipient message is refused at its 4th RCPT (checked with the
    // message's cost so far), the first three pass.
    let (r, _) = message(
        &mut c,
        "alice",
        "m2",
        &["a@d.test", "b@d.test", "c@d.test", "e@d.test"],
        "Q2",
    )
    .await;
    assert_eq!(&r[..3], &["DUNNO", "DUNNO", "DUNNO"]);
    assert!(r[3].starts_with("DEFER rate limit rcpts exceeded"), "{r:?}");
    // Message 2 was charged 3 (its accepted recipients): nothing left now.
    let (r, _) = message(&mut c, "alice", "m3", &["z@d.test"], "Q3").await;
    assert!(r[0].starts_with("DEFER"), "{r:?}");
    // 5/1h = one recipient per 720 s.
    d.advance(720);
    let (r, _) = message(&mut c, "alice", "m4", &["z@d.test"], "Q4").await;
    assert_eq!(r, vec!["DUNNO"]);
    d.stop().await;
}

#[tokio::test]
async fn rejected_and_aborted_mail_is_not_charged() {
    let d = start(&format!(
        "{NO_GREYLIST}[[limit]]\nname = \"one\"\nkey = [\"sasl_username\"]\nrate = [\"1/1h\"]\n"
    ))
    .await;
    let mut c = d.connect().await;
    // RCPTs accepted by mxguard, but the session ends before END-OF-MESSAGE (rejected later
    // by Postfix, or aborted by the client): nothing is charged.
    for i in 0..5 {
        let mut q = req(
            ProtocolState::Rcpt,
            "alice",
            "192.0.2.10",
            "alice@ex.org",
            "x@d.test",
        );
        q.instance = format!("aborted{i}");
        assert_eq!(c.ask(&q).await, "DUNNO");
    }
    let (r, eom) = message(&mut c, "alice", "real", &["x@d.test"], "Q").await;
    assert_eq!((r[0].as_str(), eom.as_str()), ("DUNNO", "DUNNO"));
    let (r, _) = message(&mut c, "alice", "next", &["x@d.test"], "Q").await;
    assert!(r[0].starts_with("DEFER"), "{r:?}");
    d.stop().await;
}

#[tokio::test]
async fn per_key_overrides_inline_and_from_a_file() {
    let d = common::start_with(
        &format!(
            "{NO_GREYLIST}[[limit]]\nname = \"u\"\nkey = [\"sasl_username\"]\nrate = [\"1/1d\"]\n\
             overrides = {{ \"vip\" = \"3/1d\" }}\noverrides_file = \"overrides.txt\"\n"
        ),
        |dir| {
            std::fs::write(
                dir.join("overrides.txt"),
                "# user rates\nnewsletter unlimited\nBulk 2/1d 10/1w\n",
            )
            .unwrap();
        },
    )
    .await;
    let mut c = d.connect().await;
    assert_eq!(sent(&mut c, "plain", 5).await, 1);
    assert_eq!(sent(&mut c, "vip", 5).await, 3);
    assert_eq!(sent(&mut c, "bulk", 5).await, 2);
    assert_eq!(sent(&mut c, "newsletter", 20).await, 20);
    d.stop().await;
}

#[tokio::test]
async fn hold_on_breach_records_the_queue_id_and_unlock_returns_it() {
    let d = start(&format!(
        "{NO_GREYLIST}[[limit]]\nname = \"per-ip\"\nkey = [\"client_address\"]\nrate = [\"2/1h\"]\n\
         action = \"HOLD quota %n reached\"\n"
    ))
    .await;
    let mut c = d.connect().await;
    for i in 0..2 {
        let (r, eom) = message(&mut c, "", &format!("m{i}"), &["x@d.test"], "Q").await;
        assert_eq!((r[0].as_str(), eom.as_str()), ("DUNNO", "DUNNO"));
    }
    // Past the quota: accepted into the hold queue, nothing bounced.
    let (r, eom) = message(&mut c, "", "m2", &["x@d.test", "y@d.test"], "HELD1").await;
    assert_eq!(r, vec!["HOLD quota per-ip reached"; 2]);
    assert!(eom.starts_with("HOLD"), "{eom}");
    let (_, eom) = message(&mut c, "", "m3", &["x@d.test"], "HELD2").await;
    assert!(eom.starts_with("HOLD"), "{eom}");
    let show = control(
        &d,
        ControlRequest::AccountShow {
            user: "ip:192.0.2.10".into(),
        },
    )
    .await;
    assert!(show.ok);
    assert_eq!(show.data["held"], serde_json::json!(["HELD1", "HELD2"]));
    assert_eq!(show.data["locked"], false);
    let un = control(
        &d,
        ControlRequest::AccountUnlock {
            user: "ip:192.0.2.10".into(),
        },
    )
    .await;
    assert_eq!(un.data["held"], serde_json::json!(["HELD1", "HELD2"]));
    // Unlock also reset the client's limit: mail flows again.
    let (r, _) = message(&mut c, "", "m4", &["x@d.test"], "Q").await;
    assert_eq!(r, vec!["DUNNO"]);
    d.stop().await;
}

#[tokio::test]
async fn containment_locks_holds_and_unlock_releases() {
    let d = start(&format!(
        "{NO_GREYLIST}[[limit]]\nname = \"per-user\"\nkey = [\"sasl_username\"]\ncount = \"recipients\"\n\
         rate = [\"50/1h\", \"200/1d\"]\naction = \"DEFER\"\n\
         [account]\ncontainment = true\nthreshold = 100\nfanout_domains = 10\nsource_networks = 3\n"
    ))
    .await;
    let mut c = d.connect().await;
    // The compromised-SASL-account pattern: many domains from several networks.
    let mut last = String::new();
    for i in 0..12 {
        let ip = format!("198.51.{}.7", i % 4);
        let mut q = req(
            ProtocolState::Rcpt,
            "victim@ex.org",
            &ip,
            "victim@ex.org",
            &format!("u{i}@dom{i}.test"),
        );
        q.instance = format!("spam{i}");
        last = c.ask(&q).await;
        if last.starts_with("HOLD") {
            break;
        }
    }
    assert!(last.starts_with("HOLD account locked"), "{last}");
    // The lock is counted (a process-wide counter: at least this test's lock).
    let text = d.daemon().shared.metrics.encode();
    let n: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mxguard_accounts_locked_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(n >= 1, "{text}");
    // Locked: every further message is held, its queue id recorded at END-OF-MESSAGE.
    let (r, eom) = message(&mut c, "victim@ex.org", "after", &["a@b.test"], "QH1").await;
    assert!(
        r[0].starts_with("HOLD") && eom.starts_with("HOLD"),
        "{r:?} {eom}"
    );
    let show = control(
        &d,
        ControlRequest::AccountShow {
            user: "Victim@ex.org".into(),
        },
    )
    .await;
    assert_eq!(show.data["locked"], true);
    assert_eq!(show.data["by"], "containment");
    assert!(
        show.data["reason"]
            .as_str()
            .unwrap()
            .contains("client networks")
    );
    assert_eq!(show.data["held"], serde_json::json!(["QH1"]));
    let list = control(&d, ControlRequest::AccountList { limit: 10 }).await;
    assert_eq!(list.data.as_array().unwrap().len(), 1);
    // Other accounts are untouched.
    let (r, _) = message(&mut c, "other@ex.org", "o1", &["a@b.test"], "Q").await;
    assert_eq!(r, vec!["DUNNO"]);
    let un = control(
        &d,
        ControlRequest::AccountUnlock {
            user: "victim@ex.org".into(),
        },
    )
    .await;
    assert!(un.ok);
    assert_eq!(un.data["held"], serde_json::json!(["QH1"]));
    let (r, eom) = message(&mut c, "victim@ex.org", "ok", &["a@b.test"], "Q").await;
    assert_eq!((r[0].as_str(), eom.as_str()), ("DUNNO", "DUNNO"));
    d.stop().await;
}

#[tokio::test]
async fn admin_lock_holds_mail_until_unlock() {
    let d = start(NO_GREYLIST).await;
    let mut c = d.connect().await;
    let lock = control(
        &d,
        ControlRequest::AccountLock {
            user: "carol".into(),
            reason: "phished".into(),
        },
    )
    .await;
    assert!(lock.ok);
    assert_eq!(lock.data["by"], "admin");
    let (r, eom) = message(&mut c, "CAROL", "m", &["x@d.test"], "QC").await;
    assert!(r[0].starts_with("HOLD") && eom.starts_with("HOLD"));
    let stored = d.store().account_get("carol").await.unwrap().unwrap();
    assert!(stored.is_locked());
    assert_eq!(stored.held, vec!["QC".to_owned()]);
    control(
        &d,
        ControlRequest::AccountUnlock {
            user: "carol".into(),
        },
    )
    .await;
    assert!(d.store().account_get("carol").await.unwrap().is_none());
    let (r, _) = message(&mut c, "carol", "m2", &["x@d.test"], "Q").await;
    assert_eq!(r, vec!["DUNNO"]);
    d.stop().await;
}

#[tokio::test]
async fn connection_rate_per_client_prefix() {
    let d = start(&format!(
        "{NO_GREYLIST}[[limit]]\nname = \"conn\"\nkey = [\"client_prefix\"]\ncount = \"connections\"\n\
         rate = [\"2/1m\"]\naction = \"421 4.7.0 too many connections\"\n"
    ))
    .await;
    let mut c = d.connect().await;
    assert_eq!(connect(&mut c, "203.0.113.1").await, "DUNNO");
    assert_eq!(connect(&mut c, "203.0.113.2").await, "DUNNO");
    // Same /24: refused.
    assert_eq!(
        connect(&mut c, "203.0.113.3").await,
        "421 4.7.0 too many connections"
    );
    assert_eq!(connect(&mut c, "198.51.100.1").await, "DUNNO");
    d.advance(30);
    assert_eq!(connect(&mut c, "203.0.113.9").await, "DUNNO");
    d.stop().await;
}

#[test]
fn the_limits_example_loads() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/limits.toml");
    let cfg = mxguard::config::load(Some(&p)).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = cfg
        .limits
        .limits
        .limits
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["per-user", "bytes-per-user", "per-network"]);
    let c = cfg.limits.containment.as_ref().unwrap();
    assert_eq!(
        (c.threshold, c.fanout_domains, c.source_networks),
        (100, 30, 5)
    );
}
