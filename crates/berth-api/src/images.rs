//! `/images/…` and `/auth`.

use std::collections::HashMap;
use std::sync::Arc;

use berth_engine::{Action, Engine, Error, Subject};
use berth_registry::{Client, Credentials, Options, Platform, PlatformExt, Reference};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde_json::{Value, json};

use crate::http::{self, Query, Resp};
use crate::{Ctx, blocking};

fn created_secs(v: &Value) -> i64 {
    v["Created"]
        .as_str()
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The image list (`GET /images/json`), Docker's shape.
pub(crate) fn list_json(
    engine: &Engine,
    who: &Subject,
    all: bool,
    filters: &HashMap<String, Vec<String>>,
) -> Result<Vec<Value>, Error> {
    let _ = all;
    engine.authorize(who, Action::Read, None)?;
    let store = engine.images();
    let mut out = Vec::new();
    let anchor = |key: &str| -> Option<i64> {
        let name = filters.get(key)?.first()?;
        store.inspect(name).ok().map(|v| created_secs(&v))
    };
    let before = anchor("before");
    let since = anchor("since");
    for rec in store.images()? {
        let info = store.inspect(&rec.id)?;
        let created = created_secs(&info);
        let tags: Vec<String> = info["RepoTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let labels = info["Config"]["Labels"].clone();
        let dangling = tags.is_empty();
        let mut keep = true;
        for (k, vals) in filters {
            if vals.is_empty() {
                continue;
            }
            keep &= match k.as_str() {
                "dangling" => vals.iter().any(|v| (v == "true" || v == "1") == dangling),
                "label" => vals.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => labels[k].as_str() == Some(v),
                    None => !labels[l.as_str()].is_null(),
                }),
                "reference" => vals
                    .iter()
                    .any(|pat| tags.iter().any(|t| reference_matches(pat, t))),
                "before" => before.is_some_and(|b| created < b),
                "since" => since.is_some_and(|s| created > s),
                _ => true,
            };
        }
        if !keep {
            continue;
        }
        let containers = if engine.image_in_use(&rec.id) { 1 } else { 0 };
        out.push(json!({
            "Id": rec.id,
            "ParentId": rec.parent.clone().unwrap_or_default(),
            "RepoTags": tags,
            "RepoDigests": info["RepoDigests"],
            "Created": created,
            "Size": info["Size"],
            "SharedSize": -1,
            "VirtualSize": info["Size"],
            "Labels": if labels.is_null() { json!({}) } else { labels },
            "Containers": containers,
        }));
    }
    out.sort_by(|a, b| b["Created"].as_i64().cmp(&a["Created"].as_i64()));
    Ok(out)
}

/// Docker's `reference` filter: a glob on `repository[:tag]` (familiar form).
fn reference_matches(pat: &str, tag: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                glob(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob(p, &s[1..]))
            }
            (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let repo = tag.rsplit_once(':').map(|(r, _)| r).unwrap_or(tag);
    glob(pat.as_bytes(), tag.as_bytes()) || glob(pat.as_bytes(), repo.as_bytes())
}

/// The registry client for a request: daemon.json's insecure registries, and the client's
/// credentials (X-Registry-Auth) for this request only.
fn client(engine: &Engine, auth: Option<&str>, r: &Reference) -> Client {
    let mut credentials = HashMap::new();
    if let Some(c) = auth.and_then(decode_auth) {
        credentials.insert(r.registry.clone(), c);
    }
    Client::new(Options {
        insecure: engine.config().insecure_registries.clone(),
        credentials,
        chunk_size: None,
    })
}

/// X-Registry-Auth: base64url JSON `{"username", "password", "serveraddress"}` (or an
/// identity token).
fn decode_auth(h: &str) -> Option<Credentials> {
    use base64::Engine as _;
    let h = h.trim();
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let user = v["username"].as_str().unwrap_or_default();
    let pass = v["password"].as_str().unwrap_or_default();
    if user.is_empty() && pass.is_empty() {
        return None;
    }
    Some(Credentials {
        username: user.to_string(),
        password: pass.to_string(),
    })
}

