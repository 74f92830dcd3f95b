//! Pulling into the image store from a real registry: blobs, unpacked layers, tags.

use berth_image::ImageStore;
use berth_registry::{Client, Options, Platform, Reference};
use berth_testkit::images::{Registry, busybox_layout, skopeo_copy};
use std::os::unix::fs::MetadataExt;

#[test]
fn pull_unpacks_layers_once_and_records_tags() {
    let reg = Registry::start();
    let (_tmp, layout, digest) = busybox_layout();
    for tag in ["1", "2"] {
        skopeo_copy(
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{}/bb:{tag}", reg.addr),
        );
    }
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let client = Client::new(Options::default());
    let r1 = Reference::parse(&format!("{}/bb:1", reg.addr)).unwrap();
    let img = store.pull(&client, &r1, &Platform::host()).unwrap();
    assert_eq!(img.manifest, digest);
    assert_eq!(img.repo_tags, [r1.to_string()]);
    assert_eq!(img.diff_ids.len(), 1);
    let layer = store.layer_path(&img.diff_ids[0]);
    assert!(layer.join("bin/busybox").is_file(), "the layer is unpacked");
    let ino = std::fs::metadata(&layer).unwrap().ino();

    // The same image under another tag: the layer is shared, not unpacked again.
    let r2 = Reference::parse(&format!("{}/bb:2", reg.addr)).unwrap();
    let again = store.pull(&client, &r2, &Platform::host()).unwrap();
    assert_eq!(again.id, img.id);
    assert_eq!(std::fs::metadata(&layer).unwrap().ino(), ino);
    let all = store.images().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].repo_tags, [r1.to_string(), r2.to_string()]);
    assert_eq!(
        store
            .lookup(&format!("{}/bb:2", reg.addr))
            .unwrap()
            .unwrap()
            .id,
        img.id
    );
    assert_eq!(store.lookup(&img.id).unwrap().unwrap().id, img.id);
    assert!(store.lookup("nothing:here").unwrap().is_none());

    // Reopening finds everything (the database is on disk).
    drop(store);
    let store = ImageStore::open(root.path()).unwrap();
    assert_eq!(store.images().unwrap().len(), 1);
}

#[test]
fn a_failed_pull_leaves_the_store_as_it_was() {
    let reg = Registry::start();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let client = Client::new(Options::default());
    let r = Reference::parse(&format!("{}/missing:1", reg.addr)).unwrap();
    assert!(store.pull(&client, &r, &Platform::host()).is_err());
    assert!(store.images().unwrap().is_empty());
    assert!(store.blobs().list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(root.path().join("layers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn copy_on_write_rootfs_over_shared_layers() {
    let reg = Registry::start();
    let (_tmp, layout, _) = busybox_layout();
    skopeo_copy(
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/bb:1", reg.addr),
    );
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let img = store
        .pull(
            &Client::new(Options::default()),
            &Reference::parse(&format!("{}/bb:1", reg.addr)).unwrap(),
            &Platform::host(),
        )
        .unwrap();
    let layer = store.layer_path(&img.diff_ids[0]);
    let c1 = store.create_rootfs(&img, &root.path().join("c1")).unwrap();
    let c2 = store.create_rootfs(&img, &root.path().join("c2")).unwrap();
    assert!(c1.merged().join("bin/busybox").is_file());
    // Writes land in the container's upper directory only.
    std::fs::write(c1.merged().join("etc/hostname"), "changed\n").unwrap();
    std::fs::remove_file(c1.merged().join("etc/passwd")).unwrap();
    assert_eq!(
        std::fs::read_to_string(c1.upper().join("etc/hostname")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(c2.merged().join("etc/hostname")).unwrap(),
        "busybox\n"
    );
    assert!(
        layer.join("etc/passwd").is_file(),
        "the shared layer is untouched"
    );
    assert!(c2.merged().join("etc/passwd").is_file());
    for c in [c1, c2] {
        c.remove().unwrap();
        assert!(!c.dir.exists());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.path().to_str().unwrap()),
        "no mount left"
    );
}
