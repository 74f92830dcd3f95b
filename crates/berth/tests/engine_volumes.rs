//! Volumes and mounts through the real docker CLI against `berth daemon`: named and anonymous
//! volumes, seeding from the image, bind mounts, tmpfs, `--volumes-from`, `docker volume …`,
//! the local driver's tmpfs and bind options, and a hostile image whose VOLUME paths are
//! symlinks out of its root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_testkit::daemon::{TestDaemon, with_busybox as daemon};
use berth_testkit::images::Registry;
use berth_testkit::tar::{EntryType, Layer};
use berth_testkit::unique;
use serde_json::{Value, json};

/// The volume directories under the daemon's data root.
fn volume_dirs(d: &TestDaemon) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.data_root().join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn data_dir(d: &TestDaemon, name: &str) -> PathBuf {
    d.data_root().join("volumes").join(name).join("_data")
}

fn inspect(d: &TestDaemon, args: &[&str]) -> Value {
    let mut a = vec!["inspect"];
    a.extend_from_slice(args);
    let v: Value = serde_json::from_str(&d.ok(&a)).expect("inspect JSON");
    v[0].clone()
}

fn volume_names(d: &TestDaemon, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["volume", "ls", "-q"];
    a.extend_from_slice(extra);
    let mut v: Vec<String> = d.ok(&a).lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Seconds since the epoch (`docker events --until` in the future waits for it).
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn named_volume_persists_across_containers() {
    let Some((d, _reg, img)) = daemon(&unique("vnamed")) else {
        return;
    };
    let vol = unique("data");
    let spec = format!("{vol}:/data");
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        &img,
        "sh",
        "-c",
        "echo hello > /data/f",
    ]);
    assert_eq!(
        d.ok(&["run", "--rm", "-v", &spec, &img, "cat", "/data/f"]),
        "hello\n"
    );
    // The data is where inspect says, beneath root-only directories.
    let mp = d.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", &vol]);
    assert_eq!(Path::new(mp.trim()), data_dir(&d, &vol));
    assert_eq!(
        std::fs::read_to_string(data_dir(&d, &vol).join("f")).unwrap(),
        "hello\n"
    );
    for p in [
        d.data_root().join("volumes"),
        d.data_root().join("volumes").join(&vol),
    ] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{}", p.display());
    }
    // What inspect shows of a container's volume.
    let name = unique("c");
    d.ok(&["create", "--name", &name, "-v", &spec, &img, "true"]);
    let m = &inspect(&d, &[&name])["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Name"], vol.as_str());
    assert_eq!(m["Destination"], "/data");
    assert_eq!(m["Driver"], "local");
    assert_eq!(m["Mode"], "z");
    assert_eq!(m["RW"], true);
    assert_eq!(Path::new(m["Source"].as_str().unwrap()), data_dir(&d, &vol));
    // ps --filter volume.
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("volume={vol}"),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(ps.trim(), name);
    d.ok(&["rm", "-v", &name]);
    // rm -v keeps named volumes.
    assert_eq!(volume_names(&d, &[]), vec![vol.clone()]);
    d.ok(&["volume", "rm", &vol]);
    assert!(volume_dirs(&d).is_empty(), "{:?}", volume_dirs(&d));
    d.assert_clean();
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm() {
    let Some((d, _reg, img)) = daemon(&unique("vanon")) else {
        return;
    };
    let named = unique("keep");
    let name = unique("c");
    d.ok(&[
        "run",
        "--name",
        &name,
        "-v",
        "/data",
        "-v",
        &format!("{named}:/named"),
        &img,
        "sh",
        "-c",
        "echo x > /data/a; echo y > /named/b",
    ]);
    let mounts = inspect(&d, &[&name])["Mounts"].clone();
    let anon = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/data")
        .expect("the anonymous volume")["Name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(is_hex64(&anon), "{anon}");
    let v: Value = serde_json::from_str(&d.ok(&["volume", "inspect", &anon])).unwrap();
    assert_eq!(v[0]["Labels"], json!({"com.docker.volume.anonymous": ""}));
    assert_eq!(
        std::fs::read_to_string(data_dir(&d, &anon).join("a")).unwrap(),
        "x\n"
    );
    let mut both = vec![anon.clone(), named.clone()];
    both.sort();
    assert_eq!(volume_names(&d, &[]), both);
    // docker rm -v: the anonymous volume goes, the named one stays.
    d.ok(&["rm", "-v", &name]);
    assert_eq!(volume_names(&d, &[]), vec![named.clone()]);
    assert_eq!(volume_dirs(&d), vec![named.clone()]);
    // Without -v both stay.
    d.ok(&["run", "--name", &name, "-v", "/data", &img, "true"]);
    d.ok(&["rm", &name]);
    assert_eq!(volume_names(&d, &[]).len(), 2);
    // docker volume prune: anonymous volumes only (Docker ≥ 23).
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(volume_names(&d, &[]), vec![named.clone()]);
    // docker run --rm removes its anonymous volumes.
    d.ok(&["run", "--rm", "-v", "/data", &img, "true"]);
    assert_eq!(volume_names(&d, &[]), vec![named.clone()]);
    d.ok(&["volume", "rm", &named]);
    assert!(volume_dirs(&d).is_empty(), "{:?}", volume_dirs(&d));
    d.assert_clean();
}

#[test]
fn new_volumes_are_seeded_from_the_image() {
    let Some((d, reg, img)) = daemon(&unique("vseed")) else {
        return;
    };
    let seeded = unique("etc");
    let ls = d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{seeded}:/etc"),
        &img,
        "ls",
        "/etc",
    ]);
    assert!(ls.lines().any(|l| l == "passwd"), "{ls}");
    let image_passwd = d.ok(&[
        "run",
        "--rm",
        &img,
        "stat",
        "-c",
        "%a %u %g %s",
        "/etc/passwd",
    ]);
    let host = std::fs::metadata(data_dir(&d, &seeded).join("passwd")).unwrap();
    assert_eq!(
        format!(
            "{:o} {} {} {}\n",
            host.mode() & 0o7777,
            host.uid(),
            host.gid(),
            host.len()
        ),
        image_passwd
    );
    // Ownership, modes (set-id bits), xattrs, symlinks and hard links are kept, the volume's
    // own owner and mode are those of the image's directory.
    let layer = Layer::new()
        .dir_owned("seeded/", 0o1770, 1000, 1001)
        .file_owned("seeded/f", 0o4750, 1002, 1003, b"data\n")
        .xattr_file("seeded/x", "user.berth", b"kept")
        .link(EntryType::Symlink, "seeded/l", "f")
        .link(EntryType::Link, "seeded/h", "seeded/f")
        .tar();
    let custom = push_image(&reg, &unique("seedimg"), layer, &[]);
    d.ok(&["pull", "-q", &custom]);
    let t = unique("meta");
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{t}:/seeded"),
        &custom,
        "true",
    ]);
    let data = data_dir(&d, &t);
    let md = std::fs::metadata(&data).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid()),
        (0o1770, 1000, 1001)
    );
    let f = std::fs::metadata(data.join("f")).unwrap();
    assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o4750, 1002, 1003));
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "data\n");
    assert_eq!(std::fs::read_link(data.join("l")).unwrap(), Path::new("f"));
    assert_eq!(std::fs::metadata(data.join("h")).unwrap().ino(), f.ino());
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(data.join("x"), "user.berth", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept");
    // A volume that is not empty is not seeded again.
    std::fs::remove_file(data_dir(&d, &seeded).join("group")).unwrap();
    let ls = d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{seeded}:/etc"),
        &img,
        "ls",
        "/etc",
    ]);
    assert!(!ls.lines().any(|l| l == "group"), "{ls}");
    // nocopy, with -v and with --mount.
    let empty = unique("nocopy");
    let ls = d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{empty}:/etc:nocopy"),
        &img,
        "ls",
        "/etc",
    ]);
    assert!(!ls.lines().any(|l| l == "passwd"), "{ls}");
    let empty2 = unique("nocopy2");
    let ls = d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=volume,source={empty2},target=/etc,volume-nocopy"),
        &img,
        "ls",
        "/etc",
    ]);
    assert!(!ls.lines().any(|l| l == "passwd"), "{ls}");
    // An anonymous volume at a path the image has is seeded too (and goes with --rm).
    let ls = d.ok(&["run", "--rm", "-v", "/etc", &img, "ls", "/etc"]);
    assert!(ls.lines().any(|l| l == "passwd"), "{ls}");
    for v in [&seeded, &t, &empty, &empty2] {
        d.ok(&["volume", "rm", v]);
    }
    assert!(volume_dirs(&d).is_empty(), "{:?}", volume_dirs(&d));
    d.assert_clean();
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let Some((d, _reg, img)) = daemon(&unique("vbind")) else {
        return;
    };
    let host = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::write(host.path().join("f"), "from the host\n").unwrap();
    let rw = format!("{}:/b", host.path().display());
    assert_eq!(
        d.ok(&["run", "--rm", "-v", &rw, &img, "cat", "/b/f"]),
        "from the host\n"
    );
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &rw,
        &img,
        "sh",
        "-c",
        "echo from the container > /b/g",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("g")).unwrap(),
        "from the container\n"
    );
    // Read-only: the write is refused.
    let ro = format!("{}:/b:ro", host.path().display());
    let out = d.docker(&["run", "--rm", "-v", &ro, &img, "sh", "-c", "echo no > /b/h"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        "{out:?}"
    );
    assert!(!host.path().join("h").exists());
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!(
            "type=bind,source={},target=/b,readonly",
            host.path().display()
        ),
        &img,
        "sh",
        "-c",
        "echo no > /b/h",
    ]);
    assert!(!out.status.success());
    assert!(!host.path().join("h").exists());
    // What inspect shows.
    let name = unique("c");
    d.ok(&["create", "--name", &name, "-v", &ro, &img, "true"]);
    let m = &inspect(&d, &[&name])["Mounts"][0];
    assert_eq!(m["Type"], "bind");
    assert_eq!(m["Source"], host.path().to_str().unwrap());
    assert_eq!(m["Destination"], "/b");
    assert_eq!(m["Mode"], "ro");
    assert_eq!(m["RW"], false);
    assert_eq!(m["Propagation"], "rprivate");
    d.ok(&["rm", &name]);
    // Propagation as asked.
    let name = unique("c");
    d.ok(&[
        "run",
        "--name",
        &name,
        "--mount",
        &format!(
            "type=bind,source={},target=/b,bind-propagation=rslave",
            host.path().display()
        ),
        &img,
        "cat",
        "/b/f",
    ]);
    let m = &inspect(&d, &[&name])["Mounts"][0];
    assert_eq!(m["Propagation"], "rslave");
    assert_eq!(m["Mode"], "");
    d.ok(&["rm", &name]);
    // -v makes a missing source directory; --mount type=bind refuses it.
    let missing = host.path().join("made/by/docker");
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", missing.display()),
        &img,
        "true",
    ]);
    assert!(missing.is_dir());
    let nowhere = host.path().join("nowhere");
    let err = d.fails(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/m", nowhere.display()),
        &img,
        "true",
    ]);
    assert!(
        err.contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            nowhere.display()
        )),
        "{err}"
    );
    assert!(!nowhere.exists());
    // Destinations: absolute, not `/`.
    let err = d.fails(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/", host.path().display()),
        &img,
        "true",
    ]);
    assert!(err.contains("destination can't be '/'"), "{err}");
    let err = d.fails(&["run", "--rm", "-v", "vol:relative", &img, "true"]);
    assert!(err.contains("mount path must be absolute"), "{err}");
    let err = d.fails(&["run", "--rm", "-v", "vol:/x:bogus", &img, "true"]);
    assert!(err.contains("invalid mode: bogus"), "{err}");
    assert!(volume_names(&d, &[]).is_empty());
    d.assert_clean();
}

