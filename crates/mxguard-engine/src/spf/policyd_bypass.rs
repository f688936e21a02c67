//! policyd-spf's bypass lists (`spf_engine._spfbypass`), checked before any SPF check:
//! `skip_addresses`, `Whitelist`, `Domain_Whitelist`, `HELO_Whitelist`, `Domain_Whitelist_PTR`,
//! in that order. Each match names the `X-Comment:` text policyd-spf prepends instead of a
//! `Received-SPF:` header. Called by [`super::policyd_spf::PolicydSpf::decide`] only.

use std::net::IpAddr;

use ipnet::IpNet;

use super::policyd_spf::{MessageInfo, PolicydSpf};
use super::{SpfQuery, SpfResult};
use crate::dns::Resolver;

impl PolicydSpf {
    /// The `X-Comment:` text of the first bypass list the client is on, if any.
    pub(super) async fn bypass(
        &self,
        resolver: &dyn Resolver,
        m: &MessageInfo<'_>,
    ) -> Option<&'static str> {
        let ip = m.client_ip;
        let canonical = ip.to_canonical();
        let in_list = |list: &[IpNet]| {
            list.iter()
                .any(|n| n.contains(&ip) || n.contains(&canonical))
        };
        if in_list(&self.skip_addresses) {
            return Some("SPF check N/A for local connections");
        }
        if in_list(&self.whitelist) {
            return Some("SPF skipped for whitelisted relay");
        }
        for domain in &self.domain_whitelist {
            let q = SpfQuery {
                ip: canonical,
                helo: domain,
                sender: &format!("postmaster@{domain}"),
                now: m.now,
            };
            if self.checker.check_mail_from(resolver, &q).await.result == SpfResult::Pass {
                return Some("SPF skipped for whitelisted relay domain");
            }
        }
        let helo_listed = self.helo_whitelist.iter().any(|h| {
            h.trim_end_matches('.')
                .eq_ignore_ascii_case(m.helo.trim_end_matches('.'))
        });
        if helo_listed && resolves_to(resolver, &m.helo, canonical).await {
            return Some("SPF skipped for whitelisted HELO domain");
        }
        if !self.domain_whitelist_ptr.is_empty() {
            for name in validated_ptr_names(resolver, canonical).await {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let listed = self.domain_whitelist_ptr.iter().any(|d| {
                    let d = d.trim_end_matches('.').to_ascii_lowercase();
                    name == d || name.ends_with(&format!(".{d}"))
                });
                if listed {
                    return Some("SPF skipped for PTR whitelisted relay domain");
                }
            }
        }
        None
    }
}

/// Whether `name`'s A (or AAAA) records include `ip`; lookup errors count as no.
async fn resolves_to(resolver: &dyn Resolver, name: &str, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => resolver
            .a(name)
            .await
            .is_ok_and(|l| l.records().contains(&v4)),
        IpAddr::V6(v6) => resolver
            .aaaa(name)
            .await
            .is_ok_and(|l| l.records().contains(&v6)),
    }
}

/// The client's PTR names (first 10) that resolve back to it.
async fn validated_ptr_names(resolver: &dyn Resolver, ip: IpAddr) -> Vec<String> {
    let names = match resolver.ptr(ip).await {
        Ok(l) => l.records().to_vec(),
        Err(_) => return Vec::new(),
    };
    let mut validated = Vec::new();
    for name in names.into_iter().take(10) {
        if resolves_to(resolver, &name, ip).await {
            validated.push(name);
        }
    }
    validated
}
