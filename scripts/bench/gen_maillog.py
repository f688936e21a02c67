#!/usr/bin/env python3
"""Generate a realistic mixed mail log for the filter benchmark.

Postfix smtpd / postscreen / submission / cleanup / qmgr / smtp and Dovecot imap / pop3 / lmtp /
auth lines in syslog format (`Mon dd HH:MM:SS host prog[pid]: ...`), with a few percent of
failures (SASL failures, RCPT rejects, pipelining, PREGREET/HANGUP, lost connections, dovecot
auth failures and aborted logins) from a skewed pool of attacker addresses (5 % IPv6), plus
lines the filters must NOT match (lost connection after DATA/AUTH, auth server lost, ...).
With --report, about 10 % of the lines (drawn from a second generator, so the other lines
are unchanged) are the ones `mxguard report` aggregates: submission client= / qmgr from= pairs
of the same queue id (per-account volume), delivery statuses, greylist / SPF / DNSBL / rate
limit / ban rejects with mxguard's reply texts, and mxguard's own ban and containment lines.
Deterministic for a given --seed. Usage: gen_maillog.py --lines N [--seed S] [--report] --out FILE
"""
import argparse
import random
import time

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def ip4(r):
    return "%d.%d.%d.%d" % (r.randint(11, 223), r.randint(0, 255), r.randint(0, 255), r.randint(1, 254))


