//! Docker's json-file log driver.
//!
//! A container's output is kept as one JSON object per line,
//! `{"log":"…","stream":"stdout","time":"2026-12-04T21:03:58.123456789Z"}`, byte for byte as
//! dockerd writes it: `log` holds the line with its newline (a terminal's `\r\n` stays), a
//! line longer than 16 KiB is split into entries without the newline, and `time` is when the
//! entry was written, in UTC, as Go's `RFC3339Nano` (trailing zeros of the fraction dropped).
//! The escaping is moby's `jsonlog` encoder's: `"` `\` `\n` `\r` with a backslash, every
//! other control character (tab included) and `<` `>` `&` as `\u00XX`, U+2028/U+2029 as
//! `\u2028`/`\u2029`, each byte that does not start valid UTF-8 as `\ufffd` (Go's
//! `utf8.DecodeRune`); checked against Go 1.19's `encoding/json`, which differs only in
//! writing tab as `\t`.
//!
//! - [`Writer`] (the per-container shim): splits output into lines, timestamps them, writes
//!   each batch with one `write(2)`, rotates by size as Docker does (`path` → `path.1` → …),
//!   survives a full disk. It uses std only: no serde, so the shim stays small.
//! - [`read`] (the daemon, `docker logs`): the rotated files oldest first, then the current
//!   one; `tail` read from the end, `since`/`until`, and `follow`, which, unlike Docker's,
//!   keeps following across rotations. Malformed lines are skipped.

mod json;
mod reader;
mod time;
mod writer;

pub use reader::{Entry, ReadOptions, read};
pub use time::{parse_rfc3339, rfc3339_nano, rfc3339_nano_fixed};
pub use writer::{LogConfig, MAX_LINE, Writer, rotated_path};

/// The stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    /// The name in the file: `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}
