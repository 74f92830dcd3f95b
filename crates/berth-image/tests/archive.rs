//! Archives: save → load round trips, the archive formats Docker and podman write (old and new
//! docker-archives, OCI archives with nested indexes, compressed), import of a root file system
//! tarball, and bad input refused without recording anything.

mod common;

use std::collections::BTreeSet;
use std::io::Read;

use berth_image::{Error, ImageRecord, ImageStore};
use berth_registry::{Client, Options, Platform, PlatformExt, Reference};
use berth_testkit::images::{Registry, push_busybox, tar_dir};
use common::{
    Comp, TestImage, blobs, compress, hex, layer, layer_dirs, oci_archive, oci_files, rootfs_dir,
    run_in, sha, store, tar_of,
};
use serde_json::{Value, json};

/// The files of a tar: path → bytes.
fn untar(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(bytes);
    let mut out = std::collections::BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        out.insert(path, b);
    }
    out
}

/// Mount the image's root file system and run busybox in it.
fn assert_runs(root: &std::path::Path, s: &ImageStore, img: &ImageRecord, name: &str) {
    let fs = s.create_rootfs(img, &rootfs_dir(root, name)).unwrap();
    assert_eq!(run_in(&fs.merged(), &["echo", "hello"]), "hello\n");
    s.remove_rootfs(&fs).unwrap();
}

fn pull_busybox(s: &ImageStore, reg: &Registry, repo_tag: &str) -> ImageRecord {
    push_busybox(reg, repo_tag);
    let r = Reference::parse(&format!("{}/{repo_tag}", reg.addr)).unwrap();
    s.pull(&Client::new(Options::default()), &r, &Platform::host())
        .unwrap()
}

