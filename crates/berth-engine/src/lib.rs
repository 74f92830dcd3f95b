#![recursion_limit = "256"]

//! berth's engine: containers made from images, run by a shim each (`berth-shim`, which
//! outlives the daemon), their state in a crash-safe database, events, and who may do what.
//! The Docker Engine API (`berth-api`) is a thin layer over it.
//!
//! # Threads
//! The engine lives in the daemon's tokio runtime. Its methods are of two kinds: `async`
//! ones (waiting for a container, attach streams, the exit monitors) never block; plain ones
//! (anything touching the disk, the image store, mounts, the runtime's state, or launching a
//! shim) block and are called from blocking threads (`tokio::task::spawn_blocking`; the API
//! does so). Nothing here forks from an async thread: the shim is started with
//! `std::process::Command` from a blocking thread, and everything that forks into a container
//! (create, start, exec) happens inside the shim.
//!
//! # Invariants
//! - A container record is written (incomplete) before anything of it is made, and marked
//!   complete last; at start the daemon removes what an incomplete record left. Its root is a
//!   recorded reference in the image store (`container:<id>`): nothing it uses is collected.
//! - A running container's shim is the only process that waits for it; its exit is recorded
//!   by the shim in the data root before anyone is told, so the daemon learns it even if it
//!   was down.

pub mod authz;
pub mod build;
pub mod cgroup;
pub mod config;
mod containers;
pub mod db;
mod error;
pub mod events;
pub mod exec;
mod health;
pub mod logs;
pub mod model;
pub mod names;
pub mod networks;
mod ops;
mod runtimes;
pub mod shim;
pub mod spec;
pub mod view;
mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use berth_image::ImageStore;
use tokio::sync::{Notify, watch};

pub use authz::{Action, Policy, Subject};
pub use config::DaemonConfig;
pub use containers::{AttachStream, CreateRequest, PendingAttach, WaitCondition};
pub use error::{Error, Result};
use events::{Event, Events};
use model::Container;
pub use volumes::{ANONYMOUS_LABEL, LOCAL_DRIVER, VolumeRecord};

// Container operations (ops.rs): stats, top, update, archive, export, changes, commit.
pub use ops::{ChangeItem, CommitRequest, ExtractRequest, PathStat, StatsSample, Top};

/// A container the engine knows: its record, and what waits on it.
pub(crate) struct Handle {
    /// The record (the database's copy is written whenever it changes).
    rec: Mutex<Container>,
    /// Bumped at every change of state; waiters watch it.
    changed: watch::Sender<u64>,
    /// Lifecycle operations (start, stop, remove, …) of one container, one at a time.
    op: tokio::sync::Mutex<()>,
    /// Attach requests made before start that have not connected to the shim yet.
    pending_attach: Mutex<usize>,
    /// Signalled when an attach connects (start waits for them) and when the shim is ready.
    attach_notify: Notify,
    /// The shim is up (the container is created in it): attachers may connect.
    shim_ready: watch::Sender<bool>,
    /// Removed: waiters for "removed" end.
    removed: watch::Sender<bool>,
}

impl Handle {
    fn new(c: Container) -> Arc<Handle> {
        Arc::new(Handle {
            rec: Mutex::new(c),
            changed: watch::channel(0).0,
            op: tokio::sync::Mutex::new(()),
            pending_attach: Mutex::new(0),
            attach_notify: Notify::new(),
            shim_ready: watch::channel(false).0,
            removed: watch::channel(false).0,
        })
    }

