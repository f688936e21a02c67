//! The texts of postfix-policyd-spf-python 3.0.4: the `Received-SPF:` and `X-Comment:` headers,
//! pyspf's result explanations and the `openspf.net/Why` URL of its reject message, byte for
//! byte as shared/notes/spf-policy.md records them (trailing space and the literal `mailfrom`
//! comment included). Used by [`super::policyd_spf`] only.

use super::policyd_spf::MessageInfo;
use super::{Identity, SpfOutcome, SpfResult};

/// The HELO name policyd-spf checks: the HELO, else the sender's domain, else `unknown`.
pub(super) fn effective_helo<'m>(m: &'m MessageInfo<'_>) -> &'m str {
    let sender_domain = m.sender.rsplit_once('@').map_or(&*m.sender, |(_, d)| d);
    match (&*m.helo, sender_domain) {
        ("", "") => "unknown",
        ("", d) => d,
        (h, _) => h,
    }
}

/// `client-ip=...; helo=...; envelope-from=...; receiver=... ` (trailing space included).
pub(super) fn fields(m: &MessageInfo<'_>, helo: &str) -> String {
    let from = if m.sender.is_empty() { "<>" } else { &m.sender };
    format!(
        "client-ip={}; helo={helo}; envelope-from={from}; receiver={} ",
        m.client_ip, m.receiver
    )
}

/// `Pass`, `Fail`, `Softfail`, `Neutral`, `None`, `Permerror`, `Temperror`.
pub(super) fn capitalized(r: SpfResult) -> String {
    let s = r.as_str();
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// pyspf's explanation of a result, which policyd-spf puts in the HELO header comment and in
/// `{spf}` of its reject text.
pub(super) fn reason(out: &SpfOutcome) -> String {
    match out.result {
        SpfResult::Pass => "sender SPF authorized".to_string(),
        SpfResult::SoftFail => "domain owner discourages use of this host".to_string(),
        SpfResult::Neutral => "access neither permitted nor denied".to_string(),
        SpfResult::None => "no SPF record".to_string(),
        SpfResult::Fail => out
            .explanation
            .clone()
            .unwrap_or_else(|| "SPF fail - not authorized".to_string()),
        SpfResult::PermError | SpfResult::TempError => out
            .problem
            .clone()
            .unwrap_or_else(|| out.result.as_str().to_string()),
    }
}

/// `Received-SPF: <Result> (<comment>) identity=...; client-ip=...; helo=...;
/// envelope-from=...; receiver=... `. The MAIL FROM comment is the literal `mailfrom`, as
/// policyd-spf 3.0.4 writes it; the HELO one is pyspf's explanation.
pub(super) fn received_spf(out: &SpfOutcome, m: &MessageInfo<'_>, helo: &str) -> String {
    let comment = match out.identity {
        Identity::Helo => reason(out),
        Identity::MailFrom => "mailfrom".to_string(),
    };
    format!(
        "Received-SPF: {} ({comment}) identity={}; {}",
        capitalized(out.result),
        out.identity.as_str(),
        fields(m, helo)
    )
}

/// `X-Comment: <what> - client-ip=...; helo=...; envelope-from=...; receiver=... `.
pub(super) fn x_comment(what: &str, m: &MessageInfo<'_>) -> String {
    format!("X-Comment: {what} - {}", fields(m, &m.helo))
}

/// `http://www.openspf.net/Why?s=<helo|mfrom>;id=<helo or sender>;ip=<ip>;r=<receiver>`.
pub(super) fn why_url(out: &SpfOutcome, m: &MessageInfo<'_>, helo: &str) -> String {
    let (scope, id) = match out.identity {
        Identity::Helo => ("helo", helo),
        Identity::MailFrom => ("mfrom", &*m.sender),
    };
    format!(
        "http://www.openspf.net/Why?s={scope};id={id};ip={};r={}",
        m.client_ip, m.receiver
    )
}
