//! Helpers shared by the suites (each test binary uses some of them).
#![allow(dead_code)]

use berth_logs::{Entry, LogConfig, ReadOptions, Stream, Writer, read, rotated_path};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

pub fn config(path: &Path, max_size: u64, max_files: u32) -> LogConfig {
    LogConfig {
        path: path.to_path_buf(),
        max_size,
        max_files,
    }
}

pub fn writer(path: &Path, max_size: u64, max_files: u32) -> Writer {
    Writer::open(config(path, max_size, max_files)).unwrap()
}

/// Every entry the reader returns (not following).
pub fn read_with(path: &Path, max_files: u32, opts: &ReadOptions) -> Vec<Entry> {
    let mut out = Vec::new();
    read(
        path,
        max_files,
        opts,
        &mut |e| {
            out.push(e);
            ControlFlow::Continue(())
        },
        &|| true,
    )
    .unwrap();
    out
}

pub fn read_all(path: &Path, max_files: u32) -> Vec<Entry> {
    read_with(path, max_files, &ReadOptions::default())
}

pub fn texts(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.line.clone()).unwrap())
        .collect()
}

pub fn stream_texts(entries: &[Entry], stream: Stream) -> Vec<String> {
    texts(
        &entries
            .iter()
            .filter(|e| e.stream == stream)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// The raw lines of a file.
pub fn raw_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8(bytes).expect("a log file is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends with a whole line",
        path.display()
    );
    text.lines().map(str::to_owned).collect()
}

/// The names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `path` and its rotated files, newest first, as far as they exist.
pub fn files(path: &Path, max_files: u32) -> Vec<PathBuf> {
    (0..max_files)
        .map(|k| rotated_path(path, k))
        .filter(|p| p.exists())
        .collect()
}

/// What Go's encoder makes of bytes: every byte that does not start a valid UTF-8
/// sequence becomes U+FFFD (Go's `utf8.DecodeRune` returns size 1 for it). Written
/// independently of the crate: decodes by the table of well-formed sequences (Unicode
/// table 3-7), not with `std::str::from_utf8`.
pub fn go_lossy(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let n = valid_len(&bytes[i..]);
        if n == 0 {
            out.extend_from_slice("\u{fffd}".as_bytes());
            i += 1;
        } else {
            out.extend_from_slice(&bytes[i..i + n]);
            i += n;
        }
    }
    out
}

/// The length of the well-formed sequence at the start of `s`, 0 if there is none.
fn valid_len(s: &[u8]) -> usize {
    let cont = |i: usize, lo: u8, hi: u8| s.get(i).is_some_and(|&b| (lo..=hi).contains(&b));
    match s[0] {
        0x00..=0x7f => 1,
        0xc2..=0xdf if cont(1, 0x80, 0xbf) => 2,
        0xe0 if cont(1, 0xa0, 0xbf) && cont(2, 0x80, 0xbf) => 3,
        0xe1..=0xec | 0xee..=0xef if cont(1, 0x80, 0xbf) && cont(2, 0x80, 0xbf) => 3,
        0xed if cont(1, 0x80, 0x9f) && cont(2, 0x80, 0xbf) => 3,
        0xf0 if cont(1, 0x90, 0xbf) && cont(2, 0x80, 0xbf) && cont(3, 0x80, 0xbf) => 4,
        0xf1..=0xf3 if cont(1, 0x80, 0xbf) && cont(2, 0x80, 0xbf) && cont(3, 0x80, 0xbf) => 4,
        0xf4 if cont(1, 0x80, 0x8f) && cont(2, 0x80, 0xbf) && cont(3, 0x80, 0xbf) => 4,
        _ => 0,
    }
}

/// A hand-made entry line, as Docker writes one.
pub fn entry_line(log: &str, stream: &str, time: &str) -> String {
    format!(r#"{{"log":"{log}","stream":"{stream}","time":"{time}"}}"#)
}

pub fn root_or_skip(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped (needs root): {what}");
        false
    }
}
