//! Postfix SMTPD policy delegation protocol (Postfix's SMTPD_POLICY_README).
//!
//! A request is a block of `name=value` lines ended by an empty line; the reply is
//! `action=<access(5) action>` followed by an empty line. Postfix keeps the connection open and
//! sends many requests on it, one at a time, waiting for each reply.
//!
//! [`PolicyDecoder`] is a streaming, bounded decoder: the caller feeds whatever bytes arrived
//! and pulls complete [`PolicyRequest`]s. Every bound (line length, attributes per request,
//! bytes per request) yields a typed [`DecodeError`] *once the bad request has ended* (at its
//! empty line), so the caller answers exactly once per request and the stream stays in step.
//! Bytes of a bad request are discarded, not buffered; if too many are discarded without an
//! end in sight the decoder gives up with [`DecodeError::Unrecoverable`] and the caller should
//! close the connection.

mod decoder;
mod reply;
mod request;

pub use decoder::{Limits, PolicyDecoder};
pub use reply::{ReplyAction, decode_reply, encode_reply};
pub use request::{PolicyRequest, ProtocolState};

/// The only request type Postfix sends (`request=smtpd_access_policy`).
pub const REQUEST_TYPE: &str = "smtpd_access_policy";

/// Why a request could not be decoded. All but [`DecodeError::Unrecoverable`] leave the
/// decoder in step with the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("attribute line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("more than {limit} attributes in one request")]
    TooManyAttributes { limit: usize },
    #[error("request larger than {limit} bytes")]
    RequestTooLarge { limit: usize },
    #[error("line {line} of the request is not name=value")]
    MalformedLine { line: usize },
    #[error("attribute {name} has an invalid value")]
    InvalidValue { name: String },
    #[error("unsupported request type {request:?} (expected smtpd_access_policy)")]
    UnsupportedRequest { request: String },
    #[error("request has no request= attribute")]
    MissingRequest,
    #[error("empty request (a blank line with no attributes)")]
    EmptyRequest,
    #[error("too much malformed input without a request end; giving up on this stream")]
    Unrecoverable,
}

impl DecodeError {
    /// True when the stream cannot be resynchronised and should be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, DecodeError::Unrecoverable)
    }

    /// A short closed-set name, for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::LineTooLong { .. } => "line_too_long",
            DecodeError::TooManyAttributes { .. } => "too_many_attributes",
            DecodeError::RequestTooLarge { .. } => "request_too_large",
            DecodeError::MalformedLine { .. } => "malformed_line",
            DecodeError::InvalidValue { .. } => "invalid_value",
            DecodeError::UnsupportedRequest { .. } => "unsupported_request",
            DecodeError::MissingRequest => "missing_request",
            DecodeError::EmptyRequest => "empty_request",
            DecodeError::Unrecoverable => "unrecoverable",
        }
    }
}