    /// A copy of the record.
    pub(crate) fn get(&self) -> Container {
        self.rec.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the container runs (or is paused), without copying the record.
    pub(crate) fn running(&self) -> bool {
        self.rec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state
            .status
            .is_running()
    }

    /// Wait until the container no longer runs, at most `limit` (None: for ever); whether it
    /// stopped. `changed` was subscribed before whatever should stop it was done.
    pub(crate) async fn until_down(
        &self,
        changed: &mut watch::Receiver<u64>,
        limit: Option<std::time::Duration>,
    ) -> bool {
        let down = async {
            while self.running() {
                if changed.changed().await.is_err() {
                    break;
                }
            }
        };
        match limit {
            None => {
                down.await;
                true
            }
            Some(l) => tokio::time::timeout(l, down).await.is_ok(),
        }
    }

    fn id(&self) -> String {
        self.rec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .id
            .clone()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The engine's directories.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The data root.
    pub data_root: PathBuf,
    /// The exec root.
    pub exec_root: PathBuf,
}

impl Paths {
    /// A container's data directory (its root, logs, hostname, hosts, exit record).
    pub fn container_data(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }
    /// A container's state directory (bundle, shim socket), on the exec root.
    pub fn container_state(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }
    /// The runtime's state root.
    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }
    /// Named volumes.
    pub fn volumes(&self) -> PathBuf {
        self.data_root.join("volumes")
    }
}

/// The engine.
pub struct Engine {
    cfg: DaemonConfig,
    paths: Paths,
    images: ImageStore,
    db: Arc<db::Db>,
    events: Events,
    policy: Box<dyn Policy>,
    containers: RwLock<HashMap<String, Arc<Handle>>>,
    /// Names in use (without `/`) → container ID; guarded with `containers`' lock order:
    /// always take `containers` first.
    names: Mutex<HashMap<String, String>>,
    shim_bin: PathBuf,
    execs: exec::Execs,
    cgroup_parent: String,
    /// Whether the kernel accounts swap per cgroup (dockerd's SwapLimit).
    swap_limit: bool,
    started: std::time::SystemTime,
    rt: tokio::runtime::Handle,
    /// The volumes' lock and their in-memory use (volumes.rs).
    vol_state: volumes::State,
    /// Networks' records, address spaces and host ports (networks.rs).
    net_state: networks::NetState,
    /// The host side of networking (bridges, veths, the firewall table), made when first
    /// needed.
    net_host: std::sync::OnceLock<berth_net::Host>,
    /// The names the embedded DNS answers.
    dns_names: Arc<networks::DnsNames>,
    /// The embedded DNS server.
    dns_server: berth_dns::Server,
    /// Containers whose namespace the DNS serves, with the guard that stops it.
    dns_serving: Mutex<HashMap<String, berth_dns::Serving>>,
}

/// Make a directory (and parents) root's only.
pub(crate) fn private_dir(p: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .and_then(|_| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| Error::internal(format!("making {}", p.display()), e))
}

/// A binary installed beside this executable (`berth-shim`, `berth-init`), if it is there.
pub fn helper_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // Installed side by side; tests run from target/<profile>/deps.
    [dir.join(name), dir.parent()?.join(name)]
        .into_iter()
        .find(|p| p.exists())
}

/// The shim binary: `berth-shim` beside this executable, else on PATH.
pub fn default_shim_binary() -> PathBuf {
    helper_binary("berth-shim").unwrap_or_else(|| PathBuf::from("berth-shim"))
}

impl Engine {
    /// Open the engine: its database and the image store (both held open), the containers
    /// recovered. Blocking; call it from a blocking thread inside the daemon's runtime.
    pub fn open(cfg: DaemonConfig, rt: tokio::runtime::Handle) -> Result<Arc<Engine>> {
        let paths = Paths {
            data_root: cfg.data_root(),
            exec_root: cfg.exec_root(),
        };
        private_dir(&paths.data_root)?;
        private_dir(&paths.exec_root)?;
        private_dir(&paths.data_root.join("containers"))?;
        private_dir(&paths.exec_root.join("containers"))?;
        private_dir(&paths.runtime_root())?;
        private_dir(&paths.volumes())?;
        let db = Arc::new(db::Db::open(&paths.data_root.join("engine.redb"))?);
        let images = ImageStore::open(&paths.data_root)?;
        images.hold_database()?;
        let events = Events::new(db.clone())?;
        let cgroup_parent = cgroup::parent(cfg.cgroup_parent.as_deref());
        let dns_names = Arc::new(networks::DnsNames::default());
        let engine = Arc::new(Engine {
            cfg,
            paths,
            images,
            db,
            events,
            policy: Box::new(authz::SingleTenant),
            containers: RwLock::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            shim_bin: default_shim_binary(),
            execs: exec::Execs::default(),
            cgroup_parent,
            swap_limit: cgroup::swap_limit_supported(),
            started: std::time::SystemTime::now(),
            rt,
            vol_state: volumes::State::default(),
            net_state: networks::NetState::default(),
            net_host: std::sync::OnceLock::new(),
            dns_names: dns_names.clone(),
            dns_server: berth_dns::Server::new(dns_names),
            dns_serving: Mutex::new(HashMap::new()),
        });
        engine.net_open()?;
        let restarts = engine.recover()?;
        engine.recover_builds();
        engine.net_reconcile()?;
        for r in restarts {
            engine.rt.spawn(r);
        }
        Ok(engine)
    }

