//! The task protocol: every decision of `POST /async`, its `Idempotency-Key`,
//! a delivery of the task event, the lease, the finish, the cancel and the
//! failure record, as one pure state machine. No I/O here: given the record
//! as read, the clock, the caller's own state and what its last call came to,
//! it says what to do next. The drivers ([`super::http`],
//! [`super::idempotency`], [`super::worker`], [`super::destination`]) do the
//! calls; `tests/model.rs` runs these same functions against a model of
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

// --- the state diagram ---------------------------------------------------------------------

/// Every change of status the protocol makes, with who makes it (the write,
/// or the reader's backstop): `None` is "no record yet". The diagram of
/// `docs/task-protocol.md` is [`state_diagram`]'s rendering of this table (a
/// unit test checks it), and the model (`tests/model.rs`) checks that every
/// change of status it reaches is one of these.
pub const TRANSITIONS: &[(Option<TaskStatus>, TaskStatus, &str)] = &[
    (
        None,
        TaskStatus::Queued,
        "POST /async writes it, not yet enqueued",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Queued,
        "POST /async marks it enqueued",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Failed,
        "POST /async: the event may not have left (503)",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Queued,
        "a delivery marks it once its request is over",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Running,
        "a delivery claims it",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Running,
        "a delivery takes over a lapsed lease",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Running,
        "the claim starts the work (counts the attempt)",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Queued,
        "a claim that cannot start releases it",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Queued,
        "an attempt failed: Lambda retries",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Succeeded,
        "the work returned its result",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Failed,
        "the work failed for good, or its last attempt failed",
    ),
    (Some(TaskStatus::Queued), TaskStatus::Canceled, "DELETE"),
    (Some(TaskStatus::Running), TaskStatus::Canceled, "DELETE"),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Failed,
        "Lambda's failure record",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Failed,
        "Lambda's failure record",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Failed,
        "read past the backstop",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Failed,
        "read past the backstop",
    ),
];

/// Whether a change of status from `from` to `to` is one of [`TRANSITIONS`].
pub fn is_transition(from: Option<TaskStatus>, to: TaskStatus) -> bool {
    TRANSITIONS.iter().any(|(f, t, _)| *f == from && *t == to)
}

/// [`TRANSITIONS`] as a mermaid state diagram.
pub fn state_diagram() -> String {
    let mut diagram = String::from("stateDiagram-v2\n");
    for (from, to, by) in TRANSITIONS {
        let from = from.map_or("[*]", TaskStatus::as_str);
        diagram += &format!("    {from} --> {}: {by}\n", to.as_str());
    }
    for end in [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ] {
        diagram += &format!("    {} --> [*]\n", end.as_str());
    }
    diagram
}

// --- POST /async --------------------------------------------------------------------------

/// What `/async` does next, or answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Start {
    /// Send the task event (`Invoke`, `InvocationType=Event`).
    Invoke,
    /// Mark the task enqueued (condition [`cond::MARK_ENQUEUED`]).
    MarkEnqueued,
    /// Fail the unmarked task (condition [`cond::UNMARKED`]).
    MarkNotEnqueued,
    /// Read the record to settle what an unanswered write did.
    Settle,
    /// 202: the task is enqueued, or it cannot be told whether it can run.
    Accepted,
    /// 503 (or 500 when no retry cures it): the task can never run.
    Refused,
}

/// After the queued record is written (or found, written by an earlier try):
/// send the event.
pub fn after_put() -> Start {
    Start::Invoke
}

/// After the `Invoke`: `accepted` when Lambda answered it. Any failure may
/// have been a try that landed, so the task is failed before a 5xx is said.
pub fn after_invoke(accepted: bool) -> Start {
    if accepted {
        Start::MarkEnqueued
    } else {
        Start::MarkNotEnqueued
    }
}

/// After the enqueued mark. Refused: the task is no longer `queued` (a
/// keyed retry's request, or a delivery, failed it): settle by reading.
pub fn after_mark_enqueued(wrote: Wrote) -> Start {
    match wrote {
        Wrote::Done => Start::Accepted,
        Wrote::Refused => Start::Settle,
        Wrote::Unknown => Start::MarkNotEnqueued,
    }
}

/// After failing the unmarked task: only a write known to have landed (or a
/// read that shows it) makes the 5xx safe.
pub fn after_mark_not_enqueued(wrote: Wrote) -> Start {
    match wrote {
        Wrote::Done => Start::Refused,
        Wrote::Refused | Wrote::Unknown => Start::Settle,
    }
}

