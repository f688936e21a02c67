//! SPF (RFC 7208): who may send mail for a domain, checked for the HELO and MAIL FROM identities.
//!
//! [`SpfChecker`] runs RFC 7208's check_host() (section 4) against a [`Resolver`]: record lookup
//! and selection, strict record syntax, every mechanism and modifier, macro expansion (section
//! 7), the limits of section 4.6.4 (10 DNS-querying terms, 2 void lookups) and `exp=`
//! explanations. It was written for mxguard because no available crate passes the RFC 7208 test
//! suite (docs/architecture.md, "SPF"); `tests/spf_suite.rs` runs that suite and the RFC 4408 one
//! through it. [`policyd_spf`] turns results into the decisions and header of
//! postfix-policyd-spf-python 3.0.4. This module does no I/O of its own and sets no time limit:
//! the caller (the policy service) bounds a check with its own timeout.

mod eval;
mod macros;
mod memo;
mod policyd_bypass;
pub mod policyd_spf;
mod policyd_text;
mod record;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use crate::clock::UnixTime;
use crate::dns::Resolver;

pub use memo::MessageMemo;

/// The result of an SPF check (RFC 7208 section 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfResult {
    /// No record, or no valid domain to check (section 2.6.1).
    None,
    /// The domain owner makes no assertion (section 2.6.2).
    Neutral,
    /// The client is authorized (section 2.6.3).
    Pass,
    /// The client is explicitly not authorized (section 2.6.4).
    Fail,
    /// Probably not authorized (section 2.6.5).
    SoftFail,
    /// A transient DNS error (section 2.6.6).
    TempError,
    /// The records could not be interpreted (section 2.6.7).
    PermError,
}

impl SpfResult {
    /// The lowercase name used by RFC 7208 (`pass`, `softfail`, `permerror`...).
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which identity was checked (RFC 7208 section 2.3 and 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The HELO/EHLO name, checked as `postmaster@<helo>`.
    Helo,
    /// The MAIL FROM address (or `postmaster@<helo>` for the null reverse-path).
    MailFrom,
}

impl Identity {
    /// `helo` or `mailfrom`, as in Received-SPF's `identity=` (RFC 7208 section 9.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::Helo => "helo",
            Identity::MailFrom => "mailfrom",
        }
    }
}

/// What one SMTP transaction offers to check.
#[derive(Debug, Clone)]
pub struct SpfQuery<'a> {
    /// The SMTP client's address. IPv4-mapped IPv6 addresses are checked as IPv4 (RFC 7208
    /// section 5: ip4 and A records apply to the IPv4 client behind a mapped address).
    pub ip: IpAddr,
    /// The HELO/EHLO argument as sent.
    pub helo: &'a str,
    /// The MAIL FROM address without angle brackets; empty for the null reverse-path.
    pub sender: &'a str,
    /// The current time, for the `%{t}` macro.
    pub now: UnixTime,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfOutcome {
    pub result: SpfResult,
    pub identity: Identity,
    /// The domain whose policy was checked (the sender's or the HELO domain).
    pub domain: String,
    /// The `<sender>` of check_host(): `local@domain`, with `postmaster` filled in.
    pub sender: String,
    /// For [`SpfResult::Fail`]: the `exp=` text, or the checker's default explanation.
    pub explanation: Option<String>,
    /// For errors: what went wrong (which record, which term).
    pub problem: Option<String>,
}

/// The SPF evaluator and its settings.
#[derive(Debug, Clone)]
pub struct SpfChecker {
    /// Terms that cause DNS queries, per check (RFC 7208 section 4.6.4: 10).
    pub lookup_limit: u32,
    /// Lookups answering NXDOMAIN or no records, per check (section 4.6.4: SHOULD be 2).
    pub void_limit: u32,
    /// Explanation of a fail without (usable) `exp=` (section 6.2).
    pub default_explanation: String,
    /// This host's name, for the `%{r}` macro.
    pub receiver: String,
}

impl Default for SpfChecker {
    fn default() -> Self {
        SpfChecker {
            lookup_limit: 10,
            void_limit: 2,
            // pyspf's default, which policyd-spf puts in its reject text.
            default_explanation: "SPF fail - not authorized".to_string(),
            receiver: "unknown".to_string(),
        }
    }
}

impl SpfChecker {
    /// Checks the MAIL FROM identity (RFC 7208 section 2.4). A null sender is checked as
    /// `postmaster@<helo>`.
    pub async fn check_mail_from(&self, resolver: &dyn Resolver, q: &SpfQuery<'_>) -> SpfOutcome {
        if q.sender.is_empty() {
            return self
                .check_identity(resolver, q, Identity::MailFrom, q.helo)
                .await;
        }
        self.check_identity(resolver, q, Identity::MailFrom, q.sender)
            .await
    }

    /// Checks the HELO identity (RFC 7208 section 2.3).
    pub async fn check_helo(&self, resolver: &dyn Resolver, q: &SpfQuery<'_>) -> SpfOutcome {
        self.check_identity(resolver, q, Identity::Helo, q.helo)
            .await
    }

    async fn check_identity(
        &self,
        resolver: &dyn Resolver,
        q: &SpfQuery<'_>,
        identity: Identity,
        who: &str,
    ) -> SpfOutcome {
        // Section 4.3: a sender without local-part gets "postmaster"; a bare domain (the HELO
        // identity) is checked as postmaster@domain.
        let (local, domain) = match who.rsplit_once('@') {
            Some(("", d)) => ("postmaster", d),
            Some((l, d)) => (l, d),
            None => ("postmaster", who),
        };
        let sender = format!("{local}@{domain}");
        let ip = q.ip.to_canonical();
        let mut run = eval::Run::new(self, resolver, ip, &sender, local, domain, q.helo, q.now.0);
        let (result, explanation, problem) = run.check_host_top(domain).await;
        SpfOutcome {
            result,
            identity,
            domain: domain.to_string(),
            sender,
            explanation,
            problem,
        }
    }
}
