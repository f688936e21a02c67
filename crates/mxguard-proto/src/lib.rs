//! Wire formats of mxguard, with no I/O: the Postfix policy delegation protocol
//! (SMTPD_POLICY_README) and Dovecot's auth-policy JSON ([`dovecot`]). Property-tested (proptest); used by the binary's
//! inputs (`mxguard::input::postfix_policy`).
//!
//! This crate knows bytes and attribute names only. It does not decide anything (that is
//! `mxguard-engine`) and it does not read sockets (that is the binary): callers feed bytes into
//! a [`postfix::PolicyDecoder`] and write the bytes produced by [`postfix::encode_reply`].

pub mod dovecot;
pub mod postfix;

pub use postfix::{
    DecodeError, Limits, PolicyDecoder, PolicyRequest, ProtocolState, ReplyAction, encode_reply,
};
