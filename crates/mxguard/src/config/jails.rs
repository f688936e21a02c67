//! `[[jail]]`, `[bans]` and `[[action]]`: fail2ban-style log jails, the shared ban list and
//! the firewall actions that enforce it. Raw serde structs (`deny_unknown_fields`, `Spanned`)
//! and their validation into [`Jails`]. Defaults are fail2ban's jail.conf `[DEFAULT]`
//! (`maxretry = 5`, `findtime = 10m`, `bantime = 10m`, `ignoreip = 127.0.0.1/8 ::1`) and its
//! `[recidive]` section for a jail named `recidive` (docs/jails.md).
//!
//! Filters are loaded here (from `filter_dir/filter.d`, as `fail2ban-regex -c` would), so
//! `check-config` reports a broken filter with its file, section and option, and `serve`
//! refuses to start with one, exactly like fail2ban. A jail named `recidive` without a
//! `filter` is fed by mxguard's own ban events instead of a log.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use mxguard_engine::jail::{
    BanTime, DEFAULT_BANTIME, DEFAULT_FINDTIME, DEFAULT_MAXRETRY, Formula, IgnoreList, Increment,
    JailSettings, RECIDIVE_BANTIME, RECIDIVE_FINDTIME,
};
use mxguard_filter::{FilterDefinition, FilterSpec};
use serde::Deserialize;
use toml::Spanned;

use super::parse_duration;

/// fail2ban's default filter directory (`fail2ban-regex -c`).
pub const DEFAULT_FILTER_DIR: &str = "/etc/fail2ban";
/// The jail fed by ban events.
pub const RECIDIVE: &str = "recidive";
/// jail.conf `ignoreip = 127.0.0.1/8 ::1`.
const DEFAULT_IGNOREIP: [&str; 2] = ["127.0.0.0/8", "::1/128"];

type Err<'a> = &'a mut dyn FnMut(Range<usize>, String);

/// `[[jail]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JailConfig {
    pub name: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    /// `name[key=value, ...]` in `filter_dir/filter.d`, or a path to a filter file.
    pub filter: Option<Spanned<String>>,
    pub filter_dir: Option<Spanned<String>>,
    pub logpath: Vec<Spanned<String>>,
    pub journalmatch: Option<Spanned<String>>,
    pub findtime: Option<Spanned<String>>,
    pub maxretry: Option<Spanned<i64>>,
    /// A duration, or `"permanent"` (fail2ban `bantime = -1`).
    pub bantime: Option<Spanned<String>>,
    pub bantime_increment: Option<IncrementConfig>,
    pub ignoreip: Option<Vec<Spanned<String>>>,
    /// Also ignore this host's own addresses (fail2ban `ignoreself`, default true).
    pub ignoreself: Option<bool>,
    pub ipv4_prefix: Option<Spanned<i64>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    /// Names of `[[action]]`s; default every configured action.
    pub action: Option<Vec<Spanned<String>>>,
}

/// `bantime_increment = { ... }` (fail2ban `bantime.*`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncrementConfig {
    pub enabled: Option<bool>,
    pub factor: Option<Spanned<f64>>,
    /// `"power"` (default) or `"exp"`.
    pub formula: Option<Spanned<String>>,
    pub multipliers: Vec<Spanned<f64>>,
    pub maxtime: Option<Spanned<String>>,
    pub rndtime: Option<Spanned<String>>,
    pub overalljails: Option<bool>,
}

/// `[bans]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BansConfig {
    /// The Postfix policy service rejects banned clients (default true).
    pub policy_check: Option<bool>,
    pub reject_text: Option<Spanned<String>>,
    /// How long ended bans are remembered for `bantime_increment`.
    pub retention: Option<Spanned<String>>,
    /// The log follower's checkpoint (default `<state dir>/logtail.checkpoint`).
    pub checkpoint: Option<Spanned<String>>,
    pub max_line: Option<Spanned<i64>>,
    pub poll_interval: Option<Spanned<String>>,
    /// Files seen for the first time (no checkpoint) are read from the end (default false:
    /// from the beginning, fail2ban's `head`).
    pub start_at_end: Option<bool>,
    /// Actions for `mxguard ban` and auth-policy bans (default every configured action).
    pub action: Option<Vec<Spanned<String>>>,
    /// Journal files to read for `journalmatch` jails (`journalctl --directory`; default
    /// the system journal).
    pub journal_directory: Option<Spanned<String>>,
}

