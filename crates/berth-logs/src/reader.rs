//! The reader: `docker logs` over a json-file log and its rotated files, for the daemon
//! (blocking; run it on a blocking thread).

use crate::Stream;
use crate::writer::rotated_path;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::Deserialize;
use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream: Stream,
    /// When the writer wrote it.
    pub time: SystemTime,
    /// The text, newline included; without one for a piece of a long line or the last
    /// piece of output before the container exited. Invalid UTF-8 the container wrote was
    /// replaced with U+FFFD by the writer.
    pub line: Vec<u8>,
}

impl Entry {
    /// A piece of a line longer than 16 KiB (or output left without a newline at exit).
    pub fn partial(&self) -> bool {
        !self.line.ends_with(b"\n")
    }

    /// The time as `docker logs --timestamps` prints it (nine digits, UTC).
    pub fn timestamp(&self) -> String {
        crate::time::rfc3339_nano_fixed(self.time)
    }
}

/// What to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only entries at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries at or before this time: the read ends at the first entry after it (and,
    /// following, once the clock is a second past it).
    pub until: Option<SystemTime>,
    /// Only the last N entries (of those `since`/`until` let through); `None` = all.
    pub tail: Option<usize>,
    /// After the end, wait for more, across rotations, until `stop()` says so.
    pub follow: bool,
}

/// How often a follower checks `stop()` at the least.
const POLL: Duration = Duration::from_millis(200);
/// After `until`, a follower waits this long for entries timestamped before it.
const UNTIL_GRACE: Duration = Duration::from_secs(1);
/// Read size, forwards and backwards.
const CHUNK: usize = 64 * 1024;
/// A line longer than this is not an entry (the writer's longest is under 100 KiB): it is
/// skipped without being held in memory.
const MAX_ENTRY: usize = 1024 * 1024;

/// Reads the log at `path` (with `path.1` … `path.(max_files-1)`, oldest first) and hands
/// every entry `opts` selects to `sink`, in order, until the end (or, with `follow`, until
/// `stop()` returns true: checked at least every 200 ms, and the file is read to its end
/// once more after it does, so the last output of an exited container is not lost).
///
/// `tail` finds its start reading backwards from the end, so its cost is that of the
/// entries it returns. Lines that are not entries (malformed, cut short, overlong, with an
/// unknown stream or time) are skipped. A missing log is an empty one (a follower waits for
/// it). Returns when `sink` breaks, at the first entry after `until`, or on an I/O error.
///
/// Following goes on across rotations: when `path` is renamed away, the old file is read to
/// its end and the next one from its start (even when several rotations happened in
/// between, as long as the file that followed is still there); a truncated file (one
/// file kept) is read again from its start.
pub fn read(
    path: &Path,
    max_files: u32,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Entry) -> ControlFlow<()>,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    let n = max_files.max(1);
    let mut r = Reader {
        opts,
        sink,
        buf: Vec::new(),
    };
    // Watch before the first read, so no write after it goes unnoticed.
    let watch = if opts.follow {
        Watch::new(path)
    } else {
        Watch::None
    };
    let logs = open_all(path, n)?;
    let (first, offset) = match opts.tail {
        Some(t) if !logs.is_empty() => r.tail_start(&logs, t)?,
        _ => (0, 0),
    };
    let last = logs.len().checked_sub(1);
    let mut current = None;
    for (i, log) in logs.into_iter().enumerate().skip(first) {
        let at = if i == first { offset } else { 0 };
        let mut c = Cursor {
            log,
            line_start: at,
            scan: at,
        };
        if opts.follow && Some(i) == last {
            if r.pump(&mut c, false)?.is_break() {
                return Ok(());
            }
            current = Some(c);
        } else if r.pump(&mut c, true)?.is_break() {
            return Ok(());
        }
    }
    if !opts.follow {
        return Ok(());
    }
    r.follow(path, n, current, stop, &watch)
}

type Id = (u64, u64);

