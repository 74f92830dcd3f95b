//! `/networks/…`: create, list, inspect, remove, prune, connect, disconnect (the engine's
//! `network_*`).

use berth_engine::Error;
use bollard_stubs::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
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
            let v = blocking(move || ctx.engine.network_list(&ctx.who, &filters)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::POST, ["create"]) => {
            let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
            let r: NetworkCreateRequest = http::decode(&body)?;
            let v = blocking(move || ctx.engine.network_create(&ctx.who, r)).await?;
            Ok(http::json(201, &v))
        }
        (&Method::POST, ["prune"]) => {
            let filters = q.filters()?;
            let v = blocking(move || ctx.engine.network_prune(&ctx.who, &filters)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::POST, [id, "connect"]) => {
            let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
            let r: NetworkConnectRequest = http::decode(&body)?;
            if r.container.is_empty() {
                return Err(Error::Invalid("no container specified".into()));
            }
            ctx.engine
                .network_connect(&ctx.who, id, &r.container, r.endpoint_config)
                .await?;
            Ok(http::empty(200))
        }
        (&Method::POST, [id, "disconnect"]) => {
            let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
            let r: NetworkDisconnectRequest = http::decode(&body)?;
            if r.container.is_empty() {
                return Err(Error::Invalid("no container specified".into()));
            }
            ctx.engine
                .network_disconnect(&ctx.who, id, &r.container, r.force.unwrap_or(false))
                .await?;
            Ok(http::empty(200))
        }
        (&Method::GET, [id]) => {
            if let Some(scope) = q.get("scope").filter(|s| !s.is_empty() && *s != "local") {
                return Err(Error::NotFound(format!(
                    "network {id} not found (scope {scope})"
                )));
            }
            let id = id.to_string();
            let v = blocking(move || ctx.engine.network_inspect(&ctx.who, &id)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::DELETE, [id]) => {
            let id = id.to_string();
            blocking(move || ctx.engine.network_remove(&ctx.who, &id)).await?;
            Ok(http::empty(204))
        }
        (_, ["create" | "prune"])
        | (_, [] | [""])
        | (_, [_])
        | (_, [_, "connect" | "disconnect"]) => {
            Err(Error::Invalid(format!("method {m} is not allowed here")))
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}
