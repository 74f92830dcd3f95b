//! Media types. The OCI ones are [`MediaType`]'s variants; Docker's, which oci-spec parses as
//! [`MediaType::Other`], are named here, with the questions berth asks of a media type.

use oci_spec::image::MediaType;

/// Docker's schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list (its image index).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker's uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker's gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker's zstd layer.
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker's foreign (non-distributable) gzip layer.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Whether `m` is an image manifest: OCI's or Docker's schema 2.
pub fn is_manifest(m: &MediaType) -> bool {
    match m {
        MediaType::ImageManifest => true,
        MediaType::Other(s) => s == DOCKER_MANIFEST,
        _ => false,
    }
}

/// Whether `m` is an image index: OCI's or Docker's manifest list.
pub fn is_index(m: &MediaType) -> bool {
    match m {
        MediaType::ImageIndex => true,
        MediaType::Other(s) => s == DOCKER_LIST,
        _ => false,
    }
}

/// The `Accept` header for a manifest request: every manifest and index type berth reads.
pub fn manifest_accept() -> String {
    [
        MediaType::ImageManifest.as_ref(),
        MediaType::ImageIndex.as_ref(),
        DOCKER_MANIFEST,
        DOCKER_LIST,
    ]
    .join(", ")
}

/// A layer's media type as its OCI equivalent (Docker's layer types map to OCI's; anything
/// else is kept): what a layer's descriptor says in an OCI manifest made from a Docker one.
pub fn oci_layer(m: &MediaType) -> MediaType {
    match m.as_ref() {
        DOCKER_LAYER_GZIP => MediaType::ImageLayerGzip,
        DOCKER_LAYER => MediaType::ImageLayer,
        DOCKER_LAYER_ZSTD => MediaType::ImageLayerZstd,
        DOCKER_FOREIGN_LAYER_GZIP => MediaType::ImageLayerNonDistributableGzip,
        _ => m.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_oci_types() {
        let docker = MediaType::from(DOCKER_MANIFEST);
        assert!(matches!(docker, MediaType::Other(_)));
        assert!(is_manifest(&docker) && !is_index(&docker));
        assert!(is_manifest(&MediaType::ImageManifest));
        assert!(is_index(&MediaType::from(DOCKER_LIST)) && is_index(&MediaType::ImageIndex));
        let schema1 = MediaType::from("application/vnd.docker.distribution.manifest.v1+prettyjws");
        assert!(!is_manifest(&schema1) && !is_index(&schema1));
        assert!(!is_manifest(&MediaType::ImageConfig));
        assert_eq!(
            oci_layer(&MediaType::from(DOCKER_LAYER_GZIP)),
            MediaType::ImageLayerGzip
        );
        assert_eq!(
            oci_layer(&MediaType::from(DOCKER_FOREIGN_LAYER_GZIP)).as_ref(),
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        );
        assert_eq!(
            oci_layer(&MediaType::ImageLayerZstd),
            MediaType::ImageLayerZstd
        );
        assert!(manifest_accept().contains(DOCKER_LIST));
    }
}
