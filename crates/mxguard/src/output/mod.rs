//! Outputs of the daemon: what it tells the outside world besides policy replies. Today the
//! Prometheus endpoint ([`metrics`]); nftables bans come with the log-jail work.

pub mod metrics;
