//! System commands: `berth system df`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::progress::short;
use super::{familiar, human, open};

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
