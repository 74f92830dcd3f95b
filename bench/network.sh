#!/usr/bin/env bash
# The networking benchmark (issue #10, "Speed and memory"): berth beside dockerd (Debian's
# docker.io, through the same docker CLI) and podman, in one run, printing medians and ratios
# (never a threshold).
#
#   bench/network.sh [RUNS]    (as root; default 20)
#
# 1. `run --rm IMG true` on the default bridge (hyperfine, RUNS runs each): berth's CLI,
#    berth and dockerd through the docker CLI, podman (its default bridge, netavark or CNI);
#    and berth with `--network none` for what the network costs.
# 2. The network setup and teardown of one container measured inside the engine: the
#    daemon's own timings (debug log: namespace, veth, addresses, routes, DNS registration,
#    published ports) over the runs of part 1 and over RUNS runs with one published port.
# 3. TCP throughput (iperf3, server in a berth container, 3 runs of 5 s each, client on the host):
#    to a published port on 127.0.0.1 and on a host address (DNAT in the kernel), directly to
#    the container's address, and through Debian's docker-proxy (dockerd's userland proxy)
#    in front of the same container.
# 4. 1,000 published ports (`-p 30000-30999:30000-30999`): the daemon's RSS and the number of
#    processes before and after, the time of `run -d` and of `rm -f` against a container
#    without ports.
# 5. DNS: queries per second and latency of the embedded server seen from a container
#    (`dnsbench`, berth-dns's load generator, in the container's network namespace): a
#    container's name (answered locally), an outside name forwarded to an upstream stand-in
#    on the host, and the same stand-in asked directly from the container (the host's
#    forwarder path, without the embedded server).
#
# Isolation as bench/engine.sh: a private mount and network namespace, stores on a fresh ext4
# loop file system, dockerd in a mount namespace of its own (tmpfs /run, own /etc/docker),
# podman with its own containers.conf and storage. Nothing is left behind (checked at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
PARTS=${BENCH_PARTS:-12345} # which parts to run (for a quick try: BENCH_PARTS=3)
part() { [[ $PARTS == *$1* ]]; }

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ]; then echo "bench/network.sh must run as root" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  need=""
  for p in hyperfine podman conmon runc docker.io containerd docker-registry skopeo jq curl iperf3 \
    nftables iptables busybox-static e2fsprogs iproute2 util-linux; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
  DOCKER_CLI=${DOCKER_CLI:-$(command -v docker)}
  bin=$(scripts/build-release.sh)
  BERTH_BIN=$bin/berth
  BENCH_LAYOUT=$(cargo build -q --release -p berth-testkit --example bench-layout --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -1)
  DNSBENCH=$(cargo build -q --release -p berth-dns --example dnsbench --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -1)
  LAYOUT=$("$BENCH_LAYOUT" busybox)
  export DOCKER_CLI BERTH_BIN LAYOUT DNSBENCH
  export BERTH_BENCH_INNER=1
  exec unshare --mount --net --propagation private -- "$0" "$@"
fi

ip link set lo up
# A host address besides loopback (what other machines would connect to).
ip link add bench0 type veth peer name bench1 # (no dummy module on every kernel)
ip link set bench1 up
ip addr add 10.99.99.1/32 dev bench0
ip link set bench0 up
HOSTIP=10.99.99.1
# podman's CNI keeps its address leases in /var/lib/cni: a tmpfs there (this namespace only).
if [ -d /var/lib/cni ]; then mount -t tmpfs tmpfs /var/lib/cni; else mount -t tmpfs tmpfs /var/lib; fi
work=$(mktemp -d /var/tmp/berth-bench-network-XXXXXX)
fs=$work/fs
mkdir -p "$fs"
own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
own=${own%/}
[ -n "$own" ] || own=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
own=${own%/}
registry_pid="" berth_pid="" dockerd_pid="" etc_docker_made="" bg_pids=""
D="$DOCKER_CLI"
export DOCKER_CONFIG=$work/docker-cli
mkdir -p "$DOCKER_CONFIG" && echo "{}" >"$DOCKER_CONFIG/config.json"
db="$D -H unix://$work/berth.sock"
export BERTH_HOST=unix://$work/berth.sock
bc=$BERTH_BIN
dd="$D -H unix://$work/docker.sock"
export CONTAINERS_CONF=$work/containers.conf
podman="podman --root $fs/podman --runroot $fs/podman-run --tmpdir $fs/podman-tmp --storage-driver overlay"

