//! The reader without following: tail across files, since/until, bad lines.

mod common;

use berth_logs::{ReadOptions, Stream, read, rfc3339_nano, rotated_path};
use common::*;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_418_000 + secs)
}

/// A hand-made entry `n\n` at time `t(n)`.
fn line_at(n: u64) -> String {
    entry_line(
        &format!("{n}\\n"),
        if n % 2 == 0 { "stdout" } else { "stderr" },
        &rfc3339_nano(t(n)),
    )
}

/// Files holding entries 0..13, three per file, with max_files 5: path.4 [0,1,2] …
/// path.1 [9,10,11], path [12].
fn five_files(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("c-json.log");
    for k in 0..5u32 {
        let first = 12 - 3 * u64::from(k);
        let range = if k == 0 { 12..13 } else { first..first + 3 };
        let text: String = range.map(|n| line_at(n) + "\n").collect();
        std::fs::write(rotated_path(&path, k), text).unwrap();
    }
    path
}

fn numbers(entries: &[berth_logs::Entry]) -> Vec<u64> {
    texts(entries)
        .iter()
        .map(|s| s.trim_end().parse().unwrap())
        .collect()
}

fn opts(tail: Option<usize>, since: Option<u64>, until: Option<u64>) -> ReadOptions {
    ReadOptions {
        tail,
        since: since.map(t),
        until: until.map(t),
        follow: false,
    }
}

#[test]
fn all_files_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = five_files(dir.path());
    let e = read_all(&path, 5);
    assert_eq!(numbers(&e), (0..13).collect::<Vec<_>>());
    assert_eq!(e[3].stream, Stream::Stderr);
    assert_eq!(e[4].stream, Stream::Stdout);
    assert_eq!(e[5].time, t(5));
    // Fewer files asked for: only those.
    assert_eq!(numbers(&read_all(&path, 2)), (9..13).collect::<Vec<_>>());
}

#[test]
fn tail_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = five_files(dir.path());
    for (n, want) in [
        (0, vec![]),
        (1, vec![12]),
        (2, vec![11, 12]),
        (4, vec![9, 10, 11, 12]),
        (5, vec![8, 9, 10, 11, 12]),
        (13, (0..13).collect()),
        (1000, (0..13).collect()),
    ] {
        assert_eq!(
            numbers(&read_with(&path, 5, &opts(Some(n), None, None))),
            want,
            "tail {n}"
        );
    }
}

#[test]
fn since_and_until() {
    let dir = tempfile::tempdir().unwrap();
    let path = five_files(dir.path());
    let r = |o: ReadOptions| numbers(&read_with(&path, 5, &o));
    assert_eq!(r(opts(None, Some(10), None)), [10, 11, 12]); // since is inclusive
    assert_eq!(r(opts(None, None, Some(2))), [0, 1, 2]); // and until
    assert_eq!(r(opts(None, Some(4), Some(7))), [4, 5, 6, 7]);
    assert_eq!(r(opts(None, Some(20), None)), Vec::<u64>::new());
    assert_eq!(r(opts(None, Some(7), Some(6))), Vec::<u64>::new());
    // Sub-second precision.
    let mut o = opts(None, None, None);
    o.since = Some(t(4) + Duration::from_nanos(1));
    o.until = Some(t(6) - Duration::from_nanos(1));
    assert_eq!(r(o), [5]);
    // With tail: the last N of what since/until let through.
    assert_eq!(r(opts(Some(2), Some(4), Some(7))), [6, 7]);
    assert_eq!(r(opts(Some(10), Some(4), Some(7))), [4, 5, 6, 7]);
    assert_eq!(r(opts(Some(3), None, Some(5))), [3, 4, 5]);
    assert_eq!(r(opts(Some(3), Some(11), None)), [11, 12]);
}

#[test]
fn until_ends_the_read_at_the_first_entry_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    // A clock stepped back: 5 comes after 8. The read ends at 8.
    let text: String = [3, 4, 8, 5, 6].iter().map(|&n| line_at(n) + "\n").collect();
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        numbers(&read_with(&path, 1, &opts(None, None, Some(6)))),
        [3, 4]
    );
}

