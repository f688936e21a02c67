//! SPF macro strings (RFC 7208 section 7): parsing with strict syntax, and expansion.
//!
//! A `domain-spec` (the argument of `include`, `a`, `mx`, `ptr`, `exists`, `redirect=`, `exp=`)
//! and the explanation text fetched for `exp=` are macro strings. This module parses them into
//! tokens (so a syntax error is found when the record is parsed, section 4.6: "If there are any
//! syntax errors anywhere in the record, check_host() returns immediately with the result
//! permerror") and expands them against the values of one check. It does no DNS: the `%{p}`
//! value, which needs lookups, is computed by the evaluator (`eval.rs`) and passed in.

use std::net::IpAddr;

/// Where a macro string appears; the letters `c`, `r` and `t` are only allowed in explanation
/// text (section 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// A domain-spec or an unknown modifier's value: visible ASCII, no spaces.
    Domain,
    /// The text of an `exp=` TXT record: spaces allowed, `c`/`r`/`t` allowed.
    Explanation,
}

/// One `%{...}` expansion (section 7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expand {
    /// The macro letter, lowercased.
    letter: u8,
    /// An uppercase letter asks for URL escaping of the value (section 7.3).
    escape: bool,
    /// Keep only this many right-hand parts (never zero).
    keep: Option<usize>,
    /// Reverse the parts before keeping (`r` transformer).
    reverse: bool,
    /// Characters the value is split on; empty means "." (section 7.3).
    delimiters: Vec<u8>,
}

/// A token of a macro string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Literal text.
    Literal(String),
    /// `%%`, `%_` or `%-`, already replaced by their value; a `macro-expand` in the grammar.
    Escape(&'static str),
    /// `%{...}`.
    Macro(Expand),
}

/// A parsed macro string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MacroString {
    pub(crate) tokens: Vec<Token>,
}

/// The values macros expand to, for one check_host() evaluation (section 7.2).
#[derive(Debug, Clone)]
pub(crate) struct Vars<'a> {
    /// `%{s}`: the full sender, `local@domain`.
    pub(crate) sender: &'a str,
    /// `%{l}`.
    pub(crate) local: &'a str,
    /// `%{o}`.
    pub(crate) sender_domain: &'a str,
    /// `%{d}`: the domain whose record is being evaluated.
    pub(crate) domain: &'a str,
    /// `%{i}`, `%{c}`, `%{v}`.
    pub(crate) ip: IpAddr,
    /// `%{h}`.
    pub(crate) helo: &'a str,
    /// `%{r}`.
    pub(crate) receiver: &'a str,
    /// `%{t}`: seconds since the epoch.
    pub(crate) now: u64,
    /// `%{p}`: the validated domain name of the client, computed beforehand when needed.
    pub(crate) validated: Option<&'a str>,
}

impl MacroString {
    /// Parses `text` as a macro string. Errors name the offending part.
    pub(crate) fn parse(text: &str, ctx: Context) -> Result<MacroString, String> {
        let bytes = text.as_bytes();
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b != b'%' {
                // macro-literal = %x21-24 / %x26-7E; explain-string also allows SP.
                let ok = (0x21..=0x7e).contains(&b) || (b == b' ' && ctx == Context::Explanation);
                if !ok {
                    return Err(format!("invalid character {:#04x} in {text:?}", b));
                }
                literal.push(char::from(b));
                i += 1;
                continue;
            }
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            match bytes.get(i + 1) {
                Some(b'%') => tokens.push(Token::Escape("%")),
                Some(b'_') => tokens.push(Token::Escape(" ")),
                Some(b'-') => tokens.push(Token::Escape("%20")),
                Some(b'{') => {
                    let close = bytes[i + 2..]
                        .iter()
                        .position(|&c| c == b'}')
                        .ok_or_else(|| format!("unterminated macro in {text:?}"))?;
                    let body = &bytes[i + 2..i + 2 + close];
                    tokens.push(Token::Macro(parse_expand(body, ctx, text)?));
                    i += 2 + close + 1;
                    continue;
                }
                // Section 7.1: a '%' not followed by '{', '%', '-' or '_' is a syntax error.
                _ => {
                    return Err(format!(
                        "'%' not followed by '{{', '%', '-' or '_' in {text:?}"
                    ));
                }
            }
            i += 2;
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(MacroString { tokens })
    }

