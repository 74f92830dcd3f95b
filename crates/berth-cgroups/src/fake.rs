//! A fake cgroupfs for the unit tests (test builds only).
//!
//! A temporary directory stands for `/`: it holds `proc/self/mountinfo`, `proc/self/cgroup`
//! and, under the mount points those name, plain directories and files standing for cgroup
//! files. [`crate::Layout::detect_in`] reads it like a host, so every path a [`crate::Cgroup`]
//! built on that layout uses lies inside the fake tree. In test builds `fsutil::write`
//! replaces a file's contents (as a write to a cgroup file does) and logs each successful
//! write, per thread, so a test sees the values and their order (some files take several
//! writes: `cgroup.subtree_control`, `devices.allow`, `io.max`).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::Layout;

thread_local! {
    static WRITES: RefCell<Vec<(PathBuf, String)>> = const { RefCell::new(Vec::new()) };
}

/// Log a write (called by `fsutil::write` in test builds).
pub(crate) fn record_write(path: &Path, value: &str) {
    WRITES.with(|w| w.borrow_mut().push((path.to_path_buf(), value.to_string())));
}

/// A fake host.
pub(crate) struct FakeHost {
    dir: tempfile::TempDir,
}

impl FakeHost {
    /// A host with this mountinfo and /proc/self/cgroup; every cgroup mount point exists.
    pub(crate) fn new(mountinfo: &str, proc_cgroup: &str) -> FakeHost {
        let dir = tempfile::tempdir().unwrap();
        let h = FakeHost { dir };
        h.files(
            "/proc/self",
            &[("mountinfo", mountinfo), ("cgroup", proc_cgroup)],
        );
        for m in crate::cgroup_mounts(mountinfo) {
            std::fs::create_dir_all(h.path(m.point.to_str().unwrap())).unwrap();
        }
        // Writes logged by an earlier test on this thread are not this host's.
        WRITES.with(|w| w.borrow_mut().clear());
        h
    }

    /// The directory standing for `/`.
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A host path inside the fake tree.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        crate::layout::join_under(self.root(), Path::new(p))
    }

    /// Create `dir` (a host path) with these files.
    pub(crate) fn files(&self, dir: &str, files: &[(&str, &str)]) {
        let d = self.path(dir);
        std::fs::create_dir_all(&d).unwrap();
        for (name, contents) in files {
            std::fs::write(d.join(name), contents).unwrap();
        }
    }

    /// The contents of a file (a host path).
    pub(crate) fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("reading {p}: {e}"))
    }

    /// The layout this host shows.
    pub(crate) fn layout(&self) -> Layout {
        Layout::detect_in(self.root()).unwrap()
    }

    /// A path of the fake tree as the host would name it.
    pub(crate) fn host_path(&self, p: &Path) -> String {
        let rest = p
            .strip_prefix(self.root())
            .expect("a path in the fake tree");
        format!("/{}", rest.display())
    }

    /// The writes since the last call (or since the host was made), as (host path, value).
    pub(crate) fn writes(&self) -> Vec<(String, String)> {
        WRITES
            .with(|w| std::mem::take(&mut *w.borrow_mut()))
            .into_iter()
            .map(|(p, v)| (self.host_path(&p), v))
            .collect()
    }
}
