//! The function's processes, each a step at a time: what the drivers
//! (`src/tasks/http.rs`, `idempotency.rs`, `worker.rs`, `destination.rs`)
//! do with each answer, deciding through the same `protocol` functions. A
//! step reads the answer of the process's last call (if any), decides at the
//! process's own clock, and sends its next call, sleeps, or ends.

use async_api::tasks::protocol::{
    self, Adopt, Begun, Delivery, KeyNext, Start, Verdict, Watch, WorkEnd, Wrote,
};

use super::world::{
    Config, DlvPc, EventState, Io, Ms, Orphan, Post, PostPc, Prog, REQUEST, Record, Req, Resp,
    StartEnd, World, claim_id, reservation, task_no,
};

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

fn set_post(w: &mut World, p: usize, post: Post) {
    w.procs[p].prog = Prog::Post(post);
}

/// The function answers: 202 (`accepted`) or a 5xx about `task` (`None`:
/// an answer that names no task: 409, 422, or a 503 before any task).
fn reply(w: &mut World, p: usize, task: Option<u8>, accepted: bool) {
    if let Some(task) = task {
        let hist = &mut w.hist[task as usize];
        if accepted {
            hist.told_202 += 1;
        } else {
            hist.told_5xx = true;
        }
    }
    end(w, p);
}

fn put_queued(w: &mut World, p: usize, mut post: Post, task: u8, adopt: bool) {
    let clock = w.clock(p);
    post.task = task;
    post.pc = PostPc::Put { adopt };
    let answer_by = w.procs[p].deadline;
    set_post(w, p, post);
    send(
        w,
        p,
        Req::PutQueued {
            task,
            created: clock,
            answer_by,
        },
    );
}

fn put_key(w: &mut World, cfg: &Config, p: usize, mut post: Post) {
    let clock = w.clock(p);
    post.pc = PostPc::PutKey;
    let req = Req::PutKey {
        mine: post.no,
        task: post.task,
        hold_until: clock + cfg.hold,
    };
    set_post(w, p, post);
    send(w, p, req);
}

/// `reserve`'s loop: the next try, or 409 after the last.
fn reserve_again(w: &mut World, cfg: &Config, p: usize, mut post: Post) {
    post.tries += 1;
    if post.tries >= RESERVE_TRIES {
        reply(w, p, None, false);
        return;
    }
    put_key(w, cfg, p, post);
}

/// `send_event`'s next step, as `protocol::Start` leads.
fn send_event(w: &mut World, p: usize, mut post: Post, next: Start) {
    let task = post.task;
    let req = match next {
        Start::Invoke => Req::Invoke { task },
        Start::MarkEnqueued => Req::MarkEnqueued { task },
        Start::MarkNotEnqueued => Req::MarkNotEnqueued { task },
        Start::Settle => Req::Read { task },
        Start::Accepted => {
            if post.keyed {
                post.pc = PostPc::AnswerKey;
                let req = Req::AnswerKey {
                    mine: post.no,
                    task,
                };
                set_post(w, p, post);
                send(w, p, req);
            } else {
                reply(w, p, Some(task), true);
            }
            return;
        }
        Start::Refused => return unstarted_never(w, p, post),
    };
    post.pc = PostPc::Send(next);
    set_post(w, p, post);
    send(w, p, req);
}

/// `Unstarted::Never`: the key is released, then 5xx.
fn unstarted_never(w: &mut World, p: usize, mut post: Post) {
    if post.keyed {
        post.pc = PostPc::ReleaseKey;
        let req = Req::ReleaseKey { mine: post.no };
        set_post(w, p, post);
        send(w, p, req);
    } else {
        let task = post.task;
        reply(w, p, Some(task), false);
    }
}

