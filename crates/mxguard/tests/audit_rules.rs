//! Per-rule tests of `mxguard audit`: for every rule in the catalog, tests/audit/cases.txt has a
//! minimal change to the hardened baseline (tests/audit/base) that must trigger it and a correct
//! variant that must not. The triggered findings are compared with golden files in
//! tests/audit/golden/ (`BLESS=1 cargo test -p mxguard --test audit_rules` rewrites them).

// Tests may unwrap (helper functions outside #[test] included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mxguard::audit::input::{self, DovecotSource, PostfixSource};
use mxguard::audit::postfix_defaults::parse_version;
use mxguard::audit::{Finding, Inputs, RULES, audit, report};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audit")
}

#[derive(Debug, Default, Clone)]
struct Variant {
    files: BTreeMap<String, String>,
    unset: Vec<String>,
}

#[derive(Debug, Default)]
struct Case {
    id: String,
    bad: Variant,
    good: Variant,
    postfix_version: Option<String>,
    dovecot_version: Option<String>,
}

fn parse_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.txt")).unwrap();
    let mut cases: Vec<Case> = Vec::new();
    // (is_bad, file name) of the block being read.
    let mut block: Option<(bool, String)> = None;
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("=== ") {
            cases.push(Case {
                id: id.trim().to_string(),
                ..Default::default()
            });
            block = None;
            continue;
        }
        if let Some(head) = line.strip_prefix("--- ") {
            let case = cases.last_mut().expect("--- before ===");
            let words: Vec<&str> = head.split_whitespace().collect();
            match words.as_slice() {
                ["version", "postfix", v] => {
                    case.postfix_version = Some(v.to_string());
                    block = None;
                }
                ["version", "dovecot", v] => {
                    case.dovecot_version = Some(v.to_string());
                    block = None;
                }
                [which, file] if *which == "bad" || *which == "good" => {
                    block = Some((*which == "bad", file.to_string()));
                }
                _ => panic!("bad case header: {line}"),
            }
            continue;
        }
        let Some((is_bad, file)) = &block else {
            continue;
        };
        let case = cases.last_mut().unwrap();
        let v = if *is_bad {
            &mut case.bad
        } else {
            &mut case.good
        };
        if file == "unset" {
            if !line.trim().is_empty() {
                v.unset.push(line.trim().to_string());
            }
        } else {
            let e = v.files.entry(file.clone()).or_default();
            e.push_str(line);
            e.push('\n');
        }
    }
    cases
}

/// Removes main.cf parameters (with their continuation lines) from a text.
fn without(text: &str, names: &[String]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) && skipping {
            continue;
        }
        let name = line.split('=').next().unwrap_or("").trim();
        skipping = names.iter().any(|n| n == name);
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Writes baseline + variant into a temp dir and loads every component.
fn load(variant: &Variant, case: &Case) -> (tempfile::TempDir, Inputs) {
    let tmp = tempfile::tempdir().unwrap();
    let base = dir().join("base");
    let files = [
        ("main.cf", "main.cf"),
        ("master.cf", "master.cf"),
        ("dovecot.conf", "dovecot.conf"),
        ("fail2ban/jail.local", "jail.local"),
        ("mxguard.toml", "mxguard.toml"),
        ("local.cf", "local.cf"),
    ];
    std::fs::create_dir_all(tmp.path().join("fail2ban")).unwrap();
    for (path, key) in files {
        let mut text = std::fs::read_to_string(base.join(path)).unwrap();
        if key == "main.cf" {
            text = without(&text, &variant.unset);
        }
        if let Some(extra) = variant.files.get(key) {
            text.push_str(extra);
        }
        // "FILE!" replaces the baseline file instead of appending to it.
        if let Some(whole) = variant.files.get(&format!("{key}!")) {
            text = whole.clone();
        }
        std::fs::write(tmp.path().join(path), text).unwrap();
    }
    for k in variant.files.keys() {
        let k = k.trim_end_matches('!');
        assert!(
            files.iter().any(|(_, key)| *key == k),
            "{}: unknown file {k}",
            case.id
        );
    }
    let pv = case.postfix_version.as_deref().and_then(parse_version);
    let dv = case.dovecot_version.as_deref().and_then(parse_version);
    let t = tmp.path();
    let inputs = Inputs {
        postfix: Some(input::load_postfix(&PostfixSource::Dir(t.to_path_buf()), pv).unwrap()),
        dovecot: Some(
            input::load_dovecot(&DovecotSource::File(t.join("dovecot.conf")), dv).unwrap(),
        ),
        fail2ban: Some(input::load_fail2ban(&t.join("fail2ban")).unwrap()),
        mxguard: Some(input::load_mxguard(&t.join("mxguard.toml")).unwrap()),
        spamassassin: Some(input::load_spamassassin(&t.join("local.cf")).unwrap()),
    };
    (tmp, inputs)
}

fn golden_check(name: &str, actual: &str) -> Result<(), String> {
    let path = dir().join("golden").join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (run with BLESS=1 to create)", path.display()))?;
    if expected != actual {
        return Err(format!(
            "{name} differs from golden file (BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}"
        ));
    }
    Ok(())
}

fn render(findings: &[&Finding], tmp: &Path) -> String {
    let owned: Vec<Finding> = findings.iter().map(|f| (*f).clone()).collect();
    report::text(&owned, &[]).replace(&tmp.display().to_string(), "$CASE")
}

#[test]
fn baseline_is_clean() {
    let case = Case {
        id: "baseline".into(),
        ..Default::default()
    };
    let (_tmp, inputs) = load(&Variant::default(), &case);
    let findings = audit(&inputs);
    assert!(
        findings.is_empty(),
        "hardened baseline has findings:\n{}",
        report::text(&findings, &[])
    );
}

#[test]
fn every_rule_has_a_case() {
    let cases = parse_cases();
    for r in RULES {
        assert!(cases.iter().any(|c| c.id == r.id), "no case for {}", r.id);
    }
    for c in &cases {
        assert!(
            RULES.iter().any(|r| r.id == c.id),
            "case for unknown rule {}",
            c.id
        );
        assert!(
            !c.bad.files.is_empty() || !c.bad.unset.is_empty(),
            "{}: no bad variant",
            c.id
        );
    }
}

#[test]
fn every_rule_triggers_on_bad_and_not_on_good() {
    let mut errors = Vec::new();
    let cases = parse_cases();
    for case in &cases {
        let (tmp, inputs) = load(&case.bad, case);
        let findings = audit(&inputs);
        let hits: Vec<&Finding> = findings.iter().filter(|f| f.rule == case.id).collect();
        if hits.is_empty() {
            errors.push(format!(
                "{}: bad variant did not trigger it; got:\n{}",
                case.id,
                report::text(&findings, &[])
            ));
        } else {
            for f in &hits {
                if f.detail.is_empty()
                    || f.why.is_empty()
                    || f.fix.is_empty()
                    || f.parameter.is_empty()
                {
                    errors.push(format!("{}: incomplete finding {f:?}", case.id));
                }
            }
            if let Err(e) = golden_check(&format!("{}.txt", case.id), &render(&hits, tmp.path())) {
                errors.push(e);
            }
        }
        let (_tmp2, inputs) = load(&case.good, case);
        let good: Vec<Finding> = audit(&inputs)
            .into_iter()
            .filter(|f| f.rule == case.id)
            .collect();
        if !good.is_empty() {
            errors.push(format!(
                "{}: good variant triggered it:\n{}",
                case.id,
                report::text(&good, &[])
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} cases failed:\n{}",
        errors.len(),
        cases.len(),
        errors.join("\n")
    );
}
