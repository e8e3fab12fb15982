//! The counterexamples the model found, each replayed step by step on the
//! protocol as it is now: the trace printed, then what must hold.

use super::*;

/// Replays `steps` (a `Tick` goes on to the instant beside it) in `cfg`'s
/// world; prints the trace; the states.
fn replay(cfg: Config, steps: &[(Action, u64)]) -> (TaskModel, Vec<World>) {
    let model = TaskModel::new(cfg);
    let init = model.init_states().remove(0);
    let Some((states, taken)) = trace::replay_timed(&model, steps, true) else {
        let playable = (0..steps.len()).rev().find_map(|n| {
            trace::replay_timed(&model, &steps[..n], true).map(|(_, taken)| (n, taken))
        });
        let (n, taken) = playable.unwrap_or_default();
        panic!(
            "step {} ({:?}) is not possible after:\n{}",
            n + 1,
            steps[n],
            trace::render(&model, &init, &taken)
        );
    };
    println!("{}", trace::render(&model, &init, &taken));
    (model, states)
}

/// Whether the property whose name starts with `prefix` fails in a state.
fn fails(model: &TaskModel, states: &[World], prefix: &str) -> bool {
    let property = model
        .properties()
        .into_iter()
        .find(|p| p.name.starts_with(prefix))
        .expect("a property");
    states.iter().any(|s| !(property.condition)(model, s))
}

/// Whether the property whose name starts with `prefix` holds in every state.
fn holds(model: &TaskModel, states: &[World], prefix: &str) -> bool {
    !fails(model, states, prefix)
}

use Action::{Cancel, Deliver, Land, Orphan, Post, Step, Tick, WorkEnds};
const OK: Fate = Fate::Ok;

/// Task 0 as the last state holds it.
fn task0(states: &[World]) -> &async_api::tasks::protocol::TaskView {
    &states.last().unwrap().tasks[0]
        .as_ref()
        .expect("task 0")
        .view
}

/// Found by `a_cancel_at_any_moment` under the old protocol: a DELETE took
/// its cutoff as `now - horizon` and its write landed `latency` later,
/// after a reader had seen the task `failed` by the backstop: `failed`
/// became `canceled` (properties 4 and 7). Fixed: the cancel's cutoff is
/// `protocol::write_cutoff` (`now + WRITE_LANDS_WITHIN_MS + CLOCK_SKEW_MS -
/// horizon`). On the same path, at the edge of the new cutoff: a DELETE
/// sent at the last instant it allows, whose try the SDK gives up on and
/// which then lands as late as the protocol assumes (6 s after it was
/// sent), cancels the task before the backstop; one sent a millisecond
/// later is refused, and the task reads `failed` once past the backstop.
#[test]
fn a_cancel_lands_before_the_backstop_or_not_at_all() {
    let cfg = Config {
        cancels: 1,
        faults: 2,
        ..base()
    };
    let last = cfg.last_write(world::T0);
    let backstop = world::T0 + cfg.horizon();
    let until_202 = [
        (Post(0), 0),
        (Step(0), 0),
        (Land(0, OK), 0), // PutQueued
        (Land(0, OK), 0), // Invoke: the event is never delivered
        (Land(0, OK), 0), // MarkEnqueued: 202
    ];
    let mut steps = until_202.to_vec();
    steps.extend([
        (Tick, last),
        (Cancel(0, 0), 0),
        (Step(1), 0),
        (Tick, last + 50),
        (Land(1, Fate::Stale), 0), // given up on, still on its way
        (Tick, last + 100),
        (Land(1, Fate::Dropped), 0), // the next try fails: the DELETE answers an error
        (Tick, last + WRITE_LANDS_WITHIN_MS),
        (Orphan(0, true), 0), // the first try lands, as late as it may
    ]);
    let (model, states) = replay(cfg.clone(), &steps);
    assert!(holds(&model, &states, "4."));
    assert!(holds(&model, &states, "7."));
    assert_eq!(task0(&states).status, TaskStatus::Canceled);
    assert!(
        states.last().unwrap().t < backstop,
        "canceled before the backstop"
    );

    let mut steps = until_202.to_vec();
    steps.extend([
        (Tick, last + 1),
        (Cancel(0, 0), 0),
        (Step(1), 0),
        (Land(1, OK), 0), // refused: the task may be past the backstop when it lands
        (Tick, backstop + 1),
    ]);
    let (model, states) = replay(cfg.clone(), &steps);
    assert!(holds(&model, &states, "4."));
    assert!(holds(&model, &states, "7."));
    assert_eq!(
        states.last().unwrap().shown(&cfg, 0),
        Some(TaskStatus::Failed)
    );
}

