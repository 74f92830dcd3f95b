//! `docker exec`: exec instances (kept in memory, as dockerd keeps them), started by the
//! container's shim (which forks into the container), their streams and exit codes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bollard_stubs::models::ExecConfig;
use serde_json::{Value, json};

use crate::containers::AttachStream;
use crate::{Action, Engine, Error, Result, Subject, shim};

/// An exec instance.
#[derive(Debug, Clone)]
pub struct ExecInstance {
    /// Its ID.
    pub id: String,
    /// The container's ID.
    pub container: String,
    /// The owner (the container's).
    pub owner: String,
    /// The request.
    pub config: ExecConfig,
    /// Started at least once.
    pub started: bool,
    /// Running now.
    pub running: bool,
    /// Its pid (host's view) while it runs.
    pub pid: i64,
    /// Its exit code once it ended.
    pub exit_code: Option<i64>,
}

/// The exec instances of the engine.
#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, ExecInstance>>);

impl Execs {
    fn get(&self, id: &str) -> Option<ExecInstance> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
    fn put(&self, e: ExecInstance) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(e.id.clone(), e);
    }
    fn update(&self, id: &str, f: impl FnOnce(&mut ExecInstance)) {
        if let Some(e) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            f(e);
        }
    }
    /// Drop the instances of a container (removed).
    pub fn forget_container(&self, container: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.container != container);
    }
    /// The IDs of a container's instances.
    pub fn of_container(&self, container: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container == container)
            .map(|e| e.id.clone())
            .collect()
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, who: &Subject, name: &str, cfg: ExecConfig) -> Result<String> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        if cfg.privileged.unwrap_or(false) {
            self.authorize(who, Action::Privileged, Some(&c.owner))?;
        }
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::Invalid("No exec command specified".into()));
        }
        match c.state.status {
            crate::model::Status::Running => {}
            crate::model::Status::Paused => {
                return Err(Error::Conflict(format!(
                    "Container {} is paused, unpause the container before exec",
                    c.id
                )));
            }
            _ => {
                return Err(Error::Conflict(format!(
                    "container {} is not running",
                    c.id
                )));
            }
        }
        let id = crate::names::new_id();
        self.execs.put(ExecInstance {
            id: id.clone(),
            container: c.id.clone(),
            owner: c.owner.clone(),
            config: cfg,
            started: false,
            running: false,
            pid: 0,
            exit_code: None,
        });
        let mut c2 = c.clone();
        c2.name = c.name.clone();
        self.container_event(&c, "exec_create", &[("execID", id.clone())]);
        Ok(id)
    }

    fn exec_lookup(&self, who: &Subject, id: &str) -> Result<ExecInstance> {
        let e = self
            .execs
            .get(id)
            .filter(|e| self.policy.visible(who, &e.owner))
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))?;
        Ok(e)
    }

    /// The process spec of an exec: the container's process (from its bundle) with the exec's
    /// command, env, user, working directory and terminal (blocking).
    pub(crate) fn exec_process(
        &self,
        e: &ExecInstance,
        tty: bool,
    ) -> Result<oci_spec::runtime::Process> {
        let state = self.paths.container_state(&e.container);
        let spec: oci_spec::runtime::Spec = serde_json::from_slice(
            &std::fs::read(state.join("config.json"))
                .map_err(|err| Error::internal("reading the container's bundle", err))?,
        )
        .map_err(|err| Error::internal("reading the container's bundle", err))?;
        let mut p = spec.process().clone().unwrap_or_default();
        let cfg = &e.config;
        let args = cfg.cmd.clone().unwrap_or_default();
        p.set_args(Some(args));
        p.set_terminal(Some(tty));
        p.set_console_size(None);
        let mut env = p.env().clone().unwrap_or_default();
        for kv in cfg.env.iter().flatten() {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        if tty && !env.iter().any(|x| x.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        p.set_env(Some(env));
        if let Some(w) = cfg.working_dir.as_ref().filter(|w| !w.is_empty()) {
            p.set_cwd(PathBuf::from(w));
        }
        if let Some(u) = cfg.user.as_ref().filter(|u| !u.is_empty()) {
            let rootfs = spec
                .root()
                .as_ref()
                .map(|r| r.path().clone())
                .unwrap_or_default();
            let plan = berth_image::config::resolve(u, &rootfs)
                .map_err(|err| Error::Invalid(err.to_string()))?;
            let mut user = oci_spec::runtime::User::default();
            user.set_uid(plan.0).set_gid(plan.1);
            if !plan.2.is_empty() {
                user.set_additional_gids(Some(plan.2));
            }
            p.set_user(user);
        }
        if cfg.privileged.unwrap_or(false) {
            let h = bollard_stubs::models::HostConfig {
                privileged: Some(true),
                ..Default::default()
            };
            let caps = crate::spec::container_caps(&h)?;
            p.set_capabilities(berth_spec::docker::capabilities(&caps));
        }
        Ok(p)
    }

    /// Can the exec `id` start now? Its TTY setting if so.
    /// Returns whether it has a terminal, and its detach keys (`DetachKeys` at create, if
    /// any) when its stdin is attached.
    pub fn exec_check(
        &self,
        who: &Subject,
        id: &str,
        tty: Option<bool>,
    ) -> Result<(bool, Option<String>)> {
        let e = self.exec_lookup(who, id)?;
        self.authorize(who, Action::Write, Some(&e.owner))?;
        if e.started {
            return Err(Error::Conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        let h = self.lookup(who, &e.container)?;
        if !h.get().state.status.is_running() {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                e.container
            )));
        }
        let keys = e
            .config
            .attach_stdin
            .unwrap_or(false)
            .then(|| e.config.detach_keys.clone().unwrap_or_default());
        Ok((tty.unwrap_or(false) || e.config.tty.unwrap_or(false), keys))
    }

    /// `POST /exec/{id}/start`: start the process; unless detached, its stream.
    pub async fn exec_start(
        self: &Arc<Self>,
        who: &Subject,
        id: &str,
        detach: bool,
        tty: Option<bool>,
    ) -> Result<Option<AttachStream>> {
        let e = self.exec_lookup(who, id)?;
        self.authorize(who, Action::Write, Some(&e.owner))?;
        if e.started {
            return Err(Error::Conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        let h = self.lookup(who, &e.container)?;
        let c = h.get();
        if !c.state.status.is_running() {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let tty = tty.unwrap_or(false) || e.config.tty.unwrap_or(false);
        let stdin = e.config.attach_stdin.unwrap_or(false) && !detach;
        self.execs.update(id, |x| {
            x.started = true;
            x.running = true;
        });
        let me = self.clone();
        let e2 = e.clone();
        let state = self.paths.container_state(&e.container);
        let state2 = state.clone();
        let id2 = id.to_string();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let process = me.exec_process(&e2, tty)?;
            let cfg = berth_shim::ExecConfig {
                process,
                stdin,
                detach,
            };
            cfg.write(&state2, &id2)
                .map_err(|err| Error::internal("writing the exec's process", err))
        })
        .await
        .map_err(|err| Error::internal("exec", err))??;
        let started = shim::command(&state, &format!("exec {id}")).await;
        let (pid, stream) = match started {
            Ok(x) => x,
            Err(err) => {
                self.execs.update(id, |x| {
                    x.running = false;
                    x.exit_code = Some(126);
                });
                return Err(Error::Internal(format!("OCI runtime exec failed: {err}")));
            }
        };
        let pid: i64 = pid.trim().parse().unwrap_or(0);
        self.execs.update(id, |x| x.pid = pid);
        self.container_event(
            &c,
            &format!(
                "exec_start: {}",
                e.config.cmd.clone().unwrap_or_default().join(" ")
            ),
            &[("execID", id.to_string())],
        );
        // Learn the exit: when the stream ends (or, detached, by polling the exit file).
        if detach {
            let me = self.clone();
            let id = id.to_string();
            self.rt.spawn(async move {
                loop {
                    if me.exec_finish(&id) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            });
            return Ok(None);
        }
        Ok(Some(AttachStream { stream, tty }))
    }

    /// Read an exec's exit record if it is there: true once it ended (or its container is
    /// gone).
    pub fn exec_finish(&self, id: &str) -> bool {
        let Some(e) = self.execs.get(id) else {
            return true;
        };
        if e.exit_code.is_some() {
            return true;
        }
        let state = self.paths.container_state(&e.container);
        let path = berth_shim::config::exec_exit_path(&state, id);
        let exit = berth_shim::ExecExit::load(&state, id).ok().flatten();
        let gone = !state.exists();
        match exit {
            Some(x) => {
                self.execs.update(id, |e| {
                    e.running = false;
                    e.exit_code = Some(x.exit_code as i64);
                    e.pid = 0;
                });
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(berth_shim::config::exec_config_path(&state, id));
                if let Some(h) = self
                    .containers
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&e.container)
                {
                    self.container_event(
                        &h.get(),
                        "exec_die",
                        &[
                            ("execID", id.to_string()),
                            ("exitCode", x.exit_code.to_string()),
                        ],
                    );
                }
                true
            }
            None if gone => {
                self.execs.update(id, |e| {
                    e.running = false;
                    e.exit_code = Some(137);
                });
                true
            }
            None => false,
        }
    }

    /// Resize an exec's terminal.
    pub async fn exec_resize(
        self: &Arc<Self>,
        who: &Subject,
        id: &str,
        h: u16,
        w: u16,
    ) -> Result<()> {
        let e = self.exec_lookup(who, id)?;
        self.authorize(who, Action::Write, Some(&e.owner))?;
        let state = self.paths.container_state(&e.container);
        shim::call(&state, &format!("resize-exec {id} {h} {w}"))
            .await
            .map(|_| ())
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, who: &Subject, id: &str) -> Result<Value> {
        let e = self.exec_lookup(who, id)?;
        self.authorize(who, Action::Read, Some(&e.owner))?;
        if e.running {
            self.exec_finish(id);
        }
        let e = self.exec_lookup(who, id)?;
        let cfg = &e.config;
        let cmd = cfg.cmd.clone().unwrap_or_default();
        Ok(json!({
            "ID": e.id,
            "Running": e.running,
            "ExitCode": e.exit_code,
            "ProcessConfig": {
                "tty": cfg.tty.unwrap_or(false),
                "entrypoint": cmd.first().cloned().unwrap_or_default(),
                "arguments": cmd.iter().skip(1).cloned().collect::<Vec<_>>(),
                "privileged": cfg.privileged.unwrap_or(false),
                "user": cfg.user.clone().unwrap_or_default(),
            },
            "OpenStdin": cfg.attach_stdin.unwrap_or(false),
            "OpenStderr": cfg.attach_stderr.unwrap_or(false),
            "OpenStdout": cfg.attach_stdout.unwrap_or(false),
            "CanRemove": false,
            "ContainerID": e.container,
            "DetachKeys": cfg.detach_keys.clone().unwrap_or_default(),
            "Pid": e.pid,
        }))
    }
}
