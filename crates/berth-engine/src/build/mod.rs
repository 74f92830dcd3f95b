//! Builds: a Dockerfile and a context to an image (`POST /build`, `docker build`).
//!
//! The Dockerfile is parsed by `berth-dockerfile` (BuildKit's syntax). The stages the target
//! needs are found (FROM of a stage, `COPY --from`, `RUN --mount=from=`), ordered, cycles
//! refused, and run; the others are skipped. Each instruction is a step with a key: the key
//! of the step before it and what the step is (the instruction as expanded, the build args it
//! sees, for COPY and ADD the content of the files it copies, not their times). A step whose
//! key is in the build cache (berth-image's `build`) is not run: its layer and history entry
//! are taken from there, so that a rebuild of an unchanged Dockerfile and context makes the
//! same image. Keys start from the tenant: tenants never share cache entries (a step's
//! output need not be a function of its key: a RUN may fetch). A step that is run:
//! - RUN: in a container the engine creates of the state so far, its way (networking,
//!   default security), attached to the build's output; what it changed becomes a layer;
//!   the container goes, whatever its end;
//! - COPY, ADD, WORKDIR: in a root filesystem of the state so far (an overlay mount),
//!   the files written beneath it, the changes a layer;
//! - the others change the config only.
//!
//! The output is the classic builder's JSON stream (`stream`, `aux`, `errorDetail`), which
//! the docker CLI (`DOCKER_BUILDKIT=0`), docker-compose and the Python SDK read.

mod context;
mod imgconfig;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_dockerfile::{Dockerfile, Instruction, Kind, ShellOrExec, Stage};
use berth_image::ImageRecord;
use berth_image::build::{CacheEntry, LayerRef};
use berth_registry::PlatformExt as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc::Sender;

use crate::containers::{CreateRequest, WaitCondition, root_id};
use crate::{Engine, Error, Result, Subject};
use context::{Attrs, Planned, Source};
use imgconfig::ImageConfig;

/// What `POST /build` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `t`: tags (any form a reference accepts).
    pub tags: Vec<String>,
    /// `dockerfile`: its path in the context (default `Dockerfile`).
    pub dockerfile: String,
    /// `buildargs`: a value, or none to take it from the daemon's environment.
    pub build_args: BTreeMap<String, Option<String>>,
    /// `nocache`.
    pub no_cache: bool,
    /// `pull`: pull the base images even if present.
    pub pull: bool,
    /// `q`: only the image ID.
    pub quiet: bool,
    /// `labels`: added to the image.
    pub labels: BTreeMap<String, String>,
    /// `target`: the stage to build (default the last).
    pub target: Option<String>,
    /// `networkmode` for RUN steps.
    pub network_mode: Option<String>,
    /// `extrahosts` for RUN steps.
    pub extra_hosts: Vec<String>,
    /// `platform`.
    pub platform: Option<String>,
    /// `cachefrom`: images whose history may serve as cache (accepted).
    pub cache_from: Vec<String>,
    /// Secrets (`--secret id=…`): id to content.
    pub secrets: HashMap<String, Vec<u8>>,
    /// Set when the client has gone: the build stops (its running step is killed).
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
    /// What RUN containers get of a HostConfig (`memory`, `memswap`, `cpushares`,
    /// `cpusetcpus`, `cpusetmems`, `cpuperiod`, `cpuquota`, `shmsize`, `ulimits`,
    /// `cgroupparent`).
    pub resources: bollard_stubs::models::HostConfig,
}

/// A line of the build's output, as the classic builder's JSON stream has them.
#[derive(Debug, Clone)]
pub enum BuildMessage {
    /// `{"stream": …}`: text.
    Stream(String),
    /// `{"aux": …}`.
    Aux(Value),
    /// A whole JSON message (a pull's progress).
    Raw(Value),
}

/// Pulls an image by name for a build (the API's pull, with the client's credentials),
/// sending its progress as JSON messages.
pub type Puller = Arc<dyn Fn(&str, &(dyn Fn(Value) + Sync)) -> Result<()> + Send + Sync>;

/// A build failed at a step: the message, and the exit code of a RUN that failed.
#[derive(Debug)]
pub struct BuildFailure {
    /// Docker's message.
    pub message: String,
    /// The failing command's exit code (`errorDetail.code`).
    pub code: Option<i64>,
}

/// A scratch file in `dir` (gone when closed): where the API spools a build context.
pub fn spool_file(dir: &Path) -> Result<File> {
    context::spool(dir)
}

/// A build context from a URL (`remote=`): a tarball (plain, gzip or zstd), or a lone
/// Dockerfile (anything else), downloaded into a scratch file in `dir`.
pub fn remote_context(url: &str, dir: &Path) -> Result<File> {
    use std::io::{Read, Seek, Write};
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::NotImplemented(format!(
            "remote context {url}: only http and https URLs of a tarball or a Dockerfile are supported (not git)"
        )));
    }
    let scratch = dir.join(format!("remote-{}", &crate::names::new_id()[..16]));
    let name = download(url, &scratch, None)?;
    let downloaded = scratch.join(&name);
    let mut f = File::open(&downloaded).map_err(|e| Error::internal("reading a download", e))?;
    let _ = std::fs::remove_dir_all(&scratch);
    let mut head = Vec::new();
    (&mut f)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| Error::internal("reading a download", e))?;
    f.rewind()
        .map_err(|e| Error::internal("reading a download", e))?;
    let tarball = match berth_layer::Compression::detect(&head) {
        berth_layer::Compression::None => head.len() >= 262 && &head[257..262] == b"ustar",
        _ => true,
    };
    if tarball {
        return Ok(f);
    }
    // A Dockerfile: the context is it alone.
    let mut text = Vec::new();
    f.take(16 << 20)
        .read_to_end(&mut text)
        .map_err(|e| Error::internal("reading a download", e))?;
    let mut out = context::spool(dir)?;
    {
        let mut b = tar::Builder::new(&mut out);
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "Dockerfile", text.as_slice())
            .map_err(|e| Error::internal("writing the context", e))?;
        b.finish()
            .map_err(|e| Error::internal("writing the context", e))?;
    }
    out.flush()
        .map_err(|e| Error::internal("writing the context", e))?;
    Ok(out)
}

/// The state between steps.
#[derive(Clone)]
struct State {
    /// The image the stage started from (none: scratch).
    base: Option<ImageRecord>,
    config: ImageConfig,
    /// Every layer, the base's first.
    diff_ids: Vec<String>,
    /// The layers the build made.
    layers: Vec<LayerRef>,
    /// The last step's key.
    key: String,
    /// Build args in scope: name to value.
    args: BTreeMap<String, String>,
    /// The history entries the build added (with their times).
    last_created: Option<String>,
}

/// What one build needs while it runs.
struct Build<'a> {
    engine: &'a Arc<Engine>,
    who: &'a Subject,
    opts: &'a BuildOptions,
    out: &'a Sender<BuildMessage>,
    puller: &'a Puller,
    id: String,
    dir: PathBuf,
    context: Source,
    context_dir: PathBuf,
    escape: char,
    /// Stage results by index.
    done: Mutex<HashMap<usize, State>>,
    /// Roots made for the build (removed at its end): stage and image roots by name.
    roots: Mutex<Vec<String>>,
    trees: Mutex<HashMap<String, PathBuf>>,
    step: AtomicUsize,
    steps: usize,
    used_args: Mutex<HashSet<String>>,
    hits: Mutex<Vec<String>>,
    seq: AtomicUsize,
}

/// The paths the engine mounts over in a container: empty files made for them are not the
/// step's work.
const MOUNT_POINTS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/.dockerenv",
];

/// The image config's field with the step keys (see `Build::import_cache`).
const CACHE_FIELD: &str = "berth.cache.v0";

/// The build args every build knows without an ARG (and does not record in history).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn platform_args() -> BTreeMap<String, String> {
    let p = berth_registry::Platform::host();
    let os = p.os().to_string();
    let arch = p.architecture().to_string();
    let variant = p.variant().clone().unwrap_or_default();
    let plat = if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    };
    let mut m = BTreeMap::new();
    for pre in ["TARGET", "BUILD"] {
        m.insert(format!("{pre}PLATFORM"), plat.clone());
        m.insert(format!("{pre}OS"), os.clone());
        m.insert(format!("{pre}ARCH"), arch.clone());
        m.insert(format!("{pre}VARIANT"), variant.clone());
    }
    m
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("{:x}", h.finalize())
}

fn now() -> String {
    crate::containers::now_rfc3339()
}

impl From<Error> for BuildFailure {
    fn from(e: Error) -> BuildFailure {
        BuildFailure {
            message: e.to_string(),
            code: None,
        }
    }
}

