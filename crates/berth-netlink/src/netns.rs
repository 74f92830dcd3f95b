//! Network namespaces kept alive by a bind mount on a file, like `ip netns add`.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::handle::LOOPBACK_INDEX;
use crate::{Error, Handle, Result};

/// The network namespace of the calling thread, as a path.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";
/// Stacked mounts `remove` takes off at most (normally there is one).
const MAX_STACKED_MOUNTS: usize = 64;

/// A network namespace: an open file descriptor of it, and the path it was found at.
///
/// One made by [`Netns::create`] is kept alive by a bind mount of it on a file, so it
/// outlives the processes in it, and the daemon finds it again after a restart with
/// [`Netns::open`]. Dropping a `Netns` only closes the descriptor; [`Netns::remove`] takes the
/// mount and the file away (the namespace itself goes when nothing uses it any more).
///
/// The bind mount is made in the mount namespace of the process; whether it propagates to
/// other mount namespaces depends on the propagation of the mount that holds the file.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: PathBuf,
}

impl Netns {
    /// Makes a new network namespace, bind-mounted on `path`, with `lo` up inside.
    ///
    /// The file is created (mode 0600; its parent directory must exist, and an existing file
    /// is [`Error::Exists`], left alone). The namespace is made by a short-lived thread that
    /// unshares `CLONE_NEWNET`, so the caller's thread and process never move. If anything
    /// fails, nothing is left: no mount, no file.
    pub fn create(path: &Path) -> Result<Netns> {
        let op = || format!("creating network namespace {}", path.display());
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(op(), &e))?;
        drop(file);
        let made = std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("netns-create".into())
                .spawn_scoped(scope, || make_namespace(path, &op))
                .map_err(|e| Error::io(format!("{}: starting a thread", op()), &e))?;
            Ok(thread.join())
        });
        let made = match made {
            Ok(Ok(result)) => result,
            Err(e) => Err(e),
            Ok(Err(panic)) => {
                let _ = std::fs::remove_file(path);
                std::panic::resume_unwind(panic)
            }
        };
        match made {
            Ok(fd) => Ok(Netns {
                fd,
                path: path.to_path_buf(),
            }),
            Err(e) => {
                // The mount is the last step: on failure there is none, only the file.
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Opens an existing network namespace: a bind-mounted file, or `/proc/PID/ns/net`. A
    /// missing file is [`Error::NotFound`]; a file that is not a network namespace (a bind
    /// mount that is gone leaves an empty file) is refused.
    pub fn open(path: &Path) -> Result<Netns> {
        let op = || format!("opening network namespace {}", path.display());
        let file = File::open(path).map_err(|e| Error::io(op(), &e))?;
        let fd = OwnedFd::from(file);
        check_net_namespace(fd.as_fd()).map_err(|detail| Error::InvalidArgument {
            op: op(),
            reason: detail,
        })?;
        Ok(Netns {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The network namespace of the calling thread (its path is
    /// `/proc/PID/task/TID/ns/net`, valid as long as the thread lives).
    pub fn current() -> Result<Netns> {
        let file = File::open(THREAD_NETNS).map_err(|e| {
            Error::io(
                "opening the network namespace of this thread".to_string(),
                &e,
            )
        })?;
        let path = format!(
            "/proc/{}/task/{}/ns/net",
            std::process::id(),
            nix::unistd::gettid()
        );
        Ok(Netns {
            fd: file.into(),
            path: path.into(),
        })
    }

    /// The namespace's file descriptor (for `IFLA_NET_NS_FD`, `setns`, ...).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The path the namespace was created or opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a short-lived thread that entered this namespace (`setns(CLONE_NEWNET)`),
    /// and returns what it returns; the calling thread does not move. `f` may borrow.
    ///
    /// For example `ns.run(|| -> berth_netlink::Result<()> { let mut h = Handle::new()?; ... })`,
    /// or to create sockets bound inside the namespace: they stay in it after the thread
    /// ends. A panic in `f` is propagated to the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let op = || format!("entering network namespace {}", self.path.display());
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("netns-run".into())
                .spawn_scoped(scope, || {
                    setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
                        .map_err(|errno| Error::from_errno(op(), errno, None))?;
                    Ok(f())
                })
                .map_err(|e| Error::io(format!("{}: starting a thread", op()), &e))?;
            match thread.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Unmounts (`MNT_DETACH`) the namespace bind-mounted on `path` and removes the file. A
    /// missing file, or one that is not mounted on, is fine.
    pub fn remove(path: &Path) -> Result<()> {
        let op = || format!("removing network namespace {}", path.display());
        for _ in 0..MAX_STACKED_MOUNTS {
            match umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
                Ok(()) => continue,
                // Not a mount point (any more), or no such file.
                Err(Errno::EINVAL | Errno::ENOENT) => break,
                Err(errno) => return Err(Error::from_errno(op(), errno, None)),
            }
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(op(), &e)),
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// On the new thread: a new network namespace with `lo` up, bind-mounted on `path`, and a
/// descriptor of it. The bind mount is the last step, so a failure leaves no mount.
fn make_namespace(path: &Path, op: &dyn Fn() -> String) -> Result<OwnedFd> {
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|errno| Error::from_errno(format!("{}: unshare", op()), errno, None))?;
    let fd: OwnedFd = File::open(THREAD_NETNS)
        .map_err(|e| Error::io(format!("{}: opening {THREAD_NETNS}", op()), &e))?
        .into();
    Handle::new()?.set_up(LOOPBACK_INDEX)?;
    mount(
        Some(THREAD_NETNS),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|errno| Error::from_errno(format!("{}: bind mount", op()), errno, None))?;
    Ok(fd)
}

/// Checks that `fd` is a network namespace (`NS_GET_NSTYPE`, since Linux 4.11).
fn check_net_namespace(fd: BorrowedFd<'_>) -> std::result::Result<(), String> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor, which is open
    // for the duration of the call (it is borrowed).
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if kind < 0 {
        let errno = Errno::last();
        return Err(match errno {
            Errno::ENOTTY | Errno::EINVAL => "not a namespace file".to_string(),
            _ => format!("NS_GET_NSTYPE: {}", errno.desc()),
        });
    }
    if kind != libc::CLONE_NEWNET {
        return Err(format!("a namespace of another type ({kind:#x})"));
    }
    Ok(())
}
