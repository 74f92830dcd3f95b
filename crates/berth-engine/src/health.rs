//! Healthchecks: the container's (or its image's) HEALTHCHECK run as an exec through the
//! shim on Docker's schedule, the status (`starting`, `healthy`, `unhealthy`), the failing
//! streak and the last five results kept in the container's state, and `health_status`
//! events when the status changes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard_stubs::models::{ExecConfig, HealthConfig};
use tokio::io::AsyncReadExt;

use crate::model::{Health, HealthLog};
use crate::{Engine, Handle, shim};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// Output kept per result, as Docker keeps it.
const MAX_OUTPUT: usize = 4096;

fn dur(nanos: Option<i64>, default: Duration) -> Duration {
    match nanos {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// The command of a healthcheck: `["CMD", args…]` or `["CMD-SHELL", "cmd"]`; None for
/// `["NONE"]` or an empty test.
pub fn command(h: &HealthConfig) -> Option<Vec<String>> {
    let test = h.test.as_ref()?;
    match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => Some(test[1..].to_vec()),
        Some("CMD-SHELL") if test.len() > 1 => {
            Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")])
        }
        _ => None,
    }
}

impl Engine {
    /// Start the healthcheck loop of a container that just started (if it has one).
    pub(crate) fn start_health(self: &Arc<Self>, h: Arc<Handle>) {
        let c = h.get();
        let Some(hc) = c.config.healthcheck.clone() else {
            return;
        };
        let Some(cmd) = command(&hc) else { return };
        let started_at = SystemTime::now();
        self.update(&h, |c| {
            c.state.health = Some(Health {
                status: "starting".into(),
                failing_streak: 0,
                log: c.state.health.take().map(|x| x.log).unwrap_or_default(),
            })
        });
        let interval = dur(hc.interval, DEFAULT_INTERVAL);
        let timeout = dur(hc.timeout, DEFAULT_TIMEOUT);
        let start_period = dur(hc.start_period, Duration::ZERO);
        let start_interval = dur(hc.start_interval, Duration::from_secs(5));
        let retries = hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
        let me = self.clone();
        let started = c.state.started_at.clone();
        self.rt.spawn(async move {
            loop {
                let in_start_period = started_at.elapsed().unwrap_or_default() < start_period;
                let wait = if in_start_period && hc.start_interval.is_some() {
                    start_interval
                } else {
                    interval
                };
                tokio::time::sleep(wait).await;
                let c = h.get();
                // This run of the container only.
                if !c.state.status.is_running() || c.state.started_at != started {
                    return;
                }
                if c.state.status == crate::model::Status::Paused {
                    continue;
                }
                let begin = SystemTime::now();
                let (code, output) = me.health_probe(&h, &cmd, timeout).await;
                let end = SystemTime::now();
                let in_start_period =
                    begin.duration_since(started_at).unwrap_or_default() < start_period;
                let mut changed = None;
                let c = me.update(&h, |c| {
                    let Some(health) = c.state.health.as_mut() else {
                        return;
                    };
                    health.log.push(HealthLog {
                        start: humantime::format_rfc3339_nanos(begin).to_string(),
                        end: humantime::format_rfc3339_nanos(end).to_string(),
                        exit_code: code,
                        output: output.clone(),
                    });
                    if health.log.len() > 5 {
                        let extra = health.log.len() - 5;
                        health.log.drain(..extra);
                    }
                    let before = health.status.clone();
                    if code == 0 {
                        health.failing_streak = 0;
                        health.status = "healthy".into();
                    } else if !in_start_period {
                        health.failing_streak += 1;
                        if health.failing_streak >= retries {
                            health.status = "unhealthy".into();
                        }
                    }
                    if health.status != before {
                        changed = Some(health.status.clone());
                    }
                });
                if let Some(status) = changed {
                    me.container_event(&c, &format!("health_status: {status}"), &[]);
                }
            }
        });
    }

    /// Run the check once: (exit code, output). A check that outlives `timeout` fails.
    async fn health_probe(
        self: &Arc<Self>,
        h: &Arc<Handle>,
        cmd: &[String],
        timeout: Duration,
    ) -> (i64, String) {
        let c = h.get();
        let exec_id = crate::names::new_id();
        let cfg = ExecConfig {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let inst = crate::exec::ExecInstance {
            id: exec_id.clone(),
            container: c.id.clone(),
            owner: c.owner.clone(),
            config: cfg,
            started: true,
            running: true,
            pid: 0,
            exit_code: None,
        };
        let state = self.paths.container_state(&c.id);
        let me = self.clone();
        let inst2 = inst.clone();
        let state2 = state.clone();
        let written = tokio::task::spawn_blocking(move || -> crate::Result<()> {
            let process = me.exec_process(&inst2, false)?;
            berth_shim::ExecConfig {
                process,
                stdin: false,
                detach: false,
            }
            .write(&state2, &inst2.id)
            .map_err(|e| crate::Error::internal("healthcheck", e))
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return (-1, "could not prepare the healthcheck".into());
        }
        let run = async {
            let (_, mut stream) = shim::command(&state, &format!("exec {exec_id}"))
                .await
                .ok()?;
            // Docker's frames: collect the payloads.
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw).await;
            let mut out = Vec::new();
            let mut i = 0;
            while i + 8 <= raw.len() {
                let n =
                    u32::from_be_bytes([raw[i + 4], raw[i + 5], raw[i + 6], raw[i + 7]]) as usize;
                let end = (i + 8 + n).min(raw.len());
                out.extend_from_slice(&raw[i + 8..end]);
                i = end;
            }
            out.truncate(MAX_OUTPUT);
            let exit = berth_shim::ExecExit::load(&state, &exec_id)
                .ok()
                .flatten()?;
            Some((
                exit.exit_code as i64,
                String::from_utf8_lossy(&out).into_owned(),
            ))
        };
        let result = tokio::time::timeout(timeout, run).await;
        let _ = std::fs::remove_file(berth_shim::config::exec_config_path(&state, &exec_id));
        let _ = std::fs::remove_file(berth_shim::config::exec_exit_path(&state, &exec_id));
        match result {
            Ok(Some(r)) => r,
            Ok(None) => (-1, "the healthcheck could not run".into()),
            Err(_) => (
                -1,
                format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64()),
            ),
        }
    }
}
