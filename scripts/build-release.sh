#!/usr/bin/env bash
# Build the release binary as installed and benchmarked: a static-pie executable (glibc and
# libseccomp linked in), optimised for size. Static linking means the dynamic loader has
# nothing to map or relocate at start-up, which is most of a short-lived runtime's memory.
#
#   scripts/build-release.sh        → prints the path of the binary
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
libdir=$(dirname "$(gcc -print-file-name=libseccomp.a)")
[ -f "$libdir/libseccomp.a" ] || { echo "libseccomp.a not found (apt-get install libseccomp-dev)" >&2; exit 1; }
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$libdir \
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C symbol-mangling-version=v0 -C linker=$PWD/scripts/link-ordered.sh" \
  cargo build -q --release --target "$triple" -p berth >&2
echo "$PWD/target/$triple/release/berth"
