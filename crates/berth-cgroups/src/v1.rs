//! OCI resources on cgroup v1 controllers.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result, invalid};
use crate::{CgroupPaths, devices, fsutil};

/// A v1 controller's directory, or None when the controller is not a v1 one on this host.
fn dir<'a>(paths: &'a CgroupPaths, controller: &str) -> Option<&'a Path> {
    paths.v1.get(controller).map(PathBuf::as_path)
}

/// The directory of a controller that a requested resource needs: an error when the host has
/// the controller nowhere; None when the unified hierarchy serves it (v2 applies it then).
fn need<'a>(paths: &'a CgroupPaths, controller: &str, what: &str) -> Result<Option<&'a Path>> {
    if let Some(d) = dir(paths, controller) {
        return Ok(Some(d));
    }
    if paths.controller(controller).is_some() {
        return Ok(None);
    }
    Err(Error::Unsupported(format!(
        "{what} needs the {controller} cgroup controller, which this host does not provide"
    )))
}

fn limit(v: i64) -> String {
    if v < 0 { "-1".into() } else { v.to_string() }
}

/// Fill a new cpuset cgroup's cpus and mems from its parent: v1 leaves them empty, and no
/// process can join an empty cpuset.
pub(crate) fn init_cpuset(created: &[PathBuf]) -> Result<()> {
    for d in created {
        let Some(parent) = d.parent() else { continue };
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if fsutil::read(d, f)?.trim().is_empty() {
                fsutil::write(d, f, fsutil::read(parent, f)?.trim())?;
            }
        }
    }
    Ok(())
}

