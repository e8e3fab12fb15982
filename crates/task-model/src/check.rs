//! The Stateright model: the actions of the world, and the properties.

use async_api::tasks::protocol::{WRITE_LANDS_WITHIN_MS, WorkEnd};
use stateright::{Model, Property};

use crate::calls::{Io, Req, failed};
use crate::config::Config;
use crate::invocation::{Dlv, Post, PostPc, Proc, Prog};
use crate::procs;
use crate::properties;
use crate::table;
use crate::time;
use crate::world::{EventState, Ms, Record, World};

/// What a failed call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// It lands and its answer arrives.
    Ok,
    /// It lands and its answer is lost: the caller sees an error.
    Lost,
    /// It never lands (throttled, refused before landing): the caller sees
    /// an error.
    Dropped,
    /// It lands, its answer is lost, and the SDK tries again.
    LostRetry,
    /// It does not land, and the SDK tries again.
    DroppedRetry,
    /// The SDK gives up on this try and tries again while the try is still
    /// on its way: it may land after the next try, as late as
    /// `WRITE_LANDS_WITHIN_MS` after the call was sent, or never (see
    /// `world::Orphan`).
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// True time moves to the next instant of interest.
    Tick,
    /// Process `p` takes its step.
    Step(u8),
    /// Process `p`'s call lands (or fails).
    Land(u8, Fate),
    /// A dropped request lands (true) or is lost (false).
    Orphan(u8, bool),
    /// Process `p` crashes.
    Crash(u8),
    /// Lambda ends process `p` at its deadline.
    Kill(u8),
    /// The work of delivery `p` returns (the config's outcome `i`).
    WorkEnds(u8, u8),
    /// The caller sends its next POST, served by a process with clock offset `off`.
    Post(Ms),
    /// Lambda delivers event copy `e` to a new process with offset `off`.
    Deliver(u8, Ms),
    /// Lambda's queue holds a duplicate of event copy `e`.
    Dup(u8),
    /// Event copy `e` is past its maximum age: its failure record is sent.
    AgeOut(u8),
    /// The failure queue delivers record `r` to a process with offset `off`.
    Consume(u8, Ms),
    /// DELETE of task `n` served by a process with offset `off`.
    Cancel(u8, Ms),
}

pub struct TaskModel {
    pub cfg: Config,
}

impl TaskModel {
    pub fn new(cfg: Config) -> Self {
        cfg.check();
        TaskModel { cfg }
    }

    fn spawn(&self, w: &mut World, off: Ms, timeout: Ms, prog: Prog) {
        if off != 0 {
            w.left.skewed -= 1;
        }
        w.procs.push(Proc {
            off,
            deadline: w.t + timeout,
            alive: true,
            io: Io::Idle,
            prog,
        });
    }
}

