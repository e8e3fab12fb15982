//! The Runtime API's routes (`/next`, `/response`, `/error`, `/init/error`),
//! served to the function binary, and the router that joins them to the
//! Invoke API's.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::invocations::Shared;
use super::invoke_api::invoke;
use super::{InitError, Outcome, lock};
use crate::async_invoke::epoch_millis;

/// Largest response Lambda accepts from a synchronous invocation (its error
/// message names this exact figure).
const MAX_RESPONSE_BYTES: usize = 6_291_556;

/// What a handler knows: the emulator, and which listener the request came in on.
#[derive(Clone)]
pub(super) struct Conn {
    pub(super) shared: Arc<Shared>,
    pub(super) instance: u64,
}

/// The Runtime API's and the Invoke API's routes, for one listener.
pub(super) fn routes(conn: Conn) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route(
            "/2015-03-31/functions/{function_name}/invocations",
            post(invoke),
        )
        // Lambda's own limits apply (6 MB responses); axum's 2 MB default must not.
        .layer(DefaultBodyLimit::disable())
        .with_state(conn)
}

/// `GET /runtime/invocation/next`: hands out the next event, waiting for one.
async fn next_invocation(State(conn): State<Conn>) -> Response {
    let shared = conn.shared;
    lock(&shared.poll_times).push(Instant::now());
    *lock(&shared.next_polls) += 1;
    let queued = shared.next().await;
    let Ok((request_id, trace_id, payload, client_context, handout)) =
        shared.hand_out(queued, conn.instance)
    else {
        // The process behind this listener has ended; nobody reads this.
        return StatusCode::GONE.into_response();
    };
    let deadline = epoch_millis() + shared.timeout.as_millis();
    if shared.lambda {
        let weak = Arc::downgrade(&shared);
        let (timeout, request_id) = (shared.timeout, request_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(shared) = weak.upgrade() {
                shared.expire(&request_id, handout);
            }
        });
    }
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json".to_owned());
    set("lambda-runtime-aws-request-id", request_id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", shared.function.arn());
    set("lambda-runtime-trace-id", trace_id);
    if let Some(client_context) = client_context {
        set("lambda-runtime-client-context", client_context);
    }
    (StatusCode::OK, headers, payload).into_response()
}

/// The Runtime API's answer to a request it refuses.
fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

pub(super) fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn unknown_request(request_id: &str) -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("Invalid request ID {request_id}"),
    )
}

/// `POST /runtime/invocation/{id}/response`: the function's result. A streamed
/// response (`Lambda-Runtime-Function-Response-Mode: streaming`) is a JSON
/// prelude, eight NUL bytes, then the body; it is recorded as a response
/// document of the same shape a buffered HTTP response has.
async fn invocation_response(
    State(conn): State<Conn>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (shared, from) = (conn.shared, Some(conn.instance));
    if body.len() > MAX_RESPONSE_BYTES {
        let message = format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            body.len()
        );
        let outcome = Outcome::Error {
            error_type: "Function.ResponseSizeTooLarge".to_owned(),
            message: message.clone(),
        };
        return if shared.complete(&request_id, outcome, from) {
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &message,
            )
        } else {
            unknown_request(&request_id)
        };
    }
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"streaming"));
    let document = if streaming {
        streamed_document(&body)
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    if shared.complete(&request_id, Outcome::Response(document), from) {
        accepted()
    } else {
        unknown_request(&request_id)
    }
}

fn streamed_document(body: &[u8]) -> Value {
    const DELIMITER: &[u8] = &[0; 8];
    let split = body
        .windows(DELIMITER.len())
        .position(|window| window == DELIMITER);
    let (prelude, rest) = match split {
        Some(at) => (&body[..at], &body[at + DELIMITER.len()..]),
        None => (&[][..], body),
    };
    let mut document: Value = serde_json::from_slice(prelude).unwrap_or_else(|_| json!({}));
    document["body"] = Value::String(String::from_utf8_lossy(rest).into_owned());
    document
}

/// Reads `{errorType, errorMessage}`; anything else is kept whole as the message.
fn diagnostic(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (value["errorType"].as_str(), value["errorMessage"].as_str()) {
        (Some(error_type), Some(message)) => (error_type.to_owned(), message.to_owned()),
        _ => (
            "Unknown".to_owned(),
            String::from_utf8_lossy(body).into_owned(),
        ),
    }
}

/// `POST /runtime/invocation/{id}/error`: a function error.
async fn invocation_error(
    State(conn): State<Conn>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let (error_type, message) = diagnostic(&body);
    if conn.shared.complete(
        &request_id,
        Outcome::Error {
            error_type,
            message,
        },
        Some(conn.instance),
    ) {
        accepted()
    } else {
        unknown_request(&request_id)
    }
}

/// `POST /runtime/init/error`: the function could not start.
async fn init_error(State(conn): State<Conn>, headers: HeaderMap, body: Bytes) -> Response {
    lock(&conn.shared.init_errors).push(InitError {
        header_error_type: headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
    });
    accepted()
}
