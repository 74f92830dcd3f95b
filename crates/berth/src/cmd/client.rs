//! The client side of the Docker Engine API, for berth's own commands: blocking HTTP/1.1 over
//! the daemon's unix socket (or plain TCP on loopback), JSON requests, streamed answers
//! (logs -f, events, pull progress, wait), the hijacked connections of attach and exec, and
//! the daemon started on demand.
//!
//! Blocking std sockets and `httparse` rather than hyper's client on a tokio runtime: a command
//! makes a few requests one after another, and the streamed ones want a thread per direction
//! anyway (stdin, the terminal and signals are blocking). A hijacked connection is then simply
//! the socket, cloned for the two directions and half-closed with `shutdown(Write)` at stdin's
//! end; no runtime starts for `berth run`, and no client half of hyper (and its upgrade
//! plumbing) is built into the binary. What it costs is a chunked-encoding reader (40 lines).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
/// The exec root of a daemon started on demand, unless `BERTH_EXEC_ROOT` says otherwise.
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
/// How long a daemon started on demand has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// `unix:///path`.
    Unix(PathBuf),
    /// `tcp://HOST:PORT` (plain: the daemon serves plain TCP on loopback only).
    Tcp(String),
}

impl Addr {
    /// Parse `unix:///path`, `/path` or `tcp://HOST[:PORT]`.
    pub fn parse(s: &str) -> Result<Addr> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Addr::parse(DEFAULT_HOST);
            }
            return Ok(Addr::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(Addr::Unix(PathBuf::from(s)));
        }
        if let Some(t) = s.strip_prefix("tcp://") {
            let t = t.trim_end_matches('/');
            if t.is_empty() {
                bail!("invalid host {s:?}: no address after tcp://");
            }
            let has_port = t
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.ends_with('[') && p.parse::<u16>().is_ok());
            return Ok(Addr::Tcp(if has_port {
                t.to_string()
            } else {
                format!("{t}:2375")
            }));
        }
        bail!("invalid host {s:?}: want unix:///path or tcp://HOST:PORT")
    }
}

/// A connection to the daemon.
pub enum Conn {
    /// On a unix socket.
    Unix(UnixStream),
    /// On TCP.
    Tcp(TcpStream),
}

impl Conn {
    /// Another handle on the same connection (one per direction of a hijacked stream).
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }

    /// Close the sending direction (the daemon sees the end of stdin).
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// An error answer of the daemon: its status and `{"message"}`, printed as the docker CLI
/// prints it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The daemon's message.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for ApiError {}

/// The daemon's error status of `e`, if it is one.
pub fn api_status(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<ApiError>().map(|a| a.status)
}

/// A request body.
pub enum Body {
    /// None.
    Empty,
    /// JSON, whole.
    Json(Vec<u8>),
    /// Streamed with chunked encoding (archives), with its content type.
    Stream(Box<dyn Read + Send>, &'static str),
}

/// A request.
pub struct Request {
    method: &'static str,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Body,
}

/// Percent-encode a path segment (names may hold characters a URL path cannot).
pub fn seg(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'?')
        .add(b'<')
        .add(b'>')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

impl Request {
    fn new(method: &'static str, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// GET `path`.
    pub fn get(path: impl Into<String>) -> Request {
        Request::new("GET", path)
    }

    /// POST `path`.
    pub fn post(path: impl Into<String>) -> Request {
        Request::new("POST", path)
    }

    /// PUT `path`.
    pub fn put(path: impl Into<String>) -> Request {
        Request::new("PUT", path)
    }

    /// HEAD `path`.
    pub fn head(path: impl Into<String>) -> Request {
        Request::new("HEAD", path)
    }

    /// DELETE `path`.
    pub fn delete(path: impl Into<String>) -> Request {
        Request::new("DELETE", path)
    }

    /// A query parameter.
    pub fn q(mut self, k: &str, v: impl ToString) -> Request {
        self.query.push((k.to_string(), v.to_string()));
        self
    }

    /// A query parameter when `cond` holds.
    pub fn q_if(self, cond: bool, k: &str, v: impl ToString) -> Request {
        if cond { self.q(k, v) } else { self }
    }

    /// A query parameter when there is a value.
    pub fn q_opt(self, k: &str, v: Option<impl ToString>) -> Request {
        match v {
            Some(v) => self.q(k, v),
            None => self,
        }
    }

    /// Docker's `filters` parameter from `key=value` flags.
    pub fn filters(self, f: &[String]) -> Result<Request> {
        if f.is_empty() {
            return Ok(self);
        }
        let mut m = serde_json::Map::new();
        for kv in f {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
            let e = m
                .entry(k.trim().to_string())
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(o) = e {
                o.insert(v.to_string(), Value::Bool(true));
            }
        }
        Ok(self.q("filters", Value::Object(m)))
    }

    /// A header.
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Request {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    /// A JSON body.
    pub fn json(mut self, v: &Value) -> Request {
        self.body = Body::Json(serde_json::to_vec(v).unwrap_or_default());
        self
    }

    /// A streamed body.
    pub fn stream(mut self, r: Box<dyn Read + Send>, content_type: &'static str) -> Request {
        self.body = Body::Stream(r, content_type);
        self
    }

    fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            s.append_pair(k, v);
        }
        format!("{}?{}", self.path, s.finish())
    }

