#!/usr/bin/env bash
# Fails if the test suites left anything on this machine: cgroups made by tests, mounts of
# test bundles, processes in test cgroups, or container state in the default root.
set -uo pipefail
bad=0
cg=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 8 -type d -name 'berth-test-*' 2>/dev/null)
if [ -n "$cg" ]; then echo "leaked cgroups:"; printf '%s\n' "$cg"; bad=1; fi
m=$(grep -E 'berth-(bundle|root)-' /proc/self/mountinfo || true)
if [ -n "$m" ]; then echo "leaked mounts:"; printf '%s\n' "$m"; bad=1; fi
p=$(grep -l 'berth-test-' /proc/[0-9]*/cgroup 2>/dev/null || true)
if [ -n "$p" ]; then echo "leaked processes:"; printf '%s\n' "$p"; bad=1; fi
s=$(grep -l 'berth-shim-state-' /proc/[0-9]*/cmdline 2>/dev/null || true)
if [ -n "$s" ]; then echo "leaked shims (of the shim's suite):"; printf '%s\n' "$s"; bad=1; fi
# (@seccomp is the runtime's cache of compiled seccomp programs, not a container.)
left=$(ls -A /run/berth 2>/dev/null | grep -vx '@seccomp')
if [ -n "$left" ]; then
  echo "containers left in /run/berth:"; printf '%s\n' "$left"; bad=1
fi
[ "$bad" = 0 ] && echo "no leaks"
exit "$bad"
