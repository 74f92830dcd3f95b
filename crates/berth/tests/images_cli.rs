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
