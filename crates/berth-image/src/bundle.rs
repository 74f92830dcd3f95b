//! From an image to an OCI runtime bundle (what `umoci unpack` makes): `config.json`, a
//! runtime spec converted from the image config as the OCI image spec's "Conversion to OCI
//! Runtime Configuration" says, and the root filesystem at `rootfs/`.
//!
//! Bundle layout (`DIR`):
//! - `config.json` — the runtime spec ([`runtime_spec`] plus the volumes' mounts);
//! - `rootfs/` — the root filesystem: an overlayfs mount, or a plain copy
//!   ([`RootfsKind`]);
//! - `.berth-rootfs/` — the root filesystem's state (`rootfs.json`; overlayfs: `upper/`,
//!   `work/`), see [`crate::rootfs`];
//! - `volumes/<name>/` — one directory per `Config.Volumes` entry, seeded with what the image
//!   has at that path (as Docker fills a fresh anonymous volume) and bind-mounted there, so
//!   the container's data in those paths stays out of its root filesystem (and out of a
//!   commit of it).
//!
//! The conversion: `Entrypoint` + `Cmd` → `process.args`, `Env` → `process.env` (with a
//! default `PATH` when the image has none), `WorkingDir` → `process.cwd`, `User` resolved
//! through the image's own /etc/passwd and /etc/group → `process.user` (see
//! [`crate::config::process`]), and the annotations: `os`, `architecture`, `variant`,
//! `os.version`, `os.features`, `author`, `created`, `Config.StopSignal`,
//! `Config.ExposedPorts` (comma-separated) as `org.opencontainers.image.*`, then
//! `Config.Labels`, which take precedence over those. Everything else is Docker's defaults
//! for a container ([`berth_spec::docker::container_spec`]: its capability set, masked and
//! read-only paths, mounts and device rules) and its default seccomp profile
//! ([`berth_spec::seccomp::default_profile`]), with a writable root and no terminal.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Spec;
use rustix::fs::{Mode as FsMode, OFlags, ResolveFlags};
use serde_json::json;

use crate::ImageStore;
use crate::config::{ImageConfiguration, Overrides, process};
use crate::rootfs::{Root, Rootfs, RootfsError, RootfsKind, io_err};

/// The runtime-spec version written.
pub use berth_spec::OCI_VERSION;

/// The annotation keys the conversion sets (`org.opencontainers.image.<field>`).
pub mod annotation {
    /// `os`.
    pub const OS: &str = "org.opencontainers.image.os";
    /// `architecture`.
    pub const ARCHITECTURE: &str = "org.opencontainers.image.architecture";
    /// `variant`.
    pub const VARIANT: &str = "org.opencontainers.image.variant";
    /// `os.version`.
    pub const OS_VERSION: &str = "org.opencontainers.image.os.version";
    /// `os.features`, comma-separated.
    pub const OS_FEATURES: &str = "org.opencontainers.image.os.features";
    /// `author`.
    pub const AUTHOR: &str = "org.opencontainers.image.author";
    /// `created`.
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// `Config.StopSignal`.
    pub const STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";
    /// `Config.ExposedPorts`' keys, comma-separated.
    pub const EXPOSED_PORTS: &str = "org.opencontainers.image.exposedPorts";
}

/// The directory of a bundle's root filesystem state.
pub const STATE_DIR: &str = ".berth-rootfs";

/// The annotations the conversion makes from an image config (see the module docs): the
/// implicit ones, then the labels over them.
pub fn annotations(cfg: &ImageConfiguration) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.insert(k.to_string(), v);
        }
    };
    put(annotation::OS, Some(cfg.os().to_string()));
    put(
        annotation::ARCHITECTURE,
        Some(cfg.architecture().to_string()),
    );
    put(annotation::VARIANT, cfg.variant().clone());
    put(annotation::OS_VERSION, cfg.os_version().clone());
    put(
        annotation::OS_FEATURES,
        cfg.os_features().as_ref().map(|f| f.join(",")),
    );
    put(annotation::AUTHOR, cfg.author().clone());
    put(annotation::CREATED, cfg.created().clone());
    let c = cfg.config().clone().unwrap_or_default();
    put(annotation::STOP_SIGNAL, c.stop_signal().clone());
    put(
        annotation::EXPOSED_PORTS,
        c.exposed_ports().as_ref().map(|p| {
            let mut ports = p.clone();
            ports.sort();
            ports.join(",")
        }),
    );
    for (k, v) in c.labels().clone().unwrap_or_default() {
        out.insert(k, v);
    }
    out
}

