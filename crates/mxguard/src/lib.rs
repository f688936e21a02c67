//! The mxguard binary's library: CLI, configuration, inputs, stores and outputs wired together.
//!
//! Architecture (see docs/architecture.md): data flows one way, wire -> `mxguard_engine::Request`
//! -> `Verdict` -> wire. The three libraries (proto, engine, filter) never depend on each other.
//!
//! Layout:
//! - [`cli`]: argument parsing and one module per subcommand;
//! - [`config`]: the TOML file, validated with file/line/column errors;
//! - [`service`]: the daemon (start, reload, drain), used by `serve` and by tests;
//! - [`input::postfix_policy`]: the Postfix policy delegation listener;
//! - [`jails`]: log jails, the ban manager and its firewall actions ([`input::logtail`]
//!   reads the logs);
//! - [`control`]: the local admin socket behind `status` and `greylist`;
//! - [`output::metrics`]: Prometheus counters and the `/metrics` endpoint;
//! - [`store`]: state backends behind the engine's `Store` trait (embedded redb by default);
//! - `audit`: checks Postfix and Dovecot configurations;
//! - `dns`: the resolver behind the engine's DNS trait;
//! - [`report`]: `mxguard report`, log analytics (text, JSON, HTML).

pub mod audit;
pub mod cli;
pub mod config;
pub mod control;
pub mod dns;
pub mod input;
pub mod jails;
pub mod output;
pub mod report;
pub mod service;
pub mod store;
