//! Generated inputs: layer streams built from a description of their entries (headers are
//! written raw, so names like `..`, absolute paths, NUL bytes and `.wh...` get through, and
//! checksums are right, so the unpacker sees them), then damaged and compressed; and JSON
//! documents from templates with fields replaced by arbitrary values.

use proptest::prelude::*;
use serde_json::Value;

use crate::{MARKER, canary};

/// A short description of an input for failure messages: its size and first bytes.
pub fn show(data: &[u8]) -> String {
    let head: String = data.iter().take(48).map(|b| format!("{b:02x}")).collect();
    format!("{} bytes [{head}…]", data.len())
}

/// What an entry is.
#[derive(Debug, Clone)]
pub enum Body {
    /// A regular file.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symlink to the target.
    Symlink(Vec<u8>),
    /// A hard link to the target.
    Hardlink(Vec<u8>),
    /// A device node, FIFO or anything else: the type flag and the data.
    Other(u8, Vec<u8>),
    /// An old-GNU sparse file of this size with these segments.
    GnuSparse(u64, Vec<(u64, Vec<u8>)>),
    /// A PAX sparse file (version 0 = 0.0, 1 = 0.1, 2 = 1.0).
    PaxSparse(u8, u64, Vec<(u64, Vec<u8>)>),
}

/// How a long name is stored.
#[derive(Debug, Clone, Copy)]
pub enum LongName {
    /// Cut to the header's 100 bytes.
    Header,
    /// In a PAX `path` record.
    Pax,
    /// In a GNU `L` entry.
    Gnu,
}

/// One entry of a generated layer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's name.
    pub path: Vec<u8>,
    /// What it is.
    pub body: Body,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time.
    pub mtime: u64,
    /// More PAX records (xattrs, sparse keys, size overrides…).
    pub pax: Vec<(String, Vec<u8>)>,
    /// How the name is stored.
    pub long_name: LongName,
    /// A size declared in the header other than the data's.
    pub declared_size: Option<u64>,
    /// GNU headers (else ustar).
    pub gnu: bool,
}

/// A generated layer stream.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    /// The entries.
    pub entries: Vec<Entry>,
    /// Write tar's two end blocks.
    pub end_blocks: bool,
    /// Bytes after the end.
    pub trailer: Vec<u8>,
    /// (position, xor) flips applied to the tar.
    pub flips: Vec<(usize, u8)>,
    /// Cut the tar to this fraction (per mille) of its length.
    pub cut: Option<u16>,
    /// 0 plain, 1 gzip, 2 zstd.
    pub compression: u8,
    /// Cut the compressed stream to this fraction (per mille) of its length.
    pub cut_compressed: Option<u16>,
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn header(gnu: bool, name: &[u8], kind: u8, size: u64) -> tar::Header {
    let mut h = if gnu {
        tar::Header::new_gnu()
    } else {
        tar::Header::new_ustar()
    };
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h
}

fn push_header(out: &mut Vec<u8>, mut h: tar::Header) {
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
}

