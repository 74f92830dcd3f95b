//! `berth build` (also `berth image build`, `berth builder build`) and `berth builder prune`,
//! through the daemon's classic builder API (`POST /build`, `POST /build/prune`).
//!
//! The context is made here, as the docker CLI makes it: the context directory walked without
//! following symlinks, `.dockerignore` applied (the Dockerfile and `.dockerignore` always
//! sent), entries owned by 0:0 with their modes and mtimes, in lexical order, directories
//! before their contents; a Dockerfile from outside the context (or stdin) added as
//! `.dockerfile.<random>`. The tar is written by a thread into a bounded channel that the
//! request body reads, so a context is never held whole in memory.
//!
//! The answer is the classic builder's JSON stream: on a terminal it is shown compactly, one
//! `#N` block per step (BuildKit-like, append-only); otherwise (or `--progress plain`) its
//! text is printed as received, as `docker build` with the legacy builder prints it.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use berth_dockerfile::Ignore;
use clap::{ArgAction, Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::{Client, Request};
use super::human;

/// `berth builder …`.
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once, never moved about
pub enum BuilderCmd {
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Remove build cache.
    Prune(PruneArgs),
}

/// `--progress`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    #[default]
    Auto,
    /// The classic builder's output as it comes.
    Plain,
    /// One compact `#N` block per step.
    Tty,
}

/// A `--secret` (sent in berth's own header, `X-Berth-Build-Secrets`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Secret {
    /// `id=`.
    pub id: String,
    /// `src=`/`source=`: a file.
    pub src: Option<PathBuf>,
    /// `env=`: an environment variable.
    pub env: Option<String>,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    let mut out = Secret::default();
    let mut kind = None;
    for field in s.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| format!("invalid field {field:?}: must be a key=value pair"))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "id" => out.id = v.to_string(),
            "src" | "source" => out.src = Some(PathBuf::from(v)),
            "env" => out.env = Some(v.to_string()),
            "type" => {
                if v != "file" && v != "env" {
                    return Err(format!("unsupported secret type {v:?}"));
                }
                kind = Some(v.to_string());
            }
            other => return Err(format!("unexpected key {other:?} in {field:?}")),
        }
    }
    if out.id.is_empty() {
        // As BuildKit: the id defaults to the file's or variable's base name.
        out.id = match (&out.src, &out.env) {
            (Some(p), _) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, Some(e)) => e.clone(),
            _ => String::new(),
        };
    }
    if out.id.is_empty() {
        return Err("a secret needs an id".into());
    }
    if out.src.is_none() && out.env.is_none() {
        if kind.as_deref() == Some("env") {
            out.env = Some(out.id.clone());
        } else {
            out.src = Some(PathBuf::from(&out.id));
        }
    }
    Ok(out)
}

/// `berth build`.
#[derive(Args, Debug, Default)]
pub struct BuildArgs {
    /// The context: a directory, a URL of a tarball or a Dockerfile, or `-` for a tar (or a
    /// Dockerfile) on stdin.
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: `PATH/Dockerfile`; `-` reads it from stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,
    /// A build-time variable (`KEY=VALUE`, or `KEY` for this environment's value); repeatable.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// The build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache when building the image.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always try to pull a newer version of the base images.
    #[arg(long)]
    pub pull: bool,
    /// Metadata for the image (`KEY=VALUE`); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Write the image ID to this file.
    #[arg(long = "iidfile", value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// The networking mode of the RUN instructions.
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// A custom host-to-IP mapping (`host:ip`); repeatable.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// The platform to build for (os/arch[/variant]; default: $DOCKER_DEFAULT_PLATFORM).
    #[arg(long)]
    pub platform: Option<String>,
    /// Images to consider as cache sources; repeatable.
    #[arg(long = "cache-from", value_name = "IMAGE")]
    pub cache_from: Vec<String>,
    /// A secret for `RUN --mount=type=secret` (`id=ID,src=FILE` or `id=ID,env=VAR`).
    #[arg(long = "secret", value_name = "id=ID,src=FILE", value_parser = parse_secret)]
    pub secrets: Vec<Secret>,
    /// How to show the progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Remove intermediate containers after a successful build.
    #[arg(long = "rm", action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub rm: bool,
    /// Always remove intermediate containers.
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Size of /dev/shm of the RUN containers (`64m`).
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Memory limit of the RUN containers (`512m`).
    #[arg(short = 'm', long = "memory", value_name = "BYTES")]
    pub memory: Option<String>,
}

/// `berth builder prune`.
#[derive(Args, Debug, Default)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (`until=24h`); repeatable.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Amount of disk space to keep for cache (`1g`).
    #[arg(long = "keep-storage", value_name = "BYTES")]
    pub keep_storage: Option<String>,
}

// ---------------------------------------------------------------------------------------
// The context.

/// One entry of a local context, as found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    /// A hard link to an earlier entry.
    HardLink(PathBuf),
    Symlink(PathBuf),
    Fifo,
    Char(u64),
    Block(u64),
}

#[derive(Debug, Clone)]
struct Entry {
    /// Relative to the context root.
    rel: PathBuf,
    kind: Kind,
    mode: u32,
    mtime: u64,
}

/// A local context, ready to be written as a tar.
#[derive(Debug)]
struct LocalContext {
    root: PathBuf,
    entries: Vec<Entry>,
    /// Contents that replace a file's (`.dockerignore` with the added Dockerfile's name).
    replaced: HashMap<PathBuf, Vec<u8>>,
    /// Files added at the end (name, content, mode).
    added: Vec<(String, Vec<u8>, u32)>,
    /// The `dockerfile` parameter.
    dockerfile: String,
}

/// Where the Dockerfile comes from.
#[derive(Debug)]
enum DockerfileSource {
    /// `PATH/Dockerfile` (or `PATH/dockerfile`).
    Default,
    /// `-f FILE` (relative to the working directory).
    File(PathBuf),
    /// `-f -`: its content.
    Given(Vec<u8>),
}

