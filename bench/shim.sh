#!/usr/bin/env bash
# The per-container monitor's memory: N idle containers (busybox `sleep 1000`) under each of
#   1. berth-shim (the engine's shim, the runtime library in its forked children);
#   2. conmon (podman's monitor), driving crun (CONMON_RUNTIME=runc to use runc);
#   3. containerd-shim-runc-v2 (containerd's and dockerd's), through `ctr run -d` on a
#      containerd of our own, with runc;
# then each monitor process's resident and proportional set size from
# /proc/PID/smaps_rollup (Rss, Pss: what `smem` shows), averaged, and the ratios.
#
#   bench/shim.sh [N]        (as root; default 20)
#
# BERTH_SHIM=PATH skips the build (scripts/build-release.sh) and measures that binary.
#
# Everything runs in a private mount namespace with a tmpfs on /run (containerd's shims keep
# their state in /run/containerd) and without /sys/fs/cgroup/unified (crun 1.8.1 refuses a
# hybrid host). Containers' cgroups go beneath this script's own memory cgroup. The monitors are
# measured once idle: berth-shim releases its start-up pages after 0.5 s without events.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
CONMON_RUNTIME=${CONMON_RUNTIME:-crun}

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  need=""
  for p in conmon crun runc containerd socat jq busybox-static; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
  if [ -z "${BERTH_SHIM:-}" ]; then BERTH_SHIM=$(scripts/build-release.sh)/berth-shim; fi
  export BERTH_SHIM
  export BERTH_BENCH_INNER=1
  exec unshare --mount --propagation private -- "$0" "$@"
fi

if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
mount -t tmpfs -o mode=0755 tmpfs /run

work=$(mktemp -d /tmp/berth-shim-bench-XXXXXX)
base=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
[ -n "$base" ] || base=/
parent=${base%/}/berth-bench-shim
hierarchies=$(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts)
existed=""
for h in $hierarchies; do [ -d "$h$base" ] && existed="$existed $h$base"; done

berth_states=(); conmon_ids=(); ctr_ids=(); containerd_pid=""
cleanup() {
  set +e
  for s in "${berth_states[@]}"; do
    [ -S "$s/shim.sock" ] && printf 'kill 9\n' | socat - "UNIX-CONNECT:$s/shim.sock" >/dev/null 2>&1
  done
  for id in "${conmon_ids[@]}"; do
    "$CONMON_RUNTIME" --root "$work/conmon-root" kill "$id" KILL >/dev/null 2>&1
  done
  for id in "${ctr_ids[@]}"; do ctr_ kill -s KILL "$id" >/dev/null 2>&1; done
  sleep 1
  for id in "${conmon_ids[@]}"; do
    "$CONMON_RUNTIME" --root "$work/conmon-root" delete --force "$id" >/dev/null 2>&1
  done
  for id in "${ctr_ids[@]}"; do
    ctr_ task delete --force "$id" >/dev/null 2>&1
    ctr_ containers delete "$id" >/dev/null 2>&1
  done
  [ -n "$containerd_pid" ] && kill "$containerd_pid" 2>/dev/null && wait "$containerd_pid" 2>/dev/null
  # Give the shims time to record their exits and leave.
  for s in "${berth_states[@]}"; do
    for _ in $(seq 50); do [ -e "$s/shim.pid" ] || break; sleep 0.1; done
  done
  for h in $hierarchies; do
    [ -d "$h$parent" ] && find "$h$parent" -depth -type d -exec rmdir {} + 2>/dev/null
    p=$h$base
    while [ "$p" != "$h" ] && [ "$p" != / ]; do
      case " $existed " in *" $p "*) break ;; esac
      rmdir "$p" 2>/dev/null; p=$(dirname "$p")
    done
  done
  rm -rf "$work"
}
trap cleanup EXIT

ctr_() { ctr --address "$work/containerd/containerd.sock" -n bench "$@"; }

# A busybox root, shared read-only by every container of berth and conmon.
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
mkdir -p "$work/spec" && (cd "$work/spec" && runc spec)
bundle() { # bundle DIR CGROUP
  mkdir -p "$1"
  jq --arg root "$rootfs" --arg cg "$2" \
    '.ociVersion = "1.0.2" | .process.terminal = false | .process.args = ["sleep", "1000"]
     | .root = {path: $root, readonly: true} | .linux.cgroupsPath = $cg' \
    "$work/spec/config.json" > "$1/config.json"
}

echo "== versions"
echo "berth-shim: $(stat -c %s "$BERTH_SHIM") bytes"
conmon --version | head -1
"$CONMON_RUNTIME" --version | head -1
containerd --version
echo

