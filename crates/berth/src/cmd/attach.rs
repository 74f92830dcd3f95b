//! An attached session on a hijacked stream (run, start -a, attach, exec): the output
//! demultiplexed to stdout/stderr, stdin sent and half-closed at its end, the terminal in raw
//! mode with a TTY (restored on every way out), the window size sent at start and on SIGWINCH,
//! signals forwarded to the container without a TTY (docker's sig-proxy), and the detach keys
//! (ctrl-p ctrl-q) read from stdin.

use std::io::{IsTerminal, Read, Write};
use std::sync::Mutex;
use std::sync::mpsc;

use anyhow::Result;
use nix::sys::signal::{SigSet, Signal};

use super::client::{Client, Conn, Hijacked, Request};

/// The terminal's settings before raw mode, restored on the way out.
static SAVED: Mutex<Option<rustix::termios::Termios>> = Mutex::new(None);

/// Put stdin's terminal in raw mode until the guard goes (or [`restore_terminal`]).
pub struct RawGuard(());

impl RawGuard {
    /// Raw mode on stdin, if it is a terminal.
    pub fn new() -> Option<RawGuard> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let orig = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = orig.clone();
        raw.make_raw();
        if let Ok(mut s) = SAVED.lock() {
            *s = Some(orig);
        }
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawGuard(()))
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Put the terminal back as it was (idempotent).
pub fn restore_terminal() {
    let saved = SAVED.lock().ok().and_then(|mut s| s.take());
    if let Some(t) = saved {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &t);
    }
}

/// The terminal's size (rows, columns), from stdout or else stdin.
pub fn terminal_size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Send the terminal's size to `path` (`/containers/{id}/resize` or `/exec/{id}/resize`).
pub fn resize(c: &Client, path: &str) {
    if let Some((h, w)) = terminal_size() {
        let _ = c.call(Request::post(path.to_string()).q("h", h).q("w", w));
    }
}

/// Docker's detach keys: `ctrl-p,ctrl-q` → [0x10, 0x11] (the daemon's own parser).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    berth_api::detach::parse(s).map_err(|e| anyhow::anyhow!("invalid detach keys {s:?}: {e}"))
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The output ended (the process ended, or its streams closed).
    Ended,
    /// The user typed the detach keys; the container goes on.
    Detached,
}

/// What a session does besides copying.
pub struct Session<'a> {
    /// The daemon.
    pub client: &'a Client,
    /// The stream is a TTY: raw mode when stdin is sent, resizes.
    pub tty: bool,
    /// Send stdin.
    pub stdin: bool,
    /// Detach keys (read only from a terminal).
    pub detach_keys: Option<Vec<u8>>,
    /// Forward signals to this container (no TTY).
    pub sig_proxy: Option<String>,
    /// Where resizes go.
    pub resize_path: Option<String>,
}

enum Event {
    Output(std::io::Result<()>),
    Detached,
}

/// The signals forwarded to the container (docker forwards every one it can catch; these are
/// those a terminal or a supervisor sends).
const PROXIED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
];

/// Run a session on `h`: `started` runs once the streams are being copied (it starts the
/// container or is nothing), then the session lasts until the output ends or the user
/// detaches.
pub fn session(h: Hijacked, s: &Session, started: impl FnOnce() -> Result<()>) -> Result<Outcome> {
    let Hijacked { output, input, raw } = h;
    let raw_guard = if s.tty && s.stdin {
        RawGuard::new()
    } else {
        None
    };
    // Signals: blocked in every thread from here on, taken by one thread with sigwait.
    let mut set = SigSet::empty();
    for sig in PROXIED {
        set.add(*sig);
    }
    if s.tty {
        set.add(Signal::SIGWINCH);
    }
    let handle_signals = s.sig_proxy.is_some() || s.tty;
    // Signals are forwarded once the start has been answered: before, the daemon may not
    // count the container as running yet (and would refuse the kill).
    let started_flag = std::sync::Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    if handle_signals {
        set.thread_block()?;
        let client_host = s.client.host().to_string();
        let proxy = s.sig_proxy.clone();
        let resize_path = s.resize_path.clone();
        let flag = started_flag.clone();
        std::thread::spawn(move || {
            let Ok(c) = Client::new(&client_host, None) else {
                return;
            };
            loop {
                let Ok(sig) = set.wait() else { return };
                {
                    let (m, cv) = &*flag;
                    let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
                    while !*g {
                        g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                    }
                }
                if sig == Signal::SIGWINCH {
                    if let Some(p) = &resize_path {
                        resize(&c, p);
                    }
                } else if let Some(id) = &proxy {
                    let _ = c.call(
                        Request::post(format!("/containers/{id}/kill")).q("signal", sig as i32),
                    );
                } else {
                    // A TTY session: the signal ends the client, as it would docker's.
                    restore_terminal();
                    std::process::exit(128 + sig as i32);
                }
            }
        });
    }
    let (tx, rx) = mpsc::channel();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = super::client::copy_output(output, raw);
            let _ = tx.send(Event::Output(r));
        });
    }
    if s.stdin {
        let keys = s
            .detach_keys
            .clone()
            .filter(|_| std::io::stdin().is_terminal());
        std::thread::spawn(move || pump_stdin(input, keys, tx));
    } else {
        drop(input);
    }
    if let Err(e) = started() {
        drop(raw_guard);
        return Err(e);
    }
    {
        let (m, cv) = &*started_flag;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
    if let (true, Some(p)) = (s.tty, &s.resize_path) {
        resize(s.client, p);
    }
    let outcome = match rx.recv() {
        Ok(Event::Detached) => Outcome::Detached,
        Ok(Event::Output(r)) => {
            if let Err(e) = r {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    drop(raw_guard);
                    return Err(anyhow::Error::new(e).context("reading the container's output"));
                }
            }
            Outcome::Ended
        }
        Err(_) => Outcome::Ended,
    };
    drop(raw_guard);
    Ok(outcome)
}

/// Copy stdin to the connection, watching for the detach keys; at stdin's end, half-close.
fn pump_stdin(mut conn: Conn, keys: Option<Vec<u8>>, tx: mpsc::Sender<Event>) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 32 * 1024];
    let mut watch = keys.map(berth_api::detach::Matcher::new);
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => {
                if let Some(m) = &watch {
                    let _ = conn.write_all(m.pending());
                }
                let _ = conn.shutdown_write();
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                let _ = conn.shutdown_write();
                return;
            }
        };
        let mut out = Vec::with_capacity(n);
        let detached = match &mut watch {
            None => {
                out.extend_from_slice(&buf[..n]);
                false
            }
            Some(m) => m.feed(&buf[..n], &mut out),
        };
        if conn.write_all(&out).is_err() {
            return;
        }
        if detached {
            let _ = tx.send(Event::Detached);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn detach_keys() {
        assert_eq!(
            super::parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            vec![0x10, 0x11]
        );
        assert_eq!(super::parse_detach_keys("ctrl-@,a").unwrap(), vec![0, b'a']);
        assert!(super::parse_detach_keys("ctrl-").is_err());
        assert!(super::parse_detach_keys("alt-x").is_err());
    }
}