/// An OS error as Go prints it (`no such file or directory`).
fn go_err(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotADirectory => "not a directory".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

/// Go's `filepath.EvalSymlinks`, with its error: the `lstat` of the first missing component.
fn eval_symlinks(p: &Path) -> std::result::Result<PathBuf, String> {
    std::fs::canonicalize(p).map_err(|e| {
        let comps: Vec<&Path> = p.ancestors().collect();
        for prefix in comps.into_iter().rev() {
            if prefix.as_os_str().is_empty() {
                continue;
            }
            if let Err(le) = std::fs::symlink_metadata(prefix) {
                return format!("lstat {}: {}", prefix.display(), go_err(&le));
            }
        }
        format!("lstat {}: {}", p.display(), go_err(&e))
    })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p)
        .with_context(|| format!("unable to get absolute path to {}", p.display()))
}

/// A random `.dockerfile.` name (20 hex digits, as the docker CLI's).
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    while s.len() < 20 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        h.write_usize(s.len());
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s.truncate(20);
    format!(".dockerfile.{s}")
}

/// Prepare a local directory context (docker's `GetContextFromLocalDir` and
/// `ValidateContextDirectory`, then what `TarWithOptions` would send).
fn local_context(dir: &Path, source: DockerfileSource) -> Result<LocalContext> {
    let abs = absolute(dir)?;
    let root = eval_symlinks(&abs).map_err(|e| anyhow!("unable to prepare context: {e}"))?;
    let meta = std::fs::metadata(&root)
        .with_context(|| format!("unable to prepare context: {}", root.display()))?;
    if !meta.is_dir() {
        bail!(
            "unable to prepare context: context must be a directory: {}",
            root.display()
        );
    }
    // Where the Dockerfile is: inside the context (a relative name), or outside (its content).
    let (inside, content) = match source {
        DockerfileSource::Given(b) => (None, Some(b)),
        DockerfileSource::Default | DockerfileSource::File(_) => {
            let path = match source {
                DockerfileSource::File(f) => absolute(&f)?,
                _ => {
                    let p = root.join("Dockerfile");
                    let alt = root.join("dockerfile");
                    if std::fs::symlink_metadata(&p).is_err()
                        && std::fs::symlink_metadata(&alt).is_ok()
                    {
                        alt
                    } else {
                        p
                    }
                }
            };
            let real = eval_symlinks(&path).map_err(|e| {
                anyhow!(
                    "unable to prepare context: unable to evaluate symlinks in Dockerfile path: {e}"
                )
            })?;
            match real.strip_prefix(&root) {
                Ok(rel) if !rel.as_os_str().is_empty() => (Some(rel.to_path_buf()), None),
                _ => {
                    let b = std::fs::read(&real)
                        .with_context(|| format!("unable to open Dockerfile {}", path.display()))?;
                    (None, Some(b))
                }
            }
        }
    };
    let ignore_path = root.join(".dockerignore");
    let ignore_text = match std::fs::read(&ignore_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow!(e).context("error reading .dockerignore")),
    };
    let ignore = match &ignore_text {
        Some(t) => Ignore::try_parse(&String::from_utf8_lossy(t))
            .map_err(|e| anyhow!("error checking context: .dockerignore: {e}"))?,
        None => Ignore::default(),
    };
    let mut keep = vec![".dockerignore".to_string()];
    if let Some(rel) = &inside {
        keep.push(slash(rel));
    }
    let mut entries = Vec::new();
    let mut links = HashMap::new();
    walk(
        &root,
        Path::new(""),
        &ignore,
        &keep,
        &mut entries,
        &mut links,
    )?;
    let mut replaced = HashMap::new();
    let mut added = Vec::new();
    let dockerfile = match (inside, content) {
        (Some(rel), _) => slash(&rel),
        (None, content) => {
            // As the docker CLI: the Dockerfile under a random name, and that name added to
            // .dockerignore so that it is not part of what COPY sees.
            let name = random_name();
            let mut ig = ignore_text.unwrap_or_default();
            ig.extend_from_slice(format!("\n{name}\n").as_bytes());
            let have_ignore = entries
                .iter()
                .any(|e| e.rel == Path::new(".dockerignore") && e.kind == Kind::File);
            if have_ignore {
                replaced.insert(PathBuf::from(".dockerignore"), ig);
            } else {
                added.push((".dockerignore".to_string(), ig, 0o600));
            }
            added.push((name.clone(), content.unwrap_or_default(), 0o600));
            name
        }
    };
    Ok(LocalContext {
        root,
        entries,
        replaced,
        added,
        dockerfile,
    })
}

/// A relative path with `/` separators.
fn slash(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Walk `dir` (relative to `root`), sorted, directories before their contents.
fn walk(
    root: &Path,
    dir: &Path,
    ignore: &Ignore,
    keep: &[String],
    out: &mut Vec<Entry>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let abs_dir = root.join(dir);
    let rd = std::fs::read_dir(&abs_dir).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => {
            anyhow!("error checking context: can't stat '{}'", abs_dir.display())
        }
        _ => anyhow!(
            "error checking context: {}: {}",
            abs_dir.display(),
            go_err(&e)
        ),
    })?;
    let mut names: Vec<OsString> = Vec::new();
    for d in rd {
        let d = d.with_context(|| format!("error checking context: {}", abs_dir.display()))?;
        names.push(d.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let rel = dir.join(&name);
        let abs = root.join(&rel);
        let rel_s = slash(&rel);
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            // Gone since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                bail!("error checking context: can't stat '{}'", abs.display())
            }
            Err(e) => bail!("error checking context: {}: {}", abs.display(), go_err(&e)),
        };
        let kept = keep.contains(&rel_s);
        let excluded = !kept && ignore.matches(&rel_s);
        let ft = meta.file_type();
        let mut entry = Entry {
            rel: rel.clone(),
            kind: Kind::File,
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime().max(0) as u64,
        };
        if ft.is_dir() {
            if !excluded {
                entry.kind = Kind::Dir;
                out.push(entry);
            }
            let prefix = format!("{rel_s}/");
            if !excluded
                || ignore.may_include_below(&rel_s)
                || keep.iter().any(|k| k.starts_with(&prefix))
            {
                walk(root, &rel, ignore, keep, out, links)?;
            }
            continue;
        }
        if excluded {
            continue;
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(&abs)
                .with_context(|| format!("error checking context: reading {}", abs.display()))?;
            entry.kind = Kind::Symlink(target);
        } else if ft.is_file() {
            if let Err(e) = std::fs::File::open(&abs) {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    bail!(
                        "error checking context: no permission to read from '{}'",
                        abs.display()
                    );
                }
                bail!("error checking context: {}: {}", abs.display(), go_err(&e));
            }
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    entry.kind = Kind::HardLink(first.clone());
                } else {
                    links.insert(key, rel.clone());
                }
            }
        } else if ft.is_fifo() {
            entry.kind = Kind::Fifo;
        } else if ft.is_char_device() {
            entry.kind = Kind::Char(meta.rdev());
        } else if ft.is_block_device() {
            entry.kind = Kind::Block(meta.rdev());
        } else {
            // Sockets are not archived (as docker).
            continue;
        }
        out.push(entry);
    }
    Ok(())
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {}", p.display(), go_err(&e)))
}

