//! A cheap in-tree fuzz run: mutated real Dockerfiles, words and ignore files through every
//! entry point, checking that nothing panics and that errors name a sensible line.

use crate::{Error, Ignore, Mount, expand, expand_words, parse, referenced_vars};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const SEEDS: &[&str] = &[
    "# syntax=docker/dockerfile:1\nARG V=1\nFROM --platform=$BUILDPLATFORM golang:${V} AS build\nWORKDIR /src\nRUN --mount=type=cache,target=/root/.cache \\\n    go build -o /out ./...\nFROM scratch\nCOPY --from=build /out /\nENTRYPOINT [\"/out\"]\n",
    "FROM alpine\nRUN <<EOF\nset -e\necho $HOME\nEOF\nRUN python3 <<'PY' && cat <<-X\nprint(1)\nPY\n\tx\n\tX\nCOPY <<EOF /etc/a\nk=${V:-d}\nEOF\n",
    "# escape=`\r\nFROM mcr.microsoft.com/windows/servercore\r\nSHELL [\"powershell\", \"-Command\"]\r\nRUN dir c:\\ ; `\r\n    echo hi\r\nWORKDIR C:\\app\r\n",
    "FROM debian AS base\nENV A=1 B=\"two words\" C='x y'\nENV legacy value here\nLABEL a=b \"c\"=\"d e\"\nEXPOSE 80/tcp 443\nVOLUME [\"/data\"]\nUSER 1000:1000\nSTOPSIGNAL SIGKILL\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x || exit 1\nONBUILD RUN make\nMAINTAINER me\nCMD [\"a\", \"b\"]\n",
    "FROM a\nADD --checksum=sha256:00 --keep-git-dir --exclude=*.md https://x/y.git /z\nCOPY --chown=1:1 --chmod=644 --link --parents [\"a b\", \"c\"]\nRUN --network=none --security=insecure --mount=type=secret,id=s,required echo\n",
];

const WORDS: &[&str] = &[
    "${A:-${B:+x}}",
    "he'llo' \"$PWD\" \\$x",
    "${F##*.}${F%%.*}${F/a/b}${F//x/}",
    "${X:?must be set}",
    "a\\ b `c` 'd\\'",
    "${#}${@:-q}$1$$",
];

const IGNORES: &[&str] = &[
    "# c\n*.md\n!README.md\n**/*.go\ntemp?\n*/temp*\n/build/\n!build/keep/**\n[a-c]x\n\\*lit\n",
    "node_modules\n**\n!src\n.git\nDockerfile\n.dockerignore\n",
];

const PATHS: &[&str] = &[
    "README.md",
    "a/b/c.go",
    "build/keep/x",
    "tempa",
    "x/temp1",
    "bx",
    "*lit",
    "src/main.rs",
    ".",
    "",
];

const INTERESTING: &[char] = &[
    '\\', '`', '$', '"', '\'', '{', '}', '[', ']', '<', '>', '-', '=', '#', '\n', '\r', '\t', ' ',
    ':', ',', '*', '?', '!', '/', '%', '+', '0', 'é', '\u{feff}', '\u{a0}', 'A', 'R', 'U', 'N',
];

fn mutate(rng: &mut XorShift, input: &str, pool: &[&str]) -> String {
    let mut chars: Vec<char> = input.chars().collect();
    for _ in 0..=rng.below(6) {
        let len = chars.len();
        match rng.below(6) {
            0 => {
                let c = INTERESTING[rng.below(INTERESTING.len())];
                chars.insert(rng.below(len + 1), c);
            }
            1 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(8)).min(len);
                chars.drain(a..b);
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(32)).min(len);
                let slice: Vec<char> = chars[a..b].to_vec();
                let at = rng.below(len + 1);
                chars.splice(at..at, slice);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                chars[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            4 => {
                let other: Vec<char> = pool[rng.below(pool.len())].chars().collect();
                let a = rng.below(other.len() + 1);
                let b = (a + rng.below(40)).min(other.len());
                let at = rng.below(len + 1);
                chars.splice(at..at, other[a..b].iter().copied());
            }
            _ => {
                // Repeat a character many times (long runs, deep nesting).
                let c = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                let n = rng.below(300);
                chars.splice(at..at, std::iter::repeat_n(c, n));
            }
        }
    }
    chars.into_iter().collect()
}

