//! Outputs of the daemon: what it tells the outside world besides policy replies: the
//! Prometheus endpoint ([`metrics`]) and the seam for ban actions ([`firewall::BanAction`];
//! the nftables, ipset and command actions are not built yet).

pub mod firewall;
pub mod metrics;
