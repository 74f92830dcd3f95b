//! Containers' lifecycle: create, start, stop, kill, wait, remove, restart, attach, and the
//! recovery of every container when the daemon starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard_stubs::models::{ContainerConfig, HostConfig, RestartPolicyNameEnum};
use tokio::net::UnixStream;

use crate::model::{Container, State, Status, ZERO_TIME};
use crate::shim::{self, Exit, ShimConfig, ShimLog};
use crate::{Action, Engine, Error, Handle, Result, Subject, private_dir};

/// A request to create a container (the body of `POST /containers/create`).
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// `?name=`.
    pub name: Option<String>,
    /// Config (the body's top level).
    pub config: ContainerConfig,
    /// HostConfig.
    pub host_config: HostConfig,
    /// NetworkingConfig.EndpointsConfig: per network, the endpoint asked for.
    pub endpoints: std::collections::HashMap<String, bollard_stubs::models::EndpointSettings>,
}

/// A wait in place: resolves to the exit code and the error, if any.
pub type Waiter =
    std::pin::Pin<Box<dyn std::future::Future<Output = (i64, Option<String>)> + Send>>;

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Until it is not running (at once if it is not).
    NotRunning,
    /// Until it next exits.
    NextExit,
    /// Until it is removed.
    Removed,
}

/// An attach being made: whether the container has a TTY (known at once, for the answer's
/// content type) and the stream once connected.
pub struct PendingAttach {
    /// The container has a TTY.
    pub tty: bool,
    /// The stream, once the shim has it.
    pub fut: std::pin::Pin<Box<dyn std::future::Future<Output = Result<AttachStream>> + Send>>,
}

/// An attach stream: the connection to the shim, after its `ok`.
pub struct AttachStream {
    /// The connection (output from the shim, input to it).
    pub stream: UnixStream,
    /// Whether the container has a TTY (raw stream, else Docker's frames).
    pub tty: bool,
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

fn nanos_rfc3339(nanos: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data)
        .map_err(|e| Error::internal(format!("writing {}", path.display()), e))
}

/// Signal names and numbers as Docker takes them (`SIGTERM`, `TERM`, `15`).
pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Invalid(format!("Invalid signal: {s}")));
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rest) = name.strip_prefix("SIGRTMIN+") {
        if let Ok(n) = rest.parse::<i32>() {
            return Ok(libc::SIGRTMIN() + n);
        }
    }
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Invalid(format!("Invalid signal: {s}")))
}

impl Engine {
    /// Create a container (blocking). Returns its ID and warnings.
    pub fn create(&self, who: &Subject, req: CreateRequest) -> Result<(String, Vec<String>)> {
        self.create_from(who, req, None)
    }

