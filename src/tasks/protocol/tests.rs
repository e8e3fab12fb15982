use super::*;

fn view(status: TaskStatus) -> TaskView {
    TaskView {
        status,
        enqueued: true,
        claim_id: None,
        lease_until: None,
        attempts: 0,
        answer_by: 10_000,
        created_ms: 1_000,
        retry_at: None,
        started_claims: Vec::new(),
    }
}

fn attempt(deadline_ms: u64) -> Attempt {
    Attempt {
        claim_id: "me".to_owned(),
        lease: Lease::new(0, deadline_ms),
        horizon_ms: 10_000_000,
    }
}

#[test]
fn the_documented_state_diagram_is_the_one_the_code_makes() {
    let doc = include_str!("../../../docs/task-protocol.md");
    assert!(
        doc.contains(&state_diagram()),
        "docs/task-protocol.md's diagram differs from protocol::state_diagram():\n{}",
        state_diagram()
    );
    assert!(TRANSITIONS.iter().all(|(from, to, _)| {
        from.is_none_or(|f| !f.has_ended() || f == *to)
            && (from.is_some() || *to == TaskStatus::Queued)
    }));
    assert!(
        !is_transition(Some(TaskStatus::Failed), TaskStatus::Running),
        "failed is final"
    );
}

#[test]
fn a_503_is_said_only_when_the_task_can_never_be_claimed() {
    assert_eq!(after_invoke(false), Start::MarkNotEnqueued);
    assert_eq!(after_mark_not_enqueued(Wrote::Done), Start::Refused);
    assert_eq!(after_mark_not_enqueued(Wrote::Unknown), Start::Settle);
    assert_eq!(after_mark_enqueued(Wrote::Unknown), Start::MarkNotEnqueued);
    let mut failed = view(TaskStatus::Failed);
    failed.enqueued = false;
    assert_eq!(after_settle(Some(&failed)), Start::Refused);
    assert_eq!(
        after_settle(Some(&view(TaskStatus::Queued))),
        Start::Accepted
    );
    assert_eq!(after_settle(None), Start::Accepted, "unknown: 202");
}

#[test]
fn a_key_keeps_its_task_when_a_retry_takes_it_over() {
    let key = KeyView {
        state: KeyState::InProgress,
        request: "r".to_owned(),
        reservation: "first".to_owned(),
        task_id: "t1".to_owned(),
        hold_until: 100,
    };
    assert_eq!(
        after_key_read(Some(&key), "r", "me", "t2", 50),
        KeyNext::InProgress
    );
    assert_eq!(
        after_key_read(Some(&key), "r", "me", "t2", 101),
        KeyNext::TakeOver {
            reservation: "first".to_owned(),
            task_id: "t1".to_owned()
        }
    );
    assert_eq!(
        after_key_read(Some(&key), "other", "me", "t2", 101),
        KeyNext::Reused
    );
    assert_eq!(
        after_key_read(Some(&key), "r", "first", "t1", 50),
        KeyNext::Ours {
            task_id: "t1".to_owned(),
            adopted: false
        },
        "its own reservation landed, the answer lost"
    );
    let taken_over = KeyView {
        reservation: "me".to_owned(),
        ..key.clone()
    };
    assert_eq!(
        after_key_read(Some(&taken_over), "r", "me", "t2", 50),
        KeyNext::Ours {
            task_id: "t1".to_owned(),
            adopted: true
        },
        "its takeover landed, the answer lost: the first request's task, adopted"
    );
    let released = KeyView {
        state: KeyState::Released,
        ..key
    };
    assert_eq!(
        after_key_read(Some(&released), "other", "me", "t2", 0),
        KeyNext::Reserve
    );
}