def ip6(r):
    return "2001:db8:%x:%x::%x" % (r.randint(0, 0xFFFF), r.randint(0, 0xFFFF), r.randint(1, 0xFFFF))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1000000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--end-now", type=int, metavar="SPAN", default=0,
                    help="spread the lines over the last SPAN seconds, ending now (local time), "
                         "for jail benchmarks: fail2ban ignores failures older than findtime")
    ap.add_argument("--report", action="store_true",
                    help="mix in the lines mxguard report aggregates (see the docstring)")
    a = ap.parse_args()
    r = random.Random(a.seed)
    attackers = [ip6(r) if r.random() < 0.05 else ip4(r) for _ in range(500)]
    weights = [1.0 / (i + 1) ** 1.1 for i in range(len(attackers))]
    users = ["alice", "bob", "carol", "dave", "erin", "info", "admin", "sales", "support"]
    domains = ["example.org", "example.com", "mail.example.net", "lists.example.org"]
    sess = lambda: "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(16))
    qid = lambda: "%X" % r.randint(0x1000000000, 0xFFFFFFFFFF)

    def client():
        if r.random() < 0.05:
            return ip6(r)
        return ip4(r)

    def attacker():
        if r.random() < 0.7:
            return r.choices(attackers, weights)[0]
        return client()

    def rdns(ip):
        return "unknown" if r.random() < 0.5 else "host-%d.%s" % (r.randint(1, 999), r.choice(domains))

    def pf(prog, msg):
        return "postfix/%s[%d]: %s" % (prog, r.randint(1000, 65000), msg)

    def dv(msg):
        return "dovecot: %s" % msg

    def normal():
        c = client()
        h = rdns(c)
        u = r.choice(users)
        d = r.choice(domains)
        q = qid()
        k = r.random()
        if k < 0.12:
            return pf("smtpd", "connect from %s[%s]" % (h, c))
        if k < 0.24:
            return pf("smtpd", "disconnect from %s[%s] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5" % (h, c))
        if k < 0.30:
            return pf("smtpd", "%s: client=%s[%s]" % (q, h, c))
        if k < 0.36:
            return pf("cleanup", "%s: message-id=<%s@%s>" % (q, sess(), d))
        if k < 0.43:
            return pf("qmgr", "%s: from=<%s@%s>, size=%d, nrcpt=1 (queue active)" % (q, u, d, r.randint(500, 90000)))
        if k < 0.50:
            return pf("smtp", "%s: to=<%s@%s>, relay=mx.%s[%s]:25, delay=0.%d, delays=0.1/0/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 OK)" % (q, u, d, d, client(), r.randint(1, 9)))
        if k < 0.53:
            return pf("qmgr", "%s: removed" % q)
        if k < 0.58:
            return pf("postscreen", "CONNECT from [%s]:%d to [192.0.2.25]:25" % (c, r.randint(1024, 65535)))
        if k < 0.62:
            return pf("postscreen", "PASS OLD [%s]:%d" % (c, r.randint(1024, 65535)))
        if k < 0.64:
            return pf("submission/smtpd", "%s: client=%s[%s], sasl_method=PLAIN, sasl_username=%s@%s" % (q, h, c, u, d))
        if k < 0.65:
            return pf("smtpd", "lost connection after DATA from %s[%s]" % (h, c))
        if k < 0.655:
            return pf("smtpd", "warning: %s[%s]: SASL LOGIN authentication failed: Connection lost to authentication server" % (h, c))
        if k < 0.66:
            return pf("anvil", "statistics: max connection rate 2/60s for (smtp:%s) at %s" % (c, "Nov 23 10:00:00"))
        if k < 0.72:
            return dv("imap-login: Login: user=<%s@%s>, method=PLAIN, rip=%s, lip=192.0.2.25, mpid=%d, TLS, session=<%s>" % (u, d, c, r.randint(1000, 65000), sess()))
        if k < 0.79:
            return dv("imap(%s@%s)<%d><%s>: Logged out in=%d out=%d deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0" % (u, d, r.randint(1000, 65000), sess(), r.randint(10, 999), r.randint(100, 99999)))
        if k < 0.82:
            return dv("pop3-login: Login: user=<%s@%s>, method=PLAIN, rip=%s, lip=192.0.2.25, mpid=%d, TLS, session=<%s>" % (u, d, c, r.randint(1000, 65000), sess()))
        if k < 0.85:
            return dv("pop3(%s@%s)<%d><%s>: Disconnected: Logged out top=0/0, retr=1/2048, del=1/1, size=2048" % (u, d, r.randint(1000, 65000), sess()))
        if k < 0.92:
            return dv("lmtp(%s@%s)<%d><%s>: msgid=<%s@%s>: saved mail to INBOX" % (u, d, r.randint(1000, 65000), sess(), sess(), d))
        if k < 0.96:
            return dv("lmtp(%d): Connect from local" % r.randint(1000, 65000))
        return pf("pickup", "%s: uid=0 from=<root>" % q)

    def failure():
        c = attacker()
        h = rdns(c)
        u = r.choice(users)
        d = r.choice(domains)
        k = r.random()
        if k < 0.25:
            mech = r.choice(["LOGIN", "PLAIN", "login"])
            return pf(r.choice(["smtpd", "submission/smtpd"]), "warning: %s[%s]: SASL %s authentication failed: UGFzc3dvcmQ6" % (h, c, mech))
        if k < 0.40:
            return pf("smtpd", "NOQUEUE: reject: RCPT from %s[%s]: 554 5.7.1 <%s@%s>: Relay access denied; from=<spam@%s> to=<%s@%s> proto=ESMTP helo=<x>" % (h, c, u, "relay.invalid", d, u, "relay.invalid"))
        if k < 0.48:
            return pf("smtpd", "NOQUEUE: reject: RCPT from %s[%s]: 450 4.7.1 Client host rejected: cannot find your hostname, [%s]; from=<a@%s> to=<%s@%s> proto=ESMTP helo=<x>" % (h, c, c, d, u, d))
        if k < 0.55:
            return pf("smtpd", "improper command pipelining after EHLO from %s[%s]: QUIT\\r\\n" % (h, c))
        if k < 0.62:
            return pf("postscreen", "PREGREET %d after 0.%d from [%s]:%d: EHLO x\\r\\n" % (r.randint(5, 40), r.randint(1, 9), c, r.randint(1024, 65535)))
        if k < 0.67:
            return pf("postscreen", "HANGUP after 0.%d from [%s]:%d in tests after SMTP handshake" % (r.randint(1, 9), c, r.randint(1024, 65535)))
        if k < 0.72:
            return pf("smtpd", "lost connection after %s from %s[%s]" % (r.choice(["EHLO", "CONNECT", "RCPT", "STARTTLS"]), h, c))
        if k < 0.76:
            return pf("smtpd", "disconnect from %s[%s] ehlo=1 auth=0/1 quit=1 commands=2/3" % (h, c))
        if k < 0.88:
            return dv("%s-login: Disconnected (auth failed, 1 attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, lip=192.0.2.25, TLS, session=<%s>" % (r.choice(["imap", "pop3"]), r.randint(1, 9), u, c, sess()))
        if k < 0.94:
            return dv("imap-login: Disconnected (no auth attempts in %d secs): user=<>, rip=%s, lip=192.0.2.25, TLS handshaking, session=<%s>" % (r.randint(0, 9), c, sess()))
        return dv("auth-worker(%d): pam(%s,%s,<%s>): pam_authenticate() failed: Authentication failure (password mismatch?)" % (r.randint(1000, 65000), u, c, sess()))

    r2 = random.Random(a.seed + 1000)
    pending = []  # report-mix lines still to write (a qmgr line follows its smtpd line)
    mx_replies = [
        "450 4.2.0 <%s>: Recipient address rejected: Greylisted, please try again in 300 seconds",
        "550 5.7.23 <%s>: Recipient address rejected: Message rejected due to: SPF fail - not authorized",
        "554 5.7.1 Service unavailable; Client host [%s] blocked using zen.spamhaus.org",
        "450 4.7.1 <%s>: Sender address rejected: rate limit per-user exceeded, try again in 60 seconds",
        "554 5.7.1 <%s>: Client host rejected: 5.7.1 Client host is banned",
    ]

    def report_mix(stamp):
        c = attacker()
        u = "%s@%s" % (r2.choice(users), r2.choice(domains))
        k = r2.random()
        if k < 0.45:
            q = "%X" % r2.randint(0x1000000000, 0xFFFFFFFFFF)
            pending.append(pf("qmgr", "%s: from=<%s>, size=%d, nrcpt=%d (queue active)" % (q, u, r2.randint(500, 90000), r2.randint(1, 5))))
            pending.append(pf("smtp", "%s: to=<x@example.com>, relay=mx.example.com[192.0.2.9]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=%s" % (q, r2.choice(["sent (250 ok)"] * 8 + ["deferred (timeout)", "bounced (550 unknown)"]))))
            return pf("submission/smtpd", "%s: client=laptop[%s], sasl_method=PLAIN, sasl_username=%s" % (q, client(), u))
        if k < 0.9:
            rep = r2.choice(mx_replies)
            rep = rep % (c if "[%s]" in rep else u)
            return pf("smtpd", "NOQUEUE: reject: RCPT from unknown[%s]: %s; from=<s@example.net> to=<%s> proto=ESMTP helo=<x>" % (c, rep, u))
        if k < 0.97:
            return "mxguard[77]: INFO mxguard::jails::bans: ban jail=\"%s\" net=%s/32 until=1 bantime=600 count=1 failures=5" % (r2.choice(["postfix-sasl", "dovecot", "recidive"]), c)
        return "mxguard[77]: WARN mxguard::account: account locked by containment; its mail is held sasl_username=%s score=10 reason=\"score 10: limit breach\"" % u

    t = 0
    start = time.time() - a.end_now
    with open(a.out, "w") as f:
        for i in range(a.lines):
            t += r.randint(0, 2)
            if a.end_now:
                # The same random draws as without the option, so the content is identical.
                stamp = time.strftime("%b %e %H:%M:%S", time.localtime(start + i * a.end_now / a.lines))
            else:
                day = 1 + (t // 86400) % 28
                s = t % 86400
                stamp = "%s %2d %02d:%02d:%02d" % (MONTHS[10], day, s // 3600, (s // 60) % 60, s % 60)
            msg = failure() if r.random() < 0.04 else normal()
            if a.report:
                if pending:
                    msg = pending.pop(0)
                elif r2.random() < 0.07:
                    msg = report_mix(stamp)
            f.write("%s mail %s\n" % (stamp, msg))


if __name__ == "__main__":
    main()
