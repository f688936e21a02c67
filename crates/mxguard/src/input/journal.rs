//! The systemd journal as a log source for `journalmatch` jails, through one
//! `journalctl --follow --output=json` process for all of them (so each entry is read once,
//! like a log file, and offered to every jail whose matches it meets).
//!
//! Why `journalctl` and not libsystemd: it is the journal's stable, documented reader
//! (journalctl(1), the JSON export format of systemd.journal-fields(7)); linking libsystemd
//! would add a C build dependency for the same records, and `journalctl --directory` reads a
//! journal copied from elsewhere just as well.
//!
//! Semantics follow fail2ban's systemd backend:
//! - `journalmatch` is journalctl's match syntax: `FIELD=VALUE` terms; terms of the same field
//!   are alternatives, of different fields all required; `+` (or a new line) starts another
//!   alternative group (journalctl(1) "MATCHES"). Entries are matched again here per jail.
//! - Each entry becomes the line `HOSTNAME IDENT[PID]: MESSAGE` (fail2ban's
//!   `formatJournalEntry`: `SYSLOG_IDENTIFIER` or `_COMM`, `SYSLOG_PID` or `_PID`, newlines
//!   in the message as `\n`), with its time from `_SOURCE_REALTIME_TIMESTAMP` or
//!   `__REALTIME_TIMESTAMP`, not from the text.
//! - Position: the cursor of the last entry handed on is kept in a file (written once its
//!   batch is processed, like the file checkpoint), so a restart resumes after it. Without one,
//!   reading starts `findtime` before now (fail2ban seeks back by the jail's max age), or at
//!   the end with `[bans] start_at_end`.
//!
//! If `journalctl` exits (rotation of a journal directory, a crash), it is started again
//! after a second from the last cursor; an entry over `max_line` bytes is skipped whole.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};

use super::logtail::{Batch, Checkpoint, LogLine};

/// One alternative of a `journalmatch`: for each field, the values it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchGroup {
    pub terms: Vec<(String, BTreeSet<String>)>,
}

impl MatchGroup {
    /// Whether `entry` (a journal JSON object) meets every field of the group.
    fn matches(&self, entry: &serde_json::Map<String, Value>) -> bool {
        self.terms.iter().all(|(field, values)| {
            entry
                .get(field)
                .and_then(field_text)
                .is_some_and(|v| values.contains(&v))
        })
    }
}

/// Parses journalctl match syntax (`A=1 B=2 + C=3`, one group per line or `+`). An empty
/// text is one empty group: every entry matches.
pub fn parse_matches(text: &str) -> Result<Vec<MatchGroup>, String> {
    let mut groups = Vec::new();
    for line in text.lines() {
        let mut group: Vec<(String, BTreeSet<String>)> = Vec::new();
        for token in line.split_whitespace().chain(std::iter::once("+")) {
            if token == "+" {
                if !group.is_empty() {
                    groups.push(MatchGroup {
                        terms: std::mem::take(&mut group),
                    });
                }
                continue;
            }
            let Some((field, value)) = token.split_once('=') else {
                return Err(format!("{token:?} is not FIELD=VALUE"));
            };
            let field_ok = !field.is_empty()
                && field
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !field_ok {
                return Err(format!(
                    "{field:?} is not a journal field name (upper-case letters, digits, _)"
                ));
            }
            match group.iter_mut().find(|(f, _)| f == field) {
                Some((_, values)) => {
                    values.insert(value.to_string());
                }
                None => group.push((field.to_string(), BTreeSet::from([value.to_string()]))),
            }
        }
    }
    if groups.is_empty() {
        groups.push(MatchGroup { terms: Vec::new() });
    }
    Ok(groups)
}

