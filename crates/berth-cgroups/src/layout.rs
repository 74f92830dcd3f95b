//! Which cgroup hierarchies the host has, where they are mounted and where this process sits in
//! each: read once from /proc/self/mountinfo and /proc/self/cgroup.
//!
//! A host is one of three shapes, and all three go through the same code:
//! - pure v1: one mount per controller (or per group of co-mounted controllers);
//! - hybrid: v1 mounts plus a cgroup2 mount (usually /sys/fs/cgroup/unified) that may hold
//!   controllers no v1 hierarchy took (hugetlb on this project's development host);
//! - pure v2: the unified hierarchy mounted at /sys/fs/cgroup holds every controller.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io};

/// The controllers berth manages on v1.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "devices",
    "freezer",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// One cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct V1Mount {
    /// Mount point, e.g. /sys/fs/cgroup/memory.
    pub point: PathBuf,
    /// The cgroup mounted there (usually "/").
    pub root: PathBuf,
    /// Controllers of this hierarchy.
    pub controllers: Vec<String>,
    /// This process's cgroup in the hierarchy, as /proc/self/cgroup shows it.
    pub own: PathBuf,
}

/// The cgroup v2 hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct UnifiedMount {
    /// Mount point: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one.
    pub point: PathBuf,
    /// The cgroup mounted there.
    pub root: PathBuf,
    /// Controllers available at the mount's root.
    pub controllers: Vec<String>,
    /// This process's cgroup, as /proc/self/cgroup shows it.
    pub own: PathBuf,
}

/// The cgroup hierarchies of this host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    /// v1 hierarchies with at least one controller berth manages.
    pub v1: Vec<V1Mount>,
    /// The unified hierarchy, if mounted.
    pub unified: Option<UnifiedMount>,
}

impl Layout {
    /// Read the layout of the running host.
    pub fn detect() -> Result<Layout> {
        Self::detect_in(Path::new("/"))
    }

    /// Read the layout of a host whose `/` is `root`: `root/proc/self/mountinfo` and
    /// `root/proc/self/cgroup` say what is mounted where, and every mount point is taken
    /// beneath `root`. With `/` this is [`Layout::detect`]; with a directory holding a fake
    /// cgroupfs tree of plain files, every [`Cgroup`](crate::Cgroup) built on the layout reads
    /// and writes that tree (the unit tests do this for v1, hybrid and v2 hosts).
    pub fn detect_in(root: &Path) -> Result<Layout> {
        let mi = join_under(root, Path::new("/proc/self/mountinfo"));
        let pc = join_under(root, Path::new("/proc/self/cgroup"));
        let mountinfo = std::fs::read_to_string(&mi).map_err(|e| io("reading", &mi, e))?;
        let own = std::fs::read_to_string(&pc).map_err(|e| io("reading", &pc, e))?;
        let mut layout = Self::parse(&mountinfo, &own);
        if root != Path::new("/") {
            for m in &mut layout.v1 {
                m.point = join_under(root, &m.point);
            }
            if let Some(u) = layout.unified.as_mut() {
                u.point = join_under(root, &u.point);
            }
        }
        if let Some(u) = layout.unified.as_mut() {
            let f = u.point.join("cgroup.controllers");
            u.controllers = std::fs::read_to_string(&f)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
        }
        if layout.v1.is_empty() && layout.unified.is_none() {
            return Err(Error::NoCgroups);
        }
        Ok(layout)
    }

