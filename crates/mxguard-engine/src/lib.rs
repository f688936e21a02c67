//! mxguard's decision engine: `Request` in, `Verdict` out.
//!
//! This crate holds the policy logic (static lists, greylisting, and later rate limits, bans,
//! SPF/DNSBL checks) and nothing that talks to the outside world: no sockets, no files, no
//! Postfix attribute names. Time, DNS and storage come in through traits ([`clock::Clock`],
//! [`store::Store`]) so tests run on fake time and in-memory state. The `mxguard` binary maps
//! wire requests into [`Request`], calls the engine, and maps the [`Verdict`] back to the wire.

pub mod account;
pub mod auth;
pub mod checks;
pub mod clock;
pub mod dns;
pub mod dnsbl;
pub mod greylist;
pub mod helo;
pub mod jail;
pub mod limits;
pub mod lists;
pub mod observe;
pub mod policy;
pub mod prepend;
pub mod request;
pub mod spf;
pub mod store;
pub mod verdict;

pub use clock::{Clock, FakeClock, SystemClock, UnixTime};
pub use greylist::{ClientWhitelist, GreylistSettings, RecipientWhitelist, WhitelistError};
pub use lists::{ListEntry, ListError, StaticLists};
pub use policy::{Policy, PolicySettings};
pub use request::{Request, Stage};
pub use store::{MemoryStore, Store, StoreError, StoreFuture};
pub use verdict::{Action, Verdict};
