//! The stored state of one account (a SASL login): whether it is locked, why and since when,
//! and the Postfix queue ids of the mail held for it. This is *the* account lock: the Postfix
//! policy answers HOLD for a locked account's mail (see [`super::ContainmentSettings`]) and the Dovecot
//! auth-policy endpoint refuses its logins; both read it through
//! [`crate::store::Store::account_get`]. Admin commands (`mxguard account lock|unlock`) write
//! it through the same store, so every MX sharing the store agrees.

use crate::clock::UnixTime;

/// At most this many held queue ids are remembered per account; older ones are dropped first
/// (they stay in Postfix's hold queue and can be released with `postsuper -H ALL hold`).
pub const MAX_HELD: usize = 10_000;

/// Who locked an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockedBy {
    /// Containment reached its score threshold.
    Containment,
    /// An administrator (`mxguard account lock`).
    Admin,
}

impl LockedBy {
    /// The stable spelling used on disk, in JSON and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LockedBy::Containment => "containment",
            LockedBy::Admin => "admin",
        }
    }

    /// The inverse of [`LockedBy::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "containment" => Some(LockedBy::Containment),
            "admin" => Some(LockedBy::Admin),
            _ => None,
        }
    }
}

/// One account's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// `Some` while the account is locked.
    pub locked: Option<Lock>,
    /// Queue ids of messages answered HOLD for this account, oldest first, for release with
    /// `postsuper -H` on unlock.
    pub held: Vec<String>,
}

/// Why and since when an account is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub since: UnixTime,
    pub by: LockedBy,
    /// Human-readable reason (signals and score, or the admin's text).
    pub reason: String,
}

impl AccountRecord {
    /// Whether the account is locked.
    pub fn is_locked(&self) -> bool {
        self.locked.is_some()
    }

    /// Appends a held queue id (once), keeping at most [`MAX_HELD`].
    pub fn add_held(&mut self, queue_id: &str) {
        if queue_id.is_empty() || self.held.iter().any(|q| q == queue_id) {
            return;
        }
        if self.held.len() >= MAX_HELD {
            self.held.remove(0);
        }
        self.held.push(queue_id.to_owned());
    }

    /// Whether the record says nothing (unlocked, nothing held): backends may delete it.
    pub fn is_empty(&self) -> bool {
        self.locked.is_none() && self.held.is_empty()
    }
}

/// Normalises an account name for use as a key: trimmed and lowercased, as Dovecot and
/// Postfix compare logins case-insensitively by default (`auth_username_format = %Lu`).
pub fn account_key(user: &str) -> String {
    user.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_ids_are_unique_and_bounded() {
        let mut r = AccountRecord {
            locked: None,
            held: Vec::new(),
        };
        r.add_held("A1");
        r.add_held("A1");
        r.add_held("");
        assert_eq!(r.held, vec!["A1".to_owned()]);
        for i in 0..MAX_HELD {
            r.add_held(&format!("Q{i}"));
        }
        assert_eq!(r.held.len(), MAX_HELD);
        assert_eq!(r.held.first().map(String::as_str), Some("Q0"));
        assert!(!r.is_empty());
        assert_eq!(account_key(" Alice@Example.ORG "), "alice@example.org");
        assert_eq!(
            LockedBy::parse(LockedBy::Admin.as_str()),
            Some(LockedBy::Admin)
        );
    }
}
