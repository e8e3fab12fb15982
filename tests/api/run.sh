#!/usr/bin/env bash
# The API tested from the outside, as `make dev` serves it (dynalite + cargo
# lambda watch, on ports the OS picks): schemathesis drives every operation of
# /openapi.json, and headless Chromium checks that /docs shows the API and that
# "Try it out" on GET /users shows users.
#
#   tests/api/run.sh schemathesis   bounded schema run (`make test-api`)
#   tests/api/run.sh deployed       tests/deployed/suite.py, as against a deployed URL (`make test-api`)
#   tests/api/run.sh browser        /docs in Chromium (`make test-containers`)
#   FUZZ_API_SECONDS=600 tests/api/run.sh schemathesis   longer schema run (`make fuzz-api`)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
what="${1:-all}"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export DEV_PORT DYNAMODB_PORT LAMBDA_PORT=0
DEV_PORT=$(free_port)
DYNAMODB_PORT=$(free_port)
base="http://127.0.0.1:$DEV_PORT"
log=target/api-tests
mkdir -p "$log"

group=""
stub=""
cleanup() {
  [ -n "$stub" ] && kill "$stub" 2>/dev/null || true
  [ -n "$group" ] && kill -TERM -- "-$group" 2>/dev/null || true
  sleep 1
  [ -n "$group" ] && kill -KILL -- "-$group" 2>/dev/null || true
}
trap cleanup EXIT

# The self-invocations of /async go to a stand-in that accepts them (see accept-invokes.js), but
# for the deployed suite, whose tasks must run: there make dev's local Lambda delivers them.
if [ "$what" != deployed ]; then
  exec 4< <(node tests/api/accept-invokes.js)
  stub=$!
  read -r -t 10 invoke_port <&4
  export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$invoke_port"
fi

# --ignore-changes: a test run serves the code it started with. Schemathesis
# sends thousands of tasks a minute, all from one anonymous caller: the limit
# is raised so that it tests /async rather than the 429 (tests/rate_limit.rs
# proves the limit).
export TASKS_PER_MINUTE_PER_CALLER="${TASKS_PER_MINUTE_PER_CALLER:-10000}"
setsid scripts/dev.sh --ignore-changes > "$log/dev.log" 2>&1 < /dev/null &
group=$!
echo "api-tests: starting the API on $base (log: $log/dev.log)"
for _ in $(seq 600); do
  curl -sf -o /dev/null "$base/users?limit=1" && break
  kill -0 "$group" 2>/dev/null || { cat "$log/dev.log"; echo "api-tests: make dev stopped" >&2; exit 1; }
  sleep 0.5
done
curl -sf -o /dev/null "$base/users?limit=1" || { cat "$log/dev.log"; echo "api-tests: the API never answered" >&2; exit 1; }

if [ "$what" = all ] || [ "$what" = schemathesis ]; then
  curl -sf "$base/openapi.json" -o "$log/openapi.json"
  .venv/bin/python -m openapi_spec_validator "$log/openapi.json"
  # GET /docs is HTML, for people: the browser check below covers it.
  PYTHONPATH=tests/api SCHEMATHESIS_HOOKS=hooks \
    .venv/bin/schemathesis --config-file tests/api/schemathesis.toml run "$base/openapi.json" \
    --exclude-path /docs --max-time "${FUZZ_API_SECONDS:-60}" --report junit --report-dir "$log"
fi
if [ "$what" = deployed ]; then
  API_URL="$base" python3 tests/deployed/suite.py
fi
if [ "$what" = all ] || [ "$what" = browser ]; then
  DOCS_URL="$base/docs" SCREENSHOT="$log/docs.png" node --test tests/api/docs.test.mjs
fi
