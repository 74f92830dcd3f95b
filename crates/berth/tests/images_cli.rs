//! The image commands through the `berth` binary, against real registries: pull, images,
//! push (read back by skopeo), login/logout with Docker's credentials file.

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::images::{Registry, push_busybox};

fn berth(data_root: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--data-root")
        .arg(data_root)
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("BERTH_DATA_ROOT")
        .output()
        .expect("run berth")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "berth failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fail(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "berth should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn pull_list_and_push_to_another_registry() {
    let src = Registry::start();
    let dst = Registry::start();
    let digest = push_busybox(&src, "tools/busybox:1.36");
    let tmp = tempfile::tempdir().unwrap();
    let (root, cfg) = (tmp.path().join("root"), tmp.path().join("docker"));

    let name = format!("{}/tools/busybox:1.36", src.addr);
    let out = ok(&berth(&root, &cfg, &["pull", &name]));
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(root.join("metadata.redb").is_file(), "--data-root is used");
    // Not a terminal: plain lines, one per layer when it is done, as Docker prints them.
    assert!(out.contains("1.36: Pulling from tools/busybox"), "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 1, "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let out = ok(&berth(&root, &cfg, &["pull", &name]));
    assert!(out.contains(": Already exists"), "{out}");
    assert!(out.contains("Status: Image is up to date for"), "{out}");

    let list = ok(&berth(&root, &cfg, &["images"]));
    assert!(
        list.contains(&format!("{}/tools/busybox", src.addr)) && list.contains("1.36"),
        "{list}"
    );
    let ids = ok(&berth(&root, &cfg, &["images", "-q", "--no-trunc"]));
    assert!(ids.trim().starts_with("sha256:"), "{ids}");

    // BERTH_DATA_ROOT does the same as --data-root.
    let env = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["images", "-q"])
        .env("BERTH_DATA_ROOT", &root)
        .output()
        .unwrap();
    assert_eq!(ok(&env).trim().len(), 12);

    // Pushing needs the image under the target name: pulled under the source's name, the push
    // of an unknown name is refused clearly.
    let target = format!("{}/mirror/busybox:v1", dst.addr);
    let err = fail(&berth(&root, &cfg, &["push", &target]));
    assert!(err.contains("No such image"), "{err}");

    // Pulled by digest into another store: no tag; listed under its repository with
    // `<none>`, known by its digest reference, and a prune of dangling images keeps it.
    let root2 = tmp.path().join("root2");
    let by_digest = format!("{}/tools/busybox@{digest}", src.addr);
    ok(&berth(&root2, &cfg, &["pull", &by_digest]));
    let list = ok(&berth(&root2, &cfg, &["images"]));
    let row = list
        .lines()
        .find(|l| l.contains("tools/busybox"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("<none>"), "{list}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&berth(&root2, &cfg, &["image", "inspect", &by_digest]))).unwrap();
    assert_eq!(v[0]["RepoTags"], serde_json::json!([]));
    assert_eq!(v[0]["RepoDigests"], serde_json::json!([by_digest]));
    ok(&berth(&root2, &cfg, &["image", "prune", "-f"]));
    assert_eq!(
        ok(&berth(&root2, &cfg, &["images", "-q"])).lines().count(),
        1
    );
    let out = ok(&berth(&root2, &cfg, &["rmi", &by_digest]));
    assert!(
        out.contains("Untagged: ") && out.contains("Deleted: "),
        "{out}"
    );
}

#[test]
fn login_stores_credentials_that_pull_then_uses_and_logout_removes() {
    let reg = Registry::start_with_basic_auth("alice", "s3cret");
    berth_testkit::images::push_busybox_as(&reg, "private/bb:1", Some("alice:s3cret"));
    let tmp = tempfile::tempdir().unwrap();
    let (root, cfg) = (tmp.path().join("root"), tmp.path().join("docker"));
    let name = format!("{}/private/bb:1", reg.addr);

    let err = fail(&berth(&root, &cfg, &["pull", &name]));
    assert!(err.contains("authentication"), "{err}");

    let bad = fail(&berth(
        &root,
        &cfg,
        &["login", &reg.addr, "-u", "alice", "-p", "wrong"],
    ));
    assert!(bad.contains("logging in"), "{bad}");
    assert!(
        !cfg.join("config.json").exists(),
        "wrong credentials are not stored"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["login", &reg.addr, "-u", "alice", "--password-stdin"])
        .env("DOCKER_CONFIG", &cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(ok(&out).contains("Login Succeeded"));
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.join("config.json")).unwrap()).unwrap();
    assert!(stored["auths"][&reg.addr]["auth"].is_string(), "{stored}");

    ok(&berth(&root, &cfg, &["pull", &name]));

    // Push back under another repository of the same registry: blobs are mounted, not sent.
    let out = ok(&berth(&root, &cfg, &["push", &name]));
    assert!(out.contains("1: digest: sha256:"), "{out}");

    assert!(ok(&berth(&root, &cfg, &["logout", &reg.addr])).contains("Removing"));
    let err = fail(&berth(
        tmp.path().join("root2").as_path(),
        &cfg,
        &["pull", &name],
    ));
    assert!(err.contains("authentication"), "{err}");
}

#[test]
fn tag_push_save_load_import_inspect_history_rmi_prune() {
    let src = Registry::start();
    let dst = Registry::start();
    let digest = push_busybox(&src, "tools/busybox:1");
    let tmp = tempfile::tempdir().unwrap();
    let (root, cfg) = (tmp.path().join("root"), tmp.path().join("docker"));
    let name = format!("{}/tools/busybox:1", src.addr);
    ok(&berth(&root, &cfg, &["pull", "-q", &name]));

    // tag + push to another registry; skopeo reads back the same manifest.
    let target = format!("{}/mirror/busybox:v1", dst.addr);
    ok(&berth(&root, &cfg, &["tag", &name, &target]));
    let out = ok(&berth(&root, &cfg, &["push", &target]));
    assert!(out.contains(&format!("v1: digest: {digest}")), "{out}");
    // Docker's lines: the repository, the (one) layer prepared then pushed, the digest. The
    // config blob is pushed too, but it is not a layer: no line names it.
    let id = ok(&berth(&root, &cfg, &["images", "-q", &target]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        format!(
            "The push refers to repository [{}/mirror/busybox]",
            dst.addr
        )
    );
    let layer = lines[1].strip_suffix(": Preparing").expect(&out);
    assert_eq!(lines[2], format!("{layer}: Pushed"), "{out}");
    assert!(!out.contains(id.trim()), "the config is not listed: {out}");
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ok(&inspect).into_bytes()).unwrap();
    assert_eq!(v["Digest"], digest.as_str());

    // inspect and history.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&berth(&root, &cfg, &["image", "inspect", &target]))).unwrap();
    assert_eq!(v[0]["RootFS"]["Type"], "layers");
    assert!(v[0]["RepoTags"].as_array().unwrap().len() == 2, "{v}");
    // Pulled from one repository and pushed to another: a digest reference in each.
    assert_eq!(
        v[0]["RepoDigests"],
        serde_json::json!([
            format!("{}/tools/busybox@{digest}", src.addr),
            format!("{}/mirror/busybox@{digest}", dst.addr)
        ]),
        "{v}"
    );
    let hist = ok(&berth(&root, &cfg, &["history", &target]));
    assert!(hist.lines().count() >= 2, "{hist}");

    // save → load into a fresh store: same image ID and tags.
    let archive = tmp.path().join("bb.tar");
    ok(&berth(
        &root,
        &cfg,
        &["save", "-o", archive.to_str().unwrap(), &target],
    ));
    let root2 = tmp.path().join("root2");
    let out = ok(&berth(
        &root2,
        &cfg,
        &["load", "-i", archive.to_str().unwrap()],
    ));
    assert!(out.contains("Loaded image: "), "{out}");
    let id1 = ok(&berth(
        &root,
        &cfg,
        &["images", "-q", "--no-trunc", &target],
    ));
    let id2 = ok(&berth(&root2, &cfg, &["images", "-q", "--no-trunc"]));
    assert_eq!(id1.lines().next(), id2.lines().next());
    let err = fail(&berth(
        &root2,
        &cfg,
        &[
            "load",
            "-i",
            tmp.path().join("nothing.tar").to_str().unwrap(),
        ],
    ));
    assert!(err.contains("nothing.tar"), "{err}");

    // import of a root file system tarball.
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), "hi\n").unwrap();
    let tarball = tmp.path().join("rootfs.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let id = ok(&berth(
        &root,
        &cfg,
        &[
            "import",
            tarball.to_str().unwrap(),
            "imported:1",
            "-c",
            "CMD [\"/bin/sh\"]",
        ],
    ));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert!(ok(&berth(&root, &cfg, &["images"])).contains("imported"));

    // rmi: untag, then delete with the last tag; prune -a removes the rest and its layers.
    let out = ok(&berth(&root, &cfg, &["rmi", &target]));
    assert!(out.contains("Untagged:"), "{out}");
    let out = ok(&berth(&root, &cfg, &["rmi", "imported:1"]));
    assert!(out.contains("Deleted: sha256:"), "{out}");
    let err = fail(&berth(&root, &cfg, &["rmi", "imported:1"]));
    assert!(
        err.contains("No such image") || err.contains("no such image"),
        "{err}"
    );
    let out = ok(&berth(&root, &cfg, &["image", "prune", "-a", "-f"]));
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(ok(&berth(&root, &cfg, &["images", "-q"])).trim(), "");
    let layers = std::fs::read_dir(root.join("layers"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(layers, 0, "prune removed the unused layers");
    ok(&berth(&root, &cfg, &["system", "df"]));
}

#[test]
fn import_then_bundle_then_run_with_the_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, cfg) = (tmp.path().join("root"), tmp.path().join("docker"));
    let tarball = tmp.path().join("busybox.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(berth_testkit::busybox_rootfs())
            .arg("-chf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let name = format!("bb-{}:1", std::process::id());
    ok(&berth(
        &root,
        &cfg,
        &[
            "import",
            tarball.to_str().unwrap(),
            &name,
            "-c",
            "CMD [\"/bin/sh\", \"-c\", \"echo from-image $GREETING\"]",
            "-c",
            "ENV GREETING=hello",
        ],
    ));
    let bundle = tmp.path().join("bundle");
    ok(&berth(
        &root,
        &cfg,
        &["image", "bundle", &name, bundle.to_str().unwrap()],
    ));
    assert!(bundle.join("config.json").is_file());
    let id = format!("bundle-cli-{}", std::process::id());
    let state = tmp.path().join("state");
    let out = ok(&berth(
        &root,
        &cfg,
        &[
            "runtime",
            "--root",
            state.to_str().unwrap(),
            "run",
            "--bundle",
            bundle.to_str().unwrap(),
            &id,
        ],
    ));
    assert_eq!(out.trim(), "from-image hello");
    ok(&berth(
        &root,
        &cfg,
        &["image", "unbundle", bundle.to_str().unwrap()],
    ));
    assert!(!bundle.exists());

    // A container that changes its root filesystem: diff, commit and export of its bundle.
    let changed = tmp.path().join("changed");
    ok(&berth(
        &root,
        &cfg,
        &[
            "image",
            "bundle",
            &name,
            changed.to_str().unwrap(),
            "/bin/sh",
            "-c",
            "echo kept > /etc/greeting && rm /bin/zcat",
        ],
    ));
    let run = |bundle: &Path, id: &str| {
        ok(&berth(
            &root,
            &cfg,
            &[
                "runtime",
                "--root",
                state.to_str().unwrap(),
                "run",
                "--bundle",
                bundle.to_str().unwrap(),
                id,
            ],
        ))
    };
    run(&changed, &format!("{id}-changes"));
    let diff = ok(&berth(
        &root,
        &cfg,
        &["image", "diff", changed.to_str().unwrap()],
    ));
    assert_eq!(
        diff.lines().collect::<Vec<_>>(),
        ["C /bin", "D /bin/zcat", "C /etc", "A /etc/greeting"],
        "{diff}"
    );
    let exported = tmp.path().join("exported.tar");
    ok(&berth(
        &root,
        &cfg,
        &[
            "image",
            "export",
            changed.to_str().unwrap(),
            "-o",
            exported.to_str().unwrap(),
        ],
    ));
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&exported)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "etc/greeting")
    );
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/sh")
    );
    assert!(
        !listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/zcat")
    );
    let committed = format!("committed-{}:1", std::process::id());
    let new_id = ok(&berth(
        &root,
        &cfg,
        &[
            "image",
            "commit",
            changed.to_str().unwrap(),
            &committed,
            "-m",
            "greeting",
            "-c",
            "CMD [\"/bin/sh\", \"-c\", \"cat /etc/greeting; ls /bin/zcat\"]",
        ],
    ));
    assert!(new_id.trim().starts_with("sha256:"), "{new_id}");
    let hist = ok(&berth(&root, &cfg, &["history", &committed]));
    assert!(hist.contains("greeting"), "{hist}");
    let again = tmp.path().join("again");
    ok(&berth(
        &root,
        &cfg,
        &["image", "bundle", &committed, again.to_str().unwrap()],
    ));
    // The committed image has the file and not the deleted one (ls fails, so does the run).
    let o = berth(
        &root,
        &cfg,
        &[
            "runtime",
            "--root",
            state.to_str().unwrap(),
            "run",
            "--bundle",
            again.to_str().unwrap(),
            &format!("{id}-committed"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "kept");
    assert!(!o.status.success());
    let err = fail(&berth(
        &root,
        &cfg,
        &["image", "diff", tmp.path().to_str().unwrap()],
    ));
    assert!(err.contains("opening the bundle"), "{err}");
    for b in [&changed, &again] {
        ok(&berth(
            &root,
            &cfg,
            &["image", "unbundle", b.to_str().unwrap()],
        ));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(tmp.path().to_str().unwrap()),
        "no mount left"
    );
}

/// HTTPS with the system's roots (here `SSL_CERT_FILE`, which the system root loader honours),
/// and plain HTTP only for a registry marked insecure. The registries listen on 10.123.0.1, an
/// address of the loopback device of a network namespace of the test's own (a 127.0.0.0/8
/// registry would be plain HTTP by default).
#[test]
fn https_registries_are_verified_and_plain_http_needs_insecure_registry() {
    let (_keep, layout, _) = berth_testkit::images::busybox_layout();
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
set -u
cd "$WORK"
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
ip link set lo up
ip addr add 10.123.0.1/32 dev lo
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
  -subj /CN=berth-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=10.123.0.1 2>/dev/null
printf 'subjectAltName=IP:10.123.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
  -extfile ext 2>/dev/null
for r in tls plain; do
  port=5000; [ $r = plain ] && port=5001
  { echo "version: 0.1"
    echo "storage: {filesystem: {rootdirectory: $WORK/$r-data}}"
    echo "http:"
    echo "  addr: 10.123.0.1:$port"
    [ $r = tls ] && echo "  tls: {certificate: $WORK/srv.pem, key: $WORK/srv.key}"
  } > $r.yml
  docker-registry serve $r.yml > $r.log 2>&1 &
done
for i in $(seq 100); do
  curl -sf --cacert ca.pem https://10.123.0.1:5000/v2/ >/dev/null &&
    curl -sf http://10.123.0.1:5001/v2/ >/dev/null && break
  sleep 0.1
done
for r in "https://10.123.0.1:5000" "http://10.123.0.1:5001"; do
  skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:latest" \
    "docker://${r#*://}/bb:1" || echo "SKOPEO FAILED $r"
done
run() { # name, then berth's arguments
  name=$1; shift
  "$BERTH" --data-root "$WORK/store-$name" "$@" > "out-$name" 2> "err-$name"
  echo "CASE $name rc=$? $(tr '\n' ' ' < "err-$name")"
}
run untrusted pull 10.123.0.1:5000/bb:1
SSL_CERT_FILE=$WORK/ca.pem run trusted pull 10.123.0.1:5000/bb:1
run plain pull 10.123.0.1:5001/bb:1
run insecure pull --insecure-registry 10.123.0.1:5001 10.123.0.1:5001/bb:1
grep -c '"GET /v2/bb/manifests/1 HTTP/1.1" 200' plain.log | sed 's/^/PLAIN MANIFEST GETS /'
"#;
    let out = Command::new("unshare")
        .args(["--net", "--", "bash", "-c", script])
        .env("WORK", tmp.path())
        .env("LAYOUT", &layout)
        .env("BERTH", env!("CARGO_BIN_EXE_berth"))
        .env("DOCKER_CONFIG", tmp.path().join("docker"))
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("SKOPEO FAILED"), "{all}");
    let case = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("CASE {name} ")))
            .unwrap_or_else(|| panic!("no case {name}: {all}"))
            .to_string()
    };
    // An unknown issuer is refused, naming the certificate problem.
    let untrusted = case("untrusted");
    assert!(untrusted.starts_with("rc=1 "), "{untrusted}");
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
    // The same registry with its CA among the roots: pulled over HTTPS.
    assert!(case("trusted").starts_with("rc=0 "), "{all}");
    // A plain HTTP registry that is not local is not spoken to in plain HTTP by default…
    assert!(case("plain").starts_with("rc=1 "), "{all}");
    // …only when marked insecure.
    assert!(case("insecure").starts_with("rc=0 "), "{all}");
    assert!(text.contains("PLAIN MANIFEST GETS 1"), "{all}");
}

