//! Container commands through the daemon: start, stop, restart, kill, rm, ps, logs, exec,
//! attach, inspect, wait, rename, pause, unpause, container prune.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};

use super::attach::{self, Outcome, Session};
use super::client::{Client, Request, api_status, seg};
use super::format::{Template, go_quote, headers, print_inspect};
use super::run::{exit_code, wait_request, wait_result};
use super::{go_time, human, human_prec, one_line, secs_ago, short_id};

/// Apply `f` to each container, printing each name that worked and each error; the status is
/// 1 when one failed (docker's behaviour for stop, rm, kill, …).
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> ExitCode {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("{}", one_line(&e));
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `berth start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN.
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `start`.
pub fn start(c: &Client, a: &StartArgs) -> Result<ExitCode> {
    if !a.attach && !a.interactive {
        return Ok(each(&a.containers, |n| {
            c.ok(Request::post(format!("/containers/{}/start", seg(n))))
        }));
    }
    if a.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    let name = &a.containers[0];
    let info = c.json(Request::get(format!("/containers/{}/json", seg(name))))?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = a.interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if tty && stdin && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let keys = attach::parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    let h = c.hijack(
        Request::post(format!("/containers/{id}/attach"))
            .q("stream", 1)
            .q("stdin", u8::from(stdin))
            .q("stdout", 1)
            .q("stderr", 1)
            // The daemon watches a terminal's input for them too: the same keys.
            .q(
                "detachKeys",
                a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"),
            ),
    )?;
    let autoremove = info["HostConfig"]["AutoRemove"].as_bool().unwrap_or(false);
    let wait = wait_request(c, &id, autoremove)?;
    let sess = Session {
        client: c,
        tty,
        stdin,
        detach_keys: Some(keys),
        sig_proxy: (!tty).then(|| id.clone()),
        resize_path: tty.then(|| format!("/containers/{id}/resize")),
    };
    let outcome = attach::session(h, &sess, || {
        c.ok(Request::post(format!("/containers/{id}/start")))
    })?;
    if outcome == Outcome::Detached {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(exit_code(wait_result(wait)?))
}

/// `berth stop` and `berth restart`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container.
    #[arg(short, long)]
    pub signal: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `stop` (or `restart`).
pub fn stop(c: &Client, a: &StopArgs, op: &str) -> Result<ExitCode> {
    Ok(each(&a.containers, |n| {
        c.ok(Request::post(format!("/containers/{}/{op}", seg(n)))
            .q_opt("t", a.time)
            .q_opt("signal", a.signal.as_ref()))
    }))
}

/// `berth kill`.
#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short, long)]
    pub signal: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `kill`.
pub fn kill(c: &Client, a: &KillArgs) -> Result<ExitCode> {
    Ok(each(&a.containers, |n| {
        c.ok(Request::post(format!("/containers/{}/kill", seg(n)))
            .q_opt("signal", a.signal.as_ref()))
    }))
}

/// `berth rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove the specified link (berth has no links).
    #[arg(short, long)]
    pub link: bool,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rm`.
pub fn rm(c: &Client, a: &RmArgs) -> Result<ExitCode> {
    if a.link {
        bail!("--link: berth has no container links");
    }
    Ok(each(&a.containers, |n| {
        c.ok(Request::delete(format!("/containers/{}", seg(n)))
            .q_if(a.force, "force", 1)
            .q_if(a.volumes, "v", 1))
    }))
}

/// Names of containers (`pause`, `unpause`, `wait`).
#[derive(Args, Debug)]
pub struct Containers {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `pause` or `unpause`.
pub fn pause(c: &Client, a: &Containers, op: &str) -> Result<ExitCode> {
    Ok(each(&a.containers, |n| {
        c.ok(Request::post(format!("/containers/{}/{op}", seg(n))))
    }))
}

/// Run `wait`: each container's exit code.
pub fn wait(c: &Client, a: &Containers) -> Result<ExitCode> {
    let mut failed = false;
    for n in &a.containers {
        let r = c
            .call(Request::post(format!("/containers/{}/wait", seg(n))))
            .and_then(|r| r.json_stream().next().transpose());
        match r {
            Ok(Some(v)) => println!("{}", v["StatusCode"].as_i64().unwrap_or(-1)),
            Ok(None) => {
                eprintln!("the daemon ended the wait of {n} without a status");
                failed = true;
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

/// `berth rename`.
#[derive(Args, Debug)]
pub struct RenameArgs {
    /// The container.
    pub container: String,
    /// Its new name.
    pub new_name: String,
}

/// Run `rename`.
pub fn rename(c: &Client, a: &RenameArgs) -> Result<ExitCode> {
    if a.new_name.trim().is_empty() {
        bail!("Error: Neither old nor new names may be empty");
    }
    c.ok(
        Request::post(format!("/containers/{}/rename", seg(&a.container))).q("name", &a.new_name),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `berth ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long = "last", allow_hyphen_values = true)]
    pub last: Option<i64>,
    /// Show the latest created container (includes all states).
    #[arg(short, long)]
    pub latest: bool,
    /// Display total file sizes.
    #[arg(short, long)]
    pub size: bool,
    /// Filter output based on conditions provided (name=, status=, label=, ancestor=, …).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-like
    /// template ({{.ID}}, {{.Names}}, {{.Status}}, {{.Image}}, {{.Label "key"}}, …).
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

