//! postfix-policyd-spf-python 3.0.4's decisions, so its users keep their policy.
//!
//! [`PolicydSpf::decide`] takes one message's client address, HELO, sender and receiving
//! domain, runs the HELO and MAIL FROM checks in policyd-spf's order (`spf_engine._spfcheck`:
//! bypass lists, HELO, then MAIL FROM) and answers with the same [`Action`]: `550 5.7.23 ...` on
//! a rejected fail, `550 5.7.24` on a rejected permerror, `DEFER_IF_PERMIT 4.7.24` on a deferred
//! temperror, otherwise a `Received-SPF:` (or `X-Comment:` for bypassed clients) header to
//! prepend, in policyd-spf's exact format (shared/notes/spf-policy.md, section 3). The knobs are
//! policyd-spf.conf(5)'s: `HELO_reject`, `Mail_From_reject`, `PermError_reject`,
//! `TempError_Defer`, `skip_addresses`, `Whitelist`, `Domain_Whitelist`, plus `HELO_Whitelist`,
//! `Domain_Whitelist_PTR`, `Reject_Not_Pass_Domains`,
//! `Reason_Message`, `TestOnly`, `Hide_Receiver` and `SPF_Enhanced_Status_Codes`. [`super::MessageMemo`]
//! gives policyd-spf's once-per-message behaviour. This module knows no Postfix attribute names and
//! sets no time limit; the policy service maps requests in, bounds the check with its budget,
//! and writes the action out.

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::policyd_text as text;
use super::{Identity, SpfChecker, SpfOutcome, SpfQuery, SpfResult};
use crate::clock::UnixTime;
use crate::dns::Resolver;
use crate::request::Request;
use crate::verdict::Action;

/// `HELO_reject` / `Mail_From_reject`: which results reject (policyd-spf.conf(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RejectPolicy {
    /// `SPF_Not_Pass`: reject fail, softfail and neutral.
    SpfNotPass,
    /// `Softfail`: reject fail and softfail.
    Softfail,
    /// `Fail` (the default): reject fail only.
    #[default]
    Fail,
    /// `Null` (HELO only): reject a HELO fail only when the sender is null.
    Null,
    /// `False`: never reject or defer (not even on errors), only prepend the header.
    False,
    /// `No_Check`: skip this identity.
    NoCheck,
}

impl FromStr for RejectPolicy {
    type Err = String;

    /// Accepts policyd-spf.conf spellings (`SPF_Not_Pass`, `Softfail`, `Fail`, `Null`, `False`,
    /// `No_Check`), case-insensitively, with `-` or `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "spf_not_pass" => Ok(RejectPolicy::SpfNotPass),
            "softfail" => Ok(RejectPolicy::Softfail),
            "fail" => Ok(RejectPolicy::Fail),
            "null" => Ok(RejectPolicy::Null),
            "false" => Ok(RejectPolicy::False),
            "no_check" => Ok(RejectPolicy::NoCheck),
            _ => Err(format!(
                "unknown SPF reject policy {s:?} (expected SPF_Not_Pass, Softfail, Fail, Null, \
                 False or No_Check)"
            )),
        }
    }
}

/// policyd-spf's knobs, with its defaults.
#[derive(Debug, Clone)]
pub struct PolicydSpf {
    pub checker: SpfChecker,
    pub helo_reject: RejectPolicy,
    pub mail_from_reject: RejectPolicy,
    /// `PermError_reject`: answer `550 5.7.24` on permerror.
    pub permerror_reject: bool,
    /// `TempError_Defer`: answer `DEFER_IF_PERMIT 4.7.24` on temperror.
    pub temperror_defer: bool,
    /// `skip_addresses`: clients not checked at all (default loopback).
    pub skip_addresses: Vec<IpNet>,
    /// `Whitelist`: trusted relays, not checked.
    pub whitelist: Vec<IpNet>,
    /// `Domain_Whitelist`: clients that pass SPF for one of these domains are not checked.
    pub domain_whitelist: Vec<String>,
    /// `HELO_Whitelist`: HELO names not checked when the name's A/AAAA is the client.
    pub helo_whitelist: Vec<String>,
    /// `Domain_Whitelist_PTR`: clients whose validated PTR name is in one of these domains.
    pub domain_whitelist_ptr: Vec<String>,
    /// `SPF_Enhanced_Status_Codes`: RFC 7372 codes 5.7.23 / 5.7.24 / 4.7.24 (default on).
    pub enhanced_status_codes: bool,
    /// `Reject_Not_Pass_Domains`: sender/HELO domains held to `SPF_Not_Pass`.
    pub reject_not_pass_domains: Vec<String>,
    /// `Reason_Message`: the reject/defer text, with `{rejectdefer}`, `{spf}` and `{url}`.
    pub reason_message: String,
    /// `TestOnly` (1, the default, enforces): when false, rejects and defers become DUNNO.
    pub enforce: bool,
    /// `Hide_Receiver`: show `receiver=<UNKNOWN>` instead of the recipient's domain.
    pub hide_receiver: bool,
}

