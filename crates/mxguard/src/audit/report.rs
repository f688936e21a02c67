//! Renders audit results: the text report grouped by severity with a summary line, the JSON
//! document (schema `mxguard.audit/1`, documented in docs/audit.md), the `--fix-snippet`
//! configuration lines grouped by file, the rule list and `--explain` text. Pure functions
//! from findings to strings; the CLI decides where they go.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::catalog::{RULES, RuleInfo};
use super::{Finding, Severity};

/// JSON schema identifier; bump on incompatible changes.
pub const SCHEMA: &str = "mxguard.audit/1";

/// Count of findings per severity.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
    pub total: usize,
}

/// Counts findings per severity.
pub fn summary(findings: &[Finding]) -> Summary {
    let mut s = Summary::default();
    for f in findings {
        match f.severity {
            Severity::Critical => s.critical += 1,
            Severity::High => s.high += 1,
            Severity::Medium => s.medium += 1,
            Severity::Low => s.low += 1,
            Severity::Info => s.info += 1,
        }
        s.total += 1;
    }
    s
}

/// The summary line (`5 findings: 0 critical, 1 high, ...`).
pub fn summary_line(findings: &[Finding]) -> String {
    let s = summary(findings);
    format!(
        "{} finding{}: {} critical, {} high, {} medium, {} low, {} info",
        s.total,
        if s.total == 1 { "" } else { "s" },
        s.critical,
        s.high,
        s.medium,
        s.low,
        s.info
    )
}

/// Text report: one block per severity, most severe first, then the summary line.
pub fn text(findings: &[Finding], sources: &[String]) -> String {
    let mut out = String::new();
    if !sources.is_empty() {
        let _ = writeln!(out, "mxguard audit of: {}", sources.join(", "));
        out.push('\n');
    }
    for sev in Severity::ALL_DESC {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "== {} ({}) ==",
            sev.as_str().to_uppercase(),
            group.len()
        );
        for f in group {
            let _ = writeln!(out, "[{}] {}", f.rule, f.title);
            let _ = writeln!(out, "  where: {}", f.location);
            let _ = writeln!(out, "  found: {} = {}", f.parameter, f.value);
            let _ = writeln!(out, "  what:  {}", f.detail);
            let _ = writeln!(out, "  why:   {}", f.why);
            let _ = writeln!(out, "  fix:   {}", f.fix);
            out.push('\n');
        }
    }
    out.push_str(&summary_line(findings));
    out.push('\n');
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    mxguard_version: &'static str,
    sources: &'a [String],
    summary: Summary,
    findings: &'a [Finding],
}

/// JSON report (pretty-printed, stable key order).
pub fn json(findings: &[Finding], sources: &[String]) -> String {
    let report = JsonReport {
        schema: SCHEMA,
        mxguard_version: env!("CARGO_PKG_VERSION"),
        sources,
        summary: summary(findings),
        findings,
    };
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}

/// Suggested lines per target file, de-duplicated, in finding order.
pub fn fix_snippets(findings: &[Finding]) -> String {
    let mut by_file: BTreeMap<&str, Vec<(String, &str)>> = BTreeMap::new();
    for f in findings {
        for s in &f.snippet {
            let entry = by_file.entry(s.file).or_default();
            if !entry.iter().any(|(t, _)| *t == s.text) {
                entry.push((s.text.clone(), f.rule));
            }
        }
    }
    if by_file.is_empty() {
        return "# mxguard audit: no configuration changes to suggest\n".to_string();
    }
    let mut out = String::from(
        "# Suggested changes from `mxguard audit` (nothing was edited). Review each line, then\n# reload: postfix reload / doveadm reload / fail2ban-client reload.\n",
    );
    for (file, lines) in by_file {
        let _ = writeln!(out, "\n# ---- {file}");
        for (text, rule) in lines {
            let _ = writeln!(out, "# {rule}");
            let _ = writeln!(out, "{text}");
        }
    }
    out
}

/// `--list-rules`: `ID  SEVERITY  TITLE` per line.
pub fn list_rules() -> String {
    let mut out = String::new();
    for r in RULES {
        let _ = writeln!(out, "{:<42} {:<8} {}", r.id, r.severity.as_str(), r.title);
    }
    let _ = writeln!(out, "{} rules", RULES.len());
    out
}

/// `--explain RULE`.
pub fn explain(r: &RuleInfo) -> String {
    format!(
        "{}  ({} by default)\n{}\n\nWhy: {}\n\nFix: {}\n",
        r.id,
        r.severity.as_str(),
        r.title,
        r.why,
        r.fix
    )
}

/// Markdown table of every rule, as embedded in docs/audit.md (`--list-rules --format
/// markdown`).
pub fn rules_markdown() -> String {
    let mut out = String::from("| id | severity | title |\n|---|---|---|\n");
    for r in RULES {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            r.id,
            r.severity.as_str(),
            r.title.replace('|', "\\|")
        );
    }
    out
}
