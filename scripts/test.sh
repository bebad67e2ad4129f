#!/usr/bin/env bash
# The whole test suite: every crate's unit, integration and end-to-end tests, with the store
# conformance suite run against SQLite and against a throw-away PostgreSQL cluster.
# Installs what it needs (cargo-nextest, Debian's postgresql, schemathesis from PyPI, if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

# Corpus-based tests find ../shared/corpus from the project root; say so when it is absent.
CORPUS="${GARRISON_CORPUS:-$(pwd)/../shared/corpus}"
if [[ -d "$CORPUS" ]]; then
  export GARRISON_CORPUS="$(cd "$CORPUS" && pwd)"
else
  echo "test.sh: corpus not found at $CORPUS; corpus tests will skip" >&2
fi

# Doctests first, so the run closes on nextest's summary of every test.
cargo test --workspace --doc --quiet
# The API against its committed contract (schemathesis; installs itself; a few minutes).
cargo build --quiet
scripts/api-contract.sh target/debug/garrison
scripts/with-postgres.sh cargo nextest run --workspace --no-fail-fast "$@"
