//! The engine's answer: an [`Action`] for Postfix plus the name of the check that decided.
//!
//! Actions mirror Postfix access(5) results that a policy server may return
//! (SMTPD_POLICY_README "Policy server response"); the wire encoding lives in mxguard-proto.

/// What Postfix should do with the request. Texts are the human part after the keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No opinion: Postfix goes on with its next restriction.
    Dunno,
    /// Accept (skips the rest of this restriction list).
    Ok,
    /// Permanent rejection (`REJECT text`, 5xx).
    Reject(String),
    /// Temporary rejection (`DEFER text`, 4xx).
    Defer(String),
    /// Temporary rejection only if the request would otherwise be accepted (greylisting).
    DeferIfPermit(String),
    /// Accept but put the message in the hold queue.
    Hold(String),
    /// Add a header line (`PREPEND name: value`) and otherwise no opinion.
    Prepend(String),
    /// An explicit SMTP reply, e.g. `550 5.7.23 text` (code and enhanced status included).
    Reply(String),
}

impl Action {
    /// A short, closed-set name for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Dunno => "dunno",
            Action::Ok => "ok",
            Action::Reject(_) => "reject",
            Action::Defer(_) => "defer",
            Action::DeferIfPermit(_) => "defer_if_permit",
            Action::Hold(_) => "hold",
            Action::Prepend(_) => "prepend",
            Action::Reply(_) => "reply",
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// The check that decided (`"greylist"`, `"static_list"`, ...); a closed set, usable as a
    /// metrics label. `"none"` when no check had an opinion.
    pub decided_by: &'static str,
}

/// `decided_by` of a verdict produced because the store failed: the policy failed open with
/// [`Action::Dunno`], which the binary maps to its configured fail-open answer and counts
/// (`mxguard_store_errors_total`). See [`Verdict::is_store_error`].
pub const STORE_ERROR: &str = "store_error";

/// Every `decided_by` value the engine produces today (a closed set for metrics labels).
pub const DECIDERS: &[&str] = &[
    "none",
    "static_allow",
    "static_deny",
    "greylist",
    "greylist_whitelist",
    "greylist_awl",
    "limit",
    "account_locked",
    "helo",
    "dnsbl",
    "spf",
    STORE_ERROR,
];

impl Verdict {
    /// A verdict with `action`, decided by `decided_by`.
    pub fn new(action: Action, decided_by: &'static str) -> Self {
        Verdict { action, decided_by }
    }

    /// Whether the store failed and this verdict is the fail-open answer.
    pub fn is_store_error(&self) -> bool {
        self.decided_by == STORE_ERROR
    }

    /// No check had an opinion.
    pub fn dunno() -> Self {
        Verdict {
            action: Action::Dunno,
            decided_by: "none",
        }
    }
}
