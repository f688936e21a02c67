//! Inputs of the daemon: the Postfix policy delegation listener ([`postfix_policy`]), the
//! Dovecot auth-policy endpoint ([`dovecot_auth`]), and the log sources of the jails: files
//! ([`logtail`]) and the systemd journal ([`journal`]).

pub mod dovecot_auth;
pub mod journal;
pub mod logtail;
pub mod postfix_policy;
