//! `.dockerignore` matching with `moby/patternmatcher`'s rules (`ignorefile.ReadAll` for
//! reading the file, `MatchesOrParentMatches` for matching).

use crate::Error;
use crate::util::clean_path;

/// How a pattern is matched (patternmatcher's match types).
#[derive(Debug, Clone, PartialEq, Eq)]
enum MatchType {
    /// No wildcard: the path equals the pattern.
    Exact,
    /// Literal text then a final `**`: the path starts with the text.
    Prefix(String),
    /// A leading `**` then literal text: the path ends with the text (or, for `**/x`,
    /// is `x`).
    Suffix(String),
    /// General pattern.
    Glob(Vec<Tok>),
}

/// A compiled piece of a general pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character other than `/`.
    AnyNoSlash,
    /// `*`: any run of characters other than `/`.
    StarNoSlash,
    /// A final `**` after other wildcards: anything.
    AnyRun,
    /// `**` or `**/` inside a pattern: empty, or anything ending in `/`.
    Dirs,
    /// `[...]`: negated flag and inclusive ranges.
    Class(bool, Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    exclusion: bool,
    dirs: usize,
    kind: MatchType,
}

/// A `.dockerignore` matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
    invalid: Vec<(usize, String)>,
}

impl Ignore {
    /// Reads `.dockerignore` text: a byte order mark is dropped, lines starting with `#` are
    /// comments, blank lines are skipped, each pattern is trimmed, cleaned like Go's
    /// `filepath.Clean` and stripped of a leading `/`; `!` makes an exception. Malformed
    /// patterns (which BuildKit refuses) are left out; see [`Ignore::invalid_patterns`] and
    /// [`Ignore::try_parse`].
    pub fn parse(text: &str) -> Ignore {
        let mut ig = Ignore::default();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (n, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let invert = p.starts_with('!');
            if invert {
                p = p[1..].trim();
            }
            let mut p = p.to_string();
            if !p.is_empty() {
                p = clean_path(&p);
                if p.len() > 1 && p.starts_with('/') {
                    p.remove(0);
                }
            }
            if invert {
                p.insert(0, '!');
            }
            ig.push(n + 1, &p);
        }
        ig
    }

    /// As [`Ignore::parse`], but a malformed pattern is an error (as it is in BuildKit).
    ///
    /// # Errors
    /// The first malformed pattern, with its line.
    pub fn try_parse(text: &str) -> Result<Ignore, Error> {
        let ig = Ignore::parse(text);
        match ig.invalid.first() {
            Some((line, msg)) => Err(Error::Pattern {
                line: *line,
                message: msg.clone(),
            }),
            None => Ok(ig),
        }
    }

