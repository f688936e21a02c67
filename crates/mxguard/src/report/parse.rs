//! One log line -> counts in [`Stats`]: finds the stamp, host and program with byte scans
//! (memchr), then dispatches on the program name (postfix/smtpd, postscreen, qmgr, cleanup,
//! pickup, the delivery agents, dovecot, mxguard) and looks only for the few substrings that
//! program's interesting lines carry. No regex runs per line.
//!
//! Line shapes: `STAMP HOST PROG[PID]: MESSAGE` (syslog or journalctl `short-iso` stamps),
//! mxguard's own tracing lines (`STAMP  LEVEL target: message k=v ...`, or the JSON format
//! `{"timestamp":..,"fields":{..}}`, alone or behind a syslog prefix), and fail2ban.log
//! (`STAMP fail2ban.actions [PID]: NOTICE [jail] Ban IP`). A line without a stamp, or a
//! known program's line that lacks its expected parts, is counted as unparsed; lines of other
//! programs are counted as read and otherwise ignored. Called by `report::Analyzer::line`.

use std::net::IpAddr;

use memchr::memmem;

use super::classify::{Reason, classify};
use super::stats::{Stats, Volume, queue_id};

/// Result of looking at one line's message.
pub(crate) enum Seen {
    /// Understood (or of no interest).
    Ok,
    /// Looked like a known program's line but its parts were missing.
    Malformed,
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memmem::find(h, n)
}

fn after<'a>(h: &'a [u8], n: &[u8]) -> Option<&'a [u8]> {
    find(h, n).map(|i| &h[i + n.len()..])
}

/// Bytes up to the first `stop` (or all).
fn until(h: &[u8], stop: u8) -> &[u8] {
    memchr::memchr(stop, h).map_or(h, |i| &h[..i])
}

fn ip(b: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The value of `key=<VALUE>` or `key=VALUE` (up to `,`/space).
fn field<'a>(h: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let v = after(h, key)?;
    if let Some(rest) = v.strip_prefix(b"<") {
        // `user=<a>b>, method=`: up to the `>` that ends the field, as `<`/`>` may be inside.
        return Some(match find(rest, b">, ") {
            Some(i) => &rest[..i],
            None => until(rest, b'>'),
        });
    }
    let end = v
        .iter()
        .position(|c| *c == b',' || *c == b' ' || *c == b';')
        .unwrap_or(v.len());
    Some(&v[..end])
}

fn number(b: &[u8]) -> Option<u64> {
    let end = b
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).ok()?.parse().ok()
}

/// A Postfix program's message (`prog` is the part after the last `/`).
pub(crate) fn postfix(st: &mut Stats, t: i64, prog: &[u8], msg: &[u8]) -> Seen {
    // `QUEUEID: rest` or `NOQUEUE: rest`; other messages (warnings, connect) have no id.
    let (qid, rest) = match memchr::memchr(b':', msg) {
        Some(i) if i <= 16 && msg.get(i + 1) == Some(&b' ') => (queue_id(&msg[..i]), &msg[i + 2..]),
        _ => (None, msg),
    };
    match prog {
        b"smtpd" | b"postscreen" => {
            if let Some(r) = rest.strip_prefix(b"reject: ") {
                return reject(st, t, r);
            }
            if rest.starts_with(b"milter-reject: ") {
                st.reject(t, Reason::Other, None, false);
                return Seen::Ok;
            }
            if rest.starts_with(b"hold: ") {
                st.hold(qid);
                return Seen::Ok;
            }
            if let (Some(q), Some(c)) = (qid, rest.strip_prefix(b"client=")) {
                st.received += 1;
                if let Some(u) = field(c, b"sasl_username=") {
                    st.queue.insert(q, u);
                }
                return Seen::Ok;
            }
            if let Some(w) = msg.strip_prefix(b"warning: ") {
                return sasl_failure(st, t, w);
            }
            Seen::Ok
        }
        b"qmgr" => {
            let Some(q) = qid else { return Seen::Ok };
            if !rest.starts_with(b"from=<") {
                return Seen::Ok;
            }
            let Some(size) = after(rest, b", size=").and_then(number) else {
                return Seen::Ok; // `from=<..>, status=expired, returned to sender`
            };
            let nrcpt = after(rest, b", nrcpt=").and_then(number).unwrap_or(1);
            if let Some(user) = st.queue.take(q).map(str::to_owned) {
                let v = Volume {
                    messages: 1,
                    recipients: nrcpt,
                    bytes: size,
                };
                st.account_volume(t, &user, v);
            }
            Seen::Ok
        }
        b"cleanup" => {
            if rest.starts_with(b"hold: ") {
                st.hold(qid);
            } else if let Some(r) = rest.strip_prefix(b"reject: ") {
                let text = after(r, b": ").unwrap_or(r);
                st.reject(
                    t,
                    classify(until(text, b';')),
                    None,
                    text.first() == Some(&b'4'),
                );
            } else if rest.starts_with(b"milter-reject: ") {
                st.reject(t, Reason::Other, None, false);
            }
            Seen::Ok
        }
        b"pickup" => {
            if qid.is_some() && rest.starts_with(b"uid=") {
                st.received += 1;
            }
            Seen::Ok
        }
        b"smtp" | b"lmtp" | b"local" | b"virtual" | b"pipe" | b"error" | b"discard" | b"retry" => {
            if qid.is_none() || !rest.starts_with(b"to=<") {
                return Seen::Ok;
            }
            match after(rest, b", status=") {
                Some(s) if s.starts_with(b"sent") => st.delivered += 1,
                Some(s) if s.starts_with(b"deferred") => st.deferred += 1,
                Some(s) if s.starts_with(b"bounced") => st.bounced += 1,
                Some(_) => {}
                None => return Seen::Malformed,
            }
            Seen::Ok
        }
        _ => Seen::Ok,
    }
}

