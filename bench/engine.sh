#!/usr/bin/env bash
# The engine benchmark (issue #9, "Speed and memory"): berth's daemon driven by the docker CLI,
# side by side with dockerd (Debian's docker.io, driven by the same docker CLI), podman and the
# bare runtimes, in one run each, printing medians and ratios (never a threshold).
#
#   bench/engine.sh [RUNS] [BATCH_RUNS]    (as root; default 10 runs, 3 runs of the batches)
#
# BENCH_BATCH and BENCH_IDLE change the 50 and the 20 below (for a quick try); DOCKER_CLI the
# docker CLI used (default: the one on PATH).
#
# 1. `run --rm --network none IMG true` end to end (RUNS runs each, one hyperfine run):
#      berth     `berth run --rm --network none IMG true` (berth's own CLI; BERTH_HOST);
#      berth (docker CLI) `docker -H unix://berth.sock run --rm --network none IMG true`;
#      dockerd   `docker -H unix://docker.sock run --rm --network none IMG true`;
#      podman    `podman run --rm --network none IMG true`;
#      and, for reference, `docker -H unix://berth.sock version`: what the docker CLI costs
#      by itself (start-up, /_ping, one request).
#    Then the CPU time of a run (RUNS more runs of each, not timed by hyperfine): user + system
#    time of every process of the engine (daemon, containerd, shims, conmon, runtimes, the
#    container) and of its client, from a cpuacct cgroup per engine. On a machine shared with
#    other builds the wall times are mostly waiting for a core; CPU time is not.
# 2. 50 detached containers started one after another, `run -d --network none IMG sleep 1000`
#    × 50 (total wall time; BATCH_RUNS runs, every container removed before each run, not
#    timed): berth's CLI, berth and dockerd through the docker CLI, podman's CLI, and the bare runtimes:
#    `runc run -d` of 50 busybox bundles, and crun the same way. crun 1.8.1 refuses this
#    hybrid cgroup host ("cgroups in hybrid mode not supported"): it runs in a mount namespace
#    of its own where /sys/fs/cgroup/unified is unmounted, as in bench/runtime.sh.
# 3. Idle memory with 20 running containers (`sleep 1000`), each engine in turn, measured
#    first, on daemons that have only pulled the image: the daemon's RSS and PSS (berth daemon;
#    dockerd + containerd; `podman system service`, which starts the 20 containers itself,
#    driven by the docker CLI) and each container's monitor (the parent of the container's
#    process: berth-shim, containerd-shim-runc-v2, conmon), from /proc/PID/smaps_rollup:
#    medians over the 20.
#
# Isolation: everything runs in a private mount namespace and network namespace of its own
# (loopback only; dockerd's bridge and iptables rules live and die there), with every store on
# a fresh ext4 file system (a sparse file, loop-mounted: as in bench/pull.sh, the VM's root
# file system costs ~0.5 ms of CPU per inode allocation; BENCH_FS=host keeps it instead).
# dockerd runs in a further mount namespace with a tmpfs on /run and its own /etc/docker bound
# in (FIELD-GUIDE §1). podman has a containers.conf of its own (CONTAINERS_CONF: the host's
# hard rlimits, cgroupfs, runc, file events), its own --root, --runroot and --tmpdir. The
# docker CLI gets its own DOCKER_CONFIG. Containers' cgroups go beneath the benchmark's own
# (memory) cgroup, under `berth-bench-<engine>`. The image is the busybox fixture (the
# berth-testkit example `bench-layout`), pushed to a local `docker-registry` and pulled by each
# engine once (not timed).
#
# Nothing is left behind: every container removed, every daemon stopped and waited for, the
# registry stopped, any process left in the benchmark's namespaces or cgroups reported and
# killed, mounts unmounted, the cgroups made for the benchmark removed, the work directory
# deleted; the network namespace dies with its last process.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
BATCH_RUNS=${2:-3}
BATCH=${BENCH_BATCH:-50} # containers per batch (part 2)
IDLE=${BENCH_IDLE:-20}    # running containers (part 3)

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ]; then echo "bench/engine.sh must run as root" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  need=""
  for p in hyperfine podman conmon runc crun docker.io containerd docker-registry skopeo jq curl \
    busybox-static e2fsprogs iproute2 iptables util-linux; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
  # The docker CLI on PATH (28 here; Debian's docker.io ships 20.10's as /usr/bin/docker).
  DOCKER_CLI=${DOCKER_CLI:-$(command -v docker)}
  bin=$(scripts/build-release.sh) # berth, berth-runc and berth-shim, side by side
  BERTH_BIN=$bin/berth
  [ -x "$bin/berth-shim" ] || { echo "no berth-shim beside $BERTH_BIN" >&2; exit 1; }
  BENCH_LAYOUT=$(cargo build -q --release -p berth-testkit --example bench-layout --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -1)
  LAYOUT=$("$BENCH_LAYOUT" busybox)
  export DOCKER_CLI BERTH_BIN LAYOUT
  export BERTH_BENCH_INNER=1
  exec unshare --mount --net --propagation private -- "$0" "$@"
