//! Parser tests on whole Dockerfiles.

use crate::*;

fn p(src: &str) -> Dockerfile {
    match parse(src) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {e}\n{src}"),
    }
}

fn err(src: &str) -> String {
    match parse(src) {
        Ok(d) => panic!("expected an error, got {d:?}\n{src}"),
        Err(e) => e.to_string(),
    }
}

fn kinds(d: &Dockerfile, stage: usize) -> Vec<&Kind> {
    d.stages[stage]
        .instructions
        .iter()
        .map(|i| &i.kind)
        .collect()
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1.7
# check=skip=JSONArgsRecommended
ARG GO_VERSION=1.22
ARG BASE="alpine:3.19"

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build
WORKDIR /src
# Dependencies first, for the cache.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    # a comment inside the continuation
    go build -o /out/app ./cmd/app

FROM ${BASE}
RUN apk add --no-cache ca-certificates
COPY --from=build --chmod=0755 /out/app /usr/local/bin/app
ENV APP_ENV=production PORT="8080"
EXPOSE 8080/tcp 9090
USER 65534:65534
HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD wget -qO- http://localhost:8080/health || exit 1
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--listen", ":8080"]
"#;

#[test]
fn multi_stage() {
    let d = p(MULTI_STAGE);
    assert_eq!(d.escape, '\\');
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(
        d.meta_args,
        [
            Arg {
                name: "GO_VERSION".into(),
                default: Some("1.22".into())
            },
            Arg {
                name: "BASE".into(),
                default: Some("\"alpine:3.19\"".into())
            }
        ]
    );
    assert_eq!(d.stages.len(), 2);
    let s0 = &d.stages[0];
    assert_eq!(s0.index, 0);
    assert_eq!(s0.name.as_deref(), Some("build"));
    assert_eq!(s0.base, "golang:${GO_VERSION}");
    assert_eq!(s0.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(s0.line, 6);
    assert_eq!(
        s0.original,
        "FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build"
    );
    let ins = &s0.instructions;
    assert_eq!(ins.len(), 6);
    assert_eq!(ins[0].kind, Kind::Workdir("/src".into()));
    assert_eq!(ins[0].line, 7);
    assert_eq!(ins[1].line, 9);
    let Kind::Run { cmd, mounts, .. } = &ins[2].kind else {
        panic!("{:?}", ins[2])
    };
    assert_eq!(ins[2].line, 10);
    assert_eq!(*cmd, ShellOrExec::Shell("go mod download".into()));
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts[1].target.as_deref(), Some("/root/.cache/go-build"));
    assert_eq!(mounts[1].kind, MountKind::Cache);
    assert_eq!(
        ins[4].kind,
        Kind::Arg(vec![
            Arg {
                name: "TARGETOS".into(),
                default: None
            },
            Arg {
                name: "TARGETARCH".into(),
                default: None
            }
        ])
    );
    assert_eq!(ins[5].line, 15);
    assert_eq!(
        ins[5].original,
        "RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH     go build -o /out/app ./cmd/app"
    );
    assert_eq!(ins[5].name(), "RUN");

    let s1 = &d.stages[1];
    assert_eq!(s1.index, 1);
    assert_eq!(s1.name, None);
    assert_eq!(s1.base, "${BASE}");
    assert_eq!(s1.line, 19);
    let k = kinds(&d, 1);
    let Kind::Copy(c) = k[1] else { panic!() };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert_eq!(c.sources, ["/out/app"]);
    assert_eq!(c.dest, "/usr/local/bin/app");
    assert_eq!(
        *k[2],
        Kind::Env(vec![
            ("APP_ENV".into(), "production".into()),
            ("PORT".into(), "\"8080\"".into())
        ])
    );
    assert_eq!(*k[3], Kind::Expose(vec!["8080/tcp".into(), "9090".into()]));
    assert_eq!(*k[4], Kind::User("65534:65534".into()));
    assert_eq!(
        *k[5],
        Kind::Healthcheck(Healthcheck::Check {
            test: vec![
                "CMD-SHELL".into(),
                "wget -qO- http://localhost:8080/health || exit 1".into()
            ],
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(3)),
            start_period: None,
            start_interval: None,
            retries: Some(3),
        })
    );
    assert_eq!(
        *k[6],
        Kind::Entrypoint(ShellOrExec::Exec(vec!["/usr/local/bin/app".into()]))
    );
    assert_eq!(
        *k[7],
        Kind::Cmd(ShellOrExec::Exec(vec!["--listen".into(), ":8080".into()]))
    );
    assert!(d.stage("BUILD").is_some());
}

