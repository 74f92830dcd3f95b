//! Networking through the real docker CLI: the default bridge, user-defined networks with
//! the embedded DNS, published ports in the kernel, isolation, `--internal`, links,
//! `container:NAME`, connect/disconnect, errors. Each test daemon has a network namespace of
//! its own (its "host"); a second namespace plays the outside world: another machine on a
//! link to the host, reaching published ports and being reached through NAT.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_testkit::daemon::{TestDaemon, wait_for, with_busybox as daemon};
use berth_testkit::unique;

/// busybox httpd serving `text` at / on port 80 (in the foreground).
fn httpd(text: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"),
    ]
}

/// An HTTP GET from inside a container with busybox nc (Debian's static busybox wget
/// crashes on any URL): the command's words for `docker run`/`exec`.
fn http_get(host: &str, port: u16) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port} | tail -n 1"),
    ]
}

/// `docker PRE… sh -c <http get>`: (success, body's last line).
fn get_via(d: &TestDaemon, pre: &[&str], host: &str, port: u16) -> (bool, String) {
    let cmd = http_get(host, port);
    let mut a: Vec<&str> = pre.to_vec();
    a.extend(cmd.iter().map(String::as_str));
    let o = d.docker(&a);
    let body = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !body.is_empty(), body)
}

fn run_d(d: &TestDaemon, args: &[&str], img: &str, cmd: &[String]) -> String {
    let mut a: Vec<&str> = vec!["run", "-d"];
    a.extend_from_slice(args);
    a.push(img);
    a.extend(cmd.iter().map(String::as_str));
    d.ok(&a).trim().to_string()
}

fn out_str(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `curl` in the daemon's network namespace (the host's view).
fn host_curl(d: &TestDaemon, url: &str) -> Output {
    d.net_cmd("curl")
        .args(["-s", "-m", "5", url])
        .output()
        .expect("curl")
}

/// Poll until `url` answers `want` from the host's side.
fn host_sees(d: &TestDaemon, url: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let o = host_curl(d, url);
        if String::from_utf8_lossy(&o.stdout).trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer {want:?}: {}\n{}",
            out_str(&o),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn inspect(d: &TestDaemon, what: &str, fmt: &str) -> String {
    d.ok(&["inspect", "-f", fmt, what]).trim().to_string()
}

/// A free TCP port in the daemon's namespace.
fn free_port(d: &TestDaemon) -> u16 {
    d.in_net(|| {
        std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// Another machine: a network namespace (held by a `sleep` in it) linked to the daemon's by
/// a veth pair, `10.X.Y.1/24` on the host's side and `.2` on its own. It has no route to
/// the containers' subnets: it can answer them only if their traffic is masqueraded.
struct Outside {
    holder: std::process::Child,
    host_ip: String,
    ip: String,
}

impl Outside {
    fn new(d: &TestDaemon, octet: u8) -> Outside {
        let holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "infinity"])
            .spawn()
            .expect("unshare");
        let pid = holder.id();
        let dn = d.netns();
        let (h, o) = (format!("ho{octet}"), format!("oh{octet}"));
        let host_ip = format!("10.213.{octet}.1");
        let ip = format!("10.213.{octet}.2");
        wait_for("the outside namespace", || {
            std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
                != std::fs::read_link("/proc/self/ns/net").ok()
        });
        let sh = |script: String| {
            let st = Command::new("nsenter")
                .arg(format!("--net={}", dn.display()))
                .args(["--", "sh", "-ec", &script])
                .status()
                .unwrap();
            assert!(st.success(), "{script}");
        };
        sh(format!(
            "ip link add {h} type veth peer name {o} && ip link set {o} netns {pid} && ip addr add {host_ip}/24 dev {h} && ip link set {h} up"
        ));
        let st = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "--", "sh", "-ec"])
            .arg(format!(
                "ip link set lo up && ip addr add {ip}/24 dev {o} && ip link set {o} up"
            ))
            .status()
            .unwrap();
        assert!(st.success());
        Outside {
            holder,
            host_ip,
            ip,
        }
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.id().to_string(), "-n", "--", prog]);
        c
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// berth's leftovers on the daemon's host: veths of containers, namespaces, published ports
/// in its table.
fn net_leftovers(d: &TestDaemon) -> Vec<String> {
    let mut left = Vec::new();
    let links = d.net_cmd("ip").args(["-o", "link"]).output().unwrap();
    for l in String::from_utf8_lossy(&links.stdout).lines() {
        if let Some(name) = l.split(": ").nth(1) {
            if name.starts_with("bv") {
                left.push(format!("veth {name}"));
            }
        }
    }
    // Published ports: no element in the port maps of berth's table.
    let t = d
        .net_cmd("nft")
        .args(["-j", "list", "table", "inet", "berth"])
        .output()
        .unwrap();
    if t.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap_or_default();
        for o in v["nftables"].as_array().into_iter().flatten() {
            let m = &o["map"];
            if m["name"].as_str().is_some_and(|n| n.starts_with("ports")) {
                if let Some(e) = m["elem"].as_array().filter(|e| !e.is_empty()) {
                    left.push(format!("published ports in {}: {e:?}", m["name"]));
                }
            }
        }
    }
    for e in std::fs::read_dir(d.dir.path().join("run/netns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        left.push(format!("netns {}", e.path().display()));
    }
    left
}