fi

ip link set lo up
work=$(mktemp -d /var/tmp/berth-bench-engine-XXXXXX)
fs=$work/fs
mkdir -p "$fs"
own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
own=${own%/}
inner_ns=$(readlink /proc/self/ns/mnt)
cgroups_before=$(mktemp /tmp/berth-bench-engine-cgroups-XXXXXX)
find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | sort >"$cgroups_before" || true

registry_pid="" berth_pid="" berth_ns="" dockerd_pid="" docker_ns="" service_pid="" etc_docker_made=""
D="$DOCKER_CLI"
export DOCKER_CONFIG=$work/docker-cli
mkdir -p "$DOCKER_CONFIG" && echo "{}" >"$DOCKER_CONFIG/config.json" # podman reads it too
db="$D -H unix://$work/berth.sock"
export BERTH_HOST=unix://$work/berth.sock
bc=$BERTH_BIN # berth's own CLI, speaking to the daemon at BERTH_HOST
dd="$D -H unix://$work/docker.sock"
dp="$D -H unix://$work/podman.sock"
export CONTAINERS_CONF=$work/containers.conf
podman="podman --root $fs/podman --runroot $fs/podman-run --tmpdir $fs/podman-tmp --storage-driver overlay"
runc="runc --root $fs/runc-state"
crun="crun --root $fs/crun-state"
in_pure_v1() { # crun in a mount namespace where the cgroup2 mount is hidden
  unshare --mount --propagation private -- sh -c \
    'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh "$@"
}

# Processes of ours that are not this script's own: in our mount namespace or dockerd's, or in
# a cgroup of the benchmark. Our own shells are this script and its descendants.
ours_left() {
  local p ns
  for p in $(ps -eo pid=,ppid= | awk -v me=$$ '{pp[$1] = $2} END {
      for (p in pp) { q = p; mine = 0; while (q > 1) { if (q == me) { mine = 1; break }; q = pp[q] }; if (!mine) print p } }'); do
    ns=$(readlink "/proc/$p/ns/mnt" 2>/dev/null) || continue
    if [ "$ns" = "$inner_ns" ] || [ "$ns" = "$berth_ns" ] || [ "$ns" = "$docker_ns" ] ||
      grep -q "berth-bench-" "/proc/$p/cgroup" 2>/dev/null; then
      echo "$p"
    fi
  done
}

