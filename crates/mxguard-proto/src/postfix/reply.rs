//! Policy replies: `action=<access(5) action>\n\n` (SMTPD_POLICY_README, "Policy server
//! response"). The text after the keyword is sanitised: CR, LF and NUL would end the reply
//! early or corrupt Postfix's attribute stream, so they become spaces.

/// An access(5) action a policy server may return. Texts are the human part after the keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyAction {
    Dunno,
    Ok,
    Reject(String),
    Defer(String),
    DeferIfPermit(String),
    Hold(String),
    Prepend(String),
    /// An explicit SMTP reply: `4xx`/`5xx` code, optional enhanced status and text.
    Reply(String),
}

impl ReplyAction {
    /// The access(5) keyword and the text after it.
    pub fn parts(&self) -> (&str, &str) {
        match self {
            ReplyAction::Dunno => ("DUNNO", ""),
            ReplyAction::Ok => ("OK", ""),
            ReplyAction::Reject(t) => ("REJECT", t),
            ReplyAction::Defer(t) => ("DEFER", t),
            ReplyAction::DeferIfPermit(t) => ("DEFER_IF_PERMIT", t),
            ReplyAction::Hold(t) => ("HOLD", t),
            ReplyAction::Prepend(t) => ("PREPEND", t),
            ReplyAction::Reply(t) => ("", t),
        }
    }

    /// Parses an action as an operator writes it in the config (`DUNNO`,
    /// `DEFER_IF_PERMIT Service temporarily unavailable`, `450 4.7.1 try later`). `None` for
    /// anything else. Keywords are case-insensitive, as in access(5).
    pub fn parse(s: &str) -> Option<ReplyAction> {
        let s = s.trim();
        let (kw, rest) = match s.split_once(char::is_whitespace) {
            Some((k, r)) => (k, r.trim().to_owned()),
            None => (s, String::new()),
        };
        let action = match kw.to_ascii_uppercase().as_str() {
            "DUNNO" if rest.is_empty() => ReplyAction::Dunno,
            "OK" if rest.is_empty() => ReplyAction::Ok,
            "REJECT" => ReplyAction::Reject(rest),
            "DEFER" => ReplyAction::Defer(rest),
            "DEFER_IF_PERMIT" => ReplyAction::DeferIfPermit(rest),
            "HOLD" => ReplyAction::Hold(rest),
            "PREPEND" if !rest.is_empty() => ReplyAction::Prepend(rest),
            _ => {
                let code = kw.as_bytes();
                if code.len() == 3
                    && (code[0] == b'4' || code[0] == b'5')
                    && code.iter().all(u8::is_ascii_digit)
                {
                    ReplyAction::Reply(s.to_owned())
                } else {
                    return None;
                }
            }
        };
        Some(action)
    }
}

impl std::fmt::Display for ReplyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.parts() {
            ("", t) => f.write_str(t),
            (k, "") => f.write_str(k),
            (k, t) => write!(f, "{k} {t}"),
        }
    }
}

/// Appends `action=...\n\n` for `action` to `out`.
pub fn encode_reply(action: &ReplyAction, out: &mut Vec<u8>) {
    out.extend_from_slice(b"action=");
    let (kw, text) = action.parts();
    out.extend_from_slice(kw.as_bytes());
    if !text.is_empty() {
        if !kw.is_empty() {
            out.push(b' ');
        }
        // Replace by bytes: every CR/LF/NUL is one byte in UTF-8, so this keeps UTF-8 valid.
        out.extend(text.bytes().map(|b| match b {
            b'\r' | b'\n' | 0 => b' ',
            b => b,
        }));
    }
    out.extend_from_slice(b"\n\n");
}

/// Decodes one reply from the start of `buf`: the action text and the bytes consumed, or
/// `None` when the reply is incomplete or malformed. For tests and clients.
pub fn decode_reply(buf: &[u8]) -> Option<(String, usize)> {
    let end = buf.windows(2).position(|w| w == b"\n\n")?;
    let line = std::str::from_utf8(&buf[..end]).ok()?;
    let action = line.strip_prefix("action=")?;
    Some((action.to_owned(), end + 2))
}