fn assert_net_clean(d: &TestDaemon) {
    wait_for("no network leftovers", || net_leftovers(d).is_empty());
    d.assert_clean();
}

#[test]
fn default_bridge_nat_and_published_ports() {
    let Some((d, _reg, img)) = daemon(&unique("bridge")) else {
        return;
    };
    let outside = Outside::new(&d, 1);
    let port = free_port(&d);
    let web = run_d(
        &d,
        &["--name", "web", "-p", &format!("{port}:80")],
        &img,
        &httpd("hello-bridge"),
    );
    // Inspect: an address on the default bridge, the port.
    let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with("172.17."), "{ip}");
    let gw = inspect(&d, "web", "{{.NetworkSettings.Gateway}}");
    assert_eq!(gw, "172.17.0.1");
    assert_eq!(inspect(&d, "web", "{{.HostConfig.NetworkMode}}"), "bridge");
    assert_eq!(
        inspect(
            &d,
            "web",
            "{{(index .NetworkSettings.Ports \"80/tcp\" 0).HostPort}}"
        ),
        port.to_string()
    );
    let mac = inspect(&d, "web", "{{.NetworkSettings.MacAddress}}");
    assert!(mac.starts_with("02:42:ac:11:"), "{mac}");
    let p = d.ok(&["port", "web", "80"]);
    assert!(p.contains(&format!("0.0.0.0:{port}")), "{p}");
    let ps = d.ok(&["ps", "--format", "{{.Ports}}", "-f", "name=web"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    // The container's own view: eth0 with the address, the default route, its hosts file.
    let o = d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip route; cat /etc/hosts",
    ]);
    assert!(o.contains(&format!("inet {ip}/16")), "{o}");
    assert!(o.contains("default via 172.17.0.1"), "{o}");
    assert!(o.contains(&format!("{ip}\t{}", &web[..12])), "{o}");
    // Published: from the host on 127.0.0.1 and on its own address, from another machine.
    host_sees(&d, &format!("http://127.0.0.1:{port}/"), "hello-bridge");
    host_sees(
        &d,
        &format!("http://{}:{port}/", outside.host_ip),
        "hello-bridge",
    );
    let o = outside
        .cmd("curl")
        .args([
            "-s",
            "-m",
            "5",
            &format!("http://{}:{port}/", outside.host_ip),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "hello-bridge",
        "{}",
        out_str(&o)
    );
    // The container directly, from the host.
    host_sees(&d, &format!("http://{ip}/"), "hello-bridge");
    // No proxy: no process of the daemon's listens on the port (the kernel forwards).
    let ss = d.net_cmd("ss").args(["-ltnp"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ss.stdout).contains(&format!(":{port} ")),
        "{}",
        String::from_utf8_lossy(&ss.stdout)
    );
    // Hairpin: a container reaching the published port through the host's address.
    let (_, o) = get_via(&d, &["run", "--rm", &img], &outside.host_ip, port);
    assert_eq!(o, "hello-bridge");
    let (_, o) = get_via(&d, &["exec", "web"], &outside.host_ip, port);
    assert_eq!(o, "hello-bridge");
    // Another container on the bridge reaches it directly.
    let (_, o) = get_via(&d, &["run", "--rm", &img], &ip, 80);
    assert_eq!(o, "hello-bridge");
    // Outbound NAT: the outside machine has no route to the containers, yet answers.
    let mut nc = outside
        .cmd("busybox")
        .args(["nc", "-l", "-p", "8099", "-e", "echo", "reply"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = d.docker(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        &format!("nc {} 8099 </dev/null", outside.ip),
    ]);
    let _ = nc.kill();
    let _ = nc.wait();
    assert!(out_str(&o).contains("reply"), "{}", out_str(&o));
    // A second container gets the next address; stopping releases the port and address.
    d.ok(&["rm", "-f", "web"]);
    assert!(
        !String::from_utf8_lossy(&host_curl(&d, &format!("http://127.0.0.1:{port}/")).stdout)
            .contains("hello")
    );
    assert_net_clean(&d);
}

#[test]
fn user_networks_resolve_names_and_are_isolated() {
    let Some((d, _reg, img)) = daemon(&unique("usernet")) else {
        return;
    };
    let n1 = unique("n1");
    let n2 = unique("n2");
    d.ok(&["network", "create", &n1]);
    d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "--gateway",
        "10.77.0.254",
        &n2,
    ]);
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for n in [
        "bridge bridge",
        "host host",
        "none null",
        &format!("{n1} bridge"),
        &format!("{n2} bridge"),
    ] {
        assert!(ls.lines().any(|l| l == n), "{n} in {ls}");
    }
    assert_eq!(
        d.ok(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Gateway}}",
            &n2
        ])
        .trim(),
        "10.77.0.254"
    );
    run_d(
        &d,
        &[
            "--name",
            "api",
            "--network",
            &n1,
            "--network-alias",
            "backend",
        ],
        &img,
        &httpd("from-api"),
    );
    // Names (container, alias, short ID) resolve on the network, with the embedded DNS.
    let api_ip = inspect(
        &d,
        "api",
        &format!("{{{{(index .NetworkSettings.Networks \"{n1}\").IPAddress}}}}"),
    );
    let api_id = d.ok(&["inspect", "-f", "{{.Id}}", "api"]).trim()[..12].to_string();
    for name in ["api", "backend", api_id.as_str(), "API"] {
        let (_, o) = get_via(&d, &["run", "--rm", "--network", &n1, &img], name, 80);
        assert_eq!(o, "from-api", "{name}");
    }
    let o = d.ok(&["run", "--rm", "--network", &n1, &img, "nslookup", "api"]);
    assert!(o.contains(&api_ip), "{o}");
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        &n1,
        &img,
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(o.contains("nameserver 127.0.0.11"), "{o}");
    // Another network: the name does not resolve, the address cannot be reached.
    let o = d.docker(&["run", "--rm", "--network", &n2, &img, "nslookup", "api"]);
    assert!(
        !o.status.success() || !out_str(&o).contains(&api_ip),
        "{}",
        out_str(&o)
    );
    let (ok, o) = get_via(&d, &["run", "--rm", "--network", &n2, &img], &api_ip, 80);
    assert!(!ok, "isolation: {o}");
    // The default bridge has no embedded DNS: names do not resolve there.
    let (ok, o) = get_via(&d, &["run", "--rm", &img], "api", 80);
    assert!(!ok, "{o}");
    // A legacy link on a user-defined network is a name for the linking container only.
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        &n1,
        "--link",
        "api:db",
        &img,
        "nslookup",
        "db",
    ]);
    assert!(o.contains(&api_ip), "{o}");
    let o = d.docker(&["run", "--rm", "--network", &n1, &img, "nslookup", "db"]);
    assert!(!out_str(&o).contains(&api_ip), "{}", out_str(&o));
    // Connect the client's container to n1 as well: now it resolves, and disconnecting undoes it.
    run_d(
        &d,
        &["--name", "client", "--network", &n2],
        &img,
        &["sleep".into(), "300".into()],
    );
    d.ok(&["network", "connect", &n1, "client"]);
    let (_, o) = get_via(&d, &["exec", "client"], "api", 80);
    assert_eq!(o, "from-api");
    let nets = inspect(
        &d,
        "client",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
    );
    assert!(nets.contains(&n1) && nets.contains(&n2), "{nets}");
    let e = d.fails(&["network", "connect", &n1, "client"]);
    assert!(e.contains("already exists in network"), "{e}");
    d.ok(&["network", "disconnect", &n1, "client"]);
    let (ok, o) = get_via(&d, &["exec", "client"], "api", 80);
    assert!(!ok, "{o}");
    // Removing a network in use is refused; once empty it goes.
    let e = d.fails(&["network", "rm", &n1]);
    assert!(e.contains("has active endpoints"), "{e}");
    d.ok(&["rm", "-f", "api", "client"]);
    d.ok(&["network", "rm", &n1, &n2]);
    let links = d.net_cmd("ip").args(["-o", "link"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("bn-"),
        "bridges left"
    );
    assert_net_clean(&d);
}

