//! The function's processes, each a step at a time: what the drivers
//! (`src/tasks/http.rs`, `idempotency.rs`, `worker.rs`, `destination.rs`)
//! do with each answer, deciding through the same `protocol` functions. A
//! step reads the answer of the process's last call (if any), decides at the
//! process's own clock, and sends its next call, sleeps, or ends.

use async_api::tasks::protocol::{
    self, Adopt, Begun, Delivery, KeyNext, Start, Verdict, Watch, WorkEnd, Wrote,
};

use crate::calls::{Io, Orphan, Req, Resp};
use crate::config::Config;
use crate::invocation::{DlvPc, Post, PostPc, Prog};
use crate::world::{
    EventState, Ms, REQUEST, Record, StartEnd, World, claim_id, reservation, task_id, task_no,
};

mod delivery;
mod hold;
mod post;
pub use delivery::work_ends;
use delivery::{orphan_call, step_delivery};
use post::step_post;

/// How many times `reserve` tries (`RESERVE_TRIES`).
const RESERVE_TRIES: u8 = 3;

fn send(w: &mut World, p: usize, req: Req) {
    w.procs[p].io = Io::InFlight {
        req,
        at: w.t,
        by: w.t + w.latency,
        sent: w.t,
    };
}

/// The answer of process `p`'s last call, taken.
fn answer(w: &mut World, p: usize) -> Option<Resp> {
    match std::mem::replace(&mut w.procs[p].io, Io::Idle) {
        Io::Answered(resp) => Some(resp),
        Io::Idle => None,
        in_flight => {
            w.procs[p].io = in_flight;
            None
        }
    }
}

fn wrote(resp: Option<Resp>) -> Wrote {
    match resp {
        Some(Resp::Wrote(wrote)) => wrote,
        Some(Resp::Claimed(_) | Resp::Started(_)) => Wrote::Done,
        other => panic!("a write's answer, not {other:?}"),
    }
}

/// Whether process `p` can take a step now; `forced`: it must before time
/// moves on. A process computes in no time: it acts as soon as it wakes
/// (the watcher's wake-up, a waiting delivery's, a renewal's timeout) or is
/// started; an answer reaches it at any instant of its call's latency.
pub fn ready(w: &World, p: usize) -> (bool, bool) {
    let proc = &w.procs[p];
    if !proc.alive {
        return (false, false);
    }
    let clock = w.clock(p);
    match (&proc.io, &proc.prog) {
        (Io::Answered(..), _) => (true, true),
        (Io::InFlight { .. }, Prog::Delivery(d)) => match d.pc {
            DlvPc::Renew { timeout_at, .. } | DlvPc::BeginLease { timeout_at, .. } => {
                (clock >= timeout_at, clock >= timeout_at)
            }
            _ => (false, false),
        },
        (Io::InFlight { .. }, _) => (false, false),
        (Io::Idle, Prog::Delivery(d)) => {
            let due = match d.pc {
                DlvPc::Sleep { until } => clock >= until,
                DlvPc::Watch { lease_until, now } => clock >= d.attempt.wake_at(now, lease_until),
                _ => true,
            };
            (due, due)
        }
        (Io::Idle, _) => (true, true),
    }
}

/// The instant (true time) at which process `p` next becomes ready by
/// itself, if it waits for its clock.
pub fn wakes_at(w: &World, p: usize) -> Option<Ms> {
    let proc = &w.procs[p];
    let Prog::Delivery(d) = &proc.prog else {
        return None;
    };
    let own = match (&proc.io, &d.pc) {
        (Io::Idle, DlvPc::Sleep { until }) => *until,
        (Io::Idle, DlvPc::Watch { lease_until, now }) => d.attempt.wake_at(*now, *lease_until),
        (
            Io::InFlight { .. },
            DlvPc::Renew { timeout_at, .. } | DlvPc::BeginLease { timeout_at, .. },
        ) => *timeout_at,
        _ => return None,
    };
    Some(own.saturating_sub(proc.off))
}

