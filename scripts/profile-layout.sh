#!/usr/bin/env bash
# Profile which functions the runtime's commands run, for the release build's code layout
# (scripts/link-ordered.sh puts them first; see ARCHITECTURE.md, "Code layout").
#
#   scripts/profile-layout.sh      (as root; rewrites scripts/layout/runtime-hot.txt)
#
# How: build the release binary with symbols, turn the disk's readahead off, drop the binary
# from the page cache, run a container's lifecycle (run; create, start, state, exec, kill,
# delete; spec), then ask mincore which pages of the binary are cached: with readahead off
# those are exactly the pages some process executed or read. The functions on those pages are
# the runtime's hot code. Two rounds: the second profiles the layout the first produced, so
# neighbours that merely shared a page drop out.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
out=scripts/layout/runtime-hot.txt
dev=$(df --output=source /tmp | tail -1)
dev=$(basename "$(readlink -f "$dev")")
ra=/sys/block/$dev/queue/read_ahead_kb
[ -w "$ra" ] || ra=$(ls /sys/block/*/queue/read_ahead_kb | head -1)
old_ra=$(cat "$ra")
work=$(mktemp -d /tmp/berth-layout-XXXXXX)
trap 'echo "$old_ra" > "$ra"; rm -rf "$work"' EXIT

evict() { python3 -c 'import os,sys
fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)' "$1"; }

bundle=$work/bundle
mkdir -p "$bundle/rootfs"/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$bundle/rootfs/bin/"
for a in true sleep sh; do ln -s busybox "$bundle/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$bundle/rootfs/etc/passwd"

for round in 1 2; do
  bin=$(CARGO_PROFILE_RELEASE_STRIP=false scripts/build-release.sh)
  B=$work/berth
  cp "$bin" "$B"
  sync
  ( cd "$bundle" && rm -f config.json && "$B" runtime spec )
  jq '.process.terminal = false | .process.args = ["/bin/true"] | .linux.cgroupsPath = "berth-layout"' \
    "$bundle/config.json" > "$work/c.json" && mv "$work/c.json" "$bundle/config.json"
  echo 0 > "$ra"
  evict "$B"
  R="$B runtime --root $work/state"
  unshare --mount --propagation private bash -c '
    set -e
    '"$R"' run --bundle '"$bundle"' p-run
    jq ".process.args = [\"/bin/sleep\", \"10\"]" '"$bundle"'/config.json > '"$work"'/s.json
    cp '"$bundle"'/config.json '"$work"'/t.json && cp '"$work"'/s.json '"$bundle"'/config.json
    '"$R"' create --bundle '"$bundle"' p-life
    '"$R"' start p-life
    '"$R"' state p-life >/dev/null
    '"$R"' list >/dev/null
    '"$R"' exec p-life /bin/true
    '"$R"' kill p-life KILL
    sleep 0.2
    '"$R"' delete p-life
    cp '"$work"'/t.json '"$bundle"'/config.json
  '
  echo "$old_ra" > "$ra"
  python3 scripts/layout/touched.py "$B" > "$work/hot.txt"
  echo "round $round: $(wc -l < "$work/hot.txt") functions on touched pages" >&2
  cp "$work/hot.txt" "$out"
done
