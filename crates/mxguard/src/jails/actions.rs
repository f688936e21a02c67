//! Builds the configured `[[action]]`s into an [`ActionRegistry`] and the jail -> action
//! routing ([`Routes`]) the ban manager uses.

use crate::config::jails::{Action, ActionKind, Jails};
use crate::output::firewall::ActionRegistry;

use super::Routes;

/// The registry of `[[action]]`s.
pub fn build(actions: &[Action]) -> anyhow::Result<ActionRegistry> {
    let mut reg = ActionRegistry::new();
    for a in actions {
        match &a.kind {
            ActionKind::Nftables { .. } | ActionKind::Ipset { .. } | ActionKind::Command { .. } => {
                anyhow::bail!("[[action]] {}: this action type is not built yet", a.name);
            }
        }
    }
    let _ = &mut reg;
    Ok(reg)
}

/// Which actions each jail's bans go to (`[[jail]] action`, `[bans] action`).
pub fn routes(jails: &Jails) -> Routes {
    Routes {
        jails: jails
            .jails
            .iter()
            .map(|j| (j.settings.name.clone(), j.actions.clone()))
            .collect(),
        default: jails.bans.actions.clone(),
    }
}
