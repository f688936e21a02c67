//! `[auth_policy]`: the Dovecot auth-policy endpoint (`auth_policy_server_url`). The raw
//! serde struct (`deny_unknown_fields`, values `Spanned`) and its validation into
//! [`AuthPolicy`] (listener settings) plus the engine's [`AuthSettings`] (decision settings).
//! Called by `validate.rs` with a callback that records each error with its file position.
//! The table's absence turns the endpoint off (docs/auth-policy.md).

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use ipnet::IpNet;
use mxguard_engine::auth::AuthSettings;
use serde::Deserialize;
use toml::Spanned;

use super::parse_duration;

/// `[auth_policy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthPolicyConfig {
    pub listen: Option<Spanned<String>>,
    /// Dovecot `auth_policy_server_api_header`: `"Name: value"`, or a bare value meaning
    /// `X-API-Key: value` (Dovecot's own rule).
    pub api_header: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
    /// Deadline for one answer; past it the answer is 0 (allow), as Dovecot would do itself.
    pub answer_timeout: Option<Spanned<String>>,
    pub window: Option<Spanned<String>>,
    pub ipv4_prefix: Option<Spanned<i64>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    pub tarpit_after: Option<Spanned<i64>>,
    pub tarpit_step: Option<Spanned<String>>,
    pub tarpit_max: Option<Spanned<String>>,
    pub ban_after: Option<Spanned<i64>>,
    pub prefix_ban_after: Option<Spanned<i64>>,
    pub login_tarpit_after: Option<Spanned<i64>>,
    pub ban_time: Option<Spanned<String>>,
    pub ban_max: Option<Spanned<String>>,
    pub exempt: Vec<Spanned<String>>,
    pub reject_text: Option<Spanned<String>>,
    pub alert_new_logins: Option<Spanned<i64>>,
    pub alert_logins_per_ip: Option<Spanned<i64>>,
    pub alert_ips_per_login: Option<Spanned<i64>>,
    pub max_tracked: Option<Spanned<i64>>,
}

/// Validated `[auth_policy]`.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub listen: SocketAddr,
    /// Header name (lowercase) and exact value every request must carry.
    pub api_header: Option<(String, String)>,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub answer_timeout: Duration,
    pub settings: AuthSettings,
}

type Err<'a> = &'a mut dyn FnMut(Range<usize>, String);

fn int(err: Err<'_>, v: &Option<Spanned<i64>>, key: &str, range: Range<i64>, dflt: i64) -> i64 {
    match v {
        None => dflt,
        Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            err(
                v.span(),
                format!(
                    "[auth_policy] {key} = {} is out of range {}..={}",
                    v.get_ref(),
                    range.start,
                    range.end - 1
                ),
            );
            dflt
        }
    }
}

fn secs(err: Err<'_>, v: &Option<Spanned<String>>, key: &str, dflt: Duration) -> Duration {
    match v {
        None => dflt,
        Some(v) => parse_duration(v.get_ref()).unwrap_or_else(|e| {
            err(v.span(), format!("[auth_policy] {key}: {e}"));
            dflt
        }),
    }
}

/// Splits Dovecot's `auth_policy_server_api_header` value the way Dovecot does: `Name: value`,
/// or a bare value sent as `X-API-Key: value`.
pub fn split_api_header(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match s.split_once(':') {
        Some((name, value))
            if !name.trim().is_empty()
                && name
                    .trim()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        }
        _ => Some(("x-api-key".to_owned(), s.to_owned())),
    }
}

