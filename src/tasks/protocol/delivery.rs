//! A delivery of the task event: the claim, the lease, the work, and the end of an attempt.

use super::*;

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
