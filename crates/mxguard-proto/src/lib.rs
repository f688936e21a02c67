//! Wire formats of mxguard, with no I/O: the Postfix policy delegation protocol
//! (SMTPD_POLICY_README) and Dovecot's auth-policy JSON. Fuzzed; used by the binary's inputs.