#[test]
fn heredocs() {
    let src = "FROM alpine\n\
RUN <<EOF\n\
echo $HOME\n\
apk add curl\n\
EOF\n\
RUN <<-\"SCRIPT\" bash\n\
\techo 'quoted'\n\
\tSCRIPT\n\
RUN python3 <<PY && cat <<'TXT' > /f\n\
print('hi')\n\
PY\n\
plain $X\n\
TXT\n\
COPY <<EOF /etc/app.conf\n\
key=${VALUE}\n\
EOF\n\
COPY --chmod=0600 <<a <<-b /etc/\n\
A\n\
a\n\
\tB\n\
\tb\n\
RUN [\"echo\", \"<<EOF\"]\n\
CMD echo done\n";
    let d = p(src);
    let ins = &d.stages[0].instructions;
    let Kind::Run { cmd, heredocs, .. } = &ins[0].kind else {
        panic!()
    };
    assert_eq!(*cmd, ShellOrExec::Shell("<<EOF".into()));
    assert_eq!(
        heredocs,
        &[Heredoc {
            name: "EOF".into(),
            content: "echo $HOME\napk add curl\n".into(),
            expand: true,
            strip_tabs: false
        }]
    );
    let Kind::Run { cmd, heredocs, .. } = &ins[1].kind else {
        panic!()
    };
    assert_eq!(ins[1].line, 6);
    assert_eq!(*cmd, ShellOrExec::Shell("<<-\"SCRIPT\" bash".into()));
    assert_eq!(heredocs[0].name, "SCRIPT");
    assert!(!heredocs[0].expand && heredocs[0].strip_tabs);
    assert_eq!(heredocs[0].content, "\techo 'quoted'\n");
    assert_eq!(heredocs[0].body(), "echo 'quoted'\n");
    let Kind::Run { cmd, heredocs, .. } = &ins[2].kind else {
        panic!()
    };
    assert_eq!(ins[2].line, 9);
    assert_eq!(
        *cmd,
        ShellOrExec::Shell("python3 <<PY && cat <<'TXT' > /f".into())
    );
    assert_eq!(heredocs.len(), 2);
    assert_eq!(heredocs[0].content, "print('hi')\n");
    assert!(heredocs[0].expand);
    assert_eq!(heredocs[1].content, "plain $X\n");
    assert!(!heredocs[1].expand);
    let Kind::Copy(c) = &ins[3].kind else {
        panic!()
    };
    assert_eq!(ins[3].line, 14);
    assert!(c.sources.is_empty());
    assert_eq!(c.dest, "/etc/app.conf");
    assert_eq!(c.heredocs[0].name, "EOF");
    assert_eq!(c.heredocs[0].content, "key=${VALUE}\n");
    let Kind::Copy(c) = &ins[4].kind else {
        panic!()
    };
    assert_eq!(c.heredocs.len(), 2);
    assert_eq!(c.heredocs[1].body(), "B\n");
    assert_eq!(c.chmod.as_deref(), Some("0600"));
    let Kind::Run { cmd, heredocs, .. } = &ins[5].kind else {
        panic!()
    };
    assert_eq!(ins[5].line, 22);
    assert_eq!(*cmd, ShellOrExec::Exec(vec!["echo".into(), "<<EOF".into()]));
    assert!(heredocs.is_empty());
    assert_eq!(ins[6].line, 23);
}