cleanup() {
  set +e
  trap - EXIT INT TERM
  echo
  echo "== cleanup"
  for p in $bg_pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "$berth_pid" ]; then
    $db ps -aq | xargs -r $db rm -f >/dev/null
    $db network prune -f >/dev/null
    kill -TERM "$berth_pid"; wait "$berth_pid"
  fi
  if [ -n "$dockerd_pid" ]; then
    $dd ps -aq | xargs -r $dd rm -f >/dev/null
    kill -TERM "$dockerd_pid"; wait "$dockerd_pid"
  fi
  $podman rm -af -t 0 >/dev/null 2>&1
  if [ -n "$registry_pid" ]; then kill "$registry_pid"; wait "$registry_pid"; fi
  sleep 1
  awk -v w="$work" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m"; done
  [ -z "${BENCH_KEEP_LOG:-}" ] || cp "$work/berth.log" "$BENCH_KEEP_LOG"
  rm -rf "$work"
  if [ -n "$etc_docker_made" ]; then rmdir /etc/docker; fi
  for c in $(find /sys/fs/cgroup -depth -type d -name 'berth-bench-net-*' 2>/dev/null); do
    find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  echo "done: the network namespace (bridges, rules, veths) dies with this script"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

truncate -s 8G "$work/fs.img"
mkfs.ext4 -q -F "$work/fs.img"
mount -o loop "$work/fs.img" "$fs"
rm -f "$work/fs.img"

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

wait_sock() {
  for _ in $(seq 300); do
    if $D -H "unix://$1" version >/dev/null 2>&1; then return 0; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "$3 did not start:" >&2; tail -20 "$4" >&2; exit 1
}

# berth, logging its own network timings (debug).
cat >"$work/berth.json" <<EOF
{"cgroup-parent": "$own/berth-bench-net-berth", "debug": true}
EOF
sed 's/^group:.*/group: files/' /etc/nsswitch.conf >"$work/nsswitch.conf"
unshare --mount --propagation private -- sh -c 'mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@"' sh \
  "$work/nsswitch.conf" "$BERTH_BIN" --data-root "$fs/berth" daemon --config-file "$work/berth.json" \
  --exec-root "$fs/berth-run" -H "unix://$work/berth.sock" >"$work/berth.log" 2>&1 &
berth_pid=$!
wait_sock "$work/berth.sock" "$berth_pid" "berth daemon" "$work/berth.log"

mkdir -p "$work/etc-docker"
if [ ! -d /etc/docker ]; then mkdir /etc/docker; etc_docker_made=1; fi
unshare --mount --propagation private -- sh -c '
  mount -t tmpfs -o mode=0755 tmpfs /run && mount --bind "$1" /etc/docker && shift && exec "$@"' sh \
  "$work/etc-docker" dockerd --data-root "$fs/docker" --exec-root /run/berth-bench-docker \
  --pidfile /run/berth-bench-docker.pid -H "unix://$work/docker.sock" \
  --insecure-registry "127.0.0.1:$port" --cgroup-parent "$own/berth-bench-net-dockerd" \
  --storage-driver overlay2 >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
wait_sock "$work/docker.sock" "$dockerd_pid" dockerd "$work/dockerd.log"

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
podman_run="$podman run --cgroup-parent $own/berth-bench-net-podman"

$db pull -q "$IMG" >/dev/null
$dd pull -q "$IMG" >/dev/null
$podman pull -q --tls-verify=false "$IMG" >/dev/null

echo "== versions"
echo "berth $("$BERTH_BIN" --version | head -1); docker CLI $($D version --format '{{.Client.Version}}' 2>/dev/null)"
echo "dockerd $($dd version --format '{{.Server.Version}}'); $(podman --version); $(nft --version); $(iperf3 --version | head -1)"
echo "podman's network backend: $($podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo unknown)"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) {print "n/a"; exit}; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
summary=()