impl Default for PolicydSpf {
    fn default() -> Self {
        PolicydSpf {
            checker: SpfChecker::default(),
            helo_reject: RejectPolicy::Fail,
            mail_from_reject: RejectPolicy::Fail,
            permerror_reject: false,
            temperror_defer: false,
            skip_addresses: ["127.0.0.0/8", "::ffff:127.0.0.0/104", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            whitelist: Vec::new(),
            domain_whitelist: Vec::new(),
            helo_whitelist: Vec::new(),
            domain_whitelist_ptr: Vec::new(),
            enhanced_status_codes: true,
            reject_not_pass_domains: Vec::new(),
            reason_message: "Message {rejectdefer} due to: {spf}. Please see {url}".to_string(),
            enforce: true,
            hide_receiver: false,
        }
    }
}

/// One message as policyd-spf sees it.
#[derive(Debug, Clone)]
pub struct MessageInfo<'a> {
    pub client_ip: IpAddr,
    /// HELO/EHLO name; may be empty.
    pub helo: Cow<'a, str>,
    /// Envelope sender; empty for the null sender.
    pub sender: Cow<'a, str>,
    /// The recipient's domain (policyd-spf's `receiver`), or `<UNKNOWN>` when hidden.
    pub receiver: Cow<'a, str>,
    pub now: UnixTime,
}

impl<'a> MessageInfo<'a> {
    /// The message of a policy request, with policyd-spf's normalisation: HELO, sender and
    /// receiver lowercased (it lowercases every request value), the receiver reduced to the
    /// recipient's domain (`<UNKNOWN>` when there is no recipient, e.g. at DATA with several).
    pub fn from_request(req: &'a Request, now: UnixTime) -> MessageInfo<'a> {
        let receiver = match req.recipient.rsplit_once('@') {
            Some((_, d)) if !d.is_empty() => lower(d),
            _ => Cow::Borrowed("<UNKNOWN>"),
        };
        MessageInfo {
            client_ip: req.client_ip,
            helo: lower(&req.helo_name),
            sender: lower(&req.sender),
            receiver,
            now,
        }
    }
}

/// `s` lowercased, borrowed when it already is.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The decision and the SPF results behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfDecision {
    pub action: Action,
    pub helo: Option<SpfOutcome>,
    pub mail_from: Option<SpfOutcome>,
}

impl SpfDecision {
    /// The sender domain verified by an SPF pass on MAIL FROM, for greylisting by domain.
    pub fn verified_sender_domain(&self) -> Option<&str> {
        self.mail_from
            .as_ref()
            .filter(|o| o.result == SpfResult::Pass)
            .map(|o| o.domain.as_str())
    }

    fn only(action: Action) -> SpfDecision {
        SpfDecision {
            action,
            helo: None,
            mail_from: None,
        }
    }
}

/// What a result leads to under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Prepend,
    Reject,
    Defer,
}

impl PolicydSpf {
    /// policyd-spf's decision for one message (`spf_engine._spfcheck`).
    pub async fn decide(&self, resolver: &dyn Resolver, m: &MessageInfo<'_>) -> SpfDecision {
        let hidden;
        let m = if self.hide_receiver {
            hidden = hide(m);
            &hidden
        } else {
            m
        };
        // 1. Bypasses, answered with an X-Comment header (spf_engine._spfbypass).
        if let Some(what) = self.bypass(resolver, m).await {
            return SpfDecision::only(self.comment(what, m));
        }
        let canonical = m.client_ip.to_canonical();
        // 2. Nothing to check without sender and HELO; a missing HELO becomes the sender's
        // domain, or "unknown".
        if m.sender.is_empty() && m.helo.is_empty() {
            return SpfDecision::only(Action::Dunno);
        }
        let helo = text::effective_helo(m);
        let query = SpfQuery {
            ip: canonical,
            helo,
            sender: &m.sender,
            now: m.now,
        };
        let mut decision = SpfDecision::only(Action::Dunno);
        // 3. HELO, unless No_Check; a reject or defer ends the check.
        let mut helo_header = None;
        if self.helo_reject != RejectPolicy::NoCheck {
            let out = self.checker.check_helo(resolver, &query).await;
            let (step, forced) = self.step(&out, self.helo_reject, m.sender.is_empty());
            let header = text::received_spf(&out, m, helo);
            decision.action = self.action(step, forced, &out, m, helo, header.clone());
            let result = out.result;
            decision.helo = Some(out);
            if step != Step::Prepend {
                return decision;
            }
            helo_header = (result != SpfResult::None).then_some(header);
        }
        // 4. MAIL FROM, for a non-null sender unless No_Check. A MAIL FROM "none" after a HELO
        // result other than none keeps the HELO header.
        if !m.sender.is_empty() && self.mail_from_reject != RejectPolicy::NoCheck {
            let out = self.checker.check_mail_from(resolver, &query).await;
            let (step, forced) = self.step(&out, self.mail_from_reject, false);
            let header = match (out.result, helo_header) {
                (SpfResult::None, Some(h)) => h,
                _ => text::received_spf(&out, m, helo),
            };
            decision.action = self.action(step, forced, &out, m, helo, header);
            decision.mail_from = Some(out);
        }
        decision
    }

