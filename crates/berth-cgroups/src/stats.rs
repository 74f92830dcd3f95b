//! Resource usage, in the JSON shape of runc's `events --stats` (so tools reading runc's output
//! read berth's).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::CgroupPaths;
use crate::fsutil::{read, read_kv, stat_u64};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// All statistics.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct Stats {
    /// CPU time.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// Process count.
    pub pids: Pids,
    /// Block I/O.
    pub blkio: Blkio,
    /// Huge pages by page size ("2MB").
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

/// CPU statistics.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct Cpu {
    /// Time used.
    pub usage: CpuUsage,
    /// CFS throttling.
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct CpuUsage {
    /// Total.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// In the kernel.
    pub kernel: u64,
    /// In user space.
    pub user: u64,
}

/// CFS throttling counters.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct Throttling {
    /// Enforcement periods.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds throttled.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// Memory statistics.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct Memory {
    /// Page cache bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Swap (v1: memory+swap).
    pub swap: MemoryEntry,
    /// Kernel memory (v1).
    pub kernel: MemoryEntry,
    /// The raw memory.stat counters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// One memory counter.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct MemoryEntry {
    /// Limit in bytes (u64::MAX when unlimited).
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// How often the limit was hit.
    pub failcnt: u64,
}

/// Process counts.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct Pids {
    /// Processes now.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// The limit (0 when unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Block I/O statistics.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct Blkio {
    /// Bytes by device and operation.
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations by device and operation.
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// One block I/O counter.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// "Read", "Write", ...
    pub op: String,
    /// The count.
    pub value: u64,
}

/// Huge page usage.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
#[serde(default)]
pub struct Hugetlb {
    /// Bytes in use.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocation failures.
    pub failcnt: u64,
}

pub(crate) fn collect(paths: &CgroupPaths) -> Stats {
    let mut s = Stats::default();
    if let Some((d, v2)) = paths.controller("memory") {
        s.memory = if v2 { memory_v2(d) } else { memory_v1(d) };
    }
    match paths.controller("cpu") {
        Some((d, true)) => s.cpu = cpu_v2(d),
        Some((d, false)) => {
            s.cpu.throttling = throttling(&read_kv(d, "cpu.stat"), false);
            if let Some((a, false)) = paths.controller("cpuacct") {
                s.cpu.usage = cpuacct_v1(a);
            }
        }
        None => {
            // cpu.stat exists in every v2 cgroup, controller or not.
            if let Some(u) = &paths.unified
                && paths.pure_v2
            {
                s.cpu = cpu_v2(u);
            }
        }
    }
    if let Some((d, _)) = paths.controller("pids") {
        s.pids.current = stat_u64(d, "pids.current");
        let l = stat_u64(d, "pids.max");
        s.pids.limit = if l == u64::MAX { 0 } else { l };
    }
    match (paths.controller("blkio"), paths.controller("io")) {
        (Some((d, false)), _) => s.blkio = blkio_v1(d),
        (_, Some((d, true))) => s.blkio = io_v2(d),
        _ => {}
    }
    if let Some((d, v2)) = paths.controller("hugetlb") {
        s.hugetlb = hugetlb(d, v2);
    }
    s
}

