//! Splitting Dockerfile text into instructions, as BuildKit's `parser.Parse` does: the byte
//! order mark, parser directives, comments, blank lines, line continuations (comment and
//! blank lines inside a continuation are skipped) and heredoc bodies.

use crate::expand::Lexer;
use crate::instructions::Node;
use crate::{Error, Heredoc};

/// The parser directives found at the top of the file.
#[derive(Debug, Clone)]
pub(crate) struct Directives {
    pub escape: char,
    pub syntax: Option<String>,
}

/// BuildKit's `DirectiveParser`: directives are `# key=value` comment lines before anything
/// else (any other line, including a blank one or another comment, ends them).
#[derive(Default)]
struct DirectiveParser {
    done: bool,
    seen: Vec<String>,
}

/// Go's regexp `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

impl DirectiveParser {
    fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let rest = rest.trim_start();
        // ^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$
        let key_len = rest
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map_or(rest.len(), |(i, _)| i);
        let key = &rest[..key_len];
        let after_key = rest[key_len..].trim_start_matches(is_re_space);
        let value = match (key.is_empty(), after_key.strip_prefix('=')) {
            (false, Some(v)) => {
                let t = v.trim_start_matches(is_re_space);
                if !t.is_empty() {
                    Some(t.trim_end_matches(is_re_space).to_string())
                } else {
                    // Only blanks after `=`: the regexp's lazy group takes the last one.
                    v.chars().last().map(String::from)
                }
            }
            _ => None,
        };
        let Some(value) = value else {
            self.done = true;
            return Ok(None);
        };
        let key = key.to_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        Ok(Some((key, value)))
    }
}

struct State {
    dp: DirectiveParser,
    d: Directives,
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

impl State {
    /// BuildKit's `processLine`: strips the line ending (and leading blanks when asked), feeds
    /// the directive parser, and blanks out comment lines.
    fn process_line<'a>(&mut self, raw: &'a str, strip_left: bool) -> Result<&'a str, String> {
        let mut token = raw.trim_end_matches(['\r', '\n']);
        if strip_left {
            token = token.trim_start();
        }
        if let Some((key, value)) = self.dp.parse_line(token)? {
            match key.as_str() {
                "escape" => {
                    self.d.escape = match value.as_str() {
                        "`" => '`',
                        "\\" => '\\',
                        _ => {
                            return Err(format!(
                                "invalid escape token '{value}' does not match ` or \\"
                            ));
                        }
                    };
                }
                "syntax" => self.d.syntax = Some(value),
                _ => {}
            }
        }
        Ok(if is_comment(token) { "" } else { token })
    }

    /// BuildKit's `trimContinuationCharacter`: gives the line without a trailing escape
    /// character (and the blanks after it), and whether the line is complete.
    fn trim_continuation<'a>(&self, line: &'a str) -> (&'a str, bool) {
        let e = self.d.escape;
        let t = line.trim_end_matches([' ', '\t']);
        if let Some(before) = t.strip_suffix(e)
            && (before.is_empty() || !before.ends_with(e))
        {
            return (before, false);
        }
        (line, true)
    }
}

/// A heredoc marker's parts (`<<-"EOF"` is name `EOF`, not expanded, tabs stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocMarker {
    pub name: String,
    pub expand: bool,
    pub strip_tabs: bool,
}

/// BuildKit's `ParseHeredoc`: reads `[n]<<[-]WORD` (the whole argument word). `Ok(None)` when
/// the word is not a heredoc marker.
pub(crate) fn parse_heredoc_word(src: &str) -> Result<Option<HeredocMarker>, String> {
    let r = src.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(r) = r.strip_prefix("<<") else {
        return Ok(None);
    };
    let (strip_tabs, r) = match r.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, r),
    };
    let rest = r.trim_start_matches(is_re_space);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let mut lex = Lexer {
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let none = |_: &str| None;
    let (_, words) = lex.process(rest, &none).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let (_, raw) = lex.process(rest, &none).map_err(|e| e.to_string())?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Ok(Some(HeredocMarker {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words[0].clone(),
        strip_tabs,
    }))
}

