//! Starting the work and watching it: the start write, the lease renewed two ticks ahead, the work stopped before its lease ends, an attempt's end found elsewhere.

use super::*;

/// Starts the claimed attempt with the start write, which counts it, if
/// two renewal intervals of a lease from now are left; otherwise, or when the
/// start did not land, the claim is released and the event given back to
/// Lambda. `NotOurs`: the task is no longer this claim's (canceled, given up
/// on, or taken over): nothing to do.
pub(super) async fn start(
    store: TaskStore<'_>,
    attempt: &Attempt,
    task_id: &str,
) -> Result<Begun, TaskError> {
    let sent = epoch_millis();
    if !attempt.may_start_now(sent) {
        store.release(task_id, &attempt.claim_id).await;
        return Err(TaskError::given_back(GiveBack::LeaseTooShort, task_id));
    }
    let lease_until = attempt.lease.until(sent);
    let failure = match store.start(task_id, &attempt.claim_id, lease_until).await {
        Ok(Written::Done(number)) => {
            return Ok(Begun::Started {
                number,
                lease_until,
            });
        }
        Ok(Written::Refused) => None,
        // It may have landed (a try whose answer was lost): the record tells.
        Err(reason) => Some(reason),
    };
    // Read until the lease's stop point: past it, the work could not begin
    // anyway.
    let stop_at = attempt.stop_at(lease_until);
    let mut read = store.view(task_id).await;
    while read.is_err() && epoch_millis() + protocol::POLL_MS < stop_at {
        sleep_until(epoch_millis() + protocol::POLL_MS).await;
        let left = Duration::from_millis(stop_at.saturating_sub(epoch_millis()));
        read = tokio::time::timeout(left, store.view(task_id))
            .await
            .unwrap_or_else(|_| Err("GetItem task: no answer before the stop point".to_owned()));
    }
    let begun = match read {
        Ok(view) => attempt.begun(view.as_ref()),
        // Not known whether it started: not started here. The release is
        // refused if it did; its lease then lapses, counted.
        Err(reason) => {
            store.release(task_id, &attempt.claim_id).await;
            return Err(TaskError::Store(format!(
                "{STARTED_UNKNOWN}: {}",
                failure.unwrap_or(reason)
            )));
        }
    };
    match (begun, failure) {
        (Begun::NotStarted, reason) => {
            let reason = reason
                .unwrap_or_else(|| "UpdateItem (start): refused on an unstarted claim".to_owned());
            // A try of the start may still land after that read: the release
            // is then refused, and a second read tells.
            if store.release(task_id, &attempt.claim_id).await == Wrote::Done {
                return Err(TaskError::Store(reason));
            }
            match store.view(task_id).await.map(|v| attempt.begun(v.as_ref())) {
                Ok(started @ Begun::Started { .. }) => Ok(started),
                _ => Err(TaskError::Store(format!("{STARTED_UNKNOWN}: {reason}"))),
            }
        }
        (begun, _) => Ok(begun),
    }
}

/// Why a start whose outcome stays unknown did not begin the work (its answer
/// lost, and no read before the lease's stop point, or its release unlanded,
/// told): if it landed, it is an attempt counted whose work never ran.
pub const STARTED_UNKNOWN: &str = "the start's outcome could not be settled";

/// The lease the work begins under: the start's, if two renewal intervals
/// of it are left; else a renewal's, awaited until the stop point, if it
/// lands in time (`None`: neither). `Refused`: the task is no longer this
/// claim's.
pub(super) async fn two_ticks_ahead(
    store: TaskStore<'_>,
    attempt: &Attempt,
    task_id: &str,
    lease_until: u64,
) -> Written<Option<u64>> {
    let sent = epoch_millis();
    if attempt.may_start(sent, lease_until) {
        return Written::Done(Some(lease_until));
    }
    let Watch::Renew {
        until_ms,
        timeout_ms,
    } = attempt.on_wake(sent, lease_until)
    else {
        return Written::Done(None);
    };
    let renewal = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        store.renew_lease(task_id, &attempt.claim_id, until_ms),
    );
    match renewal.await {
        Ok(Wrote::Refused) => Written::Refused,
        Ok(Wrote::Done) => {
            let renewed = attempt.renewed(lease_until, sent);
            Written::Done(
                attempt
                    .may_start(epoch_millis(), renewed)
                    .then_some(renewed),
            )
        }
        Ok(Wrote::Unknown) | Err(_) => Written::Done(None),
    }
}