impl Entry {
    fn write(&self, out: &mut Vec<u8>) {
        let segments = |segs: &[(u64, Vec<u8>)]| -> Vec<(u64, Vec<u8>)> {
            // In order, not overlapping: what a sparse file's map may describe.
            let mut at = 0u64;
            let mut v = Vec::new();
            for (gap, d) in segs {
                let off = at.saturating_add(*gap);
                if off > 1 << 62 {
                    break;
                }
                v.push((off, d.clone()));
                at = off.saturating_add(d.len() as u64);
            }
            v
        };
        match &self.body {
            Body::GnuSparse(size, segs) | Body::PaxSparse(_, size, segs) => {
                let segs = segments(segs);
                let end = segs.last().map_or(0, |(o, d)| o + d.len() as u64);
                let size = (*size).max(end);
                let refs: Vec<(u64, &[u8])> = segs.iter().map(|(o, d)| (*o, &d[..])).collect();
                let l = berth_testkit::tar::Layer::new();
                let l = match &self.body {
                    Body::GnuSparse(..) => l.gnu_sparse("s", 0o644, size, &refs),
                    Body::PaxSparse(v, ..) => {
                        let v = match v % 3 {
                            0 => berth_testkit::tar::PaxSparse::V0_0,
                            1 => berth_testkit::tar::PaxSparse::V0_1,
                            _ => berth_testkit::tar::PaxSparse::V1_0,
                        };
                        l.pax_sparse(v, "s", 0o644, size, &refs)
                    }
                    _ => unreachable!(),
                };
                out.extend_from_slice(&l.unfinished());
                return;
            }
            _ => {}
        }
        let (kind, data, link): (u8, &[u8], &[u8]) = match &self.body {
            Body::File(d) => (b'0', d, b""),
            Body::Dir => (b'5', b"", b""),
            Body::Symlink(t) => (b'2', b"", t),
            Body::Hardlink(t) => (b'1', b"", t),
            Body::Other(k, d) => (*k, d, b""),
            _ => unreachable!(),
        };
        let mut pax = Vec::new();
        for (k, v) in &self.pax {
            pax_record(&mut pax, k, v);
        }
        let long = self.path.len() > 100;
        if long {
            match self.long_name {
                LongName::Pax => pax_record(&mut pax, "path", &self.path),
                LongName::Gnu => {
                    let mut name = self.path.clone();
                    name.push(0);
                    push_header(out, header(true, b"././@LongLink", b'L', name.len() as u64));
                    out.extend_from_slice(&name);
                    pad(out);
                }
                LongName::Header => {}
            }
        }
        if link.len() > 100 {
            pax_record(&mut pax, "linkpath", link);
        }
        if !pax.is_empty() {
            push_header(out, header(self.gnu, b"PaxHeader", b'x', pax.len() as u64));
            out.extend_from_slice(&pax);
            pad(out);
        }
        let mut h = header(
            self.gnu,
            &self.path,
            kind,
            self.declared_size.unwrap_or(data.len() as u64),
        );
        h.set_mode(self.mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        let n = link.len().min(100);
        h.as_old_mut().linkname[..n].copy_from_slice(&link[..n]);
        if matches!(kind, b'3' | b'4') {
            let _ = h.set_device_major(1);
            let _ = h.set_device_minor(3);
        }
        push_header(out, h);
        out.extend_from_slice(data);
        pad(out);
    }
}

fn cut(data: &mut Vec<u8>, per_mille: u16) {
    let n = data.len() * usize::from(per_mille.min(1000)) / 1000;
    data.truncate(n);
}

impl LayerSpec {
    /// The stream.
    pub fn bytes(&self) -> Vec<u8> {
        let mut tar = Vec::new();
        for e in &self.entries {
            e.write(&mut tar);
        }
        if self.end_blocks {
            tar.extend_from_slice(&[0u8; 1024]);
        }
        tar.extend_from_slice(&self.trailer);
        if !tar.is_empty() {
            for (pos, x) in &self.flips {
                let i = pos % tar.len();
                tar[i] ^= x;
            }
        }
        if let Some(c) = self.cut {
            cut(&mut tar, c);
        }
        let mut out = match self.compression % 3 {
            0 => tar,
            1 => crate::gzip(&tar),
            _ => crate::zstd(&tar),
        };
        if let Some(c) = self.cut_compressed {
            cut(&mut out, c);
        }
        out
    }
}

/// A path component, weighted towards the ones that matter.
pub fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        40 => "[abc]{1,2}".prop_map(String::into_bytes),
        1 => Just(b".".to_vec()),
        2 => Just(b"..".to_vec()),
        1 => Just(b"".to_vec()),
        2 => Just(b".wh.a".to_vec()),
        2 => Just(b".wh...".to_vec()),
        1 => Just(b".wh..".to_vec()),
        1 => Just(b".wh.".to_vec()),
        2 => Just(b".wh..wh..opq".to_vec()),
        1 => Just(b".wh..wh.plnk".to_vec()),
        2 => Just(MARKER.as_bytes().to_vec()),
        1 => Just(b"x\0y".to_vec()),
        1 => Just(vec![b'n'; 255]),
        1 => Just(vec![b'n'; 256]),
        1 => Just(b"GNUSparseFile.1".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..8),
    ]
}

/// A directory component on the way to an entry: mostly plain names.
fn parent_component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        40 => "[abc]{1,2}".prop_map(String::into_bytes),
        1 => component(),
    ]
}

/// An entry path: parent components and a last one joined by `/`, perhaps absolute or
/// `./`-prefixed, perhaps with a trailing `/`; or a deep chain.
pub fn path() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => (
            prop_oneof![12 => Just(""), 1 => Just("/"), 2 => Just("./")],
            prop::collection::vec(parent_component(), 0..3),
            component(),
            any::<bool>(),
        )
            .prop_map(|(prefix, mut parts, last, slash)| {
                parts.push(last);
                let mut p = prefix.as_bytes().to_vec();
                p.extend_from_slice(&parts.join(&b'/'));
                if slash {
                    p.push(b'/');
                }
                p
            }),
        1 => prop::sample::select(vec![100usize, 2047, 2048, 4096])
            .prop_map(|n| "a/".repeat(n).into_bytes()),
    ]
}

