//! The report as terminal text: one titled section per part of the [`Summary`], tables with
//! aligned columns (numbers right-aligned), empty sections said in one line. Log-derived
//! text is printed as is, with control characters replaced so a hostile log cannot move the
//! cursor. Called by `cli::report` for `--format text` (the default).

use std::fmt::Write as _;

use super::summary::{Count, Summary};

/// Containment events shown (the JSON report has up to `stats::MAX_EVENTS`).
const SHOWN_EVENTS: usize = 50;

/// Replaces control characters (escape sequences in a log) with `?`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A table: `head` then `rows`; columns from `numeric_from` on are right-aligned.
fn table(out: &mut String, head: &[&str], rows: &[Vec<String>], numeric_from: usize) {
    let n = head.len();
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate().take(n) {
            let pad = w[i].saturating_sub(c.chars().count());
            if i > 0 {
                s.push_str("  ");
            }
            if i < numeric_from {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    line(out, &head);
    let rule: Vec<String> = w.iter().map(|k| "-".repeat(*k)).collect();
    line(out, &rule);
    for r in rows {
        line(out, r);
    }
}

fn counts(out: &mut String, title: &str, what: &str, v: &[Count]) {
    let _ = writeln!(out, "\n{title}");
    if v.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|c| vec![clean(&c.name), c.count.to_string()])
        .collect();
    table(out, &[what, "count"], &rows, 1);
}

fn bytes(b: u64) -> String {
    match b {
        b if b >= 10_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 10_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 10_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

fn window(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Renders the whole report.
pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "mxguard report");
    let _ = writeln!(
        o,
        "  range      {} .. {}",
        s.range.from.as_deref().unwrap_or("(start)"),
        s.range.to.as_deref().unwrap_or("(end)")
    );
    let _ = writeln!(
        o,
        "  lines      {} .. {}",
        s.range.first_line.as_deref().unwrap_or("-"),
        s.range.last_line.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        o,
        "  read       {} lines, {} in range, {} outside, {} unparsed",
        s.lines.read, s.lines.in_range, s.lines.out_of_range, s.lines.unparsed
    );
    for i in &s.inputs {
        let _ = writeln!(
            o,
            "  input      {}: {} lines, {}",
            clean(&i.name),
            i.lines,
            bytes(i.bytes)
        );
        if let Some(w) = &i.warning {
            let _ = writeln!(o, "  WARNING    {}", clean(w));
        }
    }
    for u in &s.lines.unparsed_samples {
        let _ = writeln!(o, "  unparsed   {}", clean(u));
    }

    let m = &s.messages;
    let _ = writeln!(o, "\nMessages");
    let rows = vec![
        vec!["received".to_owned(), m.received.to_string()],
        vec!["delivered".to_owned(), m.delivered.to_string()],
        vec!["bounced".to_owned(), m.bounced.to_string()],
        vec!["rejected".to_owned(), m.rejected.to_string()],
        vec![
            "  temporary (4xx)".to_owned(),
            m.rejected_temporary.to_string(),
        ],
        vec!["deferred".to_owned(), m.deferred.to_string()],
        vec!["held".to_owned(), m.held.to_string()],
    ];
    table(&mut o, &["", "count"], &rows, 1);

    counts(&mut o, "Rejects by reason", "reason", &s.rejects_by_reason);
    counts(
        &mut o,
        "Top rejected clients",
        "client",
        &s.top_rejected_clients,
    );
    counts(
        &mut o,
        "Top rejected networks",
        "network",
        &s.top_rejected_networks,
    );

    let a = &s.auth_failures;
    let _ = writeln!(
        o,
        "\nAuth failures: {} ({} Postfix SASL, {} Dovecot)",
        a.total, a.postfix_sasl, a.dovecot
    );
    counts(&mut o, "Auth failures by IP", "ip", &a.top_ips);
    counts(&mut o, "Auth failures by login", "login", &a.top_logins);

    let _ = writeln!(o, "\nBans: {} ({} unbans)", s.bans.total, s.bans.unbans);
    counts(&mut o, "Bans by jail", "jail", &s.bans.by_jail);
    counts(
        &mut o,
        "Rate limits reached",
        "limit",
        &s.rate_limits_reached,
    );

    let _ = writeln!(o, "\nSending volume by account");
    if s.top_accounts.is_empty() {
        let _ = writeln!(o, "  (none)");
    } else {
        let rows: Vec<Vec<String>> = s
            .top_accounts
            .iter()
            .map(|a| {
                vec![
                    clean(&a.account),
                    a.messages.to_string(),
                    a.recipients.to_string(),
                    bytes(a.bytes),
                ]
            })
            .collect();
        table(
            &mut o,
            &["account", "messages", "recipients", "size"],
            &rows,
            1,
        );
    }
    if let Some(q) = &s.quotas {
        let _ = writeln!(
            o,
            "\nAccounts nearest to their quotas (at the end of the range)"
        );
        if q.is_empty() {
            let _ = writeln!(o, "  (none)");
        } else {
            let rows: Vec<Vec<String>> = q
                .iter()
                .map(|q| {
                    vec![
                        clean(&q.account),
                        clean(&q.limit),
                        format!("{}/{}", q.counted, window(q.window_secs)),
                        q.used.to_string(),
                        q.allowed.to_string(),
                        format!("{:.1}%", q.percent),
                    ]
                })
                .collect();
            table(
                &mut o,
                &["account", "limit", "window", "used", "allowed", "use"],
                &rows,
                3,
            );
        }
    }

    let c = &s.containment;
    let _ = writeln!(
        o,
        "\nContainment: {} locked, {} unlocked",
        c.locked, c.unlocked
    );
    if !c.events.is_empty() {
        let rows: Vec<Vec<String>> = c
            .events
            .iter()
            .take(SHOWN_EVENTS)
            .map(|e| {
                vec![
                    e.time.clone(),
                    e.kind.to_owned(),
                    clean(&e.account),
                    clean(&e.detail),
                ]
            })
            .collect();
        table(&mut o, &["time", "event", "account", "detail"], &rows, 4);
        if c.events.len() > SHOWN_EVENTS {
            let _ = writeln!(
                o,
                "  ... {} more (--format json lists up to {})",
                c.locked + c.unlocked - SHOWN_EVENTS as u64,
                super::stats::MAX_EVENTS
            );
        }
    }

    let se = &s.series;
    let _ = writeln!(
        o,
        "\nOver time ({} buckets of {}, from {})",
        se.points,
        window(se.bucket_secs as u64),
        se.start.as_deref().unwrap_or("-")
    );
    for (name, v) in [
        ("rejects", &se.rejects),
        ("auth failures", &se.auth_failures),
        ("bans", &se.bans),
    ] {
        let _ = writeln!(o, "  {name:<14} {}", spark(v));
    }
    o
}

/// A one-line chart of `v` with block characters (at most 60 columns).
fn spark(v: &[u32]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if v.is_empty() {
        return String::new();
    }
    let per = v.len().div_ceil(60);
    let sums: Vec<u64> = v
        .chunks(per)
        .map(|c| c.iter().map(|x| u64::from(*x)).sum())
        .collect();
    let max = sums.iter().copied().max().unwrap_or(0);
    let total: u64 = sums.iter().sum();
    let s: String = sums
        .iter()
        .map(|x| match (x * 7).checked_div(max) {
            Some(k) if *x > 0 => BARS[k as usize],
            _ => ' ',
        })
        .collect();
    format!("|{s}| total {total}, max {max}")
}
