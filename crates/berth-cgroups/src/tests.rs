//! The cgroup code against fake cgroupfs trees (see `fake`): pure v1, hybrid (this project's
//! development host: v1 controllers plus cgroup2 at /sys/fs/cgroup/unified holding hugetlb)
//! and pure v2. No root needed, nothing outside a temporary directory is touched.

use std::path::Path;

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use crate::fake::FakeHost;
use crate::{Cgroup, Error};

/// A pure v1 host (Debian's cloud kernel booted with cgroup v1, as the v1 VM suite runs).
const V1_MOUNTINFO: &str = "\
24 1 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
25 24 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu,cpuacct
26 24 0:24 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
27 24 0:25 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids
28 24 0:26 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,blkio
29 24 0:27 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,devices
30 24 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,freezer
31 24 0:29 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpuset,clone_children
32 24 0:30 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,hugetlb
33 24 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,net_cls,net_prio
34 24 0:32 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,xattr,name=systemd
";
const V1_OWN: &str = "\
11:net_cls,net_prio:/
10:hugetlb:/suite
9:cpuset:/suite
8:freezer:/suite
7:devices:/suite
6:blkio:/suite
5:pids:/suite
4:memory:/suite
3:cpu,cpuacct:/suite
1:name=systemd:/
0::/
";

/// This host's shape: every controller on v1 but hugetlb, which only cgroup2 has.
const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const HYBRID_OWN: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/72b5
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

const V2_MOUNTINFO: &str =
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n";
const V2_OWN: &str = "0::/suite/runner\n";
const V2_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";

fn v1_host() -> FakeHost {
    FakeHost::new(V1_MOUNTINFO, V1_OWN)
}

fn hybrid_host() -> FakeHost {
    let h = FakeHost::new(HYBRID_MOUNTINFO, HYBRID_OWN);
    // A plain directory has no files of its own: the container's cpuset cgroup exists with
    // the files the kernel gives a new one (its cpus and mems then come from the parent; see
    // `v1_cpuset_is_filled_from_the_parent`).
    h.files(
        "/sys/fs/cgroup/cpuset/berth-c1",
        &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
    );
    h.files(
        "/sys/fs/cgroup/unified",
        &[
            ("cgroup.controllers", "hugetlb\n"),
            ("cgroup.subtree_control", ""),
        ],
    );
    h
}

/// A pure v2 host; the runtime runs in /suite/runner, so containers go beneath /suite.
fn v2_host() -> FakeHost {
    let h = FakeHost::new(V2_MOUNTINFO, V2_OWN);
    for d in ["/sys/fs/cgroup", "/sys/fs/cgroup/suite"] {
        h.files(
            d,
            &[
                ("cgroup.controllers", V2_CONTROLLERS),
                ("cgroup.subtree_control", ""),
            ],
        );
    }
    h.files(
        "/sys/fs/cgroup/suite/runner",
        &[("cgroup.controllers", ""), ("cgroup.procs", "1\n")],
    );
    // The root already hands out cpu.
    h.files("/sys/fs/cgroup", &[("cgroup.subtree_control", "cpu\n")]);
    h
}

fn resources(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn rel(h: &FakeHost, p: &Path) -> String {
    h.host_path(p)
}

fn w(path: &str, value: &str) -> (String, String) {
    (path.to_string(), value.to_string())
}

#[test]
fn layout_of_a_pure_v1_host() {
    let h = v1_host();
    let l = h.layout();
    assert!(l.unified.is_none() && !l.is_pure_v2());
    let got: Vec<(String, Vec<String>, String)> =
        l.v1.iter()
            .map(|m| {
                (
                    rel(&h, &m.point),
                    m.controllers.clone(),
                    m.own.display().to_string(),
                )
            })
            .collect();
    let e = |p: &str, c: &[&str], own: &str| {
        (
            p.to_string(),
            c.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            own.to_string(),
        )
    };
    // name=systemd holds no controller berth manages: not a hierarchy of the layout.
    assert_eq!(
        got,
        [
            e("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"], "/suite"),
            e("/sys/fs/cgroup/memory", &["memory"], "/suite"),
            e("/sys/fs/cgroup/pids", &["pids"], "/suite"),
            e("/sys/fs/cgroup/blkio", &["blkio"], "/suite"),
            e("/sys/fs/cgroup/devices", &["devices"], "/suite"),
            e("/sys/fs/cgroup/freezer", &["freezer"], "/suite"),
            e("/sys/fs/cgroup/cpuset", &["cpuset"], "/suite"),
            e("/sys/fs/cgroup/hugetlb", &["hugetlb"], "/suite"),
            e(
                "/sys/fs/cgroup/net_cls,net_prio",
                &["net_cls", "net_prio"],
                "/"
            ),
        ]
    );
}