fn step_post(w: &mut World, cfg: &Config, p: usize, mut post: Post) {
    let clock = w.clock(p);
    let resp = answer(w, p);
    match post.pc.clone() {
        PostPc::Begin => {
            post.task = w.mint_task();
            if post.keyed {
                put_key(w, cfg, p, post);
            } else {
                let task = post.task;
                put_queued(w, p, post, task, false);
            }
        }
        PostPc::PutKey => match wrote(resp) {
            Wrote::Done => {
                let task = post.task;
                put_queued(w, p, post, task, false);
            }
            Wrote::Refused => {
                post.pc = PostPc::ReadKey;
                set_post(w, p, post);
                send(w, p, Req::ReadKey);
            }
            Wrote::Unknown => reply(w, p, None, false),
        },
        PostPc::ReadKey => {
            let Some(Resp::Key(read)) = resp else {
                unreachable!()
            };
            let Some(view) = read else {
                return reply(w, p, None, false);
            };
            let mine = reservation(post.no);
            match protocol::after_key_read(view.as_ref(), REQUEST, &mine, clock) {
                KeyNext::Ours { task_id } => put_queued(w, p, post, task_no(&task_id), false),
                KeyNext::Reserve => reserve_again(w, cfg, p, post),
                KeyNext::TakeOver {
                    reservation: held_by,
                    task_id,
                } => {
                    let req = Req::TakeOver {
                        held_by,
                        mine: post.no,
                        hold_until: clock + cfg.hold,
                        now: clock,
                    };
                    post.pc = PostPc::TakeOver {
                        key_task: task_no(&task_id),
                    };
                    set_post(w, p, post);
                    send(w, p, req);
                }
                KeyNext::Replay { task_id } => reply(w, p, Some(task_no(&task_id)), true),
                KeyNext::Reused | KeyNext::InProgress => reply(w, p, None, false),
            }
        }
        PostPc::TakeOver { key_task } => match wrote(resp) {
            Wrote::Done => put_queued(w, p, post, key_task, true),
            Wrote::Refused => reserve_again(w, cfg, p, post),
            Wrote::Unknown => reply(w, p, None, false),
        },
        PostPc::Put { adopt: false } => match wrote(resp) {
            // Refused: the record is there (an earlier try, or the key's).
            Wrote::Done | Wrote::Refused => send_event(w, p, post, protocol::after_put()),
            Wrote::Unknown => unstarted_never(w, p, post),
        },
        PostPc::Put { adopt: true } => {
            let task = post.task;
            post.pc = PostPc::AdoptRead;
            set_post(w, p, post);
            send(w, p, Req::Read { task });
        }
        PostPc::AdoptRead => {
            let Some(Resp::View(read)) = resp else {
                unreachable!()
            };
            let view = read.as_ref().map(|v| v.as_ref()).ok_or(());
            match protocol::adopt(view) {
                Adopt::Accepted | Adopt::Unknown => send_event(w, p, post, Start::Accepted),
                Adopt::Resume => {
                    let task = post.task;
                    let answer_by = w.procs[p].deadline;
                    post.pc = PostPc::Extend;
                    set_post(w, p, post);
                    send(w, p, Req::ExtendAnswerBy { task, answer_by });
                }
                Adopt::NewTask => {
                    let new = w.mint_task();
                    post.pc = PostPc::Replace { new };
                    let req = Req::ReplaceTask {
                        mine: post.no,
                        task: new,
                    };
                    set_post(w, p, post);
                    send(w, p, req);
                }
            }
        }
        PostPc::Extend => send_event(w, p, post, protocol::after_put()),
        PostPc::Replace { new } => match wrote(resp) {
            Wrote::Done => put_queued(w, p, post, new, false),
            // `Unstarted::Unknown`: 503, the key kept.
            Wrote::Refused | Wrote::Unknown => reply(w, p, None, false),
        },
        PostPc::Send(step) => {
            let next = match (step, resp) {
                (Start::Invoke, Some(Resp::Wrote(wrote))) => {
                    let accepted = wrote == Wrote::Done;
                    post.invoke_failed |= !accepted;
                    protocol::after_invoke(accepted)
                }
                (Start::MarkEnqueued, resp) => protocol::after_mark_enqueued(wrote(resp)),
                (Start::MarkNotEnqueued, resp) => protocol::after_mark_not_enqueued(wrote(resp)),
                (Start::Settle, Some(Resp::View(read))) => {
                    protocol::after_settle(read.flatten().as_ref())
                }
                other => unreachable!("{other:?}"),
            };
            send_event(w, p, post, next);
        }
        PostPc::AnswerKey => {
            let task = post.task;
            reply(w, p, Some(task), true)
        }
        PostPc::ReleaseKey => {
            let task = post.task;
            reply(w, p, Some(task), false)
        }
    }
}

