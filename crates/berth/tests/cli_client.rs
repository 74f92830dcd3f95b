//! berth's own client commands against a real `berth daemon` (its own data root, exec root,
//! mount namespace and cgroup parent): `berth -H unix://…` as the client, images pulled by the
//! daemon from a local registry. Also the daemon started on demand by the client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_testkit::daemon::{TestDaemon, wait_for};
use berth_testkit::images::{Registry, push_busybox};
use berth_testkit::{CgroupParent, is_root, unique};

/// The berth binary under test: this build's, or BERTH_BIN's (the qemu suites run the
/// static release build, as installed).
static BERTH_PATH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("BERTH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_berth").to_string())
});

/// The berth client of a test daemon.
struct Cli<'a> {
    d: &'a TestDaemon,
}

impl Cli<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&*BERTH_PATH);
        c.arg("-H")
            .arg(self.d.host())
            .args(args)
            .env("DOCKER_CONFIG", self.d.dir.path().join("docker-config"))
            .env("BERTH_NO_AUTOSTART", "1")
            .env_remove("BERTH_HOST")
            .env_remove("BERTH_DATA_ROOT");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("running berth")
    }

    /// Must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}): {}\n{}\n--- daemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.d.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Must fail: its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "berth {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// A daemon with a busybox image pulled by berth's own `pull` (through the daemon).
