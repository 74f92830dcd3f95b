//! Operations on a container's processes and files: stats, top, update (live), archive
//! (`docker cp`), export, changes (`docker diff`), commit.

use crate::Engine;

impl Engine {}
