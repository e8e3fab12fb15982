#!/usr/bin/env bash
# `make dev`: the API on this machine. Starts dynalite (unless
# AWS_ENDPOINT_URL_DYNAMODB names a DynamoDB already), creates and seeds the
# tables, then runs the function under `cargo lambda watch`, with local-lambda
# (crates/local-lambda) as the Lambda API the function calls: /async's
# Invoke (Event) is answered 202 at once, as in Lambda, and the task event is
# delivered to the function through watch in the background, retried and, if
# it keeps failing, handed to the function as the failure queue's record.
# Ctrl-C stops everything this script started. Arguments go to cargo lambda
# watch (the API tests pass --ignore-changes).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"   # cargo-lambda, installed by the Makefile

: "${DEV_PORT:=9000}"          # where cargo lambda watch listens: the API
: "${LAMBDA_PORT:=9001}"       # where local-lambda listens (0: a port the OS picks)
: "${DYNAMODB_PORT:=8000}"     # where dynalite listens, when this script starts it
: "${USERS_TABLE:=users}"
: "${TASKS_TABLE:=tasks}"
# Browsers on any origin may call the local API (the deployed one takes its
# origins from the template's CorsAllowedOrigins parameter); several are
# separated by commas.
: "${CORS_ALLOWED_ORIGINS:=*}"
# The function timeout local-lambda applies (template.yaml's 90 s): Lambda's
# retry delays (60 s, 120 s) and event age scale with it.
: "${FUNCTION_TIMEOUT_MS:=90000}"
# Local endpoints accept any credentials; real ones from the environment win.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export USERS_TABLE TASKS_TABLE

pids=()
tmp=$(mktemp -d)   # local-lambda's port, the function's settings
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
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

# The function's Invoke goes to local-lambda, which delivers to watch, unless
# AWS_ENDPOINT_URL_LAMBDA names another Lambda API (the API tests' stub).
serving=()   # watch, and local-lambda when this script runs it
if [ -z "${AWS_ENDPOINT_URL_LAMBDA:-}" ]; then
  # One of watch's 4 instances stays free for HTTP requests while 3 run tasks.
  # A background job (not a process substitution), so that `wait -n` below sees it.
  cargo run --quiet -p local-lambda -- --port "$LAMBDA_PORT" \
    --target "http://127.0.0.1:$DEV_PORT" --function-timeout-ms "$FUNCTION_TIMEOUT_MS" \
    --max-parallel 3 --queue-name async-api-task-failures > "$tmp/lambda-port" &
  lambda_pid=$!
  pids+=("$lambda_pid")
  serving+=("$lambda_pid")
  lambda_port=""
  # Its first line is its port, once it is built and listening.
  until [ -n "$lambda_port" ]; do
    kill -0 "$lambda_pid" 2>/dev/null || { echo "local-lambda did not start on port $LAMBDA_PORT" >&2; exit 1; }
    sleep 0.2
    read -r lambda_port < "$tmp/lambda-port" || true
  done
  AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$lambda_port"
fi

# The function's settings go through a file: watch's --env-var would split
# CORS_ALLOWED_ORIGINS at its commas. Single quotes keep each value as it is.
env_file="$tmp/function.env"
put_env() {
  local value=${!1}
  case $value in
    *"'"* | *$'\n'*) echo "$1 cannot hold a single quote or a newline" >&2; exit 1 ;;
  esac
  printf "%s='%s'\n" "$1" "$value" >> "$env_file"
}
for name in USERS_TABLE TASKS_TABLE CORS_ALLOWED_ORIGINS AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_LAMBDA; do
  put_env "$name"
done
# The optional settings (API.md, Configuration) go too when set here.
for name in METRICS_NAMESPACE TASK_EVENT_MAX_AGE_SECONDS TASK_MAX_RETRY_ATTEMPTS REQUIRE_CALLER \
  TASKS_PER_MINUTE_PER_CALLER; do
  [ -z "${!name+set}" ] || put_env "$name"
done

cat <<MSG

The API, once cargo lambda watch has built it:
  curl -s http://127.0.0.1:$DEV_PORT/users?limit=5
  curl -s -X POST http://127.0.0.1:$DEV_PORT/async -H 'content-type: application/json' -d '{"delay_ms": 1000}'
  curl -s http://127.0.0.1:$DEV_PORT/tasks/<task_id>
  open http://127.0.0.1:$DEV_PORT/docs  (Swagger UI; the document is /openapi.json)
The function's Lambda API (Invoke): $AWS_ENDPOINT_URL_LAMBDA
Ctrl-C stops it all.

MSG

# --concurrency 4: watch runs one invocation at a time per instance.
# --disable-cors: the function answers CORS itself, as it does in Lambda.
# --bin async-api: the workspace has other binaries (crates/floor-io, the bench's floor); with
# more than one, watch serves none of them at the root path (404).
cargo lambda watch --bin async-api \
  --invoke-address 127.0.0.1 --invoke-port "$DEV_PORT" --concurrency 4 --disable-cors \
  --env-file "$env_file" "$@" &
pids+=($!)
serving+=($!)
# Whichever of watch and local-lambda ends first ends it all.
wait -n "${serving[@]}"
