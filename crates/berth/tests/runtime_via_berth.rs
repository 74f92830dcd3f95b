//! `berth runtime …` executes the berth-runc binary next to berth, passing the arguments on
//! unchanged. (The runtime's own suites drive berth-runc directly: crates/berth-runc/tests.)

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::{Berth, Bundle, RuntimeRoot, assert_no_leaks, unique};

/// The berth binary, with berth-runc beside it (built when `cargo test -p berth` alone did
/// not build it).
fn berth_bin() -> PathBuf {
    let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let dir = berth.parent().unwrap();
    if !dir.join("berth-runc").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "-p", "berth-runc"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        assert!(c.status().unwrap().success(), "cargo build -p berth-runc");
    }
    assert!(dir.join("berth-runc").exists());
    berth
}

#[test]
fn berth_runtime_runs_berth_runc() {
    assert!(
        berth_testkit::is_root(),
        "the runtime tests must run as root"
    );
    let berth = berth_bin();
    let out = Command::new(&berth)
        .args(["runtime", "--version"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("berth-runc version "), "{text}");

    let root = RuntimeRoot::new();
    let runner = Berth::new(&berth, &root);
    let id = unique("via-berth");
    let b = Bundle::new(&id, &["sh", "-c", "echo hello; exit 3"]);
    let out = runner.run(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_no_leaks(&root.path, &id, &b);

    // Errors name the command as the user typed it.
    let err = runner.fails(&["state", "no-such-container"]);
    assert!(err.starts_with("berth runtime: "), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
