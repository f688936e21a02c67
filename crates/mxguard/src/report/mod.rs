//! `mxguard report`: log analytics over Postfix, Dovecot, mxguard and fail2ban logs.
//!
//! What pflogsumm and `fail2ban-client status` show, and what they don't: messages received /
//! delivered / bounced / rejected / deferred / held, rejects by reason (greylist, SPF, DNSBL,
//! rate limit, ban, account hold, Postfix's own restrictions), top rejected clients and
//! networks, auth failures by IP and login, bans by jail over time, per-account sending volume
//! and the accounts nearest to their `[[limit]]` quotas, containment events.
//!
//! Pipeline: [`input`] reads files (plain or `.gz`), stdin or `journalctl` into
//! [`Analyzer::line`], which parses each line with byte scans ([`parse`]) into running totals
//! ([`stats`]); [`summary`] sorts and buckets them into one [`Summary`], rendered by
//! [`text`], as JSON (serde) or by [`html`] (one self-contained page with inline SVG charts).
//! Nothing here reads the clock: "now" comes from the caller (`cli::report`), so tests are
//! deterministic. It does not talk to the daemon nor change anything.

pub mod classify;
pub mod html;
pub mod input;
pub mod parse;
pub mod stats;
pub mod summary;
pub mod svg;
pub mod text;
pub mod time;

pub use summary::{Quota, Summary};

use parse::Seen;
use stats::Stats;
use time::Stamps;

/// Counts lines into [`Stats`] for the range `[from, to)` (Unix seconds; `None` = open).
#[derive(Debug)]
pub struct Analyzer {
    pub stamps: Stamps,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub stats: Stats,
}

impl Analyzer {
    /// An analyzer; `quotas` keeps the per-minute account volumes quota use needs.
    pub fn new(stamps: Stamps, from: Option<i64>, to: Option<i64>, quotas: bool) -> Analyzer {
        Analyzer {
            stamps,
            from,
            to,
            stats: Stats::new(quotas),
        }
    }

    fn in_range(&mut self, t: i64) -> bool {
        if self.from.is_some_and(|f| t < f) || self.to.is_some_and(|e| t >= e) {
            self.stats.out_of_range += 1;
            return false;
        }
        self.stats.seen(t);
        true
    }

    /// One line, without its newline.
    pub fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.stats.lines += 1;
        if line.is_empty() || line.starts_with(b"-- ") {
            return; // journalctl's "-- No entries --" / "-- Boot ... --" markers
        }
        let seen = match line[0] {
            b'{' => {
                let parsed = parse::json_line(line).and_then(|v| {
                    let ts = v.get("timestamp")?.as_str()?.as_bytes();
                    Some((self.stamps.iso(ts)?.0, v))
                });
                let Some((t, v)) = parsed else {
                    self.stats.unparsed_line(line);
                    return;
                };
                if self.in_range(t) {
                    parse::mxguard_json(&mut self.stats, t, &v);
                }
                return;
            }
            b'0'..=b'9' => match self.stamps.iso(line) {
                Some((t, n)) => {
                    let rest = &line[n..];
                    if line.get(10) == Some(&b' ') {
                        if !self.in_range(t) {
                            return;
                        }
                        parse::fail2ban(&mut self.stats, t, rest)
                    } else if rest.starts_with(b"  ") {
                        if !self.in_range(t) {
                            return;
                        }
                        parse::mxguard_text(&mut self.stats, t, rest)
                    } else {
                        self.syslog_body(t, rest)
                    }
                }
                None => Seen::Malformed,
            },
            _ => match self.stamps.syslog(line) {
                Some(t) => self.syslog_body(t, &line[15..]),
                None => Seen::Malformed,
            },
        };
        if let Seen::Malformed = seen {
            self.stats.unparsed_line(line);
        }
    }

    /// ` HOST PROG[PID]: MESSAGE` after a stamp.
    fn syslog_body(&mut self, t: i64, rest: &[u8]) -> Seen {
        let rest = rest.trim_ascii_start();
        let Some(sp) = memchr::memchr(b' ', rest) else {
            return Seen::Malformed;
        };
        let rest = &rest[sp + 1..];
        let Some(colon) = memchr::memmem::find(rest, b": ") else {
            // "last message repeated 3 times" and the like: read, nothing to count.
            self.in_range(t);
            return Seen::Ok;
        };
        let tag = &rest[..colon];
        let msg = &rest[colon + 2..];
        let prog = memchr::memchr(b'[', tag).map_or(tag, |i| &tag[..i]);
        if !self.in_range(t) {
            return Seen::Ok;
        }
        if prog.starts_with(b"postfix") {
            let name = memchr::memrchr(b'/', prog).map_or(prog, |i| &prog[i + 1..]);
            return parse::postfix(&mut self.stats, t, name, msg);
        }
        match prog {
            b"dovecot" => parse::dovecot(&mut self.stats, t, msg),
            p if p.ends_with(b"-login") => parse::dovecot(&mut self.stats, t, rest),
            b"mxguard" => self.mxguard_message(t, msg),
            _ => Seen::Ok,
        }
    }

    /// mxguard's stderr behind a syslog/journal prefix: its own tracing line.
    fn mxguard_message(&mut self, t: i64, msg: &[u8]) -> Seen {
        if msg.starts_with(b"{") {
            return match parse::json_line(msg) {
                Some(v) => {
                    parse::mxguard_json(&mut self.stats, t, &v);
                    Seen::Ok
                }
                None => Seen::Malformed,
            };
        }
        // `2026-..Z  INFO target: ...` (fmt with time) or `INFO target: ...` (journald).
        let body = match self.stamps.iso(msg) {
            Some((_, n)) => &msg[n..],
            None => msg,
        };
        parse::mxguard_text(&mut self.stats, t, body)
    }
}
