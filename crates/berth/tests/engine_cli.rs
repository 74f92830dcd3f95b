//! The engine driven by the real docker CLI: `berth daemon` (its own data root, exec root,
//! mount namespace and cgroup parent) and `docker` with DOCKER_HOST on its socket. Images come
//! from a local registry through the daemon's pull.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testkit::daemon::{TestDaemon, wait_for, with_busybox as daemon};
use berth_testkit::{is_root, unique};

#[test]
fn run_prints_output_and_exits_with_the_code() {
    let Some((d, _reg, img)) = daemon(&unique("run")) else {
        return;
    };
    let out = d.ok(&["run", "--rm", &img, "echo", "hello"]);
    assert_eq!(out, "hello\n");
    let out = d.docker(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // A command that does not exist: Docker's 127.
    let out = d.docker(&["run", "--rm", &img, "/nonexistent"]);
    assert!(
        matches!(out.status.code(), Some(127) | Some(126)),
        "{out:?}"
    );
    d.assert_clean();
}

#[test]
fn stdin_is_piped_with_i() {
    let Some((d, _reg, img)) = daemon(&unique("stdin")) else {
        return;
    };
    let mut child = d
        .docker_cmd(&["run", "-i", "--rm", &img, "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\ndone\n");
    d.assert_clean();
}

#[test]
fn detached_ps_logs_stop_rm() {
    let Some((d, _reg, img)) = daemon(&unique("detached")) else {
        return;
    };
    let name = unique("web");
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains(&format!("{name} Up")), "{ps}");
    wait_for("the first log line", || {
        d.ok(&["logs", &name]).contains("started")
    });
    // A name conflict is Docker's 409 message.
    let err = d.fails(&["run", "-d", "--name", &name, &img, "true"]);
    assert!(err.contains("is already in use by container"), "{err}");
    // rm of a running container is refused without force.
    let err = d.fails(&["rm", &name]);
    assert!(err.contains("container is running"), "{err}");
    d.ok(&["stop", "-t", "5", &name]);
    let state = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_eq!(state.trim(), "exited 0");
    assert_eq!(d.ok(&["logs", &name]), "started\nbye\n");
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Status}}",
    ]);
    assert!(ps.starts_with("Exited (0)"), "{ps}");
    d.ok(&["rm", &id[..12]]);
    let err = d.fails(&["inspect", &name]);
    assert!(err.contains("No such"), "{err}");
    d.assert_clean();
}