fn check_parse(src: &str) {
    match parse(src) {
        Ok(d) => {
            for s in &d.stages {
                assert!(s.line >= 1);
                for i in &s.instructions {
                    assert!(i.line >= s.line);
                    let _ = i.name();
                    let _ = i.onbuild_expression();
                    for h in i.kind.heredocs() {
                        let _ = h.body();
                        if h.expand {
                            let _ = expand(&h.content, d.escape, &|_| None);
                        }
                    }
                }
                let _ = expand(&s.base, d.escape, &|n| Some(n.to_lowercase()));
            }
            for a in &d.meta_args {
                if let Some(v) = &a.default {
                    let _ = expand_words(v, d.escape, &|_| None);
                }
            }
        }
        Err(e) => {
            let lines = src.split_inclusive('\n').count().max(1);
            let line = e.line().expect("parse errors carry a line");
            assert!(line >= 1 && line <= lines, "line {line} of {lines}: {e}");
            assert!(matches!(e, Error::Parse { .. }));
        }
    }
}

#[test]
fn fuzz_no_panics() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let vars = |n: &str| match n {
        "A" => Some("a b".to_string()),
        "F" => Some("archive.tar.gz".to_string()),
        "PWD" => Some("/".to_string()),
        _ => None,
    };
    for seed in SEEDS {
        check_parse(seed);
    }
    for round in 0..3000 {
        let seed = SEEDS[round % SEEDS.len()];
        let src = mutate(&mut rng, seed, SEEDS);
        check_parse(&src);
        // Individual lines as words.
        if let Some(line) = src.lines().nth(rng.below(8)) {
            let esc = if rng.below(2) == 0 { '\\' } else { '`' };
            let _ = expand(line, esc, &vars);
            let _ = expand_words(line, esc, &vars);
            let _ = referenced_vars(line, esc);
            let _ = Mount::parse(line);
        }
        let w = mutate(&mut rng, WORDS[round % WORDS.len()], WORDS);
        let _ = expand(&w, '\\', &vars);
        let _ = expand_words(&w, '`', &vars);
        let _ = referenced_vars(&w, '\\');
        let _ = Mount::parse(&w);

        let ig_text = mutate(&mut rng, IGNORES[round % IGNORES.len()], IGNORES);
        let ig = Ignore::parse(&ig_text);
        let _ = Ignore::try_parse(&ig_text);
        for p in PATHS {
            let _ = ig.matches(p);
            let _ = ig.may_include_below(p);
        }
        let path = mutate(&mut rng, PATHS[round % PATHS.len()], PATHS);
        let _ = ig.matches(&path);
        let _ = ig.may_include_below(&path);
        let _ = Ignore::from_patterns(&[path.as_str()]).matches(&ig_text);
    }
}

#[test]
fn hostile_shapes() {
    // Long runs and deep nesting in every entry point.
    let deep_json = format!("FROM a\nCMD {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    check_parse(&deep_json);
    let many_cont = format!("FROM a\nRUN x{}\n", " \\\n".repeat(20_000));
    check_parse(&many_cont);
    let braces = format!("FROM a\nENV A={}\n", "${B:-".repeat(10_000));
    check_parse(&braces);
    let _ = expand(&"${A:-".repeat(10_000), '\\', &|_| None);
    let _ = expand(&format!("${{F//{}/x}}", "*".repeat(2000)), '\\', &|_| {
        Some("a".repeat(3000))
    });
    let ig = Ignore::parse(&format!("{}\n", "*a".repeat(2000)));
    let _ = ig.matches(&"a".repeat(5000));
    let _ = ig.matches(&"ab/".repeat(2000));
    check_parse(&format!("FROM a\nRUN {}\n", "<<EOF ".repeat(2000)));
    check_parse("\\");
    check_parse("\u{feff}");
    check_parse("FROM a\nONBUILD ONBUILD");
    check_parse(&format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(100_000)));
    let _ = expand(&format!("${{F//{}b/x}}", "*a".repeat(3000)), '\\', &|_| {
        Some("a".repeat(4000))
    });
}
