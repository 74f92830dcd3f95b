//! The image commands through the daemon (`/images/…`, `/auth`): pull and push with their
//! progress streams, images, tag, rmi, image prune, image inspect, history, save, load,
//! import. The store is the daemon's while it runs; the direct path (image.rs, registry.rs,
//! archive.rs) is for when no daemon serves the store.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use berth_registry::Reference;
use serde_json::{Value, json};

use super::archive::{ImportArgs, LoadArgs, SaveArgs};
use super::client::{Client, Request, seg};
use super::format::{Template, headers, print_inspect};
use super::image::{HistoryArgs, ImagesArgs, InspectArgs, PruneArgs, RmiArgs, TagArgs};
use super::progress::Progress;
use super::registry::{PullArgs, PushArgs};
use super::{go_time, human, secs_ago, short_id};

/// X-Registry-Auth for `reference`'s registry from Docker's credentials file (none when there
/// are no credentials for it).
fn registry_auth(reference: &str) -> Option<String> {
    use base64::Engine as _;
    let r = Reference::parse(reference).ok()?;
    let path = berth_registry::credentials::default_path()?;
    let creds = berth_registry::credentials::lookup(&path, &r.registry).ok()??;
    let v = json!({"username": creds.username, "password": creds.password, "serveraddress": r.registry});
    Some(base64::engine::general_purpose::URL_SAFE.encode(v.to_string()))
}

fn with_auth(req: Request, reference: &str) -> Request {
    match registry_auth(reference) {
        Some(a) => req.header("X-Registry-Auth", a),
        None => req,
    }
}

/// Where progress goes.
enum Sink<'a> {
    /// `Progress`: bars on a terminal, lines on stdout otherwise.
    Progress(&'a Progress),
    /// Lines on stderr (the pull of `run`/`create`).
    Stderr,
    /// Nothing.
    Quiet,
}

/// Statuses that end a layer's line.
fn final_status(s: &str) -> bool {
    matches!(
        s,
        "Pull complete" | "Already exists" | "Pushed" | "Layer already exists"
    ) || s.starts_with("Mounted from")
}

/// Follow a progress stream to its end; its `aux` objects; an `error` line is the error.
fn follow(r: super::client::Response, sink: &Sink) -> Result<Vec<Value>> {
    let mut aux = Vec::new();
    for msg in r.json_stream() {
        let m = msg?;
        if let Some(e) = m["error"].as_str().or(m["errorDetail"]["message"].as_str()) {
            bail!("{e}");
        }
        if !m["aux"].is_null() {
            aux.push(m["aux"].clone());
            continue;
        }
        if let Some(s) = m["stream"].as_str() {
            match sink {
                Sink::Quiet => {}
                Sink::Stderr => eprint!("{s}"),
                Sink::Progress(_) => print!("{s}"),
            }
            continue;
        }
        let status = m["status"].as_str().unwrap_or_default();
        let id = m["id"].as_str().unwrap_or_default();
        let current = m["progressDetail"]["current"].as_u64();
        let total = m["progressDetail"]["total"].as_u64().unwrap_or(0);
        match sink {
            Sink::Quiet => {}
            Sink::Stderr => {
                // As docker without a terminal: no progress lines, the others as they come.
                if current.is_none() {
                    if id.is_empty() {
                        eprintln!("{status}");
                    } else {
                        eprintln!("{id}: {status}");
                    }
                }
            }
            Sink::Progress(p) => {
                if id.is_empty() {
                    p.line(status);
                } else if status.starts_with("Pulling from") {
                    p.line(&format!("{id}: {status}"));
                } else if let Some(cur) = current {
                    p.update(id, status, cur, total);
                } else if final_status(status) {
                    p.done(id, status);
                } else {
                    p.status(id, status);
                }
            }
        }
    }
    Ok(aux)
}

fn pull_request(
    c: &Client,
    reference: &str,
    platform: Option<&str>,
) -> Result<super::client::Response> {
    let req = Request::post("/images/create")
        .q("fromImage", reference)
        .q_opt("platform", platform.filter(|p| !p.is_empty()));
    c.call(with_auth(req, reference))
}

