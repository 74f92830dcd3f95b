//! `berth`: the one binary. A thin command layer: it parses arguments and calls the libraries.
//!
//! Invoked through a link named `berth-runc` (or `runc`), it is the OCI runtime with runc's
//! command line, so it can stand wherever a runc binary path is expected.

mod cmd;
mod log;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth: a container engine on open standards.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, long_about = None)]
struct Cli {
    /// Where images and containers are kept [env: BERTH_DATA_ROOT] [default: /var/lib/berth].
    #[arg(long = "data-root", global = true, value_name = "DIR")]
    data_root: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The OCI runtime, with runc's command line (also reachable as `berth-runc`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Runtime {
        /// Runtime arguments, as for runc.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Pull an image from a registry.
    Pull(cmd::image::PullArgs),
    /// Push an image to a registry.
    Push(cmd::image::PushArgs),
    /// List images.
    Images(cmd::image::ImagesArgs),
    /// Log in to a registry (credentials stored like Docker's, in ~/.docker/config.json).
    Login(cmd::image::LoginArgs),
    /// Log out of a registry.
    Logout(cmd::image::LogoutArgs),
}

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv0 == "berth-runc" || argv0 == "runc" {
        args[0] = argv0.into();
        return cmd::runtime::main(args);
    }
    // The runtime's path does not build the engine's command tree: a runtime call is short-
    // lived and its memory is a goal, so it touches as little code as possible (ARCHITECTURE.md,
    // "Code layout").
    if args.get(1).is_some_and(|a| a == "runtime") {
        let mut full = vec![std::ffi::OsString::from("berth runtime")];
        full.extend(args.drain(2..));
        return cmd::runtime::main(full);
    }
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Runtime { args } => {
            let mut full = vec![std::ffi::OsString::from("berth runtime")];
            full.extend(args);
            cmd::runtime::main(full)
        }
        command => {
            let root = cmd::image::data_root(cli.data_root);
            let result = match command {
                Command::Pull(a) => cmd::image::pull(&root, &a),
                Command::Images(a) => cmd::image::images(&root, &a),
                Command::Push(a) => cmd::image::push(&root, &a),
                Command::Login(a) => cmd::image::login(&a),
                Command::Logout(a) => cmd::image::logout(&a),
                Command::Runtime { .. } => unreachable!("handled above"),
            };
            result.unwrap_or_else(|e| {
                eprintln!("berth: {e:#}");
                ExitCode::FAILURE
            })
        }
    }
}
