//! The task routes: `POST /async` (and `GET /async`) record a task and enqueue
//! its event; `GET /tasks/{task_id}` shows the record; `DELETE
//! /tasks/{task_id}` cancels it.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::idempotency::{self, Answer, KeyStore, Reservation};
use super::start_request::{StartTask, delay_from_body, is_json};
use super::store::{TaskStore, Written, epoch_millis};
use super::{DEFAULT_DELAY_MS, TaskEvent, TaskRecord, is_task_id};
use crate::error::{
    ApiError, BadRequestResponse, ConflictResponse, IdempotencyKeyReusedResponse, InternalResponse,
    NotFoundResponse, PayloadTooLargeResponse, UnavailableResponse, UnsupportedMediaTypeResponse,
};
use crate::http_event::BasePath;
use crate::metrics;
use crate::state::AppState;

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
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^\"?[!-~]{1,255}\"?$",
        description = "Makes a retry safe: the same key with the same body within 24 hours answers the first answer again, with `Idempotent-Replayed: true`, and starts nothing")),
    request_body(content = Option<StartTask>, description = "Optional: no body, or `null`, takes the defaults", content_type = "application/json"),
    responses(
        (status = 202, description = "The task is recorded and enqueued", body = TaskStarted,
            headers(("Location" = String, description = "The task's status URL: the same reference as `status_url`"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the first answer to this Idempotency-Key, replayed"))),
        (status = 400, response = BadRequestResponse),
        (status = 409, response = ConflictResponse),
        (status = 413, response = PayloadTooLargeResponse),
        (status = 415, response = UnsupportedMediaTypeResponse),
        (status = 422, response = IdempotencyKeyReusedResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn start_task(
    State(state): State<AppState>,
    base: Option<axum::Extension<BasePath>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !body.is_empty() && !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json (or a +json type)".to_owned(),
        ));
    }
    let key = idempotency::key_of(&headers).map_err(ApiError::BadRequest)?;
    let delay_ms = delay_from_body(&body).map_err(ApiError::BadRequest)?;
    start(&state, base_of(base), key, delay_ms).await
}

/// `GET /async`: the same as `POST /async` with the defaults, for callers of
/// the FastAPI original.
#[utoipa::path(
    get,
    path = "/async",
    tag = "tasks",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^\"?[!-~]{1,255}\"?$",
        description = "As for `POST /async` (the request is the same as a POST with no body)")),
    responses(
        (status = 202, description = "The task is recorded and enqueued", body = TaskStarted,
            headers(("Location" = String, description = "The task's status URL: the same reference as `status_url`"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the first answer to this Idempotency-Key, replayed"))),
        (status = 400, response = BadRequestResponse),
        (status = 409, response = ConflictResponse),
        (status = 413, response = PayloadTooLargeResponse),
        (status = 422, response = IdempotencyKeyReusedResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn start_default_task(
    State(state): State<AppState>,
    base: Option<axum::Extension<BasePath>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency::key_of(&headers).map_err(ApiError::BadRequest)?;
    start(&state, base_of(base), key, DEFAULT_DELAY_MS).await
}

fn base_of(base: Option<axum::Extension<BasePath>>) -> String {
    base.map(|axum::Extension(BasePath(base))| base)
        .unwrap_or_default()
}

/// Starts a task, or answers for the key's first request.
async fn start(
    state: &AppState,
    base: String,
    key: Option<String>,
    delay_ms: u64,
) -> Result<Response, ApiError> {
    let Some(key) = key else {
        return enqueue_task(state, &base, delay_ms)
            .await
            .map(|answer| accepted(answer, false));
    };
    // The request as the key remembers it: every body that means the same
    // (none, `{}`, `null`, `{"delay_ms": 1000}`) is the same request.
    let request = format!(r#"{{"delay_ms":{delay_ms}}}"#);
    let keys = KeyStore(TaskStore::of(state));
    let reservation = keys
        .reserve(&key, &request)
        .await
        .map_err(|err| err.into_api_error("PutItem idempotency key"))?;
    match reservation {
        Reservation::Ours(reservation) => match enqueue_task(state, &base, delay_ms).await {
            Ok(answer) => {
                keys.answer(&key, &reservation, &answer).await;
                Ok(accepted(answer, false))
            }
            Err(err) => {
                keys.release(&key, &reservation).await;
                Err(err)
            }
        },
        Reservation::Answered { request: first, .. }
        | Reservation::InProgress { request: first }
            if first != request =>
        {
            Err(ApiError::IdempotencyKeyReused)
        }
        Reservation::Answered { answer, .. } => Ok(accepted(answer, true)),
        Reservation::InProgress { .. } => Err(ApiError::Conflict {
            message: "A request with this Idempotency-Key is still being handled".to_owned(),
            retry: true,
        }),
    }
}

/// The 202 of `/async`, first or replayed.
fn accepted(answer: Answer, replayed: bool) -> Response {
    let location = answer.status_url.clone();
    let body = TaskStarted {
        message: "Task started",
        task_id: answer.task_id,
        status_url: answer.status_url,
    };
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Writes the task record (`queued`), enqueues its event, then marks the
/// record enqueued, which lets a delivery claim it. If the enqueue fails, or
/// its answer was lost, the record says `failed` and the answer is 503: the
/// event, if Lambda did accept it, finds its task unclaimable and does
/// nothing.
async fn enqueue_task(state: &AppState, base: &str, delay_ms: u64) -> Result<Answer, ApiError> {
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
        panic_attempts: 0,
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
        let error = match err.as_service_error() {
            Some(service) if service.is_resource_not_found_exception() => {
                ApiError::Internal("Invoke (Event): the function does not exist".to_owned())
            }
            _ => ApiError::from_sdk("Invoke (Event)", &err),
        };
        store.mark_not_enqueued(&task_id).await;
        return Err(error);
    }
    match store.mark_enqueued(&task_id).await {
        Ok(_) => {}
        Err(err) => {
            // Lambda has the event, but it cannot claim the task unmarked:
            // the task will not run, so say so and answer 503. Unless the
            // mark landed and only its answers were lost: then the task runs,
            // and a 503 would have its caller start it again.
            let error = ApiError::from_sdk("UpdateItem task (enqueued)", &err);
            if store.mark_not_enqueued(&task_id).await == Written::Done(()) {
                return Err(error);
            }
            tracing::warn!(task_id, "the enqueued mark landed, its answers lost");
        }
    }

    tracing::info!(task_id, delay_ms, "task enqueued");
    metrics::task_enqueued(&task_id);
    let status_url = format!("{base}/tasks/{task_id}");
    Ok(Answer {
        task_id,
        status_url,
    })
}

/// `GET /tasks/{task_id}`: the task's status.
#[utoipa::path(
    get,
    path = "/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = String, Path, format = Uuid, description = "The id `/async` returned",
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The task", body = TaskRecord,
            headers(("Retry-After" = u32, description = "While the task is `queued` or `running`: seconds until a poller should look again"))),
        (status = 400, response = BadRequestResponse),
        (status = 404, response = NotFoundResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn get_task(
    State(state): State<AppState>,
    task_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let task_id = task_id_of(task_id)?;
    let stored = TaskStore::of(&state)
        .read(&task_id)
        .await
        .map_err(|err| err.into_api_error("GetItem task"))?
        .ok_or_else(|| ApiError::NotFound(format!("No task {task_id}")))?;
    let cutoff = undeliverable_before_ms(&state);
    Ok(shown(
        stored.record.with_backstop(stored.created_ms, cutoff),
    ))
}

/// `DELETE /tasks/{task_id}`: cancels a task that has not ended.
#[utoipa::path(
    delete,
    path = "/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = String, Path, format = Uuid, description = "The id `/async` returned",
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The task, now `canceled`: a queued task never runs, a running one stops within a second", body = TaskRecord),
        (status = 400, response = BadRequestResponse),
        (status = 404, response = NotFoundResponse),
        (status = 409, response = ConflictResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn cancel_task(
    State(state): State<AppState>,
    task_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let task_id = task_id_of(task_id)?;
    let store = TaskStore::of(&state);
    let cutoff = undeliverable_before_ms(&state);
    match store
        .cancel(&task_id, cutoff)
        .await
        .map_err(|err| err.into_api_error("UpdateItem task (cancel)"))?
    {
        Written::Done(record) => {
            tracing::info!(task_id, "task canceled");
            metrics::task_canceled(&task_id);
            Ok(shown(record))
        }
        Written::Refused => {
            let stored = store
                .read(&task_id)
                .await
                .map_err(|err| err.into_api_error("GetItem task"))?
                .ok_or_else(|| ApiError::NotFound(format!("No task {task_id}")))?;
            let record = stored.record.with_backstop(stored.created_ms, cutoff);
            Err(ApiError::Conflict {
                message: format!(
                    "Task {task_id} has already ended ({})",
                    record.status.as_str()
                ),
                retry: false,
            })
        }
    }
}

fn task_id_of(task_id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(task_id) = task_id?;
    if is_task_id(&task_id) {
        Ok(task_id)
    } else {
        Err(ApiError::BadRequest(
            "task_id must be a task id this API returned (a lowercase UUID)".to_owned(),
        ))
    }
}

/// Records created before this instant (epoch milliseconds) whose event was
/// never delivered never will be: Lambda gives up on an event at its maximum
/// age, and its two retries take at most five minutes more.
fn undeliverable_before_ms(state: &AppState) -> u64 {
    let horizon = state.config.task_event_max_age + std::time::Duration::from_secs(5 * 60);
    epoch_millis().saturating_sub(horizon.as_millis() as u64)
}

/// The record as JSON; a task that has not ended tells its poller when to
/// look again.
fn shown(record: TaskRecord) -> Response {
    let pending = !record.status.has_ended();
    let mut response = Json(record).into_response();
    if pending {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