/// `RCPT from host[ip]: REPLY; from=<..> to=<..> ...` (also CONNECT/EHLO/MAIL/DATA stages,
/// and postscreen's `RCPT from [ip]:port: REPLY; ...`).
fn reject(st: &mut Stats, t: i64, r: &[u8]) -> Seen {
    let Some(from) = after(r, b" from ") else {
        return Seen::Malformed;
    };
    let (Some(open), Some(close)) = (memchr::memchr(b'[', from), memchr::memchr(b']', from)) else {
        return Seen::Malformed;
    };
    if close < open {
        return Seen::Malformed;
    }
    let client = ip(&from[open + 1..close]);
    let Some(reply) = after(&from[close..], b": ") else {
        return Seen::Malformed;
    };
    let end = find(reply, b"; from=<").unwrap_or(reply.len());
    let reply = &reply[..end];
    st.reject(t, classify(reply), client, reply.first() == Some(&b'4'));
    Seen::Ok
}

/// smtpd `warning: host[ip]: SASL LOGIN authentication failed: ...[, sasl_username=u]`.
fn sasl_failure(st: &mut Stats, t: i64, w: &[u8]) -> Seen {
    let Some(i) = find(w, b" authentication failed") else {
        return Seen::Ok;
    };
    if !w[..i].contains(&b'[') || find(&w[i..], b"authentication server").is_some() {
        // "Connection lost to authentication server": a Dovecot outage, not a client's guess.
        return Seen::Ok;
    }
    let (Some(open), Some(close)) = (memchr::memchr(b'[', w), memchr::memchr(b']', w)) else {
        return Seen::Malformed;
    };
    if close < open {
        return Seen::Malformed;
    }
    let login = field(&w[i..], b"sasl_username=").unwrap_or_default();
    st.auth_failure(t, false, ip(&w[open + 1..close]), login, 1);
    Seen::Ok
}

/// A Dovecot message without the `dovecot: ` ident: `imap-login: Disconnected (auth failed,
/// 3 attempts in 9 secs): user=<u>, method=PLAIN, rip=IP, ...` (also `Login aborted: ...
/// (auth failed, N attempts ...)` of Dovecot 2.3.18+).
pub(crate) fn dovecot(st: &mut Stats, t: i64, msg: &[u8]) -> Seen {
    let Some(colon) = find(msg, b": ") else {
        return Seen::Ok;
    };
    if !msg[..colon].ends_with(b"-login") {
        return Seen::Ok;
    }
    let Some(a) = after(msg, b"(auth failed") else {
        return Seen::Ok;
    };
    let n = a
        .strip_prefix(b", ")
        .and_then(number)
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let Some(rip) = field(a, b"rip=") else {
        return Seen::Malformed;
    };
    let login = field(a, b"user=").unwrap_or_default();
    st.auth_failure(t, true, ip(rip), login, n);
    Seen::Ok
}

