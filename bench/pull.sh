#!/usr/bin/env bash
# The pull benchmark: berth, podman and skopeo + umoci pulling the same image from a local
# registry, each from an empty store, in one hyperfine run.
#
#   bench/pull.sh [RUNS] [debian|synthetic]     (as root; default 10 runs, the debian image)
#
# Images (built by the berth-testkit example `bench-image`, cached in /var/cache/berth-test):
#   debian     the Debian bookworm minbase root file system (debootstrap), a package installed
#              in a second layer, whiteouts in a third, 24 MiB of data in a fourth: about
#              150 MB unpacked in four layers, 61 MB gzipped, ~7000 files;
#   synthetic  busybox and three layers of 40 MiB of half-compressible data (few big files):
#              122 MiB unpacked, 64 MB gzipped.
#
# Every store lives on a fresh ext4 file system (a sparse file, loop-mounted in a private
# mount namespace), not on the host's root file system: there, on this machine (ext4 without
# a journal, years of churn), every inode allocation costs ~0.5 ms of CPU in the kernel
# (ext4's recently_deleted() scan), which would swamp what is measured. BENCH_FS=host keeps
# the stores on the host's file system instead.
#
# Compared, from an empty store each time (hyperfine --prepare removes it and syncs):
#   berth   `berth --data-root DIR pull REF` (the release binary of scripts/build-release.sh;
#           the berth-image example `pull` if the binary has no `pull` command);
#   podman  `podman pull --tls-verify=false` with its own --root/--runroot, overlay storage
#           (vfs if overlay does not work here; the script says which);
#   skopeo + umoci   `skopeo copy docker://… oci:DIR` then `umoci unpack`.
# Then each one's peak memory: GNU time's maximum resident set size, median of 5 pulls.
#
# What each tool guarantees differs: berth syncs every blob and, once, the layers' file
# system (syncfs) before it records the image; podman syncs only its metadata; umoci syncs
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
IMAGE=${2:-debian}
case $IMAGE in debian | synthetic) ;; *) echo "image: debian or synthetic" >&2; exit 2 ;; esac

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ]; then echo "bench/pull.sh must run as root" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  need=""
  for p in hyperfine podman skopeo umoci docker-registry time jq curl debootstrap e2fsprogs busybox-static; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
  BERTH_BIN=$(scripts/build-release.sh)/berth
  cargo build -q --release -p berth-testkit --example bench-image >&2
  cargo build -q --release -p berth-image --example pull >&2
  export BERTH_BIN BENCH_TARGET=$PWD/target/release/examples
  export BERTH_BENCH_INNER=1
  exec unshare --mount --propagation private -- "$0" "$@"
fi

