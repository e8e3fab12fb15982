//! One invocation of the function: its clock, deadline and call in flight,
//! and what it runs (a POST, a delivery, a DELETE, a failure record's
//! consumer), as far as it got; `crate::procs` steps it.

use async_api::tasks::lease::Lease;
use async_api::tasks::protocol::{Attempt, Start, Verdict};

use crate::calls::Io;
use crate::config::Config;
use crate::world::{Ms, claim_id};

/// One invocation of the function.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proc {
    /// Its clock reads `t + off`.
    pub off: Ms,
    /// Lambda ends the invocation at this instant (true time).
    pub deadline: Ms,
    pub alive: bool,
    pub io: Io,
    pub prog: Prog,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Prog {
    Post(Post),
    Delivery(Box<Dlv>),
    Cancel {
        task: u8,
    },
    Consumer {
        record: u8,
    },
    /// Ended: nothing of it is left but its history.
    Gone,
}

/// `POST /async` (`src/tasks/http.rs` `start`, `adopt`, `send_event`, and
/// `src/tasks/idempotency.rs` `KeyStore::reserve`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Post {
    /// Its number: names its reservation.
    pub no: u8,
    pub keyed: bool,
    /// The task it handles now.
    pub task: u8,
    /// `reserve`'s loop: tries made.
    pub tries: u8,
    /// `send_event` saw the `Invoke` fail.
    pub invoke_failed: bool,
    pub pc: PostPc,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PostPc {
    Begin,
    PutKey,
    ReadKey,
    TakeOver {
        key_task: u8,
    },
    /// `put_queued`; `adopt`: its result is ignored and the task read.
    Put {
        adopt: bool,
    },
    AdoptRead,
    Extend,
    Replace {
        new: u8,
    },
    /// `send_event` at this step.
    Send(Start),
    AnswerKey,
    ReleaseKey,
    /// The key read after a release whose answer was lost.
    SettleKey,
    /// Failing the task before a 5xx, at this step, when the key's release
    /// is not known to have landed (`enqueue::drive` from
    /// `protocol::after_key_settle`).
    Fail(Start),
}

/// A delivery of a task event (`src/tasks/worker.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dlv {
    pub task: u8,
    /// Its number: names its claim.
    pub no: u8,
    /// The event copy it delivers.
    pub event: u8,
    /// Its attempt; narrowed to the task (`Attempt::narrowed`) once claimed.
    pub attempt: Attempt,
    /// `created_ms` of the last read.
    pub created: Ms,
    /// The attempt's number, once started.
    pub number: u32,
    /// The claim's call failed (`hold`'s `claim_failed`).
    pub claim_failed: bool,
    /// The work runs.
    pub working: bool,
    pub pc: DlvPc,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DlvPc {
    Begin,
    Claim {
        sent: Ms,
    },
    Read,
    Sleep {
        until: Ms,
    },
    Adopt,
    /// The start write (`cond::UNSTARTED`), sent at `sent`.
    Start {
        sent: Ms,
    },
    /// The read after a refused or failed start (`Attempt::begun`); the
    /// start leased the task until `lease_until`.
    StartRead {
        lease_until: Ms,
    },
    /// Started with fewer than two ticks of its lease left: the renewal
    /// (`worker::two_ticks_ahead`), sent at `sent`, awaited until
    /// `timeout_at` (the stop point).
    BeginLease {
        lease_until: Ms,
        sent: Ms,
        timeout_at: Ms,
    },
    /// The release of a claim that cannot start (`cond::UNSTARTED`): after
    /// `hold`'s read failed after a failed claim, a lease too short to start,
    /// or a start that did not land or cannot be told; then the delivery
    /// ends with a function error. `reread`: after a start found unstarted,
    /// whose lease would run until this: a release not known to have landed
    /// is followed by a second read (a try of the start may have landed
    /// since), `StartReread`.
    Release {
        reread: Option<Ms>,
    },
    /// The second read after a start found unstarted whose release did not
    /// land: `Begun::Started` begins the work after all; anything else ends
    /// the delivery with a function error.
    StartReread {
        lease_until: Ms,
    },
    /// The watcher sleeps until `wake_at(now, lease_until)`.
    Watch {
        lease_until: Ms,
        now: Ms,
    },
    /// The watcher's renewal, sent at `sent`, times out at `timeout_at`.
    Renew {
        lease_until: Ms,
        sent: Ms,
        timeout_at: Ms,
    },
    Finish {
        verdict: Verdict,
    },
    FinishedBy {
        verdict: Verdict,
        refused: bool,
    },
}

impl Dlv {
    pub fn new(task: u8, no: u8, event: u8, start: Ms, cfg: &Config) -> Self {
        let lease = Lease {
            tick: std::time::Duration::from_millis(cfg.tick),
            span: std::time::Duration::from_millis(cfg.span),
            deadline_ms: start + cfg.delivery_timeout,
        };
        Dlv {
            task,
            no,
            event,
            attempt: Attempt {
                claim_id: claim_id(no),
                lease,
                horizon_ms: cfg.horizon(),
            },
            created: 0,
            number: 0,
            claim_failed: false,
            working: false,
            pc: DlvPc::Begin,
        }
    }
}
