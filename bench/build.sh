#!/usr/bin/env bash
# The image-build benchmark (issue #11): berth's builder (through its own CLI, `berth build`,
# and through the docker CLI's classic builder, DOCKER_BUILDKIT=0) beside buildah (`buildah
# bud`, Debian's package) and dockerd's classic builder (Debian's docker.io, through the same
# docker CLI), in one run, printing medians and ratios (never a threshold).
#
#   bench/build.sh [RUNS]    (as root; default 10)
#
# BENCH_PARTS picks the cases to time (default 123); BENCH_KEEP_LOGS=DIR keeps the logs (the
# daemons', every checked build's); DOCKER_CLI the docker CLI used (default: the one on PATH).
#
# The build: a multi-stage Dockerfile (written by this script into a context directory):
#
#   FROM <Debian bookworm minbase, one layer, from the local registry> AS build
#   COPY tools/ packages.txt /tools/         the "package manager" and its list
#   RUN  awk -f /tools/pkg.awk …             "apt-get install": 60 packages of 50 files of
#                                            1–4 KB each (3000 files in 180 directories), a
#                                            file list per package in /var/lib/dpkg/info and
#                                            an entry each in /var/lib/dpkg/status (copied up)
#   COPY src/ /src/                          the source tree: 50 files (45 .c, 5 .h), ~3 KB each
#   RUN  sh /tools/compile.sh                the "compile" (minbase has no C compiler): per .c
#                                            file an awk pass over its tokens and a cksum into
#                                            an object file, then the objects "linked" into
#                                            /out/app.data, and /out/app (a script)
#   FROM <busybox, from the local registry>
#   COPY --from=build /out/ /usr/local/bin/
#   CMD  ["/usr/local/bin/app"]
#
# Three cases, each in one hyperfine run (RUNS runs of each command):
# 1. cold: before each run (hyperfine --prepare, not timed) the built images, every other image
#    but the two base images, and the build cache are removed, and the file systems synced:
#    berth `berth rmi` + `berth builder prune -af`; dockerd `docker rmi` + `docker builder prune
#    -af` (the classic builder's cache is its intermediate images); buildah `buildah rm -a` +
#    `buildah rmi` (its intermediate images are its cache, with --layers); then `rmi -f` of
#    whatever image is left but the base ones (it fails if one is left);
# 2. no change: the same build again, every step from the cache, end to end through the CLI;
# 3. one late source file changed (a line appended to src/util/u09.c before each run, so
#    every run sees content no build has seen): the steps from `COPY src/` on run again.
# After each case one more build of each, its output kept, checks what ran: every RUN
# prints a marker (BENCH-STEP-install, BENCH-STEP-compile) when it runs; the script counts
# them and "Using cache" and "Running in" lines (expected: both in case 1, nothing in case 2,
# in case 3 the compile and not the install). After the first build the artifact of each engine is
# compared (sha256 of /usr/local/bin/app.data in each final image).
#
# Commands (RUNS runs each):
#   berth              `berth build -t bench-build:cli CTX` (the release binary; BERTH_HOST)
#   berth (docker CLI) `DOCKER_BUILDKIT=0 docker -H unix://berth.sock build -t bench-build:docker CTX`
#   dockerd            `DOCKER_BUILDKIT=0 docker -H unix://docker.sock build -t bench-build CTX`
#   buildah            `buildah --root … --runroot … --storage-driver overlay bud --layers
#                       --isolation oci --tls-verify=false --cgroup-parent … -t bench-build CTX`
#                      (vfs if overlay does not work here, chroot isolation if oci does not:
#                      the script says which; BENCH_BUILDAH_ISOLATION chooses)
#
# Isolation as bench/engine.sh: a private mount and network namespace (loopback only; the
# engines' bridges and iptables rules live and die there) with tmpfs on /run and /var/lib
# (CNI's leases, netns files, containers' locks), every store on a fresh ext4 file system (a
# sparse file, loop-mounted), dockerd in a further mount namespace with a tmpfs /run and its
# own /etc/docker (FIELD-GUIDE §1), buildah with its own containers.conf (CONTAINERS_CONF:
# the host's hard rlimits, cgroupfs, runc, its own CNI config directory), --root, --runroot
# and TMPDIR; the docker CLI with its own DOCKER_CONFIG. RUN containers' cgroups go beneath
# the benchmark's own memory cgroup (`berth-bench-build-<engine>`). The base images are the
# Debian minbase root of the test kit (crates/berth-testkit/src/debian.rs, `debian_base()`:
# debootstrap --variant=minbase bookworm, cached in /var/cache/berth-test, made here into a
# one-layer image) and the busybox fixture (the berth-testkit example `bench-layout`), pushed
# to a local docker-registry on 127.0.0.1 and pulled by each engine once (not timed).
#
# Nothing is left behind: every daemon stopped and waited for, any process left in the
# benchmark's namespaces or cgroups reported and killed, mounts (the loop device with them)
# unmounted, the cgroups made for the benchmark removed, the work directory deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
PARTS=${BENCH_PARTS:-123} # which cases to time (for a quick try: BENCH_PARTS=2)
part() { [[ $PARTS == *$1* ]]; }

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ]; then echo "bench/build.sh must run as root" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  need=""
  for p in hyperfine buildah runc docker.io containerd docker-registry skopeo jq curl \
    containernetworking-plugins debootstrap busybox-static e2fsprogs iproute2 iptables util-linux; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
  # The docker CLI on PATH (28 here; Debian's docker.io ships 20.10's as /usr/bin/docker).
  DOCKER_CLI=${DOCKER_CLI:-$(command -v docker)}
  bin=$(scripts/build-release.sh) # berth, berth-runc, berth-shim, berth-init
  BERTH_BIN=$bin/berth
  BENCH_LAYOUT=$(cargo build -q --release -p berth-testkit --example bench-layout --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -1)
  LAYOUT=$("$BENCH_LAYOUT" busybox)
  # The test kit's Debian minbase root (a tar), built once per machine (needs deb.debian.org).
  DEBIAN_TAR=${BERTH_TEST_CACHE:-/var/cache/berth-test}/debian-bookworm/debian-base.tar
  if [ ! -f "$DEBIAN_TAR" ]; then
    cargo run -q --release -p berth-testkit --example debian-base >&2
  fi
  export DOCKER_CLI BERTH_BIN LAYOUT DEBIAN_TAR
  export BERTH_BENCH_INNER=1
  exec unshare --mount --net --propagation private -- "$0" "$@"