    /// Parse the layout from the text of /proc/self/mountinfo and /proc/self/cgroup. The
    /// unified hierarchy's controllers are left empty (they come from a file).
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Layout {
        let own = parse_proc_cgroup(proc_cgroup);
        let own_v2 = own
            .iter()
            .find(|(c, _)| c.is_empty())
            .map_or_else(|| PathBuf::from("/"), |(_, p)| p.clone());
        let mut layout = Layout::default();
        for m in cgroup_mounts(mountinfo) {
            let CgroupMount {
                root,
                point,
                v2,
                options,
            } = m;
            if v2 {
                // The first cgroup2 mount wins; a later one is usually a bind of it.
                if layout.unified.is_none() {
                    layout.unified = Some(UnifiedMount {
                        point,
                        root,
                        controllers: Vec::new(),
                        own: own_v2.clone(),
                    });
                }
                continue;
            }
            let mut controllers: Vec<String> = options
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o))
                .map(str::to_string)
                .collect();
            controllers.sort();
            if controllers.is_empty() || layout.v1.iter().any(|m| m.controllers == controllers) {
                continue;
            }
            // /proc/self/cgroup lists a hierarchy's controllers; name= options are not
            // controllers, so compare the controller sets only.
            let own = own
                .iter()
                .find(|(k, _)| {
                    let mut k: Vec<&str> =
                        k.split(',').filter(|c| !c.starts_with("name=")).collect();
                    k.sort_unstable();
                    !k.is_empty() && k == controllers
                })
                .map_or_else(|| PathBuf::from("/"), |(_, p)| p.clone());
            layout.v1.push(V1Mount {
                point,
                root,
                controllers,
                own,
            });
        }
        layout
    }

    /// True when the unified hierarchy is the only one (a pure v2 host).
    pub fn is_pure_v2(&self) -> bool {
        self.v1.is_empty() && self.unified.is_some()
    }
}

/// One cgroup file system mount, as /proc/self/mountinfo lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupMount {
    /// The cgroup mounted (usually "/").
    pub root: PathBuf,
    /// Where.
    pub point: PathBuf,
    /// cgroup2 rather than a v1 hierarchy.
    pub v2: bool,
    /// The super-block options ("rw,cpu,cpuacct", "rw,name=systemd").
    pub options: String,
}

/// Every cgroup (v1 or v2) mount in the text of a mountinfo file, in order.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let v2 = match post[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        out.push(CgroupMount {
            root: PathBuf::from(unescape(pre[3])),
            point: PathBuf::from(unescape(pre[4])),
            v2,
            options: post[2].to_string(),
        });
    }
    out
}

/// The lines of a /proc/PID/cgroup file: (controllers, path); controllers are empty for the
/// unified hierarchy.
pub fn parse_proc_cgroup(data: &str) -> Vec<(String, PathBuf)> {
    data.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), PathBuf::from(it.next()?)))
        })
        .collect()
}

/// Undo mountinfo's octal escapes (\040 for a space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Join `rel` (which may be absolute) beneath `base` without leaving it.
pub(crate) fn join_under(base: &Path, rel: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        if let std::path::Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// Where a cgroup at `own` (a path inside the hierarchy) lives on the host, given that the
/// hierarchy's cgroup `root` is mounted at `point`.
pub(crate) fn host_dir(point: &Path, root: &Path, own: &Path) -> PathBuf {
    match own.strip_prefix(root) {
        Ok(rest) => join_under(point, rest),
        // Inside a cgroup namespace /proc/self/cgroup is relative to the namespace's root, which
        // is what the mount shows.
        Err(_) => join_under(point, own),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "9:name=systemd:/\n4:memory:/job/1\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn parses_hybrid() {
        let l = Layout::parse(HYBRID, OWN);
        assert_eq!(l.v1.len(), 3);
        let mem = l.v1.iter().find(|m| m.controllers == ["memory"]).unwrap();
        assert_eq!(mem.own, Path::new("/job/1"));
        assert_eq!(mem.point, Path::new("/sys/fs/cgroup/memory"));
        let u = l.unified.as_ref().unwrap();
        assert_eq!(u.point, Path::new("/sys/fs/cgroup/unified"));
        assert!(!l.is_pure_v2());
    }

    #[test]
    fn parses_comounted_and_pure_v2() {
        let mi = "1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu\n";
        let l = Layout::parse(mi, "3:cpu,cpuacct:/a\n");
        assert_eq!(l.v1[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(l.v1[0].own, Path::new("/a"));
        let l = Layout::parse(
            "1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/user/x\n",
        );
        assert!(l.is_pure_v2());
        assert_eq!(l.unified.unwrap().own, Path::new("/user/x"));
    }

    #[test]
    fn host_dirs() {
        assert_eq!(
            host_dir(
                Path::new("/sys/fs/cgroup"),
                Path::new("/a"),
                Path::new("/a/b")
            ),
            Path::new("/sys/fs/cgroup/b")
        );
        assert_eq!(
            join_under(Path::new("/x"), Path::new("/../y/./z")),
            Path::new("/x/y/z")
        );
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