# ---- 1. run --rm IMG true on the default bridge.
if part 1; then
echo "== 1. run --rm IMG true on the default bridge ($RUNS runs each)"
hyperfine --warmup 3 --runs "$RUNS" --export-json "$work/run.json" \
  -n berth "$bc run --rm $IMG true" \
  -n "berth (docker CLI)" "$db run --rm $IMG true" \
  -n dockerd "$dd run --rm $IMG true" \
  -n podman "$podman_run --rm $IMG true" \
  -n "berth --network none" "$bc run --rm --network none $IMG true"
summary+=("$(jq -r '
  (.results | map({(.command): .median}) | add) as $m
  | "run --rm IMG true on the default bridge, medians: " + ([ $m | to_entries[] | "\(.key) \((.value*1000*10|round)/10) ms" ] | join(", "))
  + "\n  berth/podman \(($m.berth / $m.podman * 100 | round) / 100) (goal ≤ 0.2); both through the docker CLI, berth/dockerd \(($m["berth (docker CLI)"] / $m.dockerd * 100 | round) / 100) (goal ≤ 0.25)"
  + "\n  the bridge costs berth \((($m.berth - $m["berth --network none"]) * 1000 * 10 | round) / 10) ms per run"' \
  "$work/run.json")")
echo
fi

# ---- 2. setup and teardown inside the engine.
if part 2; then
echo "== 2. network setup and teardown inside the engine"
timings() { # timings FROM-LINE PORTS WHAT: the median of the daemon's "network WHAT in N µs" lines
  tail -n +"$1" "$work/berth.log" | sed 's/\x1b\[[0-9;]*m//g' | grep "ports=$2" |
    sed -n "s/.*network $3 in \([0-9]*\) µs.*/\1/p" | median
}
log_mark=$(wc -l <"$work/berth.log")
for i in $(seq "$RUNS"); do $bc run --rm "$IMG" true >/dev/null; done
setup0=$(timings "$log_mark" 0 "set up")
down0=$(timings "$log_mark" 0 "torn down")
log_mark=$(wc -l <"$work/berth.log")
for i in $(seq "$RUNS"); do $bc run --rm -p "127.0.0.1::80" "$IMG" true >/dev/null; done
setup1=$(timings "$log_mark" 1 "set up")
down1=$(timings "$log_mark" 1 "torn down")
line="network of one container inside the engine, medians of $RUNS+: setup $setup0 µs, teardown $down0 µs; with one published port: setup $setup1 µs, teardown $down1 µs (goal: under 5 ms each)"
echo "$line"
summary+=("$line")
echo
fi

# ---- 3. TCP throughput.
if part 3; then
echo "== 3. TCP throughput (iperf3, medians of 3 runs of 5 s, server in a berth container)"
usr=(-v /usr:/usr:ro -v /usr/lib:/lib:ro -v /usr/lib64:/lib64:ro)
pub=$(python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])')
$bc run -d --name iperf -p "$pub:5201" "${usr[@]}" "$IMG" /usr/bin/iperf3 -s >/dev/null
cip=$($db inspect -f '{{.NetworkSettings.IPAddress}}' iperf)
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port "$proxy_port" \
  -container-ip "$cip" -container-port 5201 >"$work/proxy.log" 2>&1 3>"$work/proxy.ready" &
bg_pids="$bg_pids $!"
sleep 1
gbps() { # gbps HOST PORT: the receiver's rate, median of 3 runs of 5 s
  local out i r
  for i in 1 2 3; do
    out=$work/iperf-$1-$2-$i.json
    for _ in $(seq 50); do iperf3 -c "$1" -p "$2" -t 5 -J >"$out" 2>&1 && break; sleep 0.2; done
    r=$(jq -r '(.end.sum_received.bits_per_second // empty) / 1e9 * 100 | round / 100' "$out" 2>/dev/null)
    [ -n "$r" ] || { echo "iperf3 to $1:$2 failed: $(jq -r .error "$out" 2>/dev/null || cat "$out")" >&2; r=0; }
    echo "$r"
  done | median
}
direct=$(gbps "$cip" 5201)
published_lo=$(gbps 127.0.0.1 "$pub")
published_host=$(gbps "$HOSTIP" "$pub")
proxied=$(gbps 127.0.0.1 "$proxy_port")
line="TCP throughput: direct to the container $direct Gbit/s; published port on 127.0.0.1 $published_lo Gbit/s ($(ratio "$published_lo" "$direct") of direct), on the host's address $published_host Gbit/s ($(ratio "$published_host" "$direct")); docker-proxy $proxied Gbit/s ($(ratio "$proxied" "$direct")) (goal: published ≥ 0.9 of direct)"
echo "$line"
summary+=("$line")
$db rm -f iperf >/dev/null
echo
fi

