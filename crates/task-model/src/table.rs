//! The tasks table and Lambda's `Invoke`, as linearizable services: a
//! request lands at one instant, its condition evaluated with the predicates
//! of `protocol::cond` (the same the DynamoDB expressions state), or with the
//! Idempotency-Key's conditions as `src/tasks/idempotency.rs` writes them
//! (they are not in `cond`).

use async_api::tasks::TaskStatus;
use async_api::tasks::protocol::{self, KeyState, KeyView, TaskView, Verdict, Wrote, cond};

use crate::calls::{Req, Resp};
use crate::config::Config;
use crate::world::{Event, EventState, REQUEST, Task, World, claim_id, reservation, task_id};

/// Lands `req` now; the answer its caller would read.
pub fn land(w: &mut World, cfg: &Config, req: &Req) -> Resp {
    let before: Vec<Option<TaskStatus>> = w
        .tasks
        .iter()
        .map(|t| t.as_ref().map(|t| t.view.status))
        .collect();
    let before_tasks: Vec<Option<(TaskStatus, bool, Option<String>)>> = w
        .tasks
        .iter()
        .map(|t| {
            t.as_ref()
                .map(|t| (t.view.status, t.view.enqueued, t.view.claim_id.clone()))
        })
        .collect();
    let before_key = w.key.clone();
    let resp = apply(w, cfg, req);
    // A change the environment may answer at once (a renewal is none).
    let after_tasks: Vec<Option<(TaskStatus, bool, Option<String>)>> = w
        .tasks
        .iter()
        .map(|t| {
            t.as_ref()
                .map(|t| (t.view.status, t.view.enqueued, t.view.claim_id.clone()))
        })
        .collect();
    if after_tasks != before_tasks || w.key != before_key {
        w.wrote_at = w.t;
    }
    for (n, was) in before.into_iter().enumerate() {
        let now = w.tasks[n].as_ref().map(|t| t.view.status);
        if now != was {
            let to = now.expect("a record is never deleted");
            if !protocol::is_transition(was, to) && w.hist[n].bad_transition.is_none() {
                w.hist[n].bad_transition = Some((was, to));
            }
        }
    }
    resp
}

fn done(landed: bool) -> Resp {
    Resp::Wrote(if landed { Wrote::Done } else { Wrote::Refused })
}

/// An `UpdateItem` with a condition on task `n`: refused when the record
/// does not exist (a condition on a missing item fails).
fn update(
    w: &mut World,
    n: u8,
    condition: impl FnOnce(&TaskView) -> bool,
    change: impl FnOnce(&mut Task),
) -> bool {
    match w.tasks[n as usize].as_mut() {
        Some(task) if condition(&task.view) => {
            change(task);
            true
        }
        _ => false,
    }
}

fn key_update(
    w: &mut World,
    condition: impl FnOnce(&KeyView) -> bool,
    change: impl FnOnce(&mut KeyView),
) -> bool {
    match w.key.as_mut() {
        Some(key) if condition(key) => {
            change(key);
            true
        }
        _ => false,
    }
}

