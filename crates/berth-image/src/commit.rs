//! What a container changed in its root filesystem ([`diff`], like `docker diff`), making an
//! image of it ([`ImageStore::commit`], like `docker commit`) and a tar of the whole root
//! filesystem ([`export`], like `docker export`).
//!
//! Changes are found in the overlayfs upper directory (whiteouts are deletions, opaque
//! directories hide what the layers had in them) or, for a copied root filesystem, by
//! comparing the copy against the image's layers: a path the layers do not have is added, one
//! whose kind, mode, owner, times, content, link target, device or xattrs differ is changed
//! (files untouched since the copy was made, by their ctime, are not read), and one the
//! layers have that the copy lacks is deleted. As Docker does, a directory holding a change
//! is itself reported changed.
//!
//! A commit packs the changes as one gzip layer (the upper directory as it is, or for a copy
//! the changes gathered in a scratch directory in overlay form), and records a new image: the
//! base image's config with the new diff ID, a history entry, the config changes asked for
//! (Dockerfile instructions, as `docker commit --change`), and an OCI manifest of the base's
//! layer blobs plus the new one. Only the new layer is unpacked; the others are shared.
//! A commit without changes adds no layer, only the history entry (`empty_layer`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use berth_layer::pack::{OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, is_whiteout, path_at, sorted_names};
use berth_layer::{Compression, PackOptions, Packed};
use berth_store::Digest;
use rustix::fs::{FileType, Mode as FsMode, OFlags};
use serde::Serialize;
use serde_json::{Value, json};

use crate::rootfs::{Copier, Rootfs, RootfsError, RootfsKind, STATE_FILE, io_err, open_dir};
use crate::{Error, ImageRecord, ImageStore};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ChangeKind {
    /// Not in the image (`A`).
    Added,
    /// In the image, different now (`C`).
    Changed,
    /// In the image, gone now (`D`).
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One change to a container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The path, absolute in the container (`/etc/hosts`).
    pub path: PathBuf,
}

impl fmt::Display for Change {
    /// `docker diff`'s line: `C /etc`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path.display())
    }
}

/// The image's layers seen as overlayfs would stack them (top first), without mounting.
struct LowerView {
    layers: Vec<PathBuf>,
}

/// Where a path stands in one layer.
enum InLayer {
    /// The layer has it: its path in the layer and metadata.
    Found(PathBuf, Metadata),
    /// The layer hides it (a whiteout, a non-directory on the way, an opaque directory above
    /// it): nothing below counts.
    Hidden,
    /// The layer does not say anything about it: look below.
    Absent,
}

fn opaque(p: &Path) -> io::Result<bool> {
    Ok(berth_layer::pack::xattr(p, OsStr::new(OPAQUE_XATTR))?.is_some_and(|v| v == b"y"))
}

impl LowerView {
    fn new(rootfs: &Rootfs) -> LowerView {
        LowerView {
            layers: rootfs.lower_dirs(),
        }
    }

