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

/// Two services finding each other by service name on the project's network (made and
/// removed by compose), one of them published on the host.
#[test]
fn compose_services_find_each_other_by_name() {
    if !is_root() {
        return;
    }
    let d = TestDaemon::start(&unique("composenet"), serde_json::json!({}));
    let reg = d.registry();
    let img = d.pull_busybox(&reg, &unique("bb"));
    let dir = tempfile::tempdir().unwrap();
    let project = unique("pn").replace('-', "");
    let port = d.in_net(|| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    });
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "3"
services:
  web:
    image: {img}
    command: sh -c "mkdir -p /www && echo from-web > /www/index.html && exec httpd -f -p 80 -h /www"
    ports: ["127.0.0.1:{port}:80"]
    stop_grace_period: 1s
  client:
    image: {img}
    command: sh -c "until printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 web 80 | grep from-web; do sleep 0.2; done; echo client-got-it; sleep 1000"
    depends_on: [web]
    stop_grace_period: 1s
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
    let nets = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.contains(&format!("{project}_default")), "{nets}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = compose(&["logs", "client"]);
        if logs.contains("client-got-it") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client never reached web: {logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = d
        .net_cmd("curl")
        .args(["-s", "-m", "5", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "from-web");
    let ps = compose(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    compose(&["down"]);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    let nets = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&project), "{nets}");
    d.assert_clean();
}