#[test]
fn a_request_whose_task_cannot_run_says_503_only_when_no_takeover_can_run_it() {
    assert_eq!(after_key_release(Wrote::Done), Start::Refused);
    assert_eq!(after_key_release(Wrote::Refused), Start::Accepted);
    assert_eq!(after_key_release(Wrote::Unknown), Start::Settle);
    let mine = KeyView {
        state: KeyState::InProgress,
        request: "r".to_owned(),
        reservation: "me".to_owned(),
        task_id: "t1".to_owned(),
        hold_until: 100,
    };
    let taken = KeyView {
        reservation: "other".to_owned(),
        ..mine.clone()
    };
    let released = KeyView {
        state: KeyState::Released,
        ..mine.clone()
    };
    assert_eq!(after_key_settle(Some(&taken), "me"), Start::Accepted);
    assert_eq!(after_key_settle(Some(&released), "me"), Start::Refused);
    // The release may never land: the task is failed before the 5xx.
    assert_eq!(after_key_settle(Some(&mine), "me"), Start::MarkNotEnqueued);
    // Not known: the release may have landed, and a retry then starts afresh.
    assert_eq!(after_key_settle(None, "me"), Start::Refused);
}

#[test]
fn an_adopted_task_runs_once_or_is_replaced_only_when_it_can_never_run() {
    assert_eq!(adopt(Ok(Some(&view(TaskStatus::Running)))), Adopt::Accepted);
    let mut unmarked = view(TaskStatus::Queued);
    unmarked.enqueued = false;
    assert_eq!(adopt(Ok(Some(&unmarked))), Adopt::Resume);
    unmarked.status = TaskStatus::Failed;
    assert_eq!(adopt(Ok(Some(&unmarked))), Adopt::NewTask);
    assert_eq!(adopt(Err(())), Adopt::Unknown);
}

#[test]
fn a_delivery_waits_for_a_live_lease_and_takes_over_a_lapsed_one() {
    let me = attempt(90_000);
    let mut held = view(TaskStatus::Running);
    held.claim_id = Some("other".to_owned());
    held.lease_until = Some(5_000);
    assert_eq!(
        me.next(Some(&held), 4_000),
        Delivery::Wait { until_ms: 4_200 }
    );
    assert_eq!(
        me.next(Some(&held), 4_900),
        Delivery::Wait { until_ms: 5_001 }
    );
    assert_eq!(me.next(Some(&held), 5_001), Delivery::Claim);
    assert_eq!(
        attempt(4_500).next(Some(&held), 4_000),
        Delivery::GiveBack(GiveBack::HeldElsewhere)
    );
    held.claim_id = Some("me".to_owned());
    assert_eq!(
        me.next(Some(&held), 4_000),
        Delivery::Owned { lease_until: 5_000 }
    );
}

#[test]
fn an_unmarked_task_is_awaited_until_its_request_is_over_then_marked_by_its_delivery() {
    let me = attempt(90_000);
    let mut unmarked = view(TaskStatus::Queued);
    unmarked.enqueued = false;
    assert_eq!(
        me.next(Some(&unmarked), 9_000),
        Delivery::Wait { until_ms: 9_200 }
    );
    assert_eq!(
        me.next(Some(&unmarked), 10_000 + CLOCK_SKEW_MS),
        Delivery::Wait {
            until_ms: 10_000 + CLOCK_SKEW_MS + 1
        }
    );
    assert_eq!(
        me.next(Some(&unmarked), 10_001 + CLOCK_SKEW_MS),
        Delivery::Adopt
    );
    for ended in [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ] {
        assert_eq!(me.next(Some(&view(ended)), 0), Delivery::Ended);
    }
}

#[test]
fn only_the_start_counts_and_a_retried_start_finds_itself_started() {
    let me = attempt(90_000);
    let mut claimed = view(TaskStatus::Running);
    claimed.claim_id = Some("me".to_owned());
    claimed.lease_until = Some(3_000);
    assert!(cond::unstarted(&claimed, "me"), "the start may land");
    assert_eq!(me.begun(Some(&claimed)), Begun::NotStarted);
    claimed.started_claims = vec!["me".to_owned()];
    claimed.attempts = 2;
    assert!(!cond::unstarted(&claimed, "me"), "never twice");
    assert_eq!(
        me.begun(Some(&claimed)),
        Begun::Started {
            number: 2,
            lease_until: 3_000
        }
    );
    claimed.status = TaskStatus::Canceled;
    assert_eq!(me.begun(Some(&claimed)), Begun::NotOurs);
    assert_eq!(me.begun(None), Begun::NotOurs);
}

