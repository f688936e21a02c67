//! The resolved part of a jail's ignore list: `ignoreip` host names and `ignoreself`
//! (fail2ban's `DNSUtils.getSelfIPs`: this host's interface addresses plus the addresses of
//! its own names). Resolved when the daemon starts, before any log line is read, and again
//! every [`REFRESH`] so a name whose addresses change is followed (fail2ban caches name
//! lookups for 5 minutes too). A lookup that fails keeps nothing for that name and logs a
//! warning; the jail's literal addresses and networks always apply.
//!
//! Names go through the system resolver (`getaddrinfo`: `/etc/hosts`, then DNS), as
//! fail2ban's `socket.getaddrinfo` does, not `[dns]`: `ignoreip` names are usually this
//! site's own hosts, often only in `/etc/hosts`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::JailService;

/// How often names are looked up again.
pub const REFRESH: Duration = Duration::from_secs(300);
/// The longest one lookup may take (a slow resolver must not hold up start-up).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The addresses of `name` from the system resolver (empty on failure or timeout).
pub async fn resolve(name: &str) -> Vec<IpAddr> {
    let lookup = tokio::net::lookup_host((name, 0u16));
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip().to_canonical()).collect(),
        Ok(Err(e)) => {
            tracing::warn!(name, error = %e, "ignoreip: cannot resolve host name");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(name, "ignoreip: host name lookup timed out");
            Vec::new()
        }
    }
}

/// This host's own addresses: every interface address, and the addresses of `localhost`
/// and of the host name (`uname -n`).
pub async fn self_addresses() -> Vec<IpAddr> {
    let mut out: BTreeSet<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip().to_canonical()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "ignoreself: cannot list the interface addresses");
            BTreeSet::new()
        }
    };
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    for name in ["localhost", host.as_str()] {
        if !name.is_empty() {
            out.extend(resolve(name).await);
        }
    }
    out.into_iter().collect()
}

/// Resolves every jail's names once and installs the results.
pub async fn refresh(svc: &JailService) {
    let lookups = svc.runner.lock().await.ignore_lookups();
    if lookups.is_empty() {
        return;
    }
    let own = if lookups.iter().any(|(_, _, own)| *own) {
        self_addresses().await
    } else {
        Vec::new()
    };
    let mut resolved = Vec::new();
    for (i, names, ignoreself) in lookups {
        let mut addrs = if ignoreself { own.clone() } else { Vec::new() };
        for name in &names {
            addrs.extend(resolve(name).await);
        }
        resolved.push((i, addrs));
    }
    let mut runner = svc.runner.lock().await;
    for (i, addrs) in resolved {
        runner.set_resolved_ignores(i, &addrs);
    }
}

/// Refreshes every [`REFRESH`] until shutdown (the first resolution runs at start-up).
pub async fn run(svc: Arc<JailService>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = crate::input::postfix_policy::stopped(&mut shutdown) => return Ok(()),
            _ = tokio::time::sleep(REFRESH) => {}
        }
        refresh(&svc).await;
    }
}
