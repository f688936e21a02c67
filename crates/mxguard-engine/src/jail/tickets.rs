//! Failure tickets: fail2ban's `FailTicket` bookkeeping per network (`server/failmanager.py`
//! `FailManager.addFailure`, `server/ticket.py`). Not a sliding window: when the first failure
//! of a ticket falls out of `findtime`, the retry count is rescaled to the rate it implies over
//! one `findtime` (README §4.1), which is what fail2ban does and what its users' `maxretry`
//! settings were tuned against.

use std::collections::HashMap;

use ipnet::IpNet;

/// One network's pending failures.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// Weighted failure count (fractional with the increment observer's weights).
    pub retry: f64,
    /// Start of the counting window (first failure, or `last - findtime` after a rescale).
    pub first: i64,
    /// Time of the latest failure (log time).
    pub last: i64,
    /// Raw number of failures seen.
    pub failures: u32,
}

/// The tickets of one jail.
#[derive(Debug, Default)]
pub struct Tickets {
    map: HashMap<IpNet, Ticket>,
}

impl Tickets {
    /// Adds a failure of `net` at log time `t`: fail2ban's rule. A ticket whose last failure
    /// is at or before `now - findtime` counts as gone (fail2ban's periodic cleanup would
    /// have removed it; doing it here makes the result independent of cleanup timing).
    pub fn add(&mut self, net: IpNet, t: i64, now: i64, findtime: i64, weight: f64) -> &Ticket {
        let stale = now.saturating_sub(findtime);
        let ticket = self
            .map
            .entry(net)
            .and_modify(|k| {
                if k.last <= stale {
                    *k = Ticket::new(t, 0.0);
                }
            })
            .or_insert_with(|| Ticket::new(t, 0.0));
        if ticket.failures > 0 && t > ticket.last {
            if ticket.first < t - findtime {
                // retry = round(retry / (t - first) * findtime); Python's round() rounds half
                // to even.
                let span = (t - ticket.first) as f64;
                ticket.retry = (ticket.retry / span * findtime as f64).round_ties_even();
                ticket.first = t - findtime;
            }
            ticket.last = t;
        }
        ticket.retry += weight;
        ticket.failures = ticket.failures.saturating_add(1);
        ticket
    }

    pub fn get(&self, net: &IpNet) -> Option<&Ticket> {
        self.map.get(net)
    }

    pub fn remove(&mut self, net: &IpNet) -> Option<Ticket> {
        self.map.remove(net)
    }

    /// Removes tickets whose last failure is at or before `stale`.
    pub fn cleanup(&mut self, stale: i64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, k| k.last > stale);
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Ticket {
    fn new(t: i64, retry: f64) -> Self {
        Ticket {
            retry,
            first: t,
            last: t,
            failures: 0,
        }
    }
}