    /// A matcher from a list of patterns as patternmatcher's `New` takes them (e.g. the
    /// `--exclude` patterns of `COPY`): trimmed and cleaned, but a leading `/` is kept.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Ignore {
        let mut ig = Ignore::default();
        for (n, p) in patterns.iter().enumerate() {
            ig.push(n + 1, p.as_ref());
        }
        ig
    }

    fn push(&mut self, line: usize, p: &str) {
        // patternmatcher.New
        let p = p.trim();
        if p.is_empty() {
            return;
        }
        let p = clean_path(p);
        let (exclusion, body) = match p.strip_prefix('!') {
            Some("") => {
                self.invalid
                    .push((line, "illegal exclusion pattern: \"!\"".to_string()));
                return;
            }
            Some(rest) => (true, rest.to_string()),
            None => (false, p),
        };
        if let Err(msg) = check_syntax(&body) {
            self.invalid.push((line, msg));
            return;
        }
        let kind = compile(&body);
        self.patterns.push(Pattern {
            dirs: body.split('/').count(),
            text: body,
            exclusion,
            kind,
        });
    }

    /// The patterns left out as malformed, with their 1-based lines and the problem.
    pub fn invalid_patterns(&self) -> &[(usize, String)] {
        &self.invalid
    }

    /// Whether there are no (valid) patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an `!` exception.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// The (cleaned) patterns, each with whether it is an exception, in order.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, bool)> {
        self.patterns.iter().map(|p| (p.text.as_str(), p.exclusion))
    }

    /// Whether `rel_path` (slash-separated, relative to the context root) is excluded: the last
    /// pattern that matches it, or one of its parent directories, decides
    /// (patternmatcher's `MatchesOrParentMatches`). The context root itself is never excluded.
    pub fn matches(&self, rel_path: &str) -> bool {
        let file = clean_path(rel_path.trim_start_matches('/'));
        if file == "." || file.is_empty() {
            return false;
        }
        let parent_dirs: Vec<&str> = match file.rfind('/') {
            Some(i) => file[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&file);
            if !m {
                let mut prefix = String::new();
                for (i, d) in parent_dirs.iter().enumerate() {
                    if i > 0 {
                        prefix.push('/');
                    }
                    prefix.push_str(d);
                    if p.matches(&prefix) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether some `!` exception could re-include a path below `dir` (slash-separated,
    /// relative to the context root). When `dir` is excluded and this is false, a walker can
    /// skip the whole directory. Errs on the side of true.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean_path(dir.trim_start_matches('/'));
        let dir_segs: Vec<&str> = if dir == "." {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            if p.text.contains("**") || p.text.contains('[') || p.text.contains('\\') {
                return true;
            }
            p.text
                .split('/')
                .zip(dir_segs.iter())
                .all(|(ps, ds)| segment_matches(ps, ds))
        })
    }
}

/// Matches one path segment against one pattern segment (`*`, `?`, literals; no `/`, `**`,
/// classes or escapes, which callers rule out first).
fn segment_matches(pat: &str, seg: &str) -> bool {
    let toks: Vec<Tok> = pat
        .chars()
        .map(|c| match c {
            '*' => Tok::StarNoSlash,
            '?' => Tok::AnyNoSlash,
            c => Tok::Lit(c),
        })
        .collect();
    glob_match(&toks, seg)
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchType::Exact => path == self.text,
            MatchType::Prefix(p) => path.starts_with(p.as_str()),
            MatchType::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            MatchType::Glob(toks) => glob_match(toks, path),
        }
    }
}

/// The check patternmatcher makes with `filepath.Match(pattern, ".")`: malformed `[...]`
/// classes and a trailing `\` are errors.
fn check_syntax(p: &str) -> Result<(), String> {
    let bad = || Err("syntax error in pattern".to_string());
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return bad();
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut nrange = 0;
                loop {
                    match chars.get(i) {
                        None => return bad(),
                        Some(']') if nrange > 0 => {
                            i += 1;
                            break;
                        }
                        _ => {}
                    }
                    // lo
                    match chars.get(i) {
                        None | Some('-' | ']') => return bad(),
                        Some('\\') => {
                            if i + 1 >= chars.len() {
                                return bad();
                            }
                            i += 2;
                        }
                        Some(_) => i += 1,
                    }
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        match chars.get(i) {
                            None | Some('-' | ']') => return bad(),
                            Some('\\') => {
                                if i + 1 >= chars.len() {
                                    return bad();
                                }
                                i += 2;
                            }
                            Some(_) => i += 1,
                        }
                    }
                    nrange += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Compiles a (syntax-checked) pattern the way patternmatcher's `compile` does.
fn compile(p: &str) -> MatchType {
    #[derive(PartialEq)]
    enum Ty {
        Exact,
        Prefix,
        Suffix,
        Glob,
    }
    let chars: Vec<char> = p.chars().collect();
    let mut ty = Ty::Exact;
    let mut toks = Vec::new();
    let mut i = 0;
    let mut iteration = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if ty == Ty::Exact {
                        ty = Ty::Prefix;
                    } else {
                        toks.push(Tok::AnyRun);
                        ty = Ty::Glob;
                    }
                } else {
                    toks.push(Tok::Dirs);
                    ty = Ty::Glob;
                }
                if iteration == 0 {
                    ty = Ty::Suffix;
                }
            } else {
                toks.push(Tok::StarNoSlash);
                ty = Ty::Glob;
            }
        } else if ch == '?' {
            toks.push(Tok::AnyNoSlash);
            ty = Ty::Glob;
        } else if ch == '\\' {
            match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    toks.push(Tok::Lit(n));
                    ty = Ty::Glob;
                }
                None => toks.push(Tok::Lit('\\')),
            }
        } else if ch == '[' {
            let (tok, next) = parse_class(&chars, i);
            toks.push(tok);
            i = next;
            ty = Ty::Glob;
        } else {
            toks.push(Tok::Lit(ch));
        }
        iteration += 1;
    }
    match ty {
        Ty::Exact => MatchType::Exact,
        Ty::Prefix => MatchType::Prefix(p[..p.len() - 2].to_string()),
        Ty::Suffix => MatchType::Suffix(p[2..].to_string()),
        Ty::Glob => MatchType::Glob(toks),
    }
}

