#!/usr/bin/env bash
# `make dev`: the API on this machine. Starts dynalite (unless
# AWS_ENDPOINT_URL_DYNAMODB names a DynamoDB already), creates and seeds the
# tables, then runs the function under `cargo lambda watch`, whose Invoke API
# the function calls for /async, so background tasks really self-invoke.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${DEV_PORT:=9000}"          # where cargo lambda watch listens
: "${DYNAMODB_PORT:=8000}"     # where dynalite listens, when this script starts it
: "${USERS_TABLE:=users}"
: "${TASKS_TABLE:=tasks}"
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
Ctrl-C stops it all.

MSG

# --concurrency 4: watch runs one invocation at a time per instance and answers
# an Event invoke only when it is done, so /async needs a second instance for
# its own task.
cargo lambda watch \
  --invoke-address 127.0.0.1 --invoke-port "$DEV_PORT" --concurrency 4 \
  --env-var "USERS_TABLE=$USERS_TABLE,TASKS_TABLE=$TASKS_TABLE" \
  --env-var "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" \
  --env-var "AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$DEV_PORT" &
pids+=($!)
wait "${pids[-1]}"
