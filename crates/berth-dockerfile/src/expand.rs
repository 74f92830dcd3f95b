//! Word expansion the way BuildKit's shell lexer (`shell.Lex`) does it: quote removal, the
//! escape character, `$VAR`, `${VAR}` and the `${VAR<op>word}` modifiers.
//!
//! The same engine also serves the parser itself: heredoc markers are found by lexing the
//! instruction line with raw quotes and raw escapes kept, and unset variables left as written.

use crate::Error;

/// Looks a variable up by name.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands `word` as BuildKit's `ProcessWord` does: quotes are removed, the escape character
/// escapes the next character, and `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`,
/// `${VAR%pat}`, `${VAR%%pat}`, `${VAR/pat/repl}` and `${VAR//pat/repl}` are substituted.
/// Unknown variables expand to the empty string. Whitespace is kept.
///
/// # Errors
/// Unterminated quotes or `${`, bad substitutions, and `${VAR:?msg}` on an unset (or empty)
/// variable, worded as BuildKit words them (`failed to process "…": …`).
pub fn expand(word: &str, escape: char, vars: Vars<'_>) -> Result<String, Error> {
    let lex = Lexer::new(escape);
    lex.process(word, vars).map(|(s, _)| s)
}

/// Expands `word` as [`expand`] does and then splits the result into words on unquoted
/// whitespace, as BuildKit's `ProcessWords` does (whitespace coming from a variable's value
/// splits too; quoted whitespace does not).
///
/// # Errors
/// As [`expand`].
pub fn expand_words(word: &str, escape: char, vars: Vars<'_>) -> Result<Vec<String>, Error> {
    let lex = Lexer::new(escape);
    lex.process(word, vars).map(|(_, w)| w)
}

/// The names of the variables `word` refers to, in the order the lexer looks them up (a
/// modifier's word is read before its variable), without duplicates (e.g. `${A:-$B}c$D`
/// gives `B`, `A`, `D`). Quoted `'$X'` and escaped `\$X`
/// are not references. Positional and special parameters (`$1`, `$@`, …) are included as
/// written. A word with a syntax error gives the names found before the error.
pub fn referenced_vars(word: &str, escape: char) -> Vec<String> {
    let seen = std::cell::RefCell::new(Vec::<String>::new());
    let record = |name: &str| {
        let mut s = seen.borrow_mut();
        if !s.iter().any(|n| n == name) {
            s.push(name.to_string());
        }
        None
    };
    let lex = Lexer {
        skip_unset: true,
        ..Lexer::new(escape)
    };
    let _ = lex.process(word, &record);
    seen.into_inner()
}

/// The lexer's settings (BuildKit's `Lex` fields).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
}

impl Lexer {
    pub(crate) fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }

    /// Processes `word`, giving the joined result and the split words.
    pub(crate) fn process(
        &self,
        word: &str,
        vars: Vars<'_>,
    ) -> Result<(String, Vec<String>), Error> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            vars,
            raw_escapes: self.raw_escapes,
            depth: 0,
        };
        sw.process_stop_on(None, self.raw_escapes)
            .map_err(|message| Error::Expand {
                word: word.to_string(),
                message,
            })
    }
}

/// Nesting limit of `${…}` inside `${…}`, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 200;

struct ShellWord<'a> {
    lex: Lexer,
    chars: Vec<char>,
    pos: usize,
    vars: Vars<'a>,
    raw_escapes: bool,
    depth: usize,
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