/// An open log file and its identity (device, inode).
struct Log {
    file: File,
    id: Id,
}

fn id_of(meta: &std::fs::Metadata) -> Id {
    (meta.dev(), meta.ino())
}

/// Opens `path`; `None` if it does not exist.
fn open_log(path: &Path) -> io::Result<Option<Log>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("opening log {}: {e}", path.display()),
            ));
        }
    };
    let id = id_of(&file.metadata()?);
    Ok(Some(Log { file, id }))
}

/// Which of `path`, `path.1`, … is the file `id` now; `None` if none.
fn locate(path: &Path, n: u32, id: Id) -> io::Result<Option<u32>> {
    for k in 0..n {
        match std::fs::metadata(rotated_path(path, k)) {
            Ok(m) if id_of(&m) == id => return Ok(Some(k)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Every file of the log, oldest first. Opened newest first, so a rotation while they are
/// opened makes a file show up twice (kept once) rather than go missing.
fn open_all(path: &Path, n: u32) -> io::Result<Vec<Log>> {
    let mut logs: Vec<Log> = Vec::new();
    for k in 0..n {
        if let Some(log) = open_log(&rotated_path(path, k))? {
            if logs.iter().all(|l| l.id != log.id) {
                logs.push(log);
            }
        }
    }
    logs.reverse();
    Ok(logs)
}

/// The file written after `id`, once `id` has been rotated away: the next newer name
/// while `id` stays where it was found (renames go oldest first, so that name was not yet
/// moved), or the oldest file left if `id` was removed. `None` if there is none yet
/// (`path` is created just after the rename).
fn successor(path: &Path, n: u32, id: Id) -> io::Result<Option<Log>> {
    for _ in 0..8 {
        let was = locate(path, n, id)?;
        let newer: Vec<u32> = match was {
            Some(0) => return Ok(None),
            Some(k) => (0..k).rev().collect(),
            None => (0..n).rev().collect(),
        };
        let mut found = None;
        for k in newer {
            if let Some(log) = open_log(&rotated_path(path, k))? {
                if log.id != id {
                    found = Some(log);
                    break;
                }
            }
        }
        let Some(log) = found else { return Ok(None) };
        if was.is_none() || locate(path, n, id)? == was {
            return Ok(Some(log));
        }
        // Rotated again meanwhile: look again.
    }
    Ok(None)
}

/// A position in a file: `line_start` is just after the last newline read (where a
/// follower reads again from, so a piece of an entry cut back by the writer is read
/// anew); `scan` is further only while a line too long to be an entry is skipped.
struct Cursor {
    log: Log,
    line_start: u64,
    scan: u64,
}

/// inotify on the log's directory: its files' writes, creations, renames, truncations.
enum Watch {
    Inotify(Inotify),
    None,
}

impl Watch {
    fn new(path: &Path) -> Watch {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let flags = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CLOSE_WRITE;
        match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            // Without a watch (no directory yet, no inotify) a follower polls.
            Ok(ino) if ino.add_watch(dir, flags).is_ok() => Watch::Inotify(ino),
            _ => Watch::None,
        }
    }

    /// Waits for a change, at most `POLL`.
    fn wait(&self) {
        match self {
            Watch::Inotify(ino) => {
                let mut fds = [PollFd::new(ino.as_fd(), PollFlags::POLLIN)];
                let ms = u16::try_from(POLL.as_millis()).unwrap_or(u16::MAX);
                if matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0) {
                    // Drain what is queued (bounded: a busy writer keeps adding).
                    for _ in 0..16 {
                        if ino.read_events().is_err() {
                            break;
                        }
                    }
                }
            }
            Watch::None => std::thread::sleep(POLL),
        }
    }
}

/// The fields of an entry; others (Docker's `attrs`) are ignored. Docker leaves `log` out
/// when it is empty.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(default, borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let raw: Raw = serde_json::from_slice(line).ok()?;
    let stream = match &*raw.stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let time = crate::time::parse_rfc3339(&raw.time)?;
    Some(Entry {
        stream,
        time,
        line: raw.log.into_owned().into_bytes(),
    })
}

/// `pread` that retries on EINTR.
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, pos) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

