//! The build context: the client's tar unpacked into a directory of the build's own, the
//! files a COPY or ADD names found in it (wildcards, `.dockerignore`, symlinks followed only
//! inside it), their content hashed for the cache key, and written as a tar of what goes
//! into the image.
//!
//! Everything here treats the context as hostile: it is unpacked by the layer unpacker
//! (entries resolved beneath the directory; `..`, absolute names and links out refused), and
//! every path a Dockerfile names is resolved with `RESOLVE_IN_ROOT` beneath it.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_dockerfile::Ignore;
use rustix::fs::{FileType, Mode, OFlags};
use sha2::{Digest as _, Sha256};

use crate::ops::archive::IN_ROOT;
use crate::{Error, Result};

/// A directory of files a COPY reads from: the build context (with its `.dockerignore`) or
/// another stage's root filesystem.
pub(crate) struct Source {
    /// The directory (an O_PATH fd).
    root: OwnedFd,
    /// What `.dockerignore` excludes (the context only).
    ignore: Option<Ignore>,
    /// For messages: "build context" or "stage foo".
    pub(crate) what: String,
}

/// A file (or tree) a COPY takes: where it is in its source, and under which name it goes.
#[derive(Debug, Clone)]
pub(crate) struct Picked {
    /// Its path in the source, cleaned, relative (`""`: the root).
    pub(crate) rel: String,
    /// Whether it is a directory (its contents are copied, not itself).
    pub(crate) dir: bool,
}

/// Unpack the context tar `spool` (plain, gzip or zstd) into `dir` (made here).
pub(crate) fn unpack(spool: &File, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::internal("making the context directory", e))?;
    let mut f = spool
        .try_clone()
        .map_err(|e| Error::internal("reading the build context", e))?;
    f.rewind()
        .map_err(|e| Error::internal("reading the build context", e))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).unwrap_or(0);
    if n == 0 {
        // An empty body: an empty context (`docker build -` with a Dockerfile only is a tar).
        return Ok(());
    }
    if head[..n].starts_with(b"BZh") || head[..n].starts_with(&[0xfd, b'7', b'z', b'X']) {
        return Err(Error::Invalid(
            "the build context is compressed with bzip2 or xz; send it plain, gzip or zstd".into(),
        ));
    }
    let reader = crate::ops::archive::decompressed(f)
        .map_err(|e| Error::Invalid(format!("reading the build context: {e}")))?;
    berth_layer::unpack(reader, dir, berth_layer::Mode::Flatten).map_err(|e| match e {
        berth_layer::Error::Fs { .. } => {
            Error::Internal(format!("unpacking the build context: {e}"))
        }
        e => Error::Invalid(
            e.to_string()
                .replacen("layer entry", "build context entry", 1)
                .replacen("reading the layer", "reading the build context", 1),
        ),
    })?;
    Ok(())
}

fn open_path(dir: BorrowedFd<'_>, rel: &str, follow: bool) -> io::Result<OwnedFd> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        dir,
        rel,
        flags,
        Mode::empty(),
        IN_ROOT,
    )?)
}

/// Read the file `rel` of a directory (resolved inside it), at most `max` bytes.
pub(crate) fn read_file(dir: &Path, rel: &str, max: u64) -> io::Result<Vec<u8>> {
    let root = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = open_path(root.as_fd(), rel, true)?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a regular file",
        ));
    }
    let f = File::from(reopen_read(&fd)?);
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(out)
}

fn reopen_read(fd: &OwnedFd) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .or_else(|_| {
        // A magic link is what /proc/self/fd/N is; NOFOLLOW refuses it on some kernels.
        rustix::fs::open(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    })?)
}

