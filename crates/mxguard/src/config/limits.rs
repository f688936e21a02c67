//! `[[limit]]` (rate limits and quotas) and `[account]` (compromised-account containment):
//! the raw serde structs (`deny_unknown_fields`, values `Spanned`) and their validation into
//! the engine's [`LimitSettings`] and [`ContainmentSettings`]. Called by `validate.rs`, which
//! passes a callback that records each error with its file position (docs/limits.md).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mxguard_engine::Action;
use mxguard_engine::account::{ContainmentSettings, Notifier, SenderRule, account_key};
use mxguard_engine::limits::{Budget, Counted, KeyPart, Limit, LimitSettings, Window};
use serde::Deserialize;
use toml::Spanned;

use super::parse_duration;

/// One `[[limit]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    pub name: Option<Spanned<String>>,
    pub key: Option<Spanned<Vec<Spanned<String>>>>,
    pub count: Option<Spanned<String>>,
    pub rate: Option<Spanned<Vec<Spanned<String>>>>,
    pub burst: Option<Spanned<i64>>,
    pub action: Option<Spanned<String>>,
    pub ipv4_prefix: Option<Spanned<i64>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    /// Whether a breach is a containment signal (default true).
    pub signal: Option<bool>,
    /// Inline overrides: key value -> `["N/period", ...]` or `"unlimited"`.
    pub overrides: HashMap<String, Spanned<toml::Value>>,
    /// A file of overrides: `KEY RATE[ RATE...]` or `KEY unlimited` per line, `#` comments.
    pub overrides_file: Option<Spanned<String>>,
}

/// `[account]`: containment and account administration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    pub containment: Option<bool>,
    pub threshold: Option<Spanned<i64>>,
    pub window: Option<Spanned<String>>,
    pub fanout_domains: Option<Spanned<i64>>,
    pub source_networks: Option<Spanned<i64>>,
    pub rejected_recipients: Option<Spanned<i64>>,
    pub points_limit_breach: Option<Spanned<i64>>,
    pub points_fanout: Option<Spanned<i64>>,
    pub points_networks: Option<Spanned<i64>>,
    pub points_sender_mismatch: Option<Spanned<i64>>,
    pub points_rejected: Option<Spanned<i64>>,
    /// `off`, `same_domain` or `map` (with `sender_login_map`).
    pub sender_rule: Option<Spanned<String>>,
    /// Postfix `smtpd_sender_login_maps` text format: `sender login[, login...]`.
    pub sender_login_map: Option<Spanned<String>>,
    pub hold_text: Option<Spanned<String>>,
    /// Run on lock: argv; the account, score and reasons are in `MXGUARD_ACCOUNT`,
    /// `MXGUARD_SCORE`, `MXGUARD_REASONS`.
    pub notify_command: Option<Spanned<Vec<String>>>,
    /// Postfix config directory for `postsuper -c DIR -H` on `account unlock --release`.
    pub postfix_config: Option<Spanned<String>>,
}

/// The validated sections.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub limits: LimitSettings,
    /// `None` unless `[account] containment = true`.
    pub containment: Option<ContainmentSettings>,
    pub postfix_config: Option<PathBuf>,
}

type Err<'a> = &'a mut dyn FnMut(Range<usize>, String);

/// Parses `"N/period"` (`"200/1d"`).
pub fn parse_rate(s: &str) -> Result<(u64, u64), String> {
    let (n, p) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not COUNT/PERIOD like \"200/1d\""))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: count {n:?} is not a whole number"))?;
    if n == 0 {
        return Err(format!("{s:?}: count must be at least 1"));
    }
    let d = parse_duration(p)?;
    if d.as_secs() == 0 {
        return Err(format!("{s:?}: period must be at least 1s"));
    }
    Ok((n, d.as_secs()))
}

fn windows(rates: &[Spanned<String>], burst: Option<u64>, err: Err<'_>) -> Vec<Window> {
    let mut out = Vec::new();
    for r in rates {
        match parse_rate(r.get_ref()) {
            Ok((n, p)) => out.push(Window {
                count: n,
                period_secs: p,
                burst: burst.unwrap_or(n),
            }),
            Err(e) => err(r.span(), format!("[[limit]] rate: {e}")),
        }
    }
    out
}

