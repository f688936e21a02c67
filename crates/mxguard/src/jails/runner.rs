//! The jail runner: each log line, read once by `input::logtail`, goes to the filter of every
//! jail that watches its file; each failure goes to that jail's counter
//! (`mxguard_engine::jail::Jail`); completed tickets come out as [`BanDecision`]s for the ban
//! manager. Ban events come back in ([`JailRunner::ban_events`]) to feed the `recidive` jail.
//!
//! Synchronous and deterministic (the caller passes `now`), so tests drive it line by line.
//! fail2ban runs a thread and a filter per jail, so three jails on one `mail.log` parse every
//! line three times; here each line is read once and offered to the jails of its watches.

use std::net::IpAddr;

use ipnet::IpNet;
use mxguard_engine::jail::{BanDecision, FailureOutcome, Jail, JailSettings};
use mxguard_filter::{FailureId, Filter, FilterOptions};

use crate::config::jails::{self as cfg, JailSource};

/// One jail with its compiled filter.
#[derive(Debug)]
struct Running {
    jail: Jail,
    /// `None` for the recidive jail (fed by ban events).
    filter: Option<Filter>,
    failures: u64,
    ignored: u64,
}

/// Per-jail counters for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JailStatus {
    pub name: String,
    pub filter: Option<String>,
    pub source: String,
    /// Networks with failures counted, not banned yet ("Currently failed").
    pub pending: usize,
    /// Failures counted since start ("Total failed").
    pub failures: u64,
    pub ignored: u64,
}

/// All jails of a configuration.
#[derive(Debug)]
pub struct JailRunner {
    jails: Vec<Running>,
    specs: Vec<cfg::Jail>,
    /// Index of the recidive jail fed by ban events, if configured.
    recidive: Option<usize>,
    /// Lines whose failure id was a host name or otherwise not an address.
    pub unresolved: u64,
}

impl JailRunner {
    /// Compiles the filters of `jails` (already validated, so compiling only fails if a
    /// filter file changed since validation).
    pub fn new(jails: &[cfg::Jail], opts: &FilterOptions) -> anyhow::Result<JailRunner> {
        let mut out = Vec::new();
        let mut recidive = None;
        for (i, j) in jails.iter().enumerate() {
            let filter = match &j.filter {
                Some(def) => Some(
                    Filter::compile(def.clone(), opts)
                        .map_err(|e| anyhow::anyhow!("jail {}: filter: {e}", j.settings.name))?,
                ),
                None => None,
            };
            if j.source == JailSource::BanEvents {
                recidive = Some(i);
            }
            out.push(Running {
                jail: Jail::new(j.settings.clone()),
                filter,
                failures: 0,
                ignored: 0,
            });
        }
        Ok(JailRunner {
            jails: out,
            specs: jails.to_vec(),
            recidive,
            unresolved: 0,
        })
    }

