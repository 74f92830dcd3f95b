//! The API on TCP with TLS and verified client certificates, as dockerd's `--tlsverify`, driven
//! by the docker CLI with `DOCKER_TLS_VERIFY` and a `DOCKER_CERT_PATH` directory; plain TCP is
//! refused on any address but loopback.

use std::path::Path;
use std::process::Command;

use berth_testkit::daemon::TestDaemon;
use berth_testkit::{is_root, unique};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate with CN `cn`, in
/// DOCKER_CERT_PATH's layout (`ca.pem`, `cert.pem`, `key.pem`) for both sides.
fn certs(dir: &Path, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (server, client) = (dir.join("server"), dir.join("client"));
    std::fs::create_dir_all(&server).unwrap();
    std::fs::create_dir_all(&client).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        dir.join("ext-server"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("ext-client"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (who, subj, ext) in [
        ("server", "/CN=127.0.0.1".to_string(), "ext-server"),
        ("client", format!("/CN={cn}"), "ext-client"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &subj,
                "-keyout",
                &format!("{who}/key.pem"),
                "-out",
                &format!("{who}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                &format!("{who}/cert.pem"),
            ],
        );
        std::fs::copy(dir.join("ca.pem"), dir.join(who).join("ca.pem")).unwrap();
    }
    (server, client)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tls_with_verified_client_certificates() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (server, client) = certs(tmp.path(), "tenant-a");
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let d = TestDaemon::start_with(
        &unique("tls"),
        serde_json::json!({}),
        &[
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            server.join("ca.pem").to_str().unwrap(),
            "--tlscert",
            server.join("cert.pem").to_str().unwrap(),
            "--tlskey",
            server.join("key.pem").to_str().unwrap(),
        ],
    );
    let docker = |env_tls: bool, cert_path: &Path| {
        // The daemon listens on 127.0.0.1 of its own network namespace.
        let mut c = d.net_cmd("docker");
        c.env("DOCKER_HOST", &host)
            .env("DOCKER_CONFIG", tmp.path().join("cfg"))
            .env("DOCKER_CERT_PATH", cert_path);
        if env_tls {
            c.env("DOCKER_TLS_VERIFY", "1");
        } else {
            c.env_remove("DOCKER_TLS_VERIFY");
        }
        c.args(["version", "--format", "{{.Server.APIVersion}}"]);
        c.output().unwrap()
    };
    let out = docker(true, &client);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        berth_api_version()
    );
    // Without a client certificate: refused at the handshake.
    let empty = tmp.path().join("none");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(client.join("ca.pem"), empty.join("ca.pem")).unwrap();
    let out = docker(true, &empty);
    assert!(!out.status.success());
    // Plain HTTP to the TLS port: refused.
    let out = docker(false, &client);
    assert!(!out.status.success());
    // A certificate signed by another CA: refused.
    let other = tempfile::tempdir().unwrap();
    let (_, intruder) = certs(other.path(), "intruder");
    std::fs::copy(client.join("ca.pem"), intruder.join("ca.pem")).unwrap();
    let out = docker(true, &intruder);
    assert!(!out.status.success());
    d.assert_clean();
}

/// The API version the daemon serves (what `{{.Server.APIVersion}}` prints).
fn berth_api_version() -> &'static str {
    "1.52"
}

#[test]
fn plain_tcp_only_on_loopback() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("none.json"), "{}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["daemon", "--config-file"])
        .arg(tmp.path().join("none.json"))
        .args(["--data-root"])
        .arg(tmp.path().join("data"))
        .args(["--exec-root"])
        .arg(tmp.path().join("run"))
        .args(["-H", "tcp://0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plain TCP is for loopback only"), "{err}");
}
