#!/usr/bin/env python3
"""One `/users?limit=100` request's instructions (callgrind) or system calls (strace), for any
binary that speaks Lambda's Runtime API: the function, the I/O floor, a build of either.

    .venv/bin/python scripts/instructions.py target/floor/floor-io
    .venv/bin/python scripts/instructions.py ./my-build --strace

It starts the tests' dynalite with a users table of 300 users, serves the binary the same
HTTP API event from a minimal Runtime API, and runs it twice under `valgrind --tool=callgrind`:
LOW and then HIGH events. (total at HIGH - total at LOW) / (HIGH - LOW) is one warm request's
instructions, the start subtracted. The two callgrind files stay in --out (callgrind_annotate
them, `--inclusive=yes`, and diff two binaries' by symbol). With --strace, one run of HIGH events
under `strace -f -c`, each call's count divided by HIGH (the start included: calls made once, such
as `openat` and `statx`, shrink as HIGH grows). Needs boto3 (the .venv's SAM CLI brings
it), valgrind and strace. docs/performance.md says what it found.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent


def start_dynalite():
    """The tests' dynalite (tests/support/dynalite.js): on a port the OS picks, its tables ACTIVE at
    once, gone when this script ends however it ends (its stdin is our pipe)."""
    process = subprocess.Popen(
        ["node", str(ROOT / "tests/support/dynalite.js"), "--exit-with-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = process.stdout.readline().strip()
    if not port.isdigit():
        sys.exit("dynalite did not start")
    return process, seed(f"http://127.0.0.1:{port}")


def seed(endpoint):
    """The users and tasks tables at `endpoint`, 300 users in the first; the endpoint."""
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    for table, key in (("users", "id"), ("tasks", "task_id")):
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    # As the bench seeds them (tests/support's `seed_users`).
    for start in range(0, 300, 25):
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "id": {"S": f"user-{i:05}"},
                        "name": {"S": f"User {i}"},
                        "email": {"S": f"user{i}@example.com"},
                    }
                }
            }
            for i in range(start, start + 25)
        ]
        dynamodb.batch_write_item(RequestItems={"users": items})
    return endpoint


class RuntimeApi:
    """Hands out `count` copies of `event`, then holds the next `/next` open; counts the answers
    that are not a 200 HTTP response."""

    def __init__(self, event, count):
        self.event, self.count = event, count
        self.served, self.failed = 0, 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_GET(self):
                with api.lock:
                    api.served += 1
                    number = api.served
                if number > api.count:
                    api.done.set()
                    time.sleep(3600)
                    return
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", f"request-{number}")
                deadline = int(time.time() * 1000) + 600_000
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:async-api",
                )
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(api.event)))
                self.end_headers()
                self.wfile.write(api.event)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.endswith("/error") or b'"statusCode":200' not in body:
                    with api.lock:
                        api.failed += 1
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"


def run(binary, endpoint, count, wrapper):
    """Runs `binary` under `wrapper` until it has answered `count` events; the failed answers."""
    event = json.loads((ROOT / "events/http-get-users.json").read_text())
    event["rawQueryString"] = "limit=100"
    event["queryStringParameters"] = {"limit": "100"}
    api = RuntimeApi(json.dumps(event).encode(), count)
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=api.address,
        AWS_LAMBDA_FUNCTION_NAME="async-api",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/async-api",
        AWS_LAMBDA_LOG_STREAM_NAME="local",
        AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        # Never called by /users; a closed port if it were.
        AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:1",
        USERS_TABLE="users",
        TASKS_TABLE="tasks",
        SCAN_LIMIT="100",
    )
    process = subprocess.Popen(wrapper + [str(Path(binary).resolve())], env=env, stdout=subprocess.DEVNULL)
    api.done.wait(timeout=3600)
    time.sleep(0.5)
    # The binary itself, not its wrapper: valgrind and strace write their reports as it ends.
    subprocess.run(["pkill", "-TERM", "-P", str(process.pid)], check=False)
    process.send_signal(signal.SIGTERM)
    process.wait()
    api.server.shutdown()
    return api.failed


def callgrind_total(path):
    for line in path.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    sys.exit(f"{path}: no totals")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--low", type=int, default=20)
    parser.add_argument("--high", type=int, default=120)
    parser.add_argument("--out", default=str(ROOT / "target/instructions"), help="where the callgrind and strace files go")
    parser.add_argument("--strace", action="store_true", help="count system calls instead")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(args.binary).name
    dynalite, endpoint = start_dynalite()
    try:
        if args.strace:
            report = out / f"{name}.strace"
            failed = run(args.binary, endpoint, args.high, ["strace", "-f", "-c", "-o", str(report)])
            print(f"{name}: system calls a request ({args.high} requests, {failed} failed)")
            for line in report.read_text().splitlines()[2:]:
                fields = line.split()
                if len(fields) >= 5 and fields[3].isdigit() and int(fields[3]) >= args.high // 10:
                    print(f"  {fields[-1]:<16} {int(fields[3]) / args.high:6.2f}")
            return
        totals = []
        for count in (args.low, args.high):
            path = out / f"{name}-{count}.callgrind"
            failed = run(args.binary, endpoint, count, ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={path}"])
            if failed:
                sys.exit(f"{name}: {failed} of {count} answers were not a 200 page")
            totals.append(callgrind_total(path))
        per_request = (totals[1] - totals[0]) / (args.high - args.low)
        print(f"{name}: {per_request:,.0f} instructions a /users?limit=100 request (callgrind files in {out})")
    finally:
        dynalite.stdin.close()
        dynalite.wait()


if __name__ == "__main__":
    main()
