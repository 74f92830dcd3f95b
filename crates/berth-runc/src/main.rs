//! `berth-runc`: berth's OCI runtime with runc's command line, over `berth_runtime::Runtime`.
//!
//! A binary of its own, linking the runtime alone: a runtime process is short-lived and started
//! once per container operation, and its memory is mostly the code it maps (ARCHITECTURE.md,
//! "The runtime's memory"). `berth runtime …` execs this binary.

mod cli;
mod cmd;
mod log;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_runtime::Runtime;
use clap::Parser;

use cli::{Cli, Cmd};
use log::Logger;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Messages name the program as it was called: `berth-runc`, or `berth runtime` when the
    // berth binary passed the call on.
    let program = args
        .first()
        .map(|a| {
            let a = a.to_string_lossy();
            a.rsplit('/').next().unwrap_or(&a).to_string()
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "berth-runc".into());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if cli.version {
        print!("{}", cmd::version::text());
        return ExitCode::SUCCESS;
    }
    let json = cli.global.log_format == "json";
    let mut log = Logger::new(&program, cli.global.log.as_deref(), json, cli.global.debug);
    if cli.global.log_format != "json" && cli.global.log_format != "text" {
        log.error(&format!(
            "invalid --log-format {:?}: text or json",
            cli.global.log_format
        ));
        return ExitCode::from(1);
    }
    log.debug(&format!("command: {:?}", cli.command));
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&log::one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    if let Some(r) = &cli.global.rootless
        && !matches!(r.as_str(), "true" | "false" | "auto")
    {
        bail!("invalid --rootless value {r:?}: true, false or auto");
    }
    let Some(command) = cli.command else {
        bail!("no command given (see --help)");
    };
    let rt = Runtime::new(&cli.global.root).with_systemd_cgroup(cli.global.systemd_cgroup);
    match command {
        Cmd::Create(a) => {
            let id = a.id.clone();
            rt.create(&id, &a.options())?;
        }
        Cmd::Start { id } => rt.start(&id)?,
        Cmd::Run {
            create,
            detach,
            keep,
        } => {
            let id = create.id.clone();
            let run = berth_runtime::RunOptions { detach, keep };
            let code = rt.run(&id, create.options(), run)?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Cmd::State { id } => {
            let st = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        Cmd::Kill { all, id, signal } => rt.kill(&id, cmd::signal::parse(&signal)?, all)?,
        Cmd::Delete { force, id } => rt.delete(&id, force)?,
        Cmd::List { format, quiet } => cmd::list::list(&rt, &format, quiet)?,
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => cmd::list::ps(&rt, &id, &format, &ps_args)?,
        Cmd::Exec(a) => return cmd::exec::exec(&rt, a),
        Cmd::Pause { id } => rt.pause(&id)?,
        Cmd::Resume { id } => rt.resume(&id)?,
        Cmd::Update(a) => cmd::update::update(&rt, a)?,
        Cmd::Events {
            stats,
            interval,
            id,
        } => cmd::events::events(&rt, &id, stats, &interval)?,
        Cmd::Spec { bundle, rootless } => cmd::spec::spec(&bundle, rootless)?,
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&berth_runtime::features::features())?
            );
        }
    }
    Ok(0)
}
