//! Sysctls under `/proc/sys`.
//!
//! What the kernel does for `net/*` is described in the crate documentation.

use std::io::Write;
use std::path::PathBuf;

use crate::{Error, Result};

/// Reads the sysctl at `path` under `/proc/sys` (like `"net/ipv4/ip_forward"`), without the
/// trailing newline. For `net/*` it is the value of the calling thread's network namespace.
/// A missing one is [`Error::NotFound`].
pub fn sysctl(path: &str) -> Result<String> {
    let op = || format!("reading sysctl {path}");
    let full = full_path(path).map_err(|reason| Error::invalid(op(), reason))?;
    read(&full).map_err(|e| Error::io(op(), &e))
}

/// Writes `value` to the sysctl at `path` under `/proc/sys` and returns its previous value.
/// For `net/*` it is the calling thread's network namespace that changes.
pub fn set_sysctl(path: &str, value: &str) -> Result<String> {
    let op = || format!("setting sysctl {path} to {value:?}");
    let full = full_path(path).map_err(|reason| Error::invalid(op(), reason))?;
    let previous = read(&full).map_err(|e| Error::io(op(), &e))?;
    if previous != value {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&full)
            .and_then(|mut file| file.write_all(value.as_bytes()))
            .map_err(|e| Error::io(op(), &e))?;
    }
    Ok(previous)
}

fn read(full: &PathBuf) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(full)?;
    let trimmed = text.trim_end_matches('\n').len();
    text.truncate(trimmed);
    Ok(text)
}

/// `/proc/sys/<path>`, refusing paths that would leave `/proc/sys`.
fn full_path(path: &str) -> std::result::Result<PathBuf, String> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "invalid sysctl path {path:?}: it must be relative to /proc/sys, like \
             \"net/ipv4/ip_forward\""
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            full_path("net/ipv4/ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        for bad in [
            "",
            "/net/ipv4",
            "net/../../etc",
            "net//x",
            "net/./x",
            "net/",
        ] {
            assert!(full_path(bad).is_err(), "{bad}");
        }
        let e = sysctl("net/no/such/thing").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(
            e.to_string()
                .starts_with("reading sysctl net/no/such/thing: ")
        );
    }
}