impl Engine {
    /// Build an image (blocking; see the module docs): the context is the tar in `context`.
    /// The output goes to `out`; returns the image ID.
    pub fn build(
        self: &Arc<Self>,
        who: &Subject,
        opts: &BuildOptions,
        context: File,
        puller: &Puller,
        out: &Sender<BuildMessage>,
    ) -> std::result::Result<String, BuildFailure> {
        self.authorize(who, crate::Action::Create, None)
            .map_err(BuildFailure::from)?;
        if let Some(p) = opts.platform.as_deref().filter(|p| !p.is_empty()) {
            check_platform(p).map_err(BuildFailure::from)?;
        }
        let id = crate::names::new_id();
        let dir = context::build_dir(&self.paths.data_root, &id[..16]);
        let result = (|| {
            crate::private_dir(&dir)?;
            let context_dir = dir.join("context");
            context::unpack(&context, &context_dir)?;
            drop(context);
            let dockerfile = context::clean_rel(if opts.dockerfile.is_empty() {
                "Dockerfile"
            } else {
                &opts.dockerfile
            });
            let source = Source::context(&context_dir, &dockerfile)?;
            let mut b = Build {
                engine: self,
                who,
                opts,
                out,
                puller,
                id: id.clone(),
                dir: dir.clone(),
                context: source,
                context_dir,
                escape: '\\',
                done: Mutex::new(HashMap::new()),
                roots: Mutex::new(Vec::new()),
                trees: Mutex::new(HashMap::new()),
                step: AtomicUsize::new(0),
                steps: 0,
                used_args: Mutex::new(HashSet::new()),
                hits: Mutex::new(Vec::new()),
                seq: AtomicUsize::new(0),
            };
            let r = b.run();
            b.cleanup();
            r
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

impl Engine {
    /// At daemon start: what builds a daemon did not finish left (killed mid-build): their
    /// roots, scratch directories and step containers go.
    pub(crate) fn recover_builds(self: &Arc<Self>) {
        if let Ok(roots) = self.images.roots() {
            for r in roots.into_iter().filter(|r| r.id.starts_with("build:")) {
                tracing::info!("removing the root {} of an unfinished build", r.id);
                let _ = self.images.remove_root(&r.id, true);
            }
        }
        let _ = std::fs::remove_dir_all(self.paths.data_root.join("builds"));
        let steps: Vec<(String, String)> = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|h| h.get())
            .filter(|c| {
                c.config
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("berth.build"))
            })
            .map(|c| (c.id, c.owner))
            .collect();
        for (id, owner) in steps {
            let me = self.clone();
            self.rt.spawn(async move {
                tracing::info!("removing the step container {id} of an unfinished build");
                let who = Subject { tenant: owner };
                let _ = me.remove(&who, &id, true, true).await;
            });
        }
    }

    /// `docker builder prune`: the cache entries last used before `until` (all when none),
    /// of them only those whose layer no image has unless `all`; with `all` and no `until`
    /// the RUN cache mounts go too. Returns the entries dropped and the bytes reclaimed.
    pub fn prune_build_cache(
        &self,
        all: bool,
        until: Option<std::time::SystemTime>,
    ) -> Result<(Vec<String>, u64)> {
        let used: HashSet<String> = if all {
            HashSet::new()
        } else {
            self.images
                .images()?
                .into_iter()
                .flat_map(|r| r.diff_ids)
                .collect()
        };
        let (ids, mut reclaimed) = self.images.cache_prune(&|_, e| {
            let old = until.is_none_or(|cut| {
                humantime::parse_rfc3339_weak(&e.last_used).is_ok_and(|t| t < cut)
            });
            old && (all || e.layer.as_ref().is_none_or(|l| !used.contains(&l.diff_id)))
        })?;
        if all && until.is_none() {
            let dir = self.paths.data_root.join("build-cache-mounts");
            if dir.exists() {
                reclaimed += crate::view::dir_size(&dir);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        Ok((ids, reclaimed))
    }

    /// Where builds keep their scratch files (root's only), made if missing.
    pub fn builds_dir(&self) -> Result<PathBuf> {
        let dir = self.paths.data_root.join("builds");
        crate::private_dir(&dir)?;
        Ok(dir)
    }

    /// `docker system df`'s build cache rows.
    pub fn build_cache_usage(&self) -> Result<Vec<Value>> {
        Ok(self
            .images
            .cache_entries()?
            .into_iter()
            .map(|(k, e)| {
                json!({
                    "ID": &k[..25.min(k.len())],
                    "Parent": "",
                    "Type": "regular",
                    "Description": e.description,
                    "InUse": false,
                    "Shared": false,
                    "Size": e.layer.as_ref().map_or(0, |l| l.size),
                    "CreatedAt": e.created,
                    "LastUsedAt": e.last_used,
                    "UsageCount": e.usage_count,
                })
            })
            .collect())
    }
}

/// Refuse a platform that is not this machine's.
fn check_platform(p: &str) -> Result<()> {
    let host = berth_registry::Platform::host();
    let want = berth_registry::Platform::parse(p)
        .ok_or_else(|| Error::Invalid(format!("invalid platform {p:?}")))?;
    if want.os() != host.os() || want.architecture() != host.architecture() {
        return Err(Error::Invalid(format!(
            "platform {p} is not supported: berth builds for this machine's platform only ({}/{})",
            host.os(),
            host.architecture()
        )));
    }
    Ok(())
}

impl Build<'_> {
    fn say(&self, s: impl Into<String>) {
        if !self.opts.quiet {
            let _ = self.out.blocking_send(BuildMessage::Stream(s.into()));
        }
    }

    fn run(&mut self) -> std::result::Result<String, BuildFailure> {
        let df = self.read_dockerfile().map_err(BuildFailure::from)?;
        self.escape = df.escape;
        // Meta args: the global scope FROM lines expand in.
        let mut meta = platform_args();
        for a in &df.meta_args {
            let v = match self.opts.build_args.get(&a.name) {
                Some(v) => {
                    lock(&self.used_args).insert(a.name.clone());
                    self.arg_value(&a.name, v)
                }
                None => match &a.default {
                    Some(d) => Some(self.expand(d, &meta, None, 0).map_err(BuildFailure::from)?),
                    None => None,
                },
            };
            if let Some(v) = v {
                meta.insert(a.name.clone(), v);
            }
        }
        self.import_cache();
        let order = self.plan(&df, &meta).map_err(BuildFailure::from)?;
        self.steps = order
            .iter()
            .map(|i| df.stages[*i].instructions.len() + 1)
            .sum();
        let Some(&last) = order.last() else {
            return Err(BuildFailure::from(Error::Invalid(
                "the Dockerfile has no stage (no FROM)".into(),
            )));
        };
        self.run_stages(&df, &order, &meta)?;
        let mut st = lock(&self.done).remove(&last).ok_or_else(|| {
            BuildFailure::from(Error::Internal("the target was not built".into()))
        })?;
        for (k, v) in &self.opts.labels {
            st.config.map_insert("Labels", k, json!(v));
        }
        let used = lock(&self.used_args).clone();
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !used.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ));
        }
        let created = st.last_created.clone().or_else(|| {
            st.config
                .top
                .get("created")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let bytes = st.config.to_bytes(&st.diff_ids, created.as_deref());
        let mut tags = Vec::new();
        for t in &self.opts.tags {
            let r = berth_registry::Reference::parse(t).map_err(|e| {
                BuildFailure::from(Error::Invalid(format!("invalid tag {t:?}: {e}")))
            })?;
            if r.digest.is_some() {
                return Err(BuildFailure::from(Error::Invalid(format!(
                    "invalid tag {t:?}: a tag cannot name a digest"
                ))));
            }
            tags.push(r.to_string());
        }
        let rec = self
            .engine
            .images
            .build_image(st.base.as_ref(), &bytes, &st.layers, &tags)
            .map_err(|e| BuildFailure::from(Error::from(e)))?;
        let _ = self.engine.images.cache_touch(&lock(&self.hits));
        let _ = self
            .out
            .blocking_send(BuildMessage::Aux(json!({"ID": rec.id})));
        let short = rec.id.trim_start_matches("sha256:");
        self.say(format!(" ---> {}\n", &short[..12.min(short.len())]));
        self.say(format!(
            "Successfully built {}\n",
            &short[..12.min(short.len())]
        ));
        for t in &self.opts.tags {
            let full = berth_registry::Reference::parse(t)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| t.clone());
            let shown = if full.contains(':') && !full.ends_with(']') {
                full
            } else {
                format!("{full}:latest")
            };
            self.say(format!("Successfully tagged {shown}\n"));
            self.engine
                .image_event(&self.who.tenant, "tag", &rec.id, &shown);
        }
        if self.opts.quiet {
            let _ = self
                .out
                .blocking_send(BuildMessage::Stream(format!("{}\n", rec.id)));
        }
        Ok(rec.id)
    }

    /// Run the stages of `order` (dependencies first), those that do not depend on each
    /// other at the same time; the first failure stops starting more and is returned once
    /// the running ones end.
    fn run_stages(
        &self,
        df: &Dockerfile,
        order: &[usize],
        meta: &BTreeMap<String, String>,
    ) -> std::result::Result<(), BuildFailure> {
        let deps: HashMap<usize, Vec<usize>> = order
            .iter()
            .map(|&i| {
                let d = self
                    .deps(df, meta, i)
                    .into_iter()
                    .filter(|d| *d != i && order.contains(d))
                    .collect();
                (i, d)
            })
            .collect();
        let (tx, rx) =
            std::sync::mpsc::channel::<(usize, std::result::Result<State, BuildFailure>)>();
        let mut failure = None;
        std::thread::scope(|scope| {
            let mut started: HashSet<usize> = HashSet::new();
            let mut finished: HashSet<usize> = HashSet::new();
            let mut running = 0usize;
            loop {
                if failure.is_none() {
                    for &i in order {
                        if started.contains(&i) || !deps[&i].iter().all(|d| finished.contains(d)) {
                            continue;
                        }
                        started.insert(i);
                        running += 1;
                        let tx = tx.clone();
                        scope.spawn(move || {
                            let r = self.stage(df, i, meta, Some(&i) == order.last());
                            let _ = tx.send((i, r));
                        });
                    }
                }
                if running == 0 {
                    break;
                }
                let Ok((i, r)) = rx.recv() else { break };
                running -= 1;
                match r {
                    Ok(st) => {
                        lock(&self.done).insert(i, st);
                        finished.insert(i);
                    }
                    Err(e) => {
                        if failure.is_none() {
                            failure = Some(e);
                        }
                    }
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read_dockerfile(&self) -> Result<Dockerfile> {
        let name = if self.opts.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            self.opts.dockerfile.as_str()
        };
        if context::escapes(name) {
            return Err(Error::Invalid(format!(
                "the Dockerfile ({name}) must be within the build context"
            )));
        }
        let rel = context::clean_rel(name);
        let bytes = match context::read_file(&self.context_dir, &rel, 16 << 20) {
            Ok(b) => b,
            Err(e) if name == "Dockerfile" => {
                tracing::debug!("reading the Dockerfile: {e}");
                context::read_file(&self.context_dir, "dockerfile", 16 << 20).map_err(|_| {
                    Error::Invalid(format!("Cannot locate specified Dockerfile: {name}"))
                })?
            }
            Err(_) => {
                return Err(Error::Invalid(format!(
                    "Cannot locate specified Dockerfile: {name}"
                )));
            }
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Invalid("the Dockerfile is not UTF-8 text".into()))?;
        berth_dockerfile::parse(&text).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// A build arg's value as the client gave it (none: from the daemon's environment).
    fn arg_value(&self, name: &str, v: &Option<String>) -> Option<String> {
        match v {
            Some(v) => Some(v.clone()),
            None => std::env::var(name).ok(),
        }
    }

    /// Expand `word` with the config's Env over the args in scope.
    fn expand(
        &self,
        word: &str,
        args: &BTreeMap<String, String>,
        config: Option<&ImageConfig>,
        line: usize,
    ) -> Result<String> {
        let env: Vec<(String, String)> = config.map(ImageConfig::env).unwrap_or_default();
        let lookup = |n: &str| -> Option<String> {
            env.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .or_else(|| args.get(n).cloned())
        };
        berth_dockerfile::expand(word, self.escape, &lookup)
            .map_err(|e| Error::Invalid(at(line, &e.to_string())))
    }

    fn expand_words(&self, word: &str, st: &State, line: usize) -> Result<Vec<String>> {
        let env = st.config.env();
        let lookup = |n: &str| -> Option<String> {
            env.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .or_else(|| st.args.get(n).cloned())
        };
        berth_dockerfile::expand_words(word, self.escape, &lookup)
            .map_err(|e| Error::Invalid(at(line, &e.to_string())))
    }

    /// The stages to build, in order: the target and what it needs.
    fn plan(&self, df: &Dockerfile, meta: &BTreeMap<String, String>) -> Result<Vec<usize>> {
        if df.stages.is_empty() {
            return Err(Error::Invalid(
                "the Dockerfile has no stage: file with no instructions".into(),
            ));
        }
        let target = match self.opts.target.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => df
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t.to_lowercase()))
                .ok_or_else(|| {
                    Error::Invalid(format!("target stage \"{t}\" could not be found"))
                })?,
            None => df.stages.len() - 1,
        };
        let mut order = Vec::new();
        let mut state = vec![0u8; df.stages.len()]; // 0 new, 1 visiting, 2 done
        self.visit(df, meta, target, &mut state, &mut order)?;
        Ok(order)
    }

    fn visit(
        &self,
        df: &Dockerfile,
        meta: &BTreeMap<String, String>,
        i: usize,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) -> Result<()> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let s = &df.stages[i];
                return Err(Error::Invalid(format!(
                    "circular dependency detected on stage: {}",
                    s.name.clone().unwrap_or_else(|| i.to_string())
                )));
            }
            _ => {}
        }
        state[i] = 1;
        for d in self.deps(df, meta, i) {
            self.visit(df, meta, d, state, order)?;
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }

    /// The stages stage `i` uses.
    fn deps(&self, df: &Dockerfile, meta: &BTreeMap<String, String>, i: usize) -> Vec<usize> {
        let s = &df.stages[i];
        let mut out = Vec::new();
        let base = self
            .expand(&s.base, meta, None, s.line)
            .unwrap_or_else(|_| s.base.clone());
        if let Some(d) = stage_ref(df, &base, i, true) {
            out.push(d);
        }
        for ins in &s.instructions {
            let froms: Vec<&str> = match &ins.kind {
                Kind::Copy(c) | Kind::Add(c) => c.from.iter().map(String::as_str).collect(),
                Kind::Run { mounts, .. } => {
                    mounts.iter().filter_map(|m| m.from.as_deref()).collect()
                }
                _ => Vec::new(),
            };
            for f in froms {
                if let Some(d) = stage_ref(df, f, i, false) {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Build stage `i`. The target's last arrow (` ---> ID`) is the image's, said once it is
    /// recorded.
    fn stage(
        &self,
        df: &Dockerfile,
        i: usize,
        meta: &BTreeMap<String, String>,
        target: bool,
    ) -> std::result::Result<State, BuildFailure> {
        let s: &Stage = &df.stages[i];
        let n = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        self.say(format!("Step {n}/{} : {}\n", self.steps, s.original));
        let base = self
            .expand(&s.base, meta, None, s.line)
            .map_err(BuildFailure::from)?;
        if let Some(p) = &s.platform {
            let p = self
                .expand(p, meta, None, s.line)
                .map_err(BuildFailure::from)?;
            check_platform(&p).map_err(BuildFailure::from)?;
        }
        let mut st = if base == "scratch" {
            State {
                base: None,
                config: ImageConfig::scratch(),
                diff_ids: Vec::new(),
                layers: Vec::new(),
                key: sha(&["scratch", &self.who.tenant]),
                args: BTreeMap::new(),
                last_created: None,
            }
        } else if let Some(d) = stage_ref(df, &base, i, true) {
            let mut st = lock(&self.done).get(&d).cloned().ok_or_else(|| {
                BuildFailure::from(Error::Invalid(format!("stage {base} was not built")))
            })?;
            st.args = BTreeMap::new();
            st
        } else {
            let rec = self.image(&base).map_err(BuildFailure::from)?;
            let bytes = self
                .engine
                .images
                .read_blob(&rec.id)
                .map_err(|e| BuildFailure::from(Error::from(e)))?;
            let config = ImageConfig::parse(&bytes).ok_or_else(|| {
                BuildFailure::from(Error::Invalid(format!(
                    "the config of image {base} cannot be read"
                )))
            })?;
            State {
                key: sha(&["from", &rec.id, &self.who.tenant]),
                diff_ids: rec.diff_ids.clone(),
                base: Some(rec),
                config,
                layers: Vec::new(),
                args: BTreeMap::new(),
                last_created: None,
            }
        };
        if !(target && s.instructions.is_empty()) {
            // The base image's ID, as the classic builder shows it (a stage's or scratch's
            // state by its key).
            let shown = match (&st.base, st.layers.is_empty()) {
                (Some(b), true) => b.id.trim_start_matches("sha256:").to_string(),
                _ => st.key.clone(),
            };
            self.say(format!(" ---> {}\n", short(&shown)));
        }
        // The base image's ONBUILD triggers run first.
        let triggers = st.config.onbuild();
        if !triggers.is_empty() {
            st.config.config().remove("OnBuild");
            for t in triggers {
                self.say("# Executing 1 build trigger\n");
                let parsed = berth_dockerfile::parse(&format!("FROM scratch\n{t}\n"))
                    .map_err(|e| BuildFailure::from(Error::Invalid(e.to_string())))?;
                if let Some(ins) = parsed.stages.first().and_then(|s| s.instructions.first()) {
                    self.instruction(df, i, &mut st, ins, meta)?;
                }
            }
        }
        for ins in &s.instructions {
            let n = self.step.fetch_add(1, Ordering::Relaxed) + 1;
            self.say(format!("Step {n}/{} : {}\n", self.steps, ins.original));
            self.instruction(df, i, &mut st, ins, meta)?;
            let last = std::ptr::eq(ins, s.instructions.last().expect("in the loop"));
            if !(target && last) {
                self.say(format!(" ---> {}\n", short(&st.key)));
            }
        }
        Ok(st)
    }

    /// The base image `name`: from the store, pulled if missing (or always with `pull`).
    fn image(&self, name: &str) -> Result<ImageRecord> {
        let have = self.engine.images.lookup(name)?;
        if have.is_none() || self.opts.pull {
            let out = self.out.clone();
            let send = move |v: Value| {
                let _ = out.blocking_send(BuildMessage::Raw(v));
            };
            if let Err(e) = (self.puller)(name, &send) {
                if let Some(h) = have {
                    return Ok(h);
                }
                return Err(e);
            }
        }
        self.engine.images.lookup(name)?.ok_or_else(|| {
            Error::NotFound(format!(
                "pull access denied for {name}, repository does not exist or may require 'docker login'"
            ))
        })
    }

    fn instruction(
        &self,
        df: &Dockerfile,
        stage: usize,
        st: &mut State,
        ins: &Instruction,
        meta: &BTreeMap<String, String>,
    ) -> std::result::Result<(), BuildFailure> {
        let line = ins.line;
        let fail = |e: Error| BuildFailure::from(Error::Invalid(at_err(line, e)));
        if self.opts.cancel.load(Ordering::Relaxed) {
            return Err(BuildFailure::from(Error::Conflict(
                "the build was canceled".into(),
            )));
        }
        match &ins.kind {
            Kind::Env(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let v = self
                        .expand(v, &st.args, Some(&st.config), line)
                        .map_err(fail)?;
                    st.config.set_env(k, &v);
                    shown.push(format!("{k}={v}"));
                }
                self.meta_step(st, &format!("ENV {}", shown.join(" ")))
            }
            Kind::Arg(decls) => {
                let mut shown = Vec::new();
                for a in decls {
                    let v = match self.opts.build_args.get(&a.name) {
                        Some(v) => {
                            lock(&self.used_args).insert(a.name.clone());
                            self.arg_value(&a.name, v)
                        }
                        None => match &a.default {
                            Some(d) => Some(
                                self.expand(d, &st.args, Some(&st.config), line)
                                    .map_err(fail)?,
                            ),
                            // A global one redeclared takes the global value.
                            None => meta.get(&a.name).cloned(),
                        },
                    };
                    match &v {
                        Some(v) => shown.push(format!("{}={v}", a.name)),
                        None => shown.push(a.name.clone()),
                    }
                    // Declared without a value: in scope but unset (not in RUN's environment).
                    match v {
                        Some(v) => st.args.insert(a.name.clone(), v),
                        None => st.args.remove(&a.name),
                    };
                }
                self.meta_step(st, &format!("ARG {}", shown.join(" ")))
            }
            Kind::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self
                        .expand(k, &st.args, Some(&st.config), line)
                        .map_err(fail)?;
                    let v = self
                        .expand(v, &st.args, Some(&st.config), line)
                        .map_err(fail)?;
                    st.config.map_insert("Labels", &k, json!(v));
                    shown.push(format!("{k}={v}"));
                }
                self.meta_step(st, &format!("LABEL {}", shown.join(" ")))
            }
            Kind::Maintainer(m) => {
                st.config.top.insert("author".into(), json!(m));
                self.meta_step(st, &format!("MAINTAINER {m}"))
            }
            Kind::Expose(ports) => {
                let mut shown = Vec::new();
                for p in ports {
                    for w in self.expand_words(p, st, line).map_err(fail)? {
                        for port in expose_ports(&w).map_err(fail)? {
                            st.config.map_insert("ExposedPorts", &port, json!({}));
                            shown.push(port);
                        }
                    }
                }
                self.meta_step(st, &format!("EXPOSE {}", shown.join(" ")))
            }
            Kind::Volume(vols) => {
                let mut shown = Vec::new();
                for v in vols {
                    let v = self
                        .expand(v, &st.args, Some(&st.config), line)
                        .map_err(fail)?;
                    if v.trim().is_empty() {
                        return Err(fail(Error::Invalid(
                            "VOLUME specified can not be an empty string".into(),
                        )));
                    }
                    st.config.map_insert("Volumes", &v, json!({}));
                    shown.push(v);
                }
                self.meta_step(st, &format!("VOLUME [{}]", shown.join(" ")))
            }
            Kind::User(u) => {
                let u = self
                    .expand(u, &st.args, Some(&st.config), line)
                    .map_err(fail)?;
                st.config.set("User", json!(u));
                self.meta_step(st, &format!("USER {u}"))
            }
            Kind::Stopsignal(s) => {
                let s = self
                    .expand(s, &st.args, Some(&st.config), line)
                    .map_err(fail)?;
                crate::containers::parse_signal(&s).map_err(fail)?;
                st.config.set("StopSignal", json!(s));
                self.meta_step(st, &format!("STOPSIGNAL {s}"))
            }
            Kind::Shell(sh) => {
                st.config.set("Shell", json!(sh));
                self.meta_step(st, &format!("SHELL {}", json!(sh)))
            }
            Kind::Cmd(c) => {
                let argv = self.argv(st, c);
                st.config.set("Cmd", json!(argv));
                self.meta_step(st, &format!("CMD {}", json!(argv)))
            }
            Kind::Entrypoint(c) => {
                let argv = self.argv(st, c);
                st.config.set("Entrypoint", json!(argv));
                // An ENTRYPOINT clears the CMD inherited from the base (not one set here).
                if !self.stage_set_cmd(df, stage, ins) {
                    st.config.set("Cmd", Value::Null);
                }
                self.meta_step(st, &format!("ENTRYPOINT {}", json!(argv)))
            }
            Kind::Healthcheck(h) => {
                let v = healthcheck_json(h);
                st.config.set("Healthcheck", v.clone());
                self.meta_step(
                    st,
                    &format!(
                        "HEALTHCHECK {}",
                        ins.original
                            .split_once(' ')
                            .map(|x| x.1)
                            .unwrap_or_default()
                    ),
                )
            }
            Kind::Onbuild(inner) => {
                let text = inner.original.clone();
                let mut list = st.config.onbuild();
                list.push(text.clone());
                st.config.set("OnBuild", json!(list));
                self.meta_step(st, &format!("ONBUILD {text}"))
            }
            Kind::Workdir(w) => {
                let w = self
                    .expand(w, &st.args, Some(&st.config), line)
                    .map_err(fail)?;
                let abs = if w.starts_with('/') {
                    w.clone()
                } else {
                    let cur = st.config.str_field("WorkingDir");
                    format!("{}/{w}", if cur.is_empty() { "/".into() } else { cur })
                };
                let abs = format!("/{}", context::clean_rel(&abs));
                st.config.set("WorkingDir", json!(abs));
                let created_by = format!("WORKDIR {abs}");
                let key = sha(&[&st.key, &created_by]);
                let abs2 = abs.clone();
                self.root_step(st, key, created_by, move |_b, root| {
                    mkdir_in_root(root, &abs2, None).map(|_| ())
                })
            }
            Kind::Copy(c) | Kind::Add(c) => {
                let add = matches!(ins.kind, Kind::Add(_));
                self.copy_step(df, stage, st, ins, c, add)
            }
            Kind::Run {
                cmd,
                heredocs,
                mounts,
                network,
                security,
            } => {
                if security.as_deref() == Some("insecure") {
                    return Err(fail(Error::Forbidden(
                        "RUN --security=insecure is not allowed".into(),
                    )));
                }
                self.run_step(
                    df,
                    stage,
                    st,
                    ins,
                    cmd,
                    heredocs,
                    mounts,
                    network.as_deref(),
                )
            }
        }
    }

    /// Whether the stage sets CMD itself after… anywhere (Docker: an ENTRYPOINT resets only
    /// an inherited CMD).
    fn stage_set_cmd(&self, df: &Dockerfile, stage: usize, upto: &Instruction) -> bool {
        df.stages[stage]
            .instructions
            .iter()
            .take_while(|i| !std::ptr::eq(*i, upto))
            .any(|i| matches!(i.kind, Kind::Cmd(_)))
    }

    /// A shell or exec form as argv (shell form through the config's SHELL).
    fn argv(&self, st: &State, c: &ShellOrExec) -> Vec<String> {
        match c {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(s) => {
                let mut v = st.config.shell();
                v.push(s.clone());
                v
            }
        }
    }

    /// A step that changes the config only.
    fn meta_step(&self, st: &mut State, created_by: &str) -> std::result::Result<(), BuildFailure> {
        let key = sha(&[&st.key, created_by]);
        let entry = match self.cached(&key) {
            Some(e) => {
                self.say(" ---> Using cache\n");
                e
            }
            None => self
                .engine
                .images
                .record_step(
                    &key,
                    None,
                    &[],
                    CacheEntry {
                        layer: None,
                        created: now(),
                        created_by: created_by.to_string(),
                        comment: None,
                        description: created_by.to_string(),
                        last_used: String::new(),
                        usage_count: 0,
                    },
                )
                .map_err(|e| BuildFailure::from(Error::Internal(e.to_string())))?,
        };
        self.apply(st, key, &entry);
        Ok(())
    }

    /// The cache entry of `key`, unless the build is not to use the cache.
    fn cached(&self, key: &str) -> Option<CacheEntry> {
        if self.opts.no_cache {
            return None;
        }
        let e = self.engine.images.cache_get(key).ok().flatten()?;
        lock(&self.hits).push(key.to_string());
        Some(e)
    }

    /// Take a step's result into the state.
    fn apply(&self, st: &mut State, key: String, e: &CacheEntry) {
        let mut h = json!({"created": e.created, "created_by": e.created_by});
        if let Some(c) = &e.comment {
            h["comment"] = json!(c);
        }
        match &e.layer {
            Some(l) => {
                st.diff_ids.push(l.diff_id.clone());
                st.layers.push(l.clone());
            }
            None => h["empty_layer"] = json!(true),
        }
        st.config.push_history(h);
        // The step's key beside its history entry and layer: what `--cache-from` this image
        // reads back (BuildKit's inline cache, berth's way).
        let entry = json!({
            "key": key,
            "history": st.config.history_count().saturating_sub(1),
            "layer": e.layer.as_ref().map(|_| st.diff_ids.len() - 1),
        });
        st.config.push_top_list(CACHE_FIELD, entry);
        st.last_created = Some(e.created.clone());
        st.key = key;
    }

    /// `--cache-from`: the step keys images built by berth carry, taken into the build cache
    /// (with the images' layers and history times) where it lacks them.
    fn import_cache(&self) {
        for name in &self.opts.cache_from {
            let Ok(Some(rec)) = self.engine.images.lookup(name) else {
                self.say(format!("[Warning] cache source {name} not found\n"));
                continue;
            };
            let Ok(bytes) = self.engine.images.read_blob(&rec.id) else {
                continue;
            };
            let Ok(layers) = self.engine.images.image_layers(&rec) else {
                continue;
            };
            let cfg: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let history = cfg["history"].as_array().cloned().unwrap_or_default();
            for e in cfg[CACHE_FIELD].as_array().into_iter().flatten() {
                let Some(key) = e["key"].as_str() else {
                    continue;
                };
                let Some(h) = e["history"].as_u64().and_then(|i| history.get(i as usize)) else {
                    continue;
                };
                let layer = match e["layer"].as_u64() {
                    Some(j) => match layers.get(j as usize) {
                        Some(l) => Some(l.clone()),
                        None => continue,
                    },
                    None => None,
                };
                if self.engine.images.cache_get(key).ok().flatten().is_some() {
                    continue;
                }
                let created_by = h["created_by"].as_str().unwrap_or_default().to_string();
                let _ = self.engine.images.record_step(
                    key,
                    None,
                    &[],
                    CacheEntry {
                        layer,
                        created: h["created"].as_str().unwrap_or_default().to_string(),
                        description: created_by.clone(),
                        created_by,
                        comment: h["comment"].as_str().map(str::to_string),
                        last_used: String::new(),
                        usage_count: 0,
                    },
                );
            }
        }
    }

    /// A step done in a root filesystem of the state: `work` changes it; the changes become
    /// the step's layer. From the cache when there.
    fn root_step(
        &self,
        st: &mut State,
        key: String,
        created_by: String,
        work: impl FnOnce(&Self, &Path) -> Result<()>,
    ) -> std::result::Result<(), BuildFailure> {
        if let Some(e) = self.cached(&key) {
            self.say(" ---> Using cache\n");
            self.apply(st, key, &e);
            return Ok(());
        }
        let root = self.state_root(st).map_err(BuildFailure::from)?;
        let res = work(self, &root.merged()).and_then(|_| {
            self.engine
                .images
                .record_step(
                    &key,
                    Some(&root),
                    &[],
                    CacheEntry {
                        layer: None,
                        created: now(),
                        created_by: created_by.clone(),
                        comment: None,
                        description: created_by.clone(),
                        last_used: String::new(),
                        usage_count: 0,
                    },
                )
                .map_err(|e| Error::Internal(e.to_string()))
        });
        let _ = self.engine.images.remove_root(&root.id, true);
        let e = res.map_err(BuildFailure::from)?;
        self.apply(st, key, &e);
        Ok(())
    }

    /// A root filesystem of the state, for one step.
    fn state_root(&self, st: &State) -> Result<berth_image::rootfs::Rootfs> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = st.config.to_bytes(&st.diff_ids, None);
        let rec = self.engine.images.state_record(&bytes, &st.diff_ids)?;
        let dir = self.dir.join(format!("root-{n}"));
        let id = format!("build:{}:{n}", &self.id[..16]);
        Ok(self.engine.images.create_root(
            &rec,
            &id,
            &format!("build {}", &self.id[..12]),
            &dir,
            &dir.join("merged"),
            berth_image::rootfs::RootfsKind::Overlay,
        )?)
    }

    /// The files of `from` (a stage's name or index, or an image) as a copy source.
    fn tree_of(&self, df: &Dockerfile, stage: usize, from: &str) -> Result<PathBuf> {
        if let Some(p) = lock(&self.trees).get(from) {
            return Ok(p.clone());
        }
        let st = match stage_ref(df, from, stage, false) {
            Some(d) => lock(&self.done)
                .get(&d)
                .cloned()
                .ok_or_else(|| Error::Invalid(format!("stage {from} was not built")))?,
            None => {
                let rec = self.image(from)?;
                State {
                    key: String::new(),
                    diff_ids: rec.diff_ids.clone(),
                    base: Some(rec),
                    config: ImageConfig::scratch(),
                    layers: Vec::new(),
                    args: BTreeMap::new(),
                    last_created: None,
                }
            }
        };
        let root = self.state_root(&st)?;
        lock(&self.roots).push(root.id.clone());
        let p = root.merged();
        lock(&self.trees).insert(from.to_string(), p.clone());
        Ok(p)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &self,
        df: &Dockerfile,
        stage: usize,
        st: &mut State,
        ins: &Instruction,
        c: &berth_dockerfile::CopyArgs,
        add: bool,
    ) -> std::result::Result<(), BuildFailure> {
        let line = ins.line;
        let fail = |e: Error| BuildFailure::from(Error::Invalid(at_err(line, e)));
        let verb = if add { "ADD" } else { "COPY" };
        let from = match &c.from {
            Some(f) => Some(
                self.expand(f, &st.args, Some(&st.config), line)
                    .map_err(fail)?,
            ),
            None => None,
        };
        let tree = match &from {
            Some(f) => Some(
                Source::tree(
                    &self.tree_of(df, stage, f).map_err(fail)?,
                    format!("stage {f}"),
                )
                .map_err(fail)?,
            ),
            None => None,
        };
        let source: &Source = tree.as_ref().unwrap_or(&self.context);
        let dest_raw = self
            .expand(&c.dest, &st.args, Some(&st.config), line)
            .map_err(fail)?;
        let workdir = st.config.str_field("WorkingDir");
        let dest_abs = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!(
                "{}/{dest_raw}",
                if workdir.is_empty() { "/" } else { &workdir }
            )
        };
        let dest_dir_form = dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == ".";
        // Heredocs: files written as given.
        let mut heredoc_files = Vec::new();
        for h in &c.heredocs {
            let content = if h.expand {
                // Variables only: quotes and backslashes are the file's.
                let esc = self.escape.to_string();
                let guarded = h
                    .body()
                    .replace(self.escape, &format!("{esc}{esc}"))
                    .replace('"', &format!("{esc}\""))
                    .replace('\'', &format!("{esc}'"));
                self.expand(&guarded, &st.args, Some(&st.config), line)
                    .unwrap_or_else(|_| h.body())
            } else {
                h.body()
            };
            heredoc_files.push((h.name.clone(), content));
        }
        // URLs (ADD) are downloaded first, each into a directory of its own.
        let mut url_sources: Vec<Source> = Vec::new();
        let mut picked: Vec<(Option<usize>, context::Picked)> = Vec::new();
        for s in &c.sources {
            let s = self
                .expand(s, &st.args, Some(&st.config), line)
                .map_err(fail)?;
            if add && (s.starts_with("git@") || s.ends_with(".git")) {
                return Err(fail(Error::NotImplemented(format!(
                    "ADD of a git repository ({s}) is not supported by berth"
                ))));
            }
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
                let dir = self.dir.join(format!("url-{n}"));
                let name = download(&s, &dir, c.checksum.as_deref()).map_err(fail)?;
                url_sources.push(Source::tree(&dir, format!("URL {s}")).map_err(fail)?);
                picked.push((
                    Some(url_sources.len() - 1),
                    context::Picked {
                        rel: name,
                        dir: false,
                    },
                ));
                continue;
            }
            if !add && c.checksum.is_some() {
                return Err(fail(Error::Invalid("COPY does not take --checksum".into())));
            }
            for p in source
                .pick(&s)
                .map_err(|e| fail(Error::Invalid(format!("{verb} failed: {e}"))))?
            {
                picked.push((None, p));
            }
        }
        let many = picked.len() + heredoc_files.len() > 1;
        if many && !dest_dir_form {
            return Err(fail(Error::Invalid(format!(
                "When using {verb} with more than one source file, the destination must be a directory and end with a /"
            ))));
        }
        let exclude = (!c.exclude.is_empty()).then(|| {
            let pats: Vec<String> = c
                .exclude
                .iter()
                .map(|x| {
                    self.expand(x, &st.args, Some(&st.config), line)
                        .unwrap_or_else(|_| x.clone())
                })
                .collect();
            berth_dockerfile::Ignore::from_patterns(&pats)
        });
        // ADD of a local archive unpacks it (one from a URL is copied as it is).
        let mut archives = Vec::new();
        let mut plan: Vec<Planned<'_>> = Vec::new();
        for (from_url, p) in picked {
            let src: &Source = match from_url {
                Some(i) => &url_sources[i],
                None => source,
            };
            if add && from_url.is_none() && !p.dir && is_archive(source, &p.rel) {
                archives.push(p);
                continue;
            }
            let base = p.rel.rsplit('/').next().unwrap_or_default().to_string();
            let name = if c.parents && from_url.is_none() {
                p.rel.clone()
            } else if p.dir {
                String::new()
            } else {
                base
            };
            plan.push(Planned {
                source: src,
                name,
                picked: p,
                exclude: exclude.as_ref(),
            });
        }
        // The key: the files' content, where they go, how they are owned.
        let mut h = Sha256::new();
        h.update(st.key.as_bytes());
        h.update(verb.as_bytes());
        h.update(dest_abs.as_bytes());
        h.update([dest_dir_form as u8]);
        h.update(
            format!(
                "{:?}|{:?}|{:?}|{}|{:?}",
                c.chown, c.chmod, from, c.parents, c.exclude
            )
            .as_bytes(),
        );
        context::hash(&plan, &mut h).map_err(fail)?;
        for a in &archives {
            h.update(b"\0archive\0");
            context::hash(
                &[Planned {
                    source,
                    picked: a.clone(),
                    name: String::new(),
                    exclude: None,
                }],
                &mut h,
            )
            .map_err(fail)?;
        }
        for (n, content) in &heredoc_files {
            h.update(n.as_bytes());
            h.update(content.as_bytes());
        }
        let key = format!("{:x}", h.finalize());
        let srcs: Vec<String> = c
            .sources
            .iter()
            .cloned()
            .chain(c.heredocs.iter().map(|h| format!("<<{}", h.name)))
            .collect();
        let created_by = format!("{verb} {} {} # buildkit", srcs.join(" "), c.dest);
        let chown = match &c.chown {
            Some(u) => Some(
                self.expand(u, &st.args, Some(&st.config), line)
                    .map_err(fail)?,
            ),
            None => None,
        };
        let mode = match &c.chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .map_err(|_| fail(Error::Invalid(format!("invalid chmod parameter: {m}"))))?,
            ),
            None => None,
        };
        let dest_abs2 = dest_abs.clone();
        let res = self.root_step(st, key, created_by, move |b, root| {
            let owner = match &chown {
                Some(u) => Some(lookup_owner(root, u)?),
                None => None,
            };
            let attrs = Attrs { owner, mode };
            // Where the files go: a directory (made as needed), or a file's path.
            let single_file = !many
                && !dest_dir_form
                && !c.parents
                && plan.len() == 1
                && !plan[0].picked.dir
                && archives.is_empty();
            let exists_dir = is_dir_in_root(root, &dest_abs2);
            let (dir, rename) = if single_file && !exists_dir {
                let (parent, name) = match dest_abs2.trim_end_matches('/').rsplit_once('/') {
                    Some((p, n)) => (
                        if p.is_empty() {
                            "/".to_string()
                        } else {
                            p.to_string()
                        },
                        n.to_string(),
                    ),
                    None => ("/".into(), dest_abs2.clone()),
                };
                (parent, Some(name))
            } else {
                (dest_abs2.clone(), None)
            };
            let dfd = mkdir_in_root(root, &dir, owner)?;
            let mut plan = plan;
            if let Some(n) = rename {
                plan[0].name = n;
            }
            let mut spool = context::spool(&b.dir)?;
            context::write_tar(&plan, attrs, &mut spool)?;
            unpack_into(&spool, &dfd)?;
            for (name, content) in &heredoc_files {
                let mut h = tar::Header::new_gnu();
                h.set_size(content.len() as u64);
                h.set_mode(mode.unwrap_or(0o644));
                let (u, g) = owner.unwrap_or((0, 0));
                h.set_uid(u as u64);
                h.set_gid(g as u64);
                h.set_mtime(0);
                let mut spool = context::spool(&b.dir)?;
                {
                    let mut t = tar::Builder::new(&mut spool);
                    let target = if single_heredoc_file(dest_dir_form, many) {
                        dest_abs2.rsplit('/').next().unwrap_or(name).to_string()
                    } else {
                        name.clone()
                    };
                    t.append_data(&mut h, target, content.as_bytes())
                        .map_err(|e| Error::internal("writing a heredoc", e))?;
                    t.finish()
                        .map_err(|e| Error::internal("writing a heredoc", e))?;
                }
                let hdir = if single_heredoc_file(dest_dir_form, many) {
                    dest_abs2
                        .rsplit_once('/')
                        .map(|(p, _)| {
                            if p.is_empty() {
                                "/".to_string()
                            } else {
                                p.to_string()
                            }
                        })
                        .unwrap_or_else(|| "/".into())
                } else {
                    dest_abs2.clone()
                };
                let hfd = mkdir_in_root(root, &hdir, owner)?;
                unpack_into(&spool, &hfd)?;
            }
            for a in &archives {
                let f = source
                    .open_read(&a.rel)
                    .map_err(|e| Error::Invalid(format!("reading {}: {e}", a.rel)))?;
                unpack_archive(f, &dfd)?;
            }
            Ok(())
        });
        res.map_err(|e| BuildFailure {
            message: at(line, &e.message),
            code: e.code,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        df: &Dockerfile,
        stage: usize,
        st: &mut State,
        ins: &Instruction,
        cmd: &ShellOrExec,
        heredocs: &[berth_dockerfile::Heredoc],
        mounts: &[berth_dockerfile::Mount],
        network: Option<&str>,
    ) -> std::result::Result<(), BuildFailure> {
        let line = ins.line;
        // A heredoc alone with a `#!` line is a script run by its interpreter (mounted at
        // /dev/pipes/NAME, as BuildKit does); alone without one, the shell's script.
        let mut script_file: Option<(String, String)> = None;
        let argv = match cmd {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(s)
                if heredocs.len() == 1
                    && is_bare_heredoc(s)
                    && heredocs[0].body().starts_with("#!") =>
            {
                let name = heredocs[0].name.clone();
                script_file = Some((name.clone(), heredocs[0].body()));
                vec![format!("/dev/pipes/{name}")]
            }
            ShellOrExec::Shell(s) => {
                let mut v = st.config.shell();
                let script = if heredocs.len() == 1 && is_bare_heredoc(s) {
                    heredocs[0].body()
                } else if heredocs.is_empty() {
                    s.clone()
                } else {
                    let mut t = s.clone();
                    for h in heredocs {
                        t.push('\n');
                        t.push_str(&h.content);
                        if !h.content.ends_with('\n') {
                            t.push('\n');
                        }
                        t.push_str(&h.name);
                    }
                    t
                };
                v.push(script);
                v
            }
        };
        // Build args in scope reach the command as environment (not kept in the image).
        let env_names: Vec<String> = st.config.env().into_iter().map(|(k, _)| k).collect();
        let args_env: Vec<(String, String)> = st
            .args
            .iter()
            .filter(|(k, _)| !env_names.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let proxy_env: Vec<(String, String)> = self
            .opts
            .build_args
            .iter()
            .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.clone(), self.arg_value(k, v)?)))
            .collect();
        let shown_args: Vec<String> = args_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let shown = match (cmd, &script_file) {
            (_, Some((name, body))) => format!("<<{name}\n{body}{name}"),
            (ShellOrExec::Exec(v), _) => format!("{}", json!(v)),
            (ShellOrExec::Shell(_), _) => argv.join(" "),
        };
        let created_by = if shown_args.is_empty() {
            format!("RUN {shown} # buildkit")
        } else {
            format!(
                "RUN |{} {} {shown} # buildkit",
                shown_args.len(),
                shown_args.join(" ")
            )
        };
        let net = network
            .map(str::to_string)
            .or_else(|| self.opts.network_mode.clone())
            .filter(|n| !n.is_empty());
        // What bind mounts show the command is part of the key: the files of the context,
        // the state of a stage, the image.
        let mut bound = Vec::new();
        for m in mounts
            .iter()
            .filter(|m| m.kind == berth_dockerfile::MountKind::Bind)
        {
            let what = match &m.from {
                Some(f) => {
                    self.tree_of(df, stage, f)
                        .map_err(|e| BuildFailure::from(Error::Invalid(at_err(line, e))))?;
                    match stage_ref(df, f, stage, false) {
                        Some(d) => lock(&self.done).get(&d).map(|s| s.key.clone()),
                        None => self.engine.images.lookup(f).ok().flatten().map(|r| r.id),
                    }
                    .unwrap_or_default()
                }
                None => {
                    let src = m.source.clone().unwrap_or_default();
                    let picked = self
                        .context
                        .pick(if src.is_empty() { "." } else { &src })
                        .map_err(|e| BuildFailure::from(Error::Invalid(at_err(line, e))))?;
                    let plan: Vec<Planned<'_>> = picked
                        .into_iter()
                        .map(|p| Planned {
                            source: &self.context,
                            picked: p,
                            name: String::new(),
                            exclude: None,
                        })
                        .collect();
                    let mut h = Sha256::new();
                    context::hash(&plan, &mut h)
                        .map_err(|e| BuildFailure::from(Error::Invalid(at_err(line, e))))?;
                    format!("{:x}", h.finalize())
                }
            };
            bound.push(what);
        }
        let key = sha(&[
            &st.key,
            &created_by,
            &format!(
                "{net:?}|{:?}|{bound:?}",
                mounts.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>()
            ),
        ]);
        if let Some(e) = self.cached(&key) {
            self.say(" ---> Using cache\n");
            self.apply(st, key, &e);
            return Ok(());
        }
        let mut env: Vec<String> = args_env
            .iter()
            .chain(proxy_env.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.dedup();
        let mut extra_binds = Vec::new();
        if let Some((name, body)) = &script_file {
            use std::os::unix::fs::PermissionsExt;
            let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            let file = self.dir.join(format!("heredoc-{n}"));
            crate::containers::write_private(&file, body.as_bytes()).map_err(BuildFailure::from)?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| BuildFailure::from(Error::internal("writing a heredoc", e)))?;
            if name.contains('/') || name.contains(':') {
                return Err(BuildFailure::from(Error::Invalid(at(
                    line,
                    &format!("invalid heredoc name {name:?}"),
                ))));
            }
            extra_binds.push(format!("{}:/dev/pipes/{name}:ro", file.display()));
        }
        let entry = self.run_container(
            st,
            argv,
            env,
            net,
            mounts,
            extra_binds,
            &key,
            &created_by,
            line,
        )?;
        self.apply(st, key, &entry);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_container(
        &self,
        st: &State,
        argv: Vec<String>,
        env: Vec<String>,
        network: Option<String>,
        mounts: &[berth_dockerfile::Mount],
        extra_binds: Vec<String>,
        key: &str,
        created_by: &str,
        line: usize,
    ) -> std::result::Result<CacheEntry, BuildFailure> {
        let engine = self.engine.clone();
        let bytes = st.config.to_bytes(&st.diff_ids, None);
        let rec = engine
            .images
            .state_record(&bytes, &st.diff_ids)
            .map_err(|e| BuildFailure::from(Error::from(e)))?;
        let mut binds: Vec<String> = extra_binds;
        let mut tmpfs = HashMap::new();
        for m in mounts {
            self.mount_for(m, &mut binds, &mut tmpfs)
                .map_err(|e| BuildFailure::from(Error::Invalid(at_err(line, e))))?;
        }
        // Empty files made to mount over are not the step's work: /etc/hosts and kin, and
        // the targets of file mounts (secrets).
        let mount_points: Vec<String> = MOUNT_POINTS
            .iter()
            .map(|p| p.to_string())
            .chain(
                binds
                    .iter()
                    .filter_map(|b| b.split(':').nth(1).map(str::to_string)),
            )
            .collect();
        let config = bollard_stubs::models::ContainerConfig {
            image: Some(rec.id.clone()),
            cmd: Some(argv.clone()),
            entrypoint: Some(vec![String::new()]),
            env: Some(env),
            working_dir: Some(st.config.str_field("WorkingDir")).filter(|w| !w.is_empty()),
            user: Some(st.config.str_field("User")).filter(|u| !u.is_empty()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            labels: Some([("berth.build".to_string(), self.id[..16].to_string())].into()),
            ..Default::default()
        };
        let host_config = bollard_stubs::models::HostConfig {
            network_mode: network.clone(),
            extra_hosts: Some(self.opts.extra_hosts.clone()).filter(|h| !h.is_empty()),
            log_config: Some(bollard_stubs::models::HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            binds: Some(binds).filter(|b| !b.is_empty()),
            tmpfs: Some(tmpfs).filter(|t| !t.is_empty()),
            ..self.opts.resources.clone()
        };
        let req = CreateRequest {
            name: None,
            config,
            host_config,
            endpoints: Default::default(),
        };
        let (id, _) = engine
            .create_from(self.who, req, Some(&rec))
            .map_err(BuildFailure::from)?;
        self.say(format!(" ---> Running in {}\n", &id[..12]));
        let who = self.who.clone();
        let out = self.out.clone();
        let quiet = self.opts.quiet;
        let run = engine.rt.block_on({
            let engine = engine.clone();
            let id = id.clone();
            let cancel = self.opts.cancel.clone();
            async move {
                let attach = engine.attach(&who, &id, false, true, true)?;
                let waiter = engine.waiter(&who, &id, WaitCondition::NextExit)?;
                let pump = tokio::spawn(async move {
                    if let Ok(s) = attach.fut.await {
                        pump_frames(s.stream, s.tty, &out, quiet).await;
                    }
                });
                engine.start(&who, &id).await?;
                // The client gone (Ctrl-C on `docker build`): the step is stopped (the
                // container is removed below, which kills it).
                let canceled = async {
                    while !cancel.load(Ordering::Relaxed) {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                };
                let r = tokio::select! {
                    r = waiter => Ok::<(i64, Option<String>), Error>(r),
                    _ = canceled => Err(Error::Conflict("the build was canceled".into())),
                };
                if r.is_ok() {
                    let _ = pump.await;
                }
                r
            }
        });
        let result = match run {
            Ok((0, _)) => {
                let root = engine.images.open_root(&root_id(&id));
                root.map_err(|e| Error::Internal(e.to_string()))
                    .and_then(|root| {
                        engine
                            .images
                            .record_step(
                                key,
                                Some(&root),
                                &mount_points.iter().map(String::as_str).collect::<Vec<_>>(),
                                CacheEntry {
                                    layer: None,
                                    created: now(),
                                    created_by: created_by.to_string(),
                                    comment: None,
                                    description: created_by.to_string(),
                                    last_used: String::new(),
                                    usage_count: 0,
                                },
                            )
                            .map_err(|e| Error::Internal(e.to_string()))
                    })
                    .map_err(BuildFailure::from)
            }
            Ok((code, _)) => {
                let shown = match argv.len() {
                    0 => String::new(),
                    _ => argv.join(" "),
                };
                Err(BuildFailure {
                    message: format!("The command '{shown}' returned a non-zero code: {code}"),
                    code: Some(code),
                })
            }
            Err(e) => Err(BuildFailure::from(e)),
        };
        let who = self.who.clone();
        let _ = engine.rt.block_on(engine.remove(&who, &id, true, true));
        self.say(format!("Removing intermediate container {}\n", &id[..12]));
        result
    }

    /// A RUN --mount as the container's bind or tmpfs.
    fn mount_for(
        &self,
        m: &berth_dockerfile::Mount,
        binds: &mut Vec<String>,
        tmpfs: &mut HashMap<String, String>,
    ) -> Result<()> {
        use berth_dockerfile::MountKind;
        let target = m.target.clone().unwrap_or_default();
        match m.kind {
            MountKind::Tmpfs => {
                if target.is_empty() {
                    return Err(Error::Invalid("tmpfs mount needs a target".into()));
                }
                let opts = m.size.map(|s| format!("size={s}")).unwrap_or_default();
                tmpfs.insert(target, opts);
            }
            MountKind::Cache => {
                if target.is_empty() {
                    return Err(Error::Invalid("cache mount needs a target".into()));
                }
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let parent = self.engine.paths.data_root.join("build-cache-mounts");
                crate::private_dir(&parent)?;
                let dir = parent.join(sha(&[&self.who.tenant, &id]));
                match std::fs::create_dir(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::internal("making a cache mount", e));
                    }
                    _ => {}
                }
                if let (Some(u), Some(g)) = (m.uid, m.gid) {
                    let _ = std::os::unix::fs::chown(&dir, Some(u), Some(g));
                }
                if let Some(mode) = m.mode {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
                }
                binds.push(format!("{}:{target}:rw", dir.display()));
            }
            MountKind::Bind => {
                let src = m.source.clone().unwrap_or_default();
                let base = match &m.from {
                    Some(f) => lock(&self.trees).get(f).cloned().ok_or_else(|| {
                        Error::Invalid(format!("RUN --mount from={f}: no such stage or image"))
                    })?,
                    None => self.context_dir.clone(),
                };
                if context::escapes(&src) {
                    return Err(Error::Invalid(format!(
                        "forbidden path outside the build context: {src}"
                    )));
                }
                let host = base.join(context::clean_rel(&src));
                let target = if target.is_empty() {
                    "/".into()
                } else {
                    target
                };
                let ro = if m.readonly { "ro" } else { "rw" };
                binds.push(format!("{}:{target}:{ro}", host.display()));
            }
            MountKind::Secret => {
                let id =
                    m.id.clone()
                        .or_else(|| {
                            m.target
                                .as_deref()
                                .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
                        })
                        .unwrap_or_default();
                let Some(content) = self.opts.secrets.get(&id) else {
                    if m.required {
                        return Err(Error::Invalid(format!("secret {id} not found")));
                    }
                    return Ok(());
                };
                let file = self.dir.join(format!("secret-{}", sha(&[&id])));
                crate::containers::write_private(&file, content)?;
                let target = if target.is_empty() {
                    format!("/run/secrets/{id}")
                } else {
                    target
                };
                binds.push(format!("{}:{target}:ro", file.display()));
            }
            MountKind::Ssh => {
                return Err(Error::NotImplemented(
                    "RUN --mount=type=ssh is not supported by berth".into(),
                ));
            }
        }
        Ok(())
    }

    fn cleanup(&mut self) {
        for id in lock(&self.roots).drain(..) {
            let _ = self.engine.images.remove_root(&id, true);
        }
    }
}

