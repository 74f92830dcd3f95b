//! The shim against real containers (as root): launch, attach, start, wait, exec, logs,
//! terminals, faults. Each test has its own container, state and data directories.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use berth_shim::{Error, ExecConfig, ExecExit, ShimClient};
use common::*;

#[test]
fn attach_before_start_then_exit_code_and_record() {
    if skip() {
        return;
    }
    let c = Ctr::new("basic", &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let pid = c.launch();
    assert!(pid > 0);
    let cl = c.client();
    cl.ping().unwrap();
    assert_eq!(cl.pid().unwrap(), pid);
    let shim = c.shim_pid();
    assert_ne!(shim, pid);
    // Attached before start: nothing is lost.
    let mut s = cl.attach(false, true, true).unwrap();
    let waiter = cl.wait().unwrap();
    cl.start().unwrap();
    let (out, err) = read_frames(&mut s);
    assert_eq!(String::from_utf8_lossy(&out), "out\n");
    assert_eq!(String::from_utf8_lossy(&err), "err\n");
    let st = waiter.wait().unwrap();
    assert_eq!(st.code, 3);
    assert!(!st.oom_killed);
    let rec = c.exit_record().expect("exit record written");
    assert_eq!(rec.exit_code, 3);
    assert_eq!(rec.finished_at_nanos, st.finished_at_nanos);
    assert!(rec.finished_at_nanos > 1_700_000_000_000_000_000);
    c.assert_clean(shim);
}

#[test]
fn one_shim_per_container_and_a_fresh_exit_record() {
    if skip() {
        return;
    }
    let c = Ctr::new("twice", &["sleep", "100"]);
    // A record left by an earlier run of the container is not this run's.
    berth_shim::ExitRecord {
        exit_code: 42,
        finished_at_nanos: 1,
        oom_killed: false,
    }
    .write(&c.cfg.exit_file)
    .unwrap();
    c.launch();
    assert!(c.exit_record().is_none(), "the old exit record is gone");
    let shim = c.shim_pid();
    match berth_shim::launch(&shim_bin(), c.state_dir()) {
        Err(Error::Launch(m)) => assert!(m.contains("already running"), "{m}"),
        other => panic!("a second shim: {other:?}"),
    }
    // The first one is untouched.
    assert_eq!(c.shim_pid(), shim);
    let cl = c.client();
    cl.ping().unwrap();
    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    c.assert_clean(shim);
}

#[test]
fn a_restart_into_the_same_state_directory_at_once() {
    if skip() {
        return;
    }
    // As a restart policy does: the next shim is launched the moment the exit is known, while
    // the first one still waits (up to 2 s) for a client that does not read.
    // More output than the idle client's socket holds, less than it may fall behind.
    let c = Ctr::new("restart", &["sh", "-c", "head -c 600000 /dev/zero; exit 1"]);
    c.launch();
    let cl = c.client();
    let first = c.shim_pid();
    let idle = cl.attach(false, true, true).unwrap();
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    assert_eq!(w.wait().unwrap().code, 1);
    let second_pid = c.launch();
    assert!(alive(first), "the first shim is still flushing its clients");
    let second = c.shim_pid();
    assert_ne!(first, second);
    wait_gone(first);
    drop(idle);
    // The first shim's end did not take the second one's files.
    cl.ping().unwrap();
    assert_eq!(cl.pid().unwrap(), second_pid);
    assert!(c.exit_record().is_none(), "the second run has not ended");
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    assert_eq!(w.wait().unwrap().code, 1);
    c.assert_clean(second);
}

#[test]
fn a_second_start_is_refused() {
    if skip() {
        return;
    }
    let c = Ctr::new("start2", &["sleep", "100"]);
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    cl.start().unwrap();
    match cl.start() {
        Err(Error::Refused(m)) => assert!(m.contains("already started"), "{m}"),
        other => panic!("second start: {other:?}"),
    }
    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    c.assert_clean(shim);
}

#[test]
fn stdin_is_piped_and_stdin_once_closes_it() {
    if skip() {
        return;
    }
    let mut c = Ctr::new("cat", &["cat"]);
    c.cfg.stdin = true;
    c.cfg.stdin_once = true;
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let mut s = cl.attach(true, true, true).unwrap();
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    s.write_all(b"hello\nworld\n").unwrap();
    // The end of the client's input closes the container's stdin: cat ends.
    s.shutdown(Shutdown::Write).unwrap();
    let (out, err) = read_frames(&mut s);
    assert_eq!(String::from_utf8_lossy(&out), "hello\nworld\n");
    assert!(err.is_empty());
    assert_eq!(w.wait().unwrap().code, 0);
    c.assert_clean(shim);
}

#[test]
fn without_stdin_once_stdin_stays_open_for_the_next_client() {
    if skip() {
        return;
    }
    let mut c = Ctr::new("cat2", &["cat"]);
    c.cfg.stdin = true;
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let mut out = cl.attach(false, true, false).unwrap();
    cl.start().unwrap();
    let mut a = cl.attach(true, false, false).unwrap();
    a.write_all(b"one\n").unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    drop(a);
    let mut b = cl.attach(true, false, false).unwrap();
    b.write_all(b"two\n").unwrap();
    let mut got = Vec::new();
    out.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    while got != b"one\ntwo\n" {
        let (stream, data) = berth_shim::protocol::read_frame(&mut out)
            .unwrap()
            .expect("a frame");
        assert_eq!(stream, 1);
        got.extend_from_slice(&data);
        assert!(got.len() <= 8, "{got:?}");
    }
    let w = cl.wait().unwrap();
    // SIGTERM would do nothing: the init (pid 1 of its namespace) has no handler for it.
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 128 + 9);
    c.assert_clean(shim);
}