#[test]
fn internal_networks_have_no_way_out() {
    let Some((d, _reg, img)) = daemon(&unique("internal")) else {
        return;
    };
    let outside = Outside::new(&d, 2);
    let inet = unique("int");
    d.ok(&["network", "create", "--internal", &inet]);
    let mut srv = outside
        .cmd("busybox")
        .args(["nc", "-l", "-p", "8098", "-e", "echo", "out"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        &inet,
        &img,
        "sh",
        "-c",
        &format!("nc -w 2 {} 8098 </dev/null", outside.ip),
    ]);
    assert!(
        !out_str(&o).contains("out"),
        "an internal network reached outside: {}",
        out_str(&o)
    );
    // The same from the default bridge works.
    let o = d.docker(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        &format!("nc -w 2 {} 8098 </dev/null", outside.ip),
    ]);
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(out_str(&o).contains("out"), "{}", out_str(&o));
    d.ok(&["network", "rm", &inet]);
    assert_net_clean(&d);
}

#[test]
fn errors_are_dockers_and_leave_nothing() {
    let Some((d, _reg, img)) = daemon(&unique("neterr")) else {
        return;
    };
    let n = unique("en");
    d.ok(&["network", "create", "--subnet", "10.88.0.0/16", &n]);
    let e = d.fails(&["network", "create", &n]);
    assert!(e.contains("already exists"), "{e}");
    let e = d.fails(&[
        "network",
        "create",
        "--subnet",
        "10.88.1.0/24",
        &unique("ov"),
    ]);
    assert!(e.contains("overlaps"), "{e}");
    let e = d.fails(&[
        "network",
        "create",
        "--subnet",
        "10.300.0.0/16",
        &unique("bad"),
    ]);
    assert!(e.to_lowercase().contains("invalid"), "{e}");
    let e = d.fails(&[
        "network",
        "create",
        "--subnet",
        "10.89.0.0/24",
        "--gateway",
        "10.90.0.1",
        &unique("gw"),
    ]);
    assert!(e.contains("gateway") || e.contains("subnet"), "{e}");
    let e = d.fails(&["network", "rm", "bridge"]);
    assert!(e.contains("pre-defined network"), "{e}");
    let e = d.fails(&["network", "inspect", "nosuchnet"]);
    assert!(e.contains("not found"), "{e}");
    let e = d.fails(&["run", "--rm", "--network", "nosuchnet", &img, "true"]);
    assert!(e.contains("not found"), "{e}");
    let e = d.fails(&[
        "run",
        "--rm",
        "--network",
        &n,
        "--ip",
        "10.99.0.5",
        &img,
        "true",
    ]);
    assert!(e.contains("10.99.0.5"), "{e}");
    // A fixed address, twice.
    run_d(
        &d,
        &["--name", "fixed", "--network", &n, "--ip", "10.88.0.50"],
        &img,
        &["sleep".into(), "300".into()],
    );
    assert_eq!(
        inspect(
            &d,
            "fixed",
            &format!("{{{{(index .NetworkSettings.Networks \"{n}\").IPAddress}}}}")
        ),
        "10.88.0.50"
    );
    let e = d.fails(&[
        "run",
        "--rm",
        "--network",
        &n,
        "--ip",
        "10.88.0.50",
        &img,
        "true",
    ]);
    assert!(e.to_lowercase().contains("in use"), "{e}");
    // A host port taken by another container, and by a program on the host.
    let port = free_port(&d);
    run_d(
        &d,
        &["--name", "p1", "-p", &format!("{port}:80")],
        &img,
        &httpd("p1"),
    );
    let e = d.fails(&[
        "run",
        "-d",
        "--name",
        "p2",
        "-p",
        &format!("{port}:80"),
        &img,
        "true",
    ]);
    assert!(e.contains("port is already allocated"), "{e}");
    let busy = d.in_net(|| std::net::TcpListener::bind("0.0.0.0:0").unwrap());
    let bport = busy.local_addr().unwrap().port();
    let e = d.fails(&[
        "run",
        "-d",
        "--name",
        "p3",
        "-p",
        &format!("{bport}:80"),
        &img,
        "true",
    ]);
    assert!(e.contains("address already in use"), "{e}");
    drop(busy);
    d.ok(&["rm", "-f", "p2", "p3"]);
    let e = d.fails(&["network", "rm", &n]);
    assert!(e.contains("active endpoints"), "{e}");
    d.ok(&["rm", "-f", "fixed", "p1"]);
    d.ok(&["network", "rm", &n]);
    // Prune leaves the predefined networks.
    d.ok(&["network", "create", &unique("pr")]);
    let o = d.ok(&["network", "prune", "-f"]);
    assert!(o.contains("Deleted Networks"), "{o}");
    let ls = d.ok(&["network", "ls", "-q"]);
    assert_eq!(ls.lines().count(), 3, "{ls}");
    assert_net_clean(&d);
}

