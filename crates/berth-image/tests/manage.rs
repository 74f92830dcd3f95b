//! Tags, removal, short IDs, pruning and garbage collection, disk usage, inspect and history —
//! checked against Docker's behaviour.

mod common;

use std::collections::BTreeSet;

use berth_image::{Error, ImageStore, Removed};
use common::{TestImage, blobs, layer, layer_dirs, oci_archive, store};
use serde_json::json;

/// Load one image made here and return its ID.
fn load(s: &ImageStore, img: &TestImage) -> String {
    let recs = s.load(&oci_archive(std::slice::from_ref(img))[..]).unwrap();
    assert_eq!(recs.len(), 1);
    recs[0].id.clone()
}

fn short(id: &str, n: usize) -> String {
    id["sha256:".len().."sha256:".len() + n].to_string()
}

#[test]
fn tag_untag_and_rmi_like_docker() {
    let (_d, s) = store();
    let a = load(
        &s,
        &TestImage::new(vec![layer(&[("a", b"a")])], "a").named("localhost/a:1"),
    );
    let b = load(&s, &TestImage::new(vec![layer(&[("b", b"b")])], "b"));
    assert_eq!(s.get("localhost/a:1").unwrap().id, a);
    assert!(s.get(&b).unwrap().repo_tags.is_empty(), "unnamed: untagged");

    // Tags: by name, by short ID with and without sha256:, and Docker Hub normalisation.
    s.tag("localhost/a:1", "localhost/a:2").unwrap();
    s.tag(&short(&a, 8), "busybox").unwrap();
    let rec = s
        .tag(&format!("sha256:{}", short(&a, 12)), "x/y:z")
        .unwrap();
    assert_eq!(
        rec.repo_tags,
        [
            "localhost/a:1",
            "localhost/a:2",
            "docker.io/library/busybox:latest",
            "docker.io/x/y:z"
        ]
    );
    assert!(s.last_tag_time(&a).unwrap().is_some());
    assert_eq!(s.get("docker.io/library/busybox").unwrap().id, a);
    assert_eq!(s.get(&short(&a, 64)).unwrap().id, a, "bare full hex");

    // Errors: unknown source, a digest as the new tag, invalid names, too-short IDs.
    let e = s.tag("nothing:here", "a:b").unwrap_err();
    assert!(matches!(e, Error::NoSuchImage(_)));
    assert_eq!(e.to_string(), "No such image: nothing:here");
    assert!(matches!(
        s.tag(&a, &format!("x@{a}")).unwrap_err(),
        Error::Invalid(_)
    ));
    assert!(matches!(
        s.tag(&a, "UPPER:case").unwrap_err(),
        Error::Reference(_)
    ));
    assert!(
        s.lookup(&short(&a, 3)).unwrap().is_none(),
        "3 digits is no ID"
    );

    // A tag moves from the image it named before.
    s.tag(&b, "x/y:z").unwrap();
    assert!(
        !s.get(&a)
            .unwrap()
            .repo_tags
            .contains(&"docker.io/x/y:z".into())
    );
    assert_eq!(s.get("x/y:z").unwrap().id, b);

    // rmi of a tag: untag only while others are left.
    assert_eq!(
        s.remove("localhost/a:2", false).unwrap(),
        [Removed::Untagged("localhost/a:2".into())]
    );
    // rmi of an ID with several tags needs force.
    let e = s.remove(&short(&a, 10), false).unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }));
    assert!(e.to_string().contains("must be forced"), "{e}");
    assert_eq!(s.get(&a).unwrap().repo_tags.len(), 2);
    // untag keeps the image even when it was the last tag.
    s.untag("busybox:latest").unwrap();
    assert!(matches!(
        s.untag("busybox:latest").unwrap_err(),
        Error::NoSuchImage(_)
    ));
    // One tag left: an ID removes tag and image.
    assert_eq!(
        s.remove(&format!("sha256:{}", short(&a, 6)), false)
            .unwrap(),
        [
            Removed::Untagged("localhost/a:1".into()),
            Removed::Deleted(a.clone())
        ]
    );
    assert!(s.lookup(&a).unwrap().is_none());

    // rmi of the last tag deletes the image.
    assert_eq!(
        s.remove("x/y:z", false).unwrap(),
        [
            Removed::Untagged("docker.io/x/y:z".into()),
            Removed::Deleted(b.clone())
        ]
    );
    assert!(s.images().unwrap().is_empty());
    assert!(matches!(
        s.remove("x/y:z", false).unwrap_err(),
        Error::NoSuchImage(_)
    ));
    assert!(matches!(
        s.remove(&short(&b, 12), false).unwrap_err(),
        Error::NoSuchImage(_)
    ));

    // Removal never deletes files: that is garbage collection.
    assert!(!blobs(&s).is_empty());
    assert_eq!(layer_dirs(_d.path()).len(), 2);
}

