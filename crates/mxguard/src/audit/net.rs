//! Network lists in configurations: Postfix `mynetworks`-style lists (`127.0.0.0/8
//! [::1]/128 hash:/etc/postfix/net`), Dovecot `login_trusted_networks`, fail2ban `ignoreip`.
//! Classifies each entry as loopback, private (RFC 1918, CGNAT RFC 6598, ULA RFC 4193,
//! link-local) or public, and spots "everything" ranges. Table references and host names are
//! kept as unknown entries; nothing here resolves names.

use std::net::IpAddr;

use ipnet::IpNet;

/// One entry of a network list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEntry {
    /// A literal address or prefix.
    Net(IpNet),
    /// `type:table`, a file name or a host name: cannot be judged from configuration alone.
    Other(String),
}

/// Parses `1.2.3.4`, `1.2.3.0/24`, `[::1]/128`, `[2001:db8::]/32`, `::1`, `0/0` (Postfix
/// shorthand). Leading `!` (exclusion) entries return `None`: they narrow the list.
pub fn parse_entry(token: &str) -> Option<NetEntry> {
    let t = token.trim().trim_end_matches(',');
    if t.is_empty() || t.starts_with('!') {
        return None;
    }
    let t2 = t.replace(['[', ']'], "");
    if t2 == "0/0" {
        return "0.0.0.0/0".parse().ok().map(NetEntry::Net);
    }
    if let Ok(net) = t2.parse::<IpNet>() {
        return Some(NetEntry::Net(net.trunc()));
    }
    if let Ok(ip) = t2.parse::<IpAddr>() {
        return Some(NetEntry::Net(IpNet::from(ip)));
    }
    Some(NetEntry::Other(t.to_string()))
}

/// All entries of a list separated by whitespace and commas.
pub fn entries(list: &str) -> Vec<NetEntry> {
    list.split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(parse_entry)
        .collect()
}

const PRIVATE: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "::ffff:127.0.0.0/104",
    "::ffff:10.0.0.0/104",
    "::ffff:172.16.0.0/108",
    "::ffff:192.168.0.0/112",
];

/// Whether the whole prefix lies in loopback or private space.
pub fn is_private(net: &IpNet) -> bool {
    PRIVATE
        .iter()
        .filter_map(|p| p.parse::<IpNet>().ok())
        .any(|p| p.contains(net))
}

/// Whether the prefix is loopback only.
pub fn is_loopback(net: &IpNet) -> bool {
    ["127.0.0.0/8", "::1/128", "::ffff:127.0.0.0/104"]
        .iter()
        .filter_map(|p| p.parse::<IpNet>().ok())
        .any(|p| p.contains(net))
}

/// Whether the prefix covers (nearly) the whole Internet: /0, or shorter than /8 for IPv4
/// (shorter than /16 for IPv6).
pub fn is_everything(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.prefix_len() < 8,
        IpNet::V6(n) => n.prefix_len() < 16,
    }
}

/// Public (non-private) literal prefixes of a list.
pub fn public_nets(list: &str) -> Vec<IpNet> {
    entries(list)
        .into_iter()
        .filter_map(|e| match e {
            NetEntry::Net(n) if !is_private(&n) => Some(n),
            _ => None,
        })
        .collect()
}

/// "Wide": covering the Internet, or a public prefix shorter than `min_public_len` (IPv4;
/// IPv6 gets +32).
pub fn wide_nets(list: &str, min_public_len: u8) -> Vec<IpNet> {
    entries(list)
        .into_iter()
        .filter_map(|e| match e {
            NetEntry::Net(n) if is_everything(&n) => Some(n),
            NetEntry::Net(IpNet::V4(n))
                if !is_private(&IpNet::V4(n)) && n.prefix_len() < min_public_len =>
            {
                Some(IpNet::V4(n))
            }
            NetEntry::Net(IpNet::V6(n))
                if !is_private(&IpNet::V6(n))
                    && n.prefix_len() < min_public_len.saturating_add(32) =>
            {
                Some(IpNet::V6(n))
            }
            _ => None,
        })
        .collect()
}

/// Shows a list of prefixes.
pub fn show(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let list = "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128 192.168.1.0/24 203.0.113.0/24 hash:/x 0/0";
        let e = entries(list);
        assert_eq!(e.len(), 7);
        assert!(matches!(&e[5], NetEntry::Other(s) if s == "hash:/x"));
        assert_eq!(show(&public_nets(list)), "203.0.113.0/24 0.0.0.0/0");
        assert_eq!(show(&wide_nets(list, 16)), "0.0.0.0/0");
        assert_eq!(show(&wide_nets("203.0.0.0/12", 16)), "203.0.0.0/12");
        assert!(is_private(&"172.18.0.0/16".parse().unwrap()));
        assert!(!is_private(&"172.32.0.0/16".parse().unwrap()));
        assert!(public_nets("[fe80::]/64 fd00::/8").is_empty());
    }
}
