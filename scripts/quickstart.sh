#!/usr/bin/env bash
# Install berth and run a first container, on a fresh Debian 12 machine (as root):
#
#   scripts/quickstart.sh
#
# Builds and installs /usr/local/bin/berth, /usr/local/bin/berth-runc (the OCI runtime, which
# `berth runtime` runs) and /usr/local/bin/berth-shim (the engine's per-container monitor),
# imports an image from Debian's busybox-static, makes an OCI bundle of it and runs it with
# berth's runtime. Needs no registry (with one, `berth pull` instead of `berth import`).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends busybox-static libseccomp-dev pkg-config gcc git nftables >/dev/null

bin=$(scripts/build-release.sh)
# (nftables: the engine publishes ports and isolates networks with nft.)
# berth-runc was once a link to berth: replace it, never write through it.
rm -f /usr/local/bin/berth-runc
install -m 0755 "$bin/berth" "$bin/berth-runc" "$bin/berth-shim" "$bin/berth-init" /usr/local/bin/

work=$(mktemp -d /tmp/berth-quickstart-XXXXXX)
export BERTH_DATA_ROOT=$work/data
trap 'berth image unbundle "$work/bundle" 2>/dev/null; rm -rf "$work"' EXIT
# An image from a root file system tarball (Debian's busybox-static; no registry needed).
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -sf busybox "$work/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
berth import "$work/busybox.tar" quickstart/busybox:1 \
  -c 'CMD ["sh", "-c", "echo hello from $(hostname), pid $$; ls /"]'
berth images
# Run it: an OCI bundle (config.json from the image, a copy-on-write root) and the runtime.
berth image bundle --hostname quickstart quickstart/busybox:1 "$work/bundle"
berth runtime run --bundle "$work/bundle" "quickstart-$$"