struct Reader<'a> {
    opts: &'a ReadOptions,
    sink: &'a mut dyn FnMut(Entry) -> ControlFlow<()>,
    buf: Vec<u8>,
}

impl Reader<'_> {
    /// One line: skipped, handed to the sink, or the end (`until` passed, the sink broke).
    fn line(&mut self, line: &[u8]) -> ControlFlow<()> {
        let Some(e) = parse_line(line) else {
            return ControlFlow::Continue(());
        };
        if self.opts.since.is_some_and(|s| e.time < s) {
            return ControlFlow::Continue(());
        }
        if self.opts.until.is_some_and(|u| e.time > u) {
            return ControlFlow::Break(());
        }
        (self.sink)(e)
    }

    /// Reads from the cursor to the end of the file, handing on every line ended by a
    /// newline. With `done` (nothing more will be written to the file) a last line without
    /// one is tried too and the cursor moves to the end.
    fn pump(&mut self, c: &mut Cursor, done: bool) -> io::Result<ControlFlow<()>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut skipping = c.scan > c.line_start;
        let mut base = c.scan; // the file offset of buf[0]
        let mut searched = 0; // buf[..searched] holds no newline
        let flow = loop {
            let old = buf.len();
            buf.resize(old + CHUNK, 0);
            let got = match read_at(&c.log.file, &mut buf[old..], base + old as u64) {
                Ok(k) => k,
                Err(e) => {
                    self.buf = buf;
                    return Err(e);
                }
            };
            buf.truncate(old + got);
            if got == 0 {
                if done {
                    if !skipping && !buf.is_empty() && self.line(&buf).is_break() {
                        break ControlFlow::Break(());
                    }
                    c.line_start = base + buf.len() as u64;
                    c.scan = c.line_start;
                }
                break ControlFlow::Continue(());
            }
            let mut start = 0;
            let mut flow = ControlFlow::Continue(());
            while let Some(i) = buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                if skipping {
                    skipping = false;
                } else {
                    flow = self.line(&buf[start..end]);
                }
                start = end + 1;
                searched = start;
                c.line_start = base + start as u64;
                c.scan = c.line_start;
                if flow.is_break() {
                    break;
                }
            }
            if flow.is_break() {
                break flow;
            }
            buf.drain(..start);
            base += start as u64;
            searched = buf.len();
            if skipping || buf.len() > MAX_ENTRY {
                // Not an entry: forget it, look for its end.
                skipping = true;
                base += buf.len() as u64;
                buf.clear();
                searched = 0;
                c.scan = base;
            }
        };
        self.buf = buf;
        if self.buf.capacity() > 4 * CHUNK {
            self.buf = Vec::new();
        }
        Ok(flow)
    }

    /// Where the last `n` entries (of those `since`/`until` let through) start: the index
    /// of a file in `logs` and an offset in it. Reads backwards, and stops early at an
    /// entry before `since` (entries are written in time order).
    fn tail_start(&mut self, logs: &[Log], n: usize) -> io::Result<(usize, u64)> {
        let last = logs.len() - 1;
        if n == 0 {
            return Ok((last, logs[last].file.metadata()?.len()));
        }
        let mut count = 0;
        for (i, log) in logs.iter().enumerate().rev() {
            let mut lines = BackLines::new(&log.file)?;
            while let Some((start, end)) = lines.next()? {
                let Some(e) = lines.line(start, end).and_then(parse_line) else {
                    continue;
                };
                if self.opts.until.is_some_and(|u| e.time > u) {
                    continue;
                }
                if self.opts.since.is_some_and(|s| e.time < s) {
                    return Ok((i, (end + 1).min(lines.size)));
                }
                count += 1;
                if count == n {
                    return Ok((i, start));
                }
            }
        }
        Ok((0, 0))
    }

    fn follow(
        &mut self,
        path: &Path,
        n: u32,
        mut current: Option<Cursor>,
        stop: &dyn Fn() -> bool,
        watch: &Watch,
    ) -> io::Result<()> {
        loop {
            let stopping = stop();
            match current.as_mut() {
                None => {
                    // No log yet: once there is, read it all from its start.
                    let mut logs = open_all(path, n)?;
                    if let Some(newest) = logs.pop() {
                        for log in logs {
                            let mut c = Cursor {
                                log,
                                line_start: 0,
                                scan: 0,
                            };
                            if self.pump(&mut c, true)?.is_break() {
                                return Ok(());
                            }
                        }
                        current = Some(Cursor {
                            log: newest,
                            line_start: 0,
                            scan: 0,
                        });
                        continue;
                    }
                }
                Some(c) => {
                    if truncated(c)? {
                        c.line_start = 0;
                        c.scan = 0;
                    }
                    if self.pump(c, false)?.is_break() {
                        return Ok(());
                    }
                    let is_current = match std::fs::metadata(path) {
                        Ok(m) => id_of(&m) == c.log.id,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                        Err(e) => return Err(e),
                    };
                    if !is_current {
                        // Renamed away: the writer is done with it. Finish it, go on with
                        // the next one.
                        if self.pump(c, true)?.is_break() {
                            return Ok(());
                        }
                        if let Some(next) = successor(path, n, c.log.id)? {
                            *c = Cursor {
                                log: next,
                                line_start: 0,
                                scan: 0,
                            };
                            continue;
                        }
                    }
                }
            }
            if stopping {
                return Ok(());
            }
            if let Some(until) = self.opts.until {
                if SystemTime::now()
                    .duration_since(until)
                    .is_ok_and(|d| d > UNTIL_GRACE)
                {
                    return Ok(());
                }
            }
            watch.wait();
        }
    }
}