/// The runtime spec for a container of the image `cfg` whose root filesystem is `rootfs`
/// (read for the user's passwd and group entries; `root.path` is set to it), with the `run`
/// overrides `o` (see the module docs). Volumes are left to [`ImageStore::bundle`], which has
/// a bundle to keep them in.
pub fn runtime_spec(
    cfg: &ImageConfiguration,
    rootfs: &Path,
    o: &Overrides,
) -> Result<Spec, RootfsError> {
    let plan = process(cfg, rootfs, o)?;
    let mut spec = berth_spec::docker::container_spec(&rootfs.to_string_lossy());
    let mut user = oci_spec::runtime::User::default();
    user.set_uid(plan.uid).set_gid(plan.gid);
    if !plan.additional_gids.is_empty() {
        user.set_additional_gids(Some(plan.additional_gids.clone()));
    }
    if let Some(p) = spec.process_mut() {
        p.set_args(Some(plan.args))
            .set_env(Some(plan.env))
            .set_cwd(PathBuf::from(plan.cwd))
            .set_user(user);
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(Some(berth_spec::seccomp::default_profile(
            berth_spec::docker::DEFAULT_CAPABILITIES,
        )));
    }
    spec.set_hostname(Some(o.hostname.clone().unwrap_or_else(|| "berth".into())));
    let ann = annotations(cfg);
    if !ann.is_empty() {
        spec.set_annotations(Some(ann.into_iter().collect()));
    }
    Ok(spec)
}

/// A volume of a bundle: a directory of the bundle bind-mounted at a path of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Where it is mounted in the container (`Config.Volumes`' key).
    pub destination: String,
    /// The directory, relative to the bundle (`volumes/<name>`).
    pub source: PathBuf,
}

/// An OCI runtime bundle made from an image.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Its root filesystem (at `dir/rootfs`).
    pub rootfs: Rootfs,
    /// What `config.json` holds.
    pub spec: Spec,
    /// Its volumes.
    pub volumes: Vec<Volume>,
}

/// The record ID of the bundle at `dir` (absolute).
pub fn bundle_id(dir: &Path) -> String {
    format!("bundle:{}", dir.display())
}

impl Bundle {
    /// The bundle made at `dir` (reads `config.json` and the root filesystem's state).
    pub fn open(store: &ImageStore, dir: &Path) -> Result<Bundle, RootfsError> {
        let dir = std::path::absolute(dir).map_err(io_err("resolving", dir))?;
        let root = Root::open(&dir.join(STATE_DIR)).map_err(|e| match e {
            berth_snapshot::Error::NotFound(_) => RootfsError::NotFound(dir.clone()),
            e => e.into(),
        })?;
        let (image, diff_ids) = match store.root_record(&bundle_id(&dir))? {
            Some(rec) => (rec.image, rec.diff_ids),
            // A bundle made before roots were recorded: no record to read them from.
            None => (String::new(), Vec::new()),
        };
        let config = dir.join("config.json");
        let bytes = std::fs::read(&config).map_err(io_err("reading", &config))?;
        let spec: Spec = serde_json::from_slice(&bytes).map_err(|e| {
            io_err("parsing", &config)(io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        let volumes = spec
            .mounts()
            .iter()
            .flatten()
            .filter_map(|m| {
                let src = m.source().as_ref()?;
                src.starts_with("volumes").then(|| Volume {
                    destination: m.destination().display().to_string(),
                    source: src.clone(),
                })
            })
            .collect();
        Ok(Bundle {
            rootfs: Rootfs {
                id: bundle_id(&dir),
                image,
                diff_ids,
                root,
            },
            dir,
            spec,
            volumes,
        })
    }

    /// `dir/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
}

impl ImageStore {
    /// Unmount and delete the bundle berth made at `dir` (volumes included), and drop its
    /// record. Refused while a container runs in it ([`RootfsError::Busy`]) unless `force`
    /// (then the container's root and writes are gone). A bundle whose making was
    /// interrupted (killed between its mount and its state file) is cleaned up too. A
    /// directory that is not such a bundle is left alone: [`RootfsError::NotFound`].
    pub fn unbundle(&self, dir: &Path, force: bool) -> Result<(), RootfsError> {
        let dir = std::path::absolute(dir).map_err(io_err("resolving", dir))?;
        let _db = self.db.get()?;
        let id = bundle_id(&dir);
        if self.root_record(&id)?.is_some() {
            self.remove_root(&id, force)?;
        } else if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none()) {
            // Made, then killed before its root was recorded: nothing in it yet.
        } else {
            // A bundle made before roots were recorded.
            let root = Root::open(&dir.join(STATE_DIR)).map_err(|e| match e {
                berth_snapshot::Error::NotFound(_) => RootfsError::NotFound(dir.clone()),
                e => e.into(),
            })?;
            berth_snapshot::remove(&root, force)?;
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &dir)(e)),
            _ => Ok(()),
        }
    }
}

