//! The engine's view of one policy question, independent of the wire protocol.
//!
//! The binary's `input::postfix_policy` module fills a [`Request`] from a Postfix policy
//! request (SMTPD_POLICY_README attributes); other inputs may fill it too. Empty or absent
//! attributes become `None`/empty strings here, so checks never see Postfix's spelling.

use std::net::IpAddr;

/// The SMTP stage the question is asked at (Postfix `protocol_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    EndOfMessage,
    Vrfy,
    Etrn,
    /// A stage this version does not know; checks treat it conservatively.
    Other,
}

/// One policy question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub stage: Stage,
    /// The SMTP client's address (Postfix `client_address`).
    pub client_ip: IpAddr,
    /// Verified client hostname, `None` when Postfix says `unknown`.
    pub client_name: Option<String>,
    /// Reverse DNS name (not forward-confirmed), `None` when `unknown`.
    pub reverse_client_name: Option<String>,
    /// HELO/EHLO argument as given.
    pub helo_name: String,
    /// Envelope sender, empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipient; empty at END-OF-MESSAGE with several recipients.
    pub recipient: String,
    /// Number of accepted recipients (0 before END-OF-MESSAGE / DATA).
    pub recipient_count: u32,
    /// Message size in bytes as announced or measured by Postfix (0 if unknown).
    pub size: u64,
    /// Authenticated SASL user, if any.
    pub sasl_username: Option<String>,
    /// Postfix's per-message instance id: the same for all requests of one message.
    pub instance: String,
    /// Queue id, empty before the queue file exists.
    pub queue_id: String,
}

impl Request {
    /// A minimal RCPT-stage request, convenient for tests and benchmarks.
    pub fn rcpt(client_ip: IpAddr, sender: &str, recipient: &str) -> Self {
        Request {
            stage: Stage::Rcpt,
            client_ip,
            client_name: None,
            reverse_client_name: None,
            helo_name: String::new(),
            sender: sender.to_owned(),
            recipient: recipient.to_owned(),
            recipient_count: 0,
            size: 0,
            sasl_username: None,
            instance: String::new(),
            queue_id: String::new(),
        }
    }
}
