//! `docker stats`: a container's cgroup statistics (berth-cgroups, v1 and v2) in the JSON
//! shape dockerd answers (`types.StatsJSON`), which the docker CLI computes its columns from:
//! CPU % from the change of `cpu_stats.cpu_usage.total_usage` against the change of
//! `system_cpu_usage` (host CPU time from /proc/stat, in nanoseconds) between `precpu_stats`
//! and `cpu_stats`, times `online_cpus`; memory as `usage` less the inactive page cache
//! (`stats.total_inactive_file` on v1, `stats.inactive_file` on v2) over `limit` (the
//! container's limit, else the host's memory); PIDs from `pids_stats.current`.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::model::ZERO_TIME;

/// One reading of a container's statistics.
#[derive(Debug, Clone)]
pub struct StatsSample {
    /// The container's ID.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// The reading (None: the container does not run; dockerd answers zeros then).
    pub(crate) reading: Option<Reading>,
}

/// What was read, and when.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub(crate) read: SystemTime,
    pub(crate) cgroup: berth_cgroups::Stats,
    /// Host CPU time, nanoseconds (/proc/stat's first line).
    pub(crate) system_cpu: u64,
    /// Online CPUs.
    pub(crate) online_cpus: u64,
    /// The host's memory, bytes (the limit shown for a container without one).
    pub(crate) machine_memory: u64,
    /// Per interface of the container's own network namespace (not `lo`), dockerd's
    /// `networks`; None with `--network none` or `host` (dockerd leaves the key out then).
    pub(crate) networks: Option<Map<String, Value>>,
}

impl StatsSample {
    /// Does the container run (is this a real reading)?
    pub fn running(&self) -> bool {
        self.reading.is_some()
    }

    /// dockerd's JSON of this reading, with `pre` as the previous one (`precpu_stats`,
    /// `preread`; None: zeros, as a first or one-shot reading has).
    pub fn to_json(&self, pre: Option<&StatsSample>) -> Value {
        let cur = self.reading.as_ref();
        let pre = pre.and_then(|p| p.reading.as_ref());
        let time = |r: Option<&Reading>| {
            r.map(|r| humantime::format_rfc3339_nanos(r.read).to_string())
                .unwrap_or_else(|| ZERO_TIME.to_string())
        };
        let mut v = json!({
            "read": time(cur),
            "preread": time(pre),
            "pids_stats": pids(cur),
            "blkio_stats": blkio(cur),
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu(cur),
            "precpu_stats": cpu(pre),
            "memory_stats": memory(cur),
            "networks": cur.and_then(|r| r.networks.clone()),
            "name": format!("/{}", self.name),
            "id": self.id,
        });
        if let Some(o) = v.as_object_mut().filter(|o| o["networks"].is_null()) {
            o.remove("networks");
        }
        v
    }
}

/// Is this memory.stat a v1 one (`total_*` and `hierarchical_*` keys)?
fn is_v1(raw: &std::collections::BTreeMap<String, u64>) -> bool {
    raw.contains_key("hierarchical_memory_limit") || raw.contains_key("total_rss")
}

fn cpu(r: Option<&Reading>) -> Value {
    let Some(r) = r else {
        return json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        });
    };
    let c = &r.cgroup.cpu;
    let mut usage = json!({
        "total_usage": c.usage.total,
        "usage_in_kernelmode": c.usage.kernel,
        "usage_in_usermode": c.usage.user,
    });
    if !c.usage.percpu.is_empty() {
        usage["percpu_usage"] = json!(c.usage.percpu);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": r.system_cpu,
        "online_cpus": r.online_cpus,
        "throttling_data": {
            "periods": c.throttling.periods,
            "throttled_periods": c.throttling.throttled_periods,
            "throttled_time": c.throttling.throttled_time,
        },
    })
}