#[test]
fn tmpfs_mounts_have_their_size_and_mode() {
    let Some((d, _reg, img)) = daemon(&unique("vtmpfs")) else {
        return;
    };
    let out = d.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/run/t:size=64m,mode=1777",
        &img,
        "sh",
        "-c",
        "grep ' /run/t ' /proc/mounts; stat -c %a /run/t",
    ]);
    assert!(out.contains("tmpfs /run/t tmpfs"), "{out}");
    assert!(out.contains("size=65536k"), "{out}");
    assert!(
        out.contains("nosuid") && out.contains("nodev") && out.contains("noexec"),
        "{out}"
    );
    assert!(out.ends_with("1777\n"), "{out}");
    let name = unique("c");
    let out = d.ok(&[
        "run",
        "--name",
        &name,
        "--mount",
        "type=tmpfs,destination=/t2,tmpfs-size=32m,tmpfs-mode=1770",
        &img,
        "sh",
        "-c",
        "grep ' /t2 ' /proc/mounts; stat -c %a /t2",
    ]);
    assert!(out.contains("tmpfs /t2 tmpfs"), "{out}");
    assert!(out.contains("size=32768k"), "{out}");
    assert!(out.ends_with("1770\n"), "{out}");
    let m = &inspect(&d, &[&name])["Mounts"][0];
    assert_eq!(m["Type"], "tmpfs");
    assert_eq!(m["Destination"], "/t2");
    assert_eq!(m["Source"], "");
    d.ok(&["rm", &name]);
    assert!(volume_names(&d, &[]).is_empty());
    d.assert_clean();
}

