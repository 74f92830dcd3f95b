//! Builds through the real docker CLI (the classic builder's API: `DOCKER_BUILDKIT=0`): a
//! multi-stage Dockerfile with build args, heredocs, COPY --from and .dockerignore; the cache
//! on an unchanged rebuild and after one late file changes; a failing step; bad input.

use std::path::Path;

use berth_testkit::daemon::{TestDaemon, with_busybox};
use berth_testkit::unique;

/// `docker build ARGS` with the legacy builder: (success, stdout, stderr, exit code).
fn build(d: &TestDaemon, dir: &Path, args: &[&str]) -> (bool, String, String, i32) {
    let out = d
        .docker_cmd(&[&["build"], args, &[dir.to_str().unwrap()]].concat())
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("docker build");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn docker_build_multi_stage_with_cache() {
    let Some((d, _reg, img)) = with_busybox(&unique("build")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(
        dir,
        "Dockerfile",
        &format!(
            r#"# syntax=docker/dockerfile:1
ARG BASE={img}
FROM $BASE AS build
ARG GREETING=hello
ARG UNSET
WORKDIR /src
COPY greet.sh ./
RUN <<EOF
set -e
[ "${{UNSET-unset}}" = unset ]
mkdir -p /out
echo "$GREETING from build" > /out/msg
cp greet.sh /out/
EOF

FROM ${{BASE}}
LABEL org.test.kind=multi \
      org.test.other="two words"
ENV APP=/app
COPY --from=build /out/ $APP/
COPY docs/ /docs/
COPY late.txt ${{APP}}/late.txt
EXPOSE 8080 9000/udp
VOLUME /data
USER 1000:1000
CMD ["sh", "-c", "cat /app/msg /app/late.txt"]
"#
        ),
    );
    write(dir, "greet.sh", "#!/bin/sh\necho greet\n");
    write(dir, "late.txt", "late one\n");
    write(dir, "secret.txt", "do not send\n");
    write(dir, "docs/README.md", "ignored\n");
    write(dir, "docs/KEEP.md", "kept\n");
    write(dir, "docs/a.txt", "a\n");
    write(dir, ".dockerignore", "secret.txt\n**/*.md\n!docs/KEEP.md\n");

    let tag = unique("built");
    let (ok, out, err, _) = build(&d, dir, &["-t", &tag, "--build-arg", "GREETING=hi"]);
    assert!(ok, "build failed: {out}\n{err}\n--- daemon:\n{}", d.log());
    assert!(out.contains("Step 1/"), "{out}");
    assert!(out.contains("Successfully built"), "{out}");
    assert!(
        out.contains(&format!("Successfully tagged {tag}:latest")),
        "{out}"
    );
    // The last arrow is the image's ID, as the classic builder prints it.
    let last_arrow = out.lines().rfind(|l| l.starts_with(" ---> ")).unwrap();
    let built = out
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap();
    assert_eq!(last_arrow, format!(" ---> {built}"), "{out}");
    let run = d.ok(&["run", "--rm", &tag]);
    assert_eq!(run, "hi from build\nlate one\n");
    let files = d.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        &tag,
        "-c",
        "ls /docs; ls -ln /app",
    ]);
    assert!(
        files.contains("KEEP.md") && files.contains("a.txt"),
        "{files}"
    );
    assert!(!files.contains("README.md"), "{files}");
    // The config as the Dockerfile set it.
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", &tag])).unwrap();
    let cfg = &inspect[0]["Config"];
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["Labels"]["org.test.kind"], "multi");
    assert_eq!(cfg["Labels"]["org.test.other"], "two words");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object(), "{cfg}");
    assert!(cfg["ExposedPorts"]["9000/udp"].is_object(), "{cfg}");
    assert!(cfg["Volumes"]["/data"].is_object(), "{cfg}");
    assert!(
        cfg["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "APP=/app"),
        "{cfg}"
    );
    assert_eq!(cfg["Cmd"][0], "sh");
    let id = inspect[0]["Id"].as_str().unwrap().to_string();
    let history = d.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", &tag]);
    assert!(history.contains("COPY late.txt"), "{history}");
    assert!(history.contains("USER 1000:1000"), "{history}");

    // Unchanged: every step from the cache, the same image.
    let (ok, out, err, _) = build(&d, dir, &["-t", &tag, "--build-arg", "GREETING=hi"]);
    assert!(ok, "{out}\n{err}");
    assert!(!out.contains("Running in"), "a step ran again:\n{out}");
    assert!(out.contains("Using cache"), "{out}");
    let id2 = d.ok(&["image", "inspect", "-f", "{{.Id}}", &tag]);
    assert_eq!(id2.trim(), id, "an unchanged rebuild made another image");

    // One late file changed (its time too): only what depends on it is done again.
    write(dir, "late.txt", "late two\n");
    let (ok, out, err, _) = build(&d, dir, &["-t", &tag, "--build-arg", "GREETING=hi"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        !out.contains("Running in"),
        "the build stage ran again:\n{out}"
    );
    assert_eq!(d.ok(&["run", "--rm", &tag]), "hi from build\nlate two\n");
    // Only a touch: the content is the same, the cache holds.
    let (ok, out, _, _) = build(&d, dir, &["-t", &tag, "--build-arg", "GREETING=hi"]);
    assert!(ok);
    let steps = out.matches("Step ").count();
    let cached = out.matches("Using cache").count();
    assert!(cached >= steps - 3, "{out}");
    // Another build arg: the RUN that sees it runs again.
    let (ok, out, _, _) = build(&d, dir, &["-t", &tag, "--build-arg", "GREETING=bye"]);
    assert!(ok, "{out}");
    assert!(out.contains("Running in"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &tag]), "bye from build\nlate two\n");

    d.ok(&["rmi", &tag]);
    d.assert_clean();
}