cleanup() {
  set +e
  trap - EXIT INT TERM
  echo
  echo "== cleanup"
  if [ -n "$berth_pid" ]; then
    $db ps -aq | xargs -r $db rm -f >/dev/null
    kill -TERM "$berth_pid"; wait "$berth_pid"
  fi
  if [ -n "$service_pid" ]; then kill -TERM "$service_pid"; wait "$service_pid"; fi
  if [ -n "$dockerd_pid" ]; then
    $dd ps -aq | xargs -r $dd rm -f >/dev/null
    kill -TERM "$dockerd_pid"; wait "$dockerd_pid"
  fi
  $podman rm -af -t 0 >/dev/null 2>&1
  if [ -d "$fs/runc-state" ]; then $runc list -q | xargs -r -n1 $runc delete --force 2>/dev/null; fi
  if [ -d "$fs/crun-state" ]; then in_pure_v1 sh -c "$crun list -q | xargs -r -n1 $crun delete --force" 2>/dev/null; fi
  if [ -n "$registry_pid" ]; then kill "$registry_pid"; wait "$registry_pid"; fi
  sleep 1
  local left
  left=$(ours_left)
  if [ -n "$left" ]; then
    echo "left behind, killed:"
    for p in $left; do echo "  $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; done
    kill -KILL $left 2>/dev/null
    sleep 1
  fi
  # Mounts beneath the work directory, deepest first, then the file system.
  awk -v w="$work" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m"; done
  rm -rf "$work"
  if [ -n "$etc_docker_made" ]; then rmdir /etc/docker; fi
  # The cgroups made for the benchmark (and their parents made with them), deepest first.
  find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | sort | comm -13 "$cgroups_before" - 2>/dev/null |
    grep -e "berth-bench-" | sort -r | while read -r c; do
      [ -d "$c" ] || continue # gone with a child below
      rmdir "$c" || echo "cgroup left: $c"
      d=$(dirname "$c")
      while [ "$d" != /sys/fs/cgroup ] && ! grep -qxF "$d" "$cgroups_before" && rmdir "$d" 2>/dev/null; do
        d=$(dirname "$d")
      done
    done
  echo "done: no daemon, container, mount or cgroup of the benchmark left"
}
trap 'cleanup; rm -f "$cgroups_before"' EXIT
trap 'exit 130' INT TERM

# The file system every store lives on.
if [ "${BENCH_FS:-loop}" = host ]; then
  fs_note="the host's root file system"
else
  truncate -s 16G "$work/fs.img"
  mkfs.ext4 -q -F "$work/fs.img"
  mount -o loop "$work/fs.img" "$fs"
  rm -f "$work/fs.img" # the mount keeps it
  fs_note="a fresh ext4 (loop device)"
fi

# The registry, on a free port, serving the busybox fixture.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
IMG=127.0.0.1:$port/bench-busybox:latest
skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://$IMG"

wait_sock() { # wait_sock SOCKET PID NAME LOG
  for _ in $(seq 300); do
    if $D -H "unix://$1" version >/dev/null 2>&1; then return 0; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "$3 did not start:" >&2; tail -20 "$4" >&2; exit 1
}

# berth.
cat >"$work/berth.json" <<EOF
{"cgroup-parent": "$own/berth-bench-berth"}
EOF
# The static berth binary crashes in glibc's NSS when it looks the group `berth` up and
# /etc/nsswitch.conf sends group lookups past `files` (here `files systemd`: a static glibc
# cannot load libnss_systemd.so.2): the daemon runs in a mount namespace of its own whose
# nsswitch.conf says `group: files`.
sed 's/^group:.*/group: files/' /etc/nsswitch.conf >"$work/nsswitch.conf"
unshare --mount --propagation private -- sh -c 'mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@"' sh \
  "$work/nsswitch.conf" "$BERTH_BIN" --data-root "$fs/berth" daemon --config-file "$work/berth.json" \
  --exec-root "$fs/berth-run" -H "unix://$work/berth.sock" >"$work/berth.log" 2>&1 &
berth_pid=$!
wait_sock "$work/berth.sock" "$berth_pid" "berth daemon" "$work/berth.log"
berth_ns=$(readlink "/proc/$berth_pid/ns/mnt")

