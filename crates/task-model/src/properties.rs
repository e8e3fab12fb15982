//! The properties every check holds the model to (numbered as in
//! `tests/model.rs`), the examples a check must reach lest a property hold
//! for want of its behaviour, and the history of the world they read.

use async_api::tasks::TaskStatus;
use async_api::tasks::protocol::{self, WorkEnd};
use stateright::Property;

use crate::check::TaskModel;
use crate::config::Config;
use crate::invocation::Prog;
use crate::world::{ClaimHist, StartEnd, World};

/// The properties of `cfg`'s world, and the examples its bounds reach.
pub fn all(cfg: &Config) -> Vec<Property<TaskModel>> {
    let mut properties = vec![
        Property::always(
            "1. the work never runs in two attempts at once",
            |_, w: &World| one_at_a_time(w),
        ),
        Property::always(
            "2. a task whose caller got a 5xx never starts its work",
            |_, w: &World| w.hist.iter().all(|h| !(h.told_5xx && h.started > 0)),
        ),
        Property::always(
            "3. one key starts at most one task",
            |m: &TaskModel, w: &World| {
                !m.cfg.keyed() || w.hist.iter().filter(|h| h.started > 0).count() <= 1
            },
        ),
        Property::always(
            "4. succeeded, failed and canceled never change (as shown)",
            |m: &TaskModel, w: &World| {
                (0..w.tasks.len()).all(|n| {
                    w.hist[n]
                        .first_final
                        .is_none_or(|f| w.shown(&m.cfg, n) == Some(f))
                })
            },
        ),
        Property::always(
            "5. attempts counts the start writes that landed, each claim's once, and every attempt whose work ran",
            |_, w: &World| attempts_count(w),
        ),
        Property::always(
            "7. every change of status is one of protocol::TRANSITIONS",
            |_, w: &World| w.hist.iter().all(|h| h.bad_transition.is_none()),
        ),
        Property::eventually(
            "6. every task ends (as shown: the backstop included)",
            |m: &TaskModel, w: &World| {
                (0..w.tasks.len()).all(|n| w.shown(&m.cfg, n).is_none_or(TaskStatus::has_ended))
            },
        ),
        Property::sometimes("example: a task succeeds", |_, w: &World| {
            w.tasks
                .iter()
                .flatten()
                .any(|t| t.view.status == TaskStatus::Succeeded)
        }),
    ];
    // Examples the model must reach, lest a property hold for want of
    // the behaviour it is about.
    let retried = cfg.crashes > 0 || cfg.outcomes.iter().any(|o| *o != WorkEnd::Succeeded);
    if cfg.deliveries >= 2 && retried {
        properties.push(Property::sometimes(
            "example: a second attempt starts the work",
            |_, w: &World| w.hist.iter().any(|h| h.started >= 2),
        ));
    }
    if cfg.deliveries > 0 {
        properties.push(Property::sometimes(
            "example: a watcher stops the work at its stop point",
            |_, w: &World| w.hist.iter().any(|h| h.stopped),
        ));
    }
    // Property 5's exceptions, each where its bounds reach it.
    if cfg.crashes > 0 || cfg.faults > 0 {
        properties.push(Property::sometimes(
            "example: a claim that cannot start is released",
            |_, w: &World| w.claims.iter().any(|c| c.released > 0),
        ));
    }
    if cfg.deliveries >= 2
        && (cfg.deliveries >= 3
            || cfg.dups > 0
            || cfg.faults > 0
            || !cfg.latency.is_multiple_of(cfg.tick))
    {
        properties.push(Property::sometimes(
            "example: a start known too late to begin the work is counted, its work never run",
            |_, w: &World| counted_never_run(w, |end| end == StartEnd::Late),
        ));
    }
    if !cfg.latency.is_multiple_of(cfg.tick) {
        properties.push(Property::sometimes(
            "example: a start known late begins the work under a renewal's lease",
            |_, w: &World| w.claims.iter().any(|c| c.began_renewed),
        ));
    }
    if cfg.crashes > 0 {
        properties.push(Property::sometimes(
            "example: a start lands for a process that died before it knew",
            |_, w: &World| counted_never_run(w, |end| end == StartEnd::Died),
        ));
    }
    if cfg.faults >= 2 {
        properties.push(Property::sometimes(
            "example: a start lands unanswered, then its read fails or finds the task not its",
            |_, w: &World| {
                counted_never_run(w, |end| {
                    matches!(end, StartEnd::NotOurs | StartEnd::ReadFailed)
                })
            },
        ));
    }
    if cfg.faults > 0 {
        properties.push(Property::sometimes(
            "example: a caller is told 5xx",
            |_, w: &World| w.hist.iter().any(|h| h.told_5xx),
        ));
    }
    if cfg.keyed() && cfg.posts.len() >= 2 {
        properties.push(Property::sometimes(
            "example: two requests with the key are answered with one task",
            |_, w: &World| w.hist.iter().any(|h| h.told_202 >= 2),
        ));
    }
    if !cfg.only.is_empty() {
        properties.retain(|p| {
            cfg.only
                .iter()
                .any(|only| p.name.starts_with(only.as_str()))
        });
    }
    properties
}

