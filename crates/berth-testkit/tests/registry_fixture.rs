//! The image fixtures work with the real tools: skopeo pushes the busybox OCI layout into the
//! real registry, which then lists and serves it with the digest we computed.

use berth_testkit::images::{Registry, busybox_layout, json_body, skopeo_copy};

#[test]
fn skopeo_pushes_the_busybox_layout_into_the_registry() {
    let reg = Registry::start();
    let (_tmp, layout, digest) = busybox_layout();
    skopeo_copy(
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/test/busybox:1", reg.addr),
    );
    let (status, body) = reg.get("/v2/test/busybox/tags/list").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_body(&body)["tags"][0], "1");
    // The registry serves the manifest under the digest the layout has.
    let (status, _) = reg
        .get(&format!("/v2/test/busybox/manifests/{digest}"))
        .unwrap();
    assert_eq!(status, 200);
}
