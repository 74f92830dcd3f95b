//! Registry commands: `berth pull`, `push`, `login`, `logout`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_image::{PullEvent, PushEvent};
use berth_registry::{
    Client, Credentials, CredentialsFile, Options, Platform, PlatformExt, Reference,
};
use clap::Args;

use super::open;
use super::progress::Progress;

/// Options every registry command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (localhost and 127.0.0.0/8 always may); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
}

/// Docker's credentials file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn credentials_path() -> Result<PathBuf> {
    berth_registry::credentials::default_path()
        .context("cannot tell where the credentials file is: set DOCKER_CONFIG or HOME")
}

/// A registry client with the stored credentials.
fn client(reg: &RegistryArgs) -> Result<Client> {
    let path = credentials_path()?;
    let credentials = CredentialsFile::load(&path)
        .and_then(|f| f.all())
        .with_context(|| format!("reading credentials from {}", path.display()))?;
    Ok(Client::new(Options {
        insecure: reg.insecure.clone(),
        credentials,
        chunk_size: None,
    }))
}

/// `berth pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image: `NAME[:TAG|@DIGEST]`, with or without a registry.
    pub reference: String,
    /// Platform to pull from a multi-platform image: os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image ID.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The image to push, by the name it is to have in the registry: `HOST[:PORT]/NAME[:TAG]`.
    pub reference: String,
    /// Print only the pushed manifest's digest.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: a command line is visible to other users).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
}

/// Run `pull`.
pub fn pull(data_root: &Path, a: &PullArgs) -> Result<ExitCode> {
    let r = Reference::parse(&a.reference)?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)
            .with_context(|| format!("invalid platform {p:?}: want os/arch[/variant]"))?,
        None => Platform::host(),
    };
    let store = open(data_root)?;
    let client = client(&a.registry)?;
    let before = store.lookup(&a.reference)?;
    let progress = Progress::new(a.quiet);
    progress.line(&format!(
        "{}: Pulling from {}",
        r.tag_or_latest()
            .map_or_else(|| r.manifest_ref(), str::to_string),
        r.repository
    ));
    let resolved = std::sync::Mutex::new(None);
    let on_event = |e: PullEvent| match e {
        PullEvent::Resolved { digest } => {
            if let Ok(mut r) = resolved.lock() {
                *r = Some(digest);
            }
        }
        PullEvent::Exists { digest } => progress.done(&digest.to_string(), "Already exists"),
        PullEvent::Progress {
            digest,
            done,
            total,
            downloading,
        } => progress.update(
            &digest.to_string(),
            if downloading {
                "Downloading"
            } else {
                "Extracting"
            },
            done,
            total,
        ),
        PullEvent::Done { digest } => progress.done(&digest.to_string(), "Pull complete"),
    };
    let img = store
        .pull_with_progress(&client, &r, &platform, &on_event)
        .with_context(|| format!("pulling {r}"))?;
    if a.quiet {
        println!("{}", img.id);
    } else {
        let news = if before.is_some_and(|b| b.manifest == img.manifest) {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        // What the reference resolved to: an index's digest for a multi-platform image.
        let digest = resolved
            .into_inner()
            .ok()
            .flatten()
            .map_or_else(|| img.manifest.clone(), |d| d.to_string());
        progress.line(&format!("Digest: {digest}"));
        progress.line(&format!("Status: {news} {}", r.familiar()));
        println!("{r}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `push`: Docker's lines (`<layer>: Preparing`, then `Pushed`, `Layer already exists` or
/// `Mounted from …`; `<tag>: digest: … size: …`).
pub fn push(data_root: &Path, a: &PushArgs) -> Result<ExitCode> {
    let r = Reference::parse(&a.reference)?;
    let store = open(data_root)?;
    let client = client(&a.registry)?;
    let progress = Progress::new(a.quiet);
    progress.line(&format!(
        "The push refers to repository [{}/{}]",
        r.registry, r.repository
    ));
    let on_event = |e: PushEvent| match e {
        PushEvent::Preparing { digest } => progress.status(&digest.to_string(), "Preparing"),
        PushEvent::Exists { digest } => progress.done(&digest.to_string(), "Layer already exists"),
        PushEvent::Mounted { digest, from } => {
            progress.done(&digest.to_string(), &format!("Mounted from {from}"))
        }
        PushEvent::Progress {
            digest,
            sent,
            total,
        } => progress.update(&digest.to_string(), "Pushing", sent, total),
        PushEvent::Pushed { digest } => progress.done(&digest.to_string(), "Pushed"),
    };
    let pushed = store
        .push(&client, &r, &on_event)
        .with_context(|| format!("pushing {r}"))?;
    if a.quiet {
        println!("{}", pushed.digest);
    } else {
        let tag = r.tag_or_latest().unwrap_or("latest");
        println!("{tag}: digest: {} size: {}", pushed.digest, pushed.size);
    }
    Ok(ExitCode::SUCCESS)
}

/// The registry a login/logout names: Docker Hub when none.
fn server(s: Option<&str>) -> String {
    match s {
        None => "docker.io".to_string(),
        Some(s) => berth_registry::credentials::normalize_registry(s),
    }
}

/// Run `login`: check the credentials with the registry, then store them.
pub fn login(a: &LoginArgs) -> Result<ExitCode> {
    let registry = server(a.server.as_deref());
    let Some(username) = a.username.clone() else {
        bail!("a user name is needed: --username");
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from standard input")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("a password is needed: --password-stdin (or --password)"),
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let creds = Credentials { username, password };
    let mut opts = Options {
        insecure: a.registry.insecure.clone(),
        ..Options::default()
    };
    opts.credentials.insert(registry.clone(), creds.clone());
    Client::new(opts)
        .check_login(&registry)
        .with_context(|| format!("logging in to {registry}"))?;
    let path = credentials_path()?;
    berth_registry::credentials::store(&path, &registry, &creds)
        .with_context(|| format!("storing credentials in {}", path.display()))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Run `logout`.
pub fn logout(a: &LogoutArgs) -> Result<ExitCode> {
    let registry = server(a.server.as_deref());
    let path = credentials_path()?;
    let removed = berth_registry::credentials::erase(&path, &registry)
        .with_context(|| format!("updating {}", path.display()))?;
    if removed {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
