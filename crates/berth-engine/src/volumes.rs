//! Volumes and a container's mounts: named volumes of the `local` driver (records in the
//! engine's database, data under `<data-root>/volumes/<name>/_data`), bind mounts, tmpfs,
//! anonymous volumes for the image's VOLUMEs, a new (or empty) volume seeded from the image's
//! content at its path, `--volumes-from`.
//!
//! The engine calls four hooks: [`Engine::prepare_mounts`] when a container is created (its
//! mounts are decided, volumes made and seeded, and recorded then), [`Engine::oci_mounts`]
//! when it starts, [`Engine::mounts_stopped`] when its process ended, and
//! [`Engine::release_mounts`] when it is removed.
//!
//! # Rules
//! - Docker's parsers and messages: `-v` (`HostConfig.Binds`), `--mount`
//!   (`HostConfig.Mounts`), `--tmpfs` (`HostConfig.Tmpfs`), `--volumes-from`, checked before
//!   anything is made; a create that fails half-way removes the volumes it made.
//! - A volume is *used* by every container whose record names it (whatever its state) and by
//!   containers being created that claimed it; it is *mounted for* the containers started and
//!   not yet stopped. `docker volume rm` refuses a used volume (409); a volume with the local
//!   driver's `type`/`device`/`o` options is mounted at the first start that needs it and
//!   unmounted when the last container using it stops.
//! - Every volume operation holds one lock ([`State`]): a volume cannot be removed between a
//!   container's create finding it and its record naming it.
//! - Seeding copies what the image has at the mount's path: the path is resolved inside the
//!   container's root (openat2 `RESOLVE_IN_ROOT`: a symlink planted by the image, absolute or
//!   `..`, stays inside it), and the copy is made from descriptors without following symlinks
//!   (`berth_snapshot::copy_tree`). It is made only while no running container has the volume
//!   (nothing can change the tree under the copy).
//! - Directories are root's only: `volumes/` and `volumes/<name>/` are 0700; `_data` is what
//!   the container sees (0755, or the mode and owner of the image's directory it was seeded
//!   from).
//! - Binding host paths (bind mounts, local volumes with options other than a tmpfs) is a
//!   privilege ([`Action::Privileged`]): the multi-tenant policy refuses it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use bollard_stubs::models::{
    Mount as ApiMount, MountBindOptionsPropagationEnum, MountType, VolumeCreateRequest,
};
use oci_spec::runtime::Mount;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::Event;
use crate::model::{Container, MountPoint, Status};
use crate::{Action, Engine, Error, Result, Subject};

/// The label Docker (≥ 23) puts on anonymous volumes; `volume prune` removes only those
/// unless asked for all.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The only volume driver.
pub const LOCAL_DRIVER: &str = "local";

/// A bind mount made from `-v` (Docker creates its missing source at start).
const OPT_CREATE_SOURCE: &str = "create-source";
/// A bind mount that is not recursive (`bind-nonrecursive`).
const OPT_NON_RECURSIVE: &str = "non-recursive";
/// A read-only bind mount whose submounts stay writable (`readonly=non-recursive`).
const OPT_RO_NON_RECURSIVE: &str = "ro-non-recursive";

/// A volume's record in the engine's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Its name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`; anonymous ones: 64 hex digits).
    pub name: String,
    /// `local`.
    pub driver: String,
    /// RFC 3339, seconds.
    pub created_at: String,
    /// Labels (None: sent as null).
    pub labels: Option<BTreeMap<String, String>>,
    /// The driver's options (None: sent as null).
    pub options: Option<BTreeMap<String, String>>,
    /// The tenant that made it.
    pub owner: String,
}

impl VolumeRecord {
    /// Made without a name (an image's VOLUME, `-v /path`, `docker volume create` without a
    /// name).
    pub fn anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }

    /// The local driver's options that make it a mount (`type`, `device`, `o`).
    fn mount_options(&self) -> Option<&BTreeMap<String, String>> {
        self.options
            .as_ref()
            .filter(|o| o.contains_key("type") || o.contains_key("device"))
    }
}

/// The volumes' lock and what is known only in memory.
#[derive(Debug, Default)]
pub(crate) struct State {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Container → volumes it claimed at create (until it is removed; a claim of a container
    /// the engine no longer has counts for nothing).
    claims: HashMap<String, BTreeSet<String>>,
    /// Container → volumes mounted for it (started, not stopped yet).
    active: HashMap<String, BTreeSet<String>>,
}

/// A mount being decided at create.
enum Plan {
    /// A volume, made if missing (`name` None: anonymous).
    Volume {
        name: Option<String>,
        driver: Option<String>,
        opts: Option<BTreeMap<String, String>>,
        labels: Option<BTreeMap<String, String>>,
        rw: bool,
        mode: String,
        copy: bool,
    },
    /// Decided already: a bind, a tmpfs, a mount of another container.
    Ready(MountPoint),
}

fn lock(s: &State) -> MutexGuard<'_, Inner> {
    s.inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Docker's name rule for local volumes.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.len() == 1 {
        return Err(
            "volume name is too short, names should be at least two alphanumeric characters".into(),
        );
    }
    if !crate::names::valid(name) {
        return Err(format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    Ok(())
}

/// The local driver's options, checked as Docker checks them.
fn check_opts(opts: &BTreeMap<String, String>) -> std::result::Result<(), String> {
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
            return Err(format!("invalid option: {k:?}"));
        }
    }
    if opts.contains_key("size") {
        return Err("quota size requested but no quota support".into());
    }
    for (opt, needs) in [
        ("device", &["type"][..]),
        ("type", &["device"][..]),
        ("o", &["device", "type"][..]),
    ] {
        if opts.contains_key(opt) {
            for n in needs {
                if !opts.contains_key(*n) {
                    return Err(format!("missing required option: {n:?}"));
                }
            }
        }
    }
    Ok(())
}

/// Do the options bind or mount something of the host (anything but a tmpfs)?
fn opts_need_privilege(opts: &BTreeMap<String, String>) -> bool {
    opts.get("type").is_some_and(|t| t != "tmpfs")
}

/// `path` made lexical: `.` and `..` applied, no trailing slash (Go's `path.Clean` for
/// absolute paths).
pub(crate) fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n.to_str().unwrap_or_default()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    if path.starts_with('/') {
        format!("/{}", out.join("/"))
    } else if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// A mount's destination as Docker checks it.
