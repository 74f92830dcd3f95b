//! Images through the engine, driven by the docker CLI: pull, tag, push, save/load, import,
//! rmi of an image a container uses (Docker's conflict), prune keeping what containers use.

use berth_testkit::daemon::{TestDaemon, with_busybox as daemon};
use berth_testkit::{is_root, unique};

#[test]
fn tag_push_save_load_import() {
    let Some((d, reg, img)) = daemon(&unique("imgs")) else {
        return;
    };
    let pushed = format!("{}/{}:v1", reg.addr, unique("pushed"));
    d.ok(&["tag", &img, &pushed]);
    let out = d.ok(&["push", &pushed]);
    assert!(out.contains("digest: sha256:"), "{out}");
    // The registry has it.
    let path = pushed
        .strip_prefix(&format!("{}/", reg.addr))
        .unwrap()
        .replace(":v1", "/manifests/v1");
    let (status, _) = reg.get(&format!("/v2/{path}")).expect("registry answers");
    assert_eq!(status, 200);
    let archive = d.dir.path().join("bb.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), &pushed]);
    assert!(std::fs::metadata(&archive).unwrap().len() > 1_000_000);
    d.ok(&["rmi", &pushed]);
    let out = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: "), "{out}");
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains(&pushed), "{images}");
    // import: a root filesystem tarball becomes an image that runs.
    let tarball = d.dir.path().join("rootfs.tar");
    std::fs::write(
        &tarball,
        berth_testkit::images::tar_dir(&berth_testkit::busybox_rootfs()),
    )
    .unwrap();
    let imported = unique("imported");
    d.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/echo\", \"from import\"]",
        tarball.to_str().unwrap(),
        &imported,
    ]);
    assert_eq!(d.ok(&["run", "--rm", &imported]), "from import\n");
    d.ok(&["rmi", &imported]);
    d.assert_clean();
}

#[test]
fn an_image_in_use_is_kept() {
    let Some((d, _reg, img)) = daemon(&unique("inuse")) else {
        return;
    };
    let name = unique("user");
    d.ok(&["create", "--name", &name, &img, "true"]);
    let err = d.fails(&["rmi", &img]);
    assert!(
        err.contains("conflict: unable to remove repository reference"),
        "{err}"
    );
    assert!(err.contains("is using its referenced image"), "{err}");
    // Forced: the name goes, the image stays for the container, which still runs.
    d.ok(&["rmi", "-f", &img]);
    d.ok(&["image", "prune", "-a", "-f"]);
    d.ok(&["start", "-a", &name]);
    let st = d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(st.trim(), "0");
    d.ok(&["rm", &name]);
    // Now nothing uses it: prune takes it.
    d.ok(&["image", "prune", "-a", "-f"]);
    let images = d.ok(&["images", "-q"]);
    assert!(images.trim().is_empty(), "{images}");
    d.assert_clean();
}

#[test]
fn docker_hub_names_through_a_registry_mirror() {
    if !is_root() {
        return;
    }
    // The daemon is started first (the registry serves in its network namespace), then
    // again with the mirror configured.
    let mut d = TestDaemon::start(&unique("mirror"), serde_json::json!({}));
    let reg = d.registry();
    // The mirror holds Docker Hub's repository path (library/NAME).
    let repo = unique("mirrored");
    berth_testkit::images::push_busybox(&reg, &format!("library/{repo}:latest"));
    d.reconfigure(serde_json::json!({"registry-mirrors": [format!("http://{}", reg.addr)]}));
    d.ok(&["pull", "-q", &repo]);
    let tags = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(tags.trim(), format!("{repo}:latest"));
    assert_eq!(
        d.ok(&["run", "--rm", &repo, "echo", "via mirror"]),
        "via mirror\n"
    );
    // A name the mirror does not have: Docker Hub is not reachable here, so the pull fails.
    let err = d.fails(&["pull", &unique("absent")]);
    assert!(!err.is_empty());
    d.assert_clean();
}