fn apply(w: &mut World, cfg: &Config, req: &Req) -> Resp {
    let _ = cfg;
    match req.clone() {
        // `put_queued`: `attribute_not_exists(task_id)`.
        Req::PutQueued {
            task,
            created,
            answer_by,
        } => {
            let slot = &mut w.tasks[task as usize];
            if slot.is_some() {
                return done(false);
            }
            *slot = Some(Task {
                view: TaskView {
                    status: TaskStatus::Queued,
                    enqueued: false,
                    claim_id: None,
                    lease_until: None,
                    attempts: 0,
                    answer_by,
                    created_ms: created,
                    retry_at: None,
                    started_claims: Vec::new(),
                },
                result: false,
                error: false,
                finished_by: None,
            });
            done(true)
        }
        Req::Invoke { task } => {
            w.events.push(Event {
                task,
                accepted: w.t,
                invocations: 0,
                since: w.t,
                state: EventState::Pending,
            });
            w.hist[task as usize].accepted = true;
            done(true)
        }
        Req::MarkEnqueued { task } => done(update(w, task, cond::mark_enqueued, |t| {
            t.view.enqueued = true
        })),
        Req::MarkNotEnqueued { task } => done(update(w, task, cond::unmarked, |t| {
            t.view.status = TaskStatus::Failed;
            t.error = true;
        })),
        // A delivery marks enqueued an unmarked task whose request is over.
        Req::Adopt { task, now } => done(update(
            w,
            task,
            |v| cond::adopt(v, now),
            |t| t.view.enqueued = true,
        )),
        Req::ExtendAnswerBy { task, answer_by } => done(update(w, task, cond::unmarked, |t| {
            t.view.answer_by = answer_by
        })),
        Req::Read { task } => Resp::View(Some(
            w.tasks[task as usize].as_ref().map(|t| t.view.clone()),
        )),
        Req::FinishedBy { task } => Resp::FinishedBy(
            w.tasks[task as usize]
                .as_ref()
                .and_then(|t| t.finished_by.clone()),
        ),
        // `claim`: SET running, lease, claim (nothing counted).
        Req::Claim {
            task,
            claim,
            now,
            cutoff,
            lease_until,
        } => {
            let landed = update(
                w,
                task,
                |v| cond::claim(v, now, cutoff),
                |t| {
                    t.view.status = TaskStatus::Running;
                    t.view.lease_until = Some(lease_until);
                    t.view.claim_id = Some(claim_id(claim));
                },
            );
            if !landed {
                return done(false);
            }
            w.claims[claim as usize].landed += 1;
            Resp::Claimed(w.tasks[task as usize].as_ref().unwrap().view.created_ms)
        }
        // `start`: SET attempts + 1, lease ADD started_claims REMOVE error,
        // retry_at.
        Req::Start {
            task,
            claim,
            lease_until,
        } => {
            let id = claim_id(claim);
            let landed = update(
                w,
                task,
                |v| cond::unstarted(v, &id),
                |t| {
                    t.view.attempts += 1;
                    t.view.lease_until = Some(lease_until);
                    t.view.started_claims.push(id.clone());
                    t.view.started_claims.sort();
                    t.view.retry_at = None;
                    t.error = false;
                },
            );
            if !landed {
                return done(false);
            }
            w.claims[claim as usize].starts += 1;
            Resp::Started(w.tasks[task as usize].as_ref().unwrap().view.attempts)
        }
        Req::Renew { task, claim, until } => done(update(
            w,
            task,
            |v| cond::owned(v, &claim_id(claim)),
            |t| t.view.lease_until = Some(until),
        )),
        // `release`: SET queued REMOVE lease_until.
        Req::Release { task, claim } => {
            let id = claim_id(claim);
            let landed = update(
                w,
                task,
                |v| cond::unstarted(v, &id),
                |t| {
                    t.view.status = TaskStatus::Queued;
                    t.view.lease_until = None;
                },
            );
            if landed {
                w.claims[claim as usize].released += 1;
            }
            done(landed)
        }
        Req::Finish {
            task,
            claim,
            verdict,
        } => done(update(
            w,
            task,
            |v| cond::owned(v, &claim_id(claim)),
            |t| {
                t.view.lease_until = None;
                t.finished_by = Some(claim_id(claim));
                match verdict {
                    Verdict::Succeeded => {
                        t.view.status = TaskStatus::Succeeded;
                        t.result = true;
                        t.error = false;
                    }
                    // `retry_at` only sets Retry-After, which the model does
                    // not read: one value keeps states apart less.
                    Verdict::RetryLater { .. } => {
                        t.view.status = TaskStatus::Queued;
                        t.view.retry_at = Some(0);
                        t.error = true;
                    }
                    Verdict::Failed { .. } => {
                        t.view.status = TaskStatus::Failed;
                        t.error = true;
                    }
                }
            },
        )),
        Req::Cancel { task, cutoff } => done(update(
            w,
            task,
            |v| cond::cancel(v, cutoff),
            |t| {
                t.view.status = TaskStatus::Canceled;
                t.view.lease_until = None;
                t.view.retry_at = None;
            },
        )),
        Req::GiveUp { task } => done(update(w, task, cond::give_up, |t| {
            t.view.status = TaskStatus::Failed;
            t.error = true;
            t.view.lease_until = None;
            t.view.retry_at = None;
        })),
        // `reserve`: `attribute_not_exists(task_id) OR key_state = :released`
        // (the key's 24-hour expiry is beyond the model's time).
        Req::PutKey {
            mine,
            task,
            hold_until,
        } => {
            if w.key
                .as_ref()
                .is_some_and(|k| k.state != KeyState::Released)
            {
                return done(false);
            }
            w.key = Some(KeyView {
                state: KeyState::InProgress,
                request: REQUEST.to_owned(),
                reservation: reservation(mine),
                task_id: task_id(task),
                hold_until,
            });
            done(true)
        }
        Req::ReadKey => Resp::Key(Some(w.key.clone())),
        // `take_over`: `reservation = :held_by AND key_state = :in_progress
        // AND hold_until < :now_ms`.
        Req::TakeOver {
            held_by,
            mine,
            hold_until,
            now,
        } => done(key_update(
            w,
            |k| k.reservation == held_by && k.state == KeyState::InProgress && k.hold_until < now,
            |k| {
                k.reservation = reservation(mine);
                k.hold_until = hold_until;
            },
        )),
        // `replace_task`, `answer`, `release`: `reservation = :reservation`.
        Req::ReplaceTask { mine, task } => done(key_update(
            w,
            |k| k.reservation == reservation(mine),
            |k| k.task_id = task_id(task),
        )),
        Req::AnswerKey { mine, task } => done(key_update(
            w,
            |k| k.reservation == reservation(mine),
            |k| {
                k.state = KeyState::Answered;
                k.task_id = task_id(task);
            },
        )),
        Req::ReleaseKey { mine } => done(key_update(
            w,
            |k| k.reservation == reservation(mine),
            |k| k.state = KeyState::Released,
        )),
    }
}
