//! Outputs of the daemon: what it tells the outside world besides policy replies: the
//! Prometheus endpoint ([`metrics`]) and the ban actions behind [`firewall::BanAction`]:
//! [`nftables`], [`ipset`] and [`command`]; and the service manager ([`systemd`]: sd_notify).

pub mod command;
pub mod firewall;
pub mod ipset;
pub mod metrics;
pub mod nftables;
pub mod systemd;
