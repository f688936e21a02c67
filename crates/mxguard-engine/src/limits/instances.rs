//! Per-message bookkeeping between the RCPT and END-OF-MESSAGE requests of one message,
//! correlated by Postfix's `instance` attribute (the same for every request of a message,
//! SMTPD_POLICY_README; observed in notes/mail-e2e.md).
//!
//! It remembers the distinct recipients this policy accepted (normalised, so a plus-addressed
//! mailbox counts once), how many RCPT requests it saw (the difference to END-OF-MESSAGE's
//! `recipient_count` is the number Postfix rejected), and whether the message was answered
//! HOLD. Bounded (FIFO eviction) and in memory: a message whose RCPTs were seen by another
//! process (after a restart, or on another MX) is charged from `recipient_count` alone.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many messages in flight are tracked. Postfix's default `smtpd` process limit is 100
/// and one message takes seconds, so this is generous.
pub const MAX_INSTANCES: usize = 65_536;

/// What is known about one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Distinct normalised recipients accepted so far.
    pub recipients: Vec<String>,
    /// RCPT requests seen (accepted or not).
    pub rcpt_requests: u32,
    /// The message was answered HOLD; the subject its queue id is recorded under.
    pub held_for: Option<String>,
}

/// The tracker (see module docs).
#[derive(Debug, Default)]
pub struct Instances {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Seen>,
    order: VecDeque<String>,
}

impl Instances {
    fn with<T>(&self, instance: &str, f: impl FnOnce(&mut Seen) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        if !inner.map.contains_key(instance) {
            if inner.order.len() >= MAX_INSTANCES
                && let Some(old) = inner.order.pop_front()
            {
                inner.map.remove(&old);
            }
            inner.order.push_back(instance.to_owned());
        }
        f(inner.map.entry(instance.to_owned()).or_default())
    }

    /// Counts one RCPT request and returns the recipients the message would have if this one
    /// (already normalised) is accepted. An empty instance is not tracked.
    pub fn rcpt(&self, instance: &str, recipient: &str) -> Vec<String> {
        if instance.is_empty() {
            return vec![recipient.to_owned()];
        }
        self.with(instance, |s| {
            s.rcpt_requests = s.rcpt_requests.saturating_add(1);
            let mut r = s.recipients.clone();
            if !r.iter().any(|x| x == recipient) {
                r.push(recipient.to_owned());
            }
            r
        })
    }

    /// Records that the recipient was accepted.
    pub fn accept(&self, instance: &str, recipient: &str) {
        if instance.is_empty() {
            return;
        }
        self.with(instance, |s| {
            if !s.recipients.iter().any(|x| x == recipient) {
                s.recipients.push(recipient.to_owned());
            }
        });
    }

    /// Records that the message was answered HOLD for `subject`.
    pub fn hold(&self, instance: &str, subject: &str) {
        if instance.is_empty() {
            return;
        }
        self.with(instance, |s| s.held_for = Some(subject.to_owned()));
    }

    /// Ends the message: returns and forgets what was seen (`None` if nothing was).
    pub fn finish(&self, instance: &str) -> Option<Seen> {
        if instance.is_empty() {
            return None;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // The FIFO keeps the name: scanning it here would cost O(n) per message, and
        // evicting a name that is no longer in the map is a no-op.
        g.map.remove(instance)
    }

    /// Messages tracked now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcpt_accept_finish() {
        let t = Instances::default();
        assert_eq!(t.rcpt("i1", "a@x"), vec!["a@x"]);
        t.accept("i1", "a@x");
        assert_eq!(t.rcpt("i1", "a@x"), vec!["a@x"]);
        assert_eq!(t.rcpt("i1", "b@x"), vec!["a@x", "b@x"]);
        t.hold("i1", "alice");
        let s = t.finish("i1").unwrap();
        assert_eq!(s.recipients, vec!["a@x"]);
        assert_eq!(s.rcpt_requests, 3);
        assert_eq!(s.held_for.as_deref(), Some("alice"));
        assert!(t.finish("i1").is_none());
        assert!(t.finish("").is_none());
        assert!(t.is_empty());
    }
}
