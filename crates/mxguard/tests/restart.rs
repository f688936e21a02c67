//! The real binary as a subprocess: greylist state survives `kill -9` (embedded store), SIGHUP
//! with a broken file keeps the daemon answering on the old configuration, SIGTERM exits 0
//! and removes the sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers below

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Client;
use mxguard::control::{ControlRequest, request};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cfg: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_mxguard"))
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Polls (bounded) until the control socket answers.
async fn wait_ready(control: &Path) {
    for _ in 0..200 {
        if request(control, &ControlRequest::Status).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("daemon did not come up");
}

async fn connect(sock: &Path) -> Client<tokio::net::UnixStream> {
    Client::new(tokio::net::UnixStream::connect(sock).await.unwrap())
}

/// The triplet's `first` time as listed by the daemon, if listed.
async fn listed_first(control: &Path, key: &str) -> Option<u64> {
    let r = request(control, &ControlRequest::GreylistList { limit: 1000 })
        .await
        .ok()?;
    r.data["triplets"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["first"].as_u64())
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The file's modification time once it has not changed for 1.5 s (longer than the store's
/// 1 s batch interval), so start-up writes are not mistaken for the request's batch.
async fn stable_mtime(p: &Path) -> Option<std::time::SystemTime> {
    let mut last = mtime(p);
    let mut same = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = mtime(p);
        if now == last && now.is_some() {
            same += 1;
            if same >= 6 {
                return now;
            }
        } else {
            same = 0;
            last = now;
        }
    }
    panic!("store file never settled");
}

fn write_config(dir: &Path, delay: &str) -> PathBuf {
    let cfg = dir.join("mxguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[policy]\nlisten = [\"unix:policy.sock\"]\n[store]\ntype = \"embedded\"\npath = \"state\"\n\
             [control]\nsocket = \"control.sock\"\n[greylist]\ndelay = \"{delay}\"\n\
             text = \"Greylisted for %s seconds\"\n"
        ),
    )
    .unwrap();
    cfg
}

#[tokio::test]
async fn greylist_state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "1h");
    let (policy, control) = (
        dir.path().join("policy.sock"),
        dir.path().join("control.sock"),
    );
    let key = "192.0.2.0/alice@s.example/bob@example.test";

    let mut p = spawn(&cfg);
    wait_ready(&control).await;
    let db = dir.path().join("state/mxguard.redb");
    let m0 = stable_mtime(&db).await;
    let mut c = connect(&policy).await;
    assert_eq!(
        c.rcpt("192.0.2.10", "alice@s.example", "bob@example.test", "m1")
            .await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 3600 seconds"
    );
    // The embedded store commits a batch about once a second in the background: wait for
    // the file to change (bounded poll), without asking the daemon anything that flushes.
    let mut flushed = false;
    for _ in 0..100 {
        if mtime(&db) != m0 {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flushed, "the store file never changed after the request");
    drop(c);

    // kill -9: no shutdown, no final flush.
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    assert!(policy.exists(), "a killed daemon leaves its socket behind");

    let _p2 = spawn(&cfg); // must cope with the stale sockets
    wait_ready(&control).await;
    let first = listed_first(&control, key)
        .await
        .expect("triplet lost by kill -9");
    let mut c = connect(&policy).await;
    let reply = c
        .rcpt("192.0.2.10", "alice@s.example", "bob@example.test", "m2")
        .await;
    let left: u64 = reply
        .strip_prefix("DEFER_IF_PERMIT 4.2.0 Greylisted for ")
        .and_then(|s| s.strip_suffix(" seconds"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected reply {reply}"));
    assert!(left <= 3600, "{reply}");
    // Still the same triplet (a new one would have first == now).
    assert_eq!(listed_first(&control, key).await, Some(first));
}

#[tokio::test]
async fn sighup_with_bad_file_keeps_running_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "5m");
    let (policy, control) = (
        dir.path().join("policy.sock"),
        dir.path().join("control.sock"),
    );
    let mut p = spawn(&cfg);
    wait_ready(&control).await;
    let pid = p.0.id().to_string();

    std::fs::write(&cfg, "[greylist]\ndelay = \"soon\"\n").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut refused = false;
    for _ in 0..100 {
        let st = request(&control, &ControlRequest::Status).await.unwrap();
        if st.data["last_reload"]["ok"] == false {
            let errs = st.data["last_reload"]["errors"][0]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                errs.contains("mxguard.toml:2:9: [greylist] delay"),
                "{errs}"
            );
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "reload result never reported");
    let mut c = connect(&policy).await;
    assert_eq!(
        c.rcpt("192.0.2.1", "a@b.example", "c@example.test", "")
            .await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );
    drop(c);

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = p.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status.expect("daemon did not exit on SIGTERM").code(),
        Some(0)
    );
    assert!(
        !policy.exists() && !control.exists(),
        "sockets removed on exit"
    );
    assert!(dir.path().join("state").is_dir());
}
