//! The task protocol: every decision of `POST /async`, its `Idempotency-Key`,
//! a delivery of the task event, the lease, the finish, the cancel and the
//! failure record, as one pure state machine. No I/O here: given the record
//! as read, the clock, the caller's own state and what its last call came to,
//! it says what to do next. The drivers ([`super::http`],
//! [`super::idempotency`], [`super::worker`], [`super::destination`]) do the
//! calls; `crates/task-model` runs these same functions against a model of
//! DynamoDB and Lambda and checks every interleaving within its bounds.
//!
//! Each write is conditional. The conditions live in [`cond`], each as the
//! DynamoDB expression the store sends and as the predicate the model
//! evaluates; `tests/conditions.rs` checks that the two agree on dynalite.
//!
//! What the protocol assumes of the world (docs/task-protocol.md, "What the protocol assumes"
//! gives AWS's documentation for each):
//! - DynamoDB conditional writes on one item are linearizable; a write may land
//!   and its answer be lost; a strongly consistent read sees every write that
//!   landed before it.
//! - Lambda delivers an accepted event at least once, retries a failed
//!   invocation (at most `TASK_MAX_RETRY_ATTEMPTS` times), ends an invocation
//!   at its deadline, gives up at the maximum event age, then sends a record to
//!   the on-failure destination, itself delivered at least once.
//! - Clocks of the function's processes differ by less than [`CLOCK_SKEW_MS`],
//!   which is smaller than any lease tick.
//! - A write lands within [`WRITE_LANDS_WITHIN_MS`] of being sent, or never
//!   (the SDK's operation timeout gives up on it by then).

use super::lease::Lease;
use super::record::TaskStatus;

/// How far apart two processes' clocks may be (Lambda's hosts keep time with
/// Amazon Time Sync, within about a millisecond; this leaves room).
pub const CLOCK_SKEW_MS: u64 = 25;
/// How long after it was sent a write can still land: the DynamoDB client's
/// operation timeout (`state::call_timeouts`), and the bound by which a write
/// that could let a task go on must land before the backstop.
pub const WRITE_LANDS_WITHIN_MS: u64 = 6_000;
/// How long `Retry-After` tells a poller to wait after a failed attempt,
/// per attempt: Lambda retries about 1 minute after the first failure and
/// about 2 minutes after the second.
pub const RETRY_PAUSE_MS: u64 = 60_000;
/// How long a delivery that waits for something (the enqueued mark, another
/// attempt's outcome) sleeps between reads at most.
pub const POLL_MS: u64 = 200;

/// A task record as read, or as the model holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskView {
    pub status: TaskStatus,
    /// Lambda accepted the task event (`/async` saw its `Invoke` succeed):
    /// only then may a delivery claim the task.
    pub enqueued: bool,
    /// The claim that last took the task.
    pub claim_id: Option<String>,
    /// Until when (epoch ms) the claim's attempt holds the task.
    pub lease_until: Option<u64>,
    /// Attempts that started the work: the start writes that landed.
    pub attempts: u32,
    /// When the request that created the task can no longer mark it
    /// enqueued (its invocation's deadline), epoch ms.
    pub answer_by: u64,
    /// When `/async` created it, epoch ms.
    pub created_ms: u64,
    /// When Lambda's retry of a failed attempt is due, epoch ms.
    pub retry_at: Option<u64>,
    /// The claims whose start write landed (each counted once in
    /// `attempts`).
    pub started_claims: Vec<String>,
}

impl TaskView {
    /// The status a reader is shown: a task that has not ended although its
    /// event can no longer be delivered (`undeliverable_before_ms`) reads
    /// `failed` (the backstop).
    pub fn shown_status(&self, undeliverable_before_ms: u64) -> TaskStatus {
        if self.is_past_backstop(undeliverable_before_ms) {
            TaskStatus::Failed
        } else {
            self.status
        }
    }

    /// Whether the backstop ends this task: it has not ended, and it was
    /// created before `undeliverable_before_ms`.
    pub fn is_past_backstop(&self, undeliverable_before_ms: u64) -> bool {
        !self.status.has_ended()
            && self.created_ms != 0
            && self.created_ms < undeliverable_before_ms
    }

    /// Seconds a poller should wait (`Retry-After`), `None` once ended.
    pub fn retry_after_s(&self, now_ms: u64, undeliverable_before_ms: u64) -> Option<u64> {
        if self.shown_status(undeliverable_before_ms).has_ended() {
            return None;
        }
        let wait_ms = match (self.status, self.retry_at) {
            (TaskStatus::Queued, Some(retry_at)) => retry_at.saturating_sub(now_ms),
            _ => 0,
        };
        Some(wait_ms.div_ceil(1000).max(1))
    }
}

