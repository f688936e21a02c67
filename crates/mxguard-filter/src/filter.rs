//! The per-line pipeline of fail2ban (`server/filter.py` `processLine`/`findFailure`): find and
//! cut the date, run `prefregex` (its `<F-CONTENT>` becomes the failregex buffer), run every
//! failregex (or stop at the first with `check_all = false`), apply `ignoreregex`, merge groups,
//! derive the failure id (`fid`, else `ip4`/`ip6`, else `dns`) and merge multi-line failures by
//! `mlfid` (sendmail). The fast path: a `regex::RegexSet` over the linear superset of every
//! failregex picks the candidates, so a line that matches nothing costs one DFA pass.
//! Callers: `mxguard test-filter`, the conformance runner, and later the daemon's log jails.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;

use jiff::tz::TimeZone;

use crate::config::{FilterDefinition, FilterSpec};
use crate::date::{DateDetector, DateMatch};
use crate::error::FilterError;
use crate::matcher::{Found, Groups, Matcher};
use crate::tags;

/// How a filter is run.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    /// Zone of log times without an explicit offset (fail2ban: the server's local time).
    pub timezone: TimeZone,
    /// Try every failregex on every line (fail2ban-regex's default; the daemon stops at the first).
    pub check_all: bool,
}

impl Default for FilterOptions {
    fn default() -> Self {
        FilterOptions {
            timezone: TimeZone::system(),
            check_all: true,
        }
    }
}

/// The id a failure is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureId {
    /// An IPv4 or IPv6 address (IPv4-mapped IPv6 yields the IPv4).
    Ip(IpAddr),
    /// An address with a prefix length from `<SUBNET>`/`<CIDR>`.
    Net(IpAddr, u8),
    /// A host name, `<F-ID>` value or unparsable address, kept as written.
    Raw(String),
}

impl std::fmt::Display for FailureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureId::Ip(ip) => write!(f, "{ip}"),
            FailureId::Net(ip, p) => write!(f, "{ip}/{p}"),
            FailureId::Raw(s) => f.write_str(s),
        }
    }
}

/// What a failregex hit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// A failure with an id.
    Failure,
    /// `<F-NOFAIL>` / `<F-MLFGAINED>`: data for a multi-line failure, not a failure.
    NoFail,
    /// Matched but no id yet (waiting for another line with the same `mlfid`), or no id at all.
    Pending,
}

/// One failregex that matched a line.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Index into the failregex list.
    pub regex: usize,
    /// Failure, nofail or pending.
    pub kind: HitKind,
    /// Failure id.
    pub id: Option<FailureId>,
    /// Time of the line (Unix seconds), if known.
    pub time: Option<i64>,
    /// Named groups (prefregex groups updated by the failregex's).
    pub groups: Groups,
}

