//! Image commands: `berth pull`, `images`, `image …` over `berth_image::ImageStore`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Read;

use anyhow::{Context, Result, bail};
use berth_image::{ImageStore, PullEvent, PushEvent};
use berth_registry::{
    Client, Credentials, CredentialsFile, Options, Platform, PlatformExt, Reference,
};
use clap::Args;

use super::progress::{Progress, short};

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

/// `berth images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only images of this repository.
    pub repository: Option<String>,
    /// Print only IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate IDs.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

fn open(data_root: &Path) -> Result<ImageStore> {
    ImageStore::open(data_root)
        .with_context(|| format!("opening the image store in {}", data_root.display()))
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

/// Run `images`.
pub fn images(data_root: &Path, a: &ImagesArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let mut rows = Vec::new();
    for img in store.images()? {
        let id = if a.no_trunc {
            img.id.clone()
        } else {
            short(&img.id).to_string()
        };
        // (REPOSITORY, TAG, full repository for --filter by name)
        let mut names: Vec<(String, String, String)> = img
            .repo_tags
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .map(|r| {
                let tag = r.tag_or_latest().unwrap_or("<none>").to_string();
                (
                    r.familiar_name(),
                    tag,
                    format!("{}/{}", r.registry, r.repository),
                )
            })
            .collect();
        if names.is_empty() {
            // Known only by digest (pulled by digest): its repository with no tag, as Docker
            // shows it; else dangling.
            names.push(
                match img
                    .repo_digests
                    .first()
                    .and_then(|d| Reference::parse(d).ok())
                {
                    Some(r) => (
                        r.familiar_name(),
                        "<none>".to_string(),
                        format!("{}/{}", r.registry, r.repository),
                    ),
                    None => ("<none>".into(), "<none>".into(), String::new()),
                },
            );
        }
        for (repo, tag, full) in names {
            rows.push((repo, tag, id.clone(), img.size, full));
        }
    }
    if let Some(want) = &a.repository {
        let want = Reference::parse(want)
            .map(|r| format!("{}/{}", r.registry, r.repository))
            .unwrap_or_else(|_| want.clone());
        rows.retain(|r| r.4 == want);
    }
    if a.quiet {
        for r in rows {
            println!("{}", r.2);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<10} {:<14} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
    );
    for (repo, tag, id, size, _) in rows {
        println!("{repo:<40} {tag:<10} {id:<14} {:>10}", size);
    }
    Ok(ExitCode::SUCCESS)
}

/// The data root: `--data-root`, else `BERTH_DATA_ROOT`, else /var/lib/berth.
pub fn data_root(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("BERTH_DATA_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/berth"))
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

/// `berth tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// The image: a name or an ID.
    pub source: String,
    /// The new name: `[HOST[:PORT]/]NAME[:TAG]`.
    pub target: String,
}

/// Run `tag`.
pub fn tag(data_root: &Path, a: &TagArgs) -> Result<ExitCode> {
    open(data_root)?
        .tag(&a.source, &a.target)
        .with_context(|| format!("tagging {} as {}", a.source, a.target))?;
    Ok(ExitCode::SUCCESS)
}

/// `berth rmi`.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Images: names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove an image that has several tags, by ID.
    #[arg(short, long)]
    pub force: bool,
}

fn print_removed(removed: &[berth_image::Removed]) {
    for r in removed {
        match r {
            berth_image::Removed::Untagged(t) => println!("Untagged: {}", familiar(t)),
            berth_image::Removed::Deleted(id) => println!("Deleted: {id}"),
        }
    }
}

fn familiar(tag: &str) -> String {
    Reference::parse(tag).map_or_else(|_| tag.to_string(), |r| r.familiar())
}

