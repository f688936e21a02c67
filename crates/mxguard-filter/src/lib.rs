//! fail2ban-compatible filters: reads fail2ban `filter.d` files as they are and matches log lines
//! exactly as fail2ban does. No I/O beyond reading filter files, no tokio.
