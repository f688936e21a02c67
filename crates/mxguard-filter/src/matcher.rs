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
    /// All guard literals of the backtracking constructs, if every construct has one.
    guards: Option<Vec<memchr::memmem::Finder<'static>>>,
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
        let guards = if fancy.is_some() && t.guards.iter().all(Option::is_some) {
            Some(
                t.guards
                    .iter()
                    .flatten()
                    .map(|g| memchr::memmem::Finder::new(g.as_bytes()).into_owned())
                    .collect(),
            )
        } else {
            None
        };
        Ok(Matcher {
            relaxed_names,
            guards,
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
        if let Some(guards) = &self.guards
            && !guards.iter().any(|g| g.find(hay.as_bytes()).is_some())
        {
            // No path can reach a look-around/back-reference here: the linear superset is exact.
            return match self.relaxed.captures(hay) {
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
    }

    #[test]
    fn catastrophic_backtracking_is_bounded() {
        let m = Matcher::new(r"^(?!x)(a|a)*(a|a)*(a|a)*\1b", false).unwrap();
        let hay = "a".repeat(5000);
        assert!(matches!(m.find(&hay), Found::No | Found::TooComplex));
    }
}
