//! Registry credentials in Docker's `config.json` format:
//! `{"auths": {"host:port": {"auth": base64("user:pass")}}}`, Docker Hub's key being
//! `https://index.docker.io/v1/`.
//!
//! The file is read whole and written back whole with every other key left as it was (other
//! tools keep their settings in it), atomically (a temporary file in the same directory,
//! synced, renamed over it) and readable by its owner only (mode 0600). Credential helpers
//! (`credsStore`, `credHelpers`) are not used.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::client::Credentials;
use crate::reference::DOCKER_HUB;

/// The key Docker stores Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What can go wrong with a credentials file. Each message is whole (no `source()`), so a
/// cause is printed once however the error is shown.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Reading or writing the file failed.
    #[error("{op} {path}: {cause}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error (in the message; not a `source()`).
        cause: io::Error,
    },
    /// The file is not JSON, or not a JSON object.
    #[error("{path} is not a valid config file: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An `auth` entry that is not base64 of `user:password`.
    #[error("{path}: the credentials for {registry} are not base64 of user:password")]
    BadAuth {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        registry: String,
    },
    /// A registry name that cannot be a key.
    #[error("invalid registry name {0:?}")]
    BadRegistry(String),
}

/// Result with this module's error.
pub type Result<T, E = CredentialsError> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CredentialsError + 'a {
    move |cause| CredentialsError::Io {
        op,
        path: path.to_path_buf(),
        cause,
    }
}

/// The registry a host or config.json key names, as [`crate::Reference::registry`] spells it:
/// the scheme and any path dropped (`https://index.docker.io/v1/` → `index.docker.io`), and
/// Docker Hub's names (`index.docker.io`, `registry-1.docker.io`) as `docker.io`.
pub fn normalize_registry(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or_default().to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    }
}

/// The key a registry's credentials are stored under: Docker Hub's is
/// [`DOCKER_HUB_KEY`], any other registry's is its host\[:port\].
pub fn registry_key(registry: &str) -> String {
    let r = normalize_registry(registry);
    if r == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        r
    }
}

/// Where Docker keeps its config: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json` (home from `$HOME`, else from /etc/passwd). `None` if no home
/// directory can be found.
pub fn default_path() -> Option<PathBuf> {
    default_path_in(|name| std::env::var_os(name))
}

/// [`default_path`] with the environment read through `env` (so it can be tested without
/// changing the process's environment).
pub fn default_path_in(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(dir) = env("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = env("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(home_from_passwd)?;
    Some(home.join(".docker").join("config.json"))
}

/// The home directory of this process's user in /etc/passwd.
fn home_from_passwd() -> Option<PathBuf> {
    // The owner of /proc/self is the process's real user (no unsafe getuid() needed).
    let uid = fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[2] == uid && !f[5].is_empty()).then(|| PathBuf::from(f[5]))
    })
}