fi

ip link set lo up
# Fixed paths the tools write to (buildah's netns files and locks, CNI's address leases,
# skopeo's blob cache) live in this namespace only.
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /var/lib
work=$(mktemp -d /var/tmp/berth-bench-build-XXXXXX)
fs=$work/fs
ctx=$work/ctx
mkdir -p "$fs" "$ctx"
own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
own=${own%/}
inner_ns=$(readlink /proc/self/ns/mnt)
cgroups_before=$(mktemp /tmp/berth-bench-build-cgroups-XXXXXX)
find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | sort >"$cgroups_before" || true

registry_pid="" berth_pid="" berth_ns="" dockerd_pid="" docker_ns="" etc_docker_made=""
D="$DOCKER_CLI"
export DOCKER_CONFIG=$work/docker-cli
mkdir -p "$DOCKER_CONFIG" && echo "{}" >"$DOCKER_CONFIG/config.json"
export DOCKER_BUILDKIT=0 # the classic builder (POST /build), for both daemons
db="$D -H unix://$work/berth.sock"
export BERTH_HOST=unix://$work/berth.sock
bc=$BERTH_BIN # berth's own CLI, speaking to the daemon at BERTH_HOST
dd="$D -H unix://$work/docker.sock"
export CONTAINERS_CONF=$work/containers.conf
export TMPDIR_BUILDAH=$fs/buildah-tmp
buildah_driver=overlay
buildah() { TMPDIR=$TMPDIR_BUILDAH command buildah --root "$fs/buildah" --runroot "$fs/buildah-run" --storage-driver "$buildah_driver" "$@"; }

