//! The report's running totals: what `report::parse` found in the lines, before sorting and
//! bucketing (`report::summary` does that at the end).
//!
//! Memory is bounded by what the report shows: counters, one entry per distinct rejected
//! client / failed IP / login / account / jail, per-minute series, and the queue-id join
//! state, which keeps two generations of at most [`QUEUE_GENERATION`] ids each (a message's
//! `client=` and `from=` lines are normally a few lines apart; an id older than two
//! generations is forgotten and its message simply not attributed to an account).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::classify::Reason;

/// Ids per generation of the queue-id -> account map.
pub const QUEUE_GENERATION: usize = 50_000;
/// Containment events kept with their details (all are counted).
pub const MAX_EVENTS: usize = 1000;
/// Unparsed lines kept as samples.
pub const MAX_SAMPLES: usize = 5;

/// Series columns in [`Stats::minutes`].
pub const S_REJECTS: usize = 0;
pub const S_AUTH: usize = 1;
pub const S_BANS: usize = 2;

/// Messages, recipients and bytes one account sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Volume {
    pub messages: u64,
    pub recipients: u64,
    pub bytes: u64,
}

impl Volume {
    pub fn add(&mut self, o: Volume) {
        self.messages += o.messages;
        self.recipients += o.recipients;
        self.bytes += o.bytes;
    }
}

/// A containment event: an account locked (by containment or an admin) or unlocked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Containment {
    pub time: String,
    pub kind: &'static str,
    pub account: String,
    pub detail: String,
}

/// Everything counted so far.
#[derive(Debug, Default)]
pub struct Stats {
    pub lines: u64,
    pub in_range: u64,
    pub out_of_range: u64,
    pub unparsed: u64,
    pub unparsed_samples: Vec<String>,
    pub first: Option<i64>,
    pub last: Option<i64>,

    pub received: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub deferred: u64,
    pub held: u64,
    pub rejected: u64,
    pub rejected_temporary: u64,
    pub reasons: [u64; Reason::ALL.len()],
    pub reject_clients: HashMap<IpAddr, u64>,

    pub auth_failures: u64,
    pub auth_postfix: u64,
    pub auth_dovecot: u64,
    pub auth_ips: HashMap<IpAddr, u64>,
    pub auth_logins: HashMap<String, u64>,

    pub bans: u64,
    pub unbans: u64,
    pub bans_by_jail: HashMap<String, u64>,
    /// Jail -> minute -> bans.
    pub ban_minutes: HashMap<String, BTreeMap<i64, u32>>,
    pub limits_reached: HashMap<String, u64>,

    pub locked: u64,
    pub unlocked: u64,
    pub events: Vec<Containment>,

    /// Minute -> [rejects, auth failures, bans].
    pub minutes: BTreeMap<i64, [u32; 3]>,

    pub accounts: HashMap<String, Volume>,
    /// Account -> minute -> volume, kept only when quotas are wanted.
    pub account_minutes: Option<HashMap<String, BTreeMap<i64, Volume>>>,
    pub queue: QueueMap,
    last_held: u128,
}

impl Stats {
    /// Stats that keep per-minute account volumes when `quotas`.
    pub fn new(quotas: bool) -> Stats {
        Stats {
            account_minutes: quotas.then(HashMap::new),
            ..Stats::default()
        }
    }

    /// Notes the time of an in-range line.
    pub fn seen(&mut self, t: i64) {
        self.in_range += 1;
        if self.first.is_none_or(|f| t < f) {
            self.first = Some(t);
        }
        if self.last.is_none_or(|l| t > l) {
            self.last = Some(t);
        }
    }

    pub fn unparsed_line(&mut self, line: &[u8]) {
        self.unparsed += 1;
        if self.unparsed_samples.len() < MAX_SAMPLES {
            let n = line.len().min(200);
            self.unparsed_samples
                .push(String::from_utf8_lossy(&line[..n]).into_owned());
        }
    }

    fn tick(&mut self, t: i64, col: usize, n: u64) {
        let m = self.minutes.entry(t.div_euclid(60)).or_default();
        m[col] = m[col].saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }

    pub fn reject(&mut self, t: i64, reason: Reason, client: Option<IpAddr>, temporary: bool) {
        self.rejected += 1;
        if temporary {
            self.rejected_temporary += 1;
        }
        self.reasons[reason.index()] += 1;
        if let Some(ip) = client {
            *self.reject_clients.entry(ip).or_default() += 1;
        }
        self.tick(t, S_REJECTS, 1);
    }

