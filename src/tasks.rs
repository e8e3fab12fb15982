//! Background tasks: `/async` records a task and enqueues an asynchronous
//! invocation of this same function; the task event that Lambda then delivers
//! runs the task; `GET /tasks/{task_id}` reports how it went.
//!
//! Lambda delivers asynchronous events at least once and retries failures, so a
//! delivery first *claims* the task with a conditional write. A claim holds a
//! lease until the invocation's own deadline: a live invocation never loses its
//! claim, and a delivery after an invocation died (timeout, crash) may take the
//! task over.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::error::{
    ApiError, BadRequestResponse, InternalResponse, NotFoundResponse, PayloadTooLargeResponse,
    UnavailableResponse, sdk_summary,
};
use utoipa::ToSchema;

/// How long the stand-in task waits when the client does not say.
pub const DEFAULT_DELAY_MS: u64 = 1000;
/// The longest wait a client may ask for; the function timeout is set above it.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Task records expire (DynamoDB TTL on `expires_at`) a week after creation.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// A task as `GET /tasks/{task_id}` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TaskRecord {
    #[schema(format = Uuid)]
    pub task_id: String,
    pub status: TaskStatus,
    /// When `/async` recorded the task (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the record last changed (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// How many deliveries have claimed the task: 0 while queued.
    #[schema(minimum = 0)]
    pub attempts: u32,
    /// Why the task failed; `null` unless `failed`.
    pub error: Option<String>,
}

impl TaskRecord {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Self, String> {
        let string = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Ok(s.clone()),
            _ => Err(format!("task record has no string `{name}`")),
        };
        let status = string("status")?;
        Ok(Self {
            task_id: string("task_id")?,
            status: TaskStatus::parse(&status).ok_or(format!("unknown task status {status:?}"))?,
            created_at: string("created_at")?,
            updated_at: string("updated_at")?,
            attempts: match item.get("attempts") {
                Some(AttributeValue::N(n)) => n.parse().map_err(|_| "bad `attempts`")?,
                _ => return Err("task record has no `attempts`".to_owned()),
            },
            error: string("error").ok(),
        })
    }
}

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

/// The event this function sends itself to run a task (see the README).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEvent {
    pub task_id: String,
    pub delay_ms: u64,
    /// Makes the stand-in task fail its first `fail_attempts` attempts, to see
    /// Lambda's retries and the failure destination at work. Only an event can
    /// set it, never an HTTP request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fail_attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why a task event did not end well; the invocation returns it as a function
/// error, so Lambda's retry policy and on-failure destination apply.
#[derive(thiserror::Error)]
pub enum TaskError {
    #[error(
        "expected an API Gateway (HTTP API or REST API), Application Load Balancer or Lambda Function URL event, \
         or a task event {{\"task_id\": \"<uuid>\", \"delay_ms\": 0..={MAX_DELAY_MS}}}: {0}"
    )]
    NotAnEvent(String),
    #[error("no task {0} is recorded")]
    UnknownTask(String),
    #[error("task {task_id} failed on attempt {attempt}: {message}")]
    Failed {
        task_id: String,
        attempt: u32,
        message: String,
    },
    #[error("task store unavailable: {0}")]
    Store(String),
}

/// The runtime logs a function error with `{:?}`: make that the readable message.
impl std::fmt::Debug for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<TaskError> for lambda_http::lambda_runtime::Diagnostic {
    fn from(err: TaskError) -> Self {
        let error_type = match err {
            TaskError::NotAnEvent(_) => "UnrecognizedEvent",
            TaskError::UnknownTask(_) => "UnknownTask",
            TaskError::Failed { .. } => "TaskFailed",
            TaskError::Store(_) => "TaskStoreUnavailable",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
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
    // No body, or `null`, means the defaults; anything else must be JSON (a
    // body of whitespace alone is not).
    let request: StartTask = if body.is_empty() {
        StartTask::default()
    } else {
        // Through a map first: serde would also read a struct from an array (`[null]`).
        let object =
            serde_json::from_slice::<Option<serde_json::Map<String, serde_json::Value>>>(&body)
                .map_err(|err| ApiError::BadRequest(body_error(&err)))?;
        match object {
            Some(object) => serde_json::from_value(serde_json::Value::Object(object))
                .map_err(|err| ApiError::BadRequest(body_error(&err)))?,
            None => StartTask::default(),
        }
    };
    let delay_ms = match request.delay_ms {
        None => DEFAULT_DELAY_MS,
        Some(n) => whole_millis(&n)
            .filter(|ms| *ms <= MAX_DELAY_MS)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "delay_ms must be an integer from 0 to {MAX_DELAY_MS}"
                ))
            })?,
    };
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