/// Docker's `formatter.Ellipsis`.
pub fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
}

/// A `ps` row: the fields docker's `--format` knows.
fn ps_row(c: &Value, trunc: bool) -> Value {
    let id = c["Id"].as_str().unwrap_or_default();
    let mut image = c["Image"].as_str().unwrap_or_default().to_string();
    if trunc && image.starts_with("sha256:") {
        image = short_id(&image);
    }
    let mut command = c["Command"].as_str().unwrap_or_default().to_string();
    if trunc {
        command = ellipsis(&command, 20);
    }
    let created = c["Created"].as_i64().unwrap_or(0);
    let names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let labels = c["Labels"].as_object().cloned().unwrap_or_default();
    let label_str = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",");
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let n = m["Name"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or(m["Source"].as_str())
                .unwrap_or_default();
            if trunc {
                ellipsis(n, 15)
            } else {
                n.to_string()
            }
        })
        .collect();
    let volumes = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Type"] == "volume")
        .count();
    let networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    // Docker's: three significant digits, the virtual size when known.
    let (rw, root) = (
        c["SizeRw"].as_u64().unwrap_or(0) as f64,
        c["SizeRootFs"].as_u64().unwrap_or(0) as f64,
    );
    let size = if root > 0.0 {
        format!("{} (virtual {})", human_prec(rw, 3), human_prec(root, 3))
    } else {
        human_prec(rw, 3)
    };
    let ports = c["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let (pp, t) = (
                p["PrivatePort"].as_u64().unwrap_or(0),
                p["Type"].as_str().unwrap_or("tcp"),
            );
            match (p["IP"].as_str(), p["PublicPort"].as_u64()) {
                (Some(ip), Some(pub_)) => format!("{ip}:{pub_}->{pp}/{t}"),
                _ => format!("{pp}/{t}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    json!({
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Image": image,
        "Command": go_quote(&command),
        "CreatedAt": go_time(created),
        "RunningFor": secs_ago(created),
        "Ports": ports,
        "State": c["State"],
        "Status": c["Status"],
        "Size": size,
        "Names": names.join(","),
        "Labels": label_str,
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": volumes.to_string(),
        "__labels": labels,
    })
}

/// Run `ps`.
pub fn ps(c: &Client, a: &PsArgs) -> Result<ExitCode> {
    let limit = if a.latest {
        Some(1)
    } else {
        a.last.filter(|n| *n > 0)
    };
    let list = c.json(
        Request::get("/containers/json")
            .q_if(a.all || limit.is_some(), "all", 1)
            .q_opt("limit", limit)
            .q_if(a.size, "size", 1)
            .filters(&a.filter)?,
    )?;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| ps_row(r, !a.no_trunc))
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let t = Template::parse(a.format.as_deref().unwrap_or(""), default)?;
    let h = headers(&[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
    ]);
    t.print(&rows, &h)?;
    Ok(ExitCode::SUCCESS)
}

/// `berth logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m").
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m").
    #[arg(long)]
    pub until: Option<String>,
    /// Number of lines to show from the end of the logs.
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show extra details provided to logs.
    #[arg(long)]
    pub details: bool,
    /// The container.
    pub container: String,
}

