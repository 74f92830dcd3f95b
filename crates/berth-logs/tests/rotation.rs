//! Rotation as Docker does it, on real files: names, contents, nothing lost or doubled.

mod common;

use berth_logs::{Stream, rfc3339_nano, rotated_path};
use common::*;
use std::collections::HashMap;
use std::path::Path;

/// The size of an entry `line-NNNN\n` on stdout with a time of `time_len` characters
/// (Go's RFC3339Nano is 20 to 30: the fraction loses its trailing zeros).
fn entry_size(time_len: usize) -> u64 {
    entry_line("line-0000\\n", "stdout", &"0".repeat(time_len)).len() as u64 + 1
}

/// A max size that holds exactly `k` such entries, whatever their times.
fn size_for(k: u64) -> u64 {
    let (min, max) = (entry_size(20), entry_size(30));
    assert!((k + 1) * min > k * max);
    k * max
}

fn line(i: usize) -> String {
    format!("line-{i:04}\n")
}

/// Writes entries `from..to` and returns nothing; each write is one line.
fn write_lines(path: &Path, max_size: u64, max_files: u32, from: usize, to: usize) {
    let mut w = writer(path, max_size, max_files);
    for i in from..to {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
}

/// Checks that the files are exactly: `path.k` holds `expected[k]` (newest first), each
/// line byte for byte as Docker writes it, and nothing else is in the directory.
fn check_files(path: &Path, max_files: u32, max_size: u64, expected: &[Vec<usize>]) {
    let dir = path.parent().unwrap();
    let mut want_names: Vec<String> = (0..expected.len() as u32)
        .map(|k| {
            rotated_path(path, k)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    want_names.sort();
    assert_eq!(names(dir), want_names);
    // The times, from the reader.
    let times: HashMap<String, _> = read_all(path, max_files)
        .into_iter()
        .map(|e| (String::from_utf8(e.line).unwrap(), e.time))
        .collect();
    for (k, want) in expected.iter().enumerate() {
        let file = rotated_path(path, k as u32);
        let lines = raw_lines(&file);
        let expect: Vec<String> = want
            .iter()
            .map(|&i| {
                entry_line(
                    &line(i).replace('\n', "\\n"),
                    "stdout",
                    &rfc3339_nano(times[&line(i)]),
                )
            })
            .collect();
        assert_eq!(lines, expect, "{}", file.display());
        assert!(
            std::fs::metadata(&file).unwrap().len() <= max_size,
            "{} too big",
            file.display()
        );
    }
}

/// 23 entries, 3 per file: [0..3) [3..6) … [18..21) [21..23).
fn rotation_with(max_files: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let size = size_for(3);
    write_lines(&path, size, max_files, 0, 23);
    let all: Vec<Vec<usize>> = vec![
        (21..23).collect(),
        (18..21).collect(),
        (15..18).collect(),
        (12..15).collect(),
        (9..12).collect(),
        (6..9).collect(),
        (3..6).collect(),
        (0..3).collect(),
    ];
    let kept = &all[..max_files as usize];
    check_files(&path, max_files, size, kept);
    // Reading all: every kept entry once, oldest first.
    let want: Vec<String> = kept.iter().rev().flatten().map(|&i| line(i)).collect();
    assert_eq!(texts(&read_all(&path, max_files)), want);
}

#[test]
fn one_file_is_truncated() {
    rotation_with(1);
}

#[test]
fn two_files() {
    rotation_with(2);
}

#[test]
fn five_files() {
    rotation_with(5);
}

#[test]
fn zero_files_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    write_lines(&path, size_for(3), 0, 0, 7);
    check_files(&path, 1, size_for(3), &[vec![6]]);
}

#[test]
fn unlimited_never_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    write_lines(&path, 0, 3, 0, 2000);
    assert_eq!(names(dir.path()), ["c-json.log"]);
    assert_eq!(read_all(&path, 3).len(), 2000);
}

#[test]
fn an_entry_larger_than_max_size_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 40, 3);
    for i in 0..5 {
        w.write(Stream::Stdout, line(i).as_bytes()).unwrap();
    }
    for (k, i) in [(0, 4), (1, 3), (2, 2)] {
        let lines = raw_lines(&rotated_path(&path, k));
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains(&line(i).replace('\n', "\\n")));
    }
    assert_eq!(
        names(dir.path()),
        ["c-json.log", "c-json.log.1", "c-json.log.2"]
    );
}

#[test]
fn a_restarted_writer_goes_on_with_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let size = size_for(3);
    write_lines(&path, size, 3, 0, 5);
    write_lines(&path, size, 3, 5, 7);
    check_files(&path, 3, size, &[vec![6], vec![3, 4, 5], vec![0, 1, 2]]);
    // Fewer files than before: the rotation removes the one beyond and leaves the rest.
    write_lines(&path, size, 2, 7, 10);
    let dir_names = names(dir.path());
    assert_eq!(dir_names, ["c-json.log", "c-json.log.1", "c-json.log.2"]);
    assert_eq!(
        texts(&read_all(&path, 2)),
        (6..10).map(line).collect::<Vec<_>>()
    );
}

#[test]
fn partial_lines_split_around_a_rotation() {
    // A long line cut into 16 KiB pieces rotates between pieces; reading all puts it back
    // together.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 20_000, 10);
    let long: Vec<u8> = (0..100_000u32)
        .map(|i| b'a' + (i % 26) as u8)
        .chain([b'\n'])
        .collect();
    w.write(Stream::Stdout, &long).unwrap();
    // Seven pieces, the last one small enough to share the sixth one's file.
    assert_eq!(names(dir.path()).len(), 6);
    let joined: Vec<u8> = read_all(&path, 10)
        .into_iter()
        .flat_map(|e| e.line)
        .collect();
    assert_eq!(joined, long);
}