/// `path` cleaned as Go's `filepath.Clean` of `/path`, without the leading `/` (`""` is the
/// root). `..` cannot climb above the root.
pub(crate) fn clean_rel(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Whether a path (as written) climbs out of its root with `..`.
pub(crate) fn escapes(path: &str) -> bool {
    let mut depth: i64 = 0;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` for one path component.
pub(crate) fn glob_match(pat: &str, name: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|i| go(&p[1..], &s[i..])),
            Some('?') => !s.is_empty() && go(&p[1..], &s[1..]),
            Some('[') => {
                let Some(c) = s.first() else { return false };
                let mut i = 1;
                let negate = matches!(p.get(1), Some('^') | Some('!'));
                if negate {
                    i += 1;
                }
                let mut hit = false;
                let mut first = true;
                while i < p.len() && (p[i] != ']' || first) {
                    first = false;
                    let mut lo = p[i];
                    if lo == '\\' && i + 1 < p.len() {
                        i += 1;
                        lo = p[i];
                    }
                    let mut hi = lo;
                    if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                        hi = p[i + 2];
                        i += 2;
                    }
                    if lo <= *c && *c <= hi {
                        hit = true;
                    }
                    i += 1;
                }
                if i >= p.len() {
                    return false; // unterminated class: no match
                }
                hit != negate && go(&p[i + 1..], &s[1..])
            }
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && go(&p[2..], &s[1..]),
            Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let s: Vec<char> = name.chars().collect();
    go(&p, &s)
}

impl Source {
    /// The build context at `dir`, with its `.dockerignore` (if any).
    pub(crate) fn context(dir: &Path, dockerfile: &str) -> Result<Source> {
        // `<Dockerfile>.dockerignore` beside the Dockerfile first, as BuildKit reads it.
        let ignore = read_file(dir, &format!("{dockerfile}.dockerignore"), 1 << 20)
            .or_else(|_| read_file(dir, ".dockerignore", 1 << 20))
            .ok()
            .map(|b| Ignore::parse(&String::from_utf8_lossy(&b)));
        Ok(Source {
            root: open_dir(dir)?,
            ignore,
            what: "build context".into(),
        })
    }

    /// Another stage's root filesystem (or an image's) at `dir`.
    pub(crate) fn tree(dir: &Path, what: String) -> Result<Source> {
        Ok(Source {
            root: open_dir(dir)?,
            ignore: None,
            what,
        })
    }

    fn ignored(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.as_ref().is_some_and(|i| i.matches(rel))
    }

    fn not_found(&self, src: &str) -> Error {
        if self.ignore.is_some() || self.what == "build context" {
            Error::Invalid(format!(
                "file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
            ))
        } else {
            Error::Invalid(format!("{}: {src}: not found", self.what))
        }
    }

    /// The entries of directory `rel` (names, sorted), without the ignored ones.
    fn list(&self, rel: &str) -> io::Result<Vec<String>> {
        let fd = open_path(self.root.as_fd(), rel, true)?;
        let dfd = rustix::fs::openat(
            &fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&dfd)?;
        for e in dir.by_ref() {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let n = String::from_utf8_lossy(n).into_owned();
            let child = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if self.ignored(&child)
                && !self
                    .ignore
                    .as_ref()
                    .is_some_and(|i| i.may_include_below(&child))
            {
                continue;
            }
            names.push(n);
        }
        names.sort();
        Ok(names)
    }

    /// Open the regular file `rel` (links followed inside the source) for reading.
    pub(crate) fn open_read(&self, rel: &str) -> io::Result<File> {
        let fd = open_path(self.root.as_fd(), rel, true)?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(File::from(reopen_read(&fd)?))
    }

    fn stat(&self, rel: &str, follow: bool) -> io::Result<(OwnedFd, rustix::fs::Stat)> {
        let fd = open_path(self.root.as_fd(), rel, follow)?;
        let st = rustix::fs::fstat(&fd)?;
        Ok((fd, st))
    }

    /// The files a source as written (`src`, maybe with wildcards) picks, in order.
    pub(crate) fn pick(&self, src: &str) -> Result<Vec<Picked>> {
        if self.what == "build context" && escapes(src) {
            return Err(Error::Invalid(format!(
                "forbidden path outside the build context: {src} ()"
            )));
        }
        let rel = clean_rel(src);
        if !has_wildcard(&rel) {
            if self.ignored(&rel) {
                return Err(self.not_found(src));
            }
            let (_, st) = self.stat(&rel, true).map_err(|_| self.not_found(src))?;
            return Ok(vec![Picked {
                dir: FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                rel,
            }]);
        }
        // Wildcards: component by component.
        let mut found: Vec<String> = vec![String::new()];
        for comp in rel.split('/') {
            let mut next = Vec::new();
            for base in &found {
                if has_wildcard(comp) {
                    for name in self.list(base).unwrap_or_default() {
                        if glob_match(comp, &name) {
                            next.push(join(base, &name));
                        }
                    }
                } else {
                    let p = join(base, comp);
                    if self.stat(&p, false).is_ok() {
                        next.push(p);
                    }
                }
            }
            found = next;
        }
        let mut out = Vec::new();
        for rel in found {
            if self.ignored(&rel) {
                continue;
            }
            if let Ok((_, st)) = self.stat(&rel, true) {
                out.push(Picked {
                    dir: FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                    rel,
                });
            }
        }
        if out.is_empty() {
            return Err(Error::Invalid(format!(
                "no source files were specified (nothing matches {src})"
            )));
        }
        Ok(out)
    }

    /// Walk what `p` picked: `f(rel path below the picked root ("" for itself), fd, stat)`,
    /// parents before children, sorted, ignored paths skipped (their children too unless an
    /// exception may bring them back). The picked root itself is followed if a link; links
    /// beneath are not.
    pub(crate) fn walk(
        &self,
        p: &Picked,
        f: &mut dyn FnMut(&str, &OwnedFd, &rustix::fs::Stat) -> Result<()>,
    ) -> Result<()> {
        let (fd, st) = self
            .stat(&p.rel, true)
            .map_err(|e| Error::Invalid(format!("reading {}: {e}", p.rel)))?;
        f("", &fd, &st)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            // The picked directory with every link on its path followed.
            self.walk_dir(&p.rel, "", f)?;
        }
        Ok(())
    }

    fn walk_dir(
        &self,
        base: &str,
        below: &str,
        f: &mut dyn FnMut(&str, &OwnedFd, &rustix::fs::Stat) -> Result<()>,
    ) -> Result<()> {
        let dir = join(base, below);
        let names = self
            .list(&dir)
            .map_err(|e| Error::Invalid(format!("reading {dir}: {e}")))?;
        for n in names {
            let rel_src = join(&dir, &n);
            let rel = join(below, &n);
            let (fd, st) = self
                .stat(&rel_src, false)
                .map_err(|e| Error::Invalid(format!("reading {rel_src}: {e}")))?;
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if !self.ignored(&rel_src) {
                f(&rel, &fd, &st)?;
            }
            if is_dir {
                self.walk_dir(base, &rel, f)?;
            }
        }
        Ok(())
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::internal(format!("opening {}", dir.display()), io::Error::from(e)))
}

pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// How the copied files are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attrs {
    /// `--chown` (default root).
    pub(crate) owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub(crate) mode: Option<u32>,
}

/// One source for the tar: what was picked and the name it gets in the destination
/// directory (`""`: a directory's contents go straight into it).
pub(crate) struct Planned<'a> {
    pub(crate) source: &'a Source,
    pub(crate) picked: Picked,
    pub(crate) name: String,
    /// `--exclude` patterns: paths (below the picked root, or from the source's root) they
    /// match are not copied.
    pub(crate) exclude: Option<&'a Ignore>,
}

impl Planned<'_> {
    fn excluded(&self, rel: &str) -> bool {
        !rel.is_empty()
            && self
                .exclude
                .is_some_and(|x| x.matches(rel) || x.matches(&join(&self.picked.rel, rel)))
    }
}

/// Hash what the plan copies (names, kinds, modes, contents, link targets: not times nor the
/// context's owners) into `h`.
pub(crate) fn hash(plan: &[Planned<'_>], h: &mut Sha256) -> Result<()> {
    for p in plan {
        h.update(b"\0src\0");
        h.update(p.name.as_bytes());
        p.source.walk(&p.picked, &mut |rel, fd, st| {
            if p.excluded(rel) {
                return Ok(());
            }
            h.update(b"\0e\0");
            h.update(rel.as_bytes());
            h.update(st.st_mode.to_le_bytes());
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {
                    h.update((st.st_size as u64).to_le_bytes());
                    let mut f = File::from(
                        reopen_read(fd)
                            .map_err(|e| Error::Invalid(format!("reading {rel}: {e}")))?,
                    );
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = f
                            .read(&mut buf)
                            .map_err(|e| Error::Invalid(format!("reading {rel}: {e}")))?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
                FileType::Symlink => {
                    let t = rustix::fs::readlinkat(fd, "", Vec::new())
                        .map_err(|e| Error::Invalid(format!("reading {rel}: {e}")))?;
                    h.update(t.as_bytes());
                }
                FileType::CharacterDevice | FileType::BlockDevice => {
                    h.update(st.st_rdev.to_le_bytes());
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Write the plan as a tar into `out`: each source under its name, owned and moded as
/// `attrs` says (times kept).
pub(crate) fn write_tar(plan: &[Planned<'_>], attrs: Attrs, out: &mut File) -> Result<()> {
    let werr = |e: io::Error| Error::internal("writing the copy", e);
    let mut b = tar::Builder::new(io::BufWriter::new(out));
    b.mode(tar::HeaderMode::Complete);
    for p in plan {
        p.source.walk(&p.picked, &mut |rel, fd, st| {
            if p.excluded(rel) {
                return Ok(());
            }
            let name = join(&p.name, rel);
            if name.is_empty() {
                return Ok(()); // the destination directory itself
            }
            let kind = FileType::from_raw_mode(st.st_mode);
            let mut h = tar::Header::new_gnu();
            let (uid, gid) = attrs.owner.unwrap_or((0, 0));
            h.set_uid(uid as u64);
            h.set_gid(gid as u64);
            let perm = st.st_mode & 0o7777;
            h.set_mode(match attrs.mode {
                Some(m) => m,
                None => perm,
            });
            h.set_mtime(st.st_mtime.max(0) as u64);
            match kind {
                FileType::Directory => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, &name, io::empty()).map_err(werr)?;
                }
                FileType::RegularFile => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(st.st_size as u64);
                    let f = File::from(
                        reopen_read(fd)
                            .map_err(|e| Error::Invalid(format!("reading {rel}: {e}")))?,
                    );
                    b.append_data(&mut h, &name, f.take(st.st_size as u64))
                        .map_err(werr)?;
                }
                FileType::Symlink => {
                    let t = rustix::fs::readlinkat(fd, "", Vec::new())
                        .map_err(|e| Error::Invalid(format!("reading {rel}: {e}")))?;
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    if attrs.mode.is_none() {
                        h.set_mode(0o777);
                    }
                    b.append_link(
                        &mut h,
                        &name,
                        Path::new(std::ffi::OsStr::from_bytes(t.as_bytes())),
                    )
                    .map_err(werr)?;
                }
                FileType::Fifo => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    h.set_size(0);
                    b.append_data(&mut h, &name, io::empty()).map_err(werr)?;
                }
                FileType::CharacterDevice | FileType::BlockDevice => {
                    h.set_entry_type(if kind == FileType::CharacterDevice {
                        tar::EntryType::Char
                    } else {
                        tar::EntryType::Block
                    });
                    h.set_size(0);
                    let dev = st.st_rdev;
                    h.set_device_major(rustix::fs::major(dev)).map_err(werr)?;
                    h.set_device_minor(rustix::fs::minor(dev)).map_err(werr)?;
                    b.append_data(&mut h, &name, io::empty()).map_err(werr)?;
                }
                _ => {} // sockets are not copied
            }
            Ok(())
        })?;
    }
    let mut w = b.into_inner().map_err(werr)?;
    w.flush().map_err(werr)?;
    Ok(())
}

/// A scratch file for a tar, in `dir`.
pub(crate) fn spool(dir: &Path) -> Result<File> {
    tempfile::tempfile_in(dir).map_err(|e| Error::internal("making a scratch file", e))
}

/// Where a build keeps its context and scratch roots.
pub(crate) fn build_dir(data_root: &Path, id: &str) -> PathBuf {
    data_root.join("builds").join(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &str)]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        {
            let mut b = tar::Builder::new(&mut f);
            for (n, c) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                b.append_data(&mut h, n, c.as_bytes()).unwrap();
            }
            b.finish().unwrap();
        }
        f.rewind().unwrap();
        f
    }

    #[test]
    fn context_unpacked_and_read() {
        let d = tempfile::tempdir().unwrap();
        let f = tar_of(&[("Dockerfile", "FROM x\n"), ("sub/a.txt", "a")]);
        unpack(&f, &d.path().join("ctx")).unwrap();
        assert_eq!(
            read_file(&d.path().join("ctx"), "Dockerfile", 100).unwrap(),
            b"FROM x\n"
        );
        let s = Source::context(&d.path().join("ctx"), "Dockerfile").unwrap();
        let p = s.pick("sub/*.txt").unwrap();
        assert_eq!(p[0].rel, "sub/a.txt");
        assert!(s.pick("../x").is_err());
        assert!(glob_match("*.txt", "a.txt"));
        assert!(glob_match("[a-c]?", "b1"));
        assert!(!glob_match("*.txt", "a.md"));
    }
}
