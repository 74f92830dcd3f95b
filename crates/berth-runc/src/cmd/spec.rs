//! `spec`: write the default config.json.

use anyhow::{Context, Result, bail};

pub fn spec(bundle: &std::path::Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists; remove it first", path.display());
    }
    let v = berth_runtime::template::default_spec(
        rootless,
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