#[test]
fn save_then_load_round_trips_a_pulled_image() {
    let reg = Registry::start();
    let (d1, s1) = store();
    let img = pull_busybox(&s1, &reg, "bb:1");
    let bb = format!("{}/bb:1", reg.addr);
    s1.tag(&bb, "localhost/extra:2").unwrap();

    let mut saved = Vec::new();
    s1.save(&[&bb, "localhost/extra:2"], &mut saved).unwrap();
    let files = untar(&saved);
    let diff = &img.diff_ids[0];
    // The docker-archive side.
    let m: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        m,
        json!([{
            "Config": format!("blobs/sha256/{}", hex(&img.id)),
            "RepoTags": [bb.clone(), "localhost/extra:2"],
            "Layers": [format!("blobs/sha256/{}", hex(diff))],
        }])
    );
    let layer_tar = &files[&format!("blobs/sha256/{}", hex(diff))];
    assert_eq!(&sha(layer_tar), diff, "the layer is the uncompressed diff");
    assert_eq!(
        sha(&files[&format!("blobs/sha256/{}", hex(&img.id))]),
        img.id
    );
    let repos: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert_eq!(repos[format!("{}/bb", reg.addr)]["1"], hex(diff));
    // The OCI side.
    assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["annotations"]["io.containerd.image.name"], bb);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let manifest_digest = entries[0]["digest"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_slice(&files[&format!("blobs/sha256/{}", hex(manifest_digest))]).unwrap();
    assert_eq!(manifest["config"]["digest"], img.id);
    assert_eq!(manifest["layers"][0]["digest"], *diff);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );

    // Into a fresh store: same image, same tags, a root file system that runs.
    let (d2, s2) = store();
    let loaded = s2.load(&saved[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(loaded[0].diff_ids, img.diff_ids);
    assert_eq!(
        loaded[0].repo_tags,
        [bb.clone(), "localhost/extra:2".into()]
    );
    assert_eq!(loaded[0].manifest, manifest_digest);
    assert_runs(d2.path(), &s2, &loaded[0], "loaded");
    // Loading again changes nothing; saving again gives the same bytes.
    assert_eq!(s2.load(&saved[..]).unwrap(), loaded);
    let mut again = Vec::new();
    s2.save(&[&bb, "localhost/extra:2"], &mut again).unwrap();
    assert!(again == saved, "save is deterministic");

    // By ID: no tags, as Docker; the loaded image is untagged.
    let mut by_id = Vec::new();
    s1.save(&[&img.id[..19]], &mut by_id).unwrap();
    let files = untar(&by_id);
    let m: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(m[0]["RepoTags"], Value::Null);
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert!(index["manifests"][0].get("annotations").is_none());
    let (_d3, s3) = store();
    let loaded = s3.load(&by_id[..]).unwrap();
    assert_eq!(
        (loaded[0].id.as_str(), loaded[0].repo_tags.len()),
        (img.id.as_str(), 0)
    );
    // Into the store that has it tagged: `docker load` reports the archive's tags (none),
    // not the ones the store had.
    let tagged = s2.load_tagged(&by_id[..]).unwrap();
    assert_eq!(tagged.len(), 1);
    assert!(tagged[0].1.is_empty(), "{:?}", tagged[0].1);
    assert_eq!(tagged[0].0.repo_tags.len(), 2);
    assert_eq!(
        s2.load_tagged(&saved[..]).unwrap()[0].1,
        [bb.clone(), "localhost/extra:2".into()]
    );

    // A repository without tag: every tag of it.
    let mut repo = Vec::new();
    s1.save(&["localhost/extra"], &mut repo).unwrap();
    let m: Value = serde_json::from_slice(&untar(&repo)["manifest.json"]).unwrap();
    assert_eq!(m[0]["RepoTags"], json!(["localhost/extra:2"]));

    assert!(matches!(
        s1.save(&["nothing:here"], &mut Vec::new()).unwrap_err(),
        Error::NoSuchImage(_)
    ));
    assert!(matches!(
        s1.save(&[], &mut Vec::new()).unwrap_err(),
        Error::Invalid(_)
    ));
    drop(d1);
}

/// A tar entry: a file, a symlink or a hard link.
enum Ent<'a> {
    File(&'a str, Vec<u8>),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn tar_entries(entries: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Ent::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Ent::Sym(p, target) | Ent::Hard(p, target) => {
                h.set_entry_type(if matches!(e, Ent::Sym(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn loads_old_docker_archives_with_linked_layers_gzipped() {
    let l1 = layer(&[("bin/one", b"1")]);
    let l2 = layer(&[("etc/two", b"2")]);
    let cfg = |diffs: &[&[u8]], label: &str| {
        serde_json::to_vec(&json!({
            "architecture": Platform::host().architecture().to_string(), "os": "linux",
            "config": {"Cmd": ["sh"], "Labels": {"l": label}},
            "rootfs": {"type": "layers", "diff_ids": diffs.iter().map(|d| sha(d)).collect::<Vec<_>>()}
        }))
        .unwrap()
    };
    // Image two has image one's layers in the other order, through a symlink and a hard link
    // (as old `docker save` links repeated layers).
    let c1 = cfg(&[&l1, &l2], "one");
    let c2 = cfg(&[&l2, &l1], "two");
    let manifest = json!([
        {"Config": format!("{}.json", hex(&sha(&c1))), "RepoTags": ["old:1", "old:latest"],
         "Layers": ["aaa/layer.tar", "bbb/layer.tar"]},
        {"Config": format!("./{}.json", hex(&sha(&c2))), "RepoTags": ["quay.io/x/two:2"],
         "Layers": ["ccc/layer.tar", "ddd/layer.tar"]}
    ]);
    let archive = tar_entries(&[
        Ent::File("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        Ent::File("repositories", b"{}".to_vec()),
        Ent::File("aaa/VERSION", b"1.0".to_vec()),
        Ent::File("aaa/json", b"{}".to_vec()),
        Ent::Sym("ccc/layer.tar", "../bbb/layer.tar"),
        Ent::File("aaa/layer.tar", l1.clone()),
        Ent::File("bbb/layer.tar", l2.clone()),
        Ent::Hard("ddd/layer.tar", "aaa/layer.tar"),
        Ent::File(&format!("{}.json", hex(&sha(&c1))), c1.clone()),
        Ent::File(&format!("{}.json", hex(&sha(&c2))), c2.clone()),
    ]);
    let gz = compress(Comp::Gzip, &archive);
    let (d, s) = store();
    let loaded = s.load(&gz[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].id, sha(&c1));
    assert_eq!(
        loaded[0].repo_tags,
        ["docker.io/library/old:1", "docker.io/library/old:latest"]
    );
    assert_eq!(loaded[0].diff_ids, [sha(&l1), sha(&l2)]);
    assert_eq!(loaded[1].id, sha(&c2));
    assert_eq!(loaded[1].repo_tags, ["quay.io/x/two:2"]);
    assert_eq!(loaded[1].diff_ids, [sha(&l2), sha(&l1)]);
    // Two layers unpacked, shared by both images; the v1 metadata was not stored.
    assert_eq!(layer_dirs(d.path()), BTreeSet::from([sha(&l1), sha(&l2)]));
    assert!(!blobs(&s).contains(&sha(b"{}")));
    for (i, rec) in loaded.iter().enumerate() {
        let fs = s
            .create_rootfs(rec, &rootfs_dir(d.path(), &format!("old{i}")))
            .unwrap();
        assert_eq!(std::fs::read(fs.merged().join("bin/one")).unwrap(), b"1");
        assert_eq!(std::fs::read(fs.merged().join("etc/two")).unwrap(), b"2");
        s.remove_rootfs(&fs).unwrap();
    }
    // The made manifests name uncompressed layers.
    let m: Value = serde_json::from_slice(
        &std::fs::read(s.blobs().path(&loaded[1].manifest.parse().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        m["layers"],
        json!([
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&l2), "size": l2.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&l1), "size": l1.len()},
        ])
    );
}

#[test]
fn loads_oci_archives_with_nested_indexes_zstd_compressed() {
    let host = Platform::host();
    let other_arch = if host.architecture().to_string() == "s390x" {
        "amd64"
    } else {
        "s390x"
    };
    let mut h = TestImage::new(vec![layer(&[("host", b"yes")])], "host");
    h.comp = Comp::Zstd;
    let mut o = TestImage::new(vec![layer(&[("other", b"no")])], "other");
    o.config["architecture"] = json!(other_arch);
    let (bh, bo) = (h.build(), o.build());
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": bo.manifest_digest,
             "size": bo.manifest_size, "platform": {"os": "linux", "architecture": other_arch}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": bh.manifest_digest,
             "size": bh.manifest_size, "platform": {"os": "linux", "architecture": host.architecture().to_string()}},
        ]
    }))
    .unwrap();
    let two = TestImage::new(vec![layer(&[("two", b"2")])], "two");
    let bt = two.build();
    let desc = |b: &common::Built, ann: Value| {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": b.manifest_digest,
               "size": b.manifest_size, "annotations": ann})
    };
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(&nested), "size": nested.len(),
         "annotations": {"org.opencontainers.image.ref.name": "1.0", "io.containerd.image.name": "localhost/multi:1.0"}},
        desc(&bt, json!({"org.opencontainers.image.ref.name": "latest"})),
        desc(&bt, json!({"org.opencontainers.image.ref.name": "localhost/two:2"})),
    ]});
    let mut files = vec![(
        format!("blobs/sha256/{}", hex(&sha(&nested))),
        nested.clone(),
    )];
    for b in [&bh, &bo, &bt] {
        for (d, bytes) in &b.blobs {
            files.push((format!("blobs/sha256/{}", hex(d)), bytes.clone()));
        }
    }
    files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    let archive = compress(Comp::Zstd, &tar_of(&files));

    let (d, s) = store();
    let loaded = s.load(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].id, bh.config_digest, "the host's platform");
    assert_eq!(loaded[0].manifest, bh.manifest_digest);
    assert_eq!(loaded[0].repo_tags, ["localhost/multi:1.0"]);
    assert_eq!(loaded[1].id, bt.config_digest);
    assert_eq!(
        loaded[1].repo_tags,
        ["localhost/two:2"],
        "a bare tag names nothing"
    );
    assert!(!layer_dirs(d.path()).contains(&bo.diff_ids[0]));

    // The same index without this host's platform: refused, nothing recorded.
    let (_d2, s2) = store();
    let only_other = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": bo.manifest_digest,
         "size": bo.manifest_size, "platform": {"os": "linux", "architecture": other_arch}}]}))
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = bo
        .blobs
        .iter()
        .map(|(d, b)| (format!("blobs/sha256/{}", hex(d)), b.clone()))
        .collect();
    files.push((
        format!("blobs/sha256/{}", hex(&sha(&only_other))),
        only_other.clone(),
    ));
    files.push((
        "index.json".into(),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(&only_other), "size": only_other.len()}]}))
        .unwrap(),
    ));
    let e = s2.load(&tar_of(&files)[..]).unwrap_err();
    assert!(e.to_string().contains("no image for linux/"), "{e}");
    assert!(s2.images().unwrap().is_empty());
}

