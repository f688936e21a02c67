//! `mxguard report` end to end through the binary: golden text and JSON outputs of a
//! generated log covering every category, and counts checked against what the generator
//! wrote (so a wrong golden file cannot pass), plus .gz input (whole and truncated), year
//! inference, --from/--to, malformed lines, unreadable files, stdin and --journal.
//! `UPDATE_GOLDEN=1 cargo test -p mxguard --test report` rewrites tests/report/*.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const NOW: &str = "2026-12-07T06:00:00Z";
/// 2026-12-06T00:00:00Z.
const BASE: i64 = 1_796_515_200;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mxguard")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report")
}

#[path = "report/generator.rs"]
mod generator;
use generator::{Gen, K, generate};

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("report")
        .args(["--now", NOW, "--timezone", "UTC"])
        .args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The fixture in `dir`. The golden test also compares it with tests/report/fixture.log
/// (committed: scripts/it/report_html.sh renders it).
fn fixture(dir: &Path) -> (Gen, PathBuf) {
    let g = generate();
    let path = dir.join("fixture.log");
    std::fs::write(&path, g.lines.join("\n") + "\n").unwrap();
    (g, path)
}

fn check_golden(path: &Path, got: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        want == got,
        "{} differs from the output (UPDATE_GOLDEN=1 rewrites it):\n{got}",
        path.display()
    );
}

fn config_file(dir: &Path) -> PathBuf {
    let p = dir.join("mxguard.toml");
    std::fs::write(
        &p,
        "[[limit]]\nname = \"out\"\nkey = [\"sasl_username\"]\ncount = \"messages\"\nrate = [\"10/1d\"]\n\n\
         [[limit]]\nname = \"rcpts\"\nkey = [\"sasl_username\"]\ncount = \"recipients\"\nrate = [\"100/1d\", \"5/1h\"]\n",
    )
    .unwrap();
    p
}

/// What the generator wrote in `[from, to)`.
struct Expect {
    reasons: std::collections::BTreeMap<&'static str, u64>,
    temporary: u64,
    received: u64,
    delivered: u64,
    deferred: u64,
    bounced: u64,
    held: u64,
    auth: u64,
    bans: u64,
    unbans: u64,
    locks: u64,
    unlocks: u64,
    malformed: u64,
}

fn expect(g: &Gen, from: i64, to: i64) -> Expect {
    let mut e = Expect {
        reasons: Default::default(),
        temporary: 0,
        received: 0,
        delivered: 0,
        deferred: 0,
        bounced: 0,
        held: 0,
        auth: 0,
        bans: 0,
        unbans: 0,
        locks: 0,
        unlocks: 0,
        malformed: 0,
    };
    for (t, k) in &g.events {
        if *k == K::Unstamped {
            e.malformed += 1; // no time to filter by
            continue;
        }
        if *t < from || *t >= to {
            continue;
        }
        match *k {
            K::Reject(r, temp) => {
                *e.reasons.entry(r).or_default() += 1;
                e.temporary += u64::from(temp);
            }
            K::Received => e.received += 1,
            K::Delivered => e.delivered += 1,
            K::Deferred => e.deferred += 1,
            K::Bounced => e.bounced += 1,
            K::Held => e.held += 1,
            K::Auth(n) => e.auth += n,
            K::Ban => e.bans += 1,
            K::Unban => e.unbans += 1,
            K::Lock => e.locks += 1,
            K::Unlock => e.unlocks += 1,
            K::Malformed => e.malformed += 1,
            K::Noise | K::Unstamped => {}
        }
    }
    e
}