/// How the work of a claimed attempt came to an end.
pub(super) enum Watched {
    /// It returned.
    Finished(Result<serde_json::Value, WorkFailure>),
    /// It panicked.
    Panicked,
    /// A renewal found the task canceled or given up on; the work was stopped.
    NoLongerOurs,
    /// The lease could not be renewed in time; the work was stopped.
    LeaseLost(String),
}

/// Renews the lease (held until `lease_until`) while the work runs, and stops
/// the work at the stop point [`Attempt::on_wake`] names, or once the task is
/// no longer this attempt's.
pub(super) async fn watch_work(
    store: TaskStore<'_>,
    attempt: &Attempt,
    task_id: &str,
    mut lease_until: u64,
    mut work: JoinHandle<Result<serde_json::Value, WorkFailure>>,
    cancel: &watch::Sender<bool>,
) -> Watched {
    let stop = |work: &JoinHandle<_>, why: Watched| {
        let _ = cancel.send(true);
        work.abort();
        why
    };
    let mut now = epoch_millis();
    loop {
        // Biased: a work that has returned is taken before the stop point.
        tokio::select! {
            biased;
            joined = &mut work => return finished(joined),
            () = sleep_until(attempt.wake_at(now, lease_until)) => {}
        }
        now = epoch_millis();
        let (until_ms, timeout_ms) = match attempt.on_wake(now, lease_until) {
            Watch::Stop if lease_until >= attempt.lease.deadline_ms => {
                return stop(
                    &work,
                    Watched::LeaseLost(
                        "the invocation reached its deadline; the work was stopped".to_owned(),
                    ),
                );
            }
            Watch::Stop => {
                return stop(
                    &work,
                    Watched::LeaseLost("UpdateItem (lease): not renewed in time".to_owned()),
                );
            }
            Watch::Renew {
                until_ms,
                timeout_ms,
            } => (until_ms, timeout_ms),
        };
        let renewal = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            store.renew_lease(task_id, &attempt.claim_id, until_ms),
        );
        tokio::select! {
            biased;
            joined = &mut work => return finished(joined),
            renewed = renewal => match renewed {
                Ok(Wrote::Done) => lease_until = attempt.renewed(lease_until, now),
                Ok(Wrote::Refused) => return stop(&work, Watched::NoLongerOurs),
                Ok(Wrote::Unknown) | Err(_) => {
                    tracing::warn!("lease not renewed; trying again before the stop point");
                }
            },
        }
        now = epoch_millis();
    }
}

pub(super) fn finished(
    joined: Result<Result<serde_json::Value, WorkFailure>, JoinError>,
) -> Watched {
    match joined {
        Ok(result) => Watched::Finished(result),
        Err(_) => Watched::Panicked,
    }
}

/// Sleeps until `epoch_ms` by this process's clock.
pub(super) async fn sleep_until(epoch_ms: u64) {
    let wait = epoch_ms.saturating_sub(epoch_millis());
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// The task was canceled, given up on or taken over while this attempt ran:
/// its result is not recorded, and the invocation ends without an error, so
/// Lambda does not retry it. The status is read for the log, if it can be.
pub(super) async fn ended_elsewhere(
    store: TaskStore<'_>,
    task_id: String,
    attempt: u32,
) -> TaskOutcome {
    let status = store.view(&task_id).await.ok().flatten().map(|v| v.status);
    tracing::info!(
        attempt,
        status = status.map(TaskStatus::as_str),
        "the task ended elsewhere; this attempt's result is not recorded"
    );
    TaskOutcome {
        task_id,
        status,
        attempts: attempt,
        duplicate: false,
    }
}
