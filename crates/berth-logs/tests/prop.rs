//! Property: whatever chunks a container writes on its two streams, reading the log back
//! gives, per stream, the concatenation of its chunks (invalid UTF-8 as Go's U+FFFD),
//! split only at newlines, 16 KiB cuts and the final flush, across rotations.

mod common;

use berth_logs::{MAX_LINE, ReadOptions, Stream};
use common::*;
use proptest::prelude::*;

/// Pieces of output: text with the characters the escaping cares about, newlines, a
/// terminal's CRLF, any character, any bytes, and runs long enough to be cut at 16 KiB
/// (ASCII, or two- and four-byte characters so that cuts fall inside them).
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(b"ab <>&\"\\/\t\x00\x1f\x7f".to_vec()), 0..24),
        3 => Just(b"\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        2 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        2 => prop::collection::vec(any::<u8>(), 0..6),
        1 => (1usize..20_000).prop_map(|n| vec![b'l'; n]),
        1 => (1usize..12_000).prop_map(|n| "é".repeat(n).into_bytes()),
        1 => (1usize..6_000).prop_map(|n| "😀".repeat(n).into_bytes()),
    ]
}

fn chunk() -> impl Strategy<Value = (bool, Vec<u8>)> {
    (
        any::<bool>(),
        prop::collection::vec(piece(), 0..6).prop_map(|p| p.concat()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn read_back_is_the_input(
        chunks in prop::collection::vec(chunk(), 0..30),
        max_size in prop::sample::select(vec![0u64, 3000, 40_000]),
        flush in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let max_files = 1000; // nothing removed: everything can be read back
        let mut w = writer(&path, max_size, max_files);
        let mut input = [Vec::new(), Vec::new()];
        for (err, data) in &chunks {
            let stream = if *err { Stream::Stderr } else { Stream::Stdout };
            w.write(stream, data).unwrap();
            input[usize::from(*err)].extend_from_slice(data);
        }
        if flush {
            w.flush().unwrap();
        } else {
            // Without a flush, what follows the last newline is still in the writer.
            for inp in &mut input {
                let end = inp.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                // ... unless a 16 KiB cut wrote it already: compare whole lines only.
                inp.truncate(end);
            }
        }
        let entries = read_all(&path, max_files);
        let mut lines = 0;
        for f in files(&path, max_files) {
            lines += raw_lines(&f).len();
            if max_size > 0 {
                // A file is over max_size only when it holds one entry.
                let size = std::fs::metadata(&f).unwrap().len();
                prop_assert!(size <= max_size || raw_lines(&f).len() == 1);
            }
        }
        prop_assert_eq!(lines, entries.len(), "every line of the files is an entry");
        for (s, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let mine: Vec<_> = entries.iter().filter(|e| e.stream == stream).collect();
            let mut got: Vec<u8> = mine.iter().flat_map(|e| e.line.clone()).collect();
            if !flush {
                let end = got.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                got.truncate(end);
            }
            prop_assert_eq!(got, go_lossy(&input[s]));
            // Pieces without a newline: 16 KiB cuts (at most 3 bytes held back before a
            // split character), but the last one (flush).
            for (i, e) in mine.iter().enumerate() {
                let last = i + 1 == mine.len();
                prop_assert!(!e.partial() || last || e.line.len() >= MAX_LINE - 3, "a short piece");
                prop_assert!(!e.line[..e.line.len().saturating_sub(1)].contains(&b'\n'));
            }
        }
        // Read from the end, the same.
        let tail = read_with(&path, max_files, &ReadOptions { tail: Some(entries.len()), ..Default::default() });
        prop_assert_eq!(&tail, &entries);
        if entries.len() > 2 {
            let tail = read_with(&path, max_files, &ReadOptions { tail: Some(2), ..Default::default() });
            prop_assert_eq!(&tail[..], &entries[entries.len() - 2..]);
        }
    }
}
