//! Inputs of the daemon: the services that receive questions. Today the Postfix policy
//! delegation listener ([`postfix_policy`]); the Dovecot auth-policy endpoint and log tailing
//! come with their capabilities.

pub mod dovecot_auth;
pub mod logtail;
pub mod postfix_policy;
