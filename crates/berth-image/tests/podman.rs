//! Interoperability with podman: what `podman save` writes (docker-archive and oci-archive)
//! loads here, and what `save` writes here loads into podman. podman runs with storage of its
//! own in a temporary directory (vfs driver), never the host's.

mod common;

use std::path::Path;
use std::process::Command;

use berth_image::ImageStore;
use berth_registry::{Client, Options, Platform, PlatformExt, Reference};
use berth_testkit::images::{Registry, push_busybox};
use common::{hex, rootfs_dir, run_in, store};

/// podman with private storage under a temporary directory.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            dir: tempfile::Builder::new()
                .prefix("berth-podman-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Run podman; its stdout (panics with its stderr on failure).
    fn run(&self, args: &[&str]) -> String {
        let d = self.dir.path();
        let out = Command::new("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args)
            .output()
            .expect("running podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (ID, tags) of an image, as podman reports them.
    fn inspect(&self, name: &str) -> (String, String) {
        let out = self.run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.RepoTags}}",
            name,
        ]);
        let (id, tags) = out.trim().split_once(' ').expect("id and tags");
        (id.to_string(), tags.to_string())
    }
}

fn load_file(s: &ImageStore, path: &Path) -> Vec<berth_image::ImageRecord> {
    s.load(std::io::BufReader::new(std::fs::File::open(path).unwrap()))
        .unwrap()
}

fn assert_runs(root: &Path, s: &ImageStore, img: &berth_image::ImageRecord) {
    let fs = s.create_rootfs(img, &rootfs_dir(root, "run")).unwrap();
    assert_eq!(run_in(&fs.merged(), &["echo", "hello"]), "hello\n");
    s.remove_rootfs(&fs).unwrap();
}

#[test]
fn podman_save_both_formats_load_here() {
    let reg = Registry::start();
    push_busybox(&reg, "bb:1");
    let name = format!("{}/bb:1", reg.addr);
    let podman = Podman::new();
    podman.run(&["pull", "--quiet", "--tls-verify=false", &name]);
    let (podman_id, _) = podman.inspect(&name);
    for format in ["docker-archive", "oci-archive"] {
        let file = podman.path(&format!("{format}.tar"));
        podman.run(&[
            "save",
            "--quiet",
            "--format",
            format,
            "-o",
            file.to_str().unwrap(),
            &name,
        ]);
        let (d, s) = store();
        let loaded = load_file(&s, &file);
        assert_eq!(loaded.len(), 1, "{format}");
        assert_eq!(hex(&loaded[0].id), podman_id, "{format}: same image ID");
        assert_eq!(loaded[0].repo_tags, std::slice::from_ref(&name), "{format}");
        assert_runs(d.path(), &s, &loaded[0]);
    }
}

#[test]
fn save_here_loads_into_podman_and_back() {
    let reg = Registry::start();
    push_busybox(&reg, "bb:1");
    let name = format!("{}/bb:1", reg.addr);
    let (_d, s) = store();
    let img = s
        .pull(
            &Client::new(Options::default()),
            &Reference::parse(&name).unwrap(),
            &Platform::host(),
        )
        .unwrap();
    s.tag(&name, "localhost/berth:saved").unwrap();
    let podman = Podman::new();
    let file = podman.path("berth.tar");
    s.save(
        &[&name, "localhost/berth:saved"],
        std::fs::File::create(&file).unwrap(),
    )
    .unwrap();
    podman.run(&["load", "--quiet", "-i", file.to_str().unwrap()]);
    for n in [name.as_str(), "localhost/berth:saved"] {
        let (id, tags) = podman.inspect(n);
        assert_eq!(id, hex(&img.id), "{n}: same image ID in podman");
        assert!(tags.contains(n), "{n}: podman has the tag ({tags})");
    }
    // And back: podman's save of it loads here as the same image.
    let back = podman.path("back.tar");
    podman.run(&[
        "save",
        "--quiet",
        "--format",
        "docker-archive",
        "-o",
        back.to_str().unwrap(),
        "localhost/berth:saved",
    ]);
    let (d2, s2) = store();
    let loaded = load_file(&s2, &back);
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(loaded[0].diff_ids, img.diff_ids);
    assert_eq!(loaded[0].repo_tags, ["localhost/berth:saved"]);
    assert_runs(d2.path(), &s2, &loaded[0]);
}