    /// Write the request; `upgrade` asks for a hijacked connection.
    fn write_to(self, conn: &mut Conn, upgrade: bool) -> io::Result<()> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: berth\r\nUser-Agent: berth/{}\r\n",
            self.method,
            self.target(),
            env!("CARGO_PKG_VERSION")
        );
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        } else {
            head.push_str("Connection: close\r\n");
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match self.body {
            Body::Empty => {
                if matches!(self.method, "POST" | "PUT") {
                    head.push_str("Content-Length: 0\r\n");
                }
                head.push_str("\r\n");
                conn.write_all(head.as_bytes())
            }
            Body::Json(b) => {
                head.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                ));
                let mut all = head.into_bytes();
                all.extend_from_slice(&b);
                conn.write_all(&all)
            }
            Body::Stream(mut r, ct) => {
                head.push_str(&format!(
                    "Content-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
                ));
                conn.write_all(head.as_bytes())?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io::Error::new(e.kind(), BodyReadError(e))),
                    };
                    let mut chunk = format!("{n:x}\r\n").into_bytes();
                    chunk.extend_from_slice(&buf[..n]);
                    chunk.extend_from_slice(b"\r\n");
                    conn.write_all(&chunk)?;
                }
                conn.write_all(b"0\r\n\r\n")
            }
        }
    }
}

/// Reading the local side of a streamed body failed (not the connection).
#[derive(Debug)]
struct BodyReadError(io::Error);

impl std::fmt::Display for BodyReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading the input: {}", self.0)
    }
}

impl std::error::Error for BodyReadError {}

type Raw = BufReader<io::Chain<io::Cursor<Vec<u8>>, Conn>>;

enum Framing {
    None,
    Length(u64),
    Chunked { left: u64, done: bool },
    Eof,
}

/// A response body: whatever its framing, a reader of its bytes.
pub struct BodyReader {
    raw: Raw,
    framing: Framing,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.framing {
            Framing::None => Ok(0),
            Framing::Eof => self.raw.read(buf),
            Framing::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let want = buf.len().min(*left as usize);
                let n = self.raw.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the daemon's answer was cut short",
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    if self.raw.read_line(&mut line)? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the daemon's answer was cut short",
                        ));
                    }
                    let size = line.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk in the answer")
                    })?;
                    if size == 0 {
                        // Trailers, up to an empty line.
                        loop {
                            line.clear();
                            if self.raw.read_line(&mut line)? == 0 || line.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let want = buf.len().min(*left as usize);
                let n = self.raw.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the daemon's answer was cut short",
                    ));
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = [0u8; 2];
                    self.raw.read_exact(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// A response.
pub struct Response {
    /// The status.
    pub status: u16,
    headers: Vec<(String, String)>,
    /// The body.
    pub body: BodyReader,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(mut self) -> Result<String> {
        let mut s = Vec::new();
        self.body
            .read_to_end(&mut s)
            .context("reading the daemon's answer")?;
        Ok(String::from_utf8_lossy(&s).into_owned())
    }

    /// The body as JSON (`null` when empty).
    pub fn json(self) -> Result<Value> {
        let t = self.text()?;
        if t.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&t).context("the daemon's answer is not JSON")
    }

    /// The body as a stream of JSON values (progress, events, wait).
    pub fn json_stream(self) -> impl Iterator<Item = Result<Value>> {
        serde_json::Deserializer::from_reader(BufReader::new(self.body))
            .into_iter::<Value>()
            .map(|r| r.context("reading the daemon's stream"))
    }

    /// The daemon's error for an error status.
    fn into_error(self) -> anyhow::Error {
        let status = self.status;
        let text = self.text().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                let t = text.trim();
                if t.is_empty() {
                    format!("status {status}")
                } else {
                    t.to_string()
                }
            });
        anyhow::Error::new(ApiError { status, message })
    }
}