#[test]
fn bad_archives_are_refused_and_record_nothing() {
    let l = layer(&[("big", &vec![5u8; 300_000][..])]);
    let img = TestImage::new(vec![l.clone()], "bad").named("localhost/bad:1");
    let built = img.build();
    let good = oci_archive(std::slice::from_ref(&img));
    let (d, s) = store();
    let check = |input: &[u8], what: &str| -> Error {
        let e = s.load(input).expect_err(what);
        assert!(s.images().unwrap().is_empty(), "{what}: nothing recorded");
        e
    };

    // Truncated, in the middle of the layer.
    let e = check(&good[..good.len() / 2], "truncated");
    assert!(
        matches!(e, Error::ArchiveRead(_) | Error::BadArchive(_)),
        "{e:?}"
    );
    let gz = compress(Comp::Gzip, &good);
    let e = check(&gz[..gz.len() / 2], "truncated gzip");
    assert!(
        matches!(e, Error::ArchiveRead(_) | Error::BadArchive(_)),
        "{e:?}"
    );
    // A corrupt layer blob (its bytes do not hash to its name).
    let mut files = oci_files(std::slice::from_ref(&img));
    let layer_path = format!("blobs/sha256/{}", hex(&built.layer_digests[0]));
    for (p, b) in files.iter_mut() {
        if *p == layer_path {
            let n = b.len() / 2;
            b[n] ^= 0xff;
        }
    }
    let e = check(&tar_of(&files), "corrupt layer");
    assert!(e.to_string().contains("corrupt"), "{e}");
    // A blob the manifest names is missing.
    let files: Vec<_> = oci_files(std::slice::from_ref(&img))
        .into_iter()
        .filter(|(p, _)| *p != layer_path)
        .collect();
    let e = check(&tar_of(&files), "missing blob");
    assert!(e.to_string().contains("does not hold"), "{e}");
    // A docker-archive whose layer is not what the config says.
    let cfg = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(b"something else")]}
    }))
    .unwrap();
    let docker = |layers: Vec<(String, Vec<u8>)>, tags: &[&str]| {
        let mut f = vec![
            (
                "manifest.json".to_string(),
                serde_json::to_vec(
                    &json!([{"Config": "c.json", "RepoTags": tags, "Layers": ["l/layer.tar"]}]),
                )
                .unwrap(),
            ),
            ("c.json".to_string(), cfg.clone()),
        ];
        f.extend(layers);
        tar_of(&f)
    };
    let e = check(
        &docker(vec![("l/layer.tar".into(), l.clone())], &["x:1"]),
        "diff ID mismatch",
    );
    assert!(matches!(e, Error::DiffIdMismatch { .. }), "{e:?}");
    let e = check(
        &docker(vec![], &["x:1"]),
        "docker-archive without its layer",
    );
    assert!(
        e.to_string().contains("manifest.json names l/layer.tar"),
        "{e}"
    );
    // Not an archive at all, an empty one, a tar of something else.
    let e = check(
        b"this is not a tar archive at all, just some text......",
        "garbage",
    );
    assert!(matches!(e, Error::NotAnArchive), "{e:?}");
    check(b"", "empty");
    let e = check(
        &tar_of(&[("hello.txt".into(), b"hi".to_vec())]),
        "no manifest",
    );
    assert!(
        e.to_string()
            .contains("neither manifest.json nor index.json"),
        "{e}"
    );
    let e = check(b"[{\"Config\": 1}]", "json, not tar");
    assert!(matches!(e, Error::NotAnArchive), "{e:?}");

    // Two images, the second bad: neither is recorded, and a tag the archive would move stays.
    let keep = s
        .load(&oci_archive(&[TestImage::new(vec![layer(&[("k", b"k")])], "keep")])[..])
        .unwrap()
        .remove(0);
    s.tag(&keep.id, "localhost/bad:1").unwrap();
    let good_one = TestImage::new(vec![layer(&[("g", b"g")])], "good").named("localhost/bad:1");
    let bad_one = TestImage::new(vec![layer(&[("b", b"b")])], "worse");
    let mut files = oci_files(std::slice::from_ref(&good_one));
    // The bad one's config lists a diff ID its layer does not have.
    let mut broken = bad_one.build();
    let cfg_bytes = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(b"wrong")]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&cfg_bytes), "size": cfg_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": broken.layer_digests[0], "size": broken.blobs[0].1.len()}]
    }))
    .unwrap();
    broken.blobs.truncate(1);
    for (dg, b) in broken.blobs.into_iter().chain([
        (sha(&cfg_bytes), cfg_bytes),
        (sha(&manifest), manifest.clone()),
    ]) {
        files.push((format!("blobs/sha256/{}", hex(&dg)), b));
    }
    let mut index: Value = serde_json::from_slice(&files[0].1).unwrap();
    index["manifests"].as_array_mut().unwrap().push(
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "digest": sha(&manifest), "size": manifest.len()}),
    );
    files[0].1 = serde_json::to_vec(&index).unwrap();
    let e = s.load(&tar_of(&files)[..]).unwrap_err();
    assert!(matches!(e, Error::DiffIdMismatch { .. }), "{e:?}");
    let images = s.images().unwrap();
    assert_eq!(images.len(), 1, "only the image that was there");
    assert_eq!(images[0].id, keep.id);
    assert_eq!(s.get("localhost/bad:1").unwrap().id, keep.id);

    // What the failed loads left is garbage.
    s.remove(&keep.id, true).unwrap();
    s.gc().unwrap();
    assert!(blobs(&s).is_empty());
    assert!(layer_dirs(d.path()).is_empty());
}

