#!/usr/bin/env python3
"""The black-box suite for any deployed URL of this API (`make test-deployed`).

    API_URL=https://abc123.execute-api.eu-west-1.amazonaws.com [API_TOKEN=<JWT>] \
        [API_ORIGIN=https://app.example.com] python3 tests/deployed/suite.py

API_URL is the base URL `sam deploy` prints (a REST API's stage included:
`…/Prod`). With API_TOKEN (a token the API's authorizer accepts) it also
checks a caller's ownership. A CORS preflight must be granted: from
API_ORIGIN, one of `CorsAllowedOrigins` (needed when that is not the
template's default `*`), else from https://example.com. Safe against production: a few bounded
requests (two pages of at most 2 users), three tasks of its own (100 ms of
work, and one canceled before it runs), a fresh Idempotency-Key per run; it
reads no one else's task. Python's standard library only. Prints one line per
check and exits 1 if any failed.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

BASE = os.environ.get("API_URL", "").rstrip("/")
TOKEN = os.environ.get("API_TOKEN", "")
ORIGIN = os.environ.get("API_ORIGIN", "")
TASK_TIMEOUT = float(os.environ.get("API_TASK_TIMEOUT", "120"))
FAILED = []


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if self.text else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"{self.status} {self.text[:300]}"


def url_of(path):
    """`path` is relative to API_URL (`/users`), or a `Location`: a path from the host that
    carries the stage or base path already, or a whole URL."""
    if path.startswith(("http://", "https://")):
        return path
    base = urllib.parse.urlsplit(BASE)
    if base.path and path.startswith(base.path + "/"):
        return f"{base.scheme}://{base.netloc}{path}"
    return BASE + path


def call(method, path, body=None, headers=None, token=TOKEN, raw=None):
    headers = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url_of(path), data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def check(name, condition, detail=""):
    print(("ok   - " if condition else "FAIL - ") + name + ("" if condition else f": {detail}"))
    if not condition:
        FAILED.append(name)
    return condition


def is_error(answer, status, code):
    """The contract's error body: {"error": {"code", "message", "request_id"}}."""
    error = (answer.json or {}).get("error") if isinstance(answer.json, dict) else None
    return (
        answer.status == status
        and isinstance(error, dict)
        and error.get("code") == code
        and isinstance(error.get("message"), str)
        and isinstance(error.get("request_id"), str)
    )


def users():
    first = call("GET", "/users?limit=2")
    page = first.json if isinstance(first.json, dict) else {}
    check(
        "GET /users?limit=2 is a page of at most 2 users",
        first.status == 200 and isinstance(page.get("users"), list) and len(page["users"]) <= 2
        and "next_cursor" in page,
        first,
    )
    cursor = page.get("next_cursor")
    if cursor:
        second = call("GET", "/users?limit=2&cursor=" + urllib.parse.quote(cursor))
        ids = lambda p: {u.get("id") for u in (p or {}).get("users", []) if isinstance(u, dict)}
        check(
            "the cursor leads to the next page, none of its users again",
            second.status == 200 and not (ids(page) & ids(second.json)),
            second,
        )
    bad = call("GET", "/users?limit=0")
    check("GET /users?limit=0 is a 400 bad_request as JSON", is_error(bad, 400, "bad_request"), bad)
    cursor = call("GET", "/users?cursor=not-a-cursor")
    check("a cursor this API did not make is a 400", is_error(cursor, 400, "bad_request"), cursor)


def errors():
    unknown = call("GET", f"/nope-{uuid.uuid4().hex[:8]}")
    check("an unknown path is a 404 not_found as JSON", is_error(unknown, 404, "not_found"), unknown)
    task = call("GET", f"/tasks/{uuid.uuid4()}")
    check("an unknown task is a 404 not_found", is_error(task, 404, "not_found"), task)
    not_ours = call("GET", "/tasks/not-a-task-id")
    check("a task id that is not one of ours is a 400", is_error(not_ours, 400, "bad_request"), not_ours)
    form = call("POST", "/async", None, {"content-type": "text/plain"}, raw=b"delay_ms=100")
    check("a POST /async body that is not JSON is a 415, and starts nothing",
          is_error(form, 415, "unsupported_media_type"), form)


