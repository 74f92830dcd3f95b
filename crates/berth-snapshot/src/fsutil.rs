//! Small file-system helpers shared by the snapshotters.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use berth_layer::pack::{path_at, sorted_names};
use rustix::fs::{AtFlags, Mode as FsMode, OFlags};

use crate::Error;

/// The error of a failed file operation `op` on `path`.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// As [`io_err`], from a raw errno.
pub(crate) fn errno(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(rustix::io::Errno) -> Error + use<> {
    let f = io_err(op, path);
    move |e| f(e.into())
}

/// A path for a message: whole when short, else its start and end around an ellipsis (a
/// path in a hostile tree can be thousands of components deep).
pub(crate) fn short(p: &Path) -> impl fmt::Display + '_ {
    Short(p)
}

struct Short<'a>(&'a Path);

/// The most bytes of a path a message shows.
const MAX_SHOWN: usize = 200;

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.to_string_lossy();
        if s.len() <= MAX_SHOWN {
            return f.write_str(&s);
        }
        let mut head = MAX_SHOWN / 2;
        while !s.is_char_boundary(head) {
            head -= 1;
        }
        let mut tail = s.len() - MAX_SHOWN / 2;
        while !s.is_char_boundary(tail) {
            tail += 1;
        }
        write!(f, "{}…{} ({} bytes)", &s[..head], &s[tail..], s.len())
    }
}

/// Open the directory `p` as O_PATH (following symlinks: `p` is trusted).
pub(crate) fn open_root(p: &Path) -> crate::Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => Error::NotFound(p.to_path_buf()),
        e => errno("opening", p)(e),
    })
}

/// Open the directory `name` in `dir` as O_PATH, following no symlink.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        FsMode::empty(),
    )
}

/// Remove `name` in `dir`, recursively, following no symlink. Missing is fine.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let md = match std::fs::symlink_metadata(path_at(dir, name)) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !md.is_dir() {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let sub = open_dir(dir, name)?;
    clear_dir(std::os::fd::AsFd::as_fd(&sub))?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Remove everything in the directory `dir`.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    for child in sorted_names(dir)? {
        remove_all(dir, &child)?;
    }
    Ok(())
}

/// Make the directory `p` with `mode` (its parent must exist).
pub(crate) fn mkdir(p: &Path, mode: u32) -> crate::Result<()> {
    match rustix::fs::mkdir(p, FsMode::from_raw_mode(mode)) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(Error::Exists(p.to_path_buf())),
        Err(e) => Err(errno("creating", p)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_shortened_in_messages() {
        let deep: std::path::PathBuf = std::iter::repeat_n("a", 4096).collect();
        let shown = short(&deep).to_string();
        assert!(shown.len() < 260, "{}", shown.len());
        assert!(shown.contains('…') && shown.ends_with("(8191 bytes)"));
        assert_eq!(short(Path::new("/x/y")).to_string(), "/x/y");
    }
}
