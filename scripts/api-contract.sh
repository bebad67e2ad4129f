#!/usr/bin/env bash
# The API against its committed contract: schemathesis (PyPI) generates requests for every
# operation of docs/openapi.json, sends them with an admin token to a real `garrison serve`, and
# fails on any server error (5xx), an undocumented status, a wrong content type, or a response
# that does not validate against its documented schema.
#
# Installs schemathesis into target/schemathesis-venv if missing. Bounded: a few examples per
# operation and a time budget, so it finishes in a few minutes on 2 cores.
# Usage: scripts/api-contract.sh [path/to/garrison]   (default: target/debug/garrison, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="4.32.5"
VENV="target/schemathesis-venv"
if [[ ! -x "$VENV/bin/schemathesis" ]]; then
  echo "api-contract: installing schemathesis $VERSION into $VENV" >&2
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 keeps venv in its own package.
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi

BIN="${1:-target/debug/garrison}"
if [[ ! -x "$BIN" ]]; then
  cargo build --quiet
fi

DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SERVICE_PID=""
cleanup() {
  [[ -n "$SERVICE_PID" ]] && kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

export GARRISON_LOG="${GARRISON_LOG:-warn}"
TOKEN="$("$BIN" --data-dir "$DATA" token create --role admin)"
INGEST="$("$BIN" --data-dir "$DATA" token create --ingest --source contract)"
"$BIN" --data-dir "$DATA" serve --http-addr "127.0.0.1:$PORT" --syslog-addr off 2>"$DATA/serve.log" &
SERVICE_PID=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVICE_PID" 2>/dev/null || { echo "api-contract: the service exited:" >&2; cat "$DATA/serve.log" >&2; exit 1; }
  sleep 0.1
done

# Something to find: events, so searches and rule tests have data to walk over.
curl -fsS -H "Authorization: Bearer $INGEST" \
  --data-binary $'{"id":"c1","EventID":4688,"Image":"C:\\\\Windows\\\\System32\\\\whoami.exe","host":{"name":"ws1"}}\n{"id":"c2","msg":"contract"}' \
  "http://127.0.0.1:$PORT/api/v1/ingest/events" >/dev/null

# Left out: operations that end the run's own credentials (revoking tokens, disabling users)
# would turn the rest of the run into 401s. Checks: the ones about the contract; the
# "negative data" checks (which expect a 4xx for any input the schema does not describe, such
# as extra JSON keys the server tolerates) are for a stricter schema than ours.
ROOT="$(pwd)"
# Run from the temporary folder: schemathesis keeps its cache in the working directory.
(cd "$DATA" && "$ROOT/$VENV/bin/schemathesis" run "$ROOT/docs/openapi.json" \
  --url "http://127.0.0.1:$PORT" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-operation-id revoke_token \
  --exclude-operation-id update_user \
  --phases examples,coverage,fuzzing \
  --mode positive \
  --max-examples "${CONTRACT_EXAMPLES:-8}" \
  --max-time "${CONTRACT_MAX_SECONDS:-240}" \
  --workers 2 \
  --no-color \
  --seed 1 \
  --generation-database none \
  --request-timeout 30)

if grep -qi "panicked" "$DATA/serve.log"; then
  echo "api-contract: the service panicked:" >&2
  grep -i -A5 "panicked" "$DATA/serve.log" >&2
  exit 1
fi
echo "api-contract: no server error and no contract violation"