# dockerd: its own mount namespace, a tmpfs on /run (libnetwork and containerd's shims use
# fixed paths there), its own /etc/docker.
mkdir -p "$work/etc-docker"
if [ ! -d /etc/docker ]; then mkdir /etc/docker; etc_docker_made=1; fi
unshare --mount --propagation private -- sh -c '
  mount -t tmpfs -o mode=0755 tmpfs /run && mount --bind "$1" /etc/docker && shift && exec "$@"' sh \
  "$work/etc-docker" dockerd --data-root "$fs/docker" --exec-root /run/berth-bench-docker \
  --pidfile /run/berth-bench-docker.pid -H "unix://$work/docker.sock" \
  --insecure-registry "127.0.0.1:$port" --cgroup-parent "$own/berth-bench-dockerd" \
  --storage-driver overlay2 >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
wait_sock "$work/docker.sock" "$dockerd_pid" dockerd "$work/dockerd.log"
docker_ns=$(readlink "/proc/$dockerd_pid/ns/mnt")

# podman.
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_config_dir = "$work/podman-net"
EOF
mkdir -p "$work/podman-net"
podman_run="$podman run --cgroup-parent $own/berth-bench-podman"

# The image in every store (not timed).
$db pull -q "$IMG" >/dev/null
$dd pull -q "$IMG" >/dev/null
$podman pull -q --tls-verify=false "$IMG" >/dev/null

# The bare runtimes' bundles: one busybox root filesystem (read-only) shared by 50 bundles.
mkdir -p "$fs/rootfs"/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$fs/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$fs/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$fs/rootfs/etc/passwd"
(cd "$work" && runc spec)
for i in $(seq "$BATCH"); do
  mkdir -p "$fs/bundles/$i"
  jq --arg root "$fs/rootfs" --arg cg "$own/berth-bench-runtime/c$i" \
    '.ociVersion = "1.0.2" | .process.terminal = false | .process.args = ["sleep", "1000"]
     | .root = {path: $root, readonly: true} | .linux.cgroupsPath = $cg' \
    "$work/config.json" >"$fs/bundles/$i/config.json"
done

echo "== versions"
echo "berth $("$BERTH_BIN" --version | head -1)"
echo "docker CLI $($D version --format '{{.Client.Version}}' 2>/dev/null)"
echo "dockerd $($dd version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
containerd --version
podman --version
runc --version | head -1
crun --version | head -1
echo "stores on $fs_note; image $IMG (the busybox fixture)"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

monitor_of() { # the monitor of a container: the parent of its process
  awk '{print $4}' "/proc/$1/stat"
}
mem_of() { # "RSS PSS" in KiB
  awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} END {print r, p}' "/proc/$1/smaps_rollup"
}
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
kib() { awk -v k="$1" 'BEGIN {printf "%.2f MiB", k / 1024}'; }

summary=()

