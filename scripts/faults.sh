#!/usr/bin/env bash
# The fault scenarios at the issue's full size (CI runs them smaller): a full disk on a tmpfs
# (needs root: the test mounts and unmounts it), 20,000 idle connections plus slow-header ones
# while a normal client keeps being answered, a second instance refused, a brute-forced account,
# a truncated audit log, playbook saves during full-speed ingest. Prints each scenario's figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export GARRISON_FAULT_CONNECTIONS="${GARRISON_FAULT_CONNECTIONS:-20000}"
export GARRISON_FAULT_SAVES="${GARRISON_FAULT_SAVES:-200}"
cargo nextest run -p garrison --test e2e --no-capture \
  -E 'test(/faults::|hardening::/)' "$@"