impl Model for TaskModel {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        vec![World::new(&self.cfg)]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Action>) {
        let cfg = &self.cfg;
        let t = w.t;
        // When the environment may act (see `Config::grid`): on the grid, or
        // at the instant a write changed the table.
        let on_grid = (cfg.grid > 0 && t.is_multiple_of(cfg.grid)) || t == w.wrote_at;
        // A partial-order reduction: a process's step that the properties
        // cannot see (it only decides and sends; no work starts or stops in
        // it) commutes with every other process's action, and a crash just
        // after it covers a crash just before (its call then never lands):
        // such a step, when one is due, is taken first and alone.
        if let Some(p) = (0..w.procs.len()).find(|p| procs::invisible_step(w, *p)) {
            actions.push(Action::Step(p as u8));
            return;
        }
        for (p, proc) in w.procs.iter().enumerate() {
            if !proc.alive {
                continue;
            }
            let p8 = p as u8;
            if t >= proc.deadline {
                actions.push(Action::Kill(p8));
            }
            if procs::ready(w, p).0 {
                actions.push(Action::Step(p8));
            }
            if let Io::InFlight { req, at, by, sent } = &proc.io
                && (t == *at || t >= *by)
            {
                actions.push(Action::Land(p8, Fate::Ok));
                // A call fails as late as its latency allows (a timeout, a
                // lost answer, a throttle after the SDK's backoff); the SDK
                // tries again while its next try ends within the operation's
                // timeout (`WRITE_LANDS_WITHIN_MS`).
                if w.left.faults > 0 && t >= *by {
                    if req.is_read() || !cfg.lost_only {
                        actions.push(Action::Land(p8, Fate::Dropped));
                    }
                    if !req.is_read() {
                        actions.push(Action::Land(p8, Fate::Lost));
                        if t + cfg.latency <= sent + WRITE_LANDS_WITHIN_MS {
                            actions.push(Action::Land(p8, Fate::LostRetry));
                            if !cfg.lost_only {
                                actions.push(Action::Land(p8, Fate::DroppedRetry));
                                actions.push(Action::Land(p8, Fate::Stale));
                            }
                        }
                    }
                }
            }
            // A crash at any step: just before or after one of its own.
            if w.left.crashes > 0 && procs::acts_now(w, p) {
                actions.push(Action::Crash(p8));
            }
            if let Prog::Delivery(d) = &proc.prog
                && d.working
                && procs::acts_now(w, p)
            {
                for i in 0..cfg.outcomes.len() {
                    actions.push(Action::WorkEnds(p8, i as u8));
                }
            }
        }
        for (i, orphan) in w.orphans.iter().enumerate() {
            if t <= orphan.dense_until || t == orphan.at || t >= orphan.until {
                actions.push(Action::Orphan(i as u8, true));
            }
            actions.push(Action::Orphan(i as u8, false));
        }
        // A new request comes at the start, on the grid, as the key's hold
        // ends, or once all is quiet.
        let quiet = !time::active(w, cfg);
        let hold_ends = w.key.as_ref().is_some_and(|k| {
            cfg.post_offsets
                .iter()
                .any(|off| t + off == k.hold_until + 1)
        });
        if w.left.posts > 0 && (on_grid || quiet || hold_ends || w.procs.is_empty()) {
            for off in offsets(w, &cfg.post_offsets) {
                actions.push(Action::Post(off));
            }
        }
        for (e, event) in w.events.iter().enumerate() {
            let e8 = e as u8;
            let young = t <= event.accepted + cfg.max_age;
            let now = on_grid || t == event.since || lapses_now(w, cfg, event.task);
            match event.state {
                EventState::Pending if young && now && w.left.deliveries > 0 => {
                    for off in offsets(w, &cfg.offsets) {
                        actions.push(Action::Deliver(e8, off));
                    }
                }
                EventState::Pending if !young => actions.push(Action::AgeOut(e8)),
                EventState::InFlight | EventState::Done if young && now && w.left.dups > 0 => {
                    actions.push(Action::Dup(e8))
                }
                _ => {}
            }
        }
        for (r, record) in w.records.iter().enumerate() {
            // The consumer reads no clock.
            if !record.busy && !record.done {
                actions.push(Action::Consume(r as u8, 0));
            }
        }
        if w.left.cancels > 0 {
            for (n, task) in w.tasks.iter().enumerate() {
                // The last instant, by its clock, at which a DELETE may
                // still cancel the task, and the first at which it may not.
                let backstop = task.as_ref().is_some_and(|task| {
                    let last = cfg.last_write(task.view.created_ms);
                    cfg.post_offsets
                        .iter()
                        .any(|off| t + off == last || t + off == last + 1)
                });
                if task.is_some() && (on_grid || quiet || backstop) {
                    for off in offsets(w, &cfg.post_offsets) {
                        actions.push(Action::Cancel(n as u8, off));
                    }
                }
            }
        }
        if !time::blocked(w) && time::next_instant(w, cfg).is_some() {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, before: &World, action: Action) -> Option<World> {
        let cfg = &self.cfg;
        let mut w = before.clone();
        match action {
            Action::Tick => {
                w.t = time::next_instant(&w, cfg)?;
                // Instants of the past matter only as "not now".
                for event in &mut w.events {
                    event.since = w.t - 1;
                }
                for orphan in &mut w.orphans {
                    orphan.at = w.t - 1;
                    if orphan.dense_until < w.t {
                        orphan.dense_until = 0;
                    }
                }
                w.wrote_at = w.t - 1;
            }
            Action::Step(p) => procs::step(&mut w, cfg, p as usize),
            Action::Land(p, fate) => {
                let p = p as usize;
                let Io::InFlight { req, sent, .. } = w.procs[p].io.clone() else {
                    return None;
                };
                // The answer is read the instant it arrives: a call's latency
                // is all before its landing.
                if fate != Fate::Ok {
                    w.left.faults -= 1;
                    if let Req::Start { claim, .. } = req {
                        w.claims[claim as usize].start_unanswered = true;
                    }
                }
                if matches!(fate, Fate::Ok | Fate::Lost | Fate::LostRetry) {
                    let resp = table::land(&mut w, cfg, &req);
                    if fate == Fate::Ok {
                        w.procs[p].io = Io::Answered(resp);
                    }
                }
                if fate == Fate::Stale {
                    // Still on its way: it lands at any instant while the
                    // next try is (or, with `Config::stale_anytime`, until
                    // the call's bound), at that bound, or never.
                    let next_try = w.t + cfg.latency;
                    let bound = sent + WRITE_LANDS_WITHIN_MS;
                    w.orphans.push(crate::calls::Orphan {
                        at: w.t,
                        req: req.clone(),
                        until: if cfg.stale_to_bound() {
                            bound
                        } else {
                            next_try
                        },
                        dense_until: if cfg.stale_anytime { bound } else { next_try },
                    });
                }
                match fate {
                    Fate::Ok => {}
                    Fate::Lost | Fate::Dropped => w.procs[p].io = Io::Answered(failed(&req)),
                    Fate::LostRetry | Fate::DroppedRetry | Fate::Stale => {
                        w.procs[p].io = Io::InFlight {
                            req,
                            at: w.t,
                            by: w.t + cfg.latency,
                            sent,
                        };
                        return Some(properties::observed(cfg, before, w));
                    }
                }
                procs::step(&mut w, cfg, p);
            }
            Action::Orphan(i, lands) => {
                let orphan = w.orphans.remove(i as usize);
                if lands {
                    table::land(&mut w, cfg, &orphan.req);
                }
            }
            Action::Crash(p) => {
                w.left.crashes -= 1;
                procs::kill(&mut w, cfg, p as usize);
            }
            Action::Kill(p) => procs::kill(&mut w, cfg, p as usize),
            Action::WorkEnds(p, i) => {
                let end: WorkEnd = cfg.outcomes[i as usize].clone();
                procs::work_ends(&mut w, cfg, p as usize, &end);
            }
            Action::Post(off) => {
                let no = cfg.posts.len() as u8 - w.left.posts;
                w.left.posts -= 1;
                let post = Post {
                    no,
                    keyed: cfg.posts[no as usize],
                    task: 0,
                    tries: 0,
                    invoke_failed: false,
                    pc: PostPc::Begin,
                };
                self.spawn(&mut w, off, cfg.post_timeout, Prog::Post(post));
            }
            Action::Deliver(e, off) => {
                w.left.deliveries -= 1;
                let event = &mut w.events[e as usize];
                event.invocations += 1;
                event.state = EventState::InFlight;
                event.since = w.t;
                let task = event.task;
                let no = w.claims.len() as u8;
                w.claims.push(crate::world::ClaimHist {
                    task,
                    ..Default::default()
                });
                let dlv = Dlv::new(task, no, e, w.t, cfg);
                self.spawn(
                    &mut w,
                    off,
                    cfg.delivery_timeout,
                    Prog::Delivery(Box::new(dlv)),
                );
            }
            Action::Dup(e) => {
                w.left.dups -= 1;
                let mut copy = w.events[e as usize].clone();
                copy.state = EventState::Pending;
                copy.since = w.t;
                w.events.push(copy);
            }
            Action::AgeOut(e) => {
                let event = &mut w.events[e as usize];
                event.state = EventState::GivenUp;
                let task = event.task;
                w.records.push(Record {
                    task,
                    busy: false,
                    done: false,
                });
            }
            Action::Consume(r, off) => {
                w.records[r as usize].busy = true;
                self.spawn(
                    &mut w,
                    off,
                    cfg.delivery_timeout,
                    Prog::Consumer { record: r },
                );
            }
            Action::Cancel(n, off) => {
                w.left.cancels -= 1;
                self.spawn(&mut w, off, cfg.post_timeout, Prog::Cancel { task: n });
            }
        }
        Some(properties::observed(cfg, before, w))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all(&self.cfg)
    }
}

/// Whether the lease of task `n` lapses now by the clock of a new delivery.
fn lapses_now(w: &World, cfg: &Config, n: u8) -> bool {
    let Some(task) = &w.tasks[n as usize] else {
        return false;
    };
    task.view
        .lease_until
        .is_some_and(|lease| cfg.offsets.iter().any(|off| w.t + off == lease + 1))
}

/// The clock offsets a new process may draw: only 0 once `Config::skewed`
/// processes have drawn another.
fn offsets(w: &World, offsets: &[Ms]) -> Vec<Ms> {
    offsets
        .iter()
        .copied()
        .filter(|off| *off == 0 || w.left.skewed > 0)
        .collect()
}
