//! Configuration audit of Postfix and Dovecot (issue 9). Not implemented yet.
