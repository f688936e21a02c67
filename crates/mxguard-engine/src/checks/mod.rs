//! The DNS-based sender checks as steps of the policy chain: HELO / client name
//! ([`crate::helo`]), DNSBL/DNSWL scoring ([`crate::dnsbl`]) and SPF ([`crate::spf`]).
//!
//! [`crate::policy::Policy`] runs them after the static lists and rate limits and before
//! greylisting, in that order (HELO, DNSBL, SPF), at the MAIL and RCPT stages, for clients that
//! did not authenticate (submission clients on dynamic addresses are what DNSBLs list; their
//! limits are the rate-limit step's job). Each step has its own settings (`None` turns it off)
//! and its own [`CheckAction`]; each is bounded by a time budget through the injected
//! [`Timer`] ([`budget`]), so a slow DNS server never stalls a reply. SPF runs once per message
//! (policyd-spf's behaviour, [`MessageMemo`]); its `Received-SPF:` header is handed back to the
//! policy, which prepends one header per reply ([`crate::prepend`]). This module knows no
//! Postfix attribute names and does no I/O beyond the [`Resolver`].

pub mod budget;

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::UnixTime;
use crate::dns::Resolver;
use crate::dnsbl::{Dnsbl, DnsblVerdict};
use crate::helo::{HeloChecks, HeloStep};
use crate::request::{Request, Stage};
use crate::spf::MessageMemo;
use crate::spf::policyd_spf::{MessageInfo, PolicydSpf};
use crate::verdict::{Action, Verdict};

pub use budget::{Bounded, NoResolver, NoTimer, Timer, within};

/// What a check does when it finds something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckAction {
    /// Answer the check's own reply (Postfix's code and text, e.g. `504 5.5.2 ...`).
    Reject,
    /// The same reply as a temporary error (`5xx 5.x.x` becomes `4xx 4.x.x`, as Postfix's
    /// `soft_bounce` does).
    Defer,
    /// Accept into Postfix's hold queue (`HOLD text`), for review.
    Hold,
    /// Log only and go on with the chain (Postfix's `warn_if_reject`).
    Warn,
}

impl CheckAction {
    /// Parses `reject`, `defer`, `hold`, `warn`, or `off` (`None`).
    pub fn parse_optional(s: &str) -> Result<Option<CheckAction>, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(None),
            other => other.parse().map(Some),
        }
    }

    /// The answer for a finding whose reply is `reply` (`NNN X.Y.Z text`); `None` for warn.
    pub fn apply(self, reply: &str) -> Option<Action> {
        match self {
            CheckAction::Reject => Some(Action::Reply(reply.to_string())),
            CheckAction::Defer => Some(Action::Reply(soft(reply))),
            CheckAction::Hold => Some(Action::Hold(human_part(reply).to_string())),
            CheckAction::Warn => None,
        }
    }
}

impl FromStr for CheckAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "reject" => Ok(CheckAction::Reject),
            "defer" => Ok(CheckAction::Defer),
            "hold" => Ok(CheckAction::Hold),
            "warn" => Ok(CheckAction::Warn),
            _ => Err(format!(
                "{s:?} is not an action (reject, defer, hold, warn or off)"
            )),
        }
    }
}

/// `5NN 5.X.Y text` as `4NN 4.X.Y text`; other replies unchanged.
fn soft(reply: &str) -> String {
    let Some(rest) = reply.strip_prefix('5') else {
        return reply.to_string();
    };
    match rest.split_once(' ') {
        Some((code, tail)) => match tail.strip_prefix("5.") {
            Some(status) => format!("4{code} 4.{status}"),
            None => format!("4{code} {tail}"),
        },
        None => format!("4{rest}"),
    }
}

/// The text after the reply code and enhanced status code.
fn human_part(reply: &str) -> &str {
    let mut rest = reply;
    for _ in 0..2 {
        match rest.split_once(' ') {
            Some((word, tail))
                if word.bytes().next().is_some_and(|b| b.is_ascii_digit())
                    && word.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
            {
                rest = tail;
            }
            _ => break,
        }
    }
    rest
}

/// `[helo]`: which HELO / reverse-DNS findings act, and how. `None` turns a finding off.
#[derive(Debug, Clone)]
pub struct HeloSettings {
    pub checks: HeloChecks,
    /// Missing HELO or invalid syntax (`reject_invalid_helo_hostname`).
    pub invalid: Option<CheckAction>,
    /// Not fully qualified (`reject_non_fqdn_helo_hostname`).
    pub non_fqdn: Option<CheckAction>,
    /// Claims one of our names or addresses.
    pub our_name: Option<CheckAction>,
    /// No PTR record (`reject_unknown_reverse_client_hostname`).
    pub unknown_reverse: Option<CheckAction>,
    /// PTR missing or not confirmed by A/AAAA (`reject_unknown_client_hostname`).
    pub unknown_client: Option<CheckAction>,
    /// Time allowed for the reverse-DNS lookups.
    pub budget: Duration,
}

