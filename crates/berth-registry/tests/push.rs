//! Pushing to a real registry (Debian's docker-registry on 127.0.0.1): what berth pushes,
//! berth and skopeo read back byte for byte; blobs the registry has are skipped, blobs
//! another repository has are mounted, big blobs go in chunks, and failures are clear.
//! (Pulling is the image store's: berth-image's tests.)

use std::io::Read;
use std::process::Command;
use std::sync::Mutex;

use berth_registry::client::Error;
use berth_registry::{
    Client, Credentials, MediaType, Options, Platform, PlatformExt, PushEvent, PushImage,
    Reference, Resolved, descriptor_digest,
};
use berth_store::{BlobStore, Digest};
use berth_testkit::images::{Registry, busybox_layout, json_body, skopeo_copy};

/// A store holding busybox's blobs (from the OCI layout skopeo pushed as `src/busybox:1` to
/// the registry, returned for tests that push to the same registry), and the manifest as the
/// registry serves it.
struct Source {
    reg: Registry,
    _dir: tempfile::TempDir,
    store: BlobStore,
    image: Resolved,
}

fn source() -> Source {
    let reg = Registry::start();
    let (_layout_dir, layout, digest) = busybox_layout();
    skopeo_copy(
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/src/busybox:1", reg.addr),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let d = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())).unwrap();
        store
            .put(&d, None, std::fs::File::open(e.path()).unwrap())
            .unwrap();
    }
    let r = Reference::parse(&format!("{}/src/busybox:1", reg.addr)).unwrap();
    let image = Client::new(Options::default())
        .resolve(&r, &Platform::host())
        .unwrap();
    assert_eq!(
        image.digest.to_string(),
        digest,
        "skopeo pushed the layout as it is"
    );
    Source {
        reg,
        _dir: dir,
        store,
        image,
    }
}

fn push_image(image: &Resolved) -> PushImage {
    PushImage::from_manifest(image.bytes.clone(), &image.media_type).unwrap()
}

/// The digests of the image's blobs: config, then layers.
fn blob_digests(image: &Resolved) -> Vec<Digest> {
    std::iter::once(image.manifest.config())
        .chain(image.manifest.layers())
        .map(|d| descriptor_digest(d).unwrap())
        .collect()
}

/// Push, collecting the events.
fn push(
    client: &Client,
    r: &str,
    image: &PushImage,
    store: &BlobStore,
) -> (Result<berth_registry::Pushed, Error>, Vec<PushEvent>) {
    let events = Mutex::new(Vec::new());
    let r = Reference::parse(r).unwrap();
    let res = client.push(&r, image, store, &|e| events.lock().unwrap().push(e));
    (res, events.into_inner().unwrap())
}

/// Each blob's final event (Exists, Mounted or Pushed), in the image's blob order.
fn outcomes(events: &[PushEvent], blobs: &[Digest]) -> Vec<PushEvent> {
    blobs
        .iter()
        .map(|d| {
            let ends: Vec<&PushEvent> = events
                .iter()
                .filter(|e| match e {
                    PushEvent::Exists { digest }
                    | PushEvent::Mounted { digest, .. }
                    | PushEvent::Pushed { digest, .. } => digest == d,
                    _ => false,
                })
                .collect();
            assert_eq!(ends.len(), 1, "one outcome for {d}: {events:?}");
            ends[0].clone()
        })
        .collect()
}

/// Read `r` back with berth's client (the manifest, then each blob: what a pull reads) and
/// check it is `src`, byte for byte.
fn assert_pulls_back(client: &Client, r: &str, src: &Source) {
    let r = Reference::parse(r).unwrap();
    let pulled = client.resolve(&r, &Platform::host()).unwrap();
    assert_eq!(pulled.digest, src.image.digest);
    assert_eq!(pulled.bytes, src.image.bytes);
    for d in blob_digests(&src.image) {
        let mut theirs = Vec::new();
        client
            .blob_reader(&r, &d)
            .unwrap()
            .read_to_end(&mut theirs)
            .unwrap();
        let ours = std::fs::read(src.store.path(&d)).unwrap();
        assert!(ours == theirs, "blob {d} differs");
    }
}