#[test]
fn volumes_from_another_container() {
    let Some((d, _reg, img)) = daemon(&unique("vfrom")) else {
        return;
    };
    let vol = unique("shared");
    let src = unique("src");
    d.ok(&[
        "create",
        "--name",
        &src,
        "-v",
        &format!("{vol}:/shared"),
        "-v",
        "/anon",
        &img,
        "true",
    ]);
    d.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        &src,
        &img,
        "sh",
        "-c",
        "echo hi > /shared/x && echo there > /anon/y",
    ]);
    assert_eq!(
        std::fs::read_to_string(data_dir(&d, &vol).join("x")).unwrap(),
        "hi\n"
    );
    // :ro makes every mount read-only.
    let out = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        &format!("{src}:ro"),
        &img,
        "sh",
        "-c",
        "cat /shared/x; echo no > /shared/z",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(!data_dir(&d, &vol).join("z").exists());
    let err = d.fails(&[
        "run",
        "--rm",
        "--volumes-from",
        "nosuchcontainer",
        &img,
        "true",
    ]);
    assert!(err.contains("No such container: nosuchcontainer"), "{err}");
    // The anonymous volume is still there (the --rm container only borrowed it); rm -v of
    // its owner removes it.
    assert_eq!(volume_names(&d, &[]).len(), 2);
    d.ok(&["rm", "-v", &src]);
    assert_eq!(volume_names(&d, &[]), vec![vol.clone()]);
    d.ok(&["volume", "rm", &vol]);
    assert!(volume_dirs(&d).is_empty(), "{:?}", volume_dirs(&d));
    d.assert_clean();
}