# ---- 3. Idle memory with 20 running containers (first: daemons that have only pulled).
echo "== 3. idle memory with $IDLE running containers (sleep 1000)"
$podman system service --time=0 "unix://$work/podman.sock" >"$work/podman-service.log" 2>&1 &
service_pid=$!
wait_sock "$work/podman.sock" "$service_pid" "podman system service" "$work/podman-service.log"
declare -A mon_rss mon_pss mon_sum daemon_rss daemon_pss mon_name
memory() { # memory NAME CLI DAEMON-NAME=PID...
  local name=$1 cli=$2 i pid mon mons=() rss=() pss=() d r p n before=() detail=""
  shift 2
  for d in "$@"; do before+=("$(mem_of "${d#*=}")"); done
  for i in $(seq "$IDLE"); do
    $cli run -d --network none --name "idle-$i" "${cgroup_opt[@]}" "$IMG" sleep 1000 >/dev/null
  done
  sleep 5 # idle: berth-shim releases its start-up pages after 0.5 s without events
  for i in $($cli ps -q); do
    pid=$($cli inspect -f '{{.State.Pid}}' "$i")
    mon=$(monitor_of "$pid")
    mons+=("$mon")
    read -r r p < <(mem_of "$mon")
    rss+=("$r"); pss+=("$p")
  done
  n=${#mons[@]}
  mon_name[$name]=$(basename "$(readlink "/proc/${mons[0]}/exe")")
  mon_rss[$name]=$(printf '%s\n' "${rss[@]}" | median)
  mon_pss[$name]=$(printf '%s\n' "${pss[@]}" | median)
  mon_sum[$name]=$(printf '%s\n' "${pss[@]}" | awk '{s += $1} END {print s}')
  daemon_rss[$name]=0 daemon_pss[$name]=0
  i=0
  for d in "$@"; do
    read -r r p < <(mem_of "${d#*=}")
    daemon_rss[$name]=$((daemon_rss[$name] + r)); daemon_pss[$name]=$((daemon_pss[$name] + p))
    detail="$detail, ${d%=*} $(kib "$r") (before the containers $(kib "${before[$i]% *}"))"
    i=$((i + 1))
  done
  echo "$name: $n containers running, each monitored by ${mon_name[$name]}: median RSS ${mon_rss[$name]} KiB, PSS ${mon_pss[$name]} KiB"
  echo "$name: daemon RSS ${detail#, }"
  [ "$n" = "$IDLE" ] || { echo "$name: $n containers running, not $IDLE" >&2; exit 1; }
  $cli ps -aq | xargs -r $cli rm -f >/dev/null
}
cgroup_opt=()
memory berth "$db" "berth daemon=$berth_pid"
containerd_pid=$(for p in $(ps -o pid= --ppid "$dockerd_pid"); do
  [ "$(cat "/proc/$p/comm")" = containerd ] && echo "$p"; done | head -1)
memory dockerd "$dd" "dockerd=$dockerd_pid" "containerd=$containerd_pid"
cgroup_opt=(--cgroup-parent "$own/berth-bench-podman")
memory podman "$dp" "podman system service=$service_pid"
cgroup_opt=()
kill -TERM "$service_pid"; wait "$service_pid" || true
service_pid=""
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
table=$(
  printf '%-8s %-22s %10s %10s  %-24s %10s %10s %12s\n' engine daemon RSS PSS monitor RSS/ctr PSS/ctr "PSS, all"
  for e in berth dockerd podman; do
    case $e in berth) dn="berth daemon" ;; dockerd) dn="dockerd + containerd" ;; podman) dn="podman system service" ;; esac
    printf '%-8s %-22s %10s %10s  %-24s %6s KiB %6s KiB %12s\n' "$e" "$dn" "$(kib "${daemon_rss[$e]}")" "$(kib "${daemon_pss[$e]}")" \
      "${mon_name[$e]}" "${mon_rss[$e]}" "${mon_pss[$e]}" "$(kib $((daemon_pss[$e] + mon_sum[$e])))"
  done
  echo "berth daemon RSS / dockerd+containerd's $(ratio "${daemon_rss[berth]}" "${daemon_rss[dockerd]}"), / podman service's $(ratio "${daemon_rss[berth]}" "${daemon_rss[podman]}") (goal: under 20 MiB)"
  echo "berth-shim / conmon: RSS $(ratio "${mon_rss[berth]}" "${mon_rss[podman]}"), PSS $(ratio "${mon_pss[berth]}" "${mon_pss[podman]}") (goals: PSS at most conmon's, RSS under 1024 KiB);" \
    "/ containerd-shim-runc-v2: RSS $(ratio "${mon_rss[berth]}" "${mon_rss[dockerd]}"), PSS $(ratio "${mon_pss[berth]}" "${mon_pss[dockerd]}")"
)
echo "$table"
summary+=("idle, $IDLE running containers (monitors: medians per container; \"PSS, all\": the daemon and every monitor):" "$table")
echo

# ---- 1. run --rm --network none IMG true.
echo "== 1. run --rm --network none IMG true ($RUNS runs each)"
hyperfine --warmup 3 --runs "$RUNS" --export-json "$work/run.json" \
  -n berth "$bc run --rm --network none $IMG true" \
  -n "berth (docker CLI)" "$db run --rm --network none $IMG true" \
  -n dockerd "$dd run --rm --network none $IMG true" \
  -n podman "$podman_run --rm --network none $IMG true" \
  -n "docker CLI alone" "$db version >/dev/null"
