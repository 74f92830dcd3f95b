//! `/volumes/…`.

use berth_engine::Error;
use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::Ctx;
use crate::http::{Query, Resp};

pub(crate) async fn route(
    ctx: Ctx,
    req: Request<Incoming>,
    m: &Method,
    s: &[&str],
    q: &Query,
) -> Result<Resp, Error> {
    let _ = (ctx, req, q);
    Err(Error::NotImplemented(format!(
        "{m} /volumes/{} is not supported yet",
        s.join("/")
    )))
}
