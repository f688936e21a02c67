//! Python `re` → Rust regex translation. Produces two patterns from one Python regex:
//! `exact`, for the `regex` crate when the pattern has no look-around, back-reference or
//! conditional, else for `fancy-regex` (bounded backtracking); and `relaxed`, always valid for the
//! `regex` crate, whose language is a superset of `exact` (look-arounds dropped, back-references
//! widened to `.*?`, conditionals turned into plain alternations). `relaxed` drives the fast
//! RegexSet/DFA pass; only lines it accepts reach the backtracking engine.
//!
//! Dialect differences handled (Python 3 `re`, fail2ban `server/failregex.py`): `[` inside a class
//! is literal in Python but starts a nested class in Rust; `{` that is not a quantifier is literal;
//! `{,n}` means `{0,n}`; `\Z` is `\z`; `\<`/`\>` are literal (word boundaries in Rust);
//! `(?(name)` conditionals need `(?(<name>)` in fancy-regex; a global flag group at the start of a
//! group, `((?i)X|Y)`, is made scoped, `(?i:X|Y)`, exactly as fail2ban rewrites it; `(?#…)`
//! comments are dropped. `$` is left alone: the pipeline searches the buffer without fail2ban's
//! trailing `\n`, which makes Python's "end or before a final newline" and Rust's `$` agree.

/// Result of translating one Python regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// Pattern for the chosen engine.
    pub exact: String,
    /// Superset pattern for the `regex` crate.
    pub relaxed: String,
    /// Why the backtracking engine is needed (empty: the `regex` crate runs `exact`).
    pub fancy_reasons: Vec<String>,
    /// For each look-around / back-reference / conditional: the literal text that every path
    /// to it matches right before it (same sequence, case-sensitive, at least 3 characters).
    /// When every construct has one and none occurs in a line, no match can involve them, so
    /// `relaxed` gives exactly the same match and groups as `exact` on that line.
    pub guards: Vec<Option<String>>,
    /// Parallel to `guards`: what is known about each top-level look-around (None for
    /// back-references, conditionals and nested look-arounds).
    pub looks: Vec<Option<LookInfo>>,
    /// `relaxed` with each top-level look-around as a placeholder `\u{F8F0}N\u{F8F1}` (slot N), so
    /// that variants can replace it with "always true" or "never true".
    pub relaxed_template: String,
}

/// A look-around whose outcome a line's literals may decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookInfo {
    /// `(?=`/`(?<=` (true) or `(?!`/`(?<!` (false).
    pub positive: bool,
    /// Literals one of which every match of the look-around's body contains.
    pub inner: Option<Vec<String>>,
    /// Placeholder number in `relaxed_template`.
    pub slot: usize,
}

/// Placeholder delimiters in `relaxed_template` (private-use characters).
pub const SLOT_OPEN: char = '\u{F8F0}';
/// See [`SLOT_OPEN`].
pub const SLOT_CLOSE: char = '\u{F8F1}';

