//! The model's state: the tasks table, Lambda's queue of task events and its
//! failure records, the function's processes (each an invocation, with its
//! own clock) and the history the properties read.

use async_api::tasks::TaskStatus;
use async_api::tasks::lease::Lease;
use async_api::tasks::protocol::{
    Attempt, CLOCK_SKEW_MS, KeyView, Start, TaskView, Verdict, WorkEnd, Wrote,
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
    /// caller sees an error (a lost answer, a throttle, a timeout).
    pub faults: u8,
    /// Whether the environment may also take the paths of the
    /// counterexamples found and not yet fixed (`check::known`; and a try
    /// the SDK gave up on, at its attempt timeout, landing after the next
    /// try: DynamoDB applies a request when it reaches it).
    pub known: bool,
    /// `DELETE /tasks/{id}` calls, each at any moment.
    pub cancels: u8,
    /// Lambda's `MaximumRetryAttempts` = `TASK_MAX_RETRY_ATTEMPTS`.
    pub max_retries: u32,
    /// How long a call (a DynamoDB request, the `Invoke`) may take, from its
    /// sending to its answer's arrival (or its failure).
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
    /// it was created more than `max_age + margin` ago.
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
    /// `undeliverable_before_ms` at `now`: the backstop's cutoff.
    pub fn cutoff(&self, now: Ms) -> Ms {
        now.saturating_sub(self.max_age + self.margin)
    }

    pub fn keyed(&self) -> bool {
        self.posts.iter().any(|keyed| *keyed)
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

/// A claim's history: how often it landed and was released, and whether
/// its attempt started the work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClaimHist {
    pub task: u8,
    pub landed: u8,
    pub released: u8,
    pub started: bool,
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
    Release {
        task: u8,
        claim: u8,
    },
    Uncount {
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
    /// The claim landed: `attempts` as it returned them.
    Claimed(u32),
    /// A task read; `None`: the read failed.
    View(Option<Option<TaskView>>),
    /// A key read; `None`: the read failed.
    Key(Option<Option<KeyView>>),
    /// The `finished_by` read; `None` when absent or the read failed.
    FinishedBy(Option<String>),
}

/// A process's call. A call lands (or fails) at once (at the instant it
/// was sent, `at`) or as late as its latency allows (`by`, `at` plus
/// `Config::latency`), and its answer is read the instant it lands: the two
/// extremes of a latency, between which the protocol's decisions change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Io {
    Idle,
    InFlight { req: Req, at: Ms, by: Ms },
    Answered(Resp),
}

/// A request whose caller stopped waiting (it failed, timed out, or its
/// process died): it may still land, until `until` (its sending plus
/// `Config::latency`), or never.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Orphan {
    pub req: Req,
    /// When it was dropped: it may land at once, or at `until`.
    pub at: Ms,
    pub until: Ms,
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
}

/// A delivery of a task event (`src/tasks/worker.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dlv {
    pub task: u8,
    /// Its number: names its claim.
    pub no: u8,
    /// The event copy it delivers.
    pub event: u8,
    pub attempt: Attempt,
    /// `attempts` of the last read.
    pub attempts: u32,
    /// The attempt's number, once it holds the task.
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
    /// `hold`'s read failed after a failed claim: the release.
    /// `release(.., counted)`; then the delivery ends (`ok`: without an error).
    Release {
        counted: bool,
        ok: bool,
    },
    Uncount {
        ok: bool,
    },
    Sleep {
        until: Ms,
    },
    Adopt,
    RenewToStart {
        lease_until: Ms,
        sent: Ms,
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
                cutoff_ms: cfg.cutoff(start),
            },
            attempts: 0,
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