# Processes of ours that are not this script's own: in our mount namespace or a daemon's, or
# in a cgroup of the benchmark. Our own shells are this script and its descendants.
ours_left() {
  local p ns
  for p in $(ps -eo pid=,ppid= | awk -v me=$$ '{pp[$1] = $2} END {
      for (p in pp) { q = p; mine = 0; while (q > 1) { if (q == me) { mine = 1; break }; q = pp[q] }; if (!mine) print p } }'); do
    ns=$(readlink "/proc/$p/ns/mnt" 2>/dev/null) || continue
    if [ "$ns" = "$inner_ns" ] || [ "$ns" = "$berth_ns" ] || [ "$ns" = "$docker_ns" ] ||
      grep -q "berth-bench-build-" "/proc/$p/cgroup" 2>/dev/null; then
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
  if [ -n "$dockerd_pid" ]; then
    $dd ps -aq | xargs -r $dd rm -f >/dev/null
    kill -TERM "$dockerd_pid"; wait "$dockerd_pid"
  fi
  if [ -d "$fs/buildah" ]; then buildah rm -a >/dev/null 2>&1; buildah umount -a >/dev/null 2>&1; fi
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
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then mkdir -p "$BENCH_KEEP_LOGS" && cp "$work"/*.log "$BENCH_KEEP_LOGS"/; fi
  # Mounts beneath the work directory, deepest first, then the file system (and its loop
  # device, released with its last mount).
  awk -v w="$work" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf "$work"
  if [ -n "$etc_docker_made" ]; then rmdir /etc/docker; fi
  # The cgroups made for the benchmark (and their parents made with them), deepest first.
  find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | sort | comm -13 "$cgroups_before" - 2>/dev/null |
    grep -e "berth-bench-build-" | sort -r | while read -r c; do
      [ -d "$c" ] || continue
      rmdir "$c" || echo "cgroup left: $c"
      d=$(dirname "$c")
      while [ "$d" != /sys/fs/cgroup ] && ! grep -qxF "$d" "$cgroups_before" && rmdir "$d" 2>/dev/null; do
        d=$(dirname "$d")
      done
    done
  echo "done: no daemon, mount or cgroup of the benchmark left"
}
trap 'cleanup; rm -f "$cgroups_before"' EXIT
trap 'exit 130' INT TERM

# The file system every store lives on.
truncate -s 16G "$work/fs.img"
mkfs.ext4 -q -F "$work/fs.img"
mount -o loop "$work/fs.img" "$fs"
rm -f "$work/fs.img" # the mount keeps it
mkdir -p "$TMPDIR_BUILDAH"

# ---- The registry, serving the two base images.
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
BUSYBOX=127.0.0.1:$port/bench-busybox:latest
DEBIAN=127.0.0.1:$port/bench-debian-minbase:latest
skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://$BUSYBOX"
# The Debian minbase root as a one-layer OCI image (gzip), like Debian's own images.
make_debian_layout() { # make_debian_layout DIR
  local dir=$1 blobs=$1/blobs/sha256 diff layer lsize config csize manifest msize
  mkdir -p "$blobs"
  diff=$(sha256sum <"$DEBIAN_TAR" | cut -d' ' -f1)
  gzip -1 -n -c "$DEBIAN_TAR" >"$blobs/layer"
  layer=$(sha256sum <"$blobs/layer" | cut -d' ' -f1); lsize=$(stat -c %s "$blobs/layer")
  mv "$blobs/layer" "$blobs/$layer"
  jq -cn --arg diff "sha256:$diff" '{architecture: "amd64", os: "linux",
      config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["bash"]},
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created_by: "debootstrap --variant=minbase bookworm"}]}' >"$blobs/config"
  config=$(sha256sum <"$blobs/config" | cut -d' ' -f1); csize=$(stat -c %s "$blobs/config")
  mv "$blobs/config" "$blobs/$config"
  jq -cn --arg c "sha256:$config" --argjson cs "$csize" --arg l "sha256:$layer" --argjson ls "$lsize" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]}' >"$blobs/manifest"
  manifest=$(sha256sum <"$blobs/manifest" | cut -d' ' -f1); msize=$(stat -c %s "$blobs/manifest")
  mv "$blobs/manifest" "$blobs/$manifest"
  jq -cn --arg m "sha256:$manifest" --argjson ms "$msize" \
    '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
      size: $ms, annotations: {"org.opencontainers.image.ref.name": "latest"}}]}' >"$dir/index.json"
  echo '{"imageLayoutVersion": "1.0.0"}' >"$dir/oci-layout"
}
make_debian_layout "$work/debian-layout"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/debian-layout:latest" "docker://$DEBIAN"
rm -rf "$work/debian-layout"

# ---- The build context.
mkdir -p "$ctx/tools"
for i in $(seq -w 1 60); do echo "pkg$i"; done >"$ctx/packages.txt"
cat >"$ctx/tools/pkg.awk" <<'EOF'
# "Installs" every package its input names, as dpkg unpacks one: 50 files of 1-4 KB in three
# directories, a file list in /var/lib/dpkg/info and an entry in /var/lib/dpkg/status.
BEGIN {
  print "BENCH-STEP-install"
  s = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ libbench shared object\n"
  while (length(s) < 4096) s = s s
}
{
  p = $1; n++
  lib = "/usr/lib/bench/" p; doc = "/usr/share/doc/" p; data = "/usr/share/bench/" p
  system("mkdir -p " lib " " doc " " data)
  list = "/var/lib/dpkg/info/" p ".list"
  for (i = 0; i < 50; i++) {
    dir = (i % 3 == 0) ? doc : (i % 3 == 1) ? lib : data
    f = dir "/file" i
    printf "%s", substr(s, 1, 1024 + (n * 50 + i) * 37 % 3072) > f
    close(f)
    print f > list
  }
  close(list)
  printf "Package: %s\nStatus: install ok installed\nVersion: 1.0-%d\n\n", p, n >> "/var/lib/dpkg/status"
}
END { close("/var/lib/dpkg/status"); print n " packages installed" }
EOF
cat >"$ctx/tools/compile.sh" <<'EOF'
#!/bin/sh
# "Compiles" /src (the image has no C compiler): per .c file an awk pass over its tokens and a
# cksum into an object file, then the objects "linked" into /out/app.data, and /out/app.
set -e
echo BENCH-STEP-compile
mkdir -p /build/obj /out
find /src -name '*.c' | sort | while read -r f; do
  o=/build/obj/$(echo "${f#/src/}" | tr / _).o
  awk '{ for (i = 1; i <= NF; i++) { h = (h * 31 + length($i) + i) % 1000000007; t++ } }
       END { printf "%s: %d tokens, hash %d\n", FILENAME, t, h }' "$f" >"$o"
  cksum <"$f" >>"$o"
done
cat /build/obj/*.o >/out/app.data
printf '#!/bin/sh\necho "app: $(wc -l </usr/local/bin/app.data) lines of objects"\n' >/out/app
chmod +x /out/app
echo "compiled $(ls /build/obj | wc -l) files"
EOF
for d in app core io net util; do
  mkdir -p "$ctx/src/$d"
  awk -v d="$d" -v dir="$ctx/src/$d" 'BEGIN {
    h = dir "/" d ".h"
    printf "/* %s.h */\n", d > h
    for (k = 0; k < 60; k++) printf "int %s_f%d(int x, int y);\n", d, k > h
    for (f = 1; f <= 9; f++) {
      out = sprintf("%s/%s%02d.c", dir, substr(d, 1, 1), f)
      printf "#include \"%s.h\"\n\n", d > out
      for (k = 0; k < 40; k++)
        printf "int %s_f%d_%d(int x, int y) { return x * %d + y - %d; }\n", d, f, k, k + f, k * f > out
      close(out)
    }
  }'