    /// True if expanding needs the `%{p}` value (which costs DNS lookups).
    pub(crate) fn uses_validated_name(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| matches!(t, Token::Macro(e) if e.letter == b'p'))
    }

    /// The literal text after the last macro-expand, if the string ends with literal text.
    pub(crate) fn trailing_literal(&self) -> Option<String> {
        let mut tail = String::new();
        for t in self.tokens.iter().rev() {
            match t {
                Token::Literal(s) => tail.insert_str(0, s),
                Token::Escape(_) | Token::Macro(_) => break,
            }
        }
        (!tail.is_empty()).then_some(tail)
    }

    /// Expands every token.
    pub(crate) fn expand(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for t in &self.tokens {
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Escape(s) => out.push_str(s),
                Token::Macro(e) => out.push_str(&e.expand(vars)),
            }
        }
        out
    }
}

/// Parses the inside of `%{...}`: macro-letter transformers *delimiter (section 7.1).
fn parse_expand(body: &[u8], ctx: Context, text: &str) -> Result<Expand, String> {
    let Some((&first, rest)) = body.split_first() else {
        return Err(format!("empty macro in {text:?}"));
    };
    let letter = first.to_ascii_lowercase();
    let allowed: &[u8] = match ctx {
        Context::Domain => b"slodiphv",
        Context::Explanation => b"slodiphvcrt",
    };
    if !allowed.contains(&letter) {
        return Err(format!(
            "macro letter '{}' not allowed here in {text:?}",
            char::from(first)
        ));
    }
    let digits_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, rest) = rest.split_at(digits_len);
    let keep = if digits.is_empty() {
        None
    } else {
        // "If a DIGIT is specified, the value MUST be nonzero" (section 7.3). Values above 128
        // keep every part anyway (a domain has at most 127 labels).
        let n = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        if n == 0 {
            return Err(format!("zero digit transformer in {text:?}"));
        }
        Some(n)
    };
    let (reverse, rest) = match rest.split_first() {
        Some((b'r' | b'R', r)) => (true, r),
        _ => (false, rest),
    };
    if let Some(bad) = rest.iter().find(|b| !b".-+,/_=".contains(b)) {
        return Err(format!(
            "invalid delimiter '{}' in macro of {text:?}",
            char::from(*bad)
        ));
    }
    Ok(Expand {
        letter,
        escape: first.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters: rest.to_vec(),
    })
}

impl Expand {
    fn expand(&self, vars: &Vars<'_>) -> String {
        let value = match self.letter {
            b's' => vars.sender.to_string(),
            b'l' => vars.local.to_string(),
            b'o' => vars.sender_domain.to_string(),
            b'd' => vars.domain.to_string(),
            b'i' => dotted_ip(vars.ip),
            b'p' => vars.validated.unwrap_or("unknown").to_string(),
            b'v' => match vars.ip {
                IpAddr::V4(_) => "in-addr".to_string(),
                IpAddr::V6(_) => "ip6".to_string(),
            },
            b'h' => vars.helo.to_string(),
            b'c' => vars.ip.to_string(),
            b'r' => vars.receiver.to_string(),
            b't' => vars.now.to_string(),
            _ => String::new(), // unreachable: letters are checked when parsing
        };
        let transformed = self.transform(&value);
        if self.escape {
            url_escape(&transformed)
        } else {
            transformed
        }
    }

    /// Splits on the delimiters, reverses, keeps the right-hand parts and rejoins with "."
    /// (section 7.3: "the parts are rejoined using "." and not the original splitting
    /// characters").
    fn transform(&self, value: &str) -> String {
        let delims: &[u8] = if self.delimiters.is_empty() {
            b"."
        } else {
            &self.delimiters
        };
        let mut parts: Vec<&str> = value
            .split(|c: char| c.is_ascii() && delims.contains(&(c as u8)))
            .collect();
        if self.reverse {
            parts.reverse();
        }
        if let Some(n) = self.keep
            && parts.len() > n
        {
            parts.drain(..parts.len() - n);
        }
        parts.join(".")
    }
}

