//! The typed Postfix policy request: every attribute Postfix 3.7 sends (SMTPD_POLICY_README,
//! "Protocol description"), plus the few later versions add, plus unknown ones kept verbatim.
//!
//! Values are kept as Postfix spells them (`client_name=unknown` stays `"unknown"`); mapping to
//! the engine's meaning is the binary's job. Numbers and the protocol state are typed; an
//! attribute that fails to parse is a [`DecodeError::InvalidValue`] so a broken client is
//! noticed rather than silently treated as zero.

use std::borrow::Cow;
use std::net::IpAddr;

use super::DecodeError;

/// The SMTP protocol state of the request (`protocol_state=`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ProtocolState {
    Connect,
    Ehlo,
    Helo,
    Mail,
    #[default]
    Rcpt,
    Data,
    EndOfMessage,
    Vrfy,
    Etrn,
    /// A state this version does not know, spelled as received.
    Other(String),
}

impl ProtocolState {
    /// Parses Postfix's spelling (`RCPT`, `END-OF-MESSAGE`, ...); case-insensitive.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "CONNECT" => ProtocolState::Connect,
            "EHLO" => ProtocolState::Ehlo,
            "HELO" => ProtocolState::Helo,
            "MAIL" => ProtocolState::Mail,
            "RCPT" => ProtocolState::Rcpt,
            "DATA" => ProtocolState::Data,
            "END-OF-MESSAGE" => ProtocolState::EndOfMessage,
            "VRFY" => ProtocolState::Vrfy,
            "ETRN" => ProtocolState::Etrn,
            _ => ProtocolState::Other(s.to_owned()),
        }
    }

    /// Postfix's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ProtocolState::Connect => "CONNECT",
            ProtocolState::Ehlo => "EHLO",
            ProtocolState::Helo => "HELO",
            ProtocolState::Mail => "MAIL",
            ProtocolState::Rcpt => "RCPT",
            ProtocolState::Data => "DATA",
            ProtocolState::EndOfMessage => "END-OF-MESSAGE",
            ProtocolState::Vrfy => "VRFY",
            ProtocolState::Etrn => "ETRN",
            ProtocolState::Other(s) => s,
        }
    }
}

/// One complete policy request. Field names are Postfix's attribute names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRequest {
    /// `request=`; always `smtpd_access_policy` (the decoder rejects anything else).
    pub request: String,
    pub protocol_state: ProtocolState,
    /// `SMTP` or `ESMTP`.
    pub protocol_name: String,
    /// `None` when the attribute was absent or empty.
    pub client_address: Option<IpAddr>,
    /// Verified client name, `unknown` when it does not verify.
    pub client_name: String,
    pub client_port: Option<u16>,
    /// Reverse DNS name (not forward-confirmed), `unknown` when absent.
    pub reverse_client_name: String,
    pub server_address: Option<IpAddr>,
    pub server_port: Option<u16>,
    pub helo_name: String,
    /// Envelope sender, empty for `<>`.
    pub sender: String,
    pub recipient: String,
    pub recipient_count: u32,
    pub queue_id: String,
    pub instance: String,
    pub size: u64,
    pub etrn_domain: String,
    pub stress: String,
    pub sasl_method: String,
    pub sasl_username: String,
    pub sasl_sender: String,
    pub ccert_subject: String,
    pub ccert_issuer: String,
    pub ccert_fingerprint: String,
    pub ccert_pubkey_fingerprint: String,
    pub encryption_protocol: String,
    pub encryption_cipher: String,
    pub encryption_keysize: u32,
    pub policy_context: String,
    /// Postfix 3.8+ (`compatibility_level=`); `None` when absent.
    pub compatibility_level: Option<String>,
    /// Postfix 3.8+ (`mail_version=`); `None` when absent.
    pub mail_version: Option<String>,
    /// Attributes this version does not know, in arrival order.
    pub unknown: Vec<(String, String)>,
}

fn parse_num<T: std::str::FromStr + Default>(name: &str, value: &str) -> Result<T, DecodeError> {
    if value.is_empty() {
        return Ok(T::default());
    }
    value.parse().map_err(|_| DecodeError::InvalidValue {
        name: name.to_owned(),
    })
}

fn parse_opt<T: std::str::FromStr>(name: &str, value: &str) -> Result<Option<T>, DecodeError> {
    if value.is_empty() {
        return Ok(None);
    }
    // Postfix sends IPv6 client addresses without brackets, but tolerate `[...]` and an
    // `IPv6:` prefix, which some hand-written clients use.
    let v = value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_start_matches("IPv6:")
        .trim_start_matches("ipv6:");
    v.parse().map(Some).map_err(|_| DecodeError::InvalidValue {
        name: name.to_owned(),
    })
}