impl Default for HeloSettings {
    fn default() -> Self {
        HeloSettings {
            checks: HeloChecks::default(),
            invalid: Some(CheckAction::Reject),
            non_fqdn: Some(CheckAction::Reject),
            our_name: Some(CheckAction::Reject),
            unknown_reverse: None,
            unknown_client: None,
            budget: Duration::from_secs(5),
        }
    }
}

impl HeloSettings {
    /// The syntax-only and reverse-DNS-only halves, so a `warn` on the first still runs the
    /// second.
    fn steps(&self) -> (HeloStep, HeloStep) {
        let helo = HeloStep {
            checks: self.checks.clone(),
            reject_invalid: self.invalid.is_some(),
            reject_non_fqdn: self.non_fqdn.is_some(),
            reject_our_name: self.our_name.is_some(),
            ..HeloStep::default()
        };
        let rdns = HeloStep {
            checks: self.checks.clone(),
            reject_unknown_reverse: self.unknown_reverse.is_some(),
            reject_unknown_client: self.unknown_client.is_some(),
            ..HeloStep::default()
        };
        (helo, rdns)
    }

    /// The action configured for a finding of [`HeloStep::decide`].
    fn action_for(&self, finding: &str) -> Option<CheckAction> {
        match finding {
            "helo_missing" | "helo_invalid" => self.invalid,
            "helo_non_fqdn" => self.non_fqdn,
            "helo_our_name" | "helo_our_address" => self.our_name,
            "rdns_none" => self.unknown_reverse.or(self.unknown_client),
            "rdns_forged" => self.unknown_client,
            // A lookup failure answers 450 whichever check asked.
            _ => self.unknown_client.or(self.unknown_reverse),
        }
    }
}

/// `[dnsbl]`: postscreen-weighted lists and what a listed client gets.
#[derive(Debug, Clone)]
pub struct DnsblSettings {
    pub dnsbl: Dnsbl,
    /// For a client whose score reaches the threshold.
    pub action: CheckAction,
    /// Time allowed for the lists to answer (they are asked at once); a list that has not
    /// answered by then counts as not listed.
    pub budget: Duration,
}

/// `[spf]`: policyd-spf's knobs plus the header switch and the time budget.
#[derive(Debug, Clone)]
pub struct SpfSettings {
    pub policyd: PolicydSpf,
    /// policyd-spf `Header_Type = SPF` (true) or `None` (false: no header, DUNNO instead).
    pub header: bool,
    /// Time allowed for the HELO and MAIL FROM checks together; past it the answer is the
    /// temperror one ([`PolicydSpf::timed_out`]).
    pub budget: Duration,
}

impl Default for SpfSettings {
    fn default() -> Self {
        SpfSettings {
            policyd: PolicydSpf::default(),
            header: true,
            budget: Duration::from_secs(10),
        }
    }
}

/// What the sender checks concluded for one request.
#[derive(Debug, Default)]
pub struct Checked {
    /// A decision that ends the chain (reject, defer, hold).
    pub verdict: Option<Verdict>,
    /// Headers to prepend, in order, with the check that asked.
    pub headers: Vec<(String, &'static str)>,
    /// The MAIL FROM domain an SPF pass verified (for greylisting by domain).
    pub verified_domain: Option<String>,
    /// The client's DNSWL score reached the allowlist threshold: greylisting is skipped.
    pub allowlisted: bool,
}

/// The runtime half of the checks: resolver, timer and the per-message SPF memo.
#[derive(Debug)]
pub struct SenderChecks {
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) timer: Arc<dyn Timer>,
    /// Told of SPF results and DNSBL scores (metrics).
    pub(crate) observer: Arc<dyn crate::observe::Observer>,
    memo: Mutex<MessageMemo>,
}

impl Default for SenderChecks {
    fn default() -> Self {
        SenderChecks {
            resolver: Arc::new(NoResolver),
            timer: Arc::new(NoTimer),
            observer: Arc::new(crate::observe::NoObserver),
            memo: Mutex::new(MessageMemo::default()),
        }
    }
}

/// The settings of the three steps (fields of [`crate::PolicySettings`]).
#[derive(Debug, Clone, Copy)]
pub struct StepSettings<'a> {
    pub helo: Option<&'a HeloSettings>,
    pub dnsbl: Option<&'a DnsblSettings>,
    pub spf: Option<&'a SpfSettings>,
}

impl SenderChecks {
    /// Runs HELO, DNSBL and SPF for `req`, stopping at the first decision.
    pub async fn run(&self, s: StepSettings<'_>, req: &Request, now: UnixTime) -> Checked {
        let mut out = Checked::default();
        if !matches!(req.stage, Stage::Mail | Stage::Rcpt) || req.sasl_username.is_some() {
            return out;
        }
        if let Some(h) = s.helo
            && let Some(v) = self.helo(h, req).await
        {
            out.verdict = Some(v);
            return out;
        }
        if let Some(d) = s.dnsbl {
            match self.dnsbl(d, req.client_ip).await {
                Ok(allowlisted) => out.allowlisted = allowlisted,
                Err(v) => {
                    out.verdict = Some(v);
                    return out;
                }
            }
        }
        if let Some(spf) = s.spf {
            self.spf(spf, req, now, &mut out).await;
        }
        out
    }

