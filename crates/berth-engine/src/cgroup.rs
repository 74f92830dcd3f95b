//! Where containers' cgroups go: beneath the daemon's own cgroup (or daemon.json's
//! `cgroup-parent`). On cgroup v2 the daemon first moves itself into a leaf of its cgroup
//! (`<own>/berth-daemon`): a cgroup with processes cannot give controllers to children.

use std::path::{Path, PathBuf};

/// The daemon's own cgroup path: the unified hierarchy's on pure v2, else the memory
/// controller's (v1 and hybrid).
fn own_cgroup(text: &str) -> Option<String> {
    let mut unified = None;
    let mut memory = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            unified = Some(path.to_string());
        } else if ctrls.split(',').any(|c| c == "memory") {
            memory = Some(path.to_string());
        }
    }
    memory.or(unified)
}

/// Is the host on pure cgroup v2?
pub fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The parent of containers' cgroups, the daemon moved into its leaf on v2 if needed.
pub fn parent(configured: Option<&str>) -> String {
    if let Some(p) = configured.filter(|p| !p.is_empty()) {
        let p = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        };
        return p.trim_end_matches('/').to_string();
    }
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = own_cgroup(&text).unwrap_or_else(|| "/".into());
    let own = own.trim_end_matches(" (deleted)").to_string();
    if own == "/" || own.is_empty() {
        return "/berth".into();
    }
    let own = if own.ends_with("/berth-daemon") {
        own.trim_end_matches("/berth-daemon").to_string()
    } else {
        own
    };
    if pure_v2() {
        let leaf = PathBuf::from("/sys/fs/cgroup")
            .join(own.trim_start_matches('/'))
            .join("berth-daemon");
        let moved = std::fs::create_dir_all(&leaf).and_then(|_| {
            std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
        });
        if let Err(e) = moved {
            tracing::warn!(
                "could not move the daemon into {}: {e}; containers go beneath /berth",
                leaf.display()
            );
            return "/berth".into();
        }
    }
    own
}

/// Whether the kernel accounts swap per cgroup (what dockerd calls SwapLimit): v1's
/// `memory.memsw.limit_in_bytes` in the memory hierarchy, v2's `memory.swap.max` in a cgroup
/// with the memory controller (the root has no limit files: the first such child is asked).
/// Kernels built or booted without swap accounting (`swapaccount=0`) have neither.
pub fn swap_limit_supported() -> bool {
    swap_limit_in(Path::new("/sys/fs/cgroup"), pure_v2())
}

fn swap_limit_in(root: &Path, v2: bool) -> bool {
    if !v2 {
        return root.join("memory/memory.memsw.limit_in_bytes").exists();
    }
    let Ok(rd) = std::fs::read_dir(root) else {
        return false;
    };
    rd.flatten()
        .map(|e| e.path())
        .find(|d| d.join("memory.max").exists())
        .is_some_and(|d| d.join("memory.swap.max").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_accounting_is_found_in_each_layout() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        assert!(!swap_limit_in(r, false));
        std::fs::create_dir_all(r.join("memory")).unwrap();
        std::fs::write(r.join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
        assert!(swap_limit_in(r, false));
        // v2: a child without the memory controller is skipped; one with it decides.
        let v2 = r.join("v2");
        std::fs::create_dir_all(v2.join("a")).unwrap();
        std::fs::create_dir_all(v2.join("b")).unwrap();
        std::fs::write(v2.join("b/memory.max"), "max").unwrap();
        assert!(!swap_limit_in(&v2, true));
        std::fs::write(v2.join("b/memory.swap.max"), "max").unwrap();
        assert!(swap_limit_in(&v2, true));
    }

    #[test]
    fn own_cgroup_of_each_layout() {
        assert_eq!(own_cgroup("0::/a/b\n").as_deref(), Some("/a/b"));
        assert_eq!(
            own_cgroup("12:memory:/m\n1:name=systemd:/s\n0::/u\n").as_deref(),
            Some("/m")
        );
    }
}
