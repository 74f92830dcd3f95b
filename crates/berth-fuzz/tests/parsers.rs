//! Image references, platforms, manifests and image configs (with the image's passwd and
//! group files), against known odd inputs and generated ones (see `berth_fuzz`).

use berth_fuzz::runner::{config, with_deadline};
use berth_fuzz::{
    fuzz_dockerfile, fuzz_image_config, fuzz_manifest, fuzz_platform, fuzz_reference, inputs, seeds,
};
use proptest::prelude::*;

#[test]
fn known_odd_references_and_platforms() {
    for r in seeds::references() {
        fuzz_reference(&r);
    }
    for p in seeds::platforms() {
        fuzz_platform(&p);
    }
}

#[test]
fn known_odd_dockerfiles() {
    for t in [
        "",
        "FROM",
        "FROM a\nRUN <<A <<B\nx\nA\ny\nB\n",
        "FROM a\nRUN <<EOF",
        "# escape=`\nFROM a\nRUN echo `\n  hi",
        "FROM a\nENV ${",
        "FROM a\nCOPY --from= x y",
        "FROM a\nONBUILD ONBUILD RUN x",
        "ARG A\nFROM ${A:?no}\n",
        "\u{feff}FROM a\r\nRUN x\r\n",
        "FROM a\nHEALTHCHECK --interval=-1s CMD x",
        "FROM a\nRUN --mount=type=cache,target=/x,uid=99999999999999 x",
    ] {
        fuzz_dockerfile(t);
    }
}

#[test]
fn known_odd_configs() {
    let (_, c) = seeds::docker_template();
    let c = serde_json::to_vec(&c).unwrap();
    let passwd = b"root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/:/bin/sh\n";
    let group = b"root:x:0:\ng:x:5:u,root\n";
    fuzz_image_config(&c, passwd, group, None);
    fuzz_image_config(&c, passwd, group, Some("/etc/shadow"));
    fuzz_image_config(&c, passwd, group, Some("../../../../etc/passwd"));
    fuzz_image_config(&c, passwd, group, Some("passwd"));
    for user in [
        "u",
        "u:g",
        "99999999999",
        "4294967295:4294967295",
        ":",
        "a:b:c",
        "",
        "0:",
    ] {
        let mut v = seeds::docker_template().1;
        inputs::set_pointer(&mut v, "/config/User", Some(user.into()));
        fuzz_image_config(&serde_json::to_vec(&v).unwrap(), passwd, group, None);
    }
    fuzz_image_config(&c, &[0xff; 100], b":::::\n\n::", None);
    fuzz_image_config(&c, "u:x:1:1\n".repeat(100_000).as_bytes(), b"", None);
}

/// Found by `cargo fuzz run reference`: a Docker Hub repository whose first component looks
/// like a registry (`docker.io/index.docker.io/o6`, `docker.io/a.b/c`, `docker.io/localhost/x`)
/// prints in its familiar form without `docker.io/`, which reads back as another registry's
/// image (`index.docker.io/o6` is `docker.io/library/o6`). Fixed: such a repository keeps
/// its `docker.io/`.
#[test]
fn familiar_form_of_a_hub_repository_named_like_a_registry() {
    let failing: Vec<&str> = [
        "index.docker.io/index.docker.io/o6",
        "docker.io/a.b/c",
        "docker.io/localhost/x",
    ]
    .into_iter()
    .filter(|s| std::panic::catch_unwind(|| fuzz_reference(s)).is_err())
    .collect();
    assert!(failing.is_empty(), "{failing:?}");
}

fn reference_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9._:/@\\[\\]-]{0,40}",
        2 => (
            prop::option::of("[a-z0-9.-]{1,10}(:[0-9]{1,6})?"),
            "[a-z0-9]{1,5}([._-]{1,3}[a-z0-9]{1,4}){0,2}(/[a-z0-9._-]{1,8}){0,3}",
            prop::option::of("[A-Za-z0-9_.-]{1,20}"),
            prop::option::of("[0-9a-f]{64}"),
        )
            .prop_map(|(reg, path, tag, digest)| {
                let mut s = String::new();
                if let Some(r) = reg {
                    s.push_str(&r);
                    s.push('/');
                }
                s.push_str(&path);
                if let Some(t) = tag {
                    s.push(':');
                    s.push_str(&t);
                }
                if let Some(d) = digest {
                    s.push_str("@sha256:");
                    s.push_str(&d);
                }
                s
            }),
        1 => ".{0,30}",
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn references(s in reference_string()) {
        fuzz_reference(&s);
    }

    #[test]
    fn platforms(s in "[a-z0-9/]{0,20}|.{0,10}") {
        fuzz_platform(&s);
    }

    #[test]
    fn dockerfiles(lines in prop::collection::vec(prop_oneof![
        Just("FROM busybox AS b".to_string()),
        Just("ARG A=${B:-x}".to_string()),
        Just("RUN <<EOF".to_string()),
        Just("EOF".to_string()),
        Just("COPY --from=b --chown=1:1 [\"a\", \"b\"] /c/".to_string()),
        Just("# escape=`".to_string()),
        Just("ENV a=\"b c\" d=${a:+e} \\".to_string()),
        "[A-Z]{2,10} [ -~]{0,30}",
        "[ -~]{0,40}",
        ".{0,20}",
    ], 0..12)) {
        fuzz_dockerfile(&lines.join("\n"));
    }

    #[test]
    fn manifests(m in inputs::json_from(
        seeds::oci_manifest(b"{}"),
        seeds::OCI_MANIFEST_FIELDS.to_vec(),
    )) {
        fuzz_manifest(&m);
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn image_configs(
        c in inputs::json_from(seeds::docker_template().1, seeds::CONFIG_FIELDS.to_vec()),
        passwd in prop_oneof![
            Just(b"root:x:0:0::/root:/bin/sh\n".to_vec()),
            "([a-z:0-9]{0,12}\n){0,4}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..64),
        ],
        group in "([a-z:0-9,]{0,12}\n){0,4}",
    ) {
        with_deadline("an image config", move || {
            fuzz_image_config(&c, &passwd, group.as_bytes(), None)
        });
    }
}