fn memory(r: Option<&Reading>) -> Value {
    let Some(r) = r else {
        return json!({});
    };
    let m = &r.cgroup.memory;
    let mut out = Map::new();
    // v1 shows "unlimited" as the largest page-aligned i64, v2 as "max" (read as u64::MAX):
    // dockerd shows the host's memory then.
    let limit = if m.usage.limit == 0 || m.usage.limit > r.machine_memory {
        r.machine_memory
    } else {
        m.usage.limit
    };
    // Go's omitempty: zeros are left out.
    let mut put = |k: &str, v: u64| {
        if v != 0 {
            out.insert(k.into(), json!(v));
        }
    };
    put("usage", m.usage.usage);
    if is_v1(&m.raw) {
        put("max_usage", m.usage.max);
        put("failcnt", m.usage.failcnt);
    }
    put("limit", limit);
    if !m.raw.is_empty() {
        out.insert("stats".into(), json!(m.raw));
    }
    Value::Object(out)
}

fn pids(r: Option<&Reading>) -> Value {
    let mut out = Map::new();
    if let Some(r) = r {
        let p = &r.cgroup.pids;
        if p.current != 0 {
            out.insert("current".into(), json!(p.current));
        }
        if p.limit != 0 {
            out.insert("limit".into(), json!(p.limit));
        }
    }
    Value::Object(out)
}

