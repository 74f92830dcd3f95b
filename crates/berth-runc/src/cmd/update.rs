//! `update`: new resource limits for a running container, from flags or a JSON file.

use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use berth_runtime::Runtime;
use oci_spec::runtime::LinuxResources;

use crate::cli::UpdateArgs;

/// Bytes from "512m", "1g", "1024", "-1".
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

pub fn update(rt: &Runtime, a: UpdateArgs) -> Result<()> {
    use oci_spec::runtime::{LinuxMemory, LinuxPids};
    let mut r: LinuxResources = match &a.resources {
        Some(p) => {
            let mut data = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut data)?;
            } else {
                data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            }
            serde_json::from_slice(&data).context("parsing the resources")?
        }
        None => LinuxResources::default(),
    };
    let mut mem = r.memory().unwrap_or_default();
    let mut mem_set = r.memory().is_some();
    for (v, f) in [
        (
            &a.memory,
            LinuxMemory::set_limit as fn(&mut LinuxMemory, Option<i64>) -> &mut LinuxMemory,
        ),
        (&a.memory_reservation, LinuxMemory::set_reservation),
        (&a.memory_swap, LinuxMemory::set_swap),
        (&a.kernel_memory, LinuxMemory::set_kernel),
        (&a.kernel_memory_tcp, LinuxMemory::set_kernel_tcp),
    ] {
        if let Some(v) = v {
            f(&mut mem, Some(parse_bytes(v)?));
            mem_set = true;
        }
    }
    if mem_set {
        r.set_memory(Some(mem));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    let mut cpu_set = r.cpu().is_some();
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    rt.update(&a.id, &r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("x").is_err());
    }
}
