//! Bundle commands: `berth image bundle`, `unbundle`, `diff`, `commit`, `export` (a bundle is
//! a container's root filesystem until the engine has containers).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_image::ImageStore;
use clap::Args;

use super::open;

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
