//! The runtime spec, observed from inside real containers: namespaces, mounts, /dev, process
//! attributes, sysctls, seccomp, hooks and terminals.

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;

use common::*;
use serde_json::json;

fn ns_list(c: &mut serde_json::Value) -> &mut Vec<serde_json::Value> {
    c["linux"]["namespaces"].as_array_mut().unwrap()
}

#[test]
fn namespaces_pid_uts_net_ipc() {
    let ctx = Ctx::new();
    let out = ctx.output(
        "ns",
        &["sh", "-c", "echo $$; hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net; cat /proc/1/cmdline | tr '\\0' ' '"],
        |c| {
            c["hostname"] = json!("boxy");
            c["domainname"] = json!("example.org");
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the process is pid 1 in its pid namespace");
    assert_eq!(lines[1], "boxy");
    assert_eq!(lines[2], "example.org");
    assert_eq!(lines[3], "lo", "a new network namespace has only lo");
    assert!(lines[4].starts_with("sh -c"));
}

#[test]
fn shared_host_network_namespace() {
    let ctx = Ctx::new();
    // /proc/net shows the reader's network namespace (sysfs shows the mounter's, which under
    // `unshare --net` is not the test's).
    let names = |dev: &str| -> Vec<String> {
        dev.lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_string())
            .collect()
    };
    let host = names(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let out = ctx.output("hostnet", &["cat", "/proc/net/dev"], |c| {
        ns_list(c).retain(|n| n["type"] != "network");
        // sysfs of the host's network namespace can only be bound, not mounted afresh here.
    });
    for h in host {
        assert!(out.contains(&h), "{h} missing in {out}");
    }
}

#[test]
fn join_namespace_by_path() {
    let ctx = Ctx::new();
    // A network namespace held by another process, with a dummy link to recognise it.
    let mut holder = std::process::Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link add berthdummy0 type veth peer name berthdummy1 && exec sleep 1000",
        ])
        .spawn()
        .unwrap();
    let pid = holder.id();
    let path = format!("/proc/{pid}/ns/net");
    for _ in 0..200 {
        let out = std::process::Command::new("nsenter")
            .args(["--net=".to_string() + &path, "ip".into(), "link".into()])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("berthdummy0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = ctx.output("joinns", &["ls", "/sys/class/net"], |c| {
        for n in ns_list(c).iter_mut() {
            if n["type"] == "network" {
                n["path"] = json!(path);
            }
        }
    });
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(out.contains("berthdummy0"), "{out}");
}

#[test]
fn user_namespace_with_mappings() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle(
        "userns",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/x && stat -c %u /tmp/x",
        ],
    );
    let c = &mut b.config;
    ns_list(c).push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The rootfs must be owned by the mapped root for the container to write to it.
    let status = std::process::Command::new("chown")
        .args(["-R", "-h", "100000:100000", b.rootfs().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    b.write();
    let (code, out, err) = ctx.run(&id, &b);
    assert_eq!(code, 0, "{out} {err}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "100000", "65536"]);
    assert_eq!(lines[2], ["0"]);
    assert_eq!(lines[3], ["0"]);
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn time_namespace_offsets() {
    let ctx = Ctx::new();
    let out = ctx.output("timens", &["cat", "/proc/uptime"], |c| {
        ns_list(c).push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 365, "nanosecs": 0}});
    });
    let up: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(up > 86400.0 * 365.0, "uptime {up}");
}

#[test]
fn cgroup_namespace_hides_the_host_path() {
    let ctx = Ctx::new();
    let out = ctx.output("cgns", &["cat", "/proc/self/cgroup"], |_| {});
    for line in out.lines() {
        assert!(line.ends_with(":/"), "{line}");
    }
}

