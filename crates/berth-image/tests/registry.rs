//! The image store against registries: a pull of what skopeo pushed (byte for byte), indexes
//! (the platform asked for; the index's digest recorded as Docker records it), authentication,
//! and the registry's failures (missing images, unreachable registries, manifests of unknown
//! types, a connection cut mid-blob), each a clear error that leaves the store as it was; and
//! a push (only layers reported, the digest reference recorded, blobs mounted from the other
//! repositories the image is known in).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_image::{ImageRecord, ImageStore, PullEvent, PushEvent};
use berth_registry::client::Error as RegistryError;
use berth_registry::{Client, Credentials, Options, Platform, PlatformExt, Reference};
use berth_store::Digest;
use berth_testkit::images::{
    Registry, busybox_layout, image_index, oci_layout_for, push_busybox, push_busybox_as,
    skopeo_copy,
};
use common::{TestImage, layer, store};

fn client() -> Client {
    Client::new(Options::default())
}

fn reference(reg: &str, name: &str) -> Reference {
    Reference::parse(&format!("{reg}/{name}")).unwrap()
}

/// Pull, collecting the events.
fn pull_events(
    s: &ImageStore,
    client: &Client,
    r: &Reference,
    platform: &Platform,
) -> (berth_image::Result<ImageRecord>, Vec<PullEvent>) {
    let events = Mutex::new(Vec::new());
    let res = s.pull_with_progress(client, r, platform, &|e| events.lock().unwrap().push(e));
    (res, events.into_inner().unwrap())
}

/// Nothing recorded, no blob, no unpacked layer.
fn assert_empty(s: &ImageStore) {
    assert!(s.images().unwrap().is_empty(), "no image recorded");
    assert!(s.blobs().list().unwrap().is_empty(), "no blob stored");
}

/// The message of `e` as anyhow's `{:#}` prints it (each cause after a colon): a cause must
/// not be repeated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[test]
fn a_pull_stores_what_skopeo_pushed_byte_for_byte() {
    let reg = Registry::start();
    let (_tmp, layout, digest) = busybox_layout();
    skopeo_copy(
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/lib/busybox:1.36", reg.addr),
    );
    let (_dir, s) = store();
    let r = reference(&reg.addr, "lib/busybox:1.36");
    let rec = s.pull(&client(), &r, &Platform::host()).unwrap();
    assert_eq!(rec.manifest, digest);
    assert_eq!(
        rec.repo_digests,
        [format!("{}/lib/busybox@{digest}", reg.addr)]
    );
    // Every blob of the layout is in the store, with the same bytes, and nothing else.
    let mut theirs = Vec::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let d = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())).unwrap();
        let ours = std::fs::read(s.blobs().path(&d)).unwrap();
        assert!(ours == std::fs::read(e.path()).unwrap(), "blob {d} differs");
        theirs.push(d);
    }
    theirs.sort();
    assert_eq!(s.blobs().list().unwrap(), theirs);

    // By digest, into another store: the same image, no tag, its digest reference.
    let (_dir2, s2) = store();
    let by_digest = reference(&reg.addr, &format!("lib/busybox@{digest}"));
    let (rec2, events) = pull_events(&s2, &client(), &by_digest, &Platform::host());
    let rec2 = rec2.unwrap();
    assert_eq!(
        (rec2.id.as_str(), rec2.repo_tags.len()),
        (rec.id.as_str(), 0)
    );
    assert_eq!(
        events[0],
        PullEvent::Resolved {
            digest: Digest::parse(&digest).unwrap()
        }
    );
    assert_eq!(
        s2.lookup(&by_digest.to_string()).unwrap().unwrap().id,
        rec.id
    );
}

