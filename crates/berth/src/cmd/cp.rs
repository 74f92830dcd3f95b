//! `berth cp`: files between a container and the host through the archive endpoints (GET,
//! PUT and HEAD `/containers/{id}/archive`), with docker's rules for what lands where: into a
//! directory that exists, or renamed to a destination that does not, `SRC/.` for a
//! directory's contents, `-` for a tar on stdin/stdout.

use std::io::{IsTerminal, Read};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;

use super::client::{Client, Request, seg};

/// `berth cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy.
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH or -.
    pub src: String,
    /// CONTAINER:DEST_PATH or DEST_PATH or -.
    pub dest: String,
}

/// `CONTAINER:PATH` or a local path (absolute paths and `./x:y` are local).
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => (Some(c), p),
        _ => (None, arg),
    }
}

/// Go's os.ModeDir and os.ModeSymlink in the stat header's mode.
const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;

/// A path's stat in a container (the X-Docker-Container-Path-Stat header); None if absent.
fn stat(c: &Client, container: &str, path: &str) -> Result<Option<Value>> {
    let r =
        c.send(Request::head(format!("/containers/{}/archive", seg(container))).q("path", path))?;
    match r.status {
        200 => Ok(r
            .header("X-Docker-Container-Path-Stat")
            .and_then(decode_stat)),
        404 => {
            // A missing container is an error; a missing path is "absent".
            c.json(Request::get(format!("/containers/{}/json", seg(container))))?;
            Ok(None)
        }
        s => {
            // A HEAD answer has no body: ask again with GET for the daemon's message.
            c.call(
                Request::get(format!("/containers/{}/archive", seg(container))).q("path", path),
            )?;
            bail!("the daemon answered {s} to a stat of {path}")
        }
    }
}

fn decode_stat(h: &str) -> Option<Value> {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD
        .decode(h.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(h.trim()))
        .ok()?;
    serde_json::from_slice(&b).ok()
}

fn is_dir(stat: &Value) -> bool {
    stat["mode"].as_u64().is_some_and(|m| m & MODE_DIR != 0)
}

