//! Layer tars built entry by entry, for the suites that unpack, load, bundle and commit
//! images: every kind of entry, whiteouts, PAX xattrs, raw names that the `tar` crate's own
//! builder would refuse (`..`, absolute paths), and sparse files in GNU tar's formats.
//!
//! ```
//! use berth_testkit::tar::Layer;
//! let tar = Layer::new()
//!     .dir("etc/", 0o755)
//!     .file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")
//!     .whiteout("etc/old")
//!     .tar();
//! assert_eq!(tar.len() % 512, 0);
//! ```

use std::io::Write;

pub use tar::EntryType;

/// The header format of the entries a [`Layer`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// POSIX ustar (what `pack` and most image builders write).
    Ustar,
    /// GNU (what GNU tar writes by default).
    Gnu,
}

/// A tar stream built entry by entry. Entries get the defaults set with [`Layer::format`],
/// [`Layer::owner`] and [`Layer::mtime`] (ustar, root-owned, mtime 1 700 000 000) unless a
/// method takes them.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
    format: Format,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

/// The segments of a sparse file: (offset, data) pairs, in order.
pub type Segments<'a> = &'a [(u64, &'a [u8])];

/// The PAX formats of sparse files GNU tar writes with `--format=posix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaxSparse {
    /// `GNU.sparse.offset`/`numbytes` records, one pair per segment.
    V0_0,
    /// One `GNU.sparse.map` record; the header holds a made-up name.
    V0_1,
    /// The map in decimal text in front of the data; the header holds a made-up name.
    V1_0,
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
            format: Format::Ustar,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
        }
    }

    /// The header format of the entries added from now on.
    pub fn format(mut self, format: Format) -> Layer {
        self.format = format;
        self
    }

    /// The owner of the entries added from now on (unless a method takes one).
    pub fn owner(mut self, uid: u64, gid: u64) -> Layer {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// The modification time of the entries added from now on.
    pub fn mtime(mut self, mtime: u64) -> Layer {
        self.mtime = mtime;
        self
    }

    /// A header with the layer's defaults.
    pub fn header(&self, kind: EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = match self.format {
            Format::Ustar => tar::Header::new_ustar(),
            Format::Gnu => tar::Header::new_gnu(),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h
    }

    /// A directory (a trailing `/` is kept as given).
    pub fn dir(self, path: &str, mode: u32) -> Layer {
        let (uid, gid) = (self.uid, self.gid);
        self.dir_owned(path, mode, uid, gid)
    }

    /// A directory owned by `uid`:`gid`.
    pub fn dir_owned(mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Layer {
        let mut h = self.header(EntryType::Directory, mode, 0);
        h.set_uid(uid);
        h.set_gid(gid);
        self.b
            .append_data(&mut h, path, std::io::empty())
            .expect("tar: directory");
        self
    }

    /// A regular file.
    pub fn file(self, path: &str, mode: u32, data: &[u8]) -> Layer {
        let (uid, gid) = (self.uid, self.gid);
        self.file_owned(path, mode, uid, gid, data)
    }

    /// A regular file owned by `uid`:`gid`.
    pub fn file_owned(mut self, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> Layer {
        let mut h = self.header(EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.b.append_data(&mut h, path, data).expect("tar: file");
        self
    }

    /// Regular files (mode 0644), each preceded by its parent directories (mode 0755) that
    /// this call has not written yet.
    pub fn files(mut self, files: &[(&str, &[u8])]) -> Layer {
        let mut dirs = std::collections::BTreeSet::new();
        for (path, content) in files {
            let mut parts: Vec<&str> = path.split('/').collect();
            parts.pop();
            for i in 1..=parts.len() {
                let d = parts[..i].join("/");
                if dirs.insert(d.clone()) {
                    self = self.dir(&format!("{d}/"), 0o755);
                }
            }
            self = self.file(path, 0o644, content);
        }
        self
    }

    /// A symlink or hard link (`kind`) to `target`.
    pub fn link(mut self, kind: EntryType, path: &str, target: &str) -> Layer {
        let mut h = self.header(kind, 0o777, 0);
        self.b.append_link(&mut h, path, target).expect("tar: link");
        self
    }

    /// A device node or FIFO (`kind`).
    pub fn node(mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> Layer {
        let mut h = self.header(kind, 0o640, 0);
        h.set_device_major(major).expect("tar: major");
        h.set_device_minor(minor).expect("tar: minor");
        self.b
            .append_data(&mut h, path, std::io::empty())
            .expect("tar: node");
        self
    }

    /// A file (mode 0644, content "x") with the xattr `key` = `value` as a PAX record.
    pub fn xattr_file(mut self, path: &str, key: &str, value: &[u8]) -> Layer {
        self.b
            .append_pax_extensions([(format!("SCHILY.xattr.{key}").as_str(), value)])
            .expect("tar: pax");
        self.file(path, 0o644, b"x")
    }

    /// PAX records for the next entry.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Layer {
        self.b
            .append_pax_extensions(records.iter().copied())
            .expect("tar: pax");
        self
    }

    /// The whiteout of `path` (`dir/.wh.name`, an empty regular file).
    pub fn whiteout(self, path: &str) -> Layer {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        self.raw(
            format!("{dir}.wh.{name}").as_bytes(),
            EntryType::Regular,
            b"",
            b"",
        )
    }

    /// The opaque marker of the directory `dir` (`dir/.wh..wh..opq`; `""` for the root).
    pub fn opaque(self, dir: &str) -> Layer {
        let name = if dir.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{}/.wh..wh..opq", dir.trim_end_matches('/'))
        };
        self.raw(name.as_bytes(), EntryType::Regular, b"", b"")
    }

    /// An entry whose name (at most 100 bytes) and link target are written into the header
    /// as they are, without the checks of the `tar` crate's builder (`..`, absolute paths).
    pub fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Layer {
        let mut h = self.header(kind, 0o644, data.len() as u64);
        let old = h.as_old_mut();
        old.name.fill(0);
        old.name[..name.len()].copy_from_slice(name);
        old.linkname.fill(0);
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.b.append(&h, data).expect("tar: raw entry");
        self
    }

    /// A header and data exactly as given (the checksum is not recomputed).
    pub fn header_and_data(mut self, h: &tar::Header, data: &[u8]) -> Layer {
        self.b.append(h, data).expect("tar: entry");
        self
    }

    /// A sparse file in the old GNU format (entry type `S`, the map in the header and in
    /// extension blocks after it when it has more than four segments), of `size` bytes,
    /// holding `segments` (padded with zeros to whole 512-byte blocks, as GNU tar stores
    /// them). A file ending in a hole gets GNU tar's empty last segment.
    pub fn gnu_sparse(mut self, path: &str, mode: u32, size: u64, segments: Segments<'_>) -> Layer {
        // As GNU tar stores them, every segment but the last is whole 512-byte blocks (the
        // `tar` crate insists): pad with zeros, as far as the next segment and the size allow.
        let mut map: Vec<(u64, u64)> = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for (i, (o, d)) in segments.iter().enumerate() {
            let mut seg = d.to_vec();
            if i + 1 < segments.len() {
                let room = segments[i + 1].0.min(size) - o;
                let want = (seg.len() as u64).div_ceil(512) * 512;
                seg.resize(want.min(room) as usize, 0);
            }
            map.push((*o, seg.len() as u64));
            data.extend_from_slice(&seg);
        }
        if map.last().is_none_or(|(o, l)| o + l < size) {
            map.push((size, 0));
        }
        let mut h = tar::Header::new_gnu();
        h.set_path(path).expect("tar: sparse path");
        h.set_entry_type(EntryType::GNUSparse);
        h.set_mode(mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        h.set_size(data.len() as u64);
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.set_real_size(size);
        for (slot, (o, l)) in gnu.sparse.iter_mut().zip(&map) {
            slot.set_offset(*o);
            slot.set_length(*l);
        }
        gnu.set_is_extended(map.len() > 4);
        h.set_cksum();
        let w = self.b.get_mut();
        w.write_all(h.as_bytes()).expect("tar: sparse header");
        let rest: Vec<_> = map.iter().skip(4).collect();
        let blocks: Vec<_> = rest.chunks(21).collect();
        for (i, block) in blocks.iter().enumerate() {
            let mut ext = tar::GnuExtSparseHeader::new();
            for (slot, (o, l)) in ext.sparse_mut().iter_mut().zip(block.iter()) {
                slot.set_offset(*o);
                slot.set_length(*l);
            }
            ext.set_is_extended(i + 1 < blocks.len());
            w.write_all(ext.as_bytes()).expect("tar: sparse ext");
        }
        w.write_all(&data).expect("tar: sparse data");
        w.write_all(&vec![0u8; pad(data.len() as u64)])
            .expect("tar: sparse padding");
        self
    }

    /// A sparse file in one of GNU tar's PAX formats, of `size` bytes holding `segments`,
    /// written as GNU tar writes it (the made-up `GNUSparseFile.0/` name in the header for
    /// versions 0.1 and 1.0).
    pub fn pax_sparse(
        mut self,
        version: PaxSparse,
        path: &str,
        mode: u32,
        size: u64,
        segments: Segments<'_>,
    ) -> Layer {
        let mut map: Vec<(u64, u64)> = segments.iter().map(|(o, d)| (*o, d.len() as u64)).collect();
        if map.last().is_none_or(|(o, l)| o + l < size) {
            map.push((size, 0));
        }
        let mut data: Vec<u8> = Vec::new();
        let size_s = size.to_string();
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        let fake = match path.rsplit_once('/') {
            Some((d, n)) => format!("{d}/GNUSparseFile.0/{n}"),
            None => format!("GNUSparseFile.0/{path}"),
        };
        let header_name = match version {
            PaxSparse::V0_0 => {
                records.push(("GNU.sparse.size".into(), size_s.into_bytes()));
                records.push((
                    "GNU.sparse.numblocks".into(),
                    map.len().to_string().into_bytes(),
                ));
                for (o, l) in &map {
                    records.push(("GNU.sparse.offset".into(), o.to_string().into_bytes()));
                    records.push(("GNU.sparse.numbytes".into(), l.to_string().into_bytes()));
                }
                path.to_string()
            }
            PaxSparse::V0_1 => {
                records.push(("GNU.sparse.size".into(), size_s.into_bytes()));
                records.push((
                    "GNU.sparse.numblocks".into(),
                    map.len().to_string().into_bytes(),
                ));
                records.push(("GNU.sparse.name".into(), path.as_bytes().to_vec()));
                let m: Vec<String> = map.iter().map(|(o, l)| format!("{o},{l}")).collect();
                records.push(("GNU.sparse.map".into(), m.join(",").into_bytes()));
                fake
            }
            PaxSparse::V1_0 => {
                records.push(("GNU.sparse.major".into(), b"1".to_vec()));
                records.push(("GNU.sparse.minor".into(), b"0".to_vec()));
                records.push(("GNU.sparse.name".into(), path.as_bytes().to_vec()));
                records.push(("GNU.sparse.realsize".into(), size_s.into_bytes()));
                let mut text = format!("{}\n", map.len());
                for (o, l) in &map {
                    text.push_str(&format!("{o}\n{l}\n"));
                }
                data.extend_from_slice(text.as_bytes());
                data.resize(data.len() + pad(data.len() as u64), 0);
                fake
            }
        };
        for (_, d) in segments {
            data.extend_from_slice(d);
        }
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .expect("tar: pax");
        let mut h = self.header(EntryType::Regular, mode, data.len() as u64);
        self.b
            .append_data(&mut h, header_name, &data[..])
            .expect("tar: sparse entry");
        self
    }

    /// The tar stream (with its end blocks).
    pub fn tar(self) -> Vec<u8> {
        self.b.into_inner().expect("tar: finish")
    }

    /// The tar stream without its end blocks (a stream cut after the last entry).
    pub fn unfinished(mut self) -> Vec<u8> {
        std::mem::take(self.b.get_mut())
    }
}

/// Zero bytes that pad `n` bytes to a whole 512-byte block.
fn pad(n: u64) -> usize {
    ((512 - n % 512) % 512) as usize
}

/// `data` compressed with gzip.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, EntryType, u64)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.header().entry_type(),
                    e.size(),
                )
            })
            .collect()
    }

    #[test]
    fn entries_read_back_with_the_defaults() {
        let tar = Layer::new()
            .owner(7, 8)
            .format(Format::Gnu)
            .dir("d/", 0o750)
            .file("d/f", 0o600, b"abc")
            .whiteout("d/gone")
            .opaque("d")
            .raw(b"../up", EntryType::Regular, b"", b"evil")
            .tar();
        assert_eq!(
            entries(&tar),
            [
                ("d/".to_string(), EntryType::Directory, 0),
                ("d/f".to_string(), EntryType::Regular, 3),
                ("d/.wh.gone".to_string(), EntryType::Regular, 0),
                ("d/.wh..wh..opq".to_string(), EntryType::Regular, 0),
                ("../up".to_string(), EntryType::Regular, 4),
            ]
        );
        let mut a = tar::Archive::new(&tar[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(
            (e.header().uid().unwrap(), e.header().gid().unwrap()),
            (7, 8)
        );
        assert!(e.header().as_gnu().is_some());
    }

    #[test]
    fn gnu_sparse_files_expand_as_the_tar_crate_reads_them() {
        // Ten segments: four in the header, six in one extension block.
        let data: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 3]).collect();
        let segs: Vec<(u64, &[u8])> = data
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u64 * 1000, &d[..]))
            .collect();
        let tar = Layer::new().gnu_sparse("s", 0o644, 20_000, &segs).tar();
        let mut a = tar::Archive::new(&tar[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.header().entry_type(), EntryType::GNUSparse);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut out).unwrap();
        assert_eq!(out.len(), 20_000);
        assert_eq!(&out[9000..9003], b"jjj");
        assert_eq!(&out[9003..], &vec![0u8; 20_000 - 9003][..]);
    }
}
