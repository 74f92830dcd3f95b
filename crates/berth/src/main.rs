//! `berth`: the command line. A thin command layer: it parses arguments and calls the libraries.
//!
//! The OCI runtime is a binary of its own, `berth-runc`; `berth runtime …` executes it.

mod cmd;

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
    /// The OCI runtime, with runc's command line (runs the `berth-runc` binary).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Runtime {
        /// Runtime arguments, as for runc.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run the engine: serve the Docker Engine API (dockerd's flags).
    Daemon(cmd::daemon::DaemonArgs),
    /// Pull an image from a registry.
    Pull(cmd::registry::PullArgs),
    /// Push an image to a registry.
    Push(cmd::registry::PushArgs),
    /// List images.
    Images(cmd::image::ImagesArgs),
    /// Log in to a registry (credentials stored like Docker's, in ~/.docker/config.json).
    Login(cmd::registry::LoginArgs),
    /// Log out of a registry.
    Logout(cmd::registry::LogoutArgs),
    /// Give an image another name.
    Tag(cmd::image::TagArgs),
    /// Remove images (untag; delete when the last tag goes).
    Rmi(cmd::image::RmiArgs),
    /// Show the steps an image was made of.
    History(cmd::image::HistoryArgs),
    /// Write images to a tar archive (docker-archive and OCI layout in one).
    Save(cmd::archive::SaveArgs),
    /// Load images from a tar archive (docker-archive or OCI layout, as docker/podman save).
    Load(cmd::archive::LoadArgs),
    /// Make an image from a root file system tarball.
    Import(cmd::archive::ImportArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// The store as a whole.
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// List images.
    #[command(alias = "list")]
    Ls(cmd::image::ImagesArgs),
    /// Pull an image from a registry.
    Pull(cmd::registry::PullArgs),
    /// Push an image to a registry.
    Push(cmd::registry::PushArgs),
    /// Show images' details (JSON, like `docker image inspect`).
    Inspect(cmd::image::InspectArgs),
    /// Show the steps an image was made of.
    History(cmd::image::HistoryArgs),
    /// Give an image another name.
    Tag(cmd::image::TagArgs),
    /// Remove images.
    #[command(alias = "remove")]
    Rm(cmd::image::RmiArgs),
    /// Remove unused images and the layers only they used.
    Prune(cmd::image::PruneArgs),
    /// Write images to a tar archive.
    Save(cmd::archive::SaveArgs),
    /// Load images from a tar archive.
    Load(cmd::archive::LoadArgs),
    /// Make an image from a root file system tarball.
    Import(cmd::archive::ImportArgs),
    /// Write an OCI runtime bundle of an image (config.json + copy-on-write rootfs), which
    /// `berth runtime run --bundle DIR` runs.
    Bundle(cmd::bundle::BundleArgs),
    /// Unmount and delete a bundle made by `image bundle` (also one whose making was
    /// interrupted).
    Unbundle {
        /// The bundle directory.
        dir: std::path::PathBuf,
        /// Even while a container runs in it (its root filesystem and writes are then gone).
        #[arg(short, long)]
        force: bool,
    },
    /// Show what changed in a bundle's root filesystem since it was made (like `docker diff`).
    Diff {
        /// The bundle directory (made by `image bundle`).
        dir: std::path::PathBuf,
    },
    /// Make an image of a bundle's image plus what changed in its root filesystem (like
    /// `docker commit`).
    Commit(cmd::bundle::CommitArgs),
    /// Write a bundle's whole root filesystem as a tar (like `docker export`).
    Export(cmd::bundle::ExportArgs),
}

#[derive(Subcommand, Debug)]
enum SystemCmd {
    /// Disk usage: per image, shared and unique.
    Df,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Runtime { args } => cmd::runtime::exec(args),
        Command::Daemon(a) => cmd::daemon::run(cli.data_root, &a).unwrap_or_else(|e| {
            eprintln!("berth daemon: {}", cmd::one_line(&e));
            ExitCode::FAILURE
        }),
        command => {
            let root = cmd::data_root(cli.data_root);
            let result = match command {
                Command::Pull(a) => cmd::registry::pull(&root, &a),
                Command::Images(a) => cmd::image::images(&root, &a),
                Command::Push(a) => cmd::registry::push(&root, &a),
                Command::Login(a) => cmd::registry::login(&a),
                Command::Logout(a) => cmd::registry::logout(&a),
                Command::Tag(a) | Command::Image(ImageCmd::Tag(a)) => cmd::image::tag(&root, &a),
                Command::Rmi(a) | Command::Image(ImageCmd::Rm(a)) => cmd::image::rmi(&root, &a),
                Command::History(a) | Command::Image(ImageCmd::History(a)) => {
                    cmd::image::history(&root, &a)
                }
                Command::Save(a) | Command::Image(ImageCmd::Save(a)) => {
                    cmd::archive::save(&root, &a)
                }
                Command::Load(a) | Command::Image(ImageCmd::Load(a)) => {
                    cmd::archive::load(&root, &a)
                }
                Command::Import(a) | Command::Image(ImageCmd::Import(a)) => {
                    cmd::archive::import(&root, &a)
                }
                Command::Image(ImageCmd::Ls(a)) => cmd::image::images(&root, &a),
                Command::Image(ImageCmd::Pull(a)) => cmd::registry::pull(&root, &a),
                Command::Image(ImageCmd::Push(a)) => cmd::registry::push(&root, &a),
                Command::Image(ImageCmd::Inspect(a)) => cmd::image::inspect(&root, &a),
                Command::Image(ImageCmd::Prune(a)) => cmd::image::prune(&root, &a),
                Command::System(SystemCmd::Df) => cmd::system::df(&root),
                Command::Image(ImageCmd::Bundle(a)) => cmd::bundle::bundle(&root, &a),
                Command::Image(ImageCmd::Unbundle { dir, force }) => {
                    cmd::bundle::unbundle(&root, &dir, force)
                }
                Command::Image(ImageCmd::Diff { dir }) => cmd::bundle::diff(&root, &dir),
                Command::Image(ImageCmd::Commit(a)) => cmd::bundle::commit(&root, &a),
                Command::Image(ImageCmd::Export(a)) => cmd::bundle::export(&root, &a),
                Command::Runtime { .. } | Command::Daemon(_) => unreachable!("handled above"),
            };
            result.unwrap_or_else(|e| {
                eprintln!("berth: {}", cmd::one_line(&e));
                ExitCode::FAILURE
            })
        }
    }
}