/// Found by `deep_one_key` under the old protocol: the first POST with the
/// key dies after writing its task (its `Invoke` never left); a retry with
/// the key comes long after, takes the key over, and `protocol::adopt` says
/// `Resume` for the still unmarked task: the retry sends its event again
/// and marks it. A delivery of that new event claimed the task just before
/// the backstop (its cutoff taken at its start) and finished it after:
/// `failed` (the backstop) became `succeeded` (properties 4 and 7). Fixed:
/// each claim's cutoff is `write_cutoff` at its sending, and a claimed
/// attempt's deadline is narrowed to the last instant a write of it may be
/// sent (`Attempt::narrowed`). On the same path: a retry whose delivery
/// claims at the last instant the cutoff allows cannot start (its narrowed
/// lease is too short): it releases the task and gives the event back; one
/// a millisecond later is refused the claim and ends (the task has ended by
/// the backstop); the task reads `failed` once past the backstop, and its
/// work never runs.
#[test]
fn a_late_keyed_retry_never_runs_its_task_past_the_backstop() {
    let cfg = Config {
        posts: vec![true, true],
        deliveries: 1,
        crashes: 1,
        ..base()
    };
    let last = cfg.last_write(world::T0);
    let backstop = world::T0 + cfg.horizon();
    let late_retry = |at: u64| {
        vec![
            (Post(0), 0),
            (Step(0), 0),
            (Land(0, OK), 0), // PutKey
            (Land(0, OK), 0), // PutQueued
            (Action::Crash(0), 0),
            (Orphan(0, false), 0), // its Invoke never left
            (Tick, at),
            (Post(0), 0),
            (Step(1), 0),
            (Land(1, OK), 0), // PutKey: refused
            (Land(1, OK), 0), // ReadKey: TakeOver
            (Land(1, OK), 0), // TakeOver
            (Land(1, OK), 0), // PutQueued: refused, the task is there
            (Land(1, OK), 0), // Read: adopt says Resume
            (Land(1, OK), 0), // ExtendAnswerBy
            (Land(1, OK), 0), // Invoke: a fresh event
            (Land(1, OK), 0), // MarkEnqueued
            (Land(1, OK), 0), // AnswerKey: 202
            (Deliver(0, 0), 0),
            (Step(2), 0),
        ]
    };
    // The claim lands at the cutoff's last instant; too late to start.
    let mut steps = late_retry(last);
    steps.extend([
        (Land(2, OK), 0), // the claim: lands; LeaseTooShort, the release sent
        (Land(2, OK), 0), // the release: queued again, the event given back
        (Tick, backstop + 1),
    ]);
    let (model, states) = replay(cfg.clone(), &steps);
    assert!(holds(&model, &states, "4."));
    assert!(holds(&model, &states, "7."));
    let end = states.last().unwrap();
    assert_eq!(end.claims[0].landed, 1);
    assert_eq!(end.claims[0].released, 1);
    assert_eq!(end.hist[0].started, 0, "the work never ran");
    assert_eq!(end.shown(&cfg, 0), Some(TaskStatus::Failed));

    // A millisecond later, the claim is refused.
    let mut steps = late_retry(last + 1);
    steps.extend([
        (Land(2, OK), 0), // the claim: refused
        (Land(2, OK), 0), // the read: Ended, the delivery ends
        (Tick, backstop + 1),
    ]);
    let (model, states) = replay(cfg.clone(), &steps);
    assert!(holds(&model, &states, "4."));
    assert!(holds(&model, &states, "7."));
    let end = states.last().unwrap();
    assert_eq!(end.claims[0].landed, 0);
    assert!(end.procs.iter().all(|p| !p.alive));
    assert_eq!(end.shown(&cfg, 0), Some(TaskStatus::Failed));
}