/// A lock, even if a stage's thread panicked holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn single_heredoc_file(dest_dir_form: bool, many: bool) -> bool {
    !dest_dir_form && !many
}

/// Whether a shell-form RUN is only heredoc markers (`<<EOF`): the heredoc is the script.
fn is_bare_heredoc(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("<<") && !t.contains(char::is_whitespace)
}

/// Send a container's output frames (or raw TTY output) as stream messages.
async fn pump_frames(
    mut s: tokio::net::UnixStream,
    tty: bool,
    out: &Sender<BuildMessage>,
    quiet: bool,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tty {
            if !quiet {
                let _ = out
                    .send(BuildMessage::Stream(
                        String::from_utf8_lossy(&chunk[..n]).into_owned(),
                    ))
                    .await;
            }
            continue;
        }
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 8 {
            let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
            if buf.len() < 8 + len {
                break;
            }
            let payload: Vec<u8> = buf[8..8 + len].to_vec();
            buf.drain(..8 + len);
            if !quiet {
                let _ = out
                    .send(BuildMessage::Stream(
                        String::from_utf8_lossy(&payload).into_owned(),
                    ))
                    .await;
            }
        }
    }
}

/// A stage a name refers to: by name or index, only one before `me` for FROM (BuildKit
/// lets COPY --from name any other stage; a cycle is refused by the planner).
fn stage_ref(df: &Dockerfile, name: &str, me: usize, from_line: bool) -> Option<usize> {
    let lower = name.to_lowercase();
    if let Some(i) = df
        .stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        if from_line && i >= me && i != me {
            return Some(i); // a later stage: the planner finds the cycle, if any
        }
        return Some(i);
    }
    if let Ok(i) = name.parse::<usize>()
        && i < df.stages.len()
    {
        return Some(i);
    }
    None
}

