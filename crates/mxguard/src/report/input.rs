//! Where the report's lines come from: files (plain, or gzip by their magic bytes: rotated
//! `maillog.2.gz`; concatenated members too), stdin (`-`), or the systemd journal through
//! `journalctl -o short-iso` (the daemon's `input::journal` follows the journal as JSON; a
//! report reads a closed range once, and short-iso gives the classic `STAMP HOST PROG[PID]:`
//! lines the parser already knows). Also draws the progress bar on stderr.
//!
//! Errors: a file that cannot be opened is an error naming it, before anything is read. A
//! read error later (a truncated or corrupt .gz, an I/O error) keeps every line read so far
//! and is reported as a warning of that input. Called by `cli::report` and the tests.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;

use anyhow::Context as _;

use super::Analyzer;
use super::summary::InputInfo;

/// One input.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Stdin,
    /// `journalctl` (`program`) for `[since, until)` Unix seconds.
    Journal {
        program: PathBuf,
        since: Option<i64>,
        until: Option<i64>,
    },
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "-".to_owned(),
            Source::Journal { .. } => "journal".to_owned(),
        }
    }
}

/// Counts the bytes read through it (compressed bytes for a .gz), for the progress bar.
struct Counting<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// The progress bar: bytes read of the total, redrawn when the percentage changes.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    total: u64,
    done: u64,
    shown: u64,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            total: 0,
            done: 0,
            shown: u64::MAX,
        }
    }

    fn update(&mut self, done: u64) {
        self.done = done;
        if !self.enabled {
            return;
        }
        let mb = |b: u64| b as f64 / 1e6;
        let mut err = std::io::stderr().lock();
        if let Some(pct) = (done.min(self.total) * 100).checked_div(self.total) {
            if pct == self.shown {
                return;
            }
            self.shown = pct;
            let bar = (pct / 4) as usize;
            let _ = write!(
                err,
                "\rreading [{}{}] {pct:3}% {:.1}/{:.1} MB",
                "#".repeat(bar),
                ".".repeat(25 - bar),
                mb(done),
                mb(self.total)
            );
        } else {
            let step = done >> 24; // every 16 MiB
            if step == self.shown {
                return;
            }
            self.shown = step;
            let _ = write!(err, "\rreading {:.1} MB", mb(done));
        }
    }

    fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// Reads every source into `an`; returns what was read of each.
pub fn read_all(
    sources: &[Source],
    an: &mut Analyzer,
    progress: &mut Progress,
) -> anyhow::Result<Vec<InputInfo>> {
    // Open the files first: a missing or unreadable one fails the run before any work.
    let mut files = Vec::new();
    for s in sources {
        if let Source::File(p) = s {
            let f = File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                anyhow::bail!("cannot read {}: is a directory", p.display());
            }
            progress.total += len;
            files.push(Some(f));
        } else {
            files.push(None);
        }
    }
    let mut out = Vec::new();
    let mut base = 0u64;
    for (s, f) in sources.iter().zip(files) {
        let counter = Rc::new(Cell::new(0u64));
        let info = match (s, f) {
            (Source::File(_), Some(f)) => {
                let r = Counting {
                    inner: f,
                    n: counter.clone(),
                };
                read_stream(s.name(), r, an, progress, base, &counter)
            }
            (Source::Stdin, _) => {
                let r = Counting {
                    inner: std::io::stdin().lock(),
                    n: counter.clone(),
                };
                read_stream(s.name(), r, an, progress, base, &counter)
            }
            (
                Source::Journal {
                    program,
                    since,
                    until,
                },
                _,
            ) => {
                let mut cmd = Command::new(program);
                cmd.args(["-o", "short-iso", "--no-pager", "-q"]);
                if let Some(t) = since {
                    cmd.arg(format!("--since=@{t}"));
                }
                if let Some(t) = until {
                    cmd.arg(format!("--until=@{t}"));
                }
                let mut child = cmd
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .with_context(|| format!("cannot run {}", program.display()))?;
                let stdout = child.stdout.take().context("journalctl: no stdout")?;
                let r = Counting {
                    inner: stdout,
                    n: counter.clone(),
                };
                let mut info = read_stream(s.name(), r, an, progress, base, &counter);
                let status = child.wait().context("journalctl")?;
                if !status.success() && info.warning.is_none() {
                    info.warning = Some(format!("{} exited with {status}", program.display()));
                }
                info
            }
            (Source::File(p), None) => anyhow::bail!("cannot read {}", p.display()),
        };
        base += info.bytes;
        out.push(info);
    }
    progress.finish();
    Ok(out)
}

/// Reads one stream (gzip detected by its magic bytes) line by line into `an`.
fn read_stream<R: Read>(
    name: String,
    raw: R,
    an: &mut Analyzer,
    progress: &mut Progress,
    base: u64,
    counter: &Rc<Cell<u64>>,
) -> InputInfo {
    let mut raw = BufReader::with_capacity(1 << 16, raw);
    let gz = matches!(raw.fill_buf(), Ok(b) if b.starts_with(&[0x1f, 0x8b]));
    let mut reader: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(
            1 << 18,
            flate2::bufread::MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 18, raw))
    };
    let mut lines = 0u64;
    let mut warning = None;
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                an.line(line);
                lines += 1;
                if lines & 0x3fff == 0 {
                    progress.update(base + counter.get());
                }
            }
            Err(e) => {
                // A partial last line of a truncated stream is dropped, not half-counted.
                let what = if gz {
                    "gzip data truncated or corrupt"
                } else {
                    "read error"
                };
                warning = Some(format!("{name}: {what} after {lines} lines: {e}"));
                break;
            }
        }
    }
    progress.update(base + counter.get());
    InputInfo {
        name,
        lines,
        bytes: counter.get(),
        warning,
    }
}