#[test]
fn volume_commands_and_their_errors() {
    let Some((d, _reg, img)) = daemon(&unique("vcli")) else {
        return;
    };
    let since = now_secs() - 1;
    let vol = unique("v");
    assert_eq!(
        d.ok(&["volume", "create", "--label", "team=a", &vol])
            .trim(),
        vol
    );
    // Creating it again answers the same volume.
    assert_eq!(d.ok(&["volume", "create", &vol]).trim(), vol);
    let v: Value = serde_json::from_str(&d.ok(&["volume", "inspect", &vol])).unwrap();
    let v = &v[0];
    assert_eq!(v["Name"], vol.as_str());
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"], json!({"team": "a"}));
    // The CLI sends no options: null, as dockerd answers then.
    assert!(v["Options"].is_null() || v["Options"] == json!({}), "{v}");
    assert_eq!(
        Path::new(v["Mountpoint"].as_str().unwrap()),
        data_dir(&d, &vol)
    );
    assert!(
        humantime::parse_rfc3339_weak(v["CreatedAt"].as_str().unwrap()).is_ok(),
        "{v}"
    );
    // Without a name: 64 hex digits, anonymous.
    let anon = d.ok(&["volume", "create"]).trim().to_string();
    assert!(is_hex64(&anon), "{anon}");
    // Bad names and options.
    let err = d.fails(&["volume", "create", "x"]);
    assert!(
        err.contains("create x: volume name is too short, names should be at least two alphanumeric characters"),
        "{err}"
    );
    let err = d.fails(&["volume", "create", "a@b"]);
    assert!(
        err.contains("includes invalid characters for a local volume name"),
        "{err}"
    );
    let err = d.fails(&["volume", "create", "--opt", "bogus=1", &unique("o")]);
    assert!(err.contains("invalid option: \"bogus\""), "{err}");
    let err = d.fails(&["volume", "create", "--driver", "nfsplugin", &unique("o")]);
    assert!(err.contains("plugin \"nfsplugin\" not found"), "{err}");
    // ls and its filters.
    let mut all = vec![vol.clone(), anon.clone()];
    all.sort();
    assert_eq!(volume_names(&d, &[]), all);
    assert_eq!(
        volume_names(&d, &["--filter", "label=team=a"]),
        vec![vol.clone()]
    );
    assert_eq!(
        volume_names(&d, &["--filter", "label=team"]),
        vec![vol.clone()]
    );
    assert_eq!(
        volume_names(&d, &["--filter", &format!("name={vol}")]),
        vec![vol.clone()]
    );
    assert_eq!(volume_names(&d, &["--filter", "driver=local"]), all);
    let table = d.ok(&["volume", "ls"]);
    assert!(table.starts_with("DRIVER"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("local ") && l.ends_with(&format!(" {vol}"))),
        "{table}"
    );
    let err = d.fails(&["volume", "ls", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
    // In use: rm is refused with the container's ID; dangling tells them apart.
    let user = unique("u");
    let id = d.ok(&[
        "create",
        "--name",
        &user,
        "-v",
        &format!("{vol}:/d"),
        &img,
        "true",
    ]);
    let id = id.trim();
    assert_eq!(
        volume_names(&d, &["--filter", "dangling=false"]),
        vec![vol.clone()]
    );
    assert_eq!(
        volume_names(&d, &["--filter", "dangling=true"]),
        vec![anon.clone()]
    );
    let err = d.fails(&["volume", "rm", &vol]);
    assert!(
        err.contains(&format!("remove {vol}: volume is in use - [{id}]")),
        "{err}"
    );
    let err = d.fails(&["volume", "rm", "-f", &vol]);
    assert!(err.contains("volume is in use"), "{err}");
    // Missing volumes.
    let err = d.fails(&["volume", "inspect", "nosuchvolume"]);
    assert!(err.contains("get nosuchvolume: no such volume"), "{err}");
    let err = d.fails(&["volume", "rm", "nosuchvolume"]);
    assert!(err.contains("no such volume"), "{err}");
    d.ok(&["volume", "rm", "-f", "nosuchvolume"]);
    // prune: anonymous only; --all: named ones too, never one in use.
    let unused = unique("unused");
    d.ok(&["volume", "create", &unused]);
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.contains(&anon), "{out}");
    assert!(!out.contains(&unused), "{out}");
    let out = d.ok(&[
        "volume",
        "prune",
        "-f",
        "--all",
        "--filter",
        "label=nosuchlabel",
    ]);
    assert!(!out.contains(&unused), "{out}");
    let out = d.ok(&["volume", "prune", "-f", "--all"]);
    assert!(out.contains(&unused), "{out}");
    assert!(!out.contains(&vol), "{out}");
    assert_eq!(volume_names(&d, &[]), vec![vol.clone()]);
    // system df counts it.
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Local Volumes 1"), "{df}");
    d.ok(&["rm", &user]);
    assert_eq!(d.ok(&["volume", "rm", &vol]).trim(), vol);
    assert!(volume_dirs(&d).is_empty(), "{:?}", volume_dirs(&d));
    // Events.
    let until = (now_secs() + 1).to_string();
    let ev = d.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    for want in [
        format!("create {vol}"),
        format!("destroy {vol}"),
        format!("destroy {anon}"),
        format!("destroy {unused}"),
    ] {
        assert!(ev.lines().any(|l| l == want), "{want} in {ev}");
    }
    d.assert_clean();
}

#[test]
fn local_driver_tmpfs_and_bind_options() {
    let Some((mut d, _reg, img)) = daemon(&unique("vopts")) else {
        return;
    };
    let since = now_secs() - 1;
    let t = unique("t");
    d.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=10m",
        &t,
    ]);
    let v: Value = serde_json::from_str(&d.ok(&["volume", "inspect", &t])).unwrap();
    assert_eq!(
        v[0]["Options"],
        json!({"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
    );
    let spec = format!("{t}:/data");
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        &img,
        "sh",
        "-c",
        "grep ' /data ' /proc/mounts; echo x > /data/f; cat /data/f",
    ]);
    assert!(out.contains("tmpfs /data tmpfs"), "{out}");
    assert!(out.contains("size=10240k"), "{out}");
    assert!(out.ends_with("x\n"), "{out}");
    // Unmounted when its last container stopped: the data went with the tmpfs.
    assert!(d.mounts().is_empty(), "{:?}", d.mounts());
    assert_eq!(d.ok(&["run", "--rm", "-v", &spec, &img, "ls", "/data"]), "");
    // Mounted while a container runs.
    let name = unique("c");
    d.ok(&[
        "run", "-d", "--name", &name, "-v", &spec, &img, "sleep", "60",
    ]);
    let data = data_dir(&d, &t);
    assert!(
        d.mounts().iter().any(|m| Path::new(m) == data),
        "{:?}",
        d.mounts()
    );
    // The daemon restarts: the container keeps its volume, and its end unmounts it.
    d.kill();
    d.launch();
    assert!(
        d.mounts().iter().any(|m| Path::new(m) == data),
        "{:?}",
        d.mounts()
    );
    d.ok(&["exec", &name, "sh", "-c", "echo alive > /data/g"]);
    d.ok(&["rm", "-f", &name]);
    assert!(
        !d.mounts().iter().any(|m| Path::new(m) == data),
        "{:?}",
        d.mounts()
    );
    // A bind of a host directory: written through, and removing the volume keeps the
    // directory's content.
    let host = tempfile::tempdir_in("/tmp").unwrap();
    let b = unique("b");
    d.ok(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &format!("device={}", host.path().display()),
        &b,
    ]);
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{b}:/data"),
        &img,
        "sh",
        "-c",
        "echo through > /data/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).unwrap(),
        "through\n"
    );
    // With --mount and volume-opt, made at create.
    let m = unique("m");
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!(
            "type=volume,source={m},target=/data,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=5m"
        ),
        &img,
        "grep",
        " /data ",
        "/proc/mounts",
    ]);
    let v: Value = serde_json::from_str(&d.ok(&["volume", "inspect", &m])).unwrap();
    assert_eq!(v[0]["Options"]["o"], "size=5m");
    for v in [&t, &b, &m] {
        d.ok(&["volume", "rm", v]);
    }
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).unwrap(),
        "through\n"
    );
    assert!(volume_dirs(&d).is_empty(), "{:?}", volume_dirs(&d));
    assert!(d.mounts().is_empty(), "{:?}", d.mounts());
    let ev = d.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(now_secs() + 1).to_string(),
        "--filter",
        &format!("volume={t}"),
        "--format",
        "{{.Action}}",
    ]);
    for want in ["create", "mount", "unmount", "destroy"] {
        assert!(ev.lines().any(|l| l == want), "{want} in {ev}");
    }
    d.assert_clean();
}