    /// Look `rel` (components) up in `layer`. `opaque_above` is set when a directory on the
    /// way (or the entry itself, for directories) is opaque in this layer.
    fn in_layer(layer: &Path, rel: &[&OsStr]) -> io::Result<(InLayer, bool)> {
        let mut p = layer.to_path_buf();
        let mut opaque_above = false;
        for (i, c) in rel.iter().enumerate() {
            p.push(c);
            let md = match std::fs::symlink_metadata(&p) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let r = if opaque_above {
                        InLayer::Hidden
                    } else {
                        InLayer::Absent
                    };
                    return Ok((r, opaque_above));
                }
                Err(e) => return Err(e),
            };
            if is_whiteout(&md) {
                return Ok((InLayer::Hidden, true));
            }
            if md.is_dir() && opaque(&p)? {
                opaque_above = true;
            }
            if i + 1 == rel.len() {
                return Ok((InLayer::Found(p, md), opaque_above));
            }
            if !md.is_dir() {
                return Ok((InLayer::Hidden, true));
            }
        }
        // The root: every layer has it, none hides the ones below.
        let md = std::fs::symlink_metadata(&p)?;
        Ok((InLayer::Found(p, md), false))
    }

    /// The path `rel` in the image, if the image has it: where (in its layer) and metadata.
    fn stat(&self, rel: &[&OsStr]) -> io::Result<Option<(PathBuf, Metadata)>> {
        for layer in &self.layers {
            match Self::in_layer(layer, rel)?.0 {
                InLayer::Found(p, md) => return Ok(Some((p, md))),
                InLayer::Hidden => return Ok(None),
                InLayer::Absent => {}
            }
        }
        Ok(None)
    }

    /// The names in the image's directory `rel` (which must be a directory in the image).
    fn children(&self, rel: &[&OsStr]) -> io::Result<BTreeSet<OsString>> {
        let mut seen: BTreeMap<OsString, bool> = BTreeMap::new();
        for layer in &self.layers {
            let (found, opaque_here) = Self::in_layer(layer, rel)?;
            match found {
                InLayer::Found(p, md) => {
                    if !md.is_dir() {
                        break;
                    }
                    for e in std::fs::read_dir(&p)? {
                        let e = e?;
                        let name = e.file_name();
                        if seen.contains_key(&name) {
                            continue;
                        }
                        let md = std::fs::symlink_metadata(e.path())?;
                        seen.insert(name, !is_whiteout(&md));
                    }
                    if opaque_here {
                        break;
                    }
                }
                InLayer::Hidden => break,
                InLayer::Absent => {}
            }
        }
        Ok(seen
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(n, _)| n)
            .collect())
    }
}

fn components(rel: &Path) -> Vec<&OsStr> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn abs(rel: &Path) -> PathBuf {
    Path::new("/").join(rel)
}

/// What `docker diff` shows for the root filesystem: every change, sorted by path.
pub fn diff(rootfs: &Rootfs) -> Result<Vec<Change>, RootfsError> {
    let mut out = match rootfs.kind() {
        RootfsKind::Copy => {
            rootfs.check()?;
            let stamp = std::fs::symlink_metadata(rootfs.dir.join(STATE_FILE))
                .map_err(io_err("reading", &rootfs.dir.join(STATE_FILE)))?;
            let d = CopyDiff {
                view: LowerView::new(rootfs),
                merged: rootfs.merged(),
                stamp: (stamp.ctime(), stamp.ctime_nsec()),
            };
            let root = open_root(&d.merged)?;
            d.walk(root.as_fd(), Path::new(""), true)?
        }
        _ => {
            if !rootfs.dir.join(STATE_FILE).is_file() {
                return Err(RootfsError::NotFound(rootfs.dir.clone()));
            }
            let upper = rootfs.upper();
            let root = open_root(&upper)?;
            let d = OverlayDiff {
                view: LowerView::new(rootfs),
                upper,
            };
            let mut out = Vec::new();
            d.walk(root.as_fd(), Path::new(""), &mut out)?;
            out
        }
    };
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

fn open_root(p: &Path) -> Result<std::os::fd::OwnedFd, RootfsError> {
    rustix::fs::open(
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => RootfsError::NotFound(p.to_path_buf()),
        e => io_err("opening", p)(e.into()),
    })
}

struct OverlayDiff {
    view: LowerView,
    upper: PathBuf,
}