# CPU time of a run, every process of the engine counted (wall times on a shared machine are
# mostly waiting for a core): each engine's processes go into a cpuacct cgroup of their own,
# `berth-bench-<engine>`, whose children are the engine (daemon, containerd, shims, conmon,
# runtimes), the clients (docker CLI, podman) and, as the engine puts them there, the containers.
cpuacct=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpuacct(,|$)/ {print $2; exit}' /proc/mounts)
if [ -n "$cpuacct" ]; then
  echo "CPU time per run (user + system of every process of the engine, the client's included; $RUNS runs):"
  cpu_run() { # cpu_run NAME COMMAND [ENGINE-PIDS...]
    local name=$1 cmd=$2 cg=$cpuacct$own/berth-bench-$1 a b c0 c1 p
    shift 2
    mkdir -p "$cg/engine" "$cg/client"
    for p in "$@"; do echo "$p" >"$cg/engine/cgroup.procs"; done
    a=$(cat "$cg/cpuacct.usage"); c0=$(cat "$cg/client/cpuacct.usage")
    sh -c 'echo $$ >"$1/cgroup.procs"; i=0; while [ $i -lt "$2" ]; do eval "$3" >/dev/null || exit 1; i=$((i + 1)); done' \
      sh "$cg/client" "$RUNS" "$cmd"
    b=$(cat "$cg/cpuacct.usage"); c1=$(cat "$cg/client/cpuacct.usage")
    awk -v n="$name" -v t=$((b - a)) -v c=$((c1 - c0)) -v r="$RUNS" \
      'BEGIN {printf "  %-8s %6.1f ms (client process %5.1f ms)\n", n, t / r / 1e6, c / r / 1e6}'
    cpu[$name]=$(( (b - a) / RUNS ))
  }
  declare -A cpu
  cpu_run berth "$bc run --rm --network none $IMG true" "$berth_pid"
  cpu_run berth-docker "$db run --rm --network none $IMG true" "$berth_pid"
  cpu_run dockerd "$dd run --rm --network none $IMG true" "$dockerd_pid" "$containerd_pid"
  cpu_run podman "$podman_run --rm --network none $IMG true"
  cpu_summary="  CPU time per run: berth $(awk -v v="${cpu[berth]}" 'BEGIN {printf "%.1f", v / 1e6}') ms (through the docker CLI $(awk -v v="${cpu[berth-docker]}" 'BEGIN {printf "%.1f", v / 1e6}') ms), dockerd $(awk -v v="${cpu[dockerd]}" 'BEGIN {printf "%.1f", v / 1e6}') ms, podman $(awk -v v="${cpu[podman]}" 'BEGIN {printf "%.1f", v / 1e6}') ms; berth/podman $(ratio "${cpu[berth]}" "${cpu[podman]}"), berth (docker CLI)/dockerd $(ratio "${cpu[berth-docker]}" "${cpu[dockerd]}")"
else
  cpu_summary="  CPU time per run: not measured (no cgroup v1 cpuacct hierarchy)"
