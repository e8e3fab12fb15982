#!/usr/bin/env bash
# `make sam-api`: the API through `sam local start-api` on http://127.0.0.1:${SAM_PORT:-3000},
# the function in its arm64 container against dynalite seeded with the sample users; /async
# invokes the function through a local Lambda Invoke endpoint. Sets up what it needs (see
# scripts/sam-lib.sh); Ctrl-C stops everything it started, containers included.
#
# AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL_LAMBDA, when set, are used instead of starting
# dynalite or the Invoke endpoint; either must be reachable from a container.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SAM_PORT:=3000}"
# shellcheck source=scripts/sam-lib.sh
source scripts/sam-lib.sh

sam_prepare
# Loopback only, as make dev: the API is for this machine. EAGER: the function's container
# starts now, not on the first request, and serves every request after it.
sam_background - local start-api "${SAM_OPTIONS[@]}" --host 127.0.0.1 --port "$SAM_PORT" \
  --warm-containers EAGER
api=$SAM_PID
sam_on_exit "sam_kill $api INT 30"
sam_timed "start-api ready" sam_wait_port 127.0.0.1 "$SAM_PORT" 180 "$api" ||
  sam_die "sam local start-api did not start"

cat >&2 <<MSG

The API, through sam local start-api:
  curl -s http://127.0.0.1:$SAM_PORT/users?limit=5
  curl -s -X POST http://127.0.0.1:$SAM_PORT/async -H 'content-type: application/json' -d '{"delay_ms": 1000}'
  curl -s http://127.0.0.1:$SAM_PORT/tasks/<task_id>
Ctrl-C stops it all.

MSG
wait "$api"
