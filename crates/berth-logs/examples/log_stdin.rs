//! Links only the writer: copies stdin into a json-file log, as the shim does with a
//! container's output. `log_stdin PATH [MAX_SIZE [MAX_FILES]]`. Built as the shim is (static,
//! release profile), it measures what the writer adds to a small binary: compare it with the
//! same loop writing stdin to a file with std alone.

use berth_logs::{LogConfig, Stream, Writer};
use std::io::Read;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| std::io::Error::other("usage: log_stdin PATH [MAX_SIZE [MAX_FILES]]"))?;
    let max_size = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let max_files = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut w = Writer::open(LogConfig {
        path: path.into(),
        max_size,
        max_files,
    })?;
    let mut buf = [0u8; 8192];
    let mut stdin = std::io::stdin().lock();
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Err(e) = w.write(Stream::Stdout, &buf[..n]) {
            eprintln!("log_stdin: {e}");
        }
    }
    w.flush()
}