#[test]
fn layout_of_a_hybrid_host() {
    let h = hybrid_host();
    let l = h.layout();
    assert!(!l.is_pure_v2());
    assert_eq!(l.v1.len(), 8);
    let u = l.unified.as_ref().unwrap();
    assert_eq!(rel(&h, &u.point), "/sys/fs/cgroup/unified");
    assert_eq!(u.controllers, ["hugetlb"]);
    assert_eq!(u.own, Path::new("/"));
    let mem = l.v1.iter().find(|m| m.controllers == ["memory"]).unwrap();
    assert_eq!(mem.own, Path::new("/process_api/72b5"));
}

#[test]
fn layout_of_a_pure_v2_host() {
    let h = v2_host();
    let l = h.layout();
    assert!(l.is_pure_v2() && l.v1.is_empty());
    let u = l.unified.unwrap();
    assert_eq!(rel(&h, &u.point), "/sys/fs/cgroup");
    assert_eq!(
        u.controllers,
        [
            "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"
        ]
    );
    assert_eq!(u.own, Path::new("/suite/runner"));

    // A host without any cgroup mount.
    let h = FakeHost::new("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n", "0::/\n");
    assert!(matches!(
        crate::Layout::detect_in(h.root()),
        Err(Error::NoCgroups)
    ));
}

