//! Image configs written back by berth (commit, import `--change`) keep every field berth does
//! not model: Docker's Healthcheck, OnBuild, Shell, ArgsEscaped, Domainname in `config`, and
//! container_config, docker_version, container at the top.

mod common;

use berth_image::commit::CommitOptions;
use berth_image::rootfs::RootfsKind;
use berth_image::{ImageRecord, ImageStore};
use berth_testkit::images::tar_dir;
use common::{add_image, store};
use serde_json::{Value, json};

fn config_of(s: &ImageStore, rec: &ImageRecord) -> Value {
    let d = berth_store::Digest::parse(&rec.id).unwrap();
    serde_json::from_slice(&std::fs::read(s.blobs().path(&d)).unwrap()).unwrap()
}

/// Commit a copy of `rec`'s root filesystem (no changes in it) with these config changes.
fn commit(
    s: &ImageStore,
    dir: &std::path::Path,
    rec: &ImageRecord,
    changes: &[&str],
) -> ImageRecord {
    let root = s
        .create_rootfs_with(
            rec,
            &dir.join(format!("root-{}", &rec.id[7..19])),
            RootfsKind::Copy,
        )
        .unwrap();
    let opts = CommitOptions {
        changes: changes.iter().map(|c| c.to_string()).collect(),
        ..CommitOptions::default()
    };
    let new = s.commit(&root, &rec.id, &opts).unwrap();
    s.remove_rootfs(&root).unwrap();
    new
}

#[test]
fn docker_config_fields_survive_commit_and_import_changes() {
    let (dir, s) = store();
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir(tree.path().join("etc")).unwrap();
    std::fs::write(tree.path().join("etc/hello"), "hi\n").unwrap();

    // import --change: HEALTHCHECK and ONBUILD land in the config as Docker writes them.
    let imported = s
        .import(
            &tar_dir(tree.path())[..],
            Some("localhost/imported:1"),
            &[
                "HEALTHCHECK --interval=30s --retries=2 CMD true".into(),
                "ONBUILD RUN echo hi".into(),
                "CMD [\"sh\"]".into(),
            ],
        )
        .unwrap();
    let c = config_of(&s, &imported);
    let health =
        json!({"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000u64, "Retries": 2});
    assert_eq!(c["config"]["Healthcheck"], health, "{c}");
    assert_eq!(c["config"]["OnBuild"], json!(["RUN echo hi"]), "{c}");
    // … and a commit of that image keeps them beside its own change.
    let committed = commit(&s, dir.path(), &imported, &["ENV A=1"]);
    let c = config_of(&s, &committed);
    assert_eq!(c["config"]["Healthcheck"], health, "{c}");
    assert_eq!(c["config"]["OnBuild"], json!(["RUN echo hi"]), "{c}");
    assert_eq!(c["config"]["Env"], json!(["A=1"]), "{c}");

    // An image made by Docker (its config has fields oci-spec does not model) committed with
    // a change: every one of them is still there.
    let docker = json!({
        "architecture": "amd64", "os": "linux",
        "docker_version": "20.10.24", "container": "3f2a9c",
        "container_config": {"Hostname": "3f2a9c", "Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]},
        "config": {
            "Cmd": ["sh"], "Env": ["PATH=/bin"],
            "Healthcheck": {"Test": ["CMD", "/bin/check"], "Interval": 5_000_000_000u64},
            "OnBuild": ["COPY . /app"], "Shell": ["/bin/bash", "-c"], "ArgsEscaped": true,
            "Domainname": "example.org", "Hostname": "", "AttachStdout": false
        },
    });
    let base = add_image(
        &s,
        &[tar_dir(tree.path())],
        docker.clone(),
        "localhost/docker-made:1",
    );
    let committed = commit(&s, dir.path(), &base, &["LABEL made=here", "USER nobody"]);
    let c = config_of(&s, &committed);
    for key in ["docker_version", "container", "container_config"] {
        assert_eq!(c[key], docker[key], "{key}: {c}");
    }
    for (key, value) in docker["config"].as_object().unwrap() {
        assert_eq!(&c["config"][key], value, "config.{key}: {c}");
    }
    assert_eq!(c["config"]["Labels"], json!({"made": "here"}));
    assert_eq!(c["config"]["User"], "nobody");
    // `docker image inspect` shows them too.
    let inspect = s.inspect(&committed.id).unwrap();
    assert_eq!(
        inspect["Config"]["Healthcheck"],
        docker["config"]["Healthcheck"]
    );
    assert_eq!(inspect["Config"]["OnBuild"], docker["config"]["OnBuild"]);
}