/// BuildKit's `heredocsFromLine`: the heredoc markers among the words of a whole line.
fn heredocs_from_line(line: &str) -> Result<Vec<HeredocMarker>, String> {
    let lex = Lexer {
        escape: '\\',
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
    };
    // A line that does not lex has no heredocs, as in BuildKit.
    let words = lex
        .process(line, &|_| None)
        .map(|(_, w)| w)
        .unwrap_or_default();
    let mut out = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc_word(&w)? {
            out.push(h);
        }
    }
    Ok(out)
}

/// Splits `src` into directives and instruction nodes (with their heredoc bodies).
pub(crate) fn split(src: &str) -> Result<(Directives, Vec<Node>), Error> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let mut st = State {
        dp: DirectiveParser::default(),
        d: Directives {
            escape: '\\',
            syntax: None,
        },
    };
    let mut nodes = Vec::new();
    let mut i = 0usize; // lines consumed so far
    while i < lines.len() {
        let text = st
            .process_line(lines[i], true)
            .map_err(|m| Error::parse(i + 1, m))?;
        i += 1;
        let start = i;
        let (first, mut complete) = st.trim_continuation(text);
        if complete && first.is_empty() {
            continue;
        }
        let mut buf = first.to_string();
        while !complete && i < lines.len() {
            let raw = lines[i];
            let text = st
                .process_line(raw, false)
                .map_err(|m| Error::parse(i + 1, m))?;
            i += 1;
            if is_comment(raw) || text.trim_start().is_empty() {
                continue;
            }
            let (t, c) = st.trim_continuation(text);
            complete = c;
            buf.push_str(t);
        }
        let mut node = Node::from_line(&buf, st.d.escape).map_err(|m| Error::parse(start, m))?;
        node.line = start;
        if node.can_contain_heredoc() && buf.contains("<<") {
            let markers = heredocs_from_line(&buf).map_err(|m| Error::parse(start, m))?;
            for h in markers {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut possible = raw.trim_end_matches(['\r', '\n']);
                    if h.strip_tabs {
                        possible = possible.trim_start_matches('\t');
                    }
                    if possible == h.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(Error::parse(start, "unterminated heredoc"));
                }
                node.heredocs.push(Heredoc {
                    name: h.name,
                    content,
                    expand: h.expand,
                    strip_tabs: h.strip_tabs,
                });
            }
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(Error::parse(i.max(1), "file with no instructions"));
    }
    Ok((st.d, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_words() {
        let m = |s: &str| parse_heredoc_word(s).unwrap();
        assert_eq!(
            m("<<EOF"),
            Some(HeredocMarker {
                name: "EOF".into(),
                expand: true,
                strip_tabs: false
            })
        );
        assert_eq!(
            m("<<-'END'"),
            Some(HeredocMarker {
                name: "END".into(),
                expand: false,
                strip_tabs: true
            })
        );
        assert_eq!(
            m("2<<\"E\"OF").map(|h| (h.name, h.expand)),
            Some(("EOF".into(), false))
        );
        assert_eq!(m("<< EOF").map(|h| h.name), Some("EOF".into()));
        assert_eq!(m("<<"), None);
        assert_eq!(m("<<<EOF"), None);
        assert_eq!(m("x<<EOF"), None);
        assert_eq!(m("/dest"), None);
    }

    #[test]
    fn line_markers() {
        let names = |s: &str| {
            heredocs_from_line(s)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN cat <<A && cat <<-\"B\" > f"), ["A", "B"]);
        assert_eq!(names("RUN echo '<<NOT"), Vec::<String>::new());
        assert_eq!(names("RUN cat <<EOF>out"), ["EOF>out"]);
    }

    #[test]
    fn directives() {
        let mut dp = DirectiveParser::default();
        assert_eq!(
            dp.parse_line("# Escape = `").unwrap(),
            Some(("escape".into(), "`".into()))
        );
        assert!(dp.parse_line("# escape=\\").is_err());
        let mut dp = DirectiveParser::default();
        assert_eq!(dp.parse_line("#foo=bar").unwrap(), None);
        assert_eq!(dp.parse_line("#syntax=x").unwrap(), None);
    }
}
