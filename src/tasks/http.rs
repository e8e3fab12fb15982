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
use super::lease::real_deadline;
use super::protocol::{self, Adopt, Start};
use super::rate_limit::StartLimit;
use super::start_request::{StartTask, delay_from_body, is_json};
use super::store::{TaskStore, Written, epoch_millis};
use super::{
    DEFAULT_DELAY_MS, TaskEvent, TaskRecord, backstop_horizon_ms, is_task_id,
    undeliverable_before_ms,
};
use crate::caller::Caller;
use crate::error::{
    ApiError, BadRequestResponse, ConflictResponse, IdempotencyKeyReusedResponse, InternalResponse,
    NotFoundResponse, PayloadTooLargeResponse, TooManyRequestsResponse, UnauthorizedResponse,
    UnavailableResponse, UnsupportedMediaTypeResponse,
};
use crate::http_event::BasePath;
use crate::metrics;
use crate::state::AppState;

mod by_id;

pub use by_id::*;

mod enqueue;

use enqueue::*;

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
        (status = 401, response = UnauthorizedResponse),
        (status = 409, response = ConflictResponse),
        (status = 413, response = PayloadTooLargeResponse),
        (status = 415, response = UnsupportedMediaTypeResponse),
        (status = 422, response = IdempotencyKeyReusedResponse),
        (status = 429, response = TooManyRequestsResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn start_task(
    State(state): State<AppState>,
    caller: Caller,
    base: Option<axum::Extension<BasePath>>,
    context: Option<axum::Extension<lambda_http::Context>>,
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
    let key = key.map(|key| idempotency::scoped(&caller, &key));
    start(
        &state,
        &caller,
        base_of(base),
        key,
        delay_ms,
        answer_by(context),
    )
    .await
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
        (status = 401, response = UnauthorizedResponse),
        (status = 409, response = ConflictResponse),
        (status = 413, response = PayloadTooLargeResponse),
        (status = 422, response = IdempotencyKeyReusedResponse),
        (status = 429, response = TooManyRequestsResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn start_default_task(
    State(state): State<AppState>,
    caller: Caller,
    base: Option<axum::Extension<BasePath>>,
    context: Option<axum::Extension<lambda_http::Context>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency::key_of(&headers)
        .map_err(ApiError::BadRequest)?
        .map(|key| idempotency::scoped(&caller, &key));
    let answer_by = answer_by(context);
    start(
        &state,
        &caller,
        base_of(base),
        key,
        DEFAULT_DELAY_MS,
        answer_by,
    )
    .await
}

/// When this request's invocation ends (its deadline, epoch ms): after it, the
/// request can no longer mark a task enqueued.
fn answer_by(context: Option<axum::Extension<lambda_http::Context>>) -> u64 {
    let deadline = context.map_or(0, |axum::Extension(context)| context.deadline);
    real_deadline(deadline, epoch_millis())
}

fn base_of(base: Option<axum::Extension<BasePath>>) -> String {
    base.map(|axum::Extension(BasePath(base))| base)
        .unwrap_or_default()
}

/// Starts a task for `caller`, or answers for the key's first request (`key`:
/// the caller's key, [`idempotency::scoped`]). `answer_by`: when this
/// request's invocation ends (epoch ms), after which it can no longer mark
/// its task enqueued. Only a task about to be written counts toward the
/// caller's limit: not a replay, nor the key's task carried on.
async fn start(
    state: &AppState,
    caller: &Caller,
    base: String,
    key: Option<String>,
    delay_ms: u64,
    answer_by: u64,
) -> Result<Response, ApiError> {
    let task_id = Uuid::new_v4().to_string();
    let owner = caller.owner_key();
    let owner = owner.as_deref();
    let limit = StartLimit {
        store: TaskStore::of(state),
        per_minute: state.config.tasks_per_minute_per_caller,
    };
    let Some(key) = key else {
        let store = TaskStore::of(state);
        limit.count(caller, &task_id).await?;
        put_queued(store, &task_id, answer_by, owner).await?;
        send_event(state, &task_id, delay_ms).await?;
        return Ok(accepted(answer_of(&base, task_id), false));
    };
    // The request as the key remembers it: every body that means the same
    // (none, `{}`, `null`, `{"delay_ms": 1000}`) is the same request.
    let request = format!(r#"{{"delay_ms":{delay_ms}}}"#);
    let keys = KeyStore(TaskStore::of(state));
    let (reservation, task_id, adopted) = match keys.reserve(&key, &request, &task_id).await? {
        Reservation::Ours {
            reservation,
            task_id,
            adopted,
        } => (reservation, task_id, adopted),
        Reservation::Answered(answer) => return Ok(accepted(answer, true)),
        Reservation::Reused => return Err(ApiError::IdempotencyKeyReused),
        Reservation::InProgress => {
            return Err(ApiError::Conflict {
                message: "A request with this Idempotency-Key is still being handled".to_owned(),
                retry: true,
            });
        }
    };
    let started = if adopted {
        adopt(
            state,
            &key,
            &reservation,
            task_id,
            delay_ms,
            answer_by,
            owner,
        )
        .await
    } else {
        let store = TaskStore::of(state);
        let put = match limit.count(caller, &task_id).await {
            Ok(()) => put_queued(store, &task_id, answer_by, owner).await,
            Err(err) => Err(err),
        };
        match put {
            Ok(()) => match send_event(state, &task_id, delay_ms).await {
                Ok(()) => Ok((task_id, false)),
                Err(err) => Err(Unstarted::Never { err, task_id }),
            },
            Err(err) => Err(Unstarted::Never { err, task_id }),
        }
    };
    match started {
        Ok((task_id, replayed)) => {
            let answer = answer_of(&base, task_id);
            keys.answer(&key, &reservation, &answer).await;
            Ok(accepted(answer, replayed))
        }
        // The task can never run by this request's doing: once the key is
        // released, a retry with it starts afresh; if another request took
        // the key over, that one may carry the task on.
        Err(Unstarted::Never { err, task_id }) => {
            let mut next = protocol::after_key_release(keys.release(&key, &reservation).await);
            if next == Start::Settle {
                let view = keys.settle(&key).await;
                next = protocol::after_key_settle(view.as_ref(), &reservation);
            }
            if next == Start::MarkNotEnqueued {
                next = enqueue::drive(state, &task_id, delay_ms, next, &mut None).await;
            }
            match next {
                Start::Accepted => Ok(accepted(answer_of(&base, task_id), false)),
                _ => Err(err),
            }
        }
        // Whether it can run is not known: the key keeps it, and a retry after
        // the hold takes it over.
        Err(Unstarted::Unknown(err)) => Err(err),
    }
}

/// Why a keyed request did not start its task.
enum Unstarted {
    /// Nothing this request did can make `task_id` run.
    Never { err: ApiError, task_id: String },
    /// Nothing this request did can run, but the key's task may still be
    /// started by the request that held the key before.
    Unknown(ApiError),
}

/// Carries on with the key's task `task_id` after taking the key over from a
/// request that died or outlived its hold, as [`protocol::adopt`] says; with
/// whether the answer is the first request's again (its task was enqueued:
/// that request answered 202 with it, or died before it could).
async fn adopt(
    state: &AppState,
    key: &str,
    reservation: &str,
    task_id: String,
    delay_ms: u64,
    answer_by: u64,
    owner: Option<&str>,
) -> Result<(String, bool), Unstarted> {
    let store = TaskStore::of(state);
    // The record, if the request before never wrote it.
    let _ = put_queued(store, &task_id, answer_by, owner).await;
    let view = store.view(&task_id).await;
    match protocol::adopt(view.as_ref().map(Option::as_ref).map_err(|_| ())) {
        Adopt::Accepted => Ok((task_id, true)),
        Adopt::Unknown => Ok((task_id, false)),
        Adopt::Resume => {
            // Now this request's to mark: a delivery waits for it until
            // `answer_by`. Sent again, its event is a duplicate at worst.
            store.extend_answer_by(&task_id, answer_by).await;
            match send_event(state, &task_id, delay_ms).await {
                Ok(()) => Ok((task_id, false)),
                Err(err) => Err(Unstarted::Never { err, task_id }),
            }
        }
        Adopt::NewTask => {
            let new_task = Uuid::new_v4().to_string();
            KeyStore(store)
                .replace_task(key, reservation, &new_task)
                .await
                .map_err(Unstarted::Unknown)?;
            let sent = match put_queued(store, &new_task, answer_by, owner).await {
                Ok(()) => send_event(state, &new_task, delay_ms).await,
                Err(err) => Err(err),
            };
            match sent {
                Ok(()) => Ok((new_task, false)),
                Err(err) => Err(Unstarted::Never {
                    err,
                    task_id: new_task,
                }),
            }
        }
    }
}

fn answer_of(base: &str, task_id: String) -> Answer {
    Answer {
        status_url: format!("{base}/tasks/{task_id}"),
        task_id,
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

/// Writes the `queued` record of a new task. The id is fresh (or the key's,
/// unwritten), so a refusal is this request's own write landing on an
/// earlier try whose answer was lost: the record is there.
async fn put_queued(
    store: TaskStore<'_>,
    task_id: &str,
    answer_by: u64,
    owner: Option<&str>,
) -> Result<(), ApiError> {
    match store.put_queued_for(task_id, answer_by, owner).await {
        Ok(_) => Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
        {
            Ok(())
        }
        Err(err) => Err(ApiError::from_sdk("PutItem task", &err)),
    }
}
