//! What a delivery of a task event does: claim the task, run the work, record
//! how it went.
//!
//! Lambda delivers asynchronous events at least once and retries failures, so
//! a delivery first *claims* the task with a conditional write. The claim holds
//! a short lease that the attempt renews while its work runs (every
//! [`Lease::tick`], at most half a second): a live attempt never loses its claim,
//! and once an attempt dies (crash, panic, timeout) its lease runs out within
//! seconds, so Lambda's retry a minute later takes the task over. A renewal
//! that finds the task canceled stops the work. An attempt that cannot renew
//! stops its work before its lease runs out, so no two attempts ever run the
//! work at once.

use std::time::{Duration, Instant};

use tokio::task::JoinError;
use tracing::Instrument;
use uuid::Uuid;

use super::lease::{Lease, real_deadline};
use super::store::{Outcome, TaskStore, Written, epoch_millis};
use super::{TaskEvent, TaskStatus, work};
use crate::metrics::{self, Ended};
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
    #[error("task {0} is not enqueued yet")]
    NotEnqueued(String),
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
            Self::NotEnqueued(_) => "TaskNotEnqueued",
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
/// (epoch milliseconds): no lease outlives it.
pub async fn run(
    state: &AppState,
    event: TaskEvent,
    deadline_ms: u64,
) -> Result<TaskOutcome, TaskError> {
    let span = tracing::info_span!("task", task_id = %event.task_id);
    let deadline_ms = real_deadline(deadline_ms, epoch_millis());
    run_claimed(TaskStore::of(state), event, deadline_ms)
        .instrument(span)
        .await
}

async fn run_claimed(
    store: TaskStore<'_>,
    event: TaskEvent,
    deadline_ms: u64,
) -> Result<TaskOutcome, TaskError> {
    let lease = Lease::new(epoch_millis(), deadline_ms);
    // Names this claim: when the SDK retries the UpdateItem because the first
    // answer was lost, the retry fails the condition on the claim it made
    // itself, and only this id tells that apart from another delivery's.
    let claim_id = Uuid::new_v4().to_string();
    let task_id = event.task_id.clone();
    let (attempt, lease_until) = match claim(store, &task_id, &claim_id, lease).await? {
        Claim::Won {
            attempt,
            lease_until,
        } => (attempt, lease_until),
        Claim::Held { status, attempts } => {
            tracing::info!(status = status.as_str(), "duplicate delivery ignored");
            metrics::duplicate_delivery(&task_id);
            return Ok(TaskOutcome {
                task_id,
                status,
                attempts,
                duplicate: true,
            });
        }
    };
    // The claim's lease runs from when it was sent: an answer that came late
    // (slow, or lost and retried) may leave too little of it, or none, and
    // another delivery may take the task once it lapses. The work starts only
    // with a tick of lease to spare.
    let lease_until = match ensure_lease(store, &task_id, &claim_id, lease, lease_until).await? {
        Written::Done(lease_until) => lease_until,
        Written::Refused => return ended_elsewhere(store, task_id, attempt).await,
    };
    tracing::info!(attempt, delay_ms = event.delay_ms, "task started");

    let started = Instant::now();
    let work = tokio::spawn(async move { work::perform(&event, attempt).await }.in_current_span());
    let watched = watch(store, &task_id, &claim_id, lease, lease_until, work).await;
    let ran = started.elapsed();
    let result = match watched {
        Watched::Finished(result) => result,
        Watched::Panicked => Err("the task's work panicked".to_owned()),
        Watched::NoLongerOurs => {
            metrics::task_ran(&task_id, ran, None);
            return ended_elsewhere(store, task_id, attempt).await;
        }
        Watched::LeaseLost(reason) => {
            metrics::task_ran(&task_id, ran, None);
            tracing::error!(
                attempt,
                reason,
                "work stopped: the lease could not be renewed"
            );
            return Err(TaskError::Store(reason));
        }
    };
    let outcome = match &result {
        Ok(()) => Outcome::Succeeded,
        Err(message) => Outcome::Failed(message),
    };
    let written = store
        .finish(&task_id, &claim_id, outcome)
        .await
        .map_err(TaskError::Store)?;
    if written == Written::Refused {
        metrics::task_ran(&task_id, ran, None);
        return ended_elsewhere(store, task_id, attempt).await;
    }
    let ended = if result.is_ok() {
        Ended::Succeeded
    } else {
        Ended::Failed
    };
    metrics::task_ran(&task_id, ran, Some(ended));
    match result {
        Ok(()) => {
            tracing::info!(attempt, "Task completed");
            Ok(TaskOutcome {
                task_id,
                status: TaskStatus::Succeeded,
                attempts: attempt,
                duplicate: false,
            })
        }
        Err(message) => {
            tracing::error!(attempt, message, "task failed");
            Err(TaskError::Failed {
                task_id,
                attempt,
                message,
            })
        }
    }
}

