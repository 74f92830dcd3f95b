//! Fast path operations inside the container's rootfs.
//!
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` makes the kernel resolve a path as if the
//! rootfs were `/`: symlinks and `..` cannot leave it. That is the guarantee the rootfs set-up
//! needs, in one system call. pathrs's `mkdir_all` and `reopen` add procfs re-verification on
//! every step (dozens of system calls each, most of a container's start-up); these helpers do
//! the same jobs with the kernel's guarantee alone: look up with RESOLVE_IN_ROOT, create the
//! missing components one by one with mkdirat, and open each new one with
//! O_NOFOLLOW | O_DIRECTORY so that a symlink swapped in meanwhile is refused, not followed.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use pathrs::{Handle, Root};

/// openat2 beneath `dirfd` with RESOLVE_IN_ROOT.
fn open_in_root(dirfd: BorrowedFd<'_>, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    Ok(nix::fcntl::openat2(dirfd, path, how)?)
}

/// The components of `path` relative to the root ("/a/../b" keeps its "..": the kernel
/// resolves it inside the root).
fn parts(path: &Path) -> Vec<&std::ffi::OsStr> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            Component::ParentDir => Some(std::ffi::OsStr::new("..")),
            _ => None,
        })
        .collect()
}

/// `mkdir -p` of `path` inside `root`; returns an O_PATH handle to the directory.
pub fn mkdir_all(root: &Root, path: &Path, mode: u32) -> io::Result<Handle> {
    let rootfd = root.as_fd();
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open_in_root(rootfd, path, flags) {
        Ok(fd) => return Ok(Handle::from_fd(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let comps = parts(path);
    // The longest prefix that exists.
    let mut have = comps.len();
    let mut dir = loop {
        have -= 1;
        let prefix: std::path::PathBuf = comps[..have].iter().collect();
        match open_in_root(rootfd, &prefix, flags) {
            Ok(fd) => break fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && have > 0 => continue,
            Err(e) => return Err(e),
        }
    };
    // The path walked so far, for "..": the kernel resolves it from the root, in the root.
    let mut walked: std::path::PathBuf = comps[..have].iter().collect();
    for name in &comps[have..] {
        walked.push(name);
        if *name == ".." {
            dir = open_in_root(rootfd, &walked, flags)?;
            continue;
        }
        match nix::sys::stat::mkdirat(&dir, *name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        // O_NOFOLLOW | O_DIRECTORY refuse a symlink swapped in meanwhile.
        dir = nix::fcntl::openat(
            &dir,
            *name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(Handle::from_fd(dir))
}

/// A readable directory fd for an O_PATH handle to a directory (no procfs needed: "." of a
/// directory opened relative to its own O_PATH fd).
pub fn reopen_dir(h: &Handle) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(
        h.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_all_stays_inside_and_refuses_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let rootp = t.path().join("root");
        std::fs::create_dir(&rootp).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let root = Root::open(&rootp).unwrap();
        mkdir_all(&root, Path::new("/a/b/c"), 0o755).unwrap();
        assert!(rootp.join("a/b/c").is_dir());
        mkdir_all(&root, Path::new("a/b/c"), 0o755).unwrap();
        // An absolute symlink is resolved inside the root.
        std::os::unix::fs::symlink(&outside, rootp.join("link")).unwrap();
        std::fs::create_dir_all(rootp.join(outside.strip_prefix("/").unwrap())).unwrap();
        mkdir_all(&root, Path::new("link/x"), 0o755).unwrap();
        assert!(!outside.join("x").exists());
        assert!(
            rootp
                .join(outside.strip_prefix("/").unwrap())
                .join("x")
                .is_dir()
        );
        // ".." after a new directory goes back up; it cannot climb out of the root.
        mkdir_all(&root, Path::new("a/new/../sibling"), 0o755).unwrap();
        assert!(rootp.join("a/sibling").is_dir() && rootp.join("a/new").is_dir());
        mkdir_all(&root, Path::new("../../escape"), 0o755).unwrap();
        assert!(rootp.join("escape").is_dir());
        assert!(!t.path().join("escape").exists());
        // A dangling symlink is not created through.
        std::os::unix::fs::symlink("/nowhere", rootp.join("dangling")).unwrap();
        assert!(mkdir_all(&root, Path::new("dangling"), 0o755).is_err());
        assert!(!rootp.join("nowhere").exists());
        let h = mkdir_all(&root, Path::new("a"), 0o755).unwrap();
        assert!(reopen_dir(&h).is_ok());
    }
}