#[test]
fn heredoc_crlf_and_unterminated() {
    let d = p("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\nUSER u\r\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].kind.heredocs()[0].content, "x\r\n");
    assert_eq!(ins[1].kind, Kind::User("u".into()));
    assert_eq!(
        err("FROM a\nRUN true\nRUN <<EOF\nnever ends\n"),
        "dockerfile parse error on line 3: unterminated heredoc"
    );
    assert_eq!(
        err("FROM a\nCOPY <<EOF <<X\nEOF\nX\n"),
        "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn windows_escape_directive() {
    let src = [
        "# escape=`",
        "",
        "FROM mcr.microsoft.com/windows/servercore:ltsc2022",
        "SHELL [\"powershell\", \"-Command\", \"$ErrorActionPreference = 'Stop';\"]",
        "COPY testfile.txt c:\\",
        "RUN dir c:\\ ; `",
        "    Write-Host done",
        "WORKDIR C:\\app",
        "ENV PATH=C:\\tools;C:\\Windows",
        "",
    ]
    .join("\r\n");
    let d = p(&src);
    assert_eq!(d.escape, '`');
    let ins = &d.stages[0].instructions;
    assert_eq!(
        ins[0].kind,
        Kind::Shell(vec![
            "powershell".into(),
            "-Command".into(),
            "$ErrorActionPreference = 'Stop';".into()
        ])
    );
    let Kind::Copy(c) = &ins[1].kind else {
        panic!()
    };
    assert_eq!(c.dest, "c:\\");
    assert_eq!(
        ins[2].kind,
        Kind::Run {
            cmd: ShellOrExec::Shell("dir c:\\ ;     Write-Host done".into()),
            heredocs: vec![],
            mounts: vec![],
            network: None,
            security: None
        }
    );
    assert_eq!(ins[2].line, 6);
    assert_eq!(ins[3].kind, Kind::Workdir("C:\\app".into()));
    assert_eq!(ins[3].line, 8);
    assert_eq!(
        ins[4].kind,
        Kind::Env(vec![("PATH".into(), "C:\\tools;C:\\Windows".into())])
    );
}

#[test]
fn directive_rules() {
    // Directives after a comment, blank line or instruction are plain comments.
    let d = p("# a comment\n# escape=`\nFROM a\n");
    assert_eq!(d.escape, '\\');
    let d = p("\n# escape=`\nFROM a\n");
    assert_eq!(d.escape, '\\');
    let d = p("FROM a\n# syntax=x\n");
    assert_eq!(d.syntax, None);
    let d = p("#ESCAPE = `\n#Syntax=foo/bar\n#check=error=true\nFROM a\n");
    assert_eq!(d.escape, '`');
    assert_eq!(d.syntax.as_deref(), Some("foo/bar"));
    let d = p("\u{feff}# escape=`\nFROM a\n");
    assert_eq!(d.escape, '`');
    assert_eq!(
        err("# escape=x\nFROM a\n"),
        "dockerfile parse error on line 1: invalid escape token 'x' does not match ` or \\"
    );
    assert_eq!(
        err("# syntax=a\n# syntax=b\nFROM a\n"),
        "dockerfile parse error on line 2: only one syntax parser directive can be used"
    );
}

#[test]
fn continuations_and_comments() {
    let src = [
        "FROM a",
        "RUN echo a \\",
        "",
        "  # comment",
        "    b \\",
        " \\",
        "    c",
        "RUN echo \\\\",
        "LABEL a=b",
        "RUN echo last \\",
    ]
    .join("\n");
    let d = p(&src);
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].original, "RUN echo a     b      c");
    assert_eq!(ins[1].original, "RUN echo \\\\");
    assert_eq!(ins[1].line, 8);
    assert_eq!(ins[2].line, 9);
    assert_eq!(ins[3].original, "RUN echo last");
    assert_eq!(
        ins[3].kind,
        Kind::Run {
            cmd: ShellOrExec::Shell("echo last".into()),
            heredocs: vec![],
            mounts: vec![],
            network: None,
            security: None
        }
    );
}

