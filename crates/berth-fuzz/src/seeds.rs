//! The known bad inputs every run starts from (and a cargo-fuzz corpus can be made of).

use berth_testkit::tar::{Layer, PaxSparse};
use serde_json::{Value, json};

use crate::canary;
use crate::inputs::{Body, Entry, LayerSpec, LongName};

fn entry(path: &[u8], body: Body) -> Entry {
    Entry {
        path: path.to_vec(),
        body,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        pax: Vec::new(),
        long_name: LongName::Pax,
        declared_size: None,
        gnu: false,
    }
}

fn spec(entries: Vec<Entry>) -> LayerSpec {
    LayerSpec {
        entries,
        end_blocks: true,
        trailer: Vec::new(),
        flips: Vec::new(),
        cut: None,
        compression: 0,
        cut_compressed: None,
    }
}

fn file(path: &[u8]) -> Entry {
    entry(path, Body::File(b"evil".to_vec()))
}

/// Layer streams: (what, bytes).
pub fn layers() -> Vec<(&'static str, Vec<u8>)> {
    let canary = canary().as_os_str().as_encoded_bytes().to_vec();
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty input", Vec::new()),
        ("only end blocks", vec![0u8; 1024]),
        ("garbage", b"this is not a tar at all".repeat(40)),
        (
            "the one-entry .wh... layer",
            Layer::new().file(".wh...", 0o644, b"").tar(),
        ),
        ("a whiteout of '.'", spec(vec![file(b".wh..")]).bytes()),
        ("a whiteout of ''", spec(vec![file(b".wh.")]).bytes()),
        (
            "dir/.wh...",
            spec(vec![entry(b"dir/", Body::Dir), file(b"dir/.wh...")]).bytes(),
        ),
        (
            "an opaque marker as a directory",
            spec(vec![file(b"a/.wh..wh..opq/b")]).bytes(),
        ),
        ("an opaque root", spec(vec![file(b".wh..wh..opq")]).bytes()),
        ("dot-dot", spec(vec![file(b"../ESCAPED")]).bytes()),
        (
            "deeper dot-dot",
            spec(vec![file(b"a/../../ESCAPED")]).bytes(),
        ),
        (
            "an absolute path",
            spec(vec![file(&[&canary[..], b"/ESCAPED"].concat())]).bytes(),
        ),
        (
            "a symlink escape",
            spec(vec![
                entry(b"link", Body::Symlink(canary.clone())),
                file(b"link/ESCAPED"),
                entry(b"link/dir/", Body::Dir),
                file(b"link/.wh.file"),
                file(b"link/.wh..wh..opq"),
            ])
            .bytes(),
        ),
        (
            "a relative symlink escape",
            spec(vec![
                entry(b"up", Body::Symlink(b"../..".to_vec())),
                file(b"up/ESCAPED"),
            ])
            .bytes(),
        ),
        (
            "a directory replaced by a symlink out (its mode set at the end)",
            spec(vec![
                entry(b"d/", Body::Dir),
                entry(b"d", Body::Symlink(canary.clone())),
            ])
            .bytes(),
        ),
        (
            "a hard link out",
            spec(vec![entry(
                b"h",
                Body::Hardlink(b"../../etc/passwd".to_vec()),
            )])
            .bytes(),
        ),
        (
            "an absolute hard link",
            spec(vec![entry(
                b"h",
                Body::Hardlink([&canary[..], b"/file"].concat()),
            )])
            .bytes(),
        ),
        (
            "a hard link through a symlink",
            spec(vec![
                entry(b"l", Body::Symlink(canary.clone())),
                entry(b"h", Body::Hardlink(b"l/file".to_vec())),
            ])
            .bytes(),
        ),
        (
            "a huge declared size",
            spec(vec![Entry {
                declared_size: Some(1 << 62),
                ..file(b"big")
            }])
            .bytes(),
        ),
        (
            "a huge PAX size",
            spec(vec![Entry {
                pax: vec![("size".into(), b"18446744073709551615".to_vec())],
                ..file(b"big")
            }])
            .bytes(),
        ),
        (
            "a GNU long name of huge size",
            spec(vec![Entry {
                declared_size: Some(1 << 62),
                ..entry(b"x", Body::Other(b'L', b"long".to_vec()))
            }])
            .bytes(),
        ),
        (
            "an old-GNU sparse file of an exabyte",
            Layer::new()
                .gnu_sparse("s", 0o644, 1 << 60, &[(0, b"a"), (1 << 59, b"b")])
                .tar(),
        ),
        (
            "a PAX sparse 1.0 file claiming 2^60 segments",
            Layer::new()
                .pax(&[
                    ("GNU.sparse.major", b"1"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.name", b"s"),
                    ("GNU.sparse.realsize", b"10"),
                ])
                .file("GNUSparseFile.0/s", 0o644, b"1152921504606846976\n0\n1\n")
                .tar(),
        ),
        (
            "PAX sparse 0.0 with a numbytes first",
            Layer::new()
                .pax(&[("GNU.sparse.size", b"10"), ("GNU.sparse.numbytes", b"1")])
                .file("s", 0o644, b"a")
                .tar(),
        ),
        (
            "a PAX sparse file named ../ESCAPED",
            Layer::new()
                .pax(&[
                    ("GNU.sparse.size", b"1"),
                    ("GNU.sparse.name", b"../ESCAPED"),
                    ("GNU.sparse.map", b"0,1"),
                ])
                .file("s", 0o644, b"a")
                .tar(),
        ),
        (
            "sparse files in every format",
            Layer::new()
                .gnu_sparse("g", 0o644, 100_000, &[(5, b"x"), (70_000, b"y")])
                .pax_sparse(PaxSparse::V0_0, "p0", 0o644, 9, &[(1, b"a")])
                .pax_sparse(PaxSparse::V0_1, "p1", 0o644, 9, &[(1, b"a")])
                .pax_sparse(PaxSparse::V1_0, "p2", 0o644, 9, &[(1, b"a")])
                .tar(),
        ),
        (
            "a 4096-deep path",
            spec(vec![file(
                "a/".repeat(4096).trim_end_matches('/').as_bytes(),
            )])
            .bytes(),
        ),
        // Each entry names its full path, so the chain ends where paths pass PATH_MAX (4096
        // bytes, 256 levels of 16 bytes here): the unpacker refuses the entry that gets there.
        (
            "a directory chain past PATH_MAX",
            deep_chain(270, "directory-name-"),
        ),
        ("a deep chain whited out (Flatten removes it)", {
            let mut t = deep_chain_entries(300, "a");
            t.push(file(b".wh.a"));
            spec(t).bytes()
        }),
        (
            "a NUL in a PAX path",
            spec(vec![Entry {
                pax: vec![("path".into(), b"a\0/../../ESCAPED".to_vec())],
                ..file(b"x")
            }])
            .bytes(),
        ),
        (
            "a symlink loop, then a file through it",
            spec(vec![
                entry(b"a", Body::Symlink(b"b".to_vec())),
                entry(b"b", Body::Symlink(b"a".to_vec())),
                file(b"a/ESCAPED"),
            ])
            .bytes(),
        ),
        (
            "unknown and metadata entry types",
            spec(vec![
                entry(b"v", Body::Other(b'V', Vec::new())),
                entry(b"g", Body::Other(b'g', b"garbage".to_vec())),
            ])
            .bytes(),
        ),
        (
            "a device node and a FIFO in the way of a file",
            spec(vec![
                entry(b"n", Body::Other(b'3', Vec::new())),
                file(b"n"),
                entry(b"f", Body::Other(b'6', Vec::new())),
                entry(b"f/", Body::Dir),
            ])
            .bytes(),
        ),
        (
            "xattrs, overlay's own among them",
            Layer::new()
                .pax(&[
                    ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                    ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
                    ("SCHILY.xattr.user.x", b"1"),
                ])
                .dir("d/", 0o755)
                .tar(),
        ),
    ];
    let whole = Layer::new()
        .dir("etc/", 0o755)
        .file("etc/f", 0o644, &[7u8; 40_000])
        .tar();
    let gz = crate::gzip(&whole);
    let zs = crate::zstd(&whole);
    out.push(("truncated gzip", gz[..gz.len() / 2].to_vec()));
    out.push(("gzip without its trailer", gz[..gz.len() - 8].to_vec()));
    out.push(("truncated zstd", zs[..zs.len() / 2].to_vec()));
    out.push(("gzip magic only", vec![0x1f, 0x8b]));
    out.push(("zstd magic only", vec![0x28, 0xb5, 0x2f, 0xfd]));
    out.push(("a tar cut inside a header", whole[..300].to_vec()));
    out.push(("a tar cut inside data", whole[..2000].to_vec()));
    out
}

