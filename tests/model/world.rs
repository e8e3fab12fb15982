//! The model's state: the tasks table, Lambda's queue of task events and its
//! failure records, the function's processes (each an invocation, with its
//! own clock) and the history the properties read.

use async_api::tasks::TaskStatus;
use async_api::tasks::lease::Lease;
use async_api::tasks::protocol::{
    Attempt, CLOCK_SKEW_MS, KeyView, Start, TaskView, Verdict, WRITE_LANDS_WITHIN_MS, WorkEnd,
    Wrote,
};

/// Epoch milliseconds of the model's clock.
pub type Ms = u64;

/// The bounds and the times of the world; every duration in ms.
#[derive(Clone, Debug)]
pub struct Config {
    /// One entry per `POST /async` the caller may send: whether it carries
    /// the (one) Idempotency-Key. Each may come at any moment.
    pub posts: Vec<bool>,
    /// Invocations Lambda starts in all (first deliveries, retries,
    /// duplicates): past it, an event waits for its maximum age.
    pub deliveries: u8,
    /// Extra copies of an event Lambda may deliver (at-least-once).
    pub dups: u8,
    /// Processes killed at any step (beside Lambda's kill at a deadline).
    pub crashes: u8,
    /// Calls that fail: the request lands at once, later or never, and the
    /// caller sees an error (a lost answer, a throttle, a timeout); or a try
    /// the SDK gives up on at its attempt timeout, which may still land up to
    /// `WRITE_LANDS_WITHIN_MS` after its call was sent, after the next try
    /// (DynamoDB applies a request when it reaches it).
    pub faults: u8,
    /// Whether a try the SDK gave up on may land at any instant until its
    /// bound; otherwise at any instant while the SDK's next try is on its
    /// way, or at the bound itself (the latest it may land; see
    /// `stale_to_bound`).
    pub stale_anytime: bool,
    /// Whether the environment may also take the paths of the
    /// counterexamples found and not yet fixed (`check::known`).
    pub known: bool,
    /// `DELETE /tasks/{id}` calls, each at any moment.
    pub cancels: u8,
    /// Lambda's `MaximumRetryAttempts` = `TASK_MAX_RETRY_ATTEMPTS`.
    pub max_retries: u32,
    /// How long a try of a call (a DynamoDB request, the `Invoke`) may take,
    /// from its sending to its answer's arrival (or its failure): the SDK's
    /// attempt timeout. A call's tries all go within `WRITE_LANDS_WITHIN_MS`
    /// (its operation timeout) of its sending, and a try the SDK gave up on
    /// lands by then or never: the protocol's assumption.
    pub latency: Ms,
    /// The offsets a process's clock may have from true time (each process
    /// draws one): differences stay below `CLOCK_SKEW_MS`.
    pub offsets: Vec<Ms>,
    /// The same for the processes that serve POST and DELETE.
    pub post_offsets: Vec<Ms>,
    /// How many processes may draw an offset other than 0.
    pub skewed: u8,
    /// The lease of every delivery: renewal interval and span.
    pub tick: Ms,
    pub span: Ms,
    /// Invocation timeouts: a task delivery, an HTTP request (its deadline
    /// is the task's `answer_by`).
    pub delivery_timeout: Ms,
    pub post_timeout: Ms,
    /// `RESERVATION_HOLD` of an Idempotency-Key.
    pub hold: Ms,
    /// Lambda's maximum event age; the backstop reads a task `failed` once
    /// it was created more than `max_age + margin` ago (the horizon). The
    /// margin outlasts a POST and a delivery and a write's landing
    /// (`Config::check`), so that only a task resent late is ever cut short
    /// by `Attempt::narrowed`.
    pub max_age: Ms,
    pub margin: Ms,
    /// How the work of an attempt may end.
    pub outcomes: Vec<WorkEnd>,
    /// The environment's own choices happen at the instants that matter to
    /// them: a request comes at the start, as a key's hold ends, when a
    /// write changed the table, near the backstop, or once all is quiet;
    /// Lambda delivers or duplicates an event when it becomes pending, when
    /// a write changed the table, or as the task's lease lapses; the work
    /// returns, and a process crashes, when the process acts. And on a grid
    /// of this many ms (0: no grid).
    pub grid: Ms,
    /// Only the properties whose names start with one of these (all when
    /// empty): for hunting one kind of counterexample.
    pub only: Vec<String>,
}

impl Config {
    /// How long after its creation a task's event can still be delivered
    /// (`backstop_horizon_ms`).
    pub fn horizon(&self) -> Ms {
        self.max_age + self.margin
    }