/// `w` after an action from `before`, with the history the properties read.
pub fn observed(cfg: &Config, before: &World, mut w: World) -> World {
    observe(cfg, before, &mut w);
    w
}

/// The history the properties read, after an action: the first final
/// status shown, and whether a change of shown status is a transition
/// of the protocol.
fn observe(cfg: &Config, before: &World, w: &mut World) {
    for n in 0..w.tasks.len() {
        let was = if n < before.tasks.len() {
            before.shown(cfg, n)
        } else {
            None
        };
        let now = w.shown(cfg, n);
        let hist = &mut w.hist[n];
        if let Some(now) = now {
            if was != Some(now)
                && !protocol::is_transition(was, now)
                && hist.bad_transition.is_none()
            {
                hist.bad_transition = Some((was, now));
            }
            if hist.first_final.is_none() && now.has_ended() {
                hist.first_final = Some(now);
            }
        }
    }
}

/// Property 1: per task, at most one delivery's work runs.
pub fn one_at_a_time(w: &World) -> bool {
    (0..w.tasks.len()).all(|n| {
        w.procs
            .iter()
            .filter(|p| match &p.prog {
                Prog::Delivery(d) => p.alive && d.working && d.task as usize == n,
                _ => false,
            })
            .count()
            <= 1
    })
}

/// Property 5: `attempts` is the number of start writes that landed for the
/// task, and each claim's start lands at most once; every delivery whose
/// work ran had its start land; and a start that landed for a delivery whose
/// work never ran is one of: known to have landed (answered `Done`, or read)
/// with fewer than two ticks of its lease left, its renewal then not giving
/// them back (`worker::two_ticks_ahead`: none sent at the stop point, or it
/// failed, timed out, landed too late or was refused); sent by a process
/// that died (a crash, Lambda's kill at its deadline) before its work
/// began; or a start call that failed or lost a try's answer, after which
/// the read found the task no longer this claim's (`Begun::NotOurs`) or
/// failed.
pub fn attempts_count(w: &World) -> bool {
    w.claims.iter().all(start_accounted)
        && w.tasks.iter().enumerate().all(|(n, task)| {
            let Some(task) = task else { return true };
            let starts: u32 = w
                .claims
                .iter()
                .filter(|c| c.task as usize == n)
                .map(|c| u32::from(c.starts))
                .sum();
            task.view.attempts == starts
        })
}

/// Whether a start landed for a claim whose delivery settled it as `end`.
fn counted_never_run(w: &World, end: fn(StartEnd) -> bool) -> bool {
    w.claims.iter().any(|c| c.starts > 0 && end(c.start))
}

/// One claim's part of property 5.
fn start_accounted(c: &ClaimHist) -> bool {
    match (c.starts, c.start) {
        (0, StartEnd::Ran) => false,
        (0, _) => true,
        (1, StartEnd::Open | StartEnd::Ran | StartEnd::Late | StartEnd::Died) => true,
        (1, StartEnd::NotOurs | StartEnd::ReadFailed) => c.start_unanswered,
        _ => false,
    }
}
