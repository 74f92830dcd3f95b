//! HTTP plumbing: bodies (whole or streamed), Docker's error bodies, query strings, reading a
//! request body with a size limit.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use berth_engine::Error;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

/// The most a JSON request body may hold (Docker's clients send a few KiB).
pub const MAX_JSON_BODY: usize = 8 * 1024 * 1024;

/// A response body: whole, or streamed from a channel.
pub enum Body {
    /// All of it.
    Full(Option<Bytes>),
    /// Chunks as they come; the stream ends when the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => http_body::SizeHint::with_exact(0),
            Body::Stream(_) => http_body::SizeHint::default(),
        }
    }
}

/// A response.
pub type Resp = Response<Body>;

/// An empty response with `status`.
pub fn empty(status: u16) -> Resp {
    let mut r = Response::new(Body::Full(None));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A JSON response.
pub fn json<T: Serialize + ?Sized>(status: u16, v: &T) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Body::Full(Some(Bytes::from(body))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A plain text response.
pub fn text(status: u16, s: &str) -> Resp {
    let mut r = Response::new(Body::Full(Some(Bytes::from(s.to_string()))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Docker's error body, `{"message": "…"}`, with the error's status (304 has no body).
pub fn error(e: &Error) -> Resp {
    let status = e.status();
    if status == 304 {
        return empty(304);
    }
    json(status, &serde_json::json!({ "message": e.to_string() }))
}

/// A streamed response and the sender that feeds it.
pub fn stream(status: u16, content_type: &'static str) -> (Resp, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(64);
    let mut r = Response::new(Body::Stream(rx));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    (r, tx)
}

/// A query string's parameters (the last value of each key wins, as Go's `Get`).
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, Vec<String>>);

impl Query {
    /// Parse `a=1&b=x`.
    pub fn parse(q: Option<&str>) -> Query {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Query(map)
    }

    /// A parameter's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of a parameter.
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0.get(k).cloned().unwrap_or_default()
    }

    /// A boolean parameter as Docker reads one: absent, "", "0", "false", "no" are false.
    pub fn bool(&self, k: &str) -> bool {
        match self.get(k) {
            None => false,
            Some(v) => !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no" | "off"
            ),
        }
    }

    /// A boolean parameter with a default when absent.
    pub fn bool_or(&self, k: &str, default: bool) -> bool {
        if self.get(k).is_none() {
            default
        } else {
            self.bool(k)
        }
    }

    /// An integer parameter (absent or empty: None; not a number: an error).
    pub fn int(&self, k: &str) -> Result<Option<i64>, Error> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::Invalid(format!("invalid value for {k}: {v:?}"))),
        }
    }

    /// The `filters` parameter: `{"key": ["v", …]}` or the old `{"key": {"v": true}}`.
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, Error> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(HashMap::new());
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::Invalid(format!("invalid filter: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::Invalid("invalid filter: not an object".into()))?;
        let mut out = HashMap::new();
        for (k, v) in obj {
            let vals: Vec<String> = match v {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, b)| b.as_bool().unwrap_or(false))
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => return Err(Error::Invalid(format!("invalid filter for {k:?}"))),
            };
            out.insert(k.clone(), vals);
        }
        Ok(out)
    }
}

/// Read a request body of at most `limit` bytes.
pub async fn read_body(body: hyper::body::Incoming, limit: usize) -> Result<Bytes, Error> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(Error::Invalid(format!(
                    "request body is too large (more than {limit} bytes)"
                )))
            } else {
                Err(Error::Invalid(format!("reading the request body: {e}")))
            }
        }
    }
}

/// Decode a JSON body into `T`, with Docker's message for bad JSON.
pub fn decode<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid(format!("invalid JSON: {e}")))
}

/// A request body as a blocking reader (for the image store's load and import, which read a
/// `std::io::Read` on a blocking thread): an async task feeds the chunks through a channel.
pub struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl BodyReader {
    /// Start feeding `body` (at most `limit` bytes in all; beyond it the reader fails).
    ///
    /// When the reader stops early (the work was refused or failed, or the body is too
    /// large), what the client still sends is read and dropped (up to 256 MiB) so that it
    /// gets to read the answer instead of a broken pipe.
    pub fn new(mut body: hyper::body::Incoming, limit: u64) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut total = 0u64;
            loop {
                match body.frame().await {
                    None => return,
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            total += data.len() as u64;
                            if total > limit {
                                let _ = tx
                                    .send(Err(format!(
                                        "the request body is larger than {limit} bytes"
                                    )))
                                    .await;
                                break;
                            }
                            if tx.send(Ok(data)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(Err(format!("reading the request body: {e}"))).await;
                        return;
                    }
                }
            }
            drop(tx);
            let mut left: u64 = 256 << 20;
            while let Some(Ok(f)) = body.frame().await {
                let n = f.data_ref().map_or(0, |d| d.len() as u64);
                if n >= left {
                    return;
                }
                left -= n;
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A blocking writer into a streamed response (for the image store's save).
pub struct BodyWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl BodyWriter {
    /// A writer feeding `tx`.
    pub fn new(tx: mpsc::Sender<Bytes>) -> BodyWriter {
        BodyWriter {
            tx,
            buf: Vec::with_capacity(64 * 1024),
        }
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}