    async fn helo(&self, s: &HeloSettings, req: &Request) -> Option<Verdict> {
        let (helo_step, rdns_step) = s.steps();
        let resolver = &*self.resolver;
        let ip = req.client_ip;
        // The syntax checks never touch DNS.
        if let Some((reply, finding)) = helo_step.decide(resolver, ip, &req.helo_name).await
            && let Some(v) = act(s.action_for(finding), &reply, "helo", finding, ip)
        {
            return Some(v);
        }
        if rdns_step.reject_unknown_reverse || rdns_step.reject_unknown_client {
            let found = within(
                &*self.timer,
                s.budget,
                rdns_step.decide(resolver, ip, &req.helo_name),
            )
            .await;
            let found = match found {
                Some(f) => f,
                None => {
                    tracing::warn!(client = %ip, "reverse DNS exceeded its time budget");
                    // What Postfix answers when the lookup fails temporarily.
                    Some((
                        Action::Reply(format!(
                            "450 4.7.25 Client host rejected: cannot find your hostname, [{ip}]"
                        )),
                        "rdns_tempfail",
                    ))
                }
            };
            if let Some((reply, finding)) = found {
                return act(s.action_for(finding), &reply, "helo", finding, ip);
            }
        }
        None
    }

    /// `Ok(allowlisted)`, or the verdict for a listed client.
    async fn dnsbl(&self, s: &DnsblSettings, ip: IpAddr) -> Result<bool, Verdict> {
        let bounded = Bounded {
            inner: &*self.resolver,
            timer: &*self.timer,
            budget: s.budget,
        };
        let score = s.dnsbl.score(&bounded, ip).await;
        self.observer.dnsbl_scored(&score);
        if !score.failed.is_empty() {
            tracing::debug!(client = %ip, lists = ?score.failed, "DNSBL lookups failed; counted as not listed");
        }
        if let Some(reply) = score.reply(ip) {
            tracing::info!(client = %ip, score = score.score, "DNSBL threshold reached");
            if let Some(v) = act(Some(s.action), &reply, "dnsbl", "listed", ip) {
                return Err(v);
            }
        }
        Ok(score.verdict == DnsblVerdict::Allowlisted)
    }

    async fn spf(&self, s: &SpfSettings, req: &Request, now: UnixTime, out: &mut Checked) {
        let remembered = lock(&self.memo).repeat(&req.instance);
        let decision = match remembered {
            Some(d) => d,
            None => {
                let m = MessageInfo::from_request(req, now);
                let checked = within(
                    &*self.timer,
                    s.budget,
                    s.policyd.decide(&*self.resolver, &m),
                )
                .await;
                let d = checked.unwrap_or_else(|| {
                    tracing::warn!(client = %req.client_ip, "SPF check exceeded its time budget");
                    s.policyd.timed_out(&m)
                });
                for (identity, o) in [("helo", &d.helo), ("mail_from", &d.mail_from)] {
                    if let Some(o) = o {
                        self.observer.spf_checked(identity, o.result);
                    }
                }
                lock(&self.memo).remember(&req.instance, &d);
                d
            }
        };
        out.verified_domain = decision
            .verified_sender_domain()
            .map(str::to_ascii_lowercase);
        match decision.action {
            Action::Dunno => {}
            Action::Prepend(h) => {
                if s.header {
                    out.headers.push((h, "spf"));
                }
            }
            other => out.verdict = Some(Verdict::new(other, "spf")),
        }
    }
}

/// The verdict of a finding under `action` (`None`: off, or warn and logged).
fn act(
    action: Option<CheckAction>,
    reply: &Action,
    check: &'static str,
    finding: &str,
    ip: IpAddr,
) -> Option<Verdict> {
    let Action::Reply(text) = reply else {
        return None;
    };
    let action = action?;
    match action.apply(text) {
        Some(a) => Some(Verdict::new(a, check)),
        None => {
            tracing::info!(check, finding, client = %ip, reply = %text, "warn only: would reject");
            None
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_soften_postfix_replies() {
        assert_eq!(CheckAction::parse_optional("OFF"), Ok(None));
        assert_eq!(
            CheckAction::parse_optional("defer"),
            Ok(Some(CheckAction::Defer))
        );
        assert!(CheckAction::parse_optional("drop").is_err());
        let r = "504 5.5.2 <x>: Helo command rejected: need fully-qualified hostname";
        assert_eq!(CheckAction::Reject.apply(r), Some(Action::Reply(r.into())));
        assert_eq!(
            CheckAction::Defer.apply(r),
            Some(Action::Reply(
                "404 4.5.2 <x>: Helo command rejected: need fully-qualified hostname".into()
            ))
        );
        assert_eq!(
            CheckAction::Hold.apply(r),
            Some(Action::Hold(
                "<x>: Helo command rejected: need fully-qualified hostname".into()
            ))
        );
        assert_eq!(CheckAction::Warn.apply(r), None);
        // Already temporary: unchanged.
        let t = "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]";
        assert_eq!(soft(t), t);
        assert_eq!(soft("550 5.7.1 x"), "450 4.7.1 x");
    }
}