#[test]
fn container_network_mode_links_and_extra_hosts() {
    let Some((d, _reg, img)) = daemon(&unique("modes")) else {
        return;
    };
    run_d(
        &d,
        &["--name", "db", "--expose", "5432", "-e", "SECRET=x"],
        &img,
        &httpd("db"),
    );
    let db_ip = inspect(&d, "db", "{{.NetworkSettings.IPAddress}}");
    // container:NAME shares the namespace: same address, its localhost is db's.
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:db",
        &img,
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.contains(&db_ip), "{o}");
    let (_, o) = get_via(
        &d,
        &["run", "--rm", "--network", "container:db", &img],
        "127.0.0.1",
        80,
    );
    assert_eq!(o, "db");
    // A legacy link: the name in /etc/hosts, Docker's variables.
    let o = d.ok(&[
        "run",
        "--rm",
        "--link",
        "db:database",
        &img,
        "sh",
        "-c",
        "grep database /etc/hosts; env | sort",
    ]);
    assert!(o.contains(&format!("{db_ip}\tdatabase")), "{o}");
    assert!(
        o.contains(&format!("DATABASE_PORT_5432_TCP_ADDR={db_ip}")),
        "{o}"
    );
    assert!(o.contains("DATABASE_ENV_SECRET=x"), "{o}");
    assert!(o.contains("DATABASE_NAME=/"), "{o}");
    // --add-host with host-gateway, --dns, --hostname.
    let o = d.ok(&[
        "run",
        "--rm",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "10.1.2.3",
        "--dns-search",
        "example.test",
        "-h",
        "myhost",
        &img,
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf; hostname",
    ]);
    assert!(o.contains("172.17.0.1\tgw"), "{o}");
    assert!(
        o.contains("nameserver 10.1.2.3") && o.contains("search example.test"),
        "{o}"
    );
    assert!(o.contains("myhost"), "{o}");
    // Errors: a stopped container's namespace, a link to nothing.
    d.ok(&["create", "--name", "stopped", &img, "true"]);
    let e = d.fails(&[
        "run",
        "--rm",
        "--network",
        "container:stopped",
        &img,
        "true",
    ]);
    assert!(e.contains("non running container"), "{e}");
    let e = d.fails(&["run", "--rm", "--link", "stopped:x", &img, "true"]);
    assert!(e.contains("non running container"), "{e}");
    // --network none: loopback only.
    let o = d.ok(&["run", "--rm", "--network", "none", &img, "ip", "-o", "link"]);
    assert_eq!(o.lines().count(), 1, "{o}");
    d.ok(&["rm", "-f", "db", "stopped"]);
    assert_net_clean(&d);
}