fn memory_v1(d: &Path) -> Memory {
    let raw = read_kv(d, "memory.stat");
    let entry = |prefix: &str| MemoryEntry {
        limit: stat_u64(d, &format!("{prefix}.limit_in_bytes")),
        usage: stat_u64(d, &format!("{prefix}.usage_in_bytes")),
        max: stat_u64(d, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: stat_u64(d, &format!("{prefix}.failcnt")),
    };
    Memory {
        cache: raw
            .get("total_cache")
            .or(raw.get("cache"))
            .copied()
            .unwrap_or(0),
        usage: entry("memory"),
        swap: entry("memory.memsw"),
        kernel: entry("memory.kmem"),
        raw,
    }
}

fn memory_v2(d: &Path) -> Memory {
    let raw = read_kv(d, "memory.stat");
    let events = read_kv(d, "memory.events");
    Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage: MemoryEntry {
            limit: stat_u64(d, "memory.max"),
            usage: stat_u64(d, "memory.current"),
            max: stat_u64(d, "memory.peak"),
            failcnt: events.get("max").copied().unwrap_or(0),
        },
        swap: MemoryEntry {
            limit: stat_u64(d, "memory.swap.max"),
            usage: stat_u64(d, "memory.swap.current"),
            max: stat_u64(d, "memory.swap.peak"),
            failcnt: read_kv(d, "memory.swap.events")
                .get("max")
                .copied()
                .unwrap_or(0),
        },
        kernel: MemoryEntry::default(),
        raw,
    }
}

fn throttling(stat: &BTreeMap<String, u64>, v2: bool) -> Throttling {
    Throttling {
        periods: stat.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: if v2 {
            stat.get("throttled_usec").copied().unwrap_or(0) * 1000
        } else {
            stat.get("throttled_time").copied().unwrap_or(0)
        },
    }
}

fn cpu_v2(d: &Path) -> Cpu {
    let stat = read_kv(d, "cpu.stat");
    let us = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
    Cpu {
        usage: CpuUsage {
            total: us("usage_usec"),
            percpu: Vec::new(),
            kernel: us("system_usec"),
            user: us("user_usec"),
        },
        throttling: throttling(&stat, true),
    }
}

fn cpuacct_v1(d: &Path) -> CpuUsage {
    let percpu = read(d, "cpuacct.usage_percpu")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // cpuacct.stat is in USER_HZ ticks.
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let st = read_kv(d, "cpuacct.stat");
    let ns = |k: &str| st.get(k).copied().unwrap_or(0) * 1_000_000_000 / hz;
    CpuUsage {
        total: stat_u64(d, "cpuacct.usage"),
        percpu,
        kernel: ns("system"),
        user: ns("user"),
    }
}

fn blkio_v1(d: &Path) -> Blkio {
    let parse = |file: &str| -> Vec<BlkioEntry> {
        read(d, file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() != 3 {
                    return None;
                }
                let (ma, mi) = f[0].split_once(':')?;
                Some(BlkioEntry {
                    major: ma.parse().ok()?,
                    minor: mi.parse().ok()?,
                    op: f[1].to_string(),
                    value: f[2].parse().ok()?,
                })
            })
            .collect()
    };
    Blkio {
        io_service_bytes_recursive: parse("blkio.throttle.io_service_bytes_recursive"),
        io_serviced_recursive: parse("blkio.throttle.io_serviced_recursive"),
    }
}

fn io_v2(d: &Path) -> Blkio {
    let mut b = Blkio::default();
    for line in read(d, "io.stat").unwrap_or_default().lines() {
        let mut it = line.split_whitespace();
        let Some((ma, mi)) = it.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    b
}

fn hugetlb(d: &Path, v2: bool) -> BTreeMap<String, Hugetlb> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(d) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let size = if v2 {
            name.strip_prefix("hugetlb.")
                .and_then(|r| r.strip_suffix(".current"))
        } else {
            name.strip_prefix("hugetlb.")
                .and_then(|r| r.strip_suffix(".usage_in_bytes"))
        };
        let Some(size) = size else { continue };
        if size.contains('.') {
            continue;
        }
        let h = if v2 {
            Hugetlb {
                usage: stat_u64(d, &name),
                max: 0,
                failcnt: read_kv(d, &format!("hugetlb.{size}.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            }
        } else {
            Hugetlb {
                usage: stat_u64(d, &name),
                max: stat_u64(d, &format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: stat_u64(d, &format!("hugetlb.{size}.failcnt")),
            }
        };
        out.insert(size.to_string(), h);
    }
    out
}