/// The settling read: `None` when it failed or found no record.
pub fn after_settle(view: Option<&TaskView>) -> Start {
    match view {
        // Never marked and no longer queued: failed by this request (an
        // answer lost) or another, canceled; no delivery can claim it.
        Some(v) if !v.enqueued && v.status != TaskStatus::Queued => Start::Refused,
        // Marked: it runs. Unmarked and queued, or unreadable: it cannot be
        // told, and a 503 task must never run.
        _ => Start::Accepted,
    }
}

// --- Idempotency-Key ----------------------------------------------------------------------

/// Where a key's first request got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    InProgress,
    Answered,
    Released,
}

/// A key record as read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyView {
    pub state: KeyState,
    /// The normalised request the key was first sent with.
    pub request: String,
    /// The reservation that holds it.
    pub reservation: String,
    /// The key's task: fixed when the key is reserved, kept by a takeover.
    pub task_id: String,
    /// Until when (epoch ms) an in-progress reservation holds.
    pub hold_until: u64,
}

/// What a request with a key does after its reservation was refused and
/// the key record read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyNext {
    /// The reservation is this request's (its write landed, the answer
    /// lost): carry on with the key's task.
    Ours { task_id: String },
    /// Reserve again: the key was released or is gone.
    Reserve,
    /// Take over a reservation whose request outlived its hold, keeping its
    /// task (condition: the reservation is still `reservation`, its hold
    /// over).
    TakeOver {
        reservation: String,
        task_id: String,
    },
    /// Answer the first request's 202 again.
    Replay { task_id: String },
    /// 422: the key was sent with another request.
    Reused,
    /// 409: the first request is still being handled.
    InProgress,
}

/// `view`: the key record, `None` if gone; `request`: this request.
pub fn after_key_read(view: Option<&KeyView>, request: &str, mine: &str, now_ms: u64) -> KeyNext {
    let Some(key) = view else {
        return KeyNext::Reserve;
    };
    if key.reservation == mine {
        return KeyNext::Ours {
            task_id: key.task_id.clone(),
        };
    }
    if key.state == KeyState::Released {
        return KeyNext::Reserve;
    }
    if key.request != request {
        return KeyNext::Reused;
    }
    match key.state {
        KeyState::Answered => KeyNext::Replay {
            task_id: key.task_id.clone(),
        },
        KeyState::InProgress if key.hold_until < now_ms => KeyNext::TakeOver {
            reservation: key.reservation.clone(),
            task_id: key.task_id.clone(),
        },
        _ => KeyNext::InProgress,
    }
}

/// What a request that took over a key's task does with it, once it has
/// written the queued record again (refused when it exists) and read it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Adopt {
    /// Enqueued already: answer 202 with it.
    Accepted,
    /// Still unmarked: extend `answer_by` (condition [`cond::UNMARKED`]),
    /// then send its event again and mark it, as a first request does.
    Resume,
    /// It can never run (failed or canceled before it was enqueued): the key
    /// gets a new task.
    NewTask,
    /// Not known: answer 202 with it (a 503 task must never run).
    Unknown,
}

/// `view`: the key's task as read (`Err` when the read failed).
pub fn adopt(view: Result<Option<&TaskView>, ()>) -> Adopt {
    match view {
        Ok(Some(v)) if v.enqueued => Adopt::Accepted,
        Ok(Some(v)) if v.status == TaskStatus::Queued => Adopt::Resume,
        Ok(Some(_)) => Adopt::NewTask,
        // The queued write was refused or failed and there is no record:
        // nothing can claim a task with no record, so a new one is safe.
        Ok(None) => Adopt::NewTask,
        Err(()) => Adopt::Unknown,
    }
}

// --- a delivery of the task event ---------------------------------------------------------

/// Why a delivery ends in a function error, so that Lambda delivers again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GiveBack {
    /// `/async` has not marked the task enqueued within this invocation.
    NotEnqueued,
    /// Another attempt held the task for all of this invocation's time.
    HeldElsewhere,
    /// Too little of the invocation (or of the task's time before its
    /// backstop) is left to start the work.
    LeaseTooShort,
}

