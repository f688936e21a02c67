//! The mxguard binary's library: CLI, configuration, inputs, stores and outputs wired together.
//!
//! Architecture (see docs/architecture.md): data flows one way, wire -> `mxguard_engine::Request`
//! -> `Verdict` -> wire. `cli` parses the command line and dispatches; `audit` checks Postfix and
//! Dovecot configurations; the daemon pieces (config, inputs, stores, outputs) are wired in
//! `service`. The three libraries (proto, engine, filter) never depend on each other.

pub mod audit;
pub mod cli;
pub mod dns;
