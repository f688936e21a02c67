//! The control socket (mode 0600, line-delimited JSON; the real `mxguard status` and
//! `mxguard greylist` binaries against it), the metrics endpoint, and SIGHUP-style reload:
//! a bad file keeps the running configuration, a good one takes effect.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::start;
use mxguard::control::{ControlReply, ControlRequest, request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CFG: &str = "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
[greylist]\ndelay = \"5m\"\ntext = \"Greylisted for %s seconds\"\nauto_whitelist_clients = 3\n";

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args(args)
        .output()
        .expect("run mxguard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_status_list_whitelist_remove() {
    let d = start(CFG).await;
    let sock = d.daemon().control_socket.clone();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket must be 0600");

    let mut c = d.connect().await;
    assert_eq!(
        c.rcpt("192.0.2.10", "alice@s.example", "bob@example.test", "")
            .await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );

    let st = request(&sock, &ControlRequest::Status).await.unwrap();
    assert!(st.ok);
    assert_eq!(st.data["triplets"], 1);
    assert_eq!(st.data["greylist_enabled"], true);
    assert_eq!(st.data["store"]["type"], "memory");

    // The real binary, finding the socket through --config.
    let cfg = d.config_path.to_str().unwrap().to_owned();
    let (code, out, err) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || cli(&["greylist", "list", "--config", &cfg])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("192.0.2.0/alice@s.example/bob@example.test"),
        "{out}"
    );
    let (code, out, _) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || cli(&["status", "--config", &cfg, "--json"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    let reply: ControlReply = serde_json::from_str(&out).unwrap();
    assert_eq!(reply.data["triplets"], 1);

    // Remove the triplet: the next attempt is a first sight again.
    d.advance(120);
    let rm = request(
        &sock,
        &ControlRequest::GreylistRemove {
            target: "192.0.2.0/alice@s.example/bob@example.test".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(rm.data["removed"], true, "{rm:?}");
    assert_eq!(
        c.rcpt("192.0.2.10", "alice@s.example", "bob@example.test", "")
            .await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );

    // Whitelist a client through the binary: its new triplets pass at once.
    let (code, _, err) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || cli(&["greylist", "whitelist", "198.51.100.4", "--config", &cfg])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        c.rcpt("198.51.100.4", "x@y.example", "u@example.test", "")
            .await,
        "DUNNO"
    );
    // And remove it again: greylisted.
    let (code, out, _) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || cli(&["greylist", "remove", "198.51.100.4", "--config", &cfg])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("removed"));
    assert!(
        c.rcpt("198.51.100.4", "x@y.example", "v@example.test", "")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    // Removing what is not there fails with exit 1.
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        cli(&["greylist", "remove", "198.51.100.4", "--config", &cfg])
    })
    .await
    .unwrap();
    assert_eq!((code, out.trim()), (1, "198.51.100.4: not found"));

    // Raw protocol: bad JSON and unknown ops get ok:false, the connection stays usable.
    let s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r).lines();
    w.write_all(b"{not json\n{\"op\":\"explode\"}\n{\"op\":\"status\"}\n")
        .await
        .unwrap();
    for expect_ok in [false, false, true] {
        let line = r.next_line().await.unwrap().unwrap();
        let reply: ControlReply = serde_json::from_str(&line).unwrap();
        assert_eq!(reply.ok, expect_ok, "{line}");
    }
    d.stop().await;
}

#[tokio::test]
async fn metrics_endpoint_exposes_requests_latency_connections() {
    let d = start(CFG).await;
    let mut c = d.connect().await;
    for i in 0..3 {
        c.rcpt(
            "192.0.2.1",
            &format!("s{i}@a.example"),
            "u@example.test",
            "",
        )
        .await;
    }
    c.send_raw(b"garbage\n\n").await;
    c.reply().await.unwrap();
    let m = common::http_get(d.daemon().metrics_addr.unwrap(), "/metrics").await;
    assert!(m.starts_with("HTTP/1.") && m.contains(" 200 "), "{m}");
    for needle in [
        "mxguard_policy_requests_total{action=\"defer_if_permit\",check=\"greylist\"} 3",
        "mxguard_policy_requests_total{action=\"dunno\",check=\"malformed\"} 1",
        "mxguard_policy_request_duration_seconds_count 3",
        "mxguard_policy_request_duration_seconds_bucket{le=\"+Inf\"} 3",
        "mxguard_policy_connections_open 1",
        "mxguard_store_errors_total 0",
        "mxguard_policy_malformed_total{reason=\"malformed_line\"} 1",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in\n{m}");
    }
    let not_found = common::http_get(d.daemon().metrics_addr.unwrap(), "/nope").await;
    assert!(not_found.contains(" 404 "));
    d.stop().await;
}

#[tokio::test]
async fn reload_bad_config_keeps_old_good_config_applies() {
    let d = start(CFG).await;
    let shared = d.daemon().shared.clone();
    let original = std::fs::read_to_string(&d.config_path).unwrap();
    let mut c = d.connect().await;

    // A broken file: refused, with positions, and the old delay (300 s) still applies.
    std::fs::write(
        &d.config_path,
        original.replace("delay = \"5m\"", "delay = \"5 minutes\""),
    )
    .unwrap();
    let errs = shared.reload().unwrap_err();
    assert!(
        errs.to_string()
            .contains("mxguard.toml:6:9: [greylist] delay"),
        "{errs}"
    );
    assert_eq!(
        c.rcpt("192.0.2.1", "a@b.example", "c@example.test", "")
            .await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 300 seconds"
    );
    let st = request(&d.daemon().control_socket, &ControlRequest::Status)
        .await
        .unwrap();
    assert_eq!(st.data["last_reload"]["ok"], false);

    // A good file: takes effect for the next request on the same connection.
    std::fs::write(
        &d.config_path,
        original.replace("delay = \"5m\"", "delay = \"10m\""),
    )
    .unwrap();
    let r = request(&d.daemon().control_socket, &ControlRequest::Reload)
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(
        c.rcpt("192.0.2.1", "new@b.example", "c@example.test", "")
            .await,
        "DEFER_IF_PERMIT 4.2.0 Greylisted for 600 seconds"
    );
    let m = common::http_get(d.daemon().metrics_addr.unwrap(), "/metrics").await;
    assert!(
        m.contains("mxguard_config_reloads_total{result=\"failed\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mxguard_config_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );
    d.stop().await;
}
