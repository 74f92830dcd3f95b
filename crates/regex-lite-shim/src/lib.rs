//! `regex`'s API as oci-spec uses it, served by `regex-lite` (same author, same syntax without
//! Unicode classes, a fraction of the code).
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
}
