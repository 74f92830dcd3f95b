//! `regex`'s API as oci-spec and prost-build use it, served by `regex-lite` (same author, same
//! syntax without Unicode classes, a fraction of the code).
pub use regex_lite::{Captures, Error, Regex, RegexBuilder};

#[cfg(test)]
mod tests {
    #[test]
    fn the_pattern_oci_spec_uses() {
        let re = super::Regex::new(r"^(\d+(-\d+)?)(,\d+(-\d+)?)*$").unwrap();
        for ok in ["0", "0-3", "0-1,4,6-7"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["", "a", "1-", ",1", "1,,2", "١"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn the_patterns_prost_build_uses() {
        // prost-build's doc-comment sanitizer (ast.rs): URLs into <…>, brackets escaped.
        let url = super::Regex::new(r"https?://[^\s)]+").unwrap();
        let brackets = super::Regex::new(r"(^|[^\]\\])\[(([^\]]*[^\\])?)\]([^(\[]|$)").unwrap();
        let s = url.replace_all("see https://k8s.io/docs now", r"<$0>");
        assert_eq!(s, "see <https://k8s.io/docs> now");
        let s = brackets.replace_all("a [b] c", r"$1\[$2\]$4");
        assert_eq!(s, r"a \[b\] c");
    }
}