/// `groups` as journalctl match arguments: `FIELD=VALUE` terms, `+` between groups.
pub fn match_args<'a>(groups: impl Iterator<Item = &'a MatchGroup>) -> Vec<String> {
    let mut a = Vec::new();
    for (i, g) in groups.enumerate() {
        if i > 0 {
            a.push("+".into());
        }
        for (field, values) in &g.terms {
            a.extend(values.iter().map(|v| format!("{field}={v}")));
        }
    }
    a
}

/// A field's value as text: a string, or a byte array (journalctl's JSON for binary or
/// non-UTF-8 data); the first of several values.
fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => items.first().and_then(field_text),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One journal entry as a jail line: (text, time in Unix seconds, cursor).
pub fn format_entry(entry: &serde_json::Map<String, Value>) -> Option<(String, i64, String)> {
    let get = |k: &str| entry.get(k).and_then(field_text).filter(|v| !v.is_empty());
    let cursor = get("__CURSOR")?;
    let micros: i64 = get("_SOURCE_REALTIME_TIMESTAMP")
        .or_else(|| get("__REALTIME_TIMESTAMP"))?
        .parse()
        .ok()?;
    let mut parts = Vec::new();
    if let Some(h) = get("_HOSTNAME") {
        parts.push(h);
    }
    if let Some(ident) = get("SYSLOG_IDENTIFIER").or_else(|| get("_COMM")) {
        let pid = get("SYSLOG_PID").or_else(|| get("_PID"));
        parts.push(match pid {
            Some(p) => format!("{ident}[{p}]:"),
            None => format!("{ident}:"),
        });
    }
    parts.push(get("MESSAGE").unwrap_or_default());
    let text = parts.join(" ").replace('\n', "\\n");
    Some((text, micros.div_euclid(1_000_000), cursor))
}

/// What to follow.
#[derive(Debug, Clone)]
pub struct JournalSettings {
    /// (jail index, its match groups).
    pub jails: Vec<(usize, Vec<MatchGroup>)>,
    /// `journalctl --directory`; `None` for the system journal.
    pub directory: Option<PathBuf>,
    /// The cursor file (`None`: no resume across restarts).
    pub cursor_file: Option<PathBuf>,
    /// Where to start without a cursor: Unix seconds, or `None` for the end.
    pub since: Option<i64>,
    pub max_line: usize,
    pub batch_lines: usize,
    /// The reader program (`journalctl`; tests may point elsewhere).
    pub program: String,
}

/// The journal follower.
#[derive(Debug)]
pub struct JournalTail {
    settings: JournalSettings,
    cursor: Option<String>,
    /// Entries skipped as over-long or unreadable.
    pub skipped: u64,
}

