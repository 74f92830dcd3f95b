//! Lifecycle hooks: programs run with the container state on stdin.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Run hooks in order; the first failure stops the rest.
pub fn run_all(kind: &'static str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    for h in hooks.into_iter().flatten() {
        run(kind, h, state_json)?;
    }
    Ok(())
}

/// Run hooks in order, reporting failures as warnings on stderr (poststart, poststop).
pub fn run_all_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run(kind, h, state_json) {
            eprintln!("berth: warning: {e}");
        }
    }
}

/// Run one hook: `path` with `args` (args[0] is argv[0]) and exactly `env`, the state on
/// stdin, killed after `timeout` seconds.
pub fn run(kind: &'static str, hook: &Hook, state_json: &str) -> Result<()> {
    let fail = |reason: String| Error::Hook {
        kind,
        path: hook.path().clone(),
        reason,
    };
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin: a broken pipe is not an error.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let timeout = match hook.timeout() {
        Some(t) if t <= 0 => return Err(fail(format!("timeout {t} must be positive"))),
        Some(t) => Some(Duration::from_secs(t as u64)),
        None => None,
    };
    let started = Instant::now();
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(fail(format!("waiting: {e}"))),
        }
        if let Some(t) = timeout
            && started.elapsed() >= t
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("timed out after {}s", t.as_secs())));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    if status.success() {
        Ok(())
    } else if let Some(sig) = status.signal() {
        Err(fail(format!("killed by signal {sig}")))
    } else {
        Err(fail(format!(
            "exited with status {}",
            status.code().unwrap_or(-1)
        )))
    }
}
