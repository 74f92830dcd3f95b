//! Helpers shared by the integration test files of the `berth-runc` binary.
#![allow(dead_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

pub use berth_testkit::{Berth, Bundle, RuntimeRoot, assert_no_leaks, unique};
use serde_json::Value;

/// The berth-runc binary under test (`$BERTH_RUNC_BIN` overrides, e.g. inside the test VMs).
pub fn runc_bin() -> PathBuf {
    std::env::var_os("BERTH_RUNC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth-runc")))
}

/// A test context: a runtime root and a runner.
pub struct Ctx {
    pub root: RuntimeRoot,
    pub berth: Berth,
}

impl Ctx {
    pub fn new() -> Ctx {
        assert!(
            berth_testkit::is_root(),
            "the runtime integration tests must run as root"
        );
        let root = RuntimeRoot::new();
        let berth = Berth::new(runc_bin(), &root);
        Ctx { root, berth }
    }

    /// A bundle and a unique container id.
    pub fn bundle(&self, prefix: &str, args: &[&str]) -> (String, Bundle) {
        let id = unique(prefix);
        let b = Bundle::new(&id, args);
        (id, b)
    }

    /// `run` a bundle in the foreground; returns (exit code, stdout, stderr).
    pub fn run(&self, id: &str, b: &Bundle) -> (i32, String, String) {
        let out = self
            .berth
            .run(&["run", "--bundle", b.dir.to_str().unwrap(), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run `args` in a fresh container configured by `edit`; assert it exits 0, check it left
    /// nothing behind, and return its stdout.
    pub fn output(&self, prefix: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> String {
        let (id, mut b) = self.bundle(prefix, args);
        edit(&mut b.config);
        b.write();
        let (code, out, err) = self.run(&id, &b);
        assert_eq!(
            code, 0,
            "container {args:?} failed: stdout {out:?} stderr {err:?}"
        );
        assert_no_leaks(&self.root.path, &id, &b);
        out
    }

    /// Create a detached container (`create` + `start`) running `args`.
    pub fn start(
        &self,
        prefix: &str,
        args: &[&str],
        edit: impl FnOnce(&mut Value),
    ) -> (String, Bundle) {
        let (id, mut b) = self.bundle(prefix, args);
        edit(&mut b.config);
        b.write();
        self.berth
            .ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        self.berth.ok(&["start", &id]);
        (id, b)
    }

    /// Force-delete and check for leaks.
    pub fn cleanup(&self, id: &str, b: &Bundle) {
        self.berth.ok(&["delete", "--force", id]);
        assert_no_leaks(&self.root.path, id, b);
    }
}

/// Receive one fd over a unix socket (the console socket protocol).
pub fn recv_fd(sock: RawFd) -> OwnedFd {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS just installed this fd for us.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}
