//! On-disk encodings of the embedded store's rate-limit and account values.
//!
//! Small, versioned, little-endian byte layouts (redb stores `&[u8]`); decoding checks every
//! length and reports corrupt data instead of panicking.
//!
//! - GCRA state: `idle_at: u64`, then one `u128` TAT per window.
//! - Account: version byte `1`; locked flag; if locked `since: u64`, `by: u8` (0 containment,
//!   1 admin), `reason: u32 length + UTF-8`; then `held: u32 count`, each `u16 length + UTF-8`.

use mxguard_engine::UnixTime;
use mxguard_engine::account::{AccountRecord, Lock, LockedBy};
use mxguard_engine::limits::gcra::GcraState;
use mxguard_engine::store::StoreError;

pub(crate) fn encode_gcra(s: &GcraState) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 16 * s.tats.len());
    out.extend_from_slice(&s.idle_at.0.to_le_bytes());
    for t in &s.tats {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("bad {what} record"))
}

/// A cursor over a byte slice with checked reads.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(corrupt(self.what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn str(&mut self, len: usize) -> Result<String, StoreError> {
        let what = self.what;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| corrupt(what))
    }
}

pub(crate) fn decode_gcra(bytes: &[u8]) -> Result<GcraState, StoreError> {
    let mut r = Reader {
        bytes,
        what: "rate-limit",
    };
    let idle_at = UnixTime(r.u64()?);
    if !r.bytes.len().is_multiple_of(16) {
        return Err(corrupt("rate-limit"));
    }
    let mut tats = Vec::with_capacity(r.bytes.len() / 16);
    while !r.bytes.is_empty() {
        tats.push(u128::from_le_bytes(r.array()?));
    }
    Ok(GcraState { tats, idle_at })
}

pub(crate) fn encode_account(a: &AccountRecord) -> Vec<u8> {
    let mut out = vec![1u8];
    match &a.locked {
        None => out.push(0),
        Some(lock) => {
            out.push(1);
            out.extend_from_slice(&lock.since.0.to_le_bytes());
            out.push(match lock.by {
                LockedBy::Containment => 0,
                LockedBy::Admin => 1,
            });
            let reason = lock.reason.as_bytes();
            let len = reason.len().min(u32::MAX as usize);
            out.extend_from_slice(&(len as u32).to_le_bytes());
            out.extend_from_slice(reason.get(..len).unwrap_or_default());
        }
    }
    // Queue ids are short (Postfix: at most ~20 characters); longer ones are not ids.
    let held: Vec<&String> = a
        .held
        .iter()
        .filter(|q| q.len() <= usize::from(u16::MAX))
        .collect();
    out.extend_from_slice(&(held.len() as u32).to_le_bytes());
    for q in held {
        out.extend_from_slice(&(q.len() as u16).to_le_bytes());
        out.extend_from_slice(q.as_bytes());
    }
    out
}

pub(crate) fn decode_account(bytes: &[u8]) -> Result<AccountRecord, StoreError> {
    let mut r = Reader {
        bytes,
        what: "account",
    };
    if r.u8()? != 1 {
        return Err(corrupt("account"));
    }
    let locked = match r.u8()? {
        0 => None,
        1 => {
            let since = UnixTime(r.u64()?);
            let by = match r.u8()? {
                0 => LockedBy::Containment,
                1 => LockedBy::Admin,
                _ => return Err(corrupt("account")),
            };
            let len = r.u32()? as usize;
            let reason = r.str(len)?;
            Some(Lock { since, by, reason })
        }
        _ => return Err(corrupt("account")),
    };
    let n = r.u32()? as usize;
    let mut held = Vec::with_capacity(n.min(r.bytes.len() / 2));
    for _ in 0..n {
        let len = usize::from(r.u16()?);
        held.push(r.str(len)?);
    }
    Ok(AccountRecord { locked, held })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_roundtrip_and_corruption() {
        let s = GcraState {
            tats: vec![1, u128::MAX, 42],
            idle_at: UnixTime(1_790_000_000),
        };
        assert_eq!(decode_gcra(&encode_gcra(&s)).expect("decode"), s);
        let enc = encode_gcra(&s);
        assert!(decode_gcra(&enc[..enc.len() - 1]).is_err());
        assert!(decode_gcra(&[1, 2]).is_err());
    }

    #[test]
    fn account_roundtrip_and_corruption() {
        let a = AccountRecord {
            locked: Some(Lock {
                since: UnixTime(1_790_000_000),
                by: LockedBy::Admin,
                reason: "compromised, rotated password".into(),
            }),
            held: vec!["4Zx1aB2cD3".into(), "ABCDEF123".into()],
        };
        let enc = encode_account(&a);
        assert_eq!(decode_account(&enc).expect("decode"), a);
        for cut in 0..enc.len() {
            assert!(decode_account(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let b = AccountRecord {
            locked: None,
            held: vec![],
        };
        assert_eq!(decode_account(&encode_account(&b)).expect("decode"), b);
        assert!(decode_account(&[2, 0, 0, 0, 0, 0]).is_err());
    }
}
