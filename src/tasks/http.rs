//! The task routes: `POST /async` (and `GET /async`) record a task and enqueue
//! its event; `GET /tasks/{task_id}` shows the record.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{ReadError, TaskStore};
use super::{DEFAULT_DELAY_MS, MAX_DELAY_MS, TaskEvent, TaskRecord, is_task_id};
use crate::error::{
    ApiError, BadRequestResponse, InternalResponse, NotFoundResponse, PayloadTooLargeResponse,
    UnavailableResponse,
};
use crate::state::AppState;

/// The body of `POST /async`; every field optional, no other field allowed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTask {
    /// How long the stand-in task waits before it completes, in milliseconds.
    /// Any JSON number with no fraction counts (`54.0` is 54), as JSON Schema's
    /// `integer` says.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 60000, default = 1000)]
    delay_ms: Option<serde_json::Number>,
}

/// The answer to `/async`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStarted {
    #[schema(example = "Task started")]
    message: &'static str,
    #[schema(format = Uuid)]
    task_id: String,
    /// Where to follow the task: `/tasks/{task_id}`.
    status_url: String,
}

/// `POST /async`: record a task, enqueue its event, answer 202 at once.
#[utoipa::path(
    post,
    path = "/async",
    tag = "tasks",
    request_body(content = Option<StartTask>, description = "Optional: no body, or `null`, takes the defaults", content_type = "application/json"),
    responses(
        (status = 202, description = "The task is recorded and enqueued", body = TaskStarted,
            headers(("Location" = String, description = "The task's status URL, `/tasks/{task_id}`"))),
        (status = 400, response = BadRequestResponse),
        (status = 413, response = PayloadTooLargeResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn start_task(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let delay_ms = delay_from_body(&body).map_err(ApiError::BadRequest)?;
    enqueue_task(&state, delay_ms).await
}

/// `GET /async`: the same as `POST /async` with the defaults, for callers of
/// the FastAPI original.
#[utoipa::path(
    get,
    path = "/async",
    tag = "tasks",
    responses(
        (status = 202, description = "The task is recorded and enqueued", body = TaskStarted,
            headers(("Location" = String, description = "The task's status URL, `/tasks/{task_id}`"))),
        (status = 413, response = PayloadTooLargeResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn start_default_task(State(state): State<AppState>) -> Result<Response, ApiError> {
    enqueue_task(&state, DEFAULT_DELAY_MS).await
}

/// The `delay_ms` a `POST /async` body asks for. No body, or `null`, means the
/// default; anything else must be a JSON object (a body of whitespace alone is
/// not JSON). The error says what is wrong without echoing the body.
fn delay_from_body(body: &[u8]) -> Result<u64, String> {
    if body.is_empty() {
        return Ok(DEFAULT_DELAY_MS);
    }
    // Through a map first: serde would also read a struct from an array (`[null]`).
    let object = serde_json::from_slice::<Option<serde_json::Map<String, serde_json::Value>>>(body)
        .map_err(|err| body_error(&err))?;
    let request: StartTask = match object {
        Some(object) => serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|err| body_error(&err))?,
        None => StartTask::default(),
    };
    match request.delay_ms {
        None => Ok(DEFAULT_DELAY_MS),
        Some(n) => whole_millis(&n)
            .filter(|ms| *ms <= MAX_DELAY_MS)
            .ok_or_else(|| format!("delay_ms must be an integer from 0 to {MAX_DELAY_MS}")),
    }
}

/// A JSON number as whole milliseconds, if it is a non-negative integer
/// (written `54` or `54.0`).
fn whole_millis(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=MAX_DELAY_MS as f64).contains(f))
            .map(|f| f as u64)
    })
}

/// Says what is wrong with a body without echoing any of it back (serde's
/// messages quote the offending values).
fn body_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!(
            "Invalid JSON body: not valid JSON (line {}, column {})",
            err.line(),
            err.column()
        ),
        Category::Data => format!(
            "Invalid JSON body: expected an object with an optional integer delay_ms from 0 to {MAX_DELAY_MS}"
        ),
    }
}