fn skopeo(args: &[&str]) -> String {
    let o = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn push_to_another_registry_reads_back_in_berth_and_skopeo() {
    let src = source();
    let dest = Registry::start();
    let client = Client::new(Options::default());
    let mut image = push_image(&src.image);
    image.extra_tags = vec!["also".into()];
    let target = format!("{}/copy/busybox:v1", dest.addr);
    let (res, events) = push(&client, &target, &image, &src.store);
    let pushed = res.unwrap();
    assert_eq!(pushed.digest, src.image.digest);
    assert_eq!(pushed.size, src.image.bytes.len() as u64);
    assert_eq!(pushed.tags, ["v1", "also"]);
    let blobs = blob_digests(&src.image);
    for (o, d) in outcomes(&events, &blobs).iter().zip(&blobs) {
        assert!(
            matches!(o, PushEvent::Pushed { chunks: 0, size, .. } if *size == std::fs::metadata(src.store.path(d)).unwrap().len()),
            "{o:?}"
        );
    }
    // Progress reached every blob's end; the manifest went in under both tags, after the
    // blobs.
    for d in &blobs {
        let size = std::fs::metadata(src.store.path(d)).unwrap().len();
        assert!(
            events.iter().any(
                |e| matches!(e, PushEvent::Progress { digest, sent, total } if digest == d && *sent == size && *total == size)
            ),
            "{events:?}"
        );
    }
    let manifests: Vec<&PushEvent> = events
        .iter()
        .filter(|e| matches!(e, PushEvent::ManifestPushed { .. }))
        .collect();
    assert_eq!(
        manifests,
        [
            &PushEvent::ManifestPushed {
                reference: "v1".into(),
                digest: src.image.digest.clone()
            },
            &PushEvent::ManifestPushed {
                reference: "also".into(),
                digest: src.image.digest.clone()
            }
        ]
    );
    assert!(matches!(
        events.last(),
        Some(PushEvent::ManifestPushed { .. })
    ));

    assert_pulls_back(&client, &target, &src);
    assert_pulls_back(&client, &format!("{}/copy/busybox:also", dest.addr), &src);

    // skopeo sees the same image, and copies it out with the same bytes.
    let inspect = json_body(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]));
    assert_eq!(inspect["Digest"], src.image.digest.to_string());
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    assert_eq!(raw.as_bytes(), &src.image.bytes[..]);
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("oci");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:x", layout.display()),
    ]);
    for d in blobs.iter().chain([&src.image.digest]) {
        let theirs = std::fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap();
        let ours = std::fs::read(src.store.path(d)).unwrap_or_else(|_| src.image.bytes.clone());
        assert!(ours == theirs, "skopeo's {d} differs");
    }
}

#[test]
fn a_second_push_skips_every_blob() {
    let src = source();
    let client = Client::new(Options::default());
    let image = push_image(&src.image);
    let target = format!("{}/again/busybox:1", src.reg.addr);
    push(&client, &target, &image, &src.store).0.unwrap();
    // Again, with another client (no cached token or state), and under a new tag.
    let client = Client::new(Options::default());
    let retag = format!("{}/again/busybox:2", src.reg.addr);
    let (res, events) = push(&client, &retag, &image, &src.store);
    assert_eq!(res.unwrap().digest, src.image.digest);
    let blobs = blob_digests(&src.image);
    assert_eq!(
        outcomes(&events, &blobs),
        blobs
            .iter()
            .map(|d| PushEvent::Exists { digest: d.clone() })
            .collect::<Vec<_>>()
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PushEvent::Progress { .. })),
        "nothing uploaded: {events:?}"
    );
    assert_pulls_back(&client, &retag, &src);
}

