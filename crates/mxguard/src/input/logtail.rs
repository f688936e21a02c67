//! The log follower for the jails: every file (or glob) a jail names is read once, and each
//! complete line is handed over with the ids of all the watches (jails) that name it.
//!
//! Polling, like fail2ban's `polling` backend, rather than inotify: it sees files that appear
//! later, glob matches and rotations the same way on every filesystem, and a poll costs a
//! `stat` per file. Rotation (fail2ban `FileContainer.open`): an inode change at the path
//! (rename rotation) first drains the old file to its end through the descriptor still open,
//! then reads the new file from offset 0; a size below the read offset (copytruncate) restarts
//! at 0. Lines written between copytruncate's copy and its truncate and not yet read are lost
//! — inherent to copytruncate, fail2ban has the same limit. Only complete lines (ending in
//! `\n`) are returned; a partial last line waits.
//!
//! Bounded memory: a line longer than `max_line` is cut to `max_line` bytes and the rest up
//! to its newline discarded (counted in [`TailStats::truncated`]); each poll returns at most
//! `batch_lines` lines, and [`LogTail::run`] waits on a bounded channel (backpressure).
//!
//! The checkpoint (`path dev inode offset` per line, written to a temp file and renamed)
//! holds what [`LogTail::commit`] confirmed: the caller commits after it processed the lines,
//! so a crash re-reads at most one batch and never skips one. At start a file whose inode
//! matches its checkpoint resumes at the offset; another inode (rotated while stopped) starts
//! at 0; a file without a checkpoint starts at 0, or at its end with `start_at_end`.
//! The systemd journal (`journalmatch`) is not read here.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// One complete line and the watches (jail indices) that read its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub watches: Arc<[usize]>,
    /// The line without its `\n` (and without a `\r` before it).
    pub bytes: Vec<u8>,
    /// The entry's time when the source gives it (the journal); `None`: the filter finds
    /// the date in the line.
    pub time: Option<i64>,
}

/// A batch of lines and the position to save once the batch is processed (so a crash
/// re-reads lines rather than skipping them).
#[derive(Debug, Default)]
pub struct Batch {
    pub lines: Vec<LogLine>,
    pub checkpoint: Option<Checkpoint>,
}

/// A position file's new content (the file checkpoint, or the journal cursor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub text: String,
}

impl Checkpoint {
    /// Writes the file atomically (temp file, then rename).
    pub fn write(&self) -> Result<(), TailError> {
        let err = |e: std::io::Error| TailError::Checkpoint {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        };
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, &self.text).map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)
    }
}

/// What to follow.
#[derive(Debug, Clone, Default)]
pub struct TailSettings {
    /// Watch id = index: each entry lists paths or glob patterns.
    pub watches: Vec<Vec<String>>,
    pub checkpoint: Option<PathBuf>,
    pub max_line: usize,
    pub start_at_end: bool,
    pub batch_lines: usize,
}

/// Counters for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailStats {
    pub lines: u64,
    pub bytes: u64,
    pub truncated: u64,
    pub rotations: u64,
    pub files: usize,
}

/// A follower error (checkpoint file only: unreadable logs are logged and retried).
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: String, detail: String },
}

#[derive(Debug)]
struct Followed {
    file: File,
    dev: u64,
    ino: u64,
    /// Offset of the first byte not yet returned as part of a line (the checkpoint).
    offset: u64,
    /// Where the next read starts (after the bytes of `partial`, or skipped ones).
    pos: u64,
    /// Bytes of an incomplete line (at most `max_line`).
    partial: Vec<u8>,
    /// The current line is over `max_line`: drop bytes until its newline.
    skipping: bool,
    watches: Arc<[usize]>,
}

/// The follower.
#[derive(Debug)]
pub struct LogTail {
    settings: TailSettings,
    files: BTreeMap<PathBuf, Followed>,
    /// Old descriptors of renamed files, drained before their successor is read.
    draining: Vec<(PathBuf, Followed)>,
    saved: HashMap<PathBuf, (u64, u64, u64)>,
    first_poll: bool,
    stats: TailStats,
    buf: Vec<u8>,
}