/// The last component of a path as docker takes it (`/a/b/` → `b`).
fn base_name(p: &str) -> String {
    Path::new(p.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

fn parent_of(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match Path::new(t).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_string_lossy().into_owned(),
        _ => {
            if t.starts_with('/') {
                "/".into()
            } else {
                ".".into()
            }
        }
    }
}

/// Run `cp`.
pub fn cp(c: &Client, a: &CpArgs) -> Result<ExitCode> {
    match (split(&a.src), split(&a.dest)) {
        ((Some(_), _), (Some(_), _)) => bail!("copying between containers is not supported"),
        ((None, _), (None, _)) => bail!("must specify at least one container source"),
        ((Some(ctr), src), (None, dest)) => from_container(c, a, ctr, src, dest),
        ((None, src), (Some(ctr), dest)) => to_container(c, a, src, ctr, dest),
    }
}

fn from_container(c: &Client, a: &CpArgs, ctr: &str, src: &str, dest: &str) -> Result<ExitCode> {
    let mut src_path = if src.is_empty() {
        "/".to_string()
    } else {
        src.to_string()
    };
    if a.follow_link {
        if let Some(st) = stat(c, ctr, &src_path)? {
            if st["mode"].as_u64().is_some_and(|m| m & MODE_SYMLINK != 0) {
                if let Some(t) = st["linkTarget"].as_str().filter(|t| !t.is_empty()) {
                    src_path = t.to_string();
                }
            }
        }
    }
    let r =
        c.call(Request::get(format!("/containers/{}/archive", seg(ctr))).q("path", &src_path))?;
    let st = r
        .header("X-Docker-Container-Path-Stat")
        .and_then(decode_stat)
        .unwrap_or(Value::Null);
    if dest == "-" {
        let mut out = std::io::stdout().lock();
        std::io::copy(&mut { r.body }, &mut out).context("writing the archive")?;
        return Ok(ExitCode::SUCCESS);
    }
    let src_dir = is_dir(&st);
    let src_base = st["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| base_name(&src_path));
    let contents = src_dir && (src_path.ends_with("/.") || src_path == ".");
    let dest_meta = std::fs::metadata(dest);
    // (directory to extract into, the name the source's top entry gets there)
    let (into, rename): (PathBuf, Option<String>) = match &dest_meta {
        Ok(m) if m.is_dir() => {
            if contents {
                (PathBuf::from(dest), Some(String::new()))
            } else {
                (PathBuf::from(dest), None)
            }
        }
        Ok(_) => {
            if src_dir {
                bail!("cannot copy a directory to a file: {dest}");
            }
            (PathBuf::from(parent_of(dest)), Some(base_name(dest)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dest.ends_with('/') && !src_dir {
                bail!("destination directory {dest} does not exist");
            }
            let parent = PathBuf::from(parent_of(dest));
            if !parent.is_dir() {
                bail!("the parent directory of {dest} does not exist");
            }
            (parent, Some(base_name(dest)))
        }
        Err(e) => bail!("{dest}: {e}"),
    };
    let n = extract(r.body, &into, &src_base, rename.as_deref(), a.archive)?;
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!("Successfully copied {} to {dest}", super::human(n));
    }
    Ok(ExitCode::SUCCESS)
}

/// The path of an entry after renaming its first component `from` to `to` ("" drops it);
/// None for entries that would leave `into`.
fn rebased(entry: &Path, from: &str, to: Option<&str>) -> Option<PathBuf> {
    let mut comps = entry
        .components()
        .filter(|c| !matches!(c, Component::CurDir));
    let mut out = PathBuf::new();
    if let Some(to) = to {
        match comps.next() {
            Some(Component::Normal(first)) if first.to_string_lossy() == from => {
                out.push(to);
            }
            Some(Component::Normal(first)) => out.push(first),
            None => return Some(PathBuf::from(to)),
            _ => return None,
        }
    }
    for c in comps {
        match c {
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

/// Extract a tar into `into`, renaming its top entry; the bytes of regular files written.
fn extract(r: impl Read, into: &Path, from: &str, to: Option<&str>, archive: bool) -> Result<u64> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(archive);
    ar.set_overwrite(true);
    let mut total = 0u64;
    let root =
        std::fs::canonicalize(into).with_context(|| format!("resolving {}", into.display()))?;
    for e in ar.entries().context("reading the archive")? {
        let mut e = e.context("reading the archive")?;
        let path = e.path().context("an entry's path")?.into_owned();
        let Some(rel) = rebased(&path, from, to) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            // The source directory itself, copied as its contents: the destination stays.
            continue;
        }
        let target = into.join(&rel);
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
            // A symlink the copy made (or found) must not lead an entry out of `into`.
            let real =
                std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))?;
            if !real.starts_with(&root) {
                bail!(
                    "refusing to write {}: it would land outside {}",
                    rel.display(),
                    into.display()
                );
            }
        }
        let kind = e.header().entry_type();
        if kind.is_hard_link() {
            let link = e
                .link_name()
                .context("a hard link's target")?
                .ok_or_else(|| anyhow!("a hard link without a target"))?
                .into_owned();
            if let Some(lrel) = rebased(&link, from, to) {
                let _ = std::fs::remove_file(&target);
                std::fs::hard_link(into.join(lrel), &target)
                    .with_context(|| format!("linking {}", target.display()))?;
            }
            continue;
        }
        if kind.is_file() {
            total += e.header().size().unwrap_or(0);
        }
        e.unpack(&target)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(total)
}

fn to_container(c: &Client, a: &CpArgs, src: &str, ctr: &str, dest: &str) -> Result<ExitCode> {
    let dest = if dest.is_empty() { "/" } else { dest };
    if src == "-" {
        if std::io::stdin().is_terminal() {
            bail!("cannot copy from a terminal: send a tar archive on stdin");
        }
        match stat(c, ctr, dest)? {
            Some(st) if is_dir(&st) => {}
            Some(_) => bail!("destination \"{ctr}:{dest}\" must be a directory"),
            None => bail!("Could not find the file {dest} in container {ctr}"),
        }
        c.ok(Request::put(format!("/containers/{}/archive", seg(ctr)))
            .q("path", dest)
            .q("noOverwriteDirNonDir", "true")
            .stream(Box::new(std::io::stdin()), "application/x-tar"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let meta = if a.follow_link {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .with_context(|| format!("lstat {src}"))?;
    let src_dir = meta.is_dir();
    let contents = src_dir && (src.ends_with("/.") || src == ".");
    let dest_stat = stat(c, ctr, dest)?;
    // (directory in the container to extract into, the top entry's name; "" for contents)
    let (put_at, name) = match &dest_stat {
        Some(st) if is_dir(st) => (
            dest.to_string(),
            if contents {
                String::new()
            } else {
                base_name(src)
            },
        ),
        Some(_) => {
            if src_dir {
                bail!("cannot copy a directory to a file: {ctr}:{dest}");
            }
            (parent_of(dest), base_name(dest))
        }
        None => {
            if dest.ends_with('/') && !src_dir {
                bail!("destination directory {ctr}:{dest} does not exist");
            }
            (parent_of(dest), base_name(dest))
        }
    };
    let (rx, tx) = std::os::unix::net::UnixStream::pair().context("a pipe")?;
    let src_path = PathBuf::from(src);
    let archive = a.archive;
    let follow = a.follow_link;
    let writer = std::thread::spawn(move || -> Result<u64> {
        let mut b = tar::Builder::new(tx);
        b.follow_symlinks(false);
        let n = add(&mut b, &src_path, Path::new(&name), archive, follow, true)?;
        b.into_inner().context("finishing the archive")?;
        Ok(n)
    });
    let sent = c.ok(Request::put(format!("/containers/{}/archive", seg(ctr)))
        .q("path", &put_at)
        .q("noOverwriteDirNonDir", "true")
        .q_if(archive, "copyUIDGID", "true")
        .stream(Box::new(rx), "application/x-tar"));
    let written = writer
        .join()
        .map_err(|_| anyhow!("the archive writer failed"))?;
    sent?;
    let n = written?;
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!("Successfully copied {} to {ctr}:{dest}", super::human(n));
    }
    Ok(ExitCode::SUCCESS)
}

/// Add `path` to the archive as `name` ("" for a directory's contents), recursively.
fn add<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    archive: bool,
    follow: bool,
    top: bool,
) -> Result<u64> {
    let meta = if follow && top {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .with_context(|| format!("lstat {}", path.display()))?;
    let mut total = 0;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    if !archive {
        h.set_uid(0);
        h.set_gid(0);
        let _ = h.set_username("");
        let _ = h.set_groupname("");
    }
    let ft = meta.file_type();
    if ft.is_dir() {
        if !name.as_os_str().is_empty() {
            h.set_size(0);
            b.append_data(&mut h, name, std::io::empty())
                .with_context(|| format!("archiving {}", path.display()))?;
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", path.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = name.join(e.file_name());
            total += add(b, &e.path(), &child, archive, follow, false)?;
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        h.set_size(0);
        b.append_link(&mut h, name, &target)
            .with_context(|| format!("archiving {}", path.display()))?;
    } else if ft.is_file() {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        total += meta.len();
        b.append_data(&mut h, name, f)
            .with_context(|| format!("archiving {}", path.display()))?;
    } else {
        h.set_size(0);
        b.append_data(&mut h, name, std::io::empty())
            .with_context(|| format!("archiving {}", path.display()))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_renames_and_stays_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let tar_of = |entries: &[(&str, Option<&Path>, &[u8])]| {
            let mut b = tar::Builder::new(Vec::new());
            for (name, link, data) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                match link {
                    Some(t) => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        b.append_link(&mut h, name, t).unwrap();
                    }
                    None => {
                        h.set_size(data.len() as u64);
                        b.append_data(&mut h, name, *data).unwrap();
                    }
                }
            }
            b.into_inner().unwrap()
        };
        let t = tar_of(&[("src/a", None, b"A"), ("src/sub/b", None, b"B")]);
        extract(&t[..], tmp.path(), "src", Some("dst"), false).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("dst/sub/b")).unwrap(), b"B");
        // A directory's contents: its own entry is the destination.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "src/", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(1);
        b.append_data(&mut h, "src/c", &b"C"[..]).unwrap();
        let t = b.into_inner().unwrap();
        let into = tmp.path().join("contents");
        std::fs::create_dir(&into).unwrap();
        extract(&t[..], &into, "src", Some(""), false).unwrap();
        assert_eq!(std::fs::read(into.join("c")).unwrap(), b"C");
        let t = tar_of(&[
            ("src/link", Some(outside.path()), b""),
            ("src/link/evil", None, b"x"),
        ]);
        let err = extract(&t[..], tmp.path(), "src", None, false).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!outside.path().join("evil").exists());
    }

    #[test]
    fn arguments_and_paths() {
        assert_eq!(split("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split("./a:b"), (None, "./a:b"));
        assert_eq!(split("file"), (None, "file"));
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("b"), ".");
        assert_eq!(
            rebased(Path::new("src/x/y"), "src", Some("dst")),
            Some(PathBuf::from("dst/x/y"))
        );
        assert_eq!(
            rebased(Path::new("src/x"), "src", Some("")),
            Some(PathBuf::from("x"))
        );
        assert_eq!(rebased(Path::new("src/../x"), "src", None), None);
        assert_eq!(rebased(Path::new("/etc/x"), "etc", None), None);
    }
}