fn check_target(t: &str) -> std::result::Result<(), String> {
    if t.is_empty() {
        return Err("field Target must not be empty".into());
    }
    if clean(t) == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    if !t.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{t}' mount path must be absolute"
        ));
    }
    Ok(())
}

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Docker's `linuxValidMountMode`: each kind of word at most once.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0u8; 5];
    for w in mode.split(',') {
        let i = match w {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            w if PROPAGATIONS.contains(&w) => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return false,
        };
        counts[i] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

fn mode_words(mode: &str) -> impl Iterator<Item = &str> {
    mode.split(',').filter(|w| !w.is_empty())
}

/// A `-v` specification (`[src:]dst[:mode]`), as Docker's Linux parser reads it.
fn parse_bind(raw: &str) -> Result<(String, Plan)> {
    let spec = || format!("invalid volume specification: '{raw}'");
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(Error::Invalid(spec()));
    }
    let (src, dst, mode) = match arr.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => {
            if valid_mode(d) {
                return Err(Error::Invalid(spec()));
            }
            (*s, *d, "")
        }
        [s, d, m] => (*s, *d, *m),
        _ => return Err(Error::Invalid(spec())),
    };
    if !valid_mode(mode) {
        return Err(Error::Invalid(format!("invalid mode: {mode}")));
    }
    let bind = src.starts_with('/');
    let typ = if bind { "bind" } else { "volume" };
    let bad = |m: String| {
        Error::Invalid(format!(
            "{}: invalid mount config for type \"{typ}\": {m}",
            spec()
        ))
    };
    check_target(dst).map_err(bad)?;
    let ro = mode_words(mode).any(|w| w == "ro");
    let nocopy = mode_words(mode).any(|w| w == "nocopy");
    let propagation = mode_words(mode).find(|w| PROPAGATIONS.contains(w));
    let dest = clean(dst);
    if bind {
        if nocopy {
            return Err(bad("field VolumeOptions must not be specified".into()));
        }
        return Ok((
            dest.clone(),
            Plan::Ready(MountPoint {
                kind: "bind".into(),
                name: None,
                source: clean(src),
                destination: dest,
                mode: mode.to_string(),
                rw: !ro,
                propagation: propagation.unwrap_or("rprivate").to_string(),
                options: vec![OPT_CREATE_SOURCE.into()],
            }),
        ));
    }
    if propagation.is_some() {
        return Err(bad("field BindOptions must not be specified".into()));
    }
    if src.is_empty() && ro {
        return Err(bad(
            "must not set ReadOnly mode when using anonymous volumes".into(),
        ));
    }
    Ok((
        dest,
        Plan::Volume {
            name: (!src.is_empty()).then(|| src.to_string()),
            driver: None,
            opts: None,
            labels: None,
            rw: !ro,
            mode: if mode.is_empty() { "z" } else { mode }.to_string(),
            copy: !nocopy,
        },
    ))
}

/// Docker's `ConvertTmpfsOptions`: the size with the largest unit that divides it, the mode
/// in octal, the extra options.
fn tmpfs_data(o: Option<&bollard_stubs::models::MountTmpfsOptions>, ro: bool) -> Vec<String> {
    let mut out = Vec::new();
    if ro {
        out.push("ro".to_string());
    }
    let Some(o) = o else { return out };
    if let Some(mode) = o.mode.filter(|m| *m != 0) {
        out.push(format!("mode={:o}", mode & 0o7777));
    }
    if let Some(size) = o.size_bytes.filter(|s| *s != 0) {
        let mut s = format!("size={size}");
        for (suffix, div) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
            if size % div == 0 {
                s = format!("size={}{suffix}", size / div);
                break;
            }
        }
        out.push(s);
    }
    for opt in o.options.iter().flatten() {
        match opt.as_slice() {
            [flag] => out.push(flag.clone()),
            [k, v] => out.push(format!("{k}={v}")),
            _ => {}
        }
    }
    out
}

/// Docker's `MergeTmpfsOptions`: the defaults and the given options, a later flag of a pair
/// (`exec` after `noexec`) or a later `key=` replacing an earlier one.
fn merge_tmpfs(data: &[String]) -> std::result::Result<Vec<String>, String> {
    let mut all: Vec<String> = ["noexec", "nosuid", "nodev", "rprivate"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.extend(data.iter().filter(|s| !s.is_empty()).cloned());
    let flag_key = |w: &str| -> Option<&'static str> {
        Some(match w {
            "ro" | "rw" => "ro",
            "exec" | "noexec" => "exec",
            "suid" | "nosuid" => "suid",
            "dev" | "nodev" => "dev",
            "sync" | "async" => "sync",
            "atime" | "noatime" => "atime",
            "diratime" | "nodiratime" => "diratime",
            "relatime" | "norelatime" => "relatime",
            "strictatime" | "nostrictatime" => "strictatime",
            "mand" | "nomand" => "mand",
            "dirsync" => "dirsync",
            "remount" => "remount",
            "bind" | "rbind" => "bind",
            w if PROPAGATIONS.contains(&w) || w == "unbindable" || w == "runbindable" => {
                "propagation"
            }
            _ => return None,
        })
    };
    let mut seen_flags = BTreeSet::new();
    let mut seen_data = BTreeSet::new();
    let mut out: Vec<String> = Vec::new();
    for w in all.iter().rev() {
        if w == "defaults" {
            continue;
        }
        if let Some(k) = flag_key(w) {
            if seen_flags.insert(k) {
                out.insert(0, w.clone());
            }
            continue;
        }
        let key = match w.split_once('=') {
            Some((k, _))
                if matches!(
                    k,
                    "size" | "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks" | "mpol"
                ) =>
            {
                k
            }
            _ => {
                let parts: Vec<&str> = w.splitn(2, '=').collect();
                return Err(format!("invalid tmpfs option {parts:?}"));
            }
        };
        if seen_data.insert(key.to_string()) {
            out.insert(0, w.clone());
        }
    }
    Ok(out)
}