impl LogTail {
    pub fn new(mut settings: TailSettings) -> Result<LogTail, TailError> {
        settings.max_line = settings.max_line.max(64);
        settings.batch_lines = settings.batch_lines.max(1);
        let saved = match &settings.checkpoint {
            Some(p) => read_checkpoint(p)?,
            None => HashMap::new(),
        };
        Ok(LogTail {
            settings,
            files: BTreeMap::new(),
            draining: Vec::new(),
            saved,
            first_poll: true,
            stats: TailStats::default(),
            buf: vec![0; 64 * 1024],
        })
    }

    pub fn stats(&self) -> TailStats {
        TailStats {
            files: self.files.len(),
            ..self.stats
        }
    }

    /// The files the watches name now, with their watch ids.
    fn expand(&self) -> BTreeMap<PathBuf, Vec<usize>> {
        let mut out: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
        for (id, patterns) in self.settings.watches.iter().enumerate() {
            for p in patterns {
                let paths: Vec<PathBuf> = if p.contains(['*', '?', '[']) {
                    match glob::glob(p) {
                        Ok(g) => g.filter_map(Result::ok).collect(),
                        Err(_) => Vec::new(),
                    }
                } else {
                    vec![PathBuf::from(p)]
                };
                for path in paths {
                    if path.is_file() {
                        let ids = out.entry(path).or_default();
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        out
    }

    /// One step: notice new, rotated and truncated files, and read new complete lines (at
    /// most `batch_lines`).
    pub fn poll_once(&mut self) -> Vec<LogLine> {
        let mut out = Vec::new();
        let limit = self.settings.batch_lines;
        // Finish renamed files first: their lines are older than the new file's.
        let mut draining = std::mem::take(&mut self.draining);
        draining.retain_mut(|(_, f)| {
            let done = read_lines(
                f,
                &mut self.buf,
                &self.settings,
                &mut self.stats,
                &mut out,
                limit,
            );
            !done
        });
        self.draining = draining;
        if out.len() >= limit {
            return out;
        }
        let first = std::mem::replace(&mut self.first_poll, false);
        for (path, ids) in self.expand() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let ids: Arc<[usize]> = ids.into();
            match self.files.get_mut(&path) {
                Some(f) if f.ino == meta.ino() && f.dev == meta.dev() => {
                    f.watches = ids;
                    if meta.len() < f.offset {
                        // copytruncate: the same file, shorter than what was read.
                        f.offset = 0;
                        f.pos = 0;
                        f.partial.clear();
                        f.skipping = false;
                        self.stats.rotations += 1;
                    }
                }
                _ => {
                    let Ok(file) = File::open(&path) else {
                        continue;
                    };
                    if let Some(old) = self.files.remove(&path) {
                        // Rename rotation: drain the old file through its descriptor.
                        self.stats.rotations += 1;
                        self.draining.push((path.clone(), old));
                        let n = self.draining.len() - 1;
                        let (_, f) = &mut self.draining[n];
                        if read_lines(
                            f,
                            &mut self.buf,
                            &self.settings,
                            &mut self.stats,
                            &mut out,
                            limit,
                        ) {
                            self.draining.pop();
                        }
                    }
                    let offset = match self.saved.remove(&path) {
                        Some((dev, ino, off)) if dev == meta.dev() && ino == meta.ino() => {
                            off.min(meta.len())
                        }
                        Some(_) => 0,
                        None if first && self.settings.start_at_end => meta.len(),
                        None => 0,
                    };
                    self.files.insert(
                        path.clone(),
                        Followed {
                            file,
                            dev: meta.dev(),
                            ino: meta.ino(),
                            offset,
                            pos: offset,
                            partial: Vec::new(),
                            skipping: false,
                            watches: ids,
                        },
                    );
                }
            }
        }
        if !self.draining.is_empty() {
            return out;
        }
        for f in self.files.values_mut() {
            if out.len() >= limit {
                break;
            }
            read_lines(
                f,
                &mut self.buf,
                &self.settings,
                &mut self.stats,
                &mut out,
                limit,
            );
        }
        out
    }

    /// Persists the offsets of every line returned so far.
    pub fn commit(&mut self) -> Result<(), TailError> {
        match self.checkpoint() {
            Some(c) => c.write(),
            None => Ok(()),
        }
    }

    /// The checkpoint of every line returned so far, to be written once they are processed
    /// (`None` without a checkpoint file).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let path = self.settings.checkpoint.clone()?;
        let mut text = String::new();
        for (p, f) in &self.files {
            let Some(name) = p.to_str() else { continue };
            if name.contains('\n') {
                continue;
            }
            text.push_str(&format!("{} {} {} {}\n", f.dev, f.ino, f.offset, name));
        }
        Some(Checkpoint { path, text })
    }

    /// Polls every `interval` until shutdown, sending batches (awaiting the bounded channel
    /// is the backpressure); each batch carries its checkpoint for the receiver to write.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Batch>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        loop {
            let (tail, lines) = tokio::task::spawn_blocking(move || {
                let lines = self.poll_once();
                (self, lines)
            })
            .await?;
            self = tail;
            let more = lines.len() >= self.settings.batch_lines;
            if !lines.is_empty() {
                let batch = Batch {
                    lines,
                    checkpoint: self.checkpoint(),
                };
                if tx.send(batch).await.is_err() {
                    return Ok(());
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = crate::input::postfix_policy::stopped(&mut shutdown) => return Ok(()),
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Reads complete lines from `f` into `out` (until `limit` lines are there). Returns true
/// at the end of the file.
fn read_lines(
    f: &mut Followed,
    buf: &mut [u8],
    s: &TailSettings,
    stats: &mut TailStats,
    out: &mut Vec<LogLine>,
    limit: usize,
) -> bool {
    if f.file.seek(SeekFrom::Start(f.pos)).is_err() {
        return true;
    }
    loop {
        if out.len() >= limit {
            return false;
        }
        let n = match f.file.read(buf) {
            Ok(0) | Err(_) => return true,
            Ok(n) => n,
        };
        stats.bytes += n as u64;
        let base = f.pos;
        f.pos += n as u64;
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[start..n]) {
            let end = start + i;
            let piece = &buf[start..end];
            if !f.skipping {
                let room = s.max_line.saturating_sub(f.partial.len());
                if piece.len() > room {
                    stats.truncated += 1;
                }
                f.partial.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            let mut bytes = std::mem::take(&mut f.partial);
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            out.push(LogLine {
                watches: f.watches.clone(),
                bytes,
                time: None,
            });
            stats.lines += 1;
            f.offset = base + end as u64 + 1;
            f.skipping = false;
            start = end + 1;
            if out.len() >= limit {
                // The rest of the buffer is read again next time.
                f.pos = f.offset;
                return false;
            }
        }
        // No newline in the rest: keep it (bounded) as the partial line.
        let rest = &buf[start..n];
        if !f.skipping {
            let room = s.max_line.saturating_sub(f.partial.len());
            if rest.len() > room {
                stats.truncated += 1;
                f.skipping = true;
            }
            f.partial.extend_from_slice(&rest[..rest.len().min(room)]);
        }
    }
}

fn read_checkpoint(path: &Path) -> Result<HashMap<PathBuf, (u64, u64, u64)>, TailError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => {
            return Err(TailError::Checkpoint {
                path: path.display().to_string(),
                detail: e.to_string(),
            });
        }
    };
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let mut parts = line.splitn(4, ' ');
        let nums: Vec<Option<u64>> = (0..3)
            .map(|_| parts.next().and_then(|p| p.parse().ok()))
            .collect();
        match (nums.as_slice(), parts.next()) {
            ([Some(d), Some(i2), Some(o)], Some(p)) => {
                out.insert(PathBuf::from(p), (*d, *i2, *o));
            }
            _ => {
                // A damaged checkpoint must not stop the jails: re-reading is safe (old
                // lines are outside findtime or re-counted once), skipping would not be.
                tracing::warn!(file = %path.display(), line = i + 1, "ignoring a malformed checkpoint line");
            }
        }
    }
    Ok(out)
}