done
LATE=$ctx/src/util/u09.c # the source file changed in case 3
cat >"$ctx/Dockerfile" <<EOF
FROM $DEBIAN AS build
COPY tools/ packages.txt /tools/
RUN awk -f /tools/pkg.awk /tools/packages.txt
COPY src/ /src/
RUN sh /tools/compile.sh

FROM $BUSYBOX
COPY --from=build /out/ /usr/local/bin/
CMD ["/usr/local/bin/app"]
EOF
nsrc=$(find "$ctx/src" -type f | wc -l)

wait_sock() { # wait_sock SOCKET PID NAME LOG
  for _ in $(seq 300); do
    if $D -H "unix://$1" version >/dev/null 2>&1; then return 0; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "$3 did not start:" >&2; tail -20 "$4" >&2; exit 1
}

# ---- berth.
cat >"$work/berth.json" <<EOF
{"cgroup-parent": "$own/berth-bench-build-berth"}
EOF
"$BERTH_BIN" --data-root "$fs/berth" daemon --config-file "$work/berth.json" \
  --exec-root "$fs/berth-run" -H "unix://$work/berth.sock" >"$work/berth.log" 2>&1 &
berth_pid=$!
wait_sock "$work/berth.sock" "$berth_pid" "berth daemon" "$work/berth.log"
berth_ns=$(readlink "/proc/$berth_pid/ns/mnt")

