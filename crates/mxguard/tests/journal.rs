//! `journalmatch` jails against a real systemd journal: entries are written into a journal
//! directory of the test's own with `systemd-journal-remote` (the journal's export format on
//! stdin), and the daemon reads them with `journalctl --directory --follow`, as it would
//! read the system journal. Checks: entries of the matching unit count, others do not; an
//! entry appended while the daemon runs is followed; `journalmatch = ""` takes the filter's
//! own match (dovecot.conf `_SYSTEMD_UNIT=dovecot.service`) and `logtype = journal`; the
//! cursor makes a restart read only new entries.
//!
//! Uses the system clock (entries carry real times) and waits, bounded, for the external
//! journalctl process to deliver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mxguard_engine::{Clock, SystemClock};

use mxguard::config;
use mxguard::control::{self, ControlRequest};
use mxguard::output::firewall::{ActionRegistry, Recorded, RecordingAction};
use mxguard::service::{Daemon, StartOptions};
use mxguard_engine::store::{MemoryStore, Store};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

fn filter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/fail2ban/config")
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Appends entries (unit, identifier, message) to `dir`'s journal.
fn append(dir: &Path, entries: &[(&str, &str, &str)]) {
    let mut export = String::new();
    for (unit, ident, msg) in entries {
        // Whole seconds from the clock, plus a sequence so entries stay in order.
        let us = u128::from(SystemClock.now().0) * 1_000_000
            + u128::from(SEQ.fetch_add(1, Ordering::Relaxed));
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={us}\n__MONOTONIC_TIMESTAMP={us}\n\
             _BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=mx\n\
             SYSLOG_IDENTIFIER={ident}\nSYSLOG_PID=4242\n_SYSTEMD_UNIT={unit}\nMESSAGE={msg}\n\n"
        ));
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{JOURNAL_REMOTE} (package systemd-journal-remote): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn sasl(ip: &str) -> (&'static str, &'static str, String) {
    (
        "postfix@-.service",
        "postfix/submission/smtpd",
        format!("warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"),
    )
}

fn write(dir: &Path, entries: &[(&str, &str, String)]) {
    let e: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(u, i, m)| (*u, *i, m.as_str()))
        .collect();
    append(dir, &e);
}

struct World {
    daemon: Option<Daemon>,
    action: Arc<RecordingAction>,
}

