//! The writer: a container's output as json-file entries, rotated by size. Used by the shim
//! (one small single-threaded process per container), so it is std only: no serde, no
//! formatting crate, a few buffers that stay small.

use crate::Stream;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Docker's longest entry: a line longer than this is written as several entries, each of
/// at most this many bytes of the container's output and without a newline (partial
/// messages), the last one with it.
pub const MAX_LINE: usize = 16 * 1024;

/// Entries are gathered and written with one `write(2)` once this many bytes are waiting
/// (and at the end of every [`Writer::write`]).
const BATCH: usize = 32 * 1024;

/// The mode of a log file (Docker's).
const MODE: u32 = 0o640;

/// Where the log goes and how it rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The current file; rotated files are `path.1` (the newest) … `path.(max_files-1)`.
    pub path: PathBuf,
    /// Rotate before an entry would make the file larger than this; 0 = never.
    pub max_size: u64,
    /// Files kept, the current one included (`>= 1`; 0 is taken as 1). With 1 the file is
    /// truncated instead of renamed.
    pub max_files: u32,
}

/// `path.n`: the n-th rotated file (`path` itself for 0).
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(n.to_string());
    PathBuf::from(name)
}

/// An error with the path it concerns, keeping its kind (and errno) for the caller.
fn at(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Writes a container's output as json-file entries. See the crate documentation.
///
/// A failed write (a full disk) leaves the file made of whole entries: what a `write(2)`
/// wrote of an entry is truncated away (should even that fail, the next write starts with a
/// newline, so the piece is a line of its own that readers skip). The entries of a failed
/// write are dropped; the next [`Writer::write`] tries again.
#[derive(Debug)]
pub struct Writer {
    cfg: LogConfig,
    file: Option<File>,
    /// The size of the current file as this writer made it.
    size: u64,
    /// The file does not end with a newline (a piece of an entry could not be removed, or
    /// the file was found so): the next bytes written start with one.
    broken_tail: bool,
    /// The start of a line not yet ended, per stream (less than `MAX_LINE` bytes).
    pending: [Vec<u8>; 2],
    /// Entries encoded but not yet written.
    batch: Vec<u8>,
    /// The first error of the current call.
    error: Option<io::Error>,
}

impl Writer {
    /// Opens (creating it with mode 0640 if missing) the log file to append to it: a
    /// restarted container keeps its log.
    pub fn open(cfg: LogConfig) -> io::Result<Writer> {
        let mut w = Writer {
            cfg: LogConfig {
                max_files: cfg.max_files.max(1),
                ..cfg
            },
            file: None,
            size: 0,
            broken_tail: false,
            pending: [Vec::new(), Vec::new()],
            batch: Vec::new(),
            error: None,
        };
        w.open_file()?;
        Ok(w)
    }

    fn open_file(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            let path = &self.cfg.path;
            // Readable too: the last byte is checked.
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(MODE)
                .open(path)
                .map_err(|e| at(path, "opening log", e))?;
            let meta = file.metadata().map_err(|e| at(path, "opening log", e))?;
            if meta.permissions().mode() & 0o7777 != MODE {
                // The umask may have taken bits away.
                file.set_permissions(std::fs::Permissions::from_mode(MODE))
                    .map_err(|e| at(path, "opening log", e))?;
            }
            self.size = meta.len();
            self.broken_tail = false;
            if self.size > 0 {
                let mut last = [0u8];
                file.read_exact_at(&mut last, self.size - 1)
                    .map_err(|e| at(path, "opening log", e))?;
                self.broken_tail = last[0] != b'\n';
            }
            self.file = Some(file);
        }
        Ok(())
    }

    /// Takes a chunk of the container's output on `stream`: every line it ends becomes an
    /// entry timestamped now (a line longer than [`MAX_LINE`] becomes several), and the
    /// start of a line not yet ended is kept for the next chunk. Returns the first error;
    /// the writer stays usable.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let s = stream as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let pending_len = self.pending[s].len();
            let room = MAX_LINE - pending_len;
            let take = room.min(rest.len());
            if let Some(nl) = rest[..take].iter().position(|&b| b == b'\n') {
                let (line, tail) = rest.split_at(nl + 1);
                if pending_len == 0 {
                    self.entry(stream, line);
                } else {
                    let mut joined = std::mem::take(&mut self.pending[s]);
                    joined.extend_from_slice(line);
                    self.entry(stream, &joined);
                    joined.clear();
                    self.pending[s] = joined;
                }
                rest = tail;
            } else if take == room {
                // MAX_LINE bytes without a newline: a partial entry, cut before a UTF-8
                // sequence the cut would split (the rest of it starts the next entry).
                if pending_len == 0 {
                    let cut = utf8_cut(&rest[..take]);
                    self.entry(stream, &rest[..cut]);
                    rest = &rest[cut..];
                } else {
                    let mut joined = std::mem::take(&mut self.pending[s]);
                    joined.extend_from_slice(&rest[..take]);
                    let cut = utf8_cut(&joined);
                    self.entry(stream, &joined[..cut]);
                    joined.drain(..cut);
                    self.pending[s] = joined;
                    rest = &rest[take..];
                }
            } else {
                self.pending[s].extend_from_slice(rest);
                rest = &[];
            }
        }
        self.finish()
    }

    /// Writes out the lines not yet ended, as entries without a newline (at the
    /// container's exit, or before the writer is dropped).
    pub fn flush(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut line = std::mem::take(&mut self.pending[stream as usize]);
            if !line.is_empty() {
                self.entry(stream, &line);
            }
            line.clear();
            self.pending[stream as usize] = line;
        }
        self.finish()
    }

    /// Writes what is batched and returns the call's first error.
    fn finish(&mut self) -> io::Result<()> {
        self.write_batch(self.batch.len());
        // The buffers of a burst of long lines are not kept: the shim's memory is counted.
        for buf in self.pending.iter_mut().chain([&mut self.batch]) {
            if buf.capacity() > 2 * BATCH && buf.len() <= BATCH {
                buf.shrink_to(BATCH);
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: io::Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Encodes one entry into the batch, rotating first if it would not fit in the file.
    fn entry(&mut self, stream: Stream, line: &[u8]) {
        if let Err(e) = self.open_file() {
            self.fail(e);
            return;
        }
        if self.batch.is_empty() && self.broken_tail {
            self.batch.push(b'\n');
        }
        let start = self.batch.len();
        crate::json::push_entry(&mut self.batch, stream, line, SystemTime::now());
        let before = self.size + start as u64;
        if self.cfg.max_size > 0
            && before > 0
            && before + (self.batch.len() - start) as u64 > self.cfg.max_size
        {
            self.write_batch(start);
            if let Err(e) = self.rotate() {
                // Dropped rather than written past the limit.
                self.batch.truncate(start);
                self.fail(e);
                return;
            }
        }
        if self.batch.len() >= BATCH {
            self.write_batch(self.batch.len());
        }
    }

    /// Writes `batch[..n]` with one `write(2)` (more only after a short write) and removes it
    /// from the batch, written or not. On a failure the file is cut back to its last whole
    /// entry.
    fn write_batch(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let Some(file) = self.file.as_mut() else {
            // Opening failed and was reported; the entries are dropped.
            self.batch.drain(..n);
            return;
        };
        let bytes = &self.batch[..n];
        let mut written = 0;
        let mut error = None;
        while written < n {
            match file.write(&bytes[written..]) {
                Ok(0) => {
                    error = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(k) => written += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            // Keep the whole entries that made it; cut the piece of the next one.
            let keep = bytes[..written]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if keep < written && file.set_len(self.size + keep as u64).is_ok() {
                written = keep;
            }
            let e = at(&self.cfg.path, "writing log", e);
            self.fail(e);
        }
        self.size += written as u64;
        if written > 0 {
            self.broken_tail = self.batch[written - 1] != b'\n';
        }
        self.batch.drain(..n);
    }

    /// Docker's rotation: with one file, truncate it; else drop `path.(max_files-1)`,
    /// rename `path.(k-1)` to `path.k` down to `path` → `path.1` (oldest first), and start
    /// a new `path`.
    fn rotate(&mut self) -> io::Result<()> {
        let path = self.cfg.path.clone();
        let n = self.cfg.max_files;
        if n <= 1 {
            if let Some(file) = &self.file {
                file.set_len(0)
                    .map_err(|e| at(&path, "truncating log", e))?;
            }
            self.size = 0;
            self.broken_tail = false;
            return Ok(());
        }
        let oldest = rotated_path(&path, n - 1);
        match std::fs::remove_file(&oldest) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(at(&oldest, "removing log", e));
            }
            _ => {}
        }
        for k in (2..n).rev() {
            let from = rotated_path(&path, k - 1);
            match std::fs::rename(&from, rotated_path(&path, k)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(at(&from, "rotating log", e));
                }
                _ => {}
            }
        }
        std::fs::rename(&path, rotated_path(&path, 1)).map_err(|e| at(&path, "rotating log", e))?;
        self.file = None;
        self.open_file()
    }
}

/// Where to cut `buf` (a full `MAX_LINE`) so that no valid UTF-8 sequence is split: before
/// a sequence that is valid so far but runs past the end, else at the end.
fn utf8_cut(buf: &[u8]) -> usize {
    let end = buf.len();
    for start in (end.saturating_sub(3)..end).rev() {
        let b = buf[start];
        if b & 0xc0 == 0x80 {
            continue; // a continuation byte: look further back for its lead
        }
        if b >= 0xc0
            && matches!(std::str::from_utf8(&buf[start..]), Err(e) if e.error_len().is_none())
        {
            return start;
        }
        break;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_before_a_split_sequence() {
        let mut buf = vec![b'a'; 10];
        assert_eq!(utf8_cut(&buf), 10);
        buf.extend_from_slice("€".as_bytes());
        assert_eq!(utf8_cut(&buf), 13);
        assert_eq!(utf8_cut(&buf[..12]), 10);
        assert_eq!(utf8_cut(&buf[..11]), 10);
        buf.extend_from_slice("😀".as_bytes());
        assert_eq!(utf8_cut(&buf), 17);
        assert_eq!(utf8_cut(&buf[..16]), 13);
        assert_eq!(utf8_cut(&buf[..14]), 13);
        // Invalid sequences are not kept back: they are invalid either way.
        assert_eq!(utf8_cut(b"aaa\xe2\x28"), 5);
        assert_eq!(utf8_cut(b"aaa\xed\xa0"), 5); // a surrogate's start
        assert_eq!(utf8_cut(b"aaa\xff"), 4);
        assert_eq!(utf8_cut(b"\x80\x80\x80\x80"), 4);
    }

    #[test]
    fn rotated_names() {
        assert_eq!(
            rotated_path(Path::new("/x/c-json.log"), 0),
            Path::new("/x/c-json.log")
        );
        assert_eq!(
            rotated_path(Path::new("/x/c-json.log"), 3),
            Path::new("/x/c-json.log.3")
        );
    }
}
