//! The JSON-array forms of `RUN`, `CMD`, `COPY`, `SHELL`, …: a strict JSON validator (as Go's
//! `encoding/json` is strict) that also extracts the top-level array's string elements.

/// How an argument text reads as a JSON array.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonArray {
    /// Not JSON, or not an array: the instruction takes its other (shell/words) form.
    NotJson,
    /// A valid JSON array with an element that is not a string: an error in BuildKit.
    NotStrings,
    /// A valid JSON array of strings.
    Strings(Vec<String>),
}

/// The nesting limit of Go's decoder; deeper input is invalid JSON there too.
const MAX_DEPTH: usize = 10_000;

/// Reads `text` (leading whitespace allowed) as a JSON array of strings.
pub(crate) fn parse_array(text: &str) -> JsonArray {
    let t = text.trim_start();
    if !t.starts_with('[') {
        return JsonArray::NotJson;
    }
    let mut p = P {
        b: t.as_bytes(),
        i: 1,
    };
    let mut out = Vec::new();
    let mut all_strings = true;
    p.ws();
    if p.peek() == Some(b']') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            if p.peek() == Some(b'"') {
                match p.string() {
                    Some(s) => out.push(s),
                    None => return JsonArray::NotJson,
                }
            } else {
                all_strings = false;
                if p.skip_value().is_none() {
                    return JsonArray::NotJson;
                }
            }
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b']') => {
                    p.i += 1;
                    break;
                }
                _ => return JsonArray::NotJson,
            }
        }
    }
    p.ws();
    if p.i != p.b.len() {
        return JsonArray::NotJson;
    }
    if all_strings {
        JsonArray::Strings(out)
    } else {
        JsonArray::NotStrings
    }
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let s = std::str::from_utf8(h).ok()?;
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(s, 16).ok()
    }

    /// A string starting at `"`, decoded (bad surrogates become U+FFFD, as in Go).
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = Vec::<u8>::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let u = self.hex4()?;
                            if (0xD800..0xDC00).contains(&u) {
                                // A high surrogate: valid only followed by `\u` low surrogate.
                                let save = self.i;
                                let low = if self.b[self.i..].starts_with(b"\\u") {
                                    self.i += 2;
                                    self.hex4()
                                } else {
                                    None
                                };
                                match low {
                                    Some(l) if (0xDC00..0xE000).contains(&l) => {
                                        let cp = 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00);
                                        char::from_u32(cp).unwrap_or('\u{fffd}')
                                    }
                                    _ => {
                                        self.i = save;
                                        '\u{fffd}'
                                    }
                                }
                            } else {
                                char::from_u32(u).unwrap_or('\u{fffd}')
                            }
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        Some(())
    }

    /// An object key and its colon.
    fn key(&mut self) -> Option<()> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.ws();
        (self.peek() == Some(b':')).then(|| self.i += 1)
    }

    /// Validates one value of any type, iteratively (no recursion on nesting).
    fn skip_value(&mut self) -> Option<()> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            self.ws();
            match self.peek()? {
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(b'{');
                        self.key()?;
                        if stack.len() >= MAX_DEPTH {
                            return None;
                        }
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(b'[');
                        if stack.len() >= MAX_DEPTH {
                            return None;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.lit(b"true")?,
                b'f' => self.lit(b"false")?,
                b'n' => self.lit(b"null")?,
                _ => self.number()?,
            }
            // A value is complete: close finished containers or move to the next element.
            loop {
                let Some(&top) = stack.last() else {
                    return Some(());
                };
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if top == b'{' {
                            self.key()?;
                        }
                        break;
                    }
                    b']' if top == b'[' => {
                        self.i += 1;
                        stack.pop();
                    }
                    b'}' if top == b'{' => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> JsonArray {
        JsonArray::Strings(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn arrays() {
        assert_eq!(parse_array(r#"["a", "b c"]"#), strings(&["a", "b c"]));
        assert_eq!(parse_array(r#"  [ ]  "#), strings(&[]));
        assert_eq!(
            parse_array(r#"["\u00e9\n\"\\/", "\ud83d\ude00"]"#),
            strings(&["é\n\"\\/", "😀"])
        );
        assert_eq!(parse_array(r#"["\ud800"]"#), strings(&["\u{fffd}"]));
        assert_eq!(parse_array(r#"["a", 1]"#), JsonArray::NotStrings);
        assert_eq!(
            parse_array(r#"[["a"], {"k": [1, true, null, -0.5e3]}]"#),
            JsonArray::NotStrings
        );
        for bad in [
            "echo hi",
            "[",
            "[\"a\"",
            "[\"a\",]",
            "['a']",
            "[\"a\"] x",
            "[01]",
            "[1.]",
            "[\"\t\"]",
            "[{\"a\"}]",
            "[{1:2}]",
            "[tru]",
            "[\"\\x\"]",
            "{}",
            "[-]",
            "[1e]",
        ] {
            assert_eq!(parse_array(bad), JsonArray::NotJson, "{bad}");
        }
    }

    #[test]
    fn deep_nesting() {
        let deep = "[".repeat(20_000) + &"]".repeat(20_000);
        assert_eq!(parse_array(&deep), JsonArray::NotJson);
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(parse_array(&ok), JsonArray::NotStrings);
    }
}
