//! The human form of `mxguard status`: the daemon's JSON status ([`super::daemon`]) as
//! aligned sections (daemon, listeners, store, counters since start, jails), the way
//! `fail2ban-client status` and `postfix status` users read a terminal. Missing keys (an
//! older daemon) print as `-`; nothing here talks to the daemon.

use std::fmt::Write;

use serde_json::Value;

/// Width of the label column.
const LABEL: usize = 18;

/// `v` as text: strings bare, null as `-`.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `{"a": 1, "b": 2}` as `a 1, b 2` (`none` when empty).
fn pairs(v: &Value) -> String {
    match v.as_object() {
        Some(o) if !o.is_empty() => o
            .iter()
            .map(|(k, n)| format!("{k} {}", show(n)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".to_string(),
    }
}

/// Seconds as `3d 4h 5m 6s`, largest unit first.
fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m")] {
        if n > 0 || !out.is_empty() {
            let _ = write!(out, "{n}{unit} ");
        }
    }
    let _ = write!(out, "{s}s");
    out
}

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {label:<LABEL$}{value}");
}

fn store(out: &mut String, d: &Value) {
    let s = &d["store"];
    let backend = match s["type"].as_str() {
        Some("embedded") => format!("embedded ({})", show(&s["path"])),
        Some("redis") => match (
            s["sentinel"]["master_name"].as_str(),
            s["cluster"]["primaries"].as_array(),
        ) {
            (Some(m), _) => format!(
                "redis, sentinel master {m} (primary {}), prefix {}",
                show(&s["sentinel"]["primary"]),
                show(&s["prefix"])
            ),
            (None, Some(p)) => format!(
                "redis cluster, {} primaries ({}), prefix {}",
                p.len(),
                p.iter().map(show).collect::<Vec<_>>().join(", "),
                show(&s["prefix"])
            ),
            (None, None) => format!("redis, prefix {}", show(&s["prefix"])),
        },
        other => other.unwrap_or("-").to_string(),
    };
    let _ = writeln!(out, "Store");
    line(out, "backend", backend);
    let health = match (&d["store_healthy"], &d["store_error"]) {
        (_, Value::String(e)) => format!("FAILING: {e}"),
        (Value::Bool(true), _) => "ok".to_string(),
        (Value::Bool(false), _) => "FAILING".to_string(),
        _ => "-".to_string(),
    };
    line(out, "health", health);
    if s["type"].as_str() == Some("redis") {
        line(
            out,
            "redis",
            format!(
                "{} errors, {} outages, {} conflicts",
                show(&s["errors_total"]),
                show(&s["outages_total"]),
                show(&s["conflicts_total"])
            ),
        );
    }
    line(
        out,
        "greylist",
        format!(
            "{} triplets, {} auto-whitelisted clients{}",
            show(&d["triplets"]),
            show(&d["clients"]),
            if d["greylist_enabled"] == Value::Bool(false) {
                " (greylisting off)"
            } else {
                ""
            }
        ),
    );
    line(
        out,
        "fail-open answers",
        format!("{} (store errors)", show(&d["store_errors_total"])),
    );
}

