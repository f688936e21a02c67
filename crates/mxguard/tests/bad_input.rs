//! Hostile and broken clients: garbage bytes, a 1 MB line, 10k attributes, half requests,
//! thousands of simultaneous connections, idle peers. In every case the daemon stays up and a
//! well-formed client keeps getting answers; malformed requests get `default_action`.

mod common;

use common::{Client, TestDaemon, start};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CFG: &str = "[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n\
default_action = \"DEFER_IF_PERMIT Service temporarily unavailable\"\n\
max_connections = 7000\nidle_timeout = \"2s\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n";

async fn still_answers(d: &TestDaemon) {
    let mut c = d.connect().await;
    let r = c
        .rcpt("192.0.2.200", "ok@good.example", "u@example.test", "")
        .await;
    assert!(
        r.starts_with("DEFER_IF_PERMIT 4.2.0") || r == "DUNNO",
        "{r}"
    );
}

#[tokio::test]
async fn garbage_bytes_get_default_action_and_connection_resyncs() {
    let d = start(CFG).await;
    let mut c = d.connect().await;
    c.send_raw(b"\x00\xff\xfe garbage \x01\x02 no equals sign\n\x7f\x80=\xc3\x28\n\n")
        .await;
    assert_eq!(
        c.reply().await.unwrap(),
        "DEFER_IF_PERMIT Service temporarily unavailable"
    );
    // Same connection, good request afterwards.
    let r = c
        .rcpt("192.0.2.1", "a@b.example", "c@example.test", "")
        .await;
    assert!(r.starts_with("DEFER_IF_PERMIT 4.2.0"), "{r}");
    // A request of the wrong type, and one without client_address.
    c.send_raw(b"request=junk\nsender=a@b\n\n").await;
    assert_eq!(
        c.reply().await.unwrap(),
        "DEFER_IF_PERMIT Service temporarily unavailable"
    );
    c.send_raw(b"request=smtpd_access_policy\nsender=a@b\n\n")
        .await;
    assert_eq!(
        c.reply().await.unwrap(),
        "DEFER_IF_PERMIT Service temporarily unavailable"
    );
    still_answers(&d).await;
    let m = common::http_get(d.daemon().metrics_addr.unwrap(), "/metrics").await;
    assert!(
        m.contains("mxguard_policy_malformed_total{reason=\"malformed_line\"} 1"),
        "{m}"
    );
    assert!(m.contains("reason=\"missing_client_address\"} 1"), "{m}");
    d.stop().await;
}

#[tokio::test]
async fn one_megabyte_line_is_skipped_and_connection_keeps_working() {
    let d = start(CFG).await;
    let mut c = d.connect().await;
    let mut big = b"request=smtpd_access_policy\nsender=".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    big.extend_from_slice(b"\n\n");
    c.send_raw(&big).await;
    assert_eq!(
        c.reply().await.unwrap(),
        "DEFER_IF_PERMIT Service temporarily unavailable"
    );
    let r = c
        .rcpt("192.0.2.1", "a@b.example", "c@example.test", "")
        .await;
    assert!(r.starts_with("DEFER_IF_PERMIT 4.2.0"), "{r}");
    d.stop().await;
}

#[tokio::test]
async fn ten_thousand_attributes_get_default_action() {
    let d = start(CFG).await;
    let mut c = d.connect().await;
    let mut req = String::from("request=smtpd_access_policy\nclient_address=192.0.2.1\n");
    for i in 0..10_000 {
        req.push_str(&format!("attr{i}=v\n"));
    }
    req.push('\n');
    c.send_raw(req.as_bytes()).await;
    assert_eq!(
        c.reply().await.unwrap(),
        "DEFER_IF_PERMIT Service temporarily unavailable"
    );
    let r = c
        .rcpt("192.0.2.1", "a@b.example", "c@example.test", "")
        .await;
    assert!(r.starts_with("DEFER_IF_PERMIT 4.2.0"), "{r}");
    d.stop().await;
}

#[tokio::test]
async fn endless_garbage_without_request_end_closes_only_that_connection() {
    let d = start(CFG).await;
    let mut c = d.connect().await;
    let junk = b"junk line without an end\n".repeat(4096); // ~100 KiB per write
    let mut closed = false;
    for _ in 0..100 {
        // 10 MB in total, beyond the decoder's discard bound (4 MiB).
        if c.stream.write_all(&junk).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed || c.closed().await, "connection should be closed");
    still_answers(&d).await;
    d.stop().await;
}