impl JournalTail {
    /// Reads the saved cursor (a missing file means none; an unreadable one is logged).
    pub fn new(settings: JournalSettings) -> JournalTail {
        let cursor = settings
            .cursor_file
            .as_ref()
            .and_then(|p| match std::fs::read_to_string(p) {
                Ok(t) => Some(t.trim().to_string()).filter(|c| !c.is_empty()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e,
                        "cannot read the journal cursor; starting without it");
                    None
                }
            });
        JournalTail {
            settings,
            cursor,
            skipped: 0,
        }
    }

    /// The journalctl arguments for the current position.
    pub fn args(&self) -> Vec<String> {
        let s = &self.settings;
        let mut a: Vec<String> = ["--follow", "--output=json", "--no-pager", "--quiet"]
            .map(String::from)
            .to_vec();
        if let Some(d) = &s.directory {
            a.push(format!("--directory={}", d.display()));
        }
        // `--follow` alone shows only the last 10 entries: say how much history is wanted.
        match (&self.cursor, s.since) {
            (Some(c), _) => a.extend([format!("--after-cursor={c}"), "--lines=all".into()]),
            (None, Some(t)) => a.extend([format!("--since=@{t}"), "--lines=all".into()]),
            (None, None) => a.push("--lines=0".into()),
        }
        // The union of every jail's groups; one unrestricted jail reads everything.
        let groups = s.jails.iter().flat_map(|(_, g)| g);
        if groups.clone().all(|g| !g.terms.is_empty()) {
            a.extend(match_args(groups));
        }
        a
    }

    /// Turns one JSON line of journalctl into a jail line, if any jail wants it.
    pub fn entry(&mut self, json: &[u8]) -> Option<LogLine> {
        let Ok(Value::Object(entry)) = serde_json::from_slice::<Value>(json) else {
            self.skipped += 1;
            tracing::warn!(
                bytes = json.len(),
                "journal: unreadable entry from journalctl skipped"
            );
            return None;
        };
        let Some((text, time, cursor)) = format_entry(&entry) else {
            self.skipped += 1;
            return None;
        };
        self.cursor = Some(cursor);
        let watches: Vec<usize> = self
            .settings
            .jails
            .iter()
            .filter(|(_, groups)| groups.iter().any(|g| g.matches(&entry)))
            .map(|(i, _)| *i)
            .collect();
        if watches.is_empty() {
            return None;
        }
        Some(LogLine {
            watches: watches.into(),
            bytes: text.into_bytes(),
            time: Some(time),
        })
    }

    /// The cursor of the last entry read, to be saved once the batch is processed.
    fn checkpoint(&self) -> Option<Checkpoint> {
        Some(Checkpoint {
            path: self.settings.cursor_file.clone()?,
            text: format!("{}\n", self.cursor.as_ref()?),
        })
    }

    /// Runs journalctl and sends batches until shutdown; restarts it if it exits.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Batch>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        loop {
            let args = self.args();
            let child = tokio::process::Command::new(&self.settings.program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn();
            match child {
                Ok(mut child) => {
                    tracing::info!(args = ?args, "journal: reading");
                    if let Some(out) = child.stdout.take() {
                        let mut reader = BufReader::new(out);
                        let stop = tokio::select! {
                            r = self.pump(&mut reader, &tx) => !r,
                            _ = super::postfix_policy::stopped(&mut shutdown) => true,
                        };
                        if stop {
                            let _ = child.kill().await;
                            return Ok(());
                        }
                    }
                    let status = child.wait().await;
                    tracing::warn!(status = ?status.ok(), "journal: journalctl ended; starting it again");
                }
                Err(e) => {
                    tracing::error!(program = self.settings.program, error = %e,
                        "journal: cannot run journalctl");
                }
            }
            tokio::select! {
                _ = super::postfix_policy::stopped(&mut shutdown) => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Reads entries until journalctl's output ends (`true`) or the jails are gone
    /// (`false`), sending a batch whenever no more output is waiting.
    async fn pump<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        reader: &mut BufReader<R>,
        tx: &mpsc::Sender<Batch>,
    ) -> bool {
        let mut batch = Vec::new();
        let mut line = Vec::new();
        let mut saved = self.checkpoint();
        loop {
            line.clear();
            let more = match read_bounded(reader, &mut line, self.settings.max_line).await {
                Ok(ReadLine::Line) => {
                    if let Some(l) = self.entry(&line) {
                        batch.push(l);
                    }
                    true
                }
                Ok(ReadLine::TooLong) => {
                    self.skipped += 1;
                    tracing::warn!(
                        max_line = self.settings.max_line,
                        "journal: over-long entry skipped"
                    );
                    true
                }
                Ok(ReadLine::End) | Err(_) => false,
            };
            let idle = reader.buffer().is_empty();
            // Entries no jail wanted still move the cursor: an empty batch saves it.
            let full = batch.len() >= self.settings.batch_lines;
            if full || ((!more || idle) && self.checkpoint() != saved) {
                saved = self.checkpoint();
                let b = Batch {
                    lines: std::mem::take(&mut batch),
                    checkpoint: saved.clone(),
                };
                if tx.send(b).await.is_err() {
                    return false;
                }
            }
            if !more {
                return true;
            }
        }
    }
}

enum ReadLine {
    Line,
    TooLong,
    End,
}

