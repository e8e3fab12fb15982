//! The task's work: what `await asyncio.sleep(1)` is in the FastAPI original.
//!
//! [`perform`] is the one function to replace with your own work. It gets a
//! [`Work`]: the task's input (add fields to [`TaskEvent`] for yours), the
//! attempt number, the time left before it must stop, whether the task was
//! canceled, and the function's clients. It returns its result as JSON (the
//! record's `result`), or a [`WorkFailure`] that says whether a retry could
//! help: [`WorkFailure::Retry`] leaves the task `queued` for Lambda's retry
//! (`failed` after the last), [`WorkFailure::ForGood`] ends it `failed` at
//! once. Everything around it (the claim, the lease, duplicate deliveries,
//! the record) is the worker's: the work is stopped if the task is canceled
//! or its lease cannot be kept, so keep it `async` (await often, block never).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::TaskEvent;
use crate::state::AppState;

/// What one attempt of the work is given.
pub struct Work {
    /// The task's input: its event.
    pub input: TaskEvent,
    /// Which attempt this is: 1, then 2 and 3 for Lambda's retries.
    pub attempt: u32,
    /// When the work must have stopped (the invocation's deadline, less the
    /// lease's margin).
    pub stop_by: Instant,
    /// Whether the task was canceled (the worker also stops the work then).
    pub canceled: Canceled,
    /// The function's configuration and clients (DynamoDB, Lambda).
    pub state: AppState,
}

impl Work {
    /// How long the work may still run.
    pub fn time_left(&self) -> Duration {
        self.stop_by.saturating_duration_since(Instant::now())
    }
}

/// Tells the work that its task was canceled.
#[derive(Clone)]
pub struct Canceled(pub watch::Receiver<bool>);

impl Canceled {
    /// Whether the task was canceled by now.
    pub fn is_canceled(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the task is canceled (for ever, if it never is).
    pub async fn wait(&mut self) {
        if self.0.wait_for(|canceled| *canceled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why an attempt of the work failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkFailure {
    /// A retry could help (a dependency was down, a timeout): Lambda retries.
    Retry(String),
    /// No retry can help (an input that will never work): the task fails now.
    ForGood(String),
}

/// The stand-in work: waits `delay_ms` and returns `{"waited_ms": delay_ms}`.
/// On purpose, when its event says so: panics in its first `panic_attempts`
/// attempts, fails its first `fail_attempts`, and fails for good with
/// `fail_for_good`.
pub async fn perform(work: Work) -> Result<Value, WorkFailure> {
    let event = &work.input;
    if event.fail_for_good {
        return Err(WorkFailure::ForGood(
            "simulated failure for good (fail_for_good)".to_owned(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(event.delay_ms)).await;
    if work.attempt <= event.panic_attempts {
        panic!(
            "simulated panic (panic_attempts = {})",
            event.panic_attempts
        );
    }
    if work.attempt <= event.fail_attempts {
        return Err(WorkFailure::Retry(format!(
            "simulated failure (fail_attempts = {})",
            event.fail_attempts
        )));
    }
    Ok(json!({ "waited_ms": event.delay_ms }))
}
