//! Tests against the kernel. They run as root; each test first moves its own thread into a
//! fresh network namespace (network namespaces are per thread), so they never touch the
//! host's links and can run in parallel.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_netlink::{
    Error, Handle, Link, Netns, Route, VethOptions, mac_from_ipv4, set_sysctl, sysctl,
};
use nix::sched::{CloneFlags, unshare};

/// Moves the calling (test) thread into a new, empty network namespace.
fn fresh_netns() {
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): the tests must run as root");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn find<'a>(links: &'a [Link], name: &str) -> &'a Link {
    links
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no link {name} in {links:#?}"))
}

fn mounted(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path))
}

#[test]
fn bridge_create_exists_delete() {
    fresh_netns();
    let mut h = Handle::new().unwrap();
    let index = h.add_bridge("br-test", Some(1400)).unwrap();
    assert_eq!(h.link_index("br-test").unwrap(), Some(index));

    let links = h.links().unwrap();
    let br = find(&links, "br-test");
    assert_eq!(br.index, index);
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert_eq!(br.mtu, 1400);
    assert!(!br.up);
    assert!(br.mac.is_some());
    let lo = find(&links, "lo");
    assert_eq!(lo.kind, None);
    assert_eq!(lo.index, 1);

    let err = h.add_bridge("br-test", None).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert_eq!(err.to_string(), "creating bridge br-test: File exists");

    h.set_up(index).unwrap();
    h.set_mtu(index, 1300).unwrap();
    h.set_mac(index, [0x02, 0x42, 1, 2, 3, 4]).unwrap();
    let br = h.link("br-test").unwrap().unwrap();
    assert!(br.up);
    assert_eq!(br.mtu, 1300);
    assert_eq!(br.mac, Some([0x02, 0x42, 1, 2, 3, 4]));
    h.set_down(index).unwrap();
    assert!(!h.link("br-test").unwrap().unwrap().up);

    h.delete_link(index).unwrap();
    let err = h.delete_link(index).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("deleting link {index}: No such device")
    );
    assert_eq!(h.link_index("br-test").unwrap(), None);
    assert!(!h.delete_link_by_name("br-test").unwrap());

    h.add_bridge("br-test", None).unwrap();
    assert!(h.delete_link_by_name("br-test").unwrap());
    assert_eq!(h.link_index("br-test").unwrap(), None);

    // Refused before asking the kernel.
    let err = h.add_bridge("a-name-that-is-too-long", None).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    let err = h.set_up(9999).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[test]