/// What a delivery does next with the task as read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Claim it (condition [`cond::CLAIM`]).
    Claim,
    /// The record holds this delivery's claim (its answer was lost).
    Owned { lease_until: u64 },
    /// Read again at `until_ms`: the enqueued mark, or another attempt's
    /// outcome or lapse, is awaited.
    Wait { until_ms: u64 },
    /// Mark enqueued the unmarked task whose request can no longer mark it
    /// (condition [`cond::ADOPT`]), then read again.
    Adopt,
    /// The task has ended (or was never ours to run): succeed, doing nothing.
    Ended,
    /// No such task.
    Unknown,
    /// End with a function error: Lambda delivers the event again.
    GiveBack(GiveBack),
}

/// A delivery's own circumstances.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// This delivery's claim id.
    pub claim_id: String,
    /// Its lease; once the task is claimed, its deadline is also the task's
    /// own ([`Self::narrowed`]).
    pub lease: Lease,
    /// How long after its creation a task's event can still be delivered
    /// (the backstop's horizon, ms).
    pub horizon_ms: u64,
}

impl Attempt {
    /// The cutoff of a claim sent at `now_ms` ([`write_cutoff`]).
    pub fn cutoff(&self, now_ms: u64) -> u64 {
        write_cutoff(now_ms, self.horizon_ms)
    }

    /// This attempt on a task created at `created_ms`: no lease of it runs
    /// past the point where a write sent then could land after the task's
    /// backstop, so no reader that saw the task `failed` by the backstop
    /// ever sees it run or end otherwise.
    pub fn narrowed(&self, created_ms: u64) -> Self {
        let mut narrowed = self.clone();
        if created_ms != 0 {
            let last_ms = (created_ms + self.horizon_ms)
                .saturating_sub(WRITE_LANDS_WITHIN_MS + CLOCK_SKEW_MS);
            narrowed.lease.deadline_ms = narrowed.lease.deadline_ms.min(last_ms);
        }
        narrowed
    }

    /// What to do with the task as read at `now_ms`.
    pub fn next(&self, view: Option<&TaskView>, now_ms: u64) -> Delivery {
        let Some(v) = view else {
            return Delivery::Unknown;
        };
        if cond::owned(v, &self.claim_id) {
            return Delivery::Owned {
                lease_until: v.lease_until.unwrap_or(0),
            };
        }
        let cutoff_ms = self.cutoff(now_ms);
        if v.status.has_ended() || v.is_past_backstop(cutoff_ms) {
            return Delivery::Ended;
        }
        if cond::claim(v, now_ms, cutoff_ms) {
            // A claim now could not start the work before the invocation
            // ends: leave the task to Lambda's next delivery.
            if !self.narrowed(v.created_ms).may_start_now(now_ms) {
                return Delivery::GiveBack(GiveBack::LeaseTooShort);
            }
            return Delivery::Claim;
        }
        if cond::adopt(v, now_ms.saturating_sub(CLOCK_SKEW_MS)) {
            return Delivery::Adopt;
        }
        // Unmarked (its request may still mark it), or held by another
        // attempt's live lease: wait for that, while this invocation has time
        // to give the event back before its deadline.
        let awaited = if v.enqueued {
            v.lease_until.unwrap_or(0) + 1
        } else {
            v.answer_by + CLOCK_SKEW_MS + 1
        };
        let until_ms = awaited.min(now_ms + POLL_MS).max(now_ms + 1);
        if until_ms + 2 * self.lease.tick_ms() < self.lease.deadline_ms {
            Delivery::Wait { until_ms }
        } else if v.enqueued {
            Delivery::GiveBack(GiveBack::HeldElsewhere)
        } else {
            Delivery::GiveBack(GiveBack::NotEnqueued)
        }
    }

    /// After the claim write sent at `sent_ms`: Done means this attempt holds
    /// the task until `lease.until(sent_ms)`; otherwise the record is read
    /// and [`Self::next`] decides (it knows a claim that landed unanswered).
    pub fn claimed_until(&self, sent_ms: u64) -> u64 {
        self.lease.until(sent_ms)
    }

    /// Whether the work may start under a lease until `lease_until`: only
    /// with two renewal intervals of it left.
    pub fn may_start(&self, now_ms: u64, lease_until: u64) -> bool {
        now_ms + 2 * self.lease.tick_ms() <= lease_until
    }

    /// Whether a start write sent now ([`cond::UNSTARTED`], with the lease
    /// [`Lease::until`] now) may start the work: else the claim is released
    /// and the event given back ([`GiveBack::LeaseTooShort`]).
    pub fn may_start_now(&self, now_ms: u64) -> bool {
        self.may_start(now_ms, self.lease.until(now_ms))
    }

