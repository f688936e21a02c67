//! Shared helpers for the daemon's integration tests: start a [`Daemon`] in-process on
//! 127.0.0.1:0 with a fake clock and a memory store, and talk the policy protocol to it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mxguard::config;
use mxguard::service::{Daemon, StartOptions};
use mxguard_engine::store::{MemoryStore, Store};
use mxguard_engine::{FakeClock, UnixTime};
use mxguard_proto::PolicyRequest;
use mxguard_proto::postfix::decode_reply;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// 2026-11-23T00:00:00Z, an arbitrary fixed start.
pub const T0: u64 = 1_795_392_000;

pub struct TestDaemon {
    pub daemon: Option<Daemon>,
    pub clock: FakeClock,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub addr: SocketAddr,
}

impl TestDaemon {
    pub fn store(&self) -> Arc<dyn Store> {
        self.daemon.as_ref().unwrap().shared.store.clone()
    }
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }
    pub async fn connect(&self) -> Client<TcpStream> {
        Client::new(TcpStream::connect(self.addr).await.unwrap())
    }
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
    pub async fn stop(mut self) {
        let d = self.daemon.take().unwrap();
        d.shutdown();
        tokio::time::timeout(Duration::from_secs(20), d.wait())
            .await
            .expect("daemon did not stop in time")
            .unwrap();
    }
}

/// Writes `extra` (TOML, without [policy] listen / [control] / [store]) plus test defaults to
/// a temp dir and starts the daemon on it with a fake clock and a memory store.
pub async fn start(extra: &str) -> TestDaemon {
    start_with(extra, |_| {}).await
}

pub async fn start_with(extra: &str, prepare: impl FnOnce(&Path)) -> TestDaemon {
    start_full(extra, prepare, Arc::new(MemoryStore::new())).await
}

pub async fn start_full(
    extra: &str,
    prepare: impl FnOnce(&Path),
    store: Arc<dyn Store>,
) -> TestDaemon {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let text =
        format!("{extra}\n[control]\nsocket = \"control.sock\"\n[store]\ntype = \"memory\"\n");
    let text = if extra.contains("[policy]") {
        text
    } else {
        format!("[policy]\nlisten = [\"inet:127.0.0.1:0\"]\n{text}")
    };
    let config_path = dir.path().join("mxguard.toml");
    std::fs::write(&config_path, text).unwrap();
    let cfg = config::load(Some(&config_path)).unwrap_or_else(|e| panic!("config: {e}"));
    let clock = FakeClock::new(UnixTime(T0));
    let daemon = Daemon::start(
        cfg,
        StartOptions {
            config_path: Some(config_path.clone()),
            clock: Some(Arc::new(clock.clone())),
            store: Some(store),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let addr = daemon.policy_addrs[0];
    TestDaemon {
        daemon: Some(daemon),
        clock,
        dir,
        config_path,
        addr,
    }
}

/// A policy client over any stream.
pub struct Client<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next reply's action text, or `None` on EOF / error / 10 s without a reply.
    pub async fn reply(&mut self) -> Option<String> {
        loop {
            if let Some((action, used)) = decode_reply(&self.buf) {
                self.buf.drain(..used);
                return Some(action);
            }
            let mut chunk = [0u8; 4096];
            let n =
                match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return None,
                };
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn ask(&mut self, req: &PolicyRequest) -> String {
        let mut out = Vec::new();
        req.encode(&mut out);
        self.send_raw(&out).await;
        self.reply().await.expect("no reply")
    }

    /// Asks an RCPT question from `ip` for `sender` -> `rcpt` with message `instance`.
    pub async fn rcpt(&mut self, ip: &str, sender: &str, rcpt: &str, instance: &str) -> String {
        let mut r = PolicyRequest::rcpt(ip.parse::<IpAddr>().unwrap(), sender, rcpt);
        r.instance = instance.to_owned();
        self.ask(&r).await
    }

    /// True when the peer closed the connection (EOF within 10 s).
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk)).await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Fetches the metrics text from `addr` with a minimal HTTP/1.0 request.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