    /// Use another shim binary (tests).
    pub fn set_shim_binary(self: &mut Arc<Self>, p: PathBuf) {
        if let Some(e) = Arc::get_mut(self) {
            e.shim_bin = p;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DaemonConfig {
        &self.cfg
    }

    /// The directories.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The event log.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The authorization policy.
    pub fn policy(&self) -> &dyn Policy {
        self.policy.as_ref()
    }

    /// When the engine started.
    pub fn started(&self) -> std::time::SystemTime {
        self.started
    }

    /// The parent cgroup of containers.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Whether the kernel accounts swap per cgroup (a swap limit can be set).
    pub fn swap_limit(&self) -> bool {
        self.swap_limit
    }

    /// Authorize `who` to do `what` on an object of `owner` (None: the engine or a new
    /// object): the one place every request passes.
    pub fn authorize(&self, who: &Subject, what: Action, owner: Option<&str>) -> Result<()> {
        self.policy.authorize(who, what, owner)
    }

    /// Emit an event about a container.
    pub(crate) fn container_event(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut attrs = std::collections::BTreeMap::new();
        for (k, v) in c.config.labels.iter().flatten() {
            attrs.insert(k.clone(), v.clone());
        }
        attrs.insert("image".into(), c.image_name.clone());
        attrs.insert("name".into(), c.name.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events
            .emit(&c.owner, Event::new("container", action, &c.id, attrs));
    }

    /// Emit an event about an image.
    pub fn image_event(&self, owner: &str, action: &str, id: &str, name: &str) {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("name".into(), name.to_string());
        self.events
            .emit(owner, Event::new("image", action, id, attrs));
    }

    /// The container `name_or_id` names (exact ID, exact name, then a unique ID prefix), if
    /// `who` may see it.
    pub(crate) fn lookup(&self, who: &Subject, name_or_id: &str) -> Result<Arc<Handle>> {
        let not_found = || Error::NotFound(format!("No such container: {name_or_id}"));
        let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if key.is_empty() {
            return Err(not_found());
        }
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        let visible = |h: &Arc<Handle>| {
            let owner = h
                .rec
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .owner
                .clone();
            self.policy.visible(who, &owner)
        };
        if let Some(h) = map.get(key) {
            return if visible(h) {
                Ok(h.clone())
            } else {
                Err(not_found())
            };
        }
        let by_name = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        if let Some(id) = by_name {
            if let Some(h) = map.get(&id) {
                return if visible(h) {
                    Ok(h.clone())
                } else {
                    Err(not_found())
                };
            }
        }
        let matches: Vec<&Arc<Handle>> = map
            .iter()
            .filter(|(id, h)| id.starts_with(key) && visible(h))
            .map(|(_, h)| h)
            .collect();
        match matches.len() {
            1 => Ok(matches[0].clone()),
            0 => Err(not_found()),
            _ => Err(Error::Invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    /// Every container `who` may see.
    pub(crate) fn visible_containers(&self, who: &Subject) -> Vec<Arc<Handle>> {
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|h| {
                let owner = h
                    .rec
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .owner
                    .clone();
                self.policy.visible(who, &owner)
            })
            .cloned()
            .collect()
    }

    /// Is an image used by a container (prune keeps it)?
    pub fn image_in_use(&self, image_id: &str) -> bool {
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        map.values().any(|h| h.get().image_id == image_id)
    }
}