/// `[[action]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    /// argv prefix of the tool (`["nft"]`, `["ipset"]`).
    pub command: Option<Vec<Spanned<String>>>,
    pub table: Option<Spanned<String>>,
    pub ports: Option<Vec<Spanned<i64>>>,
    /// `"drop"` (default) or `"reject"`.
    pub verdict: Option<Spanned<String>>,
    pub set4: Option<Spanned<String>>,
    pub set6: Option<Spanned<String>>,
    /// `type = "command"`: argv templates with `<ip>`, `<jail>`, `<bantime>`.
    pub ban: Option<Vec<Spanned<String>>>,
    pub unban: Option<Vec<Spanned<String>>>,
    pub timeout: Option<Spanned<String>>,
}

/// Where a jail's lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JailSource {
    /// Files or globs, followed by `input::logtail`.
    Files(Vec<String>),
    /// systemd journal entries matching any of these groups (`journalmatch`).
    Journal(Vec<crate::input::journal::MatchGroup>),
    /// mxguard's own ban events (the recidive jail).
    BanEvents,
}

/// One validated jail.
#[derive(Debug, Clone)]
pub struct Jail {
    pub settings: JailSettings,
    /// The filter spec as written (`postfix[mode=aggressive]`), for status and logs.
    pub filter_spec: Option<String>,
    /// The resolved filter; `None` for [`JailSource::BanEvents`].
    pub filter: Option<FilterDefinition>,
    pub source: JailSource,
    /// Action names.
    pub actions: Vec<String>,
    /// Host names in `ignoreip`, resolved by the daemon at start and every few minutes
    /// (`jails::ignore`); their addresses join `settings.ignore`.
    pub ignore_names: Vec<String>,
    /// `ignoreself`: this host's interface addresses and the addresses of its own names.
    pub ignoreself: bool,
}

/// What an action is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    Nftables {
        command: Vec<String>,
        table: String,
        ports: Option<Vec<u16>>,
        reject: bool,
    },
    Ipset {
        command: Vec<String>,
        set4: String,
        set6: String,
    },
    Command {
        ban: Vec<String>,
        unban: Option<Vec<String>>,
    },
}

/// One validated `[[action]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub kind: ActionKind,
    pub timeout: Duration,
}

/// Validated `[bans]`.
#[derive(Debug, Clone)]
pub struct Bans {
    pub policy_check: bool,
    pub reject_text: String,
    pub retention: Duration,
    pub checkpoint: Option<PathBuf>,
    pub max_line: usize,
    pub poll_interval: Duration,
    pub start_at_end: bool,
    pub actions: Vec<String>,
    pub journal_directory: Option<PathBuf>,
}

/// Everything about jails and bans.
#[derive(Debug, Clone)]
pub struct Jails {
    /// Enabled jails only.
    pub jails: Vec<Jail>,
    pub bans: Bans,
    pub actions: Vec<Action>,
}

/// The default policy reply to a banned client.
pub const DEFAULT_REJECT_TEXT: &str = "5.7.1 Client host is banned";

fn secs(err: Err<'_>, v: &Option<Spanned<String>>, key: &str, dflt: u64) -> u64 {
    match v {
        None => dflt,
        Some(v) => match parse_duration(v.get_ref()) {
            Ok(d) => d.as_secs(),
            Err(e) => {
                err(v.span(), format!("{key}: {e}"));
                dflt
            }
        },
    }
}

fn int(err: Err<'_>, v: &Option<Spanned<i64>>, key: &str, range: Range<i64>, dflt: i64) -> i64 {
    match v {
        None => dflt,
        Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            let msg = format!(
                "{key} = {} is out of range {}..={}",
                v.get_ref(),
                range.start,
                range.end - 1
            );
            err(v.span(), msg);
            dflt
        }
    }
}

/// `ignoreip`: its addresses and CIDR networks, and its host names (resolved later).
fn ignore_entries(err: Err<'_>, list: &[Spanned<String>], key: &str) -> (Vec<IpNet>, Vec<String>) {
    let mut out = Vec::new();
    let mut hosts = Vec::new();
    for e in list {
        let text = e.get_ref().trim();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(n) => out.push(n.trunc()),
            Err(_) if is_host_name(text) => hosts.push(text.to_ascii_lowercase()),
            Err(_) => err(
                e.span(),
                format!("{key}: {text:?} is not an IP address, CIDR network or host name"),
            ),
        }
    }
    (out, hosts)
}

