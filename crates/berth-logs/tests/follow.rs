//! Following: a reader thread sees what a writer thread writes, across rotations and
//! truncations, every entry exactly once and in order.

mod common;

use berth_logs::{Entry, ReadOptions, Stream, Writer, read};
use common::*;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

struct Follower {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    handle: JoinHandle<io::Result<Vec<Entry>>>,
}

impl Follower {
    /// Follows `path`; `slow_first` makes the sink sleep on the first entry (a reader left
    /// behind while the writer rotates).
    fn start(path: &Path, max_files: u32, mut opts: ReadOptions, slow_first: Duration) -> Follower {
        opts.follow = true;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let path: PathBuf = path.to_path_buf();
        let (s, n) = (stop.clone(), seen.clone());
        let handle = std::thread::spawn(move || {
            let mut got = Vec::new();
            read(
                &path,
                max_files,
                &opts,
                &mut |e| {
                    got.push(e);
                    if got.len() == 1 {
                        std::thread::sleep(slow_first);
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    ControlFlow::Continue(())
                },
                &|| s.load(Ordering::SeqCst),
            )
            .map(|()| got)
        });
        Follower { stop, seen, handle }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.seen() < n {
            assert!(
                Instant::now() < deadline,
                "follower saw {} of {n}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn finish(self) -> Vec<Entry> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap().unwrap()
    }
}

fn line(i: usize) -> String {
    format!("entry {i:06}\n")
}

fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(line).collect()
}

#[test]
fn follows_what_another_thread_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    for i in 0..3 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    let f = Follower::start(&path, 1, ReadOptions::default(), Duration::ZERO);
    f.wait_for(3);
    // One at a time after idle spells: each is seen well before the 200 ms poll.
    let mut slowest = Duration::ZERO;
    for i in 3..13 {
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        w.write(Stream::Stderr, line(i).as_bytes()).unwrap();
        f.wait_for(i + 1);
        slowest = slowest.max(t.elapsed());
    }
    eprintln!("slowest wake-up: {slowest:?}");
    for i in 13..200 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    f.wait_for(200);
    let got = f.finish();
    assert_eq!(texts(&got), lines(0..200));
    assert_eq!(got[5].stream, Stream::Stderr);
}

#[test]
fn follows_a_fast_writer_across_rotations_while_behind() {
    // 20 files of 4 KiB: about 19 rotations, nothing removed. The reader sleeps on its
    // first entry, so it finds itself several files behind and must walk the rotated
    // names forwards.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 4096, 20);
    w.write(Stream::Stdout, line(0).as_bytes()).unwrap();
    let f = Follower::start(
        &path,
        20,
        ReadOptions::default(),
        Duration::from_millis(300),
    );
    for i in 1..1000 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    assert!(names(dir.path()).len() > 15);
    f.wait_for(1000);
    let got = f.finish();
    assert_eq!(texts(&got), lines(0..1000));
}

/// Hundreds of rotations with few files kept; the writer goes as fast as it can while
/// it is less than `gap` entries ahead of the reader (further ahead, the reader's file
/// would be removed before it is read: entries lost by design).
fn many_rotations(max_files: u32, gap: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 2048, max_files);
    let f = Follower::start(&path, max_files, ReadOptions::default(), Duration::ZERO);
    let total = 20_000;
    let mut i = 0;
    while i < total {
        while i >= f.seen() + gap {
            std::thread::sleep(Duration::from_micros(50));
        }
        // One line, or a chunk of a few.
        let k = (1 + i % 5).min(total - i);
        let chunk: String = (i..i + k).map(line).collect();
        w.write(Stream::Stdout, chunk.as_bytes()).unwrap();
        i += k;
    }
    f.wait_for(total);
    let got = f.finish();
    assert_eq!(texts(&got), lines(0..total));
    assert!(names(dir.path()).len() == max_files as usize);
}

#[test]
fn follows_hundreds_of_rotations_with_two_files() {
    many_rotations(2, 10);
}