/// Apply the resources that v1 hierarchies serve.
#[allow(deprecated)]
pub(crate) fn apply(paths: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    if paths.pure_v2 {
        return Ok(());
    }
    if let Some(m) = r.memory()
        && let Some(d) = need(paths, "memory", "a memory limit")?
    {
        set_memory_limits(d, m.limit(), m.swap())?;
        if let Some(v) = m.reservation() {
            fsutil::write(d, "memory.soft_limit_in_bytes", limit(v))?;
        }
        if let Some(v) = m.kernel()
            && fsutil::exists(d, "memory.kmem.limit_in_bytes")
        {
            // Kernels since 5.16 have no kmem limit; ignoring it there is what runc does too.
            let _ = fsutil::write(d, "memory.kmem.limit_in_bytes", limit(v));
        }
        if let Some(v) = m.kernel_tcp() {
            fsutil::write(d, "memory.kmem.tcp.limit_in_bytes", limit(v))?;
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return Err(invalid("memory.swappiness", format!("{v} is above 100")));
            }
            fsutil::write(d, "memory.swappiness", v.to_string())?;
        }
        if let Some(v) = m.disable_oom_killer() {
            fsutil::write(d, "memory.oom_control", if v { "1" } else { "0" })?;
        }
        if let Some(true) = m.use_hierarchy() {
            let _ = fsutil::write(d, "memory.use_hierarchy", "1");
        }
    }
    if let Some(c) = r.cpu() {
        let wants_cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.idle().is_some()
            || c.burst().is_some();
        if wants_cpu && let Some(d) = need(paths, "cpu", "a cpu limit")? {
            // Zero means unset for these, as in runc; the period goes before the quota.
            let nonzero = |v: Option<u64>| v.filter(|&v| v != 0).map(|v| v.to_string());
            let values = [
                ("cpu.shares", nonzero(c.shares())),
                ("cpu.cfs_period_us", nonzero(c.period())),
                ("cpu.cfs_quota_us", c.quota().filter(|&v| v != 0).map(limit)),
                ("cpu.cfs_burst_us", c.burst().map(|v| v.to_string())),
                ("cpu.rt_period_us", nonzero(c.realtime_period())),
                (
                    "cpu.rt_runtime_us",
                    c.realtime_runtime()
                        .filter(|&v| v != 0)
                        .map(|v| v.to_string()),
                ),
            ];
            for (file, value) in values {
                if let Some(v) = value {
                    fsutil::write(d, file, v)?;
                }
            }
            if let Some(v) = c.idle() {
                if fsutil::exists(d, "cpu.idle") {
                    fsutil::write(d, "cpu.idle", v.to_string())?;
                } else if v != 0 {
                    return Err(Error::Unsupported(
                        "cpu idle needs a kernel with cpu.idle (5.15 or later)".into(),
                    ));
                }
            }
        }
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if (cpus.is_some() || mems.is_some())
            && let Some(d) = need(paths, "cpuset", "a cpuset")?
        {
            if let Some(v) = cpus {
                fsutil::write(d, "cpuset.cpus", v)?;
            }
            if let Some(v) = mems {
                fsutil::write(d, "cpuset.mems", v)?;
            }
        }
    }
    if let Some(p) = r.pids()
        && let Some(d) = need(paths, "pids", "a pids limit")?
    {
        let v = p.limit();
        fsutil::write(
            d,
            "pids.max",
            if v <= 0 { "max".into() } else { v.to_string() },
        )?;
    }
    if let Some(b) = r.block_io() {
        apply_blkio(paths, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        for l in h {
            if let Some(d) = need(paths, "hugetlb", "a hugepage limit")? {
                let f = format!("hugetlb.{}.limit_in_bytes", l.page_size());
                if !fsutil::exists(d, &f) {
                    return Err(invalid(
                        "hugepageLimits",
                        format!("no {} huge pages", l.page_size()),
                    ));
                }
                fsutil::write(d, &f, limit(l.limit()))?;
            }
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id()
            && let Some(d) = need(paths, "net_cls", "a network class id")?
        {
            fsutil::write(d, "net_cls.classid", id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            if let Some(d) = need(paths, "net_prio", "a network priority")? {
                fsutil::write(
                    d,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
    }
    if let Some(list) = r.devices()
        && !list.is_empty()
        && let Some(d) = dir(paths, "devices")
    {
        devices::apply_v1(d, &devices::rules(list)?)?;
    }
    if let Some(u) = r.unified()
        && !u.is_empty()
        && paths.unified.is_none()
    {
        return Err(Error::Unsupported(
            "unified resources need cgroup v2, and this host has no cgroup2 hierarchy".into(),
        ));
    }
    Ok(())
}

/// Set the memory limit and memory+swap limit in the order the kernel accepts: the swap limit
/// may never be below the memory limit, so raise swap first when growing.
fn set_memory_limits(d: &Path, mem: Option<i64>, swap: Option<i64>) -> Result<()> {
    let has_swap_file = fsutil::exists(d, "memory.memsw.limit_in_bytes");
    if let (Some(m), Some(s)) = (mem, swap)
        && m > 0
        && s > 0
        && s < m
    {
        return Err(invalid(
            "memory.swap",
            "memory+swap limit must be at least the memory limit",
        ));
    }
    if swap.is_some() && !has_swap_file && swap != mem && swap != Some(-1) && swap != Some(0) {
        return Err(Error::Unsupported(
            "a swap limit needs swap accounting (memory.memsw.*), which this kernel does not have"
                .into(),
        ));
    }
    // An unlimited memory limit without a swap limit lifts the memory+swap limit too, as runc
    // does (the kernel refuses a memory limit above the memory+swap limit).
    let swap = if mem == Some(-1) && swap.is_none() && has_swap_file {
        Some(-1)
    } else {
        swap
    };
    let write_swap = |v: i64| -> Result<()> {
        if has_swap_file && v != 0 {
            fsutil::write(d, "memory.memsw.limit_in_bytes", limit(v))?;
        }
        Ok(())
    };
    match (mem, swap) {
        (Some(m), Some(s)) => {
            // Try memory first; when that fails because the old swap limit is lower, or when
            // the new swap limit is the higher one, do swap first.
            let cur_swap = if has_swap_file {
                fsutil::read_u64(d, "memory.memsw.limit_in_bytes").unwrap_or(u64::MAX)
            } else {
                u64::MAX
            };
            if s == -1 || (m >= 0 && cur_swap < m as u64) {
                write_swap(s)?;
                fsutil::write(d, "memory.limit_in_bytes", limit(m))?;
            } else {
                fsutil::write(d, "memory.limit_in_bytes", limit(m))?;
                write_swap(s)?;
            }
        }
        (Some(m), None) => {
            if let Err(e) = fsutil::write(d, "memory.limit_in_bytes", limit(m)) {
                // The memory+swap limit is below the new limit: raise both together, as
                // Docker does when only the memory limit is updated.
                if has_swap_file && m > 0 {
                    write_swap(m)?;
                    fsutil::write(d, "memory.limit_in_bytes", limit(m))?;
                } else {
                    return Err(e);
                }
            }
        }
        (None, Some(s)) => write_swap(s)?,
        (None, None) => {}
    }
    Ok(())
}

fn apply_blkio(paths: &CgroupPaths, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    let wants = b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_read_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_read_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty());
    if !wants {
        return Ok(());
    }
    let Some(d) = need(paths, "blkio", "a block I/O limit")? else {
        return Ok(());
    };
    // CFQ's files are gone with CFQ (kernel 5.0); BFQ offers blkio.bfq.weight instead.
    let weight_file = if fsutil::exists(d, "blkio.weight") {
        Some("blkio.weight")
    } else if fsutil::exists(d, "blkio.bfq.weight") {
        Some("blkio.bfq.weight")
    } else {
        None
    };
    let no_weight = || {
        Error::Unsupported(
            "block I/O weights need the BFQ or CFQ I/O scheduler, which this host does not use"
                .into(),
        )
    };
    if let Some(w) = b.weight() {
        check_weight(w)?;
        fsutil::write(d, weight_file.ok_or_else(no_weight)?, w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        check_weight(w)?;
        fsutil::write(d, "blkio.leaf_weight", w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            check_weight(w)?;
            let f = if weight_file == Some("blkio.bfq.weight") {
                "blkio.bfq.weight_device"
            } else {
                "blkio.weight_device"
            };
            if weight_file.is_none() {
                return Err(no_weight());
            }
            fsutil::write(d, f, format!("{}:{} {}", wd.major(), wd.minor(), w))?;
        }
        if let Some(w) = wd.leaf_weight() {
            check_weight(w)?;
            fsutil::write(
                d,
                "blkio.leaf_weight_device",
                format!("{}:{} {}", wd.major(), wd.minor(), w),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            fsutil::write(d, file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
        }
    }
    Ok(())
}

pub(crate) fn check_weight(w: u16) -> Result<()> {
    if !(10..=1000).contains(&w) {
        return Err(invalid(
            "blockIO.weight",
            format!("{w} is outside 10..1000"),
        ));
    }
    Ok(())
}