fn short(key: &str) -> &str {
    &key[..12.min(key.len())]
}

fn at(line: usize, msg: &str) -> String {
    if line == 0 || msg.starts_with("Dockerfile:") || msg.contains("line ") {
        msg.to_string()
    } else {
        format!("Dockerfile:{line}: {msg}")
    }
}

fn at_err(line: usize, e: Error) -> String {
    at(line, &e.to_string())
}

/// EXPOSE's words as `port/proto` keys (ranges expanded as Docker does).
fn expose_ports(w: &str) -> Result<Vec<String>> {
    let (ports, proto) = match w.split_once('/') {
        Some((p, proto)) => (p, proto.to_lowercase()),
        None => (w, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::Invalid(format!("invalid proto: {proto}")));
    }
    let bad = || Error::Invalid(format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn healthcheck_json(h: &berth_dockerfile::Healthcheck) -> Value {
    match h {
        berth_dockerfile::Healthcheck::None => json!({"Test": ["NONE"]}),
        berth_dockerfile::Healthcheck::Check {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let mut v = json!({"Test": test});
            let ns = |d: &std::time::Duration| d.as_nanos() as u64;
            if let Some(d) = interval {
                v["Interval"] = json!(ns(d));
            }
            if let Some(d) = timeout {
                v["Timeout"] = json!(ns(d));
            }
            if let Some(d) = start_period {
                v["StartPeriod"] = json!(ns(d));
            }
            if let Some(d) = start_interval {
                v["StartInterval"] = json!(ns(d));
            }
            if let Some(r) = retries {
                v["Retries"] = json!(r);
            }
            v
        }
    }
}

/// Whether a picked file looks like a tar archive (plain, gzip or zstd), which ADD unpacks.
fn is_archive(source: &Source, rel: &str) -> bool {
    use std::io::Read;
    let Ok(f) = source.open_read(rel) else {
        return false;
    };
    let mut head = Vec::new();
    if f.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    match berth_layer::Compression::detect(&head) {
        berth_layer::Compression::Gzip | berth_layer::Compression::Zstd => true,
        berth_layer::Compression::None => head.len() >= 262 && &head[257..262] == b"ustar",
    }
}

/// Whether `abs` is a directory inside the root at `root` (links followed inside it).
fn is_dir_in_root(root: &Path, abs: &str) -> bool {
    let Ok(r) = rustix::fs::open(
        root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let rel = context::clean_rel(abs);
    let rel = if rel.is_empty() { ".".to_string() } else { rel };
    rustix::fs::openat2(
        &r,
        rel.as_str(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        crate::ops::archive::IN_ROOT,
    )
    .is_ok()
}

/// `mkdir -p` of `abs` inside the root at `root` (links followed inside it); the
/// directories made owned by `owner`. Returns an O_PATH fd of the directory.
fn mkdir_in_root(
    root: &Path,
    abs: &str,
    owner: Option<(u32, u32)>,
) -> Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let r = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::internal("opening the build root", std::io::Error::from(e)))?;
    let rel = context::clean_rel(abs);
    let mut done = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        let next = context::join(&done, comp);
        let open = rustix::fs::openat2(
            &r,
            next.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            crate::ops::archive::IN_ROOT,
        );
        if open.is_err() {
            let parent = rustix::fs::openat2(
                &r,
                if done.is_empty() { "." } else { done.as_str() },
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                crate::ops::archive::IN_ROOT,
            )
            .map_err(|e| Error::Invalid(format!("making /{next}: {}", std::io::Error::from(e))))?;
            match rustix::fs::mkdirat(&parent, comp, Mode::from_raw_mode(0o755)) {
                Ok(()) => {
                    if let Some((u, g)) = owner {
                        let _ = rustix::fs::chownat(
                            &parent,
                            comp,
                            Some(rustix::fs::Uid::from_raw(u)),
                            Some(rustix::fs::Gid::from_raw(g)),
                            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                        );
                    }
                }
                Err(rustix::io::Errno::EXIST) => {
                    return Err(Error::Invalid(format!(
                        "cannot make directory /{next}: a file is in the way"
                    )));
                }
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "making /{next}: {}",
                        std::io::Error::from(e)
                    )));
                }
            }
        }
        done = next;
    }
    rustix::fs::openat2(
        &r,
        if done.is_empty() { "." } else { done.as_str() },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        crate::ops::archive::IN_ROOT,
    )
    .map_err(|e| Error::Invalid(format!("opening {abs}: {}", std::io::Error::from(e))))
}