#[tokio::test]
async fn half_requests_then_disconnect_and_idle_peers() {
    let d = start(CFG).await;
    for i in 0..50 {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(format!("request=smtpd_access_policy\nsender=half{i}@x\nrecipi").as_bytes())
            .await
            .unwrap();
        drop(s);
    }
    // An idle peer that sends half a request and then nothing is closed after idle_timeout.
    let mut idle = Client::new(TcpStream::connect(d.addr).await.unwrap());
    idle.send_raw(b"request=smtpd_access_policy\n").await;
    assert!(idle.closed().await, "idle connection closed by the daemon");
    still_answers(&d).await;
    d.stop().await;
}

/// Raises this process's soft open-files limit to its hard limit (prlimit from util-linux;
/// an unprivileged process may do this) and returns the resulting soft limit.
fn raise_nofile() -> u64 {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=unlimited:"])
        .status();
    let hard = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output=HARD",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(h) = hard {
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={h}:{h}")])
            .status();
    }
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_simultaneous_connections() {
    // Both ends live in this process: 2 descriptors per connection. With a soft limit below
    // ~10,200 even after raising it, the test scales down and says so.
    let limit = raise_nofile();
    let wanted = 5000usize;
    let n = wanted.min((limit.saturating_sub(200) / 2) as usize);
    if n < wanted {
        eprintln!("RLIMIT_NOFILE is {limit}: using {n} connections instead of {wanted}");
    }
    let d = start(CFG).await;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        // Every one of them parks half a request.
        s.write_all(format!("request=smtpd_access_policy\nsender=c{i}@x\n").as_bytes())
            .await
            .unwrap();
        conns.push(s);
    }
    // A well-formed client still gets an answer while they are all open.
    still_answers(&d).await;
    // And every parked connection can finish its request.
    let mut answered = 0;
    for (i, s) in conns.iter_mut().enumerate().step_by(97) {
        s.write_all(b"client_address=192.0.2.9\nrecipient=u@example.test\n\n")
            .await
            .unwrap();
        let mut c = Client::new(s);
        let r = c
            .reply()
            .await
            .unwrap_or_else(|| panic!("connection {i} got no reply"));
        assert!(r.starts_with("DEFER_IF_PERMIT"), "{r}");
        answered += 1;
    }
    assert!(answered > 10);
    let m = common::http_get(d.daemon().metrics_addr.unwrap(), "/metrics").await;
    let open: usize = m
        .lines()
        .find(|l| l.starts_with("mxguard_policy_connections_open "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    assert!(open >= n, "open connections gauge {open} < {n}");
    drop(conns);
    d.stop().await;
}

#[tokio::test]
async fn over_max_connections_is_closed_at_once_not_queued() {
    let cfg = CFG.replace("max_connections = 7000", "max_connections = 3");
    let d = start(&cfg).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = d.connect().await;
        // Make sure each holds a permit (it answered).
        let r = c
            .rcpt("192.0.2.1", "a@b.example", "u@example.test", "")
            .await;
        assert!(r.starts_with("DEFER_IF_PERMIT"));
        held.push(c);
    }
    let mut extra = d.connect().await;
    assert!(
        extra.closed().await,
        "4th connection must be closed, not left hanging"
    );
    let m = common::http_get(d.daemon().metrics_addr.unwrap(), "/metrics").await;
    assert!(
        m.contains("mxguard_policy_connections_refused_total 1"),
        "{m}"
    );
    drop(held);
    d.stop().await;
}

#[tokio::test]
async fn shutdown_drains_a_request_in_progress() {
    let d = start(CFG).await;
    let mut busy = d.connect().await;
    let mut idle = d.connect().await;
    // Make sure both connections are being served before shutting down.
    assert!(
        busy.rcpt("192.0.2.1", "a@b.example", "u@example.test", "")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    assert!(
        idle.rcpt("192.0.2.1", "a@b.example", "u@example.test", "")
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    busy.send_raw(b"request=smtpd_access_policy\nclient_address=192.0.2.1\n")
        .await;
    d.daemon().shutdown();
    // The idle connection is closed; the busy one still gets its answer, then is closed.
    assert!(idle.closed().await);
    busy.send_raw(b"sender=z@b.example\nrecipient=u@example.test\n\n")
        .await;
    let r = busy
        .reply()
        .await
        .expect("request in progress must be answered");
    assert!(r.starts_with("DEFER_IF_PERMIT"), "{r}");
    assert!(busy.closed().await);
    // New connections are refused once the listener is gone.
    d.stop().await;
}
