//! Greylisting with postgrey 1.37's semantics (RFC 6647 describes the technique).
//!
//! A triplet (client network, normalised sender, recipient) seen for the first time is
//! deferred; a retry after `delay` passes, and from then on the triplet passes at once. The
//! rules, in the order postgrey applies them (`smtpd_access_policy`):
//! 1. whitelisted clients ([`ClientWhitelist`]) and recipients ([`RecipientWhitelist`]) pass;
//! 2. an auto-whitelisted client (`auto_whitelist_clients` deliveries counted, at most one per
//!    hour, keyed by its full address) passes and its last-seen time is refreshed hourly;
//! 3. the triplet record is updated ([`crate::store::TripletRecord::touched`]: new, retry
//!    window expired, first-in-the-future) and the remaining time `delay - (now - first)`
//!    decides: positive means `DEFER_IF_PERMIT` with the greylist text;
//! 4. the first pass after a real delay counts towards the client's auto-whitelist and adds
//!    `X-Greylist:` once per message (tracked by `instance`); later passes are `DUNNO`.
//!
//! This module holds the settings and the key; the request flow lives in
//! [`crate::policy`], which owns the store and clock. No Postfix attribute names here.

mod date;
mod sender;
mod whitelist;

pub use date::header_date_utc;
pub use sender::normalise_sender;
pub use whitelist::{ClientWhitelist, RecipientWhitelist, WhitelistError};

pub(crate) use whitelist::canonical_ip;

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::store::{GreylistKey, GreylistTimes};

/// The default reply text; `%s` becomes the seconds left, `%r` the recipient domain (postgrey's
/// `--greylist-text` placeholders). postgrey's own default (`Greylisted, see
/// http://postgrey.schweikert.ch/help/%r.html`) points at postgrey's web site and hides the
/// remaining time; administrators who want it verbatim set `[greylist] text`.
pub const DEFAULT_GREYLIST_TEXT: &str = "Greylisted, please try again in %s seconds";

/// Validated greylisting settings (the binary builds them from `[greylist]`).
#[derive(Debug, Clone)]
pub struct GreylistSettings {
    /// postgrey `--delay` (default 300 s).
    pub delay: Duration,
    /// postgrey `--retry-window` (default 2 days).
    pub retry_window: Duration,
    /// postgrey `--max-age` (default 35 days).
    pub max_age: Duration,
    /// postgrey `--auto-whitelist-clients` (default 5); 0 turns the client AWL off.
    pub auto_whitelist_clients: u32,
    /// postgrey `--ipv4cidr` (default 24).
    pub ipv4_prefix: u8,
    /// postgrey `--ipv6cidr` (default 64).
    pub ipv6_prefix: u8,
    pub whitelist_clients: ClientWhitelist,
    pub whitelist_recipients: RecipientWhitelist,
    /// postgrey `--greylist-text`, with `%s` (seconds left) and `%r` (recipient domain).
    pub greylist_text: String,
    /// Whether to add the `X-Greylist:` header on the first pass after a delay.
    pub header: bool,
    /// The host name in the `X-Greylist:` header (postgrey `--hostname`).
    pub hostname: String,
    /// Key the triplet on the SPF-verified sender domain instead of the client network when
    /// SPF passed for the MAIL FROM domain (what postgrey lacks: a provider's rotating pool
    /// passes on its first retry from any address). Default on; needs `[spf]`.
    pub spf_domain_key: bool,
}

impl Default for GreylistSettings {
    fn default() -> Self {
        GreylistSettings {
            delay: Duration::from_secs(300),
            retry_window: Duration::from_secs(2 * 86_400),
            max_age: Duration::from_secs(35 * 86_400),
            auto_whitelist_clients: 5,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            whitelist_clients: ClientWhitelist::default(),
            whitelist_recipients: RecipientWhitelist::default(),
            greylist_text: DEFAULT_GREYLIST_TEXT.to_owned(),
            header: true,
            hostname: "localhost".to_owned(),
            spf_domain_key: true,
        }
    }
}

impl GreylistSettings {
    /// The time parameters as the store rules take them.
    pub fn times(&self) -> GreylistTimes {
        GreylistTimes {
            delay: self.delay.as_secs(),
            retry_window: self.retry_window.as_secs(),
            max_age: self.max_age.as_secs(),
        }
    }

    /// The client network of the triplet: the address masked to `ipv4_prefix` /
    /// `ipv6_prefix` (postgrey's default subnet lookup; IPv4-mapped IPv6 counts as IPv4).
    /// Prefixes above the address width are clamped.
    pub fn client_network(&self, ip: IpAddr) -> IpAddr {
        let ip = canonical_ip(ip);
        let prefix = match ip {
            IpAddr::V4(_) => self.ipv4_prefix.min(32),
            IpAddr::V6(_) => self.ipv6_prefix.min(128),
        };
        IpNet::new(ip, prefix).map_or(ip, |n| n.network())
    }

