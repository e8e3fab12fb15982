//! Discrete time. True time `t` moves only by `Tick`, to the next instant at
//! which something can differ: a process's sleep or watcher wakes, a call
//! times out, Lambda ends an invocation, an event reaches its maximum age, a
//! decision of the protocol changes its answer (a lease lapses by some
//! process's clock, two ticks of a lease are no longer left, a request can
//! no longer mark its task, a key's hold ends, a write's cutoff no longer
//! lets it land, the backstop passes), or the optional grid. Every other
//! action happens at the instant it is taken.
//! Time cannot pass an instant at which a process must act: the watcher's
//! wake-up (the real watcher sleeps until then), its renewal's timeout,
//! Lambda's kill at a deadline, and a dropped request's last chance to land.

use async_api::tasks::protocol::{CLOCK_SKEW_MS, POLL_MS};

use crate::calls::Io;
use crate::config::Config;
use crate::invocation::{DlvPc, PostPc, Prog};
use crate::procs;
use crate::world::{EventState, Ms, World};

/// Whether something must happen before time moves on.
pub fn blocked(w: &World) -> bool {
    let t = w.t;
    w.procs.iter().enumerate().any(|(p, proc)| {
        proc.alive
            && (t >= proc.deadline
                || procs::ready(w, p).1
                || matches!(proc.io, Io::InFlight { by, .. } if t >= by))
    }) || w.orphans.iter().any(|o| o.until <= t)
}

/// Whether anything is under way that ends in time: a process, an event
/// that Lambda may still deliver. (The environment's grid runs only then.)
pub fn active(w: &World, cfg: &Config) -> bool {
    w.procs.iter().any(|p| p.alive)
        || w.events
            .iter()
            .any(|e| e.state == EventState::Pending && w.t <= e.accepted + cfg.max_age)
}

/// The next instant of interest after `t`, if any.
pub fn next_instant(w: &World, cfg: &Config) -> Option<Ms> {
    let t = w.t;
    let mut next: Option<Ms> = None;
    let mut at = |instant: Ms| {
        if instant > t && next.is_none_or(|n| instant < n) {
            next = Some(instant);
        }
    };
    let tick = cfg.tick;
    for (p, proc) in w.procs.iter().enumerate() {
        if !proc.alive {
            continue;
        }
        let off = proc.off;
        at(proc.deadline);
        if let Io::InFlight { by, .. } = proc.io {
            at(by);
        }
        if let Some(wake) = procs::wakes_at(w, p) {
            at(wake);
        }
        let Prog::Delivery(d) = &proc.prog else {
            continue;
        };
        // The instant this process's clock reads `own`.
        let mut own = |own: Ms| at(own.saturating_sub(off));
        let holding = matches!(
            d.pc,
            DlvPc::Begin | DlvPc::Claim { .. } | DlvPc::Read | DlvPc::Sleep { .. } | DlvPc::Adopt
        );
        if holding {
            // `Attempt::next`: a lease lapses, a request can no longer mark
            // its task, the invocation has too little time left.
            if let Some(task) = w.tasks[d.task as usize].as_ref() {
                let v = &task.view;
                if let Some(lease) = v.lease_until
                    && v.claim_id.as_deref() != Some(d.attempt.claim_id.as_str())
                {
                    own(lease + 1);
                }
                if !v.enqueued && !v.status.has_ended() {
                    own(v.answer_by + CLOCK_SKEW_MS + 1);
                }
            }
            let deadline = d.attempt.lease.deadline_ms;
            own(deadline.saturating_sub(2 * tick) + 1);
            own(deadline.saturating_sub(2 * tick + POLL_MS));
            // The claim's cutoff passes (`Delivery::Ended`), and the
            // narrowed attempt can no longer start (`LeaseTooShort`).
            if let Some(task) = w.tasks[d.task as usize].as_ref() {
                let last = cfg.last_write(task.view.created_ms);
                own(last + 1);
                own(last.saturating_sub(2 * tick) + 1);
            }
        }
    }
    for orphan in &w.orphans {
        at(orphan.until);
    }
    for event in &w.events {
        if event.state == EventState::Pending {
            at(event.accepted + cfg.max_age + 1);
        }
    }
    // `after_key_read` and the takeover's condition: a key's hold ends.
    let posts_may_come = w.left.posts > 0
        || w.procs.iter().any(|p| {
            p.alive
                && matches!(&p.prog, Prog::Post(post) if matches!(post.pc, PostPc::Begin | PostPc::PutKey | PostPc::ReadKey | PostPc::TakeOver { .. }))
        });
    if let Some(key) = &w.key
        && posts_may_come
    {
        for off in &cfg.post_offsets {
            at((key.hold_until + 1).saturating_sub(*off));
        }
    }
    // The backstop as a reader with a true clock sees it; and the cutoff of
    // a DELETE, or of the claims of the event a keyed POST may send again
    // (`Adopt::Resume`): the last instant its clock lets the write land, and
    // the first it does not. (A delivery starts only at instants of its
    // own: `check::TaskModel::actions`.)
    let requests_may_come = w.left.cancels > 0 || (w.left.posts > 0 && cfg.keyed());
    for task in w.tasks.iter().flatten() {
        if !task.view.status.has_ended() {
            at(task.view.created_ms + cfg.horizon() + 1);
            if requests_may_come {
                let last = cfg.last_write(task.view.created_ms);
                for off in &cfg.post_offsets {
                    at(last.saturating_sub(*off));
                    at((last + 1).saturating_sub(*off));
                }
            }
        }
    }
    if cfg.grid > 0 && active(w, cfg) {
        at((t / cfg.grid + 1) * cfg.grid);
    }
    next
}