fn jails(out: &mut String, d: &Value) {
    let list = d["jails"].as_array().map(Vec::as_slice).unwrap_or_default();
    let _ = writeln!(out, "Jails");
    if list.is_empty() {
        line(out, "none", "");
        return;
    }
    let width = list
        .iter()
        .filter_map(|j| j["name"].as_str().map(str::len))
        .max()
        .unwrap_or(0)
        .max(LABEL - 2);
    for j in list {
        let _ = writeln!(
            out,
            "  {:<width$}  filter {}, {}",
            j["name"].as_str().unwrap_or("?"),
            j["filter"].as_str().unwrap_or("(ban events)"),
            j["source"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            out,
            "  {:<width$}  currently failed {}, total failed {}, ignored {}, \
             currently banned {}, total banned {}",
            "",
            show(&j["failures_pending"]),
            show(&j["failures_total"]),
            show(&j["ignored_total"]),
            show(&j["bans_active"]),
            show(&j["bans_total"]),
        );
    }
}

/// The whole text (module docs).
pub fn render(d: &Value) -> String {
    let mut out = String::new();
    let uptime = d["uptime_seconds"].as_u64().map_or("-".into(), duration);
    let _ = writeln!(out, "mxguard {}, up {uptime}", show(&d["version"]));
    line(&mut out, "config", show(&d["config"]));
    let reload = match &d["last_reload"] {
        Value::Null => "none since start".to_string(),
        r if r["ok"] == Value::Bool(true) => format!("ok (at {})", show(&r["at"])),
        r => format!("FAILED (at {}), old configuration kept", show(&r["at"])),
    };
    line(&mut out, "last reload", reload);
    line(&mut out, "default action", show(&d["default_action"]));
    let _ = writeln!(out, "\nListeners");
    let l = &d["listeners"];
    let policy = match l["policy"].as_array() {
        Some(p) => p.iter().map(show).collect::<Vec<_>>().join(", "),
        None => show(&d["policy_listen"]),
    };
    line(&mut out, "policy", policy);
    line(&mut out, "auth policy", show(&l["auth_policy"]));
    line(&mut out, "metrics", show(&l["metrics"]));
    line(&mut out, "control socket", show(&l["control_socket"]));
    line(&mut out, "connections open", show(&d["connections_open"]));
    out.push('\n');
    store(&mut out, d);
    let c = &d["counters"];
    let _ = writeln!(out, "\nSince start");
    line(
        &mut out,
        "policy requests",
        format!(
            "{} ({})",
            show(&c["policy_requests_total"]),
            pairs(&c["policy_requests"])
        ),
    );
    line(&mut out, "held (HOLD)", show(&c["holds"]));
    for (command, answers) in c["auth_policy"].as_object().into_iter().flatten() {
        line(&mut out, &format!("auth {command}"), pairs(answers));
    }
    line(
        &mut out,
        "bans",
        format!(
            "{} ({}), auth policy {}",
            show(&c["bans"]),
            pairs(&c["bans_by_jail"]),
            show(&c["auth_policy_bans"])
        ),
    );
    line(&mut out, "bans active", show(&d["bans_active"]));
    line(&mut out, "accounts locked", show(&c["accounts_locked"]));
    line(&mut out, "log lines read", show(&d["log_lines_read"]));
    out.push('\n');
    jails(&mut out, d);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_are_aligned_and_missing_keys_show_a_dash() {
        let d = json!({
            "version": "0.1.0", "uptime_seconds": 93_784, "config": "/etc/mxguard/mxguard.toml",
            "last_reload": null, "default_action": "DUNNO",
            "listeners": {"policy": ["inet:127.0.0.1:10040"], "auth_policy": null,
                          "metrics": "127.0.0.1:9150", "control_socket": "/run/mxguard/control.sock"},
            "store": {"type": "embedded", "path": "/var/lib/mxguard"}, "store_healthy": true,
            "triplets": 12, "clients": 3, "store_errors_total": 0, "greylist_enabled": true,
            "counters": {"policy_requests": {"dunno": 10, "reject": 2}, "policy_requests_total": 12,
                         "holds": 0, "auth_policy": {"allow": {"allow": 4}},
                         "bans": 1, "bans_by_jail": {"sshd": 1}, "auth_policy_bans": 0,
                         "accounts_locked": 0},
            "bans_active": 1, "log_lines_read": 50,
            "jails": [{"name": "sshd", "filter": "sshd", "source": "/var/log/auth.log",
                       "failures_pending": 0, "failures_total": 5, "ignored_total": 0,
                       "bans_active": 1, "bans_total": 1}],
        });
        let text = render(&d);
        assert!(
            text.starts_with("mxguard 0.1.0, up 1d 2h 3m 4s\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  policy            inet:127.0.0.1:10040\n"),
            "{text}"
        );
        assert!(text.contains("\n  auth policy       -\n"), "{text}");
        assert!(text.contains("\n  health            ok\n"), "{text}");
        assert!(
            text.contains("\n  policy requests   12 (dunno 10, reject 2)\n"),
            "{text}"
        );
        assert!(text.contains("\n  auth allow        allow 4\n"), "{text}");
        assert!(
            text.contains("\n  bans              1 (sshd 1), auth policy 0\n"),
            "{text}"
        );
        assert!(text.contains("total banned 1"), "{text}");
        // Every label starts in the same column.
        for l in text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        {
            assert!(
                l.len() <= 2 + LABEL || l.as_bytes()[2 + LABEL - 1] == b' ',
                "{l:?}"
            );
        }
    }

    #[test]
    fn a_redis_cluster_store_shows_its_primaries() {
        let d = json!({"store": {"type": "redis", "prefix": "mx:", "sentinel": null,
            "cluster": {"seeds": ["10.0.0.1:7000"],
                        "primaries": ["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"]}}});
        let text = render(&d);
        assert!(
            text.contains(
                "redis cluster, 3 primaries (10.0.0.1:7000, 10.0.0.2:7000, 10.0.0.3:7000), prefix mx:\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn durations_start_at_the_largest_unit() {
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3600), "1h 0m 0s");
        assert_eq!(duration(86_401), "1d 0h 0m 1s");
    }
}
