#!/usr/bin/env bash
# The rootfs benchmark (issue #3: a container's root filesystem from a pulled image in under
# 5 ms, whatever the image's size): how long it takes to make a container's root file system
# from an image already in the store, for a small and a large image.
#
#   bench/rootfs.sh [RUNS] [all|criterion|cli]     (as root; default 30 runs, both parts)
#
# Images (OCI layouts built by the berth-testkit example `bench-layout`, cached in
# /var/cache/berth-test):
#   busybox  the busybox fixture: one layer, 2 MiB unpacked, ~290 files;
#   debian   the image of bench/pull.sh: Debian bookworm minbase, a package, whiteouts and
#            24 MiB of data: four layers, 150 MiB unpacked, ~7200 files.
#
# 1. criterion (crates/berth-image/benches/rootfs.rs): the library calls alone, creation timed
#    and removal not: the overlay root filesystem (ImageStore::create_rootfs), the bundle
#    (ImageStore::bundle: that root filesystem plus config.json), and the plain copy
#    (RootfsKind::Copy, the fallback where overlayfs cannot be used).
# 2. hyperfine, end to end, each command from its store with the image already pulled; the
#    result of the previous run is removed by --prepare (not timed), then `sync`:
#      berth          `berth image bundle REF DIR` (release binary of scripts/build-release.sh):
#                     overlay mount + config.json; prepared by `berth image unbundle DIR`;
#      berth --copy   `berth image bundle --copy REF DIR`: the layers copied, no mount;
#      podman         `podman create REF` + `podman mount CTR` (overlay storage driver; vfs
#                     if overlay does not work here, and then create copies the image: the
#                     script says which): a container record and its mounted root file system,
#                     two podman processes; prepared by `podman rm -f CTR`;
#      umoci          `umoci unpack --image oci:DIR:TAG BUNDLE`: the bundle's rootfs is a copy
#                     of the layers (plus umoci's mtree manifest of it), config.json;
#      berth images   `berth images -q`, for reference: what any berth command pays to start
#                     and to open and close the image store (its redb database), without
#                     making anything.
#
# Everything lives on a fresh ext4 file system (a sparse file, loop-mounted in a private mount
# namespace), as in bench/pull.sh: on this machine's root file system every inode allocation
# costs ~0.5 ms of CPU in the kernel, which swamps a mount that takes a fraction of a
# millisecond. BENCH_FS=host keeps everything on the host's file system instead.
#
# Nothing is left behind: the mounts die with the namespace (and are unmounted before), the
# registry is stopped, the work directory (stores, layouts pushed, bundles) is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
PART=${2:-all}
case $PART in all | criterion | cli) ;; *) echo "part: all, criterion or cli" >&2; exit 2 ;; esac
IMAGES=(busybox debian)

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ]; then echo "bench/rootfs.sh must run as root" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  need=""
  for p in hyperfine podman skopeo umoci docker-registry jq curl debootstrap e2fsprogs busybox-static; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
  BERTH_BIN=$(scripts/build-release.sh)/berth
  exe() { # the executable cargo built for these arguments
    cargo "$@" --message-format=json | jq -r 'select(.executable != null) | .executable' | tail -1
  }
  BENCH_LAYOUT=$(exe build -q --release -p berth-testkit --example bench-layout)
  BENCH_CRITERION=""
  if [ "$PART" != cli ]; then
    BENCH_CRITERION=$(exe bench -q -p berth-image --bench rootfs --no-run)
  fi
  # The layouts, built once per machine (the Debian one needs deb.debian.org the first time).
  for i in "${IMAGES[@]}"; do "$BENCH_LAYOUT" "$i" >/dev/null; done
  export BERTH_BIN BENCH_LAYOUT BENCH_CRITERION CRITERION_HOME=${CRITERION_HOME:-$PWD/target/criterion}
  export BERTH_BENCH_INNER=1
  exec unshare --mount --propagation private -- "$0" "$@"
fi

