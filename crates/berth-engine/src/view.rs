//! Containers as the API shows them: inspect (Docker's full JSON shape) and list entries,
//! and the list filters the docker CLI sends.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::model::{Container, Status};
use crate::{Action, Engine, Result, Subject};

/// The filters of `GET /containers/json` (`filters={"status":["running"],…}`).
pub type Filters = HashMap<String, Vec<String>>;

/// Options of a container list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Only the last N created (implies all).
    pub limit: Option<usize>,
    /// Compute sizes.
    pub size: bool,
    /// Filters.
    pub filters: Filters,
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

fn seconds(rfc: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Docker's human status: `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`.
pub fn human_status(c: &Container) -> String {
    let since = |rfc: &str| {
        humantime::parse_rfc3339_weak(rfc)
            .ok()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map(human_duration)
            .unwrap_or_else(|| "Less than a second".into())
    };
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running | Status::Paused => {
            let mut s = format!("Up {}", since(&c.state.started_at));
            if let Some(h) = &c.state.health {
                match h.status.as_str() {
                    "starting" => s.push_str(" (health: starting)"),
                    other => s.push_str(&format!(" ({other})")),
                }
            }
            if c.state.status == Status::Paused {
                s.push_str(" (Paused)");
            }
            s
        }
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            since(&c.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => {
            if c.state.finished_at == crate::model::ZERO_TIME {
                "Created".into()
            } else {
                format!(
                    "Exited ({}) {} ago",
                    c.state.exit_code,
                    since(&c.state.finished_at)
                )
            }
        }
        Status::Dead => "Dead".into(),
    }
}

/// Go's units.HumanDuration, as the docker CLI prints it.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let m = s / 60;
    if m == 1 {
        return "About a minute".into();
    }
    if m < 60 {
        return format!("{m} minutes");
    }
    let h = (m as f64 / 60.0).round() as u64;
    if h == 1 {
        return "About an hour".into();
    }
    if h < 48 {
        return format!("{h} hours");
    }
    if h < 24 * 7 * 2 {
        return format!("{} days", h / 24);
    }
    if h < 24 * 30 * 2 {
        return format!("{} weeks", h / 24 / 7);
    }
    if h < 24 * 365 * 2 {
        return format!("{} months", h / 24 / 30);
    }
    format!("{} years", h / 24 / 365)
}

fn mounts_json(c: &Container) -> Value {
    Value::Array(
        c.mounts
            .iter()
            .map(|m| {
                let mut v = json!({
                    "Type": m.kind, "Source": m.source, "Destination": m.destination,
                    "Mode": m.mode, "RW": m.rw, "Propagation": m.propagation,
                });
                if let Some(n) = &m.name {
                    v["Name"] = json!(n);
                    v["Driver"] = json!("local");
                }
                v
            })
            .collect(),
    )
}

fn health_json(c: &Container) -> Value {
    match &c.state.health {
        None => Value::Null,
        Some(h) => json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|l| json!({
                "Start": l.start, "End": l.end, "ExitCode": l.exit_code, "Output": l.output,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// HostConfig with Docker's defaults filled where clients read them.
fn host_config_json(c: &Container) -> Value {
    let mut v = serde_json::to_value(&c.host_config).unwrap_or_else(|_| json!({}));
    let obj = v.as_object_mut().expect("a struct serializes as an object");
    let defaults = json!({
        "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": if c.log_path.is_some() {"json-file"} else {"none"}, "Config": {}},
        "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null, "ConsoleSize": [0, 0],
        "CapAdd": null, "CapDrop": null, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [],
        "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null, "IpcMode": "private", "Cgroup": "",
        "Links": null, "OomScoreAdj": 0, "PidMode": "", "Privileged": false, "PublishAllPorts": false,
        "ReadonlyRootfs": false, "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
        "Runtime": c.runtime, "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
        "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
        "DeviceRequests": null, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": null,
        "OomKillDisable": null, "PidsLimit": null, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": [], "ReadonlyPaths": [],
    });
    for (k, d) in defaults.as_object().expect("literal object") {
        let missing = match obj.get(k) {
            None => true,
            Some(Value::String(s)) => s.is_empty() && !d.as_str().unwrap_or_default().is_empty(),
            _ => false,
        };
        if missing {
            obj.insert(k.clone(), d.clone());
        }
    }
    if let Some(rp) = obj.get_mut("RestartPolicy") {
        if rp
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            rp["Name"] = json!("no");
        }
        if rp.get("MaximumRetryCount").is_none() {
            rp["MaximumRetryCount"] = json!(0);
        }
    }
    v
}

/// The Config as inspect shows it.
fn config_json(c: &Container) -> Value {
    let mut v = serde_json::to_value(&c.config).unwrap_or_else(|_| json!({}));
    let obj = v.as_object_mut().expect("a struct serializes as an object");
    let defaults = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": [],
        "Cmd": null, "Image": c.image_name, "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": {},
    });
    for (k, d) in defaults.as_object().expect("literal object") {
        obj.entry(k.clone()).or_insert(d.clone());
    }
    v
}