fi
summary+=("$(jq -r '
  (.results | map({(.command): .median}) | add) as $m
  | "run --rm --network none IMG true, medians: " + ([ $m | to_entries[] | "\(.key) \((.value*1000*10|round)/10) ms" ] | join(", "))
  + "\n  berth/podman \(($m.berth / $m.podman * 100 | round) / 100) (goal ≤ 0.2), both through the docker CLI: berth/dockerd \(($m["berth (docker CLI)"] / $m.dockerd * 100 | round) / 100) (goal ≤ 0.33)"' \
  "$work/run.json")" "$cpu_summary")
echo

# ---- 2. 50 detached containers one after another.
echo "== 2. $BATCH detached containers started one after another ($BATCH_RUNS runs each)"
cat >"$work/batch.sh" <<'EOF'
#!/bin/sh
# batch.sh N COMMAND...: run COMMAND (a `run -d`) N times, one after another
n=$1; shift
i=1
while [ "$i" -le "$n" ]; do
  "$@" >/dev/null 2>&1 </dev/null || { echo "failed: $* ($i)" >&2; exit 1; }
  i=$((i + 1))
done
EOF
cat >"$work/runtime-batch.sh" <<EOF
#!/bin/sh
# runtime-batch.sh RUNTIME...: run -d of the $BATCH bundles
i=1
while [ "\$i" -le $BATCH ]; do
  "\$@" run -d --bundle $fs/bundles/\$i bench-\$i >/dev/null 2>&1 </dev/null || { echo "failed: \$* (\$i)" >&2; exit 1; }
  i=\$((i + 1))
done
EOF
cat >"$work/runtime-clean.sh" <<'EOF'
#!/bin/sh
# runtime-clean.sh RUNTIME...: kill and delete every container
ids=$("$@" list -q)
[ -n "$ids" ] || exit 0
for id in $ids; do "$@" kill "$id" KILL 2>/dev/null; done
sleep 0.2
for id in $ids; do "$@" delete --force "$id" 2>/dev/null; done
exit 0
EOF
chmod +x "$work/batch.sh" "$work/runtime-batch.sh" "$work/runtime-clean.sh"
B=$work/batch.sh
rm_docker() { echo "$1 ps -aq | xargs -r $1 rm -f >/dev/null"; }
hyperfine --warmup 1 --runs "$BATCH_RUNS" --export-json "$work/batch.json" \
  --prepare "$(rm_docker "$db")" \
  -n berth "$B $BATCH $bc run -d --network none $IMG sleep 1000" \
  --prepare "$(rm_docker "$db")" \
  -n berth-docker-cli "$B $BATCH $db run -d --network none $IMG sleep 1000" \
  --prepare "$(rm_docker "$dd")" \
  -n dockerd "$B $BATCH $dd run -d --network none $IMG sleep 1000" \
  --prepare "$podman rm -af -t 0 >/dev/null" \
  -n podman "$B $BATCH $podman_run -d --network none $IMG sleep 1000" \
  --prepare "$work/runtime-clean.sh $runc" \
  -n runc "$work/runtime-batch.sh $runc" \
  --prepare "unshare --mount --propagation private -- sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec $work/runtime-clean.sh $crun'" \
  -n "crun (cgroup2 mount hidden)" "unshare --mount --propagation private -- sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec $work/runtime-batch.sh $crun'"
# Each command's last batch is still running: count them, then remove them.
echo "running after the last batch: berth $($db ps -q | wc -l), dockerd $($dd ps -q | wc -l)," \
  "podman $($podman ps -q | wc -l), runc $($runc list -q | wc -l)," \
  "crun $(in_pure_v1 $crun list -q | wc -l)"
$db ps -aq | xargs -r $db rm -f >/dev/null
$dd ps -aq | xargs -r $dd rm -f >/dev/null
$podman rm -af -t 0 >/dev/null
"$work/runtime-clean.sh" $runc
in_pure_v1 "$work/runtime-clean.sh" $crun
summary+=("$(jq -r --argjson n "$BATCH" '
  (.results | map({(.command | split(" ")[0]): .median}) | add) as $m
  | "\($n) detached containers, medians: " + ([ $m | to_entries[] | "\(.key) \((.value*100|round)/100) s (\(($n / .value * 10 | round) / 10)/s)" ] | join(", "))
  + "\n  rate berth/podman \(($m.podman / $m.berth * 100 | round) / 100)× (goal ≥ 4); both through the docker CLI, berth/dockerd \(($m.dockerd / $m["berth-docker-cli"] * 100 | round) / 100)×;"
  + " time berth/runc \(($m.berth / $m.runc * 100 | round) / 100), berth/crun \(($m.berth / $m.crun * 100 | round) / 100) (stretch ≤ 2)"' \
  "$work/batch.json")")
echo

echo "== summary (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${summary[@]}"