impl Hit {
    /// A captured field by group name (`user`, `fid`, ...).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.groups
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The result for one line.
#[derive(Debug, Clone, Default)]
pub struct LineResult {
    /// The date found, if any.
    pub date: Option<DateMatch>,
    /// Failregex hits (with `check_all`, possibly several).
    pub hits: Vec<Hit>,
    /// An ignoreregex matched (the failure was dropped).
    pub ignored: bool,
    /// A backtracking regex gave up on this line.
    pub too_complex: bool,
    /// The prefregex matched (false when the filter has none).
    pub prefregex_matched: bool,
}

impl LineResult {
    /// Hits that count as failures.
    pub fn failures(&self) -> impl Iterator<Item = &Hit> {
        self.hits.iter().filter(|h| h.kind == HitKind::Failure)
    }
}

const MLFID_CACHE: usize = 100;

/// A compiled filter with its state (multi-line buffer, mlfid cache, date template order).
#[derive(Debug)]
pub struct Filter {
    def: FilterDefinition,
    pref: Option<Matcher>,
    fail: Vec<Matcher>,
    ignore: Vec<Matcher>,
    fail_set: Option<regex::RegexSet>,
    prefilter: Option<Prefilter>,
    /// Required literals of the prefregex: a line without any cannot pass it.
    pref_literals: Option<aho_corasick::AhoCorasick>,
    dates: DateDetector,
    check_all: bool,
    lines: VecDeque<String>,
    mlfid: VecDeque<MlfEntry>,
}

/// Cached state of one multi-line failure id (fail2ban `mlfidCache`).
#[derive(Debug)]
struct MlfEntry {
    id: String,
    groups: Groups,
    /// A failure without an id is waiting for the address.
    pending: bool,
}

/// Aho-Corasick over the required literals of every failregex (see `literals`).
#[derive(Debug)]
struct Prefilter {
    /// Leftmost-first automaton: only leftmost semantics get the SIMD (Teddy) prefilter, and
    /// "is there any literal" does not depend on the match kind.
    any: aho_corasick::AhoCorasick,
    /// Standard automaton for the overlapping walk.
    ac: aho_corasick::AhoCorasick,
    /// For each literal, the failregexes (bit mask) it unlocks.
    unlocks: Vec<u64>,
    /// Failregexes without a usable literal: always candidates.
    always: u64,
}

impl Prefilter {
    fn build(fail: &[Matcher]) -> Option<Prefilter> {
        if fail.is_empty() || fail.len() > 64 {
            return None;
        }
        let mut lits: Vec<String> = Vec::new();
        let mut unlocks: Vec<u64> = Vec::new();
        let mut always = 0u64;
        for (i, m) in fail.iter().enumerate() {
            match crate::literals::required(m.relaxed_pattern()) {
                Some(set) => {
                    for l in set {
                        match lits.iter().position(|x| *x == l) {
                            Some(p) => unlocks[p] |= 1 << i,
                            None => {
                                lits.push(l);
                                unlocks.push(1 << i);
                            }
                        }
                    }
                }
                None => always |= 1 << i,
            }
        }
        let all = if fail.len() == 64 {
            u64::MAX
        } else {
            (1u64 << fail.len()) - 1
        };
        if always == all {
            return None;
        }
        let ac = aho_corasick::AhoCorasick::new(&lits).ok()?;
        let any = leftmost(&lits)?;
        Some(Prefilter {
            any,
            ac,
            unlocks,
            always,
        })
    }

    /// Failregexes that can match `hay` (bit mask).
    fn candidates(&self, hay: &str) -> u64 {
        let mut mask = self.always;
        // Most lines hold no literal at all: the unanchored is_match uses the SIMD prefilter,
        // the overlapping walk (needed when literals overlap) only runs when there is one.
        if !self.any.is_match(hay) {
            return mask;
        }
        for m in self.ac.find_overlapping_iter(hay) {
            mask |= self
                .unlocks
                .get(m.pattern().as_usize())
                .copied()
                .unwrap_or(0);
        }
        mask
    }
}

fn leftmost(lits: &[String]) -> Option<aho_corasick::AhoCorasick> {
    aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build(lits)
        .ok()
}

/// Groups that describe how a multi-line failure is merged, not data to inherit.
const CONTROL_GROUPS: [&str; 4] = ["nofail", "mlfforget", "mlfgained", "content"];

impl Filter {
    /// Loads `spec` (`name[opts]` or a path) from `config_dir/filter.d` and compiles it.
    pub fn load(
        config_dir: &Path,
        spec: &str,
        opts: &FilterOptions,
    ) -> Result<Filter, FilterError> {
        let spec = FilterSpec::parse(spec)?;
        let def = FilterDefinition::load(&config_dir.join("filter.d"), &spec)?;
        Filter::compile(def, opts)
    }

