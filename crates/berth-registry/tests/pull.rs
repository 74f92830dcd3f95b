//! Pulling from a real registry (Debian's docker-registry on 127.0.0.1) what skopeo pushed.

use berth_registry::{Client, Options, Platform, Reference};
use berth_store::{BlobStore, Digest};
use berth_testkit::images::{Registry, busybox_layout, skopeo_copy};

#[test]
fn pull_what_skopeo_pushed_byte_for_byte() {
    let reg = Registry::start();
    let (_tmp, layout, digest) = busybox_layout();
    skopeo_copy(
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/lib/busybox:1.36", reg.addr),
    );

    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let client = Client::new(Options::default());
    let r = Reference::parse(&format!("{}/lib/busybox:1.36", reg.addr)).unwrap();
    let pulled = client.pull(&r, &Platform::host(), &store).unwrap();
    assert_eq!(pulled.digest.to_string(), digest);
    // Every blob of the layout is in the store, with the same bytes.
    for d in std::iter::once(pulled.manifest.config.digest.clone())
        .chain(pulled.manifest.layers.iter().map(|l| l.digest.clone()))
        .chain(std::iter::once(digest.clone()))
    {
        let d = Digest::parse(&d).unwrap();
        let ours = std::fs::read(store.path(&d)).unwrap();
        let theirs = std::fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap();
        assert!(ours == theirs, "blob {d} differs");
    }
    // By digest, too.
    let by_digest = Reference::parse(&format!("{}/lib/busybox@{digest}", reg.addr)).unwrap();
    assert_eq!(
        client
            .resolve(&by_digest, &Platform::host())
            .unwrap()
            .digest
            .to_string(),
        digest
    );
}

#[test]
fn missing_images_and_unreachable_registries_are_clear_errors() {
    let reg = Registry::start();
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let client = Client::new(Options::default());
    let r = Reference::parse(&format!("{}/nothing/here:1", reg.addr)).unwrap();
    let err = client
        .pull(&r, &Platform::host(), &store)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("404") && err.contains("MANIFEST_UNKNOWN") || err.contains("NAME_UNKNOWN"),
        "{err}"
    );
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = Reference::parse(&format!("127.0.0.1:{port}/x:1")).unwrap();
    let err = client
        .pull(&r, &Platform::host(), &store)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unreachable"), "{err}");
    assert!(
        store.list().unwrap().is_empty(),
        "a failed pull stores nothing"
    );
}
