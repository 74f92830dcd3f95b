//! Image references as Docker reads them: `busybox`, `docker.io/library/busybox:1.36`,
//! `localhost:5000/a/b@sha256:…`.
//!
//! The first path component is a registry when it has a `.` or a `:` or is `localhost`;
//! otherwise the registry is Docker Hub (`docker.io`), where a one-component name lives under
//! `library/`. A reference with neither tag nor digest means `:latest`.

use berth_store::Digest;

/// The registry names Docker Hub goes by.
pub const DOCKER_HUB: &str = "docker.io";

/// Why a reference cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    /// The string breaks the reference grammar.
    #[error("invalid reference format {reference:?}: {why}")]
    Invalid {
        /// The reference as given.
        reference: String,
        /// What is wrong.
        why: String,
    },
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port): `docker.io`, `localhost:5000`, `quay.io`.
    pub registry: String,
    /// Repository path within the registry: `library/busybox`, `a/b`.
    pub repository: String,
    /// The tag, if one was given (see [`Reference::tag_or_latest`]).
    pub tag: Option<String>,
    /// The digest, if one was given.
    pub digest: Option<Digest>,
}

fn component_ok(c: &str) -> bool {
    // [a-z0-9]+ joined by one '.', one or two '_', or any number of '-'.
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || start == i {
            return false;
        }
    }
    true
}

fn tag_ok(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn domain_ok(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    let host_ok = if host.starts_with('[') && host.ends_with(']') {
        host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    host_ok
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|x| x.is_ascii_digit()))
}

impl Reference {
    /// Parse a reference, normalising Docker Hub names.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |why: &str| ReferenceError::Invalid {
            reference: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > 4096 {
            return Err(bad("too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    Digest::parse(d)
                        .map_err(|_| bad("the digest is not sha256:<64 hex digits>"))?,
                ),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !tag_ok(t)
        {
            return Err(bad(
                "the tag may hold letters, digits, '_', '.' and '-' (128 at most)",
            ));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !domain_ok(first) {
                    return Err(bad("the registry is not a valid host[:port]"));
                }
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        if !path.split('/').all(component_ok) {
            return Err(bad(
                "each part of the repository name is lowercase letters and digits, joined by '.', '_', '__' or '-'",
            ));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The tag, `latest` when neither a tag nor a digest was given.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest if given, else the tag.
    pub fn manifest_ref(&self) -> String {
        match &self.digest {
            Some(d) => d.to_string(),
            None => self.tag_or_latest().unwrap_or("latest").to_string(),
        }
    }

    /// The host serving the registry API (Docker Hub's API lives at registry-1.docker.io).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// The short form Docker shows: `busybox:latest`, `user/app:1`, `localhost:5000/a:b`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The repository's short form, without tag or digest: `busybox`, `localhost:5000/a`
    /// (the REPOSITORY column of `docker images`).
    ///
    /// A Docker Hub repository whose first component would read as a registry
    /// (`docker.io/a.b/c`, `docker.io/localhost/x`) keeps its `docker.io/`, so the short
    /// form always reads back as the same image.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            let short = self
                .repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository);
            let first = short.split('/').next().unwrap_or_default();
            let looks_like_registry = short.contains('/')
                && (first.contains('.') || first.contains(':') || first == "localhost");
            if looks_like_registry {
                format!("{DOCKER_HUB}/{}", self.repository)
            } else {
                short.to_string()
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = self.tag_or_latest() {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl std::fmt::Display for Reference {
    /// The full form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = format!("{}/{}", self.registry, self.repository);
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn familiar_forms_read_back_as_the_same_image() {
        for (full, short) in [
            ("docker.io/library/busybox:latest", "busybox:latest"),
            ("docker.io/team/app:1", "team/app:1"),
            ("docker.io/library/a/b:1", "library/a/b:1"),
            ("docker.io/a.b/c:1", "docker.io/a.b/c:1"),
            ("docker.io/localhost/x:1", "docker.io/localhost/x:1"),
            ("localhost:5000/x:1", "localhost:5000/x:1"),
        ] {
            let r = Reference::parse(full).unwrap();
            assert_eq!(r.familiar(), short);
            assert_eq!(Reference::parse(short).unwrap(), r, "{short}");
        }
    }
    use super::*;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn docker_hub_names_are_normalised() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", None)
        );
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(
            Reference::parse("docker.io/library/busybox:1.36")
                .unwrap()
                .familiar(),
            "busybox:1.36"
        );
        assert_eq!(
            Reference::parse("index.docker.io/user/app")
                .unwrap()
                .to_string(),
            "docker.io/user/app:latest"
        );
        assert_eq!(
            Reference::parse("user/app:v1").unwrap().familiar(),
            "user/app:v1"
        );
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        let r = Reference::parse(&format!("localhost:5000/a/b@{D}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "a/b")
        );
        assert_eq!(r.tag_or_latest(), None);
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("localhost:5000/a/b@{D}"));
        let r = Reference::parse(&format!("quay.io/org/x:1.0@{D}")).unwrap();
        assert_eq!(
            (r.tag.as_deref(), r.manifest_ref()),
            (Some("1.0"), D.to_string())
        );
        let r = Reference::parse("127.0.0.1:5000/img:tag").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.manifest_ref()),
            ("127.0.0.1:5000", "img", "tag".into())
        );
        let r = Reference::parse("localhost/img").unwrap();
        assert_eq!(r.registry, "localhost");
        let r = Reference::parse("[::1]:5000/img").unwrap();
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(
            Reference::parse("a__b/c-d--e/f.g:x").unwrap().repository,
            "a__b/c-d--e/f.g"
        );
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/b/",
            "-a",
            "a..b",
            "a___b",
            "busybox@sha256:short",
            "busybox@md5:abc",
            "host:port/x",
            ":tag",
            "bad host.io/x",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid reference format"),
                "{bad}: {e}"
            );
        }
    }
}