def start(delay_ms, key=None):
    headers = {"idempotency-key": key} if key else {}
    return call("POST", "/async", {"delay_ms": delay_ms}, headers)


def started(answer):
    body = answer.json if isinstance(answer.json, dict) else {}
    return (
        answer.status == 202
        and body.get("message") == "Task started"
        and isinstance(body.get("task_id"), str)
        and body.get("status_url") == answer.headers.get("location")
    )


def tasks():
    key = f"deployed-suite-{uuid.uuid4()}"
    first = start(100, key)
    if not check("POST /async answers 202 Task started, Location = status_url", started(first), first):
        return None
    task_id = first.json["task_id"]
    again = start(100, key)
    check(
        "the same Idempotency-Key and body answer the same task, Idempotent-Replayed: true",
        started(again) and again.json["task_id"] == task_id
        and again.headers.get("idempotent-replayed") == "true",
        again,
    )
    other = start(200, key)
    check("the same key with another body is a 422",
          is_error(other, 422, "idempotency_key_reused"), other)

    location = first.headers["location"]
    deadline = time.monotonic() + TASK_TIMEOUT
    record = call("GET", location)
    while record.status == 200 and record.json.get("status") in ("queued", "running"):
        if not record.headers.get("retry-after", "").isdigit():
            check("a queued or running task carries Retry-After", False, record)
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
        record = call("GET", location)
    body = record.json if isinstance(record.json, dict) else {}
    check(
        f"the task reaches succeeded through Location within {TASK_TIMEOUT:.0f} s, result waited_ms 100",
        record.status == 200 and body.get("status") == "succeeded"
        and body.get("result") == {"waited_ms": 100} and body.get("error") is None
        and body.get("attempts", 0) >= 1 and body.get("task_id") == task_id,
        record,
    )
    ended = call("DELETE", location)
    check("DELETE of an ended task is a 409 conflict", is_error(ended, 409, "conflict"), ended)

    long = start(60000)
    if check("a second task starts", started(long), long):
        canceled = call("DELETE", long.headers["location"])
        check(
            "DELETE of a task that has not ended answers 200 with it, canceled",
            canceled.status == 200 and (canceled.json or {}).get("status") == "canceled",
            canceled,
        )
        later = call("GET", long.headers["location"])
        check("it reads canceled afterwards", (later.json or {}).get("status") == "canceled", later)
    return task_id


def cors():
    origin = ORIGIN or "https://example.com"
    granted = call("OPTIONS", "/users", None, {"origin": origin, "access-control-request-method": "GET"})
    check(
        f"a CORS preflight from {origin} is granted for GET",
        200 <= granted.status < 300
        and granted.headers.get("access-control-allow-origin") in (origin, "*")
        and "GET" in granted.headers.get("access-control-allow-methods", "").upper(),
        f"{granted} {granted.headers}",
    )


def ownership(task_id):
    listed = call("GET", "/tasks?limit=100")
    ids = [t.get("task_id") for t in (listed.json or {}).get("tasks", []) if isinstance(t, dict)]
    check("GET /tasks lists the caller's own task", listed.status == 200 and task_id in ids, listed)
    anonymous = call("GET", f"/tasks/{task_id}", token="")
    check("the caller's task is not readable without the token (401 or 404)",
          anonymous.status in (401, 404), anonymous)
    anonymous_list = call("GET", "/tasks", token="")
    check("GET /tasks without a caller is a 401", anonymous_list.status == 401, anonymous_list)


def main():
    if not BASE.startswith(("http://", "https://")):
        print("API_URL=https://… [API_TOKEN=…] [API_ORIGIN=…] python3 tests/deployed/suite.py",
              file=sys.stderr)
        return 2
    print(f"deployed suite against {BASE}" + (" with a token" if TOKEN else ", anonymous"))
    users()
    errors()
    task_id = tasks()
    cors()
    if TOKEN and task_id:
        ownership(task_id)
    elif not TOKEN:
        listed = call("GET", "/tasks")
        check("GET /tasks of an anonymous caller is a 401", listed.status == 401, listed)
    print(f"{len(FAILED)} failed" if FAILED else "every check passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