/// The pull `run` and `create` make: progress on stderr (bars on a terminal).
pub fn pull_for_run(
    c: &Client,
    reference: &str,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let r = pull_request(c, reference, platform)?;
    if quiet {
        follow(r, &Sink::Quiet)?;
    } else if std::io::stderr().is_terminal() {
        let p = Progress::new(false);
        follow(r, &Sink::Progress(&p))?;
    } else {
        follow(r, &Sink::Stderr)?;
    }
    Ok(())
}

/// `berth pull`.
pub fn pull(c: &Client, a: &PullArgs) -> Result<ExitCode> {
    let r = Reference::parse(&a.reference)?;
    if !a.registry.insecure.is_empty() {
        eprintln!(
            "berth: --insecure-registry is ignored: the daemon pulls (daemon.json's insecure-registries)"
        );
    }
    let progress = Progress::new(a.quiet);
    if r.tag.is_none() && r.digest.is_none() {
        progress.line("Using default tag: latest");
    }
    let resp = pull_request(c, &a.reference, a.platform.as_deref())?;
    follow(resp, &Sink::Progress(&progress))?;
    println!("{r}");
    Ok(ExitCode::SUCCESS)
}

/// `berth push`.
pub fn push(c: &Client, a: &PushArgs) -> Result<ExitCode> {
    let r = Reference::parse(&a.reference)?;
    if !a.registry.insecure.is_empty() {
        eprintln!(
            "berth: --insecure-registry is ignored: the daemon pushes (daemon.json's insecure-registries)"
        );
    }
    let name = format!("{}/{}", r.registry, r.repository);
    let req = Request::post(format!("/images/{}/push", seg(&name))).q_opt(
        "tag",
        r.tag
            .clone()
            .or_else(|| r.digest.as_ref().map(|d| d.to_string())),
    );
    let resp = c.call(with_auth(req, &a.reference))?;
    let progress = Progress::new(a.quiet);
    let aux = follow(resp, &Sink::Progress(&progress))?;
    if a.quiet {
        if let Some(d) = aux.iter().find_map(|v| v["Digest"].as_str()) {
            println!("{d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `images`.
pub struct ImageRow {
    /// REPOSITORY (`<none>` when dangling).
    pub repository: String,
    /// TAG.
    pub tag: String,
    /// The repository digest, `<none>` when unknown.
    pub digest: String,
    /// The full ID (`sha256:…`).
    pub id: String,
    /// Creation, seconds since the epoch.
    pub created: i64,
    /// Bytes.
    pub size: u64,
    /// Containers using it (-1: unknown).
    pub containers: i64,
    /// `registry/repository` (for the REPOSITORY argument).
    pub full: String,
}

/// The rows of an image with its tags and digests.
pub fn image_rows(
    id: &str,
    tags: &[String],
    digests: &[String],
    created: i64,
    size: u64,
    containers: i64,
) -> Vec<ImageRow> {
    let digest_for = |full: &str| {
        digests
            .iter()
            .filter_map(|d| Reference::parse(d).ok())
            .find(|r| format!("{}/{}", r.registry, r.repository) == full)
            .and_then(|r| r.digest.map(|d| d.to_string()))
            .unwrap_or_else(|| "<none>".into())
    };
    let row = |repository: String, tag: String, full: String| ImageRow {
        digest: if full.is_empty() {
            "<none>".into()
        } else {
            digest_for(&full)
        },
        repository,
        tag,
        id: id.to_string(),
        created,
        size,
        containers,
        full,
    };
    let mut rows: Vec<ImageRow> = tags
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
        .filter_map(|t| Reference::parse(t).ok())
        .map(|r| {
            row(
                r.familiar_name(),
                r.tag_or_latest().unwrap_or("<none>").to_string(),
                format!("{}/{}", r.registry, r.repository),
            )
        })
        .collect();
    if rows.is_empty() {
        let named = digests
            .iter()
            .filter_map(|d| Reference::parse(d).ok())
            .next();
        rows.push(match named {
            Some(r) => row(
                r.familiar_name(),
                "<none>".into(),
                format!("{}/{}", r.registry, r.repository),
            ),
            None => row("<none>".into(), "<none>".into(), String::new()),
        });
    }
    rows
}

/// Print `images` rows: the table, `--format`, `-q`.
pub fn print_images(mut rows: Vec<ImageRow>, a: &ImagesArgs) -> Result<()> {
    if let Some(want) = &a.repository {
        let (want_full, want_tag) = match Reference::parse(want) {
            Ok(r) => (
                format!("{}/{}", r.registry, r.repository),
                r.tag
                    .clone()
                    .filter(|_| want.contains(':') && !want.ends_with(':')),
            ),
            Err(_) => (want.clone(), None),
        };
        rows.retain(|r| r.full == want_full && want_tag.as_ref().is_none_or(|t| *t == r.tag));
    }
    rows.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then(a.repository.cmp(&b.repository))
    });
    let id = |full: &str| {
        if a.no_trunc {
            full.to_string()
        } else {
            short_id(full)
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                println!("{}", id(&r.id));
            }
        }
        return Ok(());
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let t = Template::parse(a.format.as_deref().unwrap_or(""), default)?;
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "Repository": r.repository, "Tag": r.tag, "Digest": r.digest, "ID": id(&r.id),
                "CreatedSince": secs_ago(r.created), "CreatedAt": go_time(r.created),
                "Size": human(r.size), "VirtualSize": human(r.size),
                "SharedSize": "N/A", "UniqueSize": "N/A",
                "Containers": if r.containers < 0 { "N/A".to_string() } else { r.containers.to_string() },
            })
        })
        .collect();
    let h = headers(&[
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("VirtualSize", "VIRTUAL SIZE"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("Containers", "CONTAINERS"),
    ]);
    t.print(&values, &h)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `berth images`.
pub fn images(c: &Client, a: &ImagesArgs) -> Result<ExitCode> {
    let list = c.json(
        Request::get("/images/json")
            .q_if(a.all, "all", 1)
            .filters(&a.filter)?,
    )?;
    let mut rows = Vec::new();
    for img in list.as_array().into_iter().flatten() {
        rows.extend(image_rows(
            img["Id"].as_str().unwrap_or_default(),
            &strings(&img["RepoTags"]),
            &strings(&img["RepoDigests"]),
            img["Created"].as_i64().unwrap_or(0),
            img["Size"].as_u64().unwrap_or(0),
            img["Containers"].as_i64().unwrap_or(-1),
        ));
    }
    print_images(rows, a)?;
    Ok(ExitCode::SUCCESS)
}

/// `berth tag`.
pub fn tag(c: &Client, a: &TagArgs) -> Result<ExitCode> {
    let r = Reference::parse(&a.target)
        .with_context(|| format!("invalid reference format: {}", a.target))?;
    if r.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    c.ok(Request::post(format!("/images/{}/tag", seg(&a.source)))
        .q("repo", r.familiar_name())
        .q("tag", r.tag_or_latest().unwrap_or("latest")))?;
    Ok(ExitCode::SUCCESS)
}

fn print_deleted(list: &Value) {
    for d in list.as_array().into_iter().flatten() {
        if let Some(t) = d["Untagged"].as_str() {
            println!("Untagged: {t}");
        }
        if let Some(t) = d["Deleted"].as_str() {
            println!("Deleted: {t}");
        }
    }
}

/// `berth rmi`: each image tried; the status says whether all went.
pub fn rmi(c: &Client, a: &RmiArgs) -> Result<ExitCode> {
    let mut failed = false;
    for name in &a.images {
        match c.json(
            Request::delete(format!("/images/{}", seg(name)))
                .q_if(a.force, "force", 1)
                .q_if(a.no_prune, "noprune", 1),
        ) {
            Ok(v) => print_deleted(&v),
            Err(e) => {
                eprintln!("{}", super::one_line(&e));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `berth image prune`.
pub fn prune(c: &Client, a: &PruneArgs) -> Result<ExitCode> {
    let what = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !super::confirm(what) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("dangling=false".into());
    }
    let v = c.json(Request::post("/images/prune").filters(&filters)?)?;
    if v["ImagesDeleted"].as_array().is_some_and(|a| !a.is_empty()) {
        println!("Deleted Images:");
        print_deleted(&v["ImagesDeleted"]);
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human(v["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(ExitCode::SUCCESS)
}

/// `berth image inspect`.
pub fn inspect(c: &Client, a: &InspectArgs) -> Result<ExitCode> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for name in &a.images {
        match c.json(Request::get(format!("/images/{}/json", seg(name)))) {
            Ok(v) => out.push(v),
            Err(e) => errors.push(e),
        }
    }
    if !out.is_empty() || a.format.is_none() {
        print_inspect(&out, a.format.as_deref())?;
    }
    for e in &errors {
        eprintln!("{}", super::one_line(e));
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `berth history`.
pub fn history(c: &Client, a: &HistoryArgs) -> Result<ExitCode> {
    let v = c.json(Request::get(format!("/images/{}/history", seg(&a.image))))?;
    let rows: Vec<Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let id = e["Id"].as_str().unwrap_or("<missing>");
            let id = if a.no_trunc || id == "<missing>" {
                id.to_string()
            } else {
                short_id(id)
            };
            let created = e["Created"].as_i64().unwrap_or(0);
            let mut by = e["CreatedBy"]
                .as_str()
                .unwrap_or_default()
                .replace('\t', " ");
            if !a.no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            let size = e["Size"].as_u64().unwrap_or(0);
            json!({
                "ID": id,
                "CreatedSince": if a.human { secs_ago(created) } else { go_time(created) },
                "CreatedAt": go_time(created),
                "CreatedBy": by,
                "Size": if a.human { human(size) } else { size.to_string() },
                "Comment": e["Comment"].as_str().unwrap_or_default(),
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let t = Template::parse(
        a.format.as_deref().unwrap_or(""),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    )?;
    let h = headers(&[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ]);
    t.print(&rows, &h)?;
    Ok(ExitCode::SUCCESS)
}

/// Copy a response body into `path` through a temporary file beside it (a failed transfer
/// leaves no truncated file), or to stdout.
pub fn body_to(mut r: impl Read, output: Option<&Path>, what: &str) -> Result<()> {
    match output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            std::io::copy(&mut r, tmp.as_file_mut())
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut r, &mut out).with_context(|| format!("writing the {what}"))?;
        }
    }
    Ok(())
}

/// `berth save`.
pub fn save(c: &Client, a: &SaveArgs) -> Result<ExitCode> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut req = Request::get("/images/get");
    for n in &a.images {
        req = req.q("names", n);
    }
    let r = c.call(req)?;
    body_to(r.body, a.output.as_deref(), "archive")?;
    Ok(ExitCode::SUCCESS)
}

fn input(path: Option<&Path>) -> Result<Box<dyn Read + Send>> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?)
        }
        _ => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(std::io::stdin())
        }
    })
}

