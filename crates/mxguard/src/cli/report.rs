//! `mxguard report`: log analytics over Postfix / Dovecot / mxguard / fail2ban logs for a time
//! range, as text, JSON or one self-contained HTML page (docs/report.md). Parses arguments,
//! takes "now" from the system clock (or the hidden `--now` for tests), loads `--config` for
//! quotas, and hands the work to `crate::report`. Reads only; changes nothing.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use mxguard_engine::Clock as _;

use super::{EXIT_OK, EXIT_USAGE};
use crate::report::input::{Progress, Source, read_all};
use crate::report::summary::Shape;
use crate::report::time::{Stamps, parse_point};
use crate::report::{Analyzer, Summary, html, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Html,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  mxguard report /var/log/mail.log /var/log/mail.log.1 /var/log/mail.log.2.gz
  mxguard report --journal --since 24h
  mxguard report --from 2026-12-01 --to 2026-12-08 --format json /var/log/mail.log*
  mxguard report --since 7d --format html --output report.html -c /etc/mxguard/mxguard.toml mail.log")]
pub struct ReportArgs {
    /// Log files (plain or .gz, detected by content); `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Read the systemd journal (journalctl -o short-iso) for the range.
    #[arg(long)]
    pub journal: bool,
    /// Only the last DURATION before now (`24h`, `7d`, `30m`).
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<String>,
    /// Start of the range: RFC 3339 or `YYYY-MM-DD[ HH:MM[:SS]]` (local time).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the range (exclusive), same forms as --from.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Length of the top-N lists.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// mxguard configuration: its limit tables keyed on sasl_username give the quotas.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show the progress bar even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Time zone of syslog stamps (default: the system's; `TZ` is honoured).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// "Now" for --since and the year of syslog stamps (RFC 3339 or Unix seconds; tests).
    #[arg(long, hide = true)]
    pub now: Option<String>,
    /// The journalctl program (tests).
    #[arg(long, hide = true, default_value = "journalctl")]
    pub journalctl: PathBuf,
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("mxguard: error: {msg}");
    Ok(ExitCode::from(EXIT_USAGE))
}

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    if args.files.is_empty() && !args.journal {
        return usage("give log files (or - for stdin), or --journal");
    }
    let tz = match &args.timezone {
        None => jiff::tz::TimeZone::system(),
        Some(name) => {
            match jiff::tz::TimeZone::get(name).or_else(|_| jiff::tz::TimeZone::posix(name)) {
                Ok(tz) => tz,
                Err(_) => return usage(format!("unknown time zone {name:?}")),
            }
        }
    };
    let now = match &args.now {
        None => mxguard_engine::SystemClock.now().0 as i64,
        Some(t) => match t
            .parse::<i64>()
            .map_err(|e| e.to_string())
            .or_else(|_| parse_point(t, &tz))
        {
            Ok(t) => t,
            Err(e) => return usage(format!("--now: {e}")),
        },
    };
    let mut from = None;
    if let Some(s) = &args.since {
        match crate::config::parse_duration(s) {
            Ok(d) => from = Some(now - d.as_secs() as i64),
            Err(e) => return usage(format!("--since: {e}")),
        }
    }
    if let Some(f) = &args.from {
        match parse_point(f, &tz) {
            Ok(t) => from = Some(t),
            Err(e) => return usage(format!("--from: {e}")),
        }
    }
    let to = match &args.to {
        Some(t) => match parse_point(t, &tz) {
            Ok(t) => Some(t),
            Err(e) => return usage(format!("--to: {e}")),
        },
        None => None,
    };
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return usage("--from must be before --to");
    }
    let cfg = match &args.config {
        Some(p) => match crate::config::load(Some(p)) {
            Ok(c) => Some(c),
            Err(errors) => {
                super::print_config_errors(&errors);
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        },
        None => None,
    };
    let limits = cfg.as_ref().map(|c| c.limits.limits.limits.as_slice());

    let mut sources: Vec<Source> = args
        .files
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                Source::Stdin
            } else {
                Source::File(p.clone())
            }
        })
        .collect();
    if args.journal {
        sources.push(Source::Journal {
            program: args.journalctl.clone(),
            since: from,
            until: to,
        });
    }
    let mut an = Analyzer::new(Stamps::new(tz, now), from, to, limits.is_some());
    let mut progress = Progress::new(args.progress || std::io::stderr().is_terminal());
    let inputs = read_all(&sources, &mut an, &mut progress)?;
    for i in &inputs {
        if let Some(w) = &i.warning {
            eprintln!("mxguard: warning: {w}");
        }
    }
    let shape = Shape {
        top: args.top,
        from,
        to,
        limits,
    };
    let summary = Summary::build(&an.stats, inputs, &shape);
    let body = match args.format {
        Format::Text => text::render(&summary),
        Format::Json => serde_json::to_string_pretty(&summary)? + "\n",
        Format::Html => html::render(&summary),
    };
    match &args.output {
        Some(p) => {
            std::fs::write(p, body).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => out!("{body}"),
    }
    Ok(ExitCode::from(EXIT_OK))
}
