//! systemd service notifications (sd_notify(3)): tells the service manager when the daemon
//! is ready, reloading or stopping, and pings its watchdog.
//!
//! systemd passes `NOTIFY_SOCKET` (a datagram socket: a path, or `@name` in the abstract
//! namespace) to a `Type=notify` service and `WATCHDOG_USEC` (+ `WATCHDOG_PID`) when the
//! unit has `WatchdogSec=`. [`Notifier::from_env`] reads them once; without `NOTIFY_SOCKET`
//! every call is a no-op, so `mxguard serve` outside systemd behaves as before. Messages:
//! `READY=1` once every listener is bound ([`crate::service::serve`]), `RELOADING=1` then
//! `READY=1` around a SIGHUP reload, `STOPPING=1` when shutdown starts, and `WATCHDOG=1`
//! every half `WATCHDOG_USEC` from [`Notifier::watchdog`], a task on the same runtime as
//! the services (a wedged runtime stops the pings and systemd restarts the service).
//!
//! It does not implement `Type=notify-reload` (systemd 253+, wants `MONOTONIC_USEC=`; Debian
//! 12 has 252) nor file-descriptor passing. The variables are not removed from the
//! environment (that is `unsafe` in Rust 2024): the unit's `NotifyAccess=main` makes systemd
//! ignore messages from child processes (`nft`, command actions) anyway.
//! Called by `service::serve`; tested below with a socket the test binds.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