/// A link target: an entry path, or somewhere outside.
pub fn link_target() -> impl Strategy<Value = Vec<u8>> {
    let outside: Vec<Vec<u8>> = vec![
        b"..".to_vec(),
        b"../..".to_vec(),
        b"/".to_vec(),
        b"/tmp".to_vec(),
        b"/proc/self/cwd".to_vec(),
        b"/proc/self/root/tmp".to_vec(),
        canary().as_os_str().as_encoded_bytes().to_vec(),
        canary()
            .join(MARKER)
            .as_os_str()
            .as_encoded_bytes()
            .to_vec(),
        canary()
            .join("file")
            .as_os_str()
            .as_encoded_bytes()
            .to_vec(),
        format!("../{MARKER}").into_bytes(),
        b"../sibling/f".to_vec(),
    ];
    prop_oneof![4 => path(), 2 => prop::sample::select(outside)]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
    ]
}

fn sparse_segments() -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop_oneof![
                3 => 0u64..4096,
                1 => Just(1u64 << 40),
                1 => Just(u64::MAX / 4),
            ],
            prop::collection::vec(any::<u8>(), 0..700),
        ),
        0..6,
    )
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..100_000,
        1 => Just(1u64 << 40),
        1 => Just(1u64 << 62),
        1 => any::<u64>(),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => data().prop_map(Body::File),
        5 => Just(Body::Dir),
        4 => link_target().prop_map(Body::Symlink),
        4 => link_target().prop_map(Body::Hardlink),
        2 => (prop::sample::select(b"3467SxgLKVMDZ\0".to_vec()), data())
            .prop_map(|(k, d)| Body::Other(k, d)),
        1 => (size(), sparse_segments()).prop_map(|(s, g)| Body::GnuSparse(s, g)),
        1 => (0u8..3, size(), sparse_segments()).prop_map(|(v, s, g)| Body::PaxSparse(v, s, g)),
    ]
}

fn pax_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"y".to_vec()),
        Just(b"0".to_vec()),
        Just(b"1".to_vec()),
        Just(b"18446744073709551615".to_vec()),
        Just(b"99999999999999999999999".to_vec()),
        Just(b"0,10,20,5".to_vec()),
        Just(b"-1".to_vec()),
        Just(b".wh...".to_vec()),
        Just(b"../x".to_vec()),
        Just(b"".to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ]
}

fn pax() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let keys = vec![
        "SCHILY.xattr.user.fuzz",
        "SCHILY.xattr.trusted.overlay.opaque",
        "SCHILY.xattr.trusted.overlay.redirect",
        "SCHILY.xattr.security.capability",
        "SCHILY.xattr.",
        "GNU.sparse.map",
        "GNU.sparse.size",
        "GNU.sparse.realsize",
        "GNU.sparse.major",
        "GNU.sparse.minor",
        "GNU.sparse.name",
        "GNU.sparse.offset",
        "GNU.sparse.numbytes",
        "GNU.sparse.numblocks",
        "size",
        "uid",
        "gid",
        "path",
        "linkpath",
        "mtime",
    ];
    prop::collection::vec(
        (
            prop::sample::select(keys).prop_map(str::to_string),
            pax_value(),
        ),
        0..3,
    )
}

/// One entry.
pub fn entry() -> impl Strategy<Value = Entry> {
    (
        path(),
        body(),
        prop_oneof![4 => Just(0o755u32), 1 => any::<u32>()],
        prop_oneof![4 => 0u64..3, 1 => any::<u64>()],
        prop_oneof![4 => 0u64..3, 1 => any::<u64>()],
        prop_oneof![4 => Just(1_700_000_000u64), 1 => any::<u64>()],
        prop_oneof![4 => Just(Vec::new()), 1 => pax()],
        prop::sample::select(vec![LongName::Header, LongName::Pax, LongName::Gnu]),
        prop_oneof![8 => Just(None), 1 => size().prop_map(Some)],
        any::<bool>(),
    )
        .prop_map(
            |(path, body, mode, uid, gid, mtime, pax, long_name, declared_size, gnu)| Entry {
                path,
                body,
                mode,
                uid,
                gid,
                mtime,
                pax,
                long_name,
                declared_size,
                gnu,
            },
        )
}

