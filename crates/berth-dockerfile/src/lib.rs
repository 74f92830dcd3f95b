//! Dockerfile parsing, shell-word expansion and `.dockerignore` matching, following the rules
//! of BuildKit's Dockerfile frontend (`frontend/dockerfile/{parser,instructions,shell}`) and of
//! `moby/patternmatcher`.
//!
//! * [`parse`] turns Dockerfile text into a [`Dockerfile`]: parser directives, meta `ARG`s and
//!   build stages with typed [`Instruction`]s. Nothing is variable-expanded here; values are
//!   kept as written (quotes included where BuildKit keeps them) for a later [`expand`].
//! * [`expand`] / [`expand_words`] / [`referenced_vars`] are BuildKit's shell lexer.
//! * [`Ignore`] is a `.dockerignore` matcher.
//!
//! Every parse error names the 1-based line of the instruction's first line and is worded as
//! BuildKit words it: `dockerfile parse error on line 3: unknown instruction: FOO`.

#![forbid(unsafe_code)]

mod expand;
mod flags;
mod ignore;
mod instructions;
mod json;
mod lexer;
mod util;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use expand::{Vars, expand, expand_words, referenced_vars};
pub use ignore::Ignore;

/// An error from this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The Dockerfile could not be parsed.
    #[error("dockerfile parse error on line {line}: {message}")]
    Parse {
        /// 1-based line of the offending instruction's first line (or of the offending line).
        line: usize,
        /// BuildKit's wording of the problem.
        message: String,
    },
    /// A word could not be expanded.
    #[error("failed to process {}: {}", util::go_quote(.word), .message)]
    Expand {
        /// The word as given.
        word: String,
        /// BuildKit's wording of the problem.
        message: String,
    },
    /// A `.dockerignore` pattern is malformed (only from [`Ignore::try_parse`]).
    #[error(".dockerignore line {line}: {message}")]
    Pattern {
        /// 1-based line of the pattern in the ignore file (0 for patterns not from a file).
        line: usize,
        /// The problem.
        message: String,
    },
}

impl Error {
    /// The 1-based line the error is about, if it is about a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Parse { line, .. } | Error::Pattern { line, .. } => Some(*line),
            Error::Expand { .. } => None,
        }
    }

    /// The message without the location prefix.
    pub fn message(&self) -> &str {
        match self {
            Error::Parse { message, .. }
            | Error::Expand { message, .. }
            | Error::Pattern { message, .. } => message,
        }
    }

    pub(crate) fn parse(line: usize, message: impl Into<String>) -> Self {
        Error::Parse {
            line,
            message: message.into(),
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character, from the `# escape=` directive; `\` by default.
    pub escape: char,
    /// The `# syntax=` directive's value, if any (accepted, never fetched).
    pub syntax: Option<String>,
    /// The `ARG`s before the first `FROM`.
    pub meta_args: Vec<Arg>,
    /// The build stages, in order.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The stage called `name` (compared lower-cased, as stage names are).
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let name = name.to_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name.as_str()))
    }
}

/// A build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position among the stages.
    pub index: usize,
    /// The `AS name`, lower-cased as BuildKit does.
    pub name: Option<String>,
    /// The image word of `FROM`, not expanded (it is expanded later with the meta args).
    pub base: String,
    /// `FROM --platform=…`, not expanded.
    pub platform: Option<String>,
    /// 1-based line of the `FROM`.
    pub line: usize,
    /// The `FROM` line as written (continuations joined, surrounding whitespace trimmed).
    pub original: String,
    /// The stage's instructions.
    pub instructions: Vec<Instruction>,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based first line of the instruction.
    pub line: usize,
    /// The instruction as written, continuation lines joined with the escape characters and
    /// line breaks removed, comment lines inside it dropped, surrounding whitespace trimmed
    /// (heredoc bodies are not part of it). Used for history `created_by` and messages.
    pub original: String,
    /// What the instruction is.
    pub kind: Kind,
}