/// Unpack the tar in `spool` into the directory `dir` (an O_PATH fd).
fn unpack_into(spool: &File, dir: &std::os::fd::OwnedFd) -> Result<()> {
    use std::io::Seek;
    use std::os::fd::AsRawFd;
    let mut f = spool
        .try_clone()
        .map_err(|e| Error::internal("reading the copy", e))?;
    f.rewind()
        .map_err(|e| Error::internal("reading the copy", e))?;
    let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    berth_layer::unpack(
        std::io::BufReader::new(f),
        Path::new(&path),
        berth_layer::Mode::Flatten,
    )
    .map_err(|e| Error::Invalid(e.to_string().replacen("layer entry", "entry", 1)))?;
    Ok(())
}

/// ADD of a local archive: unpacked (plain, gzip or zstd) into the directory `dir`, its
/// entries resolved beneath it.
fn unpack_archive(f: File, dir: &std::os::fd::OwnedFd) -> Result<()> {
    use std::os::fd::AsRawFd;
    let reader = crate::ops::archive::decompressed(f)
        .map_err(|e| Error::Invalid(format!("reading an archive: {e}")))?;
    let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    berth_layer::unpack(reader, Path::new(&path), berth_layer::Mode::Flatten)
        .map_err(|e| Error::Invalid(e.to_string().replacen("layer entry", "archive entry", 1)))?;
    Ok(())
}

