//! A compiled fail2ban regex: the `regex` crate when the translated pattern allows it, else
//! `fancy-regex` with a backtracking budget behind a `regex`-crate superset check (`relaxed`), so
//! the backtracking engine only sees lines that can match. Used by `filter` for prefregex,
//! failregex and ignoreregex; knows nothing about fail2ban's pipeline.

use crate::translate::{Translated, translate};

/// Backtracking budget per search: the dovecot GHSA-33wh-ccjc-p397 lines must stay fast.
const BACKTRACK_LIMIT: usize = 200_000;

/// Which engine runs a regex, and why (shown by `test-filter --verbose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// The `regex` crate (linear time, DFA).
    Linear,
    /// `fancy-regex`, for the listed constructs, behind a linear superset check.
    Backtracking(Vec<String>),
}

/// Named groups of one match: (name, value), in group order, only groups that participated.
pub type Groups = Vec<(String, String)>;

/// One compiled regex.
#[derive(Debug)]
pub struct Matcher {
    source: String,
    translated: Translated,
    linear: Option<regex::Regex>,
    fancy: Option<fancy_regex::Regex>,
    relaxed: regex::Regex,
    names: Vec<String>,
    relaxed_names: Vec<String>,
    /// Per-line linearization of the backtracking constructs (see [`Linearizer`]).
    linear_plan: Option<Linearizer>,
}

type Finder = memchr::memmem::Finder<'static>;

/// A decidable look-around: (slot, positive, finders for its body's required literals).
type LookPlan = (usize, bool, Vec<Finder>);

fn any_in(finders: &[Finder], hay: &[u8]) -> bool {
    finders.iter().any(|f| f.find(hay).is_some())
}

/// Decides, from the literals present in a line, how every look-around / back-reference /
/// conditional behaves on it, and then runs a precompiled `regex`-crate variant instead of the
/// backtracking engine. A construct is decided when its guard (the literal run right before it)
/// is absent (unreachable: any variant is exact), or, for a top-level look-around, when its body
/// needs a literal the line lacks (a positive one always fails: "never" slot; a negative one
/// always succeeds: empty slot). Anything undecided falls back to fancy-regex.
#[derive(Debug)]
struct Linearizer {
    /// Per construct: guard finder, and (slot, positive, body literal finders) for look-arounds.
    constructs: Vec<(Option<Finder>, Option<LookPlan>)>,
    /// Variant per fail-mask over the slots (2^slots entries).
    variants: Vec<regex::Regex>,
}

impl Linearizer {
    const MAX_SLOTS: usize = 3;

    fn new(t: &Translated) -> Option<Linearizer> {
        let slots = t.looks.iter().flatten().count();
        if slots > Self::MAX_SLOTS {
            return None;
        }
        let mut constructs = Vec::new();
        for (g, l) in t.guards.iter().zip(&t.looks) {
            let guard = g
                .as_ref()
                .map(|g| memchr::memmem::Finder::new(g.as_bytes()).into_owned());
            let look = l.as_ref().and_then(|l| {
                l.inner.as_ref().map(|lits| {
                    let f = lits
                        .iter()
                        .map(|x| memchr::memmem::Finder::new(x.as_bytes()).into_owned())
                        .collect();
                    (l.slot, l.positive, f)
                })
            });
            if guard.is_none() && look.is_none() {
                return None; // can never be decided
            }
            constructs.push((guard, look));
        }
        let mut variants = Vec::new();
        for mask in 0..(1u64 << slots) {
            let p = crate::translate::instantiate(&t.relaxed_template, mask);
            variants.push(build_linear(&p).ok()?);
        }
        Some(Linearizer {
            constructs,
            variants,
        })
    }

    /// The variant that is exact on `hay`, if every construct is decided.
    fn pick(&self, hay: &[u8]) -> Option<&regex::Regex> {
        let mut mask = 0u64;
        for (guard, look) in &self.constructs {
            if let Some(g) = guard
                && g.find(hay).is_none()
            {
                continue;
            }
            match look {
                Some((slot, positive, body)) if !any_in(body, hay) => {
                    if *positive {
                        mask |= 1 << slot;
                    }
                }
                _ => return None,
            }
        }
        self.variants.get(usize::try_from(mask).ok()?)
    }
}

/// Outcome of a search that may hit the backtracking budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No match.
    No,
    /// A match with its named groups.
    Yes(Groups),
    /// The backtracking engine gave up (counted, treated as no match).
    TooComplex,
}

fn build_linear(p: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(64 << 20)
        .dfa_size_limit(16 << 20)
        .build()
        .map_err(|e| e.to_string())
}

impl Matcher {
    /// Compiles a Python regex (tags already expanded). `multiline` = fail2ban `maxlines > 1`.
    pub fn new(python: &str, multiline: bool) -> Result<Matcher, String> {
        let mut t = translate(python)?;
        if multiline {
            t.exact.insert_str(0, "(?m)");
            t.relaxed.insert_str(0, "(?m)");
            t.relaxed_template.insert_str(0, "(?m)");
        }
        let relaxed = build_linear(&t.relaxed)?;
        let (linear, fancy) = if t.needs_backtracking() {
            let f = fancy_regex::RegexBuilder::new(&t.exact)
                .backtrack_limit(BACKTRACK_LIMIT)
                .build()
                .map_err(|e| e.to_string())?;
            (None, Some(f))
        } else {
            (Some(build_linear(&t.exact)?), None)
        };
        let names: Vec<String> = match (&linear, &fancy) {
            (Some(l), _) => l
                .capture_names()
                .map(|n| n.unwrap_or("").to_string())
                .collect(),
            (_, Some(f)) => f
                .capture_names()
                .map(|n| n.unwrap_or("").to_string())
                .collect(),
            _ => Vec::new(),
        };
        let relaxed_names = relaxed
            .capture_names()
            .map(|n| n.unwrap_or("").to_string())
            .collect();
        let linear_plan = if fancy.is_some() {
            Linearizer::new(&t)
        } else {
            None
        };
        Ok(Matcher {
            relaxed_names,
            linear_plan,
            source: python.to_string(),
            translated: t,
            linear,
            fancy,
            relaxed,
            names,
        })
    }

