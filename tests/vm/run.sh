#!/usr/bin/env bash
# Boot a throwaway Linux VM (qemu, software emulation) with a pure cgroup v2 or pure cgroup v1
# hierarchy and run a script inside it.
#
#   tests/vm/run.sh MODE SCRIPT [FILE...]
#
# MODE    v2: cgroup2 mounted at /sys/fs/cgroup, every controller enabled;
#         v1: every controller on its own v1 hierarchy under /sys/fs/cgroup, no cgroup2.
# SCRIPT  a shell script run as root inside the VM (busybox sh) from a cgroup beneath
#         "suite" in every hierarchy, never the root; its exit code is this command's.
# FILE    extra files (binaries) to copy in at the same path; the shared libraries they
#         link are copied too.
#
# The kernel is Debian's cloud kernel (apt-get download, cached under target/vm). The VM has
# no network device, only loopback. Output of the script is printed as it runs.
set -euo pipefail
mode=${1:?usage: run.sh v1|v2 SCRIPT [FILE...]}
script=${2:?usage: run.sh v1|v2 SCRIPT [FILE...]}
shift 2
case "$mode" in v1|v2) ;; *) echo "mode must be v1 or v2" >&2; exit 2 ;; esac

here=$(cd "$(dirname "$0")" && pwd)
cache=${BERTH_VM_CACHE:-$here/../../target/vm}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# 1. The kernel and its modules, once.
if [ ! -f "$cache/vmlinuz" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || { echo "no Debian cloud kernel package found (apt-get update?)" >&2; exit 1; }
  rm -rf "$cache/kernel" && mkdir -p "$cache/kernel"
  (cd "$cache/kernel" && apt-get download -q "$pkg" >/dev/null && dpkg-deb -x ./*.deb root)
  cp "$cache"/kernel/root/boot/vmlinuz-* "$cache/vmlinuz.tmp"
  mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
fi
kver=$(ls "$cache/kernel/root/lib/modules" | head -n1)

# 2. The initramfs: busybox, the files asked for and their libraries, the script, /init.
stage=$(mktemp -d /tmp/berth-vm-XXXXXX)
out=$(mktemp /tmp/berth-vm-out-XXXXXX)
trap 'rm -rf "$stage" "$out"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,run,etc,modules}
cp /bin/busybox "$stage/bin/busybox"
for m in drivers/net/veth.ko fs/overlayfs/overlay.ko; do
  f="$cache/kernel/root/lib/modules/$kver/kernel/$m"
  [ -f "$f" ] && cp "$f" "$stage/modules/"
  [ -f "$f.xz" ] && xz -dc "$f.xz" > "$stage/modules/$(basename "$m")"
done
copy() {
  local f=$1
  mkdir -p "$stage$(dirname "$f")"
  cp -L "$f" "$stage$f"
}
for f in "$@"; do
  copy "$f"
  { ldd "$f" 2>/dev/null || true; } | { grep -o "/[^ ]*" || true; } | while read -r lib; do
    [ -e "$stage$lib" ] || copy "$lib"
  done
done
cp "$script" "$stage/script.sh"
cp "$here/init.sh" "$stage/init"
chmod +x "$stage/init" "$stage/script.sh"
echo 'root:x:0:0:root:/root:/bin/sh' > "$stage/etc/passwd"
echo 'root:x:0:' > "$stage/etc/group"
# The static berth binary looks the group `berth` up: files only (no NSS modules to load).
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$stage/etc/nsswitch.conf"
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initrd-$$.gz"

# 3. Boot. The script's exit code comes back on the serial console. Software emulation
# occasionally hangs before the kernel reaches /init (seen about once in twenty boots here): a
# boot that has not printed the init's banner within BERTH_VM_BOOT_TIMEOUT seconds is killed and
# tried again, up to three times. (The banner shares its line with the console's escape codes:
# it is searched for anywhere in a line.)
mem=${BERTH_VM_MEM:-3072}
boot() {
  : > "$out"
  timeout "${BERTH_VM_TIMEOUT:-1800}" qemu-system-x86_64 -accel tcg -smp 2 -m "$mem" -nographic -no-reboot \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd-$$.gz" \
    -append "console=ttyS0 quiet panic=-1 berth.cgroup=$mode" </dev/null >"$out" 2>&1 &
  local qemu=$! shown=0 waited=0 lines
  while kill -0 "$qemu" 2>/dev/null; do
    lines=$(wc -l < "$out")
    if [ "$lines" -gt "$shown" ]; then
      sed -n "$((shown + 1)),${lines}p" "$out" | grep -v '^BERTH-VM-EXIT' || true
      shown=$lines
    fi
    if ! grep -q 'berth test VM:' "$out" && [ "$waited" -ge "${BERTH_VM_BOOT_TIMEOUT:-180}" ]; then
      kill "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null
      return 2
    fi
    sleep 1; waited=$((waited + 1))
  done
  wait "$qemu" 2>/dev/null
  sed -n "$((shown + 1)),\$p" "$out" | grep -v '^BERTH-VM-EXIT' || true
  return 0
}
for attempt in 1 2 3; do
  if boot; then break; fi
  echo "the VM did not boot in time (attempt $attempt of 3)" >&2
done
rm -f "$cache/initrd-$$.gz"
rc=$(sed -n 's/^BERTH-VM-EXIT \([0-9]*\).*/\1/p' "$out" | tail -n1)
if [ -z "$rc" ]; then
  echo "the VM ended without reporting an exit code" >&2
  exit 1
fi
exit "$rc"
