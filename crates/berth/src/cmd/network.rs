//! `berth network …` through the daemon: create, ls, inspect, rm, prune, connect,
//! disconnect.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, Request, seg};
use super::format::{Template, headers, print_inspect};
use super::one_line;

/// `berth network`.
#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks.
    Prune(PruneArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
}

/// `network create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the network (bridge).
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment.
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 gateway for the subnet.
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container addresses from a sub-range.
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment.
    #[arg(long)]
    pub attachable: bool,
    /// Enable IPv6 networking.
    #[arg(long)]
    pub ipv6: bool,
    /// Set driver specific options (com.docker.network.bridge.name=…, …driver.mtu=…).
    #[arg(short, long = "opt")]
    pub opt: Vec<String>,
    /// Set IPAM driver specific options.
    #[arg(long = "ipam-opt")]
    pub ipam_opt: Vec<String>,
    /// IP Address Management driver.
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Set metadata on a network.
    #[arg(long)]
    pub label: Vec<String>,
    /// The network's name.
    pub name: String,
}

/// `network ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "driver=bridge").
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ({{.ID}}, {{.Name}}, {{.Driver}}, {{.Scope}}, …).
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

/// `network inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics (accepted; the output is the same).
    #[arg(short, long)]
    pub verbose: bool,
    /// Networks.
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// `network rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist.
    #[arg(short, long)]
    pub force: bool,
    /// Networks.
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// `network prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>").
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `network connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container.
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address.
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address.
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add link to another container.
    #[arg(long)]
    pub link: Vec<String>,
    /// Driver options for the network.
    #[arg(long = "driver-opt")]
    pub driver_opt: Vec<String>,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// `network disconnect`.
#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network.
    #[arg(short, long)]
    pub force: bool,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

fn kv_map(items: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for kv in items {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        m.insert(k.to_string(), json!(v));
    }
    Value::Object(m)
}

/// The IPAM configs of `--subnet`/`--gateway`/`--ip-range`, paired as the docker CLI pairs
/// them (each gateway and range to the subnet containing it).
fn ipam_configs(a: &CreateArgs) -> Result<Vec<Value>> {
    if a.subnet.is_empty() {
        if !a.gateway.is_empty() || !a.ip_range.is_empty() {
            bail!("every ip-range or gateway must have a corresponding subnet");
        }
        return Ok(Vec::new());
    }
    let mut out: Vec<Value> = a.subnet.iter().map(|s| json!({"Subnet": s})).collect();
    let within = |net: &str, addr: &str| -> bool {
        let (Ok(n), a) = (net.parse::<ipnet::IpNet>(), addr) else {
            return false;
        };
        a.parse::<std::net::IpAddr>()
            .map(|ip| n.contains(&ip))
            .or_else(|_| a.parse::<ipnet::IpNet>().map(|r| n.contains(&r)))
            .unwrap_or(false)
    };
    for (key, list) in [("Gateway", &a.gateway), ("IPRange", &a.ip_range)] {
        for g in list {
            let slot = out
                .iter_mut()
                .find(|c| within(c["Subnet"].as_str().unwrap_or_default(), g));
            match slot {
                Some(c) if c.get(key).is_none() => c[key] = json!(g),
                Some(_) => bail!(
                    "cannot configure multiple {} for the same subnet",
                    key.to_lowercase()
                ),
                None if a.subnet.len() == 1 => {
                    // The daemon names the problem (gateway outside the subnet).
                    out[0][key] = json!(g);
                }
                None => bail!("no matching subnet for {}: {g}", key.to_lowercase()),
            }
        }
    }
    Ok(out)
}

/// Run a network command.
pub fn run(c: &Client, cmd: &NetworkCmd) -> Result<ExitCode> {
    match cmd {
        NetworkCmd::Create(a) => {
            let body = json!({
                "Name": a.name,
                "Driver": a.driver,
                "Internal": a.internal,
                "Attachable": a.attachable,
                "EnableIPv6": a.ipv6,
                "IPAM": {"Driver": a.ipam_driver, "Config": ipam_configs(a)?, "Options": kv_map(&a.ipam_opt)},
                "Options": kv_map(&a.opt),
                "Labels": kv_map(&a.label),
            });
            let v = c.json(Request::post("/networks/create").json(&body))?;
            println!("{}", v["Id"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Ls(a) => ls(c, a),
        NetworkCmd::Inspect(a) => {
            let mut found = Vec::new();
            let mut failed = false;
            for n in &a.networks {
                match c.json(Request::get(format!("/networks/{}", seg(n)))) {
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
            Ok(exit(failed))
        }
        NetworkCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.networks {
                match c.ok(Request::delete(format!("/networks/{}", seg(n)))) {
                    Ok(()) => println!("{n}"),
                    Err(e) if a.force && super::client::api_status(&e) == Some(404) => {}
                    Err(e) => {
                        eprintln!("{}", one_line(&e));
                        failed = true;
                    }
                }
            }
            Ok(exit(failed))
        }
        NetworkCmd::Prune(a) => {
            if !a.force
                && !super::confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.",
                )
            {
                return Ok(ExitCode::SUCCESS);
            }
            prune(c, &a.filter)?;
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Connect(a) => {
            let mut ep = json!({
                "Aliases": a.alias,
                "Links": a.link,
                "DriverOpts": kv_map(&a.driver_opt),
            });
            if a.ip.is_some() || a.ip6.is_some() {
                ep["IPAMConfig"] = json!({
                    "IPv4Address": a.ip.clone().unwrap_or_default(),
                    "IPv6Address": a.ip6.clone().unwrap_or_default(),
                });
            }
            c.ok(
                Request::post(format!("/networks/{}/connect", seg(&a.network)))
                    .json(&json!({"Container": a.container, "EndpointConfig": ep})),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Disconnect(a) => {
            c.ok(
                Request::post(format!("/networks/{}/disconnect", seg(&a.network)))
                    .json(&json!({"Container": a.container, "Force": a.force})),
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prune networks, printing what went (`system prune` uses it too).
pub fn prune(c: &Client, filters: &[String]) -> Result<()> {
    let v = c.json(Request::post("/networks/prune").filters(filters)?)?;
    let deleted = v["NetworksDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for d in deleted {
            println!("{}", d.as_str().unwrap_or_default());
        }
        println!();
    }
    Ok(())
}

fn ls(c: &Client, a: &LsArgs) -> Result<ExitCode> {
    let v = c.json(Request::get("/networks").filters(&a.filter)?)?;
    let rows: Vec<Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let id = n["Id"].as_str().unwrap_or_default();
            let labels = n["Labels"].as_object().cloned().unwrap_or_default();
            json!({
                "ID": if a.no_trunc { id } else { &id[..12.min(id.len())] },
                "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
                "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
                "CreatedAt": n["Created"],
                "Labels": labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","),
                "__labels": labels,
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let t = Template::parse(
        a.format.as_deref().unwrap_or(""),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    )?;
    let h = headers(&[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("CreatedAt", "CREATED"),
        ("Labels", "LABELS"),
    ]);
    t.print(&rows, &h)?;
    Ok(ExitCode::SUCCESS)
}