/// Push an image made of the busybox fixture and `extra` (an uncompressed layer), with these
/// VOLUMEs, to `reg` as `repo:latest`; returns its reference.
fn push_image(reg: &Registry, repo: &str, extra: Vec<u8>, volumes: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| -> Value {
        let dg = berth_store::Digest::of(b);
        std::fs::write(blobs.join(dg.hex()), b).unwrap();
        json!({"digest": dg.to_string(), "size": b.len()})
    };
    let base = berth_testkit::images::tar_dir(&berth_testkit::busybox_rootfs());
    let layers = [put(&base), put(&extra)];
    let vols: serde_json::Map<String, Value> =
        volumes.iter().map(|v| (v.to_string(), json!({}))).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Volumes": vols},
        "rootfs": {"type": "layers", "diff_ids": [layers[0]["digest"], layers[1]["digest"]]},
    }))
    .unwrap();
    let mut cfg = put(&config);
    cfg["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let layer = |l: &Value| {
        let mut l = l.clone();
        l["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
        l
    };
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg,
        "layers": [layer(&layers[0]), layer(&layers[1])],
    }))
    .unwrap();
    let mut m = put(&manifest);
    m["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    m["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [m]})).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    berth_testkit::images::skopeo_copy_in(
        reg.netns.as_deref(),
        &format!("oci:{}:latest", dir.path().display()),
        &format!("docker://{}/{repo}:latest", reg.addr),
        &[],
    );
    format!("{}/{repo}:latest", reg.addr)
}

