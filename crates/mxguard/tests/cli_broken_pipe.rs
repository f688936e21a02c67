//! Regression: `mxguard account list | grep -q ...` panicked with "failed printing to stdout:
//! Broken pipe" when the reader closed the pipe first (seen in scripts/it/postfix_quota.sh).
//! The CLI must end quietly with exit code 0 instead.

use std::process::{Command, Stdio};

#[test]
fn closed_stdout_ends_quietly_without_panic() {
    // Several runs: the reader is closed right after spawning, before the child prints its
    // ~10 KB rule list, so the child's first write meets EPIPE.
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mxguard"))
            .args(["audit", "--list-rules"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mxguard");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for mxguard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "mxguard panicked: {stderr}");
        assert!(
            out.status.success(),
            "exit status {:?}, stderr: {stderr}",
            out.status
        );
    }
}