/// A `--mount` (`HostConfig.Mounts` entry), as Docker's Linux parser checks it.
fn parse_mount(m: &ApiMount) -> Result<(String, Plan)> {
    let typ = m.typ;
    let tname = typ.map(|t| t.to_string()).unwrap_or_default();
    let bad =
        |msg: String| Error::Invalid(format!("invalid mount config for type \"{tname}\": {msg}"));
    let target = m.target.clone().unwrap_or_default();
    check_target(&target).map_err(bad)?;
    let dest = clean(&target);
    let ro = m.read_only.unwrap_or(false);
    let source = m.source.clone().unwrap_or_default();
    let extra = |f: &str| bad(format!("field {f} must not be specified"));
    match typ {
        Some(MountType::BIND) => {
            if source.is_empty() {
                return Err(bad("field Source must not be empty".into()));
            }
            if m.volume_options.is_some() {
                return Err(extra("VolumeOptions"));
            }
            if m.tmpfs_options.is_some() {
                return Err(extra("TmpfsOptions"));
            }
            if !source.starts_with('/') {
                return Err(bad(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let bo = m.bind_options.clone().unwrap_or_default();
            let create = bo.create_mountpoint.unwrap_or(false);
            if !create && std::fs::metadata(&source).is_err() {
                return Err(bad(format!("bind source path does not exist: {source}")));
            }
            let mut options = Vec::new();
            if create {
                options.push(OPT_CREATE_SOURCE.to_string());
            }
            if bo.non_recursive.unwrap_or(false) {
                options.push(OPT_NON_RECURSIVE.to_string());
            }
            if bo.read_only_non_recursive.unwrap_or(false) {
                options.push(OPT_RO_NON_RECURSIVE.to_string());
            }
            let propagation = match bo.propagation {
                None | Some(MountBindOptionsPropagationEnum::EMPTY) => "rprivate".to_string(),
                Some(p) => p.to_string(),
            };
            Ok((
                dest.clone(),
                Plan::Ready(MountPoint {
                    kind: "bind".into(),
                    name: None,
                    source: clean(&source),
                    destination: dest,
                    mode: String::new(),
                    rw: !ro,
                    propagation,
                    options,
                }),
            ))
        }
        Some(MountType::VOLUME) => {
            if m.bind_options.is_some() {
                return Err(extra("BindOptions"));
            }
            if m.tmpfs_options.is_some() {
                return Err(extra("TmpfsOptions"));
            }
            let vo = m.volume_options.clone().unwrap_or_default();
            let anonymous = source.is_empty();
            if vo.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
                if anonymous {
                    return Err(bad(
                        "must not set Subpath when using anonymous volumes".into()
                    ));
                }
                return Err(Error::NotImplemented(
                    "volume subpaths are not supported by berth yet".into(),
                ));
            }
            if ro && anonymous {
                return Err(bad(
                    "must not set ReadOnly mode when using anonymous volumes".into(),
                ));
            }
            let dc = vo.driver_config.unwrap_or_default();
            Ok((
                dest,
                Plan::Volume {
                    name: (!anonymous).then_some(source),
                    driver: dc.name,
                    opts: dc.options.map(|o| o.into_iter().collect()),
                    labels: vo.labels.map(|l| l.into_iter().collect()),
                    rw: !ro,
                    mode: "z".into(),
                    copy: !vo.no_copy.unwrap_or(false),
                },
            ))
        }
        Some(MountType::TMPFS) => {
            if m.bind_options.is_some() {
                return Err(extra("BindOptions"));
            }
            if m.volume_options.is_some() {
                return Err(extra("VolumeOptions"));
            }
            if !source.is_empty() {
                return Err(extra("Source"));
            }
            let options = merge_tmpfs(&tmpfs_data(m.tmpfs_options.as_ref(), ro)).map_err(bad)?;
            Ok((
                dest.clone(),
                Plan::Ready(MountPoint {
                    kind: "tmpfs".into(),
                    name: None,
                    source: String::new(),
                    destination: dest,
                    mode: String::new(),
                    rw: !ro,
                    propagation: String::new(),
                    options,
                }),
            ))
        }
        Some(MountType::IMAGE) => Err(Error::NotImplemented(
            "image mounts are not supported by berth yet".into(),
        )),
        _ => Err(bad("mount type unknown".into())),
    }
}

/// `--volumes-from NAME[:MODE]`: the container and whether its mounts stay writable.
fn parse_volumes_from(spec: &str) -> Result<(&str, bool)> {
    if spec.is_empty() {
        return Err(Error::Invalid(
            "volume-from specification cannot be an empty string".into(),
        ));
    }
    let (id, mode) = spec.split_once(':').unwrap_or((spec, ""));
    if mode.is_empty() {
        return Ok((id, true));
    }
    if !valid_mode(mode) {
        return Err(Error::Invalid(format!("invalid mode: {mode}")));
    }
    if mode_words(mode).any(|w| PROPAGATIONS.contains(&w)) {
        return Err(Error::Invalid(format!("invalid argument: {mode}")));
    }
    Ok((id, !mode_words(mode).any(|w| w == "ro")))
}

/// The mount points in /proc/self/mountinfo (octal escapes decoded).
fn mount_points() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            let b = m.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\'
                    && i + 3 < b.len()
                    && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
                {
                    let v = u32::from(b[i + 1] - b'0') * 64
                        + u32::from(b[i + 2] - b'0') * 8
                        + u32::from(b[i + 3] - b'0');
                    out.push(v as u8);
                    i += 4;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
        })
        .collect()
}

fn is_mounted(p: &Path) -> bool {
    mount_points().iter().any(|m| m == p)
}

/// Depth of a destination (`/` 0, `/a` 1, `/a/b` 2): parents are mounted before children.
fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Order a spec's mounts as Docker does: by depth of destination, stably (a mount over
/// `/etc` before `/etc/hosts`).
pub(crate) fn sort_mounts(mounts: &mut [Mount]) {
    mounts.sort_by_key(|m| depth(m.destination()));
}

fn bind_spec(mp: &MountPoint) -> Mount {
    let recursive = !mp.options.iter().any(|o| o == OPT_NON_RECURSIVE);
    let mut opts = vec![if recursive { "rbind" } else { "bind" }.to_string()];
    if !mp.rw {
        opts.push("ro".into());
        if recursive && !mp.options.iter().any(|o| o == OPT_RO_NON_RECURSIVE) {
            opts.push("rro".into());
        }
    }
    opts.push(if mp.propagation.is_empty() {
        "rprivate".to_string()
    } else {
        mp.propagation.clone()
    });
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(&mp.destination))
        .set_typ(Some("bind".into()))
        .set_source(Some(PathBuf::from(&mp.source)))
        .set_options(Some(opts));
    m
}

fn tmpfs_spec(dest: &str, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest))
        .set_typ(Some("tmpfs".into()))
        .set_source(Some(PathBuf::from("tmpfs")))
        .set_options(Some(options));
    m
}

