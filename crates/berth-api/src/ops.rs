//! `/containers/{id}/{stats,top,update,archive,export,changes}` and `/commit`.
//!
//! The engine's calls block; the bodies that stream (stats, archive, export) are written from
//! a blocking thread into the response's channel, and a request body (PUT archive) is read
//! into the engine's blocking call through another.

use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use berth_engine::{CommitRequest, Error, ExtractRequest, StatsSample};
use bollard_stubs::models::{ContainerConfig, ContainerUpdateBody};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request};
use serde_json::json;

use crate::http::{self, Query, Resp};
use crate::{Ctx, blocking};

/// The stat header of `docker cp`.
const PATH_STAT: &str = "X-Docker-Container-Path-Stat";

/// A container's operation: `s` is `[id, op]`.
pub(crate) async fn route(
    ctx: Ctx,
    req: Request<Incoming>,
    m: &Method,
    s: &[&str],
    q: &Query,
) -> Result<Resp, Error> {
    let id = s.first().copied().unwrap_or_default().to_string();
    let op = s.get(1).copied().unwrap_or_default();
    match (m, op) {
        (&Method::GET, "stats") => stats(ctx, id, q).await,
        (&Method::GET, "top") => {
            let ps_args = q.get("ps_args").unwrap_or_default().to_string();
            let top = blocking(move || ctx.engine.top(&ctx.who, &id, &ps_args)).await?;
            Ok(http::json(200, &top))
        }
        (&Method::POST, "update") => {
            let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
            let u: ContainerUpdateBody = http::decode(&body)?;
            let warnings = blocking(move || ctx.engine.update_container(&ctx.who, &id, &u)).await?;
            Ok(http::json(200, &json!({ "Warnings": warnings })))
        }
        (&Method::HEAD, "archive") => {
            let path = archive_path(q)?;
            let st = blocking(move || ctx.engine.stat_path(&ctx.who, &id, &path)).await?;
            let mut resp = http::empty(200);
            resp.headers_mut().insert(PATH_STAT, stat_header(&st)?);
            Ok(resp)
        }
        (&Method::GET, "archive") => {
            let path = archive_path(q)?;
            let engine = ctx.engine.clone();
            let (st, write) = blocking(move || engine.archive_path(&ctx.who, &id, &path)).await?;
            let (mut resp, tx) = http::stream(200, "application/x-tar");
            resp.headers_mut().insert(PATH_STAT, stat_header(&st)?);
            tokio::task::spawn_blocking(move || {
                let mut w = http::BodyWriter::new(tx);
                if let Err(e) = write(&mut w).and_then(|()| {
                    w.flush()
                        .map_err(|e| Error::internal("sending the archive", e))
                }) {
                    tracing::debug!("archive: {e}");
                }
            });
            Ok(resp)
        }
        (&Method::PUT, "archive") => {
            let r = ExtractRequest {
                path: archive_path(q)?,
                no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
                copy_uid_gid: q.bool("copyUIDGID"),
            };
            let mut body = http::BodyReader::new(req.into_body(), u64::MAX);
            blocking(move || ctx.engine.extract_to_dir(&ctx.who, &id, &r, &mut body)).await?;
            Ok(http::empty(200))
        }
        (&Method::GET, "export") => {
            let engine = ctx.engine.clone();
            let write = blocking(move || engine.export(&ctx.who, &id)).await?;
            let (resp, tx) = http::stream(200, "application/x-tar");
            tokio::task::spawn_blocking(move || {
                let mut w = http::BodyWriter::new(tx);
                let res = write(&mut w)
                    .and_then(|()| w.flush().map_err(|e| Error::internal("sending", e)));
                if let Err(e) = res {
                    tracing::debug!("export: {e}");
                }
            });
            Ok(resp)
        }
        (&Method::GET, "changes") => {
            let changes = blocking(move || ctx.engine.changes(&ctx.who, &id)).await?;
            Ok(http::json(200, &changes))
        }
        _ => Err(Error::Invalid(format!("method {m} is not allowed here"))),
    }
}

fn archive_path(q: &Query) -> Result<String, Error> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid("path is required".into()))
}

fn stat_header(st: &berth_engine::PathStat) -> Result<HeaderValue, Error> {
    let json = serde_json::to_vec(st).map_err(|e| Error::internal("path stat", e))?;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json))
        .map_err(|e| Error::internal("path stat", e))
}

/// `GET stats`: one reading (`stream=false`: after a second, with the previous one, so
/// the CPU figures are not zero, as dockerd; `one-shot`: at once), or one per second until
/// the client goes away or the container stops.
async fn stats(ctx: Ctx, id: String, q: &Query) -> Result<Resp, Error> {
    let stream = q.bool_or("stream", true);
    let one_shot = q.bool("one-shot");
    if stream && one_shot {
        return Err(Error::Invalid(
            "cannot have stream=true and one-shot=true".into(),
        ));
    }
    let sample = |ctx: &Ctx, id: String| {
        let (engine, who) = (ctx.engine.clone(), ctx.who.clone());
        blocking(move || engine.stats_sample(&who, &id))
    };
    let first = sample(&ctx, id).await?;
    if !stream {
        if one_shot || !first.running() {
            return Ok(http::json(200, &first.to_json(None)));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = sample(&ctx, first.id.clone()).await?;
        let pre = second.running().then_some(&first);
        return Ok(http::json(200, &second.to_json(pre)));
    }
    let (resp, tx) = http::stream(200, "application/json");
    tokio::spawn(async move {
        let mut pre: Option<StatsSample> = None;
        let mut cur = first;
        loop {
            let mut line = serde_json::to_vec(&cur.to_json(pre.as_ref())).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() || !cur.running() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tx.closed() => break,
            }
            let next = match sample(&ctx, cur.id.clone()).await {
                Ok(s) if s.running() => s,
                // Stopped or removed: the stream ends.
                _ => break,
            };
            pre = Some(std::mem::replace(&mut cur, next));
        }
    });
    Ok(resp)
}

/// `POST /commit?container=…&repo=…&tag=…&comment=…&author=…&pause=…&changes=…`, the body
/// a Config to apply.
pub(crate) async fn commit(ctx: Ctx, req: Request<Incoming>, q: &Query) -> Result<Resp, Error> {
    let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
    let config: Option<ContainerConfig> = http::decode(&body)?;
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::NotFound("No such container: ".into()))?
        .to_string();
    let r = CommitRequest {
        container,
        repo: q.get("repo").map(str::to_string),
        tag: q.get("tag").map(str::to_string),
        comment: q.get("comment").map(str::to_string),
        author: q.get("author").map(str::to_string),
        pause: q.bool_or("pause", true),
        changes: q.all("changes"),
        config,
    };
    let id = blocking(move || ctx.engine.commit(&ctx.who, &r)).await?;
    Ok(http::json(201, &json!({ "Id": id })))
}
