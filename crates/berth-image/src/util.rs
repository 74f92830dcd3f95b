//! Small helpers: time stamps, disk usage of a tree, decompression, hashing while copying.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_layer::Compression;
use berth_store::{Digest, Hasher};

/// Now, as RFC 3339 in UTC with nanoseconds (what Docker writes in image configs).
pub(crate) fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_nanos())
}

/// `secs` since the epoch (UTC) as `YYYY-MM-DDTHH:MM:SS[.nnnnnnnnn]Z`.
pub(crate) fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}")
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Bytes on disk under `path` (allocated blocks, like `du`), each inode counted once.
pub(crate) fn dir_usage(path: &Path) -> io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p)?;
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        total += md.blocks() * 512;
        if md.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(total)
}

/// `reader` decompressed: gzip and zstd are told by their magic numbers, anything else is
/// passed through as it is.
pub(crate) fn decompressed<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(128 * 1024, reader);
    let head = buffered.fill_buf()?;
    Ok(match Compression::detect(head) {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// The compression of a stored blob, told by its first bytes.
pub(crate) fn sniff(mut reader: impl Read) -> io::Result<Compression> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(r) => n += r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Compression::detect(&head[..n]))
}

/// Copy `from` into `to` while hashing: (digest, bytes). Read errors come back as
/// `Err(Ok(e))`, write errors as `Err(Err(e))`, so callers can tell a bad input from a failing
/// disk.
pub(crate) fn copy_hashing(
    mut from: impl Read,
    mut to: impl Write,
) -> Result<(Digest, u64), Result<io::Error, io::Error>> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let r = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Ok(e)),
        };
        hasher.update(&buf[..r]);
        to.write_all(&buf[..r]).map_err(Err)?;
        n += r as u64;
    }
    Ok((hasher.finish(), n))
}

/// A path for a message: whole when short, else its start and end around an ellipsis (a
/// path in a hostile tree can be thousands of components deep).
pub(crate) fn short_path(p: &Path) -> String {
    const MAX: usize = 200;
    let s = p.to_string_lossy();
    if s.len() <= MAX {
        return s.into_owned();
    }
    let mut head = MAX / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - MAX / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…{} ({} bytes)", &s[..head], &s[tail..], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_767_225_599, 0), "2025-12-31T23:59:59Z");
        assert!(now_rfc3339().ends_with('Z'));
    }

    #[test]
    fn hashing_copy() {
        let mut out = Vec::new();
        let (d, n) = copy_hashing(&b"hello"[..], &mut out).unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!((n, out.as_slice()), (5, &b"hello"[..]));
    }
}