/// Fill the empty volume directory `data` with what the root filesystem `rootfs` has at
/// `dest`, resolved inside it as the container would (a symlink the image planted, absolute
/// or with `..`, cannot lead out of it), owner and mode of the directory included. Nothing if
/// the volume is not empty or the image has no directory there.
fn seed(rootfs: &Path, dest: &str, data: &Path) -> Result<()> {
    use rustix::fs::{Mode as FsMode, OFlags, ResolveFlags};
    let io = |what: &str, e: std::io::Error| Error::internal(what, e);
    let mut entries = std::fs::read_dir(data)
        .map_err(|e| io(&format!("reading volume {}", data.display()), e))?;
    if entries.next().is_some() {
        return Ok(());
    }
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(|e| io("opening the container's root filesystem", e.into()))?;
    let rel = dest.trim_start_matches('/');
    let src = match rustix::fs::openat2(
        &root,
        if rel.is_empty() { "." } else { rel },
        OFlags::PATH | OFlags::CLOEXEC,
        FsMode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => {
            return Err(io(
                &format!("resolving {dest} in the container's root filesystem"),
                e.into(),
            ));
        }
    };
    let st = rustix::fs::fstat(&src).map_err(|e| io("reading the image's directory", e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
        return Ok(());
    }
    // The resolved directory by its descriptor: a path string could be redirected.
    let src_path = PathBuf::from(format!("/proc/self/fd/{}", src.as_raw_fd()));
    berth_snapshot::copy_tree(&src_path, data)
        .map_err(|e| Error::internal(format!("copying the image's {dest} into the volume"), e))?;
    // The volume's own owner and mode are those of the image's directory (Docker's
    // copyOwnership). `data` is the engine's own directory beneath root-only ones.
    std::os::unix::fs::chown(data, Some(st.st_uid), Some(st.st_gid))
        .map_err(|e| io("setting the volume's owner", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(st.st_mode & 0o7777))
        .map_err(|e| io("setting the volume's mode", e))?;
    Ok(())
}

/// A local volume's options applied: the mount of its `device` at its `_data`.
fn mount_local(opts: &BTreeMap<String, String>, data: &Path) -> Result<()> {
    use nix::mount::MsFlags;
    let device = opts
        .get("device")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Error::Invalid("missing device in volume options".into()))?;
    let typ = opts.get("type").map(String::as_str).unwrap_or("none");
    let words: Vec<String> = opts
        .get("o")
        .map(|o| {
            o.split(',')
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let parsed = berth_runtime::mountopts::parse(&words);
    let flags = parsed.flags & !MsFlags::MS_REMOUNT;
    let fs_data = parsed.data_string();
    let fail = |e: nix::errno::Errno| {
        Error::Internal(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {device}:{}, flags: {:#x}, data: {}: {}",
            data.display(),
            data.display(),
            flags.bits(),
            fs_data.as_deref().unwrap_or(""),
            e.desc().to_lowercase()
        ))
    };
    nix::mount::mount(
        Some(device.as_str()),
        data,
        Some(typ),
        flags,
        fs_data.as_deref(),
    )
    .map_err(fail)?;
    let done = (|| {
        let extra = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
        if flags.contains(MsFlags::MS_BIND) && !extra.is_empty() {
            nix::mount::mount(
                None::<&str>,
                data,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                None::<&str>,
            )?;
        }
        for p in &parsed.propagation {
            nix::mount::mount(None::<&str>, data, None::<&str>, *p, None::<&str>)?;
        }
        Ok(())
    })();
    if let Err(e) = done {
        let _ = unmount_all(data);
        return Err(fail(e));
    }
    Ok(())
}

/// Unmount everything mounted at `p` (detached: a process still holding it keeps its view).
fn unmount_all(p: &Path) -> Result<()> {
    for _ in 0..16 {
        if !is_mounted(p) {
            return Ok(());
        }
        nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| Error::internal(format!("unmounting {}", p.display()), e))?;
    }
    Err(Error::Internal(format!(
        "{} is still mounted after 16 unmounts",
        p.display()
    )))
}

/// Bytes of the regular files beneath `dir`, walked by descriptors without following a
/// symlink or crossing a mount: a container may be changing the tree while it is read.
fn tree_size(dir: &Path) -> u64 {
    use rustix::fs::{AtFlags, FileType, Mode as FsMode, OFlags};
    fn walk(fd: &std::os::fd::OwnedFd, dev: u64, depth: usize) -> u64 {
        if depth > 512 {
            return 0;
        }
        let Ok(mut d) = rustix::fs::Dir::read_from(fd) else {
            return 0;
        };
        let mut total = 0u64;
        while let Some(Ok(e)) = d.next() {
            let name = e.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != dev {
                continue;
            }
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    if let Ok(sub) = rustix::fs::openat(
                        fd,
                        name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        FsMode::empty(),
                    ) {
                        total += walk(&sub, dev, depth + 1);
                    }
                }
                FileType::RegularFile => total += st.st_size as u64,
                _ => {}
            }
        }
        total
    }
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    ) else {
        return 0;
    };
    match rustix::fs::fstat(&fd) {
        Ok(st) => walk(&fd, st.st_dev, 0),
        Err(_) => 0,
    }
}

/// Docker's `dangling`/`all` filter values.
fn bool_filter(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::Invalid(format!("invalid filter '{key}={v}'"))),
    }
}

fn labels_match(labels: Option<&BTreeMap<String, String>>, filter: &str) -> bool {
    let labels = labels.cloned().unwrap_or_default();
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(filter),
    }
}

/// Docker's name filter: a regular expression, of which a substring and anchors are what
/// clients send.
fn name_matches(name: &str, pat: &str) -> bool {
    let start = pat.starts_with('^');
    let end = pat.ends_with('$') && pat.len() > usize::from(start);
    let core = pat.trim_start_matches('^').trim_end_matches('$');
    match (start, end) {
        (true, true) => name == core,
        (true, false) => name.starts_with(core),
        (false, true) => name.ends_with(core),
        (false, false) => name.contains(core),
    }
}

impl Engine {
    fn volume_dir(&self, name: &str) -> PathBuf {
        self.paths.volumes().join(name)
    }

    fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// Emit an event about a volume.
    pub(crate) fn volume_event(
        &self,
        owner: &str,
        action: &str,
        name: &str,
        extra: &[(&str, String)],
    ) {
        let attrs = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.events
            .emit(owner, Event::new("volume", action, name, attrs));
    }