/// A hijacked connection: the output stream and the input side.
pub struct Hijacked {
    /// The output (raw with a TTY, Docker's multiplexed frames without).
    pub output: Box<dyn Read + Send>,
    /// The input side (stdin); `shutdown_write` when stdin ends.
    pub input: Conn,
    /// The output is raw (a TTY), not multiplexed.
    pub raw: bool,
}

/// What a daemon started on demand is given.
#[derive(Debug, Clone, Default)]
pub struct Autostart {
    /// `--data-root`.
    pub data_root: Option<PathBuf>,
    /// `--exec-root` (`BERTH_EXEC_ROOT`); the daemon's log goes there too.
    pub exec_root: Option<PathBuf>,
    /// `--config-file` (`BERTH_CONFIG_FILE`).
    pub config_file: Option<PathBuf>,
}

/// The daemon's client.
pub struct Client {
    addr: Addr,
    host: String,
    autostart: Option<Autostart>,
    tried_start: AtomicBool,
}

impl Client {
    /// A client of `host`; `autostart` starts a daemon there when none answers (as root, on
    /// a unix socket).
    pub fn new(host: &str, autostart: Option<Autostart>) -> Result<Client> {
        Ok(Client {
            addr: Addr::parse(host)?,
            host: host.to_string(),
            autostart,
            tried_start: AtomicBool::new(false),
        })
    }

    /// The address as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn connect_once(&self) -> io::Result<Conn> {
        match &self.addr {
            Addr::Unix(p) => UnixStream::connect(p).map(Conn::Unix),
            Addr::Tcp(a) => TcpStream::connect(a).map(Conn::Tcp),
        }
    }

    fn connect(&self) -> Result<Conn> {
        match self.connect_once() {
            Ok(c) => Ok(c),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                if let (Some(a), Addr::Unix(path)) = (&self.autostart, &self.addr) {
                    if rustix::process::geteuid().is_root()
                        && std::env::var_os("BERTH_NO_AUTOSTART").is_none()
                        && !self.tried_start.swap(true, Ordering::SeqCst)
                    {
                        start_daemon(self, path, a)?;
                        return self.connect_once().map_err(|e| self.connect_error(e));
                    }
                }
                Err(self.connect_error(e))
            }
            Err(e) => Err(self.connect_error(e)),
        }
    }

    fn connect_error(&self, e: io::Error) -> anyhow::Error {
        match e.kind() {
            io::ErrorKind::PermissionDenied => anyhow!(
                "permission denied while trying to connect to the berth daemon socket at {}: {e}",
                self.host
            ),
            _ => anyhow!(
                "Cannot connect to the berth daemon at {}. Is the berth daemon running?",
                self.host
            ),
        }
    }

    /// Does a daemon answer `/_ping` (no daemon is started)?
    pub fn ping(&self) -> bool {
        let Ok(mut c) = self.connect_once() else {
            return false;
        };
        if let Conn::Unix(s) = &c {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        }
        if Request::get("/_ping").write_to(&mut c, false).is_err() {
            return false;
        }
        read_response(c, "GET").is_ok_and(|r| r.status == 200)
    }

    /// Send `req`; any status.
    pub fn send(&self, req: Request) -> Result<Response> {
        let method = req.method;
        let mut c = self.connect()?;
        let reader = c.try_clone().context("connection to the daemon")?;
        if let Err(e) = req.write_to(&mut c, false) {
            if let Some(b) = e.get_ref().and_then(|i| i.downcast_ref::<BodyReadError>()) {
                bail!("{b}");
            }
            // The daemon may have answered (and closed) before taking the whole body.
            if let Ok(r) = read_response(reader, method) {
                return Ok(r);
            }
            return Err(anyhow!(e).context("sending the request to the daemon"));
        }
        read_response(reader, method)
    }

    /// Send `req`; an error status is an [`ApiError`].
    pub fn call(&self, req: Request) -> Result<Response> {
        let r = self.send(req)?;
        if r.status >= 400 {
            return Err(r.into_error());
        }
        Ok(r)
    }

    /// Send `req`; the answer's JSON.
    pub fn json(&self, req: Request) -> Result<Value> {
        self.call(req)?.json()
    }

    /// Send `req` and discard the answer.
    pub fn ok(&self, req: Request) -> Result<()> {
        self.call(req)?.text().map(|_| ())
    }

    /// Send `req` asking for a hijacked connection (attach, exec start).
    pub fn hijack(&self, req: Request) -> Result<Hijacked> {
        let method = req.method;
        let mut c = self.connect()?;
        let input = c.try_clone().context("connection to the daemon")?;
        req.write_to(&mut c, true)
            .context("sending the request to the daemon")?;
        let r = read_response(c, method)?;
        if r.status >= 400 {
            return Err(r.into_error());
        }
        let raw = r
            .header("Content-Type")
            .is_some_and(|t| t.contains("raw-stream"));
        let output: Box<dyn Read + Send> = if r.status == 101 {
            Box::new(r.body.raw)
        } else {
            Box::new(r.body)
        };
        Ok(Hijacked { output, input, raw })
    }
}

