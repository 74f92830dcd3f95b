//! One module per command group.

pub mod archive;
pub mod attach;
pub mod build;
pub mod bundle;
pub mod client;
pub mod container;
pub mod cp;
pub mod daemon;
pub mod format;
pub mod image;
pub mod images_api;
pub mod info;
pub mod network;
pub mod ops;
pub mod progress;
pub mod registry;
pub mod run;
pub mod runtime;
pub mod system;
pub mod volume;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_image::ImageStore;

/// The data root: `--data-root`, else `BERTH_DATA_ROOT`, else /var/lib/berth.
pub fn data_root(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("BERTH_DATA_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/berth"))
}

/// The image store at the data root.
pub fn open(data_root: &Path) -> Result<ImageStore> {
    ImageStore::open(data_root)
        .with_context(|| format!("opening the image store in {}", data_root.display()))
}

/// A reference in the short form Docker prints (`busybox:latest`, not
/// `docker.io/library/busybox:latest`).
pub fn familiar(tag: &str) -> String {
    berth_registry::Reference::parse(tag).map_or_else(|_| tag.to_string(), |r| r.familiar())
}

/// Print rows as Docker's tables: each column as wide as its widest cell plus three spaces
/// (at least ten), the last one unpadded (Go's tabwriter as the docker CLI sets it up).
pub fn print_table(rows: &[Vec<String>]) {
    print_table_min(rows, 10);
}

/// [`print_table`] with columns at least `min` wide (`docker top` uses 20).
pub fn print_table_min(rows: &[Vec<String>], min: usize) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            let w = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0);
            (w + 3).max(min)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width[c] - cell.chars().count()));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// How long ago an RFC 3339 time was, as Docker says it (`3 weeks ago`); `N/A` when it
/// cannot be read.
pub fn ago(rfc3339: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(
        rfc3339
            .trim_end_matches('Z')
            .split('+')
            .next()
            .unwrap_or(""),
    ) else {
        return "N/A".into();
    };
    let d = std::time::SystemTime::now()
        .duration_since(t)
        .unwrap_or_default();
    format!("{} ago", human_duration(d))
}

/// Docker's (go-units') human duration: `Less than a second`, `About a minute`, `3 hours`,
/// `2 weeks`, …
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if d.as_secs_f64() < 1.0 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// Sizes as Docker prints them: decimal units, four significant digits (`4.266MB`).
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let s = if i == 0 {
        n.to_string()
    } else {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    format!("{s}{}", units[i])
}

/// Sizes with `precision` significant digits (go-units' `HumanSizeWithPrecision`: decimal
/// units; `docker stats` uses 3).
pub fn human_prec(n: f64, precision: usize) -> String {
    sig(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], precision)
}

/// Binary sizes as go-units' `BytesSize` (`1.5MiB`, `7.68GiB`; docker stats' memory).
pub fn binary_size(n: f64) -> String {
    sig(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// `n` scaled by `base` into `units`, printed like Go's `%.{precision}g`.
fn sig(n: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut v = if n.is_finite() { n.max(0.0) } else { 0.0 };
    let mut i = 0;
    while v >= base && i < units.len() - 1 {
        v /= base;
        i += 1;
    }
    let digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as usize + 1
    };
    let decimals = precision.saturating_sub(digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// `3 seconds ago` for a time in seconds since the epoch.
pub fn secs_ago(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!(
        "{} ago",
        human_duration(std::time::Duration::from_secs((now - secs).max(0) as u64))
    )
}

/// A time in seconds since the epoch as Go's `time.Time.String()` prints it (in UTC):
/// `2024-01-02 03:04:05 +0000 UTC`.
pub fn go_time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} +0000 UTC", s.trim_end_matches('Z').replace('T', " "))
}

/// An ID as Docker shows it: 12 hex digits, without `sha256:`.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// Ask `question [y/N]` on a terminal; true when answered yes. Without a terminal on stdin
/// there is nobody to ask: true (berth's commands are scriptable; `-f` skips the question).
pub fn confirm(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return true;
    }
    print!("{question}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}

/// An error and its causes on one line, each cause once: `context: cause: root cause`. A
/// library error whose message already includes its cause's (many do, for messages that
/// read well alone) would otherwise print it twice.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_print_like_docker() {
        use std::time::Duration;
        let h = |s| super::human_duration(Duration::from_secs(s));
        assert_eq!(h(0), "Less than a second");
        assert_eq!(h(1), "1 second");
        assert_eq!(h(59), "59 seconds");
        assert_eq!(h(61), "About a minute");
        assert_eq!(h(3 * 60), "3 minutes");
        assert_eq!(h(3600), "About an hour");
        assert_eq!(h(5 * 3600), "5 hours");
        assert_eq!(h(3 * 86_400), "3 days");
        assert_eq!(h(21 * 86_400), "3 weeks");
        assert_eq!(h(90 * 86_400), "3 months");
        assert_eq!(h(3 * 365 * 86_400), "3 years");
        assert_eq!(super::ago("not a time"), "N/A");
        assert!(super::ago("2020-01-01T00:00:00.123456789Z").ends_with(" years ago"));
    }

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(super::human(0), "0B");
        assert_eq!(super::human(999), "999B");
        assert_eq!(super::human(4_266_120), "4.266MB");
        assert_eq!(super::human(12_500), "12.5kB");
        assert_eq!(super::human(2_000_000_000), "2GB");
    }

    #[test]
    fn other_sizes_and_times() {
        assert_eq!(super::binary_size(1_572_864.0), "1.5MiB");
        assert_eq!(super::binary_size(8_246_337_208.0), "7.68GiB");
        assert_eq!(super::binary_size(0.0), "0B");
        assert_eq!(super::human_prec(1234.0, 3), "1.23kB");
        assert_eq!(super::human_prec(0.0, 3), "0B");
        assert_eq!(super::go_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(super::short_id("sha256:0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn causes_are_printed_once() {
        let io = std::io::Error::from_raw_os_error(39);
        let lib = anyhow::Error::new(std::io::Error::other(format!("removing /x: {io}")));
        let e = lib.context("unbundling /b");
        assert_eq!(
            super::one_line(&e),
            "unbundling /b: removing /x: Directory not empty (os error 39)"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("removing /x: {0}")]
        struct Both(#[source] std::io::Error);
        let e = anyhow::Error::new(Both(std::io::Error::from_raw_os_error(39))).context("c");
        assert_eq!(
            super::one_line(&e),
            "c: removing /x: Directory not empty (os error 39)"
        );
    }
}