    /// A held message; repeated lines of one queue id count once.
    pub fn hold(&mut self, qid: Option<u128>) {
        if let Some(q) = qid {
            if q == self.last_held {
                return;
            }
            self.last_held = q;
        }
        self.held += 1;
    }

    pub fn auth_failure(
        &mut self,
        t: i64,
        dovecot: bool,
        ip: Option<IpAddr>,
        login: &[u8],
        n: u64,
    ) {
        self.auth_failures += n;
        if dovecot {
            self.auth_dovecot += n;
        } else {
            self.auth_postfix += n;
        }
        if let Some(ip) = ip {
            *self.auth_ips.entry(ip).or_default() += n;
        }
        if !login.is_empty() {
            let l = String::from_utf8_lossy(login);
            match self.auth_logins.get_mut(l.as_ref()) {
                Some(c) => *c += n,
                None => {
                    self.auth_logins.insert(l.into_owned(), n);
                }
            }
        }
        self.tick(t, S_AUTH, n);
    }

    pub fn ban(&mut self, t: i64, jail: &str) {
        self.bans += 1;
        self.tick(t, S_BANS, 1);
        *self.bans_by_jail.entry(jail.to_owned()).or_default() += 1;
        *self
            .ban_minutes
            .entry(jail.to_owned())
            .or_default()
            .entry(t.div_euclid(60))
            .or_default() += 1;
    }

    pub fn containment(&mut self, t: i64, kind: &'static str, account: &str, detail: &str) {
        if kind == "unlocked" {
            self.unlocked += 1;
        } else {
            self.locked += 1;
        }
        if self.events.len() < MAX_EVENTS {
            self.events.push(Containment {
                time: super::time::rfc3339(t),
                kind,
                account: account.to_owned(),
                detail: detail.to_owned(),
            });
        }
    }

    /// A message of `account` entered the queue.
    pub fn account_volume(&mut self, t: i64, account: &str, v: Volume) {
        match self.accounts.get_mut(account) {
            Some(a) => a.add(v),
            None => {
                self.accounts.insert(account.to_owned(), v);
            }
        }
        if let Some(m) = &mut self.account_minutes {
            m.entry(account.to_owned())
                .or_default()
                .entry(t.div_euclid(60))
                .or_default()
                .add(v);
        }
    }
}

/// Queue id -> SASL account of the message, in two bounded generations.
#[derive(Debug, Default)]
pub struct QueueMap {
    current: HashMap<u128, u32>,
    previous: HashMap<u128, u32>,
    names: Vec<String>,
    index: HashMap<String, u32>,
    /// Ids dropped when a generation was retired.
    pub forgotten: u64,
}

impl QueueMap {
    pub fn insert(&mut self, qid: u128, account: &[u8]) {
        let name = String::from_utf8_lossy(account);
        let i = match self.index.get(name.as_ref()) {
            Some(i) => *i,
            None => {
                let i = self.names.len() as u32;
                self.names.push(name.to_lowercase());
                self.index.insert(name.into_owned(), i);
                i
            }
        };
        if self.current.len() >= QUEUE_GENERATION {
            self.forgotten += self.previous.len() as u64;
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(qid, i);
    }

    /// The account of `qid`, forgetting it (its `from=` line is seen once per message).
    pub fn take(&mut self, qid: u128) -> Option<&str> {
        let i = self
            .current
            .remove(&qid)
            .or_else(|| self.previous.remove(&qid))?;
        self.names.get(i as usize).map(String::as_str)
    }
}

/// A Postfix queue id (short hex or long form, at most 16 alphanumerics) as a number.
pub fn queue_id(b: &[u8]) -> Option<u128> {
    if b.is_empty() || b.len() > 16 || b == b"NOQUEUE" {
        return None;
    }
    let mut v: u128 = 0;
    for c in b {
        if !c.is_ascii_alphanumeric() {
            return None;
        }
        v = (v << 8) | u128::from(*c);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_map_is_bounded_and_joins() {
        let mut q = QueueMap::default();
        q.insert(queue_id(b"4ABC").unwrap(), b"Alice@Example.org");
        assert_eq!(
            q.take(queue_id(b"4ABC").unwrap()),
            Some("alice@example.org")
        );
        assert_eq!(q.take(queue_id(b"4ABC").unwrap()), None);
        for i in 0..(3 * QUEUE_GENERATION as u128) {
            q.insert(i + 1_000_000, b"bob");
        }
        assert!(q.current.len() + q.previous.len() <= 2 * QUEUE_GENERATION);
        assert_eq!(q.forgotten, QUEUE_GENERATION as u64);
        assert!(queue_id(b"NOQUEUE").is_none());
        assert!(queue_id(b"4A:B").is_none());
    }
}
