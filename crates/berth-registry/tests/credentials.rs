//! The Docker-style credentials file, and logging in to a real registry with htpasswd auth.

use std::os::unix::fs::PermissionsExt;

use berth_registry::client::Error;
use berth_registry::credentials::{self, DOCKER_HUB_KEY};
use berth_registry::{Client, Credentials, CredentialsFile, Options};
use berth_testkit::images::Registry;
use serde_json::{Value, json};

fn creds(u: &str, p: &str) -> Credentials {
    Credentials {
        username: u.into(),
        password: p.into(),
    }
}

fn read_json(p: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn store_load_erase_round_trip_keeps_the_rest_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");

    // A missing file is empty.
    assert!(credentials::load(&path).unwrap().is_empty());
    assert_eq!(credentials::lookup(&path, "127.0.0.1:5000").unwrap(), None);
    assert!(!credentials::erase(&path, "127.0.0.1:5000").unwrap());
    assert!(!path.exists(), "erasing nothing writes nothing");

    // A file another tool wrote, world-readable.
    let original = json!({
        "auths": {"quay.io": {"auth": "cXVheTpwdw==", "email": "x@example.com"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        "psFormat": "table {{.ID}}"
    });
    std::fs::write(&path, serde_json::to_vec(&original).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    credentials::store(&path, "127.0.0.1:5000", &creds("tester", "s3:cret")).unwrap();
    credentials::store(&path, "docker.io", &creds("hubuser", "hubpass")).unwrap();
    assert_eq!(mode(&path), 0o600);
    let doc = read_json(&path);
    for key in ["credHelpers", "proxies", "psFormat"] {
        assert_eq!(doc[key], original[key], "{key}");
    }
    assert_eq!(doc["auths"]["quay.io"], original["auths"]["quay.io"]);
    // Docker's own encoding, under Docker's keys.
    assert_eq!(
        doc["auths"]["127.0.0.1:5000"],
        json!({"auth": "dGVzdGVyOnMzOmNyZXQ="})
    );
    assert_eq!(
        doc["auths"][DOCKER_HUB_KEY],
        json!({"auth": "aHVidXNlcjpodWJwYXNz"})
    );
    // No temporary files left next to it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["config.json"]);

    // Read back, by any name of the registry.
    let all = credentials::load(&path).unwrap();
    assert_eq!(all["127.0.0.1:5000"], creds("tester", "s3:cret"));
    assert_eq!(all["docker.io"], creds("hubuser", "hubpass"));
    assert_eq!(all["quay.io"], creds("quay", "pw"));
    for hub in ["docker.io", "index.docker.io", DOCKER_HUB_KEY] {
        assert_eq!(
            credentials::lookup(&path, hub).unwrap(),
            Some(creds("hubuser", "hubpass")),
            "{hub}"
        );
    }
    // Replacing: one entry per registry.
    credentials::store(&path, "index.docker.io", &creds("hubuser", "new")).unwrap();
    let doc = read_json(&path);
    assert_eq!(doc["auths"].as_object().unwrap().len(), 3, "{doc}");
    assert_eq!(
        credentials::lookup(&path, "docker.io").unwrap(),
        Some(creds("hubuser", "new"))
    );

    // Erase (logout): that registry only.
    assert!(credentials::erase(&path, "127.0.0.1:5000").unwrap());
    assert!(!credentials::erase(&path, "127.0.0.1:5000").unwrap());
    assert!(credentials::erase(&path, DOCKER_HUB_KEY).unwrap());
    let doc = read_json(&path);
    assert_eq!(
        doc["auths"],
        json!({"quay.io": original["auths"]["quay.io"]})
    );
    for key in ["credHelpers", "proxies", "psFormat"] {
        assert_eq!(doc[key], original[key], "{key}");
    }
    assert_eq!(mode(&path), 0o600);

    // The in-memory form, into a directory that does not exist yet.
    let nested = dir.path().join("new/dir/config.json");
    let mut f = CredentialsFile::load(&nested).unwrap();
    f.set("localhost:5000", &creds("a", "b")).unwrap();
    f.save().unwrap();
    assert_eq!(mode(&nested), 0o600);
    assert_eq!(
        CredentialsFile::load(&nested)
            .unwrap()
            .get("localhost:5000")
            .unwrap(),
        Some(creds("a", "b"))
    );

    // A damaged file is a clear error, and is left alone.
    std::fs::write(&path, b"{\"auths\": [").unwrap();
    let err = credentials::store(&path, "x.example", &creds("a", "b")).unwrap_err();
    assert!(err.to_string().contains("not a valid config file"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"auths\": [");
}

#[test]
fn a_symlinked_config_is_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    std::fs::write(&real, br#"{"other": 1}"#).unwrap();
    let link = dir.path().join("config.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    credentials::store(&link, "127.0.0.1:1", &creds("u", "p")).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read_json(&real)["other"], 1);
    assert_eq!(
        credentials::lookup(&link, "127.0.0.1:1").unwrap(),
        Some(creds("u", "p"))
    );
}

/// `default_path` with this environment.
fn default_path_with(env: &[(&str, Option<&str>)]) -> String {
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.map(std::ffi::OsString::from))
    };
    credentials::default_path_in(get)
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn default_path_follows_docker_config_then_home() {
    assert_eq!(
        default_path_with(&[("DOCKER_CONFIG", Some("/etc/dc")), ("HOME", Some("/h"))]),
        "/etc/dc/config.json"
    );
    assert_eq!(
        default_path_with(&[("DOCKER_CONFIG", None), ("HOME", Some("/h"))]),
        "/h/.docker/config.json"
    );
    // No HOME: the user's home from /etc/passwd (the tests run as root).
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let root_home = passwd
        .lines()
        .find(|l| l.starts_with("root:"))
        .and_then(|l| l.split(':').nth(5))
        .unwrap()
        .to_string();
    assert_eq!(
        default_path_with(&[("DOCKER_CONFIG", Some("")), ("HOME", None)]),
        format!("{root_home}/.docker/config.json")
    );
}

#[test]
fn check_login_against_an_htpasswd_registry() {
    let reg = Registry::start_with_basic_auth("tester", "s3cret");
    let with = |c: Option<Credentials>| {
        let mut opts = Options::default();
        if let Some(c) = c {
            opts.credentials.insert(reg.addr.clone(), c);
        }
        Client::new(opts)
    };

    with(Some(creds("tester", "s3cret")))
        .check_login(&reg.addr)
        .unwrap();
    // The config.json key form names the same registry.
    with(Some(creds("tester", "s3cret")))
        .check_login(&format!("http://{}/v2/", reg.addr))
        .unwrap();

    let err = with(Some(creds("tester", "wrong")))
        .check_login(&reg.addr)
        .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("authentication failed"), "{err}");
    let err = with(Some(creds("nobody", "s3cret")))
        .check_login(&reg.addr)
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let err = with(None).check_login(&reg.addr).unwrap_err();
    assert!(matches!(err, Error::NoCredentials { .. }), "{err:?}");

    // The login flow: check, store, and a later client reads them from the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let candidate = creds("tester", "s3cret");
    with(Some(candidate.clone()))
        .check_login(&reg.addr)
        .unwrap();
    credentials::store(&path, &reg.addr, &candidate).unwrap();
    let client = Client::new(Options {
        credentials: credentials::load(&path).unwrap(),
        ..Options::default()
    });
    client.check_login(&reg.addr).unwrap();

    // A registry without authentication takes anyone; nobody listening is unreachable.
    let open = Registry::start();
    with(None).check_login(&open.addr).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = with(None)
        .check_login(&format!("127.0.0.1:{port}"))
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
}