fn daemon(name: &str) -> Option<(TestDaemon, Registry, String)> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let shim = Path::new(&*BERTH_PATH).with_file_name("berth-shim");
    assert!(
        shim.exists(),
        "{} is not built: cargo build -p berth-shim",
        shim.display()
    );
    let d = TestDaemon::start(name, serde_json::json!({}));
    let reg = d.registry();
    let repo = unique("bb");
    push_busybox(&reg, &format!("{repo}:latest"));
    let image = format!("{}/{repo}:latest", reg.addr);
    let out = Cli { d: &d }.ok(&["pull", &image]);
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert!(out.trim_end().ends_with(&image), "{out}");
    Some((d, reg, image))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_prints_output_and_exits_with_the_code() {
    let Some((d, _reg, img)) = daemon(&unique("crun")) else {
        return;
    };
    let b = Cli { d: &d };
    assert_eq!(b.ok(&["run", "--rm", &img, "echo", "hello"]), "hello\n");
    // The command's own flags are its own.
    assert_eq!(b.ok(&["run", "--rm", &img, "echo", "-n", "x"]), "x");
    let out = b.run(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    // Environment, working directory, user, hostname, extra hosts.
    let out = b.ok(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "-h",
        "myhost",
        "--add-host",
        "db:10.1.2.3",
        &img,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u):$(id -g) $(hostname); grep db /etc/hosts",
    ]);
    assert!(
        out.starts_with("bar /tmp 1000:1000 myhost\n10.1.2.3"),
        "{out}"
    );
    // A command that does not exist: docker's 127, the daemon's words.
    let out = b.run(&["run", "--rm", &img, "/nonexistent"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("berth: Error response from daemon: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    d.assert_clean();
}

#[test]
fn stdin_is_piped_with_i() {
    let Some((d, _reg, img)) = daemon(&unique("cstdin")) else {
        return;
    };
    let b = Cli { d: &d };
    let mut child = b
        .cmd(&["run", "-i", "--rm", &img, "sh", "-c", "cat; echo done"])
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
    assert_eq!(text(&out.stdout), "one\ntwo\ndone\n");
    // Without -i the container's stdin is empty at once.
    let out = b.ok(&["run", "--rm", &img, "sh", "-c", "cat; echo end"]);
    assert_eq!(out, "end\n");
    d.assert_clean();
}

#[test]
fn detached_ps_logs_stop_rm() {
    let Some((d, _reg, img)) = daemon(&unique("cdet")) else {
        return;
    };
    let b = Cli { d: &d };
    let name = unique("web");
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "-l",
        "tier=front",
        &img,
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    // The table, as docker's.
    let ps = b.ok(&["ps"]);
    let mut lines = ps.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with("CONTAINER ID   IMAGE ") && head.ends_with("PORTS     NAMES"),
        "{ps}"
    );
    let row = lines.find(|l| l.ends_with(&name)).expect("our row");
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains("\"sh -c echo started;…\""), "{row}");
    assert!(row.contains(" Up "), "{row}");
    // --format: fields, a label, a table, json, -q.
    let f = b.ok(&[
        "ps",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Names}}|{{.Status}}|{{.Label \"tier\"}}|{{.State}}",
    ]);
    assert!(f.starts_with(&format!("{name}|Up ")), "{f}");
    assert!(f.trim_end().ends_with("|front|running"), "{f}");
    let t = b.ok(&[
        "ps",
        "--filter",
        &format!("name={name}"),
        "--format",
        "table {{.ID}}\t{{.Names}}",
    ]);
    assert_eq!(
        t,
        format!("CONTAINER ID   NAMES\n{}   {name}\n", &id[..12]),
        "{t}"
    );
    let j = b.ok(&[
        "ps",
        "--filter",
        &format!("name={name}"),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).expect("one JSON object");
    assert_eq!(v["Names"], name.as_str());
    assert_eq!(v["Labels"], "tier=front");
    let q = b.ok(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("name={name}"),
    ]);
    assert_eq!(q.trim(), id);
    wait_for("the first log line", || {
        b.ok(&["logs", &name]).contains("started")
    });
    // A name in use: docker's 409 words; rm of a running container refused.
    let err = b.fails(&["run", "-d", "--name", &name, &img, "true"]);
    assert!(err.contains("is already in use by container"), "{err}");
    let out = b.run(&["rm", &name]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("Error response from daemon: ") && err.contains("container is running"),
        "{err}"
    );
    // logs -f follows until the container ends.
    let follow = b
        .cmd(&["logs", "-f", &name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(b.ok(&["stop", "-t", "5", &name]), format!("{name}\n"));
    let followed = follow.wait_with_output().unwrap();
    assert_eq!(text(&followed.stdout), "started\nbye\n");
    let state = b.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}} {{.Config.Labels}}",
        &name,
    ]);
    assert_eq!(state.trim(), "exited 0 map[tier:front]");
    assert_eq!(b.ok(&["logs", "--tail", "1", &name]), "bye\n");
    let ts = b.ok(&["logs", "-t", &name]);
    assert!(
        ts.lines().all(|l| l.len() > 31 && l.as_bytes()[4] == b'-'),
        "{ts}"
    );
    let ps = b.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Status}}",
    ]);
    assert!(ps.starts_with("Exited (0)"), "{ps}");
    // inspect prints Docker's JSON array.
    let json = b.ok(&["inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert!(json.starts_with("[\n    {"), "{json}");
    b.ok(&["rm", &id[..12]]);
    let out = b.run(&["inspect", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "[]\n");
    assert!(text(&out.stderr).contains("No such object"), "{out:?}");
    d.assert_clean();
}

#[test]
fn exec_runs_in_the_container() {
    let Some((d, _reg, img)) = daemon(&unique("cexec")) else {
        return;
    };
    let b = Cli { d: &d };
    let name = unique("ex");
    b.ok(&[
        "run", "-d", "--name", &name, "-e", "FOO=bar", &img, "sleep", "1000",
    ]);
    assert_eq!(b.ok(&["exec", &name, "sh", "-c", "echo $FOO"]), "bar\n");
    assert_eq!(
        b.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            &name,
            "sh",
            "-c",
            "echo $X $(pwd)"
        ]),
        "1 /tmp\n"
    );
    let out = b.run(&["exec", &name, "sh", "-c", "echo e >&2; exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(text(&out.stderr), "e\n");
    // -i with piped stdin.
    let mut child = b
        .cmd(&["exec", "-i", &name, "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "SHOUT\n");
    // -d: nothing printed, the command runs.
    assert_eq!(b.ok(&["exec", "-d", &name, "touch", "/tmp/mark"]), "");
    wait_for("the detached exec", || {
        b.run(&["exec", &name, "test", "-e", "/tmp/mark"])
            .status
            .success()
    });
    let hostname = b.ok(&["exec", &name, "hostname"]);
    let id = b.ok(&["inspect", "-f", "{{.Id}}", &name]);
    assert_eq!(hostname.trim(), &id.trim()[..12]);
    let err = b.fails(&["exec", "nope", "true"]);
    assert!(err.contains("No such container: nope"), "{err}");
    b.ok(&["rm", "-f", &name]);
    d.assert_clean();
}

#[test]
fn create_start_attach_wait_and_signals() {
    let Some((d, _reg, img)) = daemon(&unique("cattach")) else {
        return;
    };
    let b = Cli { d: &d };
    let name = unique("cr");
    let id = b.ok(&[
        "create",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "echo from-create; exit 2",
    ]);
    assert_eq!(id.trim().len(), 64);
    let out = b.run(&["start", "-a", &name]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(text(&out.stdout), "from-create\n");
    assert_eq!(b.ok(&["wait", &name]), "2\n");
    b.ok(&["rm", &name]);
    // Ctrl-C to an attached `run` goes to the container (sig-proxy).
    let mut child = b
        .cmd(&[
            "run",
            "--rm",
            &img,
            "sh",
            "-c",
            "trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "got-int\n");
    assert_eq!(child.wait().unwrap().code(), Some(9));
    // attach to a running container, and wait for its end.
    let name = unique("att");
    b.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "sleep 1; echo late; exit 4",
    ]);
    let out = b.run(&["attach", &name]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(text(&out.stdout), "late\n");
    let err = b.fails(&["attach", &name]);
    assert!(
        err.contains("You cannot attach to a stopped container"),
        "{err}"
    );
    b.ok(&["rm", &name]);
    d.assert_clean();
}

/// Run `berth ARGS` under `script` (a pty); the recorded output and exit status.
fn under_script(b: &Cli, input: &[u8], args: &str) -> (String, Option<i32>) {
    let cmdline = format!(
        "stty cols 100 rows 30; exec {} -H {} {args}",
        *BERTH_PATH,
        b.d.host()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("BERTH_NO_AUTOSTART", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        for chunk in input.split_inclusive(|b| *b == b'\n' || *b == 0x11) {
            std::thread::sleep(Duration::from_millis(700));
            if stdin.write_all(chunk).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    (text(&out.stdout), out.status.code())
}

#[test]
fn tty_under_script() {
    let Some((d, _reg, img)) = daemon(&unique("ctty")) else {
        return;
    };
    let b = Cli { d: &d };
    // The terminal's size reaches the container; the exit status comes back.
    let (out, code) = under_script(
        &b,
        b"",
        &format!("run -it --rm {img} sh -c 'tty; stty size; exit 7'"),
    );
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("30 100"), "{out}");
    assert_eq!(code, Some(7), "{out}");
    // Typed input reaches a shell; ctrl-p ctrl-q detach, the container goes on.
    let name = unique("tty");
    let (out, code) = under_script(
        &b,
        b"echo typed-$((6*7))\n\x10\x11",
        &format!("run -it --name {name} {img} sh"),
    );
    assert!(out.contains("typed-42"), "{out}");
    assert_eq!(code, Some(0), "{out}");
    let state = b.ok(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(state.trim(), "true");
    // exec -it into it.
    let (out, code) = under_script(&b, b"", &format!("exec -it {name} sh -c 'tty; exit 3'"));
    assert!(out.contains("/dev/pts/"), "{out}");
    assert_eq!(code, Some(3), "{out}");
    // -t without a terminal on stdin is refused as docker refuses it.
    let err = b.fails(&["run", "-it", "--rm", &img, "true"]);
    assert!(err.contains("the input device is not a TTY"), "{err}");
    b.ok(&["rm", "-f", &name]);
    d.assert_clean();
}

#[test]
fn run_pulls_a_missing_image() {
    let Some((d, reg, _img)) = daemon(&unique("cpull")) else {
        return;
    };
    let b = Cli { d: &d };
    let repo = unique("fresh");
    push_busybox(&reg, &format!("{repo}:v1"));
    let fresh = format!("{}/{repo}:v1", reg.addr);
    // --pull never: docker's refusal.
    let out = b.run(&["run", "--rm", "--pull", "never", &fresh, "true"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        text(&out.stderr).contains("No such image"),
        "{}",
        text(&out.stderr)
    );
    // missing (the default): create → 404 → pull (progress on stderr) → create again.
    let out = b.run(&["run", "--rm", &fresh, "echo", "pulled"]);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    assert_eq!(text(&out.stdout), "pulled\n");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("Unable to find image '{fresh}' locally")),
        "{err}"
    );
    // The busybox layer is there already (the first image's).
    assert!(err.contains(": Already exists"), "{err}");
    assert!(err.contains("Status: Downloaded newer image for"), "{err}");
    // Now present: no pull.
    let out = b.run(&["run", "--rm", &fresh, "true"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
    // --pull always pulls again.
    let out = b.run(&["run", "--rm", "--pull", "always", "-q", &fresh, "true"]);
    assert!(out.status.success(), "{out:?}");
    let out = b.run(&["run", "--rm", "--pull", "always", &fresh, "true"]);
    assert!(text(&out.stderr).contains("Image is up to date"), "{out:?}");
    // A name no registry has: the pull's error.
    let out = b.run(&[
        "run",
        "--rm",
        &format!("{}/{}:x", reg.addr, unique("none")),
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.starts_with("Unable to find image"), "{err}");
    assert!(err.lines().last().unwrap().starts_with("berth: "), "{err}");
    d.assert_clean();
}

#[test]
fn errors_are_dockers() {
    let Some((d, _reg, img)) = daemon(&unique("cerr")) else {
        return;
    };
    let b = Cli { d: &d };
    for args in [
        &["inspect", "--type", "container", "nope"][..],
        &["start", "nope"],
        &["stop", "nope"],
        &["logs", "nope"],
        &["container", "inspect", "nope"],
    ] {
        let out = b.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_eq!(
            text(&out.stderr),
            "Error response from daemon: No such container: nope\n",
            "{args:?}"
        );
    }
    let out = b.run(&["run", "--rm", "--memory", "1", &img, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("Minimum memory limit allowed is 6MB"),
        "{out:?}"
    );
    let err = b.fails(&["run", "--rm", "--cap-add", "bogus", &img, "true"]);
    assert!(err.contains("unknown capability"), "{err}");
    let err = b.fails(&["run", "--rm", "--name", "a/b", &img, "true"]);
    assert!(err.contains("Invalid container name"), "{err}");
    // Bad flags are refused before the daemon hears of them.
    let err = b.fails(&["run", "--rm", "--restart", "always", &img, "true"]);
    assert!(
        err.contains("Conflicting options: --restart and --rm"),
        "{err}"
    );
    let err = b.fails(&["run", "--cpus", "lots", &img, "true"]);
    assert!(err.contains("--cpus"), "{err}");
    let err = b.fails(&["ps", "--format", "{{range .Names}}x"]);
    assert!(err.contains("template"), "{err}");
    // No daemon there: docker's words, and no daemon started (BERTH_NO_AUTOSTART).
    let out = Command::new(&*BERTH_PATH)
        .args(["-H", "unix:///nonexistent/berth.sock", "ps"])
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n"
    );
    d.assert_clean();
}

#[test]
fn image_commands_go_through_the_daemon() {
    let Some((d, reg, img)) = daemon(&unique("cimg")) else {
        return;
    };
    let b = Cli { d: &d };
    // push: Docker's lines, the registry has it.
    let pushed = format!("{}/{}:v1", reg.addr, unique("pushed"));
    b.ok(&["tag", &img, &pushed]);
    let out = b.ok(&["push", &pushed]);
    assert!(out.contains("The push refers to repository ["), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    let path = pushed
        .strip_prefix(&format!("{}/", reg.addr))
        .unwrap()
        .replace(":v1", "/manifests/v1");
    assert_eq!(reg.get(&format!("/v2/{path}")).map(|r| r.0), Some(200));
    let digest = b.ok(&["push", "-q", &pushed]);
    assert!(digest.trim().starts_with("sha256:"), "{digest}");
    b.ok(&["rmi", &pushed]);
    let other = format!("{}:copy", unique("local"));
    b.ok(&["tag", &img, &other]);
    let list = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]);
    assert!(list.contains(&format!("{other} ")), "{list}");
    let table = b.ok(&["images"]);
    assert!(
        table.starts_with("REPOSITORY ") && table.lines().next().unwrap().ends_with("SIZE"),
        "{table}"
    );
    let id = b.ok(&["image", "inspect", "-f", "{{.Id}}", &other]);
    assert!(id.starts_with("sha256:"), "{id}");
    let hist = b.ok(&["history", &other]);
    assert!(hist.starts_with("IMAGE "), "{hist}");
    let archive = d.dir.path().join("saved.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), &other]);
    assert_eq!(b.ok(&["rmi", &other]), format!("Untagged: {other}\n"));
    let out = b.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains(&format!("Loaded image: {other}\n")), "{out}");
    // import from stdin, then run it.
    let imported = unique("imported");
    let mut child = b
        .cmd(&[
            "import",
            "-c",
            "CMD [\"/bin/echo\", \"from import\"]",
            "-",
            &imported,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&berth_testkit::images::tar_dir(
            &berth_testkit::busybox_rootfs(),
        ))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).starts_with("sha256:"));
    assert_eq!(b.ok(&["run", "--rm", &imported]), "from import\n");
    let df = b.ok(&["system", "df"]);
    assert!(df.starts_with("TYPE "), "{df}");
    assert!(df.contains("\nImages "), "{df}");
    b.ok(&["rmi", &imported, &other]);
    let err = b.fails(&["rmi", &other]);
    assert!(err.contains("No such image"), "{err}");
    d.assert_clean();
}

#[test]
fn container_operations_and_volumes() {
    let Some((d, _reg, img)) = daemon(&unique("cops")) else {
        return;
    };
    let b = Cli { d: &d };
    let name = unique("ops");
    b.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "echo hi > /tmp/f; while true; do sleep 1; done",
    ]);
    wait_for("the first file", || {
        b.run(&["exec", &name, "test", "-e", "/tmp/f"])
            .status
            .success()
    });
    let top = b.ok(&["top", &name]);
    assert!(top.starts_with("UID ") && top.contains("sleep"), "{top}");
    let stats = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        &name,
    ]);
    assert!(stats.starts_with(&format!("{name} ")), "{stats}");
    assert!(stats.contains("iB / "), "{stats}");
    let diff = b.ok(&["diff", &name]);
    assert!(diff.contains("A /tmp/f"), "{diff}");
    // cp both ways: into a directory, renamed, a directory's contents, a tar on stdout.
    let host = d.dir.path().join("cp");
    std::fs::create_dir(&host).unwrap();
    let h = |p: &str| host.join(p).to_string_lossy().into_owned();
    b.ok(&["cp", &format!("{name}:/tmp/f"), &h("")]);
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "hi\n");
    b.ok(&["cp", &format!("{name}:/tmp/f"), &h("renamed")]);
    assert_eq!(
        std::fs::read_to_string(host.join("renamed")).unwrap(),
        "hi\n"
    );
    std::fs::create_dir(host.join("dir")).unwrap();
    std::fs::write(host.join("dir/up.txt"), "up\n").unwrap();
    b.ok(&["cp", &h("dir"), &format!("{name}:/tmp/")]);
    b.ok(&["cp", &h("dir/up.txt"), &format!("{name}:/tmp/other.txt")]);
    assert_eq!(
        b.ok(&["exec", &name, "cat", "/tmp/dir/up.txt", "/tmp/other.txt"]),
        "up\nup\n"
    );
    let back = host.join("back");
    std::fs::create_dir(&back).unwrap();
    b.ok(&["cp", &format!("{name}:/tmp/dir/."), back.to_str().unwrap()]);
    assert!(back.join("up.txt").is_file());
    let tar = b.run(&["cp", &format!("{name}:/tmp/dir"), "-"]);
    assert!(tar.status.success() && tar.stdout.len() >= 1024, "{tar:?}");
    let err = b.fails(&["cp", &format!("{name}:/nope"), &h("x")]);
    assert!(err.starts_with("Error response from daemon: "), "{err}");
    // update, pause, rename, commit, export.
    b.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "50",
        &name,
    ]);
    let limits = b.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
        &name,
    ]);
    assert_eq!(limits.trim(), "67108864 50");
    b.ok(&["pause", &name]);
    let st = b.ok(&[
        "ps",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Status}}",
    ]);
    assert!(st.trim_end().ends_with("(Paused)"), "{st}");
    b.ok(&["unpause", &name]);
    let renamed = unique("renamed");
    b.ok(&["rename", &name, &renamed]);
    let snap = format!("{}:1", unique("snap"));
    let id = b.ok(&["commit", "-m", "snapshot", &renamed, &snap]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(b.ok(&["run", "--rm", &snap, "cat", "/tmp/f"]), "hi\n");
    let exported = d.dir.path().join("fs.tar");
    b.ok(&["export", "-o", exported.to_str().unwrap(), &renamed]);
    assert!(std::fs::metadata(&exported).unwrap().len() > 1_000_000);
    b.ok(&["rm", "-f", &renamed]);
    b.ok(&["rmi", &snap]);
    // Volumes.
    let vol = unique("vol");
    assert_eq!(
        b.ok(&["volume", "create", "--label", "k=v", &vol]),
        format!("{vol}\n")
    );
    let ls = b.ok(&["volume", "ls"]);
    assert!(ls.starts_with("DRIVER    VOLUME NAME\n"), "{ls}");
    assert!(ls.contains(&format!("local     {vol}\n")), "{ls}");
    let f = b.ok(&["volume", "ls", "--format", "{{.Name}}={{.Label \"k\"}}"]);
    assert!(f.contains(&format!("{vol}=v")), "{f}");
    let mp = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", &vol]);
    assert!(mp.trim().ends_with("/_data"), "{mp}");
    b.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{vol}:/data"),
        &img,
        "sh",
        "-c",
        "echo kept > /data/x",
    ]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--mount",
            &format!("source={vol},target=/d,readonly"),
            &img,
            "cat",
            "/d/x"
        ]),
        "kept\n"
    );
    let t = b.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:size=1m",
        &img,
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts",
    ]);
    assert!(t.contains("tmpfs"), "{t}");
    let df = b.ok(&["system", "df"]);
    assert!(df.contains("\nLocal Volumes "), "{df}");
    assert_eq!(b.ok(&["volume", "rm", &vol]), format!("{vol}\n"));
    let err = b.fails(&["volume", "inspect", &vol]);
    assert!(
        err.contains("no such volume") || err.contains("No such volume"),
        "{err}"
    );
    d.assert_clean();
}

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn a_daemon_is_started_when_none_answers() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let reg = Registry::start();
    let repo = unique("auto");
    push_busybox(&reg, &format!("{repo}:latest"));
    let image = format!("{}/{repo}:latest", reg.addr);
    let dir = tempfile::Builder::new()
        .prefix("ba-")
        .tempdir_in("/tmp")
        .unwrap();
    let cgroup = CgroupParent::new(&format!("auto-{}", unique("d")));
    let (data, run): (PathBuf, PathBuf) = (dir.path().join("data"), dir.path().join("run"));
    let config = dir.path().join("daemon.json");
    std::fs::write(
        &config,
        // No default bridge: this daemon shares the suite's network namespace.
        serde_json::json!({"cgroup-parent": cgroup.path, "bridge": "none"}).to_string(),
    )
    .unwrap();
    let sock = dir.path().join("b.sock");
    let host = format!("unix://{}", sock.display());
    let berth = |args: &[&str]| {
        // In a mount namespace of its own, which the daemon it starts inherits (and which
        // goes with it).
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", &*BERTH_PATH])
            .arg("--data-root")
            .arg(&data)
            .args(args)
            .env("BERTH_HOST", &host)
            .env("BERTH_EXEC_ROOT", &run)
            .env("BERTH_CONFIG_FILE", &config)
            .env("DOCKER_CONFIG", dir.path().join("docker-config"))
            .env_remove("BERTH_NO_AUTOSTART")
            .env_remove("BERTH_DATA_ROOT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A fresh machine: `berth run` just works.
    let out = berth(&["run", "--rm", &image, "echo", "hello"]);
    let log = std::fs::read_to_string(run.join("daemon.log")).unwrap_or_default();
    assert!(out.status.success(), "{out:?}\n--- daemon log:\n{log}");
    assert_eq!(text(&out.stdout), "hello\n");
    let daemons = processes_with(&format!("daemon -H {host}"));
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    assert!(log.contains("berth daemon ready"), "{log}");
    assert!(data.join("engine.redb").exists());
    // The next command finds it answering: no second daemon.
    let out = berth(&["ps", "-a", "-q"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "");
    assert_eq!(processes_with(&format!("daemon -H {host}")), daemons);
    // Stop it; nothing stays.
    let pid = daemons[0];
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    berth_testkit::signal(pid, rustix::process::Signal::TERM);
    wait_for("the daemon to stop", || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    wait_for("its namespace to empty", || {
        berth_testkit::isolated::processes_in_mnt_ns(&ns).is_empty()
    });
    assert!(cgroup.processes().is_empty());
    assert!(cgroup.children().is_empty(), "{:?}", cgroup.children());
    for sub in ["data/containers", "run/containers"] {
        let left: Vec<_> = std::fs::read_dir(dir.path().join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // Without a daemon and with autostart off, docker's words.
    let out = Command::new(&*BERTH_PATH)
        .args(["ps"])
        .env("BERTH_HOST", &host)
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).starts_with("Cannot connect to the berth daemon"),
        "{out:?}"
    );
}

#[test]
fn network_commands_and_published_ports() {
    let Some((d, _reg, img)) = daemon(&unique("cnet")) else {
        return;
    };
    let c = Cli { d: &d };
    let n = unique("cn");
    let id = c.ok(&[
        "network",
        "create",
        "--subnet",
        "10.91.0.0/24",
        "--label",
        "k=v",
        &n,
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let ls = c.ok(&["network", "ls"]);
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    assert!(
        ls.contains(&n) && ls.contains("bridge") && ls.contains("null"),
        "{ls}"
    );
    assert_eq!(
        c.ok(&["network", "ls", "-q", "-f", "label=k=v"]).trim(),
        &id.trim()[..12]
    );
    let ipam = c.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", &n]);
    assert!(ipam.contains("\"Subnet\":\"10.91.0.0/24\""), "{ipam}");
    let port = d.in_net(|| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    });
    c.ok(&[
        "run",
        "-d",
        "--name",
        "cweb",
        "--network",
        &n,
        "--network-alias",
        "site",
        "--ip",
        "10.91.0.9",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        &img,
        "sh",
        "-c",
        "mkdir -p /www && echo cli-web > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    assert_eq!(
        c.ok(&["port", "cweb"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    let ps = c.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    // Go's control flow in --format, as the docker CLI takes it.
    let ip = c.ok(&[
        "inspect",
        "-f",
        "{{range $name, $ep := .NetworkSettings.Networks}}{{$name}}={{$ep.IPAddress}}{{end}}",
        "cweb",
    ]);
    assert_eq!(ip.trim(), format!("{n}=10.91.0.9"));
    assert_eq!(
        c.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "cweb"
        ]),
        d.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "cweb"
        ])
    );
    let running = c.ok(&[
        "ps",
        "--format",
        "{{if eq .Names \"cweb\"}}{{.Names}} is up{{end}}",
    ]);
    assert!(running.contains("cweb is up"), "{running}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = d
            .net_cmd("curl")
            .args(["-s", "-m", "2", &format!("http://127.0.0.1:{port}/")])
            .output()
            .unwrap();
        if text(&o.stdout).trim() == "cli-web" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&o.stderr));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = c.ok(&["run", "--rm", "--network", &n, &img, "nslookup", "site"]);
    assert!(o.contains("10.91.0.9"), "{o}");
    c.ok(&["run", "-d", "--name", "cother", &img, "sleep", "300"]);
    c.ok(&["network", "connect", "--alias", "other", &n, "cother"]);
    let o = c.ok(&["exec", "cweb", "nslookup", "other"]);
    assert!(o.contains("10.91.0."), "{o}");
    c.ok(&["network", "disconnect", &n, "cother"]);
    let e = c.fails(&["network", "rm", &n]);
    assert!(e.contains("active endpoints"), "{e}");
    c.ok(&["rm", "-f", "cweb", "cother"]);
    assert_eq!(c.ok(&["network", "rm", &n]).trim(), n);
    let e = c.fails(&["network", "inspect", &n]);
    assert!(e.contains("not found"), "{e}");
    c.ok(&["network", "create", &unique("pr")]);
    let o = c.ok(&["network", "prune", "-f"]);
    assert!(o.contains("Deleted Networks"), "{o}");
    d.assert_clean();
}