/// Write the context as an uncompressed tar.
fn write_tar(ctx: &LocalContext, w: impl Write) -> io::Result<()> {
    use tar::{EntryType, Header};
    let mut b = tar::Builder::new(w);
    let header = |mode: u32, mtime: u64, t: EntryType| {
        let mut h = Header::new_gnu();
        h.set_entry_type(t);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h
    };
    for e in &ctx.entries {
        match &e.kind {
            Kind::Dir => {
                let mut h = header(e.mode, e.mtime, EntryType::Directory);
                let mut name = e.rel.as_os_str().to_os_string();
                name.push("/");
                b.append_data(&mut h, name, io::empty())?;
            }
            Kind::File => {
                let mut h = header(e.mode, e.mtime, EntryType::Regular);
                if let Some(content) = ctx.replaced.get(&e.rel) {
                    h.set_size(content.len() as u64);
                    b.append_data(&mut h, &e.rel, content.as_slice())?;
                    continue;
                }
                let abs = ctx.root.join(&e.rel);
                let f = std::fs::File::open(&abs).map_err(|err| with_path(err, &abs))?;
                let size = f.metadata().map_err(|err| with_path(err, &abs))?.len();
                h.set_size(size);
                // A file that changes while it is read still fills exactly its header's size.
                let data = f.take(size).chain(io::repeat(0)).take(size);
                b.append_data(&mut h, &e.rel, data)
                    .map_err(|err| with_path(err, &abs))?;
            }
            Kind::HardLink(target) => {
                let mut h = header(e.mode, e.mtime, EntryType::Link);
                b.append_link(&mut h, &e.rel, target)?;
            }
            Kind::Symlink(target) => {
                let mut h = header(e.mode, e.mtime, EntryType::Symlink);
                b.append_link(&mut h, &e.rel, target)?;
            }
            Kind::Fifo => {
                let mut h = header(e.mode, e.mtime, EntryType::Fifo);
                b.append_data(&mut h, &e.rel, io::empty())?;
            }
            Kind::Char(dev) | Kind::Block(dev) => {
                let t = if matches!(e.kind, Kind::Char(_)) {
                    EntryType::Char
                } else {
                    EntryType::Block
                };
                let mut h = header(e.mode, e.mtime, t);
                h.set_device_major(rustix::fs::major(*dev))?;
                h.set_device_minor(rustix::fs::minor(*dev))?;
                b.append_data(&mut h, &e.rel, io::empty())?;
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for (name, content, mode) in &ctx.added {
        let mut h = header(*mode, now, EntryType::Regular);
        h.set_size(content.len() as u64);
        b.append_data(&mut h, name, content.as_slice())?;
    }
    b.into_inner()?.flush()
}

/// A tar of one file (a Dockerfile read from stdin as the context).
fn single_file_tar(name: &str, content: &[u8]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(content.len() as u64);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    b.append_data(&mut h, name, content)?;
    b.into_inner()
}

/// The writing end of the channel the tar goes through.
struct ChanWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChanWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the request ended"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The reading end: the request body. Counts what was sent.
struct ChanReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    sent: Arc<AtomicU64>,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A reader that counts what goes through it.
struct Counted<R> {
    inner: R,
    sent: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Stream `ctx` as a tar from a thread.
fn stream_tar(ctx: LocalContext, sent: Arc<AtomicU64>) -> Box<dyn Read + Send> {
    let (tx, rx) = sync_channel(8);
    let err_tx = tx.clone();
    std::thread::spawn(move || {
        let mut w = ChanWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let r = write_tar(&ctx, &mut w).and_then(|()| w.flush());
        if let Err(e) = r {
            let _ = err_tx.send(Err(e));
        }
    });
    Box::new(ChanReader {
        rx,
        cur: Vec::new(),
        pos: 0,
        sent,
    })
}

/// The body and `dockerfile` parameter of a build.
struct Prepared {
    body: Box<dyn Read + Send>,
    dockerfile: String,
    sent: Arc<AtomicU64>,
}

/// docker's `urlutil.IsURL` / `IsGitURL`.
fn is_url(s: &str) -> bool {
    ["http://", "https://", "git://", "git@", "github.com/"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Does `head` start an archive (tar, or compressed)?
fn is_archive(head: &[u8]) -> bool {
    let compressed = head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    compressed || (head.len() >= 262 && &head[257..262] == b"ustar")
}

fn read_stdin_all() -> Result<Vec<u8>> {
    let mut b = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut b)
        .context("reading stdin")?;
    Ok(b)
}

fn prepare(a: &BuildArgs) -> Result<Prepared> {
    let sent = Arc::new(AtomicU64::new(0));
    let file = a.file.as_deref().filter(|f| !f.is_empty());
    if a.context == "-" {
        if file == Some("-") {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        // A tar (sent as it is), or a Dockerfile alone.
        let mut stdin = io::stdin();
        let mut head = vec![0u8; 512];
        let mut got = 0;
        while got < head.len() {
            match stdin.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(anyhow!(e).context("reading stdin")),
            }
        }
        head.truncate(got);
        if is_archive(&head) {
            let body = io::Cursor::new(head).chain(stdin);
            return Ok(Prepared {
                body: Box::new(Counted {
                    inner: body,
                    sent: sent.clone(),
                }),
                dockerfile: file.unwrap_or("Dockerfile").to_string(),
                sent,
            });
        }
        if file.is_some() {
            bail!(
                "unable to prepare context: ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles"
            );
        }
        let mut content = head;
        stdin.read_to_end(&mut content).context("reading stdin")?;
        let tar = single_file_tar("Dockerfile", &content)?;
        return Ok(Prepared {
            body: Box::new(Counted {
                inner: io::Cursor::new(tar),
                sent: sent.clone(),
            }),
            dockerfile: "Dockerfile".into(),
            sent,
        });
    }
    let path = Path::new(&a.context);
    if std::fs::metadata(path).is_err() {
        if is_url(&a.context) {
            bail!("berth build: a URL context is not supported yet");
        }
        bail!("unable to prepare context: path {:?} not found", a.context);
    }
    let source = match file {
        None => DockerfileSource::Default,
        Some("-") => DockerfileSource::Given(read_stdin_all()?),
        Some(f) => DockerfileSource::File(PathBuf::from(f)),
    };
    let ctx = local_context(path, source)?;
    let dockerfile = ctx.dockerfile.clone();
    Ok(Prepared {
        body: stream_tar(ctx, sent.clone()),
        dockerfile,
        sent,
    })
}

// ---------------------------------------------------------------------------------------
// The request.

/// `KEY=VALUE` items as a JSON object; `KEY` alone is `env(KEY)` (left out when `None`).
fn kv_object(items: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Value> {
    let mut m = BTreeMap::new();
    for kv in items {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv.as_str(), env(kv)),
        };
        if k.is_empty() {
            bail!("invalid argument {kv:?}: want KEY=VALUE");
        }
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Ok(json!(m))
}

/// `host:ip` (or `host=ip`), checked as docker's `ValidateExtraHost`.
fn extra_host(s: &str) -> Result<String> {
    let i = s.find(['=', ':']);
    let (host, ip) = match i {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => bail!("invalid argument {s:?} for \"--add-host\" flag: bad format for add-host"),
    };
    let bare = ip.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || (bare != "host-gateway" && bare.parse::<std::net::IpAddr>().is_err()) {
        bail!(
            "invalid argument {s:?} for \"--add-host\" flag: invalid IP address in add-host: {ip:?}"
        );
    }
    Ok(format!("{host}:{bare}"))
}

/// The credentials `berth login` stored, as X-Registry-Config wants them.
fn registry_config() -> String {
    use base64::Engine as _;
    use berth_registry::credentials;
    let creds = credentials::default_path()
        .and_then(|p| credentials::load(&p).ok())
        .unwrap_or_default();
    let mut m = Map::new();
    for (reg, c) in creds {
        let key = credentials::registry_key(&reg);
        m.insert(
            key.clone(),
            json!({"username": c.username, "password": c.password, "serveraddress": key}),
        );
    }
    base64::engine::general_purpose::URL_SAFE.encode(Value::Object(m).to_string())
}

fn build_request(a: &BuildArgs, dockerfile: &str) -> Result<Request> {
    let mut req = Request::post("/build").q("version", "1");
    for t in &a.tags {
        berth_registry::Reference::parse(t).map_err(|_| {
            anyhow!("invalid argument {t:?} for \"-t, --tag\" flag: invalid reference format")
        })?;
        req = req.q("t", t);
    }
    let build_args = kv_object(&a.build_args, |k| std::env::var(k).ok())?;
    let labels = kv_object(&a.labels, |_| Some(String::new()))?;
    req = req
        .q("dockerfile", dockerfile)
        .q("buildargs", build_args)
        .q("labels", labels)
        .q("cachefrom", json!(a.cache_from))
        .q_if(a.no_cache, "nocache", 1)
        .q_if(a.pull, "pull", 1)
        .q_if(a.quiet, "q", 1)
        .q("rm", if a.rm { 1 } else { 0 })
        .q_if(a.force_rm, "forcerm", 1)
        .q_opt("target", a.target.as_deref().filter(|t| !t.is_empty()))
        .q_opt(
            "networkmode",
            a.network.as_deref().filter(|t| !t.is_empty()),
        )
        .q_opt(
            "platform",
            a.platform
                .clone()
                .or_else(|| std::env::var("DOCKER_DEFAULT_PLATFORM").ok())
                .filter(|t| !t.is_empty()),
        );
    for h in &a.add_hosts {
        req = req.q("extrahosts", extra_host(h)?);
    }
    if let Some(s) = &a.shm_size {
        req = req.q("shmsize", super::run::size("--shm-size", s)?);
    }
    if let Some(m) = &a.memory {
        req = req.q("memory", super::run::size("--memory", m)?);
    }
    Ok(req.header("X-Registry-Config", registry_config()))
}

// ---------------------------------------------------------------------------------------
// The output.

/// The compact display: one `#N` block per step, printed as it goes.
struct Display<W: Write> {
    out: W,
    n: usize,
    /// The current block: its number, start, whether it was cached.
    cur: Option<(usize, Instant, bool)>,
    partial: String,
    stage: usize,
    stage_name: Option<String>,
    /// The `exporting to image` block, once started.
    export: Option<usize>,
    image_id: Option<String>,
}

impl<W: Write> Display<W> {
    fn new(out: W) -> Display<W> {
        Display {
            out,
            n: 0,
            cur: None,
            partial: String::new(),
            stage: 0,
            stage_name: None,
            export: None,
            image_id: None,
        }
    }

    fn begin(&mut self, title: &str) -> usize {
        self.n += 1;
        let _ = writeln!(self.out, "#{} {title}", self.n);
        self.cur = Some((self.n, Instant::now(), false));
        self.n
    }

    /// The context was sent: its own block, as BuildKit's `load build context`.
    fn context(&mut self, bytes: u64, took: std::time::Duration) {
        self.n += 1;
        let n = self.n;
        let _ = writeln!(self.out, "#{n} [internal] load build context");
        let _ = writeln!(self.out, "#{n} transferring context: {} done", human(bytes));
        let _ = writeln!(self.out, "#{n} DONE {:.1}s", took.as_secs_f64());
        let _ = self.out.flush();
    }

    fn stream(&mut self, text: &str) {
        self.partial.push_str(text);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.line(line.trim_end_matches(['\n', '\r']));
        }
        let _ = self.out.flush();
    }

    fn output(&mut self, line: &str) {
        // A line may hold carriage returns (progress bars): keep what it ends showing.
        let line = line.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
        match self.cur {
            Some((n, ..)) => {
                let _ = writeln!(self.out, "#{n} {line}");
            }
            None => {
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    fn line(&mut self, l: &str) {
        if let Some(rest) = l.strip_prefix("Step ")
            && let Some((num, instr)) = rest.split_once(" : ")
            && num.contains('/')
        {
            self.finish();
            let words: Vec<&str> = instr.split_whitespace().collect();
            if words
                .first()
                .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
            {
                self.stage_name = match words.as_slice() {
                    [_, _, a, name, ..] if a.eq_ignore_ascii_case("AS") => {
                        Some((*name).to_string())
                    }
                    _ if self.stage > 0 || !num.starts_with("1/") => {
                        Some(format!("stage-{}", self.stage))
                    }
                    _ => None,
                };
                self.stage += 1;
            }
            let label = match &self.stage_name {
                Some(s) => format!("[{s} {num}]"),
                None => format!("[{num}]"),
            };
            self.begin(&format!("{label} {instr}"));
            return;
        }
        if l == " ---> Using cache" {
            if let Some(c) = &mut self.cur {
                c.2 = true;
            }
            return;
        }
        if l.starts_with(" ---> ") || l.starts_with("Removing intermediate container ") {
            return;
        }
        if let Some(id) = l.strip_prefix("Successfully built ") {
            let id = self.image_id.clone().unwrap_or_else(|| id.to_string());
            self.exporting();
            let n = self.n;
            let _ = writeln!(self.out, "#{n} writing image {id} done");
            return;
        }
        if let Some(tag) = l.strip_prefix("Successfully tagged ") {
            self.exporting();
            let n = self.n;
            let _ = writeln!(self.out, "#{n} naming to {tag} done");
            return;
        }
        self.output(l);
    }

    fn exporting(&mut self) {
        if self.export.is_none() {
            self.finish();
            self.export = Some(self.begin("exporting to image"));
        }
    }

    /// A pull's status line.
    fn status(&mut self, id: &str, status: &str) {
        if id.is_empty() {
            self.output(status);
        } else {
            self.output(&format!("{id}: {status}"));
        }
        let _ = self.out.flush();
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.output(&rest);
        }
    }

    /// End the current block.
    fn finish(&mut self) {
        self.flush_partial();
        if let Some((n, start, cached)) = self.cur.take() {
            if cached {
                let _ = writeln!(self.out, "#{n} CACHED");
            } else {
                let _ = writeln!(self.out, "#{n} DONE {:.1}s", start.elapsed().as_secs_f64());
            }
        }
        let _ = self.out.flush();
    }

    fn error(&mut self, msg: &str) {
        self.flush_partial();
        match self.cur.take() {
            Some((n, ..)) => {
                let _ = writeln!(self.out, "#{n} ERROR: {msg}");
            }
            None => {
                let _ = writeln!(self.out, "ERROR: {msg}");
            }
        }
        let _ = self.out.flush();
    }
}

/// How the stream is shown.
enum Output<W: Write> {
    Quiet(String),
    Plain(W),
    Tty(Display<W>),
}

/// What a build's stream ended with.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Built: the image ID (when the daemon said it).
    Built(Option<String>),
    /// The build failed: the message and the exit code.
    Failed(String, u8),
}

/// Follow the build's stream to its end.
fn follow<W: Write>(
    msgs: impl Iterator<Item = Result<Value>>,
    out: &mut Output<W>,
) -> Result<Outcome> {
    let mut id: Option<String> = None;
    let mut built: Option<String> = None;
    for m in msgs {
        let m = m?;
        if !m["errorDetail"].is_null() || !m["error"].is_null() {
            let msg = m["errorDetail"]["message"]
                .as_str()
                .or(m["error"].as_str())
                .unwrap_or("the build failed")
                .to_string();
            let code = m["errorDetail"]["code"].as_i64().unwrap_or(0);
            let code = match (code & 0xff) as u8 {
                0 => 1,
                c => c,
            };
            match out {
                Output::Tty(d) => d.error(&msg),
                Output::Quiet(buf) => {
                    // As the docker CLI: what was held back is shown with the error.
                    eprint!("{buf}");
                }
                Output::Plain(w) => {
                    let _ = w.flush();
                }
            }
            return Ok(Outcome::Failed(msg, code));
        }
        if let Some(v) = m["aux"]["ID"].as_str() {
            id = Some(v.to_string());
            if let Output::Tty(d) = out {
                d.image_id = Some(v.to_string());
            }
            continue;
        }
        if !m["aux"].is_null() {
            continue;
        }
        if let Some(s) = m["stream"].as_str() {
            for l in s.lines() {
                if let Some(b) = l.trim().strip_prefix("Successfully built ") {
                    built = Some(b.to_string());
                } else if l.trim().starts_with("sha256:") && id.is_none() && built.is_none() {
                    built = Some(l.trim().to_string());
                }
            }
            match out {
                Output::Quiet(buf) => buf.push_str(s),
                Output::Plain(w) => {
                    let _ = w.write_all(s.as_bytes());
                    let _ = w.flush();
                }
                Output::Tty(d) => d.stream(s),
            }
            continue;
        }
        let status = m["status"].as_str().unwrap_or_default();
        if status.is_empty() || m["progressDetail"]["current"].is_u64() {
            continue;
        }
        let pid = m["id"].as_str().unwrap_or_default();
        match out {
            Output::Quiet(buf) => {
                if pid.is_empty() {
                    buf.push_str(&format!("{status}\n"));
                } else {
                    buf.push_str(&format!("{pid}: {status}\n"));
                }
            }
            Output::Plain(w) => {
                let _ = if pid.is_empty() {
                    writeln!(w, "{status}")
                } else {
                    writeln!(w, "{pid}: {status}")
                };
                let _ = w.flush();
            }
            Output::Tty(d) => d.status(pid, status),
        }
    }
    if let Output::Tty(d) = out {
        d.finish();
    }
    Ok(Outcome::Built(id.or(built)))
}

/// `--secret`s for the daemon (berth's own header; the classic API has no way for them):
/// base64 JSON of id → base64 content.
fn secrets_header(secrets: &[Secret]) -> Result<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut m = serde_json::Map::new();
    for sec in secrets {
        let content = match (&sec.src, &sec.env) {
            (Some(p), _) => std::fs::read(p)
                .with_context(|| format!("reading secret {} from {}", sec.id, p.display()))?,
            (None, Some(e)) => std::env::var(e)
                .map(String::into_bytes)
                .map_err(|_| anyhow!("secret {}: environment variable {e} is not set", sec.id))?,
            (None, None) => bail!("secret {} has no source", sec.id),
        };
        m.insert(sec.id.clone(), Value::String(b64.encode(content)));
    }
    Ok(b64.encode(Value::Object(m).to_string()))
}

/// `berth build`.
pub fn build(c: &Client, a: &BuildArgs) -> Result<ExitCode> {
    if let Some(f) = &a.iidfile
        && let Err(e) = std::fs::remove_file(f)
        && e.kind() != io::ErrorKind::NotFound
    {
        return Err(anyhow!(e).context(format!("Removing image ID file {}", f.display())));
    }
    let remote = (std::fs::metadata(&a.context).is_err()
        && (a.context.starts_with("http://") || a.context.starts_with("https://")))
    .then(|| a.context.clone());
    let prepared = match &remote {
        // A URL of a tarball or a Dockerfile: the daemon fetches it (`remote=`).
        Some(_) => Prepared {
            body: Box::new(io::empty()),
            dockerfile: a.file.clone().unwrap_or_else(|| "Dockerfile".into()),
            sent: Arc::new(AtomicU64::new(0)),
        },
        None => prepare(a)?,
    };
    let mut req = build_request(a, &prepared.dockerfile)?;
    if let Some(url) = &remote {
        req = req.q("remote", url);
    }
    if !a.secrets.is_empty() {
        req = req.header("X-Berth-Build-Secrets", secrets_header(&a.secrets)?);
    }
    let started = Instant::now();
    let resp = c.call(req.stream(prepared.body, "application/x-tar"))?;
    let sent = prepared.sent.load(Ordering::Relaxed);
    let tty = match a.progress {
        ProgressMode::Tty => true,
        ProgressMode::Plain => false,
        ProgressMode::Auto => io::stdout().is_terminal(),
    };
    let stdout = io::stdout();
    let mut out = if a.quiet {
        Output::Quiet(String::new())
    } else if tty {
        let mut d = Display::new(stdout.lock());
        d.context(sent, started.elapsed());
        Output::Tty(d)
    } else {
        let mut w = stdout.lock();
        let _ = writeln!(w, "Sending build context to Docker daemon  {}", human(sent));
        Output::Plain(w)
    };
    let outcome = follow(resp.json_stream(), &mut out)?;
    drop(out);
    match outcome {
        Outcome::Failed(msg, code) => {
            eprintln!("{msg}");
            Ok(ExitCode::from(code))
        }
        Outcome::Built(id) => {
            if let Some(f) = &a.iidfile {
                let Some(id) = &id else {
                    bail!(
                        "Server did not provide an image ID. Cannot write {}",
                        f.display()
                    );
                };
                std::fs::write(f, id)
                    .with_context(|| format!("writing the image ID to {}", f.display()))?;
            }
            if a.quiet {
                match &id {
                    Some(id) => println!("{id}"),
                    None => bail!("the daemon did not say which image it built"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `berth builder prune`.
pub fn prune(c: &Client, a: &PruneArgs) -> Result<ExitCode> {
    let what = if a.all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    if !a.force && !super::confirm(what) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut req = Request::post("/build/prune")
        .q_if(a.all, "all", 1)
        .filters(&a.filter)?;
    if let Some(k) = &a.keep_storage {
        req = req.q("keep-storage", super::run::size("--keep-storage", k)?);
    }
    let v = c.json(req)?;
    let deleted: Vec<&str> = v["CachesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !deleted.is_empty() {
        println!("Deleted build cache objects:");
        for id in deleted {
            println!("{id}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human(v["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// The entries of a context's tar: name, type, uid, gid, link target, content.
    fn entries(ctx: &LocalContext) -> Vec<(String, tar::EntryType, u64, u64, String, Vec<u8>)> {
        let mut buf = Vec::new();
        write_tar(ctx, &mut buf).unwrap();
        let mut a = tar::Archive::new(buf.as_slice());
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let t = e.header().entry_type();
                let uid = e.header().uid().unwrap();
                let gid = e.header().gid().unwrap();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut content = Vec::new();
                e.read_to_end(&mut content).unwrap();
                (name, t, uid, gid, link, content)
            })
            .collect()
    }

    fn names(ctx: &LocalContext) -> Vec<String> {
        entries(ctx).into_iter().map(|e| e.0).collect()
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn ignore_rules_and_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(
            root,
            ".dockerignore",
            "*.log\nbuild\n!build/keep.txt\nnode_modules\n.git\n",
        );
        write(root, "a.txt", "a");
        write(root, "b.log", "b");
        write(root, "src/main.rs", "fn main() {}");
        write(root, "src/x.log", "x");
        write(root, "build/out.o", "o");
        write(root, "build/keep.txt", "k");
        write(root, "node_modules/m/index.js", "m");
        write(root, ".git/HEAD", "ref");
        let ctx = local_context(root, DockerfileSource::Default).unwrap();
        assert_eq!(ctx.dockerfile, "Dockerfile");
        assert_eq!(
            names(&ctx),
            vec![
                ".dockerignore",
                "Dockerfile",
                "a.txt",
                "build/keep.txt",
                "src/",
                "src/main.rs",
                // Patterns are anchored at the root (as docker's): `*.log` is not `**/*.log`.
                "src/x.log",
            ]
        );
        for (name, _, uid, gid, ..) in entries(&ctx) {
            assert_eq!((uid, gid), (0, 0), "{name}");
        }
    }

    #[test]
    fn dockerfile_and_dockerignore_always_sent() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "docker/Dockerfile.dev", "FROM scratch\n");
        write(root, "docker/other", "o");
        write(
            root,
            ".dockerignore",
            ".dockerignore\ndocker\nDockerfile*\n",
        );
        write(root, "keep", "k");
        let ctx = local_context(
            root,
            DockerfileSource::File(root.join("docker/Dockerfile.dev")),
        )
        .unwrap();
        assert_eq!(ctx.dockerfile, "docker/Dockerfile.dev");
        assert_eq!(
            names(&ctx),
            vec![".dockerignore", "docker/Dockerfile.dev", "keep"]
        );
    }

    #[test]
    fn symlinks_are_kept_as_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, "real/file", "content");
        symlink("real/file", root.join("link")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("real", root.join("dirlink")).unwrap();
        let ctx = local_context(root, DockerfileSource::Default).unwrap();
        let es = entries(&ctx);
        let find = |n: &str| es.iter().find(|e| e.0 == n).unwrap().clone();
        assert_eq!(find("link").1, tar::EntryType::Symlink);
        assert_eq!(find("link").4, "real/file");
        assert_eq!(find("abs").1, tar::EntryType::Symlink);
        assert_eq!(find("abs").4, "/etc");
        assert_eq!(find("dirlink").1, tar::EntryType::Symlink);
        assert!(!es.iter().any(|e| e.0.starts_with("dirlink/")));
        assert_eq!(find("real/file").5, b"content");
        assert_eq!(find("real/").1, tar::EntryType::Directory);
    }

    #[test]
    fn modes_mtimes_and_hard_links() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, "run.sh", "#!/bin/sh\n");
        let p = root.join("run.sh");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o751)).unwrap();
        std::fs::hard_link(&p, root.join("z-again.sh")).unwrap();
        let mtime = std::fs::metadata(&p).unwrap().mtime() as u64;
        let ctx = local_context(root, DockerfileSource::Default).unwrap();
        let mut buf = Vec::new();
        write_tar(&ctx, &mut buf).unwrap();
        let mut a = tar::Archive::new(buf.as_slice());
        let mut seen = 0;
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name == "run.sh" {
                assert_eq!(e.header().mode().unwrap(), 0o751);
                assert_eq!(e.header().mtime().unwrap(), mtime);
                seen += 1;
            }
            if name == "z-again.sh" {
                assert_eq!(e.header().entry_type(), tar::EntryType::Link);
                assert_eq!(e.link_name().unwrap().unwrap(), Path::new("run.sh"));
                seen += 1;
            }
        }
        assert_eq!(seen, 2);
    }

    #[test]
    fn dockerfile_outside_the_context_is_added() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ctx");
        write(&root, "a", "a");
        write(d.path(), "elsewhere/Dockerfile", "FROM busybox\n");
        let ctx = local_context(
            &root,
            DockerfileSource::File(d.path().join("elsewhere/Dockerfile")),
        )
        .unwrap();
        assert!(ctx.dockerfile.starts_with(".dockerfile."));
        assert_eq!(ctx.dockerfile.len(), ".dockerfile.".len() + 20);
        let es = entries(&ctx);
        let names: Vec<&str> = es.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, vec!["a", ".dockerignore", ctx.dockerfile.as_str()]);
        assert_eq!(es[2].5, b"FROM busybox\n");
        // Its name is ignored, so that COPY does not see it.
        let ig = String::from_utf8(es[1].5.clone()).unwrap();
        assert!(ig.contains(&format!("\n{}\n", ctx.dockerfile)));

        // With a .dockerignore of its own, that one is extended; from stdin, the same.
        write(&root, ".dockerignore", "*.tmp");
        let ctx = local_context(&root, DockerfileSource::Given(b"FROM x\n".to_vec())).unwrap();
        let es = entries(&ctx);
        assert_eq!(es[0].0, ".dockerignore");
        assert_eq!(
            String::from_utf8(es[0].5.clone()).unwrap(),
            format!("*.tmp\n{}\n", ctx.dockerfile)
        );
        assert_eq!(es.last().unwrap().0, ctx.dockerfile);
        assert_eq!(es.last().unwrap().5, b"FROM x\n");
    }

    #[test]
    fn context_errors_as_docker() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let e = local_context(root, DockerfileSource::Default).unwrap_err();
        let canon = std::fs::canonicalize(root).unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}/Dockerfile: no such file or directory",
                canon.display()
            )
        );
        write(root, "dockerfile", "FROM scratch\n");
        let ctx = local_context(root, DockerfileSource::Default).unwrap();
        assert_eq!(ctx.dockerfile, "dockerfile");
        let e = local_context(&root.join("dockerfile"), DockerfileSource::Default).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unable to prepare context: context must be a directory: "),
            "{e}"
        );
        let a = BuildArgs {
            context: root.join("nope").display().to_string(),
            ..Default::default()
        };
        let e = prepare(&a).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "unable to prepare context: path \"{}\" not found",
                root.join("nope").display()
            )
        );
        let a = BuildArgs {
            context: "https://github.com/x/y.git".into(),
            ..Default::default()
        };
        assert_eq!(
            prepare(&a).err().unwrap().to_string(),
            "berth build: a URL context is not supported yet"
        );
    }

    #[test]
    fn streamed_through_the_channel() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, "big", &"x".repeat(300_000));
        let ctx = local_context(root, DockerfileSource::Default).unwrap();
        let mut direct = Vec::new();
        write_tar(&ctx, &mut direct).unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let mut streamed = Vec::new();
        stream_tar(ctx, sent.clone())
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(direct, streamed);
        assert_eq!(sent.load(Ordering::Relaxed), streamed.len() as u64);
    }

    #[test]
    fn parameters() {
        let env = |k: &str| (k == "SET").then(|| "from-env".to_string());
        let v = kv_object(
            &["A=1".into(), "SET".into(), "UNSET".into(), "B=".into()],
            env,
        )
        .unwrap();
        assert_eq!(v, json!({"A": "1", "SET": "from-env", "B": ""}));
        assert_eq!(extra_host("db:10.0.0.2").unwrap(), "db:10.0.0.2");
        assert_eq!(extra_host("db=::1").unwrap(), "db:::1");
        assert_eq!(extra_host("gw:host-gateway").unwrap(), "gw:host-gateway");
        assert!(extra_host("db").is_err());
        assert!(extra_host("db:notanip").is_err());
        let s = parse_secret("id=tok,src=/run/tok").unwrap();
        assert_eq!(s.id, "tok");
        assert_eq!(s.src, Some(PathBuf::from("/run/tok")));
        assert!(parse_secret("nonsense").is_err());
        assert!(is_archive(&{
            let mut h = vec![0u8; 512];
            h[257..262].copy_from_slice(b"ustar");
            h
        }));
        assert!(!is_archive(b"FROM busybox\n"));
    }

    fn stream_of(lines: &[Value]) -> impl Iterator<Item = Result<Value>> {
        lines.iter().cloned().map(Ok)
    }

    #[test]
    fn plain_output_is_the_stream() {
        let msgs = [
            json!({"stream": "Step 1/2 : FROM busybox\n"}),
            json!({"status": "Pulling from library/busybox", "id": "latest"}),
            json!({"status": "Downloading", "id": "abc", "progressDetail": {"current": 1, "total": 2}}),
            json!({"stream": " ---> abc\n"}),
            json!({"aux": {"ID": "sha256:feed"}}),
            json!({"stream": "Successfully built feed\n"}),
        ];
        let mut out = Output::Plain(Vec::new());
        let r = follow(stream_of(&msgs), &mut out).unwrap();
        assert_eq!(r, Outcome::Built(Some("sha256:feed".into())));
        let Output::Plain(w) = out else { panic!() };
        assert_eq!(
            String::from_utf8(w).unwrap(),
            "Step 1/2 : FROM busybox\nlatest: Pulling from library/busybox\n ---> abc\nSuccessfully built feed\n"
        );
    }

    #[test]
    fn compact_output_and_errors() {
        let msgs = [
            json!({"stream": "Step 1/3 : FROM busybox AS base\n"}),
            json!({"stream": " ---> 1234\n"}),
            json!({"stream": "Step 2/3 : RUN echo hi\n"}),
            json!({"stream": " ---> Using cache\n"}),
            json!({"stream": " ---> 5678\n"}),
            json!({"stream": "Step 3/3 : RUN make\n"}),
            json!({"stream": " ---> Running in abc\n"}),
            json!({"stream": "compiling\nlinking"}),
            json!({"stream": " done\n"}),
            json!({"errorDetail": {"message": "The command '/bin/sh -c make' returned a non-zero code: 2", "code": 2}, "error": "x"}),
        ];
        let mut out = Output::Tty(Display::new(Vec::new()));
        let r = follow(stream_of(&msgs), &mut out).unwrap();
        assert_eq!(
            r,
            Outcome::Failed(
                "The command '/bin/sh -c make' returned a non-zero code: 2".into(),
                2
            )
        );
        let Output::Tty(d) = out else { panic!() };
        let text = String::from_utf8(d.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#1 [base 1/3] FROM busybox AS base");
        assert!(lines[1].starts_with("#1 DONE "), "{text}");
        assert_eq!(lines[2], "#2 [base 2/3] RUN echo hi");
        assert_eq!(lines[3], "#2 CACHED");
        assert_eq!(lines[4], "#3 [base 3/3] RUN make");
        assert_eq!(lines[5], "#3 compiling");
        assert_eq!(lines[6], "#3 linking done");
        assert_eq!(
            lines[7],
            "#3 ERROR: The command '/bin/sh -c make' returned a non-zero code: 2"
        );

        let msgs = [
            json!({"stream": "Step 1/1 : FROM busybox\n"}),
            json!({"aux": {"ID": "sha256:feed"}}),
            json!({"stream": "Successfully built feed\n"}),
            json!({"stream": "Successfully tagged x:latest\n"}),
        ];
        let mut out = Output::Tty(Display::new(Vec::new()));
        follow(stream_of(&msgs), &mut out).unwrap();
        let Output::Tty(d) = out else { panic!() };
        let text = String::from_utf8(d.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#1 [1/1] FROM busybox");
        assert_eq!(lines[2], "#2 exporting to image");
        assert_eq!(lines[3], "#2 writing image sha256:feed done");
        assert_eq!(lines[4], "#2 naming to x:latest done");
        assert!(lines[5].starts_with("#2 DONE "));

        let msgs = [json!({"errorDetail": {"message": "boom"}, "error": "boom"})];
        let mut out: Output<Vec<u8>> = Output::Quiet(String::new());
        assert_eq!(
            follow(stream_of(&msgs), &mut out).unwrap(),
            Outcome::Failed("boom".into(), 1)
        );
    }
}
