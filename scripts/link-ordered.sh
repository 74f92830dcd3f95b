#!/usr/bin/env bash
# The release build's linker (see scripts/build-release.sh): cc with lld, laying the code out so
# that what the runtime runs is contiguous and the engine's code (images, registry, API) comes
# after it.
#
# Why: a short-lived `berth runtime run` should map little of the executable. On kernels with
# large page-cache folios (6.x, ext4/xfs) touching one function maps the whole folio around it,
# so resident memory follows how scattered the touched code is, and grows with everything else
# linked into the binary. The order given to lld (--symbol-ordering-file):
#   1. the functions the runtime's commands were seen to run (scripts/layout/runtime-hot.txt,
#      made by scripts/profile-layout.sh; names demangled, so crate hashes do not matter);
#   2. every other function that does not belong to the engine's crates;
#   3. (unlisted, so last) the engine's crates' code.
# Symbols are classified by name: with v0 mangling (-C symbol-mangling-version=v0) a generic
# instance names its type arguments, so `Vec<berth_image::ImageRecord>::push` is engine code.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sysroot=$(rustc --print sysroot)
gccld=$(echo "$sysroot"/lib/rustlib/*/bin/gcc-ld | head -1)
order=$(mktemp /tmp/berth-order-XXXXXX)
trap 'rm -f "$order"' EXIT
objs=()
for a in "$@"; do
  case "$a" in *.o) objs+=("$a") ;; esac
done
python3 "$here/layout/order.py" "$here/layout/runtime-hot.txt" "${objs[@]}" > "$order"
exec cc -B"$gccld" -fuse-ld=lld "$@" -Wl,--symbol-ordering-file="$order" -Wl,--no-warn-symbol-ordering
