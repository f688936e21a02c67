//! policyd-spf's once-per-message behaviour, for a policy service shared by many connections.
//!
//! Postfix asks the policy service once per recipient; policyd-spf checks SPF on the first
//! request of a message (one `instance`) and answers the later ones from its cache: DUNNO after a
//! prepend ("Header already pre-pended"), the same answer after a reject or defer. The memo
//! also keeps the SPF-verified sender domain of each message, which greylisting by domain uses.
//! It is bounded (oldest message forgotten first), holds no lock itself, and does no I/O; the
//! policy keeps it behind a mutex that is never held across an `.await`.

use std::collections::{HashMap, VecDeque};

use super::policyd_spf::SpfDecision;
use crate::verdict::Action;

/// Decisions of recent messages, keyed by Postfix's `instance`.
#[derive(Debug, Clone)]
pub struct MessageMemo {
    capacity: usize,
    order: VecDeque<String>,
    decisions: HashMap<String, SpfDecision>,
}

impl Default for MessageMemo {
    /// Remembers 4096 messages: far more than are in flight at once on one server.
    fn default() -> Self {
        MessageMemo::with_capacity(4096)
    }
}

impl MessageMemo {
    /// A memo of at most `capacity` messages (at least one).
    pub fn with_capacity(capacity: usize) -> MessageMemo {
        MessageMemo {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            decisions: HashMap::new(),
        }
    }

    /// The answer for a later request of an already decided message, if any.
    pub fn repeat(&self, instance: &str) -> Option<SpfDecision> {
        let d = self.decisions.get(instance)?;
        Some(match d.action {
            Action::Prepend(_) => SpfDecision {
                action: Action::Dunno,
                ..d.clone()
            },
            _ => d.clone(),
        })
    }

    /// The SPF-verified sender domain of a decided message.
    pub fn verified_sender_domain(&self, instance: &str) -> Option<&str> {
        self.decisions.get(instance)?.verified_sender_domain()
    }

    /// Remembers the decision of a message. An empty instance (not sent by the client) is not
    /// remembered, so every such request is checked.
    pub fn remember(&mut self, instance: &str, decision: &SpfDecision) {
        if instance.is_empty() {
            return;
        }
        if !self.decisions.contains_key(instance) {
            if self.order.len() >= self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.decisions.remove(&old);
            }
            self.order.push_back(instance.to_string());
        }
        self.decisions
            .insert(instance.to_string(), decision.clone());
    }

    /// How many messages are remembered.
    pub fn len(&self) -> usize {
        self.decisions.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }
}