#[test]
fn exec_runs_in_the_container() {
    let Some((d, _reg, img)) = daemon(&unique("exec")) else {
        return;
    };
    let name = unique("ex");
    d.ok(&[
        "run", "-d", "--name", &name, "-e", "FOO=bar", &img, "sleep", "1000",
    ]);
    assert_eq!(d.ok(&["exec", &name, "sh", "-c", "echo $FOO"]), "bar\n");
    let out = d.docker(&["exec", &name, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    let hostname = d.ok(&["exec", &name, "hostname"]);
    let id = d.ok(&["inspect", "-f", "{{.Id}}", &name]);
    assert_eq!(hostname.trim(), &id.trim()[..12]);
    d.ok(&["rm", "-f", &name]);
    d.assert_clean();
}

#[test]
fn errors_are_dockers() {
    let Some((d, _reg, img)) = daemon(&unique("errors")) else {
        return;
    };
    let err = d.fails(&["inspect", "--type", "container", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");
    let err = d.fails(&["start", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");
    let err = d.fails(&["run", "--rm", "--memory", "1", &img, "true"]);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let err = d.fails(&["run", "--rm", "--cap-add", "bogus", &img, "true"]);
    assert!(err.contains("unknown capability"), "{err}");
    let err = d.fails(&["run", "--rm", "--name", "a/b", &img, "true"]);
    assert!(err.contains("Invalid container name"), "{err}");
    d.assert_clean();
}

#[test]
fn containers_outlive_a_killed_daemon() {
    let Some((mut d, _reg, img)) = daemon(&unique("outlive")) else {
        return;
    };
    let (a, b) = (unique("a"), unique("b"));
    d.ok(&[
        "run",
        "-d",
        "--name",
        &a,
        &img,
        "sh",
        "-c",
        "echo one; sleep 1000",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &b,
        &img,
        "sh",
        "-c",
        "sleep 2; echo two; exit 7",
    ]);
    wait_for("a's log", || d.ok(&["logs", &a]).contains("one"));
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", &a]);
    d.kill();
    // b exits while the daemon is down; a keeps running.
    std::thread::sleep(Duration::from_secs(3));
    let pid: i32 = pid.trim().parse().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "a died with the daemon"
    );
    d.launch();
    let st = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", &a]);
    assert_eq!(st.trim(), format!("running {pid}"));
    let st = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &b]);
    assert_eq!(st.trim(), "exited 7");
    let finished = d.ok(&["inspect", "-f", "{{.State.FinishedAt}}", &b]);
    assert!(!finished.starts_with("0001"), "{finished}");
    assert_eq!(d.ok(&["logs", &b]), "two\n");
    // The re-adopted container is stopped and waited for as any other.
    d.ok(&["stop", "-t", "1", &a]);
    let st = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &a]);
    assert_eq!(st.trim(), "exited 137");
    d.ok(&["rm", &a, &b]);
    d.assert_clean();
}

#[test]
fn a_killed_shim_is_noticed() {
    let Some((d, _reg, img)) = daemon(&unique("shimkill")) else {
        return;
    };
    let name = unique("s");
    d.ok(&["run", "-d", "--name", &name, &img, "sleep", "1000"]);
    // One monitor stays; the shim's short-lived children (its launcher, the runtime's start)
    // may still be on their way out on a slow machine.
    wait_for("one shim", || d.shims().len() == 1);
    let shims = d.shims();
    berth_testkit::signal(shims[0], rustix::process::Signal::KILL);
    wait_for("the container to be reported exited", || {
        d.ok(&["inspect", "-f", "{{.State.Status}}", &name]).trim() == "exited"
    });
    d.ok(&["rm", &name]);
    d.assert_clean();
}

#[test]
fn restart_policy_restarts_after_a_crash() {
    let Some((d, _reg, img)) = daemon(&unique("restart")) else {
        return;
    };
    let name = unique("r");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--restart",
        "on-failure:2",
        &img,
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    wait_for("two restarts", || {
        d.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            &name,
        ])
        .trim()
            == "2 exited"
    });
    assert_eq!(d.ok(&["logs", &name]), "run\nrun\nrun\n");
    d.ok(&["rm", &name]);
    d.assert_clean();
}

#[test]
fn tty_under_a_terminal() {
    let Some((d, _reg, img)) = daemon(&unique("tty")) else {
        return;
    };
    // The real CLI in a pty (script), with its terminal's size passed on.
    let cmd = format!(
        "stty rows 30 cols 100; DOCKER_HOST={} docker run -it --rm {img} sh -c 'tty; stty size; echo $TERM; exit 4'",
        d.host()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("/dev/pts/0\r\n30 100\r\nxterm\r\n"),
        "{text:?}"
    );
    assert!(!text.contains("failed to resize"), "{text:?}");
    d.assert_clean();
}

#[test]
fn healthchecks_turn_healthy_and_unhealthy() {
    let Some((d, _reg, img)) = daemon(&unique("health")) else {
        return;
    };
    let name = unique("h");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        &img,
        "sh",
        "-c",
        "touch /tmp/ok; sleep 1000",
    ]);
    let status = || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &name])
            .trim()
            .to_string()
    };
    wait_for("healthy", || status() == "healthy");
    let log = d.ok(&[
        "inspect",
        "-f",
        "{{(index .State.Health.Log 0).Output}}",
        &name,
    ]);
    assert_eq!(log.trim(), "fine");
    let ps = d.ok(&[
        "ps",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Status}}",
    ]);
    assert!(ps.contains("(healthy)"), "{ps}");
    d.ok(&["exec", &name, "rm", "/tmp/ok"]);
    wait_for("unhealthy", || status() == "unhealthy");
    let streak = d.ok(&["inspect", "-f", "{{.State.Health.FailingStreak}}", &name]);
    assert!(streak.trim().parse::<i64>().unwrap() >= 2, "{streak}");
    // --until in whole seconds (the CLI sends seconds): one past now covers every event.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        &format!("container={name}"),
        "--format",
        "{{.Action}}",
    ]);
    assert!(events.contains("health_status: healthy"), "{events}");
    assert!(events.contains("health_status: unhealthy"), "{events}");
    assert!(events.contains("exec_create"), "{events}");
    d.ok(&["rm", "-f", &name]);
    d.assert_clean();
}