/// A load of a file that is not an archive says so without quoting it (the tar reader's
/// messages quote the header bytes it could not parse: `load -i /etc/passwd` printed the
/// file).
#[test]
fn a_file_that_is_not_an_archive_is_refused_without_echoing_it() {
    let mut passwd = String::new();
    for i in 0..40 {
        passwd.push_str(&format!(
            "user{i}:x:{i}:{i}:secret gecos {i}:/home/user{i}:/bin/bash\n"
        ));
    }
    let (_d, s) = store();
    for (what, input) in [
        ("plain", passwd.as_bytes().to_vec()),
        ("gzip", compress(Comp::Gzip, passwd.as_bytes())),
        ("zstd", compress(Comp::Zstd, passwd.as_bytes())),
        ("short", passwd.as_bytes()[..100].to_vec()),
    ] {
        let e = s.load(&input[..]).expect_err(what);
        assert!(matches!(e, Error::NotAnArchive), "{what}: {e:?}");
        assert_eq!(e.to_string(), "not a tar archive (or a corrupt one)");
        assert!(s.images().unwrap().is_empty());
    }
    // A tar whose second header is damaged: the same, and nothing is recorded.
    let img = TestImage::new(vec![layer(&[("f", b"f")])], "damaged").named("localhost/d:1");
    let mut archive = oci_archive(std::slice::from_ref(&img));
    // The second entry's header follows the first's (index.json) header and data; its
    // checksum field becomes text.
    let index_len = oci_files(std::slice::from_ref(&img))[0].1.len();
    let header = 512 + index_len.div_ceil(512) * 512;
    archive[header + 148..header + 156].copy_from_slice(b"garbage!");
    let e = s.load(&archive[..]).unwrap_err();
    assert!(matches!(e, Error::NotAnArchive), "{e:?}");
    assert!(s.images().unwrap().is_empty());
}

