//! The log follower: rotation (rename, copytruncate), files that appear later, checkpoints,
//! long lines and files shared by several watches. Driven with `poll_once` (no sleeps).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use mxguard::input::logtail::{LogLine, LogTail, TailSettings};

fn settings(watches: Vec<Vec<String>>) -> TailSettings {
    TailSettings {
        watches,
        checkpoint: None,
        max_line: 1024,
        start_at_end: false,
        batch_lines: 100_000,
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn texts(lines: &[LogLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
        .collect()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn partial_lines_wait_for_their_newline() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, "one\ntw");
    let mut t = LogTail::new(settings(vec![vec![p(&log)]])).unwrap();
    assert_eq!(texts(&t.poll_once()), ["one"]);
    append(&log, "o\r\nthree\n");
    assert_eq!(texts(&t.poll_once()), ["two", "three"]);
    assert!(t.poll_once().is_empty());
}

#[test]
fn a_file_named_by_two_watches_is_read_once() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, "a\nb\n");
    let glob = format!("{}/*.log", d.path().display());
    let mut t = LogTail::new(settings(vec![vec![p(&log)], vec![glob], vec![]])).unwrap();
    let lines = t.poll_once();
    assert_eq!(texts(&lines), ["a", "b"]);
    assert_eq!(&*lines[0].watches, &[0, 1]);
    assert_eq!(t.stats().files, 1);
}

#[test]
fn rename_rotation_drains_the_old_file_then_reads_the_new_one() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, "1\n2\n");
    let mut t = LogTail::new(settings(vec![vec![p(&log)]])).unwrap();
    assert_eq!(texts(&t.poll_once()), ["1", "2"]);
    append(&log, "3\n");
    fs::rename(&log, d.path().join("mail.log.1")).unwrap();
    // A writer still holding the old file appends after the rename.
    append(&d.path().join("mail.log.1"), "4\n");
    append(&log, "5\n");
    assert_eq!(texts(&t.poll_once()), ["3", "4", "5"]);
    assert_eq!(t.stats().rotations, 1);
    append(&log, "6\n");
    assert_eq!(texts(&t.poll_once()), ["6"]);
}

#[test]
fn copytruncate_restarts_at_the_beginning() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, "old 1\nold 2\n");
    let mut t = LogTail::new(settings(vec![vec![p(&log)]])).unwrap();
    assert_eq!(t.poll_once().len(), 2);
    fs::copy(&log, d.path().join("mail.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, "new\n");
    assert_eq!(texts(&t.poll_once()), ["new"]);
    assert_eq!(t.stats().rotations, 1);
}

#[test]
fn files_that_appear_later_are_read_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let glob = format!("{}/*.log", d.path().display());
    let later = d.path().join("later.log");
    let mut t = LogTail::new(TailSettings {
        start_at_end: true,
        ..settings(vec![vec![glob, p(&later)]])
    })
    .unwrap();
    assert!(t.poll_once().is_empty());
    append(&d.path().join("b.log"), "x\n");
    append(&later, "y\n");
    let mut got = texts(&t.poll_once());
    got.sort();
    assert_eq!(got, ["x", "y"]);
}

#[test]
fn start_at_end_skips_existing_lines_only_at_first_start() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, "before\n");
    let mut t = LogTail::new(TailSettings {
        start_at_end: true,
        ..settings(vec![vec![p(&log)]])
    })
    .unwrap();
    assert!(t.poll_once().is_empty());
    append(&log, "after\n");
    assert_eq!(texts(&t.poll_once()), ["after"]);
}

#[test]
fn checkpoint_resumes_without_recounting_or_missing() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    let cp = d.path().join("checkpoint");
    let s = TailSettings {
        checkpoint: Some(cp.clone()),
        ..settings(vec![vec![p(&log)]])
    };
    append(&log, "1\n2\n");
    let mut t = LogTail::new(s.clone()).unwrap();
    assert_eq!(t.poll_once().len(), 2);
    t.commit().unwrap();
    append(&log, "3\n");
    // Read but not committed (the daemon died before processing): read again after restart.
    assert_eq!(texts(&t.poll_once()), ["3"]);
    drop(t);
    append(&log, "4\n");
    let mut t = LogTail::new(s.clone()).unwrap();
    assert_eq!(texts(&t.poll_once()), ["3", "4"]);
    t.commit().unwrap();
    // Rotated while stopped: the new file (another inode) starts at 0.
    drop(t);
    fs::rename(&log, d.path().join("mail.log.1")).unwrap();
    append(&log, "5\n");
    let mut t = LogTail::new(s).unwrap();
    assert_eq!(texts(&t.poll_once()), ["5"]);
}

#[test]
fn a_damaged_checkpoint_is_ignored_line_by_line() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    let cp = d.path().join("checkpoint");
    append(&log, "1\n");
    fs::write(&cp, "garbage\n").unwrap();
    let mut t = LogTail::new(TailSettings {
        checkpoint: Some(cp),
        ..settings(vec![vec![p(&log)]])
    })
    .unwrap();
    assert_eq!(texts(&t.poll_once()), ["1"]);
}

#[test]
fn a_megabyte_line_is_cut_to_max_line() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    let long = "x".repeat(1 << 20);
    append(&log, &format!("{long}\nshort\n{long}"));
    let mut t = LogTail::new(settings(vec![vec![p(&log)]])).unwrap();
    let lines = t.poll_once();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].bytes.len(), 1024);
    assert_eq!(lines[1].bytes, b"short");
    // The unterminated long line is held at max_line bytes, then completed.
    append(&log, "tail\n");
    let lines = t.poll_once();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].bytes.len(), 1024);
    assert_eq!(t.stats().truncated, 2);
}

#[test]
fn batch_lines_bounds_one_poll_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    let text: String = (0..1000).map(|i| format!("{i}\n")).collect();
    append(&log, &text);
    let mut t = LogTail::new(TailSettings {
        batch_lines: 64,
        ..settings(vec![vec![p(&log)]])
    })
    .unwrap();
    let mut all = Vec::new();
    loop {
        let b = t.poll_once();
        assert!(b.len() <= 64);
        if b.is_empty() {
            break;
        }
        all.extend(texts(&b));
    }
    let want: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(all, want);
}

#[test]
fn lines_written_during_rotations_are_seen_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, "");
    const N: usize = 20_000;
    let writer_log = log.clone();
    let dir = d.path().to_path_buf();
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            if i > 0 && i % 5000 == 0 {
                // Rename rotation as logrotate does it: move, then the writer reopens.
                fs::rename(&writer_log, dir.join(format!("mail.log.{i}"))).unwrap();
            }
            append(&writer_log, &format!("{i}\n"));
        }
    });
    let mut t = LogTail::new(TailSettings {
        batch_lines: 500,
        ..settings(vec![vec![p(&log)]])
    })
    .unwrap();
    let mut seen = vec![0u32; N];
    let mut idle_after_writer = 0;
    while idle_after_writer < 3 {
        let batch = t.poll_once();
        for l in &batch {
            let n: usize = String::from_utf8_lossy(&l.bytes).parse().unwrap();
            seen[n] += 1;
        }
        if writer.is_finished() && batch.is_empty() {
            idle_after_writer += 1;
        }
    }
    writer.join().unwrap();
    let missing: Vec<usize> = (0..N).filter(|&i| seen[i] == 0).take(5).collect();
    let doubled: Vec<usize> = (0..N).filter(|&i| seen[i] > 1).take(5).collect();
    assert!(
        missing.is_empty() && doubled.is_empty(),
        "missing {missing:?} doubled {doubled:?}"
    );
    assert!(t.stats().rotations >= 1);
}
