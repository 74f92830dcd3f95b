#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (run as root):
#
#   scripts/test.sh
#
# 1. installs the Debian packages the suites use (apt-get update, then install);
# 2. checks the policy: `cargo fmt --check`, `cargo clippy --workspace --all-targets -D
#    warnings`, and the release binaries built as installed (scripts/build-release.sh);
#    then builds every test binary;
# 3. runs the workspace's tests inside their own network and mount namespace
#    (unshare --net --mount), so nothing they do can disturb the host;
# 4. runs the runtime and cgroup suites again on a pure cgroup v2 kernel and a pure
#    cgroup v1 kernel, booted under qemu (tests/vm/run.sh);
# 5. checks that nothing was left behind: mounts, cgroups, processes, state directories.
#
# Environment: BERTH_SKIP_VM=1 skips step 4 (for quick local runs; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh must run as root (the integration tests start real containers)" >&2
  exit 1
fi

log "installing Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  busybox-static libseccomp-dev pkg-config iproute2 procps util-linux nftables iperf3 \
  runc crun podman containerd docker.io protobuf-compiler \
  qemu-system-x86 cpio gzip jq xz-utils skopeo docker-registry debootstrap openssl curl python3-cryptography python3-venv bsdutils docker-compose buildah >/dev/null

log "policy: formatting, lints, the release build as installed"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
scripts/build-release.sh >/dev/null

log "building"
cargo build --workspace --all-targets
cargo test --workspace --no-run 2>&1 | tail -n 3

log "Debian test images: the base and the gcc root (debootstrap, cached in /var/cache/berth-test; needs the mirror, so before the private network)"
cargo run -q -p berth-testkit --example debian-base

log "the Python docker SDK (7.1, from PyPI) for the engine's SDK tests"
SDK_VENV=/var/cache/berth-test/sdk-venv
if ! "$SDK_VENV/bin/python" -c 'import docker; assert docker.__version__ == "7.1.0"' 2>/dev/null; then
  rm -rf "$SDK_VENV"
  python3 -m venv "$SDK_VENV"
  "$SDK_VENV/bin/pip" install -q docker==7.1.0
fi
export BERTH_SDK_PYTHON="$SDK_VENV/bin/python"

log "unit and integration tests (private network and mount namespace)"
unshare --net --mount --propagation private -- bash -c '
  set -euo pipefail
  ip link set lo up
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --offline --no-fail-fast
  else
    cargo test --workspace --offline --no-fail-fast
  fi
'

if [ "${BERTH_SKIP_VM:-0}" != 1 ]; then
  for mode in v2 v1; do
    log "runtime and cgroup suites on a pure cgroup $mode kernel (qemu)"
    scripts/vm-suite.sh "$mode"
  done
fi

log "checking that nothing was left behind"
scripts/check-leaks.sh
log "all tests passed"
