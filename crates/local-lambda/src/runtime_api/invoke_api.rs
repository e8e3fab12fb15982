//! Lambda's `Invoke` API as the function calls it (`AWS_ENDPOINT_URL_LAMBDA`):
//! `Event` queued (with Lambda's semantics, through
//! [`AsyncInvoker`](crate::async_invoke::AsyncInvoker) and the emulator's own
//! queue), `RequestResponse` waited for, `DryRun` answered.

use std::sync::{Arc, Weak};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::invocations::Shared;
use super::routes::Conn;
use super::{InvocationKind, InvokeCall, Outcome, lock};
use crate::async_invoke::{Answer, BoxFuture, Delivery, Invocation, Target};

/// `POST /2015-03-31/functions/{name}/invocations`: Lambda's `Invoke`.
/// `Event` queues and answers 202 at once (with Lambda's semantics, through
/// the asynchronous queue of [`crate::async_invoke`]); `RequestResponse` (the default)
/// waits for the result. A function that invokes itself synchronously while
/// it runs one invocation at a time waits for ever, as it would in Lambda.
pub(super) async fn invoke(
    State(conn): State<Conn>,
    Path(function_name): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    let shared = conn.shared;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let invocation_type = header("x-amz-invocation-type").unwrap_or("RequestResponse".to_owned());
    let trace_header = header("x-amzn-trace-id");
    let kind = match invocation_type.as_str() {
        "Event" => InvocationKind::Event,
        "RequestResponse" => InvocationKind::RequestResponse,
        "DryRun" => {
            record_call(
                &shared,
                function_name,
                invocation_type,
                payload,
                None,
                trace_header,
            );
            return StatusCode::NO_CONTENT.into_response();
        }
        other => {
            return (
                StatusCode::BAD_REQUEST,
                [("x-amzn-errortype", "InvalidParameterValueException")],
                axum::Json(json!({
                    "Type": "User",
                    "message": format!("Unsupported invocation type {other}"),
                })),
            )
                .into_response();
        }
    };
    if kind == InvocationKind::Event
        && let Some(invoker) = shared.invoker.get()
    {
        // Lambda's semantics: the event counts as in flight until it has
        // ended, retries and destination included.
        let (request_id, job) = invoker.submit(&function_name, payload.to_vec());
        if let Some(caller) = &trace_header {
            lock(&shared.callers_traces).insert(request_id.clone(), caller.clone());
        }
        *lock(&shared.events_in_flight) += 1;
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let _ = job.await;
            if let Some(shared) = weak.upgrade() {
                *lock(&shared.events_in_flight) -= 1;
                shared.events_changed.notify_waiters();
            }
        });
        record_call(
            &shared,
            function_name,
            invocation_type,
            payload,
            Some(request_id.clone()),
            trace_header,
        );
        return (StatusCode::ACCEPTED, [("x-amzn-requestid", request_id)]).into_response();
    }
    let client_context = header("x-amz-client-context")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Some(caller) = &trace_header {
        lock(&shared.callers_traces).insert(request_id.clone(), caller.clone());
    }
    let (request_id, _, outcome) =
        shared.enqueue(Some(request_id), payload.clone(), kind, client_context);
    record_call(
        &shared,
        function_name,
        invocation_type,
        payload,
        Some(request_id.clone()),
        trace_header,
    );
    let request_id_header = [("x-amzn-requestid", request_id.clone())];
    if kind == InvocationKind::Event {
        return (StatusCode::ACCEPTED, request_id_header).into_response();
    }
    match outcome.await {
        Ok(Outcome::Response(document)) => (
            StatusCode::OK,
            request_id_header,
            [("x-amz-executed-version", "$LATEST")],
            axum::Json(document),
        )
            .into_response(),
        Ok(Outcome::Error {
            error_type,
            message,
        }) => (
            StatusCode::OK,
            request_id_header,
            [
                ("x-amz-executed-version", "$LATEST"),
                ("x-amz-function-error", "Unhandled"),
            ],
            axum::Json(json!({"errorType": error_type, "errorMessage": message})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-amzn-errortype", "ServiceException")],
            axum::Json(json!({"Type": "Service", "message": "invocation dropped"})),
        )
            .into_response(),
    }
}

fn record_call(
    shared: &Shared,
    function_name: String,
    invocation_type: String,
    payload: Bytes,
    request_id: Option<String>,
    trace_header: Option<String>,
) {
    lock(&shared.invoke_calls).push(InvokeCall {
        function_name,
        invocation_type,
        payload,
        request_id,
        trace_header,
    });
}

/// Runs each delivery of [`AsyncInvoker`](crate::async_invoke::AsyncInvoker)
/// through the emulator's own queue.
pub(super) struct EmulatorTarget {
    pub(super) shared: Weak<Shared>,
}

impl Target for EmulatorTarget {
    fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            let Some(shared) = self.shared.upgrade() else {
                return Answer::unhandled("Emulator.Stopped", "the emulator has stopped");
            };
            let kind = match invocation.delivery {
                Delivery::Event { .. } => InvocationKind::Event,
                Delivery::Sqs { .. } => InvocationKind::Sqs,
            };
            let (_, _, outcome) = shared.enqueue(
                Some(invocation.request_id.to_owned()),
                Bytes::copy_from_slice(invocation.payload),
                kind,
                None,
            );
            drop(shared);
            match outcome.await {
                Ok(Outcome::Response(Value::String(text))) if text.is_empty() => {
                    Answer::Response(Vec::new())
                }
                Ok(Outcome::Response(document)) => {
                    Answer::Response(serde_json::to_vec(&document).unwrap_or_default())
                }
                Ok(Outcome::Error {
                    error_type,
                    message,
                }) => Answer::unhandled(&error_type, &message),
                Err(_) => Answer::unhandled("Emulator.Dropped", "the invocation was dropped"),
            }
        })
    }
}