/// `DEFER`, `REJECT`, `HOLD` (optionally followed by text), or `4xx`/`5xx text`.
fn action(a: Option<&Spanned<String>>, err: Err<'_>) -> Action {
    let default_text = "rate limit %n exceeded, try again in %s seconds";
    let Some(a) = a else {
        return Action::Defer(default_text.into());
    };
    let s = a.get_ref().trim();
    let (word, text) = s.split_once(' ').unwrap_or((s, ""));
    let text = if text.trim().is_empty() {
        default_text.to_owned()
    } else {
        text.trim().to_owned()
    };
    match word.to_ascii_uppercase().as_str() {
        "DEFER" => Action::Defer(text),
        "REJECT" => Action::Reject(text.replace("try again in %s seconds", "sending refused")),
        "HOLD" => Action::Hold(text),
        w if w.len() == 3
            && (w.starts_with('4') || w.starts_with('5'))
            && w.parse::<u16>().is_ok() =>
        {
            Action::Reply(s.to_owned())
        }
        _ => {
            err(
                a.span(),
                format!(
                    "[[limit]] action: {s:?} is not DEFER, REJECT, HOLD (each with optional text) \
                     or \"4xx/5xx text\""
                ),
            );
            Action::Defer(default_text.into())
        }
    }
}

fn int(v: &Option<Spanned<i64>>, what: &str, range: Range<i64>, default: i64, err: Err<'_>) -> i64 {
    match v {
        None => default,
        Some(n) if range.contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            err(
                n.span(),
                format!(
                    "{what} = {} is out of range {}..={}",
                    n.get_ref(),
                    range.start,
                    range.end - 1
                ),
            );
            default
        }
    }
}

fn override_budget(v: &toml::Value, burst: Option<u64>) -> Result<Budget, String> {
    match v {
        toml::Value::String(s) if s == "unlimited" => Ok(Budget::Unlimited),
        toml::Value::String(s) => parse_rate(s).map(|(n, p)| {
            Budget::Windows(vec![Window {
                count: n,
                period_secs: p,
                burst: burst.unwrap_or(n),
            }])
        }),
        toml::Value::Array(a) => {
            let mut w = Vec::new();
            for x in a {
                let s = x.as_str().ok_or("rates must be strings like \"500/1d\"")?;
                let (n, p) = parse_rate(s)?;
                w.push(Window {
                    count: n,
                    period_secs: p,
                    burst: burst.unwrap_or(n),
                });
            }
            Ok(Budget::Windows(w))
        }
        _ => Err("an override is \"unlimited\", \"N/period\" or a list of them".into()),
    }
}

