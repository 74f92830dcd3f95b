//! Archive commands: `berth save`, `load`, `import`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::{familiar, open};

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
            store.load_tagged(std::io::BufReader::new(f))
        }
        None => store.load_tagged(std::io::BufReader::new(std::io::stdin().lock())),
    }
    .context("loading the archive")?;
    for (img, tags) in &loaded {
        if tags.is_empty() {
            println!("Loaded image ID: {}", img.id);
        }
        for t in tags {
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