fn assert_counts(j: &Value, e: &Expect) {
    let m = &j["messages"];
    let total: u64 = e.reasons.values().sum();
    assert_eq!(m["rejected"], total);
    assert_eq!(m["rejected_temporary"], e.temporary);
    assert_eq!(m["received"], e.received);
    assert_eq!(m["delivered"], e.delivered);
    assert_eq!(m["deferred"], e.deferred);
    assert_eq!(m["bounced"], e.bounced);
    assert_eq!(m["held"], e.held);
    let got: std::collections::BTreeMap<String, u64> = j["rejects_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: std::collections::BTreeMap<String, u64> = e
        .reasons
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    assert_eq!(got, want);
    assert_eq!(j["auth_failures"]["total"], e.auth);
    assert_eq!(j["bans"]["total"], e.bans);
    assert_eq!(j["bans"]["unbans"], e.unbans);
    assert_eq!(j["containment"]["locked"], e.locks);
    assert_eq!(j["containment"]["unlocked"], e.unlocks);
    assert_eq!(j["lines"]["unparsed"], e.malformed);
    let series = |k: &str| -> u64 {
        j["series"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(series("rejects"), total);
    assert_eq!(series("auth_failures"), e.auth);
    assert_eq!(series("bans"), e.bans);
}

#[test]
fn golden_text_and_json_with_independent_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (g, log) = fixture(dir.path());
    check_golden(
        &golden_dir().join("fixture.log"),
        &std::fs::read_to_string(&log).unwrap(),
    );
    let cfg = config_file(dir.path());
    let (log_s, cfg_s) = (log.to_str().unwrap(), cfg.to_str().unwrap());
    let text = stdout(&run(&["-c", cfg_s, log_s], None));
    let json = stdout(&run(&["-c", cfg_s, "--format", "json", log_s], None));
    // Input names differ per checkout: the golden files name the fixture relatively.
    let text = text.replace(log_s, "fixture.log");
    let json = json.replace(log_s, "fixture.log");
    check_golden(&golden_dir().join("golden.txt"), &text);
    check_golden(&golden_dir().join("golden.json"), &json);

    let j: Value = serde_json::from_str(&json).unwrap();
    assert_counts(&j, &expect(&g, i64::MIN, i64::MAX));
    // The numbers the fixture was written with, spelled out.
    let reason = |name: &str| -> u64 {
        j["rejects_by_reason"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert_eq!(reason("greylist"), 7);
    assert_eq!(reason("spf"), 4);
    assert_eq!(reason("dnsbl"), 6);
    assert_eq!(reason("relay_denied"), 8);
    assert_eq!(j["messages"]["rejected_temporary"], 7 + 3 + 4);
    assert_eq!(j["messages"]["held"], 3);
    assert_eq!(j["top_rejected_clients"][0]["name"], "203.0.113.7");
    assert_eq!(j["top_rejected_clients"][0]["count"], 8);
    // 192.0.2.0/24 holds every client but 203.0.113.7 (8) and the two IPv6 ones (6).
    assert_eq!(j["top_rejected_networks"][0]["name"], "192.0.2.0/24");
    assert_eq!(j["top_rejected_networks"][0]["count"], 51 - 8 - 6);
    assert_eq!(j["top_rejected_networks"][1]["name"], "203.0.113.0/24");
    assert!(
        j["top_rejected_networks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "2001:db8:1:2::/64" && c["count"] == 6)
    );
    assert_eq!(j["auth_failures"]["total"], 15);
    assert_eq!(j["auth_failures"]["postfix_sasl"], 9);
    assert_eq!(j["auth_failures"]["top_ips"][0]["name"], "198.51.100.200");
    assert_eq!(j["auth_failures"]["top_ips"][0]["count"], 6);
    assert_eq!(j["auth_failures"]["top_logins"][0]["name"], "info");
    assert_eq!(j["auth_failures"]["top_logins"][0]["count"], 5);
    assert_eq!(j["bans"]["total"], 7);
    let jails: Vec<(String, u64)> = j["bans"]["by_jail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        jails,
        [
            ("postfix-sasl".into(), 2),
            ("sshd".into(), 2),
            ("auth_policy".into(), 1),
            ("dovecot".into(), 1),
            ("recidive".into(), 1)
        ]
    );
    assert_eq!(j["rate_limits_reached"][0]["name"], "out");
    assert_eq!(j["rate_limits_reached"][0]["count"], 2);
    let acc = &j["top_accounts"];
    assert_eq!(acc[0]["account"], "alice@example.org");
    assert_eq!(
        (
            acc[0]["messages"].as_u64(),
            acc[0]["recipients"].as_u64(),
            acc[0]["bytes"].as_u64()
        ),
        (Some(6), Some(12), Some(6000))
    );
    assert_eq!(acc[1]["account"], "bob@example.org");
    assert_eq!(
        (acc[1]["messages"].as_u64(), acc[1]["bytes"].as_u64()),
        (Some(4), Some(20_000))
    );
    // Quotas at the end of the range: the whole fixture lies within a day of its last line
    // for the daily windows.
    let q = j["quotas"].as_array().unwrap();
    let quota = |acct: &str, limit: &str, secs: u64| {
        q.iter()
            .find(|x| x["account"] == acct && x["limit"] == limit && x["window_secs"] == secs)
            .cloned()
    };
    let span =
        j["series"]["points"].as_u64().unwrap() * j["series"]["bucket_secs"].as_u64().unwrap();
    assert!(span <= 2 * 86_400, "fixture spans {span} s");
    let a = quota("alice@example.org", "rcpts", 86_400).expect("alice rcpts/1d");
    assert!(a["used"].as_u64().unwrap() <= 12 && a["allowed"] == 100);
    assert_eq!(
        j["containment"]["events"][0]["kind"],
        "locked_by_containment"
    );
    assert_eq!(
        j["containment"]["events"][0]["account"],
        "alice@example.org"
    );
    assert_eq!(j["lines"]["unparsed"], 3);
    assert_eq!(j["lines"]["read"], g.lines.len() as u64);
    // Text: the same numbers in the tables.
    assert!(
        text.contains("Auth failures: 15 (9 Postfix SASL, 6 Dovecot)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("greylist") && l.trim_end().ends_with(" 7"))
    );
}

#[test]
fn from_to_keeps_only_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let (g, log) = fixture(dir.path());
    let (from, to) = (BASE + 6 * 3600, BASE + 12 * 3600);
    let o = run(
        &[
            "--from",
            "2026-12-06 06:00",
            "--to",
            "2026-12-06T12:00:00Z",
            "--format",
            "json",
            log.to_str().unwrap(),
        ],
        None,
    );
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let e = expect(&g, from, to);
    assert!(
        e.reasons.values().sum::<u64>() > 0,
        "the range must hold some rejects"
    );
    assert_counts(&j, &e);
    assert_eq!(j["range"]["from"], "2026-12-06T06:00:00Z");
    assert_eq!(j["series"]["points"], 6 * 12, "6 h in 5-minute buckets");
    assert!(j["lines"]["out_of_range"].as_u64().unwrap() > 0);
    // --since is relative to --now.
    let o = run(
        &["--since", "30h", "--format", "json", log.to_str().unwrap()],
        None,
    );
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["range"]["from"], "2026-12-06T00:00:00Z");
    assert_counts(&j, &expect(&g, BASE, i64::MAX));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gz_input_whole_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (g, log) = fixture(dir.path());
    let plain = std::fs::read(&log).unwrap();
    let gz = dir.path().join("maillog.1.gz");
    std::fs::write(&gz, gzip(&plain)).unwrap();
    let o = run(&["--format", "json", gz.to_str().unwrap()], None);
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_counts(&j, &expect(&g, i64::MIN, i64::MAX));
    assert_eq!(j["inputs"][0]["lines"], g.lines.len() as u64);
    assert!(j["inputs"][0]["warning"].is_null());

    // Cut the compressed file in half: what was read is kept, the file is named.
    let z = gzip(&plain);
    let cut = dir.path().join("cut.gz");
    std::fs::write(&cut, &z[..z.len() / 2]).unwrap();
    let o = run(&["--format", "json", cut.to_str().unwrap()], None);
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let lines = j["inputs"][0]["lines"].as_u64().unwrap();
    assert!(lines > 10 && lines < g.lines.len() as u64, "{lines}");
    let w = j["inputs"][0]["warning"].as_str().unwrap();
    assert!(w.contains("cut.gz") && w.contains("truncated"), "{w}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cut.gz"));
}

#[test]
fn year_inferred_for_syslog_stamps() {
    let log = b"Dec 31 23:00:00 mail postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <a@b>: Relay access denied; from=<a@b> to=<c@d>\n\
Jan  1 00:30:00 mail postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <a@b>: Relay access denied; from=<a@b> to=<c@d>\n";
    let mut cmd = Command::new(bin());
    let o = cmd
        .args([
            "report",
            "--now",
            "2027-01-01T01:00:00Z",
            "--timezone",
            "UTC",
            "--format",
            "json",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut o = o;
    o.stdin.take().unwrap().write_all(log).unwrap();
    let j: Value = serde_json::from_str(&stdout(&o.wait_with_output().unwrap())).unwrap();
    assert_eq!(j["range"]["first_line"], "2026-12-31T23:00:00Z");
    assert_eq!(j["range"]["last_line"], "2027-01-01T00:30:00Z");
    assert_eq!(j["messages"]["rejected"], 2);
    // Local time: the same stamps in Europe/Berlin are an hour earlier in UTC.
    let o = Command::new(bin())
        .args([
            "report",
            "--now",
            "2027-01-01T01:00:00Z",
            "--timezone",
            "Europe/Berlin",
            "--format",
            "json",
        ])
        .arg(write_tmp(log).1)
        .output()
        .unwrap();
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["range"]["first_line"], "2026-12-31T22:00:00Z");
}

fn write_tmp(data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("log");
    std::fs::write(&p, data).unwrap();
    (d, p)
}

#[test]
fn malformed_lines_are_counted_not_fatal() {
    let data = b"\x00\xff\xfe binary\nDec  7 05:00:00 mail postfix/smtpd[1]: NOQUEUE: reject: RCPT from nowhere\n\
Dec  7 05:00:01\nDec  7 05:00:02 mail postfix/smtp[2]: 4ABC: to=<a@b>, relay=none\n\
Dec  7 05:00:03 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u>\n\
Dec  7 05:00:04 mail postfix/smtp[2]: 4ABC: to=<a@b>, relay=x[192.0.2.1]:25, status=sent (ok)\n";
    let o = run(&["--format", "json", "-"], Some(data));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["lines"]["read"], 6);
    assert_eq!(j["lines"]["unparsed"], 5);
    assert_eq!(j["messages"]["delivered"], 1);
    assert_eq!(j["lines"]["unparsed_samples"].as_array().unwrap().len(), 5);
}

#[test]
fn progress_bar_on_stderr_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (_, log) = fixture(dir.path());
    let o = run(&["--progress", log.to_str().unwrap()], None);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reading [#########################] 100%"),
        "{err}"
    );
    // Not a terminal and not asked: nothing on stderr.
    let o = run(&[log.to_str().unwrap()], None);
    assert!(o.stderr.is_empty());
}

#[test]
fn unreadable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.log");
    let o = run(&[missing.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such.log"), "{err}");
    assert!(o.stdout.is_empty());
    let o = run(&[dir.path().to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("directory"));
    // Usage errors exit 2.
    assert_eq!(run(&[], None).status.code(), Some(2));
    assert_eq!(
        run(&["--from", "yesterday", "x"], None).status.code(),
        Some(2)
    );
}

#[test]
fn journal_through_journalctl_with_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let (g, log) = fixture(dir.path());
    let args_file = dir.path().join("args");
    let fake = dir.path().join("journalctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\necho '-- No entries --'\ncat {}\n",
            args_file.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run(
        &[
            "--journal",
            "--journalctl",
            fake.to_str().unwrap(),
            "--since",
            "30h",
            "--format",
            "json",
        ],
        None,
    );
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(
        args.trim(),
        format!("-o short-iso --no-pager -q --since=@{BASE}")
    );
    assert_counts(&j, &expect(&g, BASE, i64::MAX));
}

#[test]
fn html_is_self_contained_with_marked_charts_and_escaped_text() {
    let dir = tempfile::tempdir().unwrap();
    let (_, log) = fixture(dir.path());
    let out = dir.path().join("r.html");
    let o = run(
        &[
            "--format",
            "html",
            "-o",
            out.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success());
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(!html.contains("http"), "external reference in the page");
    assert!(!html.contains("<script>x</script>"), "log text not escaped");
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    for s in [
        "rejects",
        "auth_failures",
        "bans",
        "rejects_by_reason",
        "top_rejected_clients",
    ] {
        assert!(
            html.contains(&format!("<svg class=\"chart\" data-series=\"{s}\"")),
            "{s}"
        );
    }
    assert_eq!(html.matches("<script>").count(), 1);
}
