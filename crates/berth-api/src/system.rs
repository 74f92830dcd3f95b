//! System endpoints: ping, version, info, events, df.

use std::time::{Duration, UNIX_EPOCH};

use berth_engine::Error;
use berth_engine::events::Filter;
use bytes::Bytes;
use hyper::Method;
use hyper::header::HeaderValue;
use serde_json::json;

use crate::http::{self, Query, Resp};
use crate::{API_VERSION, Ctx, DOCKER_VERSION, MIN_API_VERSION, blocking};

/// `GET|HEAD /_ping`.
pub fn ping(m: &Method) -> Resp {
    let mut r = if m == Method::HEAD {
        http::empty(200)
    } else {
        http::text(200, "OK")
    };
    let h = r.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    r
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

/// `GET /version`.
pub async fn version(_ctx: &Ctx) -> Result<Resp, Error> {
    let commit = option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown");
    let built = "";
    Ok(http::json(
        200,
        &json!({
            "Platform": {"Name": "berth"},
            "Components": [{
                "Name": "Engine", "Version": DOCKER_VERSION,
                "Details": {
                    "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                    "GitCommit": commit, "GoVersion": "n/a (Rust)", "Os": "linux",
                    "Arch": arch(), "KernelVersion": kernel(), "Experimental": "false",
                    "BuildTime": built, "berth": env!("CARGO_PKG_VERSION"),
                }
            }],
            "Version": DOCKER_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": commit,
            "GoVersion": "n/a (Rust)",
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel(),
            "BuildTime": built,
        }),
    ))
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `GET /info`.
pub async fn info(ctx: &Ctx) -> Result<Resp, Error> {
    let engine = ctx.engine.clone();
    let who = ctx.who.clone();
    let v = blocking(move || {
        let list = engine.list(
            &who,
            &berth_engine::view::ListOptions {
                all: true,
                ..Default::default()
            },
        )?;
        let count = |s: &str| list.iter().filter(|c| c["State"] == s).count();
        let images = engine.images().images().map(|i| i.len()).unwrap_or(0);
        let cfg = engine.config();
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let v2 = berth_engine::cgroup::pure_v2();
        let swap = engine.swap_limit();
        Ok(json!({
            "ID": machine_id(),
            "Containers": list.len(),
            "ContainersRunning": count("running"),
            "ContainersPaused": count("paused"),
            "ContainersStopped": list.len() - count("running") - count("paused"),
            "Images": images,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "Plugins": {
                "Volume": ["local"], "Network": ["host", "null"],
                "Authorization": null, "Log": ["json-file", "none"],
            },
            "MemoryLimit": true, "SwapLimit": swap, "KernelMemoryTCP": false,
            "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
            "PidsLimit": true, "IPv4Forwarding": true, "BridgeNfIptables": false,
            "BridgeNfIp6tables": false, "Debug": cfg.debug.unwrap_or(false),
            "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
            "OomKillDisable": !v2, "NGoroutines": 0,
            "SystemTime": humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            "LoggingDriver": cfg.log_driver(),
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": if v2 { "2" } else { "1" },
            "NEventsListener": 0,
            "KernelVersion": kernel(),
            "OperatingSystem": os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": null,
                "AllowNondistributableArtifactsHostnames": null,
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {},
                "Mirrors": cfg.registry_mirrors,
            },
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "MemTotal": mem_total(),
            "GenericResources": null,
            "DockerRootDir": engine.paths().data_root,
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": hostname,
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": DOCKER_VERSION,
            "Runtimes": cfg.runtime_list().into_iter()
                .map(|(n, p)| (n, json!({"path": p})))
                .collect::<serde_json::Map<_, _>>(),
            "DefaultRuntime": cfg.default_runtime(),
            "Swarm": {
                "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                "ControlAvailable": false, "Error": "", "RemoteManagers": null,
            },
            "LiveRestoreEnabled": cfg.live_restore(),
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": ""},
            "RuncCommit": {"ID": ""},
            "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
            "CDISpecDirs": [],
            "Warnings": if swap { json!(null) } else { json!(["WARNING: No swap limit support"]) },
        }))
    })
    .await?;
    Ok(http::json(200, &v))
}

fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A time as Docker's `since`/`until` take it: seconds (with an optional fraction), or RFC
/// 3339, or a duration before now (`10m`).
pub fn parse_time(s: &str) -> Result<std::time::SystemTime, Error> {
    let now = std::time::SystemTime::now();
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f >= 0.0 {
            return Ok(UNIX_EPOCH + Duration::from_secs_f64(f));
        }
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.checked_sub(d).unwrap_or(UNIX_EPOCH));
    }
    Err(Error::Invalid(format!("invalid time value: {s:?}")))
}

