//! fail2ban-compatible filters: reads fail2ban `filter.d` files as they are and matches log lines
//! exactly as fail2ban does. No I/O beyond reading filter files, no tokio.
//!
//! Layers, bottom up: [`ini`] (one file, configparser rules) → [`config`] (includes, `.local`,
//! `%(x)s`, `<tag>`, init options) → [`tags`] + [`translate`] (fail2ban tags and the Python regex
//! dialect) → [`matcher`] (`regex` crate, or `fancy-regex` behind a linear superset) → [`date`]
//! (templates, date removal) → [`filter`] (the per-line pipeline). `mxguard test-filter` and the
//! conformance test in `tests/` use [`Filter`]; nothing here reads logs or keeps time itself: the
//! caller passes `now`.

pub mod config;
pub mod date;
pub mod error;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod ini;
pub mod literals;
pub mod matcher;
pub mod tags;
pub mod translate;

pub use config::{FilterDefinition, FilterSpec};
pub use error::FilterError;
pub use filter::{FailureId, Filter, FilterOptions, Hit, HitKind, LineResult};
pub use matcher::Engine;
