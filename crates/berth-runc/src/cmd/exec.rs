//! `exec`: a process from the command line's flags or a process.json, run in a container.

use anyhow::{Context, Result, anyhow, bail};
use berth_runtime::{ExecOptions, Runtime};
use oci_spec::runtime::Process;

use crate::cli::ExecArgs;

pub fn exec(rt: &Runtime, a: ExecArgs) -> Result<u8> {
    let process: Process = match &a.process {
        Some(p) => {
            let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec needs a command (or --process)");
            }
            let spec = rt.spec(&a.id)?;
            let mut p = spec
                .process()
                .clone()
                .ok_or_else(|| anyhow!("the container has no process"))?;
            p.set_args(Some(a.command.clone()));
            let mut env = p.env().clone().unwrap_or_default();
            env.extend(a.env.iter().cloned());
            p.set_env(Some(env));
            if let Some(cwd) = &a.cwd {
                p.set_cwd(cwd.clone());
            }
            p.set_terminal(Some(a.tty));
            p.set_console_size(None);
            if let Some(u) = &a.user {
                let mut user = p.user().clone();
                let (uid, gid) = match u.split_once(':') {
                    Some((u, g)) => (u, Some(g)),
                    None => (u.as_str(), None),
                };
                user.set_uid(
                    uid.parse()
                        .with_context(|| format!("--user {u:?}: a numeric uid[:gid]"))?,
                );
                if let Some(g) = gid {
                    user.set_gid(
                        g.parse()
                            .with_context(|| format!("--user {u:?}: a numeric uid[:gid]"))?,
                    );
                }
                p.set_user(user);
            }
            if !a.additional_gids.is_empty() {
                let mut user = p.user().clone();
                user.set_additional_gids(Some(a.additional_gids.clone()));
                p.set_user(user);
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if let Some(ap) = &a.apparmor {
                p.set_apparmor_profile(Some(ap.clone()));
            }
            if let Some(l) = &a.process_label {
                p.set_selinux_label(Some(l.clone()));
            }
            if !a.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                for c in &a.cap {
                    let cap: oci_spec::runtime::Capability =
                        serde_json::from_value(serde_json::Value::String(c.clone()))
                            .map_err(|_| anyhow!("unknown capability {c:?}"))?;
                    let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                        let mut s = s.clone().unwrap_or_default();
                        s.insert(cap);
                        Some(s)
                    };
                    caps.set_bounding(add(caps.bounding()));
                    caps.set_effective(add(caps.effective()));
                    caps.set_permitted(add(caps.permitted()));
                    if caps.inheritable().is_some() {
                        caps.set_ambient(add(caps.ambient()));
                    }
                }
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let out = rt.exec(
        &a.id,
        ExecOptions {
            process,
            detach: a.detach,
            pid_file: a.pid_file,
            console_socket: a.console_socket,
            preserve_fds: a.preserve_fds,
            ignore_paused: a.ignore_paused,
        },
    )?;
    Ok(out.exit_code.unwrap_or(0).clamp(0, 255) as u8)
}