/// The file was truncated under the cursor (one file kept: the writer truncates instead
/// of renaming): shorter than where we are, or no longer a line end before our position.
fn truncated(c: &Cursor) -> io::Result<bool> {
    let size = c.log.file.metadata()?.len();
    if size < c.scan {
        return Ok(true);
    }
    if c.line_start == 0 {
        return Ok(false);
    }
    let mut b = [0u8];
    Ok(read_at(&c.log.file, &mut b, c.line_start - 1)? != 1 || b[0] != b'\n')
}

/// The lines of a file from its end: each `(start, end)`, the newline excluded.
struct BackLines<'f> {
    file: &'f File,
    size: u64,
    /// File bytes from `base`.
    buf: Vec<u8>,
    base: u64,
    /// Lines before this offset are still to come.
    end: u64,
    /// The last line given was too long to hold: no bytes for it.
    overlong: bool,
}

impl<'f> BackLines<'f> {
    fn new(file: &'f File) -> io::Result<Self> {
        let size = file.metadata()?.len();
        Ok(BackLines {
            file,
            size,
            buf: Vec::new(),
            base: size,
            end: size,
            overlong: false,
        })
    }

    /// The bytes of the line last given, unless it was too long to be an entry.
    fn line(&self, start: u64, end: u64) -> Option<&[u8]> {
        if self.overlong {
            return None;
        }
        self.buf
            .get((start - self.base) as usize..(end - self.base) as usize)
    }

    /// Prepends the block before `base`; false at the file's start or if it shrank.
    fn load(&mut self, keep_to: u64, overlong: bool) -> io::Result<bool> {
        if self.base == 0 {
            return Ok(false);
        }
        let new_base = self.base.saturating_sub(CHUNK as u64);
        let mut block = vec![0u8; (self.base - new_base) as usize];
        match self.file.read_exact_at(&mut block, new_base) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        if !overlong {
            let keep = (keep_to - self.base) as usize;
            block.extend_from_slice(&self.buf[..keep.min(self.buf.len())]);
        }
        self.buf = block;
        self.base = new_base;
        Ok(true)
    }

