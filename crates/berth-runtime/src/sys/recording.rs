//! A [`Sys`] that records every call instead of making it (test builds only).
//!
//! Paths are recorded as the kernel would see them: a `/proc/self/fd/N` target or a directory
//! fd is resolved (readlink) to the path it stands for, and a path inside the test's rootfs is
//! written `$ROOT/…` so expectations do not depend on the temporary directory. Every call that
//! would change something is recorded and not made (`chdir`, `pivot_root` and `chroot` are
//! only remembered, to answer later queries as the process would see them). Queries (stat,
//! reading files, statvfs, getrlimit, cap_last_cap) are answered, not recorded: from fakes set
//! with [`RecordingSys::fake_stat`], [`RecordingSys::fake_file`] and friends, else, once a
//! `pivot_root` or `chroot` was recorded, from inside the directory that became the root, else
//! from the real file system (reading is harmless). [`RecordingSys::fail`] makes chosen calls
//! fail (they are recorded too).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::resource::Resource;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statvfs::FsFlags;

use super::{FileKind, FileStat, SchedAttr, Sys};

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// mount(2).
    Mount {
        /// Source (resolved like a target when it is a /proc/self/fd path).
        source: Option<String>,
        /// Target.
        target: String,
        /// File system type.
        fstype: Option<String>,
        /// Flags.
        flags: MsFlags,
        /// Data.
        data: Option<String>,
    },
    /// umount2(2).
    Umount2 {
        /// Target.
        target: String,
        /// Flags.
        flags: MntFlags,
    },
    /// mount_setattr(2), recursive.
    MountSetattr {
        /// The mount.
        target: String,
        /// Attributes set.
        set: u64,
        /// Attributes cleared.
        clear: u64,
    },
    /// pivot_root(2).
    PivotRoot {
        /// new_root.
        new_root: String,
        /// put_old.
        put_old: String,
    },
    /// chroot(2).
    Chroot(String),
    /// chdir(2).
    Chdir(String),
    /// fchdir(2), with the directory's path.
    Fchdir(String),
    /// mknodat(2).
    Mknod {
        /// The node.
        path: String,
        /// Its type.
        kind: SFlag,
        /// Its permission bits.
        mode: u32,
        /// Device major.
        major: u64,
        /// Device minor.
        minor: u64,
    },
    /// fchmodat(2).
    Chmod {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// fchownat(2).
    Chown {
        /// The file.
        path: String,
        /// Owner.
        uid: Option<u32>,
        /// Group.
        gid: Option<u32>,
    },
    /// symlinkat(2).
    Symlink {
        /// The link.
        link: String,
        /// What it points to.
        target: String,
    },
    /// A file written.
    WriteFile {
        /// The file.
        path: String,
        /// What was written.
        data: String,
    },
    /// An empty file created.
    CreateFile(String),
    /// setsid(2).
    Setsid,
    /// umask(2).
    Umask(u32),
    /// A new session keyring joined.
    JoinSessionKeyring(String),
    /// sethostname(2).
    Sethostname(String),
    /// setdomainname(2).
    Setdomainname(String),
    /// personality(2).
    Personality(u32),
    /// setrlimit(2).
    Setrlimit {
        /// The resource.
        resource: Resource,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// ioprio_set(2).
    IoprioSet(i64),
    /// sched_setattr(2).
    SchedSetattr(SchedAttr),
    /// prctl(PR_SET_NO_NEW_PRIVS).
    NoNewPrivs,
    /// prctl(PR_SET_KEEPCAPS).
    KeepCaps(bool),
    /// prctl(PR_CAPBSET_DROP).
    DropBounding(u8),
    /// capset(2).
    Capset {
        /// Effective.
        effective: u64,
        /// Permitted.
        permitted: u64,
        /// Inheritable.
        inheritable: u64,
    },
    /// PR_CAP_AMBIENT_CLEAR_ALL.
    ClearAmbient,
    /// PR_CAP_AMBIENT_RAISE.
    RaiseAmbient(u8),
    /// setgroups(2).
    Setgroups(Vec<u32>),
    /// setresgid(2).
    Setresgid(u32),
    /// setresuid(2).
    Setresuid(u32),
    /// Every fd from this one up marked close-on-exec.
    CloexecFrom(u32),
}

type Matcher = Box<dyn Fn(&Call) -> bool>;

/// The recording double.
#[derive(Default)]
pub struct RecordingSys {
    calls: RefCell<Vec<Call>>,
    failures: RefCell<Vec<(Matcher, Errno)>>,
    rootfs: Option<PathBuf>,
    stats: HashMap<PathBuf, Option<FileStat>>,
    files: HashMap<PathBuf, String>,
    mount_flags: HashMap<String, FsFlags>,
    rlimits: Vec<(Resource, (u64, u64))>,
    last_cap: Option<u8>,
    /// The directory (host path) the last chdir/fchdir went to.
    cwd: RefCell<Option<PathBuf>>,
    /// The directory that became `/` with pivot_root or chroot.
    root: RefCell<Option<PathBuf>>,
}

impl RecordingSys {
    /// A double whose paths inside `rootfs` are recorded as `$ROOT/…`.
    pub fn new(rootfs: &Path) -> RecordingSys {
        RecordingSys {
            rootfs: Some(
                rootfs
                    .canonicalize()
                    .unwrap_or_else(|_| rootfs.to_path_buf()),
            ),
            ..Default::default()
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// The recorded mounts.
    pub fn mounts(&self) -> Vec<Call> {
        self.calls
            .borrow()
            .iter()
            .filter(|c| matches!(c, Call::Mount { .. }))
            .cloned()
            .collect()
    }

    /// Make every call that `when` matches fail with `errno` (it is still recorded).
    pub fn fail(&self, when: impl Fn(&Call) -> bool + 'static, errno: Errno) {
        self.failures.borrow_mut().push((Box::new(when), errno));
    }

    /// Answer stat/lstat of `path` (as the process sees it) with `stat`, or NotFound for None.
    pub fn fake_stat(&mut self, path: &str, stat: Option<FileStat>) {
        self.stats.insert(PathBuf::from(path), stat);
    }

    /// Answer a read of `path` with `contents`.
    pub fn fake_file(&mut self, path: &str, contents: &str) {
        self.files.insert(PathBuf::from(path), contents.to_string());
    }

    /// Answer statvfs of `path` (as recorded: `$ROOT/…` inside the rootfs) with `flags`
    /// (others: no flags).
    pub fn fake_mount_flags(&mut self, path: &str, flags: FsFlags) {
        self.mount_flags.insert(path.to_string(), flags);
    }

    /// Answer getrlimit of `resource` with (soft, hard) (others: the real limits).
    pub fn fake_rlimit(&mut self, resource: Resource, soft: u64, hard: u64) {
        self.rlimits.push((resource, (soft, hard)));
    }

    /// Answer cap_last_cap with `n` (default 40).
    pub fn set_last_cap(&mut self, n: u8) {
        self.last_cap = Some(n);
    }

    fn record(&self, call: Call) -> nix::Result<()> {
        let failed = self
            .failures
            .borrow()
            .iter()
            .find(|(m, _)| m(&call))
            .map(|(_, e)| *e);
        self.calls.borrow_mut().push(call);
        failed.map_or(Ok(()), Err)
    }

    /// A host path as recorded: `$ROOT/…` inside the rootfs.
    fn show(&self, p: &Path) -> String {
        if let Some(r) = &self.rootfs
            && let Ok(rest) = p.strip_prefix(r)
        {
            let rest = rest.to_string_lossy();
            return if rest.is_empty() {
                "$ROOT".to_string()
            } else {
                format!("$ROOT/{rest}")
            };
        }
        p.to_string_lossy().into_owned()
    }

    /// The host path a /proc/self/fd/N path stands for (others unchanged).
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.starts_with("/proc/self/fd/")
            && let Ok(t) = std::fs::read_link(p)
        {
            return t;
        }
        p.to_path_buf()
    }

    fn path(&self, p: &Path) -> String {
        self.show(&self.resolve(p))
    }

    fn fd_path(&self, fd: BorrowedFd<'_>) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap_or_else(|_| PathBuf::from(format!("fd:{}", fd.as_raw_fd())))
    }

    fn at(&self, fd: BorrowedFd<'_>, name: &OsStr) -> String {
        self.show(&self.fd_path(fd).join(name))
    }

    /// Where a query for `p` goes: inside the new root once there is one.
    fn host(&self, p: &Path) -> PathBuf {
        match (&*self.root.borrow(), p.is_absolute()) {
            (Some(root), true) => under(root, p),
            _ => p.to_path_buf(),
        }
    }

    fn enter(&self, p: PathBuf) {
        *self.cwd.borrow_mut() = Some(p);
    }
}

/// `p` (absolute) beneath `root`.
fn under(root: &Path, p: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    out.extend(
        p.components()
            .filter(|c| matches!(c, std::path::Component::Normal(_))),
    );
    out
}

fn opt(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

impl Sys for RecordingSys {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        let call = Call::Mount {
            source: source.map(|s| self.path(s)),
            target: self.path(target),
            fstype: opt(fstype),
            flags,
            data: opt(data),
        };
        self.record(call)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        let target = self.path(target);
        self.record(Call::Umount2 { target, flags })
    }

    fn mount_setattr_recursive(&self, fd: BorrowedFd<'_>, set: u64, clear: u64) -> nix::Result<()> {
        let target = self.show(&self.fd_path(fd));
        self.record(Call::MountSetattr { target, set, clear })
    }

    fn mount_flags(&self, path: &Path) -> nix::Result<FsFlags> {
        Ok(self
            .mount_flags
            .get(&self.path(path))
            .copied()
            .unwrap_or(FsFlags::empty()))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        let call = Call::PivotRoot {
            new_root: self.path(new_root),
            put_old: self.path(put_old),
        };
        self.record(call)?;
        *self.root.borrow_mut() = self.cwd.borrow().clone();
        Ok(())
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chroot(self.path(path)))?;
        let new = if path == Path::new(".") {
            self.cwd.borrow().clone()
        } else {
            Some(self.host(path))
        };
        *self.root.borrow_mut() = new;
        Ok(())
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chdir(self.path(path)))?;
        self.enter(self.host(path));
        Ok(())
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()> {
        let p = self.fd_path(dir);
        self.record(Call::Fchdir(self.show(&p)))?;
        self.enter(p);
        Ok(())
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        mode: Mode,
        dev: u64,
    ) -> nix::Result<()> {
        let call = Call::Mknod {
            path: self.at(dir, name),
            kind,
            mode: mode.bits(),
            major: nix::sys::stat::major(dev),
            minor: nix::sys::stat::minor(dev),
        };
        self.record(call)
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> nix::Result<()> {
        let call = Call::Chmod {
            path: self.at(dir, name),
            mode: mode.bits(),
        };
        self.record(call)
    }

    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> nix::Result<()> {
        let call = Call::Chown {
            path: self.at(dir, name),
            uid,
            gid,
        };
        self.record(call)
    }

    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
        let call = Call::Symlink {
            link: self.at(dir, name),
            target: target.to_string_lossy().into_owned(),
        };
        self.record(call)
    }

    fn stat(&self, path: &Path, follow: bool) -> io::Result<FileStat> {
        if let Some(s) = self.stats.get(path) {
            return s.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT));
        }
        let host = self.host(path);
        let m = if follow {
            std::fs::metadata(host)?
        } else {
            std::fs::symlink_metadata(host)?
        };
        Ok(FileStat::of(&m))
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        if let Some(s) = self.files.get(path) {
            return Ok(s.clone());
        }
        std::fs::read_to_string(self.host(path))
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let call = Call::WriteFile {
            path: self.path(path),
            data: String::from_utf8_lossy(data).into_owned(),
        };
        self.record(call).map_err(io::Error::from)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        self.record(Call::CreateFile(self.path(path)))
            .map_err(io::Error::from)
    }

    fn setsid(&self) -> nix::Result<()> {
        self.record(Call::Setsid)
    }

    fn umask(&self, mode: Mode) -> Mode {
        let _ = self.record(Call::Umask(mode.bits()));
        Mode::from_bits_truncate(0o022)
    }

    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()> {
        self.record(Call::JoinSessionKeyring(
            name.to_string_lossy().into_owned(),
        ))
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Sethostname(name.to_string()))
    }

    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Setdomainname(name.to_string()))
    }

    fn personality(&self, domain: u32) -> nix::Result<()> {
        self.record(Call::Personality(domain))
    }

    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()> {
        self.record(Call::Setrlimit {
            resource,
            soft,
            hard,
        })
    }

    fn getrlimit(&self, resource: Resource) -> nix::Result<(u64, u64)> {
        match self.rlimits.iter().find(|(r, _)| *r == resource) {
            Some((_, l)) => Ok(*l),
            None => nix::sys::resource::getrlimit(resource),
        }
    }

    fn ioprio_set(&self, value: i64) -> nix::Result<()> {
        self.record(Call::IoprioSet(value))
    }

    fn sched_setattr(&self, attr: &SchedAttr) -> nix::Result<()> {
        self.record(Call::SchedSetattr(*attr))
    }

    fn set_no_new_privs(&self) -> nix::Result<()> {
        self.record(Call::NoNewPrivs)
    }

    fn set_keepcaps(&self, on: bool) -> nix::Result<()> {
        self.record(Call::KeepCaps(on))
    }

    fn last_cap(&self) -> u8 {
        self.last_cap.unwrap_or(40)
    }

    fn drop_bounding_cap(&self, cap: u8) -> nix::Result<()> {
        self.record(Call::DropBounding(cap))
    }

    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
        self.record(Call::Capset {
            effective,
            permitted,
            inheritable,
        })
    }

    fn clear_ambient_caps(&self) -> nix::Result<()> {
        self.record(Call::ClearAmbient)
    }

    fn raise_ambient_cap(&self, cap: u8) -> nix::Result<()> {
        self.record(Call::RaiseAmbient(cap))
    }

    fn setgroups(&self, groups: &[u32]) -> nix::Result<()> {
        self.record(Call::Setgroups(groups.to_vec()))
    }

    fn setresgid(&self, gid: u32) -> nix::Result<()> {
        self.record(Call::Setresgid(gid))
    }

    fn setresuid(&self, uid: u32) -> nix::Result<()> {
        self.record(Call::Setresuid(uid))
    }

    fn cloexec_from(&self, first: u32) -> io::Result<()> {
        self.record(Call::CloexecFrom(first))
            .map_err(io::Error::from)
    }
}

/// A stat answer for [`RecordingSys::fake_stat`].
pub fn stat(kind: FileKind, mode: u32) -> Option<FileStat> {
    Some(FileStat { kind, mode })
}