/// Token (Bearer) authentication, as Docker Hub and most registries do it: a real
/// docker-registry verifying the ES256 tokens of a token server of the test's own.
#[test]
fn token_authentication_for_login_push_and_pull() {
    let reg = Registry::start_with_token_auth("bob", "t0ken-pw");
    let tmp = tempfile::tempdir().unwrap();
    let (root, cfg) = (tmp.path().join("root"), tmp.path().join("docker"));
    let tarball = tmp.path().join("busybox.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(berth_testkit::busybox_rootfs())
            .arg("-chf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let name = format!("{}/team/bb:1", reg.addr);
    ok(&berth(
        &root,
        &cfg,
        &["import", tarball.to_str().unwrap(), &name],
    ));

    // Anonymous: the token server grants pull only, so the registry refuses the push.
    let err = fail(&berth(&root, &cfg, &["push", &name]));
    assert!(
        err.contains("denied") || err.contains("authentication") || err.contains("unauthorized"),
        "{err}"
    );
    // A wrong password: the token server refuses it, nothing is stored.
    let bad = fail(&berth(
        &root,
        &cfg,
        &["login", &reg.addr, "-u", "bob", "-p", "wrong"],
    ));
    assert!(bad.contains("logging in"), "{bad}");
    assert!(!cfg.join("config.json").exists());
    assert!(reg.token_requests().iter().any(|r| r == "refused"));

    // Logged in: tokens with push, for the repository pushed to.
    ok(&berth(
        &root,
        &cfg,
        &["login", &reg.addr, "-u", "bob", "-p", "t0ken-pw"],
    ));
    let out = ok(&berth(&root, &cfg, &["push", &name]));
    assert!(out.contains("1: digest: sha256:"), "{out}");
    assert!(
        reg.token_requests().iter().any(|r| r.starts_with("bob ")
            && r.contains("repository:team/bb:")
            && r.contains("push")),
        "{:?}",
        reg.token_requests()
    );

    // Pulled back into an empty store with the credentials, and anonymously (pull is open).
    for (store, config) in [("pulled", &cfg), ("anonymous", &tmp.path().join("nobody"))] {
        let root = tmp.path().join(store);
        let out = ok(&berth(&root, config, &["pull", &name]));
        assert!(out.contains("Pull complete"), "{out}");
        let ids = ok(&berth(&root, config, &["images", "-q", "--no-trunc"]));
        let first = ok(&berth(
            &tmp.path().join("root"),
            &cfg,
            &["images", "-q", "--no-trunc", &name],
        ));
        assert_eq!(ids.trim(), first.trim());
    }
    assert!(
        reg.token_requests()
            .iter()
            .any(|r| r.starts_with("anonymous ") && r.contains("repository:team/bb:pull")),
        "{:?}",
        reg.token_requests()
    );
}

#[test]
fn a_multi_platform_pull_prints_and_records_the_index_digest() {
    use berth_testkit::images::{image_index, oci_layout_for, skopeo_copy};
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut descs = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layout = tmp.path().join(arch);
        descs.push(oci_layout_for(
            &layout,
            "latest",
            arch,
            &berth_testkit::busybox_rootfs(),
            &["sh"],
        ));
        skopeo_copy(
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{}/multi:{arch}", reg.addr),
        );
    }
    let index = image_index(&descs);
    assert_eq!(
        reg.put_manifest(
            "multi",
            "1",
            "application/vnd.oci.image.index.v1+json",
            &index
        ),
        201
    );
    let index_digest = berth_store::Digest::of(&index);
    let (root, cfg) = (tmp.path().join("root"), tmp.path().join("docker"));
    let name = format!("{}/multi:1", reg.addr);
    let out = ok(&berth(
        &root,
        &cfg,
        &["pull", "--platform", "linux/arm64", &name],
    ));
    assert!(out.contains(&format!("Digest: {index_digest}\n")), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&berth(&root, &cfg, &["image", "inspect", &name]))).unwrap();
    let by_digest = format!("{}/multi@{index_digest}", reg.addr);
    assert_eq!(v[0]["RepoDigests"], serde_json::json!([by_digest]));
    assert_eq!(v[0]["Architecture"], "arm64");
    // The image is found by the index's digest.
    let again: serde_json::Value =
        serde_json::from_str(&ok(&berth(&root, &cfg, &["image", "inspect", &by_digest]))).unwrap();
    assert_eq!(again[0]["Id"], v[0]["Id"]);
}

#[test]
fn loading_a_file_that_is_not_an_archive_says_so_without_echoing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, cfg) = (tmp.path().join("root"), tmp.path().join("docker"));
    let err = fail(&berth(&root, &cfg, &["load", "-i", "/etc/passwd"]));
    assert_eq!(
        err,
        "berth: loading the archive: not a tar archive (or a corrupt one)\n"
    );
}
