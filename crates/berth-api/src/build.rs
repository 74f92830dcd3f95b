//! `POST /build` (the classic builder's API, which the docker CLI uses with
//! `DOCKER_BUILDKIT=0` or without buildx, and docker-compose and the Python SDK use) and
//! `POST /build/prune`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_engine::build::{BuildMessage, BuildOptions, Puller};
use berth_engine::{Action, Engine, Error};
use berth_registry::{Client, Credentials, Options, Platform, PlatformExt as _, Reference};
use bytes::Bytes;
use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::Ctx;
use crate::http::{self, Query, Resp};

/// The largest build context accepted (bytes, as sent).
const MAX_CONTEXT: u64 = 16 << 30;

fn line(v: Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

/// A JSON object parameter (`buildargs`, `labels`).
fn json_param<T: serde::de::DeserializeOwned + Default>(q: &Query, k: &str) -> Result<T, Error> {
    match q.get(k).filter(|v| !v.is_empty()) {
        Some(v) => serde_json::from_str(v)
            .map_err(|e| Error::Invalid(format!("invalid {k} parameter: {e}"))),
        None => Ok(T::default()),
    }
}

/// The classic API's limits for RUN containers.
fn resources(q: &Query) -> Result<bollard_stubs::models::HostConfig, Error> {
    let int = |k: &str| -> Result<Option<i64>, Error> { Ok(q.int(k)?.filter(|v| *v != 0)) };
    let ulimits: Vec<bollard_stubs::models::ResourcesUlimits> = json_param(q, "ulimits")?;
    Ok(bollard_stubs::models::HostConfig {
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpu_period: int("cpuperiod")?,
        cpu_quota: int("cpuquota")?,
        shm_size: int("shmsize")?,
        cpuset_cpus: q
            .get("cpusetcpus")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        cpuset_mems: q
            .get("cpusetmems")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        cgroup_parent: q
            .get("cgroupparent")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        ulimits: Some(ulimits).filter(|u| !u.is_empty()),
        ..Default::default()
    })
}

/// X-Berth-Build-Secrets (berth's own; the classic API has no way for secrets): base64 JSON
/// of id → base64 content.
fn secrets(h: Option<&str>) -> Result<HashMap<String, Vec<u8>>, Error> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = HashMap::new();
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(out);
    };
    let bad = || Error::Invalid("invalid X-Berth-Build-Secrets header".into());
    let bytes = b64.decode(h.trim()).map_err(|_| bad())?;
    let m: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    for (k, v) in m {
        out.insert(k, b64.decode(v).map_err(|_| bad())?);
    }
    Ok(out)
}

/// X-Registry-Config: base64 JSON of registry to `{username, password}`.
fn registry_config(h: Option<&str>) -> HashMap<String, Credentials> {
    use base64::Engine as _;
    let mut out = HashMap::new();
    let Some(h) = h else { return out };
    let h = h.trim();
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('='))
        })
    else {
        return out;
    };
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&bytes) else {
        return out;
    };
    for (reg, v) in m {
        let user = v["username"].as_str().unwrap_or_default();
        let pass = v["password"].as_str().unwrap_or_default();
        if user.is_empty() && pass.is_empty() {
            continue;
        }
        let host = reg
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let host = if host == "index.docker.io" {
            "docker.io".to_string()
        } else {
            host
        };
        out.insert(
            host,
            Credentials {
                username: user.to_string(),
                password: pass.to_string(),
            },
        );
    }
    out
}

