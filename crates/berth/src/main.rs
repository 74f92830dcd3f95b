//! `berth`: the command line. A thin command layer: it parses arguments and calls the libraries.
//!
//! The OCI runtime is a binary of its own, `berth-runc`; `berth runtime …` executes it.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use clap::{Parser, Subcommand};

/// berth: a container engine on open standards.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, long_about = None)]
struct Cli {
    /// Where images and containers are kept [env: BERTH_DATA_ROOT] [default: /var/lib/berth].
    #[arg(long = "data-root", global = true, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// The daemon to speak to [env: BERTH_HOST] [default: unix:///run/berth/berth.sock].
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    host: Option<String>,
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
    /// Create and run a new container from an image.
    #[command(disable_help_flag = true)]
    Run(cmd::run::RunArgs),
    /// Create a new container.
    #[command(disable_help_flag = true)]
    Create(cmd::run::CreateArgs),
    /// Start one or more stopped containers.
    Start(cmd::container::StartArgs),
    /// Stop one or more running containers.
    Stop(cmd::container::StopArgs),
    /// Restart one or more containers.
    Restart(cmd::container::StopArgs),
    /// Kill one or more running containers.
    Kill(cmd::container::KillArgs),
    /// Remove one or more containers.
    Rm(cmd::container::RmArgs),
    /// List containers.
    Ps(cmd::container::PsArgs),
    /// Fetch the logs of a container.
    Logs(cmd::container::LogsArgs),
    /// Execute a command in a running container.
    Exec(cmd::container::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(cmd::container::AttachArgs),
    /// Return low-level information on containers, images, volumes or networks.
    Inspect(cmd::container::InspectArgs),
    /// Display the running processes of a container.
    Top(cmd::ops::TopArgs),
    /// Display a live stream of container(s) resource usage statistics.
    Stats(cmd::ops::StatsArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(cmd::cp::CpArgs),
    /// Pause all processes within one or more containers.
    Pause(cmd::container::Containers),
    /// Unpause all processes within one or more containers.
    Unpause(cmd::container::Containers),
    /// Update configuration of one or more containers.
    Update(cmd::ops::UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(cmd::container::Containers),
    /// Rename a container.
    Rename(cmd::container::RenameArgs),
    /// List port mappings or a specific mapping for the container.
    Port(cmd::ops::PortArgs),
    /// Export a container's filesystem as a tar archive.
    Export(cmd::ops::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(cmd::ops::DiffArgs),
    /// Create a new image from a container's changes.
    Commit(cmd::ops::CommitArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(cmd::volume::VolumeCmd),
    /// Manage networks.
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Show the berth version information.
    Version(cmd::info::VersionArgs),
    /// Display system-wide information.
    Info(cmd::info::InfoArgs),
    /// Get real time events from the server.
    Events(cmd::info::EventsArgs),
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
    /// Build an image from a Dockerfile.
    Build(cmd::build::BuildArgs),
    /// Manage builds.
    #[command(subcommand)]
    Builder(cmd::build::BuilderCmd),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage berth: disk usage, prune, events, info.
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(Subcommand, Debug)]
enum ContainerCmd {
    /// Create and run a new container from an image.
    #[command(disable_help_flag = true)]
    Run(cmd::run::RunArgs),
    /// Create a new container.
    #[command(disable_help_flag = true)]
    Create(cmd::run::CreateArgs),
    /// Start one or more stopped containers.
    Start(cmd::container::StartArgs),
    /// Stop one or more running containers.
    Stop(cmd::container::StopArgs),
    /// Restart one or more containers.
    Restart(cmd::container::StopArgs),
    /// Kill one or more running containers.
    Kill(cmd::container::KillArgs),
    /// Remove one or more containers.
    #[command(alias = "remove")]
    Rm(cmd::container::RmArgs),
    /// List containers.
    #[command(aliases = ["ps", "list"])]
    Ls(cmd::container::PsArgs),
    /// Fetch the logs of a container.
    Logs(cmd::container::LogsArgs),
    /// Execute a command in a running container.
    Exec(cmd::container::ExecArgs),
    /// Attach to a running container.
    Attach(cmd::container::AttachArgs),
    /// Display detailed information on one or more containers.
    Inspect(cmd::container::InspectArgs),
    /// Display the running processes of a container.
    Top(cmd::ops::TopArgs),
    /// Display a live stream of container(s) resource usage statistics.
    Stats(cmd::ops::StatsArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(cmd::cp::CpArgs),
    /// Pause all processes within one or more containers.
    Pause(cmd::container::Containers),
    /// Unpause all processes within one or more containers.
    Unpause(cmd::container::Containers),
    /// Update configuration of one or more containers.
    Update(cmd::ops::UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(cmd::container::Containers),
    /// Rename a container.
    Rename(cmd::container::RenameArgs),
    /// List port mappings or a specific mapping for the container.
    Port(cmd::ops::PortArgs),
    /// Export a container's filesystem as a tar archive.
    Export(cmd::ops::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(cmd::ops::DiffArgs),
    /// Create a new image from a container's changes.
    Commit(cmd::ops::CommitArgs),
    /// Remove all stopped containers.
    Prune(cmd::container::PruneArgs),
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// Build an image from a Dockerfile.
    Build(cmd::build::BuildArgs),
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
    /// Show disk usage.
    Df(cmd::info::DfArgs),
    /// Remove unused data (stopped containers, dangling images, with --volumes anonymous
    /// volumes).
    Prune(cmd::info::SystemPruneArgs),
    /// Get real time events from the server.
    Events(cmd::info::EventsArgs),
    /// Display system-wide information.
    Info(cmd::info::InfoArgs),
}

/// The daemon's address: `-H`, else `BERTH_HOST`, else the default socket.
fn host(cli: &Cli) -> String {
    cli.host
        .clone()
        .or_else(|| std::env::var("BERTH_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| cmd::client::DEFAULT_HOST.to_string())
}

/// What a daemon started on demand is given: the data root, and `BERTH_EXEC_ROOT` and
/// `BERTH_CONFIG_FILE` from the environment.
fn autostart(cli: &Cli) -> cmd::client::Autostart {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    cmd::client::Autostart {
        data_root: cli.data_root.clone(),
        exec_root: env("BERTH_EXEC_ROOT"),
        config_file: env("BERTH_CONFIG_FILE"),
    }
}

/// The client of the daemon (started on demand, as root).
fn client(cli: &Cli) -> Result<cmd::client::Client> {
    cmd::client::Client::new(&host(cli), Some(autostart(cli)))
}

/// The client an image command uses, or None for the direct path (the store opened here).
/// A data root named explicitly (`--data-root`, `BERTH_DATA_ROOT`) is a store to open
/// directly, unless the daemon answering on the host serves that very data root. Otherwise
/// the daemon serves the store (started on demand as root; without root and without a
/// daemon, the direct path).
fn image_client(cli: &Cli) -> Result<Option<cmd::client::Client>> {
    let explicit = cli
        .data_root
        .clone()
        .or_else(|| std::env::var_os("BERTH_DATA_ROOT").map(PathBuf::from));
    match explicit {
        Some(root) => {
            let c = cmd::client::Client::new(&host(cli), None)?;
            if !c.ping() {
                return Ok(None);
            }
            let served = c
                .json(cmd::client::Request::get("/info"))
                .ok()
                .and_then(|v| v["DockerRootDir"].as_str().map(PathBuf::from));
            let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
            Ok(served.filter(|s| canon(s) == canon(&root)).map(|_| c))
        }
        None => {
            let c = client(cli)?;
            if rustix::process::geteuid().is_root() || c.ping() {
                Ok(Some(c))
            } else {
                Ok(None)
            }
        }
    }
}

/// A command that speaks to the daemon.
fn run_client(cli: &Cli, command: Command) -> Result<ExitCode> {
    use cmd::{container as ct, info, ops};
    let c = client(cli)?;
    match command {
        Command::Run(a) => cmd::run::run(&c, &a),
        Command::Create(a) => cmd::run::create(&c, &a),
        Command::Start(a) => ct::start(&c, &a),
        Command::Stop(a) => ct::stop(&c, &a, "stop"),
        Command::Restart(a) => ct::stop(&c, &a, "restart"),
        Command::Kill(a) => ct::kill(&c, &a),
        Command::Rm(a) => ct::rm(&c, &a),
        Command::Ps(a) => ct::ps(&c, &a),
        Command::Logs(a) => ct::logs(&c, &a),
        Command::Exec(a) => ct::exec(&c, &a),
        Command::Attach(a) => ct::attach(&c, &a),
        Command::Inspect(a) => ct::inspect(&c, &a, None),
        Command::Top(a) => ops::top(&c, &a),
        Command::Stats(a) => ops::stats(&c, &a),
        Command::Cp(a) => cmd::cp::cp(&c, &a),
        Command::Pause(a) => ct::pause(&c, &a, "pause"),
        Command::Unpause(a) => ct::pause(&c, &a, "unpause"),
        Command::Update(a) => ops::update(&c, &a),
        Command::Wait(a) => ct::wait(&c, &a),
        Command::Rename(a) => ct::rename(&c, &a),
        Command::Port(a) => ops::port(&c, &a),
        Command::Export(a) => ops::export(&c, &a),
        Command::Diff(a) => ops::diff(&c, &a),
        Command::Commit(a) => ops::commit(&c, &a),
        Command::Volume(v) => cmd::volume::run(&c, &v),
        Command::Network(n) => cmd::network::run(&c, &n),
        Command::Version(a) => info::version(&c, &a),
        Command::Info(a) | Command::System(SystemCmd::Info(a)) => info::info(&c, &a),
        Command::Events(a) | Command::System(SystemCmd::Events(a)) => info::events(&c, &a),
        Command::System(SystemCmd::Prune(a)) => info::prune(&c, &a),
        Command::Build(a)
        | Command::Image(ImageCmd::Build(a))
        | Command::Builder(cmd::build::BuilderCmd::Build(a)) => cmd::build::build(&c, &a),
        Command::Builder(cmd::build::BuilderCmd::Prune(a)) => cmd::build::prune(&c, &a),
        Command::Container(ContainerCmd::Inspect(a)) => ct::inspect(&c, &a, Some("container")),
        Command::Container(ContainerCmd::Prune(a)) => {
            ct::prune(&c, &a, false).map(|_| ExitCode::SUCCESS)
        }
        other => unreachable!("not a client command: {other:?}"),
    }
}

/// `berth container X` is `berth X`.
fn flatten(c: ContainerCmd) -> Command {
    match c {
        ContainerCmd::Run(a) => Command::Run(a),
        ContainerCmd::Create(a) => Command::Create(a),
        ContainerCmd::Start(a) => Command::Start(a),
        ContainerCmd::Stop(a) => Command::Stop(a),
        ContainerCmd::Restart(a) => Command::Restart(a),
        ContainerCmd::Kill(a) => Command::Kill(a),
        ContainerCmd::Rm(a) => Command::Rm(a),
        ContainerCmd::Ls(a) => Command::Ps(a),
        ContainerCmd::Logs(a) => Command::Logs(a),
        ContainerCmd::Exec(a) => Command::Exec(a),
        ContainerCmd::Attach(a) => Command::Attach(a),
        ContainerCmd::Top(a) => Command::Top(a),
        ContainerCmd::Stats(a) => Command::Stats(a),
        ContainerCmd::Cp(a) => Command::Cp(a),
        ContainerCmd::Pause(a) => Command::Pause(a),
        ContainerCmd::Unpause(a) => Command::Unpause(a),
        ContainerCmd::Update(a) => Command::Update(a),
        ContainerCmd::Wait(a) => Command::Wait(a),
        ContainerCmd::Rename(a) => Command::Rename(a),
        ContainerCmd::Port(a) => Command::Port(a),
        ContainerCmd::Export(a) => Command::Export(a),
        ContainerCmd::Diff(a) => Command::Diff(a),
        ContainerCmd::Commit(a) => Command::Commit(a),
        c @ (ContainerCmd::Inspect(_) | ContainerCmd::Prune(_)) => Command::Container(c),
    }
}

/// An image command: through the daemon when it serves the store, else directly.
fn run_image(cli: &Cli, command: Command) -> ExitCode {
    use cmd::images_api as api;
    let c = match image_client(cli) {
        Ok(c) => c,
        Err(e) => return report(Err(e), "", 1),
    };
    if let Some(c) = c {
        let r = match command {
            Command::Pull(a) | Command::Image(ImageCmd::Pull(a)) => api::pull(&c, &a),
            Command::Push(a) | Command::Image(ImageCmd::Push(a)) => api::push(&c, &a),
            Command::Images(a) | Command::Image(ImageCmd::Ls(a)) => api::images(&c, &a),
            Command::Tag(a) | Command::Image(ImageCmd::Tag(a)) => api::tag(&c, &a),
            Command::Rmi(a) | Command::Image(ImageCmd::Rm(a)) => api::rmi(&c, &a),
            Command::History(a) | Command::Image(ImageCmd::History(a)) => api::history(&c, &a),
            Command::Save(a) | Command::Image(ImageCmd::Save(a)) => api::save(&c, &a),
            Command::Load(a) | Command::Image(ImageCmd::Load(a)) => api::load(&c, &a),
            Command::Import(a) | Command::Image(ImageCmd::Import(a)) => api::import(&c, &a),
            Command::Image(ImageCmd::Inspect(a)) => api::inspect(&c, &a),
            Command::Image(ImageCmd::Prune(a)) => api::prune(&c, &a),
            Command::System(SystemCmd::Df(a)) => cmd::info::df(&c, &a),
            other => unreachable!("not an image command: {other:?}"),
        };
        return report(r, "", 1);
    }
    let root = cmd::data_root(cli.data_root.clone());
    let r = match command {
        Command::Pull(a) | Command::Image(ImageCmd::Pull(a)) => cmd::registry::pull(&root, &a),
        Command::Push(a) | Command::Image(ImageCmd::Push(a)) => cmd::registry::push(&root, &a),
        Command::Images(a) | Command::Image(ImageCmd::Ls(a)) => cmd::image::images(&root, &a),
        Command::Tag(a) | Command::Image(ImageCmd::Tag(a)) => cmd::image::tag(&root, &a),
        Command::Rmi(a) | Command::Image(ImageCmd::Rm(a)) => cmd::image::rmi(&root, &a),
        Command::History(a) | Command::Image(ImageCmd::History(a)) => {
            cmd::image::history(&root, &a)
        }
        Command::Save(a) | Command::Image(ImageCmd::Save(a)) => cmd::archive::save(&root, &a),
        Command::Load(a) | Command::Image(ImageCmd::Load(a)) => cmd::archive::load(&root, &a),
        Command::Import(a) | Command::Image(ImageCmd::Import(a)) => cmd::archive::import(&root, &a),
        Command::Image(ImageCmd::Inspect(a)) => cmd::image::inspect(&root, &a),
        Command::Image(ImageCmd::Prune(a)) => cmd::image::prune(&root, &a),
        Command::System(SystemCmd::Df(_)) => cmd::system::df(&root),
        other => unreachable!("not an image command: {other:?}"),
    };
    report(r, "berth: ", 1)
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = std::mem::replace(&mut cli.command, Command::Runtime { args: Vec::new() });
    let command = match command {
        Command::Container(c) => flatten(c),
        c => c,
    };
    match command {
        Command::Runtime { args } => cmd::runtime::exec(args),
        Command::Daemon(a) => cmd::daemon::run(cli.data_root, &a).unwrap_or_else(|e| {
            eprintln!("berth daemon: {}", cmd::one_line(&e));
            ExitCode::FAILURE
        }),
        Command::Login(a) => report(cmd::registry::login(&a), "berth: ", 1),
        Command::Logout(a) => report(cmd::registry::logout(&a), "berth: ", 1),
        Command::Image(ImageCmd::Bundle(a)) => {
            let root = cmd::data_root(cli.data_root);
            report(cmd::bundle::bundle(&root, &a), "berth: ", 1)
        }
        Command::Image(ImageCmd::Unbundle { dir, force }) => {
            let root = cmd::data_root(cli.data_root);
            report(cmd::bundle::unbundle(&root, &dir, force), "berth: ", 1)
        }
        Command::Image(ImageCmd::Diff { dir }) => {
            let root = cmd::data_root(cli.data_root);
            report(cmd::bundle::diff(&root, &dir), "berth: ", 1)
        }
        Command::Image(ImageCmd::Commit(a)) => {
            let root = cmd::data_root(cli.data_root);
            report(cmd::bundle::commit(&root, &a), "berth: ", 1)
        }
        Command::Image(ImageCmd::Export(a)) => {
            let root = cmd::data_root(cli.data_root);
            report(cmd::bundle::export(&root, &a), "berth: ", 1)
        }
        c @ (Command::Build(_) | Command::Builder(_) | Command::Image(ImageCmd::Build(_))) => {
            report(run_client(&cli, c), "", 1)
        }
        c @ (Command::Pull(_)
        | Command::Push(_)
        | Command::Images(_)
        | Command::Tag(_)
        | Command::Rmi(_)
        | Command::History(_)
        | Command::Save(_)
        | Command::Load(_)
        | Command::Import(_)
        | Command::Image(_)
        | Command::System(SystemCmd::Df(_))) => run_image(&cli, c),
        c @ (Command::Run(_) | Command::Create(_)) => report(run_client(&cli, c), "berth: ", 125),
        c => report(run_client(&cli, c), "", 1),
    }
}

/// Print an error on one line (after `prefix`, as docker prints it) and exit with `code`.
fn report(r: Result<ExitCode>, prefix: &str, code: u8) -> ExitCode {
    r.unwrap_or_else(|e| {
        eprintln!("{prefix}{}", cmd::one_line(&e));
        ExitCode::from(code)
    })
}
