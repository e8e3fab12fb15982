//! What a delivery of a task event does: the driver of
//! [`super::protocol`]'s delivery, lease and finish. It makes the calls the
//! protocol asks for and hands back what they came to; it decides nothing.
//!
//! A delivery claims the task with a conditional write, then starts it with a
//! second (the start counts the attempt, once, whatever tries of it land),
//! under a lease its attempt renews while the work runs: a live attempt keeps
//! its claim, a dead one's
//! lease lapses within seconds and Lambda's retry takes the task over. A
//! renewal that finds the task canceled stops the work; an attempt that cannot
//! renew stops it one renewal interval before its lease ends, so no two
//! attempts ever run the work at once. A delivery that finds another attempt
//! holding the task waits for its outcome, or takes the task over when its
//! lease lapses.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tracing::Instrument;
use uuid::Uuid;

use super::lease::{Lease, real_deadline};
use super::protocol::{self, Attempt, Begun, Delivery, GiveBack, Verdict, Watch, WorkEnd, Wrote};
use super::store::{Outcome, TaskStore, Written, epoch_millis};
use super::work::{self, Canceled, Work, WorkFailure};
use super::{TaskEvent, TaskStatus};
use crate::metrics::{self, Ended};
use crate::state::AppState;

mod running;

pub use running::STARTED_UNKNOWN;
use running::*;

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
    #[error("task {0} is held by another attempt for all of this invocation")]
    HeldElsewhere(String),
    #[error("task {0}: too little time is left to start the work")]
    LeaseTooShort(String),
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
            Self::HeldElsewhere(_) => "TaskHeldElsewhere",
            Self::LeaseTooShort(_) => "TaskLeaseTooShort",
        }
    }

    fn given_back(why: GiveBack, task_id: &str) -> Self {
        let task_id = task_id.to_owned();
        match why {
            GiveBack::NotEnqueued => Self::NotEnqueued(task_id),
            GiveBack::HeldElsewhere => Self::HeldElsewhere(task_id),
            GiveBack::LeaseTooShort => Self::LeaseTooShort(task_id),
        }
    }
}

/// How a delivered task event ended, when it did not fail.
#[derive(Debug, serde::Serialize)]
pub struct TaskOutcome {
    pub task_id: String,
    /// The task's status as last read (`None`: it could not be read).
    pub status: Option<TaskStatus>,
    pub attempts: u32,
    /// True when this delivery found the task ended and left it alone.
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
    let now = epoch_millis();
    let deadline_ms = real_deadline(deadline_ms, now);
    let attempt = Attempt {
        // Names this claim: a claim whose answer was lost is known by it.
        claim_id: Uuid::new_v4().to_string(),
        lease: Lease::new(now, deadline_ms),
        horizon_ms: super::backstop_horizon_ms(state),
    };
    deliver(state, &attempt, event).instrument(span).await
}

/// The task as this delivery holds it.
enum Holding {
    /// This delivery's claim, not started yet, of a task created at
    /// `created_ms`.
    Ours { created_ms: u64 },
    /// The task has ended: nothing to do.
    Ended { status: TaskStatus, attempts: u32 },
}

