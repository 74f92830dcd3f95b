//! Container operations through the daemon: top, stats, update, port, export, diff, commit.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};

use super::client::{Client, Request, seg};
use super::format::{Template, headers};
use super::run::{ResourceArgs, restart_policy_value};
use super::{binary_size, human_prec, one_line, print_table_min, short_id};

/// `berth top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// The container.
    pub container: String,
    /// ps options (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Run `top`.
pub fn top(c: &Client, a: &TopArgs) -> Result<ExitCode> {
    let v = c.json(
        Request::get(format!("/containers/{}/top", seg(&a.container))).q_if(
            !a.ps_args.is_empty(),
            "ps_args",
            a.ps_args.join(" "),
        ),
    )?;
    let mut rows = vec![
        v["Titles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t.as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>(),
    ];
    for p in v["Processes"].as_array().into_iter().flatten() {
        rows.push(
            p.as_array()
                .into_iter()
                .flatten()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect(),
        );
    }
    print_table_min(&rows, 20);
    Ok(ExitCode::SUCCESS)
}

/// `berth stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template ({{.Name}}, {{.CPUPerc}}, {{.MemUsage}}, …).
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: all running).
    pub containers: Vec<String>,
}

/// One sample of a container, as docker's `stats` computes it.
pub fn stats_row(name: &str, v: &Value, trunc: bool) -> Value {
    let cpu = &v["cpu_stats"];
    let pre = &v["precpu_stats"];
    let f = |x: &Value| x.as_f64().unwrap_or(0.0);
    let cpu_delta = f(&cpu["cpu_usage"]["total_usage"]) - f(&pre["cpu_usage"]["total_usage"]);
    let sys_delta = f(&cpu["system_cpu_usage"]) - f(&pre["system_cpu_usage"]);
    let online = cpu["online_cpus"]
        .as_f64()
        .filter(|n| *n > 0.0)
        .unwrap_or_else(|| {
            cpu["cpu_usage"]["percpu_usage"]
                .as_array()
                .map_or(1.0, |a| a.len().max(1) as f64)
        });
    let cpu_pct = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let mem = &v["memory_stats"];
    let usage = f(&mem["usage"]);
    let cache = mem["stats"]["total_inactive_file"]
        .as_f64()
        .or(mem["stats"]["inactive_file"].as_f64())
        .filter(|c| *c < usage)
        .unwrap_or(0.0);
    let used = usage - cache;
    let limit = f(&mem["limit"]);
    let mem_pct = if limit > 0.0 {
        used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in v["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += f(&n["rx_bytes"]);
        tx += f(&n["tx_bytes"]);
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in v["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => rd += f(&e["value"]),
            Some("write") => wr += f(&e["value"]),
            _ => {}
        }
    }
    let id = v["id"].as_str().unwrap_or(name);
    let nm = v["name"]
        .as_str()
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| name.to_string());
    json!({
        "Container": name,
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Name": nm,
        "CPUPerc": format!("{cpu_pct:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(used), binary_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_prec(rx, 3), human_prec(tx, 3)),
        "BlockIO": format!("{} / {}", human_prec(rd, 3), human_prec(wr, 3)),
        "PIDs": v["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

fn stats_headers() -> Value {
    headers(&[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ])
}

const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Run `stats`.
pub fn stats(c: &Client, a: &StatsArgs) -> Result<ExitCode> {
    let names: Vec<String> = if a.containers.is_empty() {
        c.json(Request::get("/containers/json").q_if(a.all, "all", 1))?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(short_id))
            .collect()
    } else {
        a.containers.clone()
    };
    let t = Template::parse(a.format.as_deref().unwrap_or(""), STATS_TABLE)?;
    let trunc = !a.no_trunc;
    if a.no_stream {
        let mut rows = Vec::new();
        let mut failed = false;
        for n in &names {
            match c.json(
                Request::get(format!("/containers/{}/stats", seg(n)))
                    .q("stream", 0)
                    .q("one-shot", 0),
            ) {
                Ok(v) => rows.push(stats_row(n, &v, trunc)),
                Err(e) => {
                    eprintln!("{}", one_line(&e));
                    failed = true;
                }
            }
        }
        t.print(&rows, &stats_headers())?;
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    // Streaming: a reader per container, the table redrawn every second.
    let latest: Arc<Mutex<Vec<Option<Value>>>> = Arc::new(Mutex::new(vec![None; names.len()]));
    for (i, n) in names.iter().enumerate() {
        let r = c.call(Request::get(format!("/containers/{}/stats", seg(n))).q("stream", 1))?;
        let latest = latest.clone();
        let n = n.clone();
        std::thread::spawn(move || {
            for v in r.json_stream() {
                let Ok(v) = v else { break };
                if let Ok(mut l) = latest.lock() {
                    l[i] = Some(stats_row(&n, &v, trunc));
                }
            }
        });
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let rows: Vec<Value> = latest
            .lock()
            .map(|l| l.iter().flatten().cloned().collect())
            .unwrap_or_default();
        if tty {
            print!("\x1b[2J\x1b[H");
        }
        t.print(&rows, &stats_headers())?;
        let _ = std::io::stdout().flush();
    }
}

/// `berth update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory, CPU, pids and block IO limits (the flags of `run`).
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Restart policy to apply when a container exits.
    #[arg(long)]
    pub restart: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `update`.
pub fn update(c: &Client, a: &UpdateArgs) -> Result<ExitCode> {
    let mut b = serde_json::Map::new();
    a.resources.apply(&mut b)?;
    if let Some(r) = &a.restart {
        b.insert("RestartPolicy".into(), restart_policy_value(r)?);
    }
    if b.is_empty() {
        bail!("you must provide one or more flags when using this command");
    }
    let b = Value::Object(b);
    let mut failed = false;
    for n in &a.containers {
        match c.json(Request::post(format!("/containers/{}/update", seg(n))).json(&b)) {
            Ok(v) => {
                for w in v["Warnings"].as_array().into_iter().flatten() {
                    if let Some(w) = w.as_str() {
                        eprintln!("WARNING: {w}");
                    }
                }
                println!("{n}");
            }
            Err(e) => {
                eprintln!("{}", one_line(&e));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `berth port`.
#[derive(Args, Debug)]
pub struct PortArgs {
    /// The container.
    pub container: String,
    /// PRIVATE_PORT[/PROTO].
    pub port: Option<String>,
}

/// Run `port`.
pub fn port(c: &Client, a: &PortArgs) -> Result<ExitCode> {
    let v = c.json(Request::get(format!(
        "/containers/{}/json",
        seg(&a.container)
    )))?;
    let ports = v["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut lines = Vec::new();
    for (k, bindings) in &ports {
        if want.as_ref().is_some_and(|w| w != k) {
            continue;
        }
        for b in bindings.as_array().into_iter().flatten() {
            let ip = b["HostIp"].as_str().unwrap_or("0.0.0.0");
            let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
            let hp = b["HostPort"].as_str().unwrap_or_default();
            if want.is_some() {
                lines.push(format!("{ip}:{hp}"));
            } else {
                lines.push(format!("{k} -> {ip}:{hp}"));
            }
        }
    }
    if let (Some(w), true) = (&want, lines.is_empty()) {
        bail!("Error: No public port '{w}' published for {}", a.container);
    }
    for l in lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
    /// The container.
    pub container: String,
}

/// Run `export`.
pub fn export(c: &Client, a: &ExportArgs) -> Result<ExitCode> {
    if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let r = c.call(Request::get(format!(
        "/containers/{}/export",
        seg(&a.container)
    )))?;
    super::images_api::body_to(r.body, a.output.as_deref(), "export")?;
    Ok(ExitCode::SUCCESS)
}

/// `berth diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The container.
    pub container: String,
}

/// Run `diff`.
pub fn diff(c: &Client, a: &DiffArgs) -> Result<ExitCode> {
    let v = c.json(Request::get(format!(
        "/containers/{}/changes",
        seg(&a.container)
    )))?;
    for ch in v.as_array().into_iter().flatten() {
        let k = match ch["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        println!("{k} {}", ch["Path"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth commit`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit.
    #[arg(short, long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pause: bool,
    /// The container.
    pub container: String,
    /// REPOSITORY[:TAG].
    pub reference: Option<String>,
}

/// Run `commit`.
pub fn commit(c: &Client, a: &CommitArgs) -> Result<ExitCode> {
    let mut req = Request::post("/commit")
        .q("container", &a.container)
        .q("pause", u8::from(a.pause))
        .q_opt("comment", a.message.as_ref())
        .q_opt("author", a.author.as_ref());
    if let Some(r) = &a.reference {
        let parsed = berth_registry::Reference::parse(r)
            .map_err(|e| anyhow!("invalid reference format: {r}: {e}"))?;
        req = req
            .q("repo", parsed.familiar_name())
            .q("tag", parsed.tag_or_latest().unwrap_or("latest"));
    }
    for ch in &a.change {
        req = req.q("changes", ch);
    }
    let v = c.json(req.json(&json!({})))?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stats_as_docker_computes_them() {
        let v = serde_json::json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 2_097_152, "limit": 1_073_741_824, "stats": {"inactive_file": 524_288}},
            "networks": {"eth0": {"rx_bytes": 1234, "tx_bytes": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 4096}, {"op": "write", "value": 0}]},
            "pids_stats": {"current": 3},
        });
        let r = super::stats_row("web", &v, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "1.5MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.15%");
        assert_eq!(r["NetIO"], "1.23kB / 0B");
        assert_eq!(r["BlockIO"], "4.1kB / 0B");
        assert_eq!(r["PIDs"], "3");
    }
}