    /// The watch lists for the log follower: watch id `i` = the file patterns of jail `i`
    /// (empty for journal and ban-event jails).
    pub fn watches(&self) -> Vec<Vec<String>> {
        self.specs
            .iter()
            .map(|j| match &j.source {
                JailSource::Files(p) => p.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// The settings of jail `name`.
    pub fn settings(&self, name: &str) -> Option<JailSettings> {
        self.jails
            .iter()
            .find(|r| r.jail.settings().name == name)
            .map(|r| r.jail.settings().clone())
    }

    /// Offers one line to the jails `watches` (indices into the configuration's jails).
    /// `time` is the line's time when its source knows it (journal entries); otherwise the
    /// filter reads the date from the text. `weight` gives the increment observer's weight
    /// for an address (1.0 without history).
    pub fn line(
        &mut self,
        watches: &[usize],
        line: &str,
        time: Option<i64>,
        now: i64,
        weight: &mut dyn FnMut(&JailSettings, IpAddr) -> f64,
    ) -> Vec<BanDecision> {
        let mut out = Vec::new();
        for &w in watches {
            let Some(r) = self.jails.get_mut(w) else {
                continue;
            };
            let Some(filter) = r.filter.as_mut() else {
                continue;
            };
            let result = match time {
                Some(t) => filter.process_line_with_time(line, t),
                None => filter.process_line(line, now),
            };
            for hit in result.failures() {
                let ip = match &hit.id {
                    Some(FailureId::Ip(ip)) => *ip,
                    Some(FailureId::Net(ip, _)) => *ip,
                    _ => {
                        self.unresolved += 1;
                        continue;
                    }
                };
                let time = hit.time.unwrap_or(now);
                let w = weight(r.jail.settings(), ip);
                match r.jail.failure(ip, time, now, w) {
                    FailureOutcome::Ignored => r.ignored += 1,
                    FailureOutcome::TooOld => {}
                    FailureOutcome::Counted(_) => r.failures += 1,
                    FailureOutcome::Ban(d) => {
                        r.failures += 1;
                        out.push(d);
                    }
                }
                // The daemon counts one failure per line (fail2ban stops at the first
                // failregex that matches).
                break;
            }
        }
        out
    }

    /// Feeds new ban events (jail, network, time) to the recidive jail; bans by recidive
    /// itself do not count (its filter excludes `[recidive]`).
    pub fn ban_events(&mut self, events: &[(String, IpNet, i64)], now: i64) -> Vec<BanDecision> {
        let Some(i) = self.recidive else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let r = &mut self.jails[i];
        for (jail, net, time) in events {
            if jail == cfg::RECIDIVE {
                continue;
            }
            match r.jail.failure(net.addr(), *time, now, 1.0) {
                FailureOutcome::Ban(mut d) => {
                    r.failures += 1;
                    // Recidive bans what the jail banned (a /64 stays a /64).
                    d.net = *net;
                    out.push(d);
                }
                FailureOutcome::Counted(_) => r.failures += 1,
                FailureOutcome::Ignored => r.ignored += 1,
                FailureOutcome::TooOld => {}
            }
        }
        out
    }

    /// What each jail needs resolved for its ignore list: (jail index, `ignoreip` host names,
    /// `ignoreself`). Jails with neither are left out.
    pub fn ignore_lookups(&self) -> Vec<(usize, Vec<String>, bool)> {
        self.specs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.ignoreself || !j.ignore_names.is_empty())
            .map(|(i, j)| (i, j.ignore_names.clone(), j.ignoreself))
            .collect()
    }

    /// Sets jail `i`'s ignore list to its configured networks plus the resolved `extra`
    /// addresses (the previous resolution is replaced, so a name that moved is followed).
    pub fn set_resolved_ignores(&mut self, i: usize, extra: &[IpAddr]) {
        let (Some(spec), Some(r)) = (self.specs.get(i), self.jails.get_mut(i)) else {
            return;
        };
        let mut s = r.jail.settings().clone();
        let mut nets = spec.settings.ignore.nets().to_vec();
        nets.extend(extra.iter().map(|ip| IpNet::from(ip.to_canonical())));
        nets.sort();
        nets.dedup();
        s.ignore = mxguard_engine::jail::IgnoreList::new(nets);
        r.jail.set_settings(s);
    }

    /// fail2ban's periodic `FailManager.cleanup`.
    pub fn cleanup(&mut self, now: i64) {
        for r in &mut self.jails {
            r.jail.cleanup(now);
        }
    }

    /// Forgets pending failures of `net` in every jail (unban).
    pub fn forget(&mut self, net: &IpNet) {
        for r in &mut self.jails {
            r.jail.forget(net);
        }
    }

    pub fn status(&self) -> Vec<JailStatus> {
        self.jails
            .iter()
            .zip(&self.specs)
            .map(|(r, s)| JailStatus {
                name: s.settings.name.clone(),
                filter: s.filter_spec.clone(),
                source: match &s.source {
                    JailSource::Files(p) => p.join(" "),
                    JailSource::Journal(groups) => format!("journal: {}", match_text(groups)),
                    JailSource::BanEvents => "ban events".into(),
                },
                pending: r.jail.pending(),
                failures: r.failures,
                ignored: r.ignored,
            })
            .collect()
    }
}

/// A journalmatch as journalctl would take it (status output).
fn match_text(groups: &[crate::input::journal::MatchGroup]) -> String {
    match crate::input::journal::match_args(groups.iter()).join(" ") {
        t if t.is_empty() => "(every entry)".into(),
        t => t,
    }
}
