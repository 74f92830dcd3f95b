//! The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.
//!
//! Runs in the container's init, in its new mount namespace. Every destination inside the
//! rootfs is resolved with `pathrs` (openat2 RESOLVE_IN_ROOT), so a symlink in the image can
//! never send a mount outside the rootfs; mounts then target the resolved handle through
//! /proc/self/fd. Every mount, device node, symlink, chdir and root change goes through
//! [`Sys`], so the unit tests (`rootfs/tests.rs`) check them without root.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use pathrs::Root;
use pathrs::flags::OpenFlags;

use crate::cgmount::CgroupMounts;
use crate::error::{Context, Error, Result};
use crate::mountopts::{self, MountOptions};
use crate::sys::Sys;

/// What the rootfs setup needs to know beyond the spec.
pub struct RootfsPlan<'a> {
    /// The configuration.
    pub spec: &'a Spec,
    /// The root filesystem (host path).
    pub rootfs: &'a Path,
    /// The bundle directory (relative bind sources are relative to it).
    pub bundle: &'a Path,
    /// The container runs in a user namespace it created: no mknod, locked mount flags.
    pub in_userns: bool,
    /// Where the container's cgroups are, for `cgroup` mounts.
    pub cgroups: Option<&'a CgroupMounts>,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// `path` inside the rootfs, as a relative path for pathrs (leading '/' and '.' dropped).
fn rel(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

fn perm(mode: u32) -> std::fs::Permissions {
    std::fs::Permissions::from_mode(mode)
}

/// The flags of the mount at `path` that a user namespace may not clear (they stay set).
fn locked_flags(sys: &dyn Sys, path: &Path) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(f) = sys.mount_flags(path) else {
        return MsFlags::empty();
    };
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    if f.contains(FsFlags::ST_RDONLY) {
        out |= MsFlags::MS_RDONLY;
    }
    out
}