impl OverlayDiff {
    fn walk(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        out: &mut Vec<Change>,
    ) -> Result<(), RootfsError> {
        let err = |op, rel: &Path| io_err(op, &self.upper.join(rel));
        let names = sorted_names(dir).map_err(err("listing", rel))?;
        for name in &names {
            let path = rel.join(name);
            let at = path_at(dir, name);
            let md = match std::fs::symlink_metadata(&at) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err("reading", &path)(e)),
            };
            let comps = components(&path);
            if is_whiteout(&md) {
                out.push(Change {
                    kind: ChangeKind::Deleted,
                    path: abs(&path),
                });
                continue;
            }
            let lower = self
                .view
                .stat(&comps)
                .map_err(err("reading the layers for", &path))?;
            out.push(Change {
                kind: if lower.is_some() {
                    ChangeKind::Changed
                } else {
                    ChangeKind::Added
                },
                path: abs(&path),
            });
            if !md.is_dir() {
                continue;
            }
            // An opaque directory hides what the image had in it: deleted, unless replaced.
            if lower.as_ref().is_some_and(|(_, l)| l.is_dir())
                && opaque(&at).map_err(err("reading", &path))?
            {
                let here: BTreeSet<OsString> = sorted_names(
                    open_dir(dir, name)
                        .map_err(|e| err("opening", &path)(e.into()))?
                        .as_fd(),
                )
                .map_err(err("listing", &path))?
                .into_iter()
                .collect();
                for gone in self
                    .view
                    .children(&comps)
                    .map_err(err("reading the layers for", &path))?
                {
                    if !here.contains(&gone) {
                        out.push(Change {
                            kind: ChangeKind::Deleted,
                            path: abs(&path.join(gone)),
                        });
                    }
                }
            }
            let sub = open_dir(dir, name).map_err(|e| err("opening", &path)(e.into()))?;
            self.walk(sub.as_fd(), &path, out)?;
        }
        Ok(())
    }
}

struct CopyDiff {
    view: LowerView,
    merged: PathBuf,
    /// The ctime of the copy's state file, written once the copy was made: what has an
    /// older ctime is untouched since.
    stamp: (i64, i64),
}

/// Do two files have the same content?
fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(r) => n += r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn kept_xattrs(p: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    Ok(berth_layer::pack::xattrs(p)?
        .into_iter()
        .filter(|(k, _)| !k.as_bytes().starts_with(OVERLAY_XATTR_PREFIX))
        .collect())
}

impl CopyDiff {
    /// Is the entry at `at` (metadata `md`) what the image has at `lower` (`lmd`)?
    fn same(&self, at: &Path, md: &Metadata, lower: &Path, lmd: &Metadata) -> io::Result<bool> {
        if md.file_type() != lmd.file_type() {
            return Ok(false);
        }
        if (md.ctime(), md.ctime_nsec()) < self.stamp {
            return Ok(true);
        }
        let ft = md.file_type();
        if (md.mode(), md.uid(), md.gid()) != (lmd.mode(), lmd.uid(), lmd.gid())
            || (md.mtime(), md.mtime_nsec()) != (lmd.mtime(), lmd.mtime_nsec())
        {
            return Ok(false);
        }
        if (ft.is_char_device() || ft.is_block_device()) && md.rdev() != lmd.rdev() {
            return Ok(false);
        }
        if ft.is_symlink() && std::fs::read_link(at)? != std::fs::read_link(lower)? {
            return Ok(false);
        }
        if ft.is_file() && (md.len() != lmd.len() || !same_content(at, lower)?) {
            return Ok(false);
        }
        Ok(kept_xattrs(at)? == kept_xattrs(lower)?)
    }