#[test]
fn no_write_that_lets_a_task_go_on_can_land_after_its_backstop() {
    let horizon = 100_000;
    let reach = WRITE_LANDS_WITHIN_MS + CLOCK_SKEW_MS;
    assert_eq!(write_cutoff(200_000, horizon), 100_000 + reach);
    let mut me = attempt(1_000_000);
    me.horizon_ms = horizon;
    // Created at 0: past its backstop from 100_000 on; a claim sent at
    // 100_000 - reach could land just then.
    let mut task = view(TaskStatus::Queued);
    task.created_ms = 1;
    assert_eq!(
        me.next(Some(&task), horizon - reach - 1),
        Delivery::GiveBack(GiveBack::LeaseTooShort),
        "claimable, but no lease of it may run past the backstop"
    );
    assert_eq!(me.next(Some(&task), horizon - reach + 2), Delivery::Ended);
    let narrowed = me.narrowed(1);
    assert_eq!(narrowed.lease.deadline_ms, 1 + horizon - reach);
    assert!(narrowed.may_start_now(horizon - reach - 2 * 500 - 100));
    assert!(!narrowed.may_start_now(horizon - reach - 2 * 500 + 100));
    assert_eq!(me.narrowed(0), me, "a creation time not known");
}

#[test]
fn the_work_starts_with_two_ticks_left_and_stops_with_one() {
    let me = attempt(90_000);
    assert_eq!(me.lease.tick_ms(), 500);
    assert!(me.may_start(2_000, 3_000));
    assert!(!me.may_start(2_001, 3_000));
    assert_eq!(me.stop_at(3_000), 2_500);
    assert_eq!(me.wake_at(1_000, 3_000), 1_500);
    assert_eq!(me.wake_at(2_200, 3_000), 2_500, "never past the stop point");
    assert_eq!(
        me.on_wake(2_200, 3_000),
        Watch::Renew {
            until_ms: 5_200,
            timeout_ms: 300
        }
    );
    assert_eq!(me.on_wake(2_500, 3_000), Watch::Stop);
    assert_eq!(me.stop_at(100_000), 89_500, "the deadline bounds it too");
}

#[test]
fn failed_is_final_only_when_no_retry_will_come() {
    let retryable = WorkEnd::Failed { retryable: true };
    assert_eq!(
        verdict(&retryable, 1, 2, 0),
        Verdict::RetryLater { retry_at: 60_000 }
    );
    assert_eq!(
        verdict(&WorkEnd::Panicked, 2, 2, 0),
        Verdict::RetryLater { retry_at: 120_000 }
    );
    assert_eq!(
        verdict(&retryable, 3, 2, 0),
        Verdict::Failed {
            function_error: true
        }
    );
    assert_eq!(
        verdict(&retryable, 1, 0, 0),
        Verdict::Failed {
            function_error: true
        }
    );
    assert_eq!(
        verdict(&WorkEnd::Failed { retryable: false }, 1, 2, 0),
        Verdict::Failed {
            function_error: false
        }
    );
}

#[test]
fn retry_after_waits_for_lambdas_retry_and_ends_with_the_task() {
    let mut waiting = view(TaskStatus::Queued);
    waiting.retry_at = Some(61_000);
    assert_eq!(waiting.retry_after_s(1_000, 0), Some(60));
    assert_eq!(waiting.retry_after_s(61_500, 0), Some(1));
    assert_eq!(view(TaskStatus::Running).retry_after_s(0, 0), Some(1));
    assert_eq!(view(TaskStatus::Succeeded).retry_after_s(0, 0), None);
    assert_eq!(
        view(TaskStatus::Running).retry_after_s(0, 2_000),
        None,
        "past the backstop"
    );
}