work=$(mktemp -d /var/tmp/berth-bench-pull-XXXXXX)
registry_pid=""
cleanup() {
  set +e
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
  if mountpoint -q "$work/fs"; then umount "$work/fs"; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The image, as an OCI layout (built once per machine).
layout=/var/cache/berth-test/bench-layout-$IMAGE
if [ ! -f "$layout/index.json" ]; then
  echo "== building the $IMAGE image (once)"
  rm -rf "$layout" "$layout.tmp"
  "$BENCH_TARGET/bench-image" "$layout.tmp" "$IMAGE" >/dev/null
  mv "$layout.tmp" "$layout"
fi

# The file system the stores live on.
fs=$work/fs
mkdir -p "$fs"
if [ "${BENCH_FS:-loop}" = host ]; then
  fs_note="the host's root file system"
else
  truncate -s 16G "$work/fs.img"
  mkfs.ext4 -q -F "$work/fs.img"
  mount -o loop "$work/fs.img" "$fs"
  rm -f "$work/fs.img" # the mount keeps it
  fs_note="a fresh ext4 (loop device)"
fi
mkdir -p "$fs/tmp"
export TMPDIR=$fs/tmp

# A registry on a free port, with its own storage.
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
ref=127.0.0.1:$port/bench:latest
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" "docker://$ref"

# The commands.
if "$BERTH_BIN" pull --help >/dev/null 2>&1; then
  berth_cmd="$BERTH_BIN --data-root $fs/berth pull -q $ref"
  berth_note="berth pull (release binary)"
else
  berth_cmd="$BENCH_TARGET/pull $fs/berth $ref"
  berth_note="the berth-image example 'pull' (the binary has no pull command)"
fi
podman_base="podman --root $fs/podman --runroot $fs/podman-run --events-backend none"
driver=overlay
if ! $podman_base --storage-driver overlay pull -q --tls-verify=false "$ref" >/dev/null 2>&1; then
  driver=vfs
fi
rm -rf "$fs/podman" "$fs/podman-run"
podman_cmd="$podman_base --storage-driver $driver pull -q --tls-verify=false $ref"
umoci_cmd="skopeo copy -q --src-tls-verify=false docker://$ref oci:$fs/oci:latest && umoci unpack --image $fs/oci:latest $fs/bundle"

# Each run starts from an empty store, with nothing left to write back from the last one.
clean_berth="rm -rf $fs/berth; sync"
clean_podman="rm -rf $fs/podman $fs/podman-run; sync"
clean_umoci="rm -rf $fs/oci $fs/bundle; sync"

echo "== versions"
echo "berth $("$BERTH_BIN" --version | head -1) — $berth_note"
podman --version; skopeo --version; umoci --version
echo "podman storage driver: $driver; stores on $fs_note"
size=$(jq -r '.manifests[0].digest' "$layout/index.json" | sed 's/sha256://')
jq -r '[.layers[].size] | "image: \(length) layers, \(add) bytes compressed"' "$layout/blobs/sha256/$size"
echo

echo "== pull of the $IMAGE image from an empty store ($RUNS runs each)"
hyperfine --warmup 1 --runs "$RUNS" --export-json "$work/pull.json" \
  --prepare "$clean_berth" -n berth "$berth_cmd >/dev/null" \
  --prepare "$clean_podman" -n podman "$podman_cmd >/dev/null" \
  --prepare "$clean_umoci" -n skopeo+umoci "$umoci_cmd >/dev/null"

echo
echo "== summary"
jq -r '
  (.results | map({(.command): .median}) | add) as $m
  | "median: " + ([ $m | to_entries[] | "\(.key) \((.value*1000|round)) ms" ] | join(", "))
  + "\nratio to podman: " + ([ $m | to_entries[] | "\(.key) \((.value / $m.podman * 100 | round) / 100)" ] | join(", "))
  + "\npodman / berth: \(($m.podman / $m.berth * 100 | round) / 100)×"' "$work/pull.json"

echo
echo "== peak memory (max RSS, KiB; median of 5 pulls from an empty store)"
peak() { # name clean cmd
  local vals=() i
  for i in 1 2 3 4 5; do
    bash -c "$2"
    vals+=("$(/usr/bin/time -f %M bash -c "$3 >/dev/null" 2>&1 | tail -1)")
  done
  printf '%s %s\n' "$1" "$(printf '%s\n' "${vals[@]}" | sort -n | sed -n 3p)"
}
peak berth "$clean_berth" "$berth_cmd"
peak podman "$clean_podman" "$podman_cmd"
peak skopeo "$clean_umoci" "skopeo copy -q --src-tls-verify=false docker://$ref oci:$fs/oci:latest"
vals=()
for i in 1 2 3 4 5; do
  bash -c "$clean_umoci"
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$fs/oci:latest"
  vals+=("$(/usr/bin/time -f %M umoci unpack --image "$fs/oci:latest" "$fs/bundle" 2>&1 >/dev/null | tail -1)")
done
printf 'umoci %s\n' "$(printf '%s\n' "${vals[@]}" | sort -n | sed -n 3p)"
