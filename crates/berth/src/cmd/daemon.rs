//! `berth daemon`: the engine serving the Docker Engine API, with dockerd's flags.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_engine::DaemonConfig;
use clap::Args;

/// `berth daemon`.
#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Addresses to serve the API on: unix:///path, tcp://ADDR:PORT (repeatable).
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    pub hosts: Vec<String>,
    /// The configuration file.
    #[arg(long = "config-file", default_value = berth_engine::config::DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Root of runtime state (sockets, shims).
    #[arg(long = "exec-root", value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Log level: debug, info, warn, error.
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Serve TCP with TLS.
    #[arg(long)]
    pub tls: bool,
    /// Serve TCP with TLS and require client certificates signed by --tlscacert.
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA of clients' certificates [default: $DOCKER_CERT_PATH/ca.pem].
    #[arg(long, value_name = "PATH")]
    pub tlscacert: Option<PathBuf>,
    /// The server's certificate [default: $DOCKER_CERT_PATH/cert.pem].
    #[arg(long, value_name = "PATH")]
    pub tlscert: Option<PathBuf>,
    /// The server's key [default: $DOCKER_CERT_PATH/key.pem].
    #[arg(long, value_name = "PATH")]
    pub tlskey: Option<PathBuf>,
    /// Another OCI runtime, NAME=PATH (repeatable), for `--runtime NAME`.
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    pub add_runtime: Vec<String>,
    /// The runtime of containers created without `--runtime` (default: berth).
    #[arg(long = "default-runtime", value_name = "NAME")]
    pub default_runtime: Option<String>,
}

/// Run the daemon in the foreground.
pub fn run(data_root: Option<PathBuf>, a: &DaemonArgs) -> Result<ExitCode> {
    let explicit = a.config_file.as_os_str() != berth_engine::config::DEFAULT_CONFIG_FILE;
    let mut cfg = DaemonConfig::load(&a.config_file, explicit)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("invalid daemon configuration")?;
    if let Some(d) = data_root.or_else(|| std::env::var_os("BERTH_DATA_ROOT").map(PathBuf::from)) {
        cfg.data_root = Some(d);
    }
    if let Some(e) = &a.exec_root {
        cfg.exec_root = Some(e.clone());
    }
    if a.debug {
        cfg.debug = Some(true);
    }
    for r in &a.add_runtime {
        let (name, path) = r
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--add-runtime {r:?}: expected NAME=PATH"))?;
        cfg.runtimes.insert(
            name.to_string(),
            berth_engine::config::RuntimeEntry {
                path: PathBuf::from(path),
                runtime_args: Vec::new(),
            },
        );
    }
    if let Some(d) = &a.default_runtime {
        cfg.default_runtime = Some(d.clone());
    }
    cfg.check_runtimes()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("invalid daemon configuration")?;
    let level = match (a.log_level.as_deref(), cfg.debug.unwrap_or(false)) {
        (Some(l), _) => l.parse().unwrap_or(tracing::Level::INFO),
        (None, true) => tracing::Level::DEBUG,
        (None, false) => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let hosts = if !a.hosts.is_empty() {
        a.hosts.clone()
    } else if !cfg.hosts.is_empty() {
        cfg.hosts.clone()
    } else {
        vec![format!(
            "unix://{}",
            cfg.exec_root().join("berth.sock").display()
        )]
    };
    let default_sock = cfg.exec_root().join("berth.sock");
    let listeners = hosts
        .iter()
        .map(|h| berth_api::parse_host(h, &default_sock))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tls = berth_api::TlsOptions {
        tls: a.tls || cfg.tls.unwrap_or(false),
        verify: a.tlsverify || cfg.tlsverify.unwrap_or(false),
        ca: a.tlscacert.clone().or(cfg.tlscacert.clone()),
        cert: a.tlscert.clone().or(cfg.tlscert.clone()),
        key: a.tlskey.clone().or(cfg.tlskey.clone()),
    };
    // Bad certificates fail the start, before anything else.
    tls.server_config().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let engine = tokio::task::spawn_blocking(move || berth_engine::Engine::open(cfg, handle))
            .await
            .context("opening the engine")?
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("opening the engine")?;
        tracing::info!("berth daemon ready");
        let serve = berth_api::serve(engine.clone(), listeners, &tls);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("signals")?;
        tokio::select! {
            r = serve => r.map_err(|e| anyhow::anyhow!("{e}"))?,
            _ = term.recv() => tracing::info!("terminated"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        }
        if engine.config().live_restore() {
            tracing::info!("containers keep running (live-restore)");
        } else {
            tracing::info!("stopping containers (live-restore is off)");
            engine.shutdown().await;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