/// `relaxed_template` with slot `i` replaced by `(?:)` or, if bit `i` of `fail` is set, by a class
/// that never matches.
pub fn instantiate(template: &str, fail: u64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(p) = rest.find(SLOT_OPEN) {
        out.push_str(rest.get(..p).unwrap_or(""));
        let after = rest.get(p + SLOT_OPEN.len_utf8()..).unwrap_or("");
        let end = after.find(SLOT_CLOSE).unwrap_or(after.len());
        let slot: u32 = after.get(..end).unwrap_or("").parse().unwrap_or(0);
        let never = slot < 64 && fail & (1u64 << slot) != 0;
        out.push_str(if never { r"[^\s\S]" } else { "(?:)" });
        rest = after.get(end + SLOT_CLOSE.len_utf8()..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

impl Translated {
    /// Whether `exact` needs fancy-regex.
    pub fn needs_backtracking(&self) -> bool {
        !self.fancy_reasons.is_empty()
    }
}

/// Translates `py`; the error says what is unsupported and where.
pub fn translate(py: &str) -> Result<Translated, String> {
    let mut w = Walker {
        s: py.chars().collect(),
        pos: 0,
        reasons: Vec::new(),
        guards: Vec::new(),
        looks: Vec::new(),
        slots: 0,
        in_look: 0,
        run: String::new(),
        icase_seen: false,
    };
    let mut exact = String::with_capacity(py.len() + 16);
    let mut relaxed = String::with_capacity(py.len() + 16);
    w.seq(&mut exact, &mut relaxed, 0)?;
    let template = relaxed.clone();
    let relaxed = instantiate(&template, 0);
    if w.pos < w.s.len() {
        return Err(format!("unbalanced ')' at offset {}", w.pos));
    }
    w.reasons.dedup();
    Ok(Translated {
        exact,
        relaxed,
        fancy_reasons: w.reasons,
        guards: w.guards,
        looks: w.looks,
        relaxed_template: template,
    })
}

struct Walker {
    s: Vec<char>,
    pos: usize,
    reasons: Vec<String>,
    guards: Vec<Option<String>>,
    looks: Vec<Option<LookInfo>>,
    slots: usize,
    in_look: usize,
    /// Literal characters matched just before the current position in the current sequence.
    run: String,
    /// A case-insensitive flag appeared: literals after it are no longer exact guards.
    icase_seen: bool,
}

const META: &str = r"\.+*?()|[]{}^$#&-~ ";

impl Walker {
    fn peek(&self, off: usize) -> Option<char> {
        self.s.get(self.pos + off).copied()
    }

    fn starts(&self, lit: &str) -> bool {
        lit.chars()
            .enumerate()
            .all(|(i, c)| self.peek(i) == Some(c))
    }

    fn push2(e: &mut String, r: &mut String, s: &str) {
        e.push_str(s);
        r.push_str(s);
    }

    /// Walks until an unmatched `)` (left unconsumed) or the end.
    fn seq(&mut self, e: &mut String, r: &mut String, depth: usize) -> Result<(), String> {
        if depth > 200 {
            return Err("regex nested too deeply".into());
        }
        while let Some(c) = self.peek(0) {
            match c {
                ')' => {
                    if depth == 0 {
                        return Err(format!("unbalanced ')' at offset {}", self.pos));
                    }
                    return Ok(());
                }
                '(' => {
                    let guard = std::mem::take(&mut self.run);
                    self.group(e, r, depth, guard)?;
                    self.run.clear();
                }
                '[' => {
                    self.run.clear();
                    self.class(e, r)?;
                }
                '\\' => {
                    let lit = self.peek(1).filter(|n| !n.is_ascii_alphanumeric());
                    self.escape(e, r)?;
                    match lit {
                        Some(n) => self.run.push(n),
                        None => self.run.clear(),
                    }
                }
                '{' => {
                    self.run.clear();
                    self.brace(e, r);
                }
                '}' => {
                    self.run.clear();
                    Self::push2(e, r, r"\}");
                    self.pos += 1;
                }
                _ => {
                    let mut b = [0u8; 4];
                    Self::push2(e, r, c.encode_utf8(&mut b));
                    self.pos += 1;
                    if matches!(c, '*' | '+' | '?' | '.' | '^' | '$' | '|') {
                        self.run.clear();
                    } else {
                        self.run.push(c);
                    }
                }
            }
        }
        if depth > 0 {
            return Err("missing ')' at end of regex".into());
        }
        Ok(())
    }

    fn close(&mut self, e: &mut String, r: &mut String) -> Result<(), String> {
        if self.peek(0) != Some(')') {
            return Err("missing ')'".into());
        }
        self.pos += 1;
        Self::push2(e, r, ")");
        Ok(())
    }

    fn guard(&mut self, run: &str) {
        let ok = run.chars().count() >= 3 && !self.icase_seen;
        self.guards.push(ok.then(|| run.to_string()));
        self.looks.push(None);
    }

    fn group(
        &mut self,
        e: &mut String,
        r: &mut String,
        depth: usize,
        run: String,
    ) -> Result<(), String> {
        let at = self.pos;
        // look-arounds: kept in exact, dropped from relaxed
        for (lit, what) in [
            ("(?<=", "look-behind"),
            ("(?<!", "negative look-behind"),
            ("(?=", "look-ahead"),
            ("(?!", "negative look-ahead"),
        ] {
            if self.starts(lit) {
                self.reasons.push(format!("{what} at offset {at}"));
                self.guard(&run);
                let idx = self.looks.len() - 1;
                let top = self.in_look == 0;
                self.pos += lit.chars().count();
                e.push_str(lit);
                let mut sink = String::new();
                self.in_look += 1;
                let inner = self.seq(e, &mut sink, depth + 1);
                self.in_look -= 1;
                inner?;
                if top {
                    let slot = self.slots;
                    self.slots += 1;
                    let inner = if self.icase_seen {
                        None
                    } else {
                        crate::literals::required(&instantiate(&sink, 0))
                    };
                    if let Some(l) = self.looks.get_mut(idx) {
                        *l = Some(LookInfo {
                            positive: !lit.contains('!'),
                            inner,
                            slot,
                        });
                    }
                }
                if self.peek(0) != Some(')') {
                    return Err(format!("missing ')' for group at offset {at}"));
                }
                self.pos += 1;
                e.push(')');
                // an empty group (so that a quantifier after the look-around stays valid), or
                // a slot placeholder that becomes one
                match self.looks.get(idx).and_then(Option::as_ref) {
                    Some(info) if top => {
                        r.push(SLOT_OPEN);
                        r.push_str(&info.slot.to_string());
                        r.push(SLOT_CLOSE);
                    }
                    _ => r.push_str("(?:)"),
                }
                return Ok(());
            }
        }
        if self.starts("(?P=") {
            let name = self.take_until(4, ')')?;
            self.guard(&run);
            self.reasons
                .push(format!("back-reference (?P={name}) at offset {at}"));
            e.push_str(&format!("(?P={name})"));
            r.push_str("(?s:.*?)");
            return Ok(());
        }
        if self.starts("(?#") {
            let _ = self.take_until(3, ')')?;
            return Ok(());
        }
        if self.starts("(?(") {
            let cond = self.take_until(3, ')')?;
            self.guard(&run);
            self.reasons
                .push(format!("conditional (?({cond})...) at offset {at}"));
            if cond.chars().all(|c| c.is_ascii_digit()) {
                e.push_str(&format!("(?({cond})"));
            } else {
                e.push_str(&format!("(?(<{cond}>)"));
            }
            r.push_str("(?:");
            self.seq(e, r, depth + 1)?;
            return self.close(e, r);
        }
        if self.starts("(?P<")
            || (self.starts("(?<") && !self.starts("(?<=") && !self.starts("(?<!"))
        {
            let skip = if self.starts("(?P<") { 4 } else { 3 };
            let name = self.take_until(skip, '>')?;
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!("bad group name {name:?} at offset {at}"));
            }
            Self::push2(e, r, &format!("(?P<{name}>"));
            self.seq(e, r, depth + 1)?;
            return self.close(e, r);
        }
        if self.starts("(?>") {
            return Err(format!(
                "atomic group (?>...) at offset {at} is not supported"
            ));
        }
        if self.starts("(?") {
            // flags: (?aiLmsux) or (?flags:...) or (?flags-flags:...)
            let mut j = 2;
            let mut flags = String::new();
            while let Some(c) = self.peek(j) {
                if c.is_ascii_alphabetic() || c == '-' {
                    flags.push(c);
                    j += 1;
                } else {
                    break;
                }
            }
            let term = self.peek(j);
            if flags.split('-').next().unwrap_or("").contains('i') {
                self.icase_seen = true;
            }
            let rust_flags: String = flags
                .chars()
                .filter(|c| matches!(c, 'i' | 'm' | 's' | 'x' | '-'))
                .collect();
            match term {
                Some(':') => {
                    self.pos += j + 1;
                    if rust_flags.trim_matches('-').is_empty() {
                        Self::push2(e, r, "(?:");
                    } else {
                        Self::push2(e, r, &format!("(?{rust_flags}:"));
                    }
                    self.seq(e, r, depth + 1)?;
                    return self.close(e, r);
                }
                Some(')') => {
                    self.pos += j + 1;
                    if !rust_flags.trim_matches('-').is_empty() {
                        Self::push2(e, r, &format!("(?{rust_flags})"));
                    }
                    return Ok(());
                }
                _ => return Err(format!("unsupported group syntax at offset {at}")),
            }
        }
        // plain capturing group; `((?i)X|Y)` becomes `(?i:X|Y)` as in fail2ban, but the group
        // must stay capturing so group numbers do not shift: `((?i:X|Y))`.
        self.pos += 1;
        Self::push2(e, r, "(");
        let mut j = 2;
        let mut flags = String::new();
        if self.starts("(?") {
            while let Some(c) = self.peek(j) {
                if c.is_ascii_alphabetic() {
                    flags.push(c);
                    j += 1;
                } else {
                    break;
                }
            }
        }
        let rust_flags: String = flags
            .chars()
            .filter(|c| matches!(c, 'i' | 'm' | 's' | 'x'))
            .collect();
        if !flags.is_empty() && self.peek(j) == Some(')') {
            if flags.contains('i') {
                self.icase_seen = true;
            }
            self.pos += j + 1;
            if rust_flags.is_empty() {
                Self::push2(e, r, "(?:");
            } else {
                Self::push2(e, r, &format!("(?{rust_flags}:"));
            }
            self.seq(e, r, depth + 1)?;
            Self::push2(e, r, ")");
            return self.close(e, r);
        }
        self.seq(e, r, depth + 1)?;
        self.close(e, r)
    }

    /// Reads from `pos+skip` up to `end`, consumes through `end`, returns the text between.
    fn take_until(&mut self, skip: usize, end: char) -> Result<String, String> {
        let mut j = self.pos + skip;
        let mut out = String::new();
        while let Some(&c) = self.s.get(j) {
            if c == end {
                self.pos = j + 1;
                return Ok(out);
            }
            out.push(c);
            j += 1;
        }
        Err(format!("missing {end:?} after offset {}", self.pos))
    }

    fn escape(&mut self, e: &mut String, r: &mut String) -> Result<(), String> {
        let Some(c) = self.peek(1) else {
            return Err("trailing backslash".into());
        };
        self.pos += 2;
        match c {
            '1'..='9' => {
                let mut n = c.to_string();
                if let Some(d) = self.peek(0).filter(char::is_ascii_digit) {
                    n.push(d);
                    self.pos += 1;
                }
                self.reasons.push(format!("back-reference \\{n}"));
                self.guards.push(None);
                e.push_str(&format!("\\{n}"));
                r.push_str("(?s:.*?)");
            }
            '0' => Self::push2(e, r, r"\x00"),
            'Z' => Self::push2(e, r, r"\z"),
            'A' | 'b' | 'B' | 'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'n' | 't' | 'r' | 'f' | 'v'
            | 'x' | 'u' | 'U' | 'a' => {
                if c == 'a' {
                    Self::push2(e, r, r"\x07");
                } else if c == 'U' {
                    Self::push2(e, r, r"\U");
                } else {
                    Self::push2(e, r, &format!("\\{c}"));
                }
            }
            c if c.is_ascii_alphabetic() => {
                return Err(format!("unknown escape \\{c} at offset {}", self.pos - 2));
            }
            c if META.contains(c) => Self::push2(e, r, &format!("\\{c}")),
            c => {
                let mut b = [0u8; 4];
                Self::push2(e, r, c.encode_utf8(&mut b));
            }
        }
        Ok(())
    }

    fn class(&mut self, e: &mut String, r: &mut String) -> Result<(), String> {
        let at = self.pos;
        self.pos += 1;
        let mut out = String::from("[");
        if self.peek(0) == Some('^') {
            out.push('^');
            self.pos += 1;
        }
        let mut first = true;
        let mut prev = '\0';
        loop {
            let Some(c) = self.peek(0) else {
                return Err(format!("unterminated character class at offset {at}"));
            };
            match c {
                ']' if !first => {
                    self.pos += 1;
                    break;
                }
                '\\' => {
                    let Some(n) = self.peek(1) else {
                        return Err("trailing backslash".into());
                    };
                    self.pos += 2;
                    match n {
                        'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'n' | 't' | 'r' | 'f' | 'v' | 'x'
                        | 'u' => {
                            out.push('\\');
                            out.push(n);
                        }
                        'b' => out.push_str(r"\x08"),
                        '0' => out.push_str(r"\x00"),
                        n if n.is_ascii_alphanumeric() => {
                            return Err(format!("unknown escape \\{n} in class at offset {at}"));
                        }
                        n if META.contains(n) || n == ']' => {
                            out.push('\\');
                            out.push(n);
                        }
                        n => out.push(n),
                    }
                    prev = 'x';
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                    self.pos += 1;
                    prev = c;
                }
                '-' if prev == '-' => {
                    out.push_str(r"\-");
                    self.pos += 1;
                    prev = 'x';
                }
                ']' => {
                    out.push_str(r"\]");
                    self.pos += 1;
                    prev = c;
                }
                _ => {
                    out.push(c);
                    self.pos += 1;
                    prev = c;
                }
            }
            first = false;
        }
        out.push(']');
        Self::push2(e, r, &out);
        Ok(())
    }

    /// `{n}`, `{n,}`, `{n,m}`, `{,m}` are quantifiers; anything else is a literal `{`.
    fn brace(&mut self, e: &mut String, r: &mut String) {
        let mut j = 1;
        let mut body = String::new();
        while let Some(c) = self.peek(j) {
            if c == '}' {
                break;
            }
            body.push(c);
            j += 1;
        }
        let closed = self.peek(j) == Some('}');
        let valid = closed && {
            let (a, b) = match body.split_once(',') {
                Some((a, b)) => (a, Some(b)),
                None => (body.as_str(), None),
            };
            let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
            digits(a) && b.is_none_or(digits) && !(a.is_empty() && b.is_none_or(str::is_empty))
        };
        if valid {
            let q = match body.strip_prefix(',') {
                Some(m) => format!("{{0,{m}}}"),
                None => format!("{{{body}}}"),
            };
            Self::push2(e, r, &q);
            self.pos += j + 1;
        } else {
            Self::push2(e, r, r"\{");
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_patterns_stay_linear() {
        let t = translate(r"^from [^[]*\[(?P<ip>\d+)\]{1,2}x{ \>").unwrap();
        assert!(!t.needs_backtracking());
        assert_eq!(t.exact, r"^from [^\[]*\[(?P<ip>\d+)\]{1,2}x\{ >");
        assert!(regex::Regex::new(&t.exact).is_ok());
    }

    #[test]
    fn fancy_constructs() {
        let t = translate(r"a(?!b)c(?P<e>x)(?P=e)(?(e)y|z)").unwrap();
        assert!(t.needs_backtracking());
        assert_eq!(t.exact, r"a(?!b)c(?P<e>x)(?P=e)(?(<e>)y|z)");
        assert_eq!(t.relaxed, r"a(?:)c(?P<e>x)(?s:.*?)(?:y|z)");
        assert!(fancy_regex::Regex::new(&t.exact).is_ok());
        assert!(regex::Regex::new(&t.relaxed).is_ok());
    }

    #[test]
    fn guards() {
        let t = translate(r"^a*(?:lost connection after (?!DATA)[A-Z]+|disconnect(?= from)|x)")
            .unwrap();
        assert_eq!(
            t.guards,
            vec![
                Some("lost connection after ".into()),
                Some("disconnect".into())
            ]
        );
        let t = translate(r"ab(?!x)c?d(?=y)(?i:z)abc(?!q)").unwrap();
        assert_eq!(t.guards, vec![None, None, None]);
        let t = translate(r"x(?= auth=0/)y(?!(?:DATA|AUTH)\b)").unwrap();
        let l0 = t.looks[0].clone().unwrap();
        assert!(l0.positive);
        assert_eq!(l0.inner, Some(vec![" auth=0/".to_string()]));
        assert_eq!(
            t.looks[1].clone().unwrap().inner,
            Some(vec!["AUTH".into(), "DATA".into()])
        );
        assert_eq!(instantiate(&t.relaxed_template, 1), r"x[^\s\S]y(?:)");
        assert!(regex::Regex::new(&instantiate(&t.relaxed_template, 3)).is_ok());
    }

    #[test]
    fn scoped_flags() {
        let t = translate(r"SASL ((?i)LOGIN|PLAIN) x").unwrap();
        let re = regex::Regex::new(&t.exact).unwrap();
        assert!(re.is_match("SASL plain x"));
        assert!(!re.is_match("SASL PLAIN X"));
    }

    #[test]
    fn errors_name_offset() {
        assert!(translate("a(b").unwrap_err().contains("missing"));
        assert!(translate("a)b").unwrap_err().contains("offset 1"));
        assert!(translate(r"\q").unwrap_err().contains("\\q"));
    }
}