#[test]
fn the_sink_can_stop_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = five_files(dir.path());
    let mut got = Vec::new();
    read(
        &path,
        5,
        &ReadOptions::default(),
        &mut |e| {
            got.push(e);
            if got.len() == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
        &|| false,
    )
    .unwrap();
    assert_eq!(numbers(&got), [0, 1, 2, 3]);
}

#[test]
fn a_missing_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    assert!(read_all(&path, 3).is_empty());
    assert!(read_with(&path, 3, &opts(Some(5), None, None)).is_empty());
    assert!(read_all(&dir.path().join("no/such/dir/c-json.log"), 3).is_empty());
}

/// Garbage of every kind between good entries, forwards and through tail.
#[test]
fn malformed_and_truncated_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut text = Vec::new();
    let mut good = Vec::new();
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"   ".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\x00\x01\x02\xff\xfe".to_vec(),
        line_at(100).as_bytes()[..30].to_vec(), // cut short
        line_at(101).as_bytes()[..line_at(101).len() - 1].to_vec(), // without its brace
        format!("{}{}", line_at(102), line_at(103)).into_bytes(), // two on one line
        entry_line("x\\n", "stdin", &rfc3339_nano(t(104))).into_bytes(),
        entry_line("x\\n", "stdout", "2026-13-45T99:99:99Z").into_bytes(),
        entry_line("x\\n", "stdout", "").into_bytes(),
        br#"{"log":5,"stream":"stdout","time":"2026-12-04T21:00:00Z"}"#.to_vec(),
        br#"{"log":"\ud800","stream":"stdout","time":"2026-12-04T21:00:00Z"}"#.to_vec(),
        br#"{"log":"x","stream":"stdout","time":"2026-12-04T21:00:00Z"} trailing"#.to_vec(),
        vec![b'z'; 3 * 1024 * 1024], // far longer than any entry
    ];
    for (i, b) in bad.iter().enumerate() {
        text.extend_from_slice(line_at(i as u64).as_bytes());
        text.push(b'\n');
        good.push(i as u64);
        text.extend_from_slice(b);
        text.push(b'\n');
    }
    // A last entry without its newline is still an entry once the file is done.
    text.extend_from_slice(line_at(50).as_bytes());
    good.push(50);
    std::fs::write(&path, &text).unwrap();
    assert_eq!(numbers(&read_all(&path, 1)), good);
    assert_eq!(
        numbers(&read_with(&path, 1, &opts(Some(1000), None, None))),
        good
    );
    assert_eq!(
        numbers(&read_with(&path, 1, &opts(Some(3), None, None))),
        good[good.len() - 3..]
    );
    // A file that ends in a piece of an entry: skipped.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"\n{\"log\":\"cut").unwrap();
    assert_eq!(numbers(&read_all(&path, 1)), good);
    assert_eq!(
        numbers(&read_with(&path, 1, &opts(Some(2), None, None))),
        good[good.len() - 2..]
    );
}

/// Tail reads from the end: a log whose start is 8 GiB without a newline (a sparse file)
/// gives its last entries at once.
#[test]
fn tail_does_not_read_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(8 << 30).unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"\n").unwrap();
    for n in 0..10 {
        writeln!(f, "{}", line_at(n)).unwrap();
    }
    let start = Instant::now();
    assert_eq!(
        numbers(&read_with(&path, 1, &opts(Some(3), None, None))),
        [7, 8, 9]
    );
    assert_eq!(
        numbers(&read_with(&path, 1, &opts(Some(3), None, Some(5)))),
        [3, 4, 5]
    );
    assert_eq!(
        numbers(&read_with(&path, 1, &opts(Some(100), Some(6), None))),
        [6, 7, 8, 9]
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn rotated_files_with_garbage_and_gaps() {
    // A missing middle file, an empty file and garbage in a rotated one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    std::fs::write(
        rotated_path(&path, 3),
        format!("{}\ngarbage\n{}\n", line_at(0), line_at(1)),
    )
    .unwrap();
    std::fs::write(rotated_path(&path, 1), "").unwrap();
    std::fs::write(&path, format!("{}\n", line_at(2))).unwrap();
    assert_eq!(numbers(&read_all(&path, 4)), [0, 1, 2]);
    assert_eq!(
        numbers(&read_with(&path, 4, &opts(Some(2), None, None))),
        [1, 2]
    );
}
