//! Dovecot's auth policy protocol (`auth_policy_server_url`): the JSON bodies Dovecot POSTs to
//! `?command=allow` and `?command=report`, and the reply it expects.
//!
//! Observed from Dovecot 2.3.19 (notes/mail-e2e.md): the body is one JSON object whose keys
//! are the configured `auth_policy_request_attributes` (default `login`, `pwhash`, `remote`,
//! `device_id`, `protocol`, `session_id`) plus `tls`, and for `report` also `success` and
//! `policy_reject`. Because the attribute list is configurable, unknown keys are accepted and
//! missing ones default to empty. The reply is `{"status": N, "msg": "..."}`: -1 refuses the
//! login, 0 allows it, N > 0 delays it N seconds. Dovecot shows `msg` to the client verbatim,
//! so it must not carry internal reasons. No HTTP here: the binary's input does that.

use serde::{Deserialize, Serialize};

/// Which question Dovecot asks (`?command=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPolicyCommand {
    /// Before (and again after) password verification: may the login proceed?
    Allow,
    /// After authentication: the outcome, for accounting. The reply is ignored.
    Report,
}

impl AuthPolicyCommand {
    /// Parses the `command` query value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(AuthPolicyCommand::Allow),
            "report" => Some(AuthPolicyCommand::Report),
            _ => None,
        }
    }
}

/// One request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthPolicyRequest {
    /// The user name as the client typed it (`%{requested_username}`).
    pub login: String,
    /// A truncated, nonce-keyed hash of the password (`auth_policy_hash_truncate` bits).
    pub pwhash: String,
    /// The client IP (after XCLIENT / trusted-network forwarding).
    pub remote: String,
    pub device_id: String,
    /// `imap`, `pop3`, `smtp` (Postfix SASL), ...
    pub protocol: String,
    /// Empty for SMTP AUTH through Postfix.
    pub session_id: String,
    pub tls: bool,
    /// `report` only: the final outcome of the login.
    pub success: Option<bool>,
    /// `report` only: whether a policy answer refused it.
    pub policy_reject: Option<bool>,
}

impl AuthPolicyRequest {
    /// Parses a request body.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// The reply body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthPolicyReply {
    /// -1 refuse, 0 allow, N > 0 delay N seconds then continue.
    pub status: i32,
    /// Shown to the client by Dovecot; keep it generic.
    #[serde(default)]
    pub msg: String,
}

impl AuthPolicyReply {
    pub fn allow() -> Self {
        AuthPolicyReply {
            status: 0,
            msg: String::new(),
        }
    }

    pub fn refuse(msg: &str) -> Self {
        AuthPolicyReply {
            status: -1,
            msg: msg.to_owned(),
        }
    }

    pub fn tarpit(seconds: u32) -> Self {
        AuthPolicyReply {
            status: i32::try_from(seconds).unwrap_or(i32::MAX),
            msg: String::new(),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of an integer and a string cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"status\":0}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_observed_dovecot_bodies() {
        let allow = br#"{"device_id":"","login":"alice","protocol":"imap","pwhash":"02ce","remote":"127.0.0.1","session_id":"xDoVsvdg9L9/AAAB","tls":false}"#;
        let r = AuthPolicyRequest::from_json(allow).unwrap();
        assert_eq!(r.login, "alice");
        assert_eq!(r.remote, "127.0.0.1");
        assert_eq!(r.success, None);
        let report = br#"{"device_id":"","login":"alice","protocol":"imap","pwhash":"02ce","remote":"127.0.0.1","session_id":"x","success":true,"policy_reject":false,"tls":false}"#;
        let r = AuthPolicyRequest::from_json(report).unwrap();
        assert_eq!((r.success, r.policy_reject), (Some(true), Some(false)));
        // Extra configured attributes are accepted; missing ones default.
        let r = AuthPolicyRequest::from_json(br#"{"login":"bob","fc_user":"x"}"#).unwrap();
        assert_eq!((r.login.as_str(), r.remote.as_str()), ("bob", ""));
        assert!(AuthPolicyRequest::from_json(b"not json").is_err());
        assert_eq!(
            AuthPolicyCommand::parse("report"),
            Some(AuthPolicyCommand::Report)
        );
        assert_eq!(AuthPolicyCommand::parse("other"), None);
    }

    #[test]
    fn replies_encode_as_dovecot_expects() {
        assert_eq!(
            AuthPolicyReply::refuse("blocked").to_json(),
            br#"{"status":-1,"msg":"blocked"}"#
        );
        assert_eq!(
            AuthPolicyReply::allow().to_json(),
            br#"{"status":0,"msg":""}"#
        );
        assert_eq!(AuthPolicyReply::tarpit(3).status, 3);
        assert_eq!(AuthPolicyReply::tarpit(u32::MAX).status, i32::MAX);
    }

    proptest::proptest! {
        /// Any bytes at all: an error or a request, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = AuthPolicyRequest::from_json(&body);
        }

        /// What Dovecot could send (any strings, with or without the report fields)
        /// decodes to exactly those values.
        #[test]
        fn requests_roundtrip(
            login in ".{0,40}", remote in "[0-9a-f:.]{0,39}", pwhash in "[0-9a-f]{0,8}",
            tls in proptest::bool::ANY, success in proptest::option::of(proptest::bool::ANY),
        ) {
            let r = AuthPolicyRequest {
                login, remote, pwhash, tls, success,
                policy_reject: success.map(|_| false),
                ..AuthPolicyRequest::default()
            };
            let json = serde_json::to_vec(&r).unwrap();
            proptest::prop_assert_eq!(AuthPolicyRequest::from_json(&json).unwrap(), r);
        }
    }
}
