//! One `PREPEND` per reply: the headers a message is owed, handed out one request at a time.
//!
//! Postfix takes one action per policy reply (SMTPD_POLICY_README), but several checks may want
//! a header on the same message: SPF's `Received-SPF:` and greylisting's `X-Greylist:`. The
//! policy collects each request's new headers (in chain order, so `Received-SPF:` comes before
//! `X-Greylist:`) and queues them per message (`instance`); every later request of that message
//! that would otherwise answer `DUNNO` answers the next queued header instead, while a reject or
//! defer always wins and leaves the queue as it is. `PREPEND` is not allowed in
//! `smtpd_end_of_data_restrictions` (access(5)), so END-OF-MESSAGE requests never take a header;
//! DATA requests do (`smtpd_data_restrictions`), which is how a one-recipient message gets both
//! headers. Bounded: at most [`MAX_MESSAGES`] messages (oldest forgotten first) and
//! [`MAX_HEADERS`] headers each. Used by [`crate::policy::Policy`] only; no I/O, no lock inside.

use std::collections::{HashMap, VecDeque};

use crate::request::Stage;

/// Messages with pending headers that are remembered at once.
pub const MAX_MESSAGES: usize = 4096;
/// Pending headers per message (more are dropped, and logged).
pub const MAX_HEADERS: usize = 4;

/// Pending headers of recent messages, keyed by Postfix's `instance`.
#[derive(Debug, Default)]
pub struct HeaderQueue {
    order: VecDeque<String>,
    pending: HashMap<String, VecDeque<(String, &'static str)>>,
}

/// Whether a reply at `stage` may be `PREPEND` (access(5): not after the message content).
pub fn stage_allows_prepend(stage: Stage) -> bool {
    !matches!(stage, Stage::EndOfMessage)
}

impl HeaderQueue {
    /// Queues `headers` for `instance` after the ones already pending.
    pub fn push(&mut self, instance: &str, headers: Vec<(String, &'static str)>) {
        if headers.is_empty() || instance.is_empty() {
            return;
        }
        if !self.pending.contains_key(instance) {
            // `order` may hold messages whose headers were all handed out (pop does not
            // search it); they are skipped here and compacted away now and then.
            while self.pending.len() >= MAX_MESSAGES {
                match self.order.pop_front() {
                    Some(old) => {
                        self.pending.remove(&old);
                    }
                    None => break,
                }
            }
            if self.order.len() >= 2 * MAX_MESSAGES {
                let pending = &self.pending;
                self.order.retain(|i| pending.contains_key(i));
            }
            self.order.push_back(instance.to_string());
        }
        let queue = self.pending.entry(instance.to_string()).or_default();
        for h in headers {
            if queue.len() >= MAX_HEADERS {
                tracing::warn!(instance, header = %h.0, "too many pending headers; dropped");
                continue;
            }
            queue.push_back(h);
        }
    }

    /// The next pending header of `instance`, removed from the queue.
    pub fn pop(&mut self, instance: &str) -> Option<(String, &'static str)> {
        let queue = self.pending.get_mut(instance)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.pending.remove(instance);
        }
        next
    }

    /// Messages with pending headers.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no header is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> (String, &'static str) {
        (s.to_string(), "test")
    }

    #[test]
    fn fifo_per_message_and_bounded() {
        let mut q = HeaderQueue::default();
        q.push("m1", vec![h("A: 1"), h("B: 2")]);
        q.push("m2", vec![h("C: 3")]);
        q.push("", vec![h("lost")]);
        assert_eq!(q.pop("m1").unwrap().0, "A: 1");
        assert_eq!(q.pop("m2").unwrap().0, "C: 3");
        assert_eq!(q.pop("m2"), None);
        assert_eq!(q.pop("m1").unwrap().0, "B: 2");
        assert!(q.is_empty());
        q.push(
            "m",
            (0..MAX_HEADERS + 2)
                .map(|i| h(&format!("H: {i}")))
                .collect(),
        );
        assert_eq!((0..10).filter_map(|_| q.pop("m")).count(), MAX_HEADERS);
        for i in 0..=MAX_MESSAGES {
            q.push(&format!("x{i}"), vec![h("X: 1")]);
        }
        assert_eq!(q.len(), MAX_MESSAGES);
        assert_eq!(q.pop("x0"), None, "oldest message forgotten first");
        assert!(stage_allows_prepend(Stage::Data) && !stage_allows_prepend(Stage::EndOfMessage));
    }
}