// --- a delivery ---------------------------------------------------------------------------

/// The delivery ends: `ok` is a success, else a function error.
fn end_delivery(w: &mut World, cfg: &Config, p: usize, ok: bool) {
    let event = w.dlv(p).unwrap().event;
    end(w, p);
    invocation_ended(w, cfg, event, ok);
}

fn set_pc(w: &mut World, p: usize, pc: DlvPc) {
    w.dlv_mut(p).unwrap().pc = pc;
}

fn claim(w: &mut World, p: usize) {
    let clock = w.clock(p);
    let d = w.dlv(p).unwrap();
    let req = Req::Claim {
        task: d.task,
        claim: d.no,
        now: clock,
        cutoff: d.attempt.cutoff(clock),
        lease_until: d.attempt.claimed_until(clock),
    };
    set_pc(w, p, DlvPc::Claim { sent: clock });
    send(w, p, req);
}

fn read(w: &mut World, p: usize, pc: DlvPc) {
    let task = w.dlv(p).unwrap().task;
    set_pc(w, p, pc);
    send(w, p, Req::Read { task });
}

/// The delivery holds the task (`Holding::Ours`): from here on its attempt
/// is narrowed to the task's backstop, and it starts (`worker::start`): a
/// start write if two ticks of a lease from now are left, else the release
/// (`GiveBack::LeaseTooShort`).
fn hold_ours(w: &mut World, p: usize, created: Ms) {
    let clock = w.clock(p);
    let d = w.dlv_mut(p).unwrap();
    d.attempt = d.attempt.narrowed(created);
    if !d.attempt.may_start_now(clock) {
        return release(w, p, None);
    }
    let req = Req::Start {
        task: d.task,
        claim: d.no,
        lease_until: d.attempt.lease.until(clock),
    };
    set_pc(w, p, DlvPc::Start { sent: clock });
    send(w, p, req);
}

/// `TaskStore::release` (`cond::UNSTARTED`); then the delivery ends with a
/// function error, whatever the release came to.
fn release(w: &mut World, p: usize, reread: Option<Ms>) {
    let d = w.dlv(p).unwrap();
    let req = Req::Release {
        task: d.task,
        claim: d.no,
    };
    set_pc(w, p, DlvPc::Release { reread });
    send(w, p, req);
}

/// What the delivery does once its start is known (`deliver` after
/// `start`): `Begun::Started` begins the work with two ticks of its lease
/// ahead (`two_ticks_ahead`).
fn begun(w: &mut World, cfg: &Config, p: usize, begun: Begun) {
    let d = w.dlv(p).unwrap().clone();
    let claim = d.no as usize;
    match begun {
        Begun::Started {
            number,
            lease_until,
        } => {
            w.dlv_mut(p).unwrap().number = number;
            two_ticks_ahead(w, cfg, p, lease_until)
        }
        // Not this claim's any more: ended elsewhere, no error.
        Begun::NotOurs => {
            w.claims[claim].start = StartEnd::NotOurs;
            end_delivery(w, cfg, p, true)
        }
        // Released, and TaskError::Store.
        Begun::NotStarted => {
            w.claims[claim].start = StartEnd::NotStarted;
            release(w, p, None)
        }
    }
}