/// Found by `a_failed_call_of_any_kind` under the old protocol: the claim's
/// first try timed out while on its way, the second landed and the attempt
/// ran, failed and was finished `queued` for Lambda's retry; then the first
/// try landed: `cond::CLAIM` held again, and the same claim counted a
/// second attempt (property 5). Fixed: a claim counts nothing (the start
/// counts, once per claim: `cond::UNSTARTED`). On the same path the late
/// try takes the task again for the claim, and `attempts` stays 1.
#[test]
fn a_stale_try_of_a_claim_counts_nothing() {
    let cfg = Config {
        deliveries: 1,
        faults: 1,
        ..base()
    };
    let (model, states) = replay(
        cfg,
        &[
            (Post(0), 0),
            (Step(0), 0),
            (Land(0, OK), 0), // PutQueued
            (Land(0, OK), 0), // Invoke
            (Land(0, OK), 0), // MarkEnqueued: 202
            (Deliver(0, 0), 0),
            (Step(1), 0),
            (Tick, world::T0 + 50),
            (Land(1, Fate::Stale), 0), // the claim's first try times out
            (Land(1, OK), 0),          // the second lands: the start is sent
            (Land(1, OK), 0),          // the start lands: the work runs
            (Tick, world::T0 + 100),
            (WorkEnds(1, 1), 0),  // it fails, retryable
            (Land(1, OK), 0),     // the finish: queued for Lambda's retry
            (Orphan(0, true), 0), // the first try of the claim lands now
        ],
    );
    assert!(holds(&model, &states, "5."));
    let end = states.last().unwrap();
    assert_eq!(end.claims[0].landed, 2, "the claim landed twice");
    assert_eq!(task0(&states).status, TaskStatus::Running);
    assert_eq!(task0(&states).attempts, 1, "counted once");
}

/// Found by `a_failed_call_of_any_kind` with two failed calls: the start
/// write's first try times out while on its way, the SDK's next try fails,
/// and the read after it finds the claim unstarted (`Begun::NotStarted`);
/// the first try then lands (within `WRITE_LANDS_WITHIN_MS` of the start's
/// sending), before the release. The release is refused (`cond::UNSTARTED`:
/// the claim started), and was then the end of the delivery: an attempt
/// counted whose work never ran. Now a release that did not land is followed
/// by a second read, which finds the start landed and begins the work.
#[test]
fn a_stale_start_landing_after_its_read_is_found_by_a_second_read() {
    let cfg = Config {
        deliveries: 1,
        faults: 2,
        ..base()
    };
    let (model, states) = replay(
        cfg,
        &[
            (Post(0), 0),
            (Step(0), 0),
            (Land(0, OK), 0), // PutQueued
            (Land(0, OK), 0), // Invoke
            (Land(0, OK), 0), // MarkEnqueued: 202
            (Deliver(0, 0), 0),
            (Step(1), 0),
            (Land(1, OK), 0), // the claim lands: the start is sent
            (Tick, world::T0 + 50),
            (Land(1, Fate::Stale), 0), // the start's first try times out
            (Tick, world::T0 + 100),
            (Land(1, Fate::Dropped), 0), // the next try fails: the read
            (Land(1, OK), 0),            // the read: NotStarted, the release sent
            (Orphan(0, true), 0),        // the start's first try lands now
            (Land(1, OK), 0),            // the release: refused, a second read
            (Land(1, OK), 0),            // the second read: started
        ],
    );
    let end = states.last().unwrap();
    assert_eq!(task0(&states).attempts, 1);
    // Started after all; here too late to begin the work (its lease's stop
    // point has come), which property 5 allows as it does any start known
    // too late.
    assert_eq!(end.claims[0].start, world::StartEnd::Late);
    assert!(!fails(&model, &states, "5."), "property 5 holds");
}

