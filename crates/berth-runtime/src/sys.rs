//! The system calls of a container's set-up, behind one trait.
//!
//! `rootfs`, `cgmount`, `process` and `init` make every call that changes the process or the
//! mount table, and every query whose answer depends on the host, through [`Sys`]. The runtime
//! passes [`LinuxSys`], a zero-sized type whose methods are thin wrappers of nix/rustix (one
//! indirect call each, no allocation beyond the call's own); the unit tests pass a recording
//! double (`sys::recording`, test builds only) that records each call with its arguments,
//! answers queries from the real file system or from fakes, and fails the calls it is told to,
//! so the set-up logic is tested without root and without touching the host.
//!
//! What stays outside: creating directories and files inside the rootfs (unprivileged, and done
//! for real by the tests in a temporary rootfs), the setup channel, hooks, the terminal and
//! execve.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::resource::Resource;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statvfs::FsFlags;
use rustix::thread::{CapabilitySet, CapabilitySets};

#[cfg(test)]
pub mod recording;

/// What a path is: the part of stat(2) the set-up looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// The file type.
    pub kind: FileKind,
    /// The permission bits (mode & 0o7777).
    pub mode: u32,
}

/// A file type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (only from a stat that does not follow links).
    Symlink,
    /// Anything else (devices, fifos, sockets).
    Other,
}

impl FileStat {
    fn of(m: &std::fs::Metadata) -> FileStat {
        let t = m.file_type();
        let kind = if t.is_dir() {
            FileKind::Dir
        } else if t.is_file() {
            FileKind::File
        } else if t.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        };
        FileStat {
            kind,
            mode: m.permissions().mode() & 0o7777,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// struct sched_attr of sched_setattr(2).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedAttr {
    /// Size of the struct.
    pub size: u32,
    /// SCHED_*.
    pub sched_policy: u32,
    /// SCHED_FLAG_*.
    pub sched_flags: u64,
    /// Nice value (SCHED_OTHER, SCHED_BATCH).
    pub sched_nice: i32,
    /// Static priority (SCHED_FIFO, SCHED_RR).
    pub sched_priority: u32,
    /// SCHED_DEADLINE runtime.
    pub sched_runtime: u64,
    /// SCHED_DEADLINE deadline.
    pub sched_deadline: u64,
    /// SCHED_DEADLINE period.
    pub sched_period: u64,
    /// Utilisation clamp minimum.
    pub sched_util_min: u32,
    /// Utilisation clamp maximum.
    pub sched_util_max: u32,
}

/// The system calls of the set-up. Paths and fds are those the kernel would get; `*at` calls
/// take a directory fd and one name, as resolved inside the rootfs by the caller.
pub trait Sys {
    /// mount(2).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// umount2(2).
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    /// mount_setattr(2) on the mount at `fd` and every mount beneath it (AT_RECURSIVE).
    fn mount_setattr_recursive(&self, fd: BorrowedFd<'_>, set: u64, clear: u64) -> nix::Result<()>;
    /// The flags of the mount holding `path` (statvfs(3)).
    fn mount_flags(&self, path: &Path) -> nix::Result<FsFlags>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    /// chroot(2).
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    /// chdir(2).
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    /// fchdir(2).
    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()>;
    /// mknodat(2).
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        mode: Mode,
        dev: u64,
    ) -> nix::Result<()>;
    /// fchmodat(2) without following a symlink.
    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> nix::Result<()>;
    /// fchownat(2) with AT_SYMLINK_NOFOLLOW.
    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> nix::Result<()>;
    /// symlinkat(2): `dir/name` → `target`.
    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()>;
    /// stat(2) (`follow`) or lstat(2).
    fn stat(&self, path: &Path, follow: bool) -> io::Result<FileStat>;
    /// Read a small file (procfs, sysfs).
    fn read_file(&self, path: &Path) -> io::Result<String>;
    /// Write a file (procfs: sysctls, oom_score_adj, LSM attributes).
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Create an empty file if nothing is at `path` (a mount point).
    fn create_file(&self, path: &Path) -> io::Result<()>;
    /// setsid(2).
    fn setsid(&self) -> nix::Result<()>;
    /// umask(2); returns the previous mask.
    fn umask(&self, mode: Mode) -> Mode;
    /// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name).
    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()>;
    /// sethostname(2).
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// setdomainname(2).
    fn setdomainname(&self, name: &str) -> nix::Result<()>;
    /// personality(2) with an execution domain (PER_*).
    fn personality(&self, domain: u32) -> nix::Result<()>;
    /// setrlimit(2).
    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()>;
    /// getrlimit(2).
    fn getrlimit(&self, resource: Resource) -> nix::Result<(u64, u64)>;
    /// ioprio_set(IOPRIO_WHO_PROCESS, 0, value).
    fn ioprio_set(&self, value: i64) -> nix::Result<()>;
    /// sched_setattr(2) of the calling process.
    fn sched_setattr(&self, attr: &SchedAttr) -> nix::Result<()>;
    /// prctl(PR_SET_NO_NEW_PRIVS, 1).
    fn set_no_new_privs(&self) -> nix::Result<()>;
    /// prctl(PR_SET_KEEPCAPS).
    fn set_keepcaps(&self, on: bool) -> nix::Result<()>;
    /// The highest capability number the kernel knows (/proc/sys/kernel/cap_last_cap).
    fn last_cap(&self) -> u8;
    /// prctl(PR_CAPBSET_DROP, cap).
    fn drop_bounding_cap(&self, cap: u8) -> nix::Result<()>;
    /// capset(2) of the calling thread's effective, permitted and inheritable sets.
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()>;
    /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
    fn clear_ambient_caps(&self) -> nix::Result<()>;
    /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap).
    fn raise_ambient_cap(&self, cap: u8) -> nix::Result<()>;
    /// setgroups(2).
    fn setgroups(&self, groups: &[u32]) -> nix::Result<()>;
    /// setresgid(2) with one gid for all three.
    fn setresgid(&self, gid: u32) -> nix::Result<()>;
    /// setresuid(2) with one uid for all three.
    fn setresuid(&self, uid: u32) -> nix::Result<()>;
    /// Mark every fd from `first` up close-on-exec.
    fn cloexec_from(&self, first: u32) -> io::Result<()>;
}