# ---- dockerd: its own mount namespace, a tmpfs on /run, its own /etc/docker.
mkdir -p "$work/etc-docker"
if [ ! -d /etc/docker ]; then mkdir /etc/docker; etc_docker_made=1; fi
unshare --mount --propagation private -- sh -c '
  mount -t tmpfs -o mode=0755 tmpfs /run && mount --bind "$1" /etc/docker && shift && exec "$@"' sh \
  "$work/etc-docker" dockerd --data-root "$fs/docker" --exec-root /run/berth-bench-docker \
  --pidfile /run/berth-bench-docker.pid -H "unix://$work/docker.sock" \
  --insecure-registry "127.0.0.1:$port" --cgroup-parent "$own/berth-bench-build-dockerd" \
  --storage-driver overlay2 >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
wait_sock "$work/docker.sock" "$dockerd_pid" dockerd "$work/dockerd.log"
docker_ns=$(readlink "/proc/$dockerd_pid/ns/mnt")

# ---- buildah: its own containers.conf; overlay storage if it works here, else vfs.
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_config_dir = "$work/cni"
EOF
mkdir -p "$work/cni"
if ! buildah info >/dev/null 2>"$work/buildah-info.log"; then
  echo "buildah: overlay storage does not work here ($(tail -1 "$work/buildah-info.log")); vfs instead"
  rm -rf "$fs/buildah" "$fs/buildah-run"
  buildah_driver=vfs
fi
isolation=${BENCH_BUILDAH_ISOLATION:-oci}

# ---- The base images in every store (not timed).
$db pull -q "$BUSYBOX" >/dev/null && $db pull -q "$DEBIAN" >/dev/null
$dd pull -q "$BUSYBOX" >/dev/null && $dd pull -q "$DEBIAN" >/dev/null
buildah pull -q --tls-verify=false "$BUSYBOX" >/dev/null && buildah pull -q --tls-verify=false "$DEBIAN" >/dev/null
base_berth=$($db images -aq --no-trunc | sort -u | tr '\n' ' ')
base_dockerd=$($dd images -aq --no-trunc | sort -u | tr '\n' ' ')
base_buildah=$(buildah images -aq --no-trunc | sort -u | tr '\n' ' ')

# The commands, and what empties each engine's images and cache but the base images.
berth_cli="$bc build -t bench-build:cli $ctx"
berth_docker="$db build -t bench-build:docker $ctx"
dockerd_build="$dd build -t bench-build $ctx"
buildah_build() {
  echo "TMPDIR=$TMPDIR_BUILDAH buildah --root $fs/buildah --runroot $fs/buildah-run --storage-driver $buildah_driver" \
    "bud --layers --isolation $isolation --tls-verify=false --cgroup-parent $own/berth-bench-build-buildah -t bench-build $ctx"
}
cat >"$work/clean.sh" <<EOF
#!/bin/bash
# clean.sh berth|dockerd|buildah: every image but the base ones, and the build cache, removed
set -e
exec 2>>$work/clean.log
case \$1 in
berth)
  $bc rmi bench-build:cli bench-build:docker >/dev/null 2>&1 || true
  $bc builder prune -af >/dev/null
  images() { $db images -aq --no-trunc; }; rmi() { $db rmi -f "\$@"; }; base="$base_berth" ;;
dockerd)
  $dd rmi -f bench-build >/dev/null 2>&1 || true
  $dd builder prune -af >/dev/null
  images() { $dd images -aq --no-trunc; }; rmi() { $dd rmi -f "\$@"; }; base="$base_dockerd" ;;
buildah)
  b() { TMPDIR=$TMPDIR_BUILDAH buildah --root $fs/buildah --runroot $fs/buildah-run --storage-driver $buildah_driver "\$@"; }
  b rm -a >/dev/null
  images() { b images -aq --no-trunc; }; rmi() { b rmi -f "\$@"; }; base="$base_buildah" ;;
esac
# (A parent goes with its last child: a few rounds, children first as they come.)
for round in 1 2 3 4 5 6; do
  ids=\$(images | sort -u | grep -v -x -F -e "\$(echo "\$base" | tr ' ' '\\n' | grep .)" || true)
  [ -n "\$ids" ] || break
  [ "\$round" != 6 ] || { echo "clean.sh \$1: images left: \$ids" >&2; exit 1; }
  rmi \$ids >/dev/null 2>&1 || true
done
sync
EOF
chmod +x "$work/clean.sh"
clean=$work/clean.sh

