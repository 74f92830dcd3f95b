#!/usr/bin/env bash
# Install berth and run a first container, on a fresh Debian 12 machine (as root):
#
#   scripts/quickstart.sh
#
# Builds and installs /usr/local/bin/berth (plus the link berth-runc), makes an OCI bundle
# from Debian's busybox-static, and runs it with berth's runtime. Needs no registry.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends busybox-static libseccomp-dev pkg-config gcc >/dev/null

install -m 0755 "$(scripts/build-release.sh)" /usr/local/bin/berth
ln -sf berth /usr/local/bin/berth-runc

bundle=$(mktemp -d /tmp/berth-quickstart-XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev"
cp /bin/busybox "$bundle/rootfs/bin/"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$bundle/rootfs/etc/passwd"

cd "$bundle"
berth runtime spec
# No terminal (works without a tty), and a program that shows it is isolated.
sed -i -e 's/"terminal": true/"terminal": false/' \
       -e 's|"sh"$|"sh", "-c", "echo hello from $(hostname), pid $$; ls /"|' config.json
berth runtime run "quickstart-$$"
