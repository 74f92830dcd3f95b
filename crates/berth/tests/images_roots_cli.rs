//! Bundles' root filesystems are recorded references (through the `berth` binary): rmi and
//! prune never empty a live root, a bundle killed half-way is cleaned up by `unbundle`, and
//! `unbundle` refuses to pull the root from under a running container.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn berth(data_root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--data-root")
        .arg(data_root)
        .args(args)
        .env_remove("BERTH_DATA_ROOT")
        .output()
        .expect("run berth")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "berth failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fail(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "berth should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A busybox root file system tarball.
fn rootfs_tar(dir: &Path) -> String {
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(berth_testkit::busybox_rootfs())
        .arg("-chf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar.to_string_lossy().into_owned()
}

fn is_mount(p: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == p))
}

fn mounts_under(dir: &Path) -> usize {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy();
    mounts
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&*d)))
        .count()
}

/// The issue's reproduction: rmi and prune -a used to delete the layers under a bundle.
#[test]
fn rmi_and_prune_keep_a_bundles_root_and_it_still_runs() {
    let t = tempfile::tempdir().unwrap();
    let (store, b) = (t.path().join("store"), t.path().join("b"));
    let tar = rootfs_tar(t.path());
    ok(&berth(
        &store,
        &["import", &tar, "gc/test:1", "-c", r#"CMD ["/bin/true"]"#],
    ));
    ok(&berth(
        &store,
        &["image", "bundle", "gc/test:1", b.to_str().unwrap()],
    ));
    let err = fail(&berth(&store, &["rmi", "gc/test:1"]));
    assert!(
        err.contains(r#"conflict: unable to remove repository reference "gc/test:1" (must force)"#)
            && err.contains(&format!("bundle {}", b.display())),
        "{err}"
    );
    let out = ok(&berth(&store, &["rmi", "-f", "gc/test:1"]));
    assert_eq!(out.trim(), "Untagged: gc/test:1");
    let out = ok(&berth(&store, &["image", "prune", "-a"]));
    assert_eq!(out.trim(), "Total reclaimed space: 0B", "{out}");
    assert!(b.join("rootfs/bin/busybox").is_file(), "the root is intact");
    // It runs.
    let id = berth_testkit::unique("gcrun");
    let run = berth(
        &store,
        &[
            "runtime",
            "--root",
            t.path().join("rt").to_str().unwrap(),
            "run",
            "--bundle",
            b.to_str().unwrap(),
            &id,
        ],
    );
    ok(&run);
    // Removing the bundle releases the image: prune deletes it and says what it freed.
    ok(&berth(&store, &["image", "unbundle", b.to_str().unwrap()]));
    let out = ok(&berth(&store, &["image", "prune", "-a"]));
    assert!(out.contains("Deleted: sha256:"), "{out}");
    let freed = out.lines().last().unwrap();
    assert!(
        freed.starts_with("Total reclaimed space: ") && !freed.ends_with(" 0B"),
        "{out}"
    );
    assert_eq!(mounts_under(t.path()), 0);
}

/// `berth image bundle` SIGKILLed at each stage of its work (seen from outside: before
/// anything, once its directory exists, once its root's state directory exists, once the
/// root is mounted, once the root's state file is written): afterwards prune never takes what
/// a half-made root uses, and `unbundle` removes whatever was left.
#[test]
fn a_bundle_killed_at_any_stage_is_recoverable_and_never_collected_from_under() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let tar = rootfs_tar(t.path());
    let import = |store: &Path| {
        ok(&berth(
            store,
            &["import", &tar, "kill/test:1", "-c", r#"CMD ["true"]"#],
        ))
    };
    import(&store);
    type Stage = fn(&Path) -> bool;
    let stages: [(&str, Stage); 5] = [
        ("at once", |_| true),
        ("its directory made", |d| d.exists()),
        ("its root being made", |d| d.join(".berth-rootfs").exists()),
        ("its root mounted", |d| is_mount(&d.join("rootfs"))),
        ("its root recorded whole", |d| {
            d.join(".berth-rootfs/rootfs.json").exists()
        }),
    ];
    let mut mounted_when_killed = 0;
    for round in 0..15 {
        let (stage, reached) = stages[round % stages.len()];
        if berth(&store, &["image", "inspect", "kill/test:1"])
            .status
            .code()
            != Some(0)
        {
            import(&store);
        }
        let dir = t.path().join(format!("b{round}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--data-root")
            .arg(&store)
            .args(["image", "bundle", "kill/test:1"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while !reached(&dir) && child.try_wait().unwrap().is_none() {
            std::hint::spin_loop();
        }
        let _ = child.kill(); // SIGKILL (nothing if it finished already)
        let _ = child.wait();
        let rootfs = dir.join("rootfs");
        let mounted = is_mount(&rootfs);
        mounted_when_killed += usize::from(mounted);
        // The collector runs: a half-made root keeps what it uses.
        ok(&berth(&store, &["image", "prune", "-a"]));
        if mounted {
            let busybox = std::fs::read(rootfs.join("bin/busybox")).unwrap();
            assert!(
                busybox.len() > 100_000,
                "killed {stage}: the root lost its layers"
            );
        }
        // Whatever was left is removed by unbundle.
        if dir.exists() {
            ok(&berth(
                &store,
                &["image", "unbundle", dir.to_str().unwrap()],
            ));
        }
        assert!(!dir.exists(), "killed {stage}");
        assert_eq!(mounts_under(t.path()), 0, "killed {stage}");
    }
    assert!(
        mounted_when_killed > 0,
        "no kill landed while a root was mounted"
    );
    // No record is left behind: once the image goes, everything is collected.
    ok(&berth(&store, &["rmi", "-f", "kill/test:1"]));
    ok(&berth(&store, &["image", "prune", "-a"]));
    let layers = std::fs::read_dir(store.join("layers")).unwrap().count();
    assert_eq!(layers, 0, "a root record was left behind");
}

/// `berth runtime run -d` of the bundle `b` as `id` (its output to /dev/null: a detached
/// container keeps its stdio open).
fn run_detached(rt: &Path, b: &Path, id: &str) {
    let st = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("runtime")
        .arg("--root")
        .arg(rt)
        .args(["run", "-d", "--bundle"])
        .arg(b)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

/// `unbundle` of a bundle a container runs in is refused (it used to delete the running
/// container's root and writes); with --force it goes.
#[test]
fn unbundle_refuses_a_bundle_whose_container_runs() {
    let t = tempfile::tempdir().unwrap();
    let (store, b) = (t.path().join("store"), t.path().join("b"));
    let tar = rootfs_tar(t.path());
    ok(&berth(&store, &["import", &tar, "busy/test:1"]));
    ok(&berth(
        &store,
        &[
            "image",
            "bundle",
            "busy/test:1",
            b.to_str().unwrap(),
            "sleep",
            "60",
        ],
    ));
    let rt = t.path().join("rt");
    let id = berth_testkit::unique("unbundle");
    let runtime = |args: &[&str]| {
        let mut all = vec!["runtime", "--root", rt.to_str().unwrap()];
        all.extend_from_slice(args);
        berth(&store, &all)
    };
    run_detached(&rt, &b, &id);
    let err = fail(&berth(&store, &["image", "unbundle", b.to_str().unwrap()]));
    assert!(err.contains("in use by process"), "{err}");
    assert!(b.join("rootfs/bin/busybox").is_file());
    std::fs::write(b.join("rootfs/tmp/kept"), "x").unwrap();
    // Stopped and deleted: now it goes.
    ok(&runtime(&["delete", "--force", &id]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = berth(&store, &["image", "unbundle", b.to_str().unwrap()]);
        if o.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!b.exists());

    // --force goes even while it runs.
    ok(&berth(
        &store,
        &[
            "image",
            "bundle",
            "busy/test:1",
            b.to_str().unwrap(),
            "sleep",
            "60",
        ],
    ));
    let id2 = berth_testkit::unique("unbundle");
    run_detached(&rt, &b, &id2);
    ok(&berth(
        &store,
        &["image", "unbundle", "--force", b.to_str().unwrap()],
    ));
    assert!(!b.exists());
    ok(&runtime(&["delete", "--force", &id2]));
    assert_eq!(mounts_under(t.path()), 0);
}