/// ADD's download of `url` into `dir` (made here): the file's name (from the URL's path).
/// With `checksum` (`sha256:…`), the content must match it.
fn download(url: &str, dir: &Path, checksum: Option<&str>) -> Result<String> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    const MAX: u64 = 8 << 30;
    std::fs::create_dir_all(dir).map_err(|e| Error::internal("making a download directory", e))?;
    let path_part = url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .splitn(4, '/')
        .nth(3)
        .unwrap_or_default();
    let name = path_part
        .rsplit('/')
        .find(|s| !s.is_empty() && *s != "." && *s != "..")
        .unwrap_or("__unnamed__")
        .to_string();
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(30))
        .build();
    let resp = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => {
            Error::Invalid(format!("failed to GET {url} with status {code}"))
        }
        e => Error::Invalid(format!("failed to GET {url}: {e}")),
    })?;
    let file = dir.join(&name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .map_err(|e| Error::internal("writing a download", e))?;
    let mut h = Sha256::new();
    let mut r = resp.into_reader().take(MAX + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| Error::Invalid(format!("failed to GET {url}: {e}")))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX {
            return Err(Error::Invalid(format!("{url}: larger than {MAX} bytes")));
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n])
            .map_err(|e| Error::internal("writing a download", e))?;
    }
    if let Some(want) = checksum {
        let got = format!("sha256:{:x}", h.finalize());
        if !want.eq_ignore_ascii_case(&got) {
            return Err(Error::Invalid(format!(
                "digest mismatch for {url}: {got}, expected {want}"
            )));
        }
    }
    Ok(name)
}

/// `--chown`'s user and group, looked up in the root's own /etc/passwd and /etc/group.
fn lookup_owner(root: &Path, spec: &str) -> Result<(u32, u32)> {
    let fs = crate::ops::archive::ContainerFs::stopped(root, Vec::new())?;
    crate::ops::archive::lookup_user(&fs, spec)
}