#[test]
fn force_removes_every_tag() {
    let (_d, s) = store();
    let a = load(&s, &TestImage::new(vec![layer(&[("a", b"a")])], "a"));
    s.tag(&a, "one").unwrap();
    s.tag(&a, "two").unwrap();
    assert_eq!(
        s.remove(&a, true).unwrap(),
        [
            Removed::Untagged("docker.io/library/one:latest".into()),
            Removed::Untagged("docker.io/library/two:latest".into()),
            Removed::Deleted(a.clone())
        ]
    );
    assert!(s.lookup("one").unwrap().is_none());
    assert!(s.images().unwrap().is_empty());
}

#[test]
fn ambiguous_short_ids_are_refused() {
    // Find two labels whose images' IDs share their first 4 hex digits (configs are hashed
    // here, without loading), then load just those two.
    let l = layer(&[("f", b"x")]);
    let mut by_prefix = std::collections::HashMap::new();
    let (first, second) = (0..100_000)
        .find_map(|i| {
            let img = TestImage::new(vec![l.clone()], &format!("v{i}"));
            let id = img.build().config_digest;
            let p = short(&id, 4);
            by_prefix.insert(p, img.clone()).map(|other| (other, img))
        })
        .unwrap();
    let (_d, s) = store();
    let a = load(&s, &first);
    let b = load(&s, &second);
    let prefix = short(&a, 4);
    assert_eq!(prefix, short(&b, 4));
    let e = s.lookup(&prefix).unwrap_err();
    assert!(matches!(e, Error::AmbiguousId { count: 2, .. }), "{e}");
    assert!(e.to_string().contains("ambiguous"), "{e}");
    assert!(matches!(
        s.remove(&format!("sha256:{prefix}"), false).unwrap_err(),
        Error::AmbiguousId { .. }
    ));
    // Enough digits to tell them apart.
    let n = (4..64).find(|&n| short(&a, n) != short(&b, n)).unwrap();
    assert_eq!(s.get(&short(&a, n)).unwrap().id, a);
    assert_eq!(s.get(&short(&b, n)).unwrap().id, b);
}