    /// Compiles a resolved definition.
    pub fn compile(def: FilterDefinition, opts: &FilterOptions) -> Result<Filter, FilterError> {
        let multiline = def.maxlines > 1;
        let build = |option: String, re: &str| -> Result<Matcher, FilterError> {
            let expanded = tags::expand(re, &def.usedns);
            Matcher::new(&expanded, multiline).map_err(|message| FilterError::Regex {
                file: def.file.clone(),
                option,
                regex: re.to_string(),
                message,
            })
        };
        let pref = match &def.prefregex {
            Some(p) => Some(build("prefregex".into(), p)?),
            None => None,
        };
        let mut fail = Vec::new();
        for (i, r) in def.failregex.iter().enumerate() {
            let m = build(format!("failregex[{i}]"), r)?;
            let has_id = ["fid", "ip4", "ip6", "dns", "mlfid"]
                .iter()
                .any(|g| m.has_group(g) || pref.as_ref().is_some_and(|p| p.has_group(g)));
            if !has_id {
                return Err(FilterError::Regex {
                    file: def.file.clone(),
                    option: format!("failregex[{i}]"),
                    regex: r.clone(),
                    message: "no failure id: use <HOST>, <ADDR>, <F-ID/> or <F-MLFID>".into(),
                });
            }
            fail.push(m);
        }
        let mut ignore = Vec::new();
        for (i, r) in def.ignoreregex.iter().enumerate() {
            ignore.push(build(format!("ignoreregex[{i}]"), r)?);
        }
        let fail_set = if fail.len() > 1 {
            regex::RegexSetBuilder::new(fail.iter().map(Matcher::relaxed_pattern))
                .size_limit(64 << 20)
                .dfa_size_limit(16 << 20)
                .multi_line(multiline)
                .build()
                .ok()
        } else {
            None
        };
        let prefilter = Prefilter::build(&fail);
        let pref_literals = pref
            .as_ref()
            .and_then(|p| crate::literals::required(p.relaxed_pattern()))
            .and_then(|lits| leftmost(&lits));
        let dates = DateDetector::new(&def.datepattern, opts.timezone.clone()).map_err(
            |(pattern, message)| FilterError::DatePattern {
                file: def.file.clone(),
                pattern,
                message,
            },
        )?;
        Ok(Filter {
            def,
            pref,
            fail,
            ignore,
            fail_set,
            prefilter,
            pref_literals,
            dates,
            check_all: opts.check_all,
            lines: VecDeque::new(),
            mlfid: VecDeque::new(),
        })
    }

    /// The resolved definition.
    pub fn definition(&self) -> &FilterDefinition {
        &self.def
    }

    /// The compiled prefregex.
    pub fn prefregex(&self) -> Option<&Matcher> {
        self.pref.as_ref()
    }

    /// The compiled failregexes.
    pub fn failregexes(&self) -> &[Matcher] {
        &self.fail
    }

    /// The compiled ignoreregexes.
    pub fn ignoreregexes(&self) -> &[Matcher] {
        &self.ignore
    }

    /// Date template names in order.
    pub fn date_templates(&self) -> Vec<String> {
        self.dates.template_names()
    }

    /// Processes one log line (without its newline); `now` (Unix seconds) drives year inference.
    pub fn process_line(&mut self, line: &str, now: i64) -> LineResult {
        let date = self.dates.find(line, now);
        // The buffer is the line without its date; a date at the very start needs no copy.
        let (buf, time): (std::borrow::Cow<'_, str>, _) = match date {
            Some(d) if d.start == 0 => (line.get(d.end..).unwrap_or("").into(), d.time),
            Some(d) => {
                let mut b = String::with_capacity(line.len());
                b.push_str(line.get(..d.start).unwrap_or(""));
                b.push_str(line.get(d.end..).unwrap_or(""));
                (b.into(), d.time)
            }
            None => (line.into(), None),
        };
        let mut r = self.process_buffer(buf, time);
        r.date = date;
        r
    }

    /// Processes a line whose time is known (journal entries: no date parsing, fail2ban's
    /// systemd backend passes `HOST IDENT[PID]: MESSAGE`).
    pub fn process_line_with_time(&mut self, line: &str, time: i64) -> LineResult {
        self.process_buffer(line.into(), Some(time))
    }

