//! `POST /async` and its `Idempotency-Key`: what the request does after each of its calls.

use super::*;

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

/// After a keyed request whose task can never run by its own doing releases
/// the key (condition: the reservation is still its own). Done: no later
/// request can carry the task on (a retry reserves the key afresh, with a
/// task of its own), so the 5xx is safe. Refused: the request outlived its
/// hold and another took the key over, with this task, which it may carry on
/// (a record this request wrote, its answer lost, is resumed): whether the
/// task runs cannot be told, and a 5xx task must never run, so 202. Unknown:
/// read the key ([`after_key_settle`]).
pub fn after_key_release(wrote: Wrote) -> Start {
    match wrote {
        Wrote::Done => Start::Refused,
        Wrote::Refused => Start::Accepted,
        Wrote::Unknown => Start::Settle,
    }
}

/// The key as read after a release whose answer was lost (`None`: the read
/// failed or found no record). Another reservation holds it: taken over,
/// 202 as for a refused release. Still this request's, in progress: the
/// release did not land (or not yet), and a request that takes the key over
/// after its hold would resume a record this request wrote (its answer lost),
/// so the task is failed first (condition [`cond::UNMARKED`]) and the 5xx
/// said only once it is known to be ([`after_mark_not_enqueued`]). Released,
/// or not known: the 5xx, as when the release is known to have landed (a
/// 202 here would answer a task no retry carries on when it had).
pub fn after_key_settle(view: Option<&KeyView>, mine: &str) -> Start {
    match view {
        Some(key) if key.reservation != mine => Start::Accepted,
        Some(key) if key.state == KeyState::InProgress => Start::MarkNotEnqueued,
        _ => Start::Refused,
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
    /// The reservation is this request's: its reservation landed, or its
    /// takeover did (the answer lost, the SDK's next try refused). Carry on
    /// with the key's task: this request's own, or, `adopted`, the task of the
    /// request it took the key over from, which may exist and run already
    /// (found by the model: handled as a fresh task, a lost answer to its
    /// record's write made that a 503 while it ran).
    Ours { task_id: String, adopted: bool },
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

/// `view`: the key record, `None` if gone; `request`: this request, `mine`
/// its reservation and `own_task` the task it reserves the key for.
pub fn after_key_read(
    view: Option<&KeyView>,
    request: &str,
    mine: &str,
    own_task: &str,
    now_ms: u64,
) -> KeyNext {
    let Some(key) = view else {
        return KeyNext::Reserve;
    };
    if key.reservation == mine {
        return KeyNext::Ours {
            task_id: key.task_id.clone(),
            adopted: key.task_id != own_task,
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