#[test]
fn case_insensitive_and_misc_forms() {
    let src = "from a as B\n\
run echo hi\n\
Env legacy value with spaces\n\
LABEL version 1.0\n\
label a=1 \"b\"=2 c=\"x y\"\n\
volume /data /logs\n\
VOLUME [\"/a b\"]\n\
stopsignal SIGTERM\n\
MAINTAINER someone <a@b.c>\n\
ONBUILD RUN make\n\
ONBUILD COPY <<EOF /x\n\
hello\n\
EOF\n\
ENTRYPOINT exec app\n\
CMD [\"not\", json\n\
CMD []\n\
HEALTHCHECK NONE\n\
HEALTHCHECK CMD [\"curl\", \"-f\", \"http://x\"]\n";
    let d = p(src);
    assert_eq!(d.stages[0].name.as_deref(), Some("b"));
    let k = kinds(&d, 0);
    assert_eq!(
        *k[1],
        Kind::Env(vec![("legacy".into(), "value with spaces".into())])
    );
    assert_eq!(*k[2], Kind::Label(vec![("version".into(), "1.0".into())]));
    assert_eq!(
        *k[3],
        Kind::Label(vec![
            ("a".into(), "1".into()),
            ("\"b\"".into(), "2".into()),
            ("c".into(), "\"x y\"".into())
        ])
    );
    assert_eq!(*k[4], Kind::Volume(vec!["/data".into(), "/logs".into()]));
    assert_eq!(*k[5], Kind::Volume(vec!["/a b".into()]));
    assert_eq!(*k[6], Kind::Stopsignal("SIGTERM".into()));
    assert_eq!(*k[7], Kind::Maintainer("someone <a@b.c>".into()));
    let ins = &d.stages[0].instructions;
    let Kind::Onbuild(inner) = k[8] else { panic!() };
    assert_eq!(inner.name(), "RUN");
    assert_eq!(inner.original, "RUN make");
    assert_eq!(ins[8].onbuild_expression().as_deref(), Some("RUN make"));
    let Kind::Onbuild(inner) = k[9] else { panic!() };
    assert_eq!(inner.kind.heredocs()[0].content, "hello\n");
    assert_eq!(
        ins[9].onbuild_expression().as_deref(),
        Some("COPY <<EOF /x\nhello\nEOF")
    );
    assert_eq!(ins[10].line, 14);
    assert_eq!(
        *k[10],
        Kind::Entrypoint(ShellOrExec::Shell("exec app".into()))
    );
    assert_eq!(
        *k[11],
        Kind::Cmd(ShellOrExec::Shell("[\"not\", json".into()))
    );
    assert_eq!(*k[12], Kind::Cmd(ShellOrExec::Exec(vec![])));
    assert_eq!(*k[13], Kind::Healthcheck(Healthcheck::None));
    let Kind::Healthcheck(Healthcheck::Check { test, .. }) = k[14] else {
        panic!()
    };
    assert_eq!(test, &["CMD", "curl", "-f", "http://x"]);
    assert_eq!(ins[14].name(), "HEALTHCHECK");
}

#[test]
fn copy_add_flags() {
    let src = "FROM a\n\
COPY --link --parents --exclude=*.tmp --exclude=.git [\"a b\", \"c\", \"/dst/\"]\n\
ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chown=1:2 https://x/y.tar /y\n\
ADD git@github.com:a/b.git /src\n\
COPY -- --weird /dst\n";
    let d = p(src);
    let k = kinds(&d, 0);
    let Kind::Copy(c) = k[0] else { panic!() };
    assert!(c.link && c.parents && c.json);
    assert_eq!(c.exclude, ["*.tmp", ".git"]);
    assert_eq!(c.sources, ["a b", "c"]);
    assert_eq!(c.dest, "/dst/");
    let Kind::Add(a) = k[1] else { panic!() };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert!(a.keep_git_dir);
    assert_eq!(a.unpack, Some(false));
    assert_eq!(a.chown.as_deref(), Some("1:2"));
    let Kind::Add(a) = k[2] else { panic!() };
    assert_eq!(a.unpack, None);
    assert!(!a.keep_git_dir);
    let Kind::Copy(c) = k[3] else { panic!() };
    assert_eq!(c.sources, ["--weird"]);
}

