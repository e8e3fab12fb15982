//! `POST /async` in the model: the record, the Idempotency-Key, the Invoke and the mark, as src/tasks/http.rs and idempotency.rs make them.

use super::*;

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

/// `Unstarted::Never`: the key is released, then 5xx, or 202 when another
/// request may carry the task on (`protocol::after_key_release`).
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

pub(super) fn step_post(w: &mut World, cfg: &Config, p: usize, mut post: Post) {
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
            let own_task = task_id(post.task);
            match protocol::after_key_read(view.as_ref(), REQUEST, &mine, &own_task, clock) {
                KeyNext::Ours { task_id, adopted } => {
                    put_queued(w, p, post, task_no(&task_id), adopted)
                }
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
            let next = after_step(&mut post, step, resp);
            send_event(w, p, post, next);
        }
        PostPc::Fail(step) => {
            let next = after_step(&mut post, step, resp);
            fail_task(w, p, post, next);
        }
        PostPc::AnswerKey => {
            let task = post.task;
            reply(w, p, Some(task), true)
        }
        PostPc::ReleaseKey => {
            let task = post.task;
            match protocol::after_key_release(wrote(resp)) {
                Start::Refused => reply(w, p, Some(task), false),
                Start::Accepted => reply(w, p, Some(task), true),
                Start::Settle => {
                    post.pc = PostPc::SettleKey;
                    set_post(w, p, post);
                    send(w, p, Req::ReadKey);
                }
                other => unreachable!("{other:?}"),
            }
        }
        PostPc::SettleKey => {
            let Some(Resp::Key(read)) = resp else {
                unreachable!()
            };
            let mine = reservation(post.no);
            let next = protocol::after_key_settle(read.flatten().as_ref(), &mine);
            fail_task(w, p, post, next);
        }
    }
}

/// What `enqueue::drive` does after `step`'s answer `resp`.
fn after_step(post: &mut Post, step: Start, resp: Option<Resp>) -> Start {
    match (step, resp) {
        (Start::Invoke, Some(Resp::Wrote(wrote))) => {
            let accepted = wrote == Wrote::Done;
            post.invoke_failed |= !accepted;
            protocol::after_invoke(accepted)
        }
        (Start::MarkEnqueued, resp) => protocol::after_mark_enqueued(wrote(resp)),
        (Start::MarkNotEnqueued, resp) => protocol::after_mark_not_enqueued(wrote(resp)),
        (Start::Settle, Some(Resp::View(read))) => protocol::after_settle(read.flatten().as_ref()),
        other => unreachable!("{other:?}"),
    }
}

/// After the key's settling read (`protocol::after_key_settle`): 202, the
/// 5xx, or the task failed first, the 5xx only once it is known to be.
fn fail_task(w: &mut World, p: usize, mut post: Post, next: Start) {
    let task = post.task;
    let req = match next {
        Start::MarkNotEnqueued => Req::MarkNotEnqueued { task },
        Start::Settle => Req::Read { task },
        Start::Accepted => return reply(w, p, Some(task), true),
        Start::Refused => return reply(w, p, Some(task), false),
        other => unreachable!("{other:?}"),
    };
    post.pc = PostPc::Fail(next);
    set_post(w, p, post);
    send(w, p, req);
}

// --- a delivery ---------------------------------------------------------------------------