#[test]
fn prune_and_gc_remove_exactly_what_nothing_refers_to() {
    let (d, s) = store();
    let l1 = layer(&[("shared/big", &vec![7u8; 100_000][..])]);
    let l2 = layer(&[("a-only", b"a")]);
    let l3 = layer(&[("b-only", b"b")]);
    let l4 = layer(&[("c-only", b"c")]);
    let ia = TestImage::new(vec![l1.clone(), l2], "a").named("localhost/a:1");
    let ib = TestImage::new(vec![l1, l3], "b").named("localhost/b:1");
    let ic = TestImage::new(vec![l4], "c");
    let (ba, bb, bc) = (ia.build(), ib.build(), ic.build());
    let a = load(&s, &ia);
    let b = load(&s, &ib);
    let c = load(&s, &ic);
    let all_blobs = |bs: &[&common::Built]| -> BTreeSet<String> {
        bs.iter()
            .flat_map(|b| b.blobs.iter().map(|(d, _)| d.clone()))
            .collect()
    };
    let all_layers = |bs: &[&common::Built]| -> BTreeSet<String> {
        bs.iter().flat_map(|b| b.diff_ids.iter().cloned()).collect()
    };
    assert_eq!(blobs(&s), all_blobs(&[&ba, &bb, &bc]));
    assert_eq!(layer_dirs(d.path()), all_layers(&[&ba, &bb, &bc]));
    // A stray blob (a failed load's leftover) is garbage too.
    let stray = s.blobs().put_bytes(b"left behind").unwrap().to_string();

    // Dangling only: c goes, with its blobs and its layer; the shared layer stays.
    let r = s.prune(false, &|_| false).unwrap();
    assert_eq!(r.removed, [Removed::Deleted(c.clone())]);
    assert!(r.gc.reclaimed > 0);
    assert!(r.gc.blobs.contains(&stray));
    assert_eq!(r.gc.layers, bc.diff_ids);
    assert_eq!(blobs(&s), all_blobs(&[&ba, &bb]));
    assert_eq!(layer_dirs(d.path()), all_layers(&[&ba, &bb]));
    assert_eq!(s.images().unwrap().len(), 2);

    // Untag b: it is dangling now; rmi never deletes files, gc does — not the shared layer.
    s.remove("localhost/b:1", false).unwrap();
    assert_eq!(blobs(&s), all_blobs(&[&ba, &bb]));
    let g = s.gc().unwrap();
    assert_eq!(
        g.blobs.iter().cloned().collect::<BTreeSet<_>>(),
        all_blobs(&[&bb])
            .difference(&all_blobs(&[&ba]))
            .cloned()
            .collect()
    );
    assert_eq!(g.layers, [bb.diff_ids[1].clone()]);
    assert_eq!(blobs(&s), all_blobs(&[&ba]));
    assert_eq!(layer_dirs(d.path()), all_layers(&[&ba]));
    assert_eq!(
        s.gc().unwrap(),
        Default::default(),
        "nothing more to collect"
    );
    let _ = b;

    // --all: images in use stay.
    let r = s.prune(true, &|id| id == a).unwrap();
    assert!(r.removed.is_empty());
    assert_eq!(s.images().unwrap().len(), 1);
    let r = s.prune(true, &|_| false).unwrap();
    assert_eq!(
        r.removed,
        [
            Removed::Untagged("localhost/a:1".into()),
            Removed::Deleted(a.clone())
        ]
    );
    assert!(s.images().unwrap().is_empty());
    assert!(blobs(&s).is_empty());
    assert!(layer_dirs(d.path()).is_empty());
    // The store still works after everything went.
    drop(s);
    let s = ImageStore::open(d.path()).unwrap();
    assert_eq!(load(&s, &ia), a);
}

#[test]
fn disk_usage_splits_shared_and_unique() {
    let (_d, s) = store();
    let l1 = layer(&[("shared/big", &vec![1u8; 200_000][..])]);
    let l2 = layer(&[("a-only", &vec![2u8; 50_000][..])]);
    let l3 = layer(&[("b-only", &vec![3u8; 10_000][..])]);
    let ia = TestImage::new(vec![l1.clone(), l2.clone()], "a");
    let ib = TestImage::new(vec![l1.clone(), l3.clone()], "b");
    let a = load(&s, &ia);
    let b = load(&s, &ib);
    let size = |l: &[u8]| s.layer_size(&common::sha(l)).unwrap();
    let (s1, s2, s3) = (size(&l1), size(&l2), size(&l3));
    assert!(
        s1 >= 200_000 && s2 >= 50_000 && s3 >= 10_000,
        "{s1} {s2} {s3}"
    );
    let du = s.disk_usage().unwrap();
    let ua = du.images.iter().find(|u| u.id == a).unwrap();
    let ub = du.images.iter().find(|u| u.id == b).unwrap();
    assert_eq!((ua.size, ua.shared_size, ua.unique_size), (s1 + s2, s1, s2));
    assert_eq!((ub.size, ub.shared_size, ub.unique_size), (s1 + s3, s1, s3));
    assert_eq!(du.layers_size, s1 + s2 + s3);
    assert!(du.content_size > 0);
    // Once b is gone, the formerly shared layer is a's own.
    s.remove(&b, false).unwrap();
    let du = s.disk_usage().unwrap();
    assert_eq!(
        (du.images[0].shared_size, du.images[0].unique_size),
        (0, s1 + s2)
    );
}

