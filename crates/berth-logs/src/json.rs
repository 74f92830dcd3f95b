//! A log entry as one line of JSON, escaped by hand exactly as Docker's json-file driver
//! does it (moby's `jsonlog.JSONLogs.MarshalJSONBuf`), so the files are byte-compatible:
//!
//! - `"` and `\` get a backslash, `\n` and `\r` their short forms;
//! - every other byte below 0x20 (`\t` included: Docker's encoder has no short form for it,
//!   unlike Go's `encoding/json`), and `<`, `>`, `&`, becomes `\u00XX` (lower-case hex);
//! - U+2028 and U+2029 become `\u2028` and `\u2029`;
//! - each byte that does not start a valid UTF-8 sequence (Go's `utf8.DecodeRune` returning
//!   `RuneError` of size 1: stray continuation bytes, overlong forms, surrogates, code points
//!   above U+10FFFF, a sequence cut short) becomes `\ufffd`; valid sequences are copied.
//!
//! No serde: the shim links this.

use crate::Stream;
use std::time::SystemTime;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` escaped as a JSON string (with its quotes).
pub(crate) fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut rest = s;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(v) => (v, 0),
            Err(e) => {
                // Go decodes one byte at a time: every byte of an invalid or cut-short
                // sequence is one U+FFFD (a continuation byte never starts a sequence).
                let bad = e.error_len().unwrap_or(rest.len() - e.valid_up_to());
                // valid_up_to is a char boundary by definition.
                let v = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default();
                (v, bad)
            }
        };
        push_valid(out, valid);
        for _ in 0..invalid {
            out.extend_from_slice(b"\\ufffd");
        }
        rest = &rest[valid.len() + invalid..];
    }
    out.push(b'"');
}

fn push_valid(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0..=0x1f | b'<' | b'>' | b'&' => b"",
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u202");
                out.push(HEX[usize::from(bytes[i + 2] & 0xf)]);
                i += 3;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends one entry, `{"log":…,"stream":…,"time":…}` and its newline, the field order and
/// spelling of Docker's driver.
pub(crate) fn push_entry(out: &mut Vec<u8>, stream: Stream, line: &[u8], time: SystemTime) {
    out.extend_from_slice(b"{\"log\":");
    push_string(out, line);
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    crate::time::push_rfc3339(out, time, false);
    out.extend_from_slice(b"\"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut out = Vec::new();
        push_string(&mut out, s);
        String::from_utf8(out).expect("escaped output is UTF-8")
    }

    #[test]
    fn escapes_as_docker() {
        assert_eq!(esc(b"plain text"), r#""plain text""#);
        assert_eq!(esc(b"a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(esc(b"tab\there\r\n"), r#""tab\u0009here\r\n""#);
        assert_eq!(esc(b"\x00\x01\x1f\x7f"), "\"\\u0000\\u0001\\u001f\x7f\"");
        assert_eq!(
            esc(b"<a href='x'>&amp;</a>"),
            r#""\u003ca href='x'\u003e\u0026amp;\u003c/a\u003e""#
        );
        assert_eq!(
            esc("x\u{2028}y\u{2029}z".as_bytes()),
            r#""x\u2028y\u2029z""#
        );
        assert_eq!(esc("é€😀\u{fffd}".as_bytes()), "\"é€😀\u{fffd}\"");
        // Invalid UTF-8: one U+FFFD per byte, as Go's DecodeRune sees it.
        assert_eq!(esc(b"\xff"), r#""\ufffd""#);
        assert_eq!(esc(b"a\xe2\x82b"), r#""a\ufffd\ufffdb""#);
        assert_eq!(esc(b"\xe2\x82"), r#""\ufffd\ufffd""#);
        assert_eq!(esc(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#); // a surrogate
        assert_eq!(esc(b"\xc0\xaf"), r#""\ufffd\ufffd""#); // overlong '/'
        assert_eq!(esc(b"\xf4\x90\x80\x80"), r#""\ufffd\ufffd\ufffd\ufffd""#); // > U+10FFFF
        assert_eq!(esc(b"\xe2\x80"), r#""\ufffd\ufffd""#); // a cut U+2028
        assert_eq!(esc(b"\xe2\x80\xa8\xe2\x80\xaa"), "\"\\u2028\u{202a}\"");
    }
}
