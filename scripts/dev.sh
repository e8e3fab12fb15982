#!/usr/bin/env bash
# `make dev`: the API on this machine. Starts dynalite (unless
# AWS_ENDPOINT_URL_DYNAMODB names a DynamoDB already), creates and seeds the
# tables, then runs the function under `cargo lambda watch`, whose Invoke API
# the function calls for /async, so background tasks really self-invoke.
# Ctrl-C stops everything this script started. Arguments go to cargo lambda
# watch (the API tests pass --ignore-changes).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"   # cargo-lambda, installed by the Makefile

: "${DEV_PORT:=9000}"          # where cargo lambda watch listens
: "${DYNAMODB_PORT:=8000}"     # where dynalite listens, when this script starts it
: "${USERS_TABLE:=users}"
: "${TASKS_TABLE:=tasks}"
# Browsers on any origin may call the local API (the deployed one takes its
# origins from the template's CorsAllowedOrigins parameter).
: "${CORS_ALLOWED_ORIGINS:=*}"
# /async invokes the function through watch itself, unless told otherwise.
: "${AWS_ENDPOINT_URL_LAMBDA:=http://127.0.0.1:$DEV_PORT}"
# Local endpoints accept any credentials; real ones from the environment win.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export USERS_TABLE TASKS_TABLE

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
  exec 3< <(node tests/support/dynalite.js "$DYNAMODB_PORT")
  pids+=($!)
  read -r -t 20 port <&3 || { echo "dynalite did not start on port $DYNAMODB_PORT" >&2; exit 1; }
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
  echo "dynalite: $AWS_ENDPOINT_URL_DYNAMODB (in memory: data goes when it stops)"
fi

cargo run --quiet --example seed

cat <<MSG

The API, once cargo lambda watch has built it:
  curl -s http://127.0.0.1:$DEV_PORT/users?limit=5
  curl -s -X POST http://127.0.0.1:$DEV_PORT/async -d '{"delay_ms": 1000}'
  curl -s http://127.0.0.1:$DEV_PORT/tasks/<task_id>
  open http://127.0.0.1:$DEV_PORT/docs  (Swagger UI; the document is /openapi.json)
Ctrl-C stops it all.

MSG

# --concurrency 4: watch runs one invocation at a time per instance and answers
# an Event invoke only when it is done, so /async needs a second instance for
# its own task.
# --disable-cors: the function answers CORS itself, as it does in Lambda.
cargo lambda watch \
  --invoke-address 127.0.0.1 --invoke-port "$DEV_PORT" --concurrency 4 --disable-cors \
  --env-var "USERS_TABLE=$USERS_TABLE,TASKS_TABLE=$TASKS_TABLE" \
  --env-var "CORS_ALLOWED_ORIGINS=$CORS_ALLOWED_ORIGINS" \
  --env-var "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" \
  --env-var "AWS_ENDPOINT_URL_LAMBDA=$AWS_ENDPOINT_URL_LAMBDA" "$@" &
pids+=($!)
wait "${pids[-1]}"