/// Reads one `\n`-terminated line into `out` (without it), keeping at most `max` bytes:
/// a longer line is consumed to its end and reported as [`ReadLine::TooLong`].
async fn read_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<ReadLine> {
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(ReadLine::End);
        }
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long && out.len() + chunk.len() <= max {
            out.extend_from_slice(chunk);
        } else {
            too_long = true;
            out.clear();
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if too_long {
                ReadLine::TooLong
            } else {
                ReadLine::Line
            });
        }
    }
}

/// The journal settings for the journal jails of a configuration (`None` without any).
pub fn settings_for(jails: &crate::config::jails::Jails, now: i64) -> Option<JournalSettings> {
    use crate::config::jails::JailSource;
    let mut list = Vec::new();
    let mut findtime = 0u64;
    for (i, j) in jails.jails.iter().enumerate() {
        if let JailSource::Journal(groups) = &j.source {
            list.push((i, groups.clone()));
            findtime = findtime.max(j.settings.findtime);
        }
    }
    if list.is_empty() {
        return None;
    }
    let b = &jails.bans;
    Some(JournalSettings {
        jails: list,
        directory: b.journal_directory.clone(),
        cursor_file: b
            .checkpoint
            .as_ref()
            .map(|p| p.with_extension("journal-cursor")),
        since: (!b.start_at_end).then(|| now.saturating_sub(i64::try_from(findtime).unwrap_or(0))),
        max_line: b.max_line,
        batch_lines: 4096,
        program: "journalctl".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn matches_follow_journalctl_syntax() {
        let g =
            parse_matches("_SYSTEMD_UNIT=a.service _SYSTEMD_UNIT=b.service _COMM=x + PRIORITY=3")
                .unwrap();
        assert_eq!(g.len(), 2);
        let e =
            |unit: &str, comm: &str| obj(serde_json::json!({"_SYSTEMD_UNIT": unit, "_COMM": comm}));
        assert!(
            g[0].matches(&e("b.service", "x")),
            "same field: either value"
        );
        assert!(
            !g[0].matches(&e("b.service", "y")),
            "other fields: all required"
        );
        assert!(!g[0].matches(&e("c.service", "x")));
        assert!(g[1].matches(&obj(serde_json::json!({"PRIORITY": "3"}))));
        assert_eq!(
            parse_matches("A=1\nB=2").unwrap().len(),
            2,
            "one group per line"
        );
        assert_eq!(
            parse_matches("").unwrap(),
            vec![MatchGroup { terms: vec![] }]
        );
        assert!(
            parse_matches("postfix")
                .unwrap_err()
                .contains("FIELD=VALUE")
        );
        assert!(
            parse_matches("unit=x")
                .unwrap_err()
                .contains("journal field name")
        );
    }

    #[test]
    fn entries_format_like_fail2ban() {
        let e = obj(serde_json::json!({
            "__CURSOR": "s=1;i=2", "__REALTIME_TIMESTAMP": "1700000000999999",
            "_HOSTNAME": "mx", "SYSLOG_IDENTIFIER": "postfix/smtpd", "_PID": "77",
            "MESSAGE": "warning: a\nb",
        }));
        let (text, time, cursor) = format_entry(&e).unwrap();
        assert_eq!(text, "mx postfix/smtpd[77]: warning: a\\nb");
        assert_eq!((time, cursor.as_str()), (1_700_000_000, "s=1;i=2"));
        // Source time first, _COMM without a pid, a byte-array message.
        let e = obj(serde_json::json!({
            "__CURSOR": "c", "__REALTIME_TIMESTAMP": "5000000",
            "_SOURCE_REALTIME_TIMESTAMP": "4000000", "_COMM": "dovecot",
            "MESSAGE": [104, 105, 255],
        }));
        let (text, time, _) = format_entry(&e).unwrap();
        assert_eq!((text.as_str(), time), ("dovecot: hi\u{fffd}", 4));
        assert!(format_entry(&obj(serde_json::json!({"MESSAGE": "x"}))).is_none());
    }

    fn tail(
        jails: Vec<(usize, Vec<MatchGroup>)>,
        cursor: Option<&str>,
        since: Option<i64>,
    ) -> JournalTail {
        JournalTail {
            settings: JournalSettings {
                jails,
                directory: Some("/j".into()),
                cursor_file: None,
                since,
                max_line: 100,
                batch_lines: 10,
                program: "journalctl".into(),
            },
            cursor: cursor.map(String::from),
            skipped: 0,
        }
    }

    #[test]
    fn arguments_resume_from_the_cursor_or_start_back_by_findtime() {
        let g = parse_matches("_SYSTEMD_UNIT=postfix@-.service").unwrap();
        let d = parse_matches("_SYSTEMD_UNIT=dovecot.service").unwrap();
        let t = tail(vec![(0, g.clone()), (2, d)], Some("abc"), Some(100));
        let a = t.args();
        assert!(a.contains(&"--after-cursor=abc".to_string()), "{a:?}");
        assert!(a.contains(&"--directory=/j".to_string()));
        assert!(a.ends_with(&[
            "_SYSTEMD_UNIT=postfix@-.service".into(),
            "+".into(),
            "_SYSTEMD_UNIT=dovecot.service".into()
        ]));
        let a = tail(vec![(0, g.clone())], None, Some(100)).args();
        assert!(a.contains(&"--since=@100".to_string()) && a.contains(&"--lines=all".to_string()));
        let a = tail(vec![(0, g)], None, None).args();
        assert!(a.contains(&"--lines=0".to_string()) && !a.contains(&"--lines=all".to_string()));
        // A jail without matches reads every entry: no match arguments at all.
        let a = tail(vec![(0, parse_matches("").unwrap())], None, None).args();
        assert!(
            !a.iter().any(|x| x.contains('=') && !x.starts_with("--")),
            "{a:?}"
        );
    }

    #[test]
    fn entries_go_to_the_jails_whose_matches_they_meet() {
        let g = parse_matches("_SYSTEMD_UNIT=postfix@-.service").unwrap();
        let all = parse_matches("").unwrap();
        let mut t = tail(vec![(0, g), (3, all)], None, None);
        let line = t
            .entry(br#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"2000000","_SYSTEMD_UNIT":"postfix@-.service","MESSAGE":"m"}"#)
            .unwrap();
        assert_eq!(&*line.watches, &[0, 3]);
        assert_eq!(line.time, Some(2));
        let line = t
            .entry(br#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"2000000","_SYSTEMD_UNIT":"other","MESSAGE":"m"}"#)
            .unwrap();
        assert_eq!(&*line.watches, &[3]);
        assert_eq!(t.cursor.as_deref(), Some("c2"));
        assert!(t.entry(b"{broken").is_none());
        assert_eq!(t.skipped, 1);
    }

    #[tokio::test]
    async fn long_lines_are_skipped_whole() {
        let data = format!("short\n{}\nafter\n", "x".repeat(500));
        let mut r = BufReader::with_capacity(64, data.as_bytes());
        let mut out = Vec::new();
        assert!(matches!(
            read_bounded(&mut r, &mut out, 100).await.unwrap(),
            ReadLine::Line
        ));
        assert_eq!(out, b"short");
        out.clear();
        assert!(matches!(
            read_bounded(&mut r, &mut out, 100).await.unwrap(),
            ReadLine::TooLong
        ));
        out.clear();
        assert!(matches!(
            read_bounded(&mut r, &mut out, 100).await.unwrap(),
            ReadLine::Line
        ));
        assert_eq!(out, b"after");
        out.clear();
        assert!(matches!(
            read_bounded(&mut r, &mut out, 100).await.unwrap(),
            ReadLine::End
        ));
    }
}
