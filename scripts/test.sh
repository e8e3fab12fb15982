#!/usr/bin/env bash
# `make test`: the binaries make dev runs, then every test of the workspace, then the doc examples;
# prints how long it took and exits non-zero if anything failed.
#
# The binaries come first so that no test compiles (cargo lambda watch builds the function
# without the dev-dependencies' features) while others keep deadlines. cargo-nextest runs the
# tests several at once, each a process of its own (.config/nextest.toml), against one dynalite
# that this script starts (unless AWS_ENDPOINT_URL_DYNAMODB names a DynamoDB): every test makes
# its own tables. Without cargo-nextest, cargo test runs a binary at a time, each with its own
# dynalite, about three times longer.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
status=0

cargo build -p async-api --bin async-api && cargo build -p local-lambda --bin local-lambda || exit $?

if cargo nextest --version >/dev/null 2>&1; then
  if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
    # Its stdin is this script's pipe: it stops when the script ends, however it ends.
    coproc DYNALITE { exec node tests/support/dynalite.js --exit-with-stdin; }
    trap 'kill "$DYNALITE_PID" 2>/dev/null' EXIT
    read -r -t 20 port <&"${DYNALITE[0]}" || { echo "make test: dynalite did not start" >&2; exit 1; }
    export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
  fi
  cargo nextest run --workspace --all-targets --no-fail-fast || status=$?
else
  echo "make test: cargo-nextest not found (cargo install cargo-nextest --locked): cargo test, a binary at a time"
  cargo test --workspace --all-targets --no-fail-fast || status=$?
fi
# nextest runs no doc examples.
cargo test --workspace --doc || status=$?

echo "make test: $(( $(date +%s) - start )) s"
exit "$status"