async fn deliver(
    state: &AppState,
    attempt: &Attempt,
    event: TaskEvent,
) -> Result<TaskOutcome, TaskError> {
    let store = TaskStore::of(state);
    let task_id = event.task_id.clone();
    let created_ms = match hold(store, attempt, &task_id).await? {
        Holding::Ours { created_ms } => created_ms,
        Holding::Ended { status, attempts } => {
            tracing::info!(
                status = status.as_str(),
                "duplicate delivery: the task has ended"
            );
            metrics::duplicate_delivery(&task_id);
            return Ok(TaskOutcome {
                task_id,
                status: Some(status),
                attempts,
                duplicate: true,
            });
        }
    };
    // From here on, no lease outlives the task's backstop.
    let attempt = &attempt.narrowed(created_ms);
    let (number, lease_until) = match start(store, attempt, &task_id).await? {
        Begun::Started {
            number,
            lease_until,
        } => (number, lease_until),
        // (`start` turns `NotStarted` into the error that gives the event
        // back.)
        Begun::NotOurs | Begun::NotStarted => {
            return Ok(ended_elsewhere(store, task_id, 0).await);
        }
    };
    let lease_until = match two_ticks_ahead(store, attempt, &task_id, lease_until).await {
        Written::Done(Some(lease_until)) => lease_until,
        Written::Done(None) => {
            // The start was answered too late, and no renewal made up for
            // it: an attempt counted whose work never runs (its lease lapses;
            // Lambda's retry takes the task over; docs/task-protocol.md, "The
            // lease", names every such case).
            return Err(TaskError::Store(format!(
                "attempt {number} started, but its answer came too late to begin the work"
            )));
        }
        Written::Refused => return Ok(ended_elsewhere(store, task_id, number).await),
    };
    metrics::task_claimed(&task_id, created_ms, number);
    tracing::info!(attempt = number, delay_ms = event.delay_ms, "task started");

    let started = Instant::now();
    let (cancel, canceled) = watch::channel(false);
    let stop_by = Instant::now()
        + Duration::from_millis(
            attempt
                .stop_at(attempt.lease.deadline_ms)
                .saturating_sub(epoch_millis()),
        );
    let work = Work {
        input: event,
        attempt: number,
        stop_by,
        canceled: Canceled(canceled),
        state: state.clone(),
    };
    let work = tokio::spawn(work::perform(work).in_current_span());
    let watched = watch_work(store, attempt, &task_id, lease_until, work, &cancel).await;
    let ran = started.elapsed();
    let (end, result, message) = match watched {
        Watched::Finished(Ok(value)) => (WorkEnd::Succeeded, value.to_string(), String::new()),
        Watched::Finished(Err(WorkFailure::Retry(message))) => {
            (WorkEnd::Failed { retryable: true }, String::new(), message)
        }
        Watched::Finished(Err(WorkFailure::ForGood(message))) => {
            (WorkEnd::Failed { retryable: false }, String::new(), message)
        }
        Watched::Panicked => (
            WorkEnd::Panicked,
            String::new(),
            "the task's work panicked".to_owned(),
        ),
        Watched::NoLongerOurs => {
            metrics::task_ran(&task_id, ran, None);
            return Ok(ended_elsewhere(store, task_id, number).await);
        }
        Watched::LeaseLost(reason) => {
            metrics::task_ran(&task_id, ran, None);
            tracing::error!(
                attempt = number,
                reason,
                "work stopped: the lease could not be kept"
            );
            return Err(TaskError::Store(reason));
        }
    };
    let max_retries = state.config.task_max_retry_attempts;
    let verdict = protocol::verdict(&end, number, max_retries, epoch_millis());
    let outcome = match verdict {
        Verdict::Succeeded => Outcome::Succeeded(&result),
        Verdict::RetryLater { retry_at } => Outcome::RetryLater {
            error: &message,
            retry_at,
        },
        Verdict::Failed { .. } => Outcome::Failed(&message),
    };
    let written = store
        .finish(&task_id, &attempt.claim_id, outcome)
        .await
        .map_err(TaskError::Store)?;
    if written == Written::Refused {
        metrics::task_ran(&task_id, ran, None);
        return Ok(ended_elsewhere(store, task_id, number).await);
    }
    let (ended, status) = match verdict {
        Verdict::Succeeded => (Ended::Succeeded, TaskStatus::Succeeded),
        Verdict::RetryLater { .. } => (Ended::AttemptFailed, TaskStatus::Queued),
        Verdict::Failed { .. } => (Ended::Failed, TaskStatus::Failed),
    };
    metrics::task_ran(&task_id, ran, Some(ended));
    match verdict {
        Verdict::Succeeded => {
            tracing::info!(attempt = number, "Task completed");
        }
        Verdict::Failed {
            function_error: false,
        } => {
            tracing::error!(attempt = number, error = %message, "task failed for good");
        }
        Verdict::RetryLater { .. } | Verdict::Failed { .. } => {
            tracing::error!(
                attempt = number,
                error = %message,
                status = status.as_str(),
                "task attempt failed"
            );
            return Err(TaskError::Failed {
                task_id,
                attempt: number,
                message,
            });
        }
    }
    Ok(TaskOutcome {
        task_id,
        status: Some(status),
        attempts: number,
        duplicate: false,
    })
}

/// Claims the task, or waits for it, as [`Attempt::next`] says, until this
/// delivery holds it or has nothing to do.
async fn hold(
    store: TaskStore<'_>,
    attempt: &Attempt,
    task_id: &str,
) -> Result<Holding, TaskError> {
    // A task event usually finds its task enqueued and free: claim first,
    // read only when the claim is refused.
    let mut next = Delivery::Claim;
    let mut created_ms = 0;
    let mut claim_failed = None;
    loop {
        match next {
            Delivery::Claim => {
                let sent = epoch_millis();
                let claimed = store
                    .claim(
                        task_id,
                        &attempt.claim_id,
                        sent,
                        attempt.cutoff(sent),
                        attempt.claimed_until(sent),
                    )
                    .await;
                match claimed {
                    Ok(Written::Done(claimed)) => {
                        return Ok(Holding::Ours {
                            created_ms: claimed.view.created_ms,
                        });
                    }
                    Ok(Written::Refused) => {}
                    // It may have landed: the read below tells, and if it
                    // cannot, the claim is released (it started nothing).
                    Err(reason) => claim_failed = Some(reason),
                }
            }
            Delivery::Owned { .. } => return Ok(Holding::Ours { created_ms }),
            Delivery::Wait { until_ms } => {
                sleep_until(until_ms).await;
            }
            Delivery::Adopt => {
                let now = epoch_millis().saturating_sub(protocol::CLOCK_SKEW_MS);
                if store.adopt(task_id, now).await == Wrote::Done {
                    tracing::warn!("task marked enqueued by its delivery: its request is over");
                }
            }
            Delivery::Ended => {}
            Delivery::Unknown => return Err(TaskError::UnknownTask(task_id.to_owned())),
            Delivery::GiveBack(why) => return Err(TaskError::given_back(why, task_id)),
        }
        let view = match store.view(task_id).await {
            Ok(view) => view,
            Err(reason) => {
                if claim_failed.is_some() {
                    store.release(task_id, &attempt.claim_id).await;
                }
                return Err(TaskError::Store(claim_failed.unwrap_or(reason)));
            }
        };
        claim_failed = None;
        let now = epoch_millis();
        next = attempt.next(view.as_ref(), now);
        let Some(view) = view else { continue };
        created_ms = view.created_ms;
        if next == Delivery::Ended {
            return Ok(Holding::Ended {
                status: view.shown_status(attempt.cutoff(now)),
                attempts: view.attempts,
            });
        }
    }
}
