//! Builds the configured `[[action]]`s into an [`ActionRegistry`] and the jail -> action
//! routing ([`Routes`]) the ban manager uses.

use std::sync::Arc;

use crate::config::jails::{Action, ActionKind, Jails};
use crate::output::command::CommandAction;
use crate::output::firewall::{ActionRegistry, BanAction};
use crate::output::ipset::{IpsetAction, IpsetSettings};
use crate::output::nftables::{NftablesAction, NftablesSettings};

use super::Routes;

/// The registry of `[[action]]`s.
pub fn build(actions: &[Action]) -> anyhow::Result<ActionRegistry> {
    let mut reg = ActionRegistry::new();
    for a in actions {
        let action: Arc<dyn BanAction> = match &a.kind {
            ActionKind::Nftables {
                command,
                table,
                ports,
                reject,
            } => Arc::new(NftablesAction::new(NftablesSettings {
                name: a.name.clone(),
                command: command.clone(),
                table: table.clone(),
                ports: ports.clone(),
                reject: *reject,
                timeout: a.timeout,
            })),
            ActionKind::Ipset {
                command,
                set4,
                set6,
            } => Arc::new(IpsetAction::new(IpsetSettings {
                name: a.name.clone(),
                command: command.clone(),
                set4: set4.clone(),
                set6: set6.clone(),
                timeout: a.timeout,
            })),
            ActionKind::Command { ban, unban } => Arc::new(CommandAction::new(
                &a.name,
                ban.clone(),
                unban.clone(),
                a.timeout,
            )),
        };
        reg.insert(action);
    }
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