/// Parses a class body starting after `[`; gives the token and the index after `]`.
fn parse_class(chars: &[char], mut i: usize) -> (Tok, usize) {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let read = |i: &mut usize| -> char {
        let c = chars.get(*i).copied().unwrap_or('\0');
        *i += 1;
        if c == '\\' {
            let n = chars.get(*i).copied().unwrap_or('\\');
            *i += 1;
            n
        } else {
            c
        }
    };
    while i < chars.len() {
        if chars[i] == ']' && !ranges.is_empty() {
            i += 1;
            break;
        }
        let lo = read(&mut i);
        let mut hi = lo;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            hi = read(&mut i);
        }
        ranges.push((lo, hi));
    }
    (Tok::Class(negated, ranges), i)
}

/// Whether `toks` matches all of `s`: an NFA walk over token positions (no backtracking).
fn glob_match(toks: &[Tok], s: &str) -> bool {
    let m = toks.len();
    // States: 0..=m are "before token i"; m+1+i is "inside a Dirs token i".
    let n_states = 2 * m + 1;
    let closure = |set: &mut Vec<bool>| {
        for i in 0..m {
            if set[i] {
                match toks[i] {
                    Tok::StarNoSlash | Tok::AnyRun => set[i + 1] = true,
                    Tok::Dirs => {
                        set[i + 1] = true;
                        set[m + 1 + i] = true;
                    }
                    _ => {}
                }
            }
        }
    };
    let mut cur = vec![false; n_states];
    cur[0] = true;
    closure(&mut cur);
    for c in s.chars() {
        let mut next = vec![false; n_states];
        for i in 0..m {
            if cur[i] {
                match &toks[i] {
                    Tok::Lit(l) if *l == c => next[i + 1] = true,
                    Tok::Lit(_) => {}
                    Tok::AnyNoSlash if c != '/' => next[i + 1] = true,
                    Tok::AnyNoSlash => {}
                    Tok::StarNoSlash if c != '/' => next[i] = true,
                    Tok::StarNoSlash => {}
                    Tok::AnyRun => next[i] = true,
                    Tok::Dirs => {}
                    Tok::Class(neg, ranges) => {
                        let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                        if inside != *neg {
                            next[i + 1] = true;
                        }
                    }
                }
            }
            if cur[m + 1 + i] {
                next[m + 1 + i] = true;
                if c == '/' {
                    next[i + 1] = true;
                }
            }
        }
        closure(&mut next);
        if !next.iter().any(|b| *b) {
            return false;
        }
        cur = next;
    }
    cur[m]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(s: &str) -> Ignore {
        Ignore::parse(s)
    }

    #[test]
    fn docs_examples() {
        let i = ig("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(i.matches("somedir/temporary.txt"));
        assert!(i.matches("somedir/temp"));
        assert!(!i.matches("temporary.txt"));
        assert!(i.matches("somedir/subdir/temporary.txt"));
        assert!(i.matches("tempa"));
        assert!(i.matches("tempb/x"));
        assert!(!i.matches("temp"));
        assert!(!i.matches("a/b/c/temp1"));

        let i = ig("*.md\n!README.md\n");
        assert!(i.matches("CHANGES.md"));
        assert!(!i.matches("README.md"));
        assert!(!i.matches("docs/x.md"));

        let i = ig("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(i.matches("README-secret.md"));
        assert!(!i.matches("README-public.md"));

        let i = ig("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!i.matches("README-secret.md"));
    }

    #[test]
    fn double_star() {
        let i = ig("**/*.go\n");
        assert!(i.matches("main.go"));
        assert!(i.matches("a/b/c.go"));
        assert!(!i.matches("a/b/c.goo"));
        let i = ig("**/node_modules\n");
        assert!(i.matches("node_modules"));
        assert!(i.matches("a/node_modules"));
        assert!(i.matches("a/node_modules/x/y"));
        assert!(!i.matches("a/xnode_modules"));
        let i = ig("a/**/b\n");
        assert!(i.matches("a/b"));
        assert!(i.matches("a/x/y/b"));
        assert!(!i.matches("a/xb"));
        let i = ig("build/**\n");
        assert!(i.matches("build/x"));
        assert!(!i.matches("build"));
        let i = ig("**\n!keep\n");
        assert!(i.matches("anything/at/all"));
        assert!(!i.matches("keep"));
        let i = ig("a*/**\n");
        assert!(i.matches("ab/c/d"));
        assert!(!i.matches("b/c"));
    }

    #[test]
    fn parents_and_exceptions() {
        let i = ig("vendor\n!vendor/keep.txt\n");
        assert!(i.matches("vendor"));
        assert!(i.matches("vendor/a/b.txt"));
        assert!(!i.matches("vendor/keep.txt"));
        assert!(i.may_include_below("vendor"));
        assert!(!i.may_include_below("other"));
        let i = ig("node_modules\n");
        assert!(!i.may_include_below("node_modules"));
        let i = ig("docs\n!docs/*/README.md\n");
        assert!(i.may_include_below("docs"));
        assert!(i.may_include_below("docs/api"));
        assert!(!i.may_include_below("src"));
        let i = ig("*\n!**/x\n");
        assert!(i.may_include_below("anything"));
        let i = ig("a\n!a\n");
        assert!(!i.matches("a/b"));
    }

    #[test]
    fn cleaning_and_special_files() {
        let i = ig("  /foo/../bar/  \n./baz\n!\n\n#x\n  #y\n");
        assert!(i.matches("bar"));
        assert!(i.matches("bar/q"));
        assert!(i.matches("baz"));
        assert!(i.matches("#y"));
        assert!(!i.matches("#x"));
        assert_eq!(i.invalid_patterns().len(), 1);
        assert!(
            Ignore::try_parse("a\n!\n")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        let i = ig("Dockerfile\n.dockerignore\n");
        assert!(i.matches("Dockerfile"));
        assert!(i.matches(".dockerignore"));
        assert!(i.matches("./Dockerfile"));
        assert!(!i.matches("."));
        assert!(!i.matches(""));
    }

    #[test]
    fn classes_and_escapes() {
        let i = ig("file[0-9].txt\n[^a]x\nq\\*\n");
        assert!(i.matches("file3.txt"));
        assert!(!i.matches("filea.txt"));
        assert!(i.matches("bx"));
        assert!(!i.matches("ax"));
        assert!(i.matches("q*"));
        assert!(!i.matches("qq"));
        assert!(Ignore::try_parse("a[\n").is_err());
        assert!(Ignore::try_parse("a[]\n").is_err());
        assert!(Ignore::try_parse("a\\\n").is_err());
        assert!(Ignore::try_parse("[a-]\n").is_err());
        assert!(Ignore::try_parse("[\\]]\n").is_ok());
    }

    #[test]
    fn star_does_not_cross_slash() {
        let i = ig("*.txt\n");
        assert!(i.matches("a.txt"));
        assert!(!i.matches("d/a.txt"));
        let i = ig("a?c\n");
        assert!(!i.matches("a/c"));
    }
}
