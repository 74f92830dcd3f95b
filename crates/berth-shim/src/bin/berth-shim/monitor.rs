//! The monitor: one thread, one poll loop over the signalfd (SIGCHLD), the control socket, the
//! container's (and exec'd processes') stdio, the clients and the runtime children's reports.
//!
//! Nothing here blocks: output is read in chunks and handed to every client that wants it
//! (written at once when the client keeps up, else queued; past `CLIENT_BUFFER` the output
//! waits for a client that reads, and a client that stalls is dropped) and to the log; the
//! container's stdin is written as it accepts. Errors in one connection end that connection
//! only.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_shim::config::{PID_FILE, SOCKET_FILE, exec_exit_path, write_file};
use berth_shim::protocol::{
    CLIENT_BUFFER, CLIENT_STALL, MAX_LINE, STREAM_STDERR, STREAM_STDOUT, frame_header,
};
use berth_shim::{ExecExit, ExitRecord, ExitStatus, Request, ShimConfig};
use nix::errno::Errno;
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{MsgFlags, SockFlag};
use nix::sys::wait::WaitPidFlag;

use crate::log::Log;
use crate::runtime::{self, Job as Child};
use crate::sys;

/// Output is read in chunks of this size.
const CHUNK: usize = 32 * 1024;
/// How long output may still come after a process exited (a process that escaped the
/// container may hold its pipes for ever).
const DRAIN: Duration = Duration::from_secs(1);
/// How long clients may take to read what is queued for them once the container is gone.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Input queued for a process's stdin before clients' input is left in their sockets.
const STDIN_BUFFER: usize = 64 * 1024;
/// Connections served at once; more are closed at once.
const MAX_CLIENTS: usize = 512;
/// A queue buffer larger than this is freed once empty.
const KEEP_CAPACITY: usize = 64 * 1024;
/// After this long without events the shim releases what it can (see `trim`).
const IDLE_AFTER: Duration = Duration::from_millis(500);
/// Exits of processes the shim does not know (yet) kept for a pending exec's pid.
const ORPHANS_KEPT: usize = 64;

/// Whose stdio a stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Init,
    Exec(String),
}

/// A monitored process's stdio and exit.
struct Proc {
    pid: i32,
    tty: bool,
    /// stdout, or the pty master.
    out: Option<OwnedFd>,
    /// stderr (pipes only).
    err: Option<OwnedFd>,
    /// Where input goes: stdin's write end, or the master again.
    input: Option<OwnedFd>,
    inbuf: Vec<u8>,
    /// Close `input` once `inbuf` is written.
    close_input: bool,
    /// A client's end of input closes stdin.
    stdin_once: bool,
    exit: Option<(i32, u64)>,
    drain_until: Option<Instant>,
}

impl Proc {
    fn drained(&self, now: Instant) -> bool {
        self.exit.is_some()
            && ((self.out.is_none() && self.err.is_none())
                || self.drain_until.is_some_and(|d| now >= d))
    }

    fn exited(&mut self, code: i32, nanos: u64) {
        if self.exit.is_none() {
            self.exit = Some((code, nanos));
            self.drain_until = Some(Instant::now() + DRAIN);
        }
    }

    fn write_input(&mut self) {
        let Some(fd) = &self.input else {
            self.inbuf.clear();
            return;
        };
        let mut done = 0;
        let mut broken = false;
        while done < self.inbuf.len() {
            match nix::unistd::write(fd, &self.inbuf[done..]) {
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                // The process closed its stdin (EPIPE) or it is gone.
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            self.input = None;
            self.inbuf = Vec::new();
            return;
        }
        self.inbuf.drain(..done);
        if self.inbuf.is_empty() {
            if self.inbuf.capacity() > KEEP_CAPACITY {
                self.inbuf = Vec::new();
            }
            if self.close_input {
                self.input = None;
            }
        }
    }

    fn close_stdin(&mut self) {
        if self.stdin_once && !self.tty {
            self.close_input = true;
            if self.inbuf.is_empty() {
                self.input = None;
            }
        }
    }
}

struct Exec {
    id: String,
    proc: Proc,
    done: bool,
}

enum Kind {
    /// Reading the command line.
    Command,
    /// Waiting for a runtime child's report.
    Busy,
    Attach {
        target: Target,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Wait,
}

struct Client {
    id: u64,
    sock: OwnedFd,
    kind: Kind,
    line: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    /// The client ended its input.
    eof: bool,
    /// Close once `out` is written.
    closing: bool,
    dead: bool,
    /// When the client last took some of its output.
    progress_at: Instant,
}

impl Client {
    fn pending(&self) -> usize {
        self.out.len() - self.pos
    }

