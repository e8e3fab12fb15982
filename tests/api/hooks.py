"""schemathesis hooks for tests/api/run.sh (loaded through SCHEMATHESIS_HOOKS)."""
import hashlib
import re

import schemathesis


@schemathesis.hook
def filter_body(context, body):
    """Send no request body that is not UTF-8 text.

    `cargo lambda watch` answers such a request with a 500 of its own before the
    function sees it; API Gateway instead hands the function the body base64
    encoded, and the function answers 400 (tests/http.rs proves that case
    against the function itself).
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


_VISIBLE_KEY = re.compile(r'^"?[!-~]{1,255}"?$')


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Send a valid Idempotency-Key as letters and digits only, the same
    generated key always as the same sent key.

    `cargo lambda watch` answered some valid keys (visible ASCII punctuation)
    with a 500 of its own, before the function saw the request; the function's
    reading of every visible character is proven by tests/idempotency.rs and its
    unit tests. An invalid key (empty, too long, a space or a control
    character, which watch may not carry either) goes as one invalid key that
    it does: the function answers it 400.
    """
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            value = str(headers[name])
            if _VISIBLE_KEY.match(value):
                headers[name] = "k" + hashlib.sha256(value.encode()).hexdigest()[:40]
            else:
                # Still invalid (a space), still a 400, but one watch carries.
                headers[name] = "not a key"
    return None
