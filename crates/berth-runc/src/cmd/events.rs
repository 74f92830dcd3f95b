//! `events`: statistics once (`--stats`) or a stream of statistics and OOM events.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use berth_runtime::Runtime;

fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| anyhow!("invalid interval {s:?}: {e}"))
}

pub fn events(rt: &Runtime, id: &str, stats_once: bool, interval: &str) -> Result<()> {
    use std::os::fd::AsFd;
    let emit = |v: serde_json::Value| -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{v}")?;
        out.flush()?;
        Ok(())
    };
    let stats_event = |rt: &Runtime| -> Result<serde_json::Value> {
        Ok(serde_json::json!({"type": "stats", "id": id, "data": rt.stats(id)?}))
    };
    if stats_once {
        return emit(stats_event(rt)?);
    }
    let interval = parse_duration(interval)?;
    if interval.is_zero() {
        bail!("the interval must be positive");
    }
    let mut oom = rt.oom_events(id)?;
    let mut next = std::time::Instant::now() + interval;
    loop {
        let st = rt.state(id)?;
        if st.status == berth_runtime::Status::Stopped {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let wait = next.saturating_duration_since(now);
        let mut fds = [nix::poll::PollFd::new(
            oom.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        let ready = nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
        );
        if matches!(ready, Ok(n) if n > 0) {
            let n = oom.read()?;
            for _ in 0..n {
                emit(serde_json::json!({"type": "oom", "id": id}))?;
            }
            continue;
        }
        if std::time::Instant::now() >= next {
            match stats_event(rt) {
                Ok(v) => emit(v)?,
                Err(_)
                    if rt
                        .state(id)
                        .map(|s| s.status == berth_runtime::Status::Stopped)
                        .unwrap_or(true) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            next += interval;
        }
    }
}