    /// The changes below `rel` (a directory in the copy); `in_image`: the image has a
    /// directory there too.
    fn walk(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        in_image: bool,
    ) -> Result<Vec<Change>, RootfsError> {
        let err = |op, rel: &Path| io_err(op, &self.merged.join(rel));
        let names = sorted_names(dir).map_err(err("listing", rel))?;
        let mut out = Vec::new();
        if in_image {
            let comps = components(rel);
            for gone in self
                .view
                .children(&comps)
                .map_err(err("reading the layers for", rel))?
            {
                if names.binary_search(&gone).is_err() {
                    out.push(Change {
                        kind: ChangeKind::Deleted,
                        path: abs(&rel.join(gone)),
                    });
                }
            }
        }
        for name in &names {
            let path = rel.join(name);
            let at = path_at(dir, name);
            let md = match std::fs::symlink_metadata(&at) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err("reading", &path)(e)),
            };
            let lower = if in_image {
                self.view
                    .stat(&components(&path))
                    .map_err(err("reading the layers for", &path))?
            } else {
                None
            };
            let (kind, below_in_image) = match &lower {
                None => (Some(ChangeKind::Added), false),
                Some((lp, lmd)) => {
                    let same = self
                        .same(&at, &md, lp, lmd)
                        .map_err(err("comparing", &path))?;
                    (
                        (!same).then_some(ChangeKind::Changed),
                        md.is_dir() && lmd.is_dir(),
                    )
                }
            };
            let below = if md.is_dir() {
                let sub = open_dir(dir, name).map_err(|e| err("opening", &path)(e.into()))?;
                self.walk(sub.as_fd(), &path, below_in_image)?
            } else {
                Vec::new()
            };
            // A directory holding changes is changed itself.
            let kind = kind.or((!below.is_empty()).then_some(ChangeKind::Changed));
            if let Some(kind) = kind {
                out.push(Change {
                    kind,
                    path: abs(&path),
                });
            }
            out.extend(below);
        }
        Ok(out)
    }
}

/// `docker export`: a plain tar of the whole root filesystem (what the container sees; no
/// whiteouts) written to `out`.
pub fn export(rootfs: &Rootfs, out: impl Write) -> Result<Packed, RootfsError> {
    rootfs.check()?;
    Ok(berth_layer::pack(
        &rootfs.merged(),
        out,
        &PackOptions {
            compression: Compression::None,
            whiteouts: false,
        },
    )?)
}

/// What a commit records besides the changes.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Tag the new image (any form a reference accepts).
    pub tag: Option<String>,
    /// The image's author (`docker commit --author`).
    pub author: Option<String>,
    /// The commit message (`docker commit --message`): the config's and history's comment.
    pub message: Option<String>,
    /// The history entry's `created_by` (default: `berth commit`).
    pub created_by: Option<String>,
    /// Config changes as Dockerfile instructions (`docker commit --change`): CMD, ENTRYPOINT,
    /// ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
    pub changes: Vec<String>,
}

/// Docker's layer media types, as their OCI equivalents (the new manifest is an OCI one).
fn oci_layer_type(t: &str) -> &str {
    match t {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        }
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        t => t,
    }
}

