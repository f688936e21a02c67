//! The deterministic log generator of tests/report.rs: every category `mxguard report`
//! counts, a known number of times, each event recorded with its time and kind so the test
//! can count independently of the parser.

use super::BASE;

/// One event the generator wrote, with its time, for the independent counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K {
    Noise,
    Reject(&'static str, bool),
    Received,
    Delivered,
    Deferred,
    Bounced,
    Held,
    Auth(u64),
    Ban,
    Unban,
    Lock,
    Unlock,
    Malformed,
    /// Malformed and without a readable stamp: unparsed whatever the range.
    Unstamped,
}

pub struct Gen {
    pub lines: Vec<String>,
    pub events: Vec<(i64, K)>,
    t: i64,
    i: u64,
}

fn civil(t: i64) -> (i64, i64, i64, i64) {
    let d = t.div_euclid(86_400) - BASE / 86_400 + 6; // day of December
    let s = t.rem_euclid(86_400);
    (d, s / 3600, s / 60 % 60, s % 60)
}

impl Gen {
    pub fn syslog(&self) -> String {
        let (d, h, m, s) = civil(self.t);
        format!("Dec {d:2} {h:02}:{m:02}:{s:02}")
    }
    pub fn iso(&self) -> String {
        let (d, h, m, s) = civil(self.t);
        format!("2026-12-{d:02}T{h:02}:{m:02}:{s:02}")
    }
    fn step(&mut self) {
        self.i += 1;
        self.t += 97 + (self.i * 37 % 113) as i64;
    }
    /// `STAMP mail PROG[PID]: MSG`; every third line with a short-iso stamp.
    fn sys(&mut self, prog: &str, msg: &str, k: K) {
        let stamp = if self.i.is_multiple_of(3) {
            format!("{}+0000", self.iso())
        } else {
            self.syslog()
        };
        self.raw(format!("{stamp} mail {prog}[{}]: {msg}", 1000 + self.i), k);
    }
    fn raw(&mut self, line: String, k: K) {
        self.lines.push(line);
        self.events.push((self.t, k));
        self.step();
        // Noise between events: lines that count as read and nothing else.
        if self.i.is_multiple_of(2) {
            let n = self.i;
            let noise = match n % 10 {
                0 => format!(
                    "{} mail postfix/smtpd[9]: connect from unknown[198.18.{}.{}]",
                    self.syslog(),
                    n % 250,
                    n % 200
                ),
                2 => format!(
                    "{} mail dovecot: imap(alice@example.org)<9><abc>: Logged out in=1 out=2",
                    self.syslog()
                ),
                4 => format!(
                    "{} mail postfix/postscreen[9]: PASS OLD [198.18.0.{}]:4000",
                    self.syslog(),
                    n % 200
                ),
                6 => format!(
                    "{} mail postfix/smtpd[9]: NOQUEUE: reject_warning: RCPT from unknown[198.18.1.1]: 554 5.7.1 <a@b>: Relay access denied; from=<a@b> to=<c@d> proto=ESMTP helo=<x>",
                    self.syslog()
                ),
                8 => format!(
                    "{} mail postfix/smtpd[9]: warning: unknown[198.18.2.2]: SASL LOGIN authentication failed: Connection lost to authentication server",
                    self.syslog()
                ),
                _ => format!(
                    "{} mail kernel: last message repeated 2 times",
                    self.syslog()
                ),
            };
            self.lines.push(noise);
            self.events.push((self.t, K::Noise));
            self.step();
        }
    }
    fn reject(&mut self, client: &str, reply: &str, reason: &'static str) {
        let temp = reply.starts_with('4');
        let msg = format!(
            "NOQUEUE: reject: RCPT from unknown[{client}]: {reply}; from=<s@example.net> to=<u@example.org> proto=ESMTP helo=<h.example.net>"
        );
        self.sys("postfix/smtpd", &msg, K::Reject(reason, temp));
    }
}

