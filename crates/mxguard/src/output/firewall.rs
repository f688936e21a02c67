//! The seam between ban decisions and the things that enforce them: the [`BanAction`] trait,
//! the [`ActionRegistry`] of configured actions by name, and [`RecordingAction`] for tests.
//!
//! The caller is the ban manager (`jails::bans`: log jails, `mxguard ban`/`unban`, restore at
//! start), which records a ban in the store first, then hands it to every action its jail
//! names. Implementations: [`super::nftables`] (sets with kernel timeouts, one `nft -f`
//! transaction per batch), [`super::ipset`], and [`super::command`] (an argv with `<ip>`,
//! `<jail>`, `<bantime>` placeholders). The policy-level ban list needs no action: the Postfix
//! policy reads the store's ban list directly.
//!
//! What it does not do: decide bans, count failures, or touch the store. Actions get whole
//! batches (`&[FirewallBan]`) because the 100,000-ban restore at start must be one transaction,
//! not 100,000 process spawns.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;

/// One ban as an action needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallBan {
    /// The address (/32, /128) or network (an IPv6 /64 with `ipv6_prefix`) to block.
    pub net: IpNet,
    /// The jail that decided it (`"manual"` for `mxguard ban`, `"auth"` for the auth policy).
    pub jail: String,
    /// Time left until the ban ends; `None` for a permanent ban. Actions that support kernel
    /// timeouts (nftables `flags timeout`, ipset `timeout`) use it so the kernel expires the ban
    /// even while mxguard is down.
    pub timeout: Option<Duration>,
}

/// Why an action failed. The ban stays recorded in the store (and in the policy-level ban
/// list); the ban manager logs the error, counts it, and retries on the next restore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The action's tool could not be run (`nft` missing, permission denied).
    #[error("{action}: cannot run: {detail}")]
    Spawn { action: String, detail: String },
    /// The tool ran and refused (non-zero exit); `detail` carries its stderr.
    #[error("{action}: failed: {detail}")]
    Failed { action: String, detail: String },
    /// The action did not finish within its deadline.
    #[error("{action}: timed out after {after:?}")]
    Timeout { action: String, after: Duration },
}

/// The future every [`BanAction`] method returns (boxed so the trait stays dyn-compatible).
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ActionError>> + Send + 'a>>;

/// Something that enforces bans outside mxguard's own policy answers.
pub trait BanAction: Send + Sync + std::fmt::Debug {
    /// The configured name (`[[action]] name`, or a built-in such as `"nftables"`).
    fn name(&self) -> &str;

    /// Creates what the action owns (table, sets, drop rules) if missing. Idempotent; called
    /// once at start, before the restore batch.
    fn setup(&self) -> ActionFuture<'_>;

    /// Applies every ban of the batch, atomically where the tool allows it. Re-banning an
    /// address that is already blocked refreshes its timeout and is not an error.
    fn ban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a>;

    /// Lifts every ban of the batch. Lifting a ban that is not there is not an error (the
    /// kernel may have expired it already).
    fn unban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a>;

    /// Start-up restore: afterwards the action enforces exactly `bans` (every active ban of
    /// the store routed to it, possibly none). Actions that own their whole state replace
    /// it in one step (nftables); the default bans the batch.
    fn restore<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        Box::pin(async move {
            if bans.is_empty() {
                return Ok(());
            }
            self.ban(bans).await
        })
    }
}

/// The configured actions, by name.
#[derive(Debug, Default, Clone)]
pub struct ActionRegistry {
    actions: BTreeMap<String, Arc<dyn BanAction>>,
}

impl ActionRegistry {
    /// An empty registry (bans are then enforced by the policy-level ban list only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an action under its own name.
    pub fn insert(&mut self, action: Arc<dyn BanAction>) {
        self.actions.insert(action.name().to_string(), action);
    }

    /// The action called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn BanAction>> {
        self.actions.get(name).cloned()
    }

    /// Every action, in name order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn BanAction>> {
        self.actions.values()
    }
}

/// What a [`RecordingAction`] was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Setup,
    Ban(Vec<FirewallBan>),
    Unban(Vec<FirewallBan>),
}

/// An action that only remembers its calls: for tests of the ban manager and of restore
/// batching, where a real firewall is not the point.
#[derive(Debug, Default)]
pub struct RecordingAction {
    name: String,
    calls: Mutex<Vec<Recorded>>,
}

impl RecordingAction {
    pub fn new(name: &str) -> Self {
        RecordingAction {
            name: name.to_string(),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Recorded> {
        self.log().clone()
    }

    /// The call log. A test that panicked while holding it must not make later calls vanish
    /// from the record, so a poisoned lock is taken over rather than skipped.
    fn log(&self) -> std::sync::MutexGuard<'_, Vec<Recorded>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, r: Recorded) -> ActionFuture<'_> {
        self.log().push(r);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl BanAction for RecordingAction {
    fn name(&self) -> &str {
        &self.name
    }

    fn setup(&self) -> ActionFuture<'_> {
        self.record(Recorded::Setup)
    }

    fn ban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        self.record(Recorded::Ban(bans.to_vec()))
    }

    fn unban<'a>(&'a self, bans: &'a [FirewallBan]) -> ActionFuture<'a> {
        self.record(Recorded::Unban(bans.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_finds_actions_by_name_and_recording_keeps_order() {
        let rec = Arc::new(RecordingAction::new("fw"));
        let mut reg = ActionRegistry::new();
        reg.insert(rec.clone());
        assert!(reg.get("other").is_none());
        let fw = reg.get("fw").expect("registered");
        let ban = FirewallBan {
            net: "192.0.2.7/32".parse().expect("net"),
            jail: "postfix".into(),
            timeout: Some(Duration::from_secs(600)),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            fw.setup().await.expect("setup");
            fw.ban(std::slice::from_ref(&ban)).await.expect("ban");
            fw.unban(std::slice::from_ref(&ban)).await.expect("unban");
        });
        assert_eq!(
            rec.calls(),
            vec![
                Recorded::Setup,
                Recorded::Ban(vec![ban.clone()]),
                Recorded::Unban(vec![ban])
            ]
        );
    }
}
