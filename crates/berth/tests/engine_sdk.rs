//! The Python docker SDK (7.1, Debian's python3-docker) driving the engine: the flows in
//! `tests/sdk/flows.py`.

use berth_testkit::daemon::TestDaemon;
use berth_testkit::{is_root, unique};

#[test]
fn python_sdk_flows() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let d = TestDaemon::start(&unique("sdk"), serde_json::json!({}));
    let reg = d.registry();
    let image = d.pull_busybox(&reg, &unique("bb"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/flows.py");
    // scripts/test.sh makes a venv with the SDK from PyPI; else the python3 on PATH.
    let python = std::env::var("BERTH_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .args([script, &d.host(), &image, &unique("sdk")])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{stdout}\n{}\n--- daemon:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    d.assert_clean();
}
