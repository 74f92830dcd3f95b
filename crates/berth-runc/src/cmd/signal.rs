//! Signal names and numbers as `kill` takes them.

use anyhow::{Result, anyhow, bail};

/// A signal by number, name, or name without SIG; RTMIN+n and RTMAX-n too.
pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal number {n}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| anyhow!("unknown signal {s:?}"))?
        };
        let n = libc::SIGRTMIN() + off;
        if n <= libc::SIGRTMAX() && off >= 0 {
            return Ok(n);
        }
        bail!("unknown signal {s:?}");
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| anyhow!("unknown signal {s:?}"))?
        };
        let n = libc::SIGRTMAX() + off;
        if n >= libc::SIGRTMIN() && off <= 0 {
            return Ok(n);
        }
        bail!("unknown signal {s:?}");
    }
    let full = format!("SIG{name}");
    full.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| anyhow!("unknown signal {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn signals() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("999").is_err());
    }
}