pub(crate) async fn route(
    ctx: Ctx,
    req: Request<Incoming>,
    m: &Method,
    s: &[&str],
    q: &Query,
) -> Result<Resp, Error> {
    // Image names hold slashes: the name is everything between `images/` and the action.
    let (name, action) = match s {
        [] | [""] => (String::new(), ""),
        [one] => (one.to_string(), ""),
        [rest @ .., last] => (rest.join("/"), *last),
    };
    match (m, s, action) {
        (&Method::GET, ["json"], _) => {
            let (all, filters) = (q.bool("all"), q.filters()?);
            let v = blocking(move || list_json(&ctx.engine, &ctx.who, all, &filters)).await?;
            Ok(http::json(200, &v))
        }
        (&Method::POST, ["create"], _) => create(ctx, req, q).await,
        (&Method::POST, ["prune"], _) => prune(ctx, q).await,
        (&Method::POST, ["load"], _) => load(ctx, req, q).await,
        (&Method::GET, ["get"], _) => save(ctx, q.all("names")).await,
        (&Method::GET, _, "get") => save(ctx, vec![name]).await,
        (&Method::POST, _, "push") => push(ctx, req, &name, q).await,
        (&Method::GET, ["search"], _) => Err(Error::Unavailable(
            "search is not available: berth does not reach Docker Hub's search service".into(),
        )),
        (&Method::GET, _, "json") => {
            let v = blocking(move || {
                ctx.engine.authorize(&ctx.who, Action::Read, None)?;
                Ok(ctx.engine.images().inspect(&name)?)
            })
            .await?;
            Ok(http::json(200, &v))
        }
        (&Method::GET, _, "history") => {
            let v = blocking(move || {
                let h = ctx.engine.images().history(&name)?;
                Ok(h.iter()
                    .map(|e| {
                        json!({
                            "Id": e.id,
                            "Created": e.created.as_deref().and_then(|c| humantime::parse_rfc3339_weak(c).ok())
                                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()).unwrap_or(0),
                            "CreatedBy": e.created_by,
                            "Tags": null,
                            "Size": e.size,
                            "Comment": e.comment,
                        })
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
            Ok(http::json(200, &v))
        }
        (&Method::POST, _, "tag") => {
            let repo = q.get("repo").unwrap_or_default().to_string();
            let tag = q.get("tag").unwrap_or_default().to_string();
            blocking(move || {
                ctx.engine.authorize(&ctx.who, Action::Write, None)?;
                if repo.is_empty() {
                    return Err(Error::Invalid(
                        "repository name must have at least one component".into(),
                    ));
                }
                let target = if tag.is_empty() {
                    repo
                } else {
                    format!("{repo}:{tag}")
                };
                let rec = ctx.engine.images().tag(&name, &target)?;
                ctx.engine
                    .image_event(&ctx.who.tenant, "tag", &rec.id, &target);
                Ok(())
            })
            .await?;
            Ok(http::empty(201))
        }
        (&Method::DELETE, _, _) => {
            let full = s.join("/");
            let force = q.bool("force");
            let v = blocking(move || {
                ctx.engine.authorize(&ctx.who, Action::Write, None)?;
                let removed = ctx.engine.images().remove(&full, force)?;
                let mut out = Vec::new();
                for r in removed {
                    match r {
                        berth_image::Removed::Untagged(t) => {
                            ctx.engine.image_event(&ctx.who.tenant, "untag", &t, &t);
                            out.push(json!({"Untagged": familiar(&t)}))
                        }
                        berth_image::Removed::Deleted(id) => {
                            ctx.engine.image_event(&ctx.who.tenant, "delete", &id, &id);
                            out.push(json!({"Deleted": id}))
                        }
                    }
                }
                Ok(out)
            })
            .await?;
            Ok(http::json(200, &v))
        }
        _ => Err(Error::NotImplemented(format!(
            "/images/{} is not supported yet",
            s.join("/")
        ))),
    }
}

fn familiar(t: &str) -> String {
    Reference::parse(t)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| t.to_string())
}

fn progress_line(v: Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

fn short_digest(d: &str) -> String {
    d.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Pull `r`; a Docker Hub image is tried first from daemon.json's `registry-mirrors`, in
/// order (recorded under its Docker Hub name, as dockerd does), then from Docker Hub.
fn pull_via_mirrors(
    engine: &Engine,
    client: &Client,
    r: &Reference,
    platform: &Platform,
    on_event: &(dyn Fn(berth_image::PullEvent) + Sync),
) -> Result<berth_image::ImageRecord, berth_image::Error> {
    let mirrors = &engine.config().registry_mirrors;
    if r.registry != "docker.io" || mirrors.is_empty() {
        return engine
            .images()
            .pull_with_progress(client, r, platform, on_event);
    }
    let mut last = None;
    for m in mirrors {
        let host = m
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let mut via = r.clone();
        via.registry = host.clone();
        let mut opts = Options {
            insecure: engine.config().insecure_registries.clone(),
            credentials: HashMap::new(),
            chunk_size: None,
        };
        if m.starts_with("http://") {
            opts.insecure.push(host.clone());
        }
        let mirror_client = Client::new(opts);
        match engine
            .images()
            .pull_with_progress(&mirror_client, &via, platform, on_event)
        {
            Ok(rec) => {
                // Known by its Docker Hub name, not the mirror's: its tag and digest
                // references move (removing the mirror's last tag drops its digests).
                let mirror_prefix = format!("{}/{}@", via.registry, via.repository);
                for d in &rec.repo_digests {
                    if let Some(digest) = d.strip_prefix(&mirror_prefix) {
                        let hub = format!("{}/{}@{digest}", r.registry, r.repository);
                        let _ = engine.images().add_repo_digest(&rec.id, &hub);
                    }
                }
                if via.digest.is_none() {
                    let _ = engine.images().tag(&via.to_string(), &r.to_string());
                    let _ = engine.images().remove(&via.to_string(), false);
                }
                return engine.images().get(&rec.id);
            }
            Err(e) => {
                tracing::info!("pulling {} from the mirror {m}: {e}", r.familiar());
                last = Some(e);
            }
        }
    }
    match engine
        .images()
        .pull_with_progress(client, r, platform, on_event)
    {
        Ok(rec) => Ok(rec),
        Err(e) => Err(last.unwrap_or(e)),
    }
}

/// `POST /images/create?fromImage=…&tag=…`: a pull, answered with Docker's JSON progress
/// stream (errors after the stream started are an `error` line, as dockerd sends them).
async fn create(ctx: Ctx, req: Request<Incoming>, q: &Query) -> Result<Resp, Error> {
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(Error::Invalid(
                "import from a URL is not supported: send the tarball as the body (fromSrc=-)"
                    .into(),
            ));
        }
        return import(ctx, req, q).await;
    }
    let from = q
        .get("fromImage")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| Error::Invalid("fromImage is required".into()))?
        .to_string();
    let tag = q.get("tag").unwrap_or_default().to_string();
    let name = if tag.is_empty() {
        from.clone()
    } else if tag.starts_with("sha256:") {
        format!("{from}@{tag}")
    } else {
        format!("{from}:{tag}")
    };
    let r = Reference::parse(&name).map_err(|e| Error::Invalid(e.to_string()))?;
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => {
            Platform::parse(p).ok_or_else(|| Error::Invalid(format!("invalid platform {p:?}")))?
        }
        None => Platform::host(),
    };
    ctx.engine.authorize(&ctx.who, Action::Create, None)?;
    let auth = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let (resp, tx) = http::stream(200, "application/json");
    let engine: Arc<Engine> = ctx.engine.clone();
    let who = ctx.who.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(progress_line(v));
        };
        let shown = r
            .tag_or_latest()
            .map_or_else(|| r.manifest_ref(), str::to_string);
        send(json!({"status": format!("Pulling from {}", r.familiar_name()), "id": shown}));
        let client = client(&engine, auth.as_deref(), &r);
        let before = engine.images().lookup(&name).ok().flatten();
        let resolved = std::sync::Mutex::new(None);
        let on_event = |e: berth_image::PullEvent| {
            use berth_image::PullEvent as P;
            match e {
                P::Resolved { digest } => {
                    if let Ok(mut r) = resolved.lock() {
                        *r = Some(digest.to_string());
                    }
                }
                P::Exists { digest } => send(
                    json!({"status": "Already exists", "progressDetail": {}, "id": short_digest(&digest.to_string())}),
                ),
                P::Progress {
                    digest,
                    done,
                    total,
                    downloading,
                } => send(json!({
                    "status": if downloading { "Downloading" } else { "Extracting" },
                    "progressDetail": {"current": done, "total": total},
                    "id": short_digest(&digest.to_string()),
                })),
                P::Done { digest } => send(
                    json!({"status": "Pull complete", "progressDetail": {}, "id": short_digest(&digest.to_string())}),
                ),
            }
        };
        match pull_via_mirrors(&engine, &client, &r, &platform, &on_event) {
            Ok(rec) => {
                if let Some(d) = resolved.lock().ok().and_then(|g| g.clone()) {
                    send(json!({"status": format!("Digest: {d}")}));
                }
                let up_to_date = before.as_ref().is_some_and(|b| b.id == rec.id);
                send(json!({"status": if up_to_date {
                    format!("Status: Image is up to date for {}", r.familiar())
                } else {
                    format!("Status: Downloaded newer image for {}", r.familiar())
                }}));
                engine.image_event(&who.tenant, "pull", &r.familiar(), &r.familiar());
            }
            Err(e) => {
                let msg = e.to_string();
                send(json!({"errorDetail": {"message": msg}, "error": msg}));
            }
        }
    });
    Ok(resp)
}

