//! The report as data: [`Summary`] is built once from the [`Stats`] at the end of reading
//! (top-N lists sorted by count then name, series re-bucketed to a width that suits the
//! range, quota use computed from `[[limit]]` tables keyed on `sasl_username`). `--format
//! json` serializes it as is; `report::text` and `report::html` render it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use mxguard_engine::limits::{Budget, Counted, KeyPart, Limit};
use serde::Serialize;

use super::classify::Reason;
use super::stats::{Containment, S_AUTH, S_BANS, S_REJECTS, Stats, Volume};
use super::time::rfc3339;

/// A name and how often it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Range {
    /// The asked range (`--since/--from/--to`), RFC 3339 UTC; `None` = open.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The first and last in-range line.
    pub first_line: Option<String>,
    pub last_line: Option<String>,
}

/// One input (file, stdin, journal) and what was read of it.
#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub name: String,
    pub lines: u64,
    pub bytes: u64,
    /// A read error after some lines (e.g. a truncated .gz): what was read is kept.
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lines {
    pub read: u64,
    pub in_range: u64,
    pub out_of_range: u64,
    pub unparsed: u64,
    pub unparsed_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    pub received: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub rejected: u64,
    pub rejected_temporary: u64,
    pub deferred: u64,
    pub held: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthFailures {
    pub total: u64,
    pub postfix_sasl: u64,
    pub dovecot: u64,
    pub top_ips: Vec<Count>,
    pub top_logins: Vec<Count>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bans {
    pub total: u64,
    pub unbans: u64,
    pub by_jail: Vec<Count>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub account: String,
    pub messages: u64,
    pub recipients: u64,
    pub bytes: u64,
}

/// Use of one quota window by one account, at the end of the range.
#[derive(Debug, Clone, Serialize)]
pub struct Quota {
    pub account: String,
    pub limit: String,
    pub counted: &'static str,
    pub window_secs: u64,
    pub used: u64,
    pub allowed: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainmentSummary {
    pub locked: u64,
    pub unlocked: u64,
    pub events: Vec<Containment>,
}

/// Counts per bucket of `bucket_secs` from `start`.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub start: Option<String>,
    #[serde(skip)]
    pub start_unix: i64,
    pub bucket_secs: i64,
    pub points: usize,
    pub rejects: Vec<u32>,
    pub auth_failures: Vec<u32>,
    pub bans: Vec<u32>,
    pub bans_by_jail: BTreeMap<String, Vec<u32>>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub range: Range,
    pub inputs: Vec<InputInfo>,
    pub lines: Lines,
    pub messages: Messages,
    pub rejects_by_reason: Vec<Count>,
    pub top_rejected_clients: Vec<Count>,
    pub top_rejected_networks: Vec<Count>,
    pub auth_failures: AuthFailures,
    pub bans: Bans,
    pub rate_limits_reached: Vec<Count>,
    pub top_accounts: Vec<Account>,
    /// Accounts nearest to their quotas; `None` without `--config`.
    pub quotas: Option<Vec<Quota>>,
    pub containment: ContainmentSummary,
    pub series: Series,
}

/// What shapes the summary besides the stats.
#[derive(Debug, Clone, Default)]
pub struct Shape<'a> {
    pub top: usize,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// `[[limit]]` tables, when `--config` was given.
    pub limits: Option<&'a [Limit]>,
}

fn top<K: ToString>(m: &HashMap<K, u64>, n: usize) -> Vec<Count> {
    let mut v: Vec<Count> = m
        .iter()
        .map(|(k, c)| Count {
            name: k.to_string(),
            count: *c,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v.truncate(n);
    v
}

/// The client's network: IPv4 /24, IPv6 /64.
pub fn network(ip: IpAddr) -> ipnet::IpNet {
    mxguard_engine::limits::prefix(ip, 24, 64)
}

/// A bucket width for a range of `span` seconds: minutes for an hour, 5 minutes up to half a
/// day, hours up to two months, days beyond.
pub fn bucket_for(span: i64) -> i64 {
    match span {
        s if s <= 3600 => 60,
        s if s <= 12 * 3600 => 300,
        s if s <= 62 * 86_400 => 3600,
        _ => 86_400,
    }
}

impl Summary {
    pub fn build(st: &Stats, inputs: Vec<InputInfo>, shape: &Shape<'_>) -> Summary {
        let mut reasons: Vec<Count> = Reason::ALL
            .iter()
            .filter(|r| st.reasons[r.index()] > 0)
            .map(|r| Count {
                name: r.as_str().to_owned(),
                count: st.reasons[r.index()],
            })
            .collect();
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        let mut nets: HashMap<ipnet::IpNet, u64> = HashMap::new();
        for (ip, c) in &st.reject_clients {
            *nets.entry(network(*ip)).or_default() += c;
        }
        let mut accounts: Vec<Account> = st
            .accounts
            .iter()
            .map(|(a, v)| Account {
                account: a.clone(),
                messages: v.messages,
                recipients: v.recipients,
                bytes: v.bytes,
            })
            .collect();
        accounts.sort_by(|a, b| {
            b.messages
                .cmp(&a.messages)
                .then(b.recipients.cmp(&a.recipients))
                .then_with(|| a.account.cmp(&b.account))
        });
        accounts.truncate(shape.top);
        let end = shape.to.or(st.last.map(|l| l + 1));
        let quotas = shape
            .limits
            .map(|l| quotas(st, l, end.unwrap_or(0), shape.top));
        Summary {
            range: Range {
                from: shape.from.map(rfc3339),
                to: shape.to.map(rfc3339),
                first_line: st.first.map(rfc3339),
                last_line: st.last.map(rfc3339),
            },
            inputs,
            lines: Lines {
                read: st.lines,
                in_range: st.in_range,
                out_of_range: st.out_of_range,
                unparsed: st.unparsed,
                unparsed_samples: st.unparsed_samples.clone(),
            },
            messages: Messages {
                received: st.received,
                delivered: st.delivered,
                bounced: st.bounced,
                rejected: st.rejected,
                rejected_temporary: st.rejected_temporary,
                deferred: st.deferred,
                held: st.held,
            },
            rejects_by_reason: reasons,
            top_rejected_clients: top(&st.reject_clients, shape.top),
            top_rejected_networks: top(&nets, shape.top),
            auth_failures: AuthFailures {
                total: st.auth_failures,
                postfix_sasl: st.auth_postfix,
                dovecot: st.auth_dovecot,
                top_ips: top(&st.auth_ips, shape.top),
                top_logins: top(&st.auth_logins, shape.top),
            },
            bans: Bans {
                total: st.bans,
                unbans: st.unbans,
                by_jail: top(&st.bans_by_jail, usize::MAX),
            },
            rate_limits_reached: top(&st.limits_reached, usize::MAX),
            top_accounts: accounts,
            quotas,
            containment: ContainmentSummary {
                locked: st.locked,
                unlocked: st.unlocked,
                events: st.events.clone(),
            },
            series: series(st, shape.from.or(st.first), end),
        }
    }
}

fn series(st: &Stats, start: Option<i64>, end: Option<i64>) -> Series {
    let (Some(start), Some(end)) = (start, end) else {
        return Series {
            start: None,
            start_unix: 0,
            bucket_secs: 3600,
            points: 0,
            rejects: vec![],
            auth_failures: vec![],
            bans: vec![],
            bans_by_jail: BTreeMap::new(),
        };
    };
    let end = end.max(start + 1);
    let w = bucket_for(end - start);
    let s0 = start.div_euclid(w) * w;
    let n = ((end - s0 + w - 1) / w).max(1) as usize;
    let slot = |minute: i64| -> Option<usize> {
        let i = (minute * 60 - s0).div_euclid(w);
        (0..n as i64).contains(&i).then_some(i as usize)
    };
    let mut cols = [vec![0u32; n], vec![0u32; n], vec![0u32; n]];
    for (m, c) in &st.minutes {
        if let Some(i) = slot(*m) {
            for k in [S_REJECTS, S_AUTH, S_BANS] {
                cols[k][i] = cols[k][i].saturating_add(c[k]);
            }
        }
    }
    let mut by_jail = BTreeMap::new();
    for (jail, mins) in &st.ban_minutes {
        let mut v = vec![0u32; n];
        for (m, c) in mins {
            if let Some(i) = slot(*m) {
                v[i] = v[i].saturating_add(*c);
            }
        }
        by_jail.insert(jail.clone(), v);
    }
    let [rejects, auth_failures, bans] = cols;
    Series {
        start: Some(rfc3339(s0)),
        start_unix: s0,
        bucket_secs: w,
        points: n,
        rejects,
        auth_failures,
        bans,
        bans_by_jail: by_jail,
    }
}

/// Quota use at `end` for every `[[limit]]` keyed on `sasl_username` alone, nearest first.
fn quotas(st: &Stats, limits: &[Limit], end: i64, n: usize) -> Vec<Quota> {
    let mut out = Vec::new();
    let Some(minutes) = &st.account_minutes else {
        return out;
    };
    for l in limits {
        if l.key != [KeyPart::SaslUsername] {
            continue;
        }
        let pick: fn(&Volume) -> u64 = match l.counted {
            Counted::Messages => |v| v.messages,
            Counted::Recipients => |v| v.recipients,
            Counted::Bytes => |v| v.bytes,
            Counted::Connections => continue,
        };
        for (account, mins) in minutes {
            let windows = match l.overrides.get(account) {
                Some(Budget::Unlimited) => continue,
                Some(Budget::Windows(w)) => w,
                None => &l.windows,
            };
            for w in windows {
                let since = end - w.period_secs as i64;
                let used: u64 = mins
                    .range(since.div_euclid(60)..)
                    .take_while(|(m, _)| **m * 60 < end)
                    .filter(|(m, _)| **m * 60 >= since)
                    .map(|(_, v)| pick(v))
                    .sum();
                if used == 0 || w.count == 0 {
                    continue;
                }
                let percent = (used as f64 * 1000.0 / w.count as f64).round() / 10.0;
                out.push(Quota {
                    account: account.clone(),
                    limit: l.name.clone(),
                    counted: l.counted.as_str(),
                    window_secs: w.period_secs,
                    used,
                    allowed: w.count,
                    percent,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        b.percent
            .total_cmp(&a.percent)
            .then_with(|| a.account.cmp(&b.account))
            .then_with(|| a.limit.cmp(&b.limit))
            .then(a.window_secs.cmp(&b.window_secs))
    });
    out.truncate(n);
    out
}
