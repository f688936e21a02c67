//! The nftables ban action (`[[action]] type = "nftables"`): one table owned by mxguard
//! (`inet mxguard`), four sets and one input chain, changed only through `nft -f -`
//! transactions (one process per batch: 100,000 bans restore in about a second, where
//! fail2ban spawns one `nft` per address, corpus README §4.9).
//!
//! Layout (created by [`BanAction::setup`], idempotently: `add` of an existing table, set or
//! chain is a no-op; the chain is flushed and its rules re-added in the same transaction;
//! the sets, and so the bans, survive a restart):
//! - `ban4`/`ban6` (`flags timeout`): single addresses. Hash sets: nft 1.0.6 needs minutes for
//!   100,000 elements in an interval set (measured here), milliseconds in a hash set.
//! - `net4`/`net6` (`flags interval, timeout`): networks (a /24, an IPv6 /64).
//! - chain `input` (hook input, priority -10): `ip saddr @ban4 [tcp dport { ports }] drop`
//!   and likewise for the other sets; `verdict = "reject"` uses `reject`.
//!
//! Every element carries the ban's remaining time as its kernel timeout, so the kernel lifts
//! bans on time even while mxguard is down; permanent bans carry none. Re-banning refreshes
//! the timeout: a plain `add element` keeps the old one, so each element is added (a no-op
//! if present), deleted and added again with its timeout, in one transaction. Unbanning
//! is add-then-delete, so an element the kernel already expired is not an error.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::firewall::{ActionError, ActionFuture, BanAction, FirewallBan};

/// Elements per `add element` statement (keeps single netlink messages moderate).
const CHUNK: usize = 5000;

/// Settings of one nftables action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftablesSettings {
    pub name: String,
    /// argv prefix of `nft` (`["nft"]`; tests use `["ip", "netns", "exec", NS, "nft"]`).
    pub command: Vec<String>,
    /// Table name in family `inet` (default `mxguard`).
    pub table: String,
    /// TCP ports to block; `None` blocks all traffic from banned addresses.
    pub ports: Option<Vec<u16>>,
    /// `reject` instead of `drop`.
    pub reject: bool,
    /// Deadline of one `nft` run.
    pub timeout: Duration,
}

/// The action.
#[derive(Debug, Clone)]
pub struct NftablesAction {
    s: NftablesSettings,
}

/// Which set an element goes to.
fn set_of(net: &IpNet) -> &'static str {
    let single = net.prefix_len() == net.max_prefix_len();
    match (net, single) {
        (IpNet::V4(_), true) => "ban4",
        (IpNet::V4(_), false) => "net4",
        (IpNet::V6(_), true) => "ban6",
        (IpNet::V6(_), false) => "net6",
    }
}

