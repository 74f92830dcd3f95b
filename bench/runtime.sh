#!/usr/bin/env bash
# The runtime benchmark: berth-runc, crun and runc side by side in one hyperfine run.
#
#   bench/runtime.sh [RUNS]        (as root; default 200 runs per command)
#
# Measures, for a busybox bundle running /bin/true:
#   1. the full `run` lifecycle (create, start, wait, delete);
#   2. a detached create + start + delete --force;
# and prints the median ratios to crun, then each runtime's peak memory (max RSS of the
# runtime process, GNU time) over a `run`.
#
# The bundle says ociVersion 1.0.2, which all three accept (crun 1.8.1 refuses 1.2.x).
# crun 1.8.1 refuses to start containers on a cgroup v1 host that also mounts cgroup2 (a
# "hybrid" host, like this one), so everything runs inside a private mount namespace where
# /sys/fs/cgroup/unified is unmounted: the three runtimes see the same pure-v1 host.
# Containers' cgroups go beneath the benchmark's own cgroup (relative cgroupsPath).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-200}

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  need=""
  for p in hyperfine crun runc time busybox-static jq; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
  BERTH_RUNC=$(scripts/build-release.sh)/berth-runc
  export BERTH_RUNC
  export BERTH_BENCH_INNER=1
  exec unshare --mount --propagation private -- "$0" "$@"
fi

if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi

BERTH=$BERTH_RUNC
work=$(mktemp -d /tmp/berth-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
mkdir -p "$bundle/rootfs"/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$bundle/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$bundle/rootfs/etc/passwd"
(cd "$bundle" && "$BERTH" spec)
jq '.ociVersion = "1.0.2" | .process.terminal = false | .process.args = ["/bin/true"] | .linux.cgroupsPath = "berth-bench"' \
  "$bundle/config.json" > "$work/c.json" && mv "$work/c.json" "$bundle/config.json"

declare -A RT=(
  [berth]="$BERTH --root $work/root-berth"
  [crun]="crun --root $work/root-crun"
  [runc]="runc --root $work/root-runc"
)
names=(berth crun runc)

echo "== versions"
"$BERTH" --version | head -1; crun --version | head -1; runc --version | head -1
echo "berth-runc binary: $(stat -c %s "$BERTH") bytes"
echo

run_cmds=(); detach_cmds=()
for n in "${names[@]}"; do
  r=${RT[$n]}
  run_cmds+=(-n "$n run" "$r run --bundle $bundle bench-$n >/dev/null")
  detach_cmds+=(-n "$n create+start+delete" "$r create --bundle $bundle bench-d-$n && $r start bench-d-$n && $r delete --force bench-d-$n")
done

echo "== 1. run lifecycle of /bin/true ($RUNS runs each)"
hyperfine --warmup 10 --runs "$RUNS" --export-json "$work/run.json" "${run_cmds[@]}"
echo
echo "== 2. detached create + start + delete ($RUNS runs each)"
hyperfine --warmup 10 --runs "$RUNS" --export-json "$work/detach.json" "${detach_cmds[@]}"

ratio() {
  jq -r '
    (.results | map({(.command | split(" ")[0]): .median}) | add) as $m
    | "median: " + ([ $m | to_entries[] | "\(.key) \((.value*1000*100|round)/100) ms" ] | join(", "))
    + "\nratio to crun: " + ([ $m | to_entries[] | "\(.key) \((.value / $m.crun * 100 | round) / 100)" ] | join(", "))' "$1"
}
echo
echo "== summary"
echo "run lifecycle:";            ratio "$work/run.json"
echo "create+start+delete:";      ratio "$work/detach.json"

echo
echo "== peak memory of the runtime process during a run (max RSS, KiB; median of 20)"
for n in "${names[@]}"; do
  r=${RT[$n]}
  vals=()
  for i in $(seq 20); do
    vals+=("$(/usr/bin/time -f %M $r run --bundle "$bundle" mem-$n 2>&1 >/dev/null | tail -1)")
  done
  printf '%s %s\n' "$n" "$(printf '%s\n' "${vals[@]}" | sort -n | sed -n 10p)"
done
