//! Builds as real clients make them (issue #11): the Python SDK (`images.build`, the decoded
//! low-level stream, `BuildError`), docker-compose 1.29 (`build:` services, `up`, `down --rmi
//! local`), a multi-stage build compiling C with a Debian gcc image, `RUN --mount=type=cache`
//! across builds, and the image berth builds compared with buildah's from the same Dockerfile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::daemon::{TestDaemon, with_busybox};
use berth_testkit::unique;
use serde_json::Value;

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn chmod(dir: &Path, name: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `docker build ARGS DIR` with the classic builder; its stdout, which must say it succeeded.
fn build_ok(d: &TestDaemon, dir: &Path, args: &[&str]) -> String {
    let out = d
        .docker_cmd(&[&["build"], args, &[dir.to_str().unwrap()]].concat())
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .expect("docker build");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "docker build {args:?} failed: {stdout}\n{}\n--- daemon:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    stdout
}

/// The classic builder's output cut into steps: ("RUN gcc …", what the step printed).
fn steps(out: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            let instr = rest.split_once(" : ").map(|x| x.1).unwrap_or(rest);
            v.push((instr.to_string(), String::new()));
        } else if let Some(last) = v.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    v
}

/// The step of `out` whose instruction starts with `prefix`: what it printed.
fn step<'a>(all: &'a [(String, String)], prefix: &str) -> &'a str {
    &all.iter()
        .find(|(i, _)| i.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step {prefix:?} in {all:#?}"))
        .1
}

fn image_id(d: &TestDaemon, name: &str) -> String {
    d.ok(&["image", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

fn python() -> String {
    // scripts/test.sh makes a venv with the SDK from PyPI; else the python3 on PATH.
    std::env::var("BERTH_SDK_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The Python SDK's builds: `images.build` with build args, the decoded `api.build` stream
/// (cache, labels), a Dockerfile as `fileobj`, `dockerfile=`, and failures as `BuildError`
/// (tests/sdk/build.py).
#[test]
fn python_sdk_builds() {
    let Some((d, _reg, img)) = with_busybox(&unique("sdkbuild")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/build.py");
    let out = Command::new(python())
        .args([
            script,
            &d.host(),
            &img,
            &unique("sdkb"),
            ctx.path().to_str().unwrap(),
        ])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{stdout}\n{}\n--- daemon:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    // Only the base is left.
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), img, "{images}");
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    d.assert_clean();
}

/// A compose project in a temporary directory, run against a test daemon.
struct Compose<'a> {
    d: &'a TestDaemon,
    dir: tempfile::TempDir,
    project: String,
}

impl Compose<'_> {
    /// `docker-compose ARGS`, which must succeed; stdout and stderr. `cli_build`: builds by
    /// `docker build` (COMPOSE_DOCKER_CLI_BUILD=1, the classic builder), else by the SDK's
    /// `api.build` from Python.
    fn run(&self, args: &[&str], cli_build: bool) -> String {
        let out = Command::new("docker-compose")
            .current_dir(self.dir.path())
            .env("DOCKER_HOST", self.d.host())
            .env(
                "DOCKER_CONFIG",
                berth_testkit::daemon::docker_config(self.d.dir.path()),
            )
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env(
                "COMPOSE_DOCKER_CLI_BUILD",
                if cli_build { "1" } else { "0" },
            )
            .env("DOCKER_BUILDKIT", "0")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker-compose (Debian's docker-compose package)");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}\n{}\n--- daemon:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.d.log()
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The image the service's container runs.
    fn container_image(&self, service: &str) -> String {
        let cid = self.run(&["ps", "-q", service], false);
        assert!(!cid.trim().is_empty(), "no container for {service}");
        self.d
            .ok(&["inspect", "-f", "{{.Image}}", cid.trim()])
            .trim()
            .to_string()
    }

    /// Wait until the logs of `services` hold every one of `want`.
    fn wait_logs(&self, services: &[&str], want: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = self.run(&[&["logs", "--no-color"], services].concat(), false);
            if want.iter().all(|w| logs.contains(w)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {want:?} in the logs: {logs}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A project of two services built from a context: `app` (`build: .`) and `other` (the
/// long form: another Dockerfile, build args).
fn compose_project<'a>(d: &'a TestDaemon, img: &str) -> Compose<'a> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    write(
        p,
        "docker-compose.yml",
        r#"version: "3"
services:
  app:
    build: .
    command: sh -c "cat /msg.txt; echo app up; sleep 1000"
    network_mode: none
    stop_grace_period: 1s
  other:
    build:
      context: .
      dockerfile: Other.Dockerfile
      args:
        FLAVOR: mint
    network_mode: none
    stop_grace_period: 1s
"#,
    );
    write(
        p,
        "Dockerfile",
        &format!("FROM {img}\nCOPY msg.txt /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n"),
    );
    write(
        p,
        "Other.Dockerfile",
        &format!(
            "FROM {img}\nARG FLAVOR=plain\nRUN echo \"flavor=$FLAVOR\" > /flavor\nCMD [\"sh\", \"-c\", \"cat /flavor; echo other up; sleep 1000\"]\n"
        ),
    );
    write(p, "msg.txt", "built by compose\n");
    Compose {
        d,
        dir,
        project: unique("cb").replace('-', ""),
    }
}

/// docker-compose 1.29 building two services (`build: .` and the long form with another
/// Dockerfile and args) through the SDK's build, running them on what it built, building
/// again through the docker CLI (all from the cache), and `down --rmi local` removing what
/// it built.
#[test]
fn compose_build_up_down() {
    let Some((d, _reg, img)) = with_busybox(&unique("composebuild")) else {
        return;
    };
    let c = compose_project(&d, &img);
    let app_image = format!("{}_app", c.project);
    let other_image = format!("{}_other", c.project);

    let out = c.run(&["build"], false);
    assert!(
        out.contains(&format!("Successfully tagged {app_image}:latest")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Successfully tagged {other_image}:latest")),
        "{out}"
    );
    assert!(out.contains("Step 1/"), "{out}");
    let app_id = image_id(&d, &app_image);
    let other_id = image_id(&d, &other_image);

    c.run(&["up", "-d"], false);
    let ps = c.run(&["ps"], false);
    assert_eq!(ps.matches(" Up ").count(), 2, "{ps}");
    assert_eq!(c.container_image("app"), app_id, "app runs another image");
    assert_eq!(
        c.container_image("other"),
        other_id,
        "other runs another image"
    );
    c.wait_logs(&["app", "other"], &["built by compose", "flavor=mint"]);

    // Built again by the docker CLI (compose's other way): unchanged, all from the cache.
    let out = c.run(&["build"], true);
    assert!(out.contains("Using cache"), "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(image_id(&d, &app_image), app_id);
    assert_eq!(image_id(&d, &other_image), other_id);
    // `up -d` again: nothing changed, nothing recreated.
    let out = c.run(&["up", "-d"], false);
    assert!(!out.contains("Recreating"), "{out}");

    c.run(&["down", "--rmi", "local"], false);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), img, "down --rmi local left: {images}");
    d.assert_clean();
}

/// The everyday loop with compose 1.29: a file changes, `build`, `up -d` recreates the
/// service on the new image (compose reads the old image's inspect for its volumes).
#[test]
fn compose_rebuild_recreates() {
    let Some((d, _reg, img)) = with_busybox(&unique("composere")) else {
        return;
    };
    let c = compose_project(&d, &img);
    let app_image = format!("{}_app", c.project);
    c.run(&["up", "-d", "--build"], false);
    let app_id = image_id(&d, &app_image);
    assert_eq!(c.container_image("app"), app_id);
    c.wait_logs(&["app"], &["built by compose"]);

    write(c.dir.path(), "msg.txt", "built again\n");
    let out = c.run(&["build", "app"], false);
    assert!(!out.contains("Running in"), "{out}");
    let app_id2 = image_id(&d, &app_image);
    assert_ne!(app_id2, app_id);
    let out = c.run(&["up", "-d"], false);
    assert!(out.contains("Recreating"), "{out}");
    assert_eq!(c.container_image("app"), app_id2);
    c.wait_logs(&["app"], &["built again"]);

    c.run(&["down", "--rmi", "local"], false);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    // The first app image, untagged by the rebuild, is not compose's to remove.
    d.ok(&["image", "prune", "-f"]);
    let images = d.ok(&["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), img, "left: {images}");
    d.assert_clean();
}

/// A multi-stage build: a static C program compiled in the Debian gcc image, copied into a
/// busybox stage; run; rebuilt after the source changed (compiled again, the steps before
/// from the cache).
#[test]
fn multi_stage_c_program() {
    let Some((d, reg, img)) = with_busybox(&unique("gccbuild")) else {
        return;
    };
    let gcc = berth_testkit::debian::push_debian_gcc(&reg, &format!("{}:bookworm", unique("gcc")));
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(
        dir,
        "Dockerfile",
        &format!(
            r#"FROM {gcc} AS build
RUN gcc --version | head -n 1 > /gcc-version
WORKDIR /src
COPY hello.c /src/
RUN gcc -O2 -static -o /hello /src/hello.c && /hello probe

FROM {img}
LABEL stage=final
COPY --from=build /gcc-version /etc/built-with
COPY --from=build /hello /usr/local/bin/hello
CMD ["hello"]
"#
        ),
    );
    let hello = |greeting: &str| {
        format!(
            r#"#include <stdio.h>
int main(int argc, char **argv) {{
    printf("{greeting}, %d argument(s)\n", argc - 1);
    for (int i = 1; i < argc; i++) printf("arg: %s\n", argv[i]);
    return 0;
}}
"#
        )
    };
    write(dir, "hello.c", &hello("hello from C"));
    let tag = unique("hello");
    let out = build_ok(&d, dir, &["-t", &tag]);
    let s = steps(&out);
    assert_eq!(s.len(), 10, "{out}");
    assert!(
        step(&s, "RUN gcc -O2").contains("hello from C, 1 argument(s)"),
        "the compiled program ran in its step: {out}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", &tag]),
        "hello from C, 0 argument(s)\n"
    );
    assert_eq!(
        d.ok(&["run", "--rm", &tag, "hello", "a b", "c"]),
        "hello from C, 2 argument(s)\narg: a b\narg: c\n"
    );
    // The final stage is busybox and the program: no compiler, no source.
    let files = d.ok(&[
        "run",
        "--rm",
        &tag,
        "sh",
        "-c",
        "cat /etc/built-with; ls /src /usr/bin/gcc 2>&1; ls -l /usr/local/bin/hello",
    ]);
    assert!(files.contains("gcc (Debian 12"), "{files}");
    assert!(files.contains("/src: No such file"), "{files}");
    assert!(files.contains("/usr/bin/gcc: No such file"), "{files}");
    let size: u64 = d
        .ok(&["image", "inspect", "-f", "{{.Size}}", &tag])
        .trim()
        .parse()
        .unwrap();
    assert!(size < 20 << 20, "the final image is {size} bytes");
    let layers = d.ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &tag]);
    let base_layers = d.ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &img]);
    let (layers, base_layers): (usize, usize) = (
        layers.trim().parse().unwrap(),
        base_layers.trim().parse().unwrap(),
    );
    assert_eq!(layers, base_layers + 2, "two COPY layers over busybox");
    let id = image_id(&d, &tag);

    // Unchanged: everything from the cache.
    let out = build_ok(&d, dir, &["-t", &tag]);
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(image_id(&d, &tag), id);

    // The source changed: compiled again; what came before from the cache.
    write(dir, "hello.c", &hello("hello again"));
    let out = build_ok(&d, dir, &["-t", &tag]);
    let s = steps(&out);
    for cached in ["RUN gcc --version", "WORKDIR /src", "LABEL stage=final"] {
        assert!(
            step(&s, cached).contains("Using cache"),
            "{cached} not from the cache: {out}"
        );
    }
    let gcc_step = step(&s, "RUN gcc -O2");
    assert!(
        gcc_step.contains("Running in") && !gcc_step.contains("Using cache"),
        "{out}"
    );
    assert!(gcc_step.contains("hello again, 1 argument(s)"), "{out}");
    assert!(!step(&s, "COPY hello.c").contains("Using cache"), "{out}");
    assert!(
        step(&s, "COPY --from=build /gcc-version").contains("Using cache"),
        "{out}"
    );
    assert!(
        !step(&s, "COPY --from=build /hello").contains("Using cache"),
        "{out}"
    );
    assert_ne!(image_id(&d, &tag), id);
    assert_eq!(d.ok(&["run", "--rm", &tag]), "hello again, 0 argument(s)\n");

    d.ok(&["rmi", &tag]);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    d.assert_clean();
}

/// `RUN --mount=type=cache`: what one build leaves in the cache directory the next one sees
/// (run again with --no-cache); the cache is not in the image; another id is another cache.
#[test]
fn run_mount_cache_across_builds() {
    let Some((d, _reg, img)) = with_busybox(&unique("cachemount")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(
        dir,
        "Dockerfile",
        &format!(
            r#"FROM {img}
ARG RUN_ID
RUN --mount=type=cache,target=/cache sh -c 'ls /cache > /seen; echo "$RUN_ID" >> /cache/runs; echo cache-has; cat /cache/runs'
RUN --mount=type=cache,id=other,target=/var/cache/other sh -c 'ls /var/cache/other > /seen-other; touch /var/cache/other/x'
CMD ["cat", "/seen"]
"#
        ),
    );
    let tag = unique("cached");
    let out = build_ok(&d, dir, &["-t", &tag, "--build-arg", "RUN_ID=first"]);
    assert!(out.contains("cache-has\nfirst\n"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &tag]), "", "a new cache is empty");
    assert_eq!(d.ok(&["run", "--rm", &tag, "cat", "/seen-other"]), "");
    let inside = d.ok(&[
        "run",
        "--rm",
        &tag,
        "sh",
        "-c",
        "ls -A /cache 2>/dev/null; true",
    ]);
    assert!(
        inside.trim().is_empty(),
        "the cache went into the image: {inside}"
    );

    let out = build_ok(
        &d,
        dir,
        &["-t", &tag, "--no-cache", "--build-arg", "RUN_ID=second"],
    );
    assert!(!out.contains("Using cache"), "{out}");
    assert!(
        out.contains("cache-has\nfirst\nsecond\n"),
        "the second build did not see the first's file: {out}"
    );
    assert_eq!(d.ok(&["run", "--rm", &tag]), "runs\n");
    assert_eq!(d.ok(&["run", "--rm", &tag, "cat", "/seen-other"]), "x\n");
    let inside = d.ok(&[
        "run",
        "--rm",
        &tag,
        "sh",
        "-c",
        "ls -A /cache /var/cache/other 2>/dev/null; true",
    ]);
    assert!(
        !inside.contains("runs") && !inside.contains('x'),
        "the cache went into the image: {inside}"
    );

    d.ok(&["rmi", &tag]);
    d.assert_clean();
}

/// One path of an exported root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    link: String,
    content: Option<Vec<u8>>,
}

/// The entries of a tar of a root file system: path (no leading `./` or `/`) to entry;
/// content kept for regular files.
fn tar_entries(tar: &Path) -> BTreeMap<String, Entry> {
    // GNU tar's verbose listing is awkward to parse: list with python's tarfile.
    let script = r#"
import json, sys, tarfile
out = {}
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        name = m.name
        while name.startswith("./"):
            name = name[2:]
        name = name.strip("/")
        if not name or name == ".":
            continue
        kind = "f" if m.isreg() else "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else "o"
        content = None
        if m.isreg():
            content = t.extractfile(m).read().hex()
        out[name] = {"kind": kind, "mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid,
                     "link": m.linkname, "content": content}
json.dump(out, sys.stdout)
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(tar)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "listing {}: {}",
        tar.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: BTreeMap<String, Value> = serde_json::from_slice(&o.stdout).unwrap();
    v.into_iter()
        .map(|(k, e)| {
            let content = e["content"].as_str().map(|h| {
                (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                    .collect()
            });
            (
                k,
                Entry {
                    kind: e["kind"].as_str().unwrap().chars().next().unwrap(),
                    mode: e["mode"].as_u64().unwrap() as u32,
                    uid: e["uid"].as_u64().unwrap(),
                    gid: e["gid"].as_u64().unwrap(),
                    link: e["link"].as_str().unwrap().to_string(),
                    content,
                },
            )
        })
        .collect()
}

/// Files under the host's paths buildah might write to, to check it left nothing there.
fn host_traces() -> BTreeSet<PathBuf> {
    fn walk(p: &Path, out: &mut BTreeSet<PathBuf>) {
        out.insert(p.to_path_buf());
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&p, out);
                } else {
                    out.insert(p);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for p in [
        "/var/lib/containers",
        "/run/containers",
        "/run/buildah",
        "/etc/containers",
    ] {
        walk(Path::new(p), &mut out);
    }
    out.retain(|p| p.exists());
    out
}

/// The same single-stage Dockerfile built by berth (`docker build`) and by buildah (`buildah
/// bud`, chroot isolation, vfs storage in a temporary directory, the busybox base pulled from
/// the test registry): the image configs agree, and so do the root file systems (the set of
/// paths; type, mode, owner and content of what the Dockerfile added).
#[test]
fn same_image_as_buildah() {
    let Some((d, _reg, img)) = with_busybox(&unique("vsbuildah")) else {
        return;
    };
    if Command::new("buildah").arg("--version").output().is_err() {
        panic!("buildah is not installed (apt-get install buildah; scripts/test.sh does)");
    }
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(
        dir,
        "Dockerfile",
        &format!(
            r#"FROM {img}
LABEL org.test.a="one" \
      org.test.b="two words"
ENV APP_HOME=/app GREETING="hello there"
WORKDIR $APP_HOME
COPY files/ ./files/
COPY --chown=1000:1000 owned.txt /app/owned.txt
COPY run.sh /usr/local/bin/run.sh
RUN echo "$GREETING" > /app/generated.txt \
 && mkdir -p /app/made/deep \
 && echo made > /app/made/deep/x \
 && chmod 0640 /app/made/deep/x \
 && ln -s ../generated.txt /app/made/link \
 && rm /usr/bin/wc
EXPOSE 8080 53/udp
VOLUME ["/data", "/var/log/app"]
USER 1000:1000
ENTRYPOINT ["/usr/local/bin/run.sh"]
CMD ["--flag", "value"]
"#
        ),
    );
    write(dir, "files/a.txt", "file a\n");
    write(dir, "files/sub/b.txt", "file b in sub\n");
    write(dir, "files/exec.sh", "#!/bin/sh\necho exec\n");
    chmod(dir, "files/exec.sh", 0o755);
    write(dir, "files/private", "0600\n");
    chmod(dir, "files/private", 0o600);
    std::os::unix::fs::symlink("a.txt", dir.join("files/link")).unwrap();
    write(dir, "owned.txt", "owned by 1000\n");
    write(
        dir,
        "run.sh",
        "#!/bin/sh\necho \"run.sh $* as $(id -u) in $(pwd): $GREETING\"\n",
    );
    chmod(dir, "run.sh", 0o755);

    // berth.
    let tag = unique("cmp");
    build_ok(&d, dir, &["-t", &tag]);
    assert_eq!(
        d.ok(&["run", "--rm", &tag]),
        "run.sh --flag value as 1000 in /app: hello there\n"
    );
    let berth: Value = serde_json::from_str(&d.ok(&["image", "inspect", &tag])).unwrap();
    let berth_cfg = berth[0]["Config"].clone();
    let work = tempfile::tempdir().unwrap();
    let berth_tar = work.path().join("berth.tar");
    let cname = unique("cmpexport");
    d.ok(&["create", "--name", &cname, &tag]);
    d.ok(&["export", "-o", berth_tar.to_str().unwrap(), &cname]);
    d.ok(&["rm", &cname]);

    // buildah, in the daemon's network namespace (where the registry is) and a private mount
    // namespace of its own (whatever it mounts goes with it), its storage in `work`, a tmpfs
    // over /var/lib/containers (its blob-info cache) and /var/tmp.
    let before = host_traces();
    let storage = work.path().join("storage");
    let bah_tar = work.path().join("buildah.tar");
    let bah_json = work.path().join("buildah.json");
    let tmp = work.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let script = r#"
set -eu
storage=$1 ctx=$2 tarout=$3 jsonout=$4
for d in /var/lib/containers /var/tmp; do
  if [ -d "$d" ]; then mount -t tmpfs berth-test-buildah "$d"; fi
done
b() { buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs "$@"; }
b bud --isolation chroot --tls-verify=false --format docker --layers \
  -t localhost/berth-cmp:latest -f "$ctx/Dockerfile" "$ctx"
b inspect --type image localhost/berth-cmp:latest > "$jsonout"
ctr=$(b from --pull-never localhost/berth-cmp:latest)
mnt=$(b mount "$ctr")
tar --create --format=posix --numeric-owner --file "$tarout" --directory "$mnt" .
b umount "$ctr"
b rm "$ctr"
b rmi -a -f
"#;
    let out = d
        .net_cmd("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&storage)
        .arg(dir)
        .arg(&bah_tar)
        .arg(&bah_json)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output()
        .expect("buildah");
    assert!(
        out.status.success(),
        "buildah: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bah: Value = serde_json::from_slice(&std::fs::read(&bah_json).unwrap()).unwrap();
    let mut bah_cfg = bah["Docker"]["config"].clone();
    // buildah's own label.
    if let Some(l) = bah_cfg["Labels"].as_object_mut() {
        l.remove("io.buildah.version");
    }

    // The config.
    for k in [
        "Entrypoint",
        "Cmd",
        "Env",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Volumes",
        "Labels",
    ] {
        assert_eq!(
            berth_cfg[k], bah_cfg[k],
            "{k}: berth's vs buildah's\nberth: {berth_cfg:#}\nbuildah: {bah_cfg:#}"
        );
    }
    assert_eq!(berth_cfg["User"], "1000:1000");
    assert_eq!(berth_cfg["WorkingDir"], "/app");

    // The file systems.
    let ours = tar_entries(&berth_tar);
    let theirs = tar_entries(&bah_tar);
    // What an engine puts in every container (`docker export` is of a container): the files
    // it mounts over and its marker; none are in the image.
    let engine_made = |p: &str| {
        matches!(
            p,
            ".dockerenv" | "etc/hosts" | "etc/resolv.conf" | "etc/hostname" | "etc/mtab"
        ) || p.starts_with("dev/")
    };
    let only_ours: Vec<&String> = ours
        .keys()
        .filter(|p| !theirs.contains_key(*p) && !engine_made(p))
        .collect();
    let only_theirs: Vec<&String> = theirs
        .keys()
        .filter(|p| !ours.contains_key(*p) && !engine_made(p))
        .collect();
    eprintln!(
        "paths: berth {}, buildah {}; the engines' own: berth {:?}, buildah {:?}",
        ours.len(),
        theirs.len(),
        ours.keys().filter(|p| engine_made(p)).collect::<Vec<_>>(),
        theirs.keys().filter(|p| engine_made(p)).collect::<Vec<_>>()
    );
    assert!(theirs.len() > 300, "buildah's image: {theirs:?}");
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "paths only in berth's image: {only_ours:?}\npaths only in buildah's: {only_theirs:?}"
    );
    // Everything the Dockerfile added or changed, entry by entry.
    let added: Vec<&String> = ours
        .keys()
        .filter(|p| {
            p.starts_with("app")
                || p.starts_with("usr/local")
                || p.starts_with("data")
                || p.starts_with("var/log")
        })
        .collect();
    for must in [
        "app/files/a.txt",
        "app/files/sub/b.txt",
        "app/files/exec.sh",
        "app/files/private",
        "app/files/link",
        "app/owned.txt",
        "app/generated.txt",
        "app/made/deep/x",
        "app/made/link",
        "usr/local/bin/run.sh",
    ] {
        assert!(ours.contains_key(must), "{must} missing in berth's image");
    }
    for p in added {
        assert_eq!(
            ours.get(p),
            theirs.get(p),
            "{p}: berth's vs buildah's (kind, mode, uid, gid, link, content)"
        );
    }
    assert_eq!(ours["app/owned.txt"].uid, 1000);
    assert_eq!(ours["app/made/deep/x"].mode, 0o640);
    assert_eq!(ours["app/files/private"].mode, 0o600);
    assert_eq!(ours["app/files/link"].kind, 'l');
    assert!(!ours.contains_key("usr/bin/wc"), "a file the RUN removed");
    // The base's files are the same too (kind, mode, owner, content).
    for (p, e) in &theirs {
        if engine_made(p) {
            continue;
        }
        assert_eq!(ours.get(p), Some(e), "{p}: berth's vs buildah's");
    }

    // buildah left nothing on the host.
    let after = host_traces();
    let new: Vec<&PathBuf> = after.difference(&before).collect();
    assert!(new.is_empty(), "buildah left {new:?}");
    drop(work);

    d.ok(&["rmi", &tag]);
    d.assert_clean();
}
