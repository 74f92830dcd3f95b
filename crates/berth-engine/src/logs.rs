//! `docker logs`: a container's json-file log read on a blocking thread (berth-logs) and
//! sent entry by entry; following ends when the container is no longer running (after the
//! rest of its output is read) or the client goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_logs::{Entry, ReadOptions};
use tokio::sync::mpsc;

use crate::{Action, Engine, Error, Result, Subject};

/// What to read of a log.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// since, until, tail, follow.
    pub read: ReadOptions,
}

/// A log being read: entries arrive on `rx`; `tty` says how to frame them.
pub struct Logs {
    /// The entries.
    pub rx: mpsc::Receiver<Entry>,
    /// The container has a TTY (raw output, no stream frames).
    pub tty: bool,
}

impl Engine {
    /// Read a container's log.
    pub fn logs(self: &Arc<Self>, who: &Subject, name: &str, o: LogOptions) -> Result<Logs> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, Action::Read, Some(&c.owner))?;
        let Some(path) = c.log_path.clone() else {
            return Err(Error::NotImplemented(
                "configured logging driver does not support reading".into(),
            ));
        };
        let max_files = self
            .log_limits(&c)
            .map(|(_, files)| files)
            .unwrap_or(crate::config::DEFAULT_LOG_MAX_FILE);
        let (tx, rx) = mpsc::channel(256);
        let stopped = Arc::new(AtomicBool::new(!c.state.status.is_running()));
        if o.read.follow && !stopped.load(Ordering::Relaxed) {
            // Stop following once the container is not running any more.
            let mut changed = h.changed.subscribe();
            let h2 = h.clone();
            let stopped = stopped.clone();
            let closed = tx.clone();
            self.rt.spawn(async move {
                loop {
                    let s = h2.get().state.status;
                    if !s.is_running() {
                        break;
                    }
                    tokio::select! {
                        r = changed.changed() => if r.is_err() { break },
                        _ = closed.closed() => break,
                    }
                }
                stopped.store(true, Ordering::Relaxed);
            });
        }
        let read = o.read.clone();
        let closed = tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut sink = |e: Entry| {
                if tx.blocking_send(e).is_err() {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            };
            let stop = || stopped.load(Ordering::Relaxed) || closed.is_closed();
            if let Err(e) = berth_logs::read(
                std::path::Path::new(&path),
                max_files,
                &read,
                &mut sink,
                &stop,
            ) {
                tracing::warn!("reading log {path}: {e}");
            }
        });
        Ok(Logs {
            rx,
            tty: c.config.tty.unwrap_or(false),
        })
    }

    /// A container's log rotation: (max size, max files).
    pub(crate) fn log_limits(&self, c: &crate::model::Container) -> Result<(u64, u32)> {
        let opts: std::collections::BTreeMap<String, String> = c
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.config.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let defaults = self.cfg.log_limits().map_err(Error::Invalid)?;
        crate::config::log_limits(&opts, defaults).map_err(Error::Invalid)
    }
}
