//! The model's state: the tasks table, Lambda's queue of task events and its
//! failure records, the function's invocations ([`crate::invocation`]) and
//! the history the properties read.

use async_api::tasks::TaskStatus;
use async_api::tasks::protocol::{KeyView, TaskView};

use crate::calls::Orphan;
use crate::config::Config;
use crate::invocation::{Dlv, Proc, Prog};

/// Epoch milliseconds of the model's clock.
pub type Ms = u64;

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
