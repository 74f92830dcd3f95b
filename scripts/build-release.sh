#!/usr/bin/env bash
# Build the release binaries as installed and benchmarked: `berth` (the command line),
# `berth-runc` (the OCI runtime alone) and `berth-shim` (the per-container monitor the engine
# runs), static-pie executables (glibc and libseccomp linked in), optimised for size. Static
# linking means the dynamic loader has nothing to map or relocate at start-up, which is most of
# a short-lived runtime's memory.
#
#   scripts/build-release.sh        → prints the directory holding the binaries
#
# `berth-runc --version` reports the commit it was built from (`git describe`).
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
libdir=$(dirname "$(gcc -print-file-name=libseccomp.a)")
[ -f "$libdir/libseccomp.a" ] || { echo "libseccomp.a not found (apt-get install libseccomp-dev)" >&2; exit 1; }
BERTH_GIT_COMMIT=$(git describe --always --dirty --tags 2>/dev/null || echo unknown)
export BERTH_GIT_COMMIT
# getrandom_backend: a static binary cannot find glibc's getrandom() with dlsym, so the
# getrandom crate would fall back to waiting on /dev/random, for ever on a machine whose
# entropy pool never fills (a VM early in its boot); the getrandom system call itself makes
# the kernel gather entropy.
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$libdir \
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  cargo build -q --release --target "$triple" -p berth -p berth-runc -p berth-shim -p berth-init >&2
echo "$PWD/target/$triple/release"
