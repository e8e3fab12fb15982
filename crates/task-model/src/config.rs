//! The bounds and the times of a checked world.

use async_api::tasks::protocol::{CLOCK_SKEW_MS, WRITE_LANDS_WITHIN_MS, WorkEnd};

use crate::world::Ms;

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
    /// Whether the failed calls are only lost answers: a write that lands
    /// and whose answer is lost (the SDK then tries again, or not), a read
    /// that is never answered; no throttle, no write that never lands, no
    /// try given up on that lands later.
    pub lost_only: bool,
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