#[test]
fn inspect_and_history_are_shaped_like_docker() {
    let (_d, s) = store();
    let l1 = layer(&[("bin/tool", b"#!/bin/sh\n")]);
    let l2 = layer(&[("etc/app.conf", b"x=1\n")]);
    let mut img = TestImage::new(vec![l1.clone(), l2.clone()], "inspect").named("localhost/app:v1");
    img.config = json!({
        "architecture": "arm64", "variant": "v8", "os": "linux",
        "created": "2026-03-04T05:06:07Z", "author": "someone",
        "config": {
            "Env": ["PATH=/bin", "A=1"], "Cmd": ["serve"], "Entrypoint": ["/bin/tool"],
            "WorkingDir": "/srv", "User": "1000:1000", "ExposedPorts": {"80/tcp": {}},
            "Volumes": {"/data": {}}, "Labels": {"k": "v"}, "StopSignal": "SIGTERM"
        },
        "history": [
            {"created": "2026-03-01T00:00:00Z", "created_by": "ADD tool /bin/tool"},
            {"created": "2026-03-02T00:00:00Z", "created_by": "ENV A=1", "empty_layer": true},
            {"created": "2026-03-03T00:00:00Z", "created_by": "COPY app.conf /etc/", "comment": "buildkit"},
            {"created": "2026-03-04T05:06:07Z", "created_by": "CMD [\"serve\"]", "empty_layer": true}
        ]
    });
    // The platform check is for indexes; a single manifest loads whatever it says.
    let built = img.build();
    let id = load(&s, &img);
    let v = s.inspect("localhost/app:v1").unwrap();
    assert_eq!(v["Id"], id);
    assert_eq!(v["RepoTags"], json!(["localhost/app:v1"]));
    // As Docker's own store: a loaded image has no digest reference (it came from no
    // registry), but it can still be named by its manifest digest.
    assert_eq!(v["RepoDigests"], json!([]));
    assert_eq!(
        s.get(&format!("localhost/app@{}", built.manifest_digest))
            .unwrap()
            .id,
        id
    );
    assert_eq!(v["Created"], "2026-03-04T05:06:07Z");
    assert_eq!(v["Author"], "someone");
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Variant"], "v8");
    assert_eq!(v["Os"], "linux");
    let c = &v["Config"];
    assert_eq!(c["Env"], json!(["PATH=/bin", "A=1"]));
    assert_eq!(c["Cmd"], json!(["serve"]));
    assert_eq!(c["Entrypoint"], json!(["/bin/tool"]));
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}}));
    assert_eq!(c["Volumes"], json!({"/data": {}}));
    assert_eq!(c["Labels"], json!({"k": "v"}));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Tty"], false);
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert_eq!(v["RootFS"]["Layers"], json!(built.diff_ids));
    let (s1, s2) = (
        s.layer_size(&built.diff_ids[0]).unwrap(),
        s.layer_size(&built.diff_ids[1]).unwrap(),
    );
    assert_eq!(v["Size"], s1 + s2);
    assert!(v["Metadata"]["LastTagTime"].is_string());

    let h = s.history(&id).unwrap();
    let rows: Vec<(&str, &str, u64, bool)> = h
        .iter()
        .map(|e| (e.id.as_str(), e.created_by.as_str(), e.size, e.empty_layer))
        .collect();
    assert_eq!(
        rows,
        [
            (id.as_str(), "CMD [\"serve\"]", 0, true),
            ("<missing>", "COPY app.conf /etc/", s2, false),
            ("<missing>", "ENV A=1", 0, true),
            ("<missing>", "ADD tool /bin/tool", s1, false),
        ]
    );
    assert_eq!(h[0].tags, ["localhost/app:v1"]);
    assert_eq!(h[1].comment, "buildkit");
    assert_eq!(h[3].created.as_deref(), Some("2026-03-01T00:00:00Z"));
    assert!(h[1..].iter().all(|e| e.tags.is_empty()));

    // No history in the config: one entry per layer.
    let bare = TestImage::new(vec![l1], "bare");
    let bare_id = load(&s, &bare);
    let h = s.history(&bare_id).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].id.as_str(), h[0].size), (bare_id.as_str(), s1));

    assert!(matches!(
        s.inspect("nope").unwrap_err(),
        Error::NoSuchImage(_)
    ));
    assert!(matches!(
        s.history("nope").unwrap_err(),
        Error::NoSuchImage(_)
    ));
}