    /// Create a container of `image` when given (a build step's state, which is no image
    /// the store lists), else of the image the request names.
    pub(crate) fn create_from(
        &self,
        who: &Subject,
        mut req: CreateRequest,
        image: Option<&berth_image::ImageRecord>,
    ) -> Result<(String, Vec<String>)> {
        self.authorize(who, Action::Create, None)?;
        let hc = &req.host_config;
        if hc.privileged.unwrap_or(false)
            || [&hc.pid_mode, &hc.ipc_mode, &hc.uts_mode]
                .iter()
                .any(|m| m.as_deref() == Some("host"))
            || hc.network_mode.as_deref() == Some("host")
        {
            self.authorize(who, Action::Privileged, None)?;
        }
        let image_name = req
            .config
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                Error::Invalid("config cannot be empty in order to create a container".into())
            })?;
        let image = match image {
            Some(i) => i.clone(),
            None => self.images.lookup(&image_name)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "No such image: {}",
                    normalize_for_message(&image_name)
                ))
            })?,
        };
        // Validate what can be validated before anything is made.
        crate::spec::container_caps(hc)?;
        crate::spec::resources(hc, hc.privileged.unwrap_or(false))?;
        let mut warnings = Vec::new();
        self.adapt_swap(&mut req.host_config, &mut warnings);
        let hc = &req.host_config;
        if let Some(rp) = &hc.restart_policy {
            let name = rp.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
            if hc.auto_remove.unwrap_or(false)
                && !matches!(
                    name,
                    RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO
                )
            {
                return Err(Error::Invalid(
                    "can't create 'AutoRemove' container with restart policy".into(),
                ));
            }
            if rp.maximum_retry_count.unwrap_or(0) < 0 {
                return Err(Error::Invalid(
                    "invalid value for the restart policy's maximum retry count: must be positive"
                        .into(),
                ));
            }
            if rp.maximum_retry_count.unwrap_or(0) > 0 && name != RestartPolicyNameEnum::ON_FAILURE
            {
                return Err(Error::Invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                        .into(),
                ));
            }
        }
        let runtime = hc
            .runtime
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| self.cfg.default_runtime().to_string());
        self.cfg.runtime_binary(&runtime).map_err(Error::Invalid)?;
        let log_driver = hc
            .log_config
            .as_ref()
            .and_then(|l| l.typ.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| self.cfg.log_driver().to_string());
        if log_driver != "json-file" && log_driver != "none" {
            return Err(Error::Invalid(format!(
                "logger: no log driver named '{log_driver}' is registered"
            )));
        }
        if log_driver == "json-file" {
            let opts: std::collections::BTreeMap<String, String> = hc
                .log_config
                .as_ref()
                .and_then(|l| l.config.clone())
                .unwrap_or_default()
                .into_iter()
                .collect();
            let defaults = self.cfg.log_limits().map_err(Error::Invalid)?;
            crate::config::log_limits(&opts, defaults).map_err(Error::Invalid)?;
        }
        let networks = self.create_networking(who, &mut req)?;
        // Recorded as dockerd records them: the runtime and log driver it chose.
        req.host_config.runtime = Some(runtime.clone());
        req.host_config
            .log_config
            .get_or_insert_with(Default::default)
            .typ = Some(log_driver.clone());

        let id = crate::names::new_id();
        // Reserve the name.
        let name = {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            let name = match req.name.as_deref().map(|n| n.trim_start_matches('/')) {
                Some(n) if !n.is_empty() => {
                    if !crate::names::valid(n) {
                        return Err(Error::Invalid(format!(
                            "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                        )));
                    }
                    if let Some(other) = names.get(n) {
                        return Err(Error::Conflict(format!(
                            "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                        )));
                    }
                    n.to_string()
                }
                _ => loop {
                    let n = crate::names::generate();
                    if !names.contains_key(&n) {
                        break n;
                    }
                },
            };
            names.insert(name.clone(), id.clone());
            name
        };
        match self.create_inner(
            who,
            &id,
            &name,
            &image_name,
            &image,
            req,
            runtime,
            &log_driver,
            networks,
        ) {
            Ok(c) => {
                self.container_event(&c, "create", &[]);
                Ok((id, warnings))
            }
            Err(e) => {
                self.names
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
                self.containers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                self.cleanup_container_files(&id);
                let _ = self.db.delete_container(&id);
                Err(e)
            }
        }
    }

    /// dockerd's rules for the swap limit: a memory limit without one gets twice as much
    /// memory+swap (recorded so, as dockerd records it); where the kernel does not account
    /// swap, a swap limit cannot be had: it becomes unlimited, with dockerd's warning.
    pub(crate) fn adapt_swap(&self, hc: &mut HostConfig, warnings: &mut Vec<String>) {
        let memory = hc.memory.unwrap_or(0);
        if memory > 0 && hc.memory_swap.unwrap_or(0) == 0 {
            hc.memory_swap = Some(memory * 2);
        }
        if hc.memory_swap.unwrap_or(0) > 0 && !self.swap_limit {
            warnings.push(
                "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                    .into(),
            );
            hc.memory_swap = Some(-1);
        }
    }

    /// The network mode as dockerd records it (`bridge` for the default, the network's name),
    /// checked with the options that go with it, and the endpoints the container gets.
    fn create_networking(
        &self,
        who: &Subject,
        req: &mut CreateRequest,
    ) -> Result<std::collections::BTreeMap<String, crate::model::Endpoint>> {
        let hc = &mut req.host_config;
        let bridge_on = self.cfg.bridge.as_deref() != Some("none");
        let mode = match hc.network_mode.as_deref() {
            None | Some("" | "default") => if bridge_on { "bridge" } else { "none" }.to_string(),
            Some(m) => m.to_string(),
        };
        let has = |o: &Option<Vec<String>>| o.as_ref().is_some_and(|v| !v.is_empty());
        if let Some(other) = mode.strip_prefix("container:") {
            if other.is_empty() {
                return Err(Error::Invalid(
                    "invalid network mode: container: needs a container".into(),
                ));
            }
            let target = self.lookup(who, other)?;
            let t = target.get();
            if has(&hc.dns) || has(&hc.dns_search) || has(&hc.dns_options) {
                return Err(Error::Invalid(
                    "conflicting options: dns and the network mode".into(),
                ));
            }
            if has(&hc.extra_hosts) {
                return Err(Error::Invalid(
                    "conflicting options: custom host-to-IP mapping and the network mode".into(),
                ));
            }
            if hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
                || hc.publish_all_ports == Some(true)
            {
                return Err(Error::Invalid(
                    "conflicting options: port publishing and the container type network mode"
                        .into(),
                ));
            }
            if req
                .config
                .hostname
                .as_deref()
                .is_some_and(|h| !h.is_empty())
            {
                return Err(Error::Invalid(
                    "conflicting options: hostname and the network mode".into(),
                ));
            }
            // Recorded by ID, as dockerd does.
            hc.network_mode = Some(format!("container:{}", t.id));
            if req
                .endpoints
                .values()
                .any(|e| e.mac_address.as_deref().is_some_and(|m| !m.is_empty()))
            {
                return Err(Error::Invalid(
                    "conflicting options: mac-address and the network mode".into(),
                ));
            }
            return Ok(Default::default());
        }
        if mode == "host" && (hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())) {
            // dockerd ignores published ports on the host network (with a warning).
            hc.port_bindings = None;
        }
        hc.network_mode = Some(mode.clone());
        if has(&hc.links) && (mode == "host" || mode == "none") {
            return Err(Error::Invalid(
                "conflicting options: links and the host or none network mode".into(),
            ));
        }
        self.create_endpoints(who, Some(&mode), &req.endpoints)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_inner(
        &self,
        who: &Subject,
        id: &str,
        name: &str,
        image_name: &str,
        image: &berth_image::ImageRecord,
        req: CreateRequest,
        runtime: String,
        log_driver: &str,
        networks: std::collections::BTreeMap<String, crate::model::Endpoint>,
    ) -> Result<Container> {
        let img_cfg = berth_image::config::parse(&image.id, &self.images.read_blob(&image.id)?)?;
        let mut config = req.config;
        let ic = img_cfg.config().clone().unwrap_or_default();
        // Docker fills the container's Config with the image's defaults.
        if config.cmd.as_ref().is_none_or(|c| c.is_empty())
            && config.entrypoint.as_ref().is_none_or(|e| e.is_empty())
        {
            config.cmd = ic.cmd().clone();
        }
        if config.entrypoint.is_none() {
            config.entrypoint = ic.entrypoint().clone();
        } else if config
            .entrypoint
            .as_ref()
            .is_some_and(|e| e.len() == 1 && e[0].is_empty())
        {
            config.entrypoint = None;
        }
        let mut env = ic.env().clone().unwrap_or_default();
        for e in config.env.clone().unwrap_or_default() {
            let key = e.split('=').next().unwrap_or_default().to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={}", berth_spec::DEFAULT_PATH));
        }
        config.env = Some(env);
        if config.working_dir.as_deref().unwrap_or_default().is_empty() {
            config.working_dir = ic.working_dir().clone();
        }
        if config.user.as_deref().unwrap_or_default().is_empty() {
            config.user = ic.user().clone();
        }
        let mut labels = ic.labels().clone().unwrap_or_default();
        labels.extend(config.labels.clone().unwrap_or_default());
        config.labels = Some(labels.into_iter().collect());
        if config.stop_signal.is_none() {
            config.stop_signal = ic.stop_signal().clone();
        }
        if config.volumes.is_none() {
            config.volumes = ic.volumes().clone();
        }
        if config.healthcheck.is_none() {
            // Docker's extension of the image config (oci-spec does not model it).
            let raw: serde_json::Value =
                serde_json::from_slice(&self.images.read_blob(&image.id)?).unwrap_or_default();
            if let Some(h) = raw.pointer("/config/Healthcheck") {
                config.healthcheck = serde_json::from_value(h.clone()).ok();
            }
        }
        if config.exposed_ports.is_none() {
            config.exposed_ports = ic.exposed_ports().clone();
        }
        if config.hostname.as_deref().unwrap_or_default().is_empty() {
            config.hostname = Some(id[..12].to_string());
        }
        config.image = Some(image_name.to_string());
        if let Some(sig) = &config.stop_signal {
            parse_signal(sig)?;
        }
        let args: Vec<String> = config
            .entrypoint
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(config.cmd.clone().unwrap_or_default())
            .collect();
        if args.is_empty() {
            return Err(Error::Invalid("no command specified".into()));
        }
        let data = self.paths.container_data(id);
        let c = Container {
            id: id.to_string(),
            name: name.to_string(),
            owner: who.tenant.clone(),
            created: now_rfc3339(),
            image_name: image_name.to_string(),
            image_id: image.id.clone(),
            config,
            host_config: req.host_config,
            path: args[0].clone(),
            args: args[1..].to_vec(),
            mounts: Vec::new(),
            state: State {
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                ..Default::default()
            },
            complete: false,
            log_path: (log_driver == "json-file").then(|| {
                data.join(format!("{id}-json.log"))
                    .to_string_lossy()
                    .into_owned()
            }),
            runtime,
            networks,
            sandbox: None,
            ports: Vec::new(),
        };
        // The record first: a crash from here on leaves an incomplete record, and the daemon
        // removes what it made at its next start.
        self.db.put_container(&c)?;
        let handle = Handle::new(c.clone());
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), handle.clone());
        private_dir(&data)?;
        self.images.create_root(
            image,
            &root_id(id),
            &format!("container {}", &id[..12]),
            &data.join("root"),
            &data.join("root").join("merged"),
            berth_image::rootfs::RootfsKind::Overlay,
        )?;
        let mounts = self.prepare_mounts(&c, &data.join("root").join("merged"))?;
        let mut c = c;
        c.mounts = mounts;
        let hostname = c.config.hostname.clone().unwrap_or_default();
        write_private(&data.join("hostname"), format!("{hostname}\n").as_bytes())?;
        write_private(&data.join("hosts"), self.hosts_file(&c, &[]).as_bytes())?;
        let embedded = self.uses_embedded_dns(&c);
        write_private(
            &data.join("resolv.conf"),
            &resolv_conf(&c.host_config, &self.cfg, embedded),
        )?;
        c.complete = true;
        self.db.put_container(&c)?;
        *handle.rec.lock().unwrap_or_else(|p| p.into_inner()) = c.clone();
        Ok(c)
    }

    /// Remove a container's files (root, data, state): what an unfinished create or a
    /// removal leaves. Blocking.
    fn cleanup_container_files(&self, id: &str) {
        if let Ok(Some(_)) = self.images.root_record(&root_id(id)) {
            if let Err(e) = self.images.remove_root(&root_id(id), true) {
                tracing::warn!("removing the root of {id}: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(self.paths.container_state(id));
        let _ = std::fs::remove_dir_all(self.paths.container_data(id));
    }

    /// Start a container (blocking until it runs).
    pub async fn start(self: &Arc<Self>, who: &Subject, name: &str) -> Result<()> {
        let h = self.lookup(who, name)?;
        let owner = h.get().owner;
        self.authorize(who, Action::Write, Some(&owner))?;
        let _op = h.op.lock().await;
        self.start_locked(&h).await
    }

    async fn start_locked(self: &Arc<Self>, h: &Arc<Handle>) -> Result<()> {
        let c = h.get();
        match c.state.status {
            Status::Running | Status::Paused => {
                return Err(Error::NotModified("container already started".into()));
            }
            Status::Removing | Status::Dead => {
                return Err(Error::Conflict(format!(
                    "cannot start container {}: container is marked for removal",
                    c.name
                )));
            }
            _ => {}
        }
        let me = self.clone();
        let c2 = c.clone();
        let prepared = tokio::task::spawn_blocking(move || -> Result<Container> {
            let mut c2 = c2;
            me.net_start(&mut c2)?;
            match me.prepare_start(&c2) {
                Ok(()) => Ok(c2),
                Err(e) => {
                    me.net_teardown(&mut c2);
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| Error::internal("starting", e))?;
        let net = match prepared {
            Ok(c2) => c2,
            Err(e) => {
                let e = start_error(e);
                self.record_start_error(h, &e);
                self.remove_after_failed_start(h);
                return Err(e);
            }
        };
        // The network as set up (addresses, namespace, ports) is the record's from now on:
        // whatever happens next, the exit path undoes it from there.
        self.update(h, |c| {
            c.networks = net.networks.clone();
            c.sandbox = net.sandbox.clone();
            c.ports = net.ports.clone();
        });
        // The record's JSON with many ports was large: its pages back to the kernel.
        crate::networks::trim_after(net.ports.len());
        // The shim is up and the container created: attachers connect now, then it starts.
        h.shim_ready.send_replace(true);
        h.attach_notify.notify_waiters();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let notified = h.attach_notify.notified();
            if *h.pending_attach.lock().unwrap_or_else(|p| p.into_inner()) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let state_dir = self.paths.container_state(&c.id);
        if let Err(e) = shim::call(&state_dir, "start").await {
            h.shim_ready.send_replace(false);
            let e = start_error(e);
            self.record_start_error(h, &e);
            self.remove_after_failed_start(h);
            // The shim ends itself when the container it created goes; make sure it does.
            let me = self.clone();
            let id = c.id.clone();
            let h2 = h.clone();
            tokio::task::spawn_blocking(move || {
                let _ = me.kill_process(&id, libc::SIGKILL, true);
                me.net_release(&h2);
            });
            return Err(e);
        }
        let pid = shim::call(&state_dir, "pid")
            .await
            .ok()
            .and_then(|p| p.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let c = self.update(h, |c| {
            c.state.status = Status::Running;
            c.state.pid = pid;
            c.state.started_at = now_rfc3339();
            c.state.exit_code = 0;
            c.state.error.clear();
            c.state.oom_killed = false;
            c.state.stopped_by_user = false;
        });
        self.container_event(&c, "start", &[]);
        self.monitor(h.clone());
        self.start_health(h.clone());
        Ok(())
    }

    /// A container with AutoRemove whose start failed goes (as dockerd removes it; `docker
    /// run --rm` waits for that).
    fn remove_after_failed_start(self: &Arc<Self>, h: &Arc<Handle>) {
        let c = h.get();
        if !c.host_config.auto_remove.unwrap_or(false) {
            return;
        }
        let me = self.clone();
        let who = Subject {
            tenant: c.owner.clone(),
        };
        self.rt.spawn(async move {
            // After the start's operation lock is released.
            tokio::task::yield_now().await;
            if let Err(e) = me.remove(&who, &c.id, true, true).await {
                tracing::warn!("removing {} after its failed start: {e}", c.id);
            }
        });
    }

    fn record_start_error(&self, h: &Arc<Handle>, e: &Error) {
        let msg = e.to_string();
        let code = if msg.contains("no such file or directory")
            || msg.contains("executable file not found")
        {
            127
        } else if msg.contains("permission denied") {
            126
        } else {
            128
        };
        self.update(h, |c| {
            c.state.error = msg.clone();
            c.state.exit_code = code;
            if c.state.status != Status::Created {
                c.state.status = Status::Exited;
            }
        });
    }

    /// Write the bundle and the shim's config and launch the shim (blocking).
    fn prepare_start(&self, c: &Container) -> Result<()> {
        let data = self.paths.container_data(&c.id);
        let state = self.paths.container_state(&c.id);
        let root = self.images.open_root(&root_id(&c.id))?;
        if root.check().is_err() {
            root.remount()?;
        }
        let img_cfg =
            berth_image::config::parse(&c.image_id, &self.images.read_blob(&c.image_id)?)?;
        let ulimits: Vec<(String, i64, i64)> = self
            .cfg
            .default_ulimits
            .values()
            .map(|u| (u.name.clone(), u.soft, u.hard))
            .collect();
        let rootfs = root.merged();
        let spec = crate::spec::build(
            c,
            crate::spec::SpecInput {
                image: &img_cfg,
                rootfs: &rootfs,
                data_dir: &data,
                cgroups_path: c
                    .host_config
                    .cgroup_parent
                    .clone()
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("/{}/{}", p.trim_matches('/'), c.id))
                    .unwrap_or_else(|| format!("{}/{}", self.cgroup_parent, c.id)),
                default_ulimits: &ulimits,
                mounts: self.oci_mounts(c)?,
                init: self
                    .cfg
                    .init_path
                    .clone()
                    .or_else(|| crate::helper_binary("berth-init")),
                netns: self.netns_for(c)?,
                link_env: self.link_env(c),
            },
        )?;
        let _ = std::fs::remove_dir_all(&state);
        private_dir(&state)?;
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| Error::internal("spec", e))?;
        write_private(&state.join("config.json"), &json)?;
        let _ = std::fs::remove_file(data.join("exit.json"));
        let log = match &c.log_path {
            Some(p) => {
                let (max_size, max_files) = self.log_limits(c)?;
                Some(ShimLog {
                    path: PathBuf::from(p),
                    max_size,
                    max_files,
                })
            }
            None => None,
        };
        let runtime = self
            .cfg
            .runtime_binary(&c.runtime)
            .map_err(Error::Invalid)?;
        let sc = ShimConfig {
            id: c.id.clone(),
            bundle: state.clone(),
            runtime_root: self.paths.runtime_root(),
            tty: c.config.tty.unwrap_or(false),
            stdin: c.config.open_stdin.unwrap_or(false),
            stdin_once: c.config.stdin_once.unwrap_or(false),
            log,
            exit_file: data.join("exit.json"),
            runtime,
        };
        write_private(
            &state.join(berth_shim::config::CONFIG_FILE),
            sc.to_json().as_bytes(),
        )?;
        shim::launch(&self.shim_bin, &state).map(|_| ())
    }

    /// Change a container's record (and the database's copy), tell waiters.
    pub(crate) fn update(&self, h: &Handle, f: impl FnOnce(&mut Container)) -> Container {
        let c = {
            let mut rec = h.rec.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut rec);
            rec.clone()
        };
        if let Err(e) = self.db.put_container(&c) {
            tracing::error!("recording container {}: {e}", c.id);
        }
        h.bump();
        c
    }

    /// Watch a running container's shim for its exit (async task).
    fn monitor(self: &Arc<Self>, h: Arc<Handle>) {
        let me = self.clone();
        self.rt.spawn(async move {
            let id = h.id();
            let state_dir = me.paths.container_state(&id);
            let exit = match shim::wait(&state_dir).await {
                Ok(Some(exit)) => Some(exit),
                _ => None,
            };
            me.on_exit(h, exit).await;
        });
    }

    /// A container's process ended (`exit`), or its shim died (`None`).
    async fn on_exit(self: &Arc<Self>, h: Arc<Handle>, exit: Option<Exit>) {
        let id = h.id();
        let data = self.paths.container_data(&id);
        let exit = match exit {
            Some(e) => e,
            None => {
                // The shim died: it may have recorded the exit first; otherwise kill what is
                // left of the container and report it killed.
                match Exit::read(&data.join("exit.json")) {
                    Some(e) => e,
                    None => {
                        let me = self.clone();
                        let id2 = id.clone();
                        let _ = tokio::task::spawn_blocking(move || me.reap_orphan(&id2)).await;
                        Exit {
                            exit_code: 137,
                            finished_at_nanos: SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .unwrap_or_default()
                                .as_nanos() as i64,
                            oom_killed: false,
                        }
                    }
                }
            }
        };
        h.shim_ready.send_replace(false);
        self.mounts_stopped(&h.get());
        {
            let me = self.clone();
            let h2 = h.clone();
            let _ = tokio::task::spawn_blocking(move || me.net_release(&h2)).await;
        }
        let c = self.update(&h, |c| {
            if c.state.status.is_running() || c.state.status == Status::Restarting {
                c.state.status = Status::Exited;
            }
            c.state.pid = 0;
            c.state.exit_code = exit.exit_code;
            c.state.finished_at = nanos_rfc3339(exit.finished_at_nanos);
            c.state.oom_killed = exit.oom_killed;
        });
        let _ = std::fs::remove_dir_all(self.paths.container_state(&id));
        if exit.oom_killed {
            self.container_event(&c, "oom", &[]);
        }
        self.container_event(&c, "die", &[("exitCode", exit.exit_code.to_string())]);
        if c.host_config.auto_remove.unwrap_or(false) {
            let me = self.clone();
            let who = Subject {
                tenant: c.owner.clone(),
            };
            tokio::spawn(async move {
                if let Err(e) = me.remove(&who, &id, true, true).await {
                    tracing::warn!("auto-removing {id}: {e}");
                }
            });
            return;
        }
        self.maybe_restart(h, c);
    }

    fn maybe_restart(self: &Arc<Self>, h: Arc<Handle>, c: Container) {
        let policy = c.host_config.restart_policy.clone().unwrap_or_default();
        let name = policy.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
        let restart = match name {
            RestartPolicyNameEnum::ALWAYS | RestartPolicyNameEnum::UNLESS_STOPPED => {
                !c.state.stopped_by_user
            }
            RestartPolicyNameEnum::ON_FAILURE => {
                let max = policy.maximum_retry_count.unwrap_or(0);
                !c.state.stopped_by_user
                    && c.state.exit_code != 0
                    && (max == 0 || c.state.restart_count < max)
            }
            _ => false,
        };
        if !restart {
            return;
        }
        // Docker's back-off: 100 ms doubling per restart, reset after 10 s of running, at
        // most a minute.
        let ran_long = humantime::parse_rfc3339_weak(&c.state.started_at)
            .ok()
            .zip(humantime::parse_rfc3339_weak(&c.state.finished_at).ok())
            .and_then(|(s, f)| f.duration_since(s).ok())
            .is_some_and(|d| d >= Duration::from_secs(10));
        let n = if ran_long {
            0
        } else {
            c.state.restart_count.min(10)
        };
        let delay = Duration::from_millis(100u64 << n).min(Duration::from_secs(60));
        let c = self.update(&h, |c| {
            c.state.status = Status::Restarting;
        });
        let _ = c;
        let me = self.clone();
        self.rt.spawn(async move {
            tokio::time::sleep(delay).await;
            let _op = h.op.lock().await;
            let c = h.get();
            if c.state.status != Status::Restarting || c.state.stopped_by_user {
                return;
            }
            // Still `restarting` while it starts (never `exited` in between).
            me.update(&h, |c| c.state.restart_count += 1);
            if let Err(e) = me.start_locked(&h).await {
                tracing::warn!("restarting {}: {e}", c.id);
                let c = h.get();
                me.maybe_restart(h.clone(), c);
            } else {
                let c = h.get();
                me.container_event(&c, "restart", &[]);
            }
        });
    }

    /// Kill what is left of a container whose shim died, and its runtime state (blocking).
    fn reap_orphan(&self, id: &str) {
        let rt = self.rt(id);
        let _ = rt.kill(id, libc::SIGKILL, true);
        for _ in 0..50 {
            match rt.state(id) {
                Ok(s) if s.status == berth_runtime::Status::Running => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        let _ = rt.delete(id, true);
    }

    /// Send a signal to a container's process (`all`: every process of it). Blocking-free:
    /// the runtime's kill is a kill(2) on its recorded pid or cgroup.
    fn kill_process(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        self.rt(id).kill(id, sig, all).map_err(|e| {
            Error::internal(format!("killing container {}", &id[..12.min(id.len())]), e)
        })
    }

    /// The runtime container `id` was created with (blocking use only: another runtime's
    /// operations run its binary).
    pub(crate) fn rt(&self, id: &str) -> crate::runtimes::Rt {
        let name = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|h| {
                h.rec
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .runtime
                    .clone()
            });
        let bin = name.and_then(|n| self.cfg.runtime_binary(&n).ok().flatten());
        crate::runtimes::Rt::new(bin, &self.paths.runtime_root())
    }

    /// `docker kill`.
    pub async fn kill(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        signal: Option<&str>,
    ) -> Result<()> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => libc::SIGKILL,
        };
        if !c.state.status.is_running() {
            return Err(Error::Conflict(format!(
                "cannot kill container: {}: container {} is not running",
                name, c.id
            )));
        }
        if sig == libc::SIGKILL || sig == libc::SIGTERM || sig == libc::SIGINT {
            // A user's kill stops the restart policy (except on-failure: Docker keeps it,
            // but a SIGKILL from the user is not a failure to retry).
            self.update(&h, |c| c.state.stopped_by_user = true);
        }
        let mut changed = h.changed.subscribe();
        let me = self.clone();
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || me.kill_process(&id, sig, false))
            .await
            .map_err(|e| Error::internal("kill", e))??;
        self.container_event(&c, "kill", &[("signal", sig.to_string())]);
        if sig == libc::SIGKILL {
            // As dockerd: a SIGKILL is answered once the container is down (within 10 s),
            // so an inspect right after it sees the exit.
            h.until_down(&mut changed, Some(Duration::from_secs(10)))
                .await;
        }
        Ok(())
    }

    /// `docker stop`: the stop signal, then SIGKILL after the timeout (seconds; `None`: the
    /// container's StopTimeout, else 10; negative: wait for ever).
    pub async fn stop(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let _op = h.op.lock().await;
        self.stop_locked(&h, timeout, signal).await
    }

    async fn stop_locked(
        self: &Arc<Self>,
        h: &Arc<Handle>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.update(h, |c| c.state.stopped_by_user = true);
        if c.state.status == Status::Restarting {
            self.update(h, |c| c.state.status = Status::Exited);
            return Ok(());
        }
        if !c.state.status.is_running() {
            return Err(Error::NotModified("container already stopped".into()));
        }
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(c.config.stop_signal.as_deref())
        {
            Some(s) => parse_signal(s)?,
            None => libc::SIGTERM,
        };
        let timeout = timeout.or(c.config.stop_timeout).unwrap_or(10);
        let mut changed = h.changed.subscribe();
        if c.state.status == Status::Paused {
            let me = self.clone();
            let id = c.id.clone();
            let _ = tokio::task::spawn_blocking(move || me.rt(&id).resume(&id)).await;
        }
        let me = self.clone();
        let id = c.id.clone();
        let sent = tokio::task::spawn_blocking(move || me.kill_process(&id, sig, false))
            .await
            .map_err(|e| Error::internal("stop", e))?;
        if sent.is_ok() {
            self.container_event(&c, "kill", &[("signal", sig.to_string())]);
        }
        let limit = (timeout >= 0).then(|| Duration::from_secs(timeout as u64));
        if !h.until_down(&mut changed, limit).await {
            let me = self.clone();
            let id = c.id.clone();
            let _ = tokio::task::spawn_blocking(move || me.kill_process(&id, libc::SIGKILL, true))
                .await;
            self.container_event(&c, "kill", &[("signal", libc::SIGKILL.to_string())]);
            if !h
                .until_down(&mut changed, Some(Duration::from_secs(30)))
                .await
            {
                return Err(Error::Internal(format!(
                    "container {} did not stop after SIGKILL",
                    &c.id[..12]
                )));
            }
        }
        self.container_event(&h.get(), "stop", &[]);
        Ok(())
    }

    /// `docker restart`.
    pub async fn restart(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let _op = h.op.lock().await;
        match self.stop_locked(&h, timeout, signal).await {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&h).await?;
        self.container_event(&h.get(), "restart", &[]);
        Ok(())
    }

    /// `docker wait`: the exit code (and error) once the condition holds. The waiter is in
    /// place when this returns (so a start that follows cannot be missed); the future
    /// resolves when the condition holds.
    pub fn waiter(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        cond: WaitCondition,
    ) -> Result<Waiter> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Read, Some(&c.owner))?;
        let mut changed = h.changed.subscribe();
        let mut removed = h.removed.subscribe();
        changed.mark_unchanged();
        let code = |h: &Handle| {
            let c = h.get();
            let err = (!c.state.error.is_empty()).then(|| c.state.error.clone());
            (c.state.exit_code, err)
        };
        // An exit is a new FinishedAt: a container whose restart policy brings it back at once
        // has exited all the same (dockerd wakes its waiters when it restarts one), even if the
        // waiter only looks after it runs again.
        let exits_before = c.state.finished_at.clone();
        let exited = move |h: &Handle| h.get().state.finished_at != exits_before;
        Ok(Box::pin(async move {
            match cond {
                WaitCondition::NotRunning => loop {
                    let s = h.get().state.status;
                    if (!s.is_running() && s != Status::Restarting) || exited(&h) {
                        return code(&h);
                    }
                    if changed.changed().await.is_err() {
                        return code(&h);
                    }
                },
                WaitCondition::NextExit => loop {
                    if changed.changed().await.is_err() {
                        return code(&h);
                    }
                    if exited(&h) || *removed.borrow() {
                        return code(&h);
                    }
                },
                WaitCondition::Removed => loop {
                    if *removed.borrow_and_update() {
                        return code(&h);
                    }
                    if removed.changed().await.is_err() {
                        return code(&h);
                    }
                },
            }
        }))
    }

    /// `docker rm`.
    pub async fn remove(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        let _ = volumes;
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let _op = h.op.lock().await;
        let c = h.get();
        if c.state.status == Status::Removing {
            return Err(Error::Conflict(format!(
                "removal of container {} is already in progress",
                c.id
            )));
        }
        if c.state.status.is_running() || c.state.status == Status::Restarting {
            if !force {
                let what = if c.state.status == Status::Paused {
                    "container is paused and must be unpaused first"
                } else {
                    "container is running: stop the container before removing or force remove"
                };
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": {what}",
                    c.name
                )));
            }
            self.update(&h, |c| c.state.stopped_by_user = true);
            if c.state.status.is_running() {
                let mut changed = h.changed.subscribe();
                let me = self.clone();
                let id = c.id.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = me.rt(&id).resume(&id);
                    me.kill_process(&id, libc::SIGKILL, true)
                })
                .await;
                self.container_event(&c, "kill", &[("signal", "9".into())]);
                if !h
                    .until_down(&mut changed, Some(Duration::from_secs(30)))
                    .await
                {
                    return Err(Error::Internal(format!(
                        "could not kill container {}",
                        &c.id[..12]
                    )));
                }
            }
        }
        self.update(&h, |c| c.state.status = Status::Removing);
        let me = self.clone();
        let id = c.id.clone();
        let c_removed = c.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<()> {
            me.release_mounts(&c_removed, volumes)?;
            let state = me.paths.container_state(&id);
            let _ = std::fs::remove_dir_all(&state);
            if let Ok(Some(_)) = me.images.root_record(&root_id(&id)) {
                me.images.remove_root(&root_id(&id), true)?;
            }
            let _ = std::fs::remove_dir_all(me.paths.container_data(&id));
            me.db.delete_container(&id)?;
            Ok(())
        })
        .await
        .map_err(|e| Error::internal("remove", e))?;
        if let Err(e) = res {
            self.update(&h, |c| {
                c.state.status = Status::Dead;
                c.state.error = e.to_string();
            });
            return Err(e);
        }
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&c.id);
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&c.name);
        self.container_event(&c, "destroy", &[]);
        h.removed.send_replace(true);
        h.bump();
        Ok(())
    }

    /// Whether the container has a terminal (the shape of its attach stream).
    pub fn inspect_tty(&self, who: &Subject, name: &str) -> Result<bool> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Read, Some(&c.owner))?;
        Ok(c.config.tty.unwrap_or(false))
    }

    /// `docker attach` (and the attach of `docker run`): the stream of the container's
    /// shim, once connected. The attach is registered when this returns: a container not
    /// started yet starts only after it has connected (so no output is lost), while the
    /// caller answers its client at once (the client starts the container after that).
    pub fn attach(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<PendingAttach> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let tty = c.config.tty.unwrap_or(false);
        let stdin = stdin && c.config.open_stdin.unwrap_or(false);
        let cmd = format!("attach {} {} {}", stdin as u8, stdout as u8, stderr as u8);
        let state_dir = self.paths.container_state(&c.id);
        let me = self.clone();
        if c.state.status.is_running() && *h.shim_ready.borrow() {
            let fut = async move {
                let (_, stream) = shim::command(&state_dir, &cmd).await?;
                me.container_event(&c, "attach", &[]);
                Ok(AttachStream { stream, tty })
            };
            return Ok(PendingAttach {
                tty,
                fut: Box::pin(fut),
            });
        }
        // Not running: connect at the next start, which waits for this attach.
        *h.pending_attach.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let guard = PendingGuard(h.clone());
        let mut ready = h.shim_ready.subscribe();
        let mut removed = h.removed.subscribe();
        let name = name.to_string();
        let fut = async move {
            let _guard = guard;
            loop {
                if *ready.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    r = ready.changed() => if r.is_err() { return Err(Error::Conflict("container is gone".into())) },
                    _ = removed.changed() => return Err(Error::NotFound(format!("No such container: {name}"))),
                }
            }
            let (_, stream) = shim::command(&state_dir, &cmd).await?;
            me.container_event(&c, "attach", &[]);
            Ok(AttachStream { stream, tty })
        };
        Ok(PendingAttach {
            tty,
            fut: Box::pin(fut),
        })
    }

    /// Resize a container's TTY.
    pub async fn resize(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        h_: u16,
        w: u16,
    ) -> Result<()> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        if !c.state.status.is_running() || !c.config.tty.unwrap_or(false) {
            // The CLI resizes right after start; a container that already ended (or has no
            // terminal) has nothing to resize, as containerd answers for an exited task.
            return Ok(());
        }
        shim::call(
            &self.paths.container_state(&c.id),
            &format!("resize {h_} {w}"),
        )
        .await
        .map(|_| ())
    }

    /// Rename a container.
    pub fn rename(&self, who: &Subject, name: &str, new: &str) -> Result<()> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let new = new.trim_start_matches('/');
        if !crate::names::valid(new) {
            return Err(Error::Invalid(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if new == c.name {
            return Err(Error::Invalid(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(other) = names.get(new) {
                return Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{new}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            names.remove(&c.name);
            names.insert(new.to_string(), c.id.clone());
        }
        let c2 = self.update(&h, |c| c.name = new.to_string());
        self.container_event(&c2, "rename", &[("oldName", format!("/{}", c.name))]);
        Ok(())
    }

    /// Pause or unpause (blocking).
    pub fn pause(&self, who: &Subject, name: &str, pause: bool) -> Result<()> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let rt = self.rt(&c.id);
        if pause {
            match c.state.status {
                Status::Running => {}
                Status::Paused => {
                    return Err(Error::Conflict(format!(
                        "Container {} is already paused",
                        c.id
                    )));
                }
                _ => {
                    return Err(Error::Conflict(format!(
                        "Container {} is not running",
                        c.id
                    )));
                }
            }
            rt.pause(&c.id).map_err(|e| Error::internal("pausing", e))?;
            let c = self.update(&h, |c| c.state.status = Status::Paused);
            self.container_event(&c, "pause", &[]);
        } else {
            if c.state.status != Status::Paused {
                return Err(Error::Conflict(format!("Container {} is not paused", c.id)));
            }
            rt.resume(&c.id)
                .map_err(|e| Error::internal("unpausing", e))?;
            let c = self.update(&h, |c| c.state.status = Status::Running);
            self.container_event(&c, "unpause", &[]);
        }
        Ok(())
    }

    /// The daemon stops. With live-restore (the default) containers keep running under
    /// their shims; without it they are stopped as `docker stop` would (their restart
    /// policies then start them again when the daemon comes back).
    pub async fn shutdown(self: &Arc<Self>) {
        if self.cfg.live_restore() {
            return;
        }
        let running: Vec<Arc<Handle>> = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|h| h.get().state.status.is_running())
            .cloned()
            .collect();
        let mut tasks = Vec::new();
        for h in running {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let _op = h.op.lock().await;
                let _ = me.stop_locked(&h, None, None).await;
                // Not stopped by a user: restart policies apply at the next start.
                me.update(&h, |c| c.state.stopped_by_user = false);
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The daemon starts: load every container, finish or undo what a crash interrupted,
    /// re-adopt running containers, record the exits that happened while it was down, apply
    /// restart policies (blocking).
    ///
    /// The restarts are returned, not started: the caller starts them once the network is
    /// put right, so that the reconciliation cannot take a restarted container's new
    /// namespace or veth for a leftover.
    pub(crate) fn recover(self: &Arc<Self>) -> Result<Vec<Deferred>> {
        let mut later: Vec<Deferred> = Vec::new();
        let records = self.db.containers()?;
        let mut known = std::collections::HashSet::new();
        for c in records {
            if !c.complete {
                tracing::info!("removing container {} left half-made", c.id);
                self.cleanup_container_files(&c.id);
                self.db.delete_container(&c.id)?;
                continue;
            }
            known.insert(c.id.clone());
            let h = Handle::new(c.clone());
            self.names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.name.clone(), c.id.clone());
            self.containers
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.id.clone(), h.clone());
            let mut was_running =
                c.state.status.is_running() || c.state.status == Status::Restarting;
            let state_dir = self.paths.container_state(&c.id);
            if !was_running && shim_alive(&state_dir) {
                // A start the daemon did not see through (killed between launching the shim
                // and recording the start): a container the runtime started is adopted as
                // running; one only created is ended (its start never answered).
                let rt = self.rt(&c.id);
                match rt.state(&c.id) {
                    Ok(st) if st.status == berth_runtime::Status::Running => {
                        let pid = i64::from(st.pid);
                        self.update(&h, |c| {
                            c.state.status = Status::Running;
                            c.state.pid = pid;
                            c.state.started_at = now_rfc3339();
                        });
                        was_running = true;
                    }
                    _ => {
                        self.reap_orphan(&c.id);
                        let _ = std::fs::remove_dir_all(&state_dir);
                    }
                }
            }
            let alive = was_running && shim_alive(&state_dir);
            if alive {
                h.shim_ready.send_replace(true);
                let me = self.clone();
                let h2 = h.clone();
                self.rt.spawn(async move {
                    me.monitor(h2.clone());
                    me.start_health(h2);
                });
                continue;
            }
            if was_running {
                let exit = Exit::read(&self.paths.container_data(&c.id).join("exit.json"));
                if exit.is_none() {
                    self.reap_orphan(&c.id);
                }
                let exit = exit.unwrap_or(Exit {
                    exit_code: 137,
                    finished_at_nanos: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_nanos() as i64,
                    oom_killed: false,
                });
                let _ = std::fs::remove_dir_all(&state_dir);
                self.mounts_stopped(&c);
                self.net_release(&h);
                let c = self.update(&h, |c| {
                    c.state.status = Status::Exited;
                    c.state.pid = 0;
                    c.state.exit_code = exit.exit_code;
                    c.state.finished_at = nanos_rfc3339(exit.finished_at_nanos);
                    c.state.oom_killed = exit.oom_killed;
                });
                self.container_event(&c, "die", &[("exitCode", exit.exit_code.to_string())]);
                if c.host_config.auto_remove.unwrap_or(false) {
                    let me = self.clone();
                    let id = c.id.clone();
                    let who = Subject {
                        tenant: c.owner.clone(),
                    };
                    self.rt.spawn(async move {
                        let _ = me.remove(&who, &id, true, true).await;
                    });
                    continue;
                }
                let me = self.clone();
                let h2 = h.clone();
                later.push(Box::pin(async move { me.maybe_restart(h2, c) }));
            } else if c.state.status == Status::Exited
                && match c.host_config.restart_policy.as_ref().and_then(|p| p.name) {
                    // Docker: `always` comes back with the daemon even after a manual stop;
                    // `unless-stopped` only if nobody stopped it.
                    Some(RestartPolicyNameEnum::ALWAYS) => true,
                    Some(RestartPolicyNameEnum::UNLESS_STOPPED) => !c.state.stopped_by_user,
                    _ => false,
                }
            {
                let me = self.clone();
                let h2 = h.clone();
                later.push(Box::pin(async move {
                    let _op = h2.op.lock().await;
                    if let Err(e) = me.start_locked(&h2).await {
                        tracing::warn!("restarting {} with the daemon: {e}", h2.id());
                    }
                }));
            } else if c.state.status == Status::Removing {
                let me = self.clone();
                let id = c.id.clone();
                let who = Subject {
                    tenant: c.owner.clone(),
                };
                self.update(&h, |c| c.state.status = Status::Dead);
                self.rt.spawn(async move {
                    let _ = me.remove(&who, &id, true, false).await;
                });
            }
        }
        // Roots recorded for containers the engine has no record of: a crash between the
        // root and the record's completion, or a record removed before its root.
        for r in self.images.roots().unwrap_or_default() {
            if let Some(id) = r.id.strip_prefix("container:") {
                if !known.contains(id) {
                    tracing::info!("removing the root of unknown container {id}");
                    self.cleanup_container_files(id);
                }
            }
        }
        for dir in [
            self.paths.exec_root.join("containers"),
            self.paths.data_root.join("containers"),
        ] {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&name) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(later)
    }
}

/// Work the daemon's start defers until the network is put right (restarts).
pub(crate) type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A start's failure as dockerd words it: the runtime's message after "OCI runtime create
/// failed", with the system's error in Go's words (lower case), which clients read: the docker
/// CLI exits 127 when it says "no such file or directory", 126 for "permission denied".
fn start_error(e: Error) -> Error {
    let msg = match &e {
        Error::Internal(m) | Error::Invalid(m) => m.clone(),
        other => return Error::Internal(other.to_string()),
    };
    let mut m = msg.clone();
    for (rust, go) in [
        (
            "No such file or directory (os error 2)",
            "no such file or directory",
        ),
        ("Permission denied (os error 13)", "permission denied"),
        ("Not a directory (os error 20)", "not a directory"),
        ("Exec format error (os error 8)", "exec format error"),
    ] {
        m = m.replace(rust, go);
    }
    Error::Invalid(format!(
        "failed to create task for container: OCI runtime create failed: {m}: unknown"
    ))
}

struct PendingGuard(Arc<Handle>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut n = self
            .0
            .pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        drop(n);
        self.0.attach_notify.notify_waiters();
    }
}

/// Is the shim of the container whose state directory is `dir` answering?
fn shim_alive(dir: &Path) -> bool {
    let client = berth_shim::ShimClient::new(dir);
    client.ping().is_ok()
}

/// The image store's record ID of a container's root.
pub(crate) fn root_id(id: &str) -> String {
    format!("container:{id}")
}

/// An image name as Docker prints it in "No such image" (`busybox` → `busybox:latest`).
fn normalize_for_message(name: &str) -> String {
    match berth_registry::Reference::parse(name) {
        Ok(r) => r.familiar(),
        Err(_) => name.to_string(),
    }
}

/// resolv.conf for a container: the host's (without loopback name servers, which would be
/// the container's own), or the request's --dns settings (else daemon.json's); with the
/// embedded DNS (a user-defined network), its address, and the others are where it forwards.
fn resolv_conf(hc: &HostConfig, cfg: &crate::DaemonConfig, embedded: bool) -> Vec<u8> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let net_host = hc.network_mode.as_deref() == Some("host");
    let mut out = String::new();
    let or_cfg = |v: Option<Vec<String>>, d: &Vec<String>| {
        v.filter(|v| !v.is_empty()).unwrap_or_else(|| d.clone())
    };
    let dns: Vec<String> = or_cfg(hc.dns.clone(), &cfg.dns);
    let search: Vec<String> = or_cfg(hc.dns_search.clone(), &cfg.dns_search);
    let opts: Vec<String> = or_cfg(hc.dns_options.clone(), &cfg.dns_opts);
    if embedded {
        out.push_str("# Generated by berth.\n\n");
        out.push_str(&format!("nameserver {}\n", crate::networks::DNS_ADDR));
        let host_search: Vec<&str> = host
            .lines()
            .filter_map(|l| l.trim().strip_prefix("search"))
            .flat_map(|l| l.split_whitespace())
            .collect();
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        } else if !host_search.is_empty() {
            out.push_str(&format!("search {}\n", host_search.join(" ")));
        }
        let mut o: Vec<String> = opts.clone();
        if !o.iter().any(|x| x.starts_with("ndots:")) {
            o.insert(0, "ndots:0".into());
        }
        out.push_str(&format!("options {}\n", o.join(" ")));
        let ext: Vec<String> = if dns.is_empty() {
            host.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .map(|a| a.trim().to_string())
                .collect()
        } else {
            dns.clone()
        };
        out.push_str(&format!(
            "\n# Based on host file: '/etc/resolv.conf' (internal resolver)\n# ExtServers: [{}]\n",
            ext.join(" ")
        ));
        return out.into_bytes();
    }
    for line in host.lines() {
        let l = line.trim();
        if l.starts_with("nameserver") {
            if !dns.is_empty() {
                continue;
            }
            let ip = l.split_whitespace().nth(1).unwrap_or_default();
            if !net_host && (ip.starts_with("127.") || ip == "::1") {
                continue;
            }
        }
        if (l.starts_with("search") && !search.is_empty())
            || (l.starts_with("options") && !opts.is_empty())
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for d in &dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    if !net_host && !out.lines().any(|l| l.trim().starts_with("nameserver")) {
        // Docker's fallback when the host has only loopback resolvers.
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGRTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
