//! Sizes as Docker's command line takes them (`--memory 512m`, `--shm-size 1g`): a number
//! with an optional binary unit, parsed exactly, as integers. (Parsing the number as a float
//! would take `nan`, `inf`, `1e9` and lose precision.)

use std::fmt;

/// A size that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSize(pub String);

impl fmt::Display for InvalidSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid size {:?}: want a number with an optional unit (b, k, m, g, t, p), e.g. 512m",
            self.0
        )
    }
}

impl std::error::Error for InvalidSize {}

/// Bytes in `s`: digits, optionally a fraction (`1.5g`), then optionally a binary unit `k`,
/// `m`, `g`, `t` or `p` (any case, optionally followed by `i` and/or `b`, so `512MiB`, `512mb`
/// and `512m` are the same), as Docker's `RAMInBytes`. A fraction of a byte is dropped.
/// Negative values, and values beyond `i64::MAX`, are refused.
pub fn ram_in_bytes(s: &str) -> Result<i64, InvalidSize> {
    let bad = || InvalidSize(s.to_string());
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let mut bytes = whole.checked_shl(shift).ok_or_else(bad)?;
    if !frac.is_empty() {
        // frac / 10^len of the unit, truncated; 19 digits are more than any unit needs.
        let digits = &frac[..frac.len().min(19)];
        let f: u128 = digits.parse().map_err(|_| bad())?;
        bytes += (f << shift) / 10u128.pow(digits.len() as u32);
    }
    i64::try_from(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::ram_in_bytes as b;

    #[test]
    fn sizes_parse_exactly() {
        assert_eq!(b("100").unwrap(), 100);
        assert_eq!(b("512m").unwrap(), 512 << 20);
        assert_eq!(b("512MiB").unwrap(), 512 << 20);
        assert_eq!(b("512 mb").unwrap(), 512 << 20);
        assert_eq!(b("1G").unwrap(), 1 << 30);
        assert_eq!(b("1.5g").unwrap(), 3 << 29);
        assert_eq!(b("4k").unwrap(), 4096);
        assert_eq!(b("2b").unwrap(), 2);
        assert_eq!(b("8191p").unwrap(), 8191 << 50);
        for bad in [
            "",
            "nan",
            "inf",
            "-inf",
            "NaN",
            "1e9",
            "-1",
            "-5m",
            "1.",
            ".5",
            "1.2.3",
            "12x",
            "m",
            "8192p",
            "99999999999999999999",
            "1 2",
        ] {
            assert!(b(bad).is_err(), "{bad:?}");
        }
        assert!(b("nan").unwrap_err().to_string().contains("\"nan\""));
    }
}