/// A plain entry of a valid layer: plain names (whiteouts and opaque markers among them),
/// files, directories, links to names of the layer.
pub fn plain_entry() -> impl Strategy<Value = Entry> {
    let name = || "[abc]{1,2}".prop_map(String::into_bytes);
    let last = prop_oneof![
        12 => name(),
        1 => name().prop_map(|n| [&b".wh."[..], &n].concat()),
        1 => Just(b".wh..wh..opq".to_vec()),
    ];
    let path = (prop::collection::vec(name(), 0..3), last).prop_map(|(mut p, l)| {
        p.push(l);
        p.join(&b'/')
    });
    let target = (
        prop::collection::vec(name(), 1..3),
        prop_oneof![4 => Just(""), 1 => Just("../")],
    )
        .prop_map(|(p, up)| [up.as_bytes(), &p.join(&b'/')].concat());
    let body = prop_oneof![
        6 => data().prop_map(Body::File),
        4 => Just(Body::Dir),
        2 => target.clone().prop_map(Body::Symlink),
        2 => target.prop_map(Body::Hardlink),
        1 => Just(Body::Other(b'6', Vec::new())),
        1 => (0u64..5000, prop::collection::vec((0u64..3000, prop::collection::vec(any::<u8>(), 1..600)), 0..4))
            .prop_map(|(s, g)| Body::GnuSparse(s, g)),
    ];
    (
        path,
        body,
        prop::sample::select(vec![0o755u32, 0o644, 0o4755, 0o700, 0]),
        0u64..3,
        any::<bool>(),
    )
        .prop_map(|(path, body, mode, uid, gnu)| Entry {
            path,
            body,
            mode,
            uid,
            gid: uid,
            mtime: 1_700_000_000,
            pax: Vec::new(),
            long_name: LongName::Pax,
            declared_size: None,
            gnu,
        })
}

/// A layer stream: mostly plain entries with a few arbitrary ones among them, sometimes
/// damaged after, in every compression.
pub fn layer() -> impl Strategy<Value = LayerSpec> {
    (
        prop::collection::vec(plain_entry(), 0..12),
        prop::collection::vec((any::<usize>(), entry()), 0..3),
        prop_oneof![5 => Just(true), 1 => Just(false)],
        prop_oneof![8 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 0..600)],
        prop_oneof![8 => Just(Vec::new()), 1 => prop::collection::vec(any::<(usize, u8)>(), 1..4)],
        prop_oneof![8 => Just(None), 1 => (0u16..1000).prop_map(Some)],
        0u8..3,
        prop_oneof![10 => Just(None), 1 => (0u16..1000).prop_map(Some)],
    )
        .prop_map(
            |(mut entries, odd, end_blocks, trailer, flips, cut, compression, cut_compressed)| {
                for (at, e) in odd {
                    let at = at % (entries.len() + 1);
                    entries.insert(at, e);
                }
                LayerSpec {
                    entries,
                    end_blocks,
                    trailer,
                    flips,
                    cut,
                    compression,
                    cut_compressed,
                }
            },
        )
}

/// An arbitrary JSON value, a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "sha256:../../etc/passwd",
            "../../etc/passwd",
            "/etc/passwd",
            "layer.tar",
            "config.json",
            "blobs/sha256/",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "BUSYBOX:Latest",
            "a:b:c",
            "",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `template` with up to three of its fields (JSON pointers from `pointers`) replaced by
/// arbitrary values or removed, serialised; sometimes with a few bytes damaged after.
pub fn json_from(template: Value, pointers: Vec<&'static str>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            (
                prop::sample::select(pointers),
                prop_oneof![4 => json().prop_map(Some), 1 => Just(None)],
            ),
            0..4,
        ),
        prop_oneof![6 => Just(Vec::new()), 1 => prop::collection::vec(any::<(usize, u8)>(), 1..3)],
    )
        .prop_map(move |(edits, flips)| {
            let mut v = template.clone();
            for (ptr, new) in edits {
                set_pointer(&mut v, ptr, new);
            }
            let mut bytes = serde_json::to_vec(&v).expect("json");
            if !bytes.is_empty() {
                for (pos, x) in flips {
                    let i = pos % bytes.len();
                    bytes[i] ^= x;
                }
            }
            bytes
        })
}

/// Replace (or with `None`, remove) the value at the JSON pointer `ptr`.
pub fn set_pointer(v: &mut Value, ptr: &str, new: Option<Value>) {
    let Some((parent, last)) = ptr.rsplit_once('/') else {
        return;
    };
    let Some(p) = v.pointer_mut(parent) else {
        return;
    };
    match (p, new) {
        (Value::Object(m), Some(n)) => {
            m.insert(last.to_string(), n);
        }
        (Value::Object(m), None) => {
            m.remove(last);
        }
        (Value::Array(a), n) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                match n {
                    Some(n) => a[i] = n,
                    None => {
                        a.remove(i);
                    }
                }
            }
        }
        _ => {}
    }
}