/// Where and whether to send notifications; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Inner {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// No socket: every notification is dropped.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` of this process.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::from_vars(
            socket.as_deref(),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// From the variables' values; `my_pid` is compared with `WATCHDOG_PID` (the watchdog is
    /// meant for that process only, sd_watchdog_enabled(3)). Unusable values are logged and
    /// turn the feature off rather than failing start-up.
    pub fn from_vars(
        socket: Option<&OsStr>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        my_pid: u32,
    ) -> Notifier {
        let Some(socket) = socket.filter(|s| !s.is_empty()) else {
            return Notifier::disabled();
        };
        let inner = match open(socket) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(socket = ?socket, error = %e, "NOTIFY_SOCKET unusable; no systemd notifications");
                return Notifier::disabled();
            }
        };
        let pid_ok = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(my_pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier {
            inner: Some(Arc::new(inner)),
            watchdog,
        }
    }

    /// Whether a socket is configured.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The watchdog timeout systemd set (`WatchdogSec=`), if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often [`Notifier::watchdog`] pings: half the timeout, as sd_watchdog_enabled(3)
    /// recommends.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|t| t / 2).filter(|d| !d.is_zero())
    }

    /// Sends one message (`KEY=value` lines). Errors are logged at debug and returned.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let r = inner
            .socket
            .send_to_addr(state.as_bytes(), &inner.addr)
            .map(|_| ());
        if let Err(e) = &r {
            tracing::debug!(error = %e, state, "sd_notify failed");
        }
        r
    }

    /// `READY=1` with a status line: start-up done, listeners bound (or a reload finished).
    pub fn ready(&self, status: &str) {
        let _ = self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1`: a SIGHUP reload starts.
    pub fn reloading(&self) {
        let _ = self.notify("RELOADING=1\nSTATUS=reloading the configuration");
    }

    /// `STOPPING=1`: shutdown (drain) starts.
    pub fn stopping(&self) {
        let _ = self.notify("STOPPING=1\nSTATUS=draining and stopping");
    }

    /// Pings `WATCHDOG=1` at once and then every [`Notifier::watchdog_interval`], forever;
    /// returns at once when there is no watchdog. Spawn it and abort it after shutdown.
    pub async fn watchdog(self) {
        let Some(every) = self.watchdog_interval() else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = self.notify("WATCHDOG=1");
        }
    }
}

/// An unbound datagram socket and the address `NOTIFY_SOCKET` names: `/path` or `@abstract`.
fn open(socket: &OsStr) -> io::Result<Inner> {
    let bytes = socket.as_bytes();
    let addr = match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket)?,
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(bytes.get(1..).unwrap_or_default())?
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an absolute path or @abstract name",
            ));
        }
    };
    let socket = UnixDatagram::unbound()?;
    // A full receive queue must never block the runtime: the message is dropped instead.
    socket.set_nonblocking(true)?;
    Ok(Inner { socket, addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound receiving socket in a temp dir, as systemd's would be.
    fn listener() -> (tempfile::TempDir, std::path::PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_nonblocking(true).unwrap();
        (dir, path, rx)
    }

    fn received(rx: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = rx.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn ready_reloading_stopping_reach_the_socket() {
        let (_dir, path, rx) = listener();
        let n = Notifier::from_vars(Some(path.as_os_str()), None, None, 42);
        assert!(n.enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready("serving");
        n.reloading();
        n.ready("reloaded");
        n.stopping();
        let got = received(&rx);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with("READY=1\n"), "{got:?}");
        assert!(got[0].contains("STATUS=serving"));
        assert!(got[1].starts_with("RELOADING=1\n"));
        assert!(got[2].starts_with("READY=1\n"));
        assert!(got[3].starts_with("STOPPING=1\n"));
    }

    #[test]
    fn abstract_socket_names_work() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("mxguard-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        rx.set_nonblocking(true).unwrap();
        let var = format!("@{name}");
        let n = Notifier::from_vars(Some(OsStr::new(&var)), None, None, 1);
        n.ready("up");
        assert_eq!(received(&rx).len(), 1);
    }

    #[test]
    fn no_socket_or_a_bad_one_is_a_quiet_no_op() {
        let n = Notifier::from_vars(None, Some("1000000"), None, 1);
        assert!(!n.enabled());
        assert!(n.notify("READY=1").is_ok());
        let rel = Notifier::from_vars(Some(OsStr::new("relative/path")), None, None, 1);
        assert!(!rel.enabled());
        let empty = Notifier::from_vars(Some(OsStr::new("")), None, None, 1);
        assert!(!empty.enabled());
    }

    #[test]
    fn watchdog_belongs_to_the_pid_systemd_named() {
        let (_dir, path, _rx) = listener();
        let s = Some(path.as_os_str());
        let mine = Notifier::from_vars(s, Some("30000000"), Some("77"), 77);
        assert_eq!(mine.watchdog_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(mine.watchdog_interval(), Some(Duration::from_secs(15)));
        let other = Notifier::from_vars(s, Some("30000000"), Some("78"), 77);
        assert_eq!(other.watchdog_interval(), None);
        let no_pid = Notifier::from_vars(s, Some("30000000"), None, 77);
        assert_eq!(no_pid.watchdog_interval(), Some(Duration::from_secs(15)));
        let junk = Notifier::from_vars(s, Some("soon"), None, 77);
        assert_eq!(junk.watchdog_interval(), None);
        let zero = Notifier::from_vars(s, Some("0"), None, 77);
        assert_eq!(zero.watchdog_interval(), None);
    }

    /// WATCHDOG_USEC=10s: a ping at once, then one every 5 s of (paused, auto-advancing)
    /// tokio time; none before the interval is up.
    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_at_half_the_timeout() {
        let (_dir, path, rx) = listener();
        let n = Notifier::from_vars(Some(path.as_os_str()), Some("10000000"), None, 1);
        let task = tokio::spawn(n.clone().watchdog());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(received(&rx), ["WATCHDOG=1"]);
        tokio::time::sleep(Duration::from_millis(4_990)).await;
        assert!(received(&rx).is_empty(), "pinged before 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(received(&rx), ["WATCHDOG=1"]);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(received(&rx), ["WATCHDOG=1", "WATCHDOG=1"]);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn no_watchdog_returns_at_once() {
        let (_dir, path, _rx) = listener();
        let n = Notifier::from_vars(Some(path.as_os_str()), None, None, 1);
        n.watchdog().await;
    }
}