async fn prune(ctx: Ctx, q: &Query) -> Result<Resp, Error> {
    let filters = q.filters()?;
    let all = filters
        .get("dangling")
        .and_then(|v| v.first())
        .is_some_and(|v| v == "false" || v == "0");
    let v = blocking(move || {
        ctx.engine.authorize(&ctx.who, Action::System, None)?;
        let engine = ctx.engine.clone();
        let report = engine.images().prune(all, &|id| engine.image_in_use(id))?;
        let deleted: Vec<Value> = report
            .removed
            .iter()
            .map(|r| match r {
                berth_image::Removed::Untagged(t) => json!({"Untagged": familiar(t)}),
                berth_image::Removed::Deleted(id) => json!({"Deleted": id}),
            })
            .collect();
        Ok(json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": report.gc.reclaimed,
        }))
    })
    .await?;
    Ok(http::json(200, &v))
}

/// `POST /auth`: check credentials against the registry.
pub(crate) async fn auth(ctx: Ctx, req: Request<Incoming>) -> Result<Resp, Error> {
    let body = http::read_body(req.into_body(), 64 * 1024).await?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| Error::Invalid(format!("invalid JSON: {e}")))?;
    let user = v["username"].as_str().unwrap_or_default().to_string();
    let pass = v["password"].as_str().unwrap_or_default().to_string();
    let server = v["serveraddress"]
        .as_str()
        .unwrap_or("docker.io")
        .to_string();
    blocking(move || {
        let host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let host = if host == "index.docker.io" || host.is_empty() {
            "docker.io".to_string()
        } else {
            host
        };
        let mut credentials = HashMap::new();
        credentials.insert(
            host.clone(),
            Credentials {
                username: user,
                password: pass,
            },
        );
        let client = Client::new(Options {
            insecure: ctx.engine.config().insecure_registries.clone(),
            credentials,
            chunk_size: None,
        });
        client
            .check_login(&host)
            .map_err(|e| Error::Invalid(e.to_string()))
    })
    .await?;
    Ok(http::json(
        200,
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

/// The most an uploaded archive may hold (load, import).
const MAX_ARCHIVE: u64 = 64 << 30;

/// `POST /images/load`: a docker-archive or OCI archive as the body; JSON lines as dockerd.
async fn load(ctx: Ctx, req: Request<Incoming>, q: &Query) -> Result<Resp, Error> {
    ctx.engine.authorize(&ctx.who, Action::Create, None)?;
    let quiet = q.bool("quiet");
    let reader = http::BodyReader::new(req.into_body(), MAX_ARCHIVE);
    let (resp, tx) = http::stream(200, "application/json");
    let engine = ctx.engine.clone();
    let who = ctx.who.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(progress_line(v));
        };
        match engine.images().load_tagged(reader) {
            Ok(recs) => {
                for (r, tags) in recs {
                    if tags.is_empty() {
                        send(json!({"stream": format!("Loaded image ID: {}\n", r.id)}));
                        engine.image_event(&who.tenant, "load", &r.id, &r.id);
                    }
                    for t in &tags {
                        send(json!({"stream": format!("Loaded image: {}\n", familiar(t))}));
                        engine.image_event(&who.tenant, "load", &r.id, &familiar(t));
                    }
                }
                let _ = quiet;
            }
            Err(e) => {
                let msg = e.to_string();
                send(json!({"errorDetail": {"message": msg}, "error": msg}));
            }
        }
    });
    Ok(resp)
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: a docker-archive (with an OCI
/// layout) of the images.
async fn save(ctx: Ctx, names: Vec<String>) -> Result<Resp, Error> {
    ctx.engine.authorize(&ctx.who, Action::Read, None)?;
    if names.is_empty() {
        return Err(Error::Invalid("no images named".into()));
    }
    // Every name must exist before the answer's status goes out.
    {
        let engine = ctx.engine.clone();
        let names = names.clone();
        blocking(move || {
            for n in &names {
                engine.images().get(n)?;
            }
            Ok(())
        })
        .await?;
    }
    let (resp, tx) = http::stream(200, "application/x-tar");
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let w = http::BodyWriter::new(tx);
        if let Err(e) = engine.images().save(&refs, w) {
            // The status is out; dropping the stream cuts the archive short, which the client
            // reports as a broken archive.
            tracing::warn!("save: {e}");
        }
    });
    Ok(resp)
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=`: `docker import`.
async fn import(ctx: Ctx, req: Request<Incoming>, q: &Query) -> Result<Resp, Error> {
    ctx.engine.authorize(&ctx.who, Action::Create, None)?;
    let repo = q.get("repo").unwrap_or_default().to_string();
    let tag = q.get("tag").unwrap_or_default().to_string();
    let reference = if repo.is_empty() {
        None
    } else if tag.is_empty() {
        Some(repo)
    } else {
        Some(format!("{repo}:{tag}"))
    };
    let changes = q.all("changes");
    let reader = http::BodyReader::new(req.into_body(), MAX_ARCHIVE);
    let (resp, tx) = http::stream(200, "application/json");
    let engine = ctx.engine.clone();
    let who = ctx.who.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(progress_line(v));
        };
        match engine
            .images()
            .import(reader, reference.as_deref(), &changes)
        {
            Ok(rec) => {
                engine.image_event(
                    &who.tenant,
                    "import",
                    &rec.id,
                    reference.as_deref().unwrap_or(&rec.id),
                );
                send(json!({"status": rec.id}));
            }
            Err(e) => {
                let msg = e.to_string();
                send(json!({"errorDetail": {"message": msg}, "error": msg}));
            }
        }
    });
    Ok(resp)
}

/// `POST /images/{name}/push?tag=`: Docker's progress stream.
async fn push(ctx: Ctx, req: Request<Incoming>, name: &str, q: &Query) -> Result<Resp, Error> {
    ctx.engine.authorize(&ctx.who, Action::Write, None)?;
    let tag = q.get("tag").unwrap_or_default();
    let full = if tag.is_empty() {
        name.to_string()
    } else if tag.starts_with("sha256:") {
        format!("{name}@{tag}")
    } else {
        format!("{name}:{tag}")
    };
    let r = Reference::parse(&full).map_err(|e| Error::Invalid(e.to_string()))?;
    {
        let engine = ctx.engine.clone();
        let full = full.clone();
        blocking(move || engine.images().get(&full).map(|_| ()).map_err(Error::from))
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound(format!(
                    "An image does not exist locally with the tag: {name}"
                )),
                e => e,
            })?;
    }
    let auth = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let (resp, tx) = http::stream(200, "application/json");
    let engine = ctx.engine.clone();
    let who = ctx.who.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(progress_line(v));
        };
        send(json!({"status": format!("The push refers to repository [{}]", r.familiar_name())}));
        let client = client(&engine, auth.as_deref(), &r);
        let on_event = |e: berth_image::PushEvent| {
            use berth_image::PushEvent as P;
            let (status, d, detail) = match e {
                P::Preparing { digest } => ("Preparing".to_string(), digest, json!({})),
                P::Exists { digest } => ("Layer already exists".to_string(), digest, json!({})),
                P::Mounted { digest, from } => (format!("Mounted from {from}"), digest, json!({})),
                P::Progress {
                    digest,
                    sent,
                    total,
                } => (
                    "Pushing".to_string(),
                    digest,
                    json!({"current": sent, "total": total}),
                ),
                P::Pushed { digest } => ("Pushed".to_string(), digest, json!({})),
            };
            send(
                json!({"status": status, "progressDetail": detail, "id": short_digest(&d.to_string())}),
            );
        };
        match engine.images().push(&client, &r, &on_event) {
            Ok(p) => {
                let tag = r.tag_or_latest().unwrap_or("latest").to_string();
                send(json!({"status": format!("{tag}: digest: {} size: {}", p.digest, p.size)}));
                send(
                    json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": p.digest.to_string(), "Size": p.size}}),
                );
                engine.image_event(&who.tenant, "push", &r.familiar(), &r.familiar());
            }
            Err(e) => {
                let msg = e.to_string();
                send(json!({"errorDetail": {"message": msg}, "error": msg}));
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_filter_globs() {
        assert!(super::reference_matches("busybox", "busybox:latest"));
        assert!(super::reference_matches("busy*", "busybox:latest"));
        assert!(super::reference_matches("busybox:lat*", "busybox:latest"));
        assert!(!super::reference_matches("debian", "busybox:latest"));
        assert!(!super::reference_matches("*", "a/b:1"));
    }
}
