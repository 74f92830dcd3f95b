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

#[test]
fn an_index_resolves_to_the_asked_platform() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    // One image per architecture (the same busybox files), pushed by skopeo, then an index
    // over both put as multi:1.
    let mut descs = Vec::new();
    let mut by_arch = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layout = tmp.path().join(arch);
        let desc = berth_testkit::images::oci_layout_for(
            &layout,
            "latest",
            arch,
            &berth_testkit::busybox_rootfs(),
            &["sh"],
        );
        skopeo_copy(
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{}/multi:{arch}", reg.addr),
        );
        by_arch.push((
            arch.to_string(),
            desc["digest"].as_str().unwrap().to_string(),
        ));
        descs.push(desc);
    }
    let index = berth_testkit::images::image_index(&descs);
    assert_eq!(
        reg.put_manifest(
            "multi",
            "1",
            "application/vnd.oci.image.index.v1+json",
            &index
        ),
        201
    );
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let client = Client::new(Options::default());
    let r = Reference::parse(&format!("{}/multi:1", reg.addr)).unwrap();
    for (arch, digest) in &by_arch {
        let p = Platform::parse(&format!("linux/{arch}")).unwrap();
        assert_eq!(
            &client.pull(&r, &p, &store).unwrap().digest.to_string(),
            digest,
            "{arch} {by_arch:?}"
        );
    }
    let err = client
        .resolve(&r, &Platform::parse("linux/s390x").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn basic_auth_with_and_without_credentials() {
    let reg = Registry::start_with_basic_auth("tester", "s3cret");
    let digest =
        berth_testkit::images::push_busybox_as(&reg, "private/bb:1", Some("tester:s3cret"));
    let r = Reference::parse(&format!("{}/private/bb:1", reg.addr)).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();

    let anonymous = Client::new(Options::default());
    let err = anonymous
        .pull(&r, &Platform::host(), &store)
        .unwrap_err()
        .to_string();
    assert!(err.contains("authentication failed"), "{err}");

    let mut opts = Options::default();
    opts.credentials.insert(
        reg.addr.clone(),
        berth_registry::Credentials {
            username: "tester".into(),
            password: "wrong".into(),
        },
    );
    let err = Client::new(opts.clone())
        .pull(&r, &Platform::host(), &store)
        .unwrap_err()
        .to_string();
    assert!(err.contains("authentication failed"), "{err}");
    assert!(store.list().unwrap().is_empty());

    opts.credentials.insert(
        reg.addr.clone(),
        berth_registry::Credentials {
            username: "tester".into(),
            password: "s3cret".into(),
        },
    );
    let pulled = Client::new(opts)
        .pull(&r, &Platform::host(), &store)
        .unwrap();
    assert_eq!(pulled.digest.to_string(), digest);
}

/// A registry that answers every manifest request with a schema 1 manifest (what old
/// registries serve, and what Debian's docker-registry refuses to store, so it cannot play
/// this part): a registry's own answer, not a manifest berth can use.
#[test]
fn a_manifest_of_an_unknown_media_type_is_a_clear_error_and_stores_nothing() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    // Every request of every connection answered alike: 200 and the schema 1 manifest.
    let serve = |stream: std::net::TcpStream| {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let body = if line.contains("/manifests/") {
                r#"{"schemaVersion":1,"name":"old/app","tag":"1","fsLayers":[],"history":[],"signatures":[]}"#
            } else {
                "{}"
            };
            let head_only = line.starts_with("HEAD ");
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.distribution.manifest.v1+prettyjws\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                if head_only { "" } else { body }
            );
        }
    };
    let server = std::thread::spawn(move || {
        std::thread::scope(|t| {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        t.spawn(move || serve(stream));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        })
    });
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let client = Client::new(Options::default());
    let r = Reference::parse(&format!("{addr}/old/app:1")).unwrap();
    let err = client.pull(&r, &Platform::host(), &store).unwrap_err();
    assert!(
        matches!(&err, berth_registry::client::Error::UnknownMediaType(t) if t.contains("manifest.v1+prettyjws")),
        "{err:?}"
    );
    assert!(err.to_string().contains("unsupported manifest media type"));
    assert!(store.list().unwrap().is_empty(), "nothing stored");
    drop(client);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
}
