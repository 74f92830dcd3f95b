//! docker-compose 1.29 (Debian's, which talks to the engine through the Python SDK) bringing a
//! two-service stack with a named volume up and down.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::daemon::TestDaemon;
use berth_testkit::{is_root, unique};

#[test]
fn compose_stack_up_and_down() {
    if !is_root() {
        return;
    }
    let d = TestDaemon::start(&unique("compose"), serde_json::json!({}));
    let reg = d.registry();
    let img = d.pull_busybox(&reg, &unique("bb"));
    let dir = tempfile::tempdir().unwrap();
    let project = unique("proj").replace('-', "");
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "3"
services:
  writer:
    image: {img}
    command: sh -c "echo hello > /data/file; echo writer up; sleep 1000"
    network_mode: none
    volumes: ["shared:/data"]
    stop_grace_period: 1s
  reader:
    image: {img}
    command: sh -c "while [ ! -f /data/file ]; do sleep 0.1; done; cat /data/file; sleep 1000"
    network_mode: none
    volumes: ["shared:/data"]
    depends_on: [writer]
    stop_grace_period: 1s
volumes:
  shared: {{}}
"#
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let out = Command::new("docker-compose")
            .current_dir(dir.path())
            .env("DOCKER_HOST", d.host())
            .env("COMPOSE_PROJECT_NAME", &project)
            .args(args)
            .output()
            .expect("docker-compose (Debian's docker-compose package)");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}\n{}\n--- daemon:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            d.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    compose(&["up", "-d"]);
    let ps = compose(&["ps"]);
    assert_eq!(ps.matches(" Up ").count(), 2, "{ps}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = compose(&["logs", "reader"]);
        if logs.contains("hello") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reader never saw the writer's file: {logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let vols = d.ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(vols.contains(&format!("{project}_shared")), "{vols}");
    compose(&["down", "-v"]);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(d.ok(&["volume", "ls", "-q"]).trim().is_empty());
    d.assert_clean();
}