fn deep_chain_entries(n: usize, name: &str) -> Vec<Entry> {
    (1..=n)
        .map(|d| entry(format!("{name}/").repeat(d).as_bytes(), Body::Dir))
        .collect()
}

/// Directories `name/`, `name/name/`, … `n` deep.
fn deep_chain(n: usize, name: &str) -> Vec<u8> {
    spec(deep_chain_entries(n, name)).bytes()
}

/// Image references.
pub fn references() -> Vec<String> {
    let mut v: Vec<String> = [
        "busybox",
        "BUSYBOX",
        "docker.io/library/busybox:1.36",
        "index.docker.io/busybox",
        "localhost:5000/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "localhost:5000/a/b:tag@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "[::1]:5000/a",
        "[::1]/a",
        "[/a",
        "]:/a",
        "a:/b",
        ":",
        "/",
        "@",
        "a@",
        "a@sha256:",
        "a:b:c",
        "a/b/c/d/e:f",
        "a..b",
        "a__b",
        "a___b",
        "a--b",
        "-a",
        "é",
        "a/é:1",
        "localhost",
        "localhost:",
        "localhost:99999/a",
        "a.b/c",
        "a.b:/c",
        ".a/b",
        "a./b",
        "xn--a.b/c",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(5000));
    v.push(format!("a:{}", "t".repeat(129)));
    v.push(format!("{}/b", "h.".repeat(3000)));
    v
}

