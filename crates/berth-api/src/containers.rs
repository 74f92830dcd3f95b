//! `/containers/…` and `/exec/…`.

use berth_engine::view::ListOptions;
use berth_engine::{CreateRequest, Error, WaitCondition};
use bollard_stubs::models::{ContainerConfig, HostConfig};
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::Deserialize;
use serde_json::json;

use crate::http::{self, Query, Resp};
use crate::{Ctx, blocking, stream};

#[derive(Deserialize, Default)]
struct HostConfigOnly {
    #[serde(rename = "HostConfig", default)]
    host_config: Option<HostConfig>,
    /// The runtime at the top level of the body, where the Python SDK's `create_container`
    /// puts it (HostConfig.Runtime wins).
    #[serde(rename = "Runtime", default)]
    runtime: Option<String>,
    /// NetworkingConfig.
    #[serde(rename = "NetworkingConfig", default)]
    networking: Option<bollard_stubs::models::NetworkingConfig>,
    /// The container's MAC address at the top level (API < 1.44, the Python SDK): the
    /// primary endpoint's.
    #[serde(rename = "MacAddress", default)]
    mac_address: Option<String>,
}

pub(crate) async fn route(
    ctx: Ctx,
    req: Request<Incoming>,
    m: &Method,
    s: &[&str],
    q: &Query,
) -> Result<Resp, Error> {
    match (m, s) {
        (&Method::POST, ["create"]) => create(ctx, req, q).await,
        (&Method::GET, ["json"]) => list(ctx, q).await,
        (&Method::POST, ["prune"]) => prune(ctx, q).await,
        (&Method::GET, [id, "json"]) => {
            let (id, size) = (id.to_string(), q.bool("size"));
            let v = blocking(move || ctx.engine.inspect(&ctx.who, &id, size)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::POST, [id, "start"]) => {
            ctx.engine.start(&ctx.who, id).await?;
            Ok(http::empty(204))
        }
        (&Method::POST, [id, "stop"]) => {
            let t = q.int("t")?.or(q.int("timeout")?);
            ctx.engine.stop(&ctx.who, id, t, q.get("signal")).await?;
            Ok(http::empty(204))
        }
        (&Method::POST, [id, "restart"]) => {
            let t = q.int("t")?.or(q.int("timeout")?);
            ctx.engine.restart(&ctx.who, id, t, q.get("signal")).await?;
            Ok(http::empty(204))
        }
        (&Method::POST, [id, "kill"]) => {
            ctx.engine.kill(&ctx.who, id, q.get("signal")).await?;
            Ok(http::empty(204))
        }
        (&Method::POST, [id, "wait"]) => wait(ctx, id, q).await,
        (&Method::GET, [id, "logs"]) => logs(ctx, id, q).await,
        (&Method::POST, [id, "exec"]) => exec_create(ctx, req, id).await,
        (&Method::POST, [id, op @ ("pause" | "unpause")]) => {
            let (id, pause) = (id.to_string(), *op == "pause");
            blocking(move || ctx.engine.pause(&ctx.who, &id, pause)).await?;
            Ok(http::empty(204))
        }
        (&Method::POST, [id, "rename"]) => {
            let new = q
                .get("name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::Invalid("name is required".into()))?
                .to_string();
            let id = id.to_string();
            blocking(move || ctx.engine.rename(&ctx.who, &id, &new)).await?;
            Ok(http::empty(204))
        }
        (&Method::POST, [id, "resize"]) => {
            let h = q.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
            let w = q.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
            ctx.engine.resize(&ctx.who, id, h, w).await?;
            Ok(http::empty(200))
        }
        (&Method::POST, [id, "attach"]) => {
            let (stdin, stdout, stderr) = (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"));
            if !q.bool("stream") && !q.bool("logs") {
                return Err(Error::Invalid(
                    "at least one of stream or logs must be true".into(),
                ));
            }
            let keys = stream::detach_keys(
                q.get("detachKeys")
                    .filter(|k| !k.is_empty())
                    .unwrap_or(stream::DEFAULT_DETACH_KEYS),
            )?;
            let logged = if q.bool("logs") {
                logged_output(&ctx, id, stdout, stderr).await?
            } else {
                Vec::new()
            };
            if !q.bool("stream") {
                // The logs alone, then the end (dockerd's attach with stream=0).
                let tty = ctx.engine.inspect_tty(&ctx.who, id)?;
                let stream = Box::pin(async {
                    Err(Error::NotModified("no live stream was asked for".into()))
                });
                return Ok(stream::hijack_later(req, stream, tty, None, logged, || {}));
            }
            let a = ctx.engine.attach(&ctx.who, id, stdin, stdout, stderr)?;
            let fut = a.fut;
            let stream = Box::pin(async move { fut.await.map(|s| s.stream) });
            let detach = (a.tty && stdin).then_some(keys);
            Ok(stream::hijack_later(
                req,
                stream,
                a.tty,
                detach,
                logged,
                || {},
            ))
        }
        (&Method::DELETE, [id]) => {
            ctx.engine
                .remove(&ctx.who, id, q.bool("force"), q.bool("v"))
                .await?;
            Ok(http::empty(204))
        }
        // `docker rm --link /parent/alias`: the legacy link goes, the containers stay.
        (&Method::DELETE, [parent, alias]) if q.bool("link") => {
            let (parent, alias) = (parent.to_string(), alias.to_string());
            blocking(move || ctx.engine.remove_link(&ctx.who, &parent, &alias)).await?;
            Ok(http::empty(204))
        }
        (
            _,
            [
                _,
                "stats" | "top" | "update" | "archive" | "export" | "changes",
            ],
        ) => crate::ops::route(ctx, req, m, s, q).await,
        (
            _,
            [
                _,
                "json" | "start" | "stop" | "restart" | "kill" | "wait" | "pause" | "unpause"
                | "rename" | "resize" | "attach",
            ],
        )
        | (_, ["create" | "json" | "prune"]) => {
            Err(Error::Invalid(format!("method {m} is not allowed here")))
        }
        _ => Err(Error::NotImplemented(format!(
            "/containers/{} is not supported yet",
            s.join("/")
        ))),
    }
}

pub(crate) async fn route_exec(
    ctx: Ctx,
    req: Request<Incoming>,
    m: &Method,
    s: &[&str],
    q: &Query,
) -> Result<Resp, Error> {
    match (m, s) {
        (&Method::POST, [id, "start"]) => {
            #[derive(Deserialize, Default)]
            struct Start {
                #[serde(rename = "Detach", default)]
                detach: bool,
                #[serde(rename = "Tty", default)]
                tty: Option<bool>,
                #[serde(rename = "ConsoleSize", default)]
                console_size: Option<Vec<u16>>,
            }
            let id = id.to_string();
            let (parts, body) = req.into_parts();
            let body = http::read_body(body, 64 * 1024).await?;
            let st: Start = http::decode(&body)?;
            let req = Request::from_parts(parts, http_body_util::Empty::<bytes::Bytes>::new());
            if st.detach {
                ctx.engine.exec_start(&ctx.who, &id, true, st.tty).await?;
                return Ok(http::empty(200));
            }
            // Checked now (a 404 or 409 must be the answer's status); started once the
            // client has the 101: a client that reads the answer's head with a buffer (the
            // Python SDK) would otherwise swallow the first output with it.
            let (tty, keys) = ctx.engine.exec_check(&ctx.who, &id, st.tty)?;
            let detach = match keys {
                Some(k) if tty => Some(stream::detach_keys(if k.is_empty() {
                    stream::DEFAULT_DETACH_KEYS
                } else {
                    &k
                })?),
                _ => None,
            };
            let engine = ctx.engine.clone();
            let who = ctx.who.clone();
            let id2 = id.clone();
            let size = st.console_size.as_deref().map(|v| {
                (
                    v.first().copied().unwrap_or(0),
                    v.get(1).copied().unwrap_or(0),
                )
            });
            let stream = Box::pin(async move {
                let a = engine
                    .exec_start(&who, &id2, false, st.tty)
                    .await?
                    .ok_or_else(|| Error::Internal("exec gave no stream".into()))?;
                if let Some((h, w)) = size.filter(|(h, w)| *h > 0 && *w > 0) {
                    let _ = engine.exec_resize(&who, &id2, h, w).await;
                }
                Ok(a.stream)
            });
            let engine = ctx.engine.clone();
            // dockerd frames the output unless the start asked for a TTY (the process has a
            // terminal if the exec was created with one): the SDK's exec_start sends Tty false.
            let frame = tty && st.tty == Some(false);
            Ok(stream::hijack_framed(
                req,
                stream,
                tty,
                frame,
                detach,
                Vec::new(),
                move || {
                    for _ in 0..50 {
                        if engine.exec_finish(&id) {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                },
            ))
        }
        (&Method::POST, [id, "resize"]) => {
            let h = q.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
            let w = q.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
            ctx.engine.exec_resize(&ctx.who, id, h, w).await?;
            Ok(http::empty(200))
        }
        (&Method::GET, [id, "json"]) => {
            let id = id.to_string();
            let v = blocking(move || ctx.engine.exec_inspect(&ctx.who, &id)).await?;
            Ok(http::json(200, &v))
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}

async fn exec_create(ctx: Ctx, req: Request<Incoming>, id: &str) -> Result<Resp, Error> {
    let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
    let mut cfg: bollard_stubs::models::ExecConfig = http::decode(&body)?;
    if cfg.detach_keys.is_none() {
        // dockerd (Go) matches JSON keys whatever their case; the Python SDK sends the
        // client configuration's detach keys as `detachKeys`.
        #[derive(Deserialize, Default)]
        struct Lower {
            #[serde(rename = "detachKeys", default)]
            detach_keys: Option<String>,
        }
        let lower: Lower = http::decode(&body).unwrap_or_default();
        cfg.detach_keys = lower.detach_keys;
    }
    let id = id.to_string();
    let exec = blocking(move || ctx.engine.exec_create(&ctx.who, &id, cfg)).await?;
    Ok(http::json(201, &json!({"Id": exec})))
}

async fn create(ctx: Ctx, req: Request<Incoming>, q: &Query) -> Result<Resp, Error> {
    let body = http::read_body(req.into_body(), http::MAX_JSON_BODY).await?;
    let config: ContainerConfig = http::decode(&body)?;
    let hc: HostConfigOnly = http::decode(&body)?;
    let name = q.get("name").map(str::to_string);
    let mut host_config = hc.host_config.unwrap_or_default();
    if host_config
        .runtime
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        host_config.runtime = hc.runtime.filter(|r| !r.is_empty());
    }
    let mut endpoints: std::collections::HashMap<_, _> = hc
        .networking
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(mac) = hc.mac_address.filter(|m| !m.is_empty()) {
        let key = host_config
            .network_mode
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "default".into());
        let e: &mut bollard_stubs::models::EndpointSettings = endpoints.entry(key).or_default();
        if e.mac_address.as_deref().is_none_or(|m| m.is_empty()) {
            e.mac_address = Some(mac);
        }
    }
    let r = CreateRequest {
        name,
        config,
        host_config,
        endpoints,
    };
    let (id, warnings) = blocking(move || ctx.engine.create(&ctx.who, r)).await?;
    Ok(http::json(201, &json!({"Id": id, "Warnings": warnings})))
}

async fn list(ctx: Ctx, q: &Query) -> Result<Resp, Error> {
    let o = ListOptions {
        all: q.bool("all"),
        limit: q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize),
        size: q.bool("size"),
        filters: q.filters()?,
    };
    let v = blocking(move || ctx.engine.list(&ctx.who, &o)).await?;
    Ok(http::json(200, &v))
}

async fn wait(ctx: Ctx, id: &str, q: &Query) -> Result<Resp, Error> {
    let cond = match q.get("condition").unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(Error::Invalid(format!("invalid condition: \"{other}\"")));
        }
    };
    // The waiter is in place before the answer's status line goes out (at once, as dockerd
    // does, so clients know the wait is in place before they start the container); the body
    // comes when the condition holds.
    let fut = ctx.engine.waiter(&ctx.who, id, cond)?;
    let (resp, tx) = http::stream(200, "application/json");
    tokio::spawn(async move {
        let (code, err) = fut.await;
        let mut v = json!({"StatusCode": code});
        if let Some(e) = err {
            v["Error"] = json!({"Message": e});
        }
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        let _ = tx.send(bytes::Bytes::from(b)).await;
    });
    Ok(resp)
}

async fn prune(ctx: Ctx, q: &Query) -> Result<Resp, Error> {
    let filters = q.filters()?;
    let list = {
        let ctx = ctx.clone();
        let o = ListOptions {
            all: true,
            filters: filters
                .iter()
                .filter(|(k, _)| k.as_str() == "label")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Default::default()
        };
        blocking(move || ctx.engine.list(&ctx.who, &o)).await?
    };
    let until = filters
        .get("until")
        .and_then(|v| v.first())
        .map(|u| crate::system::parse_time(u))
        .transpose()?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for c in list {
        let state = c["State"].as_str().unwrap_or_default();
        if state != "exited" && state != "created" && state != "dead" {
            continue;
        }
        if let Some(u) = until {
            let created = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(c["Created"].as_u64().unwrap_or(0));
            if created >= u {
                continue;
            }
        }
        let id = c["Id"].as_str().unwrap_or_default().to_string();
        let size = {
            let ctx = ctx.clone();
            let id = id.clone();
            blocking(move || ctx.engine.inspect(&ctx.who, &id, true))
                .await
                .map(|v| v["SizeRw"].as_u64().unwrap_or(0))
                .unwrap_or(0)
        };
        if ctx.engine.remove(&ctx.who, &id, false, false).await.is_ok() {
            reclaimed += size;
            deleted.push(id);
        }
    }
    Ok(http::json(
        200,
        &json!({"ContainersDeleted": if deleted.is_empty() { serde_json::Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
    ))
}

/// Docker's stream frame: stream byte, three zeros, big-endian length, payload.
pub(crate) fn frame(stream: u8, payload: &[u8]) -> bytes::Bytes {
    let mut b = Vec::with_capacity(8 + payload.len());
    b.push(stream);
    b.extend_from_slice(&[0, 0, 0]);
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(payload);
    bytes::Bytes::from(b)
}

async fn logs(ctx: Ctx, id: &str, q: &Query) -> Result<Resp, Error> {
    let (stdout, stderr) = (q.bool("stdout"), q.bool("stderr"));
    if !stdout && !stderr {
        return Err(Error::Invalid(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let parse = |k: &str| -> Result<Option<std::time::SystemTime>, Error> {
        match q.get(k).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(s) => crate::system::parse_time(s).map(Some),
        }
    };
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => None,
        },
    };
    let read = berth_logs::ReadOptions {
        since: parse("since")?,
        until: parse("until")?,
        tail,
        follow: q.bool("follow"),
    };
    let timestamps = q.bool("timestamps");
    let mut logs = ctx
        .engine
        .logs(&ctx.who, id, berth_engine::logs::LogOptions { read })?;
    let ct = if logs.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let (resp, tx) = http::stream(200, ct);
    let tty = logs.tty;
    tokio::spawn(async move {
        while let Some(e) = logs.rx.recv().await {
            let Some(chunk) = log_chunk(&e, tty, timestamps, stdout, stderr) else {
                continue;
            };
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    Ok(resp)
}

/// One log entry as `logs` and `attach?logs=1` send it: raw with a TTY, else in Docker's
/// frame; None for a stream that was not asked for.
fn log_chunk(
    e: &berth_logs::Entry,
    tty: bool,
    timestamps: bool,
    stdout: bool,
    stderr: bool,
) -> Option<bytes::Bytes> {
    let (want, n) = match e.stream {
        berth_logs::Stream::Stdout => (stdout, 1u8),
        berth_logs::Stream::Stderr => (stderr, 2u8),
    };
    if !want {
        return None;
    }
    let mut payload = Vec::with_capacity(e.line.len() + 32);
    if timestamps {
        payload.extend_from_slice(e.timestamp().as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&e.line);
    Some(if tty {
        bytes::Bytes::from(payload)
    } else {
        frame(n, &payload)
    })
}

/// `attach?logs=1`: what the container has logged so far, as the attach stream carries it.
async fn logged_output(ctx: &Ctx, id: &str, stdout: bool, stderr: bool) -> Result<Vec<u8>, Error> {
    let read = berth_logs::ReadOptions {
        since: None,
        until: None,
        tail: None,
        follow: false,
    };
    let mut logs = ctx
        .engine
        .logs(&ctx.who, id, berth_engine::logs::LogOptions { read })?;
    let mut out = Vec::new();
    while let Some(e) = logs.rx.recv().await {
        if let Some(c) = log_chunk(&e, logs.tty, false, stdout, stderr) {
            out.extend_from_slice(&c);
        }
    }
    Ok(out)
}