    /// The decision when the check did not finish within the caller's time budget: what
    /// policyd-spf answers for a temperror of the identity being checked (MAIL FROM for a
    /// non-null sender, else HELO), so a slow DNS never stalls the reply.
    pub fn timed_out(&self, m: &MessageInfo<'_>) -> SpfDecision {
        let hidden;
        let m = if self.hide_receiver {
            hidden = hide(m);
            &hidden
        } else {
            m
        };
        let mail = !m.sender.is_empty() && self.mail_from_reject != RejectPolicy::NoCheck;
        let (identity, policy) = if mail {
            (Identity::MailFrom, self.mail_from_reject)
        } else {
            (Identity::Helo, self.helo_reject)
        };
        if policy == RejectPolicy::NoCheck || (m.sender.is_empty() && m.helo.is_empty()) {
            return SpfDecision::only(Action::Dunno);
        }
        let helo = text::effective_helo(m);
        let who = if mail { &*m.sender } else { helo };
        let (local, domain) = who.rsplit_once('@').unwrap_or(("postmaster", who));
        let out = SpfOutcome {
            result: SpfResult::TempError,
            identity,
            domain: domain.to_string(),
            sender: format!("{local}@{domain}"),
            explanation: None,
            problem: Some("SPF check exceeded its time budget".to_string()),
        };
        let (step, forced) = self.step(&out, policy, m.sender.is_empty());
        let header = text::received_spf(&out, m, helo);
        let action = self.action(step, forced, &out, m, helo, header);
        SpfDecision {
            action,
            helo: (!mail).then(|| out.clone()),
            mail_from: mail.then_some(out),
        }
    }

    /// What the result leads to, and whether `Reject_Not_Pass_Domains` forced `SPF_Not_Pass`.
    fn step(&self, out: &SpfOutcome, policy: RejectPolicy, null_sender: bool) -> (Step, bool) {
        use RejectPolicy as P;
        let forced = !matches!(policy, P::NoCheck)
            && self
                .reject_not_pass_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&out.domain));
        let policy = if forced { P::SpfNotPass } else { policy };
        if matches!(policy, P::False | P::NoCheck) {
            return (Step::Prepend, false);
        }
        let reject = match out.result {
            SpfResult::Fail => policy != P::Null || null_sender,
            SpfResult::SoftFail => matches!(policy, P::Softfail | P::SpfNotPass),
            SpfResult::Neutral => policy == P::SpfNotPass,
            SpfResult::PermError => self.permerror_reject,
            SpfResult::TempError if self.temperror_defer => return (Step::Defer, forced),
            SpfResult::TempError | SpfResult::Pass | SpfResult::None => false,
        };
        (if reject { Step::Reject } else { Step::Prepend }, forced)
    }

    fn action(
        &self,
        step: Step,
        forced: bool,
        out: &SpfOutcome,
        m: &MessageInfo<'_>,
        helo: &str,
        header: String,
    ) -> Action {
        // TestOnly = 0: log and prepend only; a reject or defer becomes DUNNO.
        if step != Step::Prepend && !self.enforce {
            return Action::Dunno;
        }
        let why = self.reason_message(step, out, m, helo, forced);
        let enhanced = self.enhanced_status_codes;
        match step {
            Step::Prepend => Action::Prepend(header),
            Step::Reject => {
                // RFC 7372: 5.7.23 for an SPF validation failure, 5.7.24 for an SPF error.
                let status = if out.result == SpfResult::PermError {
                    "5.7.24"
                } else {
                    "5.7.23"
                };
                Action::Reply(if enhanced {
                    format!("550 {status} {why}")
                } else {
                    format!("550 {why}")
                })
            }
            Step::Defer => Action::DeferIfPermit(if enhanced {
                format!("4.7.24 {why}")
            } else {
                why
            }),
        }
    }

    /// `Reason_Message` with `{rejectdefer}`, `{spf}` and `{url}` filled in.
    fn reason_message(
        &self,
        step: Step,
        out: &SpfOutcome,
        m: &MessageInfo<'_>,
        helo: &str,
        forced: bool,
    ) -> String {
        let verb = if step == Step::Defer {
            "deferred"
        } else {
            "rejected"
        };
        // Reject_Not_Pass_Domains: the reason names the receiver's policy, not the sender's.
        let spf = if forced && out.result != SpfResult::Fail {
            format!("Receiver policy for SPF {}", text::capitalized(out.result))
        } else {
            text::reason(out)
        };
        self.reason_message
            .replace("{rejectdefer}", verb)
            .replace("{spf}", &spf)
            .replace("{url}", &text::why_url(out, m, helo))
    }

    fn comment(&self, what: &str, m: &MessageInfo<'_>) -> Action {
        Action::Prepend(text::x_comment(what, m))
    }
}

/// `Hide_Receiver = Yes`: the receiver is shown as `<UNKNOWN>`.
fn hide<'a>(m: &MessageInfo<'a>) -> MessageInfo<'a> {
    MessageInfo {
        receiver: Cow::Borrowed("<UNKNOWN>"),
        ..m.clone()
    }
}