#[test]
fn run_flags() {
    let src = "FROM a\n\
RUN --network=none --security=insecure --mount=type=secret,id=npm,target=/root/.npmrc \\\n\
    --mount=type=bind,from=build,source=/out,target=/in,rw \\\n\
    --mount=type=tmpfs,target=/tmp,size=1g \\\n\
    --mount=type=ssh,required=true \\\n\
    npm ci\n\
RUN --mount=type=cache,target=$HOME/.cache,uid=$UID make\n";
    let d = p(src);
    let Kind::Run {
        mounts,
        network,
        security,
        cmd,
        ..
    } = kinds(&d, 0)[0]
    else {
        panic!()
    };
    assert_eq!(network.as_deref(), Some("none"));
    assert_eq!(security.as_deref(), Some("insecure"));
    assert_eq!(*cmd, ShellOrExec::Shell("npm ci".into()));
    assert_eq!(mounts.len(), 4);
    assert_eq!(mounts[0].kind, MountKind::Secret);
    assert!(mounts[0].readonly);
    assert_eq!(mounts[1].from.as_deref(), Some("build"));
    assert!(!mounts[1].readonly);
    assert_eq!(mounts[2].size, Some(1 << 30));
    assert!(mounts[3].required);
    let Kind::Run { mounts, .. } = kinds(&d, 0)[1] else {
        panic!()
    };
    assert_eq!(mounts[0].uid, None);
    let expanded = mounts[0]
        .spec
        .replace("$HOME", "/root")
        .replace("$UID", "1000");
    let m = Mount::parse(&expanded).unwrap();
    assert_eq!(m.uid, Some(1000));
    assert_eq!(m.target.as_deref(), Some("/root/.cache"));
}

