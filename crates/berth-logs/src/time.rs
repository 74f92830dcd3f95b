//! RFC 3339 times as Docker writes and reads them, by hand (the writer links no formatting
//! or date crate).
//!
//! Docker writes the `time` of an entry with Go's `time.RFC3339Nano` in UTC: trailing zeros
//! of the fraction are dropped, and so is the fraction when it is zero
//! (`2026-12-04T21:03:58.1234Z`, `2026-12-04T21:03:58Z`). `docker logs -t` prints the fixed
//! form with nine digits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds and nanoseconds since the epoch (negative seconds before 1970).
fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day in 1..=31 and month in 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn push_num(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while v > 0 && i > 0 {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(digits.len() - width.min(digits.len()));
    out.extend_from_slice(&digits[start..]);
}

/// Appends `t` in UTC as RFC 3339 with nanoseconds: Go's `RFC3339Nano` (trailing zeros of
/// the fraction dropped) unless `fixed`, then always nine digits (Docker's
/// `RFC3339NanoFixed`, what `docker logs -t` prints).
pub(crate) fn push_rfc3339(out: &mut Vec<u8>, t: SystemTime, fixed: bool) {
    let (secs, nanos) = split(t);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u64;
    // Years outside 0..=9999 do not occur for a clock that works; keep the output valid.
    push_num(out, year.clamp(0, 9999) as u64, 4);
    out.push(b'-');
    push_num(out, u64::from(month), 2);
    out.push(b'-');
    push_num(out, u64::from(day), 2);
    out.push(b'T');
    push_num(out, sod / 3600, 2);
    out.push(b':');
    push_num(out, sod / 60 % 60, 2);
    out.push(b':');
    push_num(out, sod % 60, 2);
    if fixed || nanos != 0 {
        let mut frac = Vec::with_capacity(9);
        push_num(&mut frac, u64::from(nanos), 9);
        let keep = if fixed {
            9
        } else {
            frac.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1)
        };
        out.push(b'.');
        out.extend_from_slice(&frac[..keep]);
    }
    out.push(b'Z');
}

/// `t` as Go's `RFC3339Nano` in UTC, as the json-file driver writes it.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(30);
    push_rfc3339(&mut out, t, false);
    // Only ASCII digits and punctuation were pushed.
    String::from_utf8_lossy(&out).into_owned()
}

/// `t` in UTC with nine digits of fraction (`2026-12-04T21:03:58.120000000Z`): Docker's
/// `RFC3339NanoFixed`, the prefix `docker logs --timestamps` prints.
pub fn rfc3339_nano_fixed(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(30);
    push_rfc3339(&mut out, t, true);
    String::from_utf8_lossy(&out).into_owned()
}

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |v, &d| v * 10 + u64::from(d - b'0')))
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, any number of fraction
/// digits, nanoseconds kept). `None` for anything else, or a date that does not exist.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])? as u32;
    let day = digits(&b[8..10])? as u32;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let month_len = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day > month_len {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos: u64 = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|d| d.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, d) in frac[..n].iter().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + u64::from(d - b'0');
            }
        }
        for _ in n..9 {
            nanos *= 10;
        }
        rest = &frac[n..];
    }
    let offset: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])? as i64;
            let m = digits(&[*m1, *m2])? as i64;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400
        + (hour * 3600 + minute * 60 + second) as i64
        - offset;
    let nanos = Duration::from_nanos(nanos);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64) + nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn formats_as_go_rfc3339nano() {
        // Figures from Go: time.Unix(s, n).UTC().Format(time.RFC3339Nano).
        assert_eq!(rfc3339_nano(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(at(1_432_897_262, 3)),
            "2015-05-29T11:01:02.000000003Z"
        );
        assert_eq!(
            rfc3339_nano(at(1_796_418_238, 123_456_789)),
            "2026-12-04T21:03:58.123456789Z"
        );
        assert_eq!(
            rfc3339_nano(at(1_796_418_238, 120_000_000)),
            "2026-12-04T21:03:58.12Z"
        );
        assert_eq!(
            rfc3339_nano(at(951_782_400, 500)),
            "2000-02-29T00:00:00.0000005Z"
        );
        assert_eq!(
            rfc3339_nano(at(4_107_542_399, 999_999_999)),
            "2100-02-28T23:59:59.999999999Z"
        );
        assert_eq!(
            rfc3339_nano_fixed(at(1_796_418_238, 120_000_000)),
            "2026-12-04T21:03:58.120000000Z"
        );
        assert_eq!(
            rfc3339_nano_fixed(at(0, 0)),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for (s, n) in [
            (0, 0),
            (1_796_418_238, 123_456_789),
            (951_782_400, 500),
            (4_107_542_399, 1),
        ] {
            let t = at(s, n);
            assert_eq!(parse_rfc3339(&rfc3339_nano(t)), Some(t));
            assert_eq!(parse_rfc3339(&rfc3339_nano_fixed(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-12-04T22:03:58.5+01:00"),
            Some(at(1_796_418_238, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-12-04T20:33:58-00:30"),
            Some(at(1_796_418_238, 0))
        );
        assert_eq!(
            parse_rfc3339("2026-12-04T21:03:58.1234567891234Z"),
            Some(at(1_796_418_238, 123_456_789))
        );
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59.5Z"),
            UNIX_EPOCH.checked_sub(Duration::from_millis(500))
        );
        for bad in [
            "",
            "2026-12-04",
            "2026-12-04T21:03:58",
            "2026-12-04T21:03:58.Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T21:03:58+0100",
            "2026-12-04T21:03:58Zjunk",
            "２026-12-04T21:03:58Z",
            "+026-12-04T21:03:58Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
