//! `mxguard audit`: command-line front of the `crate::audit` module. Chooses the inputs
//! (run `postconf`/`doveconf`, or read files), runs the rules, prints text, JSON or fix
//! snippets, and maps the result to the exit code: 0 clean (below `--fail-on`), 1 a finding
//! reached `--fail-on`, 2 an input could not be read (missing command, binary or truncated
//! file, syntax error) or the arguments are inconsistent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;

use crate::audit::input::{self, DovecotSource, PostfixSource};
use crate::audit::postfix_defaults::parse_version;
use crate::audit::{self as audit_lib, AuditError, Inputs, Severity, report, rule_info};

use super::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable report grouped by severity.
    Text,
    /// JSON document (schema mxguard.audit/1, see docs/audit.md).
    Json,
    /// Markdown (only with --list-rules).
    Markdown,
}

/// Arguments of `mxguard audit`.
///
/// With no input option it runs `postconf -n`, `postconf -M` and `doveconf -n` on this host and
/// also reads /etc/fail2ban and /etc/mxguard/mxguard.toml when present. With any input option
/// only the given components are audited.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Read main.cf and master.cf from DIR (a copy of /etc/postfix; nothing is executed).
    #[arg(long, value_name = "DIR")]
    pub postfix_dir: Option<PathBuf>,
    /// Run the real `postconf -c DIR` for a non-system Postfix instance.
    #[arg(long, value_name = "DIR", conflicts_with = "postfix_dir")]
    pub postfix_instance: Option<PathBuf>,
    /// Saved output of `postconf -n`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["postfix_dir", "postfix_instance"])]
    pub postconf_n: Option<PathBuf>,
    /// Saved output of `postconf -M` (with --postconf-n).
    #[arg(long, value_name = "FILE", requires = "postconf_n")]
    pub postconf_m: Option<PathBuf>,
    /// Postfix version of the audited host (`postconf -d mail_version`), for file inputs.
    #[arg(long, value_name = "X.Y.Z")]
    pub postfix_version: Option<String>,
    /// Read a raw dovecot.conf (its !include files are followed; nothing is executed).
    #[arg(long, value_name = "FILE")]
    pub dovecot_config: Option<PathBuf>,
    /// Run the real `doveconf -c FILE -n` for a non-system Dovecot instance.
    #[arg(long, value_name = "FILE", conflicts_with = "dovecot_config")]
    pub dovecot_instance: Option<PathBuf>,
    /// Saved output of `doveconf -n`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dovecot_config", "dovecot_instance"])]
    pub doveconf_n: Option<PathBuf>,
    /// Dovecot version of the audited host, for raw-file inputs.
    #[arg(long, value_name = "X.Y.Z")]
    pub dovecot_version: Option<String>,
    /// fail2ban configuration directory (jail.conf, jail.local, jail.d/).
    #[arg(long, value_name = "DIR")]
    pub fail2ban_dir: Option<PathBuf>,
    /// mxguard configuration file to check the wiring of.
    #[arg(long, value_name = "FILE")]
    pub mxguard_config: Option<PathBuf>,
    /// SpamAssassin local.cf (trusted_networks/internal_networks).
    #[arg(long, value_name = "FILE")]
    pub spamassassin_config: Option<PathBuf>,
    /// Do not audit Postfix (default mode only).
    #[arg(long)]
    pub no_postfix: bool,
    /// Do not audit Dovecot (default mode only).
    #[arg(long)]
    pub no_dovecot: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit with status 1 when a finding has at least this severity
    /// (critical, high, medium, low, info).
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub fail_on: Option<Severity>,
    /// Show only findings of at least this severity.
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub min_severity: Option<Severity>,
    /// Print the suggested main.cf/master.cf/dovecot.conf/jail.local lines for the findings
    /// instead of the report (never edits a file).
    #[arg(long)]
    pub fix_snippet: bool,
    /// Explain one rule (why and fix) and exit.
    #[arg(long, value_name = "RULE")]
    pub explain: Option<String>,
    /// List every rule and exit.
    #[arg(long)]
    pub list_rules: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s)
        .ok_or_else(|| format!("unknown severity '{s}' (critical, high, medium, low, info)"))
}

fn version_arg(v: &Option<String>, flag: &str) -> Result<Option<(u32, u32, u32)>, AuditError> {
    match v {
        None => Ok(None),
        Some(s) => parse_version(s)
            .map(Some)
            .ok_or_else(|| AuditError::Usage(format!("{flag}: not a version: '{s}'"))),
    }
}