/// Platform strings.
pub fn platforms() -> Vec<String> {
    [
        "linux/amd64",
        "linux/arm64/v8",
        "linux",
        "/",
        "//",
        "linux/amd64/",
        "a/b/c/d",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The docker-archive template: (manifest.json, config) for [`crate::archive_layer`].
pub fn docker_template() -> (Value, Value) {
    let diff_id = crate::sha256(&crate::archive_layer());
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "User": "0:0"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "fuzz"}]
    });
    let manifest = json!([{
        "Config": "config.json",
        "RepoTags": ["fuzz/image:1"],
        "Layers": ["layer.tar"]
    }]);
    (manifest, config)
}

/// JSON pointers into the docker-archive template's manifest.json.
pub const DOCKER_MANIFEST_FIELDS: &[&str] = &[
    "/0",
    "/0/Config",
    "/0/RepoTags",
    "/0/RepoTags/0",
    "/0/Layers",
    "/0/Layers/0",
    "/0/LayerSources",
    "/1",
];

/// JSON pointers into the image config template.
pub const CONFIG_FIELDS: &[&str] = &[
    "/architecture",
    "/os",
    "/variant",
    "/config",
    "/config/Cmd",
    "/config/Entrypoint",
    "/config/Env",
    "/config/Env/0",
    "/config/User",
    "/config/WorkingDir",
    "/config/Volumes",
    "/config/ExposedPorts",
    "/config/Labels",
    "/rootfs",
    "/rootfs/diff_ids",
    "/rootfs/diff_ids/0",
    "/history",
    "/history/0",
    "/created",
];

/// The OCI manifest template for `config` (its bytes) and the archive layer.
pub fn oci_manifest(config: &[u8]) -> Value {
    let layer = crate::archive_layer();
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": crate::sha256(config),
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": crate::sha256(&layer),
            "size": layer.len()
        }]
    })
}

/// JSON pointers into the OCI manifest template.
pub const OCI_MANIFEST_FIELDS: &[&str] = &[
    "/schemaVersion",
    "/mediaType",
    "/config",
    "/config/digest",
    "/config/size",
    "/config/mediaType",
    "/layers",
    "/layers/0",
    "/layers/0/digest",
    "/layers/0/size",
    "/layers/0/mediaType",
    "/manifests",
];

/// The index.json template for `manifest` (its bytes).
pub fn oci_index(manifest: &[u8]) -> Value {
    json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": crate::sha256(manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "1", "io.containerd.image.name": "fuzz/image:1"},
            "platform": {"os": "linux", "architecture": "amd64"}
        }]
    })
}

