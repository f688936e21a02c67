//! The rule catalog: id, default severity, title, why (documentation reference or CVE) and the
//! standard fix of every audit rule, in one table so `--list-rules`, `--explain` and
//! docs/audit.md come from the same text. The checks themselves live in `rules`; a finding may
//! raise or lower the default severity where the rule's text says so.
//!
//! Ids and conditions follow the researched catalog (shared notes, audit-rules.md); defaults are
//! those of Postfix 3.7.11 and Dovecot 2.3.19 on Debian 12.

use super::Severity;

/// Description of one rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    /// Stable id (`PF-OPEN-RELAY-PERMIT`).
    pub id: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// One-line title.
    pub title: &'static str,
    /// Why it matters, with the reference.
    pub why: &'static str,
    /// The standard fix.
    pub fix: &'static str,
}

/// Looks up a rule by id (case-insensitive).
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id.eq_ignore_ascii_case(id.trim()))
}

const fn r(
    id: &'static str,
    severity: Severity,
    title: &'static str,
    why: &'static str,
    fix: &'static str,
) -> RuleInfo {
    RuleInfo {
        id,
        severity,
        title,
        why,
        fix,
    }
}

use Severity::{Critical as C, High as H, Info as I, Low as L, Medium as M};

/// Every rule, grouped by component.
pub static RULES: &[RuleInfo] = &[
    // ---- Postfix: relay control
    r(
        "PF-OPEN-RELAY-PERMIT",
        C,
        "Unconditional permit before the relay check: open relay",
        "postconf(5) smtpd_relay_restrictions; SMTPD_ACCESS_README: evaluation stops at the first permit, and Postfix's own startup check (smtpd_check.c) does not look at the order, so 'permit' before reject_unauth_destination relays mail for anyone.",
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination (anti-spam checks go to smtpd_recipient_restrictions)",
    ),
    r(
        "PF-OPEN-RELAY-MYNETWORKS-ANY",
        C,
        "mynetworks covers the whole Internet and is permitted to relay",
        "postconf(5) mynetworks: 'trusted remote SMTP clients that have more privileges than strangers'; with 0.0.0.0/0 (or a prefix shorter than /8) and permit_mynetworks before reject_unauth_destination every client relays.",
        "mynetworks = 127.0.0.0/8 [::1]/128 (add only specific internal hosts; roaming users authenticate with SASL)",
    ),
    r(
        "PF-MYNETWORKS-PUBLIC",
        H,
        "mynetworks contains public addresses",
        "postconf(5) mynetworks: every host in a public range may relay without authentication; on hosting providers the neighbouring addresses belong to other customers (seed 001: 'the best mynetworks is only localhost').",
        "mynetworks = 127.0.0.0/8 [::1]/128 plus individual internal relay hosts; make everyone else use SASL on port 587",
    ),
    r(
        "PF-MYNETWORKS-STYLE-SUBNET",
        M,
        "mynetworks unset with mynetworks_style = subnet trusts the whole LAN",
        "COMPATIBILITY_README: the default changed from subnet to host (compatibility_level 2) because subnet trusts every host on the attached networks; on a public server that is the provider's subnet.",
        "mynetworks = 127.0.0.0/8 [::1]/128 (or mynetworks_style = host)",
    ),
    r(
        "PF-MYNETWORKS-STYLE-CLASS",
        H,
        "mynetworks_style = class trusts whole class A/B/C networks",
        "postconf(5) mynetworks_style: class trusts the entire class A/B/C network of every interface, i.e. thousands of foreign hosts may relay.",
        "mynetworks = 127.0.0.0/8 [::1]/128",
    ),
    r(
        "PF-RELAY-SAFETY-NET-OFF",
        M,
        "smtpd_relay_restrictions is empty: no relay safety net",
        "COMPATIBILITY_README: smtpd_relay_restrictions was added in 2.10 as a safety net against mistakes in smtpd_recipient_restrictions; with compatibility_level < 1 or an explicit empty value any OK from an access map or policy service relays.",
        "compatibility_level = 3.6 and smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    ),
    r(
        "PF-NO-RELAY-CONTROL",
        C,
        "No relay control at all: smtpd refuses to run",
        "Postfix smtpd_check.c: without one of reject_unauth_destination, defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains in the relay or recipient restrictions smtpd exits with a fatal error for every connection (no mail received).",
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    ),
    r(
        "PF-RELAY-ACCESS-MAP-BEFORE-DEST",
        H,
        "Access-map lookup before the relay check can authorise relaying",
        "SMTPD_ACCESS_README and access(5): an 'OK' result permits the request; placed before reject_unauth_destination it authorises relaying, and sender/HELO names are chosen by the attacker.",
        "move check_*_access lookups after reject_unauth_destination, or into smtpd_recipient_restrictions while smtpd_relay_restrictions keeps the relay decision",
    ),
    r(
        "PF-SASL-ANONYMOUS",
        H,
        "SASL allows anonymous logins",
        "postconf(5) smtpd_sasl_security_options (default noanonymous): without it an ANONYMOUS login counts as permit_sasl_authenticated, i.e. relay for anyone.",
        "smtpd_sasl_security_options = noanonymous (and smtpd_sasl_tls_security_options = noanonymous)",
    ),
    r(
        "PF-XCLIENT-AUTHORIZED-WIDE",
        H,
        "XCLIENT/XFORWARD authorised for wide or public networks",
        "XCLIENT_README: an authorised XCLIENT client can claim any client address, name or SASL login, including a mynetworks address: relay and log forgery.",
        "smtpd_authorized_xclient_hosts = <the exact address of your proxy>",
    ),
    r(
        "PF-PERMIT-MX-BACKUP",
        L,
        "permit_mx_backup accepts mail for any domain that lists this host as MX",
        "postconf(5) permit_mx_backup: anyone can point an MX record at you and make you accept (and later bounce) their mail; deprecated in favour of relay_domains.",
        "remove permit_mx_backup; list backup domains in relay_domains with relay_recipient_maps",
    ),
    r(
        "PF-RELAY-REINJECT-EXPOSED",
        H,
        "Content-filter return path listens on all interfaces",
        "FILTER_README: the re-injection smtpd (e.g. 10025) disables the normal checks and is meant to be bound to 127.0.0.1; reachable from outside it relays and bypasses the filter.",
        "bind it to loopback: 127.0.0.1:10025 inet n - n - - smtpd ... -o mynetworks=127.0.0.0/8",
    ),
    // ---- Postfix: SASL, submission, sender identity
    r(
        "PF-SASL-PLAINTEXT-NO-TLS",
        H,
        "SMTP AUTH offered over unencrypted connections",
        "postconf(5) smtpd_tls_auth_only: without it AUTH PLAIN/LOGIN passwords travel base64-encoded in clear text before STARTTLS.",
        "smtpd_tls_auth_only = yes (and -o smtpd_tls_security_level=encrypt on submission)",
    ),
    r(
        "PF-SASL-ON-PORT25",
        L,
        "SMTP AUTH enabled on port 25",
        "SASL_README recommends AUTH on submission (587/465) only; AUTH on 25 invites password spraying from botnets (seed 000: a thousand SASL attempts a minute).",
        "smtpd_sasl_auth_enable = no in main.cf; -o smtpd_sasl_auth_enable=yes on submission/submissions only",
    ),
    r(
        "PF-SUBMISSION-TLS-NOT-REQUIRED",
        M,
        "Submission service does not require TLS",
        "RFC 8314; the stock master.cf submission entry sets -o smtpd_tls_security_level=encrypt (and smtps -o smtpd_tls_wrappermode=yes).",
        "-o smtpd_tls_security_level=encrypt on submission (587), -o smtpd_tls_wrappermode=yes on submissions (465)",
    ),
    r(
        "PF-SENDER-SPOOF-AUTHENTICATED",
        H,
        "Authenticated users can send as any address",
        "postconf(5) smtpd_sender_login_maps / reject_sender_login_mismatch: without a login-mismatch check before permit_sasl_authenticated any (e.g. compromised, seed 001) account can send as any sender, including other users and other domains.",
        "smtpd_sender_login_maps = <map of address -> login>; -o smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject on submission",
    ),
    r(
        "PF-SENDER-LOGIN-MAPS-MISSING",
        M,
        "Login-mismatch check without smtpd_sender_login_maps",
        "postconf(5) reject_sender_login_mismatch depends on smtpd_sender_login_maps; without a map Postfix knows no address owners and the check cannot do its job.",
        "smtpd_sender_login_maps = hash:/etc/postfix/sender_login (or your SQL/LDAP map); generated configs may add it at start-up",
    ),
    r(
        "PF-SASL-AUTH-HEADER",
        I,
        "SASL login names are written into Received: headers",
        "postconf(5) smtpd_sasl_authenticated_header: reveals account names to every recipient (useful for tracing abuse, a privacy trade-off).",
        "smtpd_sasl_authenticated_header = no, unless you rely on it",
    ),
    r(
        "PF-BROKEN-SASL-CLIENTS",
        I,
        "broken_sasl_auth_clients is enabled",
        "postconf(5): only for Outlook Express 4 / Exchange 5.0 era clients; advertises AUTH twice.",
        "broken_sasl_auth_clients = no",
    ),
    // ---- Postfix: limits
    r(
        "PF-NO-CLIENT-RATE-LIMITS",
        M,
        "No per-client connection, message or recipient rate limits",
        "postconf(5) smtpd_client_*_rate_limit, anvil(8), TUNING_README: all three default to 0 (unlimited); one client can open connections and send without bound (seed 000 sets them).",
        "anvil_rate_time_unit = 60s, smtpd_client_connection_rate_limit = 30, smtpd_client_message_rate_limit = 100, smtpd_client_recipient_rate_limit = 200 (tune); per-account limits: mxguard [limits]",
    ),
    r(
        "PF-SASL-NO-OUTBOUND-LIMIT",
        H,
        "Nothing limits what an authenticated account may send",
        "Seed 001: a stolen SASL password relayed spam because nothing limited authenticated users; anvil limits are per IP, botnets rotate IPs, so per-account quotas need a policy service evaluated before permit_sasl_authenticated.",
        "run mxguard with per-account limits and put 'check_policy_service inet:127.0.0.1:10040' before permit_sasl_authenticated (or in smtpd_end_of_data_restrictions)",
    ),
    r(
        "PF-CONN-COUNT-UNLIMITED",
        M,
        "Unlimited simultaneous connections per client",
        "postconf(5) smtpd_client_connection_count_limit: with 0 one client can occupy every smtpd process (default_process_limit 100): denial of service.",
        "smtpd_client_connection_count_limit = 10 (default 50)",
    ),
    r(
        "PF-AUTH-RATE-LIMIT-UNSET",
        L,
        "No limit on AUTH attempts per client",
        "postconf(5) smtpd_client_auth_rate_limit (Postfix >= 3.1, default 0): limits AUTH commands per client per time unit and slows password guessing.",
        "-o smtpd_client_auth_rate_limit=10 on the services that offer AUTH",
    ),
    r(
        "PF-EVENT-LIMIT-EXCEPTIONS-WIDE",
        M,
        "Rate-limit exceptions cover public networks",
        "postconf(5) smtpd_client_event_limit_exceptions (default $mynetworks): listed clients bypass every anvil limit.",
        "smtpd_client_event_limit_exceptions = 127.0.0.0/8 [::1]/128 (internal relays only)",
    ),
    r(
        "PF-ERROR-LIMITS-LAX",
        L,
        "Error limits do not slow down or disconnect misbehaving clients",
        "postconf(5) smtpd_error_sleep_time, smtpd_soft_error_limit, smtpd_hard_error_limit: they slow down and disconnect clients that make errors (dictionary attacks, RCPT probing, AUTH failures); seed 000 sets 1s/10/20.",
        "smtpd_error_sleep_time = 1s, smtpd_soft_error_limit = 10, smtpd_hard_error_limit = 20",
    ),
    r(
        "PF-RECIPIENT-LIMIT-HIGH",
        L,
        "Very high or unlimited recipients per message",
        "postconf(5) smtpd_recipient_limit (default 1000): huge values help spam runs from a stolen account.",
        "smtpd_recipient_limit = 1000 (100 on submission)",
    ),
    r(
        "PF-ANVIL-TIME-UNIT-CHANGED",
        I,
        "anvil_rate_time_unit is not 60s",
        "postconf(5) anvil_rate_time_unit: every *_rate_limit is counted per this unit; read the limits accordingly.",
        "none required; keep in mind when reading rate limits",
    ),
    // ---- Postfix: protocol hygiene
    r(
        "PF-HELO-NOT-REQUIRED",
        L,
        "HELO/EHLO is not required",
        "postconf(5) smtpd_helo_required: when clients may skip HELO, the HELO restrictions never run (seed 002).",
        "smtpd_helo_required = yes",
    ),
    r(
        "PF-HELO-NO-CHECKS",
        L,
        "No HELO syntax checks on port 25",
        "postconf(5) reject_invalid_helo_hostname / reject_non_fqdn_helo_hostname are cheap filters against bots (seed 002).",
        "smtpd_helo_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
    ),
    r(
        "PF-HELO-UNKNOWN-HOSTNAME",
        I,
        "reject_unknown_helo_hostname rejects some legitimate servers",
        "postconf(5) reject_unknown_helo_hostname: legitimate servers whose HELO name has no A/MX record are rejected; know the false-positive risk.",
        "consider warn_if_reject reject_unknown_helo_hostname first",
    ),
    r(
        "PF-STRICT-RFC821-OFF",
        I,
        "strict_rfc821_envelopes is off",
        "postconf(5) strict_rfc821_envelopes: requiring <>-bracketed addresses blocks some bots but also some broken legitimate clients (seed 002 enables it).",
        "strict_rfc821_envelopes = yes if your clients cope",
    ),
    r(
        "PF-UNAUTH-PIPELINING-ALLOWED",
        L,
        "Clients may pipeline commands without PIPELINING",
        "postconf(5) reject_unauth_pipelining: rejects spamware that talks ahead; also the short-term SMTP smuggling workaround (seed 002 uses it).",
        "smtpd_data_restrictions = reject_unauth_pipelining",
    ),
    r(
        "PF-VRFY-ENABLED",
        L,
        "VRFY lets anyone probe for valid addresses",
        "postconf(5) disable_vrfy_command (default no): VRFY discloses which addresses exist (address harvesting).",
        "disable_vrfy_command = yes",
    ),
    r(
        "PF-BANNER-VERSION",
        L,
        "SMTP banner reveals the software version",
        "postconf(5) smtpd_banner: a version in the greeting helps attackers pick known CVEs.",
        "smtpd_banner = $myhostname ESMTP",
    ),
    r(
        "PF-BANNER-NO-HOSTNAME",
        L,
        "SMTP banner does not start with the host name",
        "RFC 5321 section 4.3.1 and postconf(5) smtpd_banner: the greeting must start with the server's fully qualified name ($myhostname).",
        "smtpd_banner = $myhostname ESMTP",
    ),
    r(
        "PF-BACKSCATTER-NO-RECIPIENT-VALIDATION",
        H,
        "Mail for unknown recipients is accepted and bounced later (backscatter)",
        "LOCAL_RECIPIENT_README, BACKSCATTER_README: accepting mail for non-existent users and bouncing it afterwards sends bounces to forged senders and gets the server blacklisted.",
        "leave local_recipient_maps at its default (or set it to your user maps), keep smtpd_reject_unlisted_recipient = yes, set relay_recipient_maps for relay_domains",
    ),
    r(
        "PF-DELAY-REJECT-OFF",
        L,
        "smtpd_delay_reject = no runs client/HELO checks before AUTH",
        "postconf(5) smtpd_delay_reject: with no, permit_sasl_authenticated in client/HELO restrictions never matches (AUTH has not happened yet) and rejections hit logged-in users.",
        "smtpd_delay_reject = yes (default)",
    ),
    r(
        "PF-SMTP-SMUGGLING",
        H,
        "Vulnerable to SMTP smuggling (CVE-2023-51764)",
        "CVE-2023-51764, www.postfix.org/smtp-smuggling.html, postconf(5) smtpd_forbid_bare_newline: accepting <LF>.<CR><LF> as end of data lets an attacker smuggle a second, spoofed message through other providers. Default 'no' before Postfix 3.9; the parameter exists since 3.5.23/3.6.13/3.7.9/3.8.4, 'normalize' since 3.5.24/3.6.14/3.7.10/3.8.5.",
        "smtpd_forbid_bare_newline = normalize and smtpd_forbid_bare_newline_exclusions = $mynetworks (Postfix >= 3.7.10; upgrade older patch levels)",
    ),
    r(
        "PF-SMUGGLING-EXCLUSIONS-WIDE",
        M,
        "SMTP smuggling protection excluded for public networks",
        "postconf(5) smtpd_forbid_bare_newline_exclusions (default $mynetworks): listed clients keep the vulnerable behaviour.",
        "smtpd_forbid_bare_newline_exclusions = 127.0.0.0/8 [::1]/128",
    ),
    r(
        "PF-MESSAGE-SIZE-UNLIMITED",
        M,
        "Unlimited (or huge) message size",
        "postconf(5) message_size_limit (default 10240000): unlimited sizes allow disk and queue exhaustion.",
        "message_size_limit = 52428800 (25-50 MB is typical)",
    ),
    r(
        "PF-MAILBOX-LT-MESSAGE-SIZE",
        M,
        "mailbox_size_limit is smaller than message_size_limit",
        "local(8)/virtual(8) refuse to deliver when the mailbox limit is below the message limit (fatal configuration error): local delivery stops.",
        "mailbox_size_limit = 0, or at least message_size_limit",
    ),
    r(
        "PF-COMPAT-LEVEL-LEGACY",
        I,
        "Legacy compatibility_level: old, less safe defaults",
        "COMPATIBILITY_README: below level 2 Postfix keeps legacy defaults (empty smtpd_relay_restrictions below 1, mynetworks_style = subnet, relay_domains = $mydestination).",
        "compatibility_level = 3.6 (after reviewing `postfix` compatibility warnings)",
    ),
    r(
        "PF-SOFT-BOUNCE",
        I,
        "soft_bounce = yes turns hard errors into retries",
        "postconf(5) soft_bounce: meant for testing; the queue fills with mail that will never be delivered.",
        "soft_bounce = no",
    ),
    r(
        "PF-DEBUG-PEER",
        I,
        "Verbose debugging is enabled",
        "postconf(5) debug_peer_list and master(8) -v: verbose logs include message data and credentials of matched peers.",
        "debug_peer_list = (empty) and no -v in master.cf",
    ),
    // ---- Postfix: TLS
    r(
        "PF-TLS-NOT-OFFERED",
        M,
        "SMTP server does not offer STARTTLS",
        "postconf(5) smtpd_tls_security_level (default empty = no TLS): mail and any AUTH travel in clear text.",
        "smtpd_tls_security_level = may (port 25), -o smtpd_tls_security_level=encrypt on submission, with a certificate",
    ),
    r(
        "PF-TLS-NO-CERT",
        M,
        "TLS enabled without a server certificate",
        "TLS_README: without smtpd_tls_chain_files or smtpd_tls_cert_file the server cannot do TLS (logs 'no server certificate'); encrypt and wrapper-mode services then fail entirely.",
        "smtpd_tls_chain_files = /etc/letsencrypt/live/<host>/privkey.pem /etc/letsencrypt/live/<host>/fullchain.pem",
    ),
    r(
        "XX-TLS-SNAKEOIL-CERT",
        L,
        "Self-signed default certificate in use",
        "Debian installs a self-signed snakeoil certificate (Postfix) and /etc/dovecot/private/dovecot.pem (Dovecot); mail clients warn or users learn to click through, which enables password interception. Opportunistic port 25 TLS does not authenticate anyway (low).",
        "use a certificate from a public CA (e.g. Let's Encrypt) for the names your clients connect to",
    ),
    r(
        "PF-TLS-MANDATORY-PROTOCOLS-WEAK",
        M,
        "Mandatory TLS allows deprecated protocol versions",
        "RFC 8996 deprecates TLS 1.0/1.1; POODLE (CVE-2014-3566) for SSLv3. postconf(5) smtpd_tls_mandatory_protocols applies to encrypt-level and wrapper-mode services (submission).",
        "smtpd_tls_mandatory_protocols = >=TLSv1.2",
    ),
    r(
        "PF-TLS-PROTOCOLS-SSLV3",
        M,
        "Opportunistic TLS still allows SSLv2/SSLv3",
        "TLS_README: for opportunistic TLS weak-but-encrypted beats plain text, so TLSv1/1.1 on port 25 are acceptable; SSLv3 is not (POODLE, CVE-2014-3566).",
        "smtpd_tls_protocols = >=TLSv1 (or !SSLv2, !SSLv3)",
    ),
    r(
        "PF-TLS-CIPHERS-WEAK",
        M,
        "Weak TLS cipher grade",
        "postconf(5) smtpd_tls_mandatory_ciphers / smtpd_tls_ciphers: export/low/null grades enable broken ciphers (RC4 RFC 7465, SWEET32 CVE-2016-2183).",
        "smtpd_tls_mandatory_ciphers = high, smtpd_tls_ciphers = medium",
    ),
    r(
        "PF-TLS-OBSOLETE-PARAMS",
        I,
        "Obsolete TLS parameters in use",
        "postconf(5) marks smtpd_use_tls, smtpd_enforce_tls and smtp_use_tls obsolete in favour of *_tls_security_level; mixing both is confusing.",
        "replace with smtpd_tls_security_level / smtp_tls_security_level",
    ),
    r(
        "PF-TLS-WRAPPERMODE-PORT",
        L,
        "Implicit-TLS (wrapper mode) setting does not match the port",
        "RFC 8314: port 465 uses implicit TLS, port 587 STARTTLS; a mismatch makes clients fail to connect.",
        "-o smtpd_tls_wrappermode=yes on 465 only",
    ),
    // ---- Postfix: postscreen, DNSBL, policy, milters
    r(
        "PF-POSTSCREEN-DNSBL-THRESHOLD-UNREACHABLE",
        M,
        "postscreen DNSBL threshold can never be reached",
        "POSTSCREEN_README and postconf(5) postscreen_dnsbl_threshold: a client is blocked when its combined score reaches the threshold; if the weights cannot add up to it, DNSBLs never block.",
        "weight an accurate list to reach the threshold alone: postscreen_dnsbl_sites = zen.spamhaus.org*3 ..., postscreen_dnsbl_threshold = 3",
    ),
    r(
        "PF-DNSBL-DEAD-LIST",
        M,
        "Retired DNS blocklist configured",
        "SORBS (2024), AHBL (2015), NJABL (2013), CBL (merged into Spamhaus XBL) and SpamCannibal are shut down: dead lists waste DNS time or answer 'listed' for everything and reject all mail.",
        "remove the list; use zen.spamhaus.org (DQS key when using public resolvers)",
    ),
    r(
        "PF-POSTSCREEN-ENFORCE-NONE",
        I,
        "postscreen only logs (all actions are 'ignore')",
        "POSTSCREEN_README: with postscreen_dnsbl_action and postscreen_greet_action = ignore (defaults) postscreen only measures.",
        "postscreen_greet_action = enforce, postscreen_dnsbl_action = enforce (after watching the logs)",
    ),
    r(
        "PF-POSTSCREEN-NOT-ENABLED",
        I,
        "postscreen settings present but postscreen does not run",
        "POSTSCREEN_README: postscreen must replace smtpd on 'smtp inet' in master.cf; otherwise postscreen_* parameters have no effect.",
        "master.cf: smtp inet n - y - 1 postscreen, smtpd pass - - y - - smtpd, dnsblog and tlsproxy services",
    ),
    r(
        "PF-POSTSCREEN-NO-PASS-SERVICE",
        H,
        "postscreen has no 'smtpd pass' service to hand clients to",
        "POSTSCREEN_README 'Turning on postscreen(8) without blocking mail': postscreen hands clients to the smtpd pass service; without it (or without dnsblog/tlsproxy when needed) clients that pass are dropped.",
        "master.cf: smtpd pass - - y - - smtpd, dnsblog unix - - y - 0 dnsblog, tlsproxy unix - - y - 0 tlsproxy",
    ),
    r(
        "PF-RBL-ON-SUBMISSION",
        M,
        "DNSBL checks run before authentication on submission",
        "Spamhaus PBL lists dynamic/residential addresses that may send authenticated mail; a reject_rbl_client before permit_sasl_authenticated on submission rejects roaming users.",
        "on submission: -o smtpd_client_restrictions=permit_sasl_authenticated,reject; put RBL checks after permit_sasl_authenticated",
    ),
    r(
        "PF-RDNS-BEFORE-MYNETWORKS",
        L,
        "Reverse-DNS check runs before permit_mynetworks: internal hosts without PTR are rejected",
        "Seed 003: internal 10.x senders have no reverse DNS and were scored RDNS_NONE; postconf(5) reject_unknown_client_hostname / reject_unknown_reverse_client_hostname placed before permit_mynetworks reject your own private-network clients.",
        "put permit_mynetworks (and permit_sasl_authenticated) before reject_unknown_*client_hostname",
    ),
    r(
        "PF-POLICY-DEFAULT-ACTION-FAILOPEN",
        M,
        "Rate-limit policy service fails open",
        "postconf(5) smtpd_policy_service_default_action (default 451 4.3.5): DUNNO/OK means an attacker who overloads or crashes the policy daemon loses all limits.",
        "keep the default (tempfail) for rate-limit policies; DUNNO is acceptable for greylisting/SPF",
    ),
    r(
        "PF-POLICY-AFTER-PERMIT",
        I,
        "Policy service placed after a permit: some clients skip it",
        "SMTPD_ACCESS_README: evaluation stops at the first permit; a check_policy_service after permit_sasl_authenticated/permit_mynetworks never sees those clients. Right for greylisting/SPF, wrong for outbound rate limits.",
        "put rate-limit policies (mxguard) before permit_sasl_authenticated; leave greylisting after it",
    ),
    r(
        "PF-MILTER-DEFAULT-ACCEPT",
        I,
        "Mail passes unfiltered when the milter is down",
        "postconf(5) milter_default_action: accept lets mail through unsigned/unscanned while the milter (DKIM, rspamd) is unavailable; tempfail is stricter.",
        "milter_default_action = tempfail if filtering must never be skipped",
    ),
    // ---- Dovecot: authentication
    r(
        "DV-PASSDB-STATIC-NOPASSWORD",
        C,
        "Static passdb with nopassword: any password logs in",
        "Seed 002: a leftover 'passdb { driver = static; args = nopassword=y }' (added for managesieve) let every account log in over IMAP with any password. Dovecot docs, Password databases / Static: nopassword accepts any password; meant for proxies only.",
        "delete the block, or restrict it to a proxy: args = proxy=y host=<backend> nopassword=y (with allow_nets= of the proxy)",
    ),
    r(
        "DV-PASSDB-STATIC-SHARED-PASSWORD",
        H,
        "Static passdb: one password valid for every user name",
        "Dovecot docs, Static passdb: password=<literal> is accepted for any user name that reaches this passdb.",
        "use a real passdb (passwd-file, sql, ldap, pam)",
    ),
    r(
        "DV-PLAINTEXT-AUTH-ALLOWED",
        H,
        "Plaintext authentication allowed without TLS",
        "Dovecot docs disable_plaintext_auth (2.3) / auth_allow_cleartext (2.4): allows LOGIN/AUTH PLAIN over unencrypted connections: passwords can be sniffed.",
        "disable_plaintext_auth = yes (2.3) / auth_allow_cleartext = no (2.4), ssl = required",
    ),
    r(
        "DV-SSL-DISABLED",
        H,
        "Dovecot TLS is disabled",
        "Dovecot docs ssl: with ssl = no IMAP/POP3 logins and mail travel in clear text.",
        "ssl = required with ssl_cert/ssl_key",
    ),
    r(
        "DV-AUTH-MECH-PLAIN-NO-TLS",
        H,
        "PLAIN/LOGIN mechanisms usable without encryption",
        "PLAIN and LOGIN send the password base64-encoded; without TLS (ssl = no or plaintext auth allowed) it is readable on the wire.",
        "ssl = required and disable_plaintext_auth = yes",
    ),
    r(
        "DV-AUTH-MECH-WEAK",
        M,
        "Weak or dangerous authentication mechanisms enabled",
        "Dovecot docs Authentication mechanisms: CRAM-MD5/DIGEST-MD5 need plaintext-equivalent stored passwords (DIGEST-MD5 deprecated by RFC 6331), NTLM/RPA/OTP/APOP are weak, ANONYMOUS logs anyone in.",
        "auth_mechanisms = plain login (over TLS only)",
    ),
    r(
        "DV-LOGIN-TRUSTED-NETWORKS-WIDE",
        H,
        "login_trusted_networks covers wide or public networks",
        "Dovecot docs login_trusted_networks: clients there may claim any source IP (ID/XCLIENT/HAProxy), count as secured (plaintext auth allowed), and the forged IP is what auth penalties and fail2ban see.",
        "login_trusted_networks = <your proxy / webmail hosts only>",
    ),
    r(
        "DV-AUTH-POLICY-NOT-SET",
        L,
        "No brute-force protection for Dovecot/SMTP logins",
        "Dovecot docs Authentication policy support: without auth_policy_server_url only auth_failure_delay slows guessing; seed 000 saw about a thousand SASL attempts a minute. Postfix SASL authenticates through Dovecot, so one endpoint covers IMAP, POP3 and SMTP AUTH.",
        "run mxguard's auth policy endpoint: auth_policy_server_url = http://127.0.0.1:10041/ with auth_policy_hash_nonce = <random> (or fail2ban dovecot + postfix-sasl jails)",
    ),
    r(
        "DV-AUTH-POLICY-NONCE-MISSING",
        M,
        "auth_policy_server_url without auth_policy_hash_nonce: Dovecot will not start",
        "doveconf 2.3: 'auth_policy_hash_nonce must be set when policy server is used' (Fatal).",
        "auth_policy_hash_nonce = <output of: openssl rand -hex 32>",
    ),
    r(
        "DV-AUTH-FAILURE-DELAY-LOW",
        L,
        "auth_failure_delay below the 2 s default",
        "Dovecot docs auth_failure_delay (default 2 secs): the delay before answering a failed login slows password guessing.",
        "auth_failure_delay = 2 secs",
    ),
    r(
        "DV-AUTH-PENALTY-DISABLED",
        L,
        "Dovecot's per-IP auth penalty is disabled",
        "Dovecot anvil auth penalty slows repeated failures per IP; setting the anvil-auth-penalty listener mode to 0 turns it off (only sensible behind a proxy that limits logins).",
        "remove the anvil-auth-penalty mode = 0 override",
    ),
    r(
        "DV-AUTH-CACHE-DISABLED",
        I,
        "Auth cache disabled with a database passdb",
        "Dovecot docs Authentication/Caching: with auth_cache_size = 0 every login, including brute force, hits the SQL/LDAP server (seed 000 tunes the cache).",
        "auth_cache_size = 10M, auth_cache_ttl = 5 min, auth_cache_negative_ttl = 1 min",
    ),
    r(
        "DV-AUTH-CACHE-TTL-LONG",
        L,
        "Auth cache TTL longer than one hour",
        "Dovecot docs auth_cache_ttl: changed or revoked passwords keep working from the cache until the TTL expires (the cache is also used after the TTL when the database fails); seed 000 suggests 'very high TTLs' for speed.",
        "auth_cache_ttl = 1 hour or less (5 min is common); auth_cache_negative_ttl <= 1 hour",
    ),
    r(
        "DV-AUTH-VERBOSE-PASSWORDS",
        M,
        "Passwords are written to the logs",
        "Dovecot docs auth_verbose_passwords / auth_debug_passwords: plain writes failed passwords into the log (sha1:6-style truncated hashes are safe).",
        "auth_verbose_passwords = no (or sha1:6), auth_debug_passwords = no",
    ),
    r(
        "DV-AUTH-DEBUG",
        L,
        "Debug logging enabled",
        "Dovecot docs auth_debug / mail_debug / verbose_ssl: noisy logs containing user data.",
        "auth_debug = no, mail_debug = no, verbose_ssl = no",
    ),
    r(
        "DV-AUTH-USERNAME-CHARS-EMPTY",
        L,
        "auth_username_chars is empty: any character accepted in user names",
        "Dovecot docs auth_username_chars: an extra check against quote-escaping attacks on SQL/LDAP lookups; empty allows everything.",
        "remove the override (default a-zA-Z0-9.-_@)",
    ),
    r(
        "DV-MASTER-USER-ENABLED",
        I,
        "Master-user passdb enabled",
        "Dovecot docs Master users: a master user can log in as any user; protect the master password file.",
        "keep the master passwd file mode 0600 and the list short",
    ),
    // ---- Dovecot: TLS, listeners, privileges
    r(
        "DV-SSL-MIN-PROTOCOL-WEAK",
        M,
        "Dovecot accepts deprecated TLS versions",
        "RFC 8996 deprecates TLS 1.0/1.1; SSLv3 is broken (POODLE, CVE-2014-3566). Dovecot 2.3.15+ defaults to TLSv1.2.",
        "ssl_min_protocol = TLSv1.2",
    ),
    r(
        "DV-SSL-CIPHERS-WEAK",
        L,
        "Dovecot cipher list enables weak ciphers",
        "RC4 (RFC 7465), 3DES (SWEET32, CVE-2016-2183), EXPORT and NULL ciphers are broken.",
        "remove ssl_cipher_list (use the default) or exclude !RC4:!3DES:!EXPORT:!NULL:!aNULL",
    ),
    r(
        "DV-LISTEN-ALL",
        I,
        "Dovecot listens on all interfaces",
        "Dovecot docs listen (default *, ::): if Dovecot only serves local webmail and Postfix SASL, binding to loopback removes the attack surface (seed 000 restricts imap/pop3 listener addresses).",
        "listen = 127.0.0.1, ::1 (or the public address only where clients connect)",
    ),
    r(
        "DV-INTERNAL-LISTENER-EXPOSED",
        M,
        "Internal Dovecot service reachable from the network",
        "auth (SASL oracle for brute force), doveadm (full mailbox access), quota-status (user enumeration), lmtp (delivery that bypasses Postfix filters) are internal protocols; an inet_listener without address inherits listen = *.",
        "address = 127.0.0.1 in that inet_listener (or the private interface), and firewall the port",
    ),
    r(
        "DV-DOVEADM-PASSWORD-WEAK",
        H,
        "doveadm is reachable over TCP with a weak password",
        "Dovecot docs doveadm_password: doveadm over TCP can read and delete any mailbox.",
        "doveadm_password = <openssl rand -hex 32>, listener on a private address",
    ),
    r(
        "DV-AUTH-MASTER-SOCKET-OPEN",
        M,
        "auth-master/auth-userdb socket is world-accessible",
        "Dovecot 10-master.conf: users with access to this socket can list all user names and read everyone's userdb (auth-master also passdb) lookups.",
        "mode = 0600 and user = vmail on unix_listener auth-master",
    ),
    r(
        "DV-FIRST-VALID-UID-ZERO",
        M,
        "first_valid_uid/gid = 0 lets mail processes run as root",
        "Dovecot docs first_valid_uid: mail processes refuse UIDs below it; 0 lets a userdb answer uid=0.",
        "first_valid_uid = <vmail uid> (default 500)",
    ),
    r(
        "DV-MAIL-PRIVILEGED-GROUP-DANGEROUS",
        H,
        "Mail processes get a privileged group",
        "Dovecot docs mail_privileged_group / mail_access_groups: the group is granted to mail processes; root, wheel, adm, sudo, shadow or disk give them system-wide access. 'mail' (Debian default for /var/mail locking) is info only.",
        "mail_privileged_group = mail (or empty)",
    ),
    r(
        "DV-MAIL-FSYNC-NEVER",
        L,
        "mail_fsync = never risks losing mail on a crash",
        "Dovecot docs mail_fsync (default optimized): never skips fsync for speed (seed 000 performance tuning); mail acknowledged to the sender can vanish after a power loss.",
        "mail_fsync = optimized",
    ),
    r(
        "DV-MAX-USERIP-HIGH",
        I,
        "Many connections allowed per user and IP",
        "Dovecot docs mail_max_userip_connections (default 10): high values let one account exhaust processes; fine behind webmail proxies.",
        "mail_max_userip_connections = 10-50",
    ),
    r(
        "DV-LOGIN-SERVICE-COUNT-ZERO",
        I,
        "Login processes in high-performance mode (service_count = 0)",
        "Dovecot docs Login processes: service_count = 0 (seed 000 tuning) lets one login process serve many connections; a bug in it exposes other users' sessions (high-security mode is service_count = 1).",
        "service_count = 1 unless you need the performance mode; then set process_min_avail and vsz_limit",
    ),
    // ---- Cross-component
    r(
        "XC-SASL-SOCKET-MISMATCH",
        M,
        "Postfix SASL path does not match a Dovecot auth listener",
        "SASL_README 'Dovecot SASL configuration': smtpd_sasl_path (relative to queue_directory) must name Dovecot's auth unix_listener; otherwise AUTH fails and users cannot send.",
        "service auth { unix_listener /var/spool/postfix/private/auth { mode = 0660 user = postfix group = postfix } }",
    ),
    r(
        "XC-LMTP-SOCKET-MISMATCH",
        M,
        "Postfix LMTP transport does not match a Dovecot lmtp listener",
        "Dovecot LMTP server docs: virtual_transport/mailbox_transport = lmtp:unix:private/dovecot-lmtp needs service lmtp { unix_listener /var/spool/postfix/private/dovecot-lmtp }; otherwise mail is deferred.",
        "service lmtp { unix_listener /var/spool/postfix/private/dovecot-lmtp { mode = 0600 user = postfix group = postfix } }",
    ),
    // ---- fail2ban
    r(
        "F2B-NO-POSTFIX-SASL-JAIL",
        M,
        "No fail2ban jail for Postfix SASL failures",
        "fail2ban jail.conf ships [postfix-sasl] disabled; seed 000 enables postfix[mode=auth] after a brute-force wave.",
        "[postfix-sasl] enabled = true, filter = postfix[mode=auth] (or mxguard's log jails / auth policy endpoint)",
    ),
    r(
        "F2B-NO-DOVECOT-JAIL",
        M,
        "No fail2ban jail for Dovecot login failures",
        "fail2ban jail.conf ships [dovecot] disabled; seed 000 enables dovecot[mode=aggressive].",
        "[dovecot] enabled = true (or mxguard's auth policy endpoint)",
    ),
    r(
        "F2B-NO-RECIDIVE",
        L,
        "No recidive jail for repeat offenders",
        "fail2ban [recidive]: repeat offenders come back after bantime; seed 000 bans twice-jailed IPs for a year.",
        "[recidive] enabled = true, bantime = 1w, findtime = 1d (or mxguard bantime.increment)",
    ),
    r(
        "F2B-IGNOREIP-WIDE",
        M,
        "fail2ban ignoreip exempts wide public networks",
        "fail2ban jail.conf ignoreip: listed addresses are never banned; a wide public range exempts attackers too.",
        "ignoreip = 127.0.0.1/8 ::1 <your own hosts>",
    ),
    r(
        "SA-TRUSTED-NETWORKS-UNSET",
        L,
        "SpamAssassin does not know the internal networks",
        "Seed 003: RDNS_NONE and DNSBL rules fired on mail from private 10.x hops because SpamAssassin guessed the trust boundary; Mail::SpamAssassin::Conf trusted_networks/internal_networks.",
        "local.cf: trusted_networks 10.0.0.0/8 (your relays' private ranges) and internal_networks the same",
    ),
    // ---- mxguard wiring
    r(
        "MX-POLICY-NOT-WIRED",
        M,
        "mxguard policy service is configured but Postfix does not call it",
        "PRODUCT.md: mxguard's limits, greylisting and containment act only when Postfix asks the policy service (check_policy_service) in its restriction lists.",
        "smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:10040, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    ),
    r(
        "MX-NO-ACCOUNT-LIMIT",
        M,
        "mxguard runs without a per-account (sasl_username) limit",
        "Seed 001/003 incident: a stolen SASL password sent spam because nothing limited authenticated users; mxguard counts per account only for a [[limit]] keyed on sasl_username (PRODUCT.md capability 1).",
        "add [[limit]] name = \"per-account\", key = [\"sasl_username\"], count = \"recipients\", rate = [\"100/1h\", \"500/1d\"] to mxguard.toml",
    ),
    r(
        "MX-AUTH-POLICY-NOT-WIRED",
        M,
        "mxguard auth policy endpoint is configured but Dovecot does not call it",
        "Dovecot docs Authentication policy support: Dovecot only asks a policy server named in auth_policy_server_url.",
        "auth_policy_server_url = http://127.0.0.1:10041/ and auth_policy_hash_nonce = <random>",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_unique_and_well_formed() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate rule id");
        assert!(n >= 50, "only {n} rules");
        for r in RULES {
            assert!(
                r.id.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                r.id
            );
            assert!(
                !r.why.is_empty() && !r.fix.is_empty() && !r.title.is_empty(),
                "{}",
                r.id
            );
        }
        assert!(rule_info("pf-vrfy-enabled").is_some());
    }
}