/// `worker::two_ticks_ahead`: the work begins under the start's lease if
/// two ticks of it are left; else a renewal is sent, awaited until the stop
/// point (none once the stop point has come).
fn two_ticks_ahead(w: &mut World, cfg: &Config, p: usize, lease_until: Ms) {
    let clock = w.clock(p);
    let d = w.dlv(p).unwrap().clone();
    if d.attempt.may_start(clock, lease_until) {
        return start_work(w, p, lease_until);
    }
    match d.attempt.on_wake(clock, lease_until) {
        Watch::Stop => too_late(w, cfg, p),
        Watch::Renew {
            until_ms,
            timeout_ms,
        } => {
            set_pc(
                w,
                p,
                DlvPc::BeginLease {
                    lease_until,
                    sent: clock,
                    timeout_at: clock + timeout_ms,
                },
            );
            send(
                w,
                p,
                Req::Renew {
                    task: d.task,
                    claim: d.no,
                    until: until_ms,
                },
            )
        }
    }
}

/// Started too late to begin the work: counted, and its work never runs
/// (TaskError::Store; its lease lapses).
fn too_late(w: &mut World, cfg: &Config, p: usize) {
    let claim = w.dlv(p).unwrap().no as usize;
    w.claims[claim].start = StartEnd::Late;
    end_delivery(w, cfg, p, false)
}

/// "task started": the work runs, the watcher sleeps.
fn start_work(w: &mut World, p: usize, lease_until: Ms) {
    let now = w.clock(p);
    let d = w.dlv_mut(p).unwrap();
    d.working = true;
    d.pc = DlvPc::Watch { lease_until, now };
    let (task, no) = (d.task, d.no);
    w.hist[task as usize].started += 1;
    w.claims[no as usize].start = StartEnd::Ran;
}

/// The work stops (the watcher's stop, or a refused renewal).
fn stop_work(w: &mut World, p: usize) {
    w.dlv_mut(p).unwrap().working = false;
}

/// What the delivery does with `next` (`hold`'s loop).
fn follow(w: &mut World, cfg: &Config, p: usize, next: Delivery) {
    match next {
        Delivery::Claim => claim(w, p),
        Delivery::Owned { .. } => {
            let created = w.dlv(p).unwrap().created;
            hold_ours(w, p, created)
        }
        Delivery::Wait { until_ms } => set_pc(w, p, DlvPc::Sleep { until: until_ms }),
        Delivery::Adopt => {
            let now = w.clock(p).saturating_sub(protocol::CLOCK_SKEW_MS);
            let task = w.dlv(p).unwrap().task;
            set_pc(w, p, DlvPc::Adopt);
            send(w, p, Req::Adopt { task, now });
        }
        // Only after a read, handled there.
        Delivery::Ended => read(w, p, DlvPc::Read),
        Delivery::Unknown | Delivery::GiveBack(_) => end_delivery(w, cfg, p, false),
    }
}