/// RFC 1123 host name syntax: dot-separated labels of letters, digits and inner hyphens,
/// at least one letter somewhere (so a mistyped address like `192.0.2.300` is an error, not
/// a name to look up).
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn default_ignore() -> Vec<IpNet> {
    DEFAULT_IGNOREIP
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Validates `[[jail]]`, `[bans]` and `[[action]]`. `base` resolves relative paths;
/// `state_dir` is where the checkpoint goes by default (`None` for the memory store).
pub fn validate(
    jails: &[JailConfig],
    bans: Option<&BansConfig>,
    actions: &[ActionConfig],
    base: Option<&Path>,
    state_dir: Option<&Path>,
    err: Err<'_>,
) -> Jails {
    let path = |p: &str| -> PathBuf {
        let p = Path::new(p);
        match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        }
    };
    let actions = validate_actions(actions, err);
    let known: Vec<String> = actions.iter().map(|a| a.name.clone()).collect();
    let check_names = |list: &Option<Vec<Spanned<String>>>, key: &str, err: Err<'_>| {
        let Some(list) = list else {
            return known.clone();
        };
        let mut out = Vec::new();
        for n in list {
            if known.iter().any(|k| k == n.get_ref()) {
                out.push(n.get_ref().clone());
            } else {
                err(
                    n.span(),
                    format!(
                        "{key}: no [[action]] is named {:?} (defined: {})",
                        n.get_ref(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        out
    };

    let empty = BansConfig::default();
    let b = bans.unwrap_or(&empty);
    let bans = Bans {
        policy_check: b.policy_check.unwrap_or(true),
        reject_text: b
            .reject_text
            .as_ref()
            .map_or(DEFAULT_REJECT_TEXT.to_owned(), |t| t.get_ref().clone()),
        retention: Duration::from_secs(secs(err, &b.retention, "[bans] retention", 30 * 86_400)),
        checkpoint: match &b.checkpoint {
            Some(p) => Some(path(p.get_ref())),
            None => state_dir.map(|d| d.join("logtail.checkpoint")),
        },
        journal_directory: b.journal_directory.as_ref().map(|p| path(p.get_ref())),
        max_line: int(err, &b.max_line, "[bans] max_line", 256..16_777_217, 16_384) as usize,
        poll_interval: Duration::from_millis(match &b.poll_interval {
            None => 250,
            Some(v) => match parse_duration(v.get_ref()) {
                Ok(d) if d >= Duration::from_millis(10) => d.as_millis() as u64,
                Ok(_) => {
                    err(
                        v.span(),
                        "[bans] poll_interval must be at least 10ms".into(),
                    );
                    250
                }
                Err(e) => {
                    err(v.span(), format!("[bans] poll_interval: {e}"));
                    250
                }
            },
        }),
        start_at_end: b.start_at_end.unwrap_or(false),
        actions: check_names(&b.action, "[bans] action", err),
    };

    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, j) in jails.iter().enumerate() {
        let Some(name) = &j.name else {
            err(0..0, format!("[[jail]] number {}: name is required", i + 1));
            continue;
        };
        let n = name.get_ref().trim().to_owned();
        let valid = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            err(
                name.span(),
                format!("[[jail]] name {n:?}: use letters, digits, '-', '_' or '.'"),
            );
            continue;
        }
        if seen.contains(&n) {
            err(name.span(), format!("[[jail]] {n:?} is defined twice"));
            continue;
        }
        seen.push(n.clone());
        if j.enabled == Some(false) {
            continue;
        }
        let key = |k: &str| format!("[[jail]] {n}: {k}");
        let recidive = n == RECIDIVE;
        let mut s = JailSettings::new(&n);
        let (findtime, bantime) = if recidive {
            (RECIDIVE_FINDTIME, RECIDIVE_BANTIME)
        } else {
            (DEFAULT_FINDTIME, DEFAULT_BANTIME)
        };
        s.findtime = secs(err, &j.findtime, &key("findtime"), findtime);
        if s.findtime == 0 {
            if let Some(v) = &j.findtime {
                err(v.span(), key("findtime must be longer than 0s"));
            }
            s.findtime = findtime;
        }
        s.maxretry = int(
            err,
            &j.maxretry,
            &key("maxretry"),
            1..1_000_001,
            i64::from(DEFAULT_MAXRETRY),
        ) as u32;
        s.bantime = match &j.bantime {
            Some(v) if matches!(v.get_ref().trim(), "permanent" | "-1") => BanTime::Permanent,
            other => BanTime::Seconds(secs(err, other, &key("bantime"), bantime)),
        };
        s.increment = j
            .bantime_increment
            .as_ref()
            .filter(|c| c.enabled != Some(false))
            .map(|c| increment(c, &key("bantime_increment"), err));
        let (mut ignore, ignore_names) = match &j.ignoreip {
            None => (default_ignore(), Vec::new()),
            Some(list) => ignore_entries(err, list, &key("ignoreip")),
        };
        ignore.sort();
        ignore.dedup();
        s.ignore = IgnoreList::new(ignore);
        s.ipv4_prefix = int(err, &j.ipv4_prefix, &key("ipv4_prefix"), 8..33, 32) as u8;
        s.ipv6_prefix = int(err, &j.ipv6_prefix, &key("ipv6_prefix"), 16..129, 128) as u8;

        let filter_dir = j
            .filter_dir
            .as_ref()
            .map_or(PathBuf::from(DEFAULT_FILTER_DIR), |d| path(d.get_ref()));
        // fail2ban's systemd backend reads filters with `logtype = journal` (common.conf's
        // short `HOST IDENT[PID]:` prefix, no date in the line) unless the spec sets one.
        let logtype = if j.logpath.is_empty() && j.journalmatch.is_some() {
            "journal"
        } else {
            ""
        };
        let (filter_spec, filter) = match &j.filter {
            None if recidive => (None, None),
            None => {
                err(
                    name.span(),
                    key("filter is required (e.g. \"postfix[mode=aggressive]\")"),
                );
                continue;
            }
            Some(f) => match load_filter(&filter_dir, f.get_ref(), logtype) {
                Ok(def) => (Some(f.get_ref().clone()), Some(def)),
                Err(e) => {
                    err(f.span(), key(&format!("filter {:?}: {e}", f.get_ref())));
                    continue;
                }
            },
        };
        let source = match (&j.logpath[..], &j.journalmatch, &filter) {
            ([], None, None) => JailSource::BanEvents,
            ([], Some(m), Some(def)) => {
                // "" takes the filter's own journalmatch lines (fail2ban: the jail's
                // journalmatch, else the filter's).
                let text = if m.get_ref().trim().is_empty() {
                    def.journalmatch.join("\n")
                } else {
                    m.get_ref().clone()
                };
                match crate::input::journal::parse_matches(&text) {
                    Ok(groups) => JailSource::Journal(groups),
                    Err(e) => {
                        err(m.span(), key(&format!("journalmatch: {e}")));
                        continue;
                    }
                }
            }
            ([], Some(m), None) => {
                err(m.span(), key("journalmatch needs a filter"));
                continue;
            }
            ([], None, Some(_)) => {
                err(name.span(), key("logpath or journalmatch is required"));
                continue;
            }
            (paths, None, _) => JailSource::Files(
                paths
                    .iter()
                    .map(|p| path(p.get_ref()).display().to_string())
                    .collect(),
            ),
            (_, Some(m), _) => {
                err(m.span(), key("set logpath or journalmatch, not both"));
                continue;
            }
        };
        out.push(Jail {
            settings: s,
            filter_spec,
            filter,
            source,
            actions: check_names(&j.action, &key("action"), err),
            ignore_names,
            ignoreself: j.ignoreself.unwrap_or(true),
        });
    }
    Jails {
        jails: out,
        bans,
        actions,
    }
}

/// Loads and compiles filter `spec`, with `logtype` as its default `logtype` init option
/// (`""`: the filter's own).
fn load_filter(dir: &Path, spec: &str, logtype: &str) -> Result<FilterDefinition, String> {
    let mut parsed = FilterSpec::parse(spec).map_err(|e| e.to_string())?;
    if !logtype.is_empty() && !parsed.options.iter().any(|(k, _)| k == "logtype") {
        parsed.options.push(("logtype".into(), logtype.into()));
    }
    let filter_d = dir.join("filter.d");
    let def = FilterDefinition::load(&filter_d, &parsed).map_err(|e| e.to_string())?;
    // Compile once here so a regex error is a config error, not a start-up failure later.
    mxguard_filter::Filter::compile(def.clone(), &mxguard_filter::FilterOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(def)
}

fn increment(c: &IncrementConfig, key: &str, err: Err<'_>) -> Increment {
    let mut inc = Increment::default();
    if let Some(f) = &c.factor {
        if f.get_ref().is_finite() && *f.get_ref() > 0.0 {
            inc.factor = *f.get_ref();
        } else {
            err(f.span(), format!("{key}.factor must be a positive number"));
        }
    }
    if let Some(f) = &c.formula {
        match f.get_ref().as_str() {
            "power" => inc.formula = Formula::Power,
            "exp" => inc.formula = Formula::Exp,
            other => err(
                f.span(),
                format!(
                    "{key}.formula {other:?}: use \"power\" (fail2ban's default formula) or \
                     \"exp\" (jail.conf's exponential one); arbitrary Python is not evaluated"
                ),
            ),
        }
    }
    for m in &c.multipliers {
        if m.get_ref().is_finite() && *m.get_ref() > 0.0 {
            inc.multipliers.push(*m.get_ref());
        } else {
            err(
                m.span(),
                format!("{key}.multipliers: values must be positive"),
            );
        }
    }
    inc.maxtime = c
        .maxtime
        .as_ref()
        .map(|_| secs(err, &c.maxtime, &format!("{key}.maxtime"), 0));
    inc.rndtime = secs(err, &c.rndtime, &format!("{key}.rndtime"), 0);
    inc.overalljails = c.overalljails.unwrap_or(false);
    inc
}

fn validate_actions(list: &[ActionConfig], err: Err<'_>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let Some(name) = &a.name else {
            err(
                0..0,
                format!("[[action]] number {}: name is required", i + 1),
            );
            continue;
        };
        let n = name.get_ref().clone();
        if out.iter().any(|o| o.name == n) {
            err(name.span(), format!("[[action]] {n:?} is defined twice"));
            continue;
        }
        let key = |k: &str| format!("[[action]] {n}: {k}");
        let strings = |v: &Option<Vec<Spanned<String>>>| -> Option<Vec<String>> {
            v.as_ref()
                .map(|l| l.iter().map(|s| s.get_ref().clone()).collect())
        };
        let command = strings(&a.command);
        if let (Some(c), Some(raw)) = (&command, &a.command)
            && c.is_empty()
        {
            let _ = raw;
            err(name.span(), key("command must not be empty"));
        }
        let timeout = Duration::from_secs(secs(err, &a.timeout, &key("timeout"), 10).max(1));
        let Some(kind) = &a.kind else {
            err(
                name.span(),
                key("type is required: \"nftables\", \"ipset\" or \"command\""),
            );
            continue;
        };
        let kind = match kind.get_ref().as_str() {
            "nftables" => {
                let mut ports = None;
                if let Some(list) = &a.ports {
                    let mut v = Vec::new();
                    for p in list {
                        match u16::try_from(*p.get_ref()) {
                            Ok(x) if x > 0 => v.push(x),
                            _ => err(
                                p.span(),
                                key(&format!("port {} is not 1..=65535", p.get_ref())),
                            ),
                        }
                    }
                    ports = Some(v);
                }
                let reject = match a.verdict.as_ref().map(|v| (v, v.get_ref().as_str())) {
                    None | Some((_, "drop")) => false,
                    Some((_, "reject")) => true,
                    Some((v, other)) => {
                        err(
                            v.span(),
                            key(&format!("verdict {other:?}: use \"drop\" or \"reject\"")),
                        );
                        false
                    }
                };
                ActionKind::Nftables {
                    command: command.unwrap_or_else(|| vec!["nft".into()]),
                    table: a
                        .table
                        .as_ref()
                        .map_or("mxguard".into(), |t| t.get_ref().clone()),
                    ports,
                    reject,
                }
            }
            "ipset" => ActionKind::Ipset {
                command: command.unwrap_or_else(|| vec!["ipset".into()]),
                set4: a
                    .set4
                    .as_ref()
                    .map_or("mxguard4".into(), |s| s.get_ref().clone()),
                set6: a
                    .set6
                    .as_ref()
                    .map_or("mxguard6".into(), |s| s.get_ref().clone()),
            },
            "command" => {
                let Some(ban) = strings(&a.ban).filter(|b| !b.is_empty()) else {
                    err(
                        name.span(),
                        key("type = \"command\" needs ban = [\"/path\", \"<ip>\", ...]"),
                    );
                    continue;
                };
                ActionKind::Command {
                    ban,
                    unban: strings(&a.unban).filter(|u| !u.is_empty()),
                }
            }
            other => {
                err(
                    kind.span(),
                    key(&format!(
                        "type {other:?}: use \"nftables\", \"ipset\" or \"command\""
                    )),
                );
                continue;
            }
        };
        out.push(Action {
            name: n,
            kind,
            timeout,
        });
    }
    out
}
