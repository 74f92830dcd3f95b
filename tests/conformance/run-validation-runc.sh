#!/usr/bin/env bash
# The same OCI validation suite as run-validation.sh, with runc (Debian's runc
# package) as the runtime, for comparison with berth. Only runs, never builds.
#   tests/conformance/run-validation-runc.sh [TEST...]
# RUNC overrides the runc binary (default: runc from PATH).
exec env RUNTIME="${RUNC:-runc}" "$(dirname "${BASH_SOURCE[0]}")/run-validation.sh" "$@"
