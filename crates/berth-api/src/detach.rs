//! Docker's detach keys, shared by the daemon (which watches a terminal's stdin on attach and
//! exec, as dockerd does) and berth's CLI (which watches its own terminal).

/// Docker's default detach keys.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// Detach keys as Docker writes them (`ctrl-p,ctrl-q`, `a,ctrl-@`): each a single character,
/// or `ctrl-` (any case) and one of `a`–`z`, `@`, `[`, `\`, `]`, `^`, `_`. The error names
/// the key Docker's would name.
pub fn parse(spec: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in spec.split(',') {
        if let [c] = key.as_bytes() {
            out.push(*c);
            continue;
        }
        let lower = key.to_ascii_lowercase();
        let code = match lower.strip_prefix("ctrl-").map(str::as_bytes) {
            Some([c @ b'a'..=b'z']) => c - b'a' + 1,
            Some([b'@']) => 0,
            Some([b'[']) => 27,
            Some([b'\\']) => 28,
            Some([b']']) => 29,
            Some([b'^']) => 30,
            Some([b'_']) => 31,
            _ => return Err(format!("Unknown character: '{key}'")),
        };
        out.push(code);
    }
    Ok(out)
}

/// Watches a stream of input for the key sequence. What could be the start of the sequence is
/// held back until it is clear it is not (then passed on whole); the sequence itself is never
/// passed on.
#[derive(Debug, Clone)]
pub struct Matcher {
    keys: Vec<u8>,
    matched: usize,
}

impl Matcher {
    /// A matcher of `keys` (not empty).
    pub fn new(keys: Vec<u8>) -> Matcher {
        Matcher { keys, matched: 0 }
    }

    /// Feed `input`; what is to be passed on is appended to `out`. True when the sequence is
    /// complete (the rest of `input` is dropped, as the connection ends).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        false
    }

    /// What is held back (at the end of the input, it is passed on).
    pub fn pending(&self) -> &[u8] {
        &self.keys[..self.matched]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_docker_reads_them() {
        assert_eq!(parse(DEFAULT).unwrap(), vec![16, 17]);
        assert_eq!(parse("a,ctrl-@,CTRL-\\").unwrap(), vec![b'a', 0, 28]);
        for bad in ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,,x", " ctrl-p"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse("ctrl-p,zz").unwrap_err(), "Unknown character: 'zz'");
    }

    #[test]
    fn the_sequence_is_held_back_and_never_passed_on() {
        let run = |chunks: &[&[u8]]| {
            let mut m = Matcher::new(vec![16, 17]);
            let mut out = Vec::new();
            for c in chunks {
                if m.feed(c, &mut out) {
                    return (true, out);
                }
            }
            out.extend_from_slice(m.pending());
            (false, out)
        };
        assert_eq!(run(&[b"ab\x10\x11cd"]), (true, b"ab".to_vec()));
        assert_eq!(run(&[b"ab\x10", b"\x11"]), (true, b"ab".to_vec()));
        assert_eq!(run(&[b"a\x10b"]), (false, b"a\x10b".to_vec()));
        assert_eq!(run(&[b"\x10\x10\x11"]), (true, b"\x10".to_vec()));
        assert_eq!(run(&[b"x\x10"]), (false, b"x\x10".to_vec()));
    }
}
