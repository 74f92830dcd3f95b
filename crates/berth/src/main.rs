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
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Runtime { args } => {
            let mut full = vec![std::ffi::OsString::from("berth runtime")];
            full.extend(args);
            cmd::runtime::main(full)
        }
    }
}