impl Instruction {
    /// The instruction keyword in upper case (`"RUN"`, `"COPY"`, …).
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// For `ONBUILD`, the trigger expression BuildKit stores in the image config: the
    /// instruction text without the `ONBUILD` keyword, followed by each heredoc's body and
    /// terminator on their own lines. `None` for other instructions.
    pub fn onbuild_expression(&self) -> Option<String> {
        let Kind::Onbuild(inner) = &self.kind else {
            return None;
        };
        let mut s = inner.original.clone();
        for h in inner.kind.heredocs() {
            s.push('\n');
            s.push_str(&h.content);
            s.push_str(&h.name);
        }
        Some(s)
    }
}

/// Shell form or exec (JSON array) form of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// The raw command text, not variable-expanded (the shell expands it at run time).
    Shell(String),
    /// The JSON array's strings.
    Exec(Vec<String>),
}

/// A heredoc attached to `RUN`, `COPY` or `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The body as written: every line up to the terminator, each with its line ending. Leading
    /// tabs are kept even for `<<-`; see [`Heredoc::body`].
    pub content: String,
    /// Whether variables in the body are expanded (false when the delimiter was quoted).
    pub expand: bool,
    /// `<<-`: leading tabs of the body lines (and of the terminator) are stripped.
    pub strip_tabs: bool,
}

impl Heredoc {
    /// The body with leading tabs stripped from every line when `strip_tabs` is set, as
    /// BuildKit uses it for `COPY <<-EOF` files and `RUN <<-EOF` scripts.
    pub fn body(&self) -> String {
        if !self.strip_tabs {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// The instructions and their arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `RUN [--mount=…]… [--network=…] [--security=…] cmd`.
    Run {
        /// The command. For the shell form this is the full text, heredoc markers included;
        /// when it is exactly one heredoc marker (`RUN <<EOF`), BuildKit runs that heredoc's
        /// body as the script.
        cmd: ShellOrExec,
        /// The heredocs the command line opens, in order.
        heredocs: Vec<Heredoc>,
        /// `--mount` flags, in order.
        mounts: Vec<Mount>,
        /// `--network=default|none|host`.
        network: Option<String>,
        /// `--security=sandbox|insecure`.
        security: Option<String>,
    },
    /// `COPY`.
    Copy(CopyArgs),
    /// `ADD`.
    Add(CopyArgs),
    /// `ENV`: name and raw (unexpanded, quotes kept) value pairs.
    Env(Vec<(String, String)>),
    /// `ARG`.
    Arg(Vec<Arg>),
    /// `WORKDIR path` (raw).
    Workdir(String),
    /// `USER user[:group]` (raw).
    User(String),
    /// `STOPSIGNAL signal` (raw).
    Stopsignal(String),
    /// `EXPOSE` words (raw), in the order written.
    Expose(Vec<String>),
    /// `VOLUME` paths (JSON array or words).
    Volume(Vec<String>),
    /// `ENTRYPOINT`.
    Entrypoint(ShellOrExec),
    /// `CMD`.
    Cmd(ShellOrExec),
    /// `LABEL`: key and raw value pairs.
    Label(Vec<(String, String)>),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `SHELL` (JSON array form only).
    Shell(Vec<String>),
    /// `ONBUILD instruction`.
    Onbuild(Box<Instruction>),
    /// `MAINTAINER name` (deprecated but accepted).
    Maintainer(String),
}

impl Kind {
    /// The instruction keyword in upper case.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Run { .. } => "RUN",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Stopsignal(_) => "STOPSIGNAL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Cmd(_) => "CMD",
            Kind::Label(_) => "LABEL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Shell(_) => "SHELL",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }

    /// The heredocs of a `RUN`, `COPY` or `ADD` (empty for the others).
    pub fn heredocs(&self) -> &[Heredoc] {
        match self {
            Kind::Run { heredocs, .. } => heredocs,
            Kind::Copy(c) | Kind::Add(c) => &c.heredocs,
            _ => &[],
        }
    }
}

/// An `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The name.
    pub name: String,
    /// The default, raw (quotes kept, unexpanded), if `name=default` was written.
    pub default: Option<String>,
}

/// The arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    /// Source paths/URLs (raw), heredoc sources excluded.
    pub sources: Vec<String>,
    /// The destination (raw).
    pub dest: String,
    /// `--from` (COPY only).
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--checksum` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack[=bool]` (ADD only); `None` when not given.
    pub unpack: Option<bool>,
    /// `--exclude` patterns, in order.
    pub exclude: Vec<String>,
    /// Heredoc sources (`COPY <<EOF /dest`), in the order they are listed as sources; each
    /// becomes a file named after the heredoc.
    pub heredocs: Vec<Heredoc>,
    /// Whether the JSON array form was used.
    pub json: bool,
}