    /// The regex as given (after tag expansion).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The translation.
    pub fn translated(&self) -> &Translated {
        &self.translated
    }

    /// The engine in use.
    pub fn engine(&self) -> Engine {
        if self.fancy.is_some() {
            Engine::Backtracking(self.translated.fancy_reasons.clone())
        } else {
            Engine::Linear
        }
    }

    /// The linear superset pattern (for RegexSet construction).
    pub fn relaxed_pattern(&self) -> &str {
        &self.translated.relaxed
    }

    /// Whether a named group exists.
    pub fn has_group(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Cheap check: false means the regex cannot match.
    pub fn may_match(&self, hay: &str) -> bool {
        self.relaxed.is_match(hay)
    }

    /// Searches `hay`, returning the named groups that participated.
    pub fn find(&self, hay: &str) -> Found {
        if let Some(l) = &self.linear {
            return match l.captures(hay) {
                Some(c) => Found::Yes(self.collect(|i| c.get(i).map(|m| m.as_str()))),
                None => Found::No,
            };
        }
        let Some(f) = &self.fancy else {
            return Found::No;
        };
        if let Some(variant) = self
            .linear_plan
            .as_ref()
            .and_then(|p| p.pick(hay.as_bytes()))
        {
            // Every construct is decided on this line: the variant is exact here.
            return match variant.captures(hay) {
                Some(c) => Found::Yes(collect_named(&self.relaxed_names, |i| {
                    c.get(i).map(|m| m.as_str())
                })),
                None => Found::No,
            };
        }
        if !self.relaxed.is_match(hay) {
            return Found::No;
        }
        match f.captures(hay) {
            Ok(Some(c)) => Found::Yes(self.collect(|i| c.get(i).map(|m| m.as_str()))),
            Ok(None) => Found::No,
            Err(_) => Found::TooComplex,
        }
    }

    fn collect<'h>(&self, get: impl Fn(usize) -> Option<&'h str>) -> Groups {
        collect_named(&self.names, get)
    }
}

fn collect_named<'h>(names: &[String], get: impl Fn(usize) -> Option<&'h str>) -> Groups {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            continue;
        }
        if let Some(v) = get(i) {
            out.push((n.clone(), v.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_fancy() {
        let m = Matcher::new(r"^a (?P<x>\d+)$", false).unwrap();
        assert_eq!(m.engine(), Engine::Linear);
        assert_eq!(m.find("a 12"), Found::Yes(vec![("x".into(), "12".into())]));
        let m = Matcher::new(r"^a(?! b)(?P<x>.*)$", false).unwrap();
        assert!(matches!(m.engine(), Engine::Backtracking(_)));
        assert_eq!(m.find("a b"), Found::No);
        assert_eq!(m.find("a c"), Found::Yes(vec![("x".into(), " c".into())]));
        // guarded look-ahead: lines without "lost " take the linear path, same answers
        let m = Matcher::new(r"^(?:lost (?!DATA)(?P<c>[A-Z]+)|(?P<d>other))$", false).unwrap();
        assert_eq!(
            m.find("other"),
            Found::Yes(vec![("d".into(), "other".into())])
        );
        assert_eq!(m.find("lost DATA"), Found::No);
        assert_eq!(
            m.find("lost EHLO"),
            Found::Yes(vec![("c".into(), "EHLO".into())])
        );
        // decided look-arounds: positive body literal absent: fails; negative: succeeds
        let m = Matcher::new(r"^d(?= .* auth=0/)(?P<r>.*)$|^l(?!.*DATA)(?P<s>.*)$", false).unwrap();
        assert!(m.linear_plan.is_some());
        assert_eq!(m.find("d x auth=1/1"), Found::No);
        assert_eq!(
            m.find("d x auth=0/1"),
            Found::Yes(vec![("r".into(), " x auth=0/1".into())])
        );
        assert_eq!(
            m.find("l EHLO"),
            Found::Yes(vec![("s".into(), " EHLO".into())])
        );
        assert_eq!(m.find("l DATA"), Found::No);
    }

    /// Linearized variants keep the multi-line flag of `maxlines > 1` filters.
    #[test]
    fn multiline_variants_keep_flag() {
        let m = Matcher::new(r"^bbb(?!xyz)$", true).unwrap();
        assert!(m.linear_plan.is_some());
        assert!(matches!(m.find("a\nbbb\nc"), Found::Yes(_)));
    }

    #[test]
    fn catastrophic_backtracking_is_bounded() {
        let m = Matcher::new(r"^(?!x)(a|a)*(a|a)*(a|a)*\1b", false).unwrap();
        let hay = "a".repeat(5000);
        assert!(matches!(m.find(&hay), Found::No | Found::TooComplex));
    }
}