    /// Queue `data`, writing at once what the socket takes. (The process's output waits while
    /// a client is more than `CLIENT_BUFFER` behind; one that stalls is dropped elsewhere.)
    fn send(&mut self, mut data: &[u8]) {
        if self.dead {
            return;
        }
        if self.pending() == 0 {
            while !data.is_empty() {
                match nix::sys::socket::send(
                    self.sock.as_raw_fd(),
                    data,
                    MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(n) => {
                        data = &data[n..];
                        self.progress_at = Instant::now();
                    }
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => break,
                    Err(_) => {
                        self.dead = true;
                        return;
                    }
                }
            }
            if data.is_empty() {
                return;
            }
            self.out.clear();
            self.pos = 0;
        }
        if self.pos > 0 && self.pos >= self.out.len() / 2 {
            self.out.drain(..self.pos);
            self.pos = 0;
        }
        self.out.extend_from_slice(data);
    }

    fn flush(&mut self) {
        while self.pending() > 0 {
            match nix::sys::socket::send(
                self.sock.as_raw_fd(),
                &self.out[self.pos..],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => {
                    self.pos += n;
                    self.progress_at = Instant::now();
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        self.pos = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
    }

    fn reply(&mut self, line: &str) {
        self.send(line.as_bytes());
        self.send(b"\n");
    }

    fn error(&mut self, msg: &str) {
        self.send(b"error ");
        self.reply(&runtime::one_line(msg));
        self.closing = true;
    }

    /// More than `CLIENT_BUFFER` behind.
    fn behind(&self) -> bool {
        self.pending() > CLIENT_BUFFER
    }

    /// Attached to `target` for any of its output.
    fn reads(&self, target: &Target) -> bool {
        matches!(&self.kind, Kind::Attach { target: t, stdout, stderr, .. }
            if t == target && (*stdout || *stderr))
    }

    fn wants(&self, target: &Target, stderr: bool, tty: bool) -> bool {
        match &self.kind {
            Kind::Attach {
                target: t,
                stdout,
                stderr: e,
                ..
            } if t == target => {
                if tty {
                    *stdout || *e
                } else if stderr {
                    *e
                } else {
                    *stdout
                }
            }
            _ => false,
        }
    }
}

enum JobKind {
    Start,
    Exec(String),
    Delete,
}

struct Job {
    child: Child,
    kind: JobKind,
    /// The client waiting for the result.
    client: Option<u64>,
    handled: bool,
    reaped: bool,
}

#[derive(Clone, Copy)]
enum PRef {
    Init,
    Exec(usize),
}

#[derive(Clone, Copy)]
enum Slot {
    Signal,
    Listener,
    Out(PRef, bool),
    Input(PRef),
    Client(usize),
    Job(usize),
}

#[derive(PartialEq, Eq)]
enum StartState {
    Created,
    Starting,
    Started,
}

/// The monitor's state.
pub struct Monitor {
    cfg: ShimConfig,
    state_dir: PathBuf,
    /// Closed once the exit is announced.
    listener: Option<OwnedFd>,
    sigfd: SignalFd,
    init: Proc,
    oom: Option<(PathBuf, u64)>,
    log: Option<Log>,
    execs: Vec<Exec>,
    clients: Vec<Client>,
    jobs: Vec<Job>,
    orphans: Vec<(i32, i32, u64)>,
    start: StartState,
    /// The init is drained and its exit recorded; the runtime state is being deleted.
    finished: bool,
    /// The exit, once announced to `wait`.
    announced: Option<ExitStatus>,
    closing_deadline: Option<Instant>,
    next_client: u64,
    buf: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
    slots: Vec<Slot>,
    last_activity: Instant,
    trimmed: bool,
}

/// The container's stdio as the shim holds it.
pub struct InitIo {
    pub pid: i32,
    pub tty: bool,
    pub out: OwnedFd,
    pub err: Option<OwnedFd>,
    pub input: Option<OwnedFd>,
    pub oom: Option<(PathBuf, u64)>,
}

impl Monitor {
    pub fn new(
        cfg: ShimConfig,
        state_dir: PathBuf,
        listener: OwnedFd,
        sigfd: SignalFd,
        io: InitIo,
        log: Option<Log>,
    ) -> Monitor {
        let stdin_once = cfg.stdin_once;
        Monitor {
            cfg,
            state_dir,
            listener: Some(listener),
            sigfd,
            init: Proc {
                pid: io.pid,
                tty: io.tty,
                out: Some(io.out),
                err: io.err,
                input: io.input,
                inbuf: Vec::new(),
                close_input: false,
                stdin_once,
                exit: None,
                drain_until: None,
            },
            oom: io.oom,
            log,
            execs: Vec::new(),
            clients: Vec::new(),
            jobs: Vec::new(),
            orphans: Vec::new(),
            start: StartState::Created,
            finished: false,
            announced: None,
            closing_deadline: None,
            next_client: 0,
            buf: Vec::new(),
            pollfds: Vec::with_capacity(16),
            slots: Vec::with_capacity(16),
            last_activity: Instant::now(),
            trimmed: false,
        }
    }

    /// Serve until the container has exited, its exit is recorded and announced, and the
    /// clients are served (or the grace period is over).
    pub fn run(mut self) -> i32 {
        // The init may have exited already (its SIGCHLD is pending on the signalfd too).
        self.reap();
        loop {
            let now = Instant::now();
            self.progress(now);
            self.sweep();
            if self.done(now) {
                break;
            }
            self.build_poll();
            let timeout = self.timeout(now);
            // SAFETY: `pollfds` is a valid array of `len` pollfd structures, each naming an fd
            // this monitor owns for the duration of the call.
            let n = unsafe {
                libc::poll(
                    self.pollfds.as_mut_ptr(),
                    self.pollfds.len() as libc::nfds_t,
                    timeout,
                )
            };
            if n < 0 {
                continue; // EINTR
            }
            if n == 0 {
                if !self.trimmed && Instant::now() >= self.last_activity + IDLE_AFTER {
                    // The read buffer is made again on the next event.
                    self.buf = Vec::new();
                    trim();
                    self.trimmed = true;
                }
                continue;
            }
            self.last_activity = Instant::now();
            self.trimmed = false;
            if self.buf.is_empty() {
                self.buf = vec![0u8; CHUNK + 8];
            }
            for k in 0..self.pollfds.len() {
                let re = self.pollfds[k].revents;
                if re == 0 {
                    continue;
                }
                match self.slots[k] {
                    Slot::Signal => {
                        while let Ok(Some(_)) = self.sigfd.read_signal() {}
                        self.reap();
                    }
                    Slot::Listener => self.accept(),
                    Slot::Out(p, stderr) => self.read_output(p, stderr),
                    Slot::Input(p) => self.proc_mut(p).write_input(),
                    Slot::Client(i) => self.client_event(i, re),
                    Slot::Job(j) => self.job_report(j),
                }
            }
        }
        0
    }

    fn proc_mut(&mut self, p: PRef) -> &mut Proc {
        match p {
            PRef::Init => &mut self.init,
            PRef::Exec(k) => &mut self.execs[k].proc,
        }
    }

    fn done(&self, now: Instant) -> bool {
        if self.announced.is_none() {
            return false;
        }
        let past = self.closing_deadline.is_some_and(|d| now >= d);
        (self.clients.is_empty() && self.execs.iter().all(|e| e.done) && self.jobs.is_empty())
            || past
    }

    fn timeout(&self, now: Instant) -> i32 {
        let mut next: Option<Instant> = self.closing_deadline;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        if self.init.exit.is_some() && !self.finished && !self.starting() {
            consider(self.init.drain_until);
        }
        for e in &self.execs {
            if !e.done && e.proc.exit.is_some() {
                consider(e.proc.drain_until);
            }
        }
        if !self.trimmed {
            consider(Some(self.last_activity + IDLE_AFTER));
        }
        for c in &self.clients {
            if c.behind() {
                consider(Some(c.progress_at + CLIENT_STALL));
            }
        }
        match next {
            None => -1,
            Some(d) => d
                .saturating_duration_since(now)
                .as_millis()
                .saturating_add(1)
                .min(i32::MAX as u128) as i32,
        }
    }

    fn build_poll(&mut self) {
        self.pollfds.clear();
        self.slots.clear();
        let mut push = |fds: &mut Vec<libc::pollfd>, fd: RawFd, events: i16, slot: Slot| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            self.slots.push(slot);
        };
        let fds = &mut self.pollfds;
        push(
            fds,
            self.sigfd.as_fd().as_raw_fd(),
            libc::POLLIN,
            Slot::Signal,
        );
        if let Some(l) = &self.listener {
            push(fds, l.as_raw_fd(), libc::POLLIN, Slot::Listener);
        }
        let procs = std::iter::once((PRef::Init, &self.init)).chain(
            self.execs
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.done)
                .map(|(k, e)| (PRef::Exec(k), &e.proc)),
        );
        for (p, pr) in procs {
            // Output waits while a client that reads it is too far behind.
            let held = match p {
                PRef::Init => held(&self.clients, &Target::Init),
                PRef::Exec(k) => held(&self.clients, &Target::Exec(self.execs[k].id.clone())),
            };
            if let Some(fd) = pr.out.as_ref().filter(|_| !held) {
                push(fds, fd.as_raw_fd(), libc::POLLIN, Slot::Out(p, false));
            }
            if let Some(fd) = pr.err.as_ref().filter(|_| !held) {
                push(fds, fd.as_raw_fd(), libc::POLLIN, Slot::Out(p, true));
            }
            if let Some(fd) = &pr.input
                && !pr.inbuf.is_empty()
            {
                push(fds, fd.as_raw_fd(), libc::POLLOUT, Slot::Input(p));
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.dead {
                continue;
            }
            let read = !c.eof
                && match &c.kind {
                    Kind::Busy => false,
                    Kind::Attach {
                        target,
                        stdin: true,
                        ..
                    } => {
                        let pr = match target {
                            Target::Init => Some(&self.init),
                            Target::Exec(id) => self
                                .execs
                                .iter()
                                .find(|e| &e.id == id && !e.done)
                                .map(|e| &e.proc),
                        };
                        pr.is_none_or(|p| p.inbuf.len() < STDIN_BUFFER)
                    }
                    _ => true,
                };
            let mut ev = 0;
            if read {
                ev |= libc::POLLIN;
            }
            if c.pending() > 0 {
                ev |= libc::POLLOUT;
            }
            push(fds, c.sock.as_raw_fd(), ev, Slot::Client(i));
        }
        for (j, job) in self.jobs.iter().enumerate() {
            if !job.handled {
                push(fds, job.child.chan.as_raw_fd(), libc::POLLIN, Slot::Job(j));
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => break,
                Ok(ws) => {
                    if let Some((pid, code)) = sys::exit_code(ws) {
                        self.exited(pid.as_raw(), code);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    }

    fn exited(&mut self, pid: i32, code: i32) {
        let nanos = sys::now_nanos();
        if pid == self.init.pid {
            self.init.exited(code, nanos);
        } else if let Some(e) = self.execs.iter_mut().find(|e| e.proc.pid == pid) {
            e.proc.exited(code, nanos);
        } else if let Some(j) = self.jobs.iter_mut().find(|j| j.child.pid.as_raw() == pid) {
            j.reaped = true;
        } else if self
            .jobs
            .iter()
            .any(|j| matches!(j.kind, JobKind::Exec(_)) && !j.handled)
        {
            // Perhaps the process a pending exec is about to report.
            if self.orphans.len() >= ORPHANS_KEPT {
                self.orphans.remove(0);
            }
            self.orphans.push((pid, code, nanos));
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let listener = listener.as_raw_fd();
        loop {
            let fd = match nix::sys::socket::accept4(
                listener,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(fd) => fd,
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(_) => return,
            };
            // SAFETY: accept4 just returned this descriptor; nothing else owns it.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            if self.clients.len() >= MAX_CLIENTS {
                continue; // dropped: closed
            }
            self.next_client += 1;
            self.clients.push(Client {
                id: self.next_client,
                sock,
                kind: Kind::Command,
                line: Vec::new(),
                out: Vec::new(),
                pos: 0,
                eof: false,
                closing: false,
                dead: false,
                progress_at: Instant::now(),
            });
        }
    }

    fn read_output(&mut self, p: PRef, stderr: bool) {
        for _ in 0..8 {
            let pr = match p {
                PRef::Init => &mut self.init,
                PRef::Exec(k) => &mut self.execs[k].proc,
            };
            let slot = if stderr { &mut pr.err } else { &mut pr.out };
            let Some(fd) = slot else { return };
            let n = match nix::unistd::read(&*fd, &mut self.buf[8..]) {
                Ok(0) => {
                    *slot = None;
                    // The pty's master is also where input went.
                    if pr.tty {
                        pr.input = None;
                    }
                    return;
                }
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                // EIO: the pty's last slave is closed.
                Err(_) => {
                    *slot = None;
                    if pr.tty {
                        pr.input = None;
                    }
                    return;
                }
            };
            let tty = pr.tty;
            let target = match p {
                PRef::Init => Target::Init,
                PRef::Exec(k) => Target::Exec(self.execs[k].id.clone()),
            };
            if let (PRef::Init, Some(log)) = (p, &mut self.log) {
                log.write(stderr, &self.buf[8..8 + n]);
            }
            let frame: &[u8] = if tty {
                &self.buf[8..8 + n]
            } else {
                let stream = if stderr { STREAM_STDERR } else { STREAM_STDOUT };
                self.buf[..8].copy_from_slice(&frame_header(stream, n as u32));
                &self.buf[..8 + n]
            };
            for c in &mut self.clients {
                if c.wants(&target, stderr, tty) {
                    c.send(frame);
                }
            }
            if n < CHUNK {
                return;
            }
        }
    }

    fn client_event(&mut self, i: usize, re: i16) {
        if re & libc::POLLIN != 0 {
            self.client_read(i);
        }
        if re & libc::POLLOUT != 0 {
            self.clients[i].flush();
        }
        if re & (libc::POLLHUP | libc::POLLERR) != 0 && !self.clients[i].dead {
            // Gone altogether: its input ends too.
            self.client_eof(i);
            self.clients[i].dead = true;
        }
    }

    fn client_read(&mut self, i: usize) {
        for _ in 0..4 {
            let c = &mut self.clients[i];
            if c.dead || c.eof {
                return;
            }
            let n = match nix::unistd::read(&c.sock, &mut self.buf[..CHUNK]) {
                Ok(0) => {
                    self.client_eof(i);
                    return;
                }
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    c.dead = true;
                    return;
                }
            };
            match c.kind {
                Kind::Command => {
                    let data = &self.buf[..n];
                    match data.iter().position(|&b| b == b'\n') {
                        Some(at) if c.line.len() + at < MAX_LINE => {
                            c.line.extend_from_slice(&data[..at]);
                            let rest = data[at + 1..].to_vec();
                            let line = std::mem::take(&mut c.line);
                            self.command(i, &line, &rest);
                        }
                        _ if c.line.len() + n >= MAX_LINE => {
                            c.error("command line too long");
                            c.eof = true;
                            return;
                        }
                        _ => c.line.extend_from_slice(data),
                    }
                }
                Kind::Attach {
                    stdin: true,
                    ref target,
                    ..
                } => {
                    let target = target.clone();
                    let data = self.buf[..n].to_vec();
                    self.input(&target, &data);
                }
                // Input nobody asked for is dropped.
                _ => {}
            }
            if n < CHUNK {
                return;
            }
        }
    }

    fn target_proc(&mut self, target: &Target) -> Option<&mut Proc> {
        match target {
            Target::Init => Some(&mut self.init),
            Target::Exec(id) => self
                .execs
                .iter_mut()
                .find(|e| &e.id == id && !e.done)
                .map(|e| &mut e.proc),
        }
    }

    fn input(&mut self, target: &Target, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(p) = self.target_proc(target)
            && p.input.is_some()
            && !p.close_input
        {
            p.inbuf.extend_from_slice(data);
            p.write_input();
        }
    }

    fn client_eof(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if c.eof {
            return;
        }
        c.eof = true;
        match &c.kind {
            Kind::Command => c.dead = true,
            Kind::Attach {
                target,
                stdin: true,
                ..
            } => {
                let target = target.clone();
                if let Some(p) = self.target_proc(&target) {
                    p.close_stdin();
                }
            }
            _ => {}
        }
    }

    fn command(&mut self, i: usize, line: &[u8], rest: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let req = match Request::parse(text.trim_end_matches('\r')) {
            Ok(r) => r,
            Err(e) => {
                self.clients[i].error(&e);
                return;
            }
        };
        let exited = self.init.exit.is_some();
        match req {
            Request::Ping => {
                let c = &mut self.clients[i];
                c.reply("ok");
                c.closing = true;
            }
            Request::Pid => {
                let pid = self.init.pid.to_string();
                let c = &mut self.clients[i];
                c.reply(&pid);
                c.closing = true;
            }
            Request::Kill { signal } => {
                let r = if exited {
                    Err("the container is not running".to_string())
                } else {
                    // SAFETY: kill(2) with a pid this process is the parent of (not reaped yet,
                    // so not reused) and a signal number checked to be in range.
                    match unsafe { libc::kill(self.init.pid, signal) } {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error().to_string()),
                    }
                };
                let c = &mut self.clients[i];
                match r {
                    Ok(()) => {
                        c.reply("ok");
                        c.closing = true;
                    }
                    Err(e) => c.error(&e),
                }
            }
            Request::Start => {
                let err = match self.start {
                    _ if exited => Some("the container has exited"),
                    StartState::Starting => Some("the container is being started"),
                    StartState::Started => Some("the container is already started"),
                    StartState::Created => None,
                };
                if let Some(e) = err {
                    self.clients[i].error(e);
                    return;
                }
                match runtime::start(&self.cfg, &self.state_dir) {
                    Ok(child) => {
                        self.start = StartState::Starting;
                        self.clients[i].kind = Kind::Busy;
                        self.jobs.push(Job {
                            child,
                            kind: JobKind::Start,
                            client: Some(self.clients[i].id),
                            handled: false,
                            reaped: false,
                        });
                    }
                    Err(e) => self.clients[i].error(&format!("fork: {e}")),
                }
            }
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if exited {
                    self.clients[i].error("the container has exited");
                    return;
                }
                let c = &mut self.clients[i];
                c.reply("ok");
                c.kind = Kind::Attach {
                    target: Target::Init,
                    stdin: stdin && self.cfg.stdin,
                    stdout,
                    stderr,
                };
                if stdin {
                    self.input(&Target::Init, rest);
                }
            }
            Request::Resize { rows, cols } => {
                let r = if !self.init.tty {
                    Err("the container has no terminal".to_string())
                } else {
                    resize(self.init.out.as_ref(), rows, cols)
                };
                self.answer(i, r);
            }
            Request::ResizeExec { id, rows, cols } => {
                let r = match self.execs.iter().find(|e| e.id == id && !e.done) {
                    None => Err(format!("no such exec: {id}")),
                    Some(e) if !e.proc.tty => Err(format!("exec {id} has no terminal")),
                    Some(e) => resize(e.proc.out.as_ref(), rows, cols),
                };
                self.answer(i, r);
            }
            Request::Wait => match self.announced {
                Some(st) => {
                    let c = &mut self.clients[i];
                    c.reply(&st.to_line());
                    c.closing = true;
                }
                None => self.clients[i].kind = Kind::Wait,
            },
            Request::Exec { id } => {
                if exited {
                    self.clients[i].error("the container is not running");
                    return;
                }
                let busy = self.execs.iter().any(|e| e.id == id && !e.done)
                    || self
                        .jobs
                        .iter()
                        .any(|j| matches!(&j.kind, JobKind::Exec(x) if *x == id));
                if busy {
                    self.clients[i].error(&format!("exec {id} is in use"));
                    return;
                }
                match runtime::exec(&self.cfg, &self.state_dir, &id) {
                    Ok(child) => {
                        self.clients[i].kind = Kind::Busy;
                        self.jobs.push(Job {
                            child,
                            kind: JobKind::Exec(id),
                            client: Some(self.clients[i].id),
                            handled: false,
                            reaped: false,
                        });
                    }
                    Err(e) => self.clients[i].error(&format!("fork: {e}")),
                }
            }
        }
    }

    fn answer(&mut self, i: usize, r: Result<(), String>) {
        let c = &mut self.clients[i];
        match r {
            Ok(()) => {
                c.reply("ok");
                c.closing = true;
            }
            Err(e) => c.error(&e),
        }
    }

    fn client_by_id(&mut self, id: Option<u64>) -> Option<&mut Client> {
        let id = id?;
        self.clients.iter_mut().find(|c| c.id == id && !c.dead)
    }

    fn job_report(&mut self, j: usize) {
        let (text, fds) =
            match runtime::read_report(self.jobs[j].child.chan.as_fd(), MsgFlags::MSG_DONTWAIT) {
                Ok(r) => r,
                Err(Errno::EAGAIN | Errno::EINTR) => return,
                Err(e) => (
                    format!("error reading the runtime's report: {e}"),
                    Vec::new(),
                ),
            };
        self.jobs[j].handled = true;
        let client = self.jobs[j].client;
        let result: Result<&str, String> = if text.is_empty() {
            Err("the runtime process died".into())
        } else if let Some(e) = text.strip_prefix("error ") {
            Err(e.to_string())
        } else {
            Ok(text.strip_prefix("ok").unwrap_or_default().trim_start())
        };
        match &self.jobs[j].kind {
            JobKind::Start => {
                self.start = if result.is_ok() {
                    StartState::Started
                } else {
                    StartState::Created
                };
                if let Some(c) = self.client_by_id(client) {
                    match result {
                        Ok(_) => {
                            c.reply("ok");
                            c.closing = true;
                        }
                        Err(e) => c.error(&e),
                    }
                }
            }
            JobKind::Delete => self.announce(),
            JobKind::Exec(id) => {
                let id = id.clone();
                match result.and_then(|r| self.add_exec(&id, r, fds)) {
                    Ok((pid, stdin, detach)) => {
                        if let Some(c) = self.client_by_id(client) {
                            c.reply(&format!("ok {pid}"));
                            if detach {
                                c.closing = true;
                            } else {
                                c.kind = Kind::Attach {
                                    target: Target::Exec(id),
                                    stdin,
                                    stdout: true,
                                    stderr: true,
                                };
                            }
                        }
                    }
                    Err(e) => {
                        if let Some(c) = self.client_by_id(client) {
                            c.error(&e);
                        }
                    }
                }
            }
        }
    }

    /// Monitor an exec'd process: `report` is `<pid> <terminal> <stdin> <detach>`.
    fn add_exec(
        &mut self,
        id: &str,
        report: &str,
        fds: Vec<OwnedFd>,
    ) -> Result<(i32, bool, bool), String> {
        let f: Vec<&str> = report.split(' ').collect();
        let bad = || format!("unexpected exec report {report:?}");
        if f.len() != 4 {
            return Err(bad());
        }
        let pid: i32 = f[0].parse().map_err(|_| bad())?;
        let (tty, stdin, detach) = (f[1] == "1", f[2] == "1", f[3] == "1");
        let mut fds = fds.into_iter();
        let (out, err, input) = if tty {
            let m = fds.next().ok_or_else(bad)?;
            let input = if stdin {
                Some(nix::unistd::dup(&m).map_err(|e| e.to_string())?)
            } else {
                None
            };
            (m, None, input)
        } else {
            let o = fds.next().ok_or_else(bad)?;
            let e = fds.next().ok_or_else(bad)?;
            (o, Some(e), if stdin { fds.next() } else { None })
        };
        for fd in [Some(&out), err.as_ref(), input.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = sys::set_nonblocking(fd.as_fd());
        }
        let mut proc = Proc {
            pid,
            tty,
            out: Some(out),
            err,
            input,
            inbuf: Vec::new(),
            close_input: false,
            stdin_once: true,
            exit: None,
            drain_until: None,
        };
        if let Some(k) = self.orphans.iter().position(|o| o.0 == pid) {
            let (_, code, nanos) = self.orphans.remove(k);
            proc.exited(code, nanos);
        }
        self.execs.push(Exec {
            id: id.to_string(),
            proc,
            done: false,
        });
        Ok((pid, stdin, detach))
    }

    /// Finish processes whose output is drained; the init's end starts the shutdown.
    fn progress(&mut self, now: Instant) {
        for k in 0..self.execs.len() {
            let e = &mut self.execs[k];
            if e.done || !e.proc.drained(now) {
                continue;
            }
            e.done = true;
            e.proc.out = None;
            e.proc.err = None;
            e.proc.input = None;
            let (code, nanos) = e.proc.exit.unwrap_or((-1, 0));
            let rec = ExecExit {
                exit_code: code,
                finished_at_nanos: nanos,
            };
            let _ = write_file(
                &exec_exit_path(&self.state_dir, &e.id),
                rec.to_line().as_bytes(),
                false,
            );
            let target = Target::Exec(e.id.clone());
            for c in &mut self.clients {
                if matches!(&c.kind, Kind::Attach { target: t, .. } if *t == target) {
                    c.closing = true;
                }
            }
        }
        // A client that takes nothing while output waits for it is dropped. It is offered its
        // output first: the time the shim itself was not running is not the client's.
        for c in &mut self.clients {
            if c.behind() && now.saturating_duration_since(c.progress_at) >= CLIENT_STALL {
                c.flush();
                if now.saturating_duration_since(c.progress_at) >= CLIENT_STALL {
                    c.dead = true;
                }
            }
        }
        // Output held for a client that reads is not lost to the drain's time limit.
        if self.init.exit.is_some() && held(&self.clients, &Target::Init) {
            self.init.drain_until = Some(now + DRAIN);
        }
        for e in &mut self.execs {
            if e.proc.exit.is_some() && held(&self.clients, &Target::Exec(e.id.clone())) {
                e.proc.drain_until = Some(now + DRAIN);
            }
        }
        // Not while a start is still being done: its runtime writes the container's state
        // after the init has exec'd, and an init that exits at once must not have that state
        // deleted under it (the start would fail with ENOENT).
        if !self.finished && !self.starting() && self.init.drained(now) {
            self.finish();
        }
        if self.closing_deadline.is_some_and(|d| now >= d) {
            for c in &mut self.clients {
                c.dead = true;
            }
        }
    }

    /// Whether a start job has not been seen through (reported and reaped).
    fn starting(&self) -> bool {
        self.jobs
            .iter()
            .any(|j| matches!(j.kind, JobKind::Start) && !(j.handled && j.reaped))
    }

    /// The init is gone and its output drained: log, exit record, then delete the runtime's
    /// state (announced when that is done).
    fn finish(&mut self) {
        self.finished = true;
        self.init.out = None;
        self.init.err = None;
        self.init.input = None;
        if let Some(log) = &mut self.log {
            log.flush();
        }
        let (code, nanos) = self.init.exit.unwrap_or((-1, 0));
        let oom_killed = self
            .oom
            .as_ref()
            .is_some_and(|(f, before)| crate::oom::read_kills(f).is_some_and(|n| n > *before));
        let rec = ExitRecord {
            exit_code: code,
            finished_at_nanos: nanos,
            oom_killed,
        };
        // Nothing to tell if this fails: the daemon learns the exit from `wait` meanwhile.
        let _ = rec.write(&self.cfg.exit_file);
        for c in &mut self.clients {
            if matches!(
                &c.kind,
                Kind::Attach {
                    target: Target::Init,
                    ..
                }
            ) {
                c.closing = true;
            }
        }
        match runtime::delete(&self.cfg, &self.state_dir) {
            Ok(child) => self.jobs.push(Job {
                child,
                kind: JobKind::Delete,
                client: None,
                handled: false,
                reaped: false,
            }),
            Err(_) => self.announce(),
        }
    }

    fn announce(&mut self) {
        let (code, nanos) = self.init.exit.unwrap_or((-1, 0));
        let oom_killed = self
            .oom
            .as_ref()
            .is_some_and(|(f, before)| crate::oom::read_kills(f).is_some_and(|n| n > *before));
        let st = ExitStatus {
            code,
            finished_at_nanos: nanos,
            oom_killed,
        };
        let st = ExitRecord::load(&self.cfg.exit_file)
            .ok()
            .flatten()
            .map(ExitStatus::from)
            .unwrap_or(st);
        let line = st.to_line();
        for c in &mut self.clients {
            if matches!(c.kind, Kind::Wait) {
                c.reply(&line);
                c.closing = true;
            }
        }
        self.announced = Some(st);
        self.closing_deadline = Some(Instant::now() + CLOSE_GRACE);
        // The state directory is the next run's from now on (a restart may launch a shim at
        // once): no new connections, and the socket and pid file go now, while they are still
        // ours. Whoever comes later finds no socket and reads the exit record.
        self.listener = None;
        let _ = std::fs::remove_file(self.state_dir.join(SOCKET_FILE));
        let _ = std::fs::remove_file(self.state_dir.join(PID_FILE));
    }

    fn sweep(&mut self) {
        for c in &mut self.clients {
            if c.closing && c.pending() == 0 {
                c.dead = true;
            }
        }
        self.clients.retain(|c| !c.dead);
        self.jobs.retain(|j| !(j.handled && j.reaped));
        self.execs.retain(|e| !e.done);
        if !self
            .jobs
            .iter()
            .any(|j| matches!(j.kind, JobKind::Exec(_)) && !j.handled)
        {
            self.orphans.clear();
        }
    }
}

/// Whether a client that reads `target`'s output is more than `CLIENT_BUFFER` behind.
fn held(clients: &[Client], target: &Target) -> bool {
    clients
        .iter()
        .any(|c| !c.dead && c.behind() && c.reads(target))
}

fn resize(master: Option<&OwnedFd>, rows: u16, cols: u16) -> Result<(), String> {
    let Some(m) = master else {
        return Err("the terminal is closed".into());
    };
    set_winsize(m.as_fd(), rows, cols)
}

fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), String> {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws).map_err(|e| format!("setting the terminal size: {e}"))
}

/// Release memory while idle: the heap's free pages go back to the kernel, and the
/// executable's code and read-only data are unmapped from this process (they stay in the page
/// cache, shared with every other shim; what the loop runs next is mapped again on its first
/// use).
///
/// This matters because a page fault on a file maps the pages around it too (64 KiB here), so
/// the code run once at start-up (the configuration, the runtime's children's set-up) would
/// otherwise stay mapped for the container's life: about 1.1 MiB of RSS for an idle shim, of
/// which an idle loop uses a few pages. Measured with `bench/shim.sh`.
fn trim() {
    // SAFETY: malloc_trim only returns free memory of the allocator's heaps to the kernel.
    unsafe { libc::malloc_trim(0) };
    drop_code_pages();
}

unsafe extern "C" {
    /// The first byte of the executable's image (GNU ld's default linker script).
    static __executable_start: u8;
    /// The end of its code (GNU ld's default linker script).
    static etext: u8;
}

fn drop_code_pages() {
    let page = 4096usize;
    // Only the symbols' addresses are taken; nothing is read through them.
    let (start, end) = (
        &raw const __executable_start as usize,
        &raw const etext as usize,
    );
    // Whole pages strictly inside [start, end): the read-only segment and the code, mapped
    // from the file and never written (the relocated and writable data come after `etext`,
    // on later pages, and are left alone).
    let first = start.div_ceil(page) * page;
    let last = end / page * page;
    if last > first {
        // SAFETY: MADV_DONTNEED on private file mappings that were never written only removes
        // page table entries: the next access maps the same bytes from the page cache again.
        // Memory the program wrote (relocations, data, heap, stack) is outside the range.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            )
        };
    }
}