    /// `undeliverable_before_ms` at `now`: the backstop's cutoff, as a
    /// reader applies it.
    pub fn cutoff(&self, now: Ms) -> Ms {
        now.saturating_sub(self.horizon())
    }

    /// The last instant (by the writer's clock) at which a write with a
    /// cutoff (`protocol::write_cutoff`: a claim, a DELETE) may still be sent
    /// for a task created at `created`, and the narrowed deadline of its
    /// attempts (`Attempt::narrowed`).
    pub fn last_write(&self, created: Ms) -> Ms {
        (created + self.horizon()).saturating_sub(WRITE_LANDS_WITHIN_MS + CLOCK_SKEW_MS)
    }

    pub fn keyed(&self) -> bool {
        self.posts.iter().any(|keyed| *keyed)
    }

    /// Whether a try the SDK gave up on may also land as late as its bound
    /// (`WRITE_LANDS_WITHIN_MS` after its call was sent): where a write may
    /// be sent near a cutoff (a DELETE, or the claims of an event a keyed
    /// retry sends again late). Elsewhere every write is sent long before
    /// any cutoff (`Config::check`'s margin), and it lands while the next
    /// try is on its way, or never (or, with `stale_anytime`, at any instant
    /// until its bound).
    pub fn stale_to_bound(&self) -> bool {
        self.stale_anytime || self.cancels > 0 || self.keyed()
    }

    /// Checks what the protocol assumes of its parameters.
    pub fn check(&self) {
        let all: Vec<Ms> = self
            .offsets
            .iter()
            .chain(&self.post_offsets)
            .copied()
            .collect();
        for a in &all {
            for b in &all {
                assert!(
                    a.abs_diff(*b) < CLOCK_SKEW_MS,
                    "clock skew within CLOCK_SKEW_MS"
                );
            }
        }
        assert!(
            self.tick > CLOCK_SKEW_MS,
            "the protocol assumes a tick above the skew"
        );
        assert!(self.span >= 3 * self.tick);
        assert!(!self.outcomes.is_empty() && !self.offsets.is_empty());
        assert!(
            self.latency <= WRITE_LANDS_WITHIN_MS,
            "the protocol assumes a write lands within WRITE_LANDS_WITHIN_MS"
        );
        assert!(
            self.margin
                > self.post_timeout + self.delivery_timeout + WRITE_LANDS_WITHIN_MS + CLOCK_SKEW_MS,
            "the backstop's margin outlasts a POST, a delivery and a write's landing"
        );
    }
}

/// What the tasks table holds of a task besides its [`TaskView`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Task {
    pub view: TaskView,
    pub result: bool,
    pub error: bool,
    /// The claim whose finish landed (`finished_by`).
    pub finished_by: Option<String>,
}

/// What the properties need to know of a task's past.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TaskHist {
    /// Attempts that started the work.
    pub started: u8,
    /// A request answered a 5xx of the function after writing or sending it.
    pub told_5xx: bool,
    /// Requests answered 202 with it (first answer or replay).
    pub told_202: u8,
    /// A watcher stopped the work at its stop point.
    pub stopped: bool,
    /// Lambda accepted an event of it.
    pub accepted: bool,
    /// The first final status a reader was shown.
    pub first_final: Option<TaskStatus>,
    /// A change of stored or shown status outside `protocol::TRANSITIONS`.
    pub bad_transition: Option<(Option<TaskStatus>, TaskStatus)>,
}

/// A task id of the model: `t0`, `t1`...
pub fn task_id(n: u8) -> String {
    format!("t{n}")
}

pub fn task_no(id: &str) -> u8 {
    id.trim_start_matches('t')
        .parse()
        .expect("a task id of the model")
}

/// A claim id (one per delivery): `c0`, `c1`...
pub fn claim_id(n: u8) -> String {
    format!("c{n}")
}

/// A key reservation (one per request): `r0`, `r1`...
pub fn reservation(n: u8) -> String {
    format!("r{n}")
}

/// The normalised request every POST of the model sends.
pub const REQUEST: &str = r#"{"delay_ms":1000}"#;