fn one_limit(l: &LimitConfig, base: Option<&Path>, err: Err<'_>) -> Option<Limit> {
    let Some(name) = &l.name else {
        let span = l.key.as_ref().map_or(0..0, |k| k.span());
        err(span, "[[limit]] needs a name".into());
        return None;
    };
    let v4 = int(&l.ipv4_prefix, "[[limit]] ipv4_prefix", 0..33, 24, err) as u8;
    let v6 = int(&l.ipv6_prefix, "[[limit]] ipv6_prefix", 0..129, 64, err) as u8;
    let mut key = Vec::new();
    match &l.key {
        None => err(
            name.span(),
            format!("[[limit]] {:?}: key is required", name.get_ref()),
        ),
        Some(k) => {
            if k.get_ref().is_empty() {
                err(k.span(), "[[limit]] key: at least one field".into());
            }
            for part in k.get_ref() {
                key.push(match part.get_ref().as_str() {
                    "sasl_username" => KeyPart::SaslUsername,
                    "client_address" => KeyPart::ClientAddress,
                    "client_prefix" => KeyPart::ClientPrefix { v4, v6 },
                    "sender" => KeyPart::Sender,
                    "sender_domain" => KeyPart::SenderDomain,
                    "recipient_domain" => KeyPart::RecipientDomain,
                    other => {
                        err(
                            part.span(),
                            format!(
                                "[[limit]] key: {other:?} is not sasl_username, client_address, \
                             client_prefix, sender, sender_domain or recipient_domain"
                            ),
                        );
                        continue;
                    }
                });
            }
        }
    }
    let counted = match l.count.as_ref().map(|c| (c, c.get_ref().as_str())) {
        None | Some((_, "messages")) => Counted::Messages,
        Some((_, "recipients")) => Counted::Recipients,
        Some((_, "bytes")) => Counted::Bytes,
        Some((_, "connections")) => Counted::Connections,
        Some((c, other)) => {
            err(
                c.span(),
                format!(
                    "[[limit]] count: {other:?} is not messages, recipients, bytes or connections"
                ),
            );
            Counted::Messages
        }
    };
    if counted == Counted::Connections
        && key
            .iter()
            .any(|k| !matches!(k, KeyPart::ClientAddress | KeyPart::ClientPrefix { .. }))
        && let Some(k) = &l.key
    {
        err(
            k.span(),
            "[[limit]] key: connections are counted per client_address or client_prefix \
             only (nothing else is known at CONNECT)"
                .into(),
        );
    }
    let burst = l
        .burst
        .as_ref()
        .map(|_| int(&l.burst, "[[limit]] burst", 1..i64::MAX, 1, err) as u64);
    let windows = match &l.rate {
        None => {
            err(
                name.span(),
                format!(
                    "[[limit]] {:?}: rate is required, e.g. rate = [\"50/1h\", \"200/1d\"]",
                    name.get_ref()
                ),
            );
            Vec::new()
        }
        Some(r) => {
            if r.get_ref().is_empty() {
                err(r.span(), "[[limit]] rate: at least one window".into());
            }
            windows(r.get_ref(), burst, err)
        }
    };
    let mut overrides = HashMap::new();
    for (k, v) in &l.overrides {
        match override_budget(v.get_ref(), burst) {
            Ok(b) => {
                overrides.insert(k.trim().to_lowercase(), b);
            }
            Err(e) => err(v.span(), format!("[[limit]] overrides.{k}: {e}")),
        }
    }
    if let Some(f) = &l.overrides_file {
        let p = match base {
            Some(b) if Path::new(f.get_ref()).is_relative() => b.join(f.get_ref()),
            _ => PathBuf::from(f.get_ref()),
        };
        match std::fs::read_to_string(&p) {
            Err(e) => err(
                f.span(),
                format!("[[limit]] overrides_file: cannot read {}: {e}", p.display()),
            ),
            Ok(text) => {
                for (i, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    let mut parts = line.split_whitespace();
                    let k = parts.next().unwrap_or_default().to_lowercase();
                    let rest: Vec<toml::Value> =
                        parts.map(|s| toml::Value::String(s.to_owned())).collect();
                    let v = match rest.as_slice() {
                        [one] => one.clone(),
                        _ => toml::Value::Array(rest),
                    };
                    match override_budget(&v, burst) {
                        Ok(Budget::Windows(w)) if w.is_empty() => err(
                            f.span(),
                            format!("{}:{}: {k:?} has no rate", p.display(), i + 1),
                        ),
                        Ok(b) => {
                            overrides.insert(k, b);
                        }
                        Err(e) => err(f.span(), format!("{}:{}: {e}", p.display(), i + 1)),
                    }
                }
            }
        }
    }
    Some(Limit {
        name: name.get_ref().clone(),
        key,
        counted,
        windows,
        overrides,
        action: action(l.action.as_ref(), err),
        signal: l.signal.unwrap_or(true),
    })
}

/// A [`Notifier`] that runs `[account] notify_command` without waiting for it.
#[derive(Debug)]
pub struct CommandNotifier {
    pub argv: Vec<String>,
}

impl Notifier for CommandNotifier {
    fn account_locked(&self, user: &str, score: u32, reasons: &[String]) {
        let Some((prog, args)) = self.argv.split_first() else {
            return;
        };
        let spawned = std::process::Command::new(prog)
            .args(args)
            .env("MXGUARD_ACCOUNT", user)
            .env("MXGUARD_SCORE", score.to_string())
            .env("MXGUARD_REASONS", reasons.join("; "))
            .stdin(std::process::Stdio::null())
            .spawn();
        match spawned {
            // Reap it in the background so it never becomes a zombie.
            Ok(mut child) => {
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
            }
            Err(e) => tracing::warn!(error = %e, command = %prog, "account notify_command failed"),
        }
    }
}