pub(crate) async fn build(ctx: Ctx, req: Request<Incoming>, q: &Query) -> Result<Resp, Error> {
    ctx.engine.authorize(&ctx.who, Action::Create, None)?;
    if q.get("version") == Some("2") {
        return Err(Error::NotImplemented(
            "BuildKit builds (version=2) are not supported by berth: its builder serves the classic API (DOCKER_BUILDKIT=0)".into(),
        ));
    }
    let remote = q
        .get("remote")
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let mut tags = Vec::new();
    for t in q.all("t") {
        if t.is_empty() {
            continue;
        }
        Reference::parse(&t)
            .map_err(|_| Error::Invalid(format!("invalid reference format: {t}")))?;
        tags.push(t);
    }
    let build_args: BTreeMap<String, Option<String>> = json_param(q, "buildargs")?;
    let labels: BTreeMap<String, String> = json_param(q, "labels")?;
    let cache_from: Vec<String> = json_param(q, "cachefrom")?;
    let mut extra_hosts = Vec::new();
    for h in q.all("extrahosts") {
        extra_hosts.extend(
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    let opts = BuildOptions {
        tags,
        dockerfile: q.get("dockerfile").unwrap_or_default().to_string(),
        build_args,
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        quiet: q.bool("q"),
        labels,
        target: q
            .get("target")
            .map(str::to_string)
            .filter(|t| !t.is_empty()),
        network_mode: q
            .get("networkmode")
            .map(str::to_string)
            .filter(|t| !t.is_empty() && t != "default"),
        extra_hosts,
        platform: q
            .get("platform")
            .map(str::to_string)
            .filter(|t| !t.is_empty()),
        cache_from,
        resources: resources(q)?,
        cancel: Default::default(),
        secrets: secrets(
            req.headers()
                .get("X-Berth-Build-Secrets")
                .and_then(|h| h.to_str().ok()),
        )?,
    };
    let creds = registry_config(
        req.headers()
            .get("X-Registry-Config")
            .and_then(|h| h.to_str().ok()),
    );
    let engine: Arc<Engine> = ctx.engine.clone();
    let puller = puller(engine.clone(), creds);
    let mut reader = http::BodyReader::new(req.into_body(), MAX_CONTEXT);
    let (resp, tx) = http::stream(200, "application/json");
    let (mtx, mut mrx) = tokio::sync::mpsc::channel::<BuildMessage>(256);
    // Messages to JSON lines; the client gone, the build is canceled.
    let cancel = opts.cancel.clone();
    let fwd = tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                m = mrx.recv() => m,
                _ = tx.closed() => {
                    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                    while mrx.recv().await.is_some() {}
                    return None;
                }
            };
            let Some(m) = m else { break };
            let v = match m {
                BuildMessage::Stream(s) => json!({"stream": s}),
                BuildMessage::Aux(a) => json!({"aux": a}),
                BuildMessage::Raw(v) => v,
            };
            if tx.send(line(v)).await.is_err() {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                while mrx.recv().await.is_some() {}
                return None;
            }
        }
        Some(tx)
    });
    let who = ctx.who.clone();
    tokio::task::spawn_blocking(move || {
        let spool = (|| {
            let dir = engine.builds_dir()?;
            if let Some(url) = &remote {
                return berth_engine::build::remote_context(url, &dir);
            }
            let mut f = berth_engine::build::spool_file(&dir)?;
            std::io::copy(&mut reader, &mut f)
                .map_err(|e| Error::Invalid(format!("reading the build context: {e}")))?;
            Ok::<_, Error>(f)
        })();
        let result = match spool {
            Ok(f) => engine.build(&who, &opts, f, &puller, &mtx),
            Err(e) => Err(berth_engine::build::BuildFailure {
                message: e.to_string(),
                code: None,
            }),
        };
        drop(mtx);
        let tx = tokio::runtime::Handle::current()
            .block_on(fwd)
            .ok()
            .flatten();
        if let (Err(f), Some(tx)) = (result, tx) {
            let mut detail = json!({"message": f.message});
            if let Some(c) = f.code {
                detail["code"] = json!(c);
            }
            let _ = tx.blocking_send(line(json!({"errorDetail": detail, "error": f.message})));
        }
    });
    Ok(resp)
}

/// Pulls for a build: the registry client with the client's credentials (X-Registry-Config),
/// progress as the pull endpoint's JSON messages.
fn puller(engine: Arc<Engine>, creds: HashMap<String, Credentials>) -> Puller {
    Arc::new(move |name: &str, send: &(dyn Fn(Value) + Sync)| {
        let r = Reference::parse(name)
            .map_err(|_| Error::Invalid(format!("invalid reference format: {name}")))?;
        let mut credentials = HashMap::new();
        if let Some(c) = creds.get(&r.registry) {
            credentials.insert(r.registry.clone(), c.clone());
        }
        let client = Client::new(Options {
            insecure: engine.config().insecure_registries.clone(),
            credentials,
            chunk_size: None,
        });
        let shown = r
            .tag_or_latest()
            .map_or_else(|| r.manifest_ref(), str::to_string);
        send(json!({"status": format!("Pulling from {}", r.familiar_name()), "id": shown}));
        let on_event = |e: berth_image::PullEvent| {
            use berth_image::PullEvent as P;
            let short = |d: &dyn std::fmt::Display| {
                let s = d.to_string();
                s.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>()
            };
            match e {
                P::Exists { digest } => send(
                    json!({"status": "Already exists", "progressDetail": {}, "id": short(&digest)}),
                ),
                P::Done { digest } => send(
                    json!({"status": "Pull complete", "progressDetail": {}, "id": short(&digest)}),
                ),
                _ => {}
            }
        };
        engine
            .images()
            .pull_with_progress(&client, &r, &Platform::host(), &on_event)
            .map_err(Error::from)?;
        send(json!({"status": format!("Status: Downloaded newer image for {}", r.familiar())}));
        Ok(())
    })
}

/// `POST /build/prune`: the build cache's entries (all, or those the filters pick), and
/// what that reclaimed.
pub(crate) async fn prune(ctx: Ctx, q: &Query) -> Result<Resp, Error> {
    ctx.engine.authorize(&ctx.who, Action::System, None)?;
    let filters = q.filters()?;
    let until = filters
        .get("until")
        .and_then(|v| v.first())
        .map(|u| crate::system::parse_time(u))
        .transpose()?;
    let all = q.bool("all");
    let engine = ctx.engine.clone();
    let (ids, reclaimed) =
        tokio::task::spawn_blocking(move || engine.prune_build_cache(all, until))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(http::json(
        200,
        &json!({"CachesDeleted": if ids.is_empty() { Value::Null } else { json!(ids) }, "SpaceReclaimed": reclaimed}),
    ))
}