/// Writes the task record (`queued`), then enqueues its event; if the enqueue
/// fails, the record says `failed` and the answer is 503.
async fn enqueue_task(state: &AppState, delay_ms: u64) -> Result<Response, ApiError> {
    let store = TaskStore::of(state);
    let task_id = Uuid::new_v4().to_string();
    match store.put_queued(&task_id).await {
        Ok(_) => {}
        // The id is fresh, so only our own earlier attempt can have written it:
        // the SDK retried a PutItem whose answer was lost. The record is there.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(PutItemError::is_conditional_check_failed_exception) => {}
        Err(err) => return Err(ApiError::from_sdk("PutItem task", &err)),
    }

    let event = TaskEvent {
        task_id: task_id.clone(),
        delay_ms,
        fail_attempts: 0,
    };
    let payload = serde_json::to_vec(&event).map_err(|err| ApiError::Internal(err.to_string()))?;
    let enqueued = state
        .lambda
        .invoke()
        .function_name(&state.config.function_name)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload))
        .send()
        .await;
    if let Err(err) = enqueued {
        // A throttled or unreachable Lambda is 503; a refusal that no retry
        // cures (access denied, no such function) is 500.
        let error = ApiError::from_sdk("Invoke (Event)", &err);
        store.mark_not_enqueued(&task_id).await;
        return Err(error);
    }

    tracing::info!(task_id, delay_ms, "task enqueued");
    let status_url = format!("/tasks/{task_id}");
    let body = TaskStarted {
        message: "Task started",
        task_id,
        status_url: status_url.clone(),
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url)],
        Json(body),
    )
        .into_response())
}

/// `GET /tasks/{task_id}`: the task's status.
#[utoipa::path(
    get,
    path = "/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = String, Path, format = Uuid, description = "The id `/async` returned",
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The task", body = TaskRecord),
        (status = 400, response = BadRequestResponse),
        (status = 404, response = NotFoundResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn get_task(
    State(state): State<AppState>,
    task_id: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskRecord>, ApiError> {
    let Path(task_id) = task_id?;
    if !is_task_id(&task_id) {
        return Err(ApiError::BadRequest(
            "task_id must be a task id this API returned (a lowercase UUID)".to_owned(),
        ));
    }
    match TaskStore::of(&state).read(&task_id).await {
        Ok(Some(stored)) => Ok(Json(stored.record)),
        Ok(None) => Err(ApiError::NotFound(format!("No task {task_id}"))),
        Err(ReadError::Sdk(err)) => Err(ApiError::from_sdk("GetItem task", &err)),
        Err(ReadError::Record(message)) => Err(ApiError::Internal(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_body_null_or_an_empty_object_takes_the_default_delay() {
        for body in ["", "null", " null\n", "{}"] {
            assert_eq!(
                delay_from_body(body.as_bytes()),
                Ok(DEFAULT_DELAY_MS),
                "{body:?}"
            );
        }
    }

    #[test]
    fn delay_ms_is_any_whole_number_from_0_to_60000() {
        for (body, ms) in [
            (r#"{"delay_ms": 0}"#, 0),
            (r#"{"delay_ms": 54}"#, 54),
            (r#"{"delay_ms": 54.0}"#, 54),
            (r#"{"delay_ms": 6e4}"#, 60_000),
            (r#"{"delay_ms": 60000}"#, 60_000),
        ] {
            assert_eq!(delay_from_body(body.as_bytes()), Ok(ms), "{body}");
        }
        let out_of_range = "delay_ms must be an integer from 0 to 60000";
        for body in [
            r#"{"delay_ms": -1}"#,
            r#"{"delay_ms": 60001}"#,
            r#"{"delay_ms": 1.5}"#,
            r#"{"delay_ms": 1e300}"#,
        ] {
            assert_eq!(
                delay_from_body(body.as_bytes()).unwrap_err(),
                out_of_range,
                "{body}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_the_object_says_so_without_echoing_it() {
        let not_the_object = "Invalid JSON body: expected an object with an optional integer delay_ms from 0 to 60000";
        for body in [
            r#"[null]"#,
            r#""secret""#,
            r#"{"secret": 1}"#,
            r#"{"delay_ms": "secret"}"#,
        ] {
            assert_eq!(
                delay_from_body(body.as_bytes()).unwrap_err(),
                not_the_object,
                "{body}"
            );
        }
        for (body, at) in [
            (" \t\n", "line 2, column 0"),
            ("\x0c", "line 1, column 1"),
            ("secret", "line 1, column 1"),
        ] {
            assert_eq!(
                delay_from_body(body.as_bytes()).unwrap_err(),
                format!("Invalid JSON body: not valid JSON ({at})"),
                "{body:?}"
            );
        }
    }
}
