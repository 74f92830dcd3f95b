//! The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.
//!
//! Runs in the container's init, in its new mount namespace. Every destination inside the
//! rootfs is resolved with `pathrs` (openat2 RESOLVE_IN_ROOT), so a symlink in the image can
//! never send a mount outside the rootfs; mounts then target the resolved handle through
//! /proc/self/fd.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use pathrs::Root;
use pathrs::flags::OpenFlags;

use crate::cgmount::CgroupMounts;
use crate::error::{Context, Error, Result};
use crate::mountopts::{self, MountOptions};

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

fn fd_path(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

fn perm(mode: u32) -> std::fs::Permissions {
    std::fs::Permissions::from_mode(mode)
}

/// The flags of the mount at `path` that a user namespace may not clear (they stay set).
fn locked_flags(path: &str) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
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
pub fn prepare(plan: &RootfsPlan) -> Result<()> {
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
    mount(None::<&str>, "/", None::<&str>, initial, None::<&str>)
        .ctx(|| "setting the propagation of / in the container's mount namespace".into())?;

    // The rootfs must be a mount point for pivot_root.
    mount(
        Some(plan.rootfs),
        plan.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
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
        mount_one(plan, &root, m, &opts)
            .map_err(|e| annotate(e, &format!("mount {}", m.destination().display())))?;
    }

    if !dev_is_bound {
        create_devices(plan, &root)?;
        dev_symlinks(&root)?;
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

fn annotate(e: Error, what: &str) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: format!("{what}: {context}"),
            source,
        },
        other => other,
    }
}