#[test]
fn pulled_images_resolve_by_repo_digest() {
    use berth_registry::{Client, Options, Platform, PlatformExt, Reference};
    let reg = berth_testkit::images::Registry::start();
    let digest = berth_testkit::images::push_busybox(&reg, "bb:1");
    let (_d, s) = store();
    let r = Reference::parse(&format!("{}/bb:1", reg.addr)).unwrap();
    let img = s
        .pull(&Client::new(Options::default()), &r, &Platform::host())
        .unwrap();
    let by_digest = format!("{}/bb@{digest}", reg.addr);
    assert_eq!(s.get(&by_digest).unwrap().id, img.id);
    let v = s.inspect(&img.id).unwrap();
    assert_eq!(v["RepoDigests"], json!([by_digest]));
    assert_eq!(v["RepoTags"], json!([format!("{}/bb:1", reg.addr)]));
    assert_eq!(
        v["Metadata"]["LastTagTime"], "0001-01-01T00:00:00Z",
        "pulled, never tagged here"
    );
    // A push records the digest reference of the repository pushed to.
    s.add_repo_digest(&img.id, &format!("{}/copy@{digest}", reg.addr))
        .unwrap();
    let v = s.inspect(&img.id).unwrap();
    assert_eq!(
        v["RepoDigests"],
        json!([by_digest.clone(), format!("{}/copy@{digest}", reg.addr)])
    );
    // rmi repo@digest removes that reference; the tag keeps the image.
    let removed = s.remove(&by_digest, false).unwrap();
    assert_eq!(removed, vec![Removed::Untagged(by_digest.clone())]);
    assert_eq!(s.get(&img.id).unwrap().repo_digests.len(), 1);
    // Removing the tag leaves the image known by the other repository's digest (as Docker).
    let removed = s.remove(&format!("{}/bb:1", reg.addr), false).unwrap();
    assert_eq!(
        removed,
        vec![Removed::Untagged(format!("{}/bb:1", reg.addr))]
    );
    assert!(s.get(&img.id).unwrap().repo_tags.is_empty());
    // Not dangling: a prune keeps it.
    s.prune(false, &|_| false).unwrap();
    assert_eq!(s.images().unwrap().len(), 1);
    let removed = s
        .remove(&format!("{}/copy@{digest}", reg.addr), false)
        .unwrap();
    assert_eq!(removed.last(), Some(&Removed::Deleted(img.id.clone())));
    assert!(s.images().unwrap().is_empty());
}

