//! Platforms (`os/arch[/variant]`) over oci-spec's [`Platform`]: parsing, the host's (Go's
//! architecture names, as images spell them), matching an index entry, and the short form.

use oci_spec::image::{Arch, Os, Platform};

/// What berth does with a [`Platform`].
pub trait PlatformExt: Sized {
    /// Parse `os/arch[/variant]` (`linux/arm64/v8`); `None` for anything else.
    fn parse(s: &str) -> Option<Self>;
    /// The platform berth runs on (Linux, the architecture by Go's name: `amd64`, `arm64`…).
    fn host() -> Self;
    /// Whether an image for `other` is one for `self`: same OS and architecture, and the
    /// same variant unless `self` names none.
    fn matches(&self, other: &Platform) -> bool;
    /// `os/arch[/variant]`.
    fn format(&self) -> String;
}

/// `os/arch[/variant]` as a platform.
fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    let mut p = Platform::default();
    p.set_os(Os::from(os))
        .set_architecture(Arch::from(arch))
        .set_variant(variant.map(str::to_string));
    p
}

impl PlatformExt for Platform {
    fn parse(s: &str) -> Option<Platform> {
        let mut it = s.split('/');
        let os = it.next().filter(|s| !s.is_empty())?;
        let arch = it.next().filter(|s| !s.is_empty())?;
        let variant = match it.next() {
            Some("") => return None,
            v => v,
        };
        it.next().is_none().then(|| platform(os, arch, variant))
    }

    fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        platform("linux", arch, None)
    }

    fn matches(&self, other: &Platform) -> bool {
        self.os() == other.os()
            && self.architecture() == other.architecture()
            && (self.variant().is_none() || self.variant() == other.variant())
    }

    fn format(&self) -> String {
        let mut s = format!("{}/{}", self.os(), self.architecture());
        if let Some(v) = self.variant() {
            s.push('/');
            s.push_str(v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_match_and_print() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.format(), "linux/arm64/v8");
        assert_eq!(*p.architecture(), Arch::ARM64);
        for bad in ["linux", "linux/", "/amd64", "linux/amd64/", "a/b/c/d"] {
            assert!(Platform::parse(bad).is_none(), "{bad}");
        }
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert!(amd64.matches(&Platform::parse("linux/amd64").unwrap()));
        assert!(!Platform::parse("linux/arm64").unwrap().matches(&amd64));
        // No variant asked: any variant does; one asked: only that one.
        assert!(
            Platform::parse("linux/arm64")
                .unwrap()
                .matches(&Platform::parse("linux/arm64/v8").unwrap())
        );
        assert!(
            !Platform::parse("linux/arm/v7")
                .unwrap()
                .matches(&Platform::parse("linux/arm/v6").unwrap())
        );
        // An index entry's platform, as JSON.
        let entry: Platform =
            serde_json::from_str(r#"{"os":"linux","architecture":"amd64"}"#).unwrap();
        assert!(amd64.matches(&entry));
        let host = Platform::host();
        assert_eq!(*host.os(), Os::Linux);
        assert!(
            !matches!(host.architecture(), Arch::Other(_)),
            "{}",
            host.format()
        );
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.format(), "linux/amd64");
        }
    }
}