fn veth_into_netns_with_addresses_routes_and_traffic() {
    fresh_netns();
    let dir = tempfile::tempdir().unwrap();
    let ns_path = dir.path().join("ns1");
    let ns = Netns::create(&ns_path).unwrap();
    let mut h = Handle::new().unwrap();

    // The host already has an "eth0": the peer is made directly inside the namespace.
    let host_eth0 = h.add_bridge("eth0", None).unwrap();
    let br = h.add_bridge("br-veth", Some(1450)).unwrap();
    h.add_address(br, ip("10.77.0.1"), 24).unwrap();
    h.add_address(br, ip("10.77.0.1"), 24).unwrap(); // already there: fine
    h.add_address(br, ip("fd77::1"), 64).unwrap();
    h.set_up(br).unwrap();

    let peer_mac = mac_from_ipv4(Ipv4Addr::new(10, 77, 0, 2));
    let opts = VethOptions {
        mtu: Some(1450),
        peer_mac: Some(peer_mac),
        master: Some(br),
        up: true,
    };
    let veth = h.add_veth("veth-a", "eth0", ns.fd(), &opts).unwrap();

    let links = h.links().unwrap();
    let host_end = find(&links, "veth-a");
    assert_eq!(host_end.index, veth);
    assert_eq!(host_end.kind.as_deref(), Some("veth"));
    assert_eq!(host_end.master, Some(br));
    assert_eq!(host_end.mtu, 1450);
    assert!(host_end.up);
    assert_eq!(find(&links, "eth0").index, host_eth0);
    assert_eq!(links.iter().filter(|l| l.name == "eth0").count(), 1);

    // The same peer name again in the namespace: refused, and nothing left here.
    let err = h.add_veth("veth-b", "eth0", ns.fd(), &opts).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert_eq!(h.link_index("veth-b").unwrap(), None);

    h.set_hairpin(veth, true).unwrap();
    h.set_hairpin(veth, false).unwrap();
    assert!(h.set_hairpin(br, true).is_err(), "a bridge is not a port");

    // Inside the namespace, through a handle made there.
    let (links_in, addresses_in, routes4, routes6) = ns
        .run(|| -> berth_netlink::Result<_> {
            let mut h = Handle::new()?;
            let links = h.links()?;
            let eth0 = find(&links, "eth0").index;
            h.set_up(eth0)?;
            h.add_address(eth0, ip("10.77.0.2"), 24)?;
            h.add_address(eth0, ip("fd77::2"), 64)?;
            h.add_route(None, Some(ip("10.77.0.1")), eth0)?;
            h.add_route(None, Some(ip("10.77.0.1")), eth0)?; // already there: fine
            h.add_route(None, Some(ip("fd77::1")), eth0)?;
            h.add_route(Some((ip("10.99.0.0"), 16)), None, eth0)?;
            Ok((
                h.links()?,
                h.addresses()?,
                h.routes(false)?,
                h.routes(true)?,
            ))
        })
        .unwrap()
        .unwrap();
    let eth0 = find(&links_in, "eth0");
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert_eq!(eth0.mac, Some(peer_mac));
    assert_eq!(eth0.mtu, 1450);
    assert!(find(&links_in, "lo").up, "lo is up in a created namespace");
    assert_eq!(links_in.len(), 2, "{links_in:#?}");
    assert!(addresses_in.contains(&(eth0.index, ip("10.77.0.2"), 24)));
    assert!(addresses_in.contains(&(eth0.index, ip("fd77::2"), 64)));
    assert!(addresses_in.contains(&(1, ip("127.0.0.1"), 8)));
    assert!(
        routes4.contains(&Route {
            dst: ip("0.0.0.0"),
            prefix_len: 0,
            gateway: Some(ip("10.77.0.1")),
            oif: Some(eth0.index),
        }),
        "{routes4:#?}"
    );
    assert!(routes4.contains(&Route {
        dst: ip("10.77.0.0"),
        prefix_len: 24,
        gateway: None,
        oif: Some(eth0.index),
    }));
    assert!(routes4.contains(&Route {
        dst: ip("10.99.0.0"),
        prefix_len: 16,
        gateway: None,
        oif: Some(eth0.index),
    }));
    assert!(routes4.iter().filter(|r| r.is_default()).count() == 1);
    assert!(
        routes6.iter().any(|r| r.is_default()
            && r.gateway == Some(ip("fd77::1"))
            && r.oif == Some(eth0.index)),
        "{routes6:#?}"
    );
    assert!(routes6.iter().all(|r| r.dst.is_ipv6()));

    // The host side sees its own addresses only.
    let addresses = h.addresses().unwrap();
    assert!(addresses.contains(&(br, ip("10.77.0.1"), 24)));
    assert!(!addresses.iter().any(|&(_, a, _)| a == ip("10.77.0.2")));

    // Traffic: a listener bound inside the namespace, a connection from here, over the veth
    // and the bridge.
    let listener = ns
        .run(|| TcpListener::bind("10.77.0.2:0"))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client =
        TcpStream::connect_timeout(&(ip("10.77.0.2"), port).into(), Duration::from_secs(5))
            .unwrap();
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), ip("10.77.0.1"));
    client.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");

    // Addresses and routes go away; deleting the host end deletes the peer.
    ns.run(|| -> berth_netlink::Result<()> {
        let mut h = Handle::new()?;
        let eth0 = h.link_index("eth0")?.unwrap();
        h.del_route(Some((ip("10.99.0.0"), 16)), None, eth0)?;
        let err = h
            .del_route(Some((ip("10.99.0.0"), 16)), None, eth0)
            .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        h.del_address(eth0, ip("10.77.0.2"), 24)?;
        let err = h.del_address(eth0, ip("10.77.0.2"), 24).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        Ok(())
    })
    .unwrap()
    .unwrap();
    h.delete_link(veth).unwrap();
    let mut inside = Handle::new_in(&ns).unwrap();
    assert_eq!(inside.link_index("eth0").unwrap(), None);
    drop(server);
    drop(client);
    drop(listener);

    Netns::remove(&ns_path).unwrap();
}