/// Collects the inputs the arguments ask for.
pub fn gather(args: &AuditArgs) -> Result<(Inputs, Vec<String>), AuditError> {
    let pf_version = version_arg(&args.postfix_version, "--postfix-version")?;
    let dc_version = version_arg(&args.dovecot_version, "--dovecot-version")?;
    let explicit_pf =
        args.postfix_dir.is_some() || args.postfix_instance.is_some() || args.postconf_n.is_some();
    let explicit_dc = args.dovecot_config.is_some()
        || args.dovecot_instance.is_some()
        || args.doveconf_n.is_some();
    let explicit = explicit_pf
        || explicit_dc
        || args.fail2ban_dir.is_some()
        || args.mxguard_config.is_some()
        || args.spamassassin_config.is_some();
    let mut inputs = Inputs::default();
    let mut sources = Vec::new();

    let pf_source = if let Some(d) = &args.postfix_dir {
        Some(PostfixSource::Dir(d.clone()))
    } else if let Some(d) = &args.postfix_instance {
        Some(PostfixSource::Command(Some(d.clone())))
    } else if let Some(n) = &args.postconf_n {
        Some(PostfixSource::Saved {
            n: n.clone(),
            m: args.postconf_m.clone(),
        })
    } else if !explicit && !args.no_postfix {
        Some(PostfixSource::Command(None))
    } else {
        None
    };
    if let Some(src) = pf_source {
        let pf = input::load_postfix(&src, pf_version)?;
        sources.push(pf.main_source.clone());
        if let Some(m) = &pf.master_source {
            sources.push(m.clone());
        }
        inputs.postfix = Some(pf);
    }
    let dc_source = if let Some(f) = &args.dovecot_config {
        Some(DovecotSource::File(f.clone()))
    } else if let Some(f) = &args.dovecot_instance {
        Some(DovecotSource::Command(Some(f.clone())))
    } else if let Some(f) = &args.doveconf_n {
        Some(DovecotSource::Saved(f.clone()))
    } else if !explicit && !args.no_dovecot {
        Some(DovecotSource::Command(None))
    } else {
        None
    };
    if let Some(src) = dc_source {
        let dc = input::load_dovecot(&src, dc_version)?;
        sources.push(dc.source.clone());
        inputs.dovecot = Some(dc);
    }
    let f2b_dir = args.fail2ban_dir.clone().or_else(|| {
        let d = Path::new("/etc/fail2ban");
        (!explicit && (d.join("jail.local").exists() || d.join("jail.d").is_dir()))
            .then(|| d.to_path_buf())
    });
    if let Some(d) = f2b_dir {
        let f = input::load_fail2ban(&d)?;
        sources.extend(f.sources.iter().cloned());
        inputs.fail2ban = Some(f);
    }
    let mx = args.mxguard_config.clone().or_else(|| {
        let p = Path::new("/etc/mxguard/mxguard.toml");
        (!explicit && p.exists()).then(|| p.to_path_buf())
    });
    if let Some(p) = mx {
        let m = input::load_mxguard(&p)?;
        sources.push(m.source.clone());
        inputs.mxguard = Some(m);
    }
    let sa = args.spamassassin_config.clone().or_else(|| {
        let p = Path::new("/etc/spamassassin/local.cf");
        (!explicit && p.exists()).then(|| p.to_path_buf())
    });
    if let Some(p) = sa {
        let c = input::load_spamassassin(&p)?;
        sources.push(c.source.clone());
        inputs.spamassassin = Some(c);
    }
    if inputs.postfix.is_none()
        && inputs.dovecot.is_none()
        && inputs.fail2ban.is_none()
        && inputs.mxguard.is_none()
        && inputs.spamassassin.is_none()
    {
        return Err(AuditError::Usage(
            "nothing to audit: every component was disabled".into(),
        ));
    }
    Ok((inputs, sources))
}

/// Runs the audit.
pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    if args.list_rules {
        let text = if args.format == Format::Markdown {
            report::rules_markdown()
        } else {
            report::list_rules()
        };
        out!("{text}");
        return Ok(ExitCode::from(EXIT_OK));
    }
    if let Some(id) = &args.explain {
        return Ok(match rule_info(id) {
            Some(r) => {
                out!("{}", report::explain(r));
                ExitCode::from(EXIT_OK)
            }
            None => {
                eprintln!("mxguard: error: unknown rule '{id}' (see `mxguard audit --list-rules`)");
                ExitCode::from(EXIT_USAGE)
            }
        });
    }
    if args.format == Format::Markdown {
        eprintln!("mxguard: error: --format markdown is only for --list-rules");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let (inputs, sources) = match gather(args) {
        Ok(x) => x,
        Err(e) => {
            // Input errors are configuration errors: exit 2 (DESIGN.md).
            eprintln!("mxguard: error: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let mut findings = audit_lib::audit(&inputs);
    if let Some(min) = args.min_severity {
        findings.retain(|f| f.severity >= min);
    }
    let out = if args.fix_snippet {
        report::fix_snippets(&findings)
    } else {
        match args.format {
            Format::Json => report::json(&findings, &sources),
            _ => report::text(&findings, &sources),
        }
    };
    out!("{out}");
    let failed = args
        .fail_on
        .is_some_and(|t| findings.iter().any(|f| f.severity >= t));
    Ok(ExitCode::from(if failed { EXIT_FAILURE } else { EXIT_OK }))
}