#[test]
fn relative_paths_go_beneath_the_own_cgroup_on_v1_and_its_parent_on_v2() {
    // v1: beneath the runtime's own cgroup in each hierarchy.
    let h = v1_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    let p = cg.paths();
    assert_eq!(
        rel(&h, &p.v1["memory"]),
        "/sys/fs/cgroup/memory/suite/berth-c1"
    );
    assert_eq!(
        rel(&h, &p.v1["cpuacct"]),
        "/sys/fs/cgroup/cpu,cpuacct/suite/berth-c1"
    );
    assert_eq!(
        rel(&h, &p.v1["net_prio"]),
        "/sys/fs/cgroup/net_cls,net_prio/berth-c1"
    );
    assert!(p.unified.is_none() && !p.pure_v2);

    // Hybrid: the memory hierarchy has the runtime in a nested cgroup; cgroup2 at its root.
    let h = hybrid_host();
    let cg = Cgroup::new(&h.layout(), "nested/berth-c1").unwrap();
    let p = cg.paths();
    assert_eq!(
        rel(&h, &p.v1["memory"]),
        "/sys/fs/cgroup/memory/process_api/72b5/nested/berth-c1"
    );
    assert_eq!(rel(&h, &p.v1["cpu"]), "/sys/fs/cgroup/cpu/nested/berth-c1");
    assert_eq!(
        rel(&h, p.unified.as_ref().unwrap()),
        "/sys/fs/cgroup/unified/nested/berth-c1"
    );
    assert_eq!(p.v2_controllers, ["hugetlb"]);

    // v2: beneath the parent of the runtime's own cgroup (a cgroup holding processes cannot
    // hand controllers down).
    let h = v2_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    let p = cg.paths();
    assert_eq!(
        rel(&h, p.unified.as_ref().unwrap()),
        "/sys/fs/cgroup/suite/berth-c1"
    );
    assert!(p.pure_v2 && p.v1.is_empty());
    // Absolute paths are from each hierarchy's root.
    let cg = Cgroup::new(&h.layout(), "/abs/c1").unwrap();
    assert_eq!(
        rel(&h, cg.paths().unified.as_ref().unwrap()),
        "/sys/fs/cgroup/abs/c1"
    );
    let h = v1_host();
    let cg = Cgroup::new(&h.layout(), "/abs/c1").unwrap();
    assert_eq!(
        rel(&h, &cg.paths().v1["pids"]),
        "/sys/fs/cgroup/pids/abs/c1"
    );
    // Never a hierarchy's root, never '..'.
    assert!(matches!(
        Cgroup::new(&h.layout(), "/"),
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(
        Cgroup::new(&h.layout(), "a/../../b"),
        Err(Error::InvalidPath { .. })
    ));
}

#[test]
fn each_controller_is_served_by_one_directory() {
    let h = hybrid_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    let p = cg.paths();
    let serve = |c: &str| p.controller(c).map(|(d, v2)| (rel(&h, d), v2));
    assert_eq!(
        serve("memory"),
        Some((
            "/sys/fs/cgroup/memory/process_api/72b5/berth-c1".into(),
            false
        ))
    );
    assert_eq!(
        serve("hugetlb"),
        Some(("/sys/fs/cgroup/unified/berth-c1".into(), true))
    );
    assert_eq!(serve("io"), None);
    assert_eq!(serve("net_cls"), None);
    // Every directory once: eight v1 hierarchies and the unified one.
    assert_eq!(p.dirs().len(), 9);

    let h = v2_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    let p = cg.paths();
    for c in ["memory", "cpu", "io", "pids", "hugetlb", "cpuset"] {
        assert_eq!(
            p.controller(c).map(|(d, v2)| (rel(&h, d), v2)),
            Some(("/sys/fs/cgroup/suite/berth-c1".into(), true)),
            "{c}"
        );
    }
    assert_eq!(p.controller("blkio"), None);

    let h = v1_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    let p = cg.paths();
    assert_eq!(p.controller("cpu"), p.controller("cpuacct"));
    assert!(!p.controller("cpu").unwrap().1);
}

#[test]
fn v2_create_enables_the_controllers_in_every_ancestor() {
    let h = v2_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    cg.create().unwrap();
    assert!(h.path("/sys/fs/cgroup/suite/berth-c1").is_dir());
    let enable = |d: &str, cs: &[&str]| -> Vec<(String, String)> {
        cs.iter()
            .map(|c| w(&format!("{d}/cgroup.subtree_control"), &format!("+{c}")))
            .collect()
    };
    // From the top down; the root already hands out cpu.
    let mut expected = enable(
        "/sys/fs/cgroup",
        &["cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc"],
    );
    expected.extend(enable(
        "/sys/fs/cgroup/suite",
        &[
            "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
        ],
    ));
    assert_eq!(h.writes(), expected);

    // A parent that does not exist yet (an engine's cgroup parent nobody made): made on the
    // way, and the ancestors above it still hand the controllers down.
    let h = v2_host();
    let cg = Cgroup::new(&h.layout(), "/suite/not-made-yet/berth-c1").unwrap();
    cg.create().unwrap();
    assert!(
        h.path("/sys/fs/cgroup/suite/not-made-yet/berth-c1")
            .is_dir()
    );
    let writes = h.writes();
    for d in ["/sys/fs/cgroup", "/sys/fs/cgroup/suite"] {
        assert!(
            writes.contains(&w(&format!("{d}/cgroup.subtree_control"), "+memory")),
            "{d}: {writes:?}"
        );
    }

    // Hybrid: only the controllers the unified hierarchy serves.
    let h = hybrid_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    cg.create().unwrap();
    assert_eq!(
        h.writes(),
        [w(
            "/sys/fs/cgroup/unified/cgroup.subtree_control",
            "+hugetlb"
        )]
    );
    assert!(h.path("/sys/fs/cgroup/unified/berth-c1").is_dir());
    assert!(
        h.path("/sys/fs/cgroup/memory/process_api/72b5/berth-c1")
            .is_dir()
    );
}

/// The files the kernel would show in a new v2 cgroup with every controller.
fn v2_container_files(h: &FakeHost, dir: &str) {
    h.files(
        dir,
        &[
            ("cgroup.procs", ""),
            ("cgroup.freeze", "0\n"),
            ("cgroup.events", "populated 0\nfrozen 0\n"),
            ("cgroup.kill", ""),
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("memory.low", "0\n"),
            ("memory.high", "max\n"),
            ("cpu.weight", "100\n"),
            ("cpu.max", "max 100000\n"),
            ("cpu.max.burst", "0\n"),
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            ("pids.max", "max\n"),
            ("io.weight", "default 100\n"),
            ("io.max", ""),
            ("hugetlb.2MB.max", "max\n"),
        ],
    );
}

fn full_resources() -> LinuxResources {
    resources(json!({
        "memory": {"limit": 268435456, "reservation": 134217728, "swap": 536870912,
                   "swappiness": 60},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {
            "weight": 500,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
    }))
}

#[test]
fn v2_values_for_full_resources() {
    let h = v2_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    cg.create().unwrap();
    let d = "/sys/fs/cgroup/suite/berth-c1";
    v2_container_files(&h, d);
    h.writes();
    let mut r = full_resources();
    r.set_unified(Some(
        [("memory.high".to_string(), "200000000".to_string())]
            .into_iter()
            .collect(),
    ));
    cg.apply(&r).unwrap();
    let f = |file: &str, v: &str| w(&format!("{d}/{file}"), v);
    assert_eq!(
        h.writes(),
        [
            // OCI's memory+swap becomes v2's swap alone; swappiness has no v2 file (ignored,
            // as runc does).
            f("memory.swap.max", "268435456"),
            f("memory.max", "268435456"),
            f("memory.low", "134217728"),
            // shares 1024 → weight 39 (runc's conversion); quota and period in one file.
            f("cpu.weight", "39"),
            f("cpu.max", "50000 100000"),
            f("cpuset.cpus", "0-1"),
            f("cpuset.mems", "0"),
            f("pids.max", "64"),
            // blkio weights 10..1000 → io weights 1..10000.
            f("io.weight", "4950"),
            f("io.weight", "8:0 2930"),
            f("io.max", "8:0 rbps=1048576"),
            f("io.max", "8:16 wiops=100"),
            f("hugetlb.2MB.max", "4194304"),
            f("memory.high", "200000000"),
        ]
    );
    // The files hold what was written last.
    assert_eq!(h.read(&format!("{d}/cpu.max")), "50000 100000");
    assert_eq!(h.read(&format!("{d}/memory.max")), "268435456");

    // A period alone keeps the current quota.
    cg.update(&resources(json!({"cpu": {"period": 200000}})))
        .unwrap();
    assert_eq!(h.writes(), [f("cpu.max", "50000 200000")]);
    // -1 is unlimited.
    cg.update(&resources(
        json!({"memory": {"limit": -1}, "pids": {"limit": -1}}),
    ))
    .unwrap();
    assert_eq!(
        h.writes(),
        [
            f("memory.swap.max", "max"),
            f("memory.max", "max"),
            f("pids.max", "max")
        ]
    );
    // Without swap accounting (no memory.swap.max) "unlimited" and "none" are skipped, as
    // runc skips them; a real swap limit is an error.
    std::fs::remove_file(h.path(&format!("{d}/memory.swap.max"))).unwrap();
    cg.update(&resources(json!({"memory": {"limit": -1}})))
        .unwrap();
    assert_eq!(h.writes(), [f("memory.max", "max")]);
    cg.update(&resources(
        json!({"memory": {"limit": 1048576, "swap": 1048576}}),
    ))
    .unwrap();
    assert_eq!(h.writes(), [f("memory.max", "1048576")]);
    let e = cg
        .update(&resources(
            json!({"memory": {"limit": 1048576, "swap": 2097152}}),
        ))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.starts_with("memory.swap.max:")),
        "{e}"
    );
    // A file the cgroup does not have is a controller that is not enabled: an error.
    std::fs::remove_file(h.path(&format!("{d}/hugetlb.2MB.max"))).unwrap();
    let e = cg
        .update(&resources(
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
        ))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.starts_with("hugetlb.2MB.max: the hugetlb controller is not enabled")),
        "{e}"
    );
    // v1-only resources are refused on a pure v2 host, not dropped.
    assert!(matches!(
        cg.update(&resources(json!({"network": {"classID": 5}}))),
        Err(Error::Unsupported(_))
    ));
}