/// Step 1, before the hooks: propagation, the rootfs bind, every mount, /dev.
pub fn prepare(plan: &RootfsPlan, sys: &dyn Sys) -> Result<()> {
    let linux = plan.spec.linux().as_ref();
    let requested = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|s| !s.is_empty());
    // Keep the host out of the container's mounts (and vice versa). Shared and unbindable are
    // applied after pivot_root: an unbindable tree cannot be bind-mounted, and pivot_root
    // refuses a shared parent.
    let initial = match requested.and_then(mountopts::propagation_flag) {
        Some(f) if f.contains(MsFlags::MS_PRIVATE) => f,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    sys.mount(None, Path::new("/"), None, initial, None)
        .ctx(|| "setting the propagation of / in the container's mount namespace".into())?;

    // The rootfs must be a mount point for pivot_root.
    sys.mount(
        Some(plan.rootfs),
        plan.rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .ctx(|| format!("bind-mounting the rootfs {}", plan.rootfs.display()))?;

    let root =
        Root::open(plan.rootfs).ctx(|| format!("opening rootfs {}", plan.rootfs.display()))?;
    let mounts = plan.spec.mounts().as_deref().unwrap_or_default();
    let mut dev_is_bound = false;
    for m in mounts {
        let opts = mountopts::parse(m.options().as_deref().unwrap_or_default());
        if rel(m.destination()) == Path::new("dev")
            && (opts.is_bind() || m.typ().as_deref() == Some("bind"))
        {
            dev_is_bound = true;
        }
        mount_one(plan, sys, &root, m, &opts).map_err(|e| annotate(e, m.destination()))?;
    }

    if !dev_is_bound {
        create_devices(plan, sys, &root)?;
        dev_symlinks(sys, &root)?;
    }

    // The working directory exists before the process needs it (as Docker's WORKDIR).
    if let Some(p) = plan.spec.process() {
        let cwd = rel(p.cwd());
        if !cwd.as_os_str().is_empty() {
            crate::inroot::mkdir_all(&root, Path::new(&cwd), 0o755)
                .ctx(|| format!("creating the working directory {}", p.cwd().display()))?;
        }
    }
    Ok(())
}

/// A failed system call while making the mount at `destination` becomes [`Error::Mount`].
fn annotate(e: Error, destination: &Path) -> Error {
    match e {
        Error::Io { context, source } => Error::Mount {
            destination: destination.to_path_buf(),
            context,
            source,
        },
        other => other,
    }
}

fn mount_one(
    plan: &RootfsPlan,
    sys: &dyn Sys,
    root: &Root,
    m: &Mount,
    opts: &MountOptions,
) -> Result<()> {
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = rel(m.destination());
    let bind = opts.is_bind() || typ == "bind";
    if typ == "cgroup" || typ == "cgroup2" {
        let cg = plan.cgroups.ok_or_else(|| {
            Error::Unsupported("a cgroup mount needs the container to have a cgroup".into())
        })?;
        return crate::cgmount::mount_cgroups(sys, root, &dest, cg, plan.cgroupns, opts);
    }
    if bind {
        let src = match m.source() {
            Some(s) if s.is_absolute() => s.clone(),
            Some(s) => plan.bundle.join(s),
            None => return Err(Error::InvalidConfig("a bind mount needs a source".into())),
        };
        let meta = sys
            .stat(&src, true)
            .ctx(|| format!("bind source {}", src.display()))?;
        let target = if meta.is_dir() {
            crate::inroot::mkdir_all(root, Path::new(&dest), 0o755)
                .ctx(|| "creating the destination directory".into())?
        } else {
            ensure_file(root, &dest)?
        };
        let tpath = fd_path(&target);
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        sys.mount(Some(&src), &tpath, None, flags, None)
            .ctx(|| format!("bind-mounting {}", src.display()))?;
        drop(target);
        let mounted = root
            .resolve(&dest)
            .ctx(|| "resolving the new mount".into())?;
        let mpath = fd_path(&mounted);
        // Bind mounts ignore other flags: apply them with a remount.
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() || !opts.cleared.is_empty() {
            let keep = if plan.in_userns {
                locked_flags(sys, &mpath)
            } else {
                MsFlags::empty()
            };
            let flags = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | extra
                | (keep & !MsFlags::MS_RDONLY & !opts.cleared)
                | (keep & MsFlags::MS_RDONLY & !opts.cleared);
            sys.mount(None, &mpath, None, flags, None)
                .ctx(|| "applying the bind mount's flags".into())?;
        }
        finish_mount(sys, &mounted, opts, m)?;
        return Ok(());
    }

    let target = crate::inroot::mkdir_all(root, Path::new(&dest), 0o755)
        .ctx(|| "creating the destination directory".into())?;
    let tpath = fd_path(&target);
    let source = m.source().as_deref().unwrap_or(Path::new(typ));
    let data = opts.data_string();
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let r = sys.mount(Some(source), &tpath, Some(typ), flags, data.as_deref());
    match r {
        Ok(()) => {}
        // A user namespace without its own network (or IPC) namespace may not mount sysfs
        // (or mqueue): bind the host's instead, as runc does.
        Err(nix::errno::Errno::EPERM) if typ == "sysfs" || typ == "mqueue" => {
            let host = Path::new(if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            });
            sys.mount(
                Some(host),
                &tpath,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .ctx(|| {
                format!(
                    "binding the host's {} (mounting {typ} was refused)",
                    host.display()
                )
            })?;
            let mounted = root
                .resolve(&dest)
                .ctx(|| "resolving the new mount".into())?;
            let mp = fd_path(&mounted);
            let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(sys, &mp);
            let _ = sys.mount(None, &mp, None, f, None);
        }
        Err(e) => {
            return Err(Error::sys(
                format!(
                    "mounting {typ} {} (options {:?})",
                    source.display(),
                    m.options().as_deref().unwrap_or_default()
                ),
                e,
            ));
        }
    }
    drop(target);
    if opts.tmpcopyup
        || opts.rec_set != 0
        || opts.rec_clear != 0
        || !opts.propagation.is_empty()
        || opts.idmap
    {
        let mounted = root
            .resolve(&dest)
            .ctx(|| "resolving the new mount".into())?;
        finish_mount(sys, &mounted, opts, m)?;
    }
    Ok(())
}

/// Recursive attributes, id-mapping and propagation of a fresh mount.
fn finish_mount(
    sys: &dyn Sys,
    mounted: &pathrs::Handle,
    opts: &MountOptions,
    m: &Mount,
) -> Result<()> {
    let mpath = fd_path(mounted);
    if opts.idmap {
        return Err(Error::Unsupported(format!(
            "id-mapped mount of {}: idmap mounts are not supported yet",
            m.destination().display()
        )));
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        sys.mount_setattr_recursive(mounted.as_fd(), opts.rec_set, opts.rec_clear)
            .ctx(|| "applying recursive mount attributes".into())?;
    }
    for p in &opts.propagation {
        sys.mount(None, &mpath, None, *p, None)
            .ctx(|| "setting the mount's propagation".into())?;
    }
    Ok(())
}

/// Make sure a file exists at `dest` (creating parents) and return a handle to it.
fn ensure_file(root: &Root, dest: &Path) -> Result<pathrs::Handle> {
    if let Ok(h) = root.resolve(dest) {
        return Ok(h);
    }
    if let Some(parent) = dest.parent()
        && !parent.as_os_str().is_empty()
    {
        crate::inroot::mkdir_all(root, Path::new(parent), 0o755)
            .ctx(|| format!("creating {}", parent.display()))?;
    }
    root.create_file(
        dest,
        OpenFlags::O_CREAT | OpenFlags::O_CLOEXEC,
        &perm(0o644),
    )
    .ctx(|| format!("creating {}", dest.display()))?;
    root.resolve(dest)
        .ctx(|| format!("resolving {}", dest.display()))
}

/// The devices every container gets (runtime-spec config-linux.md "Default Devices").
fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

fn create_devices(plan: &RootfsPlan, sys: &dyn Sys, root: &Root) -> Result<()> {
    let spec_devices: &[LinuxDevice] = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    for (path, major, minor) in default_devices() {
        if spec_devices.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        make_device(
            plan,
            sys,
            root,
            Path::new(path),
            SFlag::S_IFCHR,
            major,
            minor,
            0o666,
            Some(0),
            Some(0),
        )?;
    }
    for d in spec_devices {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::InvalidConfig(format!(
                    "device {}: type \"a\" is only valid in cgroup rules",
                    d.path().display()
                )));
            }
        };
        make_device(
            plan,
            sys,
            root,
            d.path(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            d.uid(),
            d.gid(),
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make_device(
    plan: &RootfsPlan,
    sys: &dyn Sys,
    root: &Root,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<()> {
    let dest = rel(path);
    let name = dest
        .file_name()
        .ok_or_else(|| Error::InvalidConfig(format!("device path {} has no name", path.display())))?
        .to_owned();
    let parent = dest.parent().unwrap_or(Path::new(""));
    let dir = crate::inroot::mkdir_all(root, Path::new(parent), 0o755)
        .ctx(|| format!("creating the directory of device {}", path.display()))?;
    let dirfd: OwnedFd = crate::inroot::reopen_dir(&dir)
        .ctx(|| format!("opening the directory of device {}", path.display()))?;
    // Replace whatever is there (an image may ship a stale /dev entry).
    let _ = nix::unistd::unlinkat(
        &dirfd,
        name.as_os_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    if plan.in_userns {
        // mknod is not allowed in a user namespace: bind the host's node instead.
        let f = nix::fcntl::openat(
            &dirfd,
            name.as_os_str(),
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_EXCL
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o644),
        )
        .ctx(|| format!("creating {}", path.display()))?;
        drop(f);
        let target = root
            .resolve_nofollow(&dest)
            .ctx(|| format!("resolving {}", path.display()))?;
        sys.mount(Some(path), &fd_path(&target), None, MsFlags::MS_BIND, None)
            .ctx(|| format!("binding the host's {} into the container", path.display()))?;
        return Ok(());
    }
    let dev = nix::sys::stat::makedev(major, minor);
    sys.mknodat(
        dirfd.as_fd(),
        name.as_os_str(),
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        dev,
    )
    .ctx(|| format!("creating device {}", path.display()))?;
    sys.fchmodat(
        dirfd.as_fd(),
        name.as_os_str(),
        Mode::from_bits_truncate(mode & 0o7777),
    )
    .or_else(|e| {
        if e == nix::errno::Errno::EOPNOTSUPP {
            Ok(())
        } else {
            Err(e)
        }
    })
    .ctx(|| format!("setting the mode of {}", path.display()))?;
    if uid.is_some() || gid.is_some() {
        sys.fchownat(dirfd.as_fd(), name.as_os_str(), uid, gid)
            .ctx(|| format!("setting the owner of {}", path.display()))?;
    }
    Ok(())
}

fn dev_symlinks(sys: &dyn Sys, root: &Root) -> Result<()> {
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if sys.stat(Path::new("/proc/kcore"), true).is_ok() {
        links.push(("core", "/proc/kcore"));
    }
    // /dev/ptmx must be the container's own devpts multiplexer.
    if root.resolve("dev/pts/ptmx").is_ok() {
        links.push(("ptmx", "pts/ptmx"));
    }
    let dev =
        crate::inroot::mkdir_all(root, Path::new("dev"), 0o755).ctx(|| "creating /dev".into())?;
    for (name, target) in links {
        let link = Path::new("dev").join(name);
        if let Ok(h) = root.resolve_nofollow(&link) {
            drop(h);
            if name != "ptmx" {
                continue;
            }
            root.remove_file(&link)
                .ctx(|| format!("replacing /dev/{name}"))?;
        }
        sys.symlinkat(Path::new(target), dev.as_fd(), name.as_ref())
            .ctx(|| format!("creating the symlink /dev/{name}"))?;
    }
    Ok(())
}

/// Step 2: make the rootfs the root (pivot_root, or MS_MOVE + chroot).
pub fn pivot(plan: &RootfsPlan, sys: &dyn Sys) -> Result<()> {
    let slash = Path::new("/");
    let dot = Path::new(".");
    if plan.no_pivot {
        sys.chdir(plan.rootfs)
            .ctx(|| "entering the rootfs".into())?;
        sys.mount(Some(plan.rootfs), slash, None, MsFlags::MS_MOVE, None)
            .ctx(|| "moving the rootfs onto /".into())?;
        sys.chroot(dot).ctx(|| "chroot into the rootfs".into())?;
        sys.chdir(slash).ctx(|| "chdir /".into())?;
        return Ok(());
    }
    let flags =
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let old = nix::fcntl::open("/", flags, Mode::empty()).ctx(|| "opening /".into())?;
    let new =
        nix::fcntl::open(plan.rootfs, flags, Mode::empty()).ctx(|| "opening the rootfs".into())?;
    sys.fchdir(new.as_fd())
        .ctx(|| "entering the rootfs".into())?;
    sys.pivot_root(dot, dot).ctx(|| "pivot_root".into())?;
    // The old root is now stacked under "."; detach it without telling the host.
    sys.fchdir(old.as_fd())
        .ctx(|| "entering the old root".into())?;
    sys.mount(None, dot, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
        .ctx(|| "making the old root a slave".into())?;
    sys.umount2(dot, MntFlags::MNT_DETACH)
        .ctx(|| "detaching the old root".into())?;
    sys.chdir(slash).ctx(|| "chdir /".into())?;
    Ok(())
}

/// Step 3, inside the new root: root propagation, read-only root, masked and read-only paths.
pub fn finalize(plan: &RootfsPlan, sys: &dyn Sys) -> Result<()> {
    let slash = Path::new("/");
    let linux = plan.spec.linux().as_ref();
    if let Some(f) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mountopts::propagation_flag)
        && (f.contains(MsFlags::MS_SHARED) || f.contains(MsFlags::MS_UNBINDABLE))
    {
        sys.mount(None, slash, None, f, None)
            .ctx(|| "setting the rootfs propagation".into())?;
    }
    if let Some(l) = linux {
        for p in l.readonly_paths().iter().flatten() {
            readonly_path(sys, p)?;
        }
        for p in l.masked_paths().iter().flatten() {
            mask_path(sys, p)?;
        }
    }
    if plan.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let flags =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(sys, slash);
        sys.mount(None, slash, None, flags, None)
            .ctx(|| "remounting the root read-only".into())?;
    }
    Ok(())
}

fn readonly_path(sys: &dyn Sys, p: &str) -> Result<()> {
    let path = Path::new(p);
    match sys.mount(
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("read-only path {p}"), e)),
    }
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_REC
        | locked_flags(sys, path);
    sys.mount(Some(path), path, None, flags, None)
        .ctx(|| format!("remounting {p} read-only"))
}