echo "== starting $N idle containers under each monitor"
# 1. berth-shim
for i in $(seq "$N"); do
  d=$work/berth/$i
  bundle "$d/bundle" "$parent/berth-$i"
  mkdir -p -m 0700 "$d/state"
  mkdir -p "$d/data"
  printf '{"id":"bench-berth-%s","bundle":"%s","runtime_root":"%s","tty":false,"stdin":false,"stdin_once":false,"log":{"path":"%s","max_size":10485760,"max_files":3},"exit_file":"%s","runtime":null}' \
    "$i" "$d/bundle" "$work/berth-root" "$d/data/log.json" "$d/data/exit.json" > "$d/state/shim.json"
  out=$("$BERTH_SHIM" "$d/state")
  case $out in created*) ;; *) echo "berth-shim: $out" >&2; exit 1 ;; esac
  berth_states+=("$d/state")
  r=$(printf 'start\n' | socat - "UNIX-CONNECT:$d/state/shim.sock")
  [ "$r" = ok ] || { echo "start: $r" >&2; exit 1; }
done
# 2. conmon
for i in $(seq "$N"); do
  d=$work/conmon/$i; id=bench-conmon-$i
  bundle "$d/bundle" "$parent/conmon-$i"
  mkdir -p "$d/exits" "$d/persist" "$d/sock"
  conmon --api-version 1 -c "$id" -u "$id" -n "$id" -r "$(command -v "$CONMON_RUNTIME")" \
    -b "$d/bundle" -p "$d/ctr.pid" --conmon-pidfile "$d/conmon.pid" \
    --exit-dir "$d/exits" --persist-dir "$d/persist" --socket-dir-path "$d/sock" \
    -l "k8s-file:$d/ctr.log" --log-level error \
    --runtime-arg --root="$work/conmon-root" </dev/null >/dev/null 2>&1
  conmon_ids+=("$id")
  # Without podman's sync pipe, conmon's first process returns before the runtime's create.
  for _ in $(seq 100); do [ -s "$d/ctr.pid" ] && break; sleep 0.05; done
  "$CONMON_RUNTIME" --root "$work/conmon-root" start "$id"
done
# 3. containerd-shim-runc-v2
mkdir -p "$work/containerd"
cat > "$work/containerd/config.toml" <<EOF
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd/containerd.sock"
[ttrpc]
  address = "$work/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
containerd --config "$work/containerd/config.toml" >"$work/containerd/log" 2>&1 &
containerd_pid=$!
for _ in $(seq 300); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
for i in $(seq "$N"); do
  id=bench-ctr-$i
  mkdir -p "$work/ctr/$i"
  cp -al "$rootfs" "$work/ctr/$i/rootfs"
  ctr_ run -d --cgroup "$parent/ctr-$i" --rootfs "$work/ctr/$i/rootfs" "$id" /bin/sleep 1000 >/dev/null
  ctr_ids+=("$id")
done

sleep 3

# The monitor processes.
berth_pids=(); conmon_pids=(); ctr_pids=()
for s in "${berth_states[@]}"; do berth_pids+=("$(cat "$s/shim.pid")"); done
for i in $(seq "$N"); do conmon_pids+=("$(cat "$work/conmon/$i/conmon.pid")"); done
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' 2>/dev/null < "$p/cmdline") || continue
  case $cmd in
    *containerd-shim-runc-v2*"$work/containerd/containerd.sock"*) ctr_pids+=("${p#/proc/}") ;;
  esac
done

# avg NAME PID...: prints "NAME count avg_rss_kib avg_pss_kib"
avg() {
  local name=$1; shift
  local n=0 rss=0 pss=0 r p
  for pid in "$@"; do
    read -r r p < <(awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} END {print r, p}' "/proc/$pid/smaps_rollup")
    rss=$((rss + r)); pss=$((pss + p)); n=$((n + 1))
  done
  if [ "$n" = 0 ]; then echo "$name 0 0 0"; return; fi
  echo "$name $n $((rss / n)) $((pss / n))"
}
read -r _ bn br bp < <(avg berth-shim "${berth_pids[@]}")
read -r _ cn cr cp < <(avg conmon "${conmon_pids[@]}")
read -r _ dn dr dp < <(avg containerd-shim "${ctr_pids[@]}")

echo
echo "== idle monitor memory, per container (KiB, /proc/PID/smaps_rollup)"
printf '%-28s %9s %12s %12s\n' monitor processes "avg RSS" "avg PSS"
printf '%-28s %9s %12s %12s\n' berth-shim "$bn" "$br" "$bp"
printf '%-28s %9s %12s %12s\n' "conmon ($CONMON_RUNTIME)" "$cn" "$cr" "$cp"
printf '%-28s %9s %12s %12s\n' "containerd-shim-runc-v2" "$dn" "$dr" "$dp"
echo
echo "== one berth-shim's resident mappings (KiB; the executable's are shared by every shim)"
awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6); perm = $2}
     /^Rss:/ && $2 > 0 {printf "%6d  %s %s\n", $2, perm, name}' "/proc/${berth_pids[0]}/smaps" |
  sed "s|$BERTH_SHIM|berth-shim|"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
echo
echo "berth-shim / conmon:          RSS $(ratio "$br" "$cr")×, PSS $(ratio "$bp" "$cp")×"
echo "berth-shim / containerd-shim: RSS $(ratio "$br" "$dr")×, PSS $(ratio "$bp" "$dp")×"
echo "goal: RSS under 1024 KiB ($([ "$br" -lt 1024 ] && echo met || echo missed)), PSS at most conmon's ($([ "$bp" -le "$cp" ] && echo met || echo missed))"
