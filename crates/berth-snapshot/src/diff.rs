//! What a container changed in its root filesystem (`docker diff`).
//!
//! For overlayfs the changes are in the upper directory (whiteouts are deletions, opaque
//! directories hide what the layers had in them). For a copy they are found by comparing the
//! copy against the layers: a path the layers do not have is added, one whose kind, mode,
//! owner, times, content, link target, device or xattrs differ is changed (files untouched
//! since the copy was made, by their ctime, are not read), and one the layers have that the
//! copy lacks is deleted. As Docker does, a directory holding a change is itself reported
//! changed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use berth_layer::pack::{OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, is_whiteout, path_at, sorted_names};
use serde::Serialize;

use crate::fsutil::{io_err, open_dir, open_root};
use crate::{Error, Result, Root, STATE_FILE};

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
    fn new(root: &Root) -> LowerView {
        LowerView {
            layers: root.lower_dirs(),
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

pub(crate) fn components(rel: &Path) -> Vec<&OsStr> {
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

/// Sorted by path, each path once.
fn finish(mut out: Vec<Change>) -> Vec<Change> {
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// The changes of an overlay root: what its upper directory holds.
pub(crate) fn overlay_changes(root: &Root) -> Result<Vec<Change>> {
    let upper = root.upper();
    let fd = open_root(&upper)?;
    let d = OverlayDiff {
        view: LowerView::new(root),
        upper,
    };
    let mut out = Vec::new();
    d.walk(fd.as_fd(), Path::new(""), &mut out)?;
    Ok(finish(out))
}

/// The changes of a copied root: the copy compared with the layers.
pub(crate) fn copy_changes(root: &Root) -> Result<Vec<Change>> {
    let state = root.dir.join(STATE_FILE);
    let stamp = std::fs::symlink_metadata(&state).map_err(io_err("reading", &state))?;
    let d = CopyDiff {
        view: LowerView::new(root),
        merged: root.target.clone(),
        stamp: (stamp.ctime(), stamp.ctime_nsec()),
    };
    let fd = open_root(&d.merged)?;
    Ok(finish(d.walk(fd.as_fd(), Path::new(""), true)?))
}

struct OverlayDiff {
    view: LowerView,
    upper: PathBuf,
}

impl OverlayDiff {
    fn walk(&self, dir: BorrowedFd<'_>, rel: &Path, out: &mut Vec<Change>) -> Result<(), Error> {
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
    fn walk(&self, dir: BorrowedFd<'_>, rel: &Path, in_image: bool) -> Result<Vec<Change>, Error> {
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
}
