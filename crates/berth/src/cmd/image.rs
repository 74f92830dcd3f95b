//! Image commands: `berth images`, `tag`, `rmi`, `image prune`, `image inspect`, `history`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::progress::short;
use super::{ago, familiar, human, open, print_table};

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
    /// Show all images (berth has no intermediate images: the same list).
    #[arg(short, long)]
    pub all: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (dangling, label, reference, before, since;
    /// through the daemon).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-like
    /// template ({{.Repository}}, {{.Tag}}, {{.ID}}, {{.CreatedSince}}, {{.Size}}, …).
    #[arg(long)]
    pub format: Option<String>,
}

/// Run `images`.
pub fn images(data_root: &Path, a: &ImagesArgs) -> Result<ExitCode> {
    if !a.filter.is_empty() {
        anyhow::bail!("--filter needs the daemon (berth daemon)");
    }
    let store = open(data_root)?;
    let mut rows = Vec::new();
    for img in store.images()? {
        let info = store.inspect(&img.id)?;
        let created = info["Created"]
            .as_str()
            .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        rows.extend(super::images_api::image_rows(
            &img.id,
            &img.repo_tags,
            &img.repo_digests,
            created,
            info["Size"].as_u64().unwrap_or(0),
            -1,
        ));
    }
    super::images_api::print_images(rows, a)?;
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
    /// Do not delete untagged parents (berth's images have none).
    #[arg(long = "no-prune")]
    pub no_prune: bool,
}

fn print_removed(removed: &[berth_image::Removed]) {
    for r in removed {
        match r {
            berth_image::Removed::Untagged(t) => println!("Untagged: {}", familiar(t)),
            berth_image::Removed::Deleted(id) => println!("Deleted: {id}"),
        }
    }
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
    /// Do not prompt for confirmation (asked only when stdin is a terminal).
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>'; through the daemon).
    #[arg(long)]
    pub filter: Vec<String>,
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

/// `berth image inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Images: names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Format the output using the given Go-like template.
    #[arg(short, long)]
    pub format: Option<String>,
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
    super::format::print_inspect(&out, a.format.as_deref())?;
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
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub human: bool,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
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
    let mut table = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .map(String::from)
            .to_vec(),
    ];
    for e in &entries {
        let mut by = e.created_by.replace('\t', " ");
        if !a.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        table.push(vec![
            id(&e.id),
            e.created.as_deref().map_or_else(|| "N/A".into(), ago),
            by,
            human(e.size),
            e.comment.clone(),
        ]);
    }
    print_table(&table);
    Ok(ExitCode::SUCCESS)
}
