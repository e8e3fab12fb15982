//! The Invoke API the function calls: `Event` queued with Lambda's
//! asynchronous semantics, `RequestResponse` passed to the target, `DryRun`
//! answered; and the log lines of it all.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use local_lambda::async_invoke::{Account, Answer, AsyncInvoker};
use local_lambda::http_target::{HttpTarget, answer_of, invoke_path, is_error_body};
use serde_json::json;

/// What the Invoke API's handler knows.
pub struct App {
    pub invoker: AsyncInvoker,
    pub target: Arc<HttpTarget>,
    /// The only function name accepted, if any.
    pub function_name: Option<String>,
    pub account: Account,
}

/// One line on stderr.
pub fn log(line: String) {
    eprintln!("local_lambda: {line}");
}

/// Lambda's error answer: `x-amzn-ErrorType` and `{"Type", "message"}`.
fn lambda_error(status: StatusCode, error_type: &str, kind: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", error_type.to_owned())],
        axum::Json(json!({"Type": kind, "message": message})),
    )
        .into_response()
}

/// `POST /2015-03-31/functions/{name}/invocations`: Lambda's `Invoke`.
async fn invoke(
    State(app): State<Arc<App>>,
    Path(function_name): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    if app
        .function_name
        .as_ref()
        .is_some_and(|only| *only != function_name)
    {
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "User",
            &format!(
                "Function not found: {}",
                app.account
                    .function_arn(&function_name)
                    .trim_end_matches(":$LATEST")
            ),
        );
    }
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    if !payload.is_empty() && serde_json::from_slice::<serde_json::Value>(&payload).is_err() {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "User",
            "Could not parse request body into json",
        );
    }
    match invocation_type {
        "Event" => {
            let (request_id, _job) = app.invoker.submit(&function_name, payload.to_vec());
            (StatusCode::ACCEPTED, [("x-amzn-requestid", request_id)]).into_response()
        }
        "RequestResponse" => proxy(&app, &function_name, &headers, &payload).await,
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        other => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "User",
            &format!("Unsupported invocation type {other}"),
        ),
    }
}

/// A synchronous invocation: the target's answer, in Lambda's form.
async fn proxy(app: &App, function_name: &str, headers: &HeaderMap, payload: &[u8]) -> Response {
    let name = app
        .target
        .target_function
        .as_deref()
        .unwrap_or(function_name);
    let mut forwarded = vec![
        ("x-amz-invocation-type", "RequestResponse"),
        ("content-type", "application/json"),
    ];
    for name in ["x-amz-client-context", "x-amz-log-type", "x-amzn-trace-id"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            forwarded.push((name, value));
        }
    }
    let response = match app
        .target
        .endpoint
        .post(&invoke_path(name), &forwarded, payload)
        .await
    {
        Ok(response) => response,
        Err(err) => {
            log(format!(
                "RequestResponse {function_name}: target unreachable: {err}"
            ));
            return lambda_error(
                StatusCode::BAD_GATEWAY,
                "ServiceException",
                "Service",
                &format!("the target {} is unreachable: {err}", app.target.endpoint),
            );
        }
    };
    let request_id = response
        .header("x-amzn-requestid")
        .or(response.header("lambda-runtime-aws-request-id"))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let mut out = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-amzn-requestid", &request_id);
    set("content-type", "application/json");
    let (status, body) = match answer_of(&response) {
        Answer::Response(body) => {
            set("x-amz-executed-version", "$LATEST");
            (StatusCode::OK, body)
        }
        Answer::Error {
            function_error,
            payload,
        } if response.status == 200 || is_error_body(&response.body) => {
            set("x-amz-executed-version", "$LATEST");
            set("x-amz-function-error", &function_error);
            (StatusCode::OK, payload)
        }
        // Anything else from the target (its own 4xx, a 5xx of no function) goes through as is.
        Answer::Error { .. } => (
            StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY),
            response.body.clone(),
        ),
    };
    if let Some(logs) = response.header("x-amz-log-result") {
        set("x-amz-log-result", logs);
    }
    (status, out, body).into_response()
}

/// Lambda's `Invoke` route.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/2015-03-31/functions/{function_name}/invocations",
            post(invoke),
        )
        // Lambda's own limits apply (6 MB), not axum's 2 MB default.
        .layer(DefaultBodyLimit::max(7 * 1024 * 1024))
        .with_state(app)
}
