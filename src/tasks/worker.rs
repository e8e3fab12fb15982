//! What a delivery of a task event does: claim the task, run the work, record
//! how it went.
//!
//! Lambda delivers asynchronous events at least once and retries failures, so
//! a delivery first *claims* the task with a conditional write. A claim holds a
//! lease until the invocation's own deadline: a live invocation never loses its
//! claim, and a delivery after an invocation died (timeout, crash) may take the
//! task over.

use tracing::Instrument;
use uuid::Uuid;

use super::store::{Outcome, ReadError, TaskStore};
use super::{TaskEvent, TaskStatus, work};
use crate::error::sdk_summary;
use crate::state::AppState;

/// Why a task event did not end well; the invocation returns it as a function
/// error, so Lambda's retry policy and on-failure destination apply.
#[derive(thiserror::Error)]
pub enum TaskError {
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

impl TaskError {
    /// The `errorType` Lambda reports for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::UnknownTask(_) => "UnknownTask",
            Self::Failed { .. } => "TaskFailed",
            Self::Store(_) => "TaskStoreUnavailable",
        }
    }
}

/// How a delivered task event ended, when it did not fail.
#[derive(Debug, serde::Serialize)]
pub struct TaskOutcome {
    pub task_id: String,
    pub status: TaskStatus,
    pub attempts: u32,
    /// True when this delivery found the task running or done and left it alone.
    pub duplicate: bool,
}

/// Runs the task `event` names. `deadline_ms` is the invocation's deadline
/// (epoch milliseconds): the claim's lease.
pub async fn run(
    state: &AppState,
    event: TaskEvent,
    deadline_ms: u64,
) -> Result<TaskOutcome, TaskError> {
    let span = tracing::info_span!("task", task_id = %event.task_id);
    run_claimed(TaskStore::of(state), event, deadline_ms)
        .instrument(span)
        .await
}

async fn run_claimed(
    store: TaskStore<'_>,
    event: TaskEvent,
    deadline_ms: u64,
) -> Result<TaskOutcome, TaskError> {
    let attempt = match claim(store, &event.task_id, deadline_ms).await? {
        Claim::Won(attempt) => attempt,
        Claim::Held { status, attempts } => {
            tracing::info!(status = status.as_str(), "duplicate delivery ignored");
            return Ok(TaskOutcome {
                task_id: event.task_id,
                status,
                attempts,
                duplicate: true,
            });
        }
    };
    tracing::info!(attempt, delay_ms = event.delay_ms, "task started");

    match work::perform(&event, attempt).await {
        Ok(()) => {
            finish(store, &event.task_id, attempt, Outcome::Succeeded).await?;
            tracing::info!(attempt, "Task completed");
            Ok(TaskOutcome {
                task_id: event.task_id,
                status: TaskStatus::Succeeded,
                attempts: attempt,
                duplicate: false,
            })
        }
        Err(message) => {
            finish(store, &event.task_id, attempt, Outcome::Failed(&message)).await?;
            tracing::error!(attempt, message, "task failed");
            Err(TaskError::Failed {
                task_id: event.task_id,
                attempt,
                message,
            })
        }
    }
}

/// What a delivery's claim on its task came to.
enum Claim {
    /// This delivery runs the task, as attempt number `.0`.
    Won(u32),
    /// Another delivery holds it under a live lease, or it already succeeded.
    Held { status: TaskStatus, attempts: u32 },
}

/// Takes the task for this delivery, if it is `queued`, `failed`, or `running`
/// under a lease that has run out.
async fn claim(store: TaskStore<'_>, task_id: &str, deadline_ms: u64) -> Result<Claim, TaskError> {
    // Names this claim: when the SDK retries the UpdateItem because the first
    // answer was lost, the retry fails the condition on the claim it made
    // itself, and only this id tells that apart from another delivery's.
    let claim_id = Uuid::new_v4().to_string();
    if let Some(record) = store
        .claim(task_id, &claim_id, deadline_ms)
        .await
        .map_err(TaskError::Store)?
    {
        return Ok(Claim::Won(record.attempts));
    }
    // The condition failed: if the record holds this very claim, the claim
    // landed and only its answer was lost; otherwise another delivery holds
    // the task (or it succeeded), or there is no such task.
    let stored = store.read(task_id).await.map_err(|err| match err {
        ReadError::Sdk(err) => TaskError::Store(format!("GetItem task: {}", sdk_summary(&err))),
        ReadError::Record(message) => TaskError::Store(message),
    })?;
    let stored = stored.ok_or_else(|| TaskError::UnknownTask(task_id.to_owned()))?;
    let record = stored.record;
    if stored.claim_id.as_deref() == Some(claim_id.as_str()) && record.status == TaskStatus::Running
    {
        Ok(Claim::Won(record.attempts))
    } else {
        Ok(Claim::Held {
            status: record.status,
            attempts: record.attempts,
        })
    }
}

/// Records the end of attempt `attempt`; a later delivery that took the task
/// over in the meantime keeps it, and this result is dropped.
async fn finish(
    store: TaskStore<'_>,
    task_id: &str,
    attempt: u32,
    outcome: Outcome<'_>,
) -> Result<(), TaskError> {
    let recorded = store
        .finish(task_id, attempt, outcome)
        .await
        .map_err(TaskError::Store)?;
    if !recorded {
        tracing::warn!(
            attempt,
            "task was taken over by a later delivery; result not recorded"
        );
    }
    Ok(())
}