fn account(a: &AccountConfig, base: Option<&Path>, err: Err<'_>) -> Option<ContainmentSettings> {
    let d = ContainmentSettings::default();
    let pts = |v: &Option<Spanned<i64>>, what: &str, def: u32, err: Err<'_>| {
        int(v, what, 0..1_000_001, i64::from(def), err) as u32
    };
    let window = match &a.window {
        None => d.window,
        Some(w) => match parse_duration(w.get_ref()) {
            Ok(x) if x.as_secs() > 0 => x.as_secs(),
            Ok(_) => {
                err(w.span(), "[account] window must be at least 1s".into());
                d.window
            }
            Err(e) => {
                err(w.span(), format!("[account] window: {e}"));
                d.window
            }
        },
    };
    let sender_rule = match a.sender_rule.as_ref().map(|s| (s, s.get_ref().as_str())) {
        None | Some((_, "off")) => SenderRule::Off,
        Some((_, "same_domain")) => SenderRule::SameDomain,
        Some((s, "map")) => match &a.sender_login_map {
            None => {
                err(
                    s.span(),
                    "[account] sender_rule = \"map\" needs sender_login_map".into(),
                );
                SenderRule::Off
            }
            Some(f) => {
                let p = match base {
                    Some(b) if Path::new(f.get_ref()).is_relative() => b.join(f.get_ref()),
                    _ => PathBuf::from(f.get_ref()),
                };
                match std::fs::read_to_string(&p) {
                    Ok(text) => SenderRule::Map(parse_login_map(&text)),
                    Err(e) => {
                        err(
                            f.span(),
                            format!(
                                "[account] sender_login_map: cannot read {}: {e}",
                                p.display()
                            ),
                        );
                        SenderRule::Off
                    }
                }
            }
        },
        Some((s, other)) => {
            err(
                s.span(),
                format!("[account] sender_rule: {other:?} is not off, same_domain or map"),
            );
            SenderRule::Off
        }
    };
    let notifier: Option<Arc<dyn Notifier>> = match &a.notify_command {
        Some(c) if c.get_ref().is_empty() => {
            err(
                c.span(),
                "[account] notify_command: give the program and its arguments".into(),
            );
            None
        }
        Some(c) => Some(Arc::new(CommandNotifier {
            argv: c.get_ref().clone(),
        })),
        None => None,
    };
    let s = ContainmentSettings {
        threshold: pts(&a.threshold, "[account] threshold", d.threshold, err),
        window,
        points_limit_breach: pts(
            &a.points_limit_breach,
            "[account] points_limit_breach",
            d.points_limit_breach,
            err,
        ),
        points_fanout: pts(
            &a.points_fanout,
            "[account] points_fanout",
            d.points_fanout,
            err,
        ),
        points_networks: pts(
            &a.points_networks,
            "[account] points_networks",
            d.points_networks,
            err,
        ),
        points_sender_mismatch: pts(
            &a.points_sender_mismatch,
            "[account] points_sender_mismatch",
            d.points_sender_mismatch,
            err,
        ),
        points_rejected: pts(
            &a.points_rejected,
            "[account] points_rejected",
            d.points_rejected,
            err,
        ),
        fanout_domains: int(
            &a.fanout_domains,
            "[account] fanout_domains",
            1..1_000_001,
            d.fanout_domains as i64,
            err,
        ) as usize,
        source_networks: int(
            &a.source_networks,
            "[account] source_networks",
            1..1_000_001,
            d.source_networks as i64,
            err,
        ) as usize,
        rejected_recipients: pts(
            &a.rejected_recipients,
            "[account] rejected_recipients",
            d.rejected_recipients,
            err,
        ),
        sender_rule,
        hold_text: match &a.hold_text {
            Some(t) if t.get_ref().contains(['\n', '\r']) => {
                err(t.span(), "[account] hold_text must be one line".into());
                d.hold_text.clone()
            }
            Some(t) => t.get_ref().clone(),
            None => d.hold_text.clone(),
        },
        notifier,
        ..d
    };
    a.containment.unwrap_or(false).then_some(s)
}