/// Read a response's head; the body follows.
fn read_response(mut c: Conn, method: &str) -> Result<Response> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match c.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow!(e).context("reading the daemon's answer")),
        };
        if n == 0 {
            bail!("the daemon closed the connection without answering");
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                let get = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.clone())
                };
                let framing = if method == "HEAD"
                    || status == 101
                    || status == 204
                    || status == 304
                    || (100..200).contains(&status)
                {
                    Framing::None
                } else if get("Transfer-Encoding")
                    .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
                {
                    Framing::Chunked {
                        left: 0,
                        done: false,
                    }
                } else if let Some(l) = get("Content-Length").and_then(|l| l.parse().ok()) {
                    Framing::Length(l)
                } else {
                    Framing::Eof
                };
                let rest = buf.split_off(len);
                let raw = BufReader::with_capacity(64 * 1024, io::Cursor::new(rest).chain(c));
                return Ok(Response {
                    status,
                    headers,
                    body: BodyReader { raw, framing },
                });
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > 64 * 1024 {
                    bail!("the daemon's answer has a head of more than 64 KiB");
                }
            }
            Err(e) => bail!("the daemon's answer is not HTTP: {e}"),
        }
    }
}

/// Start `berth daemon` listening on `path` (systemd's berth.service when that is what serves
/// the default socket; else detached: its own session, stdio to a log file), and wait until
/// it answers. One client at a time starts it (a lock beside the log); another
/// that waited for the lock finds it answering.
fn start_daemon(client: &Client, path: &Path, a: &Autostart) -> Result<()> {
    let dir = a
        .exec_root
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_EXEC_ROOT));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("starting the daemon: creating {}", dir.display()))?;
    }
    let lock_path = dir.join("autostart.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("starting the daemon: {}", lock_path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("starting the daemon: locking {}", lock_path.display()))?;
    if client.ping() {
        return Ok(());
    }
    // A real install runs the daemon as systemd's berth.service (contrib/systemd): start the
    // service when it is what would serve this socket, so the daemon is not left in the
    // caller's session (whose end would kill it).
    let default = Addr::parse(DEFAULT_HOST).ok() == Some(Addr::Unix(path.to_path_buf()));
    if default
        && a.data_root.is_none()
        && a.exec_root.is_none()
        && a.config_file.is_none()
        && Path::new("/run/systemd/system").is_dir()
        && std::process::Command::new("systemctl")
            .args(["start", "berth.service"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    {
        let deadline = Instant::now() + START_TIMEOUT;
        while !client.ping() {
            if Instant::now() > deadline {
                bail!(
                    "berth.service was started but did not answer within {} s (journalctl -u berth)",
                    START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        return Ok(());
    }
    let log_path = dir.join("daemon.log");
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("starting the daemon: opening {}", log_path.display()))?
    };
    let exe = std::env::current_exe().context("starting the daemon: finding berth")?;
    let mut cmd = std::process::Command::new(exe);
    if let Some(d) = &a.data_root {
        cmd.arg("--data-root").arg(d);
    }
    cmd.arg("daemon")
        .arg("-H")
        .arg(format!("unix://{}", path.display()));
    if let Some(e) = &a.exec_root {
        cmd.arg("--exec-root").arg(e);
    }
    if let Some(f) = &a.config_file {
        cmd.arg("--config-file").arg(f);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone().context("starting the daemon: the log")?)
        .stderr(log)
        .current_dir("/");
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec the child only calls setsid and sigprocmask, both
        // async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(io::Error::from)?;
                nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&nix::sys::signal::SigSet::empty()),
                    None,
                )
                .map_err(io::Error::from)?;
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().context("starting the daemon (berth daemon)")?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let last = std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| format!(": {}", l.trim()))
                .unwrap_or_default();
            bail!(
                "the berth daemon started for this command exited ({st}){last} (log: {})",
                log_path.display()
            );
        }
        if client.ping() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the berth daemon started for this command did not answer within {} s (log: {})",
                START_TIMEOUT.as_secs(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "berth: started the daemon on {} (pid {}, log {})",
            client.host(),
            child.id(),
            log_path.display()
        );
    }
    Ok(())
}