    /// Every volume record.
    fn volume_records(&self) -> Result<Vec<VolumeRecord>> {
        let mut out = Vec::new();
        for (name, json) in self.db.volumes()? {
            match serde_json::from_slice::<VolumeRecord>(&json) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!("volume record {name} unreadable: {e}"),
            }
        }
        Ok(out)
    }

    fn volume_record(&self, name: &str) -> Result<Option<VolumeRecord>> {
        Ok(self.volume_records()?.into_iter().find(|r| r.name == name))
    }

    /// The volume `name` if `who` may see it, else Docker's "no such volume".
    fn visible_volume(&self, who: &Subject, name: &str) -> Result<VolumeRecord> {
        match self.volume_record(name)? {
            Some(r) if self.policy.visible(who, &r.owner) => Ok(r),
            _ => Err(Error::NotFound(format!("get {name}: no such volume"))),
        }
    }

    /// The containers that use volume `name` (their records name it, or they claimed it
    /// while being created), `except` left out; sorted IDs.
    fn volume_users(&self, inner: &Inner, name: &str, except: Option<&str>) -> Vec<String> {
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        let mut out = BTreeSet::new();
        for (id, h) in map.iter() {
            if Some(id.as_str()) == except {
                continue;
            }
            let c = h.get();
            if c.mounts
                .iter()
                .any(|m| m.kind == "volume" && m.name.as_deref() == Some(name))
                || inner.claims.get(id).is_some_and(|s| s.contains(name))
            {
                out.insert(id.clone());
            }
        }
        out.into_iter().collect()
    }

    /// Is volume `name` mounted for a container other than `except` (started and not
    /// stopped, or running by its record: a container re-adopted after a daemon restart)?
    fn volume_running(&self, inner: &Inner, name: &str, except: &str) -> bool {
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        map.iter().any(|(id, h)| {
            if id == except {
                return false;
            }
            if inner.active.get(id).is_some_and(|s| s.contains(name)) {
                return true;
            }
            let c = h.get();
            (c.state.status.is_running() || c.state.status == Status::Restarting)
                && c.mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name.as_deref() == Some(name))
        })
    }

    /// The volume `name` (None: a new anonymous one), made if missing. Returns it and whether
    /// it was made. Called with the volumes' lock held.
    fn ensure_volume(
        &self,
        who: &Subject,
        name: Option<&str>,
        driver: Option<&str>,
        opts: Option<BTreeMap<String, String>>,
        labels: Option<BTreeMap<String, String>>,
    ) -> Result<(VolumeRecord, bool)> {
        let (name, anonymous) = match name.filter(|n| !n.is_empty()) {
            Some(n) => (n.to_string(), false),
            None => (crate::names::new_id(), true),
        };
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or(LOCAL_DRIVER);
        if driver != LOCAL_DRIVER {
            return Err(Error::NotFound(format!(
                "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        check_name(&name).map_err(|m| Error::Invalid(format!("create {name}: {m}")))?;
        if let Some(rec) = self.volume_record(&name)? {
            if !self.policy.visible(who, &rec.owner) {
                return Err(Error::Conflict(format!(
                    "create {name}: a volume with this name already exists"
                )));
            }
            self.authorize(who, Action::Write, Some(&rec.owner))?;
            return Ok((rec, false));
        }
        self.authorize(who, Action::Create, None)?;
        if let Some(o) = &opts {
            check_opts(o).map_err(|m| Error::Invalid(format!("create {name}: {m}")))?;
            if opts_need_privilege(o) {
                self.authorize(who, Action::Privileged, None)?;
            }
        }
        let mut labels = labels;
        if anonymous {
            labels
                .get_or_insert_with(BTreeMap::new)
                .insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let rec = VolumeRecord {
            name: name.clone(),
            driver: LOCAL_DRIVER.into(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            labels,
            options: opts,
            owner: who.tenant.clone(),
        };
        let dir = self.volume_dir(&name);
        let made = (|| {
            crate::private_dir(&dir)?;
            let data = dir.join("_data");
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            match std::fs::DirBuilder::new().mode(0o755).create(&data) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::internal(format!("making {}", data.display()), e)),
            }
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::internal(format!("making {}", data.display()), e))?;
            let json = serde_json::to_vec(&rec).map_err(|e| Error::internal("volume record", e))?;
            self.db.put_volume(&name, &json)
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.volume_event(
            &rec.owner,
            "create",
            &rec.name,
            &[("driver", rec.driver.clone())],
        );
        Ok((rec, true))
    }

    /// Remove a volume nobody uses: its mount, its directory, its record. Called with the
    /// volumes' lock held.
    fn destroy_volume(&self, rec: &VolumeRecord) -> Result<()> {
        let dir = self.volume_dir(&rec.name);
        unmount_all(&dir.join("_data"))?;
        // Never delete through a mount (a bind of a host directory).
        if let Some(m) = mount_points().iter().find(|m| m.starts_with(&dir)) {
            return Err(Error::Internal(format!(
                "remove {}: {} is still mounted",
                rec.name,
                m.display()
            )));
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::internal(format!("remove {}", rec.name), e));
            }
        }
        self.db.delete_volume(&rec.name)?;
        self.volume_event(
            &rec.owner,
            "destroy",
            &rec.name,
            &[("driver", rec.driver.clone())],
        );
        Ok(())
    }

    /// A volume in Docker's shape (`GET /volumes/{name}`).
    fn volume_json(&self, rec: &VolumeRecord) -> Value {
        json!({
            "CreatedAt": rec.created_at,
            "Driver": rec.driver,
            "Labels": rec.labels,
            "Mountpoint": self.volume_data(&rec.name),
            "Name": rec.name,
            "Options": rec.options,
            "Scope": "local",
            "UsageData": null,
        })
    }

    /// `POST /volumes/create` (blocking): the volume, made unless it exists.
    pub fn volume_create(&self, who: &Subject, req: VolumeCreateRequest) -> Result<Value> {
        self.authorize(who, Action::Create, None)?;
        let _g = lock(&self.vol_state);
        let (rec, _) = self.ensure_volume(
            who,
            req.name.as_deref(),
            req.driver.as_deref(),
            req.driver_opts.map(|o| o.into_iter().collect()),
            req.labels.map(|l| l.into_iter().collect()),
        )?;
        Ok(self.volume_json(&rec))
    }

    /// `GET /volumes/{name}` (blocking).
    pub fn volume_inspect(&self, who: &Subject, name: &str) -> Result<Value> {
        let rec = self.visible_volume(who, name)?;
        self.authorize(who, Action::Read, Some(&rec.owner))?;
        Ok(self.volume_json(&rec))
    }

    /// `GET /volumes` (blocking): `{"Volumes": [...], "Warnings": null}`, filtered by
    /// `dangling`, `driver`, `label`, `name`.
    pub fn volume_list(
        &self,
        who: &Subject,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Value> {
        self.authorize(who, Action::Read, None)?;
        for k in filters.keys() {
            if !matches!(k.as_str(), "dangling" | "driver" | "label" | "name") {
                return Err(Error::Invalid(format!("invalid filter '{k}'")));
            }
        }
        let dangling = match filters.get("dangling").and_then(|v| v.last()) {
            Some(v) => Some(bool_filter("dangling", v)?),
            None => None,
        };
        let g = lock(&self.vol_state);
        let mut out = Vec::new();
        let mut recs = self.volume_records()?;
        recs.sort_by(|a, b| a.name.cmp(&b.name));
        for rec in recs {
            if !self.policy.visible(who, &rec.owner) {
                continue;
            }
            if let Some(d) = dangling {
                if self.volume_users(&g, &rec.name, None).is_empty() != d {
                    continue;
                }
            }
            if let Some(v) = filters.get("driver").filter(|v| !v.is_empty()) {
                if !v.contains(&rec.driver) {
                    continue;
                }
            }
            if let Some(v) = filters.get("name").filter(|v| !v.is_empty()) {
                if !v.iter().any(|p| name_matches(&rec.name, p)) {
                    continue;
                }
            }
            if let Some(v) = filters.get("label") {
                if !v.iter().all(|l| labels_match(rec.labels.as_ref(), l)) {
                    continue;
                }
            }
            out.push(self.volume_json(&rec));
        }
        Ok(json!({"Volumes": out, "Warnings": null}))
    }

    /// `DELETE /volumes/{name}` (blocking): refused while a container uses it; `force`: a
    /// missing volume is no error.
    pub fn volume_remove(&self, who: &Subject, name: &str, force: bool) -> Result<()> {
        let g = lock(&self.vol_state);
        let rec = match self.visible_volume(who, name) {
            Ok(r) => r,
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        self.authorize(who, Action::Write, Some(&rec.owner))?;
        let users = self.volume_users(&g, name, None);
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.destroy_volume(&rec)
    }

    /// `POST /volumes/prune` (blocking): volumes no container uses, anonymous ones only
    /// unless `all`; filters `label`, `label!`, `all`.
    pub fn volume_prune(
        &self,
        who: &Subject,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Value> {
        for k in filters.keys() {
            if !matches!(k.as_str(), "label" | "label!" | "all") {
                return Err(Error::Invalid(format!("invalid filter '{k}'")));
            }
        }
        let all = match filters.get("all").and_then(|v| v.last()) {
            Some(v) => bool_filter("all", v)?,
            None => false,
        };
        let g = lock(&self.vol_state);
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for rec in self.volume_records()? {
            if !self.policy.visible(who, &rec.owner)
                || self
                    .authorize(who, Action::Write, Some(&rec.owner))
                    .is_err()
            {
                continue;
            }
            if !all && !rec.anonymous() {
                continue;
            }
            if !filters
                .get("label")
                .into_iter()
                .flatten()
                .all(|l| labels_match(rec.labels.as_ref(), l))
                || filters
                    .get("label!")
                    .into_iter()
                    .flatten()
                    .any(|l| labels_match(rec.labels.as_ref(), l))
            {
                continue;
            }
            if !self.volume_users(&g, &rec.name, None).is_empty() {
                continue;
            }
            let size = tree_size(&self.volume_data(&rec.name));
            match self.destroy_volume(&rec) {
                Ok(()) => {
                    reclaimed += size;
                    deleted.push(rec.name.clone());
                }
                Err(e) => tracing::warn!("pruning volume {}: {e}", rec.name),
            }
        }
        drop(g);
        self.volume_event(
            &who.tenant,
            "prune",
            "",
            &[("reclaimed", reclaimed.to_string())],
        );
        Ok(json!({
            "VolumesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": reclaimed,
        }))
    }

    /// The volumes of `who` with their usage (`GET /system/df`: `UsageData` with the size of
    /// their data and how many containers use them).
    pub fn volume_usage(&self, who: &Subject) -> Result<Vec<Value>> {
        self.authorize(who, Action::Read, None)?;
        let g = lock(&self.vol_state);
        let mut out = Vec::new();
        for rec in self.volume_records()? {
            if !self.policy.visible(who, &rec.owner) {
                continue;
            }
            let mut v = self.volume_json(&rec);
            v["UsageData"] = json!({
                "Size": tree_size(&self.volume_data(&rec.name)),
                "RefCount": self.volume_users(&g, &rec.name, None).len(),
            });
            out.push(v);
        }
        Ok(out)
    }

    /// Decide (and make: volumes, seeded) the mounts of a container being created, whose
    /// root filesystem is `rootfs`. Nothing is made before everything is checked; what was
    /// made is removed if a later step fails.
    pub(crate) fn prepare_mounts(&self, c: &Container, rootfs: &Path) -> Result<Vec<MountPoint>> {
        let hc = &c.host_config;
        let who = Subject {
            tenant: c.owner.clone(),
        };
        let mut plans: Vec<(String, Plan)> = Vec::new();
        let put = |plans: &mut Vec<(String, Plan)>, dest: String, p: Plan| {
            plans.retain(|(d, _)| *d != dest);
            plans.push((dest, p));
        };
        // 1. --volumes-from: the other container's mounts.
        for spec in hc.volumes_from.iter().flatten() {
            let (id, rw) = parse_volumes_from(spec)?;
            let other = self.lookup(&who, id)?.get();
            self.authorize(&who, Action::Read, Some(&other.owner))?;
            for m in &other.mounts {
                let mut cp = m.clone();
                cp.rw = m.rw && rw;
                cp.mode = String::new();
                put(&mut plans, cp.destination.clone(), Plan::Ready(cp));
            }
        }
        // Host paths in a container: a privilege for tenants of a shared service (checked
        // before a source is looked at: its existence is not a tenant's to learn).
        if hc.binds.iter().flatten().any(|b| b.starts_with('/'))
            || hc
                .mounts
                .iter()
                .flatten()
                .any(|m| m.typ == Some(MountType::BIND))
            || plans
                .iter()
                .any(|(_, p)| matches!(p, Plan::Ready(m) if m.kind == "bind"))
        {
            self.authorize(&who, Action::Privileged, None)?;
        }
        // 2. -v, 3. --mount: one mount per destination.
        let tmpfs: BTreeMap<String, String> =
            hc.tmpfs.clone().unwrap_or_default().into_iter().collect();
        let mut bound: BTreeSet<String> = BTreeSet::new();
        for raw in hc.binds.iter().flatten() {
            let (dest, plan) = parse_bind(raw)?;
            if bound.contains(&dest) || tmpfs.contains_key(&dest) {
                return Err(Error::Invalid(format!("Duplicate mount point: {dest}")));
            }
            bound.insert(dest.clone());
            put(&mut plans, dest, plan);
        }
        for m in hc.mounts.iter().flatten() {
            let (dest, plan) = parse_mount(m)?;
            if bound.contains(&dest) {
                return Err(Error::Invalid(format!(
                    "Duplicate mount point: {}",
                    m.target.clone().unwrap_or_default()
                )));
            }
            bound.insert(dest.clone());
            put(&mut plans, dest, plan);
        }
        // --tmpfs: checked here, mounted at every start.
        for (dest, data) in &tmpfs {
            check_target(dest).map_err(|m| {
                Error::Invalid(format!("invalid mount config for type \"tmpfs\": {m}"))
            })?;
            let words: Vec<String> = data.split(',').map(str::to_string).collect();
            merge_tmpfs(&words).map_err(Error::Invalid)?;
        }
        // 4. The image's VOLUMEs (and `-v /path`) not mounted otherwise: anonymous volumes.
        let mut image_volumes: BTreeSet<String> = c
            .config
            .volumes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if let Ok(blob) = self.images.read_blob(&c.image_id) {
            if let Ok(cfg) = berth_image::config::parse(&c.image_id, &blob) {
                if let Some(ic) = cfg.config() {
                    image_volumes.extend(ic.volumes().clone().unwrap_or_default());
                }
            }
        }
        for spec in image_volumes {
            let dest = clean(&spec);
            check_target(&spec).map_err(|m| {
                Error::Invalid(format!("invalid mount config for type \"volume\": {m}"))
            })?;
            if plans.iter().any(|(d, _)| *d == dest) || tmpfs.keys().any(|t| clean(t) == dest) {
                continue;
            }
            if image_has_file(rootfs, &dest) {
                return Err(Error::Invalid(format!(
                    "cannot mount volume over existing file, file exists {dest}"
                )));
            }
            plans.push((
                dest,
                Plan::Volume {
                    name: None,
                    driver: hc.volume_driver.clone(),
                    opts: None,
                    labels: None,
                    rw: true,
                    mode: String::new(),
                    copy: true,
                },
            ));
        }

        // Everything checked: make the volumes.
        let mut inner = lock(&self.vol_state);
        let mut made: Vec<VolumeRecord> = Vec::new();
        let mut out = Vec::new();
        let res = (|| -> Result<()> {
            for (dest, plan) in plans {
                match plan {
                    Plan::Ready(mp) => {
                        if mp.kind == "volume" {
                            let name = mp.name.clone().unwrap_or_default();
                            self.visible_volume(&who, &name)?;
                            inner.claims.entry(c.id.clone()).or_default().insert(name);
                        }
                        out.push(mp);
                    }
                    Plan::Volume {
                        name,
                        driver,
                        opts,
                        labels,
                        rw,
                        mode,
                        copy,
                    } => {
                        let (rec, new) = self.ensure_volume(
                            &who,
                            name.as_deref(),
                            driver.as_deref(),
                            opts,
                            labels,
                        )?;
                        if new {
                            made.push(rec.clone());
                        }
                        inner
                            .claims
                            .entry(c.id.clone())
                            .or_default()
                            .insert(rec.name.clone());
                        let data = self.volume_data(&rec.name);
                        if copy {
                            self.seed_volume(&inner, c, &rec, rootfs, &dest)?;
                        }
                        out.push(MountPoint {
                            kind: "volume".into(),
                            name: Some(rec.name.clone()),
                            source: data.to_string_lossy().into_owned(),
                            destination: dest,
                            mode,
                            rw,
                            propagation: String::new(),
                            options: Vec::new(),
                        });
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            inner.claims.remove(&c.id);
            for rec in made {
                if self.volume_users(&inner, &rec.name, Some(&c.id)).is_empty() {
                    if let Err(e) = self.destroy_volume(&rec) {
                        tracing::warn!("removing volume {} of a failed create: {e}", rec.name);
                    }
                }
            }
            return Err(e);
        }
        Ok(out)
    }

    /// Seed the volume `rec` for container `c` from its root at `dest`, when nobody has it
    /// mounted (a running container could change the tree under the copy).
    fn seed_volume(
        &self,
        inner: &Inner,
        c: &Container,
        rec: &VolumeRecord,
        rootfs: &Path,
        dest: &str,
    ) -> Result<()> {
        if self.volume_running(inner, &rec.name, &c.id) {
            tracing::debug!("volume {} is in use: not seeded", rec.name);
            return Ok(());
        }
        let data = self.volume_data(&rec.name);
        let mount = match rec.mount_options() {
            Some(o) if !is_mounted(&data) => {
                mount_local(o, &data)?;
                true
            }
            _ => false,
        };
        let r = seed(rootfs, dest, &data);
        if mount {
            if let Err(e) = unmount_all(&data) {
                tracing::warn!("volume {}: {e}", rec.name);
            }
        }
        r
    }

    /// The runtime mounts of a container's recorded mounts and `--tmpfs` (at every start):
    /// volumes with options mounted first, missing `-v` bind sources made.
    pub(crate) fn oci_mounts(&self, c: &Container) -> Result<Vec<Mount>> {
        let mut out = Vec::new();
        let mut events = Vec::new();
        {
            let mut inner = lock(&self.vol_state);
            for mp in &c.mounts {
                match mp.kind.as_str() {
                    "volume" => {
                        let name = mp.name.clone().unwrap_or_default();
                        let rec = self.volume_record(&name)?.ok_or_else(|| {
                            Error::NotFound(format!("get {name}: no such volume"))
                        })?;
                        let data = self.volume_data(&name);
                        if let Some(o) = rec.mount_options() {
                            if !is_mounted(&data) {
                                mount_local(o, &data)?;
                            }
                        }
                        inner
                            .active
                            .entry(c.id.clone())
                            .or_default()
                            .insert(name.clone());
                        let mut spec = mp.clone();
                        spec.source = data.to_string_lossy().into_owned();
                        out.push(bind_spec(&spec));
                        events.push((
                            rec,
                            vec![
                                ("container", c.id.clone()),
                                ("destination", mp.destination.clone()),
                                ("driver", LOCAL_DRIVER.to_string()),
                                ("propagation", mp.propagation.clone()),
                                ("read/write", mp.rw.to_string()),
                            ],
                        ));
                    }
                    "bind" => {
                        let src = Path::new(&mp.source);
                        if mp.options.iter().any(|o| o == OPT_CREATE_SOURCE)
                            && std::fs::metadata(src).is_err()
                        {
                            use std::os::unix::fs::DirBuilderExt;
                            std::fs::DirBuilder::new()
                                .recursive(true)
                                .mode(0o755)
                                .create(src)
                                .map_err(|e| {
                                    Error::Invalid(format!(
                                        "error while creating mount source path '{}': {e}",
                                        mp.source
                                    ))
                                })?;
                        }
                        out.push(bind_spec(mp));
                    }
                    "tmpfs" => out.push(tmpfs_spec(&mp.destination, mp.options.clone())),
                    _ => {}
                }
            }
        }
        let tmpfs: BTreeMap<String, String> = c
            .host_config
            .tmpfs
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (dest, data) in tmpfs {
            let words: Vec<String> = data.split(',').map(str::to_string).collect();
            let options = merge_tmpfs(&words).map_err(Error::Invalid)?;
            out.push(tmpfs_spec(&clean(&dest), options));
        }
        sort_mounts(&mut out);
        for (rec, attrs) in events {
            self.volume_event(&rec.owner, "mount", &rec.name, &attrs);
        }
        Ok(out)
    }

    /// A container's process ended (or was found ended at the daemon's start): its volumes
    /// are no longer mounted for it; a volume with options no running container uses is
    /// unmounted.
    pub(crate) fn mounts_stopped(&self, c: &Container) {
        let mut inner = lock(&self.vol_state);
        inner.active.remove(&c.id);
        for mp in c.mounts.iter().filter(|m| m.kind == "volume") {
            let name = mp.name.clone().unwrap_or_default();
            let Ok(Some(rec)) = self.volume_record(&name) else {
                continue;
            };
            self.volume_event(
                &rec.owner,
                "unmount",
                &rec.name,
                &[("container", c.id.clone()), ("driver", rec.driver.clone())],
            );
            self.unmount_if_unused(&inner, &rec, &c.id);
        }
    }

    fn unmount_if_unused(&self, inner: &Inner, rec: &VolumeRecord, except: &str) {
        if rec.mount_options().is_none() || self.volume_running(inner, &rec.name, except) {
            return;
        }
        if let Err(e) = unmount_all(&self.volume_data(&rec.name)) {
            tracing::warn!("volume {}: {e}", rec.name);
        }
    }

    /// A container is removed: drop its anonymous volumes no other container uses if
    /// `remove_volumes` (docker rm -v, --rm), release the others. Failures are logged: the
    /// container goes anyway.
    pub(crate) fn release_mounts(&self, c: &Container, remove_volumes: bool) -> Result<()> {
        let mut inner = lock(&self.vol_state);
        inner.claims.remove(&c.id);
        inner.active.remove(&c.id);
        let names: BTreeSet<String> = c
            .mounts
            .iter()
            .filter(|m| m.kind == "volume")
            .filter_map(|m| m.name.clone())
            .collect();
        for name in names {
            let Ok(Some(rec)) = self.volume_record(&name) else {
                continue;
            };
            self.unmount_if_unused(&inner, &rec, &c.id);
            if remove_volumes
                && rec.anonymous()
                && self.volume_users(&inner, &name, Some(&c.id)).is_empty()
            {
                if let Err(e) = self.destroy_volume(&rec) {
                    tracing::warn!("removing volume {name} of container {}: {e}", c.id);
                }
            }
        }
        Ok(())
    }
}

/// Does the image have something other than a directory at `dest` (resolved inside the
/// root)?
fn image_has_file(rootfs: &Path, dest: &str) -> bool {
    use rustix::fs::{Mode as FsMode, OFlags, ResolveFlags};
    let Ok(root) = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    ) else {
        return false;
    };
    let Ok(fd) = rustix::fs::openat2(
        &root,
        dest.trim_start_matches('/'),
        OFlags::PATH | OFlags::CLOEXEC,
        FsMode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return false;
    };
    rustix::fs::fstat(&fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_as_docker() {
        let (d, p) = parse_bind("vol:/data").unwrap();
        assert_eq!(d, "/data");
        assert!(
            matches!(p, Plan::Volume { ref name, rw: true, ref mode, copy: true, .. }
            if name.as_deref() == Some("vol") && mode == "z")
        );
        let (_, p) = parse_bind("vol:/data:ro,nocopy").unwrap();
        assert!(matches!(
            p,
            Plan::Volume {
                rw: false,
                copy: false,
                ..
            }
        ));
        let (d, p) = parse_bind("/host/x/:/c/../y:ro").unwrap();
        assert_eq!(d, "/y");
        match p {
            Plan::Ready(m) => {
                assert_eq!(m.kind, "bind");
                assert_eq!(m.source, "/host/x");
                assert!(!m.rw);
                assert_eq!(m.propagation, "rprivate");
                assert_eq!(m.mode, "ro");
            }
            _ => panic!("a bind"),
        }
        let (_, p) = parse_bind("/data").unwrap();
        assert!(matches!(p, Plan::Volume { name: None, .. }));
        for (bad, msg) in [
            ("", "invalid volume specification: ''"),
            ("/foo:rw", "invalid volume specification: '/foo:rw'"),
            ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
            ("vol:/x:bogus", "invalid mode: bogus"),
            ("vol:/x:ro,rw", "invalid mode: ro,rw"),
            (
                "vol:rel",
                "invalid volume specification: 'vol:rel': invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute",
            ),
            (
                "/h:/",
                "invalid volume specification: '/h:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'",
            ),
            (
                "vol:/x:rshared",
                "invalid volume specification: 'vol:/x:rshared': invalid mount config for type \"volume\": field BindOptions must not be specified",
            ),
        ] {
            match parse_bind(bad) {
                Err(Error::Invalid(m)) => assert_eq!(m, msg, "{bad}"),
                Err(e) => panic!("{bad}: {e:?}"),
                Ok(_) => panic!("{bad} accepted"),
            }
        }
    }

    #[test]
    fn mounts_parse_as_docker() {
        let m = ApiMount {
            typ: Some(MountType::BIND),
            source: Some("/nonexistent-berth-path".into()),
            target: Some("/x".into()),
            ..Default::default()
        };
        match parse_mount(&m) {
            Err(Error::Invalid(msg)) => assert_eq!(
                msg,
                "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-berth-path"
            ),
            _ => panic!("accepted"),
        }
        let m = ApiMount {
            typ: Some(MountType::TMPFS),
            target: Some("/t".into()),
            tmpfs_options: Some(bollard_stubs::models::MountTmpfsOptions {
                size_bytes: Some(64 << 20),
                mode: Some(0o1770),
                options: None,
            }),
            ..Default::default()
        };
        match parse_mount(&m).unwrap().1 {
            Plan::Ready(mp) => assert_eq!(
                mp.options,
                [
                    "noexec",
                    "nosuid",
                    "nodev",
                    "rprivate",
                    "mode=1770",
                    "size=64m"
                ]
            ),
            _ => panic!("a tmpfs"),
        }
        let m = ApiMount {
            typ: Some(MountType::VOLUME),
            target: Some("/v".into()),
            read_only: Some(true),
            ..Default::default()
        };
        assert!(parse_mount(&m).is_err());
    }

    #[test]
    fn tmpfs_options_merge() {
        let w = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            merge_tmpfs(&w("size=64m,mode=1777,exec")).unwrap(),
            [
                "nosuid",
                "nodev",
                "rprivate",
                "size=64m",
                "mode=1777",
                "exec"
            ]
        );
        assert!(merge_tmpfs(&w("bogus")).is_err());
        assert!(merge_tmpfs(&w("foo=1")).is_err());
    }

    #[test]
    fn names_and_options() {
        assert!(check_name("ab").is_ok());
        assert!(check_name("a").unwrap_err().contains("too short"));
        assert!(
            check_name("a/b")
                .unwrap_err()
                .contains("invalid characters")
        );
        let o = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(check_opts(&o(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
        assert_eq!(
            check_opts(&o(&[("type", "tmpfs")])).unwrap_err(),
            "missing required option: \"device\""
        );
        assert_eq!(
            check_opts(&o(&[("foo", "1")])).unwrap_err(),
            "invalid option: \"foo\""
        );
    }

    #[test]
    fn paths_clean() {
        assert_eq!(clean("/a/./b/../c/"), "/a/c");
        assert_eq!(clean("/../.."), "/");
        assert_eq!(clean("/"), "/");
        assert!(check_target("/").is_err());
        assert!(check_target("/a/..").is_err());
        assert!(check_target("a").is_err());
    }

    #[test]
    fn tree_size_follows_no_symlink() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a"), [0u8; 100]).unwrap();
        std::fs::write(d.path().join("sub/b"), [0u8; 20]).unwrap();
        std::os::unix::fs::symlink("/usr", d.path().join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("sub/f")).unwrap();
        assert_eq!(tree_size(d.path()), 120);
    }

    #[test]
    fn volumes_from_modes() {
        assert_eq!(parse_volumes_from("c").unwrap(), ("c", true));
        assert_eq!(parse_volumes_from("c:ro").unwrap(), ("c", false));
        assert!(parse_volumes_from("c:rshared").is_err());
        assert!(parse_volumes_from("").is_err());
    }
}