/// The conditions of the protocol's writes: each as the expression the store
/// sends (names `#status`, `#error`; the values named beside it) and as a
/// predicate over [`TaskView`].
pub mod cond {
    use super::{TaskStatus, TaskView};

    /// The claim: an enqueued task, still deliverable (created at or after
    /// `:cutoff`), `queued`, or `running` under a lease that has run out by
    /// the claimer's clock (`:now_ms`).
    pub const CLAIM: &str = "enqueued = :true AND NOT created_ms < :cutoff AND (#status = :queued OR (#status = :running AND lease_until < :now_ms))";
    pub fn claim(v: &TaskView, now_ms: u64, cutoff_ms: u64) -> bool {
        v.enqueued
            && !v.is_past_backstop(cutoff_ms)
            && (v.status == TaskStatus::Queued
                || (v.status == TaskStatus::Running && v.lease_until.is_some_and(|l| l < now_ms)))
    }

    /// Renewal and finish: the task is still this claim's.
    pub const OWNED: &str = "#status = :running AND claim_id = :claim";
    pub fn owned(v: &TaskView, claim_id: &str) -> bool {
        v.status == TaskStatus::Running && v.claim_id.as_deref() == Some(claim_id)
    }

    /// The start (counts the attempt, adds the claim to `started_claims`)
    /// and the release of a claim that cannot start (the task `queued`
    /// again): the task is still this claim's, and this claim has not
    /// started it. A retried start finds itself started, so no start counts
    /// twice; a started claim is never released.
    pub const UNSTARTED: &str =
        "#status = :running AND claim_id = :claim AND NOT contains(started_claims, :claim)";
    pub fn unstarted(v: &TaskView, claim_id: &str) -> bool {
        owned(v, claim_id) && !started(v, claim_id)
    }

    /// Whether claim `claim_id`'s start write landed.
    pub fn started(v: &TaskView, claim_id: &str) -> bool {
        v.started_claims.iter().any(|c| c == claim_id)
    }

    /// The enqueued mark: the task is still `queued` (not failed by its
    /// request, nor canceled).
    pub const MARK_ENQUEUED: &str = "#status = :queued";
    pub fn mark_enqueued(v: &TaskView) -> bool {
        v.status == TaskStatus::Queued
    }

    /// `/async` fails a task whose event may not have left, and a keyed
    /// retry takes over an unmarked task (extends `answer_by`): the task is
    /// `queued` and not enqueued, so no delivery can have claimed it.
    pub const UNMARKED: &str = "#status = :queued AND enqueued = :false";
    pub fn unmarked(v: &TaskView) -> bool {
        v.status == TaskStatus::Queued && !v.enqueued
    }

    /// A delivery marks enqueued an unmarked task whose request can no
    /// longer say 503 (`answer_by` has passed by the delivery's clock, less
    /// the skew): the delivery itself proves Lambda accepted the event, and
    /// the request answered 202 or died (its caller got API Gateway's 5xx,
    /// not the function's 503).
    pub const ADOPT: &str = "#status = :queued AND enqueued = :false AND answer_by < :now_ms";
    pub fn adopt(v: &TaskView, now_ms: u64) -> bool {
        unmarked(v) && v.answer_by < now_ms
    }

    /// DELETE: a task that has not ended, and not past the backstop.
    pub const CANCEL: &str =
        "(#status = :running OR #status = :queued) AND NOT created_ms < :cutoff";
    pub fn cancel(v: &TaskView, cutoff_ms: u64) -> bool {
        !v.status.has_ended() && !v.is_past_backstop(cutoff_ms)
    }

    /// Lambda's failure record: a task that has not ended.
    pub const GIVE_UP: &str = "#status IN (:queued, :running)";
    pub fn give_up(v: &TaskView) -> bool {
        !v.status.has_ended()
    }
}

/// The cutoff sent at `now_ms` with a write that lets a task go on (a claim,
/// a cancel): records created before it are past the backstop by the time the
/// write could land, on any process's clock. `horizon_ms`: how long after its
/// creation a task's event can still be delivered (the backstop).
pub fn write_cutoff(now_ms: u64, horizon_ms: u64) -> u64 {
    (now_ms + WRITE_LANDS_WITHIN_MS + CLOCK_SKEW_MS).saturating_sub(horizon_ms)
}

/// What a conditional write came to, as its caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wrote {
    /// It landed (the answer said so).
    Done,
    /// The condition failed: nothing was written.
    Refused,
    /// No answer: it may or may not have landed.
    Unknown,
}

mod delivery;
mod diagram;
mod start;

pub use delivery::*;
pub use diagram::*;
pub use start::*;

#[cfg(test)]
mod tests;
