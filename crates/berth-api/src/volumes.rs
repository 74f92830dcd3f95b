//! `/volumes/…`: create, list, inspect, remove, prune (the engine's `volume_*`).

use berth_engine::Error;
use bollard_stubs::models::VolumeCreateRequest;
use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::http::{self, Query, Resp};
use crate::{Ctx, blocking};

pub(crate) async fn route(
    ctx: Ctx,
    req: Request<Incoming>,
    m: &Method,
    s: &[&str],
    q: &Query,
) -> Result<Resp, Error> {
    match (m, s) {
        (&Method::GET, [] | [""]) => {
            let filters = q.filters()?;
            let v = blocking(move || ctx.engine.volume_list(&ctx.who, &filters)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::POST, ["create"]) => {
            let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
            let r: VolumeCreateRequest = http::decode(&body)?;
            let v = blocking(move || ctx.engine.volume_create(&ctx.who, r)).await?;
            Ok(http::json(201, &v))
        }
        (&Method::POST, ["prune"]) => {
            let filters = q.filters()?;
            let v = blocking(move || ctx.engine.volume_prune(&ctx.who, &filters)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::GET, [name]) => {
            let name = name.to_string();
            let v = blocking(move || ctx.engine.volume_inspect(&ctx.who, &name)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::DELETE, [name]) => {
            let (name, force) = (name.to_string(), q.bool("force"));
            blocking(move || ctx.engine.volume_remove(&ctx.who, &name, force)).await?;
            Ok(http::empty(204))
        }
        (&Method::PUT, [_]) => Err(Error::Unavailable(
            "volume updates apply to cluster volumes only: this node is not a swarm manager".into(),
        )),
        (_, ["create" | "prune"]) | (_, [] | [""]) | (_, [_]) => {
            Err(Error::Invalid(format!("method {m} is not allowed here")))
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}