fn step_delivery(w: &mut World, cfg: &Config, p: usize) {
    let clock = w.clock(p);
    let resp = answer(w, p);
    let d = w.dlv(p).unwrap().clone();
    match d.pc {
        DlvPc::Begin => claim(w, p),
        DlvPc::Claim { .. } => match resp {
            Some(Resp::Claimed(created)) => hold_ours(w, p, created),
            Some(Resp::Wrote(Wrote::Refused)) => read(w, p, DlvPc::Read),
            Some(Resp::Wrote(Wrote::Unknown)) => {
                w.dlv_mut(p).unwrap().claim_failed = true;
                read(w, p, DlvPc::Read)
            }
            other => unreachable!("{other:?}"),
        },
        DlvPc::Read => {
            let Some(Resp::View(read)) = resp else {
                unreachable!()
            };
            let Some(view) = read else {
                if d.claim_failed {
                    // The claim may have landed: released, then TaskError::Store.
                    return release(w, p, None);
                }
                return end_delivery(w, cfg, p, false);
            };
            let next = d.attempt.next(view.as_ref(), clock);
            let dm = w.dlv_mut(p).unwrap();
            dm.claim_failed = false;
            if let Some(view) = &view {
                dm.created = view.created_ms;
                if next == Delivery::Ended {
                    // A duplicate: the task has ended; success.
                    return end_delivery(w, cfg, p, true);
                }
            }
            follow(w, cfg, p, next)
        }
        DlvPc::Sleep { .. } | DlvPc::Adopt => read(w, p, DlvPc::Read),
        DlvPc::Start { sent } => match resp {
            Some(Resp::Started(number)) => {
                let lease_until = d.attempt.lease.until(sent);
                begun(
                    w,
                    cfg,
                    p,
                    Begun::Started {
                        number,
                        lease_until,
                    },
                )
            }
            // Refused, or it may have landed: the record tells.
            Some(Resp::Wrote(Wrote::Refused | Wrote::Unknown)) => {
                let lease_until = d.attempt.lease.until(sent);
                read(w, p, DlvPc::StartRead { lease_until })
            }
            other => unreachable!("{other:?}"),
        },
        DlvPc::StartRead { lease_until } => {
            let Some(Resp::View(read)) = resp else {
                unreachable!()
            };
            match read {
                Some(view) => match d.attempt.begun(view.as_ref()) {
                    // Settled once the release, and the read after it, tell.
                    Begun::NotStarted => release(w, p, Some(lease_until)),
                    begun_now => begun(w, cfg, p, begun_now),
                },
                // Not known whether it started: released (refused if it
                // did), then TaskError::Store. (`start` reads again every
                // `POLL_MS` while that ends before the lease's stop point:
                // never with the model's lease, of 3 ticks.)
                None => {
                    assert!(
                        clock + protocol::POLL_MS >= d.attempt.stop_at(lease_until),
                        "worker::start would read again: model its retries"
                    );
                    w.claims[d.no as usize].start = StartEnd::ReadFailed;
                    release(w, p, None)
                }
            }
        }
        DlvPc::Release {
            reread: Some(lease_until),
        } if wrote(resp.clone()) != Wrote::Done => read(w, p, DlvPc::StartReread { lease_until }),
        DlvPc::Release { reread } => {
            if reread.is_some() {
                w.claims[d.no as usize].start = StartEnd::NotStarted;
            }
            end_delivery(w, cfg, p, false)
        }
        DlvPc::StartReread { .. } => {
            let Some(Resp::View(read)) = resp else {
                unreachable!()
            };
            match read.map(|view| d.attempt.begun(view.as_ref())) {
                Some(started @ Begun::Started { .. }) => begun(w, cfg, p, started),
                // The read failed: if the start still lands, it is counted
                // and never runs (a start unanswered, its record unreadable).
                None => {
                    w.claims[d.no as usize].start = StartEnd::ReadFailed;
                    end_delivery(w, cfg, p, false)
                }
                // Unstarted still, or no longer this claim's, with its
                // release unlanded: a try of the start could still land. As
                // unsettled as a failed read.
                Some(_) => {
                    w.claims[d.no as usize].start = StartEnd::ReadFailed;
                    end_delivery(w, cfg, p, false)
                }
            }
        }
        DlvPc::BeginLease {
            lease_until, sent, ..
        } => match resp.map(|resp| wrote(Some(resp))) {
            Some(Wrote::Done) => {
                let renewed = d.attempt.renewed(lease_until, sent);
                if d.attempt.may_start(clock, renewed) {
                    w.claims[d.no as usize].began_renewed = true;
                    start_work(w, p, renewed)
                } else {
                    too_late(w, cfg, p)
                }
            }
            // No longer this claim's: ended elsewhere, without an error.
            Some(Wrote::Refused) => {
                w.claims[d.no as usize].start = StartEnd::Late;
                end_delivery(w, cfg, p, true)
            }
            Some(Wrote::Unknown) => too_late(w, cfg, p),
            // Its timeout, at the stop point: dropped, it may still land.
            None => {
                orphan_call(w, p);
                too_late(w, cfg, p)
            }
        },
        DlvPc::Watch { lease_until, .. } => match d.attempt.on_wake(clock, lease_until) {
            // LeaseLost (the stop point, or the invocation's deadline): a
            // function error.
            Watch::Stop => {
                stop_work(w, p);
                w.hist[d.task as usize].stopped = true;
                end_delivery(w, cfg, p, false)
            }
            Watch::Renew {
                until_ms,
                timeout_ms,
            } => {
                set_pc(
                    w,
                    p,
                    DlvPc::Renew {
                        lease_until,
                        sent: clock,
                        timeout_at: clock + timeout_ms,
                    },
                );
                send(
                    w,
                    p,
                    Req::Renew {
                        task: d.task,
                        claim: d.no,
                        until: until_ms,
                    },
                )
            }
        },
        DlvPc::Renew {
            lease_until, sent, ..
        } => {
            let lease_until = match resp {
                Some(resp) => match wrote(Some(resp)) {
                    Wrote::Done => d.attempt.renewed(lease_until, sent),
                    // No longer ours: stopped; the invocation succeeds.
                    Wrote::Refused => {
                        stop_work(w, p);
                        return end_delivery(w, cfg, p, true);
                    }
                    Wrote::Unknown => lease_until,
                },
                // The renewal's timeout: it is dropped, and may still land.
                None => {
                    orphan_call(w, p);
                    lease_until
                }
            };
            set_pc(
                w,
                p,
                DlvPc::Watch {
                    lease_until,
                    now: clock,
                },
            )
        }
        DlvPc::Finish { verdict } => match wrote(resp) {
            Wrote::Done => finished(w, cfg, p, verdict),
            Wrote::Refused => {
                set_pc(
                    w,
                    p,
                    DlvPc::FinishedBy {
                        verdict,
                        refused: true,
                    },
                );
                send(w, p, Req::FinishedBy { task: d.task })
            }
            Wrote::Unknown => {
                set_pc(
                    w,
                    p,
                    DlvPc::FinishedBy {
                        verdict,
                        refused: false,
                    },
                );
                send(w, p, Req::FinishedBy { task: d.task })
            }
        },
        DlvPc::FinishedBy { verdict, refused } => {
            let Some(Resp::FinishedBy(by)) = resp else {
                unreachable!()
            };
            if by.as_deref() == Some(claim_id(d.no).as_str()) {
                finished(w, cfg, p, verdict)
            } else {
                // Refused: ended elsewhere (success); an error: TaskError::Store.
                end_delivery(w, cfg, p, refused)
            }
        }
    }
}