/// `GET /events`: stored events from `since`, then live ones until `until` (or for ever).
pub async fn events(ctx: &Ctx, q: &Query) -> Result<Resp, Error> {
    let since = q
        .get("since")
        .filter(|s| !s.is_empty())
        .map(parse_time)
        .transpose()?;
    let until = q
        .get("until")
        .filter(|s| !s.is_empty())
        .map(parse_time)
        .transpose()?;
    let filter = Filter(q.filters()?);
    let engine = ctx.engine.clone();
    let who = ctx.who.clone();
    let (resp, tx) = http::stream(200, "application/json");
    tokio::spawn(async move {
        let ev = engine.events();
        let (mut rx, mut last) = ev.subscribe();
        let nanos = |t: std::time::SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0)
        };
        let until_n = until.map(nanos);
        let pass = |e: &berth_engine::events::Event| {
            engine.policy().visible(&who, &e.owner) && filter.matches(e)
        };
        let send = |e: &berth_engine::events::Event| {
            let mut b = serde_json::to_vec(e).unwrap_or_default();
            b.push(b'\n');
            Bytes::from(b)
        };
        if let Some(s) = since {
            let s = nanos(s);
            let stored = {
                let engine = engine.clone();
                tokio::task::spawn_blocking(move || engine.events().stored_after(0))
                    .await
                    .unwrap_or_default()
            };
            for (seq, e) in stored {
                if seq > last {
                    break;
                }
                if e.time_nano < s || until_n.is_some_and(|u| e.time_nano > u) {
                    continue;
                }
                if pass(&e) && tx.send(send(&e)).await.is_err() {
                    return;
                }
            }
        }
        if let Some(u) = until_n {
            let now = nanos(std::time::SystemTime::now());
            if u <= now {
                return;
            }
        }
        let deadline = until.map(|u| {
            tokio::time::Instant::now()
                + u.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
        });
        loop {
            let next = async {
                match rx.recv().await {
                    Ok(x) => Some(vec![(x.0, (*x.1).clone())]),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the live channel: catch up from the database.
                        let engine = engine.clone();
                        let after = last;
                        let rows = tokio::task::spawn_blocking(move || {
                            engine.events().stored_after(after)
                        })
                        .await
                        .unwrap_or_default();
                        Some(rows)
                    }
                    Err(_) => None,
                }
            };
            let batch = match deadline {
                Some(d) => match tokio::time::timeout_at(d, next).await {
                    Ok(b) => b,
                    Err(_) => return,
                },
                None => next.await,
            };
            let Some(batch) = batch else { return };
            for (seq, e) in batch {
                if seq <= last {
                    continue;
                }
                last = seq;
                if pass(&e) && tx.send(send(&e)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(resp)
}

/// `GET /system/df`.
pub async fn df(ctx: &Ctx, _q: &Query) -> Result<Resp, Error> {
    let engine = ctx.engine.clone();
    let who = ctx.who.clone();
    let v = blocking(move || {
        let containers = engine.list(
            &who,
            &berth_engine::view::ListOptions {
                all: true,
                size: true,
                ..Default::default()
            },
        )?;
        let images = crate::images::list_json(&engine, &who, false, &Default::default())?;
        let layers_size: u64 = images.iter().map(|i| i["Size"].as_u64().unwrap_or(0)).sum();
        Ok(json!({
            "LayersSize": layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": engine.volume_usage(&who)?,
            "BuildCache": engine.build_cache_usage()?,
        }))
    })
    .await?;
    Ok(http::json(200, &v))
}
