//! End-to-end tests of the `mxguard audit` command on fixture files: the stock Debian 12
//! configuration (Postfix 3.7.11 + Dovecot 2.3.19, only its real weaknesses may fire), the
//! seed 003 incident configuration, broken inputs (exit 2), `--fail-on`, `--format json`,
//! `--explain`, `--list-rules`, `--fix-snippet`, and docs/audit.md listing every rule.

// Tests may unwrap (helper functions outside #[test] included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mxguard::audit::RULES;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audit")
}

fn mxguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn p(path: PathBuf) -> String {
    path.display().to_string()
}

fn golden(name: &str, actual: &str) {
    let path = fixtures().join("golden").join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        expected, actual,
        "{name} differs from golden file (BLESS=1 to accept)"
    );
}

/// Rule ids in a JSON report.
fn rule_ids(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut ids: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn debian_args() -> Vec<String> {
    let d = fixtures().join("debian12");
    vec![
        "--postfix-dir".into(),
        p(d.clone()),
        "--postfix-version".into(),
        "3.7.11".into(),
        "--doveconf-n".into(),
        p(d.join("doveconf-n.txt")),
    ]
}

/// The stock Debian 12 weaknesses, and nothing else.
const DEBIAN_EXPECTED: [&str; 10] = [
    "DV-AUTH-POLICY-NOT-SET",
    "DV-LISTEN-ALL",
    "PF-HELO-NO-CHECKS",
    "PF-HELO-NOT-REQUIRED",
    "PF-NO-CLIENT-RATE-LIMITS",
    "PF-SMTP-SMUGGLING",
    "PF-STRICT-RFC821-OFF",
    "PF-UNAUTH-PIPELINING-ALLOWED",
    "PF-VRFY-ENABLED",
    "XX-TLS-SNAKEOIL-CERT",
];

/// Claims that would be false alarms on any stock install.
const NEVER_ON_STOCK: [&str; 8] = [
    "PF-OPEN-RELAY-PERMIT",
    "PF-OPEN-RELAY-MYNETWORKS-ANY",
    "PF-MYNETWORKS-PUBLIC",
    "PF-NO-RELAY-CONTROL",
    "PF-SASL-PLAINTEXT-NO-TLS",
    "DV-PLAINTEXT-AUTH-ALLOWED",
    "DV-AUTH-MECH-PLAIN-NO-TLS",
    "DV-PASSDB-STATIC-NOPASSWORD",
];

#[test]
fn debian12_stock_reports_only_real_weaknesses() {
    let args = debian_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut json_args = args.clone();
    json_args.extend(["--format", "json"]);
    let out = mxguard(&json_args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids = rule_ids(&stdout(&out));
    assert_eq!(ids, DEBIAN_EXPECTED, "stock Debian 12 findings changed");
    for bad in NEVER_ON_STOCK {
        assert!(
            !ids.iter().any(|i| i == bad),
            "false alarm {bad} on stock Debian"
        );
    }
    let text = mxguard(&args);
    let fix = fixtures().display().to_string();
    golden("debian12.txt", &stdout(&text).replace(&fix, "$FIXTURES"));
    golden("debian12.json", &stdout(&out).replace(&fix, "$FIXTURES"));
}

#[test]
fn debian12_saved_command_outputs_give_the_same_findings() {
    let d = fixtures().join("debian12");
    let a = mxguard(&[
        "--postconf-n",
        &p(d.join("postconf-n.txt")),
        "--postconf-m",
        &p(d.join("postconf-M.txt")),
        "--postfix-version",
        "3.7.11",
        "--doveconf-n",
        &p(d.join("doveconf-n.txt")),
        "--format",
        "json",
    ]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(rule_ids(&stdout(&a)), DEBIAN_EXPECTED);
}

#[test]
fn debian12_fail_on_thresholds() {
    let args = debian_args();
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--fail-on", "high"]);
    assert_eq!(mxguard(&a).status.code(), Some(1), "smuggling is high");
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--fail-on", "critical"]);
    assert_eq!(mxguard(&a).status.code(), Some(0));
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--fail-on", "severe"]);
    assert_eq!(
        mxguard(&a).status.code(),
        Some(2),
        "unknown severity is a usage error"
    );
}

#[test]
fn seed003_incident_config_flags_missing_account_limits() {
    let d = fixtures().join("seed003");
    let out = mxguard(&[
        "--postconf-n",
        &p(d.join("postconf-n.txt")),
        "--postconf-m",
        &p(d.join("postconf-M.txt")),
        "--postfix-version",
        "3.7.11",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids = rule_ids(&stdout(&out));
    for want in [
        "PF-SASL-NO-OUTBOUND-LIMIT",
        "PF-SMTP-SMUGGLING",
        "PF-DNSBL-DEAD-LIST",
        "PF-SASL-ON-PORT25",
    ] {
        assert!(ids.iter().any(|i| i == want), "{want} missing: {ids:?}");
    }
    // Private mynetworks, login-mismatch checks first, and the loopback re-injection service
    // must stay quiet.
    for quiet in [
        "PF-MYNETWORKS-PUBLIC",
        "PF-SENDER-SPOOF-AUTHENTICATED",
        "PF-OPEN-RELAY-PERMIT",
        "PF-ERROR-LIMITS-LAX",
        "PF-CONN-COUNT-UNLIMITED",
        "PF-BACKSCATTER-NO-RECIPIENT-VALIDATION",
        "PF-RELAY-REINJECT-EXPOSED",
    ] {
        assert!(!ids.iter().any(|i| i == quiet), "false alarm {quiet}");
    }
}

#[test]
fn json_schema_is_stable() {
    let args = debian_args();
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&mxguard(&a))).unwrap();
    assert_eq!(v["schema"], "mxguard.audit/1");
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(
        v["summary"]["total"].as_u64().unwrap() as usize,
        findings.len()
    );
    assert_eq!(v["summary"]["high"], 1);
    for f in findings {
        for key in [
            "rule",
            "severity",
            "title",
            "parameter",
            "value",
            "detail",
            "why",
            "fix",
        ] {
            assert!(f[key].is_string(), "{key} missing in {f}");
        }
        assert!(f["location"]["file"].is_string());
        assert!(
            ["critical", "high", "medium", "low", "info"]
                .contains(&f["severity"].as_str().unwrap())
        );
    }
    // Most severe first.
    assert_eq!(findings[0]["rule"], "PF-SMTP-SMUGGLING");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    p(path)
}

#[test]
fn broken_inputs_exit_2_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cases: Vec<(Vec<String>, &str)> = vec![
        {
            let d = t.join("trunc");
            std::fs::create_dir(&d).unwrap();
            write(
                &d,
                "main.cf",
                b"myhostname = mx.example.org\nsmtpd_recipient_restrictions = permit_mynetworks,",
            );
            (vec!["--postfix-dir".into(), p(d)], "truncated")
        },
        {
            let d = t.join("cutkey");
            std::fs::create_dir(&d).unwrap();
            write(&d, "main.cf", b"myhostname = mx.example.org\nsmtpd_rec\n");
            (vec!["--postfix-dir".into(), p(d)], "line 2")
        },
        {
            let d = t.join("binary");
            std::fs::create_dir(&d).unwrap();
            write(&d, "main.cf", b"\x7fELF\x02\x01\x01\x00\x00\x00binary");
            (vec!["--postfix-dir".into(), p(d)], "binary")
        },
        {
            let d = t.join("master");
            std::fs::create_dir(&d).unwrap();
            write(&d, "main.cf", b"myhostname = mx.example.org\n");
            write(&d, "master.cf", b"smtp inet n - y\n");
            (vec!["--postfix-dir".into(), p(d)], "master.cf")
        },
        (
            vec!["--postfix-dir".into(), p(t.join("missing"))],
            "cannot read",
        ),
        (
            vec![
                "--dovecot-config".into(),
                write(t, "dovecot.conf", b"passdb {\n  driver = static\n"),
            ],
            "never closed",
        ),
        (
            vec![
                "--doveconf-n".into(),
                write(t, "dc.bin", &[0xff, 0xfe, 0x00, 0x41]),
            ],
            "binary",
        ),
        (
            vec!["--mxguard-config".into(), write(t, "mx.toml", b"[policy\n")],
            "mx.toml",
        ),
    ];
    for (args, needle) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = mxguard(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: stderr lacks '{needle}': {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?} printed a report");
    }
}

#[test]
fn missing_commands_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .arg("audit")
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`postconf` not found"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args(["audit", "--no-postfix"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`doveconf` not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_and_list_rules() {
    let out = mxguard(&["--explain", "pf-smtp-smuggling"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("CVE-2023-51764"));
    assert!(stdout(&out).contains("smtpd_forbid_bare_newline = normalize"));
    let out = mxguard(&["--explain", "PF-NOPE"]);
    assert_eq!(out.status.code(), Some(2));
    let out = mxguard(&["--list-rules"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).lines().count(), RULES.len() + 1);
    assert!(RULES.len() >= 50);
}

#[test]
fn fix_snippet_prints_lines_and_edits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = fixtures().join("debian12");
    for f in ["main.cf", "master.cf"] {
        std::fs::copy(d.join(f), tmp.path().join(f)).unwrap();
    }
    let before = std::fs::read(tmp.path().join("main.cf")).unwrap();
    let out = mxguard(&[
        "--postfix-dir",
        &p(tmp.path().to_path_buf()),
        "--postfix-version",
        "3.7.11",
        "--doveconf-n",
        &p(d.join("doveconf-n.txt")),
        "--fix-snippet",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let s = stdout(&out);
    for line in [
        "# ---- main.cf",
        "smtpd_forbid_bare_newline = normalize",
        "disable_vrfy_command = yes",
        "smtpd_helo_required = yes",
        "# ---- dovecot.conf",
        "auth_policy_server_url = http://127.0.0.1:10041/",
    ] {
        assert!(s.contains(line), "snippet lacks {line}:\n{s}");
    }
    assert_eq!(std::fs::read(tmp.path().join("main.cf")).unwrap(), before);
    golden("debian12-fix-snippet.txt", &s);
}

#[test]
fn docs_list_every_rule() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit.md");
    let text = std::fs::read_to_string(&docs).unwrap();
    for r in RULES {
        assert!(
            text.contains(&format!("`{}`", r.id)),
            "docs/audit.md does not list {}",
            r.id
        );
    }
}

/// CVE-2023-51764: the finding depends on the Postfix version (fixed releases, the 3.9
/// default).
#[test]
fn smuggling_depends_on_the_postfix_version() {
    let d = fixtures().join("debian12");
    let detail = |version: Option<&str>| -> Option<String> {
        let mut args = vec![
            "--postfix-dir".to_string(),
            p(d.clone()),
            "--format".into(),
            "json".into(),
        ];
        if let Some(v) = version {
            args.extend(["--postfix-version".to_string(), v.to_string()]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let v: serde_json::Value = serde_json::from_str(&stdout(&mxguard(&a))).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "PF-SMTP-SMUGGLING")
            .map(|f| f["detail"].as_str().unwrap().to_string())
    };
    assert!(
        detail(Some("3.7.8"))
            .unwrap()
            .contains("predates the fix: upgrade to 3.7.10")
    );
    assert!(detail(Some("3.7.9")).unwrap().contains("knows only yes/no"));
    assert!(
        detail(Some("3.7.11"))
            .unwrap()
            .contains("supports normalize")
    );
    assert!(detail(None).unwrap().contains("unless it is 3.9 or later"));
    assert_eq!(detail(Some("3.9.1")), None, "3.9 defaults to normalize");
}

#[test]
fn min_severity_filters_and_markdown_needs_list_rules() {
    let args = debian_args();
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--min-severity", "medium", "--format", "json"]);
    let ids = rule_ids(&stdout(&mxguard(&a)));
    assert_eq!(
        ids,
        [
            "PF-NO-CLIENT-RATE-LIMITS",
            "PF-SMTP-SMUGGLING",
            "XX-TLS-SNAKEOIL-CERT"
        ]
    );
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--format", "markdown"]);
    assert_eq!(mxguard(&a).status.code(), Some(2));
    let md = stdout(&mxguard(&["--list-rules", "--format", "markdown"]));
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| `")).count(),
        RULES.len()
    );
}