/// A `HEALTHCHECK` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`.
    None,
    /// `HEALTHCHECK [options] CMD …`.
    Check {
        /// `["CMD", args…]` for the exec form, `["CMD-SHELL", cmd]` for the shell form.
        test: Vec<String>,
        /// `--interval` (unset or zero is `None`).
        interval: Option<Duration>,
        /// `--timeout`.
        timeout: Option<Duration>,
        /// `--start-period`.
        start_period: Option<Duration>,
        /// `--start-interval`.
        start_interval: Option<Duration>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

/// The type of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountKind {
    /// `type=bind` (the default).
    #[default]
    Bind,
    /// `type=cache`.
    Cache,
    /// `type=tmpfs`.
    Tmpfs,
    /// `type=secret`.
    Secret,
    /// `type=ssh`.
    Ssh,
}

impl MountKind {
    /// The lower-case name used in `type=`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
        }
    }
}

/// A `RUN --mount=…`.
///
/// String fields are raw (unexpanded). BuildKit expands the values of a mount before it
/// interprets them; when [`Mount::spec`] contains `$`, the typed fields that could not be read
/// literally are left at their defaults, and the caller should expand `spec` and read it again
/// with [`Mount::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// The mount type.
    pub kind: MountKind,
    /// `target=`/`dst=`/`destination=`.
    pub target: Option<String>,
    /// `source=`/`src=`.
    pub source: Option<String>,
    /// `from=` (stage or image).
    pub from: Option<String>,
    /// `id=`.
    pub id: Option<String>,
    /// Read-only: bind, secret and ssh mounts default to true, `rw`/`readwrite` makes false.
    pub readonly: bool,
    /// `sharing=shared|private|locked` (cache mounts).
    pub sharing: Option<String>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `required` (secret and ssh mounts).
    pub required: bool,
    /// `size=` in bytes (tmpfs mounts).
    pub size: Option<u64>,
    /// `env=` (secret mounts: the environment variable to expose the secret in).
    pub env: Option<String>,
    /// The flag's value as written (quotes of the flag word removed).
    pub spec: String,
}

impl Mount {
    /// Reads a `--mount` value (`type=cache,target=/root/.cache,…`) literally, with BuildKit's
    /// checks and messages.
    ///
    /// # Errors
    /// The message BuildKit gives for the first problem found.
    pub fn parse(spec: &str) -> Result<Mount, String> {
        flags::parse_mount(spec, false)
    }
}

/// Parses a Dockerfile.
///
/// # Errors
/// The first problem, worded as BuildKit words it and naming the line. As in BuildKit,
/// problems found while splitting the file into instructions (directives, heredocs, JSON
/// forms, `ENV`/`LABEL` syntax) are reported before problems with any instruction's
/// arguments.
pub fn parse(src: &str) -> Result<Dockerfile, Error> {
    let (directives, nodes) = lexer::split(src)?;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &nodes {
        match instructions::build(node, directives.escape)? {
            instructions::Built::From(mut stage) => {
                stage.index = stages.len();
                stages.push(stage);
            }
            instructions::Built::Instr(ins) => match stages.last_mut() {
                Some(stage) => stage.instructions.push(ins),
                None => match ins.kind {
                    Kind::Arg(args) => meta_args.extend(args),
                    _ => {
                        return Err(Error::parse(node.line, "no build stage in current context"));
                    }
                },
            },
        }
    }
    if stages.is_empty() {
        let line = nodes.last().map_or(1, |n| n.line);
        return Err(Error::parse(line, "dockerfile contains no stages to build"));
    }
    Ok(Dockerfile {
        escape: directives.escape,
        syntax: directives.syntax,
        meta_args,
        stages,
    })
}