#[test]
fn blobs_are_mounted_from_another_repository_of_the_registry() {
    let src = source();
    let client = Client::new(Options::default());
    let blobs = blob_digests(&src.image);

    // Mounted: the first source lacks the blobs (its upload session is dropped), the second
    // has them.
    let mut image = push_image(&src.image);
    image.mount_from = vec!["nothing/here".into(), "src/busybox".into()];
    let target = format!("{}/mounted/busybox:1", src.reg.addr);
    let (res, events) = push(&client, &target, &image, &src.store);
    res.unwrap();
    assert_eq!(
        outcomes(&events, &blobs),
        blobs
            .iter()
            .map(|d| PushEvent::Mounted {
                digest: d.clone(),
                from: "src/busybox".into()
            })
            .collect::<Vec<_>>()
    );
    assert_pulls_back(&client, &target, &src);

    // A source that lacks them: the mount's upload session is used for an upload.
    image.mount_from = vec!["nothing/here".into()];
    let target = format!("{}/uploaded/busybox:1", src.reg.addr);
    let (res, events) = push(&client, &target, &image, &src.store);
    res.unwrap();
    for o in outcomes(&events, &blobs) {
        assert!(matches!(o, PushEvent::Pushed { .. }), "{o:?}");
    }
    assert_pulls_back(&client, &target, &src);

    // By digest: the manifest goes in under its digest, no tag.
    let by_digest = format!("{}/bydigest/busybox@{}", src.reg.addr, src.image.digest);
    image.mount_from = vec!["src/busybox".into()];
    let (res, events) = push(&client, &by_digest, &image, &src.store);
    let pushed = res.unwrap();
    assert!(pushed.tags.is_empty());
    assert!(events.contains(&PushEvent::ManifestPushed {
        reference: src.image.digest.to_string(),
        digest: src.image.digest.clone()
    }));
    assert_pulls_back(&client, &by_digest, &src);
    // A digest that is not the manifest's is refused before anything is sent.
    let wrong = format!("{}/wrong/busybox@sha256:{}", src.reg.addr, "0".repeat(64));
    let (res, events) = push(&client, &wrong, &image, &src.store);
    assert!(matches!(res, Err(Error::BadRequest(_))), "{res:?}");
    assert!(events.is_empty());
}

#[test]
fn big_blobs_go_in_chunks_with_identical_bytes() {
    let src = source();
    let dest = Registry::start();
    let chunk = 64 * 1024;
    let client = Client::new(Options {
        chunk_size: Some(chunk),
        ..Options::default()
    });
    let image = push_image(&src.image);
    let target = format!("{}/chunked/busybox:1", dest.addr);
    let (res, events) = push(&client, &target, &image, &src.store);
    res.unwrap();
    let blobs = blob_digests(&src.image);
    let mut chunked = 0;
    for (o, d) in outcomes(&events, &blobs).iter().zip(&blobs) {
        let size = std::fs::metadata(src.store.path(d)).unwrap().len();
        let want = if size <= chunk {
            0
        } else {
            size.div_ceil(chunk)
        };
        match o {
            PushEvent::Pushed { chunks, .. } => assert_eq!(u64::from(*chunks), want, "{d}"),
            other => panic!("{other:?}"),
        }
        if want > 1 {
            chunked += 1;
        }
    }
    assert!(
        chunked > 0,
        "the busybox layer is bigger than {chunk} bytes"
    );
    assert_pulls_back(&client, &target, &src);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    assert_eq!(raw.as_bytes(), &src.image.bytes[..]);
}

#[test]
fn pushing_to_an_authenticated_registry() {
    let src = source();
    let reg = Registry::start_with_basic_auth("tester", "s3cret");
    let image = push_image(&src.image);
    let target = format!("{}/private/busybox:1", reg.addr);
    let with = |user: &str, pass: &str| {
        let mut opts = Options::default();
        opts.credentials.insert(
            reg.addr.clone(),
            Credentials {
                username: user.into(),
                password: pass.into(),
            },
        );
        Client::new(opts)
    };

    let (res, events) = push(
        &Client::new(Options::default()),
        &target,
        &image,
        &src.store,
    );
    let err = res.unwrap_err();
    assert!(
        matches!(&err, Error::NoCredentials { registry } if *registry == reg.addr),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("authentication failed") && msg.contains("berth login"),
        "{msg}"
    );
    assert!(events.is_empty(), "{events:?}");

    let (res, events) = push(&with("tester", "wrong"), &target, &image, &src.store);
    let err = res.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("authentication failed"), "{err}");
    assert!(events.is_empty(), "{events:?}");

    let client = with("tester", "s3cret");
    let (res, _) = push(&client, &target, &image, &src.store);
    assert_eq!(res.unwrap().digest, src.image.digest);
    assert_pulls_back(&client, &target, &src);
    let inspect = json_body(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "tester:s3cret",
        &format!("docker://{target}"),
    ]));
    assert_eq!(inspect["Digest"], src.image.digest.to_string());
}