fn blkio(r: Option<&Reading>) -> Value {
    let list = |entries: &[berth_cgroups::BlkioEntry], lower: bool| -> Value {
        if entries.is_empty() {
            return Value::Null;
        }
        entries
            .iter()
            .map(|e| {
                json!({
                    "major": e.major,
                    "minor": e.minor,
                    // dockerd's v2 reading names the operations in lower case.
                    "op": if lower { e.op.to_ascii_lowercase() } else { e.op.clone() },
                    "value": e.value,
                })
            })
            .collect()
    };
    let (bytes, ios) = match r {
        Some(r) => {
            let v2 = !is_v1(&r.cgroup.memory.raw);
            let b = &r.cgroup.blkio;
            (
                list(&b.io_service_bytes_recursive, v2),
                list(&b.io_serviced_recursive, v2),
            )
        }
        None => (Value::Null, Value::Null),
    };
    json!({
        "io_service_bytes_recursive": bytes,
        "io_serviced_recursive": ios,
        "io_queue_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    })
}

/// The host's CPU time in nanoseconds, as dockerd reads it: the first seven fields of the
/// `cpu` line of /proc/stat (user, nice, system, idle, iowait, irq, softirq), in clock ticks.
pub(crate) fn system_cpu_usage(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    Some(ticks.saturating_mul(1_000_000_000 / hz))
}

/// Online CPUs (sysconf, as dockerd).
pub(crate) fn online_cpus() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .filter(|n| *n > 0)
        .unwrap_or(1) as u64
}

/// The host's memory in bytes (MemTotal of /proc/meminfo).
pub(crate) fn machine_memory(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("MemTotal:")?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// A reading of `cgroup` now.
pub(crate) fn read(cgroup: berth_cgroups::Stats, netns_of: Option<i64>) -> Reading {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let networks = netns_of.filter(|p| *p > 0).map(|pid| {
        net_dev(&std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default())
    });
    Reading {
        read: SystemTime::now(),
        cgroup,
        system_cpu: system_cpu_usage(&stat).unwrap_or(0),
        online_cpus: online_cpus(),
        machine_memory: machine_memory(&meminfo),
        networks,
    }
}

/// /proc/PID/net/dev as dockerd's per-interface `networks` (loopback left out, as dockerd
/// counts only the container's endpoints).
fn net_dev(text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if name == "lo" || f.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
            }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn interfaces_of_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1500      10    1    2    0     0          0         0      700       5    0    3    0     0       0          0
";
        let v = Value::Object(net_dev(text));
        assert_eq!(
            v,
            json!({"eth0": {"rx_bytes": 1500, "rx_packets": 10, "rx_errors": 1, "rx_dropped": 2,
                "tx_bytes": 700, "tx_packets": 5, "tx_errors": 0, "tx_dropped": 3}})
        );
    }

    fn files(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, contents) in files {
            std::fs::write(dir.join(name), contents).unwrap();
        }
    }

    fn sample(cgroup: berth_cgroups::Stats, system_cpu: u64) -> StatsSample {
        StatsSample {
            id: "c0ffee".into(),
            name: "web".into(),
            reading: Some(Reading {
                read: SystemTime::now(),
                cgroup,
                system_cpu,
                online_cpus: 2,
                machine_memory: 8 << 30,
                networks: None,
            }),
        }
    }

    /// The docker CLI's CPU % (cli/command/container/stats_helpers.go).
    fn cli_cpu_percent(v: &Value) -> f64 {
        let cpu = v["cpu_stats"]["cpu_usage"]["total_usage"].as_f64().unwrap();
        let pre = v["precpu_stats"]["cpu_usage"]["total_usage"]
            .as_f64()
            .unwrap();
        let sys = v["cpu_stats"]["system_cpu_usage"].as_f64().unwrap();
        let presys = v["precpu_stats"]["system_cpu_usage"]
            .as_f64()
            .unwrap_or(0.0);
        let n = v["cpu_stats"]["online_cpus"].as_f64().unwrap();
        if sys - presys > 0.0 && cpu - pre > 0.0 {
            (cpu - pre) / (sys - presys) * n * 100.0
        } else {
            0.0
        }
    }

    /// The docker CLI's memory usage (usage less inactive file cache).
    fn cli_mem(v: &Value) -> u64 {
        let m = &v["memory_stats"];
        let usage = m["usage"].as_u64().unwrap();
        if let Some(x) = m["stats"]["total_inactive_file"].as_u64() {
            if x < usage {
                return usage - x;
            }
        }
        match m["stats"]["inactive_file"].as_u64() {
            Some(x) if x < usage => usage - x,
            _ => usage,
        }
    }

    /// A pure v2 cgroup of plain files, read by berth-cgroups, in dockerd's shape.
    #[test]
    fn v2_cgroup_in_dockers_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("berth-c0ffee");
        let controllers: Vec<String> = ["cpu", "memory", "pids", "io"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cg = berth_cgroups::Cgroup::from_paths(berth_cgroups::CgroupPaths {
            unified: Some(dir.clone()),
            v2_controllers: controllers,
            pure_v2: true,
            ..Default::default()
        })
        .unwrap();
        let write = |usage_usec: u64| {
            files(
                &dir,
                &[
                    (
                        "cpu.stat",
                        &format!(
                            "usage_usec {usage_usec}\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 300\n"
                        ),
                    ),
                    ("memory.current", "10485760\n"),
                    ("memory.max", "67108864\n"),
                    ("memory.peak", "20000000\n"),
                    (
                        "memory.stat",
                        "anon 4194304\nfile 6291456\ninactive_file 2097152\nactive_file 4194304\n",
                    ),
                    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
                    ("pids.current", "3\n"),
                    ("pids.max", "max\n"),
                    (
                        "io.stat",
                        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
                    ),
                ],
            )
        };
        write(2_000);
        let first = sample(cg.stats().unwrap(), 10_000_000_000);
        // Half a CPU's time over one second on a two-CPU host: 0.5 s of 2 s of host time.
        write(502_000);
        let second = sample(cg.stats().unwrap(), 12_000_000_000);
        let v = second.to_json(Some(&first));
        assert_eq!(v["name"], "/web");
        assert_eq!(v["id"], "c0ffee");
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 502_000_000u64);
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["usage_in_usermode"],
            1_500_000u64
        );
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["usage_in_kernelmode"],
            500_000u64
        );
        assert!(v["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
        assert_eq!(
            v["cpu_stats"]["throttling_data"]["throttled_time"],
            300_000u64
        );
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 2_000_000u64);
        assert!((cli_cpu_percent(&v) - 50.0).abs() < 0.01, "{v}");
        assert_eq!(v["memory_stats"]["usage"], 10_485_760u64);
        assert_eq!(v["memory_stats"]["limit"], 67_108_864u64);
        assert!(v["memory_stats"].get("max_usage").is_none());
        assert_eq!(v["memory_stats"]["stats"]["anon"], 4_194_304u64);
        assert_eq!(cli_mem(&v), 10_485_760 - 2_097_152);
        assert_eq!(v["pids_stats"], json!({"current": 3}));
        let bytes = v["blkio_stats"]["io_service_bytes_recursive"]
            .as_array()
            .unwrap();
        assert_eq!(bytes.len(), 2);
        assert_eq!(
            bytes[0],
            json!({"major": 8, "minor": 0, "op": "read", "value": 4096})
        );
        assert_eq!(bytes[1]["op"], "write");

        // No limit ("max"): the host's memory.
        files(&dir, &[("memory.max", "max\n")]);
        let v = sample(cg.stats().unwrap(), 1).to_json(None);
        assert_eq!(v["memory_stats"]["limit"], 8u64 << 30);
        assert_eq!(v["preread"], ZERO_TIME);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    }

    /// A v1 cgroup: per-CPU usage, max_usage, failcnt, the unlimited limit.
    #[test]
    fn v1_cgroup_in_dockers_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let mem = tmp.path().join("memory/c");
        let acct = tmp.path().join("cpuacct/c");
        let cpu = tmp.path().join("cpu/c");
        let mut v1 = std::collections::BTreeMap::new();
        v1.insert("memory".to_string(), mem.clone());
        v1.insert("cpuacct".to_string(), acct.clone());
        v1.insert("cpu".to_string(), cpu.clone());
        let cg = berth_cgroups::Cgroup::from_paths(berth_cgroups::CgroupPaths {
            v1,
            ..Default::default()
        })
        .unwrap();
        files(
            &mem,
            &[
                ("memory.usage_in_bytes", "3000000\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.max_usage_in_bytes", "4000000\n"),
                ("memory.failcnt", "0\n"),
                (
                    "memory.stat",
                    "cache 1000\nrss 2000\nhierarchical_memory_limit 9223372036854771712\ntotal_inactive_file 1000000\ntotal_rss 2000\n",
                ),
            ],
        );
        files(
            &acct,
            &[
                ("cpuacct.usage", "7000\n"),
                ("cpuacct.usage_percpu", "3000 4000\n"),
                ("cpuacct.stat", "user 1\nsystem 0\n"),
            ],
        );
        files(
            &cpu,
            &[(
                "cpu.stat",
                "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
            )],
        );
        let v = sample(cg.stats().unwrap(), 5).to_json(None);
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["percpu_usage"],
            json!([3000, 4000])
        );
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 7000);
        assert_eq!(v["memory_stats"]["max_usage"], 4_000_000u64);
        assert!(v["memory_stats"].get("failcnt").is_none());
        assert_eq!(v["memory_stats"]["limit"], 8u64 << 30);
        assert_eq!(cli_mem(&v), 2_000_000);
    }

    #[test]
    fn a_stopped_container_reads_zeros() {
        let s = StatsSample {
            id: "c0ffee".into(),
            name: "web".into(),
            reading: None,
        };
        let v = s.to_json(None);
        assert_eq!(v["read"], ZERO_TIME);
        assert_eq!(v["memory_stats"], json!({}));
        assert_eq!(v["pids_stats"], json!({}));
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(v["blkio_stats"]["io_service_bytes_recursive"], Value::Null);
        assert_eq!(v["name"], "/web");
    }

    #[test]
    fn host_figures() {
        let stat = "cpu  100 0 50 850 0 0 0 7 0 0\ncpu0 50 0 25 425 0 0 0 0 0 0\n";
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as u64;
        assert_eq!(system_cpu_usage(stat), Some(1000 * (1_000_000_000 / hz)));
        assert_eq!(system_cpu_usage("intr 1\n"), None);
        assert_eq!(
            machine_memory("MemTotal:       16318412 kB\nMemFree: 1 kB\n"),
            16_318_412 * 1024
        );
        assert!(online_cpus() >= 1);
    }
}