/// What a delivery made of its start write (`worker::start`), as far as it
/// got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StartEnd {
    /// Not sent, or not settled yet.
    #[default]
    Open,
    /// The work ran.
    Ran,
    /// Known to have landed with fewer than two ticks of its lease left,
    /// and the renewal (`worker::two_ticks_ahead`) did not give them back:
    /// it was not sent (the stop point had come), failed, timed out at the
    /// stop point, landed too late, or was refused. The work never began.
    Late,
    /// Refused or failed, then the read found the task no longer this
    /// claim's (`Begun::NotOurs`).
    NotOurs,
    /// Refused or failed, then the read failed: released.
    ReadFailed,
    /// Refused or failed, then the read found it unstarted
    /// (`Begun::NotStarted`): released.
    NotStarted,
    /// The delivery's process died (a crash, Lambda's kill) after sending it
    /// and before the work began.
    Died,
}

/// A claim's history (one per delivery): how often its claim, start and
/// release landed, and what its delivery made of its start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClaimHist {
    pub task: u8,
    pub landed: u8,
    /// Start writes of this claim that landed (each counted in `attempts`).
    pub starts: u8,
    pub released: u8,
    /// A try of its start call failed or lost its answer, or the call got
    /// no answer at all (its process died).
    pub start_unanswered: bool,
    pub start: StartEnd,
    /// The work began under a renewal's lease (the start's had fewer than
    /// two ticks left).
    pub began_renewed: bool,
}

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

/// A copy of a task event in Lambda's asynchronous queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub task: u8,
    /// When Lambda accepted it: its age counts from here.
    pub accepted: Ms,
    /// Invocations of it so far.
    pub invocations: u8,
    /// When it last became pending (or was delivered).
    pub since: Ms,
    pub state: EventState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventState {
    /// Waiting for a delivery (first, or a retry).
    Pending,
    InFlight,
    Done,
    /// Given up on: its failure record was sent.
    GivenUp,
}

/// A record on the failure queue (the on-failure destination).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub task: u8,
    /// A consumer is handling it.
    pub busy: bool,
    /// Consumed (acknowledged).
    pub done: bool,
}

/// What is left of each bound.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Left {
    pub posts: u8,
    pub deliveries: u8,
    pub dups: u8,
    pub crashes: u8,
    pub faults: u8,
    pub cancels: u8,
    pub skewed: u8,
}

/// The world.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    /// True time.
    pub t: Ms,
    /// The tasks table: task `n` at index `n` (`None`: not written yet).
    pub tasks: Vec<Option<Task>>,
    pub hist: Vec<TaskHist>,
    /// The Idempotency-Key's record.
    pub key: Option<KeyView>,
    pub procs: Vec<Proc>,
    pub claims: Vec<ClaimHist>,
    pub events: Vec<Event>,
    pub records: Vec<Record>,
    pub orphans: Vec<Orphan>,
    pub left: Left,
    /// `Config::latency` (a constant of the run).
    pub latency: Ms,
    /// When a write last changed the table (only "now" or not matters).
    pub wrote_at: Ms,
}

/// The instant the model starts at (a creation time of 0 means "unknown"
/// to the backstop).
pub const T0: Ms = 1_000;

impl World {
    pub fn new(cfg: &Config) -> Self {
        World {
            t: T0,
            tasks: Vec::new(),
            hist: Vec::new(),
            key: None,
            procs: Vec::new(),
            claims: Vec::new(),
            events: Vec::new(),
            records: Vec::new(),
            orphans: Vec::new(),
            left: Left {
                posts: cfg.posts.len() as u8,
                deliveries: cfg.deliveries,
                dups: cfg.dups,
                crashes: cfg.crashes,
                faults: cfg.faults,
                cancels: cfg.cancels,
                skewed: cfg.skewed,
            },
            latency: cfg.latency,
            wrote_at: T0,
        }
    }

    /// A fresh task id (`Uuid::new_v4`).
    pub fn mint_task(&mut self) -> u8 {
        self.tasks.push(None);
        self.hist.push(TaskHist::default());
        (self.tasks.len() - 1) as u8
    }

    pub fn clock(&self, p: usize) -> Ms {
        self.t + self.procs[p].off
    }

    pub fn dlv(&self, p: usize) -> Option<&Dlv> {
        match &self.procs[p].prog {
            Prog::Delivery(d) => Some(d),
            _ => None,
        }
    }

    pub fn dlv_mut(&mut self, p: usize) -> Option<&mut Dlv> {
        match &mut self.procs[p].prog {
            Prog::Delivery(d) => Some(d),
            _ => None,
        }
    }

    /// How a reader with a true clock is shown task `n`.
    pub fn shown(&self, cfg: &Config, n: usize) -> Option<TaskStatus> {
        let task = self.tasks[n].as_ref()?;
        Some(task.view.shown_status(cfg.cutoff(self.t)))
    }
}