#[test]
fn follows_hundreds_of_rotations_with_four_files() {
    many_rotations(4, 40);
}

#[test]
fn follows_a_truncated_file() {
    // One file kept: the writer truncates it. In step with the reader, nothing is lost.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 1024, 1);
    let f = Follower::start(&path, 1, ReadOptions::default(), Duration::ZERO);
    for i in 0..500 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
        f.wait_for(i + 1);
    }
    let got = f.finish();
    assert_eq!(texts(&got), lines(0..500));
    assert_eq!(names(dir.path()), ["c-json.log"]);
}

#[test]
fn stop_still_reads_to_the_end() {
    // The container writes its last lines and exits; the caller stops the follower at
    // once: those lines (and the flushed partial one) still come out.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 1500, 3);
    let f = Follower::start(&path, 3, ReadOptions::default(), Duration::ZERO);
    for i in 0..50 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    w.write(Stream::Stderr, b"no newline").unwrap();
    w.flush().unwrap();
    let got = f.finish();
    let mut want = lines(0..50);
    want.push("no newline".into());
    assert_eq!(texts(&got), want);
}

#[test]
fn stop_is_seen_within_the_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    drop(writer(&path, 0, 1));
    let f = Follower::start(&path, 1, ReadOptions::default(), Duration::ZERO);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert!(f.finish().is_empty());
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn waits_for_the_log_to_appear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let f = Follower::start(
        &path,
        3,
        ReadOptions {
            tail: Some(0),
            ..Default::default()
        },
        Duration::ZERO,
    );
    std::thread::sleep(Duration::from_millis(100));
    let mut w = writer(&path, 600, 3);
    // About 20 entries fit in the three files: none is removed before it is read.
    for i in 0..20 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    f.wait_for(20);
    assert_eq!(texts(&f.finish()), lines(0..20));
}

#[test]
fn tail_then_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 500, 5);
    for i in 0..10 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    let f = Follower::start(
        &path,
        5,
        ReadOptions {
            tail: Some(3),
            ..Default::default()
        },
        Duration::ZERO,
    );
    f.wait_for(3);
    for i in 10..30 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    f.wait_for(23);
    assert_eq!(texts(&f.finish()), lines(7..30));
    // tail 0: only what comes next.
    let f = Follower::start(
        &path,
        5,
        ReadOptions {
            tail: Some(0),
            ..Default::default()
        },
        Duration::ZERO,
    );
    std::thread::sleep(Duration::from_millis(100));
    w.write(Stream::Stdout, line(30).as_bytes()).unwrap();
    f.wait_for(1);
    assert_eq!(texts(&f.finish()), lines(30..31));
}

#[test]
fn until_ends_a_follow_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w: Writer = writer(&path, 0, 1);
    let until = SystemTime::now() + Duration::from_millis(300);
    let f = Follower::start(
        &path,
        1,
        ReadOptions {
            until: Some(until),
            ..Default::default()
        },
        Duration::ZERO,
    );
    let mut written = 0;
    while SystemTime::now() < until - Duration::from_millis(50) {
        w.write(Stream::Stdout, line(written).as_bytes()).unwrap();
        written += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    // Written after until: not shown, and the follower ends without a stop.
    std::thread::sleep(Duration::from_millis(100));
    w.write(Stream::Stdout, b"too late\n").unwrap();
    let t = Instant::now();
    let got = f.handle.join().unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(texts(&got), lines(0..written));
}

#[test]
fn until_ends_a_quiet_follow() {
    // Nothing more is written: the follower ends a second after until.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    w.write(Stream::Stdout, b"before\n").unwrap();
    let t = Instant::now();
    let until = SystemTime::now() + Duration::from_millis(200);
    let f = Follower::start(
        &path,
        1,
        ReadOptions {
            until: Some(until),
            ..Default::default()
        },
        Duration::ZERO,
    );
    let got = f.handle.join().unwrap().unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(1200) && t.elapsed() < Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(texts(&got), ["before\n"]);
}
