#!/usr/bin/env bash
# Run the runtime and cgroup test suites inside a VM whose kernel has a pure cgroup v2 (or pure
# v1) hierarchy: this development host is a v1 hybrid, most users' hosts are v2.
#
#   scripts/vm-suite.sh v2|v1
#
# Builds the test binaries, boots tests/vm/run.sh with them and the berth-runc binary, runs each
# test binary inside, then checks inside the VM that nothing was left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: vm-suite.sh v2|v1}

cargo build -q -p berth-runc
cargo test -q --no-run -p berth-runc -p berth-cgroups
mapfile -t tests < <(cargo test -q --no-run --message-format=json -p berth-runc -p berth-cgroups 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test == true) | .executable' |
  grep -E '/(runtime_[a-z_]+|berth_cgroups|cgroups)-[0-9a-f]+$' | sort -u)
[ "${#tests[@]}" -gt 0 ] || { echo "no test binaries found" >&2; exit 1; }
runc=$PWD/target/debug/berth-runc

script=$(mktemp /tmp/berth-vm-suite-XXXXXX.sh)
trap 'rm -f "$script"' EXIT
{
  echo "export BERTH_RUNC_BIN=$runc BERTH_FIXTURES=/tmp/berth-fixtures RUST_BACKTRACE=1 PATH=/bin:/usr/bin:/sbin:/usr/sbin"
  echo "cd /tmp"
  echo "rc=0"
  for t in "${tests[@]}"; do
    echo "echo '=== $(basename "$t") ($mode)'"
    echo "$t --test-threads=2 || rc=1"
  done
  echo "echo '=== leak check ($mode)'"
  echo "sh $PWD/scripts/check-leaks.sh || rc=1"
  echo "exit \$rc"
} > "$script"
tests/vm/run.sh "$mode" "$script" "$runc" "${tests[@]}" "$PWD/scripts/check-leaks.sh" /usr/bin/jq