/// Docker's 8-byte frames (stream, 0, 0, 0, big-endian length) demultiplexed to stdout and
/// stderr; raw output copied as it is. Ends at the stream's end or when stdout is gone.
pub fn copy_output(mut r: impl Read, raw: bool) -> io::Result<()> {
    let mut out = io::stdout();
    let mut err = io::stderr();
    let mut buf = vec![0u8; 32 * 1024];
    if raw {
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
    loop {
        let mut h = [0u8; 8];
        match read_full(&mut r, &mut h)? {
            0 => return Ok(()),
            8 => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream was cut in a frame",
                ));
            }
        }
        let mut left = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        while left > 0 {
            let want = left.min(buf.len());
            let n = r.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream was cut in a frame",
                ));
            }
            left -= n;
            if h[0] == 2 {
                err.write_all(&buf[..n])?;
            } else {
                out.write_all(&buf[..n])?;
            }
        }
        if h[0] == 2 {
            err.flush()?;
        } else {
            out.flush()?;
        }
    }
}

/// Read until `buf` is full or the stream ends; how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            Addr::parse("unix:///x/y.sock").unwrap(),
            Addr::Unix("/x/y.sock".into())
        );
        assert_eq!(
            Addr::parse("unix://").unwrap(),
            Addr::Unix("/run/berth/berth.sock".into())
        );
        assert_eq!(
            Addr::parse("tcp://127.0.0.1").unwrap(),
            Addr::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Addr::parse("tcp://127.0.0.1:99/").unwrap(),
            Addr::Tcp("127.0.0.1:99".into())
        );
        assert!(Addr::parse("ssh://x").is_err());
    }

    fn response(bytes: &[u8], method: &str) -> Response {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(bytes).unwrap();
        drop(b);
        read_response(Conn::Unix(a), method).unwrap()
    }

    #[test]
    fn bodies_of_every_framing() {
        let r = response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            "GET",
        );
        assert_eq!(r.text().unwrap(), "abcde");
        let r = response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA",
            "GET",
        );
        assert_eq!(r.text().unwrap(), "hi");
        let r = response(b"HTTP/1.1 200 OK\r\n\r\nto the end", "GET");
        assert_eq!(r.text().unwrap(), "to the end");
        let r = response(b"HTTP/1.1 204 No Content\r\n\r\n", "POST");
        assert_eq!(r.text().unwrap(), "");
        let r = response(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 34\r\n\r\n{\"message\":\"No such container: x\"}",
            "GET",
        );
        let e = r.into_error();
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such container: x"
        );
        assert_eq!(api_status(&e), Some(404));
        let r = response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"a\":1}\n\r\n8\r\n{\"a\":2}\n\r\n0\r\n\r\n",
            "GET",
        );
        let vals: Vec<Value> = r.json_stream().map(Result::unwrap).collect();
        assert_eq!(
            vals,
            vec![serde_json::json!({"a":1}), serde_json::json!({"a":2})]
        );
    }

    #[test]
    fn filters_as_docker_sends_them() {
        let r = Request::get("/containers/json")
            .filters(&["name=a".into(), "status=exited".into()])
            .unwrap();
        assert_eq!(
            r.target(),
            "/containers/json?filters=%7B%22name%22%3A%7B%22a%22%3Atrue%7D%2C%22status%22%3A%7B%22exited%22%3Atrue%7D%7D"
        );
        assert!(Request::get("/x").filters(&["bad".into()]).is_err());
    }
}