fn mount_one(plan: &RootfsPlan, root: &Root, m: &Mount, opts: &MountOptions) -> Result<()> {
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = rel(m.destination());
    let bind = opts.is_bind() || typ == "bind";
    if typ == "cgroup" || typ == "cgroup2" {
        let cg = plan.cgroups.ok_or_else(|| {
            Error::Unsupported("a cgroup mount needs the container to have a cgroup".into())
        })?;
        return crate::cgmount::mount_cgroups(root, &dest, cg, plan.cgroupns, opts, typ);
    }
    if bind {
        let src = match m.source() {
            Some(s) if s.is_absolute() => s.clone(),
            Some(s) => plan.bundle.join(s),
            None => return Err(Error::InvalidConfig("a bind mount needs a source".into())),
        };
        let meta = std::fs::metadata(&src).ctx(|| format!("bind source {}", src.display()))?;
        let target = if meta.is_dir() {
            crate::inroot::mkdir_all(root, Path::new(&dest), 0o755)
                .ctx(|| "creating the destination directory".into())?
        } else {
            ensure_file(root, &dest)?
        };
        let tpath = fd_path(&target);
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        mount(
            Some(&src),
            tpath.as_str(),
            None::<&str>,
            flags,
            None::<&str>,
        )
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
                locked_flags(&mpath)
            } else {
                MsFlags::empty()
            };
            let flags = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | extra
                | (keep & !MsFlags::MS_RDONLY & !opts.cleared)
                | (keep & MsFlags::MS_RDONLY & !opts.cleared);
            mount(
                None::<&str>,
                mpath.as_str(),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .ctx(|| "applying the bind mount's flags".into())?;
        }
        finish_mount(&mounted, opts, m)?;
        return Ok(());
    }

    let target = crate::inroot::mkdir_all(root, Path::new(&dest), 0o755)
        .ctx(|| "creating the destination directory".into())?;
    let tpath = fd_path(&target);
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let data = opts.data_string();
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let r = mount(
        Some(source.as_str()),
        tpath.as_str(),
        Some(typ),
        flags,
        data.as_deref(),
    );
    match r {
        Ok(()) => {}
        // A user namespace without its own network (or IPC) namespace may not mount sysfs
        // (or mqueue): bind the host's instead, as runc does.
        Err(nix::errno::Errno::EPERM) if typ == "sysfs" || typ == "mqueue" => {
            let host = if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            mount(
                Some(host),
                tpath.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| format!("binding the host's {host} (mounting {typ} was refused)"))?;
            let mounted = root
                .resolve(&dest)
                .ctx(|| "resolving the new mount".into())?;
            let mp = fd_path(&mounted);
            let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(&mp);
            let _ = mount(None::<&str>, mp.as_str(), None::<&str>, f, None::<&str>);
        }
        Err(e) => {
            return Err(Error::sys(
                format!(
                    "mounting {typ} {source} (options {:?})",
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
        finish_mount(&mounted, opts, m)?;
    }
    Ok(())
}

/// Recursive attributes, id-mapping and propagation of a fresh mount.
fn finish_mount(mounted: &pathrs::Handle, opts: &MountOptions, m: &Mount) -> Result<()> {
    let mpath = fd_path(mounted);
    if opts.idmap {
        return Err(Error::Unsupported(format!(
            "id-mapped mount of {}: idmap mounts are not supported yet",
            m.destination().display()
        )));
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        mount_setattr_recursive(mounted.as_fd().as_raw_fd(), opts.rec_set, opts.rec_clear)
            .map_err(|e| Error::io("applying recursive mount attributes", e))?;
    }
    for p in &opts.propagation {
        mount(None::<&str>, mpath.as_str(), None::<&str>, *p, None::<&str>)
            .ctx(|| "setting the mount's propagation".into())?;
    }
    Ok(())
}

fn mount_setattr_recursive(fd: i32, set: u64, clear: u64) -> std::io::Result<()> {
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
    // C string and fd is an open file descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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

fn create_devices(plan: &RootfsPlan, root: &Root) -> Result<()> {
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
        mount(
            Some(path),
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("binding the host's {} into the container", path.display()))?;
        return Ok(());
    }
    let dev = nix::sys::stat::makedev(major, minor);
    nix::sys::stat::mknodat(
        &dirfd,
        name.as_os_str(),
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        dev,
    )
    .ctx(|| format!("creating device {}", path.display()))?;
    nix::sys::stat::fchmodat(
        &dirfd,
        name.as_os_str(),
        Mode::from_bits_truncate(mode & 0o7777),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
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
        nix::unistd::fchownat(
            &dirfd,
            name.as_os_str(),
            uid.map(Into::into),
            gid.map(Into::into),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("setting the owner of {}", path.display()))?;
    }
    Ok(())
}

fn dev_symlinks(root: &Root) -> Result<()> {
    let mut links = vec![
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("dev/core", "/proc/kcore"));
    }
    // /dev/ptmx must be the container's own devpts multiplexer.
    if root.resolve("dev/pts/ptmx").is_ok() {
        links.push(("dev/ptmx", "pts/ptmx"));
    }
    crate::inroot::mkdir_all(root, Path::new("dev"), 0o755).ctx(|| "creating /dev".into())?;
    for (link, target) in links {
        if let Ok(h) = root.resolve_nofollow(link) {
            drop(h);
            if link != "dev/ptmx" {
                continue;
            }
            root.remove_file(link)
                .ctx(|| format!("replacing /{link}"))?;
        }
        root.create(link, &pathrs::InodeType::Symlink(PathBuf::from(target)))
            .ctx(|| format!("creating the symlink /{link}"))?;
    }
    Ok(())
}

/// Step 2: make the rootfs the root (pivot_root, or MS_MOVE + chroot).
pub fn pivot(plan: &RootfsPlan) -> Result<()> {
    if plan.no_pivot {
        nix::unistd::chdir(plan.rootfs).ctx(|| "entering the rootfs".into())?;
        mount(
            Some(plan.rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| "moving the rootfs onto /".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot into the rootfs".into())?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
        return Ok(());
    }
    let flags =
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let old = nix::fcntl::open("/", flags, Mode::empty()).ctx(|| "opening /".into())?;
    let new =
        nix::fcntl::open(plan.rootfs, flags, Mode::empty()).ctx(|| "opening the rootfs".into())?;
    nix::unistd::fchdir(&new).ctx(|| "entering the rootfs".into())?;
    nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
    // The old root is now stacked under "."; detach it without telling the host.
    nix::unistd::fchdir(&old).ctx(|| "entering the old root".into())?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "making the old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detaching the old root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    Ok(())
}

/// Step 3, inside the new root: root propagation, read-only root, masked and read-only paths.
pub fn finalize(plan: &RootfsPlan) -> Result<()> {
    let linux = plan.spec.linux().as_ref();
    if let Some(f) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mountopts::propagation_flag)
        && (f.contains(MsFlags::MS_SHARED) || f.contains(MsFlags::MS_UNBINDABLE))
    {
        mount(None::<&str>, "/", None::<&str>, f, None::<&str>)
            .ctx(|| "setting the rootfs propagation".into())?;
    }
    if let Some(l) = linux {
        for p in l.readonly_paths().iter().flatten() {
            readonly_path(p)?;
        }
        for p in l.masked_paths().iter().flatten() {
            mask_path(p)?;
        }
    }
    if plan.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags("/");
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .ctx(|| "remounting the root read-only".into())?;
    }
    Ok(())
}

fn readonly_path(p: &str) -> Result<()> {
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("read-only path {p}"), e)),
    }
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_REC
        | locked_flags(p);
    mount(Some(p), p, None::<&str>, flags, None::<&str>).ctx(|| format!("remounting {p} read-only"))
}

fn mask_path(p: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("masked path {p}"), e)),
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    match r {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::sys(format!("masking {p}"), e)),
    }
}

/// Bind the terminal's slave onto /dev/console (after pivot_root).
pub fn mount_console(slave_path: &str) -> Result<()> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(console)
            .ctx(|| "creating /dev/console".into())?;
    }
    mount(
        Some(slave_path),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| "binding the terminal onto /dev/console".into())
}

/// Write the sysctls (after /proc is the container's).
pub fn write_sysctls(sysctl: &std::collections::HashMap<String, String>) -> Result<()> {
    for (k, v) in sysctl {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v).ctx(|| format!("setting sysctl {k}={v}"))?;
    }
    Ok(())
}