/// `%{i}`: dotted-quad for IPv4, dot-separated nibbles for IPv6 (section 7.3).
///
/// The nibbles are upper-case hex: the RFC 7208 test suite (v-macro-ip6) expects exactly that
/// in explanation text, and DNS names compare case-insensitively, so queries are unaffected.
fn dotted_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(64);
            for b in v6.octets() {
                s.push_str(&format!("{:X}.{:X}.", b >> 4, b & 0x0f));
            }
            s.pop();
            s
        }
    }
}

/// URL escaping of every character outside RFC 3986's "unreserved" set (section 7.3).
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(ip: &str) -> Vars<'static> {
        Vars {
            sender: "strong-bad@email.example.com",
            local: "strong-bad",
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            receiver: "rcpt.example.net",
            now: 1_000,
            validated: None,
        }
    }

    fn exp(s: &str, ip: &str) -> String {
        MacroString::parse(s, Context::Explanation)
            .unwrap()
            .expand(&vars(ip))
    }

    /// The examples of RFC 7208 section 7.4.
    #[test]
    fn rfc_examples() {
        let v4 = "192.0.2.3";
        assert_eq!(exp("%{s}", v4), "strong-bad@email.example.com");
        assert_eq!(exp("%{o}", v4), "email.example.com");
        assert_eq!(exp("%{d4}", v4), "email.example.com");
        assert_eq!(exp("%{d2}", v4), "example.com");
        assert_eq!(exp("%{d1}", v4), "com");
        assert_eq!(exp("%{dr}", v4), "com.example.email");
        assert_eq!(exp("%{d2r}", v4), "example.email");
        assert_eq!(exp("%{l}", v4), "strong-bad");
        assert_eq!(exp("%{l-}", v4), "strong.bad");
        assert_eq!(exp("%{lr}", v4), "strong-bad");
        assert_eq!(exp("%{lr-}", v4), "bad.strong");
        assert_eq!(exp("%{l1r-}", v4), "strong");
        assert_eq!(
            exp("%{ir}.%{v}._spf.%{d2}", v4),
            "3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(
            exp("%{lr-}.lp._spf.%{d2}", v4),
            "bad.strong.lp._spf.example.com"
        );
        assert_eq!(
            exp("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01").to_ascii_lowercase(),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
        assert_eq!(
            exp("%{c} %{r} %{t}", "2001:db8::cb01"),
            "2001:db8::cb01 rcpt.example.net 1000"
        );
    }

    #[test]
    fn escapes_and_url_encoding() {
        assert_eq!(exp("a%%b%_c%-d", "192.0.2.3"), "a%b c%20d");
        let mut v = vars("192.0.2.3");
        v.local = "~jack&jill=up-a_b3.c";
        let m = MacroString::parse("l=%{L}", Context::Domain).unwrap();
        assert_eq!(m.expand(&v), "l=~jack%26jill%3Dup-a_b3.c");
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "%(ir).x", "foo%.x", "%", "%{x}", "%{d0}", "%{d2q}", "%{d", "a b",
        ] {
            assert!(MacroString::parse(bad, Context::Domain).is_err(), "{bad}");
        }
        // c, r and t are explanation-only (section 7.2).
        assert!(MacroString::parse("%{r}.example.com", Context::Domain).is_err());
        assert!(MacroString::parse("%{r} x", Context::Explanation).is_ok());
    }

    #[test]
    fn trailing_literal_is_found() {
        let m = MacroString::parse("%{d}.example.com", Context::Domain).unwrap();
        assert_eq!(m.trailing_literal().as_deref(), Some(".example.com"));
        let m = MacroString::parse("x.%{d}", Context::Domain).unwrap();
        assert_eq!(m.trailing_literal(), None);
    }
}