/// `berth load`.
pub fn load(c: &Client, a: &LoadArgs) -> Result<ExitCode> {
    let body = input(a.input.as_deref())?;
    let r = c.call(
        Request::post("/images/load")
            .q_if(a.quiet, "quiet", 1)
            .stream(body, "application/x-tar"),
    )?;
    let progress = Progress::new(a.quiet);
    follow(r, &Sink::Progress(&progress))?;
    Ok(ExitCode::SUCCESS)
}

/// `berth import`.
pub fn import(c: &Client, a: &ImportArgs) -> Result<ExitCode> {
    let body = input(Some(Path::new(&a.file)))?;
    let mut req = Request::post("/images/create").q("fromSrc", "-");
    if let Some(r) = &a.reference {
        let parsed =
            Reference::parse(r).with_context(|| format!("invalid reference format: {r}"))?;
        req = req
            .q("repo", parsed.familiar_name())
            .q("tag", parsed.tag_or_latest().unwrap_or("latest"));
    }
    for ch in &a.changes {
        req = req.q("changes", ch);
    }
    let r = c.call(req.stream(body, "application/x-tar"))?;
    let mut id = None;
    for msg in r.json_stream() {
        let m = msg?;
        if let Some(e) = m["error"].as_str() {
            bail!("{e}");
        }
        if let Some(s) = m["status"].as_str() {
            id = Some(s.to_string());
        }
    }
    println!(
        "{}",
        id.ok_or_else(|| anyhow!("the daemon did not say which image it made"))?
    );
    Ok(ExitCode::SUCCESS)
}