fn mask_path(sys: &dyn Sys, p: &str) -> Result<()> {
    let path = Path::new(p);
    let meta = match sys.stat(path, false) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("masked path {p}"), e)),
    };
    let r = if meta.is_dir() {
        sys.mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        )
    } else {
        sys.mount(
            Some(Path::new("/dev/null")),
            path,
            None,
            MsFlags::MS_BIND,
            None,
        )
    };
    match r {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::sys(format!("masking {p}"), e)),
    }
}

/// Bind the terminal's slave onto /dev/console (after pivot_root).
pub fn mount_console(sys: &dyn Sys, slave_path: &str) -> Result<()> {
    let console = Path::new("/dev/console");
    if sys.stat(console, false).is_err() {
        sys.create_file(console)
            .ctx(|| "creating /dev/console".into())?;
    }
    sys.mount(
        Some(Path::new(slave_path)),
        console,
        None,
        MsFlags::MS_BIND,
        None,
    )
    .ctx(|| "binding the terminal onto /dev/console".into())
}

/// Write the sysctls (after /proc is the container's).
pub fn write_sysctls(
    sys: &dyn Sys,
    sysctl: &std::collections::HashMap<String, String>,
) -> Result<()> {
    for (k, v) in sysctl {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        sys.write_file(Path::new(&path), v.as_bytes())
            .ctx(|| format!("setting sysctl {k}={v}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