async fn start(dir: &Path, store: Arc<dyn Store>) -> World {
    let journal = dir.join("journal");
    let text = format!(
        r#"
[policy]
listen = ["inet:127.0.0.1:0"]
[store]
type = "memory"
[control]
socket = "{d}/ctl.sock"
[greylist]
enabled = false
[bans]
checkpoint = "{d}/logtail.checkpoint"
journal_directory = "{j}"

[[action]]
name = "rec"
type = "command"
ban = ["/bin/true", "<ip>"]

[[jail]]
name = "postfix-sasl"
filter = "postfix[mode=auth]"
filter_dir = "{f}"
journalmatch = "_SYSTEMD_UNIT=postfix@-.service"
maxretry = 3
bantime = "1h"

[[jail]]
name = "dovecot"
filter = "dovecot"
filter_dir = "{f}"
journalmatch = ""
maxretry = 2
"#,
        d = dir.display(),
        j = journal.display(),
        f = filter_dir().display(),
    );
    let path = dir.join("mxguard.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = config::load(Some(&path)).unwrap_or_else(|e| panic!("config: {e}"));
    let action = Arc::new(RecordingAction::new("rec"));
    let mut reg = ActionRegistry::new();
    reg.insert(action.clone());
    let daemon = Daemon::start(
        cfg,
        StartOptions {
            config_path: Some(path),
            store: Some(store),
            actions: Some(reg),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    World {
        daemon: Some(daemon),
        action,
    }
}

impl World {
    /// (jail, address) of every ban the action was asked for.
    fn bans(&self) -> Vec<(String, String)> {
        self.action
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Recorded::Ban(b) => Some(b),
                _ => None,
            })
            .flatten()
            .map(|b| (b.jail, b.net.addr().to_string()))
            .collect()
    }

    async fn jail_failures(&self, jail: &str) -> u64 {
        let r = control::handle(
            ControlRequest::Status,
            &self.daemon.as_ref().unwrap().shared,
        )
        .await;
        let jails = r.data["jails"].as_array().unwrap().clone();
        let j = jails.iter().find(|j| j["name"] == jail).unwrap();
        j["failures_total"].as_u64().unwrap()
    }

    /// Waits (about 20 s at most) until `cond` holds.
    async fn until(&self, what: &str, cond: impl AsyncFnMut(&World) -> bool) {
        let mut cond = cond;
        // 1000 x 20 ms: a bound on the wait, not a measurement of time.
        for _ in 0..1000 {
            if cond(self).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}: bans {:?}", self.bans());
    }

    async fn stop(mut self) {
        let d = self.daemon.take().unwrap();
        d.shutdown();
        d.wait().await.unwrap();
    }
}

#[tokio::test]
async fn journal_jails_follow_match_and_resume_from_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    // Before the start: two failures of .61 by postfix, one by another unit (not counted).
    let other = (
        "other.service",
        "postfix/submission/smtpd",
        sasl("192.0.2.61").2,
    );
    write(&journal, &[sasl("192.0.2.61"), sasl("192.0.2.61"), other]);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let w = start(dir.path(), store.clone()).await;
    w.until("the first two entries", async |w| {
        w.jail_failures("postfix-sasl").await == 2
    })
    .await;
    assert!(w.bans().is_empty(), "the other unit's entry must not count");
    // Followed: the third failure arrives while the daemon runs.
    write(&journal, &[sasl("192.0.2.61")]);
    w.until("the postfix-sasl ban", async |w| !w.bans().is_empty())
        .await;
    assert_eq!(
        w.bans(),
        [("postfix-sasl".to_string(), "192.0.2.61".to_string())]
    );
    let rec = store.ban_get("192.0.2.61/32").await.unwrap().unwrap();
    let now = SystemClock.now().0;
    assert!(
        rec.since.0 + 5 >= now && rec.since.0 <= now,
        "ban from the entry's time: {rec:?}"
    );

    // The filter's own journalmatch and the journal prefix (no date in the line).
    let dovecot = |ip: &str| {
        (
            "dovecot.service",
            "dovecot",
            format!(
                "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u>, \
                 method=PLAIN, rip={ip}, lip=192.0.2.25, TLS, session=<x>"
            ),
        )
    };
    write(&journal, &[dovecot("192.0.2.70"), dovecot("192.0.2.70")]);
    w.until("the dovecot ban", async |w| w.bans().len() == 2)
        .await;
    assert_eq!(
        w.bans()[1],
        ("dovecot".to_string(), "192.0.2.70".to_string())
    );
    w.stop().await;
    let cursor = std::fs::read_to_string(dir.path().join("logtail.journal-cursor")).unwrap();
    assert!(cursor.starts_with("s="), "{cursor}");

    // While stopped: two more. A restart reads those two only (not the whole journal).
    write(&journal, &[sasl("192.0.2.62"), sasl("192.0.2.62")]);
    let w = start(dir.path(), store).await;
    w.until("the two new entries", async |w| {
        w.jail_failures("postfix-sasl").await >= 2
    })
    .await;
    // Let a re-read (if the cursor were ignored) show up before judging.
    write(&journal, &[dovecot("192.0.2.99")]);
    w.until("the marker entry", async |w| {
        w.jail_failures("dovecot").await == 1
    })
    .await;
    assert_eq!(
        w.jail_failures("postfix-sasl").await,
        2,
        "resumed after the cursor"
    );
    w.stop().await;
}

#[test]
fn journalmatch_errors_name_the_jail() {
    let text = format!(
        "[[jail]]\nname = \"j\"\nfilter = \"postfix\"\nfilter_dir = \"{}\"\njournalmatch = \"postfix.service\"\n\
         [[jail]]\nname = \"k\"\nfilter = \"postfix\"\nfilter_dir = \"{0}\"\njournalmatch = \"_SYSTEMD_UNIT=x\"\nlogpath = [\"/dev/null\"]\n",
        filter_dir().display()
    );
    let e = config::parse("t.toml", &text, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml:5:")
            && e.contains("journalmatch: \"postfix.service\" is not FIELD=VALUE"),
        "{e}"
    );
    assert!(e.contains("set logpath or journalmatch, not both"), "{e}");
}
