//! `cgroup` mounts inside the container: the container sees its own cgroups at /sys/fs/cgroup.
//!
//! Which hierarchies to show and where the container's directory is in each is computed by the
//! runtime process before it forks (from the host's mountinfo and the container's cgroup
//! directories), so the init does not need to read host state from inside its namespaces.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use pathrs::Root;

use crate::error::{Context, Error, Result};
use crate::mountopts::MountOptions;
use crate::sys::Sys;

fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// One cgroup hierarchy as the container will see it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Hierarchy {
    /// Name of the directory under the cgroup mount, e.g. "memory", "cpu,cpuacct", "unified".
    pub name: String,
    /// Whether this is the cgroup2 hierarchy.
    pub v2: bool,
    /// Options to mount it anew (the controller list or name=…), for a cgroup namespace.
    pub options: String,
    /// The container's directory in this hierarchy, on the host.
    pub dir: PathBuf,
}

/// The cgroup hierarchies of the host and the container's place in each.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CgroupMounts {
    /// True on a pure cgroup v2 host (the unified hierarchy is mounted at /sys/fs/cgroup).
    pub unified_only: bool,
    /// Hierarchies, in mountinfo order.
    pub hierarchies: Vec<Hierarchy>,
}

/// The options to mount a v1 hierarchy anew: its controllers and name=, without generic or
/// per-superblock flags.
fn mount_options(super_options: &str) -> String {
    super_options
        .split(',')
        .filter(|o| {
            !matches!(
                *o,
                "rw" | "ro"
                    | "clone_children"
                    | "xattr"
                    | "noprefix"
                    | "cpuset_v2_mode"
                    | "favordynmods"
            ) && !o.starts_with("release_agent=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl CgroupMounts {
    /// Work out the hierarchies for a container whose cgroup directories are `dirs`. In a
    /// hierarchy where the container has no directory of its own it shares the runtime's.
    pub fn compute(dirs: &[PathBuf]) -> Result<CgroupMounts> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .ctx(|| "reading /proc/self/mountinfo".into())?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ctx(|| "reading /proc/self/cgroup".into())?;
        Ok(Self::compute_from(&info, &own, dirs))
    }

    fn compute_from(mountinfo: &str, own_cgroup: &str, dirs: &[PathBuf]) -> CgroupMounts {
        let own = berth_cgroups::parse_proc_cgroup(own_cgroup);
        let mut out = CgroupMounts::default();
        for m in berth_cgroups::cgroup_mounts(mountinfo) {
            let options = if m.v2 {
                String::new()
            } else {
                mount_options(&m.options)
            };
            if !m.point.starts_with("/sys/fs/cgroup") {
                continue;
            }
            if m.v2 && m.point == Path::new("/sys/fs/cgroup") {
                out.unified_only = true;
            }
            let dir = dirs
                .iter()
                .find(|d| d.starts_with(&m.point))
                .cloned()
                .unwrap_or_else(|| {
                    // The runtime's own cgroup in this hierarchy, relative to the mount's root.
                    let mine = own.iter().find(|(c, _)| {
                        if m.v2 {
                            c.is_empty()
                        } else {
                            !c.is_empty()
                                && c.split(',').collect::<Vec<_>>()
                                    == options.split(',').collect::<Vec<_>>()
                        }
                    });
                    let p = mine.map_or(Path::new("/"), |(_, p)| p.as_path());
                    let relp = p.strip_prefix(&m.root).unwrap_or(Path::new(""));
                    m.point.join(relp)
                });
            let name = if m.point == Path::new("/sys/fs/cgroup") {
                String::new()
            } else {
                m.point
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            out.hierarchies.push(Hierarchy {
                name,
                v2: m.v2,
                options,
                dir,
            });
        }
        out
    }
}

/// Mount the container's cgroups at `dest` (relative to the rootfs).
pub fn mount_cgroups(
    sys: &dyn Sys,
    root: &Root,
    dest: &Path,
    cg: &CgroupMounts,
    cgroupns: bool,
    opts: &MountOptions,
) -> Result<()> {
    let flags = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let target = crate::inroot::mkdir_all(root, Path::new(dest), 0o755)
        .ctx(|| "creating the cgroup mount point".into())?;
    let tpath = fd_path(&target);

    if cg.unified_only {
        let h = cg
            .hierarchies
            .iter()
            .find(|h| h.v2)
            .ok_or_else(|| Error::Unsupported("no cgroup2 hierarchy found".into()))?;
        return mount_hierarchy(sys, &tpath, || root.resolve(dest), h, cgroupns, flags, ro);
    }

    let tmpfs = Path::new("tmpfs");
    sys.mount(Some(tmpfs), &tpath, Some("tmpfs"), flags, Some("mode=755"))
        .ctx(|| "mounting tmpfs for the cgroup hierarchies".into())?;
    drop(target);
    let base = root
        .resolve(dest)
        .ctx(|| "resolving the cgroup tmpfs".into())?;
    let base_root = Root::from_fd(std::os::fd::OwnedFd::from(
        root.resolve(dest)
            .ctx(|| "opening the cgroup tmpfs".into())?,
    ));
    for h in &cg.hierarchies {
        if h.name.is_empty() {
            continue;
        }
        let sub = crate::inroot::mkdir_all(&base_root, Path::new(&h.name), 0o755)
            .ctx(|| format!("creating {}", h.name))?;
        let spath = fd_path(&sub);
        mount_hierarchy(
            sys,
            &spath,
            || base_root.resolve(&h.name),
            h,
            cgroupns,
            flags,
            ro,
        )?;
        // A co-mounted hierarchy ("cpu,cpuacct") is also reachable under each name.
        if h.name.contains(',') {
            for part in h.name.split(',') {
                if base_root.resolve_nofollow(part).is_err() {
                    sys.symlinkat(Path::new(&h.name), base_root.as_fd(), part.as_ref())
                        .ctx(|| format!("linking {part}"))?;
                }
            }
        }
    }
    if ro {
        sys.mount(
            None,
            &fd_path(&base),
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
            Some("mode=755"),
        )
        .ctx(|| "making the cgroup tmpfs read-only".into())?;
    }
    Ok(())
}

/// Mount one hierarchy at `target` (a /proc/self/fd path of the mount point); `reresolve`
/// opens the mount point again, to reach what was mounted on top of it.
fn mount_hierarchy(
    sys: &dyn Sys,
    target: &Path,
    reresolve: impl Fn() -> std::result::Result<pathrs::Handle, pathrs::error::Error>,
    h: &Hierarchy,
    cgroupns: bool,
    flags: MsFlags,
    ro: bool,
) -> Result<()> {
    let roflag = if ro {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    if cgroupns {
        let (fstype, data) = if h.v2 {
            ("cgroup2", None)
        } else {
            ("cgroup", Some(h.options.as_str()))
        };
        match sys.mount(
            Some(Path::new(fstype)),
            target,
            Some(fstype),
            flags | roflag,
            data,
        ) {
            Ok(()) => return Ok(()),
            // Not allowed here (e.g. v1 in a user namespace), or the kernel would not share
            // the hierarchy: fall back to a bind mount, which shows the same directory.
            Err(
                nix::errno::Errno::EPERM | nix::errno::Errno::EBUSY | nix::errno::Errno::EINVAL,
            ) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("mounting the {} cgroup hierarchy", h.name),
                    e,
                ));
            }
        }
    }
    sys.mount(
        Some(&h.dir),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .ctx(|| format!("binding cgroup {}", h.dir.display()))?;
    // The fd behind `target` is the directory beneath the new mount: open the mount itself.
    let mounted = reresolve().ctx(|| format!("resolving the bind mount of {}", h.dir.display()))?;
    let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | roflag;
    sys.mount(None, &fd_path(&mounted), None, f, None)
        .ctx(|| format!("setting the flags of cgroup {}", h.dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "9:name=systemd:/user.slice\n4:memory:/a/b\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_layout() {
        let dirs = vec![
            PathBuf::from("/sys/fs/cgroup/memory/a/b/c1"),
            PathBuf::from("/sys/fs/cgroup/cpu/c1"),
        ];
        let m = CgroupMounts::compute_from(HYBRID, OWN, &dirs);
        assert!(!m.unified_only);
        let names: Vec<_> = m.hierarchies.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cpu", "memory", "systemd", "unified"]);
        assert_eq!(
            m.hierarchies[1].dir,
            PathBuf::from("/sys/fs/cgroup/memory/a/b/c1")
        );
        assert_eq!(
            m.hierarchies[2].dir,
            PathBuf::from("/sys/fs/cgroup/systemd/user.slice")
        );
        assert_eq!(m.hierarchies[2].options, "name=systemd");
        assert_eq!(
            m.hierarchies[3].dir,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert!(m.hierarchies[3].v2);
    }

    #[test]
    fn pure_v2() {
        let info = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let dirs = vec![PathBuf::from("/sys/fs/cgroup/x/c1")];
        let m = CgroupMounts::compute_from(info, "0::/x\n", &dirs);
        assert!(m.unified_only);
        assert_eq!(m.hierarchies[0].dir, PathBuf::from("/sys/fs/cgroup/x/c1"));
    }
}
