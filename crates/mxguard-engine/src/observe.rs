//! [`Observer`]: what the policy chain tells the outside about its inner steps, for
//! metrics. The verdict says which check decided; an observer also hears what the checks
//! found on the way (SPF results, DNSBL hits, which limit was breached) even when they did
//! not decide.
//!
//! The engine has no metrics library: the binary implements [`Observer`] over its
//! Prometheus registry and hands it to [`crate::policy::Policy::with_observer`]. Every method
//! has an empty default, so [`NoObserver`] (the default) costs nothing. Values passed are
//! from closed sets (`&'static str` names, or names from the configuration such as limit
//! names and DNSBL domains), never request data.

use crate::dnsbl::DnsblScore;
use crate::spf::SpfResult;

/// Receives the chain's findings (see module docs). Called on the request path: keep it
/// cheap and non-blocking.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Greylisting decided a request: `"deferred"`, `"passed"` (retried after the delay, or
    /// passed before), `"awl"` (auto-whitelisted client) or `"whitelisted"` (whitelist
    /// files). Reported even when the reply carries another check's header.
    fn greylisted(&self, result: &'static str) {
        let _ = result;
    }

    /// The limit named `limit` (`[[limit]] name`) refused a request.
    fn limit_breached(&self, limit: &str) {
        let _ = limit;
    }

    /// An SPF check of `identity` (`"helo"` or `"mail_from"`) gave `result`. Called once per
    /// evaluation (a message's later RCPTs reuse the first decision and are not reported).
    fn spf_checked(&self, identity: &'static str, result: SpfResult) {
        let _ = (identity, result);
    }

    /// The DNSBL/DNSWL lists were asked about one client; `score` has the hits by list and
    /// the lists whose lookup failed.
    fn dnsbl_scored(&self, score: &DnsblScore) {
        let _ = score;
    }
}

/// The observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnsbl::DnsblVerdict;

    #[test]
    fn the_default_observer_accepts_every_event() {
        let o: &dyn Observer = &NoObserver;
        o.greylisted("deferred");
        o.limit_breached("per_user");
        o.spf_checked("helo", SpfResult::Pass);
        o.dnsbl_scored(&DnsblScore {
            score: 0,
            verdict: DnsblVerdict::Neutral,
            hits: Vec::new(),
            failed: Vec::new(),
        });
        assert_eq!(format!("{NoObserver:?}"), "NoObserver");
    }
}
