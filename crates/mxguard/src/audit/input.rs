//! Gathers the audit's inputs: runs the read-only `postconf -n`, `postconf -M`,
//! `postconf -h mail_version` and `doveconf -n` (with `-c DIR`/`-c FILE` for other instances),
//! or reads files: a Postfix directory (main.cf + master.cf), saved command outputs, a raw
//! dovecot.conf with its includes, fail2ban's jail files and mxguard.toml.
//!
//! Everything read is checked to be text (no NUL byte, valid UTF-8) before parsing; a missing
//! command or a failing one is an `AuditError`, never a guess. Nothing here writes a file or
//! contacts a daemon.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::dovecot::DovecotConfig;
use super::error::AuditError;
use super::fail2ban::Fail2banConfig;
use super::mxconfig::MxguardConfig;
use super::postfix::PostfixConfig;
use super::postfix_defaults::{Version, parse_version};
use super::spamassassin::SpamAssassinConfig;

/// Everything the rules look at. Absent components are simply not audited.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub postfix: Option<PostfixConfig>,
    pub dovecot: Option<DovecotConfig>,
    pub fail2ban: Option<Fail2banConfig>,
    pub mxguard: Option<MxguardConfig>,
    pub spamassassin: Option<SpamAssassinConfig>,
}

/// Where the Postfix configuration comes from.
#[derive(Debug, Clone)]
pub enum PostfixSource {
    /// Run `postconf` (with `-c DIR` when given).
    Command(Option<PathBuf>),
    /// Read DIR/main.cf and DIR/master.cf.
    Dir(PathBuf),
    /// Saved `postconf -n` output and optionally saved `postconf -M` output.
    Saved { n: PathBuf, m: Option<PathBuf> },
}

/// Where the Dovecot configuration comes from.
#[derive(Debug, Clone)]
pub enum DovecotSource {
    /// Run `doveconf -n` (with `-c FILE` when given).
    Command(Option<PathBuf>),
    /// Parse a raw dovecot.conf and its `!include` files.
    File(PathBuf),
    /// Saved `doveconf -n` output.
    Saved(PathBuf),
}

/// Checks that bytes are a text configuration and returns them as a string.
pub fn text_of(bytes: &[u8], source: &str) -> Result<String, AuditError> {
    if let Some(offset) = bytes.iter().position(|b| *b == 0) {
        return Err(AuditError::Binary {
            source_name: source.to_string(),
            offset,
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| AuditError::Binary {
        source_name: source.to_string(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Reads a text file.
pub fn read_text(path: &Path) -> Result<String, AuditError> {
    let bytes = std::fs::read(path).map_err(|source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text_of(&bytes, &path.display().to_string())
}

/// Runs a read-only configuration command and returns its standard output as text.
pub fn run_command(
    program: &str,
    args: &[String],
    hint: &'static str,
) -> Result<String, AuditError> {
    let shown = format!("{program} {}", args.join(" "));
    let out = Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            AuditError::CommandMissing {
                command: program.to_string(),
                hint,
            }
        } else {
            AuditError::CommandFailed {
                command: shown.clone(),
                status: "could not start".into(),
                stderr: e.to_string(),
            }
        }
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(5)
            .collect();
        return Err(AuditError::CommandFailed {
            command: shown,
            status: out.status.to_string(),
            stderr: stderr.join(" | "),
        });
    }
    text_of(&out.stdout, &shown)
}

/// Loads the Postfix configuration. `version` overrides the detected `mail_version`.
pub fn load_postfix(
    src: &PostfixSource,
    version: Option<Version>,
) -> Result<PostfixConfig, AuditError> {
    let mut pf = PostfixConfig::default();
    const HINT: &str = "install postfix, or use --postfix-dir / --postconf-n";
    match src {
        PostfixSource::Command(dir) => {
            let mut base: Vec<String> = Vec::new();
            if let Some(d) = dir {
                base.push("-c".into());
                base.push(d.display().to_string());
            }
            let with = |flag: &str| {
                let mut a = base.clone();
                a.push(flag.to_string());
                a
            };
            let n = run_command("postconf", &with("-n"), HINT)?;
            pf.parse_main(&n, "postconf -n")?;
            let m = run_command("postconf", &with("-M"), HINT)?;
            pf.parse_master(&m, "postconf -M")?;
            let mut vargs = with("-h");
            vargs.push("mail_version".into());
            let v = run_command("postconf", &vargs, HINT)?;
            pf.version = parse_version(v.trim());
        }
        PostfixSource::Dir(dir) => {
            let main = dir.join("main.cf");
            pf.parse_main(&read_text(&main)?, &main.display().to_string())?;
            let master = dir.join("master.cf");
            if master.exists() {
                pf.parse_master(&read_text(&master)?, &master.display().to_string())?;
            }
        }
        PostfixSource::Saved { n, m } => {
            pf.parse_main(&read_text(n)?, &n.display().to_string())?;
            if let Some(m) = m {
                pf.parse_master(&read_text(m)?, &m.display().to_string())?;
            }
        }
    }
    if version.is_some() {
        pf.version = version;
    }
    Ok(pf)
}

/// Loads the Dovecot configuration. `version` overrides the version in doveconf's header.
pub fn load_dovecot(
    src: &DovecotSource,
    version: Option<Version>,
) -> Result<DovecotConfig, AuditError> {
    const HINT: &str =
        "install dovecot-core, or use --dovecot-config / --doveconf-n, or --no-dovecot";
    let mut cfg = match src {
        DovecotSource::Command(file) => {
            let mut args = Vec::new();
            if let Some(f) = file {
                args.push("-c".to_string());
                args.push(f.display().to_string());
            }
            args.push("-n".into());
            let text = run_command("doveconf", &args, HINT)?;
            DovecotConfig::parse(&text, "doveconf -n", None)?
        }
        DovecotSource::File(path) => {
            let text = read_text(path)?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            DovecotConfig::parse(&text, &path.display().to_string(), Some(&base))?
        }
        DovecotSource::Saved(path) => {
            DovecotConfig::parse(&read_text(path)?, &path.display().to_string(), None)?
        }
    };
    if version.is_some() {
        cfg.version = version;
    }
    Ok(cfg)
}

/// Loads mxguard.toml.
pub fn load_mxguard(path: &Path) -> Result<MxguardConfig, AuditError> {
    MxguardConfig::parse(&read_text(path)?, &path.display().to_string())
}

/// Loads SpamAssassin's local.cf.
pub fn load_spamassassin(path: &Path) -> Result<SpamAssassinConfig, AuditError> {
    SpamAssassinConfig::parse(&read_text(path)?, &path.display().to_string())
}

/// Loads fail2ban's jail files from a directory.
pub fn load_fail2ban(dir: &Path) -> Result<Fail2banConfig, AuditError> {
    Fail2banConfig::read_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_refused() {
        assert!(matches!(
            text_of(b"a = 1\n\0\x01", "x"),
            Err(AuditError::Binary { offset: 6, .. })
        ));
        assert!(matches!(
            text_of(&[0xff, 0xfe], "x"),
            Err(AuditError::Binary { .. })
        ));
        assert_eq!(text_of(b"ok\n", "x").unwrap(), "ok\n");
    }

    #[test]
    fn missing_command_is_reported() {
        let e = run_command("mxguard-no-such-postconf", &[], "hint").unwrap_err();
        assert!(matches!(e, AuditError::CommandMissing { .. }), "{e}");
    }
}
