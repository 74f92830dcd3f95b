//! The command line: runc's flags and commands, parsed by clap. Only parsing lives here; each
//! command group is in `cmd/`.

use std::path::PathBuf;

use berth_runtime::{ConsoleSocket, CreateOptions};
use clap::{Args, Parser, Subcommand};

/// berth's OCI runtime, with runc's command line.
#[derive(Parser, Debug)]
#[command(
    name = "berth-runc",
    about = "berth's OCI runtime, with runc's command line",
    disable_version_flag = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Print the version (runc's format: name, commit, spec, libseccomp).
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Args, Debug)]
pub struct Global {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/berth")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (before the command, as runc takes it).
    #[arg(long)]
    pub rootless: Option<String>,
    /// Path to criu (accepted for compatibility; checkpointing is not supported yet).
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container (the init waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container, and wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container.
    State { id: String },
    /// Send a signal to the container's init (or every process with --all).
    Kill {
        /// Send to every process in the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        /// Kill the container first if it runs.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes in a container.
    Ps {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Freeze a container.
    Pause { id: String },
    /// Thaw a container.
    Resume { id: String },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Stream events (OOM, stats) of a container.
    Events {
        /// Print statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between statistics.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Write a default config.json.
    Spec {
        /// The bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A configuration for an unprivileged user.
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The bundle directory.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the terminal's master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, …) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Unix socket to send the terminal's master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment (KEY=value).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// uid[:gid].
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// The process as a process.json file.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Pass this many extra fds (3, 4, …).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// A LinuxResources JSON file ("-" for stdin).
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "kernel-memory")]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp")]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    pub id: String,
}

impl CreateArgs {
    /// The library's options for these flags.
    pub fn options(self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle,
            pid_file: self.pid_file,
            console_socket: self.console_socket.map(ConsoleSocket::Path),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