/// Writes the `queued` record of a new task. The condition keeps a write the
/// SDK retried after a lost answer from overwriting the record (the caller
/// treats that failure as success); `make bench` times this same write.
pub async fn put_queued_record(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    task_id: &str,
) -> Result<PutItemOutput, SdkError<PutItemError>> {
    let now = now_rfc3339();
    let expires_at = epoch_seconds() + RECORD_TTL.as_secs();
    dynamodb
        .put_item()
        .table_name(table)
        .item("task_id", AttributeValue::S(task_id.to_owned()))
        .item(
            "status",
            AttributeValue::S(TaskStatus::Queued.as_str().to_owned()),
        )
        .item("created_at", AttributeValue::S(now.clone()))
        .item("updated_at", AttributeValue::S(now))
        .item("attempts", AttributeValue::N("0".to_owned()))
        .item("expires_at", AttributeValue::N(expires_at.to_string()))
        .condition_expression("attribute_not_exists(task_id)")
        .send()
        .await
}

/// Writes the task record (`queued`), then enqueues its event; if the enqueue
/// fails, the record says `failed` and the answer is 503.
async fn enqueue_task(state: &AppState, delay_ms: u64) -> Result<Response, ApiError> {
    let task_id = Uuid::new_v4().to_string();
    let recorded = put_queued_record(&state.dynamodb, &state.config.tasks_table, &task_id).await;
    match recorded {
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
        mark_not_enqueued(state, &task_id).await;
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

/// Says why a payload is no task event without quoting any of it: serde's
/// messages quote values and unknown field names, and this message is logged
/// and returned to whoever invoked the function.
fn event_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match err.classify() {
        Category::Data => "not a task event",
        Category::Syntax | Category::Eof | Category::Io => "not valid JSON",
    };
    format!("{kind} (line {}, column {})", err.line(), err.column())
}

/// The event never left: say so in the record, so no task stays `queued` with
/// nothing behind it.
async fn mark_not_enqueued(state: &AppState, task_id: &str) {
    let marked = state
        .dynamodb
        .update_item()
        .table_name(&state.config.tasks_table)
        .key("task_id", AttributeValue::S(task_id.to_owned()))
        .update_expression("SET #status = :failed, #error = :error, updated_at = :now")
        .condition_expression("#status = :queued")
        .expression_attribute_names("#status", "status")
        .expression_attribute_names("#error", "error")
        .expression_attribute_values(":failed", status_value(TaskStatus::Failed))
        .expression_attribute_values(":queued", status_value(TaskStatus::Queued))
        .expression_attribute_values(
            ":error",
            AttributeValue::S("The task could not be enqueued".to_owned()),
        )
        .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
        .send()
        .await;
    if let Err(err) = marked {
        tracing::error!(
            task_id,
            detail = sdk_summary(&err),
            "task left queued: could not mark it failed"
        );
    }
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
    let output = state
        .dynamodb
        .get_item()
        .table_name(&state.config.tasks_table)
        .key("task_id", AttributeValue::S(task_id.clone()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|err| ApiError::from_sdk("GetItem task", &err))?;
    let item = output
        .item()
        .ok_or_else(|| ApiError::NotFound(format!("No task {task_id}")))?;
    TaskRecord::from_item(item)
        .map(Json)
        .map_err(ApiError::Internal)
}

/// Whether `id` is one this API makes: a UUID in its canonical lowercase form.
fn is_task_id(id: &str) -> bool {
    Uuid::try_parse(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)
}

/// How a delivered task event ended, when it did not fail.
#[derive(Debug, Serialize)]
pub struct TaskOutcome {
    pub task_id: String,
    pub status: TaskStatus,
    pub attempts: u32,
    /// True when this delivery found the task running or done and left it alone.
    pub duplicate: bool,
}

/// Runs the task a task event names. `deadline_ms` is the invocation's
/// deadline (epoch milliseconds): the claim's lease.
pub async fn run_task_event(
    state: &AppState,
    payload: &[u8],
    deadline_ms: u64,
) -> Result<TaskOutcome, TaskError> {
    let event: TaskEvent =
        serde_json::from_slice(payload).map_err(|err| TaskError::NotAnEvent(event_error(&err)))?;
    if !is_task_id(&event.task_id) {
        return Err(TaskError::NotAnEvent(
            "task_id is not a lowercase UUID".to_owned(),
        ));
    }
    if event.delay_ms > MAX_DELAY_MS {
        return Err(TaskError::NotAnEvent(format!(
            "delay_ms is over {MAX_DELAY_MS}"
        )));
    }
    let span = tracing::info_span!("task", task_id = %event.task_id);
    run_task(state, event, deadline_ms).instrument(span).await
}

async fn run_task(
    state: &AppState,
    event: TaskEvent,
    deadline_ms: u64,
) -> Result<TaskOutcome, TaskError> {
    let attempt = match claim_task(state, &event.task_id, deadline_ms).await? {
        Claim::Won(attempt) => attempt,
        Claim::Held(record) => {
            tracing::info!(
                status = record.status.as_str(),
                "duplicate delivery ignored"
            );
            return Ok(TaskOutcome {
                task_id: event.task_id,
                status: record.status,
                attempts: record.attempts,
                duplicate: true,
            });
        }
    };
    tracing::info!(attempt, delay_ms = event.delay_ms, "task started");

    // The stand-in work: what `await asyncio.sleep(1)` is in the original.
    tokio::time::sleep(Duration::from_millis(event.delay_ms)).await;
    if attempt <= event.fail_attempts {
        let message = format!(
            "simulated failure (fail_attempts = {})",
            event.fail_attempts
        );
        finish_task(state, &event.task_id, attempt, Err(&message)).await?;
        tracing::error!(attempt, message, "task failed");
        return Err(TaskError::Failed {
            task_id: event.task_id,
            attempt,
            message,
        });
    }
    finish_task(state, &event.task_id, attempt, Ok(())).await?;
    tracing::info!(attempt, "Task completed");
    Ok(TaskOutcome {
        task_id: event.task_id,
        status: TaskStatus::Succeeded,
        attempts: attempt,
        duplicate: false,
    })
}

/// What a delivery's claim on its task came to.
enum Claim {
    /// This delivery runs the task, as attempt number `.0`.
    Won(u32),
    /// Another delivery holds it under a live lease, or it already succeeded.
    Held(TaskRecord),
}

/// Takes the task for this delivery, if it is `queued`, `failed`, or `running`
/// under a lease that has run out.
async fn claim_task(state: &AppState, task_id: &str, deadline_ms: u64) -> Result<Claim, TaskError> {
    // Names this claim: when the SDK retries the UpdateItem because the first
    // answer was lost, the retry fails the condition on the claim it made
    // itself, and only this id tells that apart from another delivery's.
    let claim_id = Uuid::new_v4().to_string();
    let claimed = state
        .dynamodb
        .update_item()
        .table_name(&state.config.tasks_table)
        .key("task_id", AttributeValue::S(task_id.to_owned()))
        .update_expression(
            "SET #status = :running, attempts = attempts + :one, updated_at = :now, lease_until = :lease, claim_id = :claim REMOVE #error",
        )
        .condition_expression(
            "attribute_exists(task_id) AND (#status IN (:queued, :failed) OR (#status = :running AND lease_until < :now_ms))",
        )
        .expression_attribute_names("#status", "status")
        .expression_attribute_names("#error", "error")
        .expression_attribute_values(":running", status_value(TaskStatus::Running))
        .expression_attribute_values(":queued", status_value(TaskStatus::Queued))
        .expression_attribute_values(":failed", status_value(TaskStatus::Failed))
        .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
        .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
        .expression_attribute_values(":now_ms", AttributeValue::N(epoch_millis().to_string()))
        .expression_attribute_values(":lease", AttributeValue::N(deadline_ms.to_string()))
        .expression_attribute_values(":claim", AttributeValue::S(claim_id.clone()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match claimed {
        Ok(output) => {
            let record = TaskRecord::from_item(output.attributes().unwrap_or(&HashMap::new()))
                .map_err(TaskError::Store)?;
            Ok(Claim::Won(record.attempts))
        }
        Err(err) if is_condition_failure(&err) => {
            claim_after_condition_failure(state, task_id, &claim_id).await
        }
        Err(err) => Err(TaskError::Store(format!(
            "UpdateItem (claim): {}",
            sdk_summary(&err)
        ))),
    }
}

/// After a failed claim condition, reads the record: if it holds this very
/// claim, the claim landed and only its answer was lost; otherwise another
/// delivery holds the task (or it succeeded), or there is no such task.
async fn claim_after_condition_failure(
    state: &AppState,
    task_id: &str,
    claim_id: &str,
) -> Result<Claim, TaskError> {
    let output = state
        .dynamodb
        .get_item()
        .table_name(&state.config.tasks_table)
        .key("task_id", AttributeValue::S(task_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|err| TaskError::Store(format!("GetItem task: {}", sdk_summary(&err))))?;
    let item = output
        .item()
        .ok_or_else(|| TaskError::UnknownTask(task_id.to_owned()))?;
    let ours = matches!(item.get("claim_id"), Some(AttributeValue::S(id)) if id == claim_id);
    let record = TaskRecord::from_item(item).map_err(TaskError::Store)?;
    if ours && record.status == TaskStatus::Running {
        Ok(Claim::Won(record.attempts))
    } else {
        Ok(Claim::Held(record))
    }
}

/// Records the end of attempt `attempt`, unless another delivery has taken the
/// task over in the meantime.
async fn finish_task(
    state: &AppState,
    task_id: &str,
    attempt: u32,
    result: Result<(), &str>,
) -> Result<(), TaskError> {
    let update = state
        .dynamodb
        .update_item()
        .table_name(&state.config.tasks_table)
        .key("task_id", AttributeValue::S(task_id.to_owned()))
        .condition_expression("#status = :running AND attempts = :attempt")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":running", status_value(TaskStatus::Running))
        .expression_attribute_values(":attempt", AttributeValue::N(attempt.to_string()))
        .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()));
    let update = match result {
        Ok(()) => update
            .update_expression("SET #status = :done, updated_at = :now REMOVE lease_until")
            .expression_attribute_values(":done", status_value(TaskStatus::Succeeded)),
        Err(message) => update
            .update_expression(
                "SET #status = :done, #error = :error, updated_at = :now REMOVE lease_until",
            )
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":done", status_value(TaskStatus::Failed))
            .expression_attribute_values(":error", AttributeValue::S(message.to_owned())),
    };
    match update.send().await {
        Ok(_) => Ok(()),
        Err(err) if is_condition_failure(&err) => {
            tracing::warn!(
                attempt,
                "task was taken over by a later delivery; result not recorded"
            );
            Ok(())
        }
        Err(err) => Err(TaskError::Store(format!(
            "UpdateItem (finish): {}",
            sdk_summary(&err)
        ))),
    }
}

fn is_condition_failure(
    err: &SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

fn status_value(status: TaskStatus) -> AttributeValue {
    AttributeValue::S(status.as_str().to_owned())
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}