#[test]
fn missing_images_and_unreachable_registries_are_clear_errors() {
    let reg = Registry::start();
    let (_dir, s) = store();
    let err = s
        .pull(
            &client(),
            &reference(&reg.addr, "nothing/here:1"),
            &Platform::host(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("404") && (msg.contains("MANIFEST_UNKNOWN") || msg.contains("NAME_UNKNOWN")),
        "{msg}"
    );
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = s
        .pull(
            &client(),
            &reference(&format!("127.0.0.1:{port}"), "x:1"),
            &Platform::host(),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            berth_image::Error::Registry(RegistryError::Unreachable { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_empty(&s);
}

/// Two images of busybox, for the host's architecture and another, pushed by skopeo as
/// `multi:<arch>`, and an index over both put as `multi:1`: (arch, manifest digest) each, and
/// the index's digest.
fn multi_platform(reg: &Registry) -> (Vec<(String, String)>, Digest) {
    let tmp = tempfile::tempdir().unwrap();
    let host = Platform::host().architecture().to_string();
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let mut descs = Vec::new();
    let mut by_arch = Vec::new();
    for arch in [host.as_str(), other] {
        let layout = tmp.path().join(arch);
        let desc = oci_layout_for(
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
    (by_arch, Digest::of(&index))
}

#[test]
fn an_index_gives_the_asked_platform_and_its_own_digest_is_the_reference() {
    let reg = Registry::start();
    let (by_arch, index) = multi_platform(&reg);
    let (_dir, s) = store();
    let r = reference(&reg.addr, "multi:1");
    let digest_ref = format!("{}/multi@{index}", reg.addr);

    // The host's platform: the record keeps that platform's manifest (its layers are the
    // image's), the digest reference is the index's, as Docker records it (and prints it).
    let (rec, events) = pull_events(&s, &client(), &r, &Platform::host());
    let rec = rec.unwrap();
    assert_eq!(rec.manifest, by_arch[0].1, "{by_arch:?}");
    assert_eq!(rec.repo_digests, std::slice::from_ref(&digest_ref));
    assert_eq!(
        events[0],
        PullEvent::Resolved {
            digest: index.clone()
        }
    );
    assert_eq!(s.lookup(&digest_ref).unwrap().unwrap().id, rec.id);
    // By the platform manifest's digest, too.
    let by_manifest = format!("{}/multi@{}", reg.addr, by_arch[0].1);
    assert_eq!(s.lookup(&by_manifest).unwrap().unwrap().id, rec.id);

    // Another platform of the same index: another image, and `repo@<index>` now names it
    // (a digest reference names one image, as in Docker).
    let other = Platform::parse(&format!("linux/{}", by_arch[1].0)).unwrap();
    let (rec2, _) = pull_events(&s, &client(), &r, &other);
    let rec2 = rec2.unwrap();
    assert_ne!(rec2.id, rec.id);
    assert_eq!(rec2.manifest, by_arch[1].1);
    assert_eq!(rec2.repo_digests, std::slice::from_ref(&digest_ref));
    assert_eq!(s.lookup(&digest_ref).unwrap().unwrap().id, rec2.id);
    assert!(s.get(&rec.id).unwrap().repo_digests.is_empty());

    // A platform the index does not have: a clear error naming what it has; nothing stored.
    let (_dir3, s3) = store();
    let err = s3
        .pull(&client(), &r, &Platform::parse("linux/s390x").unwrap())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            berth_image::Error::Registry(RegistryError::NoPlatform { .. })
        ) && msg.contains("linux/s390x")
            && msg.contains(&format!("linux/{}", by_arch[0].0))
            && msg.contains(&format!("linux/{}", by_arch[1].0)),
        "{msg}"
    );
    assert_empty(&s3);
}

#[test]
fn basic_auth_with_and_without_credentials() {
    let reg = Registry::start_with_basic_auth("tester", "s3cret");
    let digest = push_busybox_as(&reg, "private/bb:1", Some("tester:s3cret"));
    let r = reference(&reg.addr, "private/bb:1");
    let (_dir, s) = store();
    let with = |password: &str| {
        let mut opts = Options::default();
        opts.credentials.insert(
            reg.addr.clone(),
            Credentials {
                username: "tester".into(),
                password: password.into(),
            },
        );
        Client::new(opts)
    };

    let err = s.pull(&client(), &r, &Platform::host()).unwrap_err();
    assert!(
        matches!(
            &err,
            berth_image::Error::Registry(RegistryError::NoCredentials { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("authentication failed"), "{err}");
    let err = s.pull(&with("wrong"), &r, &Platform::host()).unwrap_err();
    assert!(
        matches!(
            &err,
            berth_image::Error::Registry(RegistryError::Unauthorized { status: 401, .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("authentication failed"), "{err}");
    assert_empty(&s);

    let rec = s.pull(&with("s3cret"), &r, &Platform::host()).unwrap();
    assert_eq!(rec.manifest, digest);
    assert!(s.layer_path(&rec.diff_ids[0]).join("bin/busybox").is_file());
}

/// What a fake registry answers for one path.
struct Answer {
    content_type: &'static str,
    body: Vec<u8>,
    /// Send only this many bytes of the body (announcing all of it), then close.
    cut_at: Option<usize>,
}

/// A registry of a few canned answers on 127.0.0.1 (for what a real one will not do: serve
/// an old manifest type, cut a connection mid-blob). Every request of every connection is
/// answered from `answer(path)`, or 404. Stopped when dropped.
struct FakeRegistry {
    addr: String,
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRegistry {
    fn start(answer: impl Fn(&str) -> Option<Answer> + Send + Sync + 'static) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let answer = std::sync::Arc::new(answer);
        let serve = move |stream: TcpStream, answer: &dyn Fn(&str) -> Option<Answer>| {
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
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let head_only = line.starts_with("HEAD ");
                let Some(a) = answer(&path) else {
                    let _ = write!(
                        out,
                        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
                    );
                    continue;
                };
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\n\r\n",
                    a.content_type,
                    a.body.len()
                );
                if head_only {
                    continue;
                }
                match a.cut_at {
                    Some(n) => {
                        let _ = out.write_all(&a.body[..n]);
                        let _ = out.flush();
                        let _ = out.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    None => {
                        let _ = out.write_all(&a.body);
                    }
                }
            }
        };
        let thread = std::thread::spawn(move || {
            std::thread::scope(|t| {
                while !stopped.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let answer = answer.clone();
                            let serve = &serve;
                            t.spawn(move || serve(stream, &*answer));
                        }
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                    }
                }
            })
        });
        FakeRegistry {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Old registries serve schema 1 manifests (Debian's docker-registry refuses to store them,
/// so a fake one plays this part): a registry's own answer, not a manifest berth can use.
#[test]
fn a_manifest_of_an_unknown_media_type_is_a_clear_error_and_stores_nothing() {
    let fake = FakeRegistry::start(|path| {
        path.contains("/manifests/").then(|| Answer {
            content_type: "application/vnd.docker.distribution.manifest.v1+prettyjws",
            body: br#"{"schemaVersion":1,"name":"old/app","tag":"1","fsLayers":[],"history":[],"signatures":[]}"#.to_vec(),
            cut_at: None,
        })
    });
    let (_dir, s) = store();
    let err = s
        .pull(
            &client(),
            &reference(&fake.addr, "old/app:1"),
            &Platform::host(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, berth_image::Error::Registry(RegistryError::UnknownMediaType(t)) if t.contains("manifest.v1+prettyjws")),
        "{err:?}"
    );
    assert!(err.to_string().contains("unsupported manifest media type"));
    assert_empty(&s);
}

/// A registry serving one image whose blob `cut` (the config or the layer) is cut after half
/// its bytes: the pull fails naming the blob, the registry, and how far it got; not as an
/// unreachable registry, and nothing is stored.
#[test]
fn a_connection_cut_mid_blob_is_reported_as_such() {
    // 64 KiB that gzip cannot shrink much, so the layer blob is big enough to cut.
    let data: Vec<u8> = (0..65536u32)
        .map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let files: [(&str, &[u8]); 1] = [("data/file", &data)];
    let built = TestImage::new(vec![layer(&files)], "cut").build();
    let blob = |d: &str| {
        built
            .blobs
            .iter()
            .find(|(digest, _)| digest == d)
            .map(|(_, b)| b.clone())
            .unwrap()
    };
    for cut in [built.layer_digests[0].clone(), built.config_digest.clone()] {
        let (manifest, cut_blob) = (blob(&built.manifest_digest), blob(&cut));
        let others: Vec<(String, Vec<u8>)> = built.blobs.clone();
        let half = cut_blob.len() / 2;
        let cut_digest = cut.clone();
        let fake = FakeRegistry::start(move |path| {
            if path.contains("/manifests/") {
                return Some(Answer {
                    content_type: "application/vnd.oci.image.manifest.v1+json",
                    body: manifest.clone(),
                    cut_at: None,
                });
            }
            let d = path.rsplit('/').next()?;
            let body = others.iter().find(|(digest, _)| digest == d)?.1.clone();
            Some(Answer {
                content_type: "application/octet-stream",
                body,
                cut_at: (d == cut_digest).then_some(half),
            })
        });
        let (_dir, s) = store();
        let err = s
            .pull(
                &client(),
                &reference(&fake.addr, "cut/app:1"),
                &Platform::host(),
            )
            .unwrap_err();
        let want = format!(
            "reading blob {cut} from {}: connection closed before the end ({half} of {} bytes)",
            fake.addr,
            cut_blob.len()
        );
        assert_eq!(err.to_string(), want, "{err:?}");
        assert!(
            matches!(&err, berth_image::Error::Registry(RegistryError::Cut { read, size, .. })
                if *read == half as u64 && *size == cut_blob.len() as u64),
            "{err:?}"
        );
        assert_eq!(chain(&err), want, "the cause once");
        assert_empty(&s);
    }
}

/// Push, collecting the events.
fn push_events(
    s: &ImageStore,
    client: &Client,
    r: &str,
) -> (berth_image::Result<berth_registry::Pushed>, Vec<PushEvent>) {
    let events = Mutex::new(Vec::new());
    let r = Reference::parse(r).unwrap();
    let res = s.push(client, &r, &|e| events.lock().unwrap().push(e));
    (res, events.into_inner().unwrap())
}

fn event_digest(e: &PushEvent) -> &Digest {
    match e {
        PushEvent::Preparing { digest }
        | PushEvent::Exists { digest }
        | PushEvent::Mounted { digest, .. }
        | PushEvent::Progress { digest, .. }
        | PushEvent::Pushed { digest } => digest,
    }
}

#[test]
fn a_push_reports_layers_only_records_its_digest_and_mounts_what_the_registry_has() {
    let src = Registry::start();
    let dst = Registry::start();
    let digest = push_busybox(&src, "tools/busybox:1");
    let (_dir, s) = store();
    let rec = s
        .pull(
            &client(),
            &reference(&src.addr, "tools/busybox:1"),
            &Platform::host(),
        )
        .unwrap();
    let manifest: berth_registry::ImageManifest = serde_json::from_slice(
        &std::fs::read(s.blobs().path(&Digest::parse(&digest).unwrap())).unwrap(),
    )
    .unwrap();
    let layers: Vec<Digest> = manifest
        .layers()
        .iter()
        .map(|l| berth_registry::descriptor_digest(l).unwrap())
        .collect();
    let config = Digest::parse(&rec.id).unwrap();

    // Not under the target's name here: refused before anything is sent.
    let target = format!("{}/copy/busybox:v1", dst.addr);
    let (res, events) = push_events(&s, &client(), &target);
    assert!(
        matches!(res, Err(berth_image::Error::NoSuchImage(_))),
        "{res:?}"
    );
    assert!(events.is_empty());

    // Tagged: every layer is prepared first, then pushed; the config blob goes too (the
    // registry has it) but is never reported.
    s.tag(&rec.id, &target).unwrap();
    let (res, events) = push_events(&s, &client(), &target);
    let pushed = res.unwrap();
    assert_eq!(pushed.digest.to_string(), digest);
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| event_digest(e) != &config),
        "the config is not a layer: {events:?}"
    );
    let prepared: Vec<&Digest> = events
        .iter()
        .take(layers.len())
        .map(|e| match e {
            PushEvent::Preparing { digest } => digest,
            other => panic!("Preparing comes first: {other:?}"),
        })
        .collect();
    assert_eq!(prepared, layers.iter().rev().collect::<Vec<_>>());
    for l in &layers {
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, PushEvent::Pushed { digest } if digest == l))
                .count(),
            1,
            "{events:?}"
        );
    }
    assert_eq!(
        dst.get(&format!("/v2/copy/busybox/blobs/{config}"))
            .unwrap()
            .0,
        200,
        "the config blob was pushed"
    );
    let rec = s.get(&rec.id).unwrap();
    let pushed_ref = format!("{}/copy/busybox@{digest}", dst.addr);
    assert!(
        rec.repo_digests.contains(&pushed_ref),
        "{:?}",
        rec.repo_digests
    );
    assert_eq!(s.lookup(&pushed_ref).unwrap().unwrap().id, rec.id);

    // Another repository of that registry: its layers are mounted from the one the image is
    // known in there; the same repository again: they exist.
    let again = format!("{}/again/busybox:1", dst.addr);
    s.tag(&rec.id, &again).unwrap();
    let (res, events) = push_events(&s, &client(), &again);
    assert_eq!(res.unwrap().digest.to_string(), digest);
    for l in &layers {
        assert!(
            events.contains(&PushEvent::Mounted {
                digest: l.clone(),
                from: "copy/busybox".into()
            }),
            "{events:?}"
        );
    }
    let (res, events) = push_events(&s, &client(), &target);
    res.unwrap();
    for l in &layers {
        assert!(
            events.contains(&PushEvent::Exists { digest: l.clone() }),
            "{events:?}"
        );
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PushEvent::Progress { .. }))
    );

    // What was pushed pulls back as the same image.
    let (_dir2, s2) = store();
    let back = s2
        .pull(
            &client(),
            &Reference::parse(&again).unwrap(),
            &Platform::host(),
        )
        .unwrap();
    assert_eq!((back.id, back.manifest), (rec.id, digest));
}