#[test]
fn netns_remove_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns-remove");
    let ns = Netns::create(&path).unwrap();
    assert!(mounted(&path));
    assert_eq!(ns.path(), path);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o444, "an nsfs inode, seen through the mount");

    // Found again by path, like after a daemon restart; the same namespace.
    let again = Netns::open(&path).unwrap();
    let id = |ns: &Netns| {
        let st = nix::sys::stat::fstat(ns.fd()).unwrap();
        (st.st_dev, st.st_ino)
    };
    assert_eq!(id(&ns), id(&again));
    let here = Netns::current().unwrap();
    assert_ne!(id(&ns), id(&here));
    assert!(here.path().starts_with("/proc"));

    fn send_and_sync<T: Send + Sync>(_: &T) {}
    send_and_sync(&ns);
    fn send<T: Send>(_: &T) {}
    send(&Handle::new().unwrap());

    Netns::remove(&path).unwrap();
    assert!(!mounted(&path));
    assert!(!path.exists());
    Netns::remove(&path).unwrap(); // absent: fine
    let err = Netns::open(&path).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    // The open descriptor still keeps the namespace alive and usable.
    let links = ns.run(|| Handle::new()?.links()).unwrap().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].name, "lo");

    // A plain file is not a namespace.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "").unwrap();
    let err = Netns::open(&plain).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    // Another kind of namespace is not a network namespace.
    let err = Netns::open(Path::new("/proc/self/ns/uts")).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}

#[test]
fn netns_create_with_a_bad_path_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();

    // The parent is missing.
    let path = dir.path().join("missing").join("ns");
    let err = Netns::create(&path).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("creating network namespace {}: ", path.display()))
    );
    assert!(!path.exists());
    assert!(!dir.path().join("missing").exists());

    // The file exists: refused, and left as it was.
    let existing = dir.path().join("existing");
    std::fs::write(&existing, "keep").unwrap();
    let err = Netns::create(&existing).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep");
    assert!(!mounted(&existing));

    // A directory in the way.
    let err = Netns::create(dir.path()).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert!(!mounted(dir.path()));

    // Not a place files can be made.
    let err = Netns::create(Path::new("/proc/berth-netlink-test-ns")).unwrap_err();
    assert!(!Path::new("/proc/berth-netlink-test-ns").exists(), "{err}");

    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("existing")]);
}

/// Drops `CAP_SYS_ADMIN` from the effective capabilities of the calling thread (credentials
/// are per thread, and threads it spawns inherit them).
fn drop_sys_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_SYS_ADMIN: u32 = 21;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two `Data` (version 3) through valid pointers to local values.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_SYS_ADMIN);
    // SAFETY: capset reads the header and two `Data` through valid pointers; it changes only
    // this thread's credentials.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn netns_create_failing_after_the_file_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let err = std::thread::spawn({
        let path = path.clone();
        move || {
            drop_sys_admin();
            Netns::create(&path).unwrap_err()
        }
    })
    .join()
    .unwrap();
    assert_eq!(err.errno(), Some(nix::errno::Errno::EPERM), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "creating network namespace {}: unshare: ",
            path.display()
        )),
        "{err}"
    );
    assert!(!path.exists());
    assert!(!mounted(&path));
}