#[test]
fn tty_with_resize_visible_inside() {
    if skip() {
        return;
    }
    let mut c = Ctr::new("tty", &["sh", "-c", "read x; stty size; exit 4"]).with_tty();
    c.cfg.stdin = true;
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let mut s = cl.attach(true, true, true).unwrap();
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    cl.resize(33, 77).unwrap();
    s.write_all(b"go\n").unwrap();
    let out = read_all(&mut s);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("33 77"), "{text:?}");
    assert_eq!(w.wait().unwrap().code, 4);
    match cl.resize(1, 1) {
        Err(_) => {}
        Ok(()) => panic!("resize after the exit"),
    }
    c.assert_clean(shim);
}

#[test]
fn resize_without_a_terminal_is_an_error() {
    if skip() {
        return;
    }
    let c = Ctr::new("notty", &["sleep", "100"]);
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    match cl.resize(10, 10) {
        Err(Error::Refused(m)) => assert!(m.contains("no terminal"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Killing a created (never started) container ends it too.
    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    c.assert_clean(shim);
}

#[test]
fn sigkill_gives_128_plus_9() {
    if skip() {
        return;
    }
    let c = Ctr::new("kill9", &["sleep", "100"]);
    let pid = c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    cl.start().unwrap();
    let w = cl.wait().unwrap();
    // From outside, as `docker kill` through the runtime would.
    berth_testkit::signal(pid, rustix::process::Signal::KILL);
    let st = w.wait().unwrap();
    assert_eq!(st.code, 137);
    assert_eq!(c.exit_record().unwrap().exit_code, 137);
    // A wait after the exit, while the shim still runs or after: the record says it.
    c.assert_clean(shim);
    assert_eq!(c.exit_record().unwrap().exit_code, 137);
}

#[test]
fn exec_without_and_with_a_terminal() {
    if skip() {
        return;
    }
    let c = Ctr::new("exec", &["sleep", "100"]);
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    cl.start().unwrap();

    let mut process = c.bundle.config["process"].clone();
    process["args"] = serde_json::json!(["sh", "-c", "echo hi; echo oops >&2; exit 5"]);
    process["terminal"] = serde_json::json!(false);
    let ec = ExecConfig {
        process: serde_json::from_value(process.clone()).unwrap(),
        stdin: false,
        detach: false,
    };
    ec.write(c.state_dir(), "e1").unwrap();
    let (pid, mut s) = cl.exec("e1").unwrap();
    assert!(pid > 0);
    let (out, err) = read_frames(&mut s);
    assert_eq!(String::from_utf8_lossy(&out), "hi\n");
    assert_eq!(String::from_utf8_lossy(&err), "oops\n");
    // Written before the stream closed.
    let ex = ExecExit::load(c.state_dir(), "e1")
        .unwrap()
        .expect("exec exit");
    assert_eq!(ex.exit_code, 5);

    // A terminal of the size asked for.
    process["args"] = serde_json::json!(["sh", "-c", "stty size; tty; exit 6"]);
    process["terminal"] = serde_json::json!(true);
    process["consoleSize"] = serde_json::json!({"height": 20, "width": 30});
    ExecConfig {
        process: serde_json::from_value(process.clone()).unwrap(),
        stdin: false,
        detach: false,
    }
    .write(c.state_dir(), "e2")
    .unwrap();
    let (_, mut s) = cl.exec("e2").unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).into_owned();
    assert!(text.contains("20 30"), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert_eq!(
        ExecExit::load(c.state_dir(), "e2")
            .unwrap()
            .unwrap()
            .exit_code,
        6
    );

    // stdin through an exec, closed by the client's end of input; resize-exec.
    process["args"] = serde_json::json!(["cat"]);
    process["terminal"] = serde_json::json!(false);
    ExecConfig {
        process: serde_json::from_value(process.clone()).unwrap(),
        stdin: true,
        detach: false,
    }
    .write(c.state_dir(), "e3")
    .unwrap();
    let (_, mut s) = cl.exec("e3").unwrap();
    assert!(cl.resize_exec("e3", 5, 5).is_err(), "no terminal");
    s.write_all(b"through exec\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (out, _) = read_frames(&mut s);
    assert_eq!(String::from_utf8_lossy(&out), "through exec\n");
    assert_eq!(
        ExecExit::load(c.state_dir(), "e3")
            .unwrap()
            .unwrap()
            .exit_code,
        0
    );

    // Detached: the answer, then the record when it ends.
    process["args"] = serde_json::json!(["sh", "-c", "sleep 0.2; exit 7"]);
    ExecConfig {
        process: serde_json::from_value(process.clone()).unwrap(),
        stdin: false,
        detach: true,
    }
    .write(c.state_dir(), "e4")
    .unwrap();
    let (_, mut s) = cl.exec("e4").unwrap();
    assert!(read_all(&mut s).is_empty());
    eventually("the detached exec's record", || {
        ExecExit::load(c.state_dir(), "e4").unwrap().is_some()
    });
    assert_eq!(
        ExecExit::load(c.state_dir(), "e4")
            .unwrap()
            .unwrap()
            .exit_code,
        7
    );

    // A process that cannot start is an error of the exec, not of the shim.
    process["args"] = serde_json::json!(["/nonexistent"]);
    ExecConfig {
        process: serde_json::from_value(process.clone()).unwrap(),
        stdin: false,
        detach: false,
    }
    .write(c.state_dir(), "e5")
    .unwrap();
    assert!(matches!(cl.exec("e5"), Err(Error::Refused(_))));
    assert!(matches!(cl.exec("missing"), Err(Error::Refused(_))));
    cl.ping().unwrap();

    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    c.assert_clean(shim);
}

#[test]
fn exec_with_a_terminal_and_resize() {
    if skip() {
        return;
    }
    let c = Ctr::new("exectty", &["sleep", "100"]);
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    cl.start().unwrap();
    let mut process = c.bundle.config["process"].clone();
    process["args"] = serde_json::json!(["sh", "-c", "read x; stty size"]);
    process["terminal"] = serde_json::json!(true);
    ExecConfig {
        process: serde_json::from_value(process).unwrap(),
        stdin: true,
        detach: false,
    }
    .write(c.state_dir(), "t1")
    .unwrap();
    let (_, mut s) = cl.exec("t1").unwrap();
    cl.resize_exec("t1", 44, 55).unwrap();
    s.write_all(b"go\n").unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).into_owned();
    assert!(text.contains("44 55"), "{text:?}");
    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    c.assert_clean(shim);
}

#[test]
fn malformed_commands_get_errors_and_the_shim_goes_on() {
    if skip() {
        return;
    }
    let c = Ctr::new("bad", &["sleep", "100"]);
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let ask = |bytes: &[u8]| -> String {
        let mut s = cl.connect().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut v = Vec::new();
        s.read_to_end(&mut v).unwrap();
        String::from_utf8_lossy(&v).into_owned()
    };
    assert!(ask(b"bogus\n").starts_with("error unknown command"));
    assert!(ask(b"attach 1 2 3\n").starts_with("error "));
    assert!(ask(b"exec ../../etc/passwd\n").starts_with("error invalid exec id"));
    assert!(ask(&[b'x'; 2000]).starts_with("error command line too long"));
    assert!(ask(&[0xff, 0xfe, b'\n']).starts_with("error "));
    assert_eq!(ask(b"ping\n"), "ok\n");
    // A client that connects and goes away, or says nothing and stays, harms nobody.
    drop(cl.connect().unwrap());
    let idle = cl.connect().unwrap();
    cl.ping().unwrap();
    drop(idle);
    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    c.assert_clean(shim);
}

#[test]
fn the_shim_survives_the_death_of_its_launcher() {
    if skip() {
        return;
    }
    let c = Ctr::new("orphan", &["sleep", "100"]);
    c.cfg.write(c.state_dir()).unwrap();
    let out = c.data.path().join("launch.out");
    // The launcher (a stand-in for the daemon) runs the shim, then is SIGKILLed.
    let mut launcher = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} {} > {}; exec sleep 1000",
            shim_bin().display(),
            c.state_dir().display(),
            out.display()
        ))
        .spawn()
        .unwrap();
    eventually("the shim's report", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.starts_with("created "))
    });
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let cl = c.client();
    cl.ping().unwrap();
    cl.start().unwrap();
    let pid = cl.pid().unwrap();
    assert!(alive(pid));
    let shim = c.shim_pid();
    // Not the launcher's child any more.
    let stat = std::fs::read_to_string(format!("/proc/{shim}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, launcher.id() as i32);
    // A SIGTERM for the shim does not end it or the container.
    berth_testkit::signal(shim, rustix::process::Signal::TERM);
    berth_testkit::signal(shim, rustix::process::Signal::HUP);
    std::thread::sleep(Duration::from_millis(100));
    cl.ping().unwrap();
    assert!(alive(pid));
    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    c.assert_clean(shim);
}

#[test]
fn sigkill_of_the_shim_ends_wait_without_an_exit_line() {
    if skip() {
        return;
    }
    // What the daemon sees: EOF on its `wait` connection without the exit line. The container
    // is not supervised any more (its init is re-parented to the host's init) and keeps
    // running; no exit record is written. The daemon reports it exited and removes it with
    // the runtime's delete --force, as done here.
    let c = Ctr::new("shimkill", &["sleep", "100"]);
    let pid = c.launch();
    let cl = c.client();
    cl.start().unwrap();
    let shim = c.shim_pid();
    let w = cl.wait().unwrap();
    berth_testkit::signal(shim, rustix::process::Signal::KILL);
    assert!(matches!(w.wait(), Err(Error::ShimDied)));
    wait_gone(shim);
    assert!(alive(pid), "the container dies with its shim");
    assert!(c.exit_record().is_none());
    assert!(cl.ping().is_err());
    berth_runtime::Runtime::new(&c.root.path)
        .delete(&c.id, true)
        .unwrap();
    wait_gone(pid);
    berth_testkit::assert_no_leaks(&c.root.path, &c.id, &c.bundle);
}

#[test]
fn a_reader_that_does_not_read_blocks_nobody() {
    if skip() {
        return;
    }
    const TOTAL: usize = 50 << 20;
    let line = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0";
    let c = Ctr::new(
        "slow",
        &["sh", "-c", &format!("yes {line} | head -c {TOTAL}")],
    )
    .with_log();
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    // Never reads.
    let stuck = cl.attach(false, true, true).unwrap();
    // Reads as fast as it can.
    let mut fast = cl.attach(false, true, true).unwrap();
    // Reads, slowly: 16 KiB a millisecond at most.
    let mut slow = cl.attach(false, true, false).unwrap();
    let w = cl.wait().unwrap();
    let fast = std::thread::spawn(move || read_frames(&mut fast));
    let slow = std::thread::spawn(move || {
        slow.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = slow.read(&mut buf).expect("reading slowly");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut frames = &got[..];
        let mut out = Vec::new();
        while let Some((stream, data)) = berth_shim::protocol::read_frame(&mut frames).unwrap() {
            assert_eq!(stream, 1);
            out.extend_from_slice(&data);
        }
        out.len()
    });
    let t = std::time::Instant::now();
    cl.start().unwrap();
    let st = w.wait().unwrap();
    assert_eq!(st.code, 0);
    let (out, _) = fast.join().unwrap();
    assert_eq!(out.len(), TOTAL, "the client that reads gets everything");
    assert!(out.starts_with(line.as_bytes()));
    assert_eq!(
        slow.join().unwrap(),
        TOTAL,
        "so does the one that reads slowly"
    );
    eprintln!("50 MB through three clients in {:?}", t.elapsed());
    // The stuck client was disconnected once it had stalled.
    let mut stuck = stuck;
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stuck.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < TOTAL / 2, "the stuck client got {got} bytes");
    c.assert_clean(shim);
    let log = std::fs::read_to_string(c.data.path().join("container.log")).unwrap_or_default();
    let logged: usize = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON log line");
            v["log"].as_str().unwrap().len()
        })
        .sum();
    assert_eq!(logged, TOTAL, "the log has every byte");
}