impl PolicyRequest {
    /// Sets one attribute from its wire name and value. Later duplicates overwrite earlier
    /// ones, as in Postfix's own attribute reader.
    pub(crate) fn set(&mut self, name: &str, v: Cow<'_, str>) -> Result<(), DecodeError> {
        let value: &str = &v;
        match name {
            "request" => self.request = v.into_owned(),
            "protocol_state" => self.protocol_state = ProtocolState::parse(value),
            "protocol_name" => self.protocol_name = v.into_owned(),
            "client_address" => self.client_address = parse_opt(name, value)?,
            "client_name" => self.client_name = v.into_owned(),
            "client_port" => self.client_port = parse_opt(name, value)?,
            "reverse_client_name" => self.reverse_client_name = v.into_owned(),
            "server_address" => self.server_address = parse_opt(name, value)?,
            "server_port" => self.server_port = parse_opt(name, value)?,
            "helo_name" => self.helo_name = v.into_owned(),
            "sender" => self.sender = v.into_owned(),
            "recipient" => self.recipient = v.into_owned(),
            "recipient_count" => self.recipient_count = parse_num(name, value)?,
            "queue_id" => self.queue_id = v.into_owned(),
            "instance" => self.instance = v.into_owned(),
            "size" => self.size = parse_num(name, value)?,
            "etrn_domain" => self.etrn_domain = v.into_owned(),
            "stress" => self.stress = v.into_owned(),
            "sasl_method" => self.sasl_method = v.into_owned(),
            "sasl_username" => self.sasl_username = v.into_owned(),
            "sasl_sender" => self.sasl_sender = v.into_owned(),
            "ccert_subject" => self.ccert_subject = v.into_owned(),
            "ccert_issuer" => self.ccert_issuer = v.into_owned(),
            "ccert_fingerprint" => self.ccert_fingerprint = v.into_owned(),
            "ccert_pubkey_fingerprint" => self.ccert_pubkey_fingerprint = v.into_owned(),
            "encryption_protocol" => self.encryption_protocol = v.into_owned(),
            "encryption_cipher" => self.encryption_cipher = v.into_owned(),
            "encryption_keysize" => self.encryption_keysize = parse_num(name, value)?,
            "policy_context" => self.policy_context = v.into_owned(),
            "compatibility_level" => self.compatibility_level = Some(v.into_owned()),
            "mail_version" => self.mail_version = Some(v.into_owned()),
            _ => self.unknown.push((name.to_owned(), v.into_owned())),
        }
        Ok(())
    }

    /// Writes the request as Postfix would send it (Postfix 3.7's attribute order, then any
    /// optional and unknown attributes, then the terminating empty line). Used by tests,
    /// benchmarks and the fuzz round-trip; values must not contain newlines.
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map(ToString::to_string).unwrap_or_default()
        }
        let pairs: [(&str, String); 29] = [
            ("request", self.request.clone()),
            ("protocol_state", self.protocol_state.as_str().to_owned()),
            ("protocol_name", self.protocol_name.clone()),
            ("client_address", opt(&self.client_address)),
            ("client_name", self.client_name.clone()),
            ("client_port", opt(&self.client_port)),
            ("reverse_client_name", self.reverse_client_name.clone()),
            ("server_address", opt(&self.server_address)),
            ("server_port", opt(&self.server_port)),
            ("helo_name", self.helo_name.clone()),
            ("sender", self.sender.clone()),
            ("recipient", self.recipient.clone()),
            ("recipient_count", self.recipient_count.to_string()),
            ("queue_id", self.queue_id.clone()),
            ("instance", self.instance.clone()),
            ("size", self.size.to_string()),
            ("etrn_domain", self.etrn_domain.clone()),
            ("stress", self.stress.clone()),
            ("sasl_method", self.sasl_method.clone()),
            ("sasl_username", self.sasl_username.clone()),
            ("sasl_sender", self.sasl_sender.clone()),
            ("ccert_subject", self.ccert_subject.clone()),
            ("ccert_issuer", self.ccert_issuer.clone()),
            ("ccert_fingerprint", self.ccert_fingerprint.clone()),
            (
                "ccert_pubkey_fingerprint",
                self.ccert_pubkey_fingerprint.clone(),
            ),
            ("encryption_protocol", self.encryption_protocol.clone()),
            ("encryption_cipher", self.encryption_cipher.clone()),
            ("encryption_keysize", self.encryption_keysize.to_string()),
            ("policy_context", self.policy_context.clone()),
        ];
        let mut put = |k: &str, v: &str| {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        };
        for (k, v) in &pairs {
            put(k, v);
        }
        if let Some(v) = &self.compatibility_level {
            put("compatibility_level", v);
        }
        if let Some(v) = &self.mail_version {
            put("mail_version", v);
        }
        for (k, v) in &self.unknown {
            put(k, v);
        }
        out.push(b'\n');
    }

    /// A typical RCPT request (as observed from Postfix 3.7), for tests and benchmarks.
    pub fn rcpt(client: IpAddr, sender: &str, recipient: &str) -> Self {
        PolicyRequest {
            request: super::REQUEST_TYPE.to_owned(),
            protocol_state: ProtocolState::Rcpt,
            protocol_name: "ESMTP".to_owned(),
            client_address: Some(client),
            client_name: "unknown".to_owned(),
            client_port: Some(40000),
            reverse_client_name: "unknown".to_owned(),
            server_address: None,
            server_port: Some(25),
            helo_name: "client.test".to_owned(),
            sender: sender.to_owned(),
            recipient: recipient.to_owned(),
            ..PolicyRequest::default()
        }
    }
}
