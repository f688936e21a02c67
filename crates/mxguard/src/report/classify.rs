//! Reject reasons: which check refused a message, read from the reply text Postfix logs in
//! `NOQUEUE: reject: RCPT from host[ip]: 450 4.7.1 <rcpt>: Recipient address rejected: TEXT;
//! from=<..> to=<..>` lines.
//!
//! mxguard's own default texts come first (the engine's and config's defaults: greylist
//! `Greylisted ...`, policyd-spf `5.7.23`/`5.7.24`/`4.7.24`, DNSBL `blocked using`, limits
//! `rate limit ... exceeded`, bans `Client host is banned`, containment `account locked by
//! mxguard`, static lists `Access denied by local policy`, HELO / reverse-DNS checks), with
//! the peers' texts beside them (postgrey `Greylisted, see http://postgrey...`, policyd-spf
//! `Please see http://www.open-spf.org/Why`, postfwd's `rate limit`), then Postfix's own
//! restrictions (`Relay access denied`, `User unknown`, `Helo command rejected`, ...).
//! Matching is by case-insensitive substring on a few hundred bytes, once per reject line;
//! called by `report::parse`. It does not see texts an admin configured differently.

/// Why a message was refused. The names are the JSON keys and text labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Greylist,
    Spf,
    Dnsbl,
    RateLimit,
    Ban,
    AccountHold,
    DenyList,
    RelayDenied,
    UnknownUser,
    UnknownSenderDomain,
    UnknownRecipientDomain,
    Helo,
    ReverseDns,
    NonFqdn,
    SenderLoginMismatch,
    Pipelining,
    Size,
    AccessMap,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 19] = [
        Reason::Greylist,
        Reason::Spf,
        Reason::Dnsbl,
        Reason::RateLimit,
        Reason::Ban,
        Reason::AccountHold,
        Reason::DenyList,
        Reason::RelayDenied,
        Reason::UnknownUser,
        Reason::UnknownSenderDomain,
        Reason::UnknownRecipientDomain,
        Reason::Helo,
        Reason::ReverseDns,
        Reason::NonFqdn,
        Reason::SenderLoginMismatch,
        Reason::Pipelining,
        Reason::Size,
        Reason::AccessMap,
        Reason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Greylist => "greylist",
            Reason::Spf => "spf",
            Reason::Dnsbl => "dnsbl",
            Reason::RateLimit => "rate_limit",
            Reason::Ban => "ban",
            Reason::AccountHold => "account_hold",
            Reason::DenyList => "deny_list",
            Reason::RelayDenied => "relay_denied",
            Reason::UnknownUser => "unknown_user",
            Reason::UnknownSenderDomain => "unknown_sender_domain",
            Reason::UnknownRecipientDomain => "unknown_recipient_domain",
            Reason::Helo => "helo",
            Reason::ReverseDns => "reverse_dns",
            Reason::NonFqdn => "non_fqdn_address",
            Reason::SenderLoginMismatch => "sender_login_mismatch",
            Reason::Pipelining => "pipelining",
            Reason::Size => "message_size",
            Reason::AccessMap => "access_map",
            Reason::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Substrings (lowercase) in the order they are tried; the first match wins.
const RULES: &[(&str, Reason)] = &[
    // Greylisting: mxguard "4.2.0 Greylisted, please try again in N seconds", postgrey
    // "Greylisted, see http://postgrey.schweikert.ch/help/...", sqlgrey/milter-greylist.
    ("greylist", Reason::Greylist),
    // policyd-spf / mxguard's SPF check: RFC 7372 codes and the default Reason_Message.
    ("5.7.23", Reason::Spf),
    ("5.7.24", Reason::Spf),
    ("4.7.24", Reason::Spf),
    ("spf", Reason::Spf),
    // Postfix reject_rbl_client / postscreen and mxguard's DNSBL check.
    ("blocked using", Reason::Dnsbl),
    // mxguard [[limit]] "rate limit NAME exceeded ...", postfwd rate(), Postfix anvil.
    ("rate limit", Reason::RateLimit),
    ("too many connections", Reason::RateLimit),
    ("too much mail", Reason::RateLimit),
    ("too many recipients", Reason::RateLimit),
    // mxguard ban list ([bans] reject_text default).
    ("client host is banned", Reason::Ban),
    ("is banned", Reason::Ban),
    // mxguard containment ([account] hold_text default) and locked accounts.
    ("account locked", Reason::AccountHold),
    ("account is locked", Reason::AccountHold),
    // mxguard static deny lists (lists::DEFAULT_DENY_TEXT).
    ("access denied by local policy", Reason::DenyList),
    // Postfix's own restrictions (postconf(5), smtpd_*_restrictions).
    ("relay access denied", Reason::RelayDenied),
    ("user unknown", Reason::UnknownUser),
    ("unknown user", Reason::UnknownUser),
    ("mailbox unavailable", Reason::UnknownUser),
    (
        "sender address rejected: domain not found",
        Reason::UnknownSenderDomain,
    ),
    (
        "recipient address rejected: domain not found",
        Reason::UnknownRecipientDomain,
    ),
    ("helo command rejected", Reason::Helo),
    ("cannot find your", Reason::ReverseDns),
    ("need fully-qualified address", Reason::NonFqdn),
    ("not owned by user", Reason::SenderLoginMismatch),
    ("pipelining", Reason::Pipelining),
    ("size exceeds", Reason::Size),
    ("access denied", Reason::AccessMap),
];

/// The reason for a reply text (`450 4.7.1 <x>: Recipient address rejected: ...`).
pub fn classify(reply: &[u8]) -> Reason {
    let n = reply.len().min(400);
    let mut buf = [0u8; 400];
    for (d, s) in buf.iter_mut().zip(&reply[..n]) {
        *d = s.to_ascii_lowercase();
    }
    let text = &buf[..n];
    for (pat, reason) in RULES {
        if memchr::memmem::find(text, pat.as_bytes()).is_some() {
            return *reason;
        }
    }
    Reason::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mxguard_peer_and_postfix_texts() {
        let cases: &[(&str, Reason)] = &[
            (
                "450 4.2.0 <a@b>: Recipient address rejected: Greylisted, please try again in 300 seconds",
                Reason::Greylist,
            ),
            (
                "450 4.2.0 <a@b>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/b.html",
                Reason::Greylist,
            ),
            (
                "550 5.7.23 <a@b>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.open-spf.org/Why?s=mfrom",
                Reason::Spf,
            ),
            (
                "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
                Reason::Dnsbl,
            ),
            (
                "450 4.7.1 <a@b>: Sender address rejected: rate limit out exceeded, try again in 30 seconds",
                Reason::RateLimit,
            ),
            (
                "554 5.7.1 <x[192.0.2.1]>: Client host rejected: 5.7.1 Client host is banned",
                Reason::Ban,
            ),
            (
                "554 5.7.1 <a@b>: Sender address rejected: account locked by mxguard, message held for review",
                Reason::AccountHold,
            ),
            (
                "554 5.7.1 <a@b>: Sender address rejected: 5.7.1 Access denied by local policy",
                Reason::DenyList,
            ),
            ("554 5.7.1 <a@c>: Relay access denied", Reason::RelayDenied),
            (
                "550 5.1.1 <x@b>: Recipient address rejected: User unknown in virtual mailbox table",
                Reason::UnknownUser,
            ),
            (
                "450 4.1.8 <a@nx.invalid>: Sender address rejected: Domain not found",
                Reason::UnknownSenderDomain,
            ),
            (
                "504 5.5.2 <OEM>: Helo command rejected: need fully-qualified hostname",
                Reason::Helo,
            ),
            (
                "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]",
                Reason::ReverseDns,
            ),
            ("554 5.5.1 Error: no valid recipients", Reason::Other),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text.as_bytes()), *want, "{text}");
        }
        assert_eq!(Reason::ALL.len(), Reason::Other.index() + 1);
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