/// A volume path's directory name under `volumes/`: its components joined by `_`, anything
/// but letters, digits, `.`, `-` made `_`, then `-N` if taken.
fn volume_name(dest: &str, taken: &[Volume]) -> String {
    let base: String = dest
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let used = |n: &str| {
        taken
            .iter()
            .any(|v| v.source == Path::new("volumes").join(n))
    };
    if !used(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !used(n))
        .unwrap_or(base)
}

/// Check a `Config.Volumes` path: absolute, no `..`, not `/`.
fn check_volume(dest: &str) -> Result<(), RootfsError> {
    let p = Path::new(dest);
    let bad = |why: &str| RootfsError::Invalid(format!("image volume {dest:?}: {why}"));
    if !p.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(bad("contains '..'"));
    }
    if !p.components().any(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("is the root directory"));
    }
    Ok(())
}

/// Fill the fresh volume directory `vol` with what the root filesystem `rootfs` has at
/// `dest` (resolved inside it, as the container would), owner and mode included; nothing if
/// the image has nothing there.
fn seed_volume(rootfs: &Path, dest: &str, vol: &Path) -> Result<(), RootfsError> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(|e| io_err("opening", rootfs)(e.into()))?;
    let src = match rustix::fs::openat2(
        &root,
        dest.trim_start_matches('/'),
        OFlags::PATH | OFlags::CLOEXEC,
        FsMode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err("resolving", &rootfs.join(dest))(e.into())),
    };
    let md = std::fs::File::from(src.try_clone().map_err(io_err("opening", vol))?)
        .metadata()
        .map_err(io_err("reading", &rootfs.join(dest)))?;
    if !md.is_dir() {
        return Err(RootfsError::Invalid(format!(
            "image volume {dest:?}: the image has something that is not a directory there"
        )));
    }
    // The resolved directory, by its descriptor (a path string could be redirected).
    let src_path = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&src)
    ));
    berth_snapshot::copy_tree(&src_path, vol)?;
    // The volume's own owner and mode are those of the image's directory.
    let vol_parent = vol.parent().unwrap_or(Path::new("/"));
    let parent = rustix::fs::open(
        vol_parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(|e| io_err("opening", vol_parent)(e.into()))?;
    let name = vol.file_name().unwrap_or(OsStr::new("."));
    rustix::fs::chownat(
        &parent,
        name,
        Some(rustix::fs::Uid::from_raw(
            std::os::unix::fs::MetadataExt::uid(&md),
        )),
        Some(rustix::fs::Gid::from_raw(
            std::os::unix::fs::MetadataExt::gid(&md),
        )),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .and_then(|()| {
        rustix::fs::chmodat(
            &parent,
            name,
            FsMode::from_raw_mode(std::os::unix::fs::MetadataExt::mode(&md) & 0o7777),
            rustix::fs::AtFlags::empty(),
        )
    })
    .map_err(|e| io_err("setting the owner of", vol)(e.into()))
}

impl ImageStore {
    /// Make an OCI runtime bundle of the image `name` at `dir` (created; must not exist), its
    /// root filesystem of `kind`, the process from the image config and the overrides `o`
    /// (see the module docs). Runs with `berth runtime run --bundle DIR ID`. Remove it with
    /// [`ImageStore::unbundle`]. The bundle's root filesystem is recorded (as
    /// [`bundle_id`]`(dir)`) before it is made, so a bundle killed half-way can be removed and
    /// nothing it uses is ever collected.
    pub fn bundle(
        &self,
        name: &str,
        dir: &Path,
        kind: RootfsKind,
        o: &Overrides,
    ) -> Result<Bundle, RootfsError> {
        // One open of the database for the lookup and the root's record (see `db`).
        let _db = self.db.get()?;
        let image = self.get(name)?;
        let cfg = crate::config::parse(&image.id, &self.read_blob(&image.id)?)?;
        let mut volumes: Vec<String> = cfg
            .config()
            .as_ref()
            .and_then(|c| c.volumes().clone())
            .unwrap_or_default();
        volumes.sort();
        for v in &volumes {
            check_volume(v)?;
        }
        let dir = std::path::absolute(dir).map_err(io_err("resolving", dir))?;
        // 0700: the root filesystem inside holds the image's set-id programs, which no other
        // user may reach.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(RootfsError::Exists(dir));
            }
            Err(e) => return Err(io_err("creating", &dir)(e)),
        }
        let made = (|| {
            let merged = dir.join("rootfs");
            let id = bundle_id(&dir);
            let user = format!("bundle {}", dir.display());
            let rootfs =
                self.create_root(&image, &id, &user, &dir.join(STATE_DIR), &merged, kind)?;
            let result = (|| {
                let mut spec = runtime_spec(&cfg, &merged, o)?;
                let mut mounts = spec.mounts().clone().unwrap_or_default();
                let mut vols: Vec<Volume> = Vec::new();
                for dest in &volumes {
                    let source = Path::new("volumes").join(volume_name(dest, &vols));
                    let abs = dir.join(&source);
                    std::fs::create_dir_all(&abs).map_err(io_err("creating", &abs))?;
                    seed_volume(&merged, dest, &abs)?;
                    let m: oci_spec::runtime::Mount = serde_json::from_value(json!({
                        "destination": dest, "type": "bind", "source": source,
                        "options": ["rbind", "rw"]
                    }))
                    .map_err(|e| RootfsError::Invalid(format!("volume {dest:?}: {e}")))?;
                    mounts.push(m);
                    vols.push(Volume {
                        destination: dest.clone(),
                        source,
                    });
                }
                spec.set_mounts(Some(mounts));
                let mut root = spec.root().clone().unwrap_or_default();
                root.set_path(PathBuf::from("rootfs"));
                spec.set_root(Some(root));
                let config = dir.join("config.json");
                let bytes = serde_json::to_vec_pretty(&spec)
                    .map_err(|e| RootfsError::Invalid(format!("runtime spec: {e}")))?;
                std::fs::write(&config, bytes).map_err(io_err("writing", &config))?;
                Ok(Bundle {
                    dir: dir.clone(),
                    rootfs: rootfs.clone(),
                    spec,
                    volumes: vols,
                })
            })();
            if result.is_err() {
                let _ = self.remove_root(&rootfs.id, true);
            }
            result
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config of the fields given, with the ones oci-spec requires.
    fn cfg(v: serde_json::Value) -> ImageConfiguration {
        let mut full =
            json!({"architecture": "", "os": "", "rootfs": {"type": "layers", "diff_ids": []}});
        if let (Some(full), serde_json::Value::Object(given)) = (full.as_object_mut(), v) {
            full.extend(given);
        }
        serde_json::from_value(full).unwrap()
    }

    #[test]
    fn annotations_follow_the_conversion_and_labels_win() {
        let c = cfg(json!({
            "os": "linux", "architecture": "arm64", "variant": "v8",
            "os.version": "10.0", "os.features": ["a", "b"],
            "author": "me", "created": "2026-01-02T03:04:05Z",
            "config": {
                "StopSignal": "SIGINT",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "Labels": {"x": "y", "org.opencontainers.image.os": "labelled"}
            }
        }));
        let a = annotations(&c);
        assert_eq!(a[annotation::OS], "labelled", "labels take precedence");
        assert_eq!(a[annotation::ARCHITECTURE], "arm64");
        assert_eq!(a[annotation::VARIANT], "v8");
        assert_eq!(a[annotation::OS_VERSION], "10.0");
        assert_eq!(a[annotation::OS_FEATURES], "a,b");
        assert_eq!(a[annotation::AUTHOR], "me");
        assert_eq!(a[annotation::CREATED], "2026-01-02T03:04:05Z");
        assert_eq!(a[annotation::STOP_SIGNAL], "SIGINT");
        assert_eq!(a[annotation::EXPOSED_PORTS], "53/udp,80/tcp");
        assert_eq!(a["x"], "y");
        assert!(annotations(&cfg(json!({}))).is_empty());
    }

    #[test]
    fn volume_paths_are_checked_and_named() {
        assert!(check_volume("/data").is_ok());
        assert!(check_volume("data").is_err());
        assert!(check_volume("/a/../b").is_err());
        assert!(check_volume("/").is_err());
        let mut taken = Vec::new();
        for d in ["/var/lib/x", "/var_lib/x", "/a b"] {
            let n = volume_name(d, &taken);
            taken.push(Volume {
                destination: d.into(),
                source: Path::new("volumes").join(&n),
            });
        }
        let names: Vec<_> = taken.iter().map(|v| v.source.clone()).collect();
        assert_eq!(
            names,
            [
                Path::new("volumes/var_lib_x"),
                Path::new("volumes/var_lib_x-2"),
                Path::new("volumes/a_b")
            ]
        );
    }
}