#[test]
fn sigkill_of_the_daemon_during_concurrent_runs() {
    let Some((mut d, _reg, img)) = daemon(&unique("crash")) else {
        return;
    };
    let prefix = unique("c");
    let mut clients = Vec::new();
    for i in 0..20 {
        let name = format!("{prefix}-{i}");
        clients.push(
            d.docker_cmd(&[
                "run",
                "-d",
                "--name",
                &name,
                &img,
                "sh",
                "-c",
                "echo up; sleep 1000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(400));
    d.kill();
    for mut c in clients {
        let _ = c.wait();
    }
    d.launch();
    // Every container is whole: listed ones have a root and run (or exited cleanly); the
    // others left nothing.
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={prefix}"),
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    for line in ps.lines() {
        let (name, state) = line.split_once(' ').unwrap();
        assert!(matches!(state, "running" | "created" | "exited"), "{line}");
        if state == "running" {
            wait_for("its log", || d.ok(&["logs", name]).contains("up"));
        }
    }
    // Everything can be removed, and nothing is left behind.
    let names: Vec<&str> = ps.lines().filter_map(|l| l.split(' ').next()).collect();
    if !names.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter());
        d.ok(&args);
    }
    d.assert_clean();
}

#[test]
fn events_survive_a_daemon_restart_and_wait_conditions() {
    let Some((mut d, _reg, img)) = daemon(&unique("events")) else {
        return;
    };
    let name = unique("ev");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.ok(&["run", "--name", &name, &img, "true"]);
    d.stop();
    d.launch();
    let until = (since.parse::<u64>().unwrap() + 600).to_string();
    let mut events = d
        .docker_cmd(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            &format!("container={name}"),
            "--format",
            "{{.Action}} {{.Actor.Attributes.exitCode}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the stored ones: create, attach, start, die with its code.
    let mut out = String::new();
    {
        use std::io::Read;
        let mut so = events.stdout.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !out.contains("die 0") && Instant::now() < deadline {
            let n = so.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(out.contains("create"), "{out}");
    assert!(out.contains("start"), "{out}");
    assert!(out.contains("die 0"), "{out}");
    // wait: not-running answers at once for a stopped container; next-exit waits for the run.
    assert_eq!(d.ok(&["wait", &name]).trim(), "0");
    let waiter = d
        .docker_cmd(&["container", "wait", &name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    d.ok(&["start", &name]);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    d.ok(&["rm", &name]);
    d.assert_clean();
}

#[test]
fn without_live_restore_containers_stop_with_the_daemon_and_come_back() {
    if !is_root() {
        return;
    }
    let mut d = TestDaemon::start(
        &unique("nolive"),
        serde_json::json!({"live-restore": false}),
    );
    let reg = d.registry();
    let img = d.pull_busybox(&reg, &unique("bb"));
    let (a, b) = (unique("always"), unique("plain"));
    d.ok(&[
        "run",
        "-d",
        "--name",
        &a,
        "--restart",
        "always",
        "--stop-timeout",
        "1",
        &img,
        "sleep",
        "1000",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &b,
        "--stop-timeout",
        "1",
        &img,
        "sleep",
        "1000",
    ]);
    let pid = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", &a])
        .trim()
        .to_string();
    d.stop();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "not stopped with the daemon"
    );
    d.launch();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while d.ok(&["inspect", "-f", "{{.State.Status}}", &a]).trim() != "running" {
        assert!(
            std::time::Instant::now() < deadline,
            "the always container did not come back: {}\n--- daemon:\n{}",
            d.ok(&["inspect", &a]),
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &b]).trim(),
        "exited"
    );
    d.ok(&["rm", "-f", &a, &b]);
    d.assert_clean();
}