work=$(mktemp -d /var/tmp/berth-bench-rootfs-XXXXXX)
fs=$work/fs
registry_pid=""
podman_base=""
cleanup() {
  set +e
  if [ -n "$podman_base" ]; then $podman_base rm -af -t 0 >/dev/null 2>&1; fi
  for i in "${IMAGES[@]}"; do
    [ -d "$fs/b-berth-$i" ] && "$BERTH_BIN" image unbundle "$fs/b-berth-$i"
  done
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
  # Anything still mounted beneath the work directory, deepest first, then the file system.
  awk -v w="$work" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

# The file system everything lives on.
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

summary=()

if [ "$PART" != cli ]; then
  echo "== 1. criterion: the library calls (store on $fs_note)"
  BERTH_BENCH_DIR=$fs CRITERION_HOME=$CRITERION_HOME "$BENCH_CRITERION" --bench -n
  summary+=("criterion medians (store on $fs_note):")
  for g in rootfs/overlay bundle/overlay rootfs/copy; do
    line="  $g:"
    for i in "${IMAGES[@]}"; do
      est=$CRITERION_HOME/${g//\//_}/$i/new/estimates.json
      line="$line $i $(jq -r '.median.point_estimate / 1e6 * 1000 | round / 1000' "$est") ms,"
    done
    summary+=("${line%,}")
  done
  echo
fi

if [ "$PART" != criterion ]; then
  # A registry on a free port, with its own storage, serving both images.
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

  berth="$BERTH_BIN --data-root $fs/berth"
  podman_base="podman --root $fs/podman --runroot $fs/podman-run --tmpdir $fs/podman-tmp --events-backend none"
  driver=overlay
  for i in "${IMAGES[@]}"; do
    ref=127.0.0.1:$port/bench-$i:latest
    skopeo copy --quiet --dest-tls-verify=false "oci:$("$BENCH_LAYOUT" "$i"):latest" "docker://$ref"
    # Each store gets the image once (not timed).
    $berth pull -q "$ref" >/dev/null
    if ! $podman_base --storage-driver $driver pull -q --tls-verify=false "$ref" >/dev/null 2>&1; then
      driver=vfs
      $podman_base --storage-driver $driver pull -q --tls-verify=false "$ref" >/dev/null
    fi
    skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$fs/oci:$i"
  done
  podman="$podman_base --storage-driver $driver"

  echo "== versions"
  echo "berth $($BERTH_BIN --version | head -1)"
  podman --version; umoci --version
  echo "podman storage driver: $driver; everything on $fs_note"
  echo

  for i in "${IMAGES[@]}"; do
    ref=127.0.0.1:$port/bench-$i:latest
    b=$fs/b-berth-$i c=$fs/b-copy-$i u=$fs/b-umoci-$i ctr=bench-$i
    echo "== 2. $i: a container's root file system from the pulled image ($RUNS runs each)"
    hyperfine --warmup 3 --runs "$RUNS" --export-json "$work/$i.json" \
      --prepare "[ ! -d $b ] || $berth image unbundle $b; sync" \
      -n berth "$berth image bundle $ref $b >/dev/null" \
      --prepare "[ ! -d $c ] || $berth image unbundle $c; sync" \
      -n "berth --copy" "$berth image bundle --copy $ref $c >/dev/null" \
      --prepare "$podman rm -f -t 0 $ctr >/dev/null 2>&1 || true; sync" \
      -n podman "$podman create -q --name $ctr $ref >/dev/null && $podman mount $ctr >/dev/null" \
      --prepare "rm -rf $u; sync" \
      -n umoci "umoci unpack --image $fs/oci:$i $u >/dev/null" \
      --prepare "sync" \
      -n "berth images" "$berth images -q >/dev/null"
    $berth image unbundle "$b"
    $berth image unbundle "$c"
    $podman rm -f -t 0 "$ctr" >/dev/null
    rm -rf "$u"
    summary+=("$(jq -r --arg i "$i" '
      (.results | map({(.command): .median}) | add) as $m
      | "hyperfine medians, \($i): " + ([ $m | to_entries[] | "\(.key) \((.value*1000*100|round)/100) ms" ] | join(", "))
      + "\n  ratio to berth: " + ([ $m | to_entries[] | select(.key != "berth" and .key != "berth images") | "\(.key) \((.value / $m.berth * 10 | round) / 10)×" ] | join(", "))' \
      "$work/$i.json")")
    echo
  done
  summary+=("$(jq -r -s '
    (map(.results | map({(.command): .median}) | add)) as [$s, $l]
    | "debian / busybox (growth with the image): " + ([ $s | keys_unsorted[] | select(. != "berth images") as $k | "\($k) \(($l[$k] / $s[$k] * 100 | round) / 100)×" ] | join(", "))' \
    "$work/busybox.json" "$work/debian.json")")
fi

echo "== summary"
printf '%s\n' "${summary[@]}"