/// fail2ban.log after the stamp: ` fail2ban.actions [1234]: NOTICE  [sshd] Ban 192.0.2.1`.
pub(crate) fn fail2ban(st: &mut Stats, t: i64, rest: &[u8]) -> Seen {
    let Some(r) = after(rest, b"]: ") else {
        return Seen::Ok;
    };
    let Some(open) = memchr::memchr(b'[', r) else {
        return Seen::Ok;
    };
    let Some(close) = memchr::memchr(b']', &r[open..]).map(|c| c + open) else {
        return Seen::Ok;
    };
    let jail = String::from_utf8_lossy(&r[open + 1..close]);
    let action = r[close + 1..].trim_ascii_start();
    if action.starts_with(b"Ban ") {
        st.ban(t, &jail);
    } else if action.starts_with(b"Unban ") {
        st.unbans += 1;
    }
    Seen::Ok
}

/// mxguard's tracing text line from the level on: `INFO mxguard::jails::bans: ban
/// jail="sshd" net=192.0.2.1/32 ...`.
pub(crate) fn mxguard_text(st: &mut Stats, t: i64, text: &[u8]) -> Seen {
    let text = text.trim_ascii_start();
    let Some(body) = after(text, b": ") else {
        return Seen::Malformed;
    };
    let get = |k: &str| -> String {
        let key = format!(" {k}=");
        let Some(v) = after(body, key.as_bytes()) else {
            return String::new();
        };
        if let Some(q) = v.strip_prefix(b"\"") {
            // A Debug-quoted string: ends at the first unescaped quote.
            let mut out = Vec::new();
            let mut esc = false;
            for c in q {
                match (esc, *c) {
                    (false, b'\\') => esc = true,
                    (false, b'"') => break,
                    (_, c) => {
                        out.push(c);
                        esc = false;
                    }
                }
            }
            return String::from_utf8_lossy(&out).into_owned();
        }
        String::from_utf8_lossy(until(v, b' ')).into_owned()
    };
    mxguard_event(st, t, body, &get);
    Seen::Ok
}

/// A JSON object line (mxguard's `[log] format = "json"`).
pub(crate) fn json_line(line: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(line).ok()
}

/// mxguard's JSON log record: `{"timestamp":..,"level":..,"fields":{"message":..},..}`.
pub(crate) fn mxguard_json(st: &mut Stats, t: i64, v: &serde_json::Value) {
    let Some(fields) = v.get("fields") else {
        return;
    };
    let Some(msg) = fields.get("message").and_then(|m| m.as_str()) else {
        return;
    };
    let get = |k: &str| -> String {
        match fields.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    };
    mxguard_event(st, t, msg.as_bytes(), &get);
}

/// The events mxguard logs that the report counts; `get` reads a field of the line.
fn mxguard_event(st: &mut Stats, t: i64, msg: &[u8], get: &dyn Fn(&str) -> String) {
    let is = |m: &[u8]| msg == m || (msg.starts_with(m) && msg.get(m.len()) == Some(&b' '));
    if is(b"ban") || is(b"ban (manual)") {
        let jail = get("jail");
        st.ban(t, if jail.is_empty() { "manual" } else { &jail });
    } else if is(b"auth policy: banned") {
        st.ban(t, "auth_policy");
    } else if is(b"unban") || is(b"unban (manual)") {
        st.unbans += 1;
    } else if is(b"account locked by containment; its mail is held") {
        let detail = get("reason");
        st.containment(t, "locked_by_containment", &get("sasl_username"), &detail);
    } else if is(b"account locked by an administrator") {
        let detail = get("reason");
        st.containment(t, "locked_by_admin", &get("sasl_username"), &detail);
    } else if is(b"account unlocked") {
        st.containment(t, "unlocked", &get("sasl_username"), "");
    } else if is(b"rate limit reached") {
        *st.limits_reached.entry(get("limit")).or_default() += 1;
    }
}
