//! Sender normalisation for greylist keys (postgrey 1.37 `do_sender_substitutions`).
//!
//! Mailing lists and bounce handlers put per-message tokens into the envelope sender; without
//! normalisation every message would be a new triplet and be greylisted again. postgrey:
//! 1. BATV: a local part `prvs=A=B` keeps the field that does not look like the 10-character
//!    tag (handles both `prvs=tag=loc` and the non-standard `prvs=loc=tag`);
//! 2. everything from the first `+` on is stripped (VERP, subaddress extensions);
//! 3. every standalone number (`\b\d+\b`) becomes `#`.
//!
//! Deliberate addition: SRS (`SRS0=HHHH=TT=domain=user`, `SRS1=HHHH=fwd==HHHH=TT=domain=user`)
//! hashes and day stamps become `#`, as sqlgrey does. postgrey leaves them, so mail from one
//! sender through one forwarder is greylisted again every SRS day unless the forwarder is
//! auto-whitelisted. Retries of one message reuse the same address, so this changes nothing for
//! a single message. Lowercasing happens later, on the whole key (postgrey's `lc`).

/// Normalises an envelope sender as described in the module docs. The null sender (empty)
/// and addresses without `@` are returned unchanged, as postgrey does.
pub fn normalise_sender(sender: &str) -> String {
    let Some((user, domain)) = sender.split_once('@') else {
        return sender.to_owned();
    };
    let mut user = user.to_owned();
    if let Some(srs) = normalise_srs(&user) {
        user = srs;
    } else if user.starts_with("prvs=") {
        user = strip_batv(&user);
    }
    if let Some(plus) = user.find('+') {
        user.truncate(plus);
    }
    let mut out = replace_numbers(&user);
    out.push('@');
    out.push_str(domain);
    out
}

/// postgrey: `split(/=/, $user)` must give exactly three fields; the one matching
/// `^[0-9a-z]{10}` is the tag, the other the real local part; if both or neither look like a
/// tag, the standard position (third field) wins.
fn strip_batv(user: &str) -> String {
    let fields: Vec<&str> = user.split('=').collect();
    // Perl's split drops trailing empty fields; `prvs=a=b=` still has three fields there.
    let fields: Vec<&str> = {
        let mut f = fields;
        while f.len() > 1 && f.last().is_some_and(|s| s.is_empty()) {
            f.pop();
        }
        f
    };
    if fields.len() != 3 {
        return user.to_owned();
    }
    let (a, b) = (fields[1], fields[2]);
    let pick = if looks_like_tag(a) && !looks_like_tag(b) {
        b
    } else if looks_like_tag(b) && !looks_like_tag(a) {
        a
    } else {
        b
    };
    pick.to_owned()
}

/// `^[0-9a-z]{10}`: starts with ten lowercase alphanumerics (case-sensitive, as in postgrey).
fn looks_like_tag(s: &str) -> bool {
    s.len() >= 10
        && s.bytes()
            .take(10)
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// SRS0/SRS1 (case-insensitive prefix, as SRS implementations accept it): hash and time
/// stamp fields become `#`. Returns `None` if `user` is not an SRS address.
fn normalise_srs(user: &str) -> Option<String> {
    let prefix = user.get(..5)?;
    let mut fields: Vec<&str> = user.split('=').collect();
    if prefix.eq_ignore_ascii_case("SRS0=") {
        // SRS0 = hash = time = domain = local-part (the local part may contain '=')
        if fields.len() < 5 {
            return None;
        }
        fields[1] = "#";
        fields[2] = "#";
    } else if prefix.eq_ignore_ascii_case("SRS1=") {
        // SRS1 = hash = forwarder = = hash = time = domain = local-part
        if fields.len() < 8 || !fields[3].is_empty() {
            return None;
        }
        fields[1] = "#";
        fields[4] = "#";
        fields[5] = "#";
    } else {
        return None;
    }
    Some(fields.join("="))
}

/// Perl `s/\b\d+\b/#/g` with ASCII word characters: a maximal run of digits bounded on both
/// sides by a non-word character (or the ends) becomes `#`.
fn replace_numbers(s: &str) -> String {
    let bytes = s.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let before_ok = start == 0 || !is_word(bytes[start - 1]);
            let after_ok = i == bytes.len() || !is_word(bytes[i]);
            if before_ok && after_ok {
                // `start` and `i` sit on ASCII bytes, so both are char boundaries.
                out.push_str(s.get(last..start).unwrap_or_default());
                out.push('#');
                last = i;
            }
        } else {
            i += 1;
        }
    }
    out.push_str(s.get(last..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgrey_substitutions() {
        assert_eq!(normalise_sender(""), "");
        assert_eq!(normalise_sender("nodomain"), "nodomain");
        assert_eq!(normalise_sender("user@example.com"), "user@example.com");
        assert_eq!(normalise_sender("user+tag@example.com"), "user@example.com");
        assert_eq!(
            normalise_sender("list-bounces+u=x.org@lists.example.com"),
            "list-bounces@lists.example.com"
        );
        assert_eq!(
            normalise_sender("bounce-123-456@example.com"),
            "bounce-#-#@example.com"
        );
        assert_eq!(normalise_sender("abc123@example.com"), "abc123@example.com");
        assert_eq!(normalise_sender("123abc@example.com"), "123abc@example.com");
        assert_eq!(
            normalise_sender("a.1.b_2@example.com"),
            "a.#.b_2@example.com"
        );
        assert_eq!(normalise_sender("42@example.com"), "#@example.com");
        // The domain part is left alone.
        assert_eq!(
            normalise_sender("x-1@mail2.example.com"),
            "x-#@mail2.example.com"
        );
    }

    #[test]
    fn batv_both_orders() {
        assert_eq!(
            normalise_sender("prvs=0123456789=alice@example.com"),
            "alice@example.com"
        );
        assert_eq!(
            normalise_sender("prvs=alice=0123abcdef@example.com"),
            "alice@example.com"
        );
        // Neither looks like a tag: the standard position wins.
        assert_eq!(
            normalise_sender("prvs=bob=alice@example.com"),
            "alice@example.com"
        );
        // Not three fields: unchanged apart from the later steps.
        assert_eq!(normalise_sender("prvs=x@example.com"), "prvs=x@example.com");
    }

    #[test]
    fn srs_is_normalised() {
        assert_eq!(
            normalise_sender("SRS0=HHH1=TT=orig.example=alice@fwd.example"),
            "SRS0=#=#=orig.example=alice@fwd.example"
        );
        assert_eq!(
            normalise_sender("SRS0=zzzz=AB=orig.example=alice@fwd.example"),
            normalise_sender("SRS0=yyyy=AC=orig.example=alice@fwd.example")
        );
        assert_eq!(
            normalise_sender("SRS1=HHHH=fwd1.example==HHHH=TT=orig.example=alice@fwd2.example"),
            "SRS1=#=fwd1.example==#=#=orig.example=alice@fwd2.example"
        );
        // Too few fields: not SRS.
        assert_eq!(normalise_sender("SRS0=a=b@x.example"), "SRS0=a=b@x.example");
    }
}