fn element(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

impl NftablesAction {
    pub fn new(s: NftablesSettings) -> Self {
        NftablesAction { s }
    }

    /// The setup transaction.
    pub fn setup_script(&self) -> String {
        let t = &self.s.table;
        let mut out = format!("add table inet {t}\n");
        for (set, ty, interval) in [
            ("ban4", "ipv4_addr", false),
            ("ban6", "ipv6_addr", false),
            ("net4", "ipv4_addr", true),
            ("net6", "ipv6_addr", true),
        ] {
            let flags = if interval {
                "interval, timeout"
            } else {
                "timeout"
            };
            let _ = writeln!(
                out,
                "add set inet {t} {set} {{ type {ty}; flags {flags}; }}"
            );
        }
        let _ = writeln!(
            out,
            "add chain inet {t} input {{ type filter hook input priority -10; policy accept; }}"
        );
        let _ = writeln!(out, "flush chain inet {t} input");
        let ports = match &self.s.ports {
            Some(p) if !p.is_empty() => {
                let list: Vec<String> = p.iter().map(u16::to_string).collect();
                format!(" tcp dport {{ {} }}", list.join(", "))
            }
            _ => String::new(),
        };
        let verdict = if self.s.reject { "reject" } else { "drop" };
        for (fam, set) in [
            ("ip", "ban4"),
            ("ip", "net4"),
            ("ip6", "ban6"),
            ("ip6", "net6"),
        ] {
            let _ = writeln!(
                out,
                "add rule inet {t} input {fam} saddr @{set}{ports} {verdict}"
            );
        }
        out
    }

    /// The transaction that (re-)applies `bans` with fresh timeouts.
    pub fn ban_script(&self, bans: &[FirewallBan]) -> String {
        let mut out = String::new();
        for (set, group) in grouped(bans) {
            for chunk in group.chunks(CHUNK) {
                let plain: Vec<String> = chunk.iter().map(|b| element(&b.net)).collect();
                let timed: Vec<String> = chunk.iter().map(|b| timed(b)).collect();
                self.statement(&mut out, "add", set, &plain);
                self.statement(&mut out, "delete", set, &plain);
                self.statement(&mut out, "add", set, &timed);
            }
        }
        out
    }

    /// The start-up transaction: every set emptied and filled with `bans` at once (one
    /// `add` per element instead of the add/delete/add a refresh needs, and addresses
    /// unbanned while mxguard was down are lifted). Atomic, so no ban lapses meanwhile.
    pub fn restore_script(&self, bans: &[FirewallBan]) -> String {
        let mut out = String::new();
        for set in ["ban4", "ban6", "net4", "net6"] {
            let _ = writeln!(out, "flush set inet {} {set}", self.s.table);
        }
        for (set, group) in grouped(bans) {
            for chunk in group.chunks(CHUNK) {
                let timed: Vec<String> = chunk.iter().map(|b| timed(b)).collect();
                self.statement(&mut out, "add", set, &timed);
            }
        }
        out
    }

    /// The transaction that removes `bans` (present or not).
    pub fn unban_script(&self, bans: &[FirewallBan]) -> String {
        let mut out = String::new();
        for (set, group) in grouped(bans) {
            for chunk in group.chunks(CHUNK) {
                let plain: Vec<String> = chunk.iter().map(|b| element(&b.net)).collect();
                self.statement(&mut out, "add", set, &plain);
                self.statement(&mut out, "delete", set, &plain);
            }
        }
        out
    }

    fn statement(&self, out: &mut String, verb: &str, set: &str, elements: &[String]) {
        let _ = writeln!(
            out,
            "{verb} element inet {} {set} {{ {} }}",
            self.s.table,
            elements.join(", ")
        );
    }

    /// Runs `nft -f -` with `script` on stdin.
    async fn run(&self, script: String) -> Result<(), ActionError> {
        if script.is_empty() {
            return Ok(());
        }
        let name = self.s.name.clone();
        let Some((prog, args)) = self.s.command.split_first() else {
            return Err(ActionError::Spawn {
                action: name,
                detail: "empty command".into(),
            });
        };
        let mut child = Command::new(prog)
            .args(args)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ActionError::Spawn {
                action: name.clone(),
                detail: format!("{prog}: {e}"),
            })?;
        let work = async {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(script.as_bytes()).await?;
                stdin.shutdown().await?;
            }
            child.wait_with_output().await
        };
        match tokio::time::timeout(self.s.timeout, work).await {
            Err(_) => Err(ActionError::Timeout {
                action: name,
                after: self.s.timeout,
            }),
            Ok(Err(e)) => Err(ActionError::Spawn {
                action: name,
                detail: e.to_string(),
            }),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(ActionError::Failed {
                action: name,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
        }
    }
}

/// Bans by target set, in a stable order.
/// An element with its remaining time as the kernel timeout (none: permanent).
fn timed(b: &FirewallBan) -> String {
    match b.timeout {
        Some(t) => format!("{} timeout {}s", element(&b.net), t.as_secs().max(1)),
        None => element(&b.net),
    }
}

fn grouped(bans: &[FirewallBan]) -> Vec<(&'static str, Vec<&FirewallBan>)> {
    let mut out: Vec<(&'static str, Vec<&FirewallBan>)> = Vec::new();
    for set in ["ban4", "net4", "ban6", "net6"] {
        let g: Vec<&FirewallBan> = bans.iter().filter(|b| set_of(&b.net) == set).collect();
        if !g.is_empty() {
            out.push((set, g));
        }
    }
    out
}

impl BanAction for NftablesAction {
    fn name(&self) -> &str {
        &self.s.name
    }

    fn setup(&self) -> ActionFuture<'_> {
        Box::pin(self.run(self.setup_script()))
    }

    fn ban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        Box::pin(self.run(self.ban_script(bans)))
    }

    fn unban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        Box::pin(self.run(self.unban_script(bans)))
    }

    fn restore<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        Box::pin(self.run(self.restore_script(bans)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(ports: Option<Vec<u16>>) -> NftablesAction {
        NftablesAction::new(NftablesSettings {
            name: "nftables".into(),
            command: vec!["nft".into()],
            table: "mxguard".into(),
            ports,
            reject: false,
            timeout: Duration::from_secs(5),
        })
    }

    fn ban(net: &str, t: Option<u64>) -> FirewallBan {
        FirewallBan {
            net: net.parse().unwrap(),
            jail: "j".into(),
            timeout: t.map(Duration::from_secs),
        }
    }

    #[test]
    fn setup_creates_sets_and_rules_idempotently() {
        let s = action(Some(vec![25, 587])).setup_script();
        assert!(s.contains("add set inet mxguard ban4 { type ipv4_addr; flags timeout; }"));
        assert!(
            s.contains("add set inet mxguard net6 { type ipv6_addr; flags interval, timeout; }")
        );
        assert!(s.contains("flush chain inet mxguard input\n"));
        assert!(
            s.contains("add rule inet mxguard input ip saddr @ban4 tcp dport { 25, 587 } drop")
        );
        assert!(!s.contains("flush set"), "bans survive setup");
        let all = action(None).setup_script();
        assert!(all.contains("add rule inet mxguard input ip6 saddr @net6 drop"));
    }

    #[test]
    fn restore_replaces_every_set_in_one_transaction() {
        let s = action(None)
            .restore_script(&[ban("192.0.2.7/32", Some(60)), ban("2001:db8::/64", None)]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            &lines[..4],
            [
                "flush set inet mxguard ban4",
                "flush set inet mxguard ban6",
                "flush set inet mxguard net4",
                "flush set inet mxguard net6",
            ]
        );
        assert_eq!(
            &lines[4..],
            [
                "add element inet mxguard ban4 { 192.0.2.7 timeout 60s }",
                "add element inet mxguard net6 { 2001:db8::/64 }",
            ]
        );
        let empty = action(None).restore_script(&[]);
        assert_eq!(empty.lines().count(), 4, "no bans: the sets are emptied");
    }

    #[test]
    fn ban_batches_refresh_timeouts_per_set() {
        let s = action(None).ban_script(&[
            ban("192.0.2.7/32", Some(600)),
            ban("2001:db8::/64", Some(60)),
            ban("192.0.2.8/32", None),
        ]);
        assert_eq!(
            s,
            "add element inet mxguard ban4 { 192.0.2.7, 192.0.2.8 }\n\
             delete element inet mxguard ban4 { 192.0.2.7, 192.0.2.8 }\n\
             add element inet mxguard ban4 { 192.0.2.7 timeout 600s, 192.0.2.8 }\n\
             add element inet mxguard net6 { 2001:db8::/64 }\n\
             delete element inet mxguard net6 { 2001:db8::/64 }\n\
             add element inet mxguard net6 { 2001:db8::/64 timeout 60s }\n"
        );
        let u = action(None).unban_script(&[ban("192.0.2.7/32", None)]);
        assert_eq!(
            u,
            "add element inet mxguard ban4 { 192.0.2.7 }\ndelete element inet mxguard ban4 { 192.0.2.7 }\n"
        );
    }
}
