//! Rate limits and quotas (postfwd's `rate/rcpt/size(item/max/secs/action)`, policyd-rate-limit's
//! multi-window limits), with GCRA per window ([`gcra`]).
//!
//! A [`Limit`] names a key (one or more request fields: `sasl_username`, `client_address`, a
//! client prefix, `sender`, `sender_domain`, `recipient_domain`), what it counts
//! ([`Counted`]), one or more windows (`rate = ["50/1h", "200/1d"]`), per-key overrides and
//! the [`Action`] on breach. What is charged when (docs/limits.md):
//! - RCPT: the remaining budget is *checked* (nothing charged) with the cost the message has
//!   so far: 1 message, the distinct recipients accepted so far in this message (plus-address
//!   extensions stripped, so `bob+a@` and `bob+b@` count once), or the `SIZE=` bytes;
//! - END-OF-MESSAGE: the accepted mail is charged with `recipient_count` (capped by the
//!   distinct recipients seen) and the real `size`; rejected or aborted mail never gets here,
//!   so it is never charged;
//! - CONNECT: `connections` limits charge one per connection request.
//!
//! The per-message bookkeeping lives in [`instances`]; the step the policy runs in
//! [`guard::Guard`]. Validation of the config lives in the binary (`config/limits.rs`).

pub mod gcra;
pub mod guard;
pub mod instances;

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::request::Request;
use crate::verdict::Action;
pub use gcra::Window;
pub use guard::Guard;

/// One field of a limit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    SaslUsername,
    ClientAddress,
    /// The client network: IPv4 masked to `v4` bits, IPv6 to `v6` bits.
    ClientPrefix {
        v4: u8,
        v6: u8,
    },
    Sender,
    SenderDomain,
    RecipientDomain,
}

impl KeyPart {
    /// The part's value for a request (and, for `recipient_domain`, a recipient), lowercased;
    /// `None` when the request lacks it (the limit then does not apply, as policyd advises
    /// for `SASLUsername` on unauthenticated mail).
    pub fn value(&self, req: &Request, recipient: &str) -> Option<String> {
        let v = match self {
            KeyPart::SaslUsername => req.sasl_username.as_deref()?.trim().to_lowercase(),
            KeyPart::ClientAddress => req.client_ip.to_string(),
            KeyPart::ClientPrefix { v4, v6 } => prefix(req.client_ip, *v4, *v6).to_string(),
            KeyPart::Sender => req.sender.trim().to_lowercase(),
            KeyPart::SenderDomain => domain(&req.sender)?.to_owned(),
            KeyPart::RecipientDomain => domain(recipient)?.to_owned(),
        };
        (!v.is_empty()).then_some(v)
    }

    /// Whether the part depends on the recipient (charged per recipient domain).
    pub fn per_recipient(&self) -> bool {
        matches!(self, KeyPart::RecipientDomain)
    }
}

/// `ip` masked to its prefix (IPv4 `v4`, IPv6 `v6` bits).
pub fn prefix(ip: IpAddr, v4: u8, v6: u8) -> IpNet {
    let len = if ip.is_ipv4() { v4 } else { v6 };
    IpNet::new(ip, len).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
}

/// The domain part of an address, lowercased; `None` without `@`.
pub fn domain(addr: &str) -> Option<String> {
    let d = addr.trim().rsplit_once('@')?.1.trim_end_matches('.');
    (!d.is_empty()).then(|| d.to_lowercase())
}

/// A recipient as it counts: lowercased, `+extension` removed from the local part (Postfix
/// `recipient_delimiter = +`), so one mailbox addressed twice is one recipient.
pub fn normalise_recipient(addr: &str) -> String {
    let a = addr.trim().to_lowercase();
    match a.rsplit_once('@') {
        Some((local, dom)) => {
            let base = local.split_once('+').map_or(local, |(b, _)| b);
            let base = if base.is_empty() { local } else { base };
            format!("{base}@{dom}")
        }
        None => a,
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Messages,
    Recipients,
    Bytes,
    /// Connection-stage requests (anvil's `smtpd_client_connection_rate_limit`).
    Connections,
}

impl Counted {
    pub fn as_str(self) -> &'static str {
        match self {
            Counted::Messages => "messages",
            Counted::Recipients => "recipients",
            Counted::Bytes => "bytes",
            Counted::Connections => "connections",
        }
    }
}