/// Postfix `smtpd_sender_login_maps` text: `sender login[, login...]` per line; the sender
/// may be `@domain`. Returns sender -> logins, all lowercased.
pub fn parse_login_map(text: &str) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((sender, logins)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let e = map.entry(sender.to_lowercase()).or_default();
        e.extend(
            logins
                .split([',', ' ', '\t'])
                .filter(|l| !l.is_empty())
                .map(account_key),
        );
    }
    map
}

/// Validates every `[[limit]]` and `[account]`.
pub fn validate(
    raw: &[LimitConfig],
    acct: Option<&AccountConfig>,
    base: Option<&Path>,
    err: Err<'_>,
) -> Limits {
    let mut limits = Vec::new();
    let mut names = HashSet::new();
    for l in raw {
        if let Some(limit) = one_limit(l, base, err) {
            if !names.insert(limit.name.clone())
                && let Some(n) = &l.name
            {
                err(
                    n.span(),
                    format!("[[limit]] name {:?} is used twice", n.get_ref()),
                );
            }
            limits.push(limit);
        }
    }
    let (containment, postfix_config) = match acct {
        None => (None, None),
        Some(a) => (
            account(a, base, err),
            a.postfix_config
                .as_ref()
                .map(|p| PathBuf::from(p.get_ref())),
        ),
    };
    Limits {
        limits: LimitSettings { limits },
        containment,
        postfix_config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Limits, Vec<String>) {
        #[derive(Deserialize)]
        struct F {
            #[serde(default)]
            limit: Vec<LimitConfig>,
            account: Option<AccountConfig>,
        }
        let f: F = toml::from_str(text).unwrap();
        let mut errs = Vec::new();
        let l = validate(&f.limit, f.account.as_ref(), None, &mut |_, m| errs.push(m));
        (l, errs)
    }

    #[test]
    fn the_issue_example_validates() {
        let (l, errs) = check(
            r#"
            [[limit]]
            name = "per-user"
            key = ["sasl_username"]
            count = "recipients"
            rate = ["50/1h", "200/1d"]
            action = "HOLD"
            overrides = { "bulk" = ["500/1h", "2000/1d"], "noreply" = "unlimited" }
            [account]
            containment = true
            sender_rule = "same_domain"
            "#,
        );
        assert!(errs.is_empty(), "{errs:?}");
        let lim = &l.limits.limits[0];
        assert_eq!(
            lim.windows,
            vec![Window::new(50, 3600), Window::new(200, 86400)]
        );
        assert!(matches!(lim.action, Action::Hold(_)));
        assert_eq!(lim.budget("noreply"), Budget::Unlimited);
        assert_eq!(
            lim.budget("bulk"),
            Budget::Windows(vec![Window::new(500, 3600), Window::new(2000, 86400)])
        );
        assert_eq!(l.containment.unwrap().sender_rule, SenderRule::SameDomain);
    }

    #[test]
    fn every_error_is_reported() {
        let (_, errs) = check(
            r#"
            [[limit]]
            name = "a"
            key = ["sasl_user"]
            count = "mails"
            rate = ["50/1x", "0/1h", "10"]
            action = "BOUNCE"
            [[limit]]
            name = "a"
            key = ["sender"]
            count = "connections"
            rate = ["1/1s"]
            [account]
            sender_rule = "map"
            "#,
        );
        let all = errs.join("\n");
        for needle in [
            "sasl_user",
            "mails",
            "unknown unit",
            "at least 1",
            "COUNT/PERIOD",
            "BOUNCE",
            "used twice",
            "connections are counted",
            "sender_login_map",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn login_map_format() {
        let m = parse_login_map("alice@ex.org  alice, Alice2\n@shared.test bob # c\n");
        assert_eq!(m["alice@ex.org"], vec!["alice", "alice2"]);
        assert_eq!(m["@shared.test"], vec!["bob"]);
    }
}
