//! The ipset ban action (`[[action]] type = "ipset"`), for hosts still filtering with
//! iptables: two `hash:net` sets with kernel timeouts (`mxguard4`, `mxguard6`), changed with
//! one `ipset restore` per batch. mxguard does not write iptables rules; the administrator
//! adds, once (docs/jails.md):
//! `iptables -I INPUT -m set --match-set mxguard4 src -j DROP` and the `ip6tables` twin.
//!
//! `create ... -exist` is idempotent; `add ... -exist` refreshes the timeout of an element
//! that is already there; `del ... -exist` does not fail for an element the kernel already
//! expired. `timeout 0` is a permanent element in a set created with timeout support.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::firewall::{ActionError, ActionFuture, BanAction, FirewallBan};

/// Settings of one ipset action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsetSettings {
    pub name: String,
    /// argv prefix of `ipset` (default `["ipset"]`).
    pub command: Vec<String>,
    pub set4: String,
    pub set6: String,
    pub timeout: Duration,
}

/// The action.
#[derive(Debug, Clone)]
pub struct IpsetAction {
    s: IpsetSettings,
}

impl IpsetAction {
    pub fn new(s: IpsetSettings) -> Self {
        IpsetAction { s }
    }

    fn set(&self, net: &IpNet) -> &str {
        match net {
            IpNet::V4(_) => &self.s.set4,
            IpNet::V6(_) => &self.s.set6,
        }
    }

    pub fn setup_script(&self) -> String {
        // maxelem well above fail2ban's 65536 cap (fail2ban#3549).
        format!(
            "create {} hash:net family inet timeout 0 maxelem 1048576 -exist\n\
             create {} hash:net family inet6 timeout 0 maxelem 1048576 -exist\n",
            self.s.set4, self.s.set6
        )
    }

    pub fn ban_script(&self, bans: &[FirewallBan]) -> String {
        let mut out = String::new();
        for b in bans {
            let t = b.timeout.map_or(0, |t| t.as_secs().clamp(1, 2_147_483));
            let _ = writeln!(out, "add {} {} timeout {t} -exist", self.set(&b.net), b.net);
        }
        out
    }

    pub fn unban_script(&self, bans: &[FirewallBan]) -> String {
        let mut out = String::new();
        for b in bans {
            let _ = writeln!(out, "del {} {} -exist", self.set(&b.net), b.net);
        }
        out
    }

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
            .arg("restore")
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

impl BanAction for IpsetAction {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_use_exist_for_idempotence_and_refresh() {
        let a = IpsetAction::new(IpsetSettings {
            name: "ipset".into(),
            command: vec!["ipset".into()],
            set4: "mxguard4".into(),
            set6: "mxguard6".into(),
            timeout: Duration::from_secs(5),
        });
        assert!(
            a.setup_script()
                .contains("create mxguard6 hash:net family inet6 timeout 0")
        );
        let bans = [
            FirewallBan {
                net: "192.0.2.7/32".parse().unwrap(),
                jail: "j".into(),
                timeout: Some(Duration::from_secs(600)),
            },
            FirewallBan {
                net: "2001:db8::/64".parse().unwrap(),
                jail: "j".into(),
                timeout: None,
            },
        ];
        assert_eq!(
            a.ban_script(&bans),
            "add mxguard4 192.0.2.7/32 timeout 600 -exist\nadd mxguard6 2001:db8::/64 timeout 0 -exist\n"
        );
        assert_eq!(
            a.unban_script(&bans[..1]),
            "del mxguard4 192.0.2.7/32 -exist\n"
        );
    }
}
