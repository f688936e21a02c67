//! Built-in defaults of the Postfix parameters the audit reads, as `postconf -d` prints them
//! for Postfix 3.7.11 (Debian 12), with the `compatibility_level` switches of
//! COMPATIBILITY_README and the defaults changed in 3.9 (`smtpd_forbid_bare_newline`,
//! `smtpd_forbid_unauth_pipelining`). A parameter left out of main.cf is judged by this value.
//! Defaults that Postfix computes from the host (`mynetworks`, `myhostname`) are `None`: the
//! audit may run on another machine than the one whose configuration it reads.

/// A Postfix release or compatibility level as `(major, minor, patch)`.
pub type Version = (u32, u32, u32);

/// Parses `3.7.11`, `3.6`, `2`; anything after the numbers (`-RC1`, ` (Debian)`) is ignored.
pub fn parse_version(s: &str) -> Option<Version> {
    let mut nums = [0u32; 3];
    let mut count = 0;
    for part in s.trim().split('.').take(3) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        nums[count] = digits.parse().ok()?;
        count += 1;
        if digits.len() != part.len() {
            break;
        }
    }
    (count > 0).then_some((nums[0], nums[1], nums[2]))
}

/// The default of `name`, for the given compatibility level and (if known) Postfix version.
pub fn default_value(
    name: &str,
    compat: Version,
    version: Option<Version>,
) -> Option<&'static str> {
    let v39 = version.is_some_and(|v| v >= (3, 9, 0));
    let value = match name {
        // COMPATIBILITY_README: relay safety net, mynetworks_style and relay_domains changed
        // with compatibility_level 1 and 2.
        "smtpd_relay_restrictions" if compat < (1, 0, 0) => "",
        "smtpd_relay_restrictions" => {
            "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
        }
        "mynetworks_style" if compat < (2, 0, 0) => "subnet",
        "mynetworks_style" => "host",
        "relay_domains" if compat < (2, 0, 0) => "$mydestination",
        "relay_domains" => "",
        // CVE-2023-51764: the parameter exists since 3.5.23/3.6.13/3.7.9/3.8.4 with default
        // "no"; 3.9 changed the default to "normalize" (postconf(5)).
        "smtpd_forbid_bare_newline" if v39 => "normalize",
        "smtpd_forbid_bare_newline" => "no",
        "smtpd_forbid_bare_newline_exclusions" => "$mynetworks",
        "smtpd_forbid_unauth_pipelining" if v39 => "yes",
        "smtpd_forbid_unauth_pipelining" => "no",
        "smtpd_recipient_restrictions"
        | "smtpd_client_restrictions"
        | "smtpd_helo_restrictions"
        | "smtpd_sender_restrictions"
        | "smtpd_data_restrictions"
        | "smtpd_end_of_data_restrictions"
        | "smtpd_etrn_restrictions"
        | "smtpd_restriction_classes"
        | "smtpd_tls_security_level"
        | "smtpd_tls_cert_file"
        | "smtpd_tls_key_file"
        | "smtpd_tls_eccert_file"
        | "smtpd_tls_chain_files"
        | "smtpd_tls_exclude_ciphers"
        | "smtpd_tls_mandatory_exclude_ciphers"
        | "smtpd_sender_login_maps"
        | "smtpd_authorized_xclient_hosts"
        | "smtpd_authorized_xforward_hosts"
        | "debug_peer_list"
        | "smtpd_milters"
        | "relay_recipient_maps"
        | "mailbox_transport"
        | "smtpd_discard_ehlo_keywords"
        | "smtpd_upstream_proxy_protocol"
        | "postscreen_dnsbl_sites"
        | "smtpd_client_connection_limit_exceptions"
        | "content_filter"
        | "receive_override_options"
        | "mynetworks" => return default_computed(name),
        "smtpd_tls_protocols" | "smtpd_tls_mandatory_protocols" => ">=TLSv1",
        "smtpd_tls_ciphers" | "smtpd_tls_mandatory_ciphers" => "medium",
        "smtpd_tls_auth_only"
        | "smtpd_sasl_auth_enable"
        | "smtpd_helo_required"
        | "strict_rfc821_envelopes"
        | "disable_vrfy_command"
        | "broken_sasl_auth_clients"
        | "smtpd_sasl_authenticated_header"
        | "smtpd_tls_wrappermode"
        | "soft_bounce"
        | "smtpd_use_tls"
        | "smtpd_enforce_tls" => "no",
        "smtpd_sasl_security_options" => "noanonymous",
        "smtpd_sasl_tls_security_options" => "$smtpd_sasl_security_options",
        "smtpd_client_connection_rate_limit"
        | "smtpd_client_message_rate_limit"
        | "smtpd_client_recipient_rate_limit"
        | "smtpd_client_new_tls_session_rate_limit"
        | "smtpd_client_auth_rate_limit" => "0",
        "smtpd_client_connection_count_limit" => "50",
        "anvil_rate_time_unit" => "60s",
        "smtpd_client_event_limit_exceptions" => {
            "${smtpd_client_connection_limit_exceptions:$mynetworks}"
        }
        "smtpd_error_sleep_time" => "1s",
        "smtpd_soft_error_limit" => "10",
        // `${stress?{1}:{20}}`: 20 outside overload.
        "smtpd_hard_error_limit" => "20",
        "smtpd_banner" => "$myhostname ESMTP $mail_name",
        "mail_name" => "Postfix",
        "local_recipient_maps" => "proxy:unix:passwd.byname $alias_maps",
        "alias_maps" => "hash:/etc/aliases, nis:mail.aliases",
        "smtpd_reject_unlisted_recipient" | "smtpd_delay_reject" => "yes",
        "message_size_limit" => "10240000",
        "mailbox_size_limit" => "51200000",
        "smtpd_recipient_limit" => "1000",
        "postscreen_dnsbl_threshold" => "1",
        "postscreen_dnsbl_action" | "postscreen_greet_action" => "ignore",
        "postscreen_access_list" => "permit_mynetworks",
        "smtpd_policy_service_default_action" => "451 4.3.5 Server configuration problem",
        "milter_default_action" => "tempfail",
        "mydestination" => "$myhostname, localhost.$mydomain, localhost",
        "smtpd_sasl_type" => "cyrus",
        "smtpd_sasl_path" => "smtpd",
        "queue_directory" => "/var/spool/postfix",
        "virtual_transport" => "virtual",
        "inet_interfaces" => "all",
        "compatibility_level" => "0",
        _ => return None,
    };
    Some(value)
}

/// Parameters whose default is empty, except `mynetworks` (computed from the interfaces).
fn default_computed(name: &str) -> Option<&'static str> {
    (name != "mynetworks").then_some("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("3.7.11"), Some((3, 7, 11)));
        assert_eq!(parse_version("3.6"), Some((3, 6, 0)));
        assert_eq!(parse_version("2"), Some((2, 0, 0)));
        assert_eq!(parse_version("3.10-20250101"), Some((3, 10, 0)));
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn compat_switches_relay_default() {
        assert_eq!(
            default_value("smtpd_relay_restrictions", (0, 0, 0), None),
            Some("")
        );
        assert!(
            default_value("smtpd_relay_restrictions", (3, 6, 0), None)
                .is_some_and(|v| v.contains("defer_unauth_destination"))
        );
        assert_eq!(default_value("mynetworks", (3, 6, 0), None), None);
        assert_eq!(
            default_value("smtpd_forbid_bare_newline", (3, 6, 0), Some((3, 9, 1))),
            Some("normalize")
        );
    }
}
