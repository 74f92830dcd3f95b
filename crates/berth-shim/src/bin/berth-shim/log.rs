//! The container's json-file log (`berth_logs::Writer`). A failed write (a full disk) is
//! counted and dropped: the container and the attach streams go on, and the next chunk tries
//! again.

use berth_shim::LogSettings;

/// The log and its failures.
pub struct Log {
    w: berth_logs::Writer,
    /// Writes that failed (their data is not in the log).
    pub failed: u64,
}

impl Log {
    /// Open (or create) the log.
    pub fn open(s: &LogSettings) -> Result<Log, String> {
        let w = berth_logs::Writer::open(berth_logs::LogConfig {
            path: s.path.clone(),
            max_size: s.max_size,
            max_files: s.max_files,
        })
        .map_err(|e| format!("opening the log {}: {e}", s.path.display()))?;
        Ok(Log { w, failed: 0 })
    }

    /// Log a chunk of the container's output.
    pub fn write(&mut self, stderr: bool, data: &[u8]) {
        let stream = if stderr {
            berth_logs::Stream::Stderr
        } else {
            berth_logs::Stream::Stdout
        };
        if self.w.write(stream, data).is_err() {
            self.failed += 1;
        }
    }

    /// Flush what the writer holds.
    pub fn flush(&mut self) {
        if self.w.flush().is_err() {
            self.failed += 1;
        }
    }
}