/// Found by `deep_one_key` with one failed call (`make model`): a keyed
/// POST's record write landed and lost its answer, and while the POST
/// waited its key's hold ended; a retry took the key over, found the record
/// and carried the task on (202). The first POST then answered 5xx, its
/// release of the key refused: a 5xx task that runs (property 2). Fixed:
/// `protocol::after_key_release` answers 202 when the release is refused or
/// unknown, since the request that took the key over may run the task.
/// tests/async_write_faults.rs replays it at the wire.
#[test]
fn a_request_whose_key_was_taken_over_answers_202_with_the_task_the_retry_runs() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        offsets: vec![0],
        ..scenario(&[true, true], 1, 0, 0, 1, 0)
    };
    let t = |ms: u64| world::T0 + ms;
    let (model, states) = replay(
        cfg,
        &[
            (Post(0), 0),
            (Step(0), 0),
            (Tick, t(50)),
            (Land(0, OK), 0), // PutKey
            (Tick, t(100)),
            (Land(0, Fate::Lost), 0), // PutQueued: lands, its answer lost
            (Tick, t(101)),           // the first POST's hold is over
            (Post(0), 0),
            (Step(1), 0),
            (Land(1, OK), 0), // PutKey: refused
            (Land(1, OK), 0), // ReadKey: TakeOver
            (Land(1, OK), 0), // TakeOver, keeping the key's task
            (Tick, t(150)),
            (Land(0, OK), 0), // the first POST's ReleaseKey: refused
            (Tick, t(151)),
            (Land(1, OK), 0), // PutQueued: refused, the record is there
            (Tick, t(201)),
            (Land(1, OK), 0), // Read: adopt says Resume
            (Tick, t(251)),
            (Land(1, OK), 0), // ExtendAnswerBy
            (Land(1, OK), 0), // Invoke
            (Deliver(0, 0), 0),
            (Step(2), 0),
            (Land(2, OK), 0), // Claim: refused (unmarked)
            (Land(2, OK), 0), // Read
            (Land(1, OK), 0), // MarkEnqueued
            (Land(1, OK), 0), // AnswerKey: 202
            (Tick, t(427)),
            (Step(2), 0),
            (Land(2, OK), 0), // Read
            (Land(2, OK), 0), // Claim
            (Land(2, OK), 0), // Start: the work begins
        ],
    );
    let hist = &states.last().unwrap().hist[0];
    assert_eq!((hist.told_5xx, hist.told_202, hist.started), (false, 2, 1));
    assert!(holds(&model, &states, "2."), "property 2 holds");
    assert!(holds(&model, &states, "3."), "property 3 holds");
}

/// Found reading the paths of `deep_one_key_a_lost_answer` with a second
/// failed call (two failed calls with one key did not finish in 17 minutes
/// here), under the previous protocol:
/// the first POST's record write lands and loses its answer, its release of
/// the key never lands (throttled) and the key, read, is still its own: it
/// answered 503, and the retry that took the key over after the hold found
/// the record unmarked, resumed it and ran the task told 503 (property 2).
/// Fixed: `protocol::after_key_settle` fails the task (condition
/// `cond::UNMARKED`) before the 503, so the retry finds it failed and gives
/// the key a new task. tests/async_write_faults.rs replays it at the wire.
#[test]
fn a_request_whose_key_release_never_landed_fails_its_task_before_its_503() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        offsets: vec![0],
        ..scenario(&[true, true], 1, 0, 0, 2, 0)
    };
    let t = |ms: u64| world::T0 + ms;
    let (model, states) = replay(
        cfg,
        &[
            (Post(0), 0),
            (Step(0), 0),
            (Tick, t(50)),
            (Land(0, OK), 0), // PutKey
            (Tick, t(100)),
            (Land(0, Fate::Lost), 0), // PutQueued: lands, its answer lost
            (Tick, t(150)),
            (Land(0, Fate::Dropped), 0), // ReleaseKey: never lands
            (Tick, t(200)),
            (Land(0, OK), 0), // ReadKey: still its own
            (Tick, t(250)),
            (Land(0, OK), 0), // MarkNotEnqueued: the task failed, then 503
            (Post(0), 0),
            (Step(1), 0),
            (Land(1, OK), 0), // PutKey: refused
            (Land(1, OK), 0), // ReadKey: TakeOver (the hold is over)
            (Land(1, OK), 0), // TakeOver, keeping the key's task
            (Tick, t(300)),
            (Land(1, OK), 0), // PutQueued: refused, the record is there
            (Tick, t(350)),
            (Land(1, OK), 0), // Read: failed, so adopt says NewTask
            (Tick, t(400)),
            (Land(1, OK), 0), // ReplaceTask: the key's task is now task 2
            (Tick, t(450)),
            (Land(1, OK), 0), // PutQueued of the new task
            (Tick, t(500)),
            (Land(1, OK), 0), // Invoke
            (Tick, t(550)),
            (Land(1, OK), 0), // MarkEnqueued
            (Land(1, OK), 0), // AnswerKey: 202
            (Deliver(0, 0), 0),
            (Step(2), 0),
            (Land(2, OK), 0), // Claim
            (Land(2, OK), 0), // Start: the work begins
        ],
    );
    let hist = &states.last().unwrap().hist;
    assert_eq!((hist[0].told_5xx, hist[0].started), (true, 0));
    assert_eq!((hist[2].told_202, hist[2].started), (1, 1));
    assert!(holds(&model, &states, "2."), "property 2 holds");
    assert!(holds(&model, &states, "3."), "property 3 holds");
}