/// Run `rmi`: every image is tried; the exit status says whether all went.
pub fn rmi(data_root: &Path, a: &RmiArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let mut failed = false;
    for name in &a.images {
        match store.remove(name, a.force) {
            Ok(removed) => print_removed(&removed),
            Err(e) => {
                eprintln!("berth: removing {name}: {e}");
                failed = true;
            }
        }
    }
    // What the removals left unreferenced goes now.
    store.gc().context("collecting unreferenced layers")?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `berth image prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not only untagged ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask (berth never asks; accepted for Docker's command line).
    #[arg(short, long)]
    pub force: bool,
}

/// Run `image prune`.
pub fn prune(data_root: &Path, a: &PruneArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    // No containers yet, so no image is in use.
    let report = store.prune(a.all, &|_| false)?;
    if !report.removed.is_empty() {
        println!("Deleted Images:");
        print_removed(&report.removed);
        println!();
    }
    println!("Total reclaimed space: {}", human(report.gc.reclaimed));
    Ok(ExitCode::SUCCESS)
}

/// Sizes as Docker prints them: decimal units, four significant digits (`4.266MB`).
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let s = if i == 0 {
        n.to_string()
    } else {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(super::human(0), "0B");
        assert_eq!(super::human(999), "999B");
        assert_eq!(super::human(4_266_120), "4.266MB");
        assert_eq!(super::human(12_500), "12.5kB");
        assert_eq!(super::human(2_000_000_000), "2GB");
    }
}

/// `berth image inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Images: names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Run `image inspect`: a JSON array like Docker's.
pub fn inspect(data_root: &Path, a: &InspectArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let mut out = Vec::new();
    let mut failed = false;
    for name in &a.images {
        match store.inspect(name) {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `berth history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The image.
    pub image: String,
    /// Do not truncate.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Print only IDs.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Run `history`.
pub fn history(data_root: &Path, a: &HistoryArgs) -> Result<ExitCode> {
    let entries = open(data_root)?.history(&a.image)?;
    let id = |s: &str| {
        if a.no_trunc || s == "<missing>" {
            s.to_string()
        } else {
            short(s).to_string()
        }
    };
    if a.quiet {
        for e in &entries {
            println!("{}", id(&e.id));
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<22} {:<50} {:>10}  COMMENT",
        "IMAGE", "CREATED", "CREATED BY", "SIZE"
    );
    for e in &entries {
        let mut by = e.created_by.replace('\t', " ");
        if !a.no_trunc && by.chars().count() > 47 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        println!(
            "{:<14} {:<22} {:<50} {:>10}  {}",
            id(&e.id),
            e.created.as_deref().unwrap_or(""),
            by,
            human(e.size),
            e.comment
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Images: names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Run `save`: a tar that `docker load`, `podman load` and `berth load` all read (docker-archive
/// entries and an OCI image layout in one).
pub fn save(data_root: &Path, a: &SaveArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let names: Vec<&str> = a.images.iter().map(String::as_str).collect();
    match &a.output {
        Some(path) => {
            // Into a temporary file beside it, renamed when whole: a failed save leaves no
            // truncated archive behind.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            store.save(&names, std::io::BufWriter::new(tmp.as_file_mut()))?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("refusing to write an archive to a terminal: use --output or a redirection");
            }
            store.save(&names, std::io::BufWriter::new(std::io::stdout().lock()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from this file instead of standard input.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Print less.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Run `load`.
pub fn load(data_root: &Path, a: &LoadArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let loaded = match &a.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            store.load(std::io::BufReader::new(f))
        }
        None => store.load(std::io::BufReader::new(std::io::stdin().lock())),
    }
    .context("loading the archive")?;
    for img in &loaded {
        if img.repo_tags.is_empty() {
            println!("Loaded image ID: {}", img.id);
        }
        for t in &img.repo_tags {
            println!("Loaded image: {}", familiar(t));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The root file system tarball (plain, gzip or zstd); `-` for standard input.
    pub file: String,
    /// Name the image.
    pub reference: Option<String>,
    /// A Dockerfile instruction for the image config (CMD, ENTRYPOINT, ENV, WORKDIR, USER, …).
    #[arg(short, long = "change")]
    pub changes: Vec<String>,
}

/// Run `import`.
pub fn import(data_root: &Path, a: &ImportArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let img = if a.file == "-" {
        store.import(
            std::io::BufReader::new(std::io::stdin().lock()),
            a.reference.as_deref(),
            &a.changes,
        )
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        store.import(
            std::io::BufReader::new(f),
            a.reference.as_deref(),
            &a.changes,
        )
    }
    .with_context(|| format!("importing {}", a.file))?;
    println!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

/// `berth system df`.
pub fn df(data_root: &Path) -> Result<ExitCode> {
    let du = open(data_root)?.disk_usage()?;
    println!(
        "{:<40} {:<14} {:>12} {:>12} {:>12}",
        "REPOSITORY:TAG", "IMAGE ID", "SIZE", "SHARED", "UNIQUE"
    );
    for i in &du.images {
        let name = i
            .repo_tags
            .first()
            .map_or("<none>".to_string(), |t| familiar(t));
        println!(
            "{:<40} {:<14} {:>12} {:>12} {:>12}",
            name,
            short(&i.id),
            human(i.size),
            human(i.shared_size),
            human(i.unique_size)
        );
    }
    println!();
    println!("Layers (each counted once): {}", human(du.layers_size));
    println!("Content (compressed blobs): {}", human(du.content_size));
    Ok(ExitCode::SUCCESS)
}

/// `berth image bundle`.
#[derive(Args, Debug)]
pub struct BundleArgs {
    /// The image: a name or an ID.
    pub image: String,
    /// The bundle directory to make (must not exist).
    pub dir: PathBuf,
    /// A plain copy of the layers instead of a copy-on-write overlay mount.
    #[arg(long)]
    pub copy: bool,
    /// Replace the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set an environment variable (KEY=value); repeatable.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Run as this user (name or uid, `[:group]`).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Replace the image's command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Run `image bundle`: an OCI runtime bundle (config.json + rootfs) that `berth runtime run`
/// runs.
pub fn bundle(data_root: &Path, a: &BundleArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let overrides = berth_image::config::Overrides {
        cmd: (!a.command.is_empty()).then(|| a.command.clone()),
        entrypoint: a.entrypoint.as_ref().map(|e| vec![e.clone()]),
        env: a.env.clone(),
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        hostname: a.hostname.clone(),
    };
    let kind = if a.copy {
        berth_image::rootfs::RootfsKind::Copy
    } else {
        berth_image::rootfs::RootfsKind::Auto
    };
    let b = store
        .bundle(&a.image, &a.dir, kind, &overrides)
        .with_context(|| format!("making a bundle of {} in {}", a.image, a.dir.display()))?;
    println!("{}", b.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Run `image unbundle`: unmount and delete a bundle `image bundle` made (refused while a
/// container runs in it, unless `force`).
pub fn unbundle(data_root: &Path, dir: &Path, force: bool) -> Result<ExitCode> {
    open(data_root)?
        .unbundle(dir, force)
        .with_context(|| format!("removing the bundle {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// The bundle `image bundle` made at `dir`.
fn open_bundle(store: &ImageStore, dir: &Path) -> Result<berth_image::bundle::Bundle> {
    berth_image::bundle::Bundle::open(store, dir)
        .with_context(|| format!("opening the bundle {}", dir.display()))
}

/// Run `image diff`: the bundle's changes, `docker diff`'s lines.
pub fn diff(data_root: &Path, dir: &Path) -> Result<ExitCode> {
    let b = open_bundle(&open(data_root)?, dir)?;
    let changes = berth_image::commit::diff(&b.rootfs)
        .with_context(|| format!("comparing {} with its image", dir.display()))?;
    for c in changes {
        println!("{c}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth image commit`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// The bundle directory (made by `image bundle`).
    pub dir: PathBuf,
    /// Name the new image.
    pub reference: Option<String>,
    /// Author (e.g. "Jane <jane@example.org>").
    #[arg(short, long)]
    pub author: Option<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// A Dockerfile instruction for the image config (CMD, ENTRYPOINT, ENV, WORKDIR, USER, …).
    #[arg(short, long = "change")]
    pub changes: Vec<String>,
}

/// Run `image commit`: a new image of the bundle's image plus its changes; prints its ID.
pub fn commit(data_root: &Path, a: &CommitArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let b = open_bundle(&store, &a.dir)?;
    let opts = berth_image::commit::CommitOptions {
        tag: a.reference.clone(),
        author: a.author.clone(),
        message: a.message.clone(),
        created_by: None,
        changes: a.changes.clone(),
    };
    let img = store
        .commit(&b.rootfs, b.rootfs.image(), &opts)
        .with_context(|| format!("committing {}", a.dir.display()))?;
    println!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

/// `berth image export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The bundle directory (made by `image bundle`).
    pub dir: PathBuf,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Run `image export`: the bundle's root filesystem as a plain tar.
pub fn export(data_root: &Path, a: &ExportArgs) -> Result<ExitCode> {
    let b = open_bundle(&open(data_root)?, &a.dir)?;
    let what = || format!("exporting {}", a.dir.display());
    match &a.output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            berth_image::commit::export(&b.rootfs, &mut w).with_context(what)?;
            let f = w
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(what)?;
            f.sync_all().with_context(what)?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("refusing to write a tar to a terminal: use -o FILE or redirect");
            }
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            berth_image::commit::export(&b.rootfs, &mut w).with_context(what)?;
            std::io::Write::flush(&mut w).with_context(what)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