#[test]
fn a_hostile_image_cannot_reach_the_host_through_its_volumes() {
    let Some((d, reg, _img)) = daemon(&unique("vhostile")) else {
        return;
    };
    // VOLUME paths that are symlinks out of the image's root (absolute, and `..` beyond it),
    // and a VOLUME directory holding a symlink to a host file.
    let marker = unique("marker");
    let layer = Layer::new()
        .file(&format!("etc/{marker}"), 0o600, b"from the image\n")
        .link(EntryType::Symlink, "abs", "/etc")
        .link(EntryType::Symlink, "up", "../../../../../../../../etc")
        .dir("links/", 0o755)
        .link(EntryType::Symlink, "links/shadow", "/etc/shadow")
        .link(EntryType::Symlink, "links/root", "/")
        .tar();
    let img = push_image(&reg, &unique("hostile"), layer, &["/abs", "/up", "/links"]);
    d.ok(&["pull", "-q", &img]);
    let host_etc: Vec<String> = std::fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let shadow_before = std::fs::symlink_metadata("/etc/shadow")
        .ok()
        .map(|m| (m.mode(), m.uid(), m.gid()));
    let pwned = unique("pwned");
    let name = unique("c");
    d.ok(&[
        "run",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        &format!("echo x > /abs/{pwned}; echo x > /up/{pwned}; ls /links"),
    ]);
    let c = inspect(&d, &[&name]);
    let mounts = c["Mounts"].as_array().unwrap().clone();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    for m in &mounts {
        let vol = m["Name"].as_str().unwrap();
        let data = data_dir(&d, vol);
        let names: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        match m["Destination"].as_str().unwrap() {
            "/abs" | "/up" => {
                // Seeded from the image's /etc (the marker), not the host's.
                assert!(names.contains(&marker), "{names:?}");
                for n in &host_etc {
                    // The image's own files, and the mount points the runtime makes for
                    // the container's hostname, hosts and resolv.conf.
                    if !["passwd", "group", "hostname", "hosts", "resolv.conf"]
                        .contains(&n.as_str())
                    {
                        assert!(
                            !names.contains(n),
                            "the host's /etc/{n} was copied: {names:?}"
                        );
                    }
                }
            }
            "/links" => {
                // Symlinks are copied as symlinks, never followed.
                let l = std::fs::symlink_metadata(data.join("shadow")).unwrap();
                assert!(l.file_type().is_symlink());
                assert_eq!(
                    std::fs::read_link(data.join("shadow")).unwrap(),
                    Path::new("/etc/shadow")
                );
                assert!(
                    std::fs::symlink_metadata(data.join("root"))
                        .unwrap()
                        .file_type()
                        .is_symlink()
                );
            }
            other => panic!("unexpected mount {other}"),
        }
    }
    // The container's writes through the symlinked paths landed in its own root, not the
    // host's /etc.
    assert!(!Path::new("/etc").join(&pwned).exists());
    let shadow_after = std::fs::symlink_metadata("/etc/shadow")
        .ok()
        .map(|m| (m.mode(), m.uid(), m.gid()));
    assert_eq!(shadow_before, shadow_after);
    // A named volume at such a path: the same.
    let vol = unique("named");
    d.ok(&["run", "--rm", "-v", &format!("{vol}:/abs"), &img, "true"]);
    assert!(data_dir(&d, &vol).join(&marker).exists());
    d.ok(&["rm", "-v", &name]);
    d.ok(&["volume", "rm", &vol]);
    assert!(volume_dirs(&d).is_empty(), "{:?}", volume_dirs(&d));
    assert!(!Path::new("/etc").join(&pwned).exists());
    d.assert_clean();
}