#[test]
fn a_blob_missing_from_the_store_pushes_nothing() {
    let src = source();
    let client = Client::new(Options::default());
    let image = push_image(&src.image);
    let blobs = blob_digests(&src.image);
    let layer = blobs.last().unwrap().clone();
    src.store.remove(&layer).unwrap();
    let (res, events) = push(
        &client,
        &format!("{}/partial/busybox:1", src.reg.addr),
        &image,
        &src.store,
    );
    let err = res.unwrap_err();
    assert!(
        matches!(&err, Error::BlobMissing { digest } if *digest == layer),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing pushed"), "{err}");
    assert!(events.is_empty(), "{events:?}");
    // Nothing at all reached the registry: no manifest, no tag, not even the config.
    assert_eq!(
        src.reg.get("/v2/partial/busybox/manifests/1").unwrap().0,
        404
    );
    assert_eq!(src.reg.get("/v2/partial/busybox/tags/list").unwrap().0, 404);
    assert_eq!(
        src.reg
            .get(&format!("/v2/partial/busybox/blobs/{}", blobs[0]))
            .unwrap()
            .0,
        404
    );
}

#[test]
fn refused_uploads_and_unreachable_registries_are_clear_errors() {
    let src = source();
    let client = Client::new(Options::default());
    let blobs = blob_digests(&src.image);

    // A manifest whose blobs the registry does not have (the caller listed none): refused.
    let mut image = push_image(&src.image);
    image.blobs.clear();
    let (res, _) = push(
        &client,
        &format!("{}/noblobs/busybox:1", src.reg.addr),
        &image,
        &src.store,
    );
    let err = res.unwrap_err();
    assert!(
        matches!(&err, Error::UploadRefused { status: 400, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("manifest") && msg.contains("refused") && msg.contains("BLOB_UNKNOWN"),
        "{msg}"
    );

    // A blob whose stored bytes were damaged (same size): the registry refuses the digest,
    // and no manifest goes in.
    let layer = blobs.last().unwrap();
    let path = src.store.path(layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (res, events) = push(
        &client,
        &format!("{}/damaged/busybox:1", src.reg.addr),
        &push_image(&src.image),
        &src.store,
    );
    let err = res.unwrap_err();
    assert!(
        matches!(&err, Error::UploadRefused { what, status: 400, .. } if what.contains(&layer.to_string())),
        "{err:?}"
    );
    assert!(err.to_string().contains("DIGEST_INVALID"), "{err}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PushEvent::ManifestPushed { .. })),
        "{events:?}"
    );
    assert_eq!(
        src.reg.get("/v2/damaged/busybox/manifests/1").unwrap().0,
        404
    );

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (res, _) = push(
        &client,
        &format!("127.0.0.1:{port}/x/y:1"),
        &push_image(&src.image),
        &src.store,
    );
    let err = res.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("unreachable"), "{err}");

    // Bad requests are refused before anything is sent.
    let mut image = push_image(&src.image);
    image.mount_from = vec!["a&b=c".into()];
    let (res, events) = push(
        &client,
        &format!("{}/bad/busybox:1", src.reg.addr),
        &image,
        &src.store,
    );
    assert!(matches!(res, Err(Error::BadRequest(_))), "{res:?}");
    assert!(events.is_empty());
    let mut image = push_image(&src.image);
    image.media_type = MediaType::from("text/plain");
    let (res, _) = push(
        &client,
        &format!("{}/bad/busybox:1", src.reg.addr),
        &image,
        &src.store,
    );
    assert!(matches!(res, Err(Error::UnknownMediaType(_))), "{res:?}");
}
