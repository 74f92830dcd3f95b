//! Sparse files in layers: GNU tar's two ways of storing them.
//!
//! - The old GNU format (entry type `S`): the sparse map (offset, length of each data
//!   segment) is in the header and in extension blocks right after it; the entry's data is
//!   the segments one after the other. The `tar` crate reads the map and expands the file,
//!   holes as zeros, but reading a hole costs as much as reading data, and a header of a few
//!   hundred bytes may declare an exabyte. So the unpacker never reads such an entry through
//!   the `tar` crate: [`Tap`] (beneath the `tar` reader) keeps the last bytes read, from
//!   which [`gnu_map`] takes the map's extension blocks, and sends the data segments into the
//!   file at their offsets as the `tar` reader skips over them on its way to the next header.
//!   Holes stay holes.
//! - The PAX formats (`--format=posix`, versions 0.0, 0.1 and 1.0): a regular-file entry with
//!   `GNU.sparse.*` records ([`PaxSparse::from_records`]); version 1.0 puts the map in front
//!   of the data, in decimal text ([`read_map_1_0`]).
//!
//! Every map is checked: segments in order, not overlapping, inside the file's size, and
//! exactly as many data bytes as the entry holds.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

/// A data segment of a sparse file: where it goes in the file and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub offset: u64,
    pub len: u64,
}

/// How many bytes [`Tap`] keeps: the longest old-GNU sparse map it can read (2048
/// extension blocks, 43008 segments).
const RING: usize = 1 << 20;

/// Where the data segments of an old-GNU sparse entry go while the `tar` reader skips them.
pub(crate) struct Sink {
    /// Absolute position (in the tar stream) of the first data byte.
    start: u64,
    /// The segments still to fill, the current one first (its `offset` and `len` advance).
    segments: VecDeque<Segment>,
    file: File,
    /// Data bytes received so far, and in all.
    received: u64,
    total: u64,
    error: Option<io::Error>,
}

impl Sink {
    /// Takes the next `data` bytes of the entry's data.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            let Some(seg) = self.segments.front_mut() else {
                return;
            };
            if seg.len == 0 {
                self.segments.pop_front();
                continue;
            }
            let n = usize::try_from(seg.len).map_or(data.len(), |l| l.min(data.len()));
            if let Err(e) = self.file.write_all_at(&data[..n], seg.offset) {
                self.error = Some(e);
                return;
            }
            seg.offset += n as u64;
            seg.len -= n as u64;
            self.received += n as u64;
            data = &data[n..];
        }
    }
}

/// What [`Tap`] shares with the unpacker.
#[derive(Default)]
pub(crate) struct TapState {
    /// Bytes handed to the `tar` reader so far.
    pos: u64,
    /// Keep what is read in `ring` (while the `tar` reader looks for the next entry).
    recording: bool,
    /// The last bytes read while recording; the last one is at `pos - 1`.
    ring: VecDeque<u8>,
    sink: Option<Sink>,
}

/// The reader between the buffered layer stream and the `tar` reader (see the module docs).
pub(crate) struct Tap<R> {
    pub inner: R,
    pub state: Rc<RefCell<TapState>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        let mut st = self.state.borrow_mut();
        let pos = st.pos;
        if let Some(sink) = st.sink.as_mut() {
            // The data is contiguous from `start`; this chunk covers [pos, pos + n).
            let next = sink.start + sink.received;
            if sink.received < sink.total && pos <= next && next < pos + n as u64 {
                let from = (next - pos) as usize;
                let want = (sink.total - sink.received).min((n - from) as u64) as usize;
                sink.feed(&chunk[from..from + want]);
            }
        }
        if st.recording {
            if n >= RING {
                st.ring.clear();
                st.ring.extend(&chunk[n - RING..]);
            } else {
                let over = (st.ring.len() + n).saturating_sub(RING);
                st.ring.drain(..over);
                st.ring.extend(chunk);
            }
        }
        st.pos += n as u64;
        Ok(n)
    }
}

impl TapState {
    /// Start keeping what is read (forgetting what was kept), or stop (keeping it).
    pub fn record(&mut self, on: bool) {
        if on {
            self.ring.clear();
        }
        self.recording = on;
    }