/// Run `logs`.
pub fn logs(c: &Client, a: &LogsArgs) -> Result<ExitCode> {
    let r = c.call(
        Request::get(format!("/containers/{}/logs", seg(&a.container)))
            .q("stdout", 1)
            .q("stderr", 1)
            .q_if(a.follow, "follow", 1)
            .q_opt("since", a.since.as_ref())
            .q_opt("until", a.until.as_ref())
            .q("tail", &a.tail)
            .q_if(a.timestamps, "timestamps", 1)
            .q_if(a.details, "details", 1),
    )?;
    let raw = r
        .header("Content-Type")
        .is_some_and(|t| t.contains("raw-stream"));
    match super::client::copy_output(r.body, raw) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::Error::new(e).context("reading the logs")),
    }
}

/// `berth exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Detached mode: run command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]").
    #[arg(short, long)]
    pub user: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    pub privileged: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER COMMAND [ARG...]"
    )]
    pub args: Vec<String>,
}

/// Run `exec`.
pub fn exec(c: &Client, a: &ExecArgs) -> Result<ExitCode> {
    let (container, cmd) = a
        .args
        .split_first()
        .ok_or_else(|| anyhow!("exec requires at least 2 arguments"))?;
    if cmd.is_empty() {
        bail!("exec requires at least 2 arguments");
    }
    if a.tty && a.interactive && !a.detach && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow!("reading {f}: {e}"))?;
        env.extend(
            text.lines()
                .map(str::trim_start)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    env.extend(a.env.iter().cloned());
    let env: Vec<String> = env
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    let stdin = a.interactive && !a.detach;
    let size = if a.tty { attach::terminal_size() } else { None };
    let mut body = json!({
        "AttachStdin": stdin,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Privileged": a.privileged,
        "Cmd": cmd,
    });
    if !env.is_empty() {
        body["Env"] = json!(env);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(k) = &a.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    if let Some((h, w)) = size {
        body["ConsoleSize"] = json!([h, w]);
    }
    let v = c.json(Request::post(format!("/containers/{}/exec", seg(container))).json(&body))?;
    let exec_id = v["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon's answer has no exec ID"))?
        .to_string();
    if a.detach {
        c.ok(Request::post(format!("/exec/{exec_id}/start"))
            .json(&json!({"Detach": true, "Tty": a.tty})))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut start = json!({"Detach": false, "Tty": a.tty});
    if let Some((h, w)) = size {
        start["ConsoleSize"] = json!([h, w]);
    }
    let keys = attach::parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    let h = c.hijack(Request::post(format!("/exec/{exec_id}/start")).json(&start))?;
    let sess = Session {
        client: c,
        tty: a.tty,
        stdin,
        detach_keys: Some(keys),
        sig_proxy: None,
        resize_path: a.tty.then(|| format!("/exec/{exec_id}/resize")),
    };
    if attach::session(h, &sess, || Ok(()))? == Outcome::Detached {
        return Ok(ExitCode::SUCCESS);
    }
    // The exit code is recorded as the stream ends: a moment, at most.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = c.json(Request::get(format!("/exec/{exec_id}/json")))?;
        if let Some(code) = v["ExitCode"].as_i64() {
            if !v["Running"].as_bool().unwrap_or(false) {
                return Ok(exit_code(code));
            }
        }
        if Instant::now() > deadline {
            bail!("the daemon did not record the exit code of exec {exec_id}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `berth attach`.
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process.
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// The container.
    pub container: String,
}

/// Run `attach`.
pub fn attach(c: &Client, a: &AttachArgs) -> Result<ExitCode> {
    let info = c.json(Request::get(format!(
        "/containers/{}/json",
        seg(&a.container)
    )))?;
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if info["State"]["Paused"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if tty && stdin && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let keys = attach::parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    let wait = c.call(Request::post(format!("/containers/{id}/wait")))?;
    let h = c.hijack(
        Request::post(format!("/containers/{id}/attach"))
            .q("stream", 1)
            .q("stdin", u8::from(stdin))
            .q("stdout", 1)
            .q("stderr", 1)
            // The daemon watches a terminal's input for them too: the same keys.
            .q(
                "detachKeys",
                a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"),
            ),
    )?;
    let sess = Session {
        client: c,
        tty,
        stdin,
        detach_keys: Some(keys),
        sig_proxy: (a.sig_proxy && !tty).then(|| id.clone()),
        resize_path: tty.then(|| format!("/containers/{id}/resize")),
    };
    if attach::session(h, &sess, || Ok(()))? == Outcome::Detached {
        eprintln!("read escape sequence");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(exit_code(wait_result(wait)?))
}

/// `berth inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template: 'json', or a Go-like template
    /// ({{.State.Status}}, {{.Config.Image}}, {{json .Config}}, …).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container.
    #[arg(short, long)]
    pub size: bool,
    /// Return JSON for specified type (container, image, volume, network).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Names or IDs.
    #[arg(required = true)]
    pub names: Vec<String>,
}

fn inspect_one(c: &Client, kind: &str, name: &str, size: bool) -> Result<Value> {
    let n = seg(name);
    match kind {
        "container" => c.json(Request::get(format!("/containers/{n}/json")).q_if(size, "size", 1)),
        "image" => c.json(Request::get(format!("/images/{n}/json"))),
        "volume" => c.json(Request::get(format!("/volumes/{n}"))),
        "network" => c.json(Request::get(format!("/networks/{n}"))),
        other => bail!("\"{other}\" is not a valid value for --type"),
    }
}

/// Run `inspect` (`container inspect` is `kind` "container").
pub fn inspect(c: &Client, a: &InspectArgs, kind: Option<&str>) -> Result<ExitCode> {
    let kind = kind.or(a.kind.as_deref());
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &a.names {
        let r = match kind {
            Some(k) => inspect_one(c, k, name, a.size),
            None => {
                let mut r = Err(anyhow!("Error: No such object: {name}"));
                for k in ["container", "image", "volume", "network"] {
                    match inspect_one(c, k, name, a.size) {
                        Ok(v) => {
                            r = Ok(v);
                            break;
                        }
                        Err(e) if api_status(&e) == Some(404) => {}
                        // Not served (yet) by the daemon: not this kind.
                        Err(e) if matches!(api_status(&e), Some(501)) => {}
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                r
            }
        };
        match r {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e),
        }
    }
    if !found.is_empty() || a.format.is_none() {
        print_inspect(&found, a.format.as_deref())?;
    }
    for e in &errors {
        eprintln!("{}", one_line(e));
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `berth container prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation (asked only when stdin is a terminal).
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>").
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Run `container prune`; the space reclaimed.
pub fn prune(c: &Client, a: &PruneArgs, quiet_total: bool) -> Result<u64> {
    if !a.force && !super::confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    let v = c.json(Request::post("/containers/prune").filters(&a.filter)?)?;
    let deleted = v["ContainersDeleted"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for d in deleted {
            println!("{}", d.as_str().unwrap_or_default());
        }
        println!();
    }
    let reclaimed = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    if !quiet_total {
        println!("Total reclaimed space: {}", human(reclaimed));
    }
    Ok(reclaimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_are_dockers() {
        let c = json!({
            "Id": "0123456789abcdef0123", "Names": ["/web"], "Image": "busybox",
            "Command": "sh -c 'while true; do sleep 1; done'", "Created": 0,
            "State": "running", "Status": "Up 3 seconds", "Labels": {"a": "1"},
            "Mounts": [{"Type": "volume", "Name": "data"}], "SizeRw": 12, "SizeRootFs": 4_266_120,
        });
        let r = ps_row(&c, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Labels"], "a=1");
        assert_eq!(r["Size"], "12B (virtual 4.27MB)");
        assert_eq!(r["LocalVolumes"], "1");
        let t = Template::parse("{{.Names}} {{.Label \"a\"}}", "").unwrap();
        assert_eq!(t.eval(&r).unwrap(), "web 1");
        let j = Template::parse("{{json .}}", "").unwrap().eval(&r).unwrap();
        assert!(
            !j.contains("__labels") && j.contains("\"Names\":\"web\""),
            "{j}"
        );
        assert_eq!(ellipsis("abc", 3), "abc");
        assert_eq!(ellipsis("abcd", 3), "ab…");
    }
}