    /// The triplet key: `lc "<network>/<normalised sender>/<recipient>"` (postgrey). IPv6
    /// networks are written in RFC 5952 form; keys are never compared with postgrey's own.
    pub fn key(&self, client_ip: IpAddr, sender: &str, recipient: &str) -> GreylistKey {
        let net = self.client_network(client_ip);
        let mut text = format!("{net}/{}/{recipient}", normalise_sender(sender));
        text.make_ascii_lowercase();
        GreylistKey::from_normalised(text)
    }

    /// The triplet key of a message whose sender domain passed SPF: the verified domain takes
    /// the client network's place (`"spf:<domain>/<normalised sender>/<recipient>"`; the
    /// `spf:` prefix keeps the two kinds of keys apart).
    pub fn domain_key(&self, domain: &str, sender: &str, recipient: &str) -> GreylistKey {
        let mut text = format!("spf:{domain}/{}/{recipient}", normalise_sender(sender));
        text.make_ascii_lowercase();
        GreylistKey::from_normalised(text)
    }

    /// The `DEFER_IF_PERMIT` text for `seconds_left` and `recipient`.
    ///
    /// postgrey replaces the first `%s` and the first `%r`, and prefixes `4.2.0 ` when the
    /// text does not start with a digit and the request carries `etrn_domain` (a workaround
    /// for Exchange, which treats 4.7.1 badly); Postfix >= 2.3 always sends `etrn_domain`,
    /// so mxguard always applies the prefix.
    pub fn defer_text(&self, seconds_left: u64, recipient: &str) -> String {
        let domain = recipient.rsplit_once('@').map_or(recipient, |(_, d)| d);
        let mut msg = self
            .greylist_text
            .replacen("%s", &seconds_left.to_string(), 1);
        msg = msg.replacen("%r", domain, 1);
        if !msg.starts_with(|c: char| c.is_ascii_digit()) {
            msg.insert_str(0, "4.2.0 ");
        }
        msg
    }

    /// The header for `PREPEND`: postgrey's `X-Greylist: delayed %t seconds by postgrey-%v at
    /// %h; %d` with mxguard's name and no version. The date is UTC (the engine has no time zone).
    pub fn header_text(&self, delayed: u64, now: crate::clock::UnixTime) -> String {
        format!(
            "X-Greylist: delayed {delayed} seconds by mxguard at {}; {}",
            self.hostname,
            header_date_utc(now)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixTime;

    #[test]
    fn defer_text_placeholders_and_status_prefix() {
        let gl = GreylistSettings::default();
        assert_eq!(
            gl.defer_text(300, "bob@Example.ORG"),
            "4.2.0 Greylisted, please try again in 300 seconds"
        );
        let gl = GreylistSettings {
            greylist_text: "Greylisted, see http://postgrey.schweikert.ch/help/%r.html".into(),
            ..GreylistSettings::default()
        };
        assert_eq!(
            gl.defer_text(300, "bob@Example.ORG"),
            "4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/Example.ORG.html"
        );
        let gl = GreylistSettings {
            greylist_text: "4.7.1 wait %s s for %r, %s".into(),
            ..GreylistSettings::default()
        };
        // Only the first %s is replaced (postgrey's s/// without /g); no prefix when the text
        // already starts with a status code.
        assert_eq!(
            gl.defer_text(42, "a@b.example"),
            "4.7.1 wait 42 s for b.example, %s"
        );
    }

    #[test]
    fn header_names_host_delay_and_date() {
        let gl = GreylistSettings {
            hostname: "mx1.example".into(),
            ..GreylistSettings::default()
        };
        assert_eq!(
            gl.header_text(301, UnixTime(0)),
            "X-Greylist: delayed 301 seconds by mxguard at mx1.example; Thu, 01 Jan 1970 00:00:00 UTC"
        );
    }

    #[test]
    fn network_prefixes_are_clamped_and_mapped() {
        let gl = GreylistSettings {
            ipv4_prefix: 40,
            ipv6_prefix: 48,
            ..GreylistSettings::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(gl.client_network(ip("192.0.2.77")), ip("192.0.2.77"));
        assert_eq!(gl.client_network(ip("2001:db8:1:2::5")), ip("2001:db8:1::"));
        let d = GreylistSettings::default();
        assert_eq!(d.client_network(ip("::ffff:192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(
            d.key(ip("192.0.2.77"), "Bounce-12@X.example", "Bob@Y.example")
                .as_str(),
            "192.0.2.0/bounce-#@x.example/bob@y.example"
        );
    }
}