/// How the work of a claimed attempt came to an end.
enum Watched {
    /// It returned.
    Finished(Result<(), String>),
    /// It panicked.
    Panicked,
    /// A renewal found the task canceled or given up on; the work was stopped.
    NoLongerOurs,
    /// The lease could not be renewed in time; the work was stopped.
    LeaseLost(String),
}

/// The lease the claim wrote (until `lease_until`), if a tick of it is left;
/// else a renewal's, if it lands in time. `Refused`: the task is no longer
/// this claim's (another delivery took it once the lease lapsed, or it was
/// canceled). An error: no lease could be made sure of, and Lambda retries.
async fn ensure_lease(
    store: TaskStore<'_>,
    task_id: &str,
    claim_id: &str,
    lease: Lease,
    lease_until: u64,
) -> Result<Written<u64>, TaskError> {
    if !lease.must_stop(epoch_millis(), lease_until) {
        return Ok(Written::Done(lease_until));
    }
    let now = epoch_millis();
    match store.renew_lease(task_id, claim_id, lease.until(now)).await {
        Ok(Written::Done(())) if !lease.must_stop(epoch_millis(), lease.until(now)) => {
            Ok(Written::Done(lease.until(now)))
        }
        Ok(Written::Done(())) => Err(TaskError::Store(
            "UpdateItem (lease): answered too late to start the work".to_owned(),
        )),
        Ok(Written::Refused) => Ok(Written::Refused),
        Err(reason) => Err(TaskError::Store(reason)),
    }
}

/// Renews the lease (held until `lease_until`) while the work runs, and stops
/// the work when the task is no longer this attempt's to run.
async fn watch(
    store: TaskStore<'_>,
    task_id: &str,
    claim_id: &str,
    lease: Lease,
    mut lease_until: u64,
    mut work: tokio::task::JoinHandle<Result<(), String>>,
) -> Watched {
    loop {
        tokio::select! {
            joined = &mut work => return finished(joined),
            () = tokio::time::sleep(lease.tick) => {}
        }
        let now = epoch_millis();
        if lease.must_stop(now, lease.deadline_ms) {
            // Lambda ends the invocation at its deadline: stop the work first,
            // so it never runs on unleased, and fail so that Lambda retries.
            work.abort();
            return Watched::LeaseLost(
                "the invocation reached its deadline; the work was stopped".to_owned(),
            );
        }
        let time_left = Duration::from_millis(lease_until.saturating_sub(now));
        let renewal = tokio::time::timeout(
            time_left.saturating_sub(lease.tick),
            store.renew_lease(task_id, claim_id, lease.until(now)),
        )
        .await;
        match renewal {
            Ok(Ok(Written::Done(()))) => lease_until = lease.until(now),
            Ok(Ok(Written::Refused)) => {
                work.abort();
                return Watched::NoLongerOurs;
            }
            Ok(Err(reason)) if lease.must_stop(epoch_millis(), lease_until) => {
                work.abort();
                return Watched::LeaseLost(reason);
            }
            Err(_) => {
                work.abort();
                return Watched::LeaseLost("UpdateItem (lease): timed out".to_owned());
            }
            Ok(Err(reason)) => tracing::warn!(reason, "lease not renewed; trying again"),
        }
    }
}

