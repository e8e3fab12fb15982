//! How a delivery holds its task in the model: the claim, the reads, the
//! start, the release and the lease's renewals, as `hold` and its loop in
//! src/tasks/worker.rs and claims.rs make them.

use super::*;

/// The delivery ends: `ok` is a success, else a function error.
pub(super) fn end_delivery(w: &mut World, cfg: &Config, p: usize, ok: bool) {
    let event = w.dlv(p).unwrap().event;
    end(w, p);
    invocation_ended(w, cfg, event, ok);
}

pub(super) fn set_pc(w: &mut World, p: usize, pc: DlvPc) {
    w.dlv_mut(p).unwrap().pc = pc;
}

pub(super) fn claim(w: &mut World, p: usize) {
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

pub(super) fn read(w: &mut World, p: usize, pc: DlvPc) {
    let task = w.dlv(p).unwrap().task;
    set_pc(w, p, pc);
    send(w, p, Req::Read { task });
}

/// The delivery holds the task (`Holding::Ours`): from here on its attempt
/// is narrowed to the task's backstop, and it starts (`worker::start`): a
/// start write if two ticks of a lease from now are left, else the release
/// (`GiveBack::LeaseTooShort`).
pub(super) fn hold_ours(w: &mut World, p: usize, created: Ms) {
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
pub(super) fn release(w: &mut World, p: usize, reread: Option<Ms>) {
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
pub(super) fn begun(w: &mut World, cfg: &Config, p: usize, begun: Begun) {
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
pub(super) fn too_late(w: &mut World, cfg: &Config, p: usize) {
    let claim = w.dlv(p).unwrap().no as usize;
    w.claims[claim].start = StartEnd::Late;
    end_delivery(w, cfg, p, false)
}

/// "task started": the work runs, the watcher sleeps.
pub(super) fn start_work(w: &mut World, p: usize, lease_until: Ms) {
    let now = w.clock(p);
    let d = w.dlv_mut(p).unwrap();
    d.working = true;
    d.pc = DlvPc::Watch { lease_until, now };
    let (task, no) = (d.task, d.no);
    w.hist[task as usize].started += 1;
    w.claims[no as usize].start = StartEnd::Ran;
}

/// The work stops (the watcher's stop, or a refused renewal).
pub(super) fn stop_work(w: &mut World, p: usize) {
    w.dlv_mut(p).unwrap().working = false;
}

/// What the delivery does with `next` (`hold`'s loop).
pub(super) fn follow(w: &mut World, cfg: &Config, p: usize, next: Delivery) {
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