#[test]
fn mounts_bind_tmpfs_and_readonly_root() {
    let ctx = Ctx::new();
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("hello"), "from host\n").unwrap();
    let out = ctx.output(
        "mounts",
        &[
            "sh",
            "-c",
            "cat /data/hello; touch /data/new 2>&1 | grep -c Read-only; grep ' /scratch ' /proc/self/mounts; touch /rootfile 2>&1 | grep -c Read-only; touch /scratch/ok && echo tmpfs-writable",
        ],
        |c| {
            c["root"]["readonly"] = json!(true);
            let m = c["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/data", "type": "bind", "source": host_dir.path(), "options": ["rbind", "ro"]}));
            m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=1m", "mode=700"]}));
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from host");
    assert_eq!(lines[1], "1", "the ro bind mount refuses writes");
    assert!(
        lines[2].contains("tmpfs")
            && lines[2].contains("nosuid")
            && lines[2].contains("size=1024k")
            && lines[2].contains("mode=700"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "1", "the root is read-only");
    assert_eq!(lines[4], "tmpfs-writable");
    assert!(!host_dir.path().join("new").exists());
}

#[test]
fn symlinked_mount_destination_stays_inside_rootfs() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle(
        "symlink",
        &[
            "sh",
            "-c",
            "grep -c ' /etc/evil ' /proc/self/mounts || true",
        ],
    );
    // The image has a symlink pointing outside; the mount must land inside the rootfs.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), b.rootfs().join("etc/evil")).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/etc/evil", "type": "tmpfs", "source": "tmpfs"}));
    b.write();
    // Either the link is followed inside the rootfs, or (berth's choice: it does not create
    // directories through a dangling link) the mount is refused with a clear error.
    let (code, _, err) = ctx.run(&id, &b);
    assert!(code == 0 || err.contains("/etc/evil"), "{code} {err}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(outside.path().to_str().unwrap()));
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn dev_is_populated() {
    let ctx = Ctx::new();
    let out = ctx.output(
        "dev",
        &["sh", "-c", "for d in null zero full random urandom tty; do stat -c '%n %t:%T %a' /dev/$d; done; for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; stat -c '%n %t:%T %a %u:%g' /dev/mydev; echo hi > /dev/null && echo null-ok"],
        |c| {
            c["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 5}]);
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/dev/null 1:3 666");
    assert_eq!(lines[1], "/dev/zero 1:5 666");
    assert_eq!(lines[2], "/dev/full 1:7 666");
    assert_eq!(lines[3], "/dev/random 1:8 666");
    assert_eq!(lines[4], "/dev/urandom 1:9 666");
    assert_eq!(lines[5], "/dev/tty 5:0 666");
    assert_eq!(
        &lines[6..11],
        [
            "pts/ptmx",
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2"
        ]
    );
    assert_eq!(lines[11], "/dev/mydev 1:3 640 1000:5");
    assert_eq!(lines[12], "null-ok");
}

#[test]
fn masked_and_readonly_paths() {
    let ctx = Ctx::new();
    let out = ctx.output(
        "masked",
        &["sh", "-c", "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1 | grep -c Read-only"],
        |_| {},
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "masked file reads as /dev/null");
    assert_eq!(lines[1], "0", "masked directory is an empty tmpfs");
    assert_eq!(lines[2], "1", "/proc/sys is read-only");
}

#[test]
fn process_user_env_cwd_umask_rlimits() {
    let ctx = Ctx::new();
    let out = ctx.output(
        "process",
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; echo $FOO; pwd; umask; ulimit -n; ulimit -Hn",
        ],
        |c| {
            let p = &mut c["process"];
            p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 1], "umask": 0o027});
            p["env"].as_array_mut().unwrap().push(json!("FOO=bar baz"));
            p["cwd"] = json!("/home/work");
            p["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 800}]);
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(groups.contains(&"5") && groups.contains(&"1"), "{groups:?}");
    assert_eq!(lines[3], "bar baz");
    assert_eq!(lines[4], "/home/work");
    assert_eq!(lines[5], "0027");
    assert_eq!(lines[6], "512");
    assert_eq!(lines[7], "800");
}

#[test]
fn rlimit_above_the_host_is_a_clear_error() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle("rlimit", &["true"]);
    let host_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": host_hard + 1000}]);
    b.write();
    // Where the runtime holds CAP_SYS_RESOURCE (the test VMs) the limit can be raised; where
    // it does not (this development host) the error must say why.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    let has_sys_resource = u64::from_str_radix(cap_eff, 16).unwrap() & (1 << 24) != 0; // CAP_SYS_RESOURCE
    if has_sys_resource {
        ctx.berth
            .ok(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    } else {
        let err = ctx
            .berth
            .fails(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
        assert!(
            err.contains("RLIMIT_NOFILE") && err.contains("CAP_SYS_RESOURCE"),
            "{err}"
        );
    }
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn capabilities_and_no_new_privileges() {
    let ctx = Ctx::new();
    let out = ctx.output("caps", &["grep", "-E", "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)", "/proc/self/status"], |c| {
        let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
        c["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"], "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
    });
    let get = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(|v| u64::from_str_radix(v, 16).unwrap())
            .unwrap()
    };
    let chown_kill = (1 << 0) | (1 << 5);
    assert_eq!(get("CapEff:"), chown_kill);
    assert_eq!(get("CapPrm:"), chown_kill);
    assert_eq!(get("CapInh:"), chown_kill);
    assert_eq!(get("CapAmb:"), chown_kill);
    assert_eq!(get("CapBnd:"), chown_kill | (1 << 13));
    assert_eq!(get("NoNewPrivs:"), 1);
}

#[test]
fn oom_score_personality_and_sysctl() {
    let ctx = Ctx::new();
    let out = ctx.output(
        "misc",
        &[
            "sh",
            "-c",
            "cat /proc/self/oom_score_adj; uname -m; cat /proc/sys/net/ipv4/ip_forward",
        ],
        |c| {
            c["process"]["oomScoreAdj"] = json!(500);
            c["linux"]["personality"] = json!({"domain": "LINUX32"});
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "500");
    assert_eq!(lines[1], "i686");
    assert_eq!(lines[2], "1");
}

#[test]
fn host_sysctl_is_refused() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle("hostsysctl", &["true"]);
    b.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    b.write();
    let err = ctx
        .berth
        .fails(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(err.contains("not namespaced"), "{err}");
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn seccomp_errno_kill_and_arguments() {
    let ctx = Ctx::new();
    let out = ctx.output("seccomp", &["sh", "-c", "mkdir /tmp/d; echo mkdir=$?; uname -m"], |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        });
    });
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(out.contains("x86_64"), "{out}");
    // SCMP_ACT_KILL_PROCESS on getcwd: the shell's pwd dies by SIGSYS.
    let (id, mut b) = ctx.bundle("seccompkill", &["sh", "-c", "/bin/pwd -P"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    b.write();
    let (code, _, _) = ctx.run(&id, &b);
    assert_eq!(code, 128 + libc::SIGSYS);
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn hooks_run_in_order_with_state() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle("hooks", &["sleep", "1000"]);
    let log = b.dir.join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo \"{name} $(echo \"$s\" | grep -o '\"status\":\"[a-z]*\"') $HOOKVAR\" >> {}", log.display())], "env": ["HOOKVAR=v"], "timeout": 10});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer-in-container > /tmp/hooked"]}],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    b.write();
    ctx.berth
        .ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let after_create = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        after_create,
        "prestart \"status\":\"created\" v\ncreateRuntime \"status\":\"creating\" v\ncreateContainer \"status\":\"creating\" v\n"
    );
    ctx.berth.ok(&["start", &id]);
    let hooked = ctx.berth.ok(&["exec", &id, "cat", "/tmp/hooked"]);
    assert_eq!(hooked, "startContainer-in-container\n");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .ends_with("poststart \"status\":\"running\" v\n")
    );
    ctx.berth.ok(&["delete", "--force", &id]);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .ends_with("poststop \"status\":\"stopped\" v\n")
    );
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn failing_and_slow_hooks() {
    let ctx = Ctx::new();
    // A failing createRuntime hook fails the create and leaves nothing.
    let (id, mut b) = ctx.bundle("hookfail", &["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    b.write();
    let err = ctx
        .berth
        .fails(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(
        err.contains("createRuntime hook /bin/false") && err.contains("status 1"),
        "{err}"
    );
    assert_no_leaks(&ctx.root.path, &id, &b);
    // A hook over its timeout is killed.
    let (id, mut b) = ctx.bundle("hooktimeout", &["true"]);
    b.config["hooks"] =
        json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    b.write();
    let err = ctx
        .berth
        .fails(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(err.contains("timed out"), "{err}");
    assert_no_leaks(&ctx.root.path, &id, &b);
    // A failing poststart hook only warns.
    let (id, mut b) = ctx.bundle("poststartfail", &["true"]);
    b.config["hooks"] = json!({"poststart": [{"path": "/bin/false"}]});
    b.write();
    let (code, _, err) = ctx.run(&id, &b);
    assert_eq!(code, 0);
    assert!(
        err.contains("warning") && err.contains("poststart"),
        "{err}"
    );
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn terminal_through_console_socket() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle("tty", &["sh", "-c", "tty; stty size; echo done"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    b.write();
    let sock_path = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        recv_fd(conn.as_raw_fd())
    });
    ctx.berth.ok(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--console-socket",
        sock_path.to_str().unwrap(),
        &id,
    ]);
    let master = receiver.join().unwrap();
    ctx.berth.ok(&["start", &id]);
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&out).contains("done") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let out = String::from_utf8_lossy(&out).replace('\r', "");
    assert!(
        out.contains("/dev/console") || out.contains("/dev/pts/0"),
        "{out}"
    );
    assert!(out.contains("30 100"), "{out}");
    ctx.berth.wait_status(&id, "stopped");
    ctx.cleanup(&id, &b);
    // Without a console socket, create refuses a terminal.
    let (id, mut b) = ctx.bundle("tty2", &["true"]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let err = ctx
        .berth
        .fails(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(err.contains("console-socket"), "{err}");
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn seccomp_profile_that_denies_close_range_still_starts() {
    // Profiles built from an allow list (runtime-tools', many images') need not allow
    // close_range: the runtime must be done with it before the filter is loaded.
    let ctx = Ctx::new();
    for nnp in [false, true] {
        let out = ctx.output("closerange", &["echo", "started"], |c| {
            c["process"]["noNewPrivileges"] = json!(nnp);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]
            });
        });
        assert_eq!(out.trim(), "started");
    }
}

#[test]
fn without_a_mount_namespace_mounts_are_shared() {
    let ctx = Ctx::new();
    // The init shares the runtime's mount namespace, chrooted into the rootfs; no mount is
    // made for it (the spec's mounts would land in the host's namespace).
    let (id, mut b) = ctx.bundle("nomnt", &["cat", "/etc/hostname"]);
    ns_list(&mut b.config).retain(|n| n["type"] != "mount" && n["type"] != "cgroup");
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.config["mounts"] = json!([]);
    b.write();
    ctx.berth
        .ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = ctx.berth.state(&id)["pid"].as_i64().unwrap();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(theirs, std::fs::read_link("/proc/self/ns/mnt").unwrap());
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root, b.rootfs().canonicalize().unwrap());
    ctx.berth.ok(&["start", &id]);
    ctx.berth.wait_status(&id, "stopped");
    ctx.berth.ok(&["delete", &id]);
    assert_no_leaks(&ctx.root.path, &id, &b);

    // Paths that would change the host's mounts are refused.
    let (id, mut b) = ctx.bundle("nomnt-masked", &["true"]);
    ns_list(&mut b.config).retain(|n| n["type"] != "mount");
    b.write();
    let err = ctx
        .berth
        .fails(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(err.contains("mount namespace"), "{err}");
    assert_no_leaks(&ctx.root.path, &id, &b);
}