/// Every error path, with its line.
#[test]
fn errors() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "dockerfile parse error on line 1: file with no instructions",
        ),
        (
            "# only\n\n",
            "dockerfile parse error on line 2: file with no instructions",
        ),
        (
            "ARG A\n",
            "dockerfile parse error on line 1: dockerfile contains no stages to build",
        ),
        (
            "RUN x\n",
            "dockerfile parse error on line 1: no build stage in current context",
        ),
        (
            "FROM a\n\nFOO bar\n",
            "dockerfile parse error on line 3: unknown instruction: FOO (did you mean FROM?)",
        ),
        (
            "FROM a\n\nXYZZY bar\n",
            "dockerfile parse error on line 3: unknown instruction: XYZZY",
        ),
        (
            "FROM a\nRUNN x\n",
            "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)",
        ),
        (
            "FROM a\ncopyy a b\n",
            "dockerfile parse error on line 2: unknown instruction: copyy (did you mean copy?)",
        ),
        (
            "FROM\n",
            "dockerfile parse error on line 1: FROM requires either one or three arguments",
        ),
        (
            "FROM a b\n",
            "dockerfile parse error on line 1: FROM requires either one or three arguments",
        ),
        (
            "FROM a AS 1x\n",
            "dockerfile parse error on line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols",
        ),
        (
            "FROM --foo=x a\n",
            "dockerfile parse error on line 1: unknown flag: --foo",
        ),
        (
            "FROM a\nCOPY x\n",
            "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        (
            "FROM a\nADD\n",
            "dockerfile parse error on line 2: ADD requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        (
            "FROM a\nCOPY --frm=b x y\n",
            "dockerfile parse error on line 2: unknown flag: --frm (did you mean from?)",
        ),
        (
            "FROM a\nADD --from=b x y\n",
            "dockerfile parse error on line 2: unknown flag: --from",
        ),
        (
            "FROM a\nCOPY --link=maybe x y\n",
            "dockerfile parse error on line 2: expecting boolean value for flag --link, not: maybe",
        ),
        (
            "FROM a\nCOPY --from x y\n",
            "dockerfile parse error on line 2: missing a value on flag: --from",
        ),
        (
            "FROM a\nCOPY --from=a --from=b x y\n",
            "dockerfile parse error on line 2: duplicate flag specified: --from",
        ),
        (
            "FROM a\nCOPY [\"a\", 1]\n",
            "dockerfile parse error on line 2: when using JSON array syntax, arrays must be comprised of strings only",
        ),
        (
            "FROM a\nENV\n",
            "dockerfile parse error on line 2: ENV requires at least one argument",
        ),
        (
            "FROM a\nENV a\n",
            "dockerfile parse error on line 2: ENV must have two arguments",
        ),
        (
            "FROM a\nENV =x\n",
            "dockerfile parse error on line 2: ENV names can not be blank",
        ),
        (
            "FROM a\nENV a=1 b\n",
            "dockerfile parse error on line 2: Syntax error - can't find = in \"b\". Must be of the form: name=value",
        ),
        (
            "FROM a\nLABEL\n",
            "dockerfile parse error on line 2: LABEL requires at least one argument",
        ),
        (
            "FROM a\nLABEL =x\n",
            "dockerfile parse error on line 2: LABEL names can not be blank",
        ),
        (
            "FROM a\nARG\n",
            "dockerfile parse error on line 2: ARG requires at least one argument",
        ),
        (
            "ARG =x\nFROM a\n",
            "dockerfile parse error on line 1: ARG names can not be blank",
        ),
        (
            "FROM a\nWORKDIR\n",
            "dockerfile parse error on line 2: WORKDIR requires exactly one argument",
        ),
        (
            "FROM a\nUSER\n",
            "dockerfile parse error on line 2: USER requires exactly one argument",
        ),
        (
            "FROM a\nSTOPSIGNAL\n",
            "dockerfile parse error on line 2: STOPSIGNAL requires exactly one argument",
        ),
        (
            "FROM a\nMAINTAINER\n",
            "dockerfile parse error on line 2: MAINTAINER requires exactly one argument",
        ),
        (
            "FROM a\nEXPOSE\n",
            "dockerfile parse error on line 2: EXPOSE requires at least one argument",
        ),
        (
            "FROM a\nVOLUME\n",
            "dockerfile parse error on line 2: VOLUME requires at least one argument",
        ),
        (
            "FROM a\nVOLUME [\" \"]\n",
            "dockerfile parse error on line 2: VOLUME specified can not be an empty string",
        ),
        (
            "FROM a\nSHELL\n",
            "dockerfile parse error on line 2: SHELL requires at least one argument",
        ),
        (
            "FROM a\nSHELL []\n",
            "dockerfile parse error on line 2: SHELL requires at least one argument",
        ),
        (
            "FROM a\nSHELL bash -c\n",
            "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM a\nONBUILD\n",
            "dockerfile parse error on line 2: ONBUILD requires at least one argument",
        ),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            "FROM a\nONBUILD FROM b\n",
            "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nONBUILD maintainer b\n",
            "dockerfile parse error on line 2: MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nONBUILD COPY x\n",
            "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        (
            "FROM a\nHEALTHCHECK\n",
            "dockerfile parse error on line 2: HEALTHCHECK requires at least one argument",
        ),
        (
            "FROM a\nHEALTHCHECK NONE x\n",
            "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments",
        ),
        (
            "FROM a\nHEALTHCHECK CMD\n",
            "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD",
        ),
        (
            "FROM a\nHEALTHCHECK foo x\n",
            "dockerfile parse error on line 2: Unknown type \"FOO\" in HEALTHCHECK (try CMD)",
        ),
        (
            "FROM a\nHEALTHCHECK --interval=1us CMD x\n",
            "dockerfile parse error on line 2: Interval \"interval\" cannot be less than 1ms",
        ),
        (
            "FROM a\nHEALTHCHECK --timeout=5 CMD x\n",
            "dockerfile parse error on line 2: time: missing unit in duration \"5\"",
        ),
        (
            "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
            "dockerfile parse error on line 2: --retries cannot be negative (-1)",
        ),
        (
            "FROM a\nHEALTHCHECK --retries=x CMD x\n",
            "dockerfile parse error on line 2: strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        (
            "FROM a\nHEALTHCHECK --bogus=1 CMD x\n",
            "dockerfile parse error on line 2: unknown flag: --bogus",
        ),
        (
            "FROM a\nRUN --foo x\n",
            "dockerfile parse error on line 2: unknown flag: --foo",
        ),
        (
            "FROM a\nRUN --network=bridge x\n",
            "dockerfile parse error on line 2: invalid network mode \"bridge\"",
        ),
        (
            "FROM a\nRUN --security=root x\n",
            "dockerfile parse error on line 2: security \"root\" is not valid",
        ),
        (
            "FROM a\nRUN --mount=type=nope x\n",
            "dockerfile parse error on line 2: unsupported mount type \"nope\"",
        ),
        (
            "FROM a\nRUN \\\n --mount=type=secret x\n",
            "dockerfile parse error on line 2: invalid secret mount. one of source, target required",
        ),
        (
            "FROM a\nCMD --x y\n",
            "dockerfile parse error on line 2: unknown flag: --x",
        ),
        (
            "FROM a\nENTRYPOINT [\"a\", null]\n",
            "dockerfile parse error on line 2: when using JSON array syntax, arrays must be comprised of strings only",
        ),
        (
            "FROM a\nEXPOSE --p 80\n",
            "dockerfile parse error on line 2: unknown flag: --p",
        ),
    ];
    for (src, want) in cases {
        let got = err(src);
        assert_eq!(&got, want, "source {src:?}");
    }
    let e = parse("FROM a\n\n\nXYZZY\n").unwrap_err();
    assert_eq!(e.line(), Some(4));
    assert_eq!(e.message(), "unknown instruction: XYZZY");
}