/// JSON pointers into the index template.
pub const OCI_INDEX_FIELDS: &[&str] = &[
    "/schemaVersion",
    "/manifests",
    "/manifests/0",
    "/manifests/0/mediaType",
    "/manifests/0/digest",
    "/manifests/0/size",
    "/manifests/0/annotations",
    "/manifests/0/annotations/org.opencontainers.image.ref.name",
    "/manifests/0/annotations/io.containerd.image.name",
    "/manifests/0/platform",
    "/manifests/0/platform/architecture",
];

/// Docker-archive seeds: (what, manifest.json, config).
pub fn docker_archives() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let (m, c) = docker_template();
    let cb = serde_json::to_vec(&c).expect("json");
    let with = |ptr: &str, v: Value| {
        let mut m = m.clone();
        crate::inputs::set_pointer(&mut m, ptr, Some(v));
        serde_json::to_vec(&m).expect("json")
    };
    vec![
        (
            "the template",
            serde_json::to_vec(&m).expect("json"),
            cb.clone(),
        ),
        (
            "a layer path climbing out",
            with("/0/Layers/0", json!("../../etc/passwd")),
            cb.clone(),
        ),
        (
            "an absolute config path",
            with("/0/Config", json!("/etc/passwd")),
            cb.clone(),
        ),
        (
            "a bad tag",
            with("/0/RepoTags/0", json!("UPPER:case")),
            cb.clone(),
        ),
        ("no layers", with("/0/Layers", json!([])), cb.clone()),
        (
            "the layer twice",
            with("/0/Layers", json!(["layer.tar", "layer.tar"])),
            cb.clone(),
        ),
        (
            "a config that is not JSON",
            serde_json::to_vec(&m).expect("json"),
            b"{".to_vec(),
        ),
        ("manifest.json empty", Vec::new(), cb.clone()),
        ("manifest.json a number", b"1e999".to_vec(), cb.clone()),
        ("deeply nested JSON", "[".repeat(10_000).into_bytes(), cb),
    ]
}

/// config.json seeds.
pub fn runtime_specs() -> Vec<(&'static str, Vec<u8>)> {
    let base = berth_testkit::default_config();
    let with = |ptr: &str, v: Value| {
        let mut b = base.clone();
        crate::inputs::set_pointer(&mut b, ptr, Some(v));
        serde_json::to_vec(&b).expect("json")
    };
    vec![
        ("the default", serde_json::to_vec(&base).expect("json")),
        ("ociVersion 2", with("/ociVersion", json!("2.0.0"))),
        (
            "ociVersion garbage",
            with("/ociVersion", json!("1.x.y-z+w")),
        ),
        (
            "overflowing id mappings",
            with(
                "/linux/uidMappings",
                json!([{"containerID": 4294967295u32, "hostID": 4294967295u32, "size": 4294967295u32}]),
            ),
        ),
        (
            "seccomp with every action",
            with(
                "/linux/seccomp",
                json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                       "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_BOGUS"],
                       "syscalls": [{"names": ["read", "no_such_call"], "action": "SCMP_ACT_NOTIFY",
                                     "args": [{"index": 99, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            ),
        ),
        (
            "a sysctl with ..",
            with("/linux/sysctl", json!({"../../x": "1"})),
        ),
        (
            "rlimits soft above hard",
            with(
                "/process/rlimits",
                json!([{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]),
            ),
        ),
        ("deeply nested", "{\"a\":".repeat(5000).into_bytes()),
    ]
}

/// JSON pointers into the default config.json.
pub const SPEC_FIELDS: &[&str] = &[
    "/ociVersion",
    "/process",
    "/process/args",
    "/process/cwd",
    "/process/env",
    "/process/user",
    "/process/rlimits",
    "/process/capabilities",
    "/process/oomScoreAdj",
    "/root",
    "/root/path",
    "/hostname",
    "/mounts",
    "/mounts/0",
    "/mounts/0/destination",
    "/linux",
    "/linux/namespaces",
    "/linux/namespaces/0",
    "/linux/uidMappings",
    "/linux/gidMappings",
    "/linux/sysctl",
    "/linux/seccomp",
    "/linux/resources",
    "/linux/devices",
    "/linux/cgroupsPath",
    "/linux/rootfsPropagation",
    "/linux/timeOffsets",
    "/linux/maskedPaths",
];