    /// What the start write came to, from the record read after it was
    /// refused or unanswered (a start answered `Done` is [`Begun::Started`]
    /// with the attempts it wrote and [`Lease::until`] its sending).
    pub fn begun(&self, view: Option<&TaskView>) -> Begun {
        match view {
            Some(v) if cond::owned(v, &self.claim_id) && cond::started(v, &self.claim_id) => {
                Begun::Started {
                    number: v.attempts,
                    lease_until: v.lease_until.unwrap_or(0),
                }
            }
            Some(v) if cond::owned(v, &self.claim_id) => Begun::NotStarted,
            // Canceled, given up on, or taken over (or gone): not this
            // claim's to run. A start that landed before stays counted: that
            // attempt started, and was ended before its work ran.
            _ => Begun::NotOurs,
        }
    }
}

/// Where the start write left a claimed delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Begun {
    /// It landed: the work starts as attempt `number`, leased until
    /// `lease_until`.
    Started { number: u32, lease_until: u64 },
    /// It did not land: release the claim ([`cond::UNSTARTED`]) and give the
    /// event back.
    NotStarted,
    /// The task is no longer this claim's: nothing to do.
    NotOurs,
}

/// While the work runs: when to wake, and what to do then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Watch {
    /// Renew until `until_ms`; give the renewal at most `timeout_ms`, so that
    /// its answer (or its absence) is known before the stop point.
    Renew { until_ms: u64, timeout_ms: u64 },
    /// Stop the work now: the lease (or the invocation) is about to end.
    Stop,
}

impl Attempt {
    /// The stop point of a lease until `lease_until`: one renewal interval
    /// before it ends, or before the invocation's deadline.
    pub fn stop_at(&self, lease_until: u64) -> u64 {
        lease_until
            .min(self.lease.deadline_ms)
            .saturating_sub(self.lease.tick_ms())
    }

    /// When the watcher next wakes: a tick from its last renewal, and never
    /// past the stop point.
    pub fn wake_at(&self, now_ms: u64, lease_until: u64) -> u64 {
        (now_ms + self.lease.tick_ms()).min(self.stop_at(lease_until))
    }

    /// What the watcher does on waking at `now_ms`.
    pub fn on_wake(&self, now_ms: u64, lease_until: u64) -> Watch {
        let stop_at = self.stop_at(lease_until);
        if now_ms >= stop_at {
            return Watch::Stop;
        }
        Watch::Renew {
            until_ms: self.lease.until(now_ms),
            timeout_ms: stop_at - now_ms,
        }
    }

    /// The lease after a renewal sent at `sent_ms` landed (`Done`); any
    /// other outcome keeps the old one (a refusal stops the work: the task is
    /// no longer this attempt's).
    pub fn renewed(&self, lease_until: u64, sent_ms: u64) -> u64 {
        lease_until.max(self.lease.until(sent_ms))
    }
}

// --- the end of an attempt ----------------------------------------------------------------

/// How the work of an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WorkEnd {
    Succeeded,
    /// It failed; `retryable`: a retry could help.
    Failed {
        retryable: bool,
    },
    /// It panicked: a retry could help.
    Panicked,
}

/// What the finish writes (condition [`cond::OWNED`]) and how the
/// invocation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `succeeded`, with the result; the invocation succeeds.
    Succeeded,
    /// `queued` again with the error, `retry_at`; the invocation fails so
    /// that Lambda retries it.
    RetryLater { retry_at: u64 },
    /// `failed` for good; `function_error`: the invocation fails (Lambda's
    /// retries are spent, so its destination record follows), else it
    /// succeeds (the work failed for good: no retry can help).
    Failed { function_error: bool },
}

/// The verdict on attempt number `attempt` (1 for the first) ending at
/// `now_ms`, with Lambda retrying a failed event `max_retries` times.
pub fn verdict(end: &WorkEnd, attempt: u32, max_retries: u32, now_ms: u64) -> Verdict {
    match end {
        WorkEnd::Succeeded => Verdict::Succeeded,
        WorkEnd::Failed { retryable: false } => Verdict::Failed {
            function_error: false,
        },
        WorkEnd::Failed { retryable: true } | WorkEnd::Panicked if attempt <= max_retries => {
            Verdict::RetryLater {
                retry_at: now_ms + RETRY_PAUSE_MS * u64::from(attempt.max(1)),
            }
        }
        WorkEnd::Failed { retryable: true } | WorkEnd::Panicked => Verdict::Failed {
            function_error: true,
        },
    }
}

#[cfg(test)]
mod tests;