echo "== versions"
echo "berth $("$BERTH_BIN" --version | head -1); docker CLI $($D version --format '{{.Client.Version}}' 2>/dev/null)"
echo "dockerd $($dd version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'); $(command buildah --version); $(runc --version | head -1)"
echo "buildah: $buildah_driver storage, --isolation $isolation"
echo "context: $nsrc source files, $(du -sk "$ctx" | cut -f1) KiB; stores on a fresh ext4 (loop device)"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# What ran in a build: (RUN markers) install, compile; "Using cache" and "Running in" lines.
what_ran() { # what_ran LOG
  local f=$1 c
  c() { grep -c -e "$1" "$f" || true; }
  echo "install ran $(grep -c 'BENCH-STEP-install' "$f" || true), compile ran $(grep -c 'BENCH-STEP-compile' "$f" || true);" \
    "$(c 'Using cache') \"Using cache\", $(c 'Running in') \"Running in\""
}
# ---- 0. A first build with each engine, output kept: it must work before it is timed.
echo "== 0. a first (cold) build with each engine"
first() { # first NAME COMMAND
  local s e
  s=$(date +%s%N)
  if ! sh -c "$2" >"$work/first-$1.log" 2>&1; then
    echo "$1: the build failed: $2" >&2; tail -30 "$work/first-$1.log" >&2
    return 1
  fi
  e=$(date +%s%N)
  echo "$1: $(( (e - s) / 1000000 )) ms"
}
first berth "$berth_cli" || { echo "berth daemon log:" >&2; tail -30 "$work/berth.log" >&2; exit 1; }
art() { sha256sum | cut -c1-16; } # the artifact of a build
art_berth=$($db run --rm --network none bench-build:cli cat /usr/local/bin/app.data | art)
"$clean" berth # (the docker CLI's build a cold one too)
first "berth (docker CLI)" "$berth_docker" || { echo "berth daemon log:" >&2; tail -30 "$work/berth.log" >&2; exit 1; }
first dockerd "$dockerd_build" || { tail -30 "$work/dockerd.log" >&2; exit 1; }
if ! first buildah "$(buildah_build)"; then
  [ "$isolation" = oci ] && [ -z "${BENCH_BUILDAH_ISOLATION:-}" ] || exit 1
  isolation=chroot
  echo "buildah: --isolation oci fails here; --isolation chroot instead"
  "$clean" buildah
  first buildah "$(buildah_build)" || exit 1
fi
for n in berth "berth (docker CLI)" dockerd buildah; do
  echo "  $n: $(what_ran "$work/first-$n.log")"
done
# The artifact of each engine.
art_berth_docker=$($db run --rm --network none bench-build:docker cat /usr/local/bin/app.data | art)
art_dockerd=$($dd run --rm --network none bench-build cat /usr/local/bin/app.data | art)
bctr=$(buildah from -q bench-build)
art_buildah=$(art <"$(buildah mount "$bctr")/usr/local/bin/app.data")
buildah umount "$bctr" >/dev/null; buildah rm "$bctr" >/dev/null
echo "artifact (sha256 of app.data): berth $art_berth, berth (docker CLI) $art_berth_docker, dockerd $art_dockerd, buildah $art_buildah" \
  "($([ "$art_berth" = "$art_dockerd" ] && [ "$art_berth" = "$art_buildah" ] && [ "$art_berth" = "$art_berth_docker" ] && echo same || echo DIFFERENT))"
echo "berth runs it: $($bc run --rm --network none bench-build:docker)"
echo

checks=()
check_builds() { # check_builds CASE EXPECTED-INSTALL EXPECTED-COMPILE [PREPARE (@ENGINE@: berth, dockerd, buildah)]
  local name cmd out line ok engine
  for name in berth "berth (docker CLI)" dockerd buildah; do
    case $name in
      berth) cmd=$berth_cli ;; "berth (docker CLI)") cmd=$berth_docker ;;
      dockerd) cmd=$dockerd_build ;; buildah) cmd=$(buildah_build) ;;
    esac
    case $name in berth*) engine=berth ;; *) engine=$name ;; esac
    [ -z "${4:-}" ] || sh -c "${4//@ENGINE@/$engine}"
    out=$work/check-$1-${name// /_}.log
    sh -c "$cmd" >"$out" 2>&1 || { echo "$name: the build failed" >&2; tail -30 "$out" >&2; exit 1; }
    line=$(what_ran "$out")
    if [ "$(grep -c 'BENCH-STEP-install' "$out" || true)" = "$2" ] && [ "$(grep -c 'BENCH-STEP-compile' "$out" || true)" = "$3" ]; then
      ok="as expected"
    else
      ok="NOT as expected (install $2, compile $3)"
    fi
    echo "  $name: $line — $ok"
    checks+=("$1, $name: $line — $ok")
  done
}

