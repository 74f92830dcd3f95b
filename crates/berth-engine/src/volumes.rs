//! Volumes and a container's mounts: named volumes of the `local` driver (records in the
//! engine's database, data under `<data-root>/volumes/<name>/_data`), bind mounts, tmpfs,
//! anonymous volumes for the image's VOLUMEs, a new named volume seeded from the image's
//! content at its path, `--volumes-from`.
//!
//! The engine calls three hooks: [`Engine::prepare_mounts`] when a container is created (its
//! mounts are decided and recorded then), [`Engine::oci_mounts`] when it starts, and
//! [`Engine::release_mounts`] when it is removed.

use oci_spec::runtime::Mount;

use crate::model::{Container, MountPoint};
use crate::{Engine, Result};

impl Engine {
    /// Decide (and make: volumes, seeded) the mounts of a container being created, whose
    /// root filesystem is `rootfs`.
    pub(crate) fn prepare_mounts(
        &self,
        c: &Container,
        rootfs: &std::path::Path,
    ) -> Result<Vec<MountPoint>> {
        let _ = (c, rootfs);
        Ok(Vec::new())
    }

    /// The runtime mounts of a container's recorded mounts.
    pub(crate) fn oci_mounts(&self, c: &Container) -> Result<Vec<Mount>> {
        let _ = c;
        Ok(Vec::new())
    }

    /// A container is removed: drop its anonymous volumes if `remove_volumes` (docker rm -v),
    /// release the others.
    pub(crate) fn release_mounts(&self, c: &Container, remove_volumes: bool) -> Result<()> {
        let _ = (c, remove_volumes);
        Ok(())
    }
}
