#!/usr/bin/env bash
# Run the opencontainers/runtime-tools validation suite (the OCI runtime
# conformance tests, validation/*/*.t) against an OCI runtime, and summarise
# the TAP output.
#
# This script only RUNS things: it never builds, downloads or fetches. Before
# using it, prepare a runtime-tools checkout (commit 260e151b builds with
# Debian 12's Go 1.19):
#
#   cd $RUNTIME_TOOLS && GOFLAGS=-mod=vendor GOPROXY=off make runtimetest validation-executables
#
# and a busybox rootfs tarball rootfs-amd64.tar.gz at its top (the tests untar
# rootfs-$GOARCH.tar.gz from the current directory into each bundle, and copy
# ./runtimetest into it, so the tests are run from $RUNTIME_TOOLS).
#
# Usage (as root):
#   tests/conformance/run-validation.sh [TEST...]        # berth (default)
#   RUNTIME=runc tests/conformance/run-validation.sh     # the same suite with runc
#
# TEST names a validation directory (e.g. "hooks" or "validation/hooks");
# without any, every validation/*/*.t runs.
#
# Environment:
#   RUNTIME         runtime command (default: <repo>/target/debug/berth-runc, built
#                   here with `cargo build -p berth-runc` if absent)
#   RUNTIME_TOOLS   runtime-tools directory (default: /work/ext/runtime-tools)
#   TEST_TIMEOUT    seconds allowed per .t file (default: 60)
#   RESULTS_DIR     where per-test .tap/.err files go (default: a new /tmp dir)
#   KEEP_UNIFIED=1  do not unmount the cgroup2 hierarchy at /sys/fs/cgroup/unified
#   CLEANUP=0       do not force-delete containers the suite left behind
#
# Everything runs inside `unshare --mount` (private propagation). On a cgroup v1
# "hybrid" host the cgroup2 mount at /sys/fs/cgroup/unified is unmounted in that
# namespace only, so the runtime and the tests see a plain cgroup v1 host.
#
# Exit status: 0 if no point failed and every .t file ran to completion, 1 otherwise.
set -u

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

RUNTIME_TOOLS=${RUNTIME_TOOLS:-/work/ext/runtime-tools}
TEST_TIMEOUT=${TEST_TIMEOUT:-60}
KEEP_UNIFIED=${KEEP_UNIFIED:-0}
CLEANUP=${CLEANUP:-1}

if [ "$(id -u)" != 0 ]; then
  echo "run-validation.sh: must run as root" >&2
  exit 2
fi

if [ -z "${RUNTIME:-}" ]; then
  RUNTIME=$REPO_ROOT/target/debug/berth-runc
  # A symlink left from when the runtime was a link to the berth binary is no runtime now.
  if [ -L "$RUNTIME" ]; then rm -f "$RUNTIME"; fi
  if [ ! -x "$RUNTIME" ]; then
    (cd "$REPO_ROOT" && cargo build -q -p berth-runc) || {
      echo "run-validation.sh: building berth-runc failed (cargo build -p berth-runc)" >&2
      exit 2
    }
  fi
