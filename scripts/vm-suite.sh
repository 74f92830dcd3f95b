#!/usr/bin/env bash
# Run the runtime and cgroup test suites, and the engine's tests that depend on the cgroup
# layout, inside a VM whose kernel has a pure cgroup v2 (or pure v1) hierarchy: this development
# host is a v1 hybrid, most users' hosts are v2.
#
#   scripts/vm-suite.sh v2|v1
#
# Builds the test binaries, boots tests/vm/run.sh with them and the berth-runc binary, runs each
# test binary inside, then checks inside the VM that nothing was left behind.
#
# The engine's part runs the installed (static release) binaries — berth, berth-shim,
# berth-init — driven by the real docker CLI, with images served by docker-registry and pushed
# by skopeo, as on the host (these, procps' ps and curl are copied in; /usr/bin comes before busybox's
# /bin on PATH): limits in the container's cgroup, live update, stats, top, pause,
# an OOM kill, containers outliving a killed daemon, a killed shim.
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

# The engine: its tests that depend on the cgroup layout (test binary, then name filters).
engine_tests=(
  "engine_config limits_reach_the_cgroup"
  "engine_ops stats_show_cpu_memory_limit_and_pids update_applies_limits_live_and_records_them top_lists_the_containers_processes an_oom_kill_is_reported"
  "engine_cli containers_outlive_a_killed_daemon a_killed_shim_is_noticed detached_ps_logs_stop_rm"
  "cli_client container_operations_and_volumes"
)
rel=$(scripts/build-release.sh)
mapfile -t engine_bins < <(cargo test -q --no-run --message-format=json -p berth \
  --test engine_config --test engine_ops --test engine_cli --test cli_client 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test == true) | .executable' | sort -u)
[ "${#engine_bins[@]}" -eq 4 ] || { echo "engine test binaries not found: ${engine_bins[*]}" >&2; exit 1; }
docker_cli=$(command -v docker)

script=$(mktemp /tmp/berth-vm-suite-XXXXXX.sh)
trap 'rm -f "$script"' EXIT
{
  # The VM's kernel has no bridge or nf_tables modules loaded (networking does not depend
  # on the cgroup layout and is tested on the host): its test daemons run without the
  # default bridge.
  echo "export BERTH_RUNC_BIN=$runc BERTH_FIXTURES=/tmp/berth-fixtures RUST_BACKTRACE=1 BERTH_TEST_BRIDGE=none PATH=/usr/local/bin:/usr/bin:/bin:/sbin:/usr/sbin"
  echo "cd /tmp"
  echo "rc=0"
  for t in "${tests[@]}"; do
    echo "echo '=== $(basename "$t") ($mode)'"
    echo "$t --test-threads=2 || rc=1"
  done
  for e in "${engine_tests[@]}"; do
    set -- $e
    bin=$(printf '%s\n' "${engine_bins[@]}" | grep -E "/$1-[0-9a-f]+\$")
    shift
    echo "echo '=== engine: $(basename "$bin") $* ($mode)'"
    echo "BERTH_BIN=$rel/berth $bin --test-threads=2 $* || rc=1"
  done
  echo "echo '=== leak check ($mode)'"
  echo "sh $PWD/scripts/check-leaks.sh || rc=1"
  echo "exit \$rc"
} > "$script"
tests/vm/run.sh "$mode" "$script" "$runc" "${tests[@]}" "$PWD/scripts/check-leaks.sh" /usr/bin/jq \
  "$rel/berth" "$rel/berth-shim" "$rel/berth-init" "${engine_bins[@]}" "$docker_cli" \
  "$(command -v docker-registry)" "$(command -v skopeo)" /etc/containers/policy.json \
  /usr/bin/ps "$(command -v curl)" # procps' ps, which `docker top` runs (busybox's takes other options); curl, which tests speak the API with