median_ms() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median * 1000' "$1"; }
declare -A med
record() { # record CASE JSON: the medians of a hyperfine run
  local n
  for n in berth "berth (docker CLI)" dockerd buildah; do med[$1/$n]=$(median_ms "$2" "$n"); done
}

# ---- 1. Cold builds.
if part 1; then
  echo "== 1. cold build ($RUNS runs each; images but the base ones and the build cache removed before each)"
  hyperfine --warmup 0 --runs "$RUNS" --export-json "$work/cold.json" \
    --prepare "$clean berth" -n berth "$berth_cli" \
    --prepare "$clean berth" -n "berth (docker CLI)" "$berth_docker" \
    --prepare "$clean dockerd" -n dockerd "$dockerd_build" \
    --prepare "$clean buildah" -n buildah "$(buildah_build)"
  record cold "$work/cold.json"
  echo "what ran in one more cold build (expected: everything):"
  check_builds cold 1 1 "$clean @ENGINE@"
  echo
fi

# ---- 2. No-change rebuilds.
if part 2; then
  echo "== 2. no-change rebuild ($RUNS runs each)"
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$work/nochange.json" \
    -n berth "$berth_cli" \
    -n "berth (docker CLI)" "$berth_docker" \
    -n dockerd "$dockerd_build" \
    -n buildah "$(buildah_build)"
  record nochange "$work/nochange.json"
  echo "what ran in one more no-change build (expected: nothing):"
  check_builds "no change" 0 0
  echo
fi

# ---- 3. One late source file changed.
if part 3; then
  change="echo \"int changed_\$(date +%s%N)(void) { return 0; }\" >>$LATE"
  echo "== 3. rebuild after a change of ${LATE#$ctx/} ($RUNS runs each; a new line appended before each run)"
  hyperfine --warmup 0 --runs "$RUNS" --export-json "$work/change.json" \
    --prepare "$change" -n berth "$berth_cli" \
    --prepare "$change" -n "berth (docker CLI)" "$berth_docker" \
    --prepare "$change" -n dockerd "$dockerd_build" \
    --prepare "$change" -n buildah "$(buildah_build)"
  record change "$work/change.json"
  echo "what ran in one more build after a change (expected: compile, not install):"
  check_builds "one file changed" 0 1 "$change"
  echo
fi

# ---- The table.
fmt() { awk -v v="$1" 'BEGIN { if (v == "") print "–"; else if (v >= 10000) printf "%.2f s", v / 1000; else printf "%.1f ms", v }'; }
rat() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "–"; else printf "%.2f", a / b }'; }
echo "== summary (medians; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-22s %12s %20s %12s %12s %14s %14s\n' case berth "berth (docker CLI)" dockerd buildah berth/buildah "berth/dockerd"
for c in cold nochange change; do
  case $c in cold) label="1. cold" ;; nochange) label="2. no change" ;; change) label="3. one file changed" ;; esac
  [ -n "${med[$c/berth]:-}" ] || continue
  printf '%-22s %12s %20s %12s %12s %14s %14s\n' "$label" "$(fmt "${med[$c/berth]}")" "$(fmt "${med[$c/berth (docker CLI)]}")" \
    "$(fmt "${med[$c/dockerd]}")" "$(fmt "${med[$c/buildah]}")" \
    "$(rat "${med[$c/berth]}" "${med[$c/buildah]}")" "$(rat "${med[$c/berth (docker CLI)]}" "${med[$c/dockerd]}")"
done
echo "(berth/buildah: berth's own CLI against buildah's; berth/dockerd: both through the docker CLI)"
[ -z "${med[cold/berth]:-}" ] || echo "goal, cold: berth at most 0.5× buildah: $(rat "${med[cold/berth]}" "${med[cold/buildah]}")"
[ -z "${med[nochange/berth]:-}" ] || echo "goal, no-change rebuild: berth under 100 ms: $(fmt "${med[nochange/berth]}")"
if [ ${#checks[@]} -gt 0 ]; then
  echo "what ran:"
  printf '  %s\n' "${checks[@]}"
fi
