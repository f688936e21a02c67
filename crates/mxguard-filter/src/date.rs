//! Date detection and removal (`server/datedetector.py`, `datetemplate.py`, `strptime.py`).
//! A `datepattern` (or fail2ban's default template list) becomes an ordered list of templates;
//! the first template that matches a line gives its time and the span that the pipeline cuts
//! out of the line before the failregexes run. Year inference (`now`'s year, the previous year
//! if that is more than a day in the future), time zones (`%z`, `%Z`, else the configured zone)
//! and the special patterns `{^LN-BEG}`, `{DEFAULT}`, `{DATE}`, `{NONE}`, `{UNB}`, `EPOCH`,
//! `LEPOCH`, `TAI64N` follow fail2ban. `%f` is parsed and dropped (integer seconds).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

/// fail2ban's default templates, in its order (README §3.4), written as strptime patterns with
/// regex syntax between directives. `sepa`/`sepb` must be equal when both are present.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "ISO 8601",
        r"%ExY(?P<sepa>[-/.])%m(?P<sepb>[-/.])%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    ),
    ("Syslog", r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?"),
    ("Syslog with year", r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?"),
    (
        "Day-Month-Year",
        r"%d(?P<sepa>[-/])%m(?P<sepb>[-/])(?:%ExY|%Exy) %k:%M:%S(?:\.%f)?",
    ),
    (
        "Apache/Roundcube",
        r"%d(?P<sepa>[-/])%b(?P<sepb>[-/])%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    ),
    ("cPanel", r"%m/%d/%ExY:%H:%M:%S"),
    ("Month-Day-Year", r"%m-%d-%ExY %k:%M:%S(?:\.%f)?"),
    ("EPOCH", "EPOCH"),
    ("MySQL", r"%Exy%Exm%Exd  ?%H:%M:%S"),
    ("Tomcat", r"%b %d, %ExY %I:%M:%S %p"),
    (
        "ISO basic",
        r"%ExY%Exm%Exd(?:[-T]|  ?)%ExH:?%ExM:?%ExS(?:[.,]%f)?(?:\s*%z)?",
    ),
    (
        "Syslog with zone name",
        r"%Z (?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    ),
    (
        "Syslog with offset",
        r"%z (?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    ),
    ("TAI64N", "TAI64N"),
    ("Time only", r"%H:%M:%S"),
    ("ASSP-ish", r"^<%m/%d/%Exy@%H:%M:%S>"),
    ("ASSP", r"^%b-%d-%Exy %k:%M:%S"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fields,
    Epoch { divisor: i64 },
    Tai64n,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// Search anywhere, with word-boundary checks on both sides.
    None,
    /// `{^LN-BEG}`: at line start after at most two non-word characters.
    LineBegin,
    /// Explicit `^` in the pattern.
    Explicit,
}

#[derive(Debug)]
struct Template {
    name: String,
    re: regex::Regex,
    kind: Kind,
    anchor: Anchor,
    boundaries: bool,
    /// Index of the `date` group and of each field group, resolved once.
    g: GroupIdx,
    /// `{^LN-BEG}` syslog template: try the hand-written parser first.
    fast_syslog: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct GroupIdx {
    date: usize,
    year4: Option<usize>,
    year2: Option<usize>,
    month: Option<usize>,
    month_name: Option<usize>,
    day: Option<usize>,
    hour: Option<usize>,
    hour12: Option<usize>,
    ampm: Option<usize>,
    minute: Option<usize>,
    second: Option<usize>,
    zone: Option<usize>,
    zone_name: Option<usize>,
    sepa: Option<usize>,
    sepb: Option<usize>,
    epoch: Option<usize>,
}

/// Where a date was found and what time it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateMatch {
    /// Byte offset of the date text in the line.
    pub start: usize,
    /// Byte offset after the date text.
    pub end: usize,
    /// Unix time, if the fields form a valid date.
    pub time: Option<i64>,
    /// Index of the template (see [`DateDetector::template_names`]).
    pub template: usize,
}

/// An ordered template list.
#[derive(Debug)]
pub struct DateDetector {
    templates: Vec<Template>,
    tz: TimeZone,
    /// `{NONE}`: lines carry no date.
    none: bool,
    /// Template that matched last (tried first; fail2ban reorders by hits too).
    last: usize,
    /// Fast syslog path: (now, month, day, hour, minute) → time of that minute.
    minute_cache: Option<(i64, [u8; 4], Option<i64>)>,
}

impl DateDetector {
    /// Builds the detector for `datepattern` lines (empty = fail2ban's `{DEFAULT}`).
    pub fn new(patterns: &[String], tz: TimeZone) -> Result<DateDetector, (String, String)> {
        let mut templates = Vec::new();
        let mut none = false;
        let defaults: Vec<String> = vec!["{DEFAULT}".into()];
        let patterns = if patterns.is_empty() {
            &defaults[..]
        } else {
            patterns
        };
        for p in patterns {
            let err = |m: String| (p.clone(), m);
            let mut pat = p.as_str();
            let mut boundaries = true;
            if let Some(rest) = pat.strip_prefix("{UNB}") {
                boundaries = false;
                pat = rest;
            }
            if pat == "{NONE}" {
                none = true;
                continue;
            }
            if pat == "{DEFAULT}" || pat == "{^LN-BEG}" {
                let anchor = if pat == "{DEFAULT}" {
                    Anchor::None
                } else {
                    Anchor::LineBegin
                };
                for (name, d) in DEFAULTS {
                    let a = if d.starts_with('^') {
                        Anchor::Explicit
                    } else {
                        anchor
                    };
                    templates.push(compile(name, d, a, boundaries).map_err(err)?);
                }
                continue;
            }
            if pat.contains("{DATE}") {
                for (name, d) in DEFAULTS {
                    let body = d.trim_start_matches('^');
                    let full = pat.replace("{DATE}", body);
                    let a = if full.starts_with('^') || d.starts_with('^') {
                        Anchor::Explicit
                    } else {
                        Anchor::None
                    };
                    templates.push(compile(name, &full, a, boundaries).map_err(err)?);
                }
                continue;
            }
            let (anchor, body) = match pat.strip_prefix("{^LN-BEG}") {
                Some(rest) => (Anchor::LineBegin, rest),
                None if pat.starts_with('^') => (Anchor::Explicit, pat),
                None => (Anchor::None, pat),
            };
            templates.push(compile(p, body, anchor, boundaries).map_err(err)?);
        }
        Ok(DateDetector {
            templates,
            tz,
            none,
            last: 0,
            minute_cache: None,
        })
    }

    /// Template names in order.
    pub fn template_names(&self) -> Vec<String> {
        self.templates.iter().map(|t| t.name.clone()).collect()
    }

    /// Whether the filter says lines have no date (`{NONE}`).
    pub fn is_none(&self) -> bool {
        self.none && self.templates.is_empty()
    }

    /// Finds the date in `line`; `now` is used for year inference.
    pub fn find(&mut self, line: &str, now: i64) -> Option<DateMatch> {
        if self.templates.is_empty() {
            return None;
        }
        // Hand-written parser for the plain syslog stamp, the format of nearly every mail log.
        if self.templates.get(self.last).is_some_and(|t| t.fast_syslog)
            && let Some(m) = self.fast_syslog(line, now)
        {
            return Some(m);
        }
        // The last winner first: logs use one format, and templates rarely overlap.
        if let Some(m) = self.try_template(self.last, line, now) {
            return Some(m);
        }
        for i in 0..self.templates.len() {
            if i == self.last {
                continue;
            }
            if let Some(m) = self.try_template(i, line, now) {
                // Keep fail2ban's order semantics: an earlier template wins over the cached one
                // only if it matched; the cached one did not, so `i` is the first that does.
                self.last = i;
                return Some(m);
            }
        }
        None
    }

    /// `Mmm dd HH:MM:SS` at offset 0 followed by a non-word character (not `.` fraction, not a
    /// year): exactly what the regex template accepts for these forms; anything else returns
    /// `None` and goes through the regex.
    fn fast_syslog(&mut self, line: &str, now: i64) -> Option<DateMatch> {
        let b = line.as_bytes();
        let month = month_number(line.get(..3)?)?;
        if b.get(3) != Some(&b' ') {
            return None;
        }
        let d2 = |i: usize| -> Option<i64> {
            let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
            (x.is_ascii_digit() && y.is_ascii_digit())
                .then(|| i64::from((x - b'0') * 10 + (y - b'0')))
        };
        // day: " 7", "07", "17" (then a space), or "7 "
        let (day, mut i) = match (b.get(4)?, b.get(5)?) {
            (b' ', c) if (b'1'..=b'9').contains(c) => (i64::from(c - b'0'), 6),
            (c, b' ') if (b'1'..=b'9').contains(c) => (i64::from(c - b'0'), 5),
            _ => (d2(4)?, 6),
        };
        if !(1..=31).contains(&day) || b.get(i) != Some(&b' ') {
            return None;
        }
        i += 1;
        let hour = d2(i)?;
        let minute = d2(i + 3)?;
        let second = d2(i + 6)?;
        if b.get(i + 2) != Some(&b':') || b.get(i + 5) != Some(&b':') {
            return None;
        }
        if hour > 23 || minute > 59 || second > 61 {
            return None;
        }
        let end = i + 8;
        match b.get(end) {
            None => {}
            Some(b'.') => return None,
            Some(b' ') if b.get(end + 1) == Some(&b'2') => return None,
            Some(c) if c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80 => return None,
            Some(_) => {}
        }
        let key = [month as u8, day as u8, hour as u8, minute as u8];
        let base = match self.minute_cache {
            Some((n, k, t)) if n == now && k == key => t,
            _ => {
                let t = self.civil_time(None, Some((month, day)), (hour, minute, 0), None, now);
                self.minute_cache = Some((now, key, t));
                t
            }
        };
        Some(DateMatch {
            start: 0,
            end,
            time: base.map(|t| t + second.min(59)),
            template: self.last,
        })
    }

    fn try_template(&self, i: usize, line: &str, now: i64) -> Option<DateMatch> {
        let t = self.templates.get(i)?;
        // With `self.last` tried first, an earlier template that would also match must still
        // win: check them when the cached template is not the first one.
        let caps = match t.anchor {
            Anchor::None => {
                let mut from = 0;
                loop {
                    let c = t.re.captures_at(line, from)?;
                    let m = c.get(t.g.date)?;
                    if !t.boundaries || boundary_ok(line, m.start(), m.end()) {
                        break c;
                    }
                    from = next_char(line, m.start());
                    if from > line.len() {
                        return None;
                    }
                }
            }
            _ => {
                let c = t.re.captures(line)?;
                let m = c.get(t.g.date)?;
                if t.boundaries && !end_ok(line, m.end()) {
                    return None;
                }
                c
            }
        };
        let m = caps.get(t.g.date)?;
        if let (Some(a), Some(b)) = (t.g.sepa, t.g.sepb)
            && let (Some(a), Some(b)) = (caps.get(a), caps.get(b))
            && a.as_str() != b.as_str()
        {
            return None;
        }
        let time = match t.kind {
            Kind::Tai64n => {
                let hex = m.as_str().trim_start_matches('@');
                hex.get(1..16).and_then(|h| i64::from_str_radix(h, 16).ok())
            }
            Kind::Epoch { divisor } => caps
                .get(t.g.epoch.unwrap_or(t.g.date))
                .and_then(|e| e.as_str().parse::<i64>().ok())
                .map(|v| v / divisor),
            Kind::Fields => self.fields_time(&t.g, &caps, now),
        };
        Some(DateMatch {
            start: m.start(),
            end: m.end(),
            time,
            template: i,
        })
    }

    fn fields_time(&self, g: &GroupIdx, c: &regex::Captures<'_>, now: i64) -> Option<i64> {
        let num = |i: Option<usize>| -> Option<i64> {
            i.and_then(|i| c.get(i))
                .and_then(|m| m.as_str().trim().parse::<i64>().ok())
        };
        let year = num(g.year4).or_else(|| num(g.year2).map(|y| y + 2000));
        let month = num(g.month).or_else(|| {
            g.month_name
                .and_then(|i| c.get(i))
                .and_then(|m| month_number(m.as_str()))
        });
        let day = num(g.day);
        let mut hour = num(g.hour).unwrap_or(0);
        if let Some(h12) = num(g.hour12) {
            let pm = g
                .ampm
                .and_then(|i| c.get(i))
                .is_some_and(|m| m.as_str().eq_ignore_ascii_case("pm"));
            hour = (h12 % 12) + if pm { 12 } else { 0 };
        }
        let minute = num(g.minute).unwrap_or(0);
        let second = num(g.second).unwrap_or(0).min(59);
        let offset: Option<i32> = match g.zone.and_then(|i| c.get(i)) {
            Some(z) => Some(parse_offset(z.as_str())?),
            None => match g.zone_name.and_then(|i| c.get(i)) {
                Some(z) => Some(zone_abbrev(z.as_str())?),
                None => None,
            },
        };
        self.civil_time(year, month.zip(day), (hour, minute, second), offset, now)
    }

    /// Local (or `offset`) civil time to Unix seconds with fail2ban's year/day inference.
    fn civil_time(
        &self,
        mut year: Option<i64>,
        month_day: Option<(i64, i64)>,
        (hour, minute, second): (i64, i64, i64),
        offset: Option<i32>,
        now: i64,
    ) -> Option<i64> {
        let now_local = Timestamp::from_second(now)
            .ok()
            .map(|ts| self.tz.to_datetime(ts));
        let (month, day, no_date) = match month_day {
            Some((m, d)) => (m, d, false),
            _ => {
                let n = now_local?;
                (i64::from(n.month()), i64::from(n.day()), true)
            }
        };
        let infer_year = year.is_none();
        if infer_year {
            year = Some(i64::from(now_local?.year()));
        }
        let build = |y: i64, mo: i64, d: i64| -> Option<i64> {
            let dt = DateTime::new(
                i16::try_from(y).ok()?,
                i8::try_from(mo).ok()?,
                i8::try_from(d).ok()?,
                i8::try_from(hour).ok()?,
                i8::try_from(minute).ok()?,
                i8::try_from(second).ok()?,
                0,
            )
            .ok()?;
            let ts = match offset {
                Some(off) => Offset::from_seconds(off).ok()?.to_timestamp(dt).ok()?,
                None => self.tz.to_timestamp(dt).ok()?,
            };
            Some(ts.as_second())
        };
        let y = year?;
        let mut t = build(y, month, day);
        if infer_year && t.is_none_or(|t| t > now + 86_400) {
            // Dec 25 read in August is last year's; Feb 29 may only exist last year too.
            if let Some(prev) = build(y - 1, month, day)
                && (t.is_some() || prev <= now + 86_400)
            {
                t = Some(prev);
            }
        }
        if no_date
            && let Some(tt) = t
            && tt > now + 60
        {
            t = Some(tt - 86_400);
        }
        t
    }
}

fn next_char(s: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < s.len() && !s.is_char_boundary(j) {
        j += 1;
    }
    j
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn char_before(s: &str, i: usize) -> Option<char> {
    s.get(..i).and_then(|p| p.chars().next_back())
}

fn char_at(s: &str, i: usize) -> Option<char> {
    s.get(i..).and_then(|p| p.chars().next())
}

/// fail2ban wraps unanchored templates in `(?=^|\b|\W)…(?=\b|\W|$)`: a date may not start or
/// end inside a word.
fn boundary_ok(s: &str, start: usize, end: usize) -> bool {
    let start_ok = match (char_before(s, start), char_at(s, start)) {
        (None, _) => true,
        (Some(p), Some(f)) => !is_word(p) || !is_word(f),
        (Some(_), None) => true,
    };
    start_ok && end_ok(s, end)
}

fn end_ok(s: &str, end: usize) -> bool {
    match (char_before(s, end), char_at(s, end)) {
        (_, None) => true,
        (Some(l), Some(n)) => !is_word(l) || !is_word(n),
        (None, Some(_)) => true,
    }
}

fn month_number(name: &str) -> Option<i64> {
    const M: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let l = name.get(..3)?;
    M.iter()
        .position(|m| m.eq_ignore_ascii_case(l))
        .map(|p| p as i64 + 1)
}

/// `+0200`, `-04:00`, `+02`, `Z`, `UTC`, `GMT` → seconds east of UTC.
fn parse_offset(z: &str) -> Option<i32> {
    let z = z.trim();
    if matches!(z.to_ascii_uppercase().as_str(), "Z" | "UTC" | "GMT" | "UT") {
        return Some(0);
    }
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1, z.get(1..)?),
        b'-' => (-1, z.get(1..)?),
        _ => return zone_abbrev(z),
    };
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits.get(..2)?.parse::<i32>().ok()?,
            digits.get(2..)?.parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    Some(sign * (h * 3600 + m * 60))
}

/// Zone abbreviations as fixed offsets (fail2ban does the same: no DST rules behind them).
fn zone_abbrev(z: &str) -> Option<i32> {
    let h = match z.to_ascii_uppercase().as_str() {
        "Z" | "UTC" | "GMT" | "UT" | "WET" => 0,
        "BST" | "CET" | "WEST" | "MET" => 1,
        "CEST" | "EET" | "MEST" => 2,
        "EEST" | "MSK" => 3,
        "EST" => -5,
        "EDT" | "AST" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        "JST" => 9,
        _ => return None,
    };
    Some(h * 3600)
}

/// strptime directive → regex group (fail2ban `strptime.py` `timeRE`).
fn directive(d: &str) -> Option<&'static str> {
    Some(match d {
        "Y" => r"(?P<Y>\d\d\d\d)",
        "ExY" => r"(?P<Y>20[0-2]\d)",
        "y" | "Exy" => r"(?P<y>\d\d)",
        "m" => r"(?P<m>1[0-2]|0[1-9]|[1-9])",
        "Exm" => r"(?P<m>1[0-2]|0[1-9])",
        "d" => r"(?P<d>3[01]|[12]\d|0[1-9]|[1-9]| [1-9])",
        "Exd" => r"(?P<d>3[01]|[12]\d|0[1-9])",
        "H" => r"(?P<H>2[0-3]|[0-1]\d|\d)",
        "ExH" => r"(?P<H>2[0-3]|[0-1]\d)",
        "k" => r"(?P<H>2[0-3]|[0-1]\d|\d| \d)",
        "I" => r"(?P<I>1[0-2]|0[1-9]|[1-9])",
        "l" => r"(?P<I>1[0-2]|0[1-9]|[1-9]| [1-9])",
        "M" | "ExM" => r"(?P<M>[0-5]\d)",
        "S" | "ExS" => r"(?P<S>6[0-1]|[0-5]\d)",
        "f" => r"(?P<f>\d+)",
        "b" | "B" => {
            r"(?P<b>(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?))"
        }
        "a" | "A" => {
            r"(?P<a>(?i:mon(?:day)?|tue(?:sday)?|wed(?:nesday)?|thu(?:rsday)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?))"
        }
        "p" => r"(?P<p>(?i:am|pm))",
        "z" | "Exz" => r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?[0-5]\d)?)",
        "Z" | "ExZ" => r"(?P<Z>[A-Z]{3,5}|Z)",
        "j" => r"(?P<j>36[0-6]|3[0-5]\d|[12]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
        "s" => r"(?P<s>\d{10,11})",
        _ => return None,
    })
}

/// Converts a strptime-with-regex pattern to a Rust regex body.
fn convert(body: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = body;
    while let Some(p) = rest.find('%') {
        out.push_str(rest.get(..p).unwrap_or(""));
        let tail = rest.get(p + 1..).unwrap_or("");
        if let Some(t) = tail.strip_prefix('%') {
            out.push('%');
            rest = t;
            continue;
        }
        let (name, len) = if tail.starts_with("Ex") {
            (tail.get(..3).unwrap_or(""), 3)
        } else {
            (tail.get(..1).unwrap_or(""), 1)
        };
        let Some(re) = directive(name) else {
            return Err(format!("unknown directive %{name}"));
        };
        let head = re.get(..re.find('>').map_or(0, |e| e + 1)).unwrap_or("");
        if !head.is_empty() && out.contains(head) {
            // a field used twice: only the first occurrence is captured
            out.push_str("(?:");
            out.push_str(re.get(head.len()..).unwrap_or(""));
        } else {
            out.push_str(re);
        }
        rest = tail.get(len..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

fn compile(name: &str, body: &str, anchor: Anchor, boundaries: bool) -> Result<Template, String> {
    let (kind, inner) = match body.trim_start_matches('^') {
        "EPOCH" => (
            Kind::Epoch { divisor: 1 },
            r"\[?(?P<s>\d{10,11})(?:\.\d{3,6})?\]?".to_string(),
        ),
        "LEPOCH" => (
            Kind::Epoch { divisor: 1000 },
            r"(?P<s>\d{13})(?:\d{3})?".to_string(),
        ),
        "TAI64N" => (Kind::Tai64n, "@[0-9a-fA-F]{24}".to_string()),
        "ISO8601" => (Kind::Fields, convert(DEFAULTS[0].1)?),
        other => (Kind::Fields, convert(other)?),
    };
    let inner = if kind == Kind::Fields {
        // the pattern's own regex syntax is Python's
        crate::translate::translate(&inner)
            .map_err(|e| format!("bad date pattern: {e}"))?
            .exact
    } else {
        inner
    };
    let full = match anchor {
        Anchor::LineBegin => format!(r"^\W{{0,2}}?(?P<date>{inner})"),
        Anchor::Explicit => format!(r"^(?P<date>{inner})"),
        Anchor::None => format!(r"(?P<date>{inner})"),
    };
    let re = regex::RegexBuilder::new(&full)
        .size_limit(16 << 20)
        .build()
        .map_err(|e| format!("bad date pattern: {e}"))?;
    let idx = |n: &str| -> Option<usize> {
        re.capture_names()
            .enumerate()
            .find(|(_, c)| *c == Some(n))
            .map(|(i, _)| i)
    };
    let g = GroupIdx {
        date: idx("date").unwrap_or(0),
        year4: idx("Y"),
        year2: idx("y"),
        month: idx("m"),
        month_name: idx("b"),
        day: idx("d"),
        hour: idx("H"),
        hour12: idx("I"),
        ampm: idx("p"),
        minute: idx("M"),
        second: idx("S"),
        zone: idx("z"),
        zone_name: idx("Z"),
        sepa: idx("sepa"),
        sepb: idx("sepb"),
        epoch: idx("s"),
    };
    let kind = if kind == Kind::Fields && g.epoch.is_some() && g.month.is_none() {
        Kind::Epoch { divisor: 1 }
    } else {
        kind
    };
    Ok(Template {
        fast_syslog: name == "Syslog" && anchor == Anchor::LineBegin && boundaries,
        name: name.to_string(),
        re,
        kind,
        anchor,
        boundaries,
        g,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> TimeZone {
        TimeZone::posix("CET-01CEST-02,M3.5.0,M10.5.0").unwrap()
    }
    const NOW: i64 = 1_124_013_600;

    fn det(p: &[&str]) -> DateDetector {
        let v: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        DateDetector::new(&v, tz()).unwrap()
    }

    #[test]
    fn syslog_year_inference() {
        let mut d = det(&["{^LN-BEG}"]);
        let m = d.find("Aug 14 11:59:59 host x", NOW).unwrap();
        assert_eq!(m.time, Some(NOW - 1));
        assert_eq!((m.start, m.end), (0, 15));
        // Dec 25 is in the future in August: previous year (2004-12-25 02:35:54 CET)
        let m = d.find("Dec 25 02:35:54 host x", NOW).unwrap();
        assert_eq!(m.time, Some(1_103_938_554));
        let m = d.find("Apr  6 13:05:01 server", NOW).unwrap();
        assert_eq!(m.end, 15);
    }

    #[test]
    fn iso_tai64n_and_zones() {
        let mut d = det(&["{^LN-BEG}TAI64N", "{^LN-BEG}"]);
        let m = d.find("@400000004c91b044077a9e94 dovecot", NOW).unwrap();
        assert_eq!(m.time, Some(0x4c91b044));
        let m = d.find("2005-08-14 12:00:00,388 fail2ban", NOW).unwrap();
        assert_eq!(m.time, Some(NOW));
        let m = d.find("[10-May-2015 13:02:52 -0400]: x", NOW).unwrap();
        assert_eq!(m.start, 1);
        assert_eq!(m.time, Some(1_431_277_372));
        assert!(d.find("xx 2005-08-14 12:00:00", NOW).is_none());
    }

    #[test]
    fn unanchored_respects_word_boundaries() {
        let mut d = det(&["%Y-%m-%d %H:%M:%S"]);
        let m = d.find("at 2005-08-14 12:00:00 x", NOW).unwrap();
        assert_eq!(m.start, 3);
        assert!(d.find("at12005-08-14 12:00:00", NOW).is_none());
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    /// The hand-written syslog parser must agree with the regex template it short-cuts.
    #[test]
    fn fast_syslog_agrees_with_regex() {
        let tz = TimeZone::posix("CET-01CEST-02,M3.5.0,M10.5.0").unwrap();
        let now = 1_124_013_600;
        let mut d = DateDetector::new(&["{^LN-BEG}".to_string()], tz).unwrap();
        let syslog = d
            .template_names()
            .iter()
            .position(|n| n == "Syslog")
            .unwrap();
        for line in [
            "Aug 14 11:59:59 host x",
            "Nov  1 00:00:02 mail postfix",
            "Feb 29 10:00:00 leap",
            "Dec 25 02:35:54 h",
            "Jan 4 21:51:05 hostname",
            "Mar 31 23:59:60 x",
            "Aug 14 11:59:59",
            "Aug 14 11:59:59x",
            "Aug 14 11:59:59.123 x",
            "Aug 14 11:59:59 2004 x",
            "Aug 32 11:59:59 x",
        ] {
            d.last = syslog;
            let fast = d.fast_syslog(line, now);
            let slow = d.try_template(syslog, line, now);
            if let Some(f) = fast {
                assert_eq!(Some(f), slow, "{line}");
            }
        }
    }
}
