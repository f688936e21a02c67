//! Built-in defaults that depend on the machine: where state and the control socket go when
//! the config does not say, and the host name for the `X-Greylist` header. Used by
//! `validate.rs`; documented in docs/configuration.md.

use std::path::{Path, PathBuf};

/// The policy listener when none is configured (Postfix's customary policy port).
pub const DEFAULT_POLICY_LISTEN: &str = "inet:127.0.0.1:10040";
/// The preferred state directory; used when it is writable.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/mxguard";
/// The fallback state directory, relative to the working directory.
pub const LOCAL_STATE_DIR: &str = "mxguard-state";
/// The preferred control socket directory.
pub const SYSTEM_RUN_DIR: &str = "/run/mxguard";

/// Whether a file can be created in `dir` (probe file created and removed). The probe name
/// carries the pid and a per-process sequence number: two threads validating configs at the
/// same time (tests, a reload racing `check-config`) must not see each other's probe and
/// conclude the directory is read-only.
fn dir_writable(dir: &Path) -> bool {
    static PROBE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = PROBE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".mxguard-probe-{}-{seq}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// `/var/lib/mxguard` when it exists and is writable or can be created (root), else
/// `./mxguard-state` (relative to the config file's directory or the working directory), so
/// `mxguard serve` without a config works for an unprivileged user.
pub fn default_state_dir(base: Option<&Path>) -> PathBuf {
    let sys = Path::new(SYSTEM_STATE_DIR);
    let usable = if sys.is_dir() {
        dir_writable(sys)
    } else {
        sys.parent().is_some_and(dir_writable)
    };
    if usable {
        return sys.to_path_buf();
    }
    match base {
        Some(b) => b.join(LOCAL_STATE_DIR),
        None => std::env::current_dir()
            .map(|d| d.join(LOCAL_STATE_DIR))
            .unwrap_or_else(|_| PathBuf::from(LOCAL_STATE_DIR)),
    }
}

/// `/run/mxguard/control.sock` when `/run/mxguard` is usable, else `control.sock` in the
/// local state directory. Clients without `--config` compute the same path.
pub fn default_control_socket(base: Option<&Path>) -> PathBuf {
    let run = Path::new(SYSTEM_RUN_DIR);
    let usable = if run.is_dir() {
        dir_writable(run)
    } else {
        run.parent().is_some_and(dir_writable)
    };
    if usable {
        run.join("control.sock")
    } else {
        default_state_dir(base).join("control.sock")
    }
}

pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
