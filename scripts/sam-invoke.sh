#!/usr/bin/env bash
# `make sam-invoke EVENT=events/<file>`: `sam local invoke` of the function `sam build` made, in
# its arm64 container, against dynalite seeded with the sample users; prints the function's
# result (SAM's own messages and the function's logs go to stderr). Sets up what it needs and
# stops what it started (see scripts/sam-lib.sh).
#
#   scripts/sam-invoke.sh EVENT_FILE...
#
# Several files run one after the other against the same tables. When the function starts a
# task (202 from /async), the script waits until local-lambda has delivered it, then prints what
# GET /tasks/{task_id} answers. With SAM_INVOKE_RESULTS=DIR, each result is also written to
# DIR/<event file name>, and that task answer to DIR/<event name>.task.json (for the tests).
# AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL_LAMBDA, when set, are used instead of starting
# dynalite or `sam local start-lambda`; either must be reachable from a container.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 EVENT_FILE... (e.g. events/http-get-users.json)" >&2; exit 2; }
for event in "$@"; do
  [ -f "$event" ] || { echo "no event file $event" >&2; exit 2; }
done
# shellcheck source=scripts/sam-lib.sh
source scripts/sam-lib.sh

sam_prepare
results=${SAM_INVOKE_RESULTS:-}
for event in "$@"; do
  out="$SAM_LOCAL_DIR/result.$$.json"
  sam_on_exit "rm -f '$out'"
  sam_timed "invoke $event" sam local invoke "$SAM_FUNCTION" "${SAM_OPTIONS[@]}" \
    --event "$event" >"$out"
  cat "$out"
  echo
  [ -z "$results" ] || cp "$out" "$results/$(basename "$event")"
  # A task it started runs on after the answer, as in Lambda: wait for it, then show it.
  sam_timed "deliveries of $event" sam_wait_deliveries "${SAM_DELIVERY_WAIT:-600}"
  task=$(sam_task_status "$out")
  if [ -n "$task" ]; then
    echo "GET /tasks/{task_id} now: $task"
    [ -z "$results" ] || echo "$task" >"$results/$(basename "$event" .json).task.json"
  fi
done
