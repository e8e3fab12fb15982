//! A delivery of the task event in the model: claim, start, lease, work, finish, as src/tasks/worker.rs makes them.

use super::hold::{
    begun, claim, end_delivery, follow, hold_ours, read, release, set_pc, start_work, stop_work,
    too_late,
};
use super::*;

pub(super) fn step_delivery(w: &mut World, cfg: &Config, p: usize) {
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
pub(super) fn orphan_call(w: &mut World, p: usize) {
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