#[test]
fn docker_build_failures() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildfail")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(dir, "ok.txt", "ok\n");
    write(dir, "secret.txt", "no\n");
    write(dir, ".dockerignore", "secret.txt\n");

    // A failing RUN: its command and exit code; nothing left.
    write(
        dir,
        "Dockerfile",
        &format!("FROM {img}\nCOPY ok.txt /\nRUN echo before; exit 3\nRUN echo never\n"),
    );
    let (ok, out, err, code) = build(&d, dir, &["-t", &unique("fail")]);
    assert!(!ok);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("before"), "the step's output is shown: {out}");
    assert!(
        err.contains("The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"),
        "{err}"
    );
    assert!(!out.contains("never"));

    // Unknown instruction, naming the line.
    write(dir, "Dockerfile", &format!("FROM {img}\nFOO bar\n"));
    let (ok, _, err, _) = build(&d, dir, &[]);
    assert!(!ok);
    assert!(
        err.contains("unknown instruction") && err.contains("2"),
        "{err}"
    );

    // A file excluded by .dockerignore, and one outside the context.
    write(
        dir,
        "Dockerfile",
        &format!("FROM {img}\nCOPY secret.txt /\n"),
    );
    let (ok, _, err, _) = build(&d, dir, &[]);
    assert!(!ok);
    assert!(
        err.contains("secret.txt") && err.contains("excluded by .dockerignore"),
        "{err}"
    );
    write(
        dir,
        "Dockerfile",
        &format!("FROM {img}\nCOPY ../etc/passwd /\n"),
    );
    let (ok, _, err, _) = build(&d, dir, &[]);
    assert!(!ok);
    assert!(err.contains("outside the build context"), "{err}");

    // A symlink pointing out of the context is resolved inside it: not found.
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
    write(dir, "Dockerfile", &format!("FROM {img}\nCOPY link /x\n"));
    let (ok, _, err, _) = build(&d, dir, &[]);
    assert!(!ok, "a link out of the context was followed");
    assert!(err.contains("link"), "{err}");
    std::fs::remove_file(dir.join("link")).unwrap();

    // A missing stage or base image; a cycle between stages.
    write(
        dir,
        "Dockerfile",
        &format!("FROM {img}\nCOPY --from=nope /x /y\n"),
    );
    let (ok, _, _, _) = build(&d, dir, &[]);
    assert!(!ok);
    write(
        dir,
        "Dockerfile",
        "FROM b AS a\nRUN true\nFROM a AS b\nRUN true\n",
    );
    let (ok, _, err, _) = build(&d, dir, &[]);
    assert!(!ok);
    assert!(err.contains("circular dependency"), "{err}");
    write(dir, "Dockerfile", &format!("FROM {img}\nRUN true\n"));
    let (ok, _, err, _) = build(&d, dir, &["--target", "nothere"]);
    assert!(!ok);
    assert!(err.contains("nothere"), "{err}");
    let (ok, _, err, _) = build(&d, dir, &["--platform", "linux/s390x"]);
    assert!(!ok);
    assert!(err.contains("s390x"), "{err}");

    d.assert_clean();
    let ps = d.ok(&["ps", "-aq"]);
    assert!(ps.trim().is_empty(), "containers left: {ps}");
}