type Res<T> = Result<T, String>;

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '"' => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                _ => {
                    self.next();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        let Some(esc) = self.next() else { break };
                        words.add_raw_char(esc);
                        result.push(esc);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(mut ch) => {
                    self.next();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                                self.next();
                                ch = n;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        (self.vars)(name)
    }

    fn process_dollar(&mut self) -> Res<String> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        if self.depth >= MAX_DEPTH {
            return Err("syntax error: substitution nested too deeply".into());
        }
        self.depth += 1;
        let r = self.process_braced();
        self.depth -= 1;
        r
    }

    fn process_braced(&mut self) -> Res<String> {
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut chs = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if ch == ':' {
                    null_is_unset = true;
                    let Some(n) = self.next() else {
                        return Err("syntax error: missing '}'".into());
                    };
                    ch = n;
                    chs.push(ch);
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.lookup(&name);
                if self.lex.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                match ch {
                    '-' => Ok(if !set || (null_is_unset && value.is_empty()) {
                        word
                    } else {
                        value
                    }),
                    '+' => Ok(if !set || (null_is_unset && value.is_empty()) {
                        String::new()
                    } else {
                        word
                    }),
                    '?' => {
                        if !set {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        if null_is_unset && value.is_empty() {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        Ok(value)
                    }
                    '%' | '#' => {
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let toks = compile_pattern(&pat)
                            .map_err(|e| format!("invalid pattern ({pat}) in substitution: {e}"))?;
                        let v: Vec<char> = value.chars().collect();
                        if ch == '#' {
                            Ok(trim_prefix(&toks, &v, greedy))
                        } else {
                            Ok(trim_suffix(&toks, &v, greedy))
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '/' in ${}".into());
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.lookup(&name);
                if self.lex.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let toks = compile_pattern(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(replace(&toks, &value, &replacement, all))
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut result = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            result.push(c);
            self.next();
        }
        result
    }
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// A piece of a `${VAR#pattern}`-style shell pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PatTok {
    Lit(char),
    Any,
    Star,
}

/// Compiles a shell pattern (`*`, `?`, `\` escapes; no bracket expressions), as BuildKit's
/// `convertShellPatternToRegex` accepts it.
fn compile_pattern(p: &str) -> Result<Vec<PatTok>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            // `**` is `*`; collapsing keeps matching cheap.
            '*' if out.last() == Some(&PatTok::Star) => {}
            '*' => out.push(PatTok::Star),
            '?' => out.push(PatTok::Any),
            '\\' => match chars.get(i) {
                // `}` and `/` are escaped only to get them through `${}` parsing.
                Some('}' | '/') => {}
                Some(&n @ ('*' | '?' | '\\')) => {
                    out.push(PatTok::Lit(n));
                    i += 1;
                }
                Some(&n) => return Err(format!("invalid escape '\\{n}'")),
                None => return Err("invalid escape '\\'".into()),
            },
            c => out.push(PatTok::Lit(c)),
        }
    }
    Ok(out)
}

/// For every `e` in `0..=v.len()`, whether `toks` matches all of `v[..e]` (an NFA walk over
/// the pattern positions, so no backtracking blow-up).
fn match_ends(toks: &[PatTok], v: &[char]) -> Vec<bool> {
    let m = toks.len();
    let closure = |set: &mut Vec<bool>| {
        for i in 0..m {
            if set[i] && toks[i] == PatTok::Star {
                set[i + 1] = true;
            }
        }
    };
    let mut cur = vec![false; m + 1];
    cur[0] = true;
    closure(&mut cur);
    let mut ends = Vec::with_capacity(v.len() + 1);
    ends.push(cur[m]);
    for &c in v {
        let mut next = vec![false; m + 1];
        for i in 0..m {
            if !cur[i] {
                continue;
            }
            match toks[i] {
                PatTok::Star => next[i] = true,
                PatTok::Any => next[i + 1] = true,
                PatTok::Lit(l) if l == c => next[i + 1] = true,
                PatTok::Lit(_) => {}
            }
        }
        closure(&mut next);
        ends.push(next[m]);
        if !next.iter().any(|b| *b) {
            ends.resize(v.len() + 1, false);
            break;
        }
        cur = next;
    }
    ends
}

/// Upper bound of pattern work (value length times pattern length) on one value, to keep
/// hostile input cheap; beyond it the value is left unchanged.
const MAX_PATTERN_WORK: usize = 20_000_000;

fn too_big(toks: &[PatTok], v: &[char]) -> bool {
    v.len().saturating_mul(toks.len() + 1) > MAX_PATTERN_WORK
}

/// The end of the shortest (or, greedy, longest) match of `toks` anchored at the start of `v`.
fn prefix_end(toks: &[PatTok], v: &[char], greedy: bool) -> Option<usize> {
    let ends = match_ends(toks, v);
    if greedy {
        ends.iter().rposition(|b| *b)
    } else {
        ends.iter().position(|b| *b)
    }
}

fn trim_prefix(toks: &[PatTok], v: &[char], greedy: bool) -> String {
    if too_big(toks, v) {
        return v.iter().collect();
    }
    match prefix_end(toks, v, greedy) {
        Some(e) => v[e..].iter().collect(),
        None => v.iter().collect(),
    }
}

fn trim_suffix(toks: &[PatTok], v: &[char], greedy: bool) -> String {
    if too_big(toks, v) {
        return v.iter().collect();
    }
    // A rightmost shortest match is a leftmost shortest match of the reversed pattern on
    // the reversed value.
    let rt: Vec<PatTok> = toks.iter().rev().copied().collect();
    let rv: Vec<char> = v.iter().rev().copied().collect();
    match prefix_end(&rt, &rv, greedy) {
        Some(e) => v[..v.len() - e].iter().collect(),
        None => v.iter().collect(),
    }
}

/// The leftmost match starting at or after `from`, longest at that start (greedy wildcards):
/// one NFA pass where each thread remembers where it started.
fn find_match(toks: &[PatTok], v: &[char], from: usize) -> Option<(usize, usize)> {
    let m = toks.len();
    // For each pattern position, the smallest start of a thread there.
    let closure = |set: &mut Vec<Option<usize>>| {
        for i in 0..m {
            if let (Some(s), PatTok::Star) = (set[i], toks[i]) {
                set[i + 1] = Some(set[i + 1].map_or(s, |t| t.min(s)));
            }
        }
    };
    let mut cur: Vec<Option<usize>> = vec![None; m + 1];
    let mut best: Option<(usize, usize)> = None;
    let mut p = from;
    loop {
        if best.is_none() && p <= v.len() && cur[0].is_none() {
            cur[0] = Some(p);
        }
        closure(&mut cur);
        if let Some(s) = cur[m] {
            best = match best {
                Some((bs, _)) if bs < s => best,
                _ => Some((s, p)),
            };
        }
        if p >= v.len() {
            break;
        }
        let c = v[p];
        let limit = best.map(|b| b.0);
        let mut next: Vec<Option<usize>> = vec![None; m + 1];
        let mut put = |i: usize, s: usize| {
            if limit.is_none_or(|l| s <= l) {
                next[i] = Some(next[i].map_or(s, |t: usize| t.min(s)));
            }
        };
        for i in 0..m {
            let Some(s) = cur[i] else { continue };
            match toks[i] {
                PatTok::Star => put(i, s),
                PatTok::Any => put(i + 1, s),
                PatTok::Lit(l) if l == c => put(i + 1, s),
                PatTok::Lit(_) => {}
            }
        }
        cur = next;
        p += 1;
        if best.is_some() && cur.iter().all(Option::is_none) {
            break;
        }
    }
    best
}

/// `${VAR/pat/repl}` and `${VAR//pat/repl}` (the latter with Go's `ReplaceAllString` rules
/// for empty matches).
fn replace(toks: &[PatTok], value: &str, repl: &str, all: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    if too_big(toks, &v) {
        return value.to_string();
    }
    let mut out = String::new();
    if !all {
        return match find_match(toks, &v, 0) {
            Some((s, e)) => {
                out.extend(&v[..s]);
                out.push_str(repl);
                out.extend(&v[e..]);
                out
            }
            None => value.to_string(),
        };
    }
    let mut last_end = 0usize;
    let mut search = 0usize;
    while search <= v.len() {
        let Some((s, e)) = find_match(toks, &v, search) else {
            break;
        };
        out.extend(&v[last_end..s]);
        if e > last_end || s == 0 {
            out.push_str(repl);
        }
        last_end = e;
        if search + 1 > e {
            search += 1;
        } else {
            search = e;
        }
    }
    if last_end <= v.len() {
        out.extend(&v[last_end..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PWD" => Some("/home".into()),
            "SHELL" => Some("bash".into()),
            "KOREAN" => Some("한국어".into()),
            "NULL" => Some(String::new()),
            "FILE" => Some("archive.tar.gz".into()),
            "SPACE" => Some("abc  def".into()),
            "LEADING" => Some("  ab c".into()),
            _ => None,
        }
    }

    fn ex(w: &str) -> Result<String, Error> {
        expand(w, '\\', &env)
    }

    #[test]
    fn quotes_and_escapes() {
        let cases = [
            ("hello", "hello"),
            ("he'll'o", "hello"),
            ("he\\'llo", "he'llo"),
            ("abc\\tdef", "abctdef"),
            ("\"abc\\tdef\"", "abc\\tdef"),
            ("\"abc\\\\tdef\"", "abc\\tdef"),
            ("'abc\\tdef'", "abc\\tdef"),
            ("hello\\", "hello"),
            ("hello\\\\", "hello\\"),
            ("\"hel'lo\"", "hel'lo"),
            ("'hello\\'", "hello\\"),
            ("\"''\"", "''"),
            ("'\"hello\"'", "\"hello\""),
            ("안'녕'하세요", "안녕하세요"),
        ];
        for (i, o) in cases {
            assert_eq!(ex(i).unwrap(), o, "input {i:?}");
        }
        for bad in ["he'llo", "he\\\\'llo", "\"hello", "\"hello\\\"", "'hello"] {
            assert!(ex(bad).is_err(), "input {bad:?}");
        }
    }

    #[test]
    fn variables() {
        let cases = [
            ("$.", "$."),
            ("he$1x", "hex"),
            ("he$.x", "he$.x"),
            ("he$pwd.", "he."),
            ("he$PWD", "he/home"),
            ("he\\$PWD", "he$PWD"),
            ("he\\\\$PWD", "he\\/home"),
            ("\"he\\$PWD\"", "he$PWD"),
            ("\"he\\\\$PWD\"", "he\\/home"),
            ("\\${}", "${}"),
            ("he${hi}xx", "hexx"),
            ("he${PWD}", "he/home"),
            ("he${XXX:-000}xx", "he000xx"),
            ("he${PWD:-000}xx", "he/homexx"),
            ("he${XXX:-$PWD}xx", "he/homexx"),
            ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
            ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
            ("he${PWD?}", "he/home"),
            ("he${NULL?}", "he"),
            ("he${NULL-x}", "he"),
            ("he${NULL:-x}", "hex"),
            ("he${XXX+x}", "he"),
            ("he${NULL+x}", "hex"),
            ("he${NULL:+x}", "he"),
            ("he${PWD:+${SHELL}}xx", "hebashxx"),
            ("'he${XX}'", "he${XX}"),
            ("\"he'$PWD'\"", "he'/home'"),
            ("he${PWD:+${PWD}:}xx", "he/home:xx"),
            ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
            ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
            ("안녕$KOREAN", "안녕한국어"),
            ("${aaa}}", "}"),
            ("${aaa:-bbb {foo}", "bbb {foo"),
            ("$999aaa", "aaa"),
            ("${001:-bbb}aaa", "bbbaaa"),
            ("$@@@", "@@"),
            ("${#:-bbb}", "bbb"),
        ];
        for (i, o) in cases {
            assert_eq!(ex(i).unwrap(), o, "input {i:?}");
        }
        for bad in [
            "${}",
            "he${}xx",
            "he${.}",
            "he${XXX:YYY}",
            "he${XXX?}",
            "he${XXX:?}",
            "he${NULL:?}",
            "he${PWD",
            "he${PWD:=000}xx",
            "${{aaa}",
            "${aaa:-bbb ${foo}",
            "${:}",
            "${:-b}",
            "${aaa",
            "${",
            "${A:#x}",
        ] {
            assert!(ex(bad).is_err(), "input {bad:?}");
        }
    }

    #[test]
    fn required_messages() {
        let e = ex("${VAR:?message here$PWD}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${VAR:?message here$PWD}\": VAR: message here/home"
        );
        let e = ex("${VAR?}").unwrap_err();
        assert!(
            e.to_string().ends_with("VAR: is not allowed to be unset"),
            "{e}"
        );
        let e = ex("${NULL:?}").unwrap_err();
        assert!(
            e.to_string().ends_with("NULL: is not allowed to be empty"),
            "{e}"
        );
        assert_eq!(ex("${PWD:?x}").unwrap(), "/home");
    }

    #[test]
    fn pattern_modifiers() {
        let cases = [
            ("${FILE#*.}", "tar.gz"),
            ("${FILE##*.}", "gz"),
            ("${FILE%.*}", "archive.tar"),
            ("${FILE%%.*}", "archive"),
            ("${FILE#nomatch}", "archive.tar.gz"),
            ("${FILE%.???}", "archive.tar.gz"),
            ("${FILE%.??}", "archive.tar"),
            ("${FILE/tar/zip}", "archive.zip.gz"),
            ("${FILE//a/A}", "Archive.tAr.gz"),
            ("${FILE/*./}", "gz"),
            ("${PWD/\\//-}", "-home"),
            ("${PWD//o*/X}", "/hX"),
            ("${XXX#a}", ""),
            ("${XXX/a/b}", ""),
            ("${PWD#\\*}", "/home"),
        ];
        for (i, o) in cases {
            assert_eq!(ex(i).unwrap(), o, "input {i:?}");
        }
        assert!(ex("${FILE#\\a}").is_err());
        assert!(ex("${FILE/a").is_err());
        assert!(ex("${FILE/a/b").is_err());
    }

    #[test]
    fn words() {
        let w = |s: &str| expand_words(s, '\\', &env).unwrap();
        assert_eq!(w("hello"), ["hello"]);
        assert_eq!(w("hello${hi}bye"), ["hellobye"]);
        assert_eq!(w("hello${SPACE}bye"), ["helloabc", "defbye"]);
        assert_eq!(w("hello\"${SPACE}\"bye"), ["helloabc  defbye"]);
        assert_eq!(w("hello \"${SPACE}\"bye"), ["hello", "abc  defbye"]);
        assert_eq!(w("hello${LEADING}def"), ["hello", "ab", "cdef"]);
        assert_eq!(w("hello\"${LEADING}\" def"), ["hello  ab c", "def"]);
        assert_eq!(w("hello\" there  \""), ["hello there  "]);
        assert_eq!(w("hello there     "), ["hello", "there"]);
        assert_eq!(w("hello\\ there"), ["hello there"]);
        assert_eq!(w("hello\\\" there"), ["hello\"", "there"]);
        assert_eq!(w("hello'$there'"), ["hello$there"]);
        assert_eq!(w("a${XXX:-b c}d"), ["ab", "cd"]);
        assert_eq!(w(""), Vec::<String>::new());
        assert!(expand_words("hello\" there", '\\', &env).is_err());
    }

    #[test]
    fn backtick_escape() {
        let e = |s: &str| expand(s, '`', &env).unwrap();
        assert_eq!(e("C:\\foo\\bar"), "C:\\foo\\bar");
        assert_eq!(e("a` b"), "a b");
        assert_eq!(e("`$PWD"), "$PWD");
        assert_eq!(e("\"`\"x\""), "\"x");
    }

    #[test]
    fn references() {
        assert_eq!(referenced_vars("${A:-$B}c$D $A", '\\'), ["B", "A", "D"]);
        assert_eq!(referenced_vars("'$X' \\$Y \"$Z\"", '\\'), ["Z"]);
        assert_eq!(referenced_vars("${A:?}${B/x/$C}", '\\'), ["A", "C", "B"]);
        assert_eq!(referenced_vars("$A ${", '\\'), ["A"]);
        assert!(referenced_vars("plain", '\\').is_empty());
    }

    #[test]
    fn raw_modes() {
        let lex = Lexer {
            escape: '\\',
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
        };
        let (_, w) = lex
            .process("RUN cat <<\"EOF\" \\x $X ${Y:-z}", &|_| None)
            .unwrap();
        assert_eq!(w, ["RUN", "cat", "<<\"EOF\"", "\\x", "$X", "${Y:-z}"]);
        let (_, w) = lex.process("cat << EOF", &|_| None).unwrap();
        assert_eq!(w, ["cat", "<< EOF"]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "${A:-".repeat(5000) + &"}".repeat(5000);
        assert!(ex(&deep).is_err());
    }
}
