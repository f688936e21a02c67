//! Batched reads: every record a request may need to *look at* (ban list entries, the
//! account, rate-limit states for a RCPT check, the client's auto-whitelist entry), read
//! together before the checks run ([`super::Store::read_many`]).
//!
//! Why: on a networked store each read is a round trip. The policy's checks run one after
//! the other (bans, then limits, then greylisting), so reading as they go costs one round
//! trip per record (six or seven for a SASL request with two limits on Redis). Reading the
//! known keys in one batch (one `MGET`) and then writing only what must be written (the
//! greylist triplet, one script) keeps a RCPT request at two round trips. Backends without a
//! batch operation get the default: the same reads one by one, so semantics never depend on
//! the backend.
//!
//! A failed batch read is kept as the error: each consumer then fails open exactly as it
//! does when its own read fails (a ban lookup does not refuse, the account counts as
//! unlocked, a limit check answers the fail-open verdict).

use std::future::Future;
use std::net::IpAddr;

use super::{AwlRecord, StoreError};
use crate::account::AccountRecord;
use crate::auth::BanRecord;
use crate::limits::gcra::GcraState;

/// One record to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadKey {
    /// A ban-list entry (`ban_key` text).
    Ban(String),
    /// An account record (normalised login).
    Account(String),
    /// A rate-limit state (the limit's store key).
    Limit(String),
    /// A client's auto-whitelist record.
    Awl(IpAddr),
}

/// The record read for a [`ReadKey`] of the same kind (`None`: there is none).
#[derive(Debug, Clone, PartialEq)]
pub enum ReadValue {
    Ban(Option<BanRecord>),
    Account(Option<AccountRecord>),
    Limit(Option<GcraState>),
    Awl(Option<AwlRecord>),
}

/// The result of one batch read, looked up by key.
#[derive(Debug, Clone)]
pub struct Prefetched {
    keys: Vec<ReadKey>,
    values: Vec<Result<ReadValue, StoreError>>,
}

impl Prefetched {
    /// `values` as [`super::Store::read_many`] returned them for `keys`; a failed batch
    /// becomes that error for every key.
    pub fn new(
        keys: Vec<ReadKey>,
        values: Result<Vec<Result<ReadValue, StoreError>>, StoreError>,
    ) -> Self {
        let values = match values {
            Ok(v) => v,
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        };
        Prefetched { keys, values }
    }

    /// Nothing read (no key was needed).
    pub fn empty() -> Self {
        Prefetched {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The value read for `key`: `Ok(None)` when `key` was not part of the batch (the caller
    /// then reads it itself), `Err` when reading it failed.
    pub fn get(&self, key: &ReadKey) -> Result<Option<&ReadValue>, StoreError> {
        let Some(i) = self.keys.iter().position(|k| k == key) else {
            return Ok(None);
        };
        match self.values.get(i) {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(None),
        }
    }

    pub fn ban(&self, key: &str) -> Result<Option<Option<&BanRecord>>, StoreError> {
        Ok(match self.get(&ReadKey::Ban(key.to_owned()))? {
            Some(ReadValue::Ban(b)) => Some(b.as_ref()),
            _ => None,
        })
    }

    pub fn account(&self, user: &str) -> Result<Option<Option<&AccountRecord>>, StoreError> {
        Ok(match self.get(&ReadKey::Account(user.to_owned()))? {
            Some(ReadValue::Account(a)) => Some(a.as_ref()),
            _ => None,
        })
    }

    pub fn limit(&self, key: &str) -> Result<Option<Option<&GcraState>>, StoreError> {
        Ok(match self.get(&ReadKey::Limit(key.to_owned()))? {
            Some(ReadValue::Limit(s)) => Some(s.as_ref()),
            _ => None,
        })
    }

    pub fn awl(&self, client: IpAddr) -> Result<Option<Option<&AwlRecord>>, StoreError> {
        Ok(match self.get(&ReadKey::Awl(client))? {
            Some(ReadValue::Awl(a)) => Some(a.as_ref()),
            _ => None,
        })
    }
}

/// A record from the batch (`found`, one of [`Prefetched`]'s lookups), or, when the batch did
/// not have its key, the single-record `read`. A failed batch read is that record's error.
pub async fn prefetched_or<T, F, Fut>(
    found: Result<Option<Option<&T>>, StoreError>,
    read: F,
) -> Result<Option<T>, StoreError>
where
    T: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<T>, StoreError>>,
{
    match found? {
        Some(rec) => Ok(rec.cloned()),
        None => read().await,
    }
}
