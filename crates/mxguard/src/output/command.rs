//! The command ban action (`[[action]] type = "command"`): runs an argv template per ban,
//! for anything mxguard has no built-in action for (a cloud firewall API, a router, a
//! notification). Placeholders, substituted inside every argument: `<ip>` (address, or CIDR
//! text for a network), `<jail>`, `<bantime>` (seconds left, `-1` permanent). No shell is
//! involved unless the template names one (`["sh", "-c", "..."]`), so an address can never
//! become shell syntax. One process per ban and at most `timeout` each; the failures of a
//! batch are reported together.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::firewall::{ActionError, ActionFuture, BanAction, FirewallBan};

/// A validated command action.
#[derive(Debug, Clone)]
pub struct CommandAction {
    name: String,
    ban: Vec<String>,
    unban: Option<Vec<String>>,
    timeout: Duration,
}

impl CommandAction {
    /// `ban` must not be empty (config validation ensures it).
    pub fn new(
        name: &str,
        ban: Vec<String>,
        unban: Option<Vec<String>>,
        timeout: Duration,
    ) -> Self {
        CommandAction {
            name: name.to_string(),
            ban,
            unban,
            timeout,
        }
    }

    async fn run_all(&self, template: &[String], bans: &[FirewallBan]) -> Result<(), ActionError> {
        let mut failures = Vec::new();
        for b in bans {
            let argv = substitute(template, b);
            if let Err(e) = self.run_one(&argv).await {
                failures.push(e);
            }
        }
        match failures.len() {
            0 => Ok(()),
            1 => Err(failures.remove(0)),
            n => Err(ActionError::Failed {
                action: self.name.clone(),
                detail: format!("{n} of {} runs failed; first: {}", bans.len(), failures[0]),
            }),
        }
    }

    async fn run_one(&self, argv: &[String]) -> Result<(), ActionError> {
        let Some((prog, args)) = argv.split_first() else {
            return Ok(());
        };
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ActionError::Spawn {
                action: self.name.clone(),
                detail: format!("{prog}: {e}"),
            })?;
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => Err(ActionError::Timeout {
                action: self.name.clone(),
                after: self.timeout,
            }),
            Ok(Err(e)) => Err(ActionError::Spawn {
                action: self.name.clone(),
                detail: e.to_string(),
            }),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(ActionError::Failed {
                action: self.name.clone(),
                detail: format!(
                    "{prog} exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }),
        }
    }
}

/// The argv for one ban.
pub fn substitute(template: &[String], b: &FirewallBan) -> Vec<String> {
    let ip = match b.net {
        n if n.prefix_len() == n.max_prefix_len() => n.addr().to_string(),
        n => n.to_string(),
    };
    let bantime = b
        .timeout
        .map_or("-1".to_string(), |t| t.as_secs().to_string());
    template
        .iter()
        .map(|a| {
            a.replace("<ip>", &ip)
                .replace("<jail>", &b.jail)
                .replace("<bantime>", &bantime)
        })
        .collect()
}

impl BanAction for CommandAction {
    fn name(&self) -> &str {
        &self.name
    }

    fn setup(&self) -> ActionFuture<'_> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn ban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        Box::pin(self.run_all(&self.ban, bans))
    }

    fn unban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        Box::pin(async move {
            match &self.unban {
                Some(t) => self.run_all(t, bans).await,
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(net: &str, timeout: Option<u64>) -> FirewallBan {
        FirewallBan {
            net: net.parse().unwrap(),
            jail: "postfix".into(),
            timeout: timeout.map(Duration::from_secs),
        }
    }

    #[test]
    fn placeholders_are_substituted_per_argument() {
        let t: Vec<String> = ["/usr/local/bin/block", "--ip=<ip>", "<jail>", "<bantime>"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            substitute(&t, &ban("192.0.2.7/32", Some(600))),
            ["/usr/local/bin/block", "--ip=192.0.2.7", "postfix", "600"]
        );
        assert_eq!(
            substitute(&t, &ban("2001:db8::/64", None))[1..],
            ["--ip=2001:db8::/64", "postfix", "-1"]
        );
    }

    #[tokio::test]
    async fn runs_each_ban_and_reports_failures() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("bans");
        let a = CommandAction::new(
            "cmd",
            vec![
                "sh".into(),
                "-c".into(),
                format!("echo \"$0 $1\" >> {}", out.display()),
                "<ip>".into(),
                "<bantime>".into(),
            ],
            Some(vec!["false".into()]),
            Duration::from_secs(5),
        );
        a.ban(&[ban("192.0.2.1/32", Some(60)), ban("192.0.2.2/32", None)])
            .await
            .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "192.0.2.1 60\n192.0.2.2 -1\n");
        let e = a.unban(&[ban("192.0.2.1/32", None)]).await.unwrap_err();
        assert!(matches!(e, ActionError::Failed { .. }), "{e}");
        let missing = CommandAction::new(
            "m",
            vec!["/nonexistent/x".into()],
            None,
            Duration::from_secs(1),
        );
        let e = missing.ban(&[ban("192.0.2.1/32", None)]).await.unwrap_err();
        assert!(matches!(e, ActionError::Spawn { .. }), "{e}");
    }
}
