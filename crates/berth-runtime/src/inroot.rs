//! Fast path operations inside the container's rootfs.
//!
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` makes the kernel resolve a path as if the
//! rootfs were `/`: symlinks and `..` cannot leave it. That is the guarantee the rootfs set-up
//! needs, in one system call. pathrs's `mkdir_all` and `reopen` add procfs re-verification on
//! every step (dozens of system calls each, most of a container's start-up); these helpers do
//! the same jobs with the kernel's guarantee alone: look up with RESOLVE_IN_ROOT, create the
//! missing components one by one with mkdirat, and open each new one with
//! O_NOFOLLOW | O_DIRECTORY so that a symlink swapped in meanwhile is refused, not followed.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use pathrs::{Handle, Root};

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// openat2 beneath `dirfd` with RESOLVE_IN_ROOT.
fn open_in_root(dirfd: i32, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = cstr(if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    })?;
    // SAFETY: open_how is a plain C struct; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads the C string and the open_how struct, both valid for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd returned by openat2, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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
    let rootfd = root.as_fd().as_raw_fd();
    let flags = libc::O_PATH | libc::O_DIRECTORY;
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
        let c = cstr(Path::new(name))?;
        // SAFETY: mkdirat reads a valid C string.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
        // SAFETY: openat reads a valid C string; O_NOFOLLOW | O_DIRECTORY refuse a symlink.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd returned by openat, owned by nobody else.
        dir = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(Handle::from_fd(dir))
}

/// A readable directory fd for an O_PATH handle to a directory (no procfs needed: "." of a
/// directory opened relative to its own O_PATH fd).
pub fn reopen_dir(h: &Handle) -> io::Result<OwnedFd> {
    // SAFETY: openat with a valid C string literal.
    let fd = unsafe {
        libc::openat(
            h.as_fd().as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd returned by openat, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
