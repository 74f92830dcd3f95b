//! `/containers/{id}/{stats,top,update,archive,export,changes}` and `/commit`.

use berth_engine::Error;
use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::Ctx;
use crate::http::{Query, Resp};

/// A container's operation: `s` is `[id, op]`.
pub(crate) async fn route(
    ctx: Ctx,
    req: Request<Incoming>,
    m: &Method,
    s: &[&str],
    q: &Query,
) -> Result<Resp, Error> {
    let _ = (ctx, req, q);
    Err(Error::NotImplemented(format!(
        "{m} /containers/{} is not supported yet",
        s.join("/")
    )))
}

/// `POST /commit?container=…`.
pub(crate) async fn commit(ctx: Ctx, req: Request<Incoming>, q: &Query) -> Result<Resp, Error> {
    let _ = (ctx, req, q);
    Err(Error::NotImplemented("commit is not supported yet".into()))
}
