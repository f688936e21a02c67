//! Metrics of the policy checks: greylist decisions, limit breaches, SPF results and DNSBL
//! scores, heard through the engine's [`mxguard_engine::observe::Observer`], which
//! [`ChecksMetrics`] implements.
//!
//! Label values are closed sets: greylist outcomes and SPF results are fixed names; limit
//! names and DNSBL domains come from the configuration. Registered by
//! [`super::Metrics::with_redis`]; the daemon hands the observer to every engine it builds
//! (`service::build_engine`).

use mxguard_engine::dnsbl::{DnsblScore, DnsblVerdict};
use mxguard_engine::observe::Observer;
use mxguard_engine::spf::SpfResult;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of `mxguard_greylist_decisions_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GreylistLabels {
    /// `deferred`, `passed`, `awl` (auto-whitelisted client) or `whitelisted`.
    pub result: &'static str,
}

/// Labels with a limit name (`[[limit]] name`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: String,
}

/// Labels of `mxguard_spf_results_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpfLabels {
    /// `helo` or `mail_from`.
    pub identity: &'static str,
    /// RFC 7208 result name (`pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`,
    /// `permerror`).
    pub result: &'static str,
}

/// Labels with a DNSBL/DNSWL domain (`[dnsbl] sites`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabels {
    pub list: String,
}

/// Labels of `mxguard_dnsbl_checks_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsblVerdictLabels {
    /// `listed`, `allowlisted` or `neutral`.
    pub verdict: &'static str,
}

/// Every check metric; clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct ChecksMetrics {
    pub greylist: Family<GreylistLabels, Counter>,
    pub limit_breaches: Family<LimitLabels, Counter>,
    pub spf: Family<SpfLabels, Counter>,
    pub dnsbl_checks: Family<DnsblVerdictLabels, Counter>,
    pub dnsbl_hits: Family<ListLabels, Counter>,
    pub dnsbl_failures: Family<ListLabels, Counter>,
}

impl ChecksMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = ChecksMetrics::default();
        registry.register(
            "greylist_decisions",
            "Greylisting outcomes at RCPT: deferred, passed (retried after the delay), awl \
             (auto-whitelisted client), whitelisted (whitelist files)",
            m.greylist.clone(),
        );
        registry.register(
            "limit_breaches",
            "Requests refused (or held) by a rate limit or quota, by [[limit]] name",
            m.limit_breaches.clone(),
        );
        registry.register(
            "spf_results",
            "SPF evaluations, by identity (helo, mail_from) and RFC 7208 result",
            m.spf.clone(),
        );
        registry.register(
            "dnsbl_checks",
            "Clients scored against the DNSBL/DNSWL lists, by verdict",
            m.dnsbl_checks.clone(),
        );
        registry.register(
            "dnsbl_hits",
            "DNSBL/DNSWL entries that matched a client, by list domain",
            m.dnsbl_hits.clone(),
        );
        registry.register(
            "dnsbl_lookup_failures",
            "DNSBL/DNSWL lookups that failed or timed out (counted as not listed), by list",
            m.dnsbl_failures.clone(),
        );
        m
    }
}

impl Observer for ChecksMetrics {
    fn greylisted(&self, result: &'static str) {
        self.greylist
            .get_or_create(&GreylistLabels { result })
            .inc();
    }

    fn limit_breached(&self, limit: &str) {
        self.limit_breaches
            .get_or_create(&LimitLabels {
                limit: limit.to_owned(),
            })
            .inc();
    }

    fn spf_checked(&self, identity: &'static str, result: SpfResult) {
        self.spf
            .get_or_create(&SpfLabels {
                identity,
                result: result.as_str(),
            })
            .inc();
    }

    fn dnsbl_scored(&self, score: &DnsblScore) {
        let verdict = match score.verdict {
            DnsblVerdict::Listed => "listed",
            DnsblVerdict::Allowlisted => "allowlisted",
            DnsblVerdict::Neutral => "neutral",
        };
        self.dnsbl_checks
            .get_or_create(&DnsblVerdictLabels { verdict })
            .inc();
        for h in &score.hits {
            self.dnsbl_hits
                .get_or_create(&ListLabels {
                    list: h.domain.clone(),
                })
                .inc();
        }
        for list in &score.failed {
            self.dnsbl_failures
                .get_or_create(&ListLabels { list: list.clone() })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_counts_by_configured_name() {
        let m = ChecksMetrics::default();
        m.limit_breached("per_user");
        m.limit_breached("per_user");
        m.greylisted("awl");
        let awl = GreylistLabels { result: "awl" };
        assert_eq!(m.greylist.get(&awl).map(|c| c.get()), Some(1));
        m.spf_checked("mail_from", SpfResult::SoftFail);
        let per_user = LimitLabels {
            limit: "per_user".into(),
        };
        assert_eq!(m.limit_breaches.get(&per_user).map(|c| c.get()), Some(2));
        let soft = SpfLabels {
            identity: "mail_from",
            result: "softfail",
        };
        assert_eq!(m.spf.get(&soft).map(|c| c.get()), Some(1));
    }
}
