//! Reading and writing cgroup files.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result, io};

/// Write `value` to the cgroup file `dir/file` with a single write(2), as the kernel expects.
pub(crate) fn write(dir: &Path, file: &str, value: impl AsRef<str>) -> Result<()> {
    let path = dir.join(file);
    let value = value.as_ref();
    let res = std::fs::OpenOptions::new()
        .write(true)
        // The unit tests' fake cgroupfs is plain files: there a write must replace the
        // contents, as it does in a cgroup file. Real builds open cgroup files as before.
        .truncate(cfg!(test))
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    #[cfg(test)]
    if res.is_ok() {
        crate::fake::record_write(&path, value);
    }
    res.map_err(|source| Error::Write {
        path,
        value: value.to_string(),
        source,
    })
}

/// Read the cgroup file `dir/file`.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))
}

/// Read a file holding one number ("max" reads as u64::MAX).
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| {
        io(
            "parsing",
            &dir.join(file),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a number: {s:?}"),
            ),
        )
    })
}

/// Read a number, 0 when the file is missing or unreadable (for statistics).
pub(crate) fn stat_u64(dir: &Path, file: &str) -> u64 {
    read_u64(dir, file).unwrap_or(0)
}

/// Parse "key value" lines (memory.stat, cpu.stat, ...).
pub(crate) fn read_kv(dir: &Path, file: &str) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Whether `dir/file` exists.
pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Create `dir` and every missing parent; return the directories that were created, top first.
pub(crate) fn mkdir_all(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut missing = Vec::new();
    let mut p = dir;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    missing.reverse();
    for d in &missing {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("creating", d, e)),
        }
    }
    Ok(missing)
}

/// Remove a cgroup directory and every cgroup beneath it, deepest first. Retries briefly while
/// the kernel still counts exiting processes (EBUSY).
pub(crate) fn rmdir_tree(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("reading", dir, e)),
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            rmdir_tree(&e.path())?;
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut nap = std::time::Duration::from_micros(200);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(nap);
                nap = (nap * 2).min(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(io("removing", dir, e)),
        }
    }
}

/// Pids listed in `cgroup.procs` of `dir` and every cgroup beneath it.
pub(crate) fn procs_tree(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("reading", &dir.join("cgroup.procs"), e)),
    };
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                procs_tree(&e.path(), out)?;
            }
        }
    }
    Ok(())
}