/// A manifest (or an index entry) that declares a size its blob does not have is refused at
/// load, naming the blob: the image would only fail later, at a push.
#[test]
fn declared_sizes_must_be_the_blobs_sizes() {
    let img =
        TestImage::new(vec![layer(&[("f", &[7u8; 3000][..])])], "sizes").named("localhost/sizes:1");
    let built = img.build();
    let files = oci_files(std::slice::from_ref(&img));
    let manifest_path = format!("blobs/sha256/{}", hex(&built.manifest_digest));
    let manifest: Value =
        serde_json::from_slice(&files.iter().find(|(p, _)| *p == manifest_path).unwrap().1)
            .unwrap();
    let (_d, s) = store();
    // The archive with the manifest changed by `edit` (and index.json pointing at it), or,
    // without an edit, index.json's entry declaring one byte too many.
    let with = |edit: Option<&dyn Fn(&mut Value)>| {
        let mut files = files.clone();
        let mut index: Value = serde_json::from_slice(&files[0].1).unwrap();
        match edit {
            Some(edit) => {
                let mut m = manifest.clone();
                edit(&mut m);
                let bytes = serde_json::to_vec(&m).unwrap();
                index["manifests"][0]["digest"] = json!(sha(&bytes));
                index["manifests"][0]["size"] = json!(bytes.len());
                files.push((format!("blobs/sha256/{}", hex(&sha(&bytes))), bytes));
            }
            None => {
                let size = index["manifests"][0]["size"].as_u64().unwrap();
                index["manifests"][0]["size"] = json!(size + 1);
            }
        }
        files[0].1 = serde_json::to_vec(&index).unwrap();
        tar_of(&files)
    };
    type Edit<'a> = Option<&'a dyn Fn(&mut Value)>;
    let cases: [(&str, Edit, &str); 3] = [
        (
            "layer",
            Some(&|m: &mut Value| {
                let n = m["layers"][0]["size"].as_u64().unwrap();
                m["layers"][0]["size"] = json!(n - 1);
            }),
            &built.layer_digests[0],
        ),
        (
            "config",
            Some(&|m: &mut Value| {
                let n = m["config"]["size"].as_u64().unwrap();
                m["config"]["size"] = json!(n + 10);
            }),
            &built.config_digest,
        ),
        ("manifest", None, &built.manifest_digest),
    ];
    for (what, edit, blob) in cases {
        let e = s.load(&with(edit)[..]).expect_err(what);
        let msg = e.to_string();
        assert!(
            matches!(e, Error::BadArchive(_)) && msg.contains("declares") && msg.contains(blob),
            "{what}: {msg}"
        );
        assert!(s.images().unwrap().is_empty(), "{what}: nothing recorded");
    }
    // Unchanged, it loads.
    let rec = s.load(&with(Some(&|_: &mut Value| {}))[..]).unwrap();
    assert_eq!(rec[0].repo_tags, ["localhost/sizes:1"]);
}

