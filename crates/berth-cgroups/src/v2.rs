//! OCI resources on the cgroup v2 (unified) hierarchy, with runc's conversions from the v1-shaped
//! OCI values.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result, invalid};
use crate::{CgroupPaths, devices, fsutil, v1};

/// Create the container's directory, enabling the controllers it needs in every ancestor's
/// cgroup.subtree_control, from the top of the hierarchy down.
/// Ancestors that do not exist yet (a cgroup parent nobody made) are made on the way, and get
/// the controllers too.
pub(crate) fn create(dir: &Path, controllers: &[String]) -> Result<()> {
    let mut chain = Vec::new();
    let mut p = dir.parent();
    while let Some(d) = p {
        // Up to the hierarchy's root: the last directory that is a cgroup.
        if d.exists() && !fsutil::exists(d, "cgroup.subtree_control") {
            break;
        }
        if !d.exists() && d.parent().is_none() {
            break;
        }
        chain.push(d.to_path_buf());
        p = d.parent();
    }
    chain.reverse();
    for d in &chain {
        fsutil::mkdir_all(d)?;
        let avail = fsutil::read(d, "cgroup.controllers").unwrap_or_default();
        let enabled = fsutil::read(d, "cgroup.subtree_control").unwrap_or_default();
        for c in controllers {
            let c = c.as_str();
            if avail.split_whitespace().any(|a| a == c)
                && !enabled.split_whitespace().any(|a| a == c)
            {
                // A cgroup holding processes (other than the root) cannot hand controllers down;
                // the resources that need one then fail with a clear error when applied.
                let _ = fsutil::write(d, "cgroup.subtree_control", format!("+{c}"));
            }
        }
    }
    fsutil::mkdir_all(dir)?;
    Ok(())
}

/// The unified directory, when it serves `controller`.
fn dir<'a>(paths: &'a CgroupPaths, controller: &str) -> Option<&'a Path> {
    match paths.controller(controller) {
        Some((d, true)) => Some(d),
        _ => None,
    }
}

/// Write `file`, explaining a missing file as a controller that is not enabled.
fn set(d: &Path, controller: &str, file: &str, value: impl AsRef<str>) -> Result<()> {
    if !fsutil::exists(d, file) {
        return Err(Error::Unsupported(format!(
            "{file}: the {controller} controller is not enabled for {}",
            d.display()
        )));
    }
    fsutil::write(d, file, value)
}

fn max(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// runc's conversion of OCI memory+swap to v2's swap-only limit.
pub(crate) fn swap_v2(swap: i64, memory: i64) -> Result<i64> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(invalid("memory.swap", "a swap limit needs a memory limit"));
    }
    if swap < memory {
        return Err(invalid(
            "memory.swap",
            "memory+swap limit must be at least the memory limit",
        ));
    }
    Ok(swap - memory)
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), as runc and crun convert.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

/// blkio weight (10..1000) to io.weight (1..10000).
pub(crate) fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w).saturating_sub(10) * 9999) / 990
}

