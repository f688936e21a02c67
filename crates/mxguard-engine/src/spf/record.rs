//! SPF record selection and parsing with the strict syntax of RFC 7208 sections 4.5, 4.6, 5, 6
//! and 12 (the ABNF).
//!
//! [`is_spf_record`] picks `v=spf1` records out of a TXT answer; [`parse`] turns one record into
//! a [`Record`] or a syntax error, which the evaluator reports as permerror. Any syntax error
//! anywhere in the record is fatal (section 4.6), so every term is checked here, including
//! mechanisms that evaluation might never reach and unknown modifiers. No DNS here.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::macros::{Context, MacroString};

/// A directive's qualifier (section 4.6.2); `+` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

/// A mechanism (section 5) with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Mx {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Ptr(Option<MacroString>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(MacroString),
}

/// Qualifier and mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    pub(crate) qualifier: Qualifier,
    pub(crate) mechanism: Mechanism,
}

/// A parsed `v=spf1` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) directives: Vec<Directive>,
    pub(crate) redirect: Option<MacroString>,
    pub(crate) exp: Option<MacroString>,
}

/// True if `text` starts with the version section `v=spf1`, ended by a space or the end of the
/// record (section 4.5); compared case-insensitively, as ABNF strings are.
pub(crate) fn is_spf_record(text: &[u8]) -> bool {
    text.len() >= 6
        && text[..6].eq_ignore_ascii_case(b"v=spf1")
        && (text.len() == 6 || text[6] == b' ')
}

/// Parses a record that [`is_spf_record`] accepted.
pub(crate) fn parse(text: &[u8]) -> Result<Record, String> {
    // Section 3.1: records are 7-bit ASCII. Decoding also rules out any non-ASCII byte.
    if !text.is_ascii() {
        return Err("record contains non-ASCII characters".to_string());
    }
    let text = std::str::from_utf8(text).map_err(|_| "record is not ASCII".to_string())?;
    let mut record = Record {
        directives: Vec::new(),
        redirect: None,
        exp: None,
    };
    // terms = *( 1*SP ( directive / modifier ) ), record = version terms *SP: split on SP only,
    // so any other whitespace or control character stays inside a term and fails its syntax.
    for term in text
        .get(6..)
        .unwrap_or("")
        .split(' ')
        .filter(|t| !t.is_empty())
    {
        if let Some((name, value)) = modifier_parts(term) {
            parse_modifier(&mut record, name, value, term)?;
        } else {
            record.directives.push(parse_directive(term)?);
        }
    }
    Ok(record)
}

/// Splits `name=value` if `term` is a modifier: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
fn modifier_parts(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then_some((name, value))
}

fn parse_modifier(record: &mut Record, name: &str, value: &str, term: &str) -> Result<(), String> {
    if name.eq_ignore_ascii_case("redirect") || name.eq_ignore_ascii_case("exp") {
        let spec = domain_spec(value).map_err(|e| format!("{term}: {e}"))?;
        let slot = if name.eq_ignore_ascii_case("redirect") {
            &mut record.redirect
        } else {
            &mut record.exp
        };
        // Section 6: redirect and exp MUST NOT appear more than once each.
        if slot.is_some() {
            return Err(format!("{name}= appears twice"));
        }
        *slot = Some(spec);
    } else {
        // Unknown modifiers are ignored, but their value must be a valid macro-string
        // (section 6 and appendix A: unknown-modifier = name "=" macro-string).
        MacroString::parse(value, Context::Domain).map_err(|e| format!("{term}: {e}"))?;
    }
    Ok(())
}

fn parse_directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.split_at_checked(1) {
        Some(("+", r)) => (Qualifier::Pass, r),
        Some(("-", r)) => (Qualifier::Fail, r),
        Some(("~", r)) => (Qualifier::SoftFail, r),
        Some(("?", r)) => (Qualifier::Neutral, r),
        _ => (Qualifier::Pass, term),
    };
    let name_len = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = rest.split_at(name_len);
    let bad = |why: &str| format!("invalid term {term:?}: {why}");
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if args.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(required_spec(args).map_err(|e| bad(&e))?),
        "exists" => Mechanism::Exists(required_spec(args).map_err(|e| bad(&e))?),
        "ptr" => match args.strip_prefix(':') {
            Some(spec) => Mechanism::Ptr(Some(domain_spec(spec).map_err(|e| bad(&e))?)),
            None if args.is_empty() => Mechanism::Ptr(None),
            None => return Err(bad("unexpected arguments")),
        },
        "a" | "mx" => {
            let (domain, cidr4, cidr6) = domain_and_dual_cidr(args).map_err(|e| bad(&e))?;
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A {
                    domain,
                    cidr4,
                    cidr6,
                }
            } else {
                Mechanism::Mx {
                    domain,
                    cidr4,
                    cidr6,
                }
            }
        }
        "ip4" => {
            let spec = args.strip_prefix(':').ok_or_else(|| bad("missing ':'"))?;
            let (addr, len) = match spec.split_once('/') {
                Some((a, l)) => (
                    a,
                    Some(cidr(l, 32).ok_or_else(|| bad("bad prefix length"))?),
                ),
                None => (spec, None),
            };
            let ip: Ipv4Addr = addr.parse().map_err(|_| bad("bad IPv4 address"))?;
            Mechanism::Ip4(ip, len.unwrap_or(32))
        }
        "ip6" => {
            let spec = args.strip_prefix(':').ok_or_else(|| bad("missing ':'"))?;
            let (addr, len) = match spec.split_once('/') {
                Some((a, l)) => (
                    a,
                    Some(cidr(l, 128).ok_or_else(|| bad("bad prefix length"))?),
                ),
                None => (spec, None),
            };
            let ip: Ipv6Addr = addr.parse().map_err(|_| bad("bad IPv6 address"))?;
            Mechanism::Ip6(ip, len.unwrap_or(128))
        }
        _ => return Err(bad("unknown mechanism")),
    };
    Ok(Directive {
        qualifier,
        mechanism,
    })
}