# ---- 4. 1,000 published ports.
if part 4; then
echo "== 4. 1,000 published ports"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$berth_pid/status"; }
# Processes in the benchmark's network namespace (the daemon, shims, any proxy it would
# start), not zombies (an exited shim waits for the host's init); others on the machine are
# not counted.
own_net=$(readlink /proc/self/ns/net)
bench_procs() {
  local p
  for p in $(ps -e -o pid=,stat= | awk '$2 !~ /^Z/ {print $1}'); do
    if [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$own_net" ]; then cat "/proc/$p/comm" 2>/dev/null || true; fi
  done | sort
}
procs() { bench_procs | wc -l; }
t() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
# The comparison is a running container without ports (its shim and process counted on both
# sides), after one such container came and went (the daemon's first-use allocations).
$bc run -d --name p0 "$IMG" sleep 1000 >/dev/null && $bc rm -f p0 >/dev/null
base_run=$(t $bc run -d --name p0 "$IMG" sleep 1000)
rss0=$(rss); bench_procs >"$work/procs0"; procs0=$(wc -l <"$work/procs0")
base_rm=$(t $bc rm -f p0)
run_ms=$(t $bc run -d --name p1000 -p 30000-30999:30000-30999 "$IMG" sleep 1000)
sleep 1 # the first container's shim is gone
rss1=$(rss); bench_procs >"$work/procs1"; procs1=$(wc -l <"$work/procs1")
echo "processes that differ: $(diff "$work/procs0" "$work/procs1" | grep '^[<>]' | tr '\n' ' ')(none: nothing)"
nports=$($db port p1000 | wc -l)
elems=$(nft -j list map inet berth ports4 | jq '[.nftables[] | select(.map) | .map.elem // [] | length] | add')
rm_ms=$(t $bc rm -f p1000)
line="1,000 published ports ($nports bindings, $elems map elements): run -d $run_ms ms (without ports $base_run ms), rm -f $rm_ms ms (without ports $base_rm ms); daemon RSS with a container without ports $rss0 KiB, with the 1,000-port one instead $rss1 KiB (+$((rss1 - rss0)) KiB, goal < 1024), processes $procs0 -> $procs1 (goal: none added)"
echo "$line"
summary+=("$line")
echo
fi

# ---- 5. DNS.
if part 5; then
echo "== 5. the embedded DNS"
"$DNSBENCH" upstream "$HOSTIP:53" >"$work/upstream.log" 2>&1 &
bg_pids="$bg_pids $!"
$db network create benchnet >/dev/null
$db run -d --name dnsweb --network benchnet "$IMG" sleep 1000 >/dev/null
$db run -d --name dnscli --network benchnet --dns "$HOSTIP" "$IMG" sleep 1000 >/dev/null
# The namespace through the container's process (the bind mount lives in the daemon's mount
# namespace).
ns=/proc/$($db inspect -f '{{.State.Pid}}' dnscli)/ns/net
echo "container name via the embedded server:"
nsenter --net="$ns" "$DNSBENCH" query 127.0.0.11:53 -n 20000 -k 16 --name dnsweb
echo "outside name forwarded by the embedded server to the stand-in:"
nsenter --net="$ns" "$DNSBENCH" query 127.0.0.11:53 -n 20000 -k 16 --name example.com
echo "the stand-in asked directly from the container:"
nsenter --net="$ns" "$DNSBENCH" query "$HOSTIP:53" -n 20000 -k 16 --name example.com
summary+=("DNS (dnsbench, 20000 queries, 16 in flight, from a container): see part 5 above")
$db rm -f dnsweb dnscli >/dev/null
$db network rm benchnet >/dev/null
echo
fi

echo "== summary"
for s in "${summary[@]}"; do echo "$s"; done
