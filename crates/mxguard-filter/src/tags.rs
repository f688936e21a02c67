//! fail2ban regex tags (`server/failregex.py`, `Regex._resolveHostTag`): `<HOST>`, `<ADDR>`,
//! `<IP4>`, `<IP6>`, `<DNS>`, `<CIDR>`, `<SUBNET>`, `<F-ID/>`, `<F-PORT/>`, `<F-NAME>…</F-NAME>`
//! and `<SKIPLINES>` are replaced by named groups before the Python regex is translated.
//! Everything else that looks like a tag stays literal (fail2ban does the same).

/// IPv4 as fail2ban writes it.
pub const IP4: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// IPv6 as fail2ban writes it, with its final `(?<=:):` rewritten to `:`: every repetition of the
/// preceding group ends with `:`, so the look-behind always holds and the `regex` crate can run it.
pub const IP6: &str = r"(?:[0-9a-fA-F]{1,4}::?|:){1,7}(?:[0-9a-fA-F]{1,4}|:)";
const DNS: &str = r"[\w\-.^_]*\w";

fn addr() -> String {
    format!(r"\[?(?:(?:::f{{4,6}}:)?(?P<ip4>{IP4})|(?P<ip6>{IP6}))\]?")
}

/// Group name for an `<F-X>` tag: lower-cased, `F-ID` → `fid`, `F-PORT` → `fport`.
fn group_name(tag: &str) -> String {
    match tag {
        "ID" => "fid".into(),
        "PORT" => "fport".into(),
        other => other.to_lowercase().replace('-', "_"),
    }
}

/// Replaces the tags in `regex`. `usedns == "no"` makes `<HOST>` equal to `<ADDR>`.
/// `skiplines` numbers `<SKIPLINES>` groups.
pub fn expand(regex: &str, usedns: &str) -> String {
    let mut out = String::with_capacity(regex.len() + 64);
    let mut rest = regex;
    let mut skiplines = 0usize;
    while let Some(lt) = rest.find('<') {
        out.push_str(rest.get(..lt).unwrap_or(""));
        let tail = rest.get(lt..).unwrap_or("");
        let Some((tag, len)) = parse_tag(tail) else {
            out.push('<');
            rest = tail.get(1..).unwrap_or("");
            continue;
        };
        let after = tail.get(len..).unwrap_or("");
        let replacement: Option<String> = match (tag.close, tag.name, tag.selfclose) {
            (false, "HOST", false) => Some(if usedns == "no" {
                addr()
            } else {
                format!(
                    r"(?:\[?(?:(?:::f{{4,6}}:)?(?P<ip4>{IP4})|(?P<ip6>{IP6}))\]?|(?P<dns>{DNS}))"
                )
            }),
            (false, "ADDR", false) | (false, "F-ADDR", true) => Some(addr()),
            (false, "IP4", false) => Some(format!("(?P<ip4>{IP4})")),
            (false, "IP6", false) => Some(format!("(?P<ip6>{IP6})")),
            (false, "DNS", false) => Some(format!("(?P<dns>{DNS})")),
            (false, "CIDR", false) => Some(r"(?P<cidr>\d+)".into()),
            (false, "SUBNET", false) => Some(format!(
                r"\[?(?:(?:::f{{4,6}}:)?(?P<ip4>{IP4})|(?P<ip6>{IP6}))(?:/(?P<cidr>\d+))?\]?"
            )),
            (false, "F-ID", true) => Some(r"(?P<fid>\S+)".into()),
            (false, "F-PORT", true) => Some(r"(?P<fport>\w+)".into()),
            (false, "SKIPLINES", false) => {
                skiplines += 1;
                Some(format!(r"\n(?P<skiplines{skiplines}>(?:(?:.*\n)*?))"))
            }
            (false, name, false) if name.starts_with("F-") => {
                let close = format!("</{name}>");
                if after.contains(&close) {
                    let inner = name.get(2..).unwrap_or("");
                    Some(format!("(?P<{}>", group_name(inner)))
                } else {
                    None
                }
            }
            _ => None,
        };
        match replacement {
            Some(r) => {
                out.push_str(&r);
                if !tag.close && !tag.selfclose && tag.name.starts_with("F-") {
                    // remove the first matching close tag from the remaining text
                    let close = format!("</{}>", tag.name);
                    let after_s = after.to_string();
                    if let Some(p) = after_s.find(&close) {
                        let mut rebuilt = String::with_capacity(after_s.len());
                        rebuilt.push_str(after_s.get(..p).unwrap_or(""));
                        rebuilt.push(')');
                        rebuilt.push_str(after_s.get(p + close.len()..).unwrap_or(""));
                        let expanded = expand_continue(&rebuilt, usedns, &mut skiplines);
                        out.push_str(&expanded);
                        return out;
                    }
                }
                rest = after;
            }
            None => {
                out.push_str(tail.get(..len).unwrap_or(""));
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn expand_continue(rest: &str, usedns: &str, _skip: &mut usize) -> String {
    expand(rest, usedns)
}

struct Tag<'a> {
    close: bool,
    name: &'a str,
    selfclose: bool,
}

/// Parses `</?[\w\-]+/?>` at the start of `s`; returns the tag and its length.
fn parse_tag(s: &str) -> Option<(Tag<'_>, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
    let close = b.get(i) == Some(&b'/');
    if close {
        i += 1;
    }
    let start = i;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' {
            i += 1;
        } else {
            break;
        }
    }
    if i == start {
        return None;
    }
    let name = s.get(start..i)?;
    let selfclose = b.get(i) == Some(&b'/');
    if selfclose {
        i += 1;
    }
    if b.get(i) != Some(&b'>') {
        return None;
    }
    Some((
        Tag {
            close,
            name,
            selfclose,
        },
        i + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_fields() {
        let r = expand(
            r"^x <F-USER>\S+</F-USER> from <HOST> <ADDR> </F-NOPE>",
            "warn",
        );
        assert!(r.contains(r"(?P<user>\S+)"), "{r}");
        assert!(r.contains("(?P<dns>"));
        assert!(r.ends_with("</F-NOPE>"));
        let r = expand("<HOST>", "no");
        assert!(!r.contains("dns"));
        assert_eq!(expand("<F-ID/>", "warn"), r"(?P<fid>\S+)");
        assert_eq!(
            expand("<<F-USER>[^>]*</F-USER>>", "warn"),
            "<(?P<user>[^>]*)>"
        );
        assert_eq!(
            expand("<F-ALT_USER1>a</F-ALT_USER1>", "warn"),
            "(?P<alt_user1>a)"
        );
    }
}