fn required_spec(args: &str) -> Result<MacroString, String> {
    let spec = args.strip_prefix(':').ok_or("missing ':' domain-spec")?;
    domain_spec(spec)
}

/// `[ ":" domain-spec ] [ dual-cidr-length ]` of `a` and `mx` (sections 5.3, 5.4). The CIDR
/// lengths are taken from the end, since a domain-spec may itself contain '/' (section 7.1).
fn domain_and_dual_cidr(args: &str) -> Result<(Option<MacroString>, u8, u8), String> {
    let mut rest = args;
    let mut cidr6 = 128;
    let mut cidr4 = 32;
    if let Some((head, digits)) = rest.rsplit_once("//")
        && is_digits(digits)
    {
        cidr6 = cidr(digits, 128).ok_or("bad IPv6 prefix length")?;
        rest = head;
    }
    if let Some((head, digits)) = rest.rsplit_once('/')
        && is_digits(digits)
    {
        cidr4 = cidr(digits, 32).ok_or("bad IPv4 prefix length")?;
        rest = head;
    }
    let domain = match rest.strip_prefix(':') {
        Some(spec) => Some(domain_spec(spec)?),
        None if rest.is_empty() => None,
        None => return Err("unexpected arguments".to_string()),
    };
    Ok((domain, cidr4, cidr6))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT), ip6 the same with up to 3 digits: no
/// leading zeros, and at most `max`.
fn cidr(s: &str, max: u8) -> Option<u8> {
    if !is_digits(s) || (s.len() > 1 && s.starts_with('0')) || s.len() > 3 {
        return None;
    }
    s.parse::<u8>().ok().filter(|&n| n <= max)
}

/// domain-spec = macro-string domain-end, domain-end = ( "." toplabel [ "." ] ) / macro-expand
/// (section 7.1). An empty domain-spec is an error.
pub(crate) fn domain_spec(spec: &str) -> Result<MacroString, String> {
    if spec.is_empty() {
        return Err("empty domain-spec".to_string());
    }
    let parsed = MacroString::parse(spec, Context::Domain)?;
    if let Some(tail) = parsed.trailing_literal() {
        let tail = tail.strip_suffix('.').unwrap_or(&tail);
        let valid = tail
            .rsplit_once('.')
            .is_some_and(|(_, top)| is_toplabel(top));
        if !valid {
            return Err(format!(
                "domain-spec {spec:?} does not end in a valid top label"
            ));
        }
    }
    Ok(parsed)
}

/// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ):
/// letters, digits and inner dashes, not all digits (section 7.1).
pub(crate) fn is_toplabel(label: &str) -> bool {
    let b = label.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b.iter().any(|c| c.is_ascii_alphabetic() || *c == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Record {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn selects_version() {
        assert!(is_spf_record(b"v=spf1"));
        assert!(is_spf_record(b"V=SPF1 -all"));
        assert!(!is_spf_record(b"v=spf1-all"));
        assert!(!is_spf_record(b"v=spf10"));
        assert!(!is_spf_record(b"spf1"));
    }

    #[test]
    fn parses_every_mechanism() {
        let r = ok(
            "v=spf1 +all -include:a.example ~a ?a:b.example/24//64 mx mx:c.example//0 \
                    ptr ptr:d.example ip4:192.0.2.0/24 ip6:2001:db8::/32 exists:%{i}.e.example \
                    redirect=f.example exp=g.example foo=bar",
        );
        assert_eq!(r.directives.len(), 11);
        assert_eq!(r.directives[0].mechanism, Mechanism::All);
        assert_eq!(r.directives[1].qualifier, Qualifier::Fail);
        assert!(matches!(
            r.directives[3].mechanism,
            Mechanism::A {
                domain: Some(_),
                cidr4: 24,
                cidr6: 64
            }
        ));
        assert!(matches!(
            r.directives[5].mechanism,
            Mechanism::Mx {
                domain: Some(_),
                cidr4: 32,
                cidr6: 0
            }
        ));
        assert!(r.redirect.is_some() && r.exp.is_some());
    }

    #[test]
    fn domain_spec_may_hold_colons_and_slashes() {
        let r = ok("v=spf1 a:foo:bar/baz.example.com");
        assert!(matches!(
            r.directives[0].mechanism,
            Mechanism::A { cidr4: 32, .. }
        ));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "v=spf1 a/33",
            "v=spf1 a//129",
            "v=spf1 a/24/64",
            "v=spf1 ip4:1.2.3.4/032",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ip6:1::2/129",
            "v=spf1 a:example.com:8080",
            "v=spf1 a:museum",
            "v=spf1 a:museum.",
            "v=spf1 a:abc.123",
            "v=spf1 a:example.-com",
            "v=spf1 a:",
            "v=spf1 include:",
            "v=spf1 exists",
            "v=spf1 redirect=",
            "v=spf1 exp=-all",
            "v=spf1 1up=foo",
            "v=spf1 =all",
            "v=spf1 foo=%abc",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 allx",
            "v=spf1 a:b.example\rptr",
            "v=spf1 \u{80}a",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn toplabels() {
        assert!(is_toplabel("com"));
        assert!(is_toplabel("xn--zckzah"));
        assert!(is_toplabel("1-2"));
        assert!(!is_toplabel("123"));
        assert!(!is_toplabel("-com"));
        assert!(!is_toplabel(""));
    }
}