#[test]
fn import_makes_a_one_layer_image() {
    let rootfs = tar_dir(&berth_testkit::busybox_rootfs());
    let (d, s) = store();
    let changes = vec![
        r#"CMD ["/bin/busybox", "echo", "hi"]"#.to_string(),
        "ENV A=1".to_string(),
        "WORKDIR /tmp".to_string(),
    ];
    let img = s
        .import(
            &compress(Comp::Gzip, &rootfs)[..],
            Some("imported:1"),
            &changes,
        )
        .unwrap();
    assert_eq!(img.repo_tags, ["docker.io/library/imported:1"]);
    assert_eq!(img.diff_ids, [sha(&rootfs)]);
    let v = s.inspect("imported:1").unwrap();
    assert_eq!(
        v["Architecture"],
        Platform::host().architecture().to_string()
    );
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Config"]["Cmd"], json!(["/bin/busybox", "echo", "hi"]));
    assert_eq!(v["Config"]["Env"], json!(["A=1"]));
    assert_eq!(v["Config"]["WorkingDir"], "/tmp");
    assert!(v["Created"].as_str().unwrap().starts_with("20"));
    let h = s.history("imported:1").unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].id.as_str(), h[0].created_by.as_str()),
        (img.id.as_str(), "import")
    );
    assert!(h[0].size > 0);
    assert_runs(d.path(), &s, &img, "imported");

    // zstd, untagged: the same layer, shared.
    let again = s
        .import(&compress(Comp::Zstd, &rootfs)[..], None, &[])
        .unwrap();
    assert!(again.repo_tags.is_empty());
    assert_eq!(again.diff_ids, img.diff_ids);
    assert_eq!(layer_dirs(d.path()).len(), 1);

    // Bad input: nothing recorded.
    let before = s.images().unwrap().len();
    let e = s
        .import(&rootfs[..], None, &["RUN true".to_string()])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidChange { .. }), "{e:?}");
    assert!(matches!(
        s.import(&rootfs[..], Some("Bad:Name"), &[]).unwrap_err(),
        Error::Reference(_)
    ));
    let mut garbage = vec![0x42u8; 4096];
    garbage[..5].copy_from_slice(b"hello");
    assert!(s.import(&garbage[..], Some("junk:1"), &[]).is_err());
    assert!(s.import(&b""[..], Some("junk:1"), &[]).is_err());
    let e = s
        .import(&compress(Comp::Gzip, &rootfs)[..1000], Some("junk:1"), &[])
        .unwrap_err();
    assert!(matches!(e, Error::ArchiveRead(_)), "{e:?}");
    assert_eq!(s.images().unwrap().len(), before);
    assert!(s.lookup("junk:1").unwrap().is_none());
    drop(d);
}
