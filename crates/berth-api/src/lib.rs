#![recursion_limit = "512"]

//! The Docker Engine API over berth's engine: HTTP/1.1 on unix sockets (and TCP), version
//! negotiation as dockerd does it, Docker's routes, status codes and JSON bodies, and the
//! hijacked connections of attach and exec. Handlers only parse and shape: the work is the
//! engine's, and anything that blocks runs on a blocking thread.

mod build;
mod containers;
pub mod detach;
pub mod http;
mod images;
mod listen;
mod networks;
mod ops;
mod stream;
mod system;
mod volumes;

use std::convert::Infallible;
use std::sync::Arc;

use berth_engine::{Engine, Error, Subject};
use hyper::body::Incoming;
use hyper::{Method, Request};

pub use listen::{Listener, TlsOptions, parse_host, serve};

use http::{Query, Resp};

/// The newest API version served.
pub const API_VERSION: &str = "1.52";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";
/// The Docker version berth reports itself as compatible with.
pub const DOCKER_VERSION: &str = "28.5.0";

/// What a handler gets besides the request.
#[derive(Clone)]
pub struct Ctx {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Who is asking (the listener decides: local on the unix socket, the certificate's
    /// subject on TLS).
    pub who: Subject,
}

/// Parse `1.NN` into (1, NN).
fn version_tuple(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Run a blocking engine call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal("request", e))?
}

/// Serve one request.
pub async fn handle(ctx: Ctx, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = match route(ctx, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status() >= 500 {
                tracing::error!("{method} {path}: {e}");
            } else {
                tracing::debug!("{method} {path}: {e}");
            }
            http::error(&e)
        }
    };
    let h = resp.headers_mut();
    use hyper::header::HeaderValue;
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!(
            "Docker/28.5.0 (linux) berth/",
            env!("CARGO_PKG_VERSION")
        )),
    );
    Ok(resp)
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

async fn route(ctx: Ctx, req: Request<Incoming>) -> Result<Resp, Error> {
    let raw = req.uri().path().to_string();
    // `/v1.NN/…`: check the version; no prefix is the newest.
    let mut path = raw.as_str();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some(v) = version_tuple(ver) {
            let max = version_tuple(API_VERSION).expect("constant");
            let min = version_tuple(MIN_API_VERSION).expect("constant");
            if v > max {
                return Err(Error::Invalid(format!(
                    "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                )));
            }
            if v < min {
                return Err(Error::Invalid(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                )));
            }
            path = &raw[2 + ver.len()..];
            let _ = tail;
        }
    }
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let q = Query::parse(req.uri().query());
    let m = req.method().clone();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (&m, s.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Ok(system::ping(&m)),
        (&Method::GET, ["version"]) => system::version(&ctx).await,
        (&Method::GET, ["info"]) => system::info(&ctx).await,
        (&Method::GET, ["events"]) => system::events(&ctx, &q).await,
        (&Method::GET, ["system", "df"]) => system::df(&ctx, &q).await,
        (_, ["containers", ..]) => containers::route(ctx, req, &m, &s[1..], &q).await,
        (_, ["exec", ..]) => containers::route_exec(ctx, req, &m, &s[1..], &q).await,
        (_, ["images", ..]) => images::route(ctx, req, &m, &s[1..], &q).await,
        (&Method::POST, ["auth"]) => images::auth(ctx, req).await,
        (_, ["swarm", ..]) | (_, ["nodes", ..]) | (_, ["services", ..]) | (_, ["tasks", ..])
        | (_, ["secrets", ..]) | (_, ["configs", ..]) => Err(Error::Unavailable(
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into(),
        )),
        (_, ["plugins", ..]) => {
            if m == Method::GET && s.get(1).is_none_or(|x| x.is_empty()) {
                Ok(http::json(200, &serde_json::json!([])))
            } else {
                Err(Error::NotImplemented("plugins are not supported by berth".into()))
            }
        }
        (_, ["distribution", ..]) => Err(Error::NotImplemented(
            "the distribution endpoint is not supported by berth".into(),
        )),
        (_, ["session"]) | (_, ["grpc"]) => Err(Error::NotImplemented(
            "BuildKit sessions are not supported by berth".into(),
        )),
        (&Method::POST, ["build", "prune"]) => build::prune(ctx, &q).await,
        (&Method::POST, ["build"]) => build::build(ctx, req, &q).await,
        (_, ["build", "cancel"]) => Ok(http::empty(200)),
        (_, ["networks", ..]) => networks::route(ctx, req, &m, &s[1..], &q).await,
        (_, ["volumes", ..]) => volumes::route(ctx, req, &m, &s[1..], &q).await,
        (&Method::POST, ["commit"]) => ops::commit(ctx, req, &q).await,
        _ => Err(Error::NotFound("page not found".into())),
    }
}