fn finished(joined: Result<Result<(), String>, JoinError>) -> Watched {
    match joined {
        Ok(result) => Watched::Finished(result),
        Err(_) => Watched::Panicked,
    }
}

/// The task was canceled or given up on while this attempt ran: its result is
/// not recorded, and the invocation ends without an error, so Lambda does not
/// retry it.
async fn ended_elsewhere(
    store: TaskStore<'_>,
    task_id: String,
    attempt: u32,
) -> Result<TaskOutcome, TaskError> {
    let stored = store
        .read(&task_id)
        .await
        .map_err(|err| TaskError::Store(err.summary("GetItem task")))?;
    let status = stored.map_or(TaskStatus::Canceled, |stored| stored.record.status);
    tracing::info!(
        attempt,
        status = status.as_str(),
        "the task ended elsewhere; this attempt's result is not recorded"
    );
    Ok(TaskOutcome {
        task_id,
        status,
        attempts: attempt,
        duplicate: false,
    })
}

/// What a delivery's claim on its task came to.
enum Claim {
    /// This delivery runs the task, as attempt number `attempt`, under a
    /// lease that ends at `lease_until` (epoch milliseconds).
    Won { attempt: u32, lease_until: u64 },
    /// Another attempt holds it under a live lease, or it has ended for good
    /// (succeeded, canceled, or failed because its event never left).
    Held { status: TaskStatus, attempts: u32 },
}

/// How often, and how long apart, a delivery that arrived before `/async`
/// marked its task enqueued tries again before it leaves the task to Lambda's
/// retry.
const NOT_ENQUEUED_TRIES: u32 = 5;
const NOT_ENQUEUED_PAUSE: Duration = Duration::from_millis(200);

/// Takes the task for this delivery, if it may run: see
/// [`TaskStore::claim`].
async fn claim(
    store: TaskStore<'_>,
    task_id: &str,
    claim_id: &str,
    lease: Lease,
) -> Result<Claim, TaskError> {
    for _ in 0..NOT_ENQUEUED_TRIES {
        let lease_until = lease.until(epoch_millis());
        let claimed = store
            .claim(task_id, claim_id, lease_until)
            .await
            .map_err(TaskError::Store)?;
        if let Written::Done(claimed) = claimed {
            let attempt = claimed.record.attempts;
            metrics::task_claimed(task_id, claimed.created_ms, attempt);
            return Ok(Claim::Won {
                attempt,
                lease_until,
            });
        }
        // The condition failed: if the record holds this very claim, the claim
        // landed and only its answer was lost; otherwise another attempt holds
        // the task, or it has ended, or /async has not marked it enqueued yet.
        let stored = store
            .read(task_id)
            .await
            .map_err(|err| TaskError::Store(err.summary("GetItem task")))?
            .ok_or_else(|| TaskError::UnknownTask(task_id.to_owned()))?;
        let record = stored.record;
        if stored.claim_id.as_deref() == Some(claim_id) && record.status == TaskStatus::Running {
            metrics::task_claimed(task_id, stored.created_ms, record.attempts);
            return Ok(Claim::Won {
                attempt: record.attempts,
                lease_until,
            });
        }
        if record.status != TaskStatus::Queued {
            return Ok(Claim::Held {
                status: record.status,
                attempts: record.attempts,
            });
        }
        // Still queued: if /async has marked it enqueued since the claim was
        // refused, it is claimable now (leaving it as "held" would leave it
        // queued with its event spent); if not yet, give /async a moment.
        if !stored.enqueued {
            tokio::time::sleep(NOT_ENQUEUED_PAUSE).await;
        }
    }
    Err(TaskError::NotEnqueued(task_id.to_owned()))
}
