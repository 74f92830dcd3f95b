//! Error and debug logging in runc's formats.
//!
//! runc's callers read its log: containerd's shim passes `--log FILE --log-format json` and
//! reports the last `"level":"error"` entry's `msg` when a command fails. Text lines look like
//! logrus's: `time="…" level=error msg="…"`. Errors always go to stderr as well.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Where log lines go.
pub struct Logger {
    file: Option<File>,
    json: bool,
    debug: bool,
}

impl Logger {
    /// A logger writing to `path` (appending) or stderr.
    pub fn new(path: Option<&Path>, json: bool, debug: bool) -> Logger {
        let file = path.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
        Logger { file, json, debug }
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        if self.json {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string() + "\n"
        } else {
            format!("time={time:?} level={level} msg={msg:?}\n")
        }
    }

    /// Log an error: to the log file if any, and always to stderr.
    pub fn error(&mut self, msg: &str) {
        let line = self.line("error", msg);
        if let Some(f) = &mut self.file {
            let _ = f.write_all(line.as_bytes());
        }
        let _ = std::io::stderr().write_all(format!("berth: {msg}\n").as_bytes());
    }

    /// A debug line, only with `--debug`.
    pub fn debug(&mut self, msg: &str) {
        if !self.debug {
            return;
        }
        let line = self.line("debug", msg);
        match &mut self.file {
            Some(f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}