/// The real system calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSys;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

fn cap_bit(cap: u8) -> nix::Result<CapabilitySet> {
    if cap >= 64 {
        return Err(Errno::EINVAL);
    }
    Ok(CapabilitySet::from_bits_retain(1u64 << cap))
}

impl Sys for LinuxSys {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn mount_setattr_recursive(&self, fd: BorrowedFd<'_>, set: u64, clear: u64) -> nix::Result<()> {
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let attr = MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        };
        const AT_RECURSIVE: libc::c_uint = 0x8000;
        // SAFETY: mount_setattr reads `size` bytes from the valid struct; the path is a valid
        // C string and fd is an open file descriptor (borrowed for the call).
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        Errno::result(r).map(drop)
    }

    fn mount_flags(&self, path: &Path) -> nix::Result<FsFlags> {
        nix::sys::statvfs::statvfs(path).map(|s| s.flags())
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chroot(path)
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()> {
        nix::unistd::fchdir(dir)
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        mode: Mode,
        dev: u64,
    ) -> nix::Result<()> {
        nix::sys::stat::mknodat(dir, name, kind, mode, dev)
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> nix::Result<()> {
        nix::sys::stat::fchmodat(
            dir,
            name,
            mode,
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
    }

    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> nix::Result<()> {
        nix::unistd::fchownat(
            dir,
            name,
            uid.map(Into::into),
            gid.map(Into::into),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
        nix::unistd::symlinkat(target, dir, name)
    }

    fn stat(&self, path: &Path, follow: bool) -> io::Result<FileStat> {
        let m = if follow {
            std::fs::metadata(path)?
        } else {
            std::fs::symlink_metadata(path)?
        };
        Ok(FileStat::of(&m))
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        std::fs::write(path, data)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
    }

    fn setsid(&self) -> nix::Result<()> {
        nix::unistd::setsid().map(drop)
    }

    fn umask(&self, mode: Mode) -> Mode {
        nix::sys::stat::umask(mode)
    }

    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()> {
        const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
        // SAFETY: keyctl reads a valid NUL-terminated name.
        let r =
            unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
        Errno::result(r).map(drop)
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        rustix::system::setdomainname(name.as_bytes()).map_err(errno)
    }

    fn personality(&self, domain: u32) -> nix::Result<()> {
        nix::sys::personality::set(nix::sys::personality::Persona::from_bits_retain(
            domain as libc::c_int,
        ))
        .map(drop)
    }

    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()> {
        nix::sys::resource::setrlimit(resource, soft, hard)
    }

    fn getrlimit(&self, resource: Resource) -> nix::Result<(u64, u64)> {
        nix::sys::resource::getrlimit(resource)
    }

    fn ioprio_set(&self, value: i64) -> nix::Result<()> {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        // SAFETY: ioprio_set takes three integers; no memory is passed.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
        Errno::result(r).map(drop)
    }

    fn sched_setattr(&self, attr: &SchedAttr) -> nix::Result<()> {
        // SAFETY: sched_setattr reads `attr.size` bytes from a valid, initialised struct.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
        Errno::result(r).map(drop)
    }

    fn set_no_new_privs(&self) -> nix::Result<()> {
        nix::sys::prctl::set_no_new_privs()
    }

    fn set_keepcaps(&self, on: bool) -> nix::Result<()> {
        nix::sys::prctl::set_keepcaps(on)
    }

    fn last_cap(&self) -> u8 {
        crate::process::last_cap()
    }

    fn drop_bounding_cap(&self, cap: u8) -> nix::Result<()> {
        rustix::thread::remove_capability_from_bounding_set(cap_bit(cap)?).map_err(errno)
    }

    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: CapabilitySet::from_bits_retain(effective),
                permitted: CapabilitySet::from_bits_retain(permitted),
                inheritable: CapabilitySet::from_bits_retain(inheritable),
            },
        )
        .map_err(errno)
    }

    fn clear_ambient_caps(&self) -> nix::Result<()> {
        rustix::thread::clear_ambient_capability_set().map_err(errno)
    }

    fn raise_ambient_cap(&self, cap: u8) -> nix::Result<()> {
        rustix::thread::configure_capability_in_ambient_set(cap_bit(cap)?, true).map_err(errno)
    }

    fn setgroups(&self, groups: &[u32]) -> nix::Result<()> {
        let gids: Vec<nix::unistd::Gid> = groups.iter().map(|&g| g.into()).collect();
        nix::unistd::setgroups(&gids)
    }

    fn setresgid(&self, gid: u32) -> nix::Result<()> {
        nix::unistd::setresgid(gid.into(), gid.into(), gid.into())
    }

    fn setresuid(&self, uid: u32) -> nix::Result<()> {
        nix::unistd::setresuid(uid.into(), uid.into(), uid.into())
    }

    fn cloexec_from(&self, first: u32) -> io::Result<()> {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range with integer arguments; marking fds close-on-exec does not
        // invalidate any fd this process still uses before execve.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        // Kernels before 5.11: one fcntl per open fd.
        let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd: &i32| fd >= first as i32)
            .collect();
        for fd in fds {
            // SAFETY: fcntl on an fd number; an fd that closed meanwhile (the directory's own)
            // just fails with EBADF, which is ignored.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Ok(())
    }
}