/// A Docker config file, loaded: its credentials, and every other key kept for writing back.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl CredentialsFile {
    /// Read the file at `path`; a missing (or empty) file has no credentials.
    pub fn load(path: &Path) -> Result<CredentialsFile> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("reading", path)(e)),
        };
        let invalid = |why: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        let doc = if bytes.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&bytes).map_err(|e| invalid(e.to_string()))? {
                Value::Object(m) => m,
                _ => return Err(invalid("not a JSON object".into())),
            }
        };
        if doc.get("auths").is_some_and(|a| !a.is_object()) {
            return Err(invalid("\"auths\" is not an object".into()));
        }
        Ok(CredentialsFile {
            path: path.to_path_buf(),
            doc,
        })
    }

    /// The file this was loaded from (and is saved to).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn auths(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.doc
            .get("auths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    }

    fn decode(&self, key: &str, entry: &Value) -> Result<Option<Credentials>> {
        let bad = || CredentialsError::BadAuth {
            path: self.path.clone(),
            registry: key.to_string(),
        };
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let raw = String::from_utf8(raw).map_err(|_| bad())?;
            let (user, pass) = raw.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: user.to_string(),
                password: pass.to_string(),
            }));
        }
        // The old form: username and password fields.
        match (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            })),
            _ => Ok(None),
        }
    }

    /// The credentials for `registry` (a host\[:port\] or any key form: `docker.io`,
    /// `index.docker.io` and `https://index.docker.io/v1/` all name Docker Hub).
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let want = normalize_registry(registry);
        // The exact key first, then any key naming the same registry.
        let exact = registry_key(registry);
        if let Some(e) = self
            .doc
            .get("auths")
            .and_then(|a| a.get(&exact))
            .filter(|e| e.is_object())
            && let Some(c) = self.decode(&exact, e)?
        {
            return Ok(Some(c));
        }
        for (k, e) in self.auths() {
            if normalize_registry(k) == want
                && let Some(c) = self.decode(k, e)?
            {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Every registry's credentials, keyed as [`crate::Options::credentials`] wants
    /// (`docker.io` for Docker Hub). Entries without usable credentials are left out.
    pub fn all(&self) -> Result<HashMap<String, Credentials>> {
        let mut out = HashMap::new();
        for (k, e) in self.auths() {
            if let Some(c) = self.decode(k, e)? {
                out.entry(normalize_registry(k)).or_insert(c);
            }
        }
        Ok(out)
    }

    /// Set the credentials for `registry` (in memory; [`CredentialsFile::save`] writes them).
    /// Other keys naming the same registry are dropped.
    pub fn set(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        let key = registry_key(registry);
        if key.is_empty() {
            return Err(CredentialsError::BadRegistry(registry.to_string()));
        }
        self.remove(registry);
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = auths {
            let mut entry = Map::new();
            entry.insert("auth".into(), Value::String(auth));
            m.insert(key, Value::Object(entry));
        }
        Ok(())
    }

    /// Forget the credentials for `registry` (every key naming it); whether there were any.
    pub fn remove(&mut self, registry: &str) -> bool {
        let want = normalize_registry(registry);
        let Some(Value::Object(m)) = self.doc.get_mut("auths") else {
            return false;
        };
        let before = m.len();
        m.retain(|k, _| normalize_registry(k) != want);
        before != m.len()
    }

    /// Write the file: every key as loaded, the credentials as set; atomically (temporary
    /// file, fsync, rename), mode 0600. The directory is made (mode 0700) if missing; a
    /// symbolic link at the path is followed, so the file it points to is replaced.
    pub fn save(&self) -> Result<()> {
        let mut path = self.path.clone();
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            path = fs::canonicalize(&path).map_err(io_err("resolving", &self.path))?;
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err("creating", &dir))?;
        }
        let mut bytes =
            serde_json::to_vec_pretty(&Value::Object(self.doc.clone())).map_err(|e| {
                CredentialsError::Invalid {
                    path: path.clone(),
                    why: e.to_string(),
                }
            })?;
        bytes.push(b'\n');
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.json".into());
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err("creating", &tmp))?;
            // The umask cannot widen 0600, but a narrower one would be kept: set it exactly.
            f.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io_err("setting the mode of", &tmp))?;
            f.write_all(&bytes).map_err(io_err("writing", &tmp))?;
            f.sync_all().map_err(io_err("syncing", &tmp))?;
            fs::rename(&tmp, &path).map_err(io_err("replacing", &path))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The credentials in the file at `path`, keyed as [`crate::Options::credentials`] wants
/// (a missing file has none).
pub fn load(path: &Path) -> Result<HashMap<String, Credentials>> {
    CredentialsFile::load(path)?.all()
}

/// The credentials for `registry` in the file at `path`, if any.
pub fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    CredentialsFile::load(path)?.get(registry)
}

/// Store the credentials for `registry` in the file at `path` (`berth login`), keeping the
/// rest of the file.
pub fn store(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut f = CredentialsFile::load(path)?;
    f.set(registry, creds)?;
    f.save()
}

/// Remove the credentials for `registry` from the file at `path` (`berth logout`); whether
/// there were any. The file is only rewritten if something was removed.
pub fn erase(path: &Path, registry: &str) -> Result<bool> {
    let mut f = CredentialsFile::load(path)?;
    let removed = f.remove(registry);
    if removed {
        f.save()?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_normalise() {
        assert_eq!(normalize_registry(DOCKER_HUB_KEY), "docker.io");
        assert_eq!(normalize_registry("index.docker.io"), "docker.io");
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_registry("docker.io"), "docker.io");
        assert_eq!(
            normalize_registry("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(registry_key("Quay.io"), "quay.io");
    }

    #[test]
    fn entries_decode_in_both_forms_and_bad_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        fs::write(
            &p,
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dTpwOnc="},
                "old.example": {"username": "a", "password": "b"},
                "token.example": {"identitytoken": "x"},
                "bad.example": {"auth": "!!!"}
            }}"#,
        )
        .unwrap();
        let f = CredentialsFile::load(&p).unwrap();
        let hub = f.get("docker.io").unwrap().unwrap();
        // A password may hold ':'.
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u", "p:w"));
        assert_eq!(f.get("old.example").unwrap().unwrap().password, "b");
        assert_eq!(f.get("token.example").unwrap(), None);
        assert_eq!(f.get("nowhere.example").unwrap(), None);
        assert!(matches!(
            f.get("bad.example"),
            Err(CredentialsError::BadAuth { .. })
        ));
        fs::write(&p, "[1]").unwrap();
        assert!(matches!(
            CredentialsFile::load(&p),
            Err(CredentialsError::Invalid { .. })
        ));
        fs::write(&p, "{not json").unwrap();
        assert!(matches!(
            CredentialsFile::load(&p),
            Err(CredentialsError::Invalid { .. })
        ));
    }
}
