//! `berth volume …` through the daemon: create, ls, inspect, rm, prune.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, Request, seg};
use super::format::{Template, headers, print_inspect};
use super::{human, one_line};

/// `berth volume`.
#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes.
    Prune(PruneArgs),
}

/// `volume create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name.
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume.
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options (type=tmpfs, device=…, o=…).
    #[arg(short, long = "opt")]
    pub opt: Vec<String>,
    /// The volume's name (default: a random one).
    pub name: Option<String>,
}

/// `volume ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true").
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ({{.Name}}, {{.Driver}}, {{.Mountpoint}}, …).
    #[arg(long)]
    pub format: Option<String>,
}

/// `volume inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes.
    #[arg(short, long)]
    pub force: bool,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation (asked only when stdin is a terminal).
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>").
    #[arg(long)]
    pub filter: Vec<String>,
}

fn kv_map(items: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for kv in items {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        m.insert(k.to_string(), json!(v));
    }
    Value::Object(m)
}

/// Run a volume command.
pub fn run(c: &Client, cmd: &VolumeCmd) -> Result<ExitCode> {
    match cmd {
        VolumeCmd::Create(a) => {
            let mut body = json!({
                "Driver": a.driver,
                "DriverOpts": kv_map(&a.opt),
                "Labels": kv_map(&a.label),
            });
            if let Some(n) = &a.name {
                body["Name"] = json!(n);
            }
            let v = c.json(Request::post("/volumes/create").json(&body))?;
            println!("{}", v["Name"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        VolumeCmd::Ls(a) => ls(c, a),
        VolumeCmd::Inspect(a) => {
            let mut found = Vec::new();
            let mut failed = false;
            for n in &a.volumes {
                match c.json(Request::get(format!("/volumes/{}", seg(n)))) {
                    Ok(v) => found.push(v),
                    Err(e) => {
                        eprintln!("{}", one_line(&e));
                        failed = true;
                    }
                }
            }
            if !found.is_empty() || a.format.is_none() {
                print_inspect(&found, a.format.as_deref())?;
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        VolumeCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.volumes {
                match c
                    .ok(Request::delete(format!("/volumes/{}", seg(n))).q_if(a.force, "force", 1))
                {
                    Ok(()) => println!("{n}"),
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
        VolumeCmd::Prune(a) => {
            let what = if a.all {
                "WARNING! This will remove all local volumes not used by at least one container."
            } else {
                "WARNING! This will remove anonymous local volumes not used by at least one container."
            };
            if !a.force && !super::confirm(what) {
                return Ok(ExitCode::SUCCESS);
            }
            let r = prune(c, a.all, &a.filter)?;
            println!("Total reclaimed space: {}", human(r));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prune volumes (printing what went); the space reclaimed.
pub fn prune(c: &Client, all: bool, filters: &[String]) -> Result<u64> {
    let mut f = filters.to_vec();
    if all {
        f.push("all=true".into());
    }
    let v = c.json(Request::post("/volumes/prune").filters(&f)?)?;
    let deleted = v["VolumesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for d in deleted {
            println!("{}", d.as_str().unwrap_or_default());
        }
        println!();
    }
    Ok(v["SpaceReclaimed"].as_u64().unwrap_or(0))
}

fn ls(c: &Client, a: &LsArgs) -> Result<ExitCode> {
    let v = c.json(Request::get("/volumes").filters(&a.filter)?)?;
    for w in v["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let rows: Vec<Value> = v["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|vol| {
            let labels = vol["Labels"].as_object().cloned().unwrap_or_default();
            let size = vol["UsageData"]["Size"].as_i64();
            json!({
                "Name": vol["Name"], "Driver": vol["Driver"], "Scope": vol["Scope"],
                "Mountpoint": vol["Mountpoint"], "CreatedAt": vol["CreatedAt"],
                "Labels": labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","),
                "Links": vol["UsageData"]["RefCount"].as_i64().map_or("N/A".into(), |n| n.to_string()),
                "Size": size.filter(|s| *s >= 0).map_or("N/A".into(), |s| human(s as u64)),
                "__labels": labels,
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["Name"].as_str().unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let t = Template::parse(
        a.format.as_deref().unwrap_or(""),
        "table {{.Driver}}\t{{.Name}}",
    )?;
    let h = headers(&[
        ("Name", "VOLUME NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("CreatedAt", "CREATED"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
    ]);
    t.print(&rows, &h)?;
    Ok(ExitCode::SUCCESS)
}
