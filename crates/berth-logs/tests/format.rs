//! The writer's output byte for byte (Docker's json-file format) and read back.

mod common;

use berth_logs::{MAX_LINE, Stream, parse_rfc3339, rfc3339_nano};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

/// Docker's escaping of one byte on its own, written out as a table (see moby's
/// `ffjsonWriteJSONBytesAsString`): a lone byte >= 0x80 is never valid UTF-8.
fn docker_escape_byte(b: u8) -> String {
    match b {
        b'"' => "\\\"".into(),
        b'\\' => "\\\\".into(),
        b'\n' => "\\n".into(),
        b'\r' => "\\r".into(),
        0x00..=0x1f | b'<' | b'>' | b'&' => format!("\\u{b:04x}"),
        0x80..=0xff => "\\ufffd".into(),
        _ => char::from(b).to_string(),
    }
}

/// The `log` field of a raw line, as written (still escaped).
fn raw_log(line: &str) -> &str {
    let rest = line
        .strip_prefix(r#"{"log":""#)
        .expect("starts with the log field");
    let end = rest.rfind(r#"","stream":"#).expect("then the stream");
    &rest[..end]
}

#[test]
fn every_byte_escaped_as_docker_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    for b in 0..=255u8 {
        w.write(Stream::Stdout, &[b'x', b, b'y', b'\n']).unwrap();
    }
    let lines = raw_lines(&path);
    // Byte 10 ends its line: "x\n" then "y\n".
    assert_eq!(lines.len(), 257);
    let mut expected = Vec::new();
    for b in 0..=255u8 {
        if b == b'\n' {
            expected.push("x\\n".to_owned());
            expected.push("y\\n".to_owned());
        } else {
            expected.push(format!("x{}y\\n", docker_escape_byte(b)));
        }
    }
    let got: Vec<&str> = lines.iter().map(|l| raw_log(l)).collect();
    assert_eq!(got, expected);
    for l in &lines {
        let time = l
            .rsplit_once(r#""time":""#)
            .unwrap()
            .1
            .strip_suffix("\"}")
            .unwrap();
        assert!(l.contains(r#"","stream":"stdout","time":""#), "{l}");
        // Go's RFC3339Nano: UTC, no trailing zeros in the fraction.
        assert!(
            time.ends_with('Z') && !time.ends_with("0Z") && !time.ends_with(".Z"),
            "{time}"
        );
        assert_eq!(rfc3339_nano(parse_rfc3339(time).unwrap()), time);
    }
    // Read back: the bytes, each invalid one as U+FFFD.
    let entries = read_all(&path, 1);
    assert_eq!(entries.len(), 257);
    let mut i = 0;
    for b in 0..=255u8 {
        if b == b'\n' {
            assert_eq!(entries[i].line, b"x\n");
            assert_eq!(entries[i + 1].line, b"y\n");
            i += 2;
        } else {
            assert_eq!(
                entries[i].line,
                go_lossy(&[b'x', b, b'y', b'\n']),
                "byte {b:#04x}"
            );
            i += 1;
        }
    }
}

#[test]
fn invalid_utf8_html_and_separators() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    let cases: &[(&[u8], &str)] = &[
        (
            b"<script>alert('&')</script>\n",
            r"\u003cscript\u003ealert('\u0026')\u003c/script\u003e\n",
        ),
        ("a\u{2028}b\u{2029}c\n".as_bytes(), r"a\u2028b\u2029c\n"),
        (
            "é ß € 😀 \u{fffd} \u{202a}\n".as_bytes(),
            "é ß € 😀 \u{fffd} \u{202a}\\n",
        ),
        (b"cut \xe2\x82 short\n", r"cut \ufffd\ufffd short\n"),
        (b"lone \x80\xbf cont\n", r"lone \ufffd\ufffd cont\n"),
        (
            b"overlong \xc0\x80 \xe0\x80\xaf\n",
            r"overlong \ufffd\ufffd \ufffd\ufffd\ufffd\n",
        ),
        (
            b"surrogate \xed\xa0\x80\n",
            r"surrogate \ufffd\ufffd\ufffd\n",
        ),
        (
            b"too big \xf4\x90\x80\x80 \xf5\x80\n",
            r"too big \ufffd\ufffd\ufffd\ufffd \ufffd\ufffd\n",
        ),
        (b"max \xf4\x8f\xbf\xbf\n", "max \u{10ffff}\\n"),
        (
            b"tab\tbell\x07 del\x7f esc\x1b[0m\n",
            "tab\\u0009bell\\u0007 del\x7f esc\\u001b[0m\\n",
        ),
        (
            b"quote \" backslash \\ slash /\n",
            r#"quote \" backslash \\ slash /\n"#,
        ),
    ];
    for (input, _) in cases {
        w.write(Stream::Stderr, input).unwrap();
    }
    let lines = raw_lines(&path);
    let got: Vec<&str> = lines.iter().map(|l| raw_log(l)).collect();
    let want: Vec<&str> = cases.iter().map(|c| c.1).collect();
    assert_eq!(got, want);
    let entries = read_all(&path, 1);
    for (e, (input, _)) in entries.iter().zip(cases) {
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.line, go_lossy(input));
    }
}

#[test]
fn long_lines_split_at_16k() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    // 40000 bytes and a newline, given in odd chunks.
    let long: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for chunk in long.chunks(999) {
        w.write(Stream::Stdout, chunk).unwrap();
    }
    w.write(Stream::Stdout, b"\n").unwrap();
    // Exactly 16 KiB and a newline: Docker's buffer fills first, the newline is an entry.
    w.write(Stream::Stdout, &[b'b'; MAX_LINE]).unwrap();
    w.write(Stream::Stdout, b"\n").unwrap();
    // One byte less fits in one entry.
    let mut fits = vec![b'c'; MAX_LINE - 1];
    fits.push(b'\n');
    w.write(Stream::Stdout, &fits).unwrap();
    // A cut inside a UTF-8 sequence moves before it.
    let mut euro = vec![b'd'; MAX_LINE - 1];
    euro.extend_from_slice("€\n".as_bytes());
    w.write(Stream::Stdout, &euro).unwrap();
    let e = read_all(&path, 1);
    let lens: Vec<(usize, bool)> = e.iter().map(|e| (e.line.len(), e.partial())).collect();
    assert_eq!(
        lens,
        vec![
            (MAX_LINE, true),
            (MAX_LINE, true),
            (40_000 - 2 * MAX_LINE + 1, false),
            (MAX_LINE, true),
            (1, false),
            (MAX_LINE, false),
            (MAX_LINE - 1, true),
            (4, false),
        ]
    );
    let joined: Vec<u8> = e[..3].iter().flat_map(|e| e.line.clone()).collect();
    assert_eq!(joined[..40_000], long[..]);
    assert_eq!(e[4].line, b"\n");
    assert_eq!(e[7].line, "€\n".as_bytes());
    // Each piece is one line of the file.
    assert_eq!(raw_lines(&path).len(), 8);
}

#[test]
fn tty_crlf_partial_lines_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    w.write(Stream::Stdout, b"$ ls\r\nbin  etc\r\n").unwrap();
    // A line in pieces, the two streams interleaved: each keeps its own.
    w.write(Stream::Stdout, b"out one, ").unwrap();
    w.write(Stream::Stderr, b"err one, ").unwrap();
    w.write(Stream::Stdout, b"out two\nout three").unwrap();
    w.write(Stream::Stderr, b"err two\n").unwrap();
    w.write(Stream::Stderr, b"prompt> ").unwrap();
    // Nothing of an unended line reaches the file before flush.
    assert_eq!(read_all(&path, 1).len(), 4);
    w.flush().unwrap();
    w.flush().unwrap(); // nothing left: nothing written
    let lines = raw_lines(&path);
    let got: Vec<&str> = lines.iter().map(|l| raw_log(l)).collect();
    assert_eq!(
        got,
        [
            "$ ls\\r\\n",
            "bin  etc\\r\\n",
            "out one, out two\\n",
            "err one, err two\\n",
            "out three",
            "prompt\\u003e "
        ]
    );
    let e = read_all(&path, 1);
    assert_eq!(
        stream_texts(&e, Stream::Stdout),
        [
            "$ ls\r\n",
            "bin  etc\r\n",
            "out one, out two\n",
            "out three"
        ]
    );
    assert_eq!(
        stream_texts(&e, Stream::Stderr),
        ["err one, err two\n", "prompt> "]
    );
    assert!(e[4].partial() && !e[3].partial());
    assert!(lines[4].contains(r#""stream":"stdout""#) && lines[5].contains(r#""stream":"stderr""#));
}

#[test]
fn times_are_when_written_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let before = SystemTime::now();
    let mut w = writer(&path, 0, 1);
    for i in 0..200 {
        w.write(Stream::Stdout, format!("{i}\n").as_bytes())
            .unwrap();
    }
    let after = SystemTime::now();
    let e = read_all(&path, 1);
    assert_eq!(e.len(), 200);
    assert!(e.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(e[0].time >= before && e[199].time <= after);
    assert_eq!(
        e[0].timestamp().len(),
        "2026-12-04T21:03:58.123456789Z".len()
    );
}

#[test]
fn reopen_appends_mode_0640_and_a_broken_tail_is_fenced_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    w.write(Stream::Stdout, b"first run\n").unwrap();
    drop(w);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    // The container restarts: the log goes on.
    let mut w = writer(&path, 0, 1);
    w.write(Stream::Stdout, b"second run\n").unwrap();
    drop(w);
    assert_eq!(texts(&read_all(&path, 1)), ["first run\n", "second run\n"]);
    // A file that ends in a piece of an entry (a crash): the next entry starts a new line,
    // the piece is skipped.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"log":"half an ent"#);
    std::fs::write(&path, &bytes).unwrap();
    let mut w = writer(&path, 0, 1);
    w.write(Stream::Stdout, b"third run\n").unwrap();
    let lines = raw_lines(&path);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[2], r#"{"log":"half an ent"#);
    assert_eq!(
        texts(&read_all(&path, 1)),
        ["first run\n", "second run\n", "third run\n"]
    );
    // A file with a mode of its own is set back to 0640.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    drop(writer(&path, 0, 1));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

#[test]
fn one_write_syscall_per_batch() {
    // Many lines in one chunk: written together, and a file read mid-way never holds a
    // piece of an entry (one write(2) per batch; a reader sees whole lines or none).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = writer(&path, 0, 1);
    let chunk: Vec<u8> = (0..500)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    w.write(Stream::Stdout, &chunk).unwrap();
    let e = read_all(&path, 1);
    assert_eq!(e.len(), 500);
    assert_eq!(e[499].line, b"line 499\n");
}