/// The windows that apply to one key value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budget {
    Windows(Vec<Window>),
    /// This key is exempt (override `"unlimited"`).
    Unlimited,
}

/// One configured limit (`[[limit]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Unique name; part of the state key, shown in logs and reply texts.
    pub name: String,
    pub key: Vec<KeyPart>,
    pub counted: Counted,
    pub windows: Vec<Window>,
    /// Per-key-value budgets (the key value as [`Limit::key_value`] spells it).
    pub overrides: HashMap<String, Budget>,
    /// The answer on breach; its text may hold `%n` (limit name) and `%s` (seconds to wait).
    pub action: Action,
    /// Whether a breach counts as a containment signal for the SASL user.
    pub signal: bool,
}

impl Limit {
    /// The key value for `req` (and `recipient` for per-recipient parts): the parts joined
    /// with `/`, or `None` if one is missing.
    pub fn key_value(&self, req: &Request, recipient: &str) -> Option<String> {
        let mut out = String::new();
        for (i, p) in self.key.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&p.value(req, recipient)?);
        }
        Some(out)
    }

    /// Whether the key depends on the recipient.
    pub fn per_recipient(&self) -> bool {
        self.key.iter().any(KeyPart::per_recipient)
    }

    /// The budget for a key value.
    pub fn budget(&self, value: &str) -> Budget {
        match self.overrides.get(value) {
            Some(b) => b.clone(),
            None => Budget::Windows(self.windows.clone()),
        }
    }

    /// The store key for a key value: name and value, NUL-separated (neither holds NUL).
    pub fn store_key(&self, value: &str) -> String {
        format!("limit\0{}\0{}", self.name, value)
    }

    /// The breach answer with `%n` and `%s` substituted.
    pub fn breach_action(&self, retry_after: u64) -> Action {
        let fill = |t: &str| {
            let secs = if retry_after == u64::MAX {
                "never".to_owned()
            } else {
                retry_after.to_string()
            };
            t.replace("%n", &self.name).replace("%s", &secs)
        };
        match &self.action {
            Action::Defer(t) => Action::Defer(fill(t)),
            Action::Reject(t) => Action::Reject(fill(t)),
            Action::Hold(t) => Action::Hold(fill(t)),
            Action::Reply(t) => Action::Reply(fill(t)),
            Action::DeferIfPermit(t) => Action::DeferIfPermit(fill(t)),
            other => other.clone(),
        }
    }
}

/// Validated limit settings: every `[[limit]]`, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitSettings {
    pub limits: Vec<Limit>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_normalisation() {
        let mut r = Request::rcpt(
            "192.0.2.77".parse().unwrap(),
            "Alice@Example.ORG",
            "bob+x@dest.test",
        );
        r.sasl_username = Some("Alice".into());
        let p = KeyPart::ClientPrefix { v4: 24, v6: 64 };
        assert_eq!(p.value(&r, "").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(
            KeyPart::SenderDomain.value(&r, "").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            KeyPart::RecipientDomain.value(&r, "x@D.test").as_deref(),
            Some("d.test")
        );
        assert_eq!(KeyPart::RecipientDomain.value(&r, ""), None);
        assert_eq!(normalise_recipient("Bob+a@Dest.test"), "bob@dest.test");
        assert_eq!(normalise_recipient("+x@d"), "+x@d");
        let l = Limit {
            name: "u".into(),
            key: vec![KeyPart::SaslUsername, KeyPart::ClientAddress],
            counted: Counted::Messages,
            windows: vec![Window::new(1, 60)],
            overrides: HashMap::new(),
            action: Action::Defer("%n over, wait %ss".into()),
            signal: true,
        };
        assert_eq!(l.key_value(&r, "").as_deref(), Some("alice/192.0.2.77"));
        r.sasl_username = None;
        assert_eq!(l.key_value(&r, ""), None);
        assert_eq!(
            l.breach_action(72),
            Action::Defer("u over, wait 72s".into())
        );
    }
}