    /// The recorded bytes from absolute position `from` to now, if they are still kept.
    pub fn recorded_since(&self, from: u64) -> Option<Vec<u8>> {
        let back = usize::try_from(self.pos.checked_sub(from)?).ok()?;
        if back > self.ring.len() {
            return None;
        }
        Some(self.ring.range(self.ring.len() - back..).copied().collect())
    }

    /// Send the next `total` bytes read (from now on) into `file` at `segments`.
    pub fn set_sink(&mut self, file: File, segments: Vec<Segment>, total: u64) {
        self.sink = Some(Sink {
            start: self.pos,
            segments: segments.into(),
            file,
            received: 0,
            total,
            error: None,
        });
    }

    /// The sink set last, with what it received and its write error if any.
    pub fn take_sink(&mut self) -> Option<(File, u64, u64, Option<io::Error>)> {
        self.sink
            .take()
            .map(|s| (s.file, s.received, s.total, s.error))
    }
}

/// The sparse map of an old-GNU (`S`) entry: the four slots of its header, then the
/// extension blocks `ext` (512 bytes each, following the header), in the order the data is
/// stored. Checked as [`check`] does.
pub(crate) fn gnu_map(
    header: &tar::GnuHeader,
    ext: &[u8],
    real_size: u64,
) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut push = |s: &tar::GnuSparseHeader| -> Result<(), String> {
        if s.is_empty() {
            return Ok(());
        }
        let offset = s
            .offset()
            .map_err(|e| format!("has a bad sparse map: {e}"))?;
        let len = s
            .length()
            .map_err(|e| format!("has a bad sparse map: {e}"))?;
        out.push(Segment { offset, len });
        Ok(())
    };
    for s in &header.sparse {
        push(s)?;
    }
    if header.is_extended() {
        let mut blocks = ext.chunks(512);
        loop {
            let Some(block) = blocks.next().filter(|b| b.len() == 512) else {
                return Err("has a sparse map longer than the unpacker reads".into());
            };
            let mut h = tar::GnuExtSparseHeader::new();
            h.as_mut_bytes().copy_from_slice(block);
            for s in h.sparse() {
                push(s)?;
            }
            if !h.is_extended() {
                break;
            }
        }
        if blocks.next().is_some() {
            return Err("has more sparse map blocks than its header says".into());
        }
    }
    check(&out, real_size)?;
    Ok(out)
}

/// Segments in order, not overlapping, inside a file of `real_size` bytes.
pub(crate) fn check(map: &[Segment], real_size: u64) -> Result<(), String> {
    let mut end = 0u64;
    for s in map {
        if s.offset < end {
            return Err("has a sparse map whose segments overlap or are out of order".into());
        }
        end = s
            .offset
            .checked_add(s.len)
            .filter(|e| *e <= real_size)
            .ok_or_else(|| format!("has a sparse segment beyond the file's size ({real_size})"))?;
    }
    Ok(())
}

/// Bytes of data a map describes.
pub(crate) fn data_len(map: &[Segment]) -> Option<u64> {
    map.iter().try_fold(0u64, |a, s| a.checked_add(s.len))
}

/// A PAX-format sparse file, from its entry's `GNU.sparse.*` records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PaxSparse {
    /// The file's real name (`GNU.sparse.name`), when the header holds a made-up one.
    pub name: Option<Vec<u8>>,
    /// The file's size, holes included.
    pub real_size: u64,
    /// The map (versions 0.0 and 0.1); `None` for 1.0, whose map precedes the data.
    pub map: Option<Vec<Segment>>,
}

fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl PaxSparse {
    /// The sparse description in `records` (an entry's PAX records, in order), `Ok(None)`
    /// when there is none, `Err(why)` when it is malformed or of a version not known here.
    pub fn from_records(records: &[(Vec<u8>, Vec<u8>)]) -> Result<Option<PaxSparse>, String> {
        let mut major = None;
        let mut minor = None;
        let mut name = None;
        let mut size = None;
        let mut realsize = None;
        let mut map = None;
        let mut numblocks = None;
        let mut pairs: Vec<u64> = Vec::new(); // 0.0: offset, numbytes, offset, …
        let mut any = false;
        for (k, v) in records {
            let Some(key) = k.strip_prefix(b"GNU.sparse.") else {
                continue;
            };
            any = true;
            let num = || {
                number(v).ok_or_else(|| {
                    format!(
                        "has a bad {:?} record {:?}",
                        crate::shorten(&format!("GNU.sparse.{}", String::from_utf8_lossy(key))),
                        crate::shorten(&String::from_utf8_lossy(v))
                    )
                })
            };
            match key {
                b"major" => major = Some(num()?),
                b"minor" => minor = Some(num()?),
                b"name" => name = Some(v.clone()),
                b"size" => size = Some(num()?),
                b"realsize" => realsize = Some(num()?),
                b"numblocks" => numblocks = Some(num()?),
                b"map" => map = Some(v.clone()),
                b"offset" => {
                    if pairs.len() % 2 != 0 {
                        return Err("has GNU.sparse.offset records out of order".into());
                    }
                    pairs.push(num()?);
                }
                b"numbytes" => {
                    if pairs.len() % 2 != 1 {
                        return Err("has GNU.sparse.numbytes records out of order".into());
                    }
                    pairs.push(num()?);
                }
                _ => {
                    return Err(format!(
                        "has the record {:?}, which is not known here",
                        crate::shorten(&format!("GNU.sparse.{}", String::from_utf8_lossy(key)))
                    ));
                }
            }
        }
        if !any {
            return Ok(None);
        }
        let v1 = match (major, minor) {
            (Some(1), Some(0)) => true,
            (Some(0), Some(0 | 1)) | (None, None) => false,
            (a, b) => {
                let show = |x: Option<u64>| x.map_or("?".to_string(), |x| x.to_string());
                return Err(format!(
                    "is a sparse file of format version {}.{}, which is not supported",
                    show(a),
                    show(b)
                ));
            }
        };
        let real_size = match (size, realsize) {
            (Some(a), Some(b)) if a != b => {
                return Err("has GNU.sparse.size and GNU.sparse.realsize that differ".into());
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => return Err("is a sparse file without its size".into()),
        };
        if v1 {
            if map.is_some() || !pairs.is_empty() || numblocks.is_some() {
                return Err("is a sparse file of version 1.0 with a map in its records".into());
            }
            if name.is_none() {
                return Err("is a sparse file of version 1.0 without its name".into());
            }
            return Ok(Some(PaxSparse {
                name,
                real_size,
                map: None,
            }));
        }
        let numbers: Vec<u64> = match map {
            Some(m) => {
                if !pairs.is_empty() {
                    return Err("has both GNU.sparse.map and GNU.sparse.offset records".into());
                }
                if m.is_empty() {
                    Vec::new()
                } else {
                    m.split(|&b| b == b',')
                        .map(|n| number(n).ok_or("has a bad GNU.sparse.map"))
                        .collect::<Result<_, _>>()?
                }
            }
            None => pairs,
        };
        if numbers.len() % 2 != 0 {
            return Err("has a sparse map with an offset but no length".into());
        }
        let segments: Vec<Segment> = numbers
            .chunks(2)
            .map(|p| Segment {
                offset: p[0],
                len: p[1],
            })
            .collect();
        if let Some(n) = numblocks
            && n != segments.len() as u64
        {
            return Err(format!(
                "has GNU.sparse.numblocks={n} but {} segments",
                segments.len()
            ));
        }
        check(&segments, real_size)?;
        Ok(Some(PaxSparse {
            name,
            real_size,
            map: Some(segments),
        }))
    }
}

/// Read the map of a version 1.0 sparse file from the start of its data (decimal numbers,
/// one a line: how many segments, then offset and length of each; padded to a 512-byte
/// block). Returns the map and how many bytes it took. `size` is the entry's size.
pub(crate) fn read_map_1_0(
    data: &mut impl Read,
    size: u64,
    real_size: u64,
) -> Result<(Vec<Segment>, u64), Result<String, io::Error>> {
    let mut consumed = 0u64;
    let mut block = [0u8; 512];
    let mut line: Vec<u8> = Vec::new();
    let mut numbers: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    loop {
        if consumed >= size {
            return Err(Ok("has a sparse map longer than its data".into()));
        }
        let n = (size - consumed).min(512) as usize;
        data.read_exact(&mut block[..n]).map_err(Err)?;
        consumed += n as u64;
        for &b in &block[..n] {
            if want.is_some_and(|w| numbers.len() as u64 == w) {
                break; // the rest of the block is padding
            }
            if b != b'\n' {
                if line.len() >= 20 {
                    return Err(Ok("has a bad sparse map (a number too long)".into()));
                }
                line.push(b);
                continue;
            }
            let v = number(&line).ok_or_else(|| Ok("has a bad sparse map".to_string()))?;
            line.clear();
            numbers.push(v);
            if want.is_none() {
                // Each segment takes at least four bytes of map ("0\n0\n").
                if v > size / 4 {
                    return Err(Ok(format!(
                        "has a sparse map of {v} segments, more than its data can hold"
                    )));
                }
                want = Some(1 + 2 * v);
            }
        }
        if want.is_some_and(|w| numbers.len() as u64 == w) {
            break;
        }
    }
    let segments: Vec<Segment> = numbers[1..]
        .chunks(2)
        .map(|p| Segment {
            offset: p[0],
            len: p[1],
        })
        .collect();
    check(&segments, real_size).map_err(Ok)?;
    Ok((segments, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(r: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        r.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn seg(offset: u64, len: u64) -> Segment {
        Segment { offset, len }
    }

    #[test]
    fn pax_versions_are_read() {
        let v00 = recs(&[
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "10"),
            ("GNU.sparse.numbytes", "5"),
            ("GNU.sparse.offset", "100"),
            ("GNU.sparse.numbytes", "0"),
        ]);
        let s = PaxSparse::from_records(&v00).unwrap().unwrap();
        assert_eq!(s.map.unwrap(), [seg(10, 5), seg(100, 0)]);
        assert_eq!((s.real_size, s.name), (100, None));
        let v01 = recs(&[
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.name", "f"),
            ("GNU.sparse.map", "0,3,50,2"),
        ]);
        let s = PaxSparse::from_records(&v01).unwrap().unwrap();
        assert_eq!(s.map.unwrap(), [seg(0, 3), seg(50, 2)]);
        assert_eq!(s.name.as_deref(), Some(&b"f"[..]));
        let v10 = recs(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "f"),
            ("GNU.sparse.realsize", "7"),
        ]);
        let s = PaxSparse::from_records(&v10).unwrap().unwrap();
        assert_eq!((s.map, s.real_size), (None, 7));
        assert_eq!(
            PaxSparse::from_records(&recs(&[("path", "x")])).unwrap(),
            None
        );
    }

    #[test]
    fn bad_pax_maps_are_refused() {
        for bad in [
            vec![("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")],
            vec![("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,5,3,5")],
            vec![("GNU.sparse.size", "10"), ("GNU.sparse.map", "8,5")],
            vec![("GNU.sparse.size", "10"), ("GNU.sparse.map", "1")],
            vec![("GNU.sparse.size", "10"), ("GNU.sparse.map", "a,b")],
            vec![("GNU.sparse.size", "x"), ("GNU.sparse.map", "")],
            vec![("GNU.sparse.map", "0,1")],
            vec![("GNU.sparse.size", "10"), ("GNU.sparse.numbytes", "1")],
            vec![
                ("GNU.sparse.size", "10"),
                ("GNU.sparse.numblocks", "2"),
                ("GNU.sparse.map", "0,1"),
            ],
            vec![
                ("GNU.sparse.major", "1"),
                ("GNU.sparse.minor", "0"),
                ("GNU.sparse.realsize", "7"),
            ],
            vec![
                ("GNU.sparse.size", "18446744073709551615"),
                ("GNU.sparse.map", "18446744073709551615,1"),
            ],
            vec![("GNU.sparse.size", "99999999999999999999999")],
        ] {
            let r = recs(&bad);
            assert!(PaxSparse::from_records(&r).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_1_maps_are_read_from_the_data() {
        let mut data = b"2\n0\n3\n10\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcde");
        let (map, used) = read_map_1_0(&mut &data[..], data.len() as u64, 12).unwrap();
        assert_eq!((map, used), (vec![seg(0, 3), seg(10, 2)], 512));
        for (bad, size) in [
            (&b"1\n0\n"[..], 4u64),                // ends inside the map
            (&b"99999999\n"[..], 9),               // more segments than data
            (&b"1\nx\n1\n"[..], 6),                // not a number
            (&b"1\n11\n5\n"[..], 7),               // beyond the real size
            (&b"123456789012345678901\n"[..], 22), // a number too long
        ] {
            assert!(read_map_1_0(&mut &bad[..], size, 12).is_err(), "{bad:?}");
        }
    }
}
