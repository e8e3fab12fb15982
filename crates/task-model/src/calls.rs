//! The calls of the function to DynamoDB and Lambda: a request, its answer,
//! a call in flight, and a request whose caller stopped waiting.

use async_api::tasks::protocol::{KeyView, TaskView, Verdict, Wrote};

use crate::world::Ms;

/// A request to DynamoDB or Lambda, with the values its sender computed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Req {
    PutQueued {
        task: u8,
        created: Ms,
        answer_by: Ms,
    },
    Invoke {
        task: u8,
    },
    MarkEnqueued {
        task: u8,
    },
    MarkNotEnqueued {
        task: u8,
    },
    ExtendAnswerBy {
        task: u8,
        answer_by: Ms,
    },
    Read {
        task: u8,
    },
    PutKey {
        mine: u8,
        task: u8,
        hold_until: Ms,
    },
    ReadKey,
    TakeOver {
        held_by: String,
        mine: u8,
        hold_until: Ms,
        now: Ms,
    },
    ReplaceTask {
        mine: u8,
        task: u8,
    },
    AnswerKey {
        mine: u8,
        task: u8,
    },
    ReleaseKey {
        mine: u8,
    },
    Claim {
        task: u8,
        claim: u8,
        now: Ms,
        cutoff: Ms,
        lease_until: Ms,
    },
    Renew {
        task: u8,
        claim: u8,
        until: Ms,
    },
    Start {
        task: u8,
        claim: u8,
        lease_until: Ms,
    },
    Release {
        task: u8,
        claim: u8,
    },
    Finish {
        task: u8,
        claim: u8,
        verdict: Verdict,
    },
    FinishedBy {
        task: u8,
    },
    Adopt {
        task: u8,
        now: Ms,
    },
    Cancel {
        task: u8,
        cutoff: Ms,
    },
    GiveUp {
        task: u8,
    },
}

impl Req {
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Req::Read { .. } | Req::ReadKey | Req::FinishedBy { .. }
        )
    }
}

/// An answer as its caller reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resp {
    /// A write: `Unknown` is any error (the SDK gave up).
    Wrote(Wrote),
    /// The claim landed: the record's `created_ms` as it returned it.
    Claimed(Ms),
    /// The start landed: `attempts` as it returned them.
    Started(u32),
    /// A task read; `None`: the read failed.
    View(Option<Option<TaskView>>),
    /// A key read; `None`: the read failed.
    Key(Option<Option<KeyView>>),
    /// The `finished_by` read; `None` when absent or the read failed.
    FinishedBy(Option<String>),
}

/// A process's call. A try of it lands (or fails) at once (at the instant
/// it was sent, `at`) or as late as its latency allows (`by`, `at` plus
/// `Config::latency`), and its answer is read the instant it lands: the two
/// extremes of a latency, between which the protocol's decisions change.
/// `sent`: when the call's first try was sent (its later tries, and a try
/// given up on, land within `WRITE_LANDS_WITHIN_MS` of it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Io {
    Idle,
    InFlight { req: Req, at: Ms, by: Ms, sent: Ms },
    Answered(Resp),
}

/// A request whose caller stopped waiting (it failed, timed out, or its
/// process died): it may still land, until `until`, or never. A try whose
/// caller dropped it lands at once or at its `by`; a try the SDK gave up on
/// (`Fate::Stale`) at once, at any instant until `dense_until` (see
/// `Config::stale_anytime`), or at its call's sending plus
/// `WRITE_LANDS_WITHIN_MS` (`Config::stale_to_bound`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Orphan {
    pub req: Req,
    /// When it was dropped: it may land at once, or at `until`.
    pub at: Ms,
    pub until: Ms,
    /// It may land at any instant until this one (0 once past).
    pub dense_until: Ms,
}

/// The answer a failed call gives its caller.
pub fn failed(req: &Req) -> Resp {
    match req {
        Req::Read { .. } => Resp::View(None),
        Req::ReadKey => Resp::Key(None),
        Req::FinishedBy { .. } => Resp::FinishedBy(None),
        _ => Resp::Wrote(Wrote::Unknown),
    }
}