#[test]
fn an_image_pulled_by_digest_has_no_tag_and_goes_with_its_repository_last_tag() {
    use berth_registry::{Client, Options, Platform, PlatformExt, Reference};
    let reg = berth_testkit::images::Registry::start();
    let digest = berth_testkit::images::push_busybox(&reg, "bd:1");
    let (_d, s) = store();
    let client = Client::new(Options::default());
    // name:tag@digest: the digest wins and no tag is recorded, as Docker.
    let by_digest = format!("{}/bd@{digest}", reg.addr);
    let r = Reference::parse(&format!("{}/bd:1@{digest}", reg.addr)).unwrap();
    let img = s.pull(&client, &r, &Platform::host()).unwrap();
    assert!(img.repo_tags.is_empty(), "{img:?}");
    assert_eq!(img.repo_digests, vec![by_digest.clone()]);
    assert_eq!(s.get(&by_digest).unwrap().id, img.id);
    // Then pulled by tag too: one image, tag and digest reference.
    let r = Reference::parse(&format!("{}/bd:1", reg.addr)).unwrap();
    let again = s.pull(&client, &r, &Platform::host()).unwrap();
    assert_eq!(again.id, img.id);
    assert_eq!(again.repo_digests, vec![by_digest.clone()]);
    // Removing the repository's last tag takes its digest references and the image with it.
    let removed = s.remove(&format!("{}/bd:1", reg.addr), false).unwrap();
    assert_eq!(
        removed,
        vec![
            Removed::Untagged(format!("{}/bd:1", reg.addr)),
            Removed::Untagged(by_digest),
            Removed::Deleted(img.id.clone()),
        ]
    );
    assert!(s.images().unwrap().is_empty());
}

#[test]
fn gc_never_collects_what_a_load_is_adding() {
    let (d, s) = store();
    let images: Vec<TestImage> = (0..12u8)
        .map(|i| {
            TestImage::new(
                vec![layer(&[(&format!("f{i}"), &vec![i; 50_000][..])])],
                &format!("c{i}"),
            )
            .named(&format!("localhost/c:{i}"))
        })
        .collect();
    let archives: Vec<Vec<u8>> = images
        .iter()
        .map(|i| oci_archive(std::slice::from_ref(i)))
        .collect();
    let mut collections = 0;
    std::thread::scope(|t| {
        let loader = t.spawn(|| {
            for a in &archives {
                s.load(&a[..]).unwrap();
            }
        });
        while !loader.is_finished() {
            s.gc().unwrap();
            collections += 1;
        }
        loader.join().expect("every load succeeds while gc runs");
    });
    assert!(collections > 0);
    // Every image is whole: all its blobs and layers are there, nothing else is.
    let built: Vec<_> = images.iter().map(TestImage::build).collect();
    let want_blobs: BTreeSet<String> = built
        .iter()
        .flat_map(|b| b.blobs.iter().map(|(d, _)| d.clone()))
        .collect();
    let want_layers: BTreeSet<String> = built.iter().flat_map(|b| b.diff_ids.clone()).collect();
    assert_eq!(s.images().unwrap().len(), images.len());
    assert_eq!(blobs(&s), want_blobs);
    assert_eq!(layer_dirs(d.path()), want_layers);
}

#[test]
fn two_stores_on_one_root_work_side_by_side() {
    // As two berth commands at once: each opens the database only for its transactions, and
    // opening a store never removes what the other is in the middle of writing.
    let (d, a) = store();
    let b = ImageStore::open(d.path()).unwrap();
    let img = TestImage::new(vec![layer(&[("f", b"1")])], "side").named("localhost/side:1");
    load(&a, &img);
    assert_eq!(
        b.get("localhost/side:1").unwrap().repo_tags,
        ["localhost/side:1"]
    );
    b.tag("localhost/side:1", "localhost/side:2").unwrap();
    assert_eq!(a.get("localhost/side:2").unwrap().repo_tags.len(), 2);

    // A load in progress (its blobs being written under the store lock): stores opened
    // meanwhile leave its scratch files and partial blobs alone, and it succeeds.
    let mut data = vec![0u8; 8 << 20];
    let mut x: u32 = 1;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let big = TestImage::new(vec![layer(&[("big", &data[..])])], "big").named("localhost/big:1");
    let archive = oci_archive(std::slice::from_ref(&big));
    let opened = std::thread::scope(|t| {
        let loader = t.spawn(|| a.load(&archive[..]));
        let mut opened = 0;
        while !loader.is_finished() {
            let c = ImageStore::open(d.path()).unwrap();
            c.images().unwrap();
            opened += 1;
        }
        loader.join().unwrap().unwrap();
        opened
    });
    assert!(opened > 0);
    assert_eq!(
        b.get("localhost/big:1").unwrap().repo_tags,
        ["localhost/big:1"]
    );
}