/// The files the kernel would show in a new v1 cgroup, per hierarchy.
fn v1_container_files(h: &FakeHost, base: &str) {
    let d = |hier: &str| format!("/sys/fs/cgroup/{hier}/{base}");
    h.files(
        &d("memory"),
        &[
            ("cgroup.procs", ""),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", "9223372036854771712\n"),
            ("memory.swappiness", "60\n"),
        ],
    );
    h.files(
        &d("cpu,cpuacct"),
        &[
            ("cgroup.procs", ""),
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
        ],
    );
    h.files(
        &d("cpuset"),
        &[
            ("cgroup.procs", ""),
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
        ],
    );
    h.files(&d("pids"), &[("cgroup.procs", ""), ("pids.max", "max\n")]);
    // A BFQ host: no CFQ blkio.weight.
    h.files(
        &d("blkio"),
        &[
            ("cgroup.procs", ""),
            ("blkio.bfq.weight", "100\n"),
            ("blkio.bfq.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ],
    );
    h.files(
        &d("hugetlb"),
        &[
            ("cgroup.procs", ""),
            ("hugetlb.2MB.limit_in_bytes", "9223372036854771712\n"),
        ],
    );
    h.files(
        &d("devices"),
        &[
            ("cgroup.procs", ""),
            ("devices.allow", ""),
            ("devices.deny", ""),
        ],
    );
    h.files(
        &d("freezer"),
        &[("cgroup.procs", ""), ("freezer.state", "THAWED\n")],
    );
}

#[test]
fn v1_values_for_full_resources() {
    let h = v1_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    v1_container_files(&h, "suite/berth-c1");
    h.files(
        "/sys/fs/cgroup/net_cls,net_prio/berth-c1",
        &[("net_cls.classid", "0\n"), ("net_prio.ifpriomap", "")],
    );
    let mut r = full_resources();
    r.set_network(Some(
        serde_json::from_value(
            json!({"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}),
        )
        .unwrap(),
    ));
    r.set_devices(Some(
        serde_json::from_value(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ]))
        .unwrap(),
    ));
    cg.apply(&r).unwrap();
    let at = |hier: &str, file: &str, v: &str| {
        w(&format!("/sys/fs/cgroup/{hier}/suite/berth-c1/{file}"), v)
    };
    assert_eq!(
        h.writes(),
        [
            // The memory limit first when the current memory+swap limit allows it.
            at("memory", "memory.limit_in_bytes", "268435456"),
            at("memory", "memory.memsw.limit_in_bytes", "536870912"),
            at("memory", "memory.soft_limit_in_bytes", "134217728"),
            at("memory", "memory.swappiness", "60"),
            // The period before the quota.
            at("cpu,cpuacct", "cpu.shares", "1024"),
            at("cpu,cpuacct", "cpu.cfs_period_us", "100000"),
            at("cpu,cpuacct", "cpu.cfs_quota_us", "50000"),
            at("cpuset", "cpuset.cpus", "0-1"),
            at("cpuset", "cpuset.mems", "0"),
            at("pids", "pids.max", "64"),
            // BFQ's files for weights; throttles as "major:minor rate".
            at("blkio", "blkio.bfq.weight", "500"),
            at("blkio", "blkio.bfq.weight_device", "8:0 300"),
            at("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
            at("blkio", "blkio.throttle.write_iops_device", "8:16 100"),
            at("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
            w(
                "/sys/fs/cgroup/net_cls,net_prio/berth-c1/net_cls.classid",
                "1048577"
            ),
            w(
                "/sys/fs/cgroup/net_cls,net_prio/berth-c1/net_prio.ifpriomap",
                "eth0 5"
            ),
            // Device rules in order.
            at("devices", "devices.deny", "a"),
            at("devices", "devices.allow", "c 1:3 rwm"),
            at("devices", "devices.allow", "c 136:* rw"),
        ]
    );

    // Growing the memory limit beyond the current memory+swap limit raises swap first.
    h.writes();
    cg.update(&resources(
        json!({"memory": {"limit": 1073741824, "swap": 2147483648u64}}),
    ))
    .unwrap();
    assert_eq!(
        h.writes(),
        [
            at("memory", "memory.memsw.limit_in_bytes", "2147483648"),
            at("memory", "memory.limit_in_bytes", "1073741824"),
        ]
    );
    // Unified resources need cgroup2, which this host does not have.
    assert!(matches!(
        cg.update(&resources(json!({"unified": {"memory.high": "1"}}))),
        Err(Error::Unsupported(_))
    ));
    // A swap limit below the memory limit is invalid.
    assert!(matches!(
        cg.update(&resources(json!({"memory": {"limit": 200, "swap": 100}}))),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn hybrid_values_go_to_the_hierarchy_serving_each_controller() {
    let h = hybrid_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    cg.create().unwrap();
    h.files(
        "/sys/fs/cgroup/memory/process_api/72b5/berth-c1",
        &[("memory.limit_in_bytes", "9223372036854771712\n")],
    );
    h.files(
        "/sys/fs/cgroup/unified/berth-c1",
        &[("hugetlb.2MB.max", "max\n")],
    );
    h.writes();
    cg.apply(&resources(json!({
        "memory": {"limit": 1048576},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]
    })))
    .unwrap();
    assert_eq!(
        h.writes(),
        [
            w(
                "/sys/fs/cgroup/memory/process_api/72b5/berth-c1/memory.limit_in_bytes",
                "1048576"
            ),
            w("/sys/fs/cgroup/unified/berth-c1/hugetlb.2MB.max", "2097152"),
        ]
    );
    // Without swap accounting (no memory.memsw.*), a swap limit cannot be enforced.
    assert!(matches!(
        cg.update(&resources(json!({"memory": {"limit": 1048576, "swap": 4194304}}))),
        Err(Error::Unsupported(m)) if m.contains("swap accounting")
    ));
    // blkio is a v1 hierarchy here, without a weight-based I/O scheduler: refused, not
    // dropped.
    assert!(matches!(
        cg.update(&resources(json!({"blockIO": {"weight": 100}}))),
        Err(Error::Unsupported(m)) if m.contains("BFQ or CFQ")
    ));
}

#[test]
fn v1_cpuset_is_filled_from_the_parent() {
    let h = v1_host();
    h.files(
        "/sys/fs/cgroup/cpuset/suite",
        &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
    );
    let d = "/sys/fs/cgroup/cpuset/suite/berth-c1";
    h.files(d, &[("cpuset.cpus", "\n"), ("cpuset.mems", "")]);
    crate::v1::init_cpuset(&[h.path(d)]).unwrap();
    assert_eq!(
        h.writes(),
        [
            w(&format!("{d}/cpuset.cpus"), "0-3"),
            w(&format!("{d}/cpuset.mems"), "0")
        ]
    );
    // Already set: left alone.
    crate::v1::init_cpuset(&[h.path(d)]).unwrap();
    assert!(h.writes().is_empty());
}

#[test]
fn freeze_and_thaw_write_the_freezer_files() {
    let h = v2_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    cg.create().unwrap();
    let d = "/sys/fs/cgroup/suite/berth-c1";
    v2_container_files(&h, d);
    // The kernel reports the cgroup frozen once it is.
    h.files(d, &[("cgroup.events", "populated 1\nfrozen 1\n")]);
    h.writes();
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(
        h.writes(),
        [
            w(&format!("{d}/cgroup.freeze"), "1"),
            w(&format!("{d}/cgroup.freeze"), "0")
        ]
    );
    // SIGKILL on pure v2 is one write to cgroup.kill.
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(h.writes(), [w(&format!("{d}/cgroup.kill"), "1")]);

    let h = v1_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    v1_container_files(&h, "suite/berth-c1");
    let d = "/sys/fs/cgroup/freezer/suite/berth-c1";
    assert!(!cg.is_frozen().unwrap());
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert_eq!(h.read(&format!("{d}/freezer.state")), "FROZEN");
    cg.thaw().unwrap();
    assert_eq!(
        h.writes(),
        [
            w(&format!("{d}/freezer.state"), "FROZEN"),
            w(&format!("{d}/freezer.state"), "THAWED")
        ]
    );
}

#[test]
fn add_process_writes_the_pid_to_every_hierarchy() {
    let h = v1_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    v1_container_files(&h, "suite/berth-c1");
    h.files(
        "/sys/fs/cgroup/net_cls,net_prio/berth-c1",
        &[("cgroup.procs", "")],
    );
    cg.add_process(4242).unwrap();
    let mut got: Vec<String> = h
        .writes()
        .into_iter()
        .map(|(p, v)| {
            assert_eq!(v, "4242");
            p
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "/sys/fs/cgroup/blkio/suite/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/cpu,cpuacct/suite/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/cpuset/suite/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/devices/suite/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/freezer/suite/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/hugetlb/suite/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/memory/suite/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/net_cls,net_prio/berth-c1/cgroup.procs",
            "/sys/fs/cgroup/pids/suite/berth-c1/cgroup.procs",
        ]
    );
    // The cgroup's processes, from its cgroup.procs and those of cgroups beneath it.
    let d = "/sys/fs/cgroup/freezer/suite/berth-c1";
    h.files(d, &[("cgroup.procs", "10\n12\n")]);
    h.files(&format!("{d}/sub"), &[("cgroup.procs", "11\n")]);
    assert_eq!(cg.pids().unwrap(), [10, 11, 12]);
}

#[test]
fn v2_stats_in_runcs_shape() {
    let h = v2_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    cg.create().unwrap();
    let d = "/sys/fs/cgroup/suite/berth-c1";
    v2_container_files(&h, d);
    h.files(
        d,
        &[
            ("memory.stat", "anon 1000\nfile 4096\nkernel 300\n"),
            ("memory.current", "8192\n"),
            ("memory.max", "268435456\n"),
            ("memory.peak", "16384\n"),
            ("memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "max\n"),
            ("memory.swap.events", "high 0\nmax 2\nfail 0\n"),
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 3\nthrottled_usec 250\n",
            ),
            (
                "io.stat",
                "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
            ),
            ("pids.current", "3\n"),
            ("pids.max", "64\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.events", "max 4\n"),
            ("hugetlb.2MB.events.local", "max 4\n"),
        ],
    );
    let s = cg.stats().unwrap();
    assert_eq!(s.memory.usage.usage, 8192);
    assert_eq!(s.memory.usage.limit, 268435456);
    assert_eq!(s.memory.usage.max, 16384);
    assert_eq!(s.memory.usage.failcnt, 7);
    assert_eq!(s.memory.swap.limit, u64::MAX);
    assert_eq!(s.memory.swap.failcnt, 2);
    assert_eq!(s.memory.cache, 4096);
    assert_eq!(s.memory.raw["anon"], 1000);
    assert_eq!(s.cpu.usage.total, 1_500_000);
    assert_eq!(s.cpu.usage.user, 1_000_000);
    assert_eq!(s.cpu.usage.kernel, 500_000);
    assert_eq!(s.cpu.throttling.periods, 10);
    assert_eq!(s.cpu.throttling.throttled_periods, 3);
    assert_eq!(s.cpu.throttling.throttled_time, 250_000);
    assert_eq!((s.pids.current, s.pids.limit), (3, 64));
    assert_eq!(s.hugetlb.len(), 1);
    assert_eq!(s.hugetlb["2MB"].usage, 2097152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 4);
    // runc's JSON: camelCase keys, v1-shaped block I/O entries.
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v["blkio"],
        json!({
            "ioServiceBytesRecursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 8192}
            ],
            "ioServicedRecursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 1},
                {"major": 8, "minor": 0, "op": "Write", "value": 2}
            ]
        })
    );
    assert_eq!(
        v["cpu"],
        json!({
            "usage": {"total": 1_500_000, "kernel": 500_000, "user": 1_000_000},
            "throttling": {"periods": 10, "throttledPeriods": 3, "throttledTime": 250_000}
        })
    );
    assert_eq!(v["pids"], json!({"current": 3, "limit": 64}));
}

#[test]
fn v1_stats_in_runcs_shape() {
    let h = v1_host();
    let cg = Cgroup::new(&h.layout(), "berth-c1").unwrap();
    v1_container_files(&h, "suite/berth-c1");
    let d = |hier: &str| format!("/sys/fs/cgroup/{hier}/suite/berth-c1");
    h.files(
        &d("memory"),
        &[
            ("memory.stat", "cache 100\ntotal_cache 4096\nrss 2000\n"),
            ("memory.usage_in_bytes", "8192\n"),
            ("memory.limit_in_bytes", "268435456\n"),
            ("memory.max_usage_in_bytes", "16384\n"),
            ("memory.failcnt", "7\n"),
            ("memory.memsw.usage_in_bytes", "9000\n"),
            ("memory.kmem.usage_in_bytes", "300\n"),
        ],
    );
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    h.files(
        &d("cpu,cpuacct"),
        &[
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 3\nthrottled_time 250000\n",
            ),
            ("cpuacct.usage", "1500000\n"),
            ("cpuacct.usage_percpu", "1000000 500000 \n"),
            ("cpuacct.stat", &format!("user {}\nsystem {}\n", 2 * hz, hz)),
        ],
    );
    h.files(
        &d("blkio"),
        &[
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\nTotal 12288\n",
            ),
            (
                "blkio.throttle.io_serviced_recursive",
                "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
            ),
        ],
    );
    h.files(
        &d("pids"),
        &[("pids.current", "3\n"), ("pids.max", "max\n")],
    );
    h.files(
        &d("hugetlb"),
        &[
            ("hugetlb.2MB.usage_in_bytes", "2097152\n"),
            ("hugetlb.2MB.max_usage_in_bytes", "4194304\n"),
            ("hugetlb.2MB.failcnt", "1\n"),
        ],
    );
    let s = cg.stats().unwrap();
    assert_eq!(s.memory.cache, 4096, "total_cache wins");
    assert_eq!(
        (
            s.memory.usage.usage,
            s.memory.usage.limit,
            s.memory.usage.max,
            s.memory.usage.failcnt
        ),
        (8192, 268435456, 16384, 7)
    );
    assert_eq!(s.memory.swap.usage, 9000);
    assert_eq!(s.memory.kernel.usage, 300);
    assert_eq!(s.cpu.usage.total, 1_500_000);
    assert_eq!(s.cpu.usage.percpu, [1_000_000, 500_000]);
    assert_eq!(s.cpu.usage.user, 2_000_000_000);
    assert_eq!(s.cpu.usage.kernel, 1_000_000_000);
    assert_eq!(s.cpu.throttling.throttled_time, 250000);
    // Unlimited pids read as 0, as runc reports them.
    assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    let b = &s.blkio.io_service_bytes_recursive;
    assert_eq!(b.len(), 5);
    assert_eq!((b[0].op.as_str(), b[0].value), ("Read", 4096));
    assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
    assert_eq!(s.hugetlb["2MB"].max, 4194304);
    assert_eq!(s.hugetlb["2MB"].failcnt, 1);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["cpu"]["usage"]["percpu"], json!([1_000_000, 500_000]));
    assert_eq!(v["memory"]["raw"]["rss"], json!(2000));
}
