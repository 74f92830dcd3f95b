//! System commands through the daemon: version, info, events, system df, system prune.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::client::{Client, Request};
use super::format::{Template, headers};
use super::{binary_size, human, one_line};

/// `berth version`.
#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a custom template ({{.Client.Version}}, {{.Server.APIVersion}}, …).
    #[arg(short, long)]
    pub format: Option<String>,
}

fn os_arch() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    format!("linux/{arch}")
}

/// Run `version`.
pub fn version(c: &Client, a: &VersionArgs) -> Result<ExitCode> {
    let client = json!({
        "Platform": {"Name": "berth"},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": "1.52", "APIVersion": "1.52", "DefaultAPIVersion": "1.52",
        "GoVersion": "n/a (Rust)",
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
        "Os": "linux", "Arch": os_arch().trim_start_matches("linux/"),
        "Context": "default",
    });
    let server = c.json(Request::get("/version"));
    if let Some(f) = &a.format {
        let mut doc = json!({"Client": client});
        if let Ok(mut s) = server.as_ref().cloned() {
            s["APIVersion"] = s["ApiVersion"].clone();
            s["MinAPIVersion"] = s["MinAPIVersion"].clone();
            doc["Server"] = s;
        }
        let t = Template::parse(f, "")?;
        println!("{}", t.eval(&doc)?);
        return match server {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("{}", one_line(&e));
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    println!("Client:");
    println!(" Version:           {}", s(&client["Version"]));
    println!(" API version:       {}", s(&client["ApiVersion"]));
    println!(" Go version:        {}", s(&client["GoVersion"]));
    println!(" Git commit:        {}", s(&client["GitCommit"]));
    println!(" OS/Arch:           {}", os_arch());
    println!(" Context:           default");
    match server {
        Ok(v) => {
            println!();
            println!(
                "Server: {}",
                v["Platform"]["Name"].as_str().unwrap_or("berth")
            );
            println!(" Engine:");
            println!("  Version:          {}", s(&v["Version"]));
            println!(
                "  API version:      {} (minimum version {})",
                s(&v["ApiVersion"]),
                s(&v["MinAPIVersion"])
            );
            println!("  Go version:       {}", s(&v["GoVersion"]));
            println!("  Git commit:       {}", s(&v["GitCommit"]));
            println!("  Built:            {}", s(&v["BuildTime"]));
            println!("  OS/Arch:          {}/{}", s(&v["Os"]), s(&v["Arch"]));
            println!("  Experimental:     false");
            for comp in v["Components"].as_array().into_iter().flatten() {
                if let Some(b) = comp["Details"]["berth"].as_str() {
                    println!(" berth:");
                    println!("  Version:          {b}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!();
            eprintln!("{}", one_line(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `berth info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a custom template ({{.ServerVersion}}, {{json .}}, …).
    #[arg(short, long)]
    pub format: Option<String>,
}

/// Run `info`.
pub fn info(c: &Client, a: &InfoArgs) -> Result<ExitCode> {
    let v = c.json(Request::get("/info"))?;
    if let Some(f) = &a.format {
        println!("{}", Template::parse(f, "")?.eval(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    };
    let list = |x: &Value| {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default");
    println!(" Debug Mode: false");
    println!();
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    for pair in v["DriverStatus"].as_array().into_iter().flatten() {
        if let (Some(k), Some(val)) = (pair[0].as_str(), pair[1].as_str()) {
            println!("  {k}: {val}");
        }
    }
    println!(" Logging Driver: {}", s("LoggingDriver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Plugins:");
    println!("  Volume: {}", list(&v["Plugins"]["Volume"]));
    println!("  Network: {}", list(&v["Plugins"]["Network"]));
    println!("  Log: {}", list(&v["Plugins"]["Log"]));
    println!(
        " Swarm: {}",
        v["Swarm"]["LocalNodeState"].as_str().unwrap_or("inactive")
    );
    let runtimes: Vec<String> = v["Runtimes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    println!(" Runtimes: {}", runtimes.join(" "));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Security Options:");
    for o in v["SecurityOptions"].as_array().into_iter().flatten() {
        let o = o.as_str().unwrap_or_default();
        let mut parts = o.split(',');
        let name = parts.next().unwrap_or_default().trim_start_matches("name=");
        println!("  {name}");
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                let mut k = k.to_string();
                if let Some(f) = k.get_mut(0..1) {
                    f.make_ascii_uppercase();
                }
                println!("   {k}: {val}");
            }
        }
    }
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        binary_size(v["MemTotal"].as_f64().unwrap_or(0.0))
    );
    println!(" Name: {}", s("Name"));
    println!(" ID: {}", s("ID"));
    println!(" Docker Root Dir: {}", s("DockerRootDir"));
    println!(" Debug Mode: {}", s("Debug"));
    println!(" Experimental: false");
    println!(" Insecure Registries:");
    for r in v["RegistryConfig"]["InsecureRegistryCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("  {}", r.as_str().unwrap_or_default());
    }
    if let Some(m) = v["RegistryConfig"]["Mirrors"]
        .as_array()
        .filter(|m| !m.is_empty())
    {
        println!(" Registry Mirrors:");
        for r in m {
            println!("  {}", r.as_str().unwrap_or_default());
        }
    }
    println!(" Live Restore Enabled: {}", s("LiveRestoreEnabled"));
    for w in v["Warnings"].as_array().into_iter().flatten() {
        eprintln!("{}", w.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp.
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp.
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (type=, container=, event=, image=, label=).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ({{.Type}}, {{.Action}}, {{.Actor.ID}}, {{json .}}).
    #[arg(long)]
    pub format: Option<String>,
}

/// An event as docker prints it: `TIME TYPE ACTION ID (k=v, …)`.
pub fn event_line(e: &Value) -> String {
    let nanos = e["timeNano"]
        .as_i64()
        .unwrap_or_else(|| e["time"].as_i64().unwrap_or(0) * 1_000_000_000);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos.max(0) as u64);
    let time = humantime::format_rfc3339_nanos(t).to_string();
    let attrs = e["Actor"]["Attributes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut line = format!(
        "{time} {} {} {}",
        e["Type"].as_str().unwrap_or_default(),
        e["Action"].as_str().unwrap_or_default(),
        e["Actor"]["ID"].as_str().unwrap_or_default()
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({attrs})"));
    }
    line
}

/// Run `events`: until `--until`, or for ever.
pub fn events(c: &Client, a: &EventsArgs) -> Result<ExitCode> {
    let r = c.call(
        Request::get("/events")
            .q_opt("since", a.since.as_ref())
            .q_opt("until", a.until.as_ref())
            .filters(&a.filter)?,
    )?;
    let t = a
        .format
        .as_deref()
        .map(|f| Template::parse(f, "{{json .}}"))
        .transpose()?;
    use std::io::Write;
    let mut out = std::io::stdout();
    for e in r.json_stream() {
        let e = e?;
        let line = match &t {
            Some(t) => t.eval(&e)?,
            None => event_line(&e),
        };
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth system df`.
#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    pub verbose: bool,
    /// Format output using a custom template ({{.Type}}, {{.TotalCount}}, {{.Size}}, …).
    #[arg(long)]
    pub format: Option<String>,
}

fn pct(part: u64, whole: u64) -> String {
    match (part * 100).checked_div(whole) {
        None => human(part),
        Some(p) => format!("{} ({p}%)", human(part)),
    }
}

/// Run `system df` through the daemon.
pub fn df(c: &Client, a: &DfArgs) -> Result<ExitCode> {
    let v = c.json(Request::get("/system/df"))?;
    let arr = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let (images, containers, volumes) = (arr("Images"), arr("Containers"), arr("Volumes"));
    let u = |x: &Value| x.as_u64().unwrap_or(0);
    let img_size = v["LayersSize"]
        .as_u64()
        .unwrap_or_else(|| images.iter().map(|i| u(&i["Size"])).sum());
    let img_active: Vec<&Value> = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .collect();
    let used: u64 = img_active.iter().map(|i| u(&i["Size"])).sum();
    let ctr_size: u64 = containers.iter().map(|c| u(&c["SizeRw"])).sum();
    let running = |c: &&Value| c["State"] == "running" || c["State"] == "paused";
    let ctr_active = containers.iter().filter(running).count();
    let ctr_reclaim: u64 = containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| u(&c["SizeRw"]))
        .sum();
    let vsize = |x: &Value| x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as u64;
    let vol_size: u64 = volumes.iter().map(vsize).sum();
    let vol_active = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let vol_reclaim: u64 = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .map(vsize)
        .sum();
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": img_active.len().to_string(),
            "Size": human(img_size), "Reclaimable": pct(img_size.saturating_sub(used), img_size)}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": ctr_active.to_string(),
            "Size": human(ctr_size), "Reclaimable": pct(ctr_reclaim, ctr_size)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": vol_active.to_string(),
            "Size": human(vol_size), "Reclaimable": pct(vol_reclaim, vol_size)}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    if !a.verbose {
        let t = Template::parse(
            a.format.as_deref().unwrap_or(""),
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        )?;
        let h = headers(&[
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ]);
        t.print(&rows, &h)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Images space usage:\n");
    let mut t = vec![
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for i in &images {
        let tags = i["RepoTags"].as_array().cloned().unwrap_or_default();
        let first = tags
            .first()
            .and_then(|t| t.as_str())
            .unwrap_or("<none>:<none>")
            .to_string();
        let (repo, tag) = first.rsplit_once(':').unwrap_or((&first, "<none>"));
        let shared = i["SharedSize"].as_i64().unwrap_or(-1);
        let size = u(&i["Size"]);
        t.push(vec![
            repo.to_string(),
            tag.to_string(),
            super::short_id(i["Id"].as_str().unwrap_or_default()),
            super::secs_ago(i["Created"].as_i64().unwrap_or(0)),
            human(size),
            if shared < 0 {
                "N/A".into()
            } else {
                human(shared as u64)
            },
            if shared < 0 {
                "N/A".into()
            } else {
                human(size.saturating_sub(shared as u64))
            },
            i["Containers"].as_i64().unwrap_or(0).to_string(),
        ]);
    }
    super::print_table(&t);
    println!("\nContainers space usage:\n");
    let mut t = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for c in &containers {
        let cmd = super::container::ellipsis(c["Command"].as_str().unwrap_or_default(), 20);
        t.push(vec![
            super::short_id(c["Id"].as_str().unwrap_or_default()),
            c["Image"].as_str().unwrap_or_default().to_string(),
            super::format::go_quote(&cmd),
            c["Mounts"]
                .as_array()
                .map_or(0, |m| m.iter().filter(|m| m["Type"] == "volume").count())
                .to_string(),
            human(u(&c["SizeRw"])),
            super::secs_ago(c["Created"].as_i64().unwrap_or(0)),
            c["Status"].as_str().unwrap_or_default().to_string(),
            c["Names"][0]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
        ]);
    }
    super::print_table(&t);
    println!("\nLocal Volumes space usage:\n");
    let mut t = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
    for x in &volumes {
        t.push(vec![
            x["Name"].as_str().unwrap_or_default().to_string(),
            x["UsageData"]["RefCount"].as_i64().unwrap_or(0).to_string(),
            human(vsize(x)),
        ]);
    }
    super::print_table(&t);
    println!("\nBuild cache usage: 0B");
    Ok(ExitCode::SUCCESS)
}

/// `berth system prune`.
#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation (asked only when stdin is a terminal).
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes.
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>").
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Run `system prune`.
pub fn prune(c: &Client, a: &SystemPruneArgs) -> Result<ExitCode> {
    let mut what = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container",
    );
    if a.volumes {
        what.push_str("\n  - all anonymous volumes not used by at least one container");
    }
    what.push_str(if a.all {
        "\n  - all images without at least one container associated to them"
    } else {
        "\n  - all dangling images"
    });
    what.push_str("\n  - unused build cache\n");
    if !a.force && !super::confirm(&what) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut total = super::container::prune(
        c,
        &super::container::PruneArgs {
            force: true,
            filter: a.filter.clone(),
        },
        true,
    )?;
    super::network::prune(c, &a.filter)?;
    if a.volumes {
        let f: Vec<String> = a
            .filter
            .iter()
            .filter(|f| f.starts_with("label"))
            .cloned()
            .collect();
        total += super::volume::prune(c, false, &f)?;
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("dangling=false".into());
    }
    let v = c.json(Request::post("/images/prune").filters(&filters)?)?;
    if let Some(d) = v["ImagesDeleted"].as_array().filter(|d| !d.is_empty()) {
        println!("Deleted Images:");
        for x in d {
            if let Some(t) = x["Untagged"].as_str() {
                println!("untagged: {t}");
            }
            if let Some(t) = x["Deleted"].as_str() {
                println!("deleted: {t}");
            }
        }
        println!();
    }
    total += v["SpaceReclaimed"].as_u64().unwrap_or(0);
    println!("Total reclaimed space: {}", human(total));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_print_like_docker() {
        let e = serde_json::json!({"Type": "container", "Action": "start",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}},
            "time": 1, "timeNano": 1_000_000_005i64});
        assert_eq!(
            super::event_line(&e),
            "1970-01-01T00:00:01.000000005Z container start abc (image=busybox, name=web)"
        );
    }
}
