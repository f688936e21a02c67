//! Metrics of the Dovecot auth-policy endpoint, registered in the daemon's one registry by
//! [`crate::output::metrics::Metrics::new`]. Labels come from closed sets (command, answer,
//! deciding rule, error reason, alert kind), never from a login or an address.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `mxguard_auth_policy_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow` or `report`.
    pub command: &'static str,
    /// `allow`, `tarpit`, `reject` (allow) or the report outcome (`success`, `failure`,
    /// `stale`, `policy_reject`).
    pub answer: &'static str,
    /// The engine rule that decided (`none`, `ban`, `locked`, `ip`, ...).
    pub check: &'static str,
}

/// Labels of `mxguard_auth_policy_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `malformed`, `too_large`, `unauthorized`, `unknown_command`, `method`, `timeout`.
    pub reason: &'static str,
}

/// Labels of `mxguard_auth_policy_alerts_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub kind: &'static str,
}

/// Labels of `mxguard_auth_policy_tracked_keys`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrackedLabels {
    /// `ip`, `prefix`, `login`, `login_ip`.
    pub kind: &'static str,
}

/// Every auth-policy metric.
#[derive(Debug, Clone)]
pub struct AuthMetrics {
    pub requests: Family<DecisionLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub bans: Counter,
    pub alerts: Family<AlertLabels, Counter>,
    pub store_errors: Counter,
    pub tracked: Family<TrackedLabels, Gauge>,
    /// Answers since start by (command, answer), for `mxguard status`.
    pub answers: std::sync::Arc<crate::output::metrics::Tally<(&'static str, &'static str)>>,
}

impl AuthMetrics {
    /// Creates the metrics and registers them under `mxguard_auth_policy_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = AuthMetrics {
            requests: Family::default(),
            errors: Family::default(),
            // 10 µs .. ~0.3 s: answers must stay far below Dovecot's 2 s timeout.
            duration: Histogram::new(exponential_buckets(0.000_01, 2.0, 16)),
            bans: Counter::default(),
            alerts: Family::default(),
            store_errors: Counter::default(),
            tracked: Family::default(),
            answers: Default::default(),
        };
        let r = registry.sub_registry_with_prefix("auth_policy");
        r.register(
            "requests",
            "Dovecot auth-policy requests answered, by command, answer and deciding rule",
            m.requests.clone(),
        );
        r.register(
            "errors",
            "Auth-policy requests refused with an HTTP error or answered by timeout, by reason",
            m.errors.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from a complete request body to its answer",
            m.duration.clone(),
        );
        r.register(
            "bans",
            "Addresses or networks banned by the auth policy",
            m.bans.clone(),
        );
        r.register(
            "alerts",
            "Seed-incident alerts (successful logins at abnormal spread or rate), by kind",
            m.alerts.clone(),
        );
        r.register(
            "store_errors",
            "Store failures on the auth-policy path (answered allow: fail-open)",
            m.store_errors.clone(),
        );
        // Known kinds exist from the start (at 0 until the first expiry pass).
        for kind in ["ip", "prefix", "login", "login_ip"] {
            m.tracked.get_or_create(&TrackedLabels { kind }).set(0);
        }
        r.register(
            "tracked_keys",
            "Keys held in memory by the brute-force counters, by kind (updated every expiry pass)",
            m.tracked.clone(),
        );
        m
    }

    /// Counts one answered request.
    pub fn decided(&self, labels: &DecisionLabels) {
        self.requests.get_or_create(labels).inc();
        self.answers.add((labels.command, labels.answer));
    }
}