/// Found by `deep_one_key_two_lost_answers` (2026-12-07), the first check of
/// two keyed POSTs with two lost answers to finish: the first POST's hold
/// ends while its task is enqueued and running; a retry's takeover of the
/// key lands and loses its answer, the SDK's next try is refused, and the
/// key, read, is the retry's own (`KeyNext::Ours`), naming the first POST's
/// task. The retry carried it on as a task of its own: the record's write
/// (refused, the record is there) lost its answer, so it released the key and
/// answered 5xx for a task that runs (property 2). Fixed: `after_key_read`
/// says whether the key's task is the request's own or `adopted`, and an
/// adopted one is read as a takeover reads it (`protocol::adopt`): enqueued,
/// so 202. tests/async_write_faults.rs replays it at the wire.
#[test]
fn a_retry_whose_takeover_lost_its_answer_adopts_the_keys_running_task_and_answers_202() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        offsets: vec![0],
        lost_only: true,
        ..scenario(&[true, true], 1, 0, 0, 2, 0)
    };
    let t = |ms: u64| world::T0 + ms;
    let (model, states) = replay(
        cfg,
        &[
            (Post(0), 0),
            (Step(0), 0),
            (Land(0, OK), 0), // PutKey, holding the key until t(100)
            (Tick, t(50)),
            (Land(0, OK), 0), // PutQueued
            (Post(0), 0),
            (Step(1), 0),
            (Tick, t(100)),
            (Land(1, OK), 0), // PutKey: refused
            (Land(0, OK), 0), // Invoke
            (Deliver(0, 0), 0),
            (Step(2), 0),
            (Tick, t(101)),
            (Tick, t(150)),
            (Land(1, OK), 0), // ReadKey: the hold is over, TakeOver
            (Land(0, OK), 0), // MarkEnqueued
            (Land(2, OK), 0), // Claim
            (Land(2, OK), 0), // Start: the work begins
            (Tick, t(200)),
            (Step(2), 0),
            (Land(1, Fate::LostRetry), 0), // TakeOver: lands, its answer lost
            (Land(1, OK), 0),              // its next try: refused
            (Land(1, OK), 0),              // PutKey: refused
            (Land(1, OK), 0),              // ReadKey: Ours, the first POST's task
            (Land(0, OK), 0),              // the first POST's AnswerKey: refused, 202
            (Tick, t(250)),
            (Land(1, Fate::Lost), 0), // PutQueued: lands (refused), its answer lost
            (Land(1, OK), 0),         // Read: enqueued, adopt says Accepted
            (Land(1, OK), 0),         // AnswerKey: 202
        ],
    );
    let hist = &states.last().unwrap().hist[0];
    assert_eq!((hist.told_5xx, hist.told_202, hist.started), (false, 2, 1));
    assert!(holds(&model, &states, "2."), "property 2 holds");
    assert!(holds(&model, &states, "3."), "property 3 holds");
}