/// The call in flight of `p` is dropped by its caller.
fn orphan_call(w: &mut World, p: usize) {
    if let Io::InFlight { req, by: until, .. } = std::mem::replace(&mut w.procs[p].io, Io::Idle) {
        w.orphans.push(Orphan {
            req,
            at: w.t,
            until,
            dense_until: 0,
        });
    }
}

/// The finish landed: the invocation ends as the verdict says.
fn finished(w: &mut World, cfg: &Config, p: usize, verdict: Verdict) {
    let ok = matches!(
        verdict,
        Verdict::Succeeded
            | Verdict::Failed {
                function_error: false
            }
    );
    end_delivery(w, cfg, p, ok)
}

/// The work of delivery `p` returns `end`: the watcher drops a renewal in
/// flight, and the finish is sent with the verdict at the process's clock.
pub fn work_ends(w: &mut World, cfg: &Config, p: usize, end: &WorkEnd) {
    let clock = w.clock(p);
    if matches!(w.dlv(p).unwrap().pc, DlvPc::Renew { .. }) {
        orphan_call(w, p);
        w.procs[p].io = Io::Idle;
    }
    let d = w.dlv_mut(p).unwrap();
    d.working = false;
    let verdict = protocol::verdict(end, d.number, cfg.max_retries, clock);
    d.pc = DlvPc::Finish { verdict };
    let req = Req::Finish {
        task: d.task,
        claim: d.no,
        verdict,
    };
    send(w, p, req);
}
