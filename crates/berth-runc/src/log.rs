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
    program: String,
    file: Option<File>,
    json: bool,
    debug: bool,
}

impl Logger {
    /// A logger writing to `path` (appending) or stderr; stderr lines start with `program`.
    pub fn new(program: &str, path: Option<&Path>, json: bool, debug: bool) -> Logger {
        let file = path.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
        Logger {
            program: program.to_string(),
            file,
            json,
            debug,
        }
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
        let _ = std::io::stderr().write_all(format!("{}: {msg}\n", self.program).as_bytes());
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

/// An error and its causes on one line, "outer: inner: root". Library errors already end with
/// their source's text; a cause whose text the line already ends with is not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if line.ends_with(&msg) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&msg);
    }
    line
}

#[cfg(test)]
mod one_line_tests {
    #[test]
    fn causes_are_not_repeated() {
        let io = std::io::Error::from_raw_os_error(2);
        let lib = berth_runtime::Error::io("writing /x", io);
        let e = anyhow::Error::new(lib).context("creating c1");
        assert_eq!(
            super::one_line(&e),
            "creating c1: writing /x: No such file or directory (os error 2)"
        );
    }
}