#[test]
fn published_ranges_random_ports_and_udp() {
    let Some((d, _reg, img)) = daemon(&unique("ports")) else {
        return;
    };
    // -P publishes every exposed port on a random host port.
    run_d(
        &d,
        &["--name", "all", "-P", "--expose", "80", "--expose", "81"],
        &img,
        &httpd("all"),
    );
    let p80 = d.ok(&["port", "all", "80/tcp"]);
    let hp: u16 = p80
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(hp >= 32768, "{p80}");
    host_sees(&d, &format!("http://127.0.0.1:{hp}/"), "all");
    assert!(d.ok(&["port", "all"]).contains("81/tcp"));
    // A range of container ports to a range of host ports, and UDP, on 127.0.0.1 only.
    let base = free_port(&d).max(20000);
    let spec = format!("127.0.0.1:{base}-{}:7000-7001/udp", base + 1);
    // busybox has no UDP server: the host's python3 (its /usr mounted read-only) answers.
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',7001))\nwhile True:\n d,a=s.recvfrom(100)\n s.sendto(b'pong '+d,a)\n";
    run_d(
        &d,
        &[
            "--name",
            "udp",
            "-p",
            &spec,
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/usr/lib:/lib:ro",
            "-v",
            "/usr/lib64:/lib64:ro",
        ],
        &img,
        &["/usr/bin/python3".into(), "-c".into(), echo.into()],
    );
    let ports = d.ok(&["port", "udp"]);
    assert!(
        ports.contains(&format!("7000/udp -> 127.0.0.1:{base}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("7001/udp -> 127.0.0.1:{}", base + 1)),
        "{ports}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let client = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(1)\nfor i in range(20):\n s.sendto(b'ping',('127.0.0.1',{}))\n try:\n  print(s.recvfrom(100)[0].decode()); break\n except OSError: pass\n",
        base + 1
    );
    let o = d.net_cmd("python3").args(["-c", &client]).output().unwrap();
    assert!(out_str(&o).contains("pong ping"), "{}", out_str(&o));
    d.ok(&["rm", "-f", "all", "udp"]);
    assert_net_clean(&d);
}

#[test]
fn networks_and_ports_survive_a_daemon_restart() {
    let Some((mut d, _reg, img)) = daemon(&unique("netrestart")) else {
        return;
    };
    let n = unique("rn");
    d.ok(&["network", "create", &n]);
    let port = free_port(&d);
    run_d(
        &d,
        &[
            "--name",
            "svc",
            "--network",
            &n,
            "-p",
            &format!("{port}:80"),
        ],
        &img,
        &httpd("svc"),
    );
    run_d(
        &d,
        &["--name", "cli", "--network", &n],
        &img,
        &["sleep".into(), "300".into()],
    );
    let ip = inspect(
        &d,
        "svc",
        &format!("{{{{(index .NetworkSettings.Networks \"{n}\").IPAddress}}}}"),
    );
    host_sees(&d, &format!("http://127.0.0.1:{port}/"), "svc");
    d.kill();
    // While the daemon is down the kernel still forwards the published port.
    host_sees(&d, &format!("http://127.0.0.1:{port}/"), "svc");
    d.launch();
    // The DNS answers again, the address is still taken, the port still published.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = d.docker(&["exec", "cli", "nslookup", "svc"]);
        if out_str(&o).contains(&ip) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "DNS after restart: {}",
            out_str(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run_d(
        &d,
        &["--name", "third", "--network", &n],
        &img,
        &["sleep".into(), "300".into()],
    );
    let ip3 = inspect(
        &d,
        "third",
        &format!("{{{{(index .NetworkSettings.Networks \"{n}\").IPAddress}}}}"),
    );
    assert_ne!(ip, ip3);
    let e = d.fails(&["run", "-d", "-p", &format!("{port}:80"), &img, "true"]);
    assert!(e.contains("already allocated"), "{e}");
    d.ok(&["rm", "-f", "svc", "cli", "third"]);
    d.ok(&["container", "prune", "-f"]);
    d.ok(&["network", "rm", &n]);
    assert_net_clean(&d);
}

#[test]
fn leftovers_of_a_crash_are_put_right_at_start() {
    let Some((mut d, _reg, img)) = daemon(&unique("netcrash")) else {
        return;
    };
    let n = unique("cn");
    d.ok(&["network", "create", &n]);
    let bridge = format!(
        "bn-{}",
        &d.ok(&["network", "inspect", "-f", "{{.Id}}", &n]).trim()[..12]
    );
    let port = free_port(&d);
    run_d(
        &d,
        &[
            "--name",
            "keep",
            "--network",
            &n,
            "-p",
            &format!("{port}:80"),
        ],
        &img,
        &httpd("kept"),
    );
    d.kill();
    // While it is down: what a daemon killed mid-setup or mid-teardown leaves (a namespace,
    // a veth of ours, a published port of nobody, a bridge of no network), and a network's
    // bridge removed by hand.
    let sh = |script: &str| {
        let st = d.net_cmd("sh").args(["-ec", script]).status().unwrap();
        assert!(st.success(), "{script}");
    };
    std::fs::write(d.dir.path().join("run/netns/stale00000000"), b"").unwrap();
    sh("ip link add bvdeadbeef000 type veth peer name bvdeadbeef001");
    sh("ip link add bn-deadbeef0000 type bridge");
    sh("nft add element inet berth ports4 '{ tcp . 61111 : 172.17.0.99 . 80 }'");
    sh(&format!("ip link del {bridge}"));
    d.launch();
    // The network's bridge is made again and the running container's veth put back on it.
    let links = d.net_cmd("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert!(
        links.contains(&bridge),
        "the network's bridge is back: {links}"
    );
    assert!(!links.contains("bvdeadbeef000"), "{links}");
    assert!(!links.contains("bn-deadbeef0000"), "{links}");
    assert!(!d.dir.path().join("run/netns/stale00000000").exists());
    let table = d
        .net_cmd("nft")
        .args(["list", "table", "inet", "berth"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(!table.contains("61111"), "{table}");
    assert!(
        table.contains(&port.to_string()),
        "the running container's port stays: {table}"
    );
    run_d(
        &d,
        &["--name", "after", "--network", &n],
        &img,
        &httpd("after"),
    );
    let (_, o) = get_via(&d, &["run", "--rm", "--network", &n, &img], "after", 80);
    assert_eq!(o, "after");
    let (_, o) = get_via(&d, &["exec", "after"], "keep", 80);
    assert_eq!(o, "kept");
    host_sees(&d, &format!("http://127.0.0.1:{port}/"), "kept");
    d.ok(&["rm", "-f", "keep", "after"]);
    d.ok(&["network", "rm", &n]);
    assert_net_clean(&d);
}

#[test]
fn other_softwares_rules_are_left_alone() {
    let Some((d, _reg, img)) = daemon(&unique("foreign")) else {
        return;
    };
    // Rules as iptables-nft (dockerd, podman's CNI) would make them, in the same namespace.
    let sh = |script: &str| {
        let o = d.net_cmd("sh").args(["-ec", script]).output().unwrap();
        assert!(o.status.success(), "{script}: {}", out_str(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    sh(
        "nft add table ip filter; nft add chain ip filter FORWARD '{ type filter hook forward priority 0; policy accept; }'; \
        nft add rule ip filter FORWARD iifname docker0 counter accept; \
        nft add table ip nat; nft add chain ip nat POSTROUTING '{ type nat hook postrouting priority 100; }'; \
        nft add rule ip nat POSTROUTING ip saddr 10.55.0.0/16 oifname != docker0 masquerade",
    );
    let before = sh("nft list table ip filter; nft list table ip nat");
    let n = unique("fn");
    d.ok(&["network", "create", &n]);
    let port = free_port(&d);
    run_d(
        &d,
        &[
            "--name",
            "web1",
            "--network",
            &n,
            "-p",
            &format!("{port}:80"),
        ],
        &img,
        &httpd("w"),
    );
    host_sees(&d, &format!("http://127.0.0.1:{port}/"), "w");
    d.ok(&["rm", "-f", "web1"]);
    d.ok(&["network", "rm", &n]);
    let after = sh("nft list table ip filter; nft list table ip nat");
    assert_eq!(before, after);
    assert_net_clean(&d);
}

#[test]
fn ipv6_networks_dual_stack() {
    let Some((d, _reg, img)) = daemon(&unique("ipv6")) else {
        return;
    };
    let n = unique("v6");
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.66.0.0/24",
        "--subnet",
        "fd00:66::/64",
        &n,
    ]);
    let cfg = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
        &n,
    ]);
    assert_eq!(cfg.trim(), "true 10.66.0.0/24 fd00:66::/64");
    let port = free_port(&d);
    run_d(
        &d,
        &[
            "--name",
            "web6",
            "--network",
            &n,
            "-p",
            &format!("{port}:80"),
        ],
        &img,
        &httpd("dual"),
    );
    let ip6 = inspect(
        &d,
        "web6",
        &format!("{{{{(index .NetworkSettings.Networks \"{n}\").GlobalIPv6Address}}}}"),
    );
    assert_eq!(ip6, "fd00:66::2");
    let gw6 = inspect(
        &d,
        "web6",
        &format!("{{{{(index .NetworkSettings.Networks \"{n}\").IPv6Gateway}}}}"),
    );
    assert_eq!(gw6, "fd00:66::1");
    // Inside: the address and the IPv6 default route; another container reaches it by name
    // (AAAA) and by address.
    let o = d.ok(&[
        "exec",
        "web6",
        "sh",
        "-c",
        "ip -6 addr show eth0; ip -6 route",
    ]);
    assert!(
        o.contains("fd00:66::2/64") && o.contains("default via fd00:66::1"),
        "{o}"
    );
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        &n,
        &img,
        "nslookup",
        "-type=AAAA",
        "web6",
    ]);
    assert!(o.contains("fd00:66::2"), "{o}");
    let (_, o) = get_via(
        &d,
        &["run", "--rm", "--network", &n, &img],
        "fd00:66::2",
        80,
    );
    assert_eq!(o, "dual");
    // Published on both families: an IPv6 address of the host reaches the container's.
    let st = d.net_cmd("sh").args(["-ec", "ip link add h6 type veth peer name h6p; ip link set h6p up; ip addr add fd99::1/128 dev h6 nodad; ip link set h6 up"]).status().unwrap();
    assert!(st.success());
    host_sees(&d, &format!("http://[fd99::1]:{port}/"), "dual");
    host_sees(&d, &format!("http://127.0.0.1:{port}/"), "dual");
    let p = d.ok(&["port", "web6", "80"]);
    assert!(
        p.contains(&format!("0.0.0.0:{port}")) && p.contains(&format!("[::]:{port}"))
            || p.contains(&format!(":::{port}")),
        "{p}"
    );
    let e = d.fails(&[
        "run",
        "--rm",
        "--network",
        &n,
        "--ip6",
        "fd00:67::5",
        &img,
        "true",
    ]);
    assert!(e.contains("fd00:67::5"), "{e}");
    d.ok(&["rm", "-f", "web6"]);
    d.ok(&["network", "rm", &n]);
    assert_net_clean(&d);
}

/// A podman network on the same host (its CNI bridge and iptables-nft rules, in the daemon's
/// namespace) keeps working while berth's networks and published ports come and go.
#[test]
fn a_podman_network_beside_keeps_working() {
    let Some((d, reg, img)) = daemon(&unique("podman")) else {
        return;
    };
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: podman is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cg = berth_testkit::CgroupParent::new(&unique("podman-net"));
    std::fs::create_dir_all(dir.path().join("cni")).unwrap();
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n[network]\nnetwork_config_dir = \"{}\"\n",
            dir.path().join("cni").display()
        ),
    )
    .unwrap();
    // podman's CNI keeps its address leases in /var/lib/cni: a tmpfs there, in the daemon's
    // mount namespace, where podman runs, so nothing of it is left on the host.
    let anchor_cmd = |prog: &str| {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", d.netns().display()))
            .arg(format!("--mount={}", d.mntns().display()))
            .arg("--")
            .arg(prog);
        c
    };
    let st = anchor_cmd("sh")
        .args(["-ec", "if [ -d /var/lib/cni ]; then mount -t tmpfs tmpfs /var/lib/cni; else mount -t tmpfs tmpfs /var/lib; fi"])
        .status()
        .unwrap();
    assert!(st.success());
    let podman = |args: &[&str]| {
        let o = anchor_cmd("podman")
            .env("CONTAINERS_CONF", &conf)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .arg("--tmpdir")
            .arg(dir.path().join("tmp"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "podman {args:?}: {}", out_str(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let _ = &reg;
    podman(&["pull", "-q", "--tls-verify=false", &img]);
    let pport = free_port(&d);
    podman(&[
        "run",
        "-d",
        "--name",
        "pweb",
        "--cgroup-parent",
        &cg.path,
        "-p",
        &format!("{pport}:80"),
        &img,
        "sh",
        "-c",
        "mkdir -p /www && echo from-podman > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    host_sees(&d, &format!("http://127.0.0.1:{pport}/"), "from-podman");
    let outside = Outside::new(&d, 3);
    let ocurl = |port: u16| {
        let o = outside
            .cmd("curl")
            .args([
                "-s",
                "-m",
                "5",
                &format!("http://{}:{port}/", outside.host_ip),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(ocurl(pport), "from-podman");
    // berth's networks and ports come and go.
    let n = unique("bn");
    d.ok(&["network", "create", &n]);
    let bport = free_port(&d);
    run_d(
        &d,
        &[
            "--name",
            "bweb",
            "--network",
            &n,
            "-p",
            &format!("{bport}:80"),
        ],
        &img,
        &httpd("from-berth"),
    );
    host_sees(&d, &format!("http://127.0.0.1:{bport}/"), "from-berth");
    assert_eq!(ocurl(pport), "from-podman");
    assert_eq!(ocurl(bport), "from-berth");
    d.ok(&["rm", "-f", "bweb"]);
    d.ok(&["network", "rm", &n]);
    host_sees(&d, &format!("http://127.0.0.1:{pport}/"), "from-podman");
    assert_eq!(ocurl(pport), "from-podman");
    podman(&["rm", "-f", "-t", "0", "pweb"]);
    assert_net_clean(&d);
}

/// Without the default bridge, the last network removed leaves the host as it was: no table,
/// no bridge, IPv4 forwarding back off.
#[test]
fn the_host_is_left_as_it_was() {
    let Some((mut d, _reg, img)) = daemon(&unique("asfound")) else {
        return;
    };
    let sysctl = |d: &TestDaemon| {
        let o = d
            .net_cmd("cat")
            .arg("/proc/sys/net/ipv4/ip_forward")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let table = |d: &TestDaemon| {
        d.net_cmd("nft")
            .args(["list", "table", "inet", "berth"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert_eq!(sysctl(&d), "1"); // the default bridge
    // A new network namespace starts with the host's IPv4 settings (devconf_inherit_init_net
    // 0): the daemon's started as this test's did.
    let before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string();
    d.reconfigure(serde_json::json!({"bridge": "none"}));
    assert_eq!(
        sysctl(&d),
        before,
        "the default bridge gone, forwarding is back as it was"
    );
    assert!(!table(&d));
    let links = d.net_cmd("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("berth0"));
    let n = unique("af");
    d.ok(&["network", "create", &n]);
    assert_eq!(sysctl(&d), "1");
    assert!(table(&d));
    run_d(
        &d,
        &["--name", "af1", "--network", &n, "-p", "80"],
        &img,
        &httpd("af"),
    );
    // Without --network, no network: loopback only.
    let o = d.ok(&["run", "--rm", &img, "ip", "-o", "link"]);
    assert_eq!(o.lines().count(), 1, "{o}");
    d.ok(&["rm", "-f", "af1"]);
    d.ok(&["network", "rm", &n]);
    assert_eq!(sysctl(&d), before);
    assert!(!table(&d));
    assert_net_clean(&d);
}