/// berth's own CLI as the client of the test daemon (never starting a daemon of its own).
fn berth_cmd(d: &TestDaemon) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("-H")
        .arg(d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
    c
}

/// A static HTTP server in the daemon's network namespace serving `dir` on `port`.
struct Http(std::process::Child);

impl Http {
    fn start(d: &TestDaemon, dir: &Path, port: u16) -> Http {
        let child = d
            .net_cmd("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 http.server");
        berth_testkit::daemon::wait_for("the HTTP server", || {
            d.net_cmd("python3")
                .args([
                    "-c",
                    &format!("import socket; socket.create_connection(('127.0.0.1', {port}))"),
                ])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        Http(child)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn berth_cli_build_add_url_and_remote_context() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildcli")) else {
        return;
    };
    let served = tempfile::tempdir().unwrap();
    write(served.path(), "files/data.txt", "from the web\n");
    write(
        served.path(),
        "remote.Dockerfile",
        &format!("FROM {img}\nRUN echo remote > /r\nCMD [\"cat\", \"/r\"]\n"),
    );
    let port = 20000 + (std::process::id() % 20000) as u16;
    let _http = Http::start(&d, served.path(), port);
    let sum = berth_store::Digest::of(b"from the web\n").to_string();

    // berth build: -f outside the context, ADD of a URL (with its checksum), an archive
    // ADD unpacks, -q and --iidfile.
    let ctx = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(dir, "tree/x/y.txt", "in the archive\n");
    let tarball = dir.join("t.tar.gz");
    let st = std::process::Command::new("tar")
        .args([
            "-czf",
            tarball.to_str().unwrap(),
            "-C",
            dir.join("tree").to_str().unwrap(),
            "x",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(dir.join("tree")).unwrap();
    let dockerfile = other.path().join("Build.Dockerfile");
    std::fs::write(
        &dockerfile,
        format!(
            "FROM {img}\nADD --checksum={sum} http://127.0.0.1:{port}/files/data.txt /web/\nADD t.tar.gz /unpacked/\nCMD cat /web/data.txt /unpacked/x/y.txt\n"
        ),
    )
    .unwrap();
    let tag = unique("clibuilt");
    let iid = other.path().join("iid");
    let out = berth_cmd(&d)
        .args(["build", "-q", "-t", &tag, "--iidfile"])
        .arg(&iid)
        .arg("-f")
        .arg(&dockerfile)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth build: {}\n{}\n--- daemon:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(
        d.ok(&["run", "--rm", &tag]),
        "from the web\nin the archive\n"
    );
    let mode = d.ok(&["run", "--rm", &tag, "stat", "-c", "%a", "/web/data.txt"]);
    assert_eq!(mode.trim(), "600");
    // A wrong checksum fails.
    std::fs::write(
        &dockerfile,
        format!(
            "FROM {img}\nADD --checksum=sha256:{} http://127.0.0.1:{port}/files/data.txt /web/\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let out = berth_cmd(&d)
        .args(["build", "-f"])
        .arg(&dockerfile)
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A remote context (a Dockerfile at a URL) through the API, as the SDK sends it.
    let rtag = unique("remote");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(d.socket())
        .arg("-X")
        .arg("POST")
        .arg(format!(
            "http://localhost/build?t={rtag}&remote=http://127.0.0.1:{port}/remote.Dockerfile"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Successfully built"), "{text}\n{}", d.log());
    assert_eq!(d.ok(&["run", "--rm", &rtag]), "remote\n");

    // berth build of a URL: the daemon fetches it.
    let utag = unique("urlctx");
    let out = berth_cmd(&d)
        .args(["build", "-t", &utag])
        .arg(format!("http://127.0.0.1:{port}/remote.Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.ok(&["run", "--rm", &utag]), "remote\n");

    // A secret: seen by the RUN that mounts it, not kept in the image.
    let secret = other.path().join("tok");
    std::fs::write(&secret, "s3cret").unwrap();
    std::fs::write(
        &dockerfile,
        format!(
            "FROM {img}\nRUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok)\" = s3cret && echo ok > /ok\n"
        ),
    )
    .unwrap();
    let stag = unique("secret");
    let out = berth_cmd(&d)
        .args(["build", "--progress", "plain", "-t", &stag, "--secret"])
        .arg(format!("id=tok,src={}", secret.display()))
        .arg("-f")
        .arg(&dockerfile)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = d.ok(&[
        "run",
        "--rm",
        &stag,
        "sh",
        "-c",
        "cat /ok; ls /run/secrets 2>&1; true",
    ]);
    assert!(seen.starts_with("ok\n"), "{seen}");
    assert!(
        !seen.contains("tok"),
        "the secret's mount point was kept: {seen}"
    );

    // The docker CLI without DOCKER_BUILDKIT (no buildx here): the legacy builder.
    let out = d
        .docker_cmd(&["build", "-q", "-f"])
        .arg(&dockerfile)
        .arg(dir)
        .env_remove("DOCKER_BUILDKIT")
        .output()
        .unwrap();
    let _ = out; // the checksum Dockerfile fails either way; what matters is the API used
    write(dir, "Dockerfile", &format!("FROM {img}\nENV X=1\n"));
    let out = d
        .docker_cmd(&["build", "-q"])
        .arg(dir)
        .env_remove("DOCKER_BUILDKIT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build without DOCKER_BUILDKIT: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The cache shows in system df and goes with builder prune.
    let df = d.ok(&["system", "df"]);
    assert!(df.contains("Build Cache"), "{df}");
    let pruned = d.ok(&["builder", "prune", "-af"]);
    assert!(pruned.contains("Total"), "{pruned}");
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Build Cache 0"), "{df}");
    d.ok(&["rmi", &tag, &rtag, &utag, &stag]);
    d.assert_clean();
}

#[test]
fn independent_stages_run_together_and_unneeded_ones_not_at_all() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildpar")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    // Each of a and b waits (up to 60 s) for the other to have started: only stages run at
    // the same time finish. The cache mount is shared by id.
    let sync = unique("sync");
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id={sync},target=/sync touch /sync/{me}; i=0; while [ ! -f /sync/{other} ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done; echo {me} > /{me}"
        )
    };
    write(
        dir,
        "Dockerfile",
        &format!(
            "FROM {img} AS a\n{}\nFROM {img} AS b\n{}\nFROM {img} AS unused\nRUN exit 7\nFROM {img}\nCOPY --from=a /a /\nCOPY --from=b /b /\nCMD cat /a /b\n",
            wait("a", "b"),
            wait("b", "a")
        ),
    );
    let tag = unique("par");
    let (ok, out, err, _) = build(&d, dir, &["-t", &tag]);
    assert!(ok, "{out}\n{err}\n--- daemon:\n{}", d.log());
    assert!(!out.contains("exit 7"), "an unneeded stage ran:\n{out}");
    assert_eq!(d.ok(&["run", "--rm", &tag]), "a\nb\n");
    d.ok(&["rmi", &tag]);
    d.ok(&["builder", "prune", "-af"]);
    d.assert_clean();
}

/// POST /build with `body` as the context; the response text.
fn post_build(d: &TestDaemon, query: &str, body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ctx.tar");
    std::fs::write(&f, body).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(d.socket())
        .args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-tar",
            "--data-binary",
        ])
        .arg(format!("@{}", f.display()))
        .arg(format!("http://localhost/build?{query}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hostile_contexts() {
    use berth_testkit::tar::Layer;
    use tar::EntryType;
    let Some((d, _reg, img)) = with_busybox(&unique("buildhostile")) else {
        return;
    };
    let dockerfile = format!("FROM {img}\nCOPY . /ctx/\n");
    let victim = tempfile::tempdir().unwrap();
    let v = victim.path().display().to_string();
    // Names climbing out, absolute names, a link out and a write through it, a hard link to
    // a host file: each refused, nothing written outside.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            Layer::new()
                .file("Dockerfile", 0o644, dockerfile.as_bytes())
                .raw(
                    format!("../../../../..{v}/evil").as_bytes(),
                    EntryType::Regular,
                    b"",
                    b"x",
                )
                .tar(),
        ),
        (
            "absolute",
            Layer::new()
                .file("Dockerfile", 0o644, dockerfile.as_bytes())
                .raw(
                    format!("{v}/evil").as_bytes(),
                    EntryType::Regular,
                    b"",
                    b"x",
                )
                .tar(),
        ),
        (
            "through a link",
            Layer::new()
                .file("Dockerfile", 0o644, dockerfile.as_bytes())
                .link(EntryType::Symlink, "out", &v)
                .file("out/evil", 0o644, b"x")
                .tar(),
        ),
        (
            "hard link",
            Layer::new()
                .file("Dockerfile", 0o644, dockerfile.as_bytes())
                .link(EntryType::Link, "shadow", "/etc/shadow")
                .tar(),
        ),
        ("truncated", {
            let mut t = Layer::new()
                .file("Dockerfile", 0o644, dockerfile.as_bytes())
                .file("big", 0o644, &[7u8; 100_000])
                .tar();
            t.truncate(40_000);
            t
        }),
        (
            "garbage",
            b"this is not a tar at all, not even close".repeat(100),
        ),
    ];
    for (what, body) in cases {
        let tag = unique("hostile");
        let out = post_build(&d, &format!("t={tag}"), &body);
        assert!(
            !std::fs::exists(victim.path().join("evil")).unwrap(),
            "{what}: a file was written outside the context"
        );
        // The build may refuse the context or succeed without the bad entry; it never
        // copies a host file in.
        if out.contains("Successfully built") {
            let seen = d.ok(&[
                "run",
                "--rm",
                &tag,
                "sh",
                "-c",
                "cat /ctx/shadow 2>/dev/null; true",
            ]);
            assert!(!seen.contains("root:"), "{what}: a host file was copied in");
        } else {
            assert!(out.contains("errorDetail"), "{what}: {out}");
        }
    }
    // Whatever the builds made goes with the images and the cache.
    for id in d.ok(&["images", "-q"]).lines() {
        let _ = d.docker(&["rmi", "-f", id]);
    }
    d.ok(&["builder", "prune", "-af"]);
    d.assert_clean();
    if let Ok(m) = std::fs::metadata(d.data_root().join("builds")) {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            m.permissions().mode() & 0o077,
            0,
            "the builds directory is not root's only"
        );
    }
    let left: Vec<_> = std::fs::read_dir(d.data_root().join("builds"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "build directories left: {left:?}");
}

#[test]
fn copy_flags_and_dockerfile_specific_ignore() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildcopy")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(dir, "logs/keep.txt", "keep\n");
    write(dir, "logs/x.log", "drop\n");
    write(dir, "a/b/f.txt", "f\n");
    write(dir, "c/d.txt", "d\n");
    write(dir, "f.txt", "owned\n");
    write(dir, "secret.key", "no\n");
    write(
        dir,
        "sub/My.Dockerfile",
        &format!(
            "FROM {img}\nCOPY --exclude=*.log logs/ /l/\nCOPY --parents a/b/f.txt c/d.txt /p/\nCOPY --chown=1:2 --chmod=640 f.txt /o/\nWORKDIR /w/x\nCOPY f.txt rel.txt\nCOPY *.key /k/\n"
        ),
    );
    write(dir, "sub/My.Dockerfile.dockerignore", "secret.key\n");
    let tag = unique("copyflags");
    let (ok, out, err, _) = build(
        &d,
        dir,
        &[
            "-t",
            &tag,
            "-f",
            dir.join("sub/My.Dockerfile").to_str().unwrap(),
        ],
    );
    assert!(!ok, "the ignored *.key was copied: {out}");
    assert!(
        err.contains("no source files") || err.contains("excluded"),
        "{err}"
    );
    write(
        dir,
        "sub/My.Dockerfile",
        &format!(
            "FROM {img}\nCOPY --exclude=*.log logs/ /l/\nCOPY --parents a/b/f.txt c/d.txt /p/\nCOPY --chown=1:2 --chmod=640 f.txt /o/\nWORKDIR /w/x\nCOPY f.txt rel.txt\n"
        ),
    );
    let (ok, out, err, _) = build(
        &d,
        dir,
        &[
            "-t",
            &tag,
            "-f",
            dir.join("sub/My.Dockerfile").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}\n{err}\n--- daemon:\n{}", d.log());
    let seen = d.ok(&[
        "run",
        "--rm",
        &tag,
        "sh",
        "-c",
        "ls /l; cat /p/a/b/f.txt /p/c/d.txt; stat -c '%u:%g %a' /o/f.txt; cat /w/x/rel.txt; pwd",
    ]);
    assert_eq!(seen, "keep.txt\nf\nd\n1:2 640\nowned\n/w/x\n");
    d.ok(&["rmi", &tag]);
    d.assert_clean();
}

#[test]
fn cache_from_a_pushed_image() {
    let Some((d, reg, img)) = with_busybox(&unique("buildcf")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(dir, "a.txt", "a\n");
    write(
        dir,
        "Dockerfile",
        &format!(
            "FROM {img}\nRUN echo one > /one\nCOPY a.txt /\nENV K=v\nRUN cat /one /a.txt > /both\n"
        ),
    );
    let remote = format!("{}/{}:v1", reg.addr, unique("cached"));
    let (ok, out, err, _) = build(&d, dir, &["-t", &remote]);
    assert!(ok, "{out}\n{err}");
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", &remote]);
    d.ok(&["push", &remote]);
    // The cache and the image gone: only the registry has it.
    d.ok(&["rmi", &remote]);
    d.ok(&["builder", "prune", "-af"]);
    let (ok, out, _, _) = build(&d, dir, &["-t", &remote]);
    assert!(ok);
    assert!(out.contains("Running in"), "nothing cached, it runs: {out}");
    d.ok(&["rmi", &remote]);
    d.ok(&["builder", "prune", "-af"]);
    d.ok(&["pull", "-q", &remote]);
    let (ok, out, err, _) = build(&d, dir, &["-t", &remote, "--cache-from", &remote]);
    assert!(ok, "{out}\n{err}");
    assert!(
        !out.contains("Running in"),
        "--cache-from was not used: {out}"
    );
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", &remote]), id);
    // A changed file: the steps after it run.
    write(dir, "a.txt", "b\n");
    let (ok, out, _, _) = build(&d, dir, &["-t", &remote, "--cache-from", &remote]);
    assert!(ok);
    assert_eq!(out.matches("Running in").count(), 1, "{out}");
    assert_eq!(d.ok(&["run", "--rm", &remote, "cat", "/both"]), "one\nb\n");
    d.ok(&["rmi", &remote]);
    d.ok(&["builder", "prune", "-af"]);
    d.assert_clean();
}

#[test]
fn daemon_killed_mid_build_leaves_nothing_after_restart() {
    let Some((mut d, _reg, img)) = with_busybox(&unique("buildkill")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path().to_path_buf();
    write(&dir, "f.txt", "f\n");
    write(
        &dir,
        "Dockerfile",
        &format!("FROM {img}\nCOPY f.txt /\nRUN echo started; sleep 600\n"),
    );
    let mut child = d
        .docker_cmd(&["build", "-t", &unique("killed"), dir.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the RUN step to be running.
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("started") {
        use std::io::Read;
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the build ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    d.kill();
    let _ = child.kill();
    let _ = child.wait();
    // The step's container outlived the daemon (its shim); the next start removes it, its
    // root, the build's roots and directory.
    d.launch();
    berth_testkit::daemon::wait_for("the step container to go", || {
        d.ok(&["ps", "-aq"]).trim().is_empty()
    });
    d.assert_clean();
    assert!(
        !d.data_root().join("builds").exists()
            || std::fs::read_dir(d.data_root().join("builds"))
                .unwrap()
                .next()
                .is_none(),
        "the build's directory is left"
    );
}

#[test]
fn instructions_as_docker_records_them() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildins")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(dir, "trigger.txt", "triggered\n");
    // A base with ONBUILD triggers, a HEALTHCHECK, a SHELL, a STOPSIGNAL and a CMD that the
    // child's ENTRYPOINT clears.
    write(
        dir,
        "Base.Dockerfile",
        &format!(
            "FROM {img}\nCMD [\"from-base\"]\nONBUILD COPY trigger.txt /t.txt\nONBUILD RUN echo onbuild-ran > /ob\nHEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD true\nSTOPSIGNAL SIGUSR1\n"
        ),
    );
    let base = unique("obbase");
    let (ok, out, err, _) = build(
        &d,
        dir,
        &[
            "-t",
            &base,
            "-f",
            dir.join("Base.Dockerfile").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}\n{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "-f", "{{json .Config}}", &base]))
            .unwrap();
    assert_eq!(cfg["OnBuild"].as_array().unwrap().len(), 2, "{cfg}");
    assert_eq!(cfg["Healthcheck"]["Test"][0], "CMD-SHELL", "{cfg}");
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000u64, "{cfg}");
    assert_eq!(cfg["Healthcheck"]["Retries"], 4, "{cfg}");
    assert_eq!(cfg["StopSignal"], "SIGUSR1");
    // The child: triggers run first; the escape directive; SHELL; exec-form RUN; COPY heredoc;
    // ENTRYPOINT clears the base's CMD.
    write(
        dir,
        "Dockerfile",
        &format!(
            "# escape=`\nFROM {base}\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN echo a `\n  b > /ab\nRUN [\"/bin/sh\", \"-c\", \"echo exec > /exec\"]\nARG WHO=world\nCOPY <<EOF /here.txt\nhello ${{WHO}} \"q\" 'r' \\n\nEOF\nRUN <<EOF\n#!/bin/sh\necho shebang-ran > /sb\nEOF\nRUN <<-EOF\n\techo tabs > /tabs\n\tEOF\nENTRYPOINT [\"cat\"]\n"
        ),
    );
    let child = unique("obchild");
    let (ok, out, err, _) = build(&d, dir, &["-t", &child]);
    assert!(ok, "{out}\n{err}\n--- daemon:\n{}", d.log());
    assert!(out.contains("Executing"), "{out}");
    let seen = d.ok(&[
        "run",
        "--rm",
        &child,
        "/t.txt",
        "/ob",
        "/ab",
        "/exec",
        "/here.txt",
        "/sb",
        "/tabs",
    ]);
    assert_eq!(
        seen,
        "triggered\nonbuild-ran\na b\nexec\nhello world \"q\" 'r' \\n\nshebang-ran\ntabs\n"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "-f", "{{json .Config}}", &child]))
            .unwrap();
    assert!(
        cfg["Cmd"].is_null(),
        "ENTRYPOINT kept the base's CMD: {cfg}"
    );
    assert!(
        cfg["OnBuild"].is_null() || cfg["OnBuild"].as_array().unwrap().is_empty(),
        "{cfg}"
    );
    assert_eq!(cfg["Shell"][2], "-c");
    // History: one entry per instruction, empty_layer where none was made.
    let hist = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        &child,
    ]);
    let first: Vec<&str> = hist.lines().take(1).collect();
    assert!(first[0].starts_with("ENTRYPOINT"), "{hist}");
    assert!(first[0].ends_with("|0B"), "{hist}");
    assert!(hist.lines().any(|l| l.starts_with("COPY <<EOF")), "{hist}");
    d.ok(&["rmi", &child, &base]);
    d.assert_clean();
}

#[test]
fn run_steps_get_the_limits_asked_for() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildlim")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(
        dir,
        "Dockerfile",
        &format!(
            "FROM {img}\nRUN echo limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)\n"
        ),
    );
    let (ok, out, err, _) = build(&d, dir, &["-m", "64m", "--no-cache"]);
    assert!(ok, "{out}\n{err}\n--- daemon:\n{}", d.log());
    assert!(out.contains("limit=67108864"), "{out}");
    d.ok(&["builder", "prune", "-af"]);
    for id in d.ok(&["images", "-q", "--filter", "dangling=true"]).lines() {
        d.ok(&["rmi", id]);
    }
    d.assert_clean();
}

#[test]
fn run_mounts_networks_targets_and_stdin_contexts() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildmix")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    write(dir, "data/in.txt", "bound\n");
    write(
        dir,
        "Dockerfile",
        &format!(
            r#"FROM {img} AS tools
RUN echo tool > /tool
FROM {img} AS other
RUN exit 5
FROM {img} AS main
ARG TARGETPLATFORM
RUN --mount=type=bind,source=data,target=/mnt cat /mnt/in.txt > /copied && echo "$TARGETPLATFORM" > /platform
RUN --mount=type=bind,from=tools,source=/tool,target=/t cp /t /tool-copy
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && [ ! -e /x ]
RUN --network=none cat /proc/net/dev | grep -c : > /ifaces
RUN grep -c buildhost.test /etc/hosts > /hosts-seen || true
COPY --from={img} /bin/busybox /copied-busybox
CMD cat /copied /tool-copy /platform /ifaces /hosts-seen
"#
        ),
    );
    let tag = unique("mix");
    let (ok, out, err, _) = build(
        &d,
        dir,
        &[
            "-t",
            &tag,
            "--target",
            "main",
            "--add-host",
            "buildhost.test:10.1.2.3",
            "--pull",
        ],
    );
    assert!(ok, "{out}\n{err}\n--- daemon:\n{}", d.log());
    assert!(
        !out.contains("exit 5"),
        "a stage the target does not need ran: {out}"
    );
    let seen = d.ok(&["run", "--rm", &tag]);
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "bound");
    assert_eq!(lines[1], "tool");
    assert_eq!(lines[2], "linux/amd64");
    assert_eq!(lines[3], "1", "--network=none: only lo ({seen})");
    assert_eq!(lines[4], "1", "--add-host reached RUN ({seen})");
    let mnt = d.ok(&[
        "run",
        "--rm",
        &tag,
        "sh",
        "-c",
        "ls -A /mnt /scratch 2>&1; ls /copied-busybox",
    ]);
    assert!(mnt.contains("/copied-busybox"), "{mnt}");
    assert!(
        !mnt.contains("in.txt"),
        "a bind mount's files were kept: {mnt}"
    );

    // What a bind mount shows is part of the step's key.
    write(dir, "data/in.txt", "bound again\n");
    let (ok, out, err, _) = build(
        &d,
        dir,
        &[
            "-t",
            &tag,
            "--target",
            "main",
            "--add-host",
            "buildhost.test:10.1.2.3",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        d.ok(&["run", "--rm", &tag]).starts_with("bound again\n"),
        "{out}"
    );

    // A tar context on stdin, the Dockerfile inside it.
    let tarball = ctx.path().join("../ctx-stdin.tar");
    let st = std::process::Command::new("tar")
        .args([
            "-cf",
            tarball.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let out = d
        .docker_cmd(&["build", "-q", "--target", "tools", "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::fs::File::open(&tarball).unwrap())
        .output()
        .unwrap();
    std::fs::remove_file(&tarball).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(d.ok(&["run", "--rm", &id, "cat", "/tool"]), "tool\n");
    d.ok(&["rmi", &tag, &id]);
    d.ok(&["builder", "prune", "-af"]);
    d.assert_clean();
}

#[test]
fn cache_survives_restarts_and_goes_with_system_prune_and_more_bad_input() {
    let Some((mut d, _reg, img)) = with_busybox(&unique("buildrestart")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    // A large context (a 96 MiB sparse file): streamed through, not held in memory.
    let big = std::fs::File::create(dir.join("big")).unwrap();
    big.set_len(96 << 20).unwrap();
    write(
        dir,
        "Dockerfile",
        &format!("FROM {img}\nCOPY big /big\nRUN wc -c < /big > /size\n"),
    );
    let tag = unique("restart");
    let (ok, out, err, _) = build(&d, dir, &["-t", &tag]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        d.ok(&["run", "--rm", &tag, "cat", "/size"]).trim(),
        "100663296"
    );
    let hwm = std::fs::read_to_string(format!("/proc/{}/status", d.pid().unwrap()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").map(|v| {
                v.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
        })
        .unwrap();
    eprintln!("daemon peak RSS after a 96 MiB context: {hwm} kB");
    assert!(
        hwm < 96 * 1024,
        "the daemon's peak memory grew with the context: {hwm} kB"
    );
    // The cache outlives the daemon.
    d.stop();
    d.launch();
    let (ok, out, _, _) = build(&d, dir, &["-t", &tag]);
    assert!(ok);
    assert!(
        !out.contains("Running in"),
        "the cache did not survive a restart: {out}"
    );
    // system prune -a takes the build cache too.
    d.ok(&["rmi", &tag]);
    d.ok(&["system", "prune", "-af"]);
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Build Cache 0"), "{df}");

    // A missing base image; a bad flag; an unknown instruction: Docker's messages, the line.
    write(
        dir,
        "Dockerfile",
        "FROM 127.0.0.1:1/nothing/here:latest\nRUN true\n",
    );
    let (ok, _, err, _) = build(&d, dir, &[]);
    assert!(!ok);
    assert!(err.contains("nothing/here"), "{err}");
    write(
        dir,
        "Dockerfile",
        &format!("FROM {img}\nCOPY --bogus=1 a /b\n"),
    );
    let (ok, _, err, _) = build(&d, dir, &[]);
    assert!(!ok);
    assert!(err.contains("line 2") && err.contains("bogus"), "{err}");
    d.assert_clean();
}

#[test]
fn a_build_whose_client_goes_is_stopped() {
    let Some((d, _reg, img)) = with_busybox(&unique("buildcancel")) else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path().to_path_buf();
    write(
        &dir,
        "Dockerfile",
        &format!("FROM {img}\nRUN echo started; sleep 600\nRUN echo never\n"),
    );
    let mut child = d
        .docker_cmd(&["build", dir.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("started") {
        use std::io::Read;
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the build ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Ctrl-C: the client goes; the step is killed and its container removed.
    let _ = child.kill();
    let _ = child.wait();
    berth_testkit::daemon::wait_for("the step container to go", || {
        d.ok(&["ps", "-aq"]).trim().is_empty()
    });
    d.assert_clean();
    let log = d.log();
    assert!(!log.contains("never"), "{log}");
}
