//! The report as one self-contained HTML page: inline CSS, inline SVG charts (`report::svg`),
//! sortable tables (a few lines of inline JS; the page is complete without it), no external
//! script, font, image or URL. Every log-derived string goes through [`esc`]. Called by
//! `cli::report` for `--format html`.

use std::fmt::Write as _;

use super::summary::{Count, Summary};
use super::svg::{esc, time_bars, top_bars};
use super::time::rfc3339;

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:0 auto;max-width:980px;padding:16px;color:#222}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}\
.card b{display:block;font-size:20px}table{border-collapse:collapse;margin:8px 0}\
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}td.n,th.n{text-align:right}\
th{cursor:pointer;background:#f6f6f6}.warn{color:#a40}.muted{color:#777}svg.chart{max-width:100%;height:auto}";

const JS: &str = "document.querySelectorAll('table.sort th').forEach(function(th,i){th.addEventListener('click',function(){\
var t=th.closest('table'),b=t.tBodies[0],r=Array.prototype.slice.call(b.rows),d=th.dataset.d==='1'?-1:1;th.dataset.d=d===1?'1':'0';\
r.sort(function(x,y){var a=x.cells[i].textContent,c=y.cells[i].textContent,p=parseFloat(a),q=parseFloat(c);\
return (isNaN(p)||isNaN(q)?a.localeCompare(c):p-q)*d;});r.forEach(function(e){b.appendChild(e);});});});";

fn table(o: &mut String, head: &[&str], rows: &[Vec<String>], numeric_from: usize) {
    o.push_str("<table class=\"sort\"><thead><tr>");
    for (i, h) in head.iter().enumerate() {
        let c = if i >= numeric_from {
            " class=\"n\""
        } else {
            ""
        };
        let _ = write!(o, "<th{c}>{}</th>", esc(h));
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows {
        o.push_str("<tr>");
        for (i, cell) in r.iter().enumerate() {
            let c = if i >= numeric_from {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(o, "<td{c}>{}</td>", esc(cell));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
}

fn count_section(o: &mut String, title: &str, series: &str, what: &str, v: &[Count], color: &str) {
    let _ = write!(o, "<h2>{}</h2>", esc(title));
    if v.is_empty() {
        o.push_str("<p class=\"muted\">none</p>");
        return;
    }
    let items: Vec<(String, u64)> = v.iter().map(|c| (c.name.clone(), c.count)).collect();
    o.push_str(&top_bars(series, &items, color));
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|c| vec![c.name.clone(), c.count.to_string()])
        .collect();
    table(o, &[what, "count"], &rows, 1);
}

/// Containment events shown (the JSON report has up to `stats::MAX_EVENTS`).
const SHOWN_EVENTS: usize = 50;

/// Renders the page.
pub fn render(s: &Summary) -> String {
    let mut o = String::with_capacity(64 * 1024);
    o.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(
        o,
        "<title>mxguard report</title><style>{CSS}</style></head><body>"
    );
    o.push_str("<h1>mxguard report</h1>");
    let _ = write!(
        o,
        "<p>Range {} .. {}; lines {} .. {}. Read {} lines: {} in range, {} outside, {} unparsed.</p>",
        esc(s.range.from.as_deref().unwrap_or("(start)")),
        esc(s.range.to.as_deref().unwrap_or("(end)")),
        esc(s.range.first_line.as_deref().unwrap_or("-")),
        esc(s.range.last_line.as_deref().unwrap_or("-")),
        s.lines.read,
        s.lines.in_range,
        s.lines.out_of_range,
        s.lines.unparsed
    );
    for i in &s.inputs {
        if let Some(w) = &i.warning {
            let _ = write!(o, "<p class=\"warn\">Warning: {}</p>", esc(w));
        }
    }
    let m = &s.messages;
    o.push_str("<div class=\"cards\">");
    for (k, v) in [
        ("received", m.received),
        ("delivered", m.delivered),
        ("bounced", m.bounced),
        ("rejected", m.rejected),
        ("deferred", m.deferred),
        ("held", m.held),
        ("auth failures", s.auth_failures.total),
        ("bans", s.bans.total),
    ] {
        let _ = write!(
            o,
            "<div class=\"card\" data-key=\"{}\"><b>{v}</b>{}</div>",
            esc(k),
            esc(k)
        );
    }
    o.push_str("</div>");

    let se = &s.series;
    let labels: Vec<String> = (0..se.points)
        .map(|i| rfc3339(se.start_unix + i as i64 * se.bucket_secs))
        .collect();
    let _ = write!(
        o,
        "<h2>Over time</h2><p class=\"muted\">{} buckets of {} s</p>",
        se.points, se.bucket_secs
    );
    for (title, name, v, color) in [
        ("Rejects", "rejects", &se.rejects, "#c0392b"),
        (
            "Auth failures",
            "auth_failures",
            &se.auth_failures,
            "#d68910",
        ),
        ("Bans", "bans", &se.bans, "#2e4053"),
    ] {
        let _ = write!(o, "<h3>{title}</h3>");
        o.push_str(&time_bars(name, v, &labels, color));
    }
    for (jail, v) in &se.bans_by_jail {
        let _ = write!(o, "<h3>Bans: {}</h3>", esc(jail));
        o.push_str(&time_bars(&format!("bans:{jail}"), v, &labels, "#5d6d7e"));
    }

    count_section(
        &mut o,
        "Rejects by reason",
        "rejects_by_reason",
        "reason",
        &s.rejects_by_reason,
        "#c0392b",
    );
    count_section(
        &mut o,
        "Top rejected clients",
        "top_rejected_clients",
        "client",
        &s.top_rejected_clients,
        "#c0392b",
    );
    count_section(
        &mut o,
        "Top rejected networks",
        "top_rejected_networks",
        "network",
        &s.top_rejected_networks,
        "#c0392b",
    );
    count_section(
        &mut o,
        "Auth failures by IP",
        "auth_ips",
        "ip",
        &s.auth_failures.top_ips,
        "#d68910",
    );
    count_section(
        &mut o,
        "Auth failures by login",
        "auth_logins",
        "login",
        &s.auth_failures.top_logins,
        "#d68910",
    );
    count_section(
        &mut o,
        "Bans by jail",
        "bans_by_jail",
        "jail",
        &s.bans.by_jail,
        "#2e4053",
    );
    count_section(
        &mut o,
        "Rate limits reached",
        "rate_limits",
        "limit",
        &s.rate_limits_reached,
        "#7d3c98",
    );

    o.push_str("<h2>Sending volume by account</h2>");
    if s.top_accounts.is_empty() {
        o.push_str("<p class=\"muted\">none</p>");
    } else {
        let items: Vec<(String, u64)> = s
            .top_accounts
            .iter()
            .map(|a| (a.account.clone(), a.messages))
            .collect();
        o.push_str(&top_bars("top_accounts", &items, "#1e8449"));
        let rows: Vec<Vec<String>> = s
            .top_accounts
            .iter()
            .map(|a| {
                vec![
                    a.account.clone(),
                    a.messages.to_string(),
                    a.recipients.to_string(),
                    a.bytes.to_string(),
                ]
            })
            .collect();
        table(
            &mut o,
            &["account", "messages", "recipients", "bytes"],
            &rows,
            1,
        );
    }
    if let Some(q) = &s.quotas {
        o.push_str("<h2>Accounts nearest to their quotas</h2>");
        if q.is_empty() {
            o.push_str("<p class=\"muted\">none</p>");
        } else {
            let rows: Vec<Vec<String>> = q
                .iter()
                .map(|q| {
                    vec![
                        q.account.clone(),
                        q.limit.clone(),
                        format!("{} per {} s", q.counted, q.window_secs),
                        q.used.to_string(),
                        q.allowed.to_string(),
                        format!("{:.1}", q.percent),
                    ]
                })
                .collect();
            table(
                &mut o,
                &["account", "limit", "window", "used", "allowed", "percent"],
                &rows,
                3,
            );
        }
    }
    let c = &s.containment;
    let _ = write!(
        o,
        "<h2>Containment</h2><p>{} locked, {} unlocked</p>",
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
                    e.account.clone(),
                    e.detail.clone(),
                ]
            })
            .collect();
        table(&mut o, &["time", "event", "account", "detail"], &rows, 9);
        if c.events.len() > SHOWN_EVENTS {
            let _ = write!(
                o,
                "<p class=\"muted\">... {} more (--format json lists up to {})</p>",
                c.locked + c.unlocked - SHOWN_EVENTS as u64,
                super::stats::MAX_EVENTS
            );
        }
    }
    if !s.lines.unparsed_samples.is_empty() {
        o.push_str("<h2>Unparsed lines (samples)</h2><pre>");
        for u in &s.lines.unparsed_samples {
            let _ = writeln!(o, "{}", esc(u));
        }
        o.push_str("</pre>");
    }
    let _ = writeln!(o, "<script>{JS}</script></body></html>");
    o
}