/// A scratch path in `dir` unique to this process and call.
fn scratch(dir: &Path, what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    dir.join(format!(
        ".{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Removes a scratch file or directory when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Gather the changes of a copied root filesystem into `stage` (an empty directory) in
/// overlay form: changed and added entries copied (hard links kept), deletions as whiteouts,
/// the directories on the way with the copy's metadata.
fn stage_copy(rootfs: &Rootfs, changes: &[Change], stage: &Path) -> Result<(), RootfsError> {
    let merged = rootfs.merged();
    let m_root = open_root(&merged)?;
    let s_root = open_root(stage)?;
    let mut copier = Copier {
        links: Default::default(),
        root: s_root.try_clone().map_err(io_err("opening", stage))?,
        dest: stage.to_path_buf(),
    };
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let err = |op, rel: &Path| io_err(op, &merged.join(rel));
    for c in changes {
        let rel = c.path.strip_prefix("/").unwrap_or(&c.path).to_path_buf();
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            continue;
        };
        // The directories on the way (made once; their metadata is set at the end).
        let mut s_dir = s_root.try_clone().map_err(io_err("opening", stage))?;
        let mut m_dir = m_root.try_clone().map_err(io_err("opening", &merged))?;
        let mut so_far = PathBuf::new();
        for comp in components(parent) {
            so_far.push(comp);
            if dirs.insert(so_far.clone()) {
                rustix::fs::mkdirat(&s_dir, comp, FsMode::from_raw_mode(0o700))
                    .map_err(|e| err("staging", &so_far)(e.into()))?;
            }
            s_dir = open_dir(s_dir.as_fd(), comp).map_err(|e| err("staging", &so_far)(e.into()))?;
            m_dir = open_dir(m_dir.as_fd(), comp).map_err(|e| err("opening", &so_far)(e.into()))?;
        }
        if c.kind == ChangeKind::Deleted {
            rustix::fs::mknodat(&s_dir, name, FileType::CharacterDevice, FsMode::empty(), 0)
                .map_err(|e| err("staging the whiteout of", &rel)(e.into()))?;
            continue;
        }
        let md = std::fs::symlink_metadata(path_at(m_dir.as_fd(), name))
            .map_err(err("reading", &rel))?;
        if md.is_dir() {
            if dirs.insert(rel.clone()) {
                rustix::fs::mkdirat(&s_dir, name, FsMode::from_raw_mode(0o700))
                    .map_err(|e| err("staging", &rel)(e.into()))?;
            }
        } else {
            copier.copy_node(m_dir.as_fd(), name, &md, s_dir.as_fd(), &rel)?;
        }
    }
    // Directory metadata last, deepest first (children change a directory's times).
    for rel in dirs.iter().rev() {
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            continue;
        };
        let m_at = merged.join(rel);
        let md = std::fs::symlink_metadata(&m_at).map_err(err("reading", rel))?;
        let s_parent = stage.join(parent);
        let pfd = open_root(&s_parent)?;
        crate::rootfs::copy_dir_meta(&m_at, &md, pfd.as_fd(), name)
            .map_err(err("staging the metadata of", rel))?;
    }
    Ok(())
}

impl ImageStore {
    /// `docker commit`: make an image of the base image `base` (a name or ID; the image the
    /// root filesystem was made from, or one with the same layers) plus what the container
    /// changed in `rootfs` (see the module docs).
    pub fn commit(
        &self,
        rootfs: &Rootfs,
        base: &str,
        opts: &CommitOptions,
    ) -> Result<ImageRecord, RootfsError> {
        if !rootfs.dir.join(STATE_FILE).is_file() {
            return Err(RootfsError::NotFound(rootfs.dir.clone()));
        }
        let tag = opts
            .tag
            .as_deref()
            .map(crate::manage::tag_name)
            .transpose()?;
        let base_rec = self.get(base)?;
        let diff_ids: Vec<String> = rootfs.layers().iter().map(|(d, _)| d.clone()).collect();
        if base_rec.diff_ids != diff_ids {
            return Err(RootfsError::WrongBase {
                dir: rootfs.dir.clone(),
                made_from: rootfs.image().to_string(),
                given: base_rec.id,
            });
        }
        let Value::Object(mut config) = self.config_json(&base_rec.id)? else {
            return Err(Error::BadConfig {
                digest: base_rec.id.clone(),
                why: "not a JSON object".into(),
            }
            .into());
        };
        {
            let c = config.entry("config").or_insert_with(|| json!({}));
            if !c.is_object() {
                *c = json!({});
            }
            if let Some(c) = c.as_object_mut() {
                for change in &opts.changes {
                    crate::import::apply_change(c, change)?;
                }
            }
        }

        let _lock = self.lock_shared()?;
        // The layer.
        let tmp = Scratch(scratch(&self.tmp_dir(), "commit"));
        let packed = {
            let file = std::fs::File::create(&tmp.0).map_err(io_err("creating", &tmp.0))?;
            let mut w = io::BufWriter::new(file);
            let opts = PackOptions {
                compression: Compression::Gzip,
                whiteouts: true,
            };
            let packed = match rootfs.kind() {
                RootfsKind::Copy => {
                    let changes = diff(rootfs)?;
                    let stage = Scratch(scratch(&rootfs.dir, "commit"));
                    std::fs::create_dir(&stage.0).map_err(io_err("creating", &stage.0))?;
                    stage_copy(rootfs, &changes, &stage.0)?;
                    berth_layer::pack(&stage.0, &mut w, &opts)?
                }
                _ => {
                    let upper = rootfs.upper();
                    if !upper.is_dir() {
                        return Err(RootfsError::NotFound(rootfs.dir.clone()));
                    }
                    berth_layer::pack(&upper, &mut w, &opts)?
                }
            };
            w.into_inner()
                .map_err(|e| io_err("writing", &tmp.0)(e.into_error()))?
                .sync_all()
                .map_err(io_err("writing", &tmp.0))?;
            packed
        };
        let empty = packed.entries == 0;
        let now = crate::util::now_rfc3339();
        let mut history = json!({
            "created": now,
            "created_by": opts.created_by.clone().unwrap_or_else(|| "berth commit".into()),
        });
        if let Some(a) = &opts.author {
            history["author"] = json!(a);
        }
        if let Some(m) = &opts.message {
            history["comment"] = json!(m);
        }
        let mut layers: Vec<Value> = {
            let bytes = self.read_blob(&base_rec.manifest)?;
            let m: Value = serde_json::from_slice(&bytes).map_err(|e| Error::BadConfig {
                digest: base_rec.manifest.clone(),
                why: format!("manifest: {e}"),
            })?;
            m.get("layers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for l in &mut layers {
            if let Some(t) = l.get("mediaType").and_then(Value::as_str) {
                let t = oci_layer_type(t).to_string();
                l["mediaType"] = json!(t);
            }
        }
        if empty {
            history["empty_layer"] = json!(true);
        } else {
            let digest = Digest::parse(&packed.digest).map_err(Error::from)?;
            let file = std::fs::File::open(&tmp.0).map_err(io_err("opening", &tmp.0))?;
            self.blobs
                .put(&digest, Some(packed.size), file)
                .map_err(Error::from)?;
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": packed.digest,
                "size": packed.size,
            }));
        }
        config.insert("created".into(), json!(now));
        match &opts.author {
            Some(a) => config.insert("author".into(), json!(a)),
            None => config.remove("author"),
        };
        match &opts.message {
            Some(m) => config.insert("comment".into(), json!(m)),
            None => config.remove("comment"),
        };
        let mut ids = diff_ids.clone();
        if !empty {
            ids.push(packed.diff_id.clone());
        }
        let rootfs_v = config
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers"}));
        if !rootfs_v.is_object() {
            *rootfs_v = json!({"type": "layers"});
        }
        rootfs_v["diff_ids"] = json!(ids);
        let hist = config.entry("history").or_insert_with(|| json!([]));
        if !hist.is_array() {
            *hist = json!([]);
        }
        if let Some(h) = hist.as_array_mut() {
            h.push(history);
        }
        let config = Value::Object(config);
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        let config_digest = self.blobs.put_bytes(&config_bytes).map_err(Error::from)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(),
                "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
        let manifest_digest = self.blobs.put_bytes(&manifest_bytes).map_err(Error::from)?;
        let parsed: berth_registry::Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| Error::Invalid(e.to_string()))?;
        let rec = self.add_image(&manifest_digest, &parsed, None)?;
        if let Some(tag) = tag {
            self.set_tags(&[(rec.id.clone(), tag)])?;
        }
        Ok(self.get(&rec.id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_print_like_docker_diff() {
        let c = Change {
            kind: ChangeKind::Deleted,
            path: PathBuf::from("/etc/passwd"),
        };
        assert_eq!(c.to_string(), "D /etc/passwd");
        assert_eq!(ChangeKind::Added.letter(), 'A');
        assert_eq!(ChangeKind::Changed.letter(), 'C');
    }

    #[test]
    fn docker_layer_types_become_oci_ones() {
        assert_eq!(
            oci_layer_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            oci_layer_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
}