fi
# A bare name (e.g. "runc") is looked up in PATH, as the tests would do.
if [[ "$RUNTIME" != */* ]]; then
  resolved=$(command -v "$RUNTIME" || true)
  if [ -z "$resolved" ]; then
    echo "run-validation.sh: runtime '$RUNTIME' not found in PATH" >&2
    exit 2
  fi
  RUNTIME=$resolved
fi
if [ ! -x "$RUNTIME" ]; then
  echo "run-validation.sh: runtime '$RUNTIME' is not executable" >&2
  exit 2
fi
export RUNTIME RUNTIME_TOOLS TEST_TIMEOUT KEEP_UNIFIED CLEANUP

# Re-run inside a private mount namespace.
if [ -z "${_RUN_VALIDATION_IN_NS:-}" ]; then
  export _RUN_VALIDATION_IN_NS=1
  exec unshare --mount --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

cd "$RUNTIME_TOOLS" || { echo "run-validation.sh: no directory $RUNTIME_TOOLS" >&2; exit 2; }
missing=0
for f in runtimetest rootfs-amd64.tar.gz; do
  if [ ! -e "$f" ]; then
    echo "run-validation.sh: missing $RUNTIME_TOOLS/$f (prepare runtime-tools first; this script does not build)" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 2

# cgroup setup: unmount the hybrid cgroup2 hierarchy, only when there is one
# (/sys/fs/cgroup itself is not cgroup2, and /sys/fs/cgroup/unified is a cgroup2 mount).
cgroup_note="cgroup: unchanged"
root_fstype=$(findmnt -n -o FSTYPE /sys/fs/cgroup 2>/dev/null || true)
unified_fstype=$(findmnt -n -o FSTYPE /sys/fs/cgroup/unified 2>/dev/null || true)
if [ "$root_fstype" != cgroup2 ] && [ "$unified_fstype" = cgroup2 ]; then
  if [ "$KEEP_UNIFIED" = 1 ]; then
    cgroup_note="cgroup: v1 hybrid, /sys/fs/cgroup/unified kept (KEEP_UNIFIED=1)"
  elif umount /sys/fs/cgroup/unified; then
    cgroup_note="cgroup: v1 hybrid, /sys/fs/cgroup/unified unmounted in this mount namespace"
  else
    cgroup_note="cgroup: v1 hybrid, FAILED to unmount /sys/fs/cgroup/unified"
  fi
elif [ "$root_fstype" = cgroup2 ]; then
  cgroup_note="cgroup: unified v2 host (the runtime-tools cgroup checks do not support v2)"
fi

RESULTS_DIR=${RESULTS_DIR:-$(mktemp -d /tmp/validation-results.XXXXXX)}
mkdir -p "$RESULTS_DIR"

# Which tests.
tests=()
if [ $# -gt 0 ]; then
  for a in "$@"; do
    a=${a#validation/}; a=${a%/}; a=${a%.t}; a=${a%%/*}
    tests+=("validation/$a/$a.t")
  done
else
  for t in validation/*/*.t; do tests+=("$t"); done
fi
if [ ${#tests[@]} -eq 0 ]; then
  echo "run-validation.sh: no validation/*/*.t executables in $RUNTIME_TOOLS (build them first)" >&2
  exit 2
fi

list_containers() { "$RUNTIME" list -q 2>/dev/null | sort; }
before_containers=$(list_containers)

echo "runtime:       $RUNTIME"
echo "runtime-tools: $RUNTIME_TOOLS ($(cat VERSION 2>/dev/null || echo '?'))"
echo "$cgroup_note"
echo "timeout:       ${TEST_TIMEOUT}s per test file"
echo "results dir:   $RESULTS_DIR"
echo "tests:         ${#tests[@]}"
echo

# Parse one TAP file. Prints tab-separated records:
#   POINT <num> <status> <description>      status: ok | fail | skip | todo
#   PLAN  <n>
#   DIAG  <num> <line>                       diagnostics of a failing point
parse_tap() {
  awk '
    { line[NR] = $0 }
    END {
      n = NR
      # Where do the YAML diagnostics of this file go? SpecErrorOK prints them after the
      # point, RuntimeInsideValidate before it. Decide from the first point.
      before = 0
      for (i = 1; i <= n; i++) if (line[i] ~ /^(not )?ok [0-9]+/) { before = (i > 1 && line[i-1] ~ /^  \.\.\.$/); break }
      for (i = 1; i <= n; i++) {
        l = line[i]
        if (l ~ /^1\.\.[0-9]+/) { sub(/^1\.\./, "", l); sub(/[^0-9].*$/, "", l); print "PLAN\t" l; continue }
        if (l !~ /^(not )?ok [0-9]+/) continue
        notok = (l ~ /^not ok/)
        rest = l; sub(/^(not )?ok /, "", rest)
        num = rest; sub(/[^0-9].*$/, "", num)
        desc = rest; sub(/^[0-9]+ */, "", desc)
        status = notok ? "fail" : "ok"
        if (desc ~ /^# *[Ss][Kk][Ii][Pp]/) status = "skip"
        else if (desc ~ /^# *[Tt][Oo][Dd][Oo]/) status = (notok ? "todo" : "ok")
        sub(/^- */, "", desc)
        print "POINT\t" num "\t" status "\t" desc
        if (status != "fail") continue
        # YAML block just before the point (RuntimeInsideValidate prints it first).
        if (before && i > 1 && line[i-1] ~ /^  \.\.\.$/) {
          s = i - 1
          while (s > 1 && line[s] !~ /^  ---$/) s--
          print "DIAG\t" num "\t[diagnostic printed before the point]"
          for (k = s; k < i; k++) print "DIAG\t" num "\t" line[k]
        }
        # YAML blocks / "#" lines just after it.
        inyaml = 0; first = 1
        for (k = i + 1; k <= n; k++) {
          m = line[k]
          if (!inyaml && (m ~ /^(not )?ok [0-9]+/ || m ~ /^1\.\.[0-9]+/)) break
          if (!inyaml && m ~ /^  ---$/) { if (before) break; inyaml = 1 }
          else if (inyaml && m ~ /^  \.\.\.$/) { inyaml = 0; if (first) { print "DIAG\t" num "\t[diagnostic printed after the point]"; first = 0 } print "DIAG\t" num "\t" m; continue }
          else if (!inyaml && m !~ /^#/) break
          if (first) { print "DIAG\t" num "\t[diagnostic printed after the point]"; first = 0 }
          print "DIAG\t" num "\t" m
        }
      }
    }' "$1"
}

summary_rows=()
fail_report=""
total_ok=0; total_fail=0; total_skip=0; total_todo=0; total_points=0
incomplete_files=0
zero_point_errors=0

for t in "${tests[@]}"; do
  name=$(basename "$(dirname "$t")")
  tap="$RESULTS_DIR/$name.tap"
  err="$RESULTS_DIR/$name.err"
  if [ ! -x "$t" ]; then
    echo "===== $t: MISSING (not built)"
    summary_rows+=("$(printf '%-40s %5s %5s %5s %5s %5s  %s' "$name" - - - - - "missing executable")")
    fail_report+="$t	-	(file) executable missing"$'\n'
    incomplete_files=$((incomplete_files + 1))
    continue
  fi
  echo "===== $t"
  start=$(date +%s)
  RUNTIME="$RUNTIME" timeout --kill-after=10 "$TEST_TIMEOUT" "$t" >"$tap" 2>"$err" </dev/null
  rc=$?
  secs=$(( $(date +%s) - start ))
  cat "$tap"
  if [ -s "$err" ]; then
    echo "----- stderr of $name:"
    cat "$err"
  fi
  echo "----- exit status $rc, ${secs}s"
  echo

  parsed=$(parse_tap "$tap")
  plan=$(printf '%s\n' "$parsed" | awk -F'\t' '$1=="PLAN"{print $2; exit}')
  n_ok=$(printf '%s\n' "$parsed"   | awk -F'\t' '$1=="POINT" && $3=="ok"' | wc -l)
  n_fail=$(printf '%s\n' "$parsed" | awk -F'\t' '$1=="POINT" && $3=="fail"' | wc -l)
  n_skip=$(printf '%s\n' "$parsed" | awk -F'\t' '$1=="POINT" && $3=="skip"' | wc -l)
  n_todo=$(printf '%s\n' "$parsed" | awk -F'\t' '$1=="POINT" && $3=="todo"' | wc -l)
  n_points=$((n_ok + n_fail + n_skip + n_todo))
  total_ok=$((total_ok + n_ok)); total_fail=$((total_fail + n_fail))
  total_skip=$((total_skip + n_skip)); total_todo=$((total_todo + n_todo))
  total_points=$((total_points + n_points))

  # A file is incomplete if it timed out or exited non-zero (util.Fatal), or its
  # points do not match its plan. The *_fail tests (process_rlimits_fail, ...)
  # print nothing and exit 0 when the runtime rejects the config as required:
  # that is a pass, noted but not counted as incomplete.
  note=""; incomplete=0
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then note="TIMEOUT after ${TEST_TIMEOUT}s"; incomplete=1
  elif [ "$rc" != 0 ]; then note="exit $rc"; incomplete=1; fi
  if [ -z "$plan" ]; then
    if [ "$rc" = 0 ] && [ "$n_points" = 0 ]; then
      note="no TAP output, exit 0 (pass: the runtime refused the config)"
    else
      note="${note:+$note; }no TAP plan"; incomplete=1
    fi
  elif [ "$plan" != "$n_points" ]; then note="${note:+$note; }plan $plan but $n_points points"; incomplete=1; fi
  summary_rows+=("$(printf '%-40s %5s %5s %5s %5s %5s  %s' "$name" "${plan:--}" "$n_ok" "$n_fail" "$n_skip" "$n_todo" "$note")")

  if [ "$incomplete" = 1 ]; then
    incomplete_files=$((incomplete_files + 1))
    fail_report+="$t	-	(file) $note"$'\n'
    if [ -s "$err" ]; then
      fail_report+="$(sed 's/^/      | /' "$err")"$'\n'
    fi
  fi
  # Some tests (hooks, hooks_stdin, ...) report no point at all, only a YAML
  # "error" diagnostic: list those too (not counted as "not ok").
  if [ "$n_points" = 0 ] && grep -q '"error"' "$tap"; then
    zero_point_errors=$((zero_point_errors + 1))
    summary_rows[${#summary_rows[@]}-1]+="${note:+; }0 points, error diagnostic"
    fail_report+="$t	-	(file) no TAP point, but an error diagnostic:"$'\n'"$(grep -v -e '^TAP version' -e '^1\.\.' "$tap" | sed 's/^/      | /')"$'\n'
    if [ -s "$err" ]; then
      fail_report+="      | [stderr of $name]"$'\n'"$(sed 's/^/      | /' "$err")"$'\n'
    fi
  fi
  if [ "$n_fail" -gt 0 ]; then
    while IFS=$'\t' read -r kind num a b; do
      case "$kind" in
        POINT) [ "$a" = fail ] && fail_report+="$t	$num	$b"$'\n' ;;
        DIAG)  fail_report+="      | $a${b:+	$b}"$'\n' ;;
      esac
    done <<<"$parsed"
    if [ -s "$err" ] && [ "$rc" = 0 ]; then
      fail_report+="      | [stderr of $name]"$'\n'"$(sed 's/^/      | /' "$err")"$'\n'
    fi
  fi
done

# Containers the suite left behind.
after_containers=$(list_containers)
leftover=$(comm -13 <(printf '%s\n' "$before_containers") <(printf '%s\n' "$after_containers") | sed '/^$/d')

echo "================================================================"
echo "SUMMARY  runtime=$RUNTIME"
echo "$cgroup_note"
printf '%-40s %5s %5s %5s %5s %5s  %s\n' "test" "plan" "ok" "notok" "skip" "todo" "note"
for r in "${summary_rows[@]}"; do echo "$r"; done
echo
echo "points: $total_points  passed: $total_ok  failed (not ok): $total_fail  skipped: $total_skip  todo: $total_todo"
echo "test files: ${#tests[@]}  incomplete (timeout / crash / plan mismatch / missing): $incomplete_files"
echo "test files with no point but an error diagnostic: $zero_point_errors"
echo "TOTAL not ok: $total_fail"
echo
if [ -n "$fail_report" ]; then
  echo "FAILING POINTS (file<TAB>number<TAB>description, diagnostics indented):"
  printf '%s' "$fail_report"
else
  echo "FAILING POINTS: none"
fi

if [ -n "$leftover" ]; then
  echo
  echo "containers left behind by the suite: $(echo "$leftover" | tr '\n' ' ')"
  if [ "$CLEANUP" = 1 ]; then
    while read -r id; do
      [ -n "$id" ] && "$RUNTIME" delete --force "$id" >/dev/null 2>&1 && echo "  deleted $id"
    done <<<"$leftover"
  fi
fi

if [ "$total_fail" -gt 0 ] || [ "$incomplete_files" -gt 0 ] || [ "$zero_point_errors" -gt 0 ]; then exit 1; fi
exit 0