#[test]
fn split_errors_come_first() {
    // As in BuildKit, a problem found while splitting the file wins over an earlier
    // instruction's argument problem.
    assert_eq!(
        err("FROM a\nFOO\nENV a=1 b\n"),
        "dockerfile parse error on line 3: Syntax error - can't find = in \"b\". Must be of the form: name=value"
    );
}

#[test]
fn stopsignal_ignores_flags_and_healthcheck_none_flags() {
    let d = p("FROM a\nSTOPSIGNAL --x 9\nHEALTHCHECK --interval=bad NONE\n");
    let k = kinds(&d, 0);
    assert_eq!(*k[0], Kind::Stopsignal("9".into()));
    assert_eq!(*k[1], Kind::Healthcheck(Healthcheck::None));
}

#[test]
fn instruction_names() {
    let d = p(MULTI_STAGE);
    let names: Vec<&str> = d.stages[1].instructions.iter().map(|i| i.name()).collect();
    assert_eq!(
        names,
        [
            "RUN",
            "COPY",
            "ENV",
            "EXPOSE",
            "USER",
            "HEALTHCHECK",
            "ENTRYPOINT",
            "CMD"
        ]
    );
}

#[test]
fn expand_with_meta_args() {
    let d = p(MULTI_STAGE);
    let vars = |n: &str| match n {
        "GO_VERSION" => Some("1.22".to_string()),
        _ => None,
    };
    assert_eq!(
        expand(&d.stages[0].base, d.escape, &vars).unwrap(),
        "golang:1.22"
    );
    let base_default = d.meta_args[1].default.as_deref().unwrap();
    assert_eq!(
        expand(base_default, d.escape, &|_| None).unwrap(),
        "alpine:3.19"
    );
    assert_eq!(referenced_vars(&d.stages[1].base, d.escape), ["BASE"]);
}