impl Engine {
    /// `docker inspect` of a container (Docker's shape).
    pub fn inspect(&self, who: &Subject, name: &str, size: bool) -> Result<Value> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Read, Some(&c.owner))?;
        Ok(self.inspect_json(&c, size))
    }

    fn inspect_json(&self, c: &Container, size: bool) -> Value {
        let s = &c.state;
        let data = self.paths.container_data(&c.id);
        let root = data.join("root");
        let mut v = json!({
            "Id": c.id,
            "Created": c.created,
            "Path": c.path,
            "Args": c.args,
            "State": {
                "Status": s.status.as_str(),
                "Running": s.status.is_running(),
                "Paused": s.status == Status::Paused,
                "Restarting": s.status == Status::Restarting,
                "OOMKilled": s.oom_killed,
                "Dead": s.status == Status::Dead,
                "Pid": s.pid,
                "ExitCode": s.exit_code,
                "Error": s.error,
                "StartedAt": s.started_at,
                "FinishedAt": s.finished_at,
            },
            "Image": c.image_id,
            "ResolvConfPath": data.join("resolv.conf"),
            "HostnamePath": data.join("hostname"),
            "HostsPath": data.join("hosts"),
            "LogPath": c.log_path.clone().unwrap_or_default(),
            "Name": format!("/{}", c.name),
            "RestartCount": s.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": null,
            "HostConfig": host_config_json(c),
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {
                    "MergedDir": root.join("merged"),
                    "UpperDir": root.join("upper"),
                    "WorkDir": root.join("work"),
                }
            },
            "Mounts": mounts_json(c),
            "Config": config_json(c),
            "NetworkSettings": self.network_settings_json(c),
        });
        if s.health.is_some() {
            v["State"]["Health"] = health_json(c);
        }
        if size {
            let (rw, rootfs) = self.sizes(c);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rootfs);
        }
        v
    }

    /// (bytes written by the container, its whole root filesystem).
    fn sizes(&self, c: &Container) -> (u64, u64) {
        let upper = self.paths.container_data(&c.id).join("root").join("upper");
        let rw = dir_size(&upper);
        let image: u64 = self
            .images
            .get(&c.image_id)
            .map(|i| {
                i.diff_ids
                    .iter()
                    .map(|d| self.images.layer_size(d).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        (rw, rw + image)
    }

    /// `docker ps`: list entries, newest first.
    pub fn list(&self, who: &Subject, o: &ListOptions) -> Result<Vec<Value>> {
        self.authorize(who, Action::Read, None)?;
        let mut cs: Vec<Container> = self
            .visible_containers(who)
            .iter()
            .map(|h| h.get())
            .filter(|c| c.complete)
            .collect();
        cs.sort_by(|a, b| b.created.cmp(&a.created));
        let all = o.all || o.limit.is_some_and(|l| l > 0);
        let before = self.filter_anchor(who, &o.filters, "before");
        let since = self.filter_anchor(who, &o.filters, "since");
        let mut out = Vec::new();
        for c in cs {
            if !all && !c.state.status.is_running() && c.state.status != Status::Restarting {
                // Docker shows only running containers (and paused, restarting).
                if o.filters.get("status").is_none_or(|s| s.is_empty()) {
                    continue;
                }
            }
            if let Some(b) = &before {
                if c.created >= *b {
                    continue;
                }
            }
            if let Some(s) = &since {
                if c.created <= *s {
                    continue;
                }
            }
            if !self.matches(&c, &o.filters) {
                continue;
            }
            out.push(self.list_entry(&c, o.size));
            if let Some(l) = o.limit.filter(|l| *l > 0) {
                if out.len() >= l {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn filter_anchor(&self, who: &Subject, f: &Filters, key: &str) -> Option<String> {
        let v = f.get(key)?.first()?;
        self.lookup(who, v).ok().map(|h| h.get().created)
    }

    fn matches(&self, c: &Container, f: &Filters) -> bool {
        for (key, values) in f {
            if values.is_empty() {
                continue;
            }
            let ok = match key.as_str() {
                "id" => values.iter().any(|v| c.id.starts_with(v.as_str())),
                "name" => values.iter().any(|v| {
                    let v = v.trim_start_matches('/');
                    // Docker matches names as a regular expression; a substring is the
                    // common case (`name=web`).
                    let anchored_start = v.starts_with('^');
                    let anchored_end = v.ends_with('$');
                    let core = v.trim_start_matches('^').trim_end_matches('$');
                    match (anchored_start, anchored_end) {
                        (true, true) => c.name == core,
                        (true, false) => c.name.starts_with(core),
                        (false, true) => c.name.ends_with(core),
                        (false, false) => c.name.contains(core),
                    }
                }),
                "status" => values.iter().any(|v| v == c.state.status.as_str()),
                "exited" => {
                    c.state.status == Status::Exited
                        && values
                            .iter()
                            .any(|v| v.parse::<i64>().ok() == Some(c.state.exit_code))
                }
                "label" => values.iter().all(|l| {
                    let labels = c.config.labels.clone().unwrap_or_default();
                    match l.split_once('=') {
                        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
                        None => labels.contains_key(l.as_str()),
                    }
                }),
                "ancestor" => values.iter().any(|v| {
                    c.image_name == *v
                        || c.image_id == *v
                        || c.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                        || self
                            .images
                            .lookup(v)
                            .ok()
                            .flatten()
                            .is_some_and(|i| i.id == c.image_id)
                }),
                "volume" => values.iter().any(|v| {
                    c.mounts.iter().any(|m| {
                        m.name.as_deref() == Some(v) || m.destination == *v || m.source == *v
                    })
                }),
                "health" => values.iter().any(|v| {
                    let hs = c
                        .state
                        .health
                        .as_ref()
                        .map(|h| h.status.as_str())
                        .unwrap_or("none");
                    v == hs
                }),
                "is-task" => values.iter().any(|v| v == "false"),
                "network" => values.iter().any(|v| {
                    c.host_config.network_mode.as_deref().unwrap_or("default") == v
                        || c.networks.contains_key(v)
                        || c.networks
                            .values()
                            .any(|e| !v.is_empty() && e.network_id.starts_with(v.as_str()))
                }),
                "publish" | "expose" => values.iter().any(|v| {
                    let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
                    let published = key == "publish";
                    c.ports.iter().any(|p| {
                        let n = if published {
                            p.host_port
                        } else {
                            p.container_port
                        };
                        n.to_string() == port && p.proto.to_string() == proto
                    }) || (!published
                        && c.config
                            .exposed_ports
                            .iter()
                            .flatten()
                            .any(|e| e == v || *e == format!("{port}/{proto}")))
                }),
                "before" | "since" => true,
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    fn list_entry(&self, c: &Container, size: bool) -> Value {
        let command = std::iter::once(c.path.clone())
            .chain(c.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut v = json!({
            "Id": c.id,
            "Names": std::iter::once(format!("/{}", c.name)).chain(self.link_names(c)).collect::<Vec<_>>(),
            "Image": c.image_name,
            "ImageID": c.image_id,
            "Command": command,
            "Created": seconds(&c.created),
            "Ports": Engine::ports_list_json(c),
            "Labels": c.config.labels.clone().unwrap_or_default(),
            "State": c.state.status.as_str(),
            "Status": human_status(c),
            "HostConfig": {"NetworkMode": c.host_config.network_mode.clone().unwrap_or_else(|| "bridge".into())},
            "NetworkSettings": {"Networks": self.network_settings_json(c)["Networks"].clone()},
            "Mounts": mounts_json(c),
        });
        if size {
            let (rw, rootfs) = self.sizes(c);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rootfs);
        }
        let _ = short(&c.id);
        v
    }
}

/// Bytes of the regular files beneath `dir` (not following links, not crossing mounts).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = top.dev();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.dev() != dev {
                continue;
            }
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_durations_as_the_cli() {
        assert_eq!(
            human_duration(Duration::from_millis(10)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(3)), "3 seconds");
        assert_eq!(human_duration(Duration::from_secs(61)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }
}