/// Validates `[auth_policy]`; `None` when the table is absent.
pub fn validate(raw: Option<&AuthPolicyConfig>, err: Err<'_>) -> Option<AuthPolicy> {
    let raw = raw?;
    let d = AuthSettings::default();
    let listen = match &raw.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 10041)),
        Some(l) => l.get_ref().parse().unwrap_or_else(|_| {
            err(
                l.span(),
                format!("[auth_policy] listen: {:?} is not IP:PORT", l.get_ref()),
            );
            SocketAddr::from(([127, 0, 0, 1], 10041))
        }),
    };
    let api_header = raw.api_header.as_ref().and_then(|h| {
        let v = split_api_header(h.get_ref());
        if v.as_ref().is_none_or(|(_, value)| value.is_empty()) {
            err(
                h.span(),
                "[auth_policy] api_header: expected \"Name: value\" or a bare value".to_owned(),
            );
        }
        v
    });
    let max_body_bytes = int(
        err,
        &raw.max_body_bytes,
        "max_body_bytes",
        256..1_048_577,
        16_384,
    );
    let max_connections = int(
        err,
        &raw.max_connections,
        "max_connections",
        1..1_000_001,
        1024,
    );
    let answer_timeout = secs(
        err,
        &raw.answer_timeout,
        "answer_timeout",
        Duration::from_millis(500),
    );
    if answer_timeout >= Duration::from_secs(2)
        && let Some(v) = &raw.answer_timeout
    {
        err(
            v.span(),
            "[auth_policy] answer_timeout must stay below Dovecot's 2s request timeout".to_owned(),
        );
    }
    let window = secs(err, &raw.window, "window", Duration::from_secs(d.window)).as_secs();
    if window == 0
        && let Some(v) = &raw.window
    {
        err(
            v.span(),
            "[auth_policy] window must be at least 1s".to_owned(),
        );
    }
    let u32_of = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let tarpit_step = secs(err, &raw.tarpit_step, "tarpit_step", Duration::from_secs(1));
    let tarpit_max = secs(err, &raw.tarpit_max, "tarpit_max", Duration::from_secs(15));
    if tarpit_max > Duration::from_secs(60)
        && let Some(v) = &raw.tarpit_max
    {
        err(
            v.span(),
            "[auth_policy] tarpit_max above 60s holds Dovecot auth processes too long".to_owned(),
        );
    }
    let ban_time = secs(
        err,
        &raw.ban_time,
        "ban_time",
        Duration::from_secs(d.ban_time),
    );
    let ban_max = secs(err, &raw.ban_max, "ban_max", Duration::from_secs(d.ban_max));
    if ban_max < ban_time
        && let Some(v) = &raw.ban_max
    {
        err(
            v.span(),
            "[auth_policy] ban_max is shorter than ban_time".to_owned(),
        );
    }
    let mut exempt = Vec::new();
    for e in &raw.exempt {
        let text = e.get_ref().trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match net {
            Ok(n) => exempt.push(n.trunc()),
            Err(_) => err(
                e.span(),
                format!("[auth_policy] exempt: {text:?} is not an IP address or CIDR network"),
            ),
        }
    }
    let reject_text = match &raw.reject_text {
        None => d.reject_text.clone(),
        Some(t) => {
            let s = t.get_ref();
            if s.len() > 200 || s.chars().any(char::is_control) {
                err(
                    t.span(),
                    "[auth_policy] reject_text: at most 200 characters, no control characters"
                        .to_owned(),
                );
            }
            s.clone()
        }
    };
    let max_set = mxguard_engine::auth::state::MAX_SET as i64;
    let settings = AuthSettings {
        window: window.max(1),
        ipv4_prefix: int(err, &raw.ipv4_prefix, "ipv4_prefix", 8..33, 24) as u8,
        ipv6_prefix: int(err, &raw.ipv6_prefix, "ipv6_prefix", 16..129, 64) as u8,
        tarpit_after: u32_of(int(err, &raw.tarpit_after, "tarpit_after", 0..1_000_001, 3)),
        tarpit_step: u32_of(tarpit_step.as_secs() as i64),
        tarpit_max: u32_of(tarpit_max.as_secs() as i64),
        ban_after: u32_of(int(err, &raw.ban_after, "ban_after", 0..1_000_001, 10)),
        prefix_ban_after: u32_of(int(
            err,
            &raw.prefix_ban_after,
            "prefix_ban_after",
            0..1_000_001,
            50,
        )),
        login_tarpit_after: u32_of(int(
            err,
            &raw.login_tarpit_after,
            "login_tarpit_after",
            0..1_000_001,
            20,
        )),
        ban_time: ban_time.as_secs().max(1),
        ban_max: ban_max.as_secs().max(1),
        exempt,
        reject_text,
        alert_new_logins: u32_of(int(
            err,
            &raw.alert_new_logins,
            "alert_new_logins",
            0..1_000_001,
            50,
        )),
        alert_logins_per_ip: u32_of(int(
            err,
            &raw.alert_logins_per_ip,
            "alert_logins_per_ip",
            0..max_set + 1,
            10,
        )),
        alert_ips_per_login: u32_of(int(
            err,
            &raw.alert_ips_per_login,
            "alert_ips_per_login",
            0..max_set + 1,
            10,
        )),
        max_tracked: int(
            err,
            &raw.max_tracked,
            "max_tracked",
            1000..100_000_001,
            1_000_000,
        ) as usize,
    };
    Some(AuthPolicy {
        listen,
        api_header,
        max_body_bytes: max_body_bytes as usize,
        max_connections: max_connections as usize,
        answer_timeout,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_header_follows_dovecot() {
        assert_eq!(
            split_api_header("X-API-Key: s3cret"),
            Some(("x-api-key".into(), "s3cret".into()))
        );
        assert_eq!(
            split_api_header("Authorization: Basic d2ZvcmNlOnB3"),
            Some(("authorization".into(), "Basic d2ZvcmNlOnB3".into()))
        );
        assert_eq!(
            split_api_header("bare-secret"),
            Some(("x-api-key".into(), "bare-secret".into()))
        );
        assert_eq!(split_api_header("  "), None);
    }
}
