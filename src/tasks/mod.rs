//! Background tasks: `/async` records a task and enqueues an asynchronous
//! invocation of this same function; the task event that Lambda then delivers
//! runs the task; `GET /tasks/{task_id}` reports how it went.
//!
//! - [`http`]: the routes (`/async`, `/tasks/{task_id}`) and the enqueue;
//!   [`start_request`]: the body of `POST /async`; [`idempotency`]: its
//!   `Idempotency-Key`;
//! - [`list`]: `GET /tasks`, the caller's own tasks; [`rate_limit`]:
//!   `TASKS_PER_MINUTE_PER_CALLER`, counted per task start;
//! - [`event`]: the task event this function sends itself, read and checked;
//! - [`protocol`]: every decision of the task's life, as a pure state
//!   machine (the model in `crates/task-model` checks it);
//! - [`worker`]: what a delivery of that event does: claim the task (a
//!   conditional write, with a lease), run the work, record the result;
//! - [`work`]: the work itself, the one function to replace with your own;
//! - [`record`]: the task record and its status, as stored and as shown;
//! - [`store`]: every read and write of the tasks table, the writes of an
//!   attempt in [`claims`];
//! - [`destination`]: Lambda's records of task events it gave up on, from
//!   the failure queue.

pub mod claims;
pub mod destination;
pub mod event;
pub mod http;
pub mod idempotency;
pub mod lease;
pub mod list;
pub mod protocol;
pub mod rate_limit;
pub mod record;
pub mod start_request;
pub mod store;
pub mod work;
pub mod worker;

pub use event::TaskEvent;
pub use record::{TaskRecord, TaskStatus};
pub use store::TaskStore;
pub use worker::{TaskError, TaskOutcome};

use uuid::Uuid;

use crate::state::AppState;

/// How long the stand-in task waits when the client does not say.
pub const DEFAULT_DELAY_MS: u64 = 1000;
/// The longest wait a client may ask for; the function timeout is set above it.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Records created before this instant (epoch milliseconds), as seen at
/// `now_ms`, that have not ended never will by their event: Lambda gives up
/// on an event at its maximum age, and its two retries take at most five
/// minutes more (the backstop).
pub fn undeliverable_before_ms(state: &AppState, now_ms: u64) -> u64 {
    now_ms.saturating_sub(backstop_horizon_ms(state))
}

/// How long after its creation a task's event can still be delivered: the
/// maximum event age, plus five minutes for Lambda's retries.
pub fn backstop_horizon_ms(state: &AppState) -> u64 {
    let horizon = state.config.task_event_max_age + std::time::Duration::from_secs(5 * 60);
    horizon.as_millis() as u64
}

/// Whether `id` is one this API makes: a UUID in its canonical lowercase form.
pub fn is_task_id(id: &str) -> bool {
    Uuid::try_parse(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lowercase_hyphenated_uuid_is_a_task_id() {
        assert!(is_task_id("0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c"));
        for not_ours in [
            "0B7E4C1A-2F3D-4E5A-8C6B-9D1E2F3A4B5C",
            "0b7e4c1a2f3d4e5a8c6b9d1e2f3a4b5c",
            "{0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c}",
            "urn:uuid:0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
            "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5",
            "",
            "users",
        ] {
            assert!(!is_task_id(not_ours), "{not_ours}");
        }
    }
}
