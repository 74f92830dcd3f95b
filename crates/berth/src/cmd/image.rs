//! Image commands: `berth pull`, `images`, `image …` over `berth_image::ImageStore`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_image::ImageStore;
use berth_registry::{Client, Options, Platform, Reference};
use clap::Args;

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
    let client = Client::new(Options::default());
    let img = store
        .pull(&client, &r, &platform)
        .with_context(|| format!("pulling {r}"))?;
    if a.quiet {
        println!("{}", img.id);
    } else {
        println!("Digest: {}", img.manifest);
        println!("Status: Downloaded image for {r}");
        println!("{r}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `images`.
pub fn images(data_root: &Path, a: &ImagesArgs) -> Result<ExitCode> {
    let store = open(data_root)?;
    let mut rows = Vec::new();
    for img in store.images()? {
        let short = img.id.trim_start_matches("sha256:");
        let id = if a.no_trunc {
            img.id.clone()
        } else {
            short[..12.min(short.len())].to_string()
        };
        if img.repo_tags.is_empty() {
            rows.push((
                "<none>".to_string(),
                "<none>".to_string(),
                id.clone(),
                img.size,
            ));
        }
        for t in &img.repo_tags {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((t, "<none>"));
            rows.push((repo.to_string(), tag.to_string(), id.clone(), img.size));
        }
    }
    if let Some(want) = &a.repository {
        let want = Reference::parse(want)
            .map(|r| format!("{}/{}", r.registry, r.repository))
            .unwrap_or_else(|_| want.clone());
        rows.retain(|r| r.0 == want);
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
    for (repo, tag, id, size) in rows {
        println!("{repo:<40} {tag:<10} {id:<14} {:>10}", size);
    }
    Ok(ExitCode::SUCCESS)
}

/// The data root: `--data-root`, else `BERTH_DATA_ROOT`, else /var/lib/berth.
pub fn data_root(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("BERTH_DATA_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/berth"))
}