    fn process_buffer(&mut self, buf: std::borrow::Cow<'_, str>, time: Option<i64>) -> LineResult {
        let mut result = LineResult::default();
        let joined;
        let buffer: &str = if self.def.maxlines > 1 {
            self.lines.push_back(buf.into_owned());
            while self.lines.len() > self.def.maxlines {
                self.lines.pop_front();
            }
            joined = std::borrow::Cow::Owned(
                self.lines
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            &joined
        } else {
            joined = buf;
            &joined
        };
        // fail2ban searches ignoreregex first only when there are clearly fewer of them.
        let early_ignore = (self.ignore.len() as isize) < (self.fail.len() as isize) - 2;
        if early_ignore && self.ignored(buffer, &mut result) {
            result.ignored = true;
            return result;
        }
        // Literal prefilters: a line without any of the prefregex's required literals, or
        // without any failregex's, cannot fail. The prefregex set is usually the more selective.
        if let Some(ac) = &self.pref_literals
            && !ac.is_match(buffer)
        {
            return result;
        }
        let mask = match &self.prefilter {
            Some(p) => p.candidates(buffer),
            None => u64::MAX,
        };
        if mask == 0 {
            return result;
        }
        let mut pre: Groups = Vec::new();
        let mut content: Option<String> = None;
        if let Some(p) = &self.pref {
            match p.find(buffer) {
                Found::Yes(g) => {
                    content = g
                        .iter()
                        .find(|(k, _)| k == "content")
                        .map(|(_, v)| v.clone());
                    pre = g;
                    result.prefregex_matched = true;
                }
                Found::No => return result,
                Found::TooComplex => {
                    result.too_complex = true;
                    return result;
                }
            }
        }
        let text: &str = content.as_deref().unwrap_or(buffer);
        let in_mask = |i: usize| i >= 64 || mask & (1u64 << i) != 0;
        let candidates: Vec<usize> = match &self.fail_set {
            Some(set) if mask.count_ones() > 1 => set
                .matches(text)
                .into_iter()
                .filter(|i| in_mask(*i))
                .collect(),
            _ => (0..self.fail.len()).filter(|i| in_mask(*i)).collect(),
        };
        let mut matched_any = false;
        for i in candidates {
            let Some(m) = self.fail.get(i) else { continue };
            let g = match m.find(text) {
                Found::Yes(g) => g,
                Found::No => continue,
                Found::TooComplex => {
                    result.too_complex = true;
                    continue;
                }
            };
            if !early_ignore && !self.ignore.is_empty() && self.ignored(text, &mut result) {
                result.ignored = true;
                if !self.check_all {
                    break;
                }
                continue;
            }
            let mut groups = pre.clone();
            for (k, v) in g {
                if let Some(slot) = groups.iter_mut().find(|(gk, _)| *gk == k) {
                    slot.1 = v;
                } else {
                    groups.push((k, v));
                }
            }
            let hit = self.make_hit(i, groups, time);
            let is_failure = hit.kind == HitKind::Failure;
            result.hits.push(hit);
            matched_any = true;
            if is_failure && !self.check_all {
                break;
            }
        }
        if matched_any && self.def.maxlines > 1 {
            // fail2ban removes the matched lines from the buffer; the whole window matched here.
            self.lines.clear();
        }
        result
    }

    fn ignored(&self, text: &str, result: &mut LineResult) -> bool {
        for ig in &self.ignore {
            match ig.find(text) {
                Found::Yes(_) => return true,
                Found::TooComplex => result.too_complex = true,
                Found::No => {}
            }
        }
        false
    }

    fn make_hit(&mut self, regex: usize, mut groups: Groups, time: Option<i64>) -> Hit {
        let get = |g: &Groups, k: &str| {
            g.iter()
                .rev()
                .find(|(gk, _)| gk == k)
                .map(|(_, v)| v.clone())
        };
        let mut kind = HitKind::Failure;
        if let Some(mlfid) = get(&groups, "mlfid") {
            let nofail = get(&groups, "nofail").is_some_and(|v| !v.is_empty())
                || get(&groups, "mlfgained").is_some_and(|v| !v.is_empty());
            let gained = get(&groups, "mlfgained").is_some_and(|v| !v.is_empty());
            let forget = get(&groups, "mlfforget").is_some();
            // A failure seen earlier on this connection without an id (sendmail's `User
            // unknown` before the `from=... relay=[IP]` line) turns the nofail line that brings
            // the address into the failure.
            let mut pending_before = false;
            if let Some(pos) = self.mlfid.iter().position(|e| e.id == mlfid)
                && let Some(entry) = self.mlfid.remove(pos)
            {
                for (k, v) in entry.groups {
                    if !groups.iter().any(|(gk, _)| *gk == k) {
                        groups.push((k, v));
                    }
                }
                pending_before = entry.pending;
            }
            let id = failure_id(&groups, &self.def.usedns);
            kind = if gained || (nofail && !(pending_before && id.is_some())) {
                HitKind::NoFail
            } else if id.is_none() {
                HitKind::Pending
            } else {
                HitKind::Failure
            };
            if !forget && !gained {
                let keep: Groups = groups
                    .iter()
                    .filter(|(k, _)| !CONTROL_GROUPS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                self.mlfid.push_back(MlfEntry {
                    id: mlfid,
                    groups: keep,
                    pending: kind == HitKind::Pending
                        || (pending_before && kind == HitKind::NoFail),
                });
                while self.mlfid.len() > MLFID_CACHE {
                    self.mlfid.pop_front();
                }
            }
            return Hit {
                regex,
                kind,
                id,
                time,
                groups,
            };
        } else if get(&groups, "nofail").is_some_and(|v| !v.is_empty()) {
            kind = HitKind::NoFail;
        }
        let id = failure_id(&groups, &self.def.usedns);
        if kind == HitKind::Failure && id.is_none() {
            kind = HitKind::Pending;
        }
        Hit {
            regex,
            kind,
            id,
            time,
            groups,
        }
    }
}

/// `fid`, else `ip4` (with `cidr`), `ip6`, `dns` (dropped with `usedns = no`).
fn failure_id(groups: &Groups, usedns: &str) -> Option<FailureId> {
    let get = |k: &str| {
        groups
            .iter()
            .rev()
            .find(|(gk, _)| gk == k)
            .map(|(_, v)| v.as_str())
    };
    if let Some(fid) = get("fid") {
        return Some(FailureId::Raw(fid.to_string()));
    }
    let cidr = get("cidr").and_then(|c| c.parse::<u8>().ok());
    let ip = if let Some(v4) = get("ip4") {
        Some(parse_ipv4(v4).map_or_else(|| FailureId::Raw(v4.to_string()), FailureId::Ip))
    } else if let Some(v6) = get("ip6") {
        Some(match v6.parse::<std::net::Ipv6Addr>() {
            Ok(a) => FailureId::Ip(match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(a),
            }),
            Err(_) => FailureId::Raw(v6.to_string()),
        })
    } else if let Some(dns) = get("dns") {
        if usedns == "no" {
            None
        } else {
            Some(FailureId::Raw(dns.to_string()))
        }
    } else {
        None
    };
    match (ip, cidr) {
        (Some(FailureId::Ip(a)), Some(p)) => Some(FailureId::Net(a, p)),
        (ip, _) => ip,
    }
}

/// Dotted quad; leading zeros allowed as in Python's `IPAddr` (`010.1.1.1` = 10.1.1.1).
pub fn parse_ipv4(s: &str) -> Option<IpAddr> {
    let mut o = [0u8; 4];
    let mut n = 0;
    for part in s.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 {
            return None;
        }
        o[n] = part.parse().ok()?;
        n += 1;
    }
    (n == 4).then(|| IpAddr::from(o))
}
