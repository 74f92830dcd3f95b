//! `ImageStore::load` of docker-archives and OCI archives whose manifest.json, index.json,
//! manifests and configs are generated from templates (the layer is real): never a panic or
//! a hang; errors are one line.

use berth_fuzz::runner::{config, with_deadline};
use berth_fuzz::{fuzz_docker_load, fuzz_oci_load, inputs, seeds};
use proptest::prelude::*;

#[test]
fn known_odd_archives() {
    for (what, m, c) in seeds::docker_archives() {
        with_deadline(what, move || fuzz_docker_load(&m, &c));
    }
    // The OCI template, and an index nested deeper than the loader follows.
    let c = serde_json::to_vec(&seeds::docker_template().1).unwrap();
    let m = serde_json::to_vec(&seeds::oci_manifest(&c)).unwrap();
    let i = serde_json::to_vec(&seeds::oci_index(&m)).unwrap();
    with_deadline("the OCI template", move || fuzz_oci_load(&i, &m, &c));
    let c = serde_json::to_vec(&seeds::docker_template().1).unwrap();
    let mut inner = serde_json::to_vec(&seeds::oci_manifest(&c)).unwrap();
    for _ in 0..6 {
        let mut idx = seeds::oci_index(&inner);
        idx["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
        idx["manifests"][0]["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
        inner = serde_json::to_vec(&idx).unwrap();
    }
    // Only the outermost index is in the archive here: its target is missing.
    with_deadline("nested indexes", move || fuzz_oci_load(&inner, b"{}", &c));
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn docker_archives(
        m in inputs::json_from(seeds::docker_template().0, seeds::DOCKER_MANIFEST_FIELDS.to_vec()),
        c in inputs::json_from(seeds::docker_template().1, seeds::CONFIG_FIELDS.to_vec()),
    ) {
        with_deadline("a docker-archive", move || fuzz_docker_load(&m, &c));
    }

    #[test]
    fn oci_archives(
        (i, m, c) in inputs::json_from(seeds::docker_template().1, seeds::CONFIG_FIELDS.to_vec())
            .prop_flat_map(|c| {
                let m = inputs::json_from(seeds::oci_manifest(&c), seeds::OCI_MANIFEST_FIELDS.to_vec());
                (Just(c), m)
            })
            .prop_flat_map(|(c, m)| {
                let i = inputs::json_from(seeds::oci_index(&m), seeds::OCI_INDEX_FIELDS.to_vec());
                (i, Just(m), Just(c))
            }),
    ) {
        with_deadline("an OCI archive", move || fuzz_oci_load(&i, &m, &c));
    }
}
