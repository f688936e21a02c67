//! Configuration audit of Postfix, Dovecot, fail2ban and mxguard itself (`mxguard audit`).
//!
//! The audit reads what the administrator's tools print (`postconf -n`, `postconf -M`,
//! `doveconf -n`) or the raw files (main.cf, master.cf, dovecot.conf, jail.local), judges every
//! parameter left unset by its built-in default (Postfix 3.7, Dovecot 2.3), and runs a catalog
//! of rules (`catalog`) over the result. Each finding names the place (file, service, line,
//! parameter and value), why it matters (documentation reference or CVE) and the exact fix.
//!
//! It never edits a file and never talks to a running daemon: `input` only runs the read-only
//! `postconf`/`doveconf` commands. The command-line front is `crate::cli::audit`; `report`
//! renders text, JSON and fix snippets. The rule catalog is in docs/audit.md.

pub mod catalog;
pub mod dovecot;
pub mod error;
pub mod fail2ban;
pub mod input;
pub mod mxconfig;
pub mod net;
pub mod postfix;
pub mod postfix_defaults;
pub mod report;
pub mod rules;
pub mod spamassassin;

pub use catalog::{RULES, RuleInfo, rule_info};
pub use error::AuditError;
pub use input::Inputs;

use serde::Serialize;

/// How bad a finding is. Ordered from least to most severe so `>=` compares thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fact worth showing; no action required.
    Info,
    /// Hygiene.
    Low,
    /// Weak hardening with a known abuse path, or an availability break.
    Medium,
    /// Credential exposure, spoofing by any authenticated user, or likely abuse.
    High,
    /// Exploitable now by anyone on the Internet (relay or login bypass).
    Critical,
}

impl Severity {
    /// All severities, most severe first (the order of the text report).
    pub const ALL_DESC: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// Lower-case name as used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a lower-case severity name.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL_DESC
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Source name: a file path, or the command whose output was read (`postconf -n`).
    pub file: String,
    /// master.cf service (`submission/inet`) or Dovecot section path (`service auth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// 1-based line in `file`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(svc) = &self.service {
            write!(f, " [{svc}]")?;
        }
        Ok(())
    }
}

/// One line to add to a configuration file to fix a finding (`--fix-snippet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    /// Which file the line belongs to: `main.cf`, `master.cf`, `dovecot.conf`, `jail.local`,
    /// `mxguard.toml`, `local.cf`.
    pub file: &'static str,
    /// The line(s) to add or change.
    pub text: String,
}

/// One problem found by a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id (`PF-OPEN-RELAY-PERMIT`).
    pub rule: &'static str,
    /// Severity of this finding (a rule may raise or lower its default, see the catalog).
    pub severity: Severity,
    /// One-line title of the rule.
    pub title: &'static str,
    /// Where it was found.
    pub location: Location,
    /// Parameter or setting involved.
    pub parameter: String,
    /// Its effective value (`(default) x` when unset and judged by the default).
    pub value: String,
    /// What exactly is wrong here.
    pub detail: String,
    /// Why it matters, with the documentation reference or CVE.
    pub why: &'static str,
    /// The exact fix.
    pub fix: String,
    /// Lines to paste (never applied by mxguard).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snippet: Vec<Snippet>,
}

/// Runs every rule over the inputs and returns the findings, most severe first, then by rule
/// id and place (a stable order for golden files and diffs).
pub fn audit(inputs: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    rules::run_all(inputs, &mut out);
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(b.rule))
            .then_with(|| a.location.file.cmp(&b.location.file))
            .then_with(|| a.location.service.cmp(&b.location.service))
            .then_with(|| a.location.line.cmp(&b.location.line))
            .then_with(|| a.parameter.cmp(&b.parameter))
    });
    out.dedup();
    let ids: Vec<String> = inputs
        .postfix
        .as_ref()
        .map(|pf| {
            pf.effective_services()
                .iter()
                .map(postfix::Service::id)
                .collect()
        })
        .unwrap_or_default();
    merge_services(out, &ids)
}

/// Collapses findings that differ only in the master.cf service named in their detail (the
/// same main.cf setting judged for smtp, submission and submissions) into one finding that
/// lists every service, so one misconfigured line gives one finding.
fn merge_services(findings: Vec<Finding>, ids: &[String]) -> Vec<Finding> {
    const MARK: &str = "\u{1}SERVICE\u{1}";
    let service_in = |detail: &str| -> Option<String> {
        // Longest id first: "submissions/inet" must not match as "submission/inet".
        let mut sorted: Vec<&String> = ids.iter().collect();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
        sorted
            .into_iter()
            .find(|id| detail.contains(id.as_str()))
            .cloned()
    };
    let mut out: Vec<(Finding, String, Vec<String>)> = Vec::new();
    for f in findings {
        let svc = if f.location.service.is_none() {
            service_in(&f.detail)
        } else {
            None
        };
        let Some(svc) = svc else {
            out.push((f, String::new(), Vec::new()));
            continue;
        };
        let norm = f.detail.replacen(&svc, MARK, 1);
        if let Some(prev) = out.iter_mut().find(|(p, n, s)| {
            !s.is_empty()
                && *n == norm
                && p.rule == f.rule
                && p.severity == f.severity
                && p.location == f.location
                && p.parameter == f.parameter
                && p.value == f.value
        }) {
            prev.2.push(svc);
            continue;
        }
        out.push((f, norm, vec![svc]));
    }
    out.into_iter()
        .map(|(mut f, norm, svcs)| {
            if svcs.len() > 1 {
                f.detail = norm.replacen(MARK, &svcs.join(", "), 1);
            }
            f
        })
        .collect()
}