/// Whether process `p` has something of its own at this instant: a wake-up,
/// or a call that lands now at the latest.
pub fn acts_now(w: &World, p: usize) -> bool {
    ready(w, p).1
        || wakes_at(w, p) == Some(w.t)
        || matches!(w.procs[p].io, Io::InFlight { at, by, .. } if w.t == at || w.t == by)
}

/// Whether process `p` is ready for a step that starts or stops no work
/// (every step but the watcher's, its renewals' and a start's).
pub fn invisible_step(w: &World, p: usize) -> bool {
    ready(w, p).0
        && !matches!(&w.procs[p].prog, Prog::Delivery(d) if matches!(d.pc, DlvPc::Watch { .. } | DlvPc::Renew { .. } | DlvPc::BeginLease { .. }))
}

/// Process `p` takes its step.
pub fn step(w: &mut World, cfg: &Config, p: usize) {
    match w.procs[p].prog.clone() {
        Prog::Post(post) => step_post(w, cfg, p, post),
        Prog::Delivery(_) => step_delivery(w, cfg, p),
        Prog::Cancel { task } => match answer(w, p) {
            None => {
                // `cancel_task`: a cancel that could land after the backstop
                // is refused.
                let cutoff = protocol::write_cutoff(w.clock(p), cfg.horizon());
                send(w, p, Req::Cancel { task, cutoff })
            }
            Some(_) => end(w, p),
        },
        Prog::Consumer { record } => match answer(w, p) {
            None => {
                let task = w.records[record as usize].task;
                send(w, p, Req::GiveUp { task })
            }
            // Done or refused: acknowledged. An error: a batch item failure,
            // SQS delivers the record again.
            Some(resp) => {
                let acked = wrote(Some(resp)) != Wrote::Unknown;
                let rec = &mut w.records[record as usize];
                rec.busy = false;
                rec.done = acked;
                end(w, p);
            }
        },
        Prog::Gone => unreachable!(),
    }
}

fn end(w: &mut World, p: usize) {
    let proc = &mut w.procs[p];
    proc.alive = false;
    proc.io = Io::Idle;
    proc.prog = Prog::Gone;
    // Nothing of it matters any more: ended processes look alike.
    proc.off = 0;
    proc.deadline = 0;
}

/// Process `p` dies (a crash, or Lambda's kill at its deadline): its work
/// stops at once, its call in flight may still land.
pub fn kill(w: &mut World, cfg: &Config, p: usize) {
    orphan_call(w, p);
    match w.procs[p].prog.clone() {
        Prog::Delivery(d) => {
            // A start sent and not settled: it may have landed, or land yet.
            if matches!(
                d.pc,
                DlvPc::Start { .. } | DlvPc::StartRead { .. } | DlvPc::BeginLease { .. }
            ) {
                let claim = &mut w.claims[d.no as usize];
                claim.start_unanswered = true;
                if claim.start == StartEnd::Open {
                    claim.start = StartEnd::Died;
                }
            }
            end(w, p);
            invocation_ended(w, cfg, d.event, false);
        }
        Prog::Consumer { record } => {
            w.records[record as usize].busy = false;
            end(w, p);
        }
        // A POST's caller gets the gateway's error, not the function's.
        _ => end(w, p),
    }
}

/// Lambda's retry policy after an invocation of event copy `e` ended.
pub fn invocation_ended(w: &mut World, cfg: &Config, e: u8, ok: bool) {
    let t = w.t;
    let event = &mut w.events[e as usize];
    if ok {
        event.state = EventState::Done;
        return;
    }
    let retries_left = u32::from(event.invocations) <= cfg.max_retries;
    if retries_left && t <= event.accepted + cfg.max_age {
        event.state = EventState::Pending;
        event.since = t;
    } else {
        event.state = EventState::GivenUp;
        let task = event.task;
        w.records.push(Record {
            task,
            busy: false,
            done: false,
        });
    }
}

// --- POST /async --------------------------------------------------------------------------
