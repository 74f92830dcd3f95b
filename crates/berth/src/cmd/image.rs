//! Image commands: `berth images`, `tag`, `rmi`, `image prune`, `image inspect`, `history`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_registry::Reference;
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
            rows.push((repo, tag, id.clone(), img.id.clone(), full));
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
    let mut table = vec![
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
            .map(String::from)
            .to_vec(),
    ];
    for (repo, tag, id, full_id, _) in rows {
        let info = store.inspect(&full_id)?;
        let created = info["Created"].as_str().map_or_else(|| "N/A".into(), ago);
        let size = human(info["Size"].as_u64().unwrap_or(0));
        table.push(vec![repo, tag, id, created, size]);
    }
    print_table(&table);
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