    fn next(&mut self) -> io::Result<Option<(u64, u64)>> {
        if self.end == 0 {
            return Ok(None);
        }
        if self.base >= self.end && !self.load(self.end, false)? {
            return Ok(None);
        }
        // Every line ends with a newline, but perhaps the file's last.
        let content_end = match self.buf.get((self.end - 1 - self.base) as usize) {
            Some(b'\n') => self.end - 1,
            _ => self.end,
        };
        let mut search_end = content_end;
        self.overlong = false;
        let start = loop {
            let rel = (search_end - self.base) as usize;
            if let Some(i) = self.buf[..rel].iter().rposition(|&b| b == b'\n') {
                break self.base + i as u64 + 1;
            }
            if content_end - self.base > MAX_ENTRY as u64 {
                self.overlong = true;
            }
            let from = self.base;
            if !self.load(content_end, self.overlong)? {
                break self.base;
            }
            if self.overlong {
                search_end = from;
            }
        };
        self.end = start;
        Ok(Some((start, content_end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_lines() {
        let e = parse_line(br#"{"log":"a\u003cb\u0009\ufffd\n","stream":"stderr","time":"2026-12-04T21:03:58.1Z"}"#)
            .expect("an entry");
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.line, "a<b\t\u{fffd}\n".as_bytes());
        assert_eq!(crate::time::rfc3339_nano(e.time), "2026-12-04T21:03:58.1Z");
        assert_eq!(e.timestamp(), "2026-12-04T21:03:58.100000000Z");
        // Docker's attrs, an empty log left out.
        let e =
            parse_line(br#"{"stream":"stdout","attrs":{"a":"b"},"time":"2026-12-04T21:03:58Z"}"#)
                .expect("an entry");
        assert_eq!(e.line, b"");
        for bad in [
            &b""[..],
            b"{}",
            b"null",
            br#"{"log":"x\n","stream":"stdin","time":"2026-12-04T21:03:58Z"}"#,
            br#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#,
            br#"{"log":"x\n","stream":"stdout"}"#,
            br#"{"log":"x\n","stream":"stdout","time":"2026-12-04T21:03:58Z""#,
            br#"{"log":"\ud800","stream":"stdout","time":"2026-12-04T21:03:58Z"}"#,
            b"\xff\xfe{",
        ] {
            assert_eq!(parse_line(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    fn back(content: &[u8]) -> Vec<(u64, u64, Option<Vec<u8>>)> {
        let mut f = tempfile::tempfile().expect("tempfile");
        io::Write::write_all(&mut f, content).expect("write");
        let mut b = BackLines::new(&f).expect("size");
        let mut out = Vec::new();
        while let Some((s, e)) = b.next().expect("read") {
            out.push((s, e, b.line(s, e).map(<[u8]>::to_vec)));
        }
        out
    }

    #[test]
    fn lines_from_the_end() {
        assert_eq!(back(b""), vec![]);
        assert_eq!(back(b"\n"), vec![(0, 0, Some(vec![]))]);
        assert_eq!(
            back(b"ab\ncd\n\nef"),
            vec![
                (7, 9, Some(b"ef".to_vec())),
                (6, 6, Some(vec![])),
                (3, 5, Some(b"cd".to_vec())),
                (0, 2, Some(b"ab".to_vec()))
            ]
        );
        // Lines across blocks, and one too long to hold.
        let long = vec![b'x'; 3 * CHUNK + 5];
        let huge = vec![b'y'; MAX_ENTRY + 2 * CHUNK];
        let mut content = b"first\n".to_vec();
        content.extend_from_slice(&huge);
        content.push(b'\n');
        content.extend_from_slice(&long);
        content.push(b'\n');
        let got = back(&content);
        let h = 6 + huge.len() as u64;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (h + 1, h + 1 + long.len() as u64, Some(long)));
        assert_eq!(got[1], (6, h, None));
        assert_eq!(got[2], (0, 5, Some(b"first".to_vec())));
    }
}