/// The generated log: every category, a known number of times.
pub fn generate() -> Gen {
    let mut g = Gen {
        lines: vec![],
        events: vec![],
        t: BASE + 60,
        i: 0,
    };
    let mail_rejects: &[(&str, &str, &'static str, usize)] = &[
        (
            "192.0.2.10",
            "450 4.2.0 <u@example.org>: Recipient address rejected: Greylisted, please try again in 300 seconds",
            "greylist",
            5,
        ),
        (
            "192.0.2.11",
            "450 4.2.0 <u@example.org>: Recipient address rejected: Greylisted, see postgrey help for example.org",
            "greylist",
            2,
        ),
        (
            "192.0.2.12",
            "550 5.7.23 <u@example.org>: Recipient address rejected: Message rejected due to: SPF fail - not authorized",
            "spf",
            3,
        ),
        (
            "192.0.2.12",
            "550 5.7.1 <u@example.org>: Recipient address rejected: Message rejected due to: SPF fail - not authorized",
            "spf",
            1,
        ),
        (
            "192.0.2.13",
            "554 5.7.1 Service unavailable; Client host [192.0.2.13] blocked using zen.spamhaus.org",
            "dnsbl",
            6,
        ),
        (
            "192.0.2.14",
            "450 4.7.1 <s@example.net>: Sender address rejected: rate limit out exceeded, try again in 30 seconds",
            "rate_limit",
            3,
        ),
        (
            "192.0.2.15",
            "554 5.7.1 <unknown[192.0.2.15]>: Client host rejected: 5.7.1 Client host is banned",
            "ban",
            5,
        ),
        (
            "192.0.2.16",
            "554 5.7.1 <s@example.org>: Sender address rejected: account locked by mxguard, message held for review",
            "account_hold",
            2,
        ),
        (
            "192.0.2.17",
            "554 5.7.1 <s@example.net>: Sender address rejected: 5.7.1 Access denied by local policy",
            "deny_list",
            1,
        ),
        (
            "203.0.113.7",
            "554 5.7.1 <u@relay.invalid>: Relay access denied",
            "relay_denied",
            8,
        ),
        (
            "2001:db8:1:2::7",
            "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
            "unknown_user",
            4,
        ),
        (
            "2001:db8:1:2::8",
            "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
            "unknown_user",
            2,
        ),
        (
            "192.0.2.19",
            "504 5.5.2 <OEMPC>: Helo command rejected: need fully-qualified hostname",
            "helo",
            3,
        ),
        (
            "192.0.2.20",
            "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.20]",
            "reverse_dns",
            4,
        ),
        (
            "192.0.2.21",
            "554 5.5.1 Error: no valid recipients",
            "other",
            2,
        ),
    ];
    // Interleave the kinds so every one spreads over the day.
    let mut left: Vec<usize> = mail_rejects.iter().map(|r| r.3).collect();
    let mut qn = 0u32;
    let mut round = 0;
    while left.iter().any(|n| *n > 0) {
        for (j, r) in mail_rejects.iter().enumerate() {
            if left[j] > 0 {
                left[j] -= 1;
                g.reject(r.0, r.1, r.2);
            }
        }
        // Mail flow: alice 6 messages (2 rcpts, 1000 B), bob 4 (1 rcpt, 5000 B), 10 anonymous.
        for _ in 0..3 {
            qn += 1;
            let q = format!("4A{qn:06X}");
            let (user, nrcpt, size) = match qn {
                n if n <= 6 => (Some("alice@example.org"), 2, 1000),
                n if n <= 10 => (Some("Bob@Example.org"), 1, 5000),
                _ => (None, 1, 300),
            };
            if qn > 20 {
                break;
            }
            let client = match user {
                Some(u) => format!(
                    "{q}: client=laptop.example.org[198.51.100.{qn}], sasl_method=PLAIN, sasl_username={u}"
                ),
                None => format!("{q}: client=mx.example.net[198.51.100.{qn}]"),
            };
            let prog = if user.is_some() {
                "postfix/submission/smtpd"
            } else {
                "postfix/smtpd"
            };
            g.sys(prog, &client, K::Received);
            g.sys(
                "postfix/cleanup",
                &format!("{q}: message-id=<{qn}@example.org>"),
                K::Noise,
            );
            g.sys(
                "postfix/qmgr",
                &format!("{q}: from=<x@example.org>, size={size}, nrcpt={nrcpt} (queue active)"),
                K::Noise,
            );
            let (status, k) = match qn % 10 {
                3 => (
                    "deferred (connect to mx.example.com[192.0.2.99]:25: Connection timed out)",
                    K::Deferred,
                ),
                7 => ("bounced (host said: 550 5.1.1 unknown)", K::Bounced),
                _ => ("sent (250 2.0.0 OK)", K::Delivered),
            };
            g.sys("postfix/smtp", &format!("{q}: to=<r@example.com>, relay=mx.example.com[192.0.2.99]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status={status}"), k);
        }
        round += 1;
        if round == 2 {
            g.sys("postfix/pickup", "4B000001: uid=0 from=<root>", K::Received);
            g.sys("postfix/pickup", "4B000002: uid=0 from=<root>", K::Received);
            g.sys("postfix/smtpd", "4C000001: hold: RCPT from unknown[192.0.2.30]: <u@example.org>: Recipient address triggers HOLD action; from=<s@example.net> to=<u@example.org> proto=ESMTP helo=<h>", K::Held);
            g.sys("postfix/smtpd", "4C000001: hold: RCPT from unknown[192.0.2.30]: <v@example.org>: Recipient address triggers HOLD action; from=<s@example.net> to=<v@example.org> proto=ESMTP helo=<h>", K::Noise);
            g.sys("postfix/cleanup", "4C000002: hold: header Subject: win from unknown[192.0.2.31]; from=<s@example.net> to=<u@example.org> proto=ESMTP helo=<h>: held", K::Held);
            g.sys("postfix/smtpd", "4C000003: hold: RCPT from unknown[192.0.2.32]: <u@example.org>: account locked by mxguard, message held for review; from=<alice@example.org> to=<u@example.org> proto=ESMTP helo=<h>", K::Held);
        }
        if round == 3 {
            // Auth failures: Postfix SASL (9) and Dovecot (4 lines, 6 attempts).
            for n in 0..9 {
                let user = if n < 3 { ", sasl_username=admin" } else { "" };
                let ip = if n < 6 {
                    "198.51.100.200"
                } else {
                    "2001:db8:9::1"
                };
                let line = format!(
                    "warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6{user}"
                );
                g.sys("postfix/smtpd", &line, K::Auth(1));
            }
            for (n, attempts) in [1u64, 1, 3, 1].iter().enumerate() {
                let login = if n == 3 { "<script>x</script>" } else { "info" };
                let line = format!(
                    "dovecot: imap-login: Disconnected (auth failed, {attempts} attempts in 4 secs): user=<{login}>, method=PLAIN, rip=198.51.100.201, lip=192.0.2.25, TLS, session=<abc{n}>"
                );
                let stamp = g.syslog();
                g.raw(format!("{stamp} mail {line}"), K::Auth(*attempts));
            }
        }
        if round == 4 {
            // Bans: mxguard text (3, one of them through the journal), JSON (1), auth policy (1),
            // fail2ban.log (2 bans, 1 unban); mxguard unban (1); lines that are not bans.
            let iso = g.iso();
            g.raw(format!("{iso}.123456Z  INFO mxguard::jails::bans: ban jail=\"postfix-sasl\" net=198.51.100.200/32 until=1796600000 bantime=600 count=1 failures=5"), K::Ban);
            let iso = g.iso();
            g.raw(format!("{iso}.5Z  INFO mxguard::jails::bans: prolong ban jail=\"postfix-sasl\" net=198.51.100.200/32 until=1796600000"), K::Noise);
            let iso = g.iso();
            g.raw(format!("{iso}.1Z  INFO mxguard::jails::bans: ban jail=\"postfix-sasl\" net=2001:db8:9::/64 until=1796600000 bantime=600 count=1 failures=5"), K::Ban);
            g.sys("mxguard", "INFO mxguard::jails::bans: ban jail=\"dovecot\" net=198.51.100.201/32 until=1796600000 bantime=600 count=1 failures=6", K::Ban);
            let iso = g.iso();
            g.raw(format!("{{\"timestamp\":\"{iso}.000001Z\",\"level\":\"INFO\",\"fields\":{{\"message\":\"ban\",\"jail\":\"recidive\",\"net\":\"198.51.100.200/32\",\"bantime\":86400}},\"target\":\"mxguard::jails::bans\"}}"), K::Ban);
            let iso = g.iso();
            g.raw(format!("{iso}.2Z  WARN mxguard::input::dovecot_auth: auth policy: banned ban=198.51.100.202/32 until=1796600000 count=1 reason=\"auth: 10 failures\""), K::Ban);
            let iso = g.iso();
            g.raw(format!("{iso}.3Z  INFO mxguard::jails::bans: unban jail=\"postfix-sasl\" net=198.51.100.200/32"), K::Unban);
            let iso = g.iso().replace('T', " ");
            g.raw(
                format!("{iso},123 fail2ban.actions        [812]: NOTICE  [sshd] Ban 192.0.2.88"),
                K::Ban,
            );
            let iso = g.iso().replace('T', " ");
            g.raw(
                format!("{iso},124 fail2ban.actions        [812]: NOTICE  [sshd] Ban 192.0.2.89"),
                K::Ban,
            );
            let iso = g.iso().replace('T', " ");
            g.raw(
                format!("{iso},125 fail2ban.actions        [812]: NOTICE  [sshd] Unban 192.0.2.88"),
                K::Unban,
            );
            let iso = g.iso();
            g.raw(format!("{iso}.4Z  INFO mxguard::engine::checks: warn only: would reject check=\"dnsbl\" client=192.0.2.1"), K::Noise);
        }
        if round == 5 {
            let iso = g.iso();
            g.raw(format!("{iso}.1Z  INFO mxguard_engine::limits::guard: rate limit reached limit=out client=198.51.100.1 sasl_username=alice@example.org sender=alice@example.org retry_after=30 action=\"hold\""), K::Noise);
            let iso = g.iso();
            g.raw(format!("{iso}.2Z  INFO mxguard_engine::limits::guard: rate limit reached limit=out client=198.51.100.1 sasl_username=alice@example.org sender=alice@example.org retry_after=30 action=\"hold\""), K::Noise);
            let iso = g.iso();
            g.raw(format!("{iso}.3Z  WARN mxguard::account: account locked by containment; its mail is held sasl_username=alice@example.org score=10 reason=\"score 10: limit out breached\""), K::Lock);
            let iso = g.iso();
            g.raw(format!("{iso}.4Z  WARN mxguard::account: account locked by an administrator sasl_username=bob@example.org reason=\"phished\""), K::Lock);
            let iso = g.iso();
            g.raw(format!("{iso}.5Z  INFO mxguard::account: account unlocked sasl_username=bob@example.org"), K::Unlock);
            // Malformed: no stamp, a broken stamp, a Postfix reject without its client.
            g.raw("garbage without a stamp".to_owned(), K::Unstamped);
            g.raw(
                "Dec 99 99:99:99 mail postfix/smtpd[1]: connect".to_owned(),
                K::Unstamped,
            );
            let stamp = g.syslog();
            g.raw(
                format!("{stamp} mail postfix/smtpd[1]: NOQUEUE: reject: RCPT"),
                K::Malformed,
            );
        }
    }
    g
}