/// Apply the resources that the unified hierarchy serves.
#[allow(deprecated)]
pub(crate) fn apply(paths: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    let Some(unified) = paths.unified.as_deref() else {
        return Ok(());
    };
    if let Some(m) = r.memory()
        && let Some(d) = dir(paths, "memory")
    {
        let mem = m.limit();
        // Without swap accounting (a kernel without it, or booted with swapaccount=0) there
        // is no memory.swap.max: "unlimited" and "none" are then what the kernel does anyway
        // and are skipped, as runc skips them; a real limit is an error.
        let swap = |v: String| {
            if (v == "max" || v == "0") && !fsutil::exists(d, "memory.swap.max") {
                return Ok(());
            }
            set(d, "memory", "memory.swap.max", v)
        };
        if let Some(s) = m.swap() {
            let v = swap_v2(s, mem.unwrap_or(0))?;
            if v != 0 || s != 0 {
                swap(max(v))?;
            }
        } else if mem == Some(-1) {
            swap("max".into())?;
        }
        if let Some(v) = mem
            && v != 0
        {
            set(d, "memory", "memory.max", max(v))?;
        }
        if let Some(v) = m.reservation()
            && v != 0
        {
            set(d, "memory", "memory.low", max(v))?;
        }
        // v2 has no swappiness, kernel memory limit or OOM-killer switch per cgroup; runc
        // ignores them there too.
    }
    if let Some(c) = r.cpu() {
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(Error::Unsupported(
                "realtime cpu limits are not supported on cgroup v2".into(),
            ));
        }
        if let Some(d) = dir(paths, "cpu") {
            if let Some(s) = c.shares()
                && s != 0
            {
                set(d, "cpu", "cpu.weight", shares_to_weight(s).to_string())?;
            }
            let quota = c.quota().filter(|&q| q != 0);
            let period = c.period().filter(|&p| p != 0);
            if quota.is_some() || period.is_some() {
                let cur = fsutil::read(d, "cpu.max").unwrap_or_default();
                let mut it = cur.split_whitespace();
                let cur_q = it.next().unwrap_or("max").to_string();
                let cur_p = it.next().unwrap_or("100000").to_string();
                let q = quota.map(max).unwrap_or(cur_q);
                let p = period.map(|p| p.to_string()).unwrap_or(cur_p);
                set(d, "cpu", "cpu.max", format!("{q} {p}"))?;
            }
            if let Some(b) = c.burst() {
                set(d, "cpu", "cpu.max.burst", b.to_string())?;
            }
            if let Some(i) = c.idle() {
                set(d, "cpu", "cpu.idle", i.to_string())?;
            }
        }
        if let Some(d) = dir(paths, "cpuset") {
            if let Some(v) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                set(d, "cpuset", "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                set(d, "cpuset", "cpuset.mems", v)?;
            }
        }
    }
    if let Some(p) = r.pids()
        && let Some(d) = dir(paths, "pids")
    {
        set(
            d,
            "pids",
            "pids.max",
            if p.limit() <= 0 {
                "max".into()
            } else {
                p.limit().to_string()
            },
        )?;
    }
    if let Some(b) = r.block_io()
        && let Some(d) = dir(paths, "io")
    {
        apply_io(d, b)?;
    }
    if let Some(h) = r.hugepage_limits()
        && let Some(d) = dir(paths, "hugetlb")
    {
        for l in h {
            let f = format!("hugetlb.{}.max", l.page_size());
            set(d, "hugetlb", &f, max(l.limit()))?;
        }
    }
    if paths.pure_v2
        && let Some(n) = r.network()
        && (n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
    {
        return Err(Error::Unsupported(
            "network class ids and priorities need the v1 net_cls/net_prio controllers".into(),
        ));
    }
    if paths.pure_v2
        && let Some(list) = r.devices()
        && !list.is_empty()
    {
        devices::apply_v2(unified, &devices::rules(list)?)?;
    }
    if let Some(u) = r.unified() {
        for (k, v) in u {
            if k.contains('/') || k.starts_with('.') || !k.contains('.') {
                return Err(invalid(format!("unified {k:?}"), "not a cgroup file name"));
            }
            if k.starts_with("cgroup.") {
                return Err(invalid(
                    format!("unified {k:?}"),
                    "cgroup.* files are the runtime's",
                ));
            }
            let controller = k.split('.').next().unwrap_or_default();
            set(unified, controller, k, v)?;
        }
    }
    Ok(())
}

fn apply_io(d: &Path, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    let bfq = fsutil::exists(d, "io.bfq.weight");
    if let Some(w) = b.weight() {
        v1::check_weight(w)?;
        if bfq {
            set(d, "io", "io.bfq.weight", w.to_string())?;
        } else {
            set(d, "io", "io.weight", blkio_to_io_weight(w).to_string())?;
        }
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            v1::check_weight(w)?;
            if bfq {
                set(
                    d,
                    "io",
                    "io.bfq.weight",
                    format!("{}:{} {}", wd.major(), wd.minor(), w),
                )?;
            } else {
                let v = blkio_to_io_weight(w);
                set(
                    d,
                    "io",
                    "io.weight",
                    format!("{}:{} {}", wd.major(), wd.minor(), v),
                )?;
            }
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            let v = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            set(
                d,
                "io",
                "io.max",
                format!("{}:{} {key}={v}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(swap_v2(200, 100).unwrap(), 100);
        assert_eq!(swap_v2(-1, 100).unwrap(), -1);
        assert_eq!(swap_v2(0, -1).unwrap(), -1);
        assert!(swap_v2(50, 100).is_err());
        assert!(swap_v2(50, 0).is_err());
    }
}