#[test]
fn logs_are_written_as_json_lines() {
    if skip() {
        return;
    }
    let c = Ctr::new(
        "logs",
        &["sh", "-c", "echo one; echo two >&2; printf 'three'"],
    )
    .with_log();
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    assert_eq!(w.wait().unwrap().code, 0);
    c.assert_clean(shim);
    let text = std::fs::read_to_string(c.data.path().join("container.log")).unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        match v["stream"].as_str().unwrap() {
            "stdout" => stdout.push_str(v["log"].as_str().unwrap()),
            "stderr" => stderr.push_str(v["log"].as_str().unwrap()),
            s => panic!("stream {s}"),
        }
    }
    assert_eq!(stdout, "one\nthree");
    assert_eq!(stderr, "two\n");
}

#[test]
fn a_failed_create_is_reported_and_leaves_nothing() {
    if skip() {
        return;
    }
    let mut c = Ctr::new("badcreate", &["/does/not/exist"]);
    c.bundle.config["process"]["cwd"] = serde_json::json!("relative");
    c.bundle.write();
    c.cfg.write(c.state_dir()).unwrap();
    match berth_shim::launch(&shim_bin(), c.state_dir()) {
        Err(Error::Launch(m)) => assert!(m.contains("cwd"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!c.state_dir().join("shim.sock").exists());
    assert!(!c.state_dir().join("shim.pid").exists());
    berth_testkit::assert_no_leaks(&c.root.path, &c.id, &c.bundle);
    // A configuration that does not parse.
    std::fs::write(c.state_dir().join("shim.json"), "{").unwrap();
    assert!(matches!(
        berth_shim::launch(&shim_bin(), c.state_dir()),
        Err(Error::Launch(_))
    ));
}

#[test]
fn oom_kill_is_recorded() {
    if skip() {
        return;
    }
    let mut c = Ctr::new("oom", &["sh", "-c", "tail /dev/zero"]);
    c.bundle.config["linux"]["resources"]["memory"] =
        serde_json::json!({"limit": 16 << 20, "swap": 16 << 20});
    c.bundle.write();
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    let st = w.wait().unwrap();
    assert!(st.oom_killed, "{st:?}");
    assert_eq!(st.code, 137);
    assert!(c.exit_record().unwrap().oom_killed);
    c.assert_clean(shim);
}

#[test]
fn another_oci_runtime_binary() {
    if skip() {
        return;
    }
    let Some(runc) = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
    else {
        eprintln!("skipped: no runc");
        return;
    };
    let mut c = Ctr::new("runc", &["sh", "-c", "read x; echo got $x; exit 9"]);
    // runc 1.1 knows OCI 1.0.2.
    c.bundle.config["ociVersion"] = serde_json::json!("1.0.2");
    c.bundle.write();
    c.cfg.runtime = Some(runc);
    c.cfg.stdin = true;
    c.cfg.stdin_once = true;
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let mut s = cl.attach(true, true, true).unwrap();
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    s.write_all(b"it\n").unwrap();
    let (out, _) = read_frames(&mut s);
    assert_eq!(String::from_utf8_lossy(&out), "got it\n");
    assert_eq!(w.wait().unwrap().code, 9);
    c.assert_clean(shim);
}

#[test]
fn client_helpers_reach_a_long_state_dir() {
    if skip() {
        return;
    }
    // A state directory whose socket path is longer than a socket address holds.
    let c = Ctr::new("long", &["sleep", "100"]);
    let long = c.state_dir().join("x".repeat(60)).join("y".repeat(60));
    std::fs::create_dir_all(&long).unwrap();
    c.cfg.write(&long).unwrap();
    berth_shim::launch(&shim_bin(), &long).unwrap();
    let cl = ShimClient::new(&long);
    cl.ping().unwrap();
    let shim: i32 = std::fs::read_to_string(long.join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let w = cl.wait().unwrap();
    cl.kill(9).unwrap();
    assert_eq!(w.wait().unwrap().code, 137);
    wait_gone(shim);
    berth_testkit::assert_no_leaks(&c.root.path, &c.id, &c.bundle);
}

/// A small tmpfs, unmounted on drop.
struct SmallFs(std::path::PathBuf);

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_stops_neither_the_container_nor_attach() {
    if skip() {
        return;
    }
    let mut c = Ctr::new(
        "fulldisk",
        &[
            "sh",
            "-c",
            "head -c 300000 /dev/zero | tr '\\0' a; echo; echo burst done; read x; echo after $x",
        ],
    );
    c.cfg.stdin = true;
    let dir = c.data.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let _fs = SmallFs(dir.clone());
    // Most of it taken: the log gets a few KiB, then ENOSPC.
    std::fs::write(dir.join("filler"), vec![0u8; 48 << 10]).unwrap();
    c.cfg.log = Some(berth_shim::LogSettings {
        path: dir.join("c.log"),
        max_size: 0,
        max_files: 1,
    });
    c.launch();
    let cl = c.client();
    let shim = c.shim_pid();
    let mut s = cl.attach(true, true, true).unwrap();
    let w = cl.wait().unwrap();
    cl.start().unwrap();
    // Everything reaches the client while the log cannot take it.
    let mut out = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    while !out.ends_with(b"burst done\n") {
        let (_, data) = berth_shim::protocol::read_frame(&mut s)
            .unwrap()
            .expect("a frame");
        out.extend_from_slice(&data);
    }
    assert_eq!(out.len(), 300_000 + 1 + "burst done\n".len());
    // Space again: the next output is logged.
    std::fs::remove_file(dir.join("filler")).unwrap();
    s.write_all(b"now\n").unwrap();
    let (rest, _) = read_frames(&mut s);
    assert_eq!(String::from_utf8_lossy(&rest), "after now\n");
    assert_eq!(w.wait().unwrap().code, 0);
    c.assert_clean(shim);
    let log = std::fs::read_to_string(dir.join("c.log")).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("whole JSON lines only"))
        .collect();
    assert_eq!(
        entries.last().unwrap()["log"].as_str(),
        Some("after now\n"),
        "{log}"
    );
}