#[test]
fn sysctls_follow_the_thread_network_namespace() {
    fresh_netns();
    let key = "net/ipv4/ip_forward";
    let initial = sysctl(key).unwrap();
    assert!(initial == "0" || initial == "1", "{initial:?}");
    let flipped = if initial == "0" { "1" } else { "0" };

    // Another thread, another fresh namespace: its own value.
    let in_other = std::thread::spawn(move || {
        fresh_netns();
        let before = sysctl(key).unwrap();
        let previous = set_sysctl(key, flipped).unwrap();
        let after = sysctl(key).unwrap();
        // A namespace made from here does not inherit this namespace's settings.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns");
        let ns = Netns::create(&path).unwrap();
        let in_new = ns.run(|| sysctl(key)).unwrap().unwrap();
        Netns::remove(&path).unwrap();
        (before, previous, after, in_new)
    })
    .join()
    .unwrap();
    eprintln!(
        "{key}: here {initial}, other thread (before, previous, after, new netns made from there) {in_other:?}"
    );
    assert_eq!(in_other.0, in_other.1);
    assert_eq!(in_other.2, flipped);
    // Unless the host asks for inheritance from the creating task (3).
    let inherit = sysctl("net/core/devconf_inherit_init_net");
    if inherit.as_deref().unwrap_or("0") != "3" {
        assert_eq!(
            in_other.3, initial,
            "not inherited from the creating thread's namespace"
        );
    }
    // Unchanged in this thread's namespace.
    assert_eq!(sysctl(key).unwrap(), initial);

    // Per-interface entries exist only in the namespace of the interface.
    let mut h = Handle::new().unwrap();
    h.add_bridge("br-sysctl", None).unwrap();
    assert_eq!(
        sysctl("net/ipv4/conf/br-sysctl/forwarding").unwrap(),
        initial
    );
    let other = std::thread::spawn(|| {
        fresh_netns();
        sysctl("net/ipv4/conf/br-sysctl/forwarding")
    })
    .join()
    .unwrap();
    assert!(other.unwrap_err().is_not_found());

    // Setting returns the previous value.
    assert_eq!(
        set_sysctl("net/ipv6/conf/br-sysctl/disable_ipv6", "1").unwrap(),
        "0"
    );
    assert_eq!(sysctl("net/ipv6/conf/br-sysctl/disable_ipv6").unwrap(), "1");
    let err = set_sysctl("../etc/passwd", "x").unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}

/// Prints (does not assert) how long per-container setup takes: a namespace, a veth pair
/// into it on a bridge, the address and the default route inside.
#[test]
fn setup_timing() {
    fresh_netns();
    let dir = tempfile::tempdir().unwrap();
    let mut h = Handle::new().unwrap();
    let br = h.add_bridge("br-bench", None).unwrap();
    h.add_address(br, ip("10.88.0.1"), 16).unwrap();
    h.set_up(br).unwrap();
    let mut totals = Vec::new();
    for i in 0..10u8 {
        let path = dir.path().join(format!("ns{i}"));
        let start = Instant::now();
        let ns = Netns::create(&path).unwrap();
        let t_ns = start.elapsed();
        let container_ip = Ipv4Addr::new(10, 88, 1, i + 2);
        let opts = VethOptions {
            mtu: Some(1500),
            peer_mac: Some(mac_from_ipv4(container_ip)),
            master: Some(br),
            up: true,
        };
        let t = Instant::now();
        h.add_veth(&format!("veth-bench{i}"), "eth0", ns.fd(), &opts)
            .unwrap();
        let t_veth = t.elapsed();
        let t = Instant::now();
        let mut inside = Handle::new_in(&ns).unwrap();
        let t_handle = t.elapsed();
        let t = Instant::now();
        let eth0 = inside.link_index("eth0").unwrap().unwrap();
        inside.add_address(eth0, container_ip.into(), 16).unwrap();
        inside.set_up(eth0).unwrap();
        inside.add_route(None, Some(ip("10.88.0.1")), eth0).unwrap();
        inside
            .add_route(Some((Ipv6Addr::UNSPECIFIED.into(), 0)), None, eth0)
            .unwrap();
        let t_inside = t.elapsed();
        let total = start.elapsed();
        eprintln!(
            "setup {i}: netns {} µs, veth {} µs, handle in netns {} µs, \
             eth0 lookup+address+up+2 routes {} µs, total {} µs",
            t_ns.as_micros(),
            t_veth.as_micros(),
            t_handle.as_micros(),
            t_inside.as_micros(),
            total.as_micros()
        );
        totals.push(total);
        drop(inside);
        drop(ns);
    }
    totals.sort();
    eprintln!(
        "setup: median {} µs, min {} µs, max {} µs",
        totals[totals.len() / 2].as_micros(),
        totals[0].as_micros(),
        totals[totals.len() - 1].as_micros()
    );
    let t = Instant::now();
    for i in 0..10u8 {
        h.delete_link_by_name(&format!("veth-bench{i}")).unwrap();
        Netns::remove(&dir.path().join(format!("ns{i}"))).unwrap();
    }
    eprintln!(
        "teardown (delete veth + remove netns): {} µs each",
        t.elapsed().as_micros() / 10
    );
}
