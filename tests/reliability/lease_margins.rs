//! The lease's margins, at the wire.

use super::*;

/// The attempts of `task_id`'s lines that say `message`.
pub(super) fn logged(task_id: &str, message: &str) -> Vec<Option<u64>> {
    task_logs::lines_about(
        &task_logs::log_lines(&task_logs::captured_lines()),
        task_id,
        message,
    )
    .iter()
    .map(|line| line.attempt())
    .collect()
}

/// A renewal of the lease (src/tasks/claims.rs), and nothing else.
const RENEWAL: &str = "SET lease_until = :lease";
/// The claim's update.
const CLAIM: &str = "claim_id = :claim";
/// The start's update: it counts the attempt.
const START: &str = "attempts = attempts + :one";
/// How late past its due time a timer may fire and a line be written here
/// (two shared cores, a debug build): well under the 500 ms renewal interval
/// the margins are counted in.
const SCHEDULING_TOLERANCE_MS: u64 = 100;

fn is(call: &Call, update: &str) -> bool {
    call.update.as_deref().is_some_and(|u| u.contains(update))
}

/// The lease value a claim or renewal asked for.
fn lease_of(call: &Call) -> u64 {
    call.values[":lease"]["N"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("a lease")
}

/// A 15 s invocation holds a 1.5 s lease renewed every 500 ms. Its first two
/// renewals are answered; the third lands but its answer is lost, and the
/// SDK (one attempt of 440 ms here) gives up on it 60 ms before the stop
/// point: the attempt must stop its work at the stop point, one renewal
/// interval before the lease it knows of ends, not sleep another interval
/// past it. A delivery that waits for the task takes it over only after
/// that, and runs it to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_renewal_fails_just_before_the_stop_point_stops_its_work_a_renewal_interval_before_its_lease_ends()
 {
    let _turn = one_at_a_time().await;
    capture_logs();
    let fixture = Fixture::new(&dead_endpoint()).await;
    let task_id = fixture.enqueued_task().await;
    let event = events::task(&task_id, 5_000);
    let renewals = AtomicUsize::new(0);
    let renewals_of = task_id.clone();
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(move |seen| {
            let renews = seen.operation == "UpdateItem"
                && seen.body["UpdateExpression"] == RENEWAL
                && seen.body["Key"]["task_id"]["S"] == renewals_of.as_str();
            // The task's third renewal, the first attempt's; every other passes.
            if renews && renewals.fetch_add(1, Ordering::SeqCst) == 2 {
                Fault::LoseAnswer
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let tick_ms = 500;
    let function = Function::new(fixture.state_through(
        proxy.url(),
        &dead_endpoint(),
        Duration::from_millis(440),
        1,
    ));
    let deadline = now_millis() + 15_000;
    let first = invoke_with_deadline(&function, &event, deadline).await;
    let stopped_at = now_millis();
    match first {
        Err(FunctionError::Task(TaskError::Store(message))) => {
            assert_eq!(message, "UpdateItem (lease): not renewed in time")
        }
        other => panic!("expected the work stopped for its lease, got {other:?}"),
    }

    let calls = proxy.calls();
    let renewals: Vec<&Call> = calls.iter().filter(|c| is(c, RENEWAL)).collect();
    assert_eq!(
        renewals.iter().map(|c| c.fault).collect::<Vec<_>>(),
        [Fault::Pass, Fault::Pass, Fault::LoseAnswer],
        "no renewal after the failed one: {renewals:#?}"
    );
    // The lease the attempt knows it holds: its last renewal that was answered.
    let lease_until = lease_of(renewals[1]);
    let stop_point = lease_until - tick_ms;
    let failed = renewals[2];
    eprintln!(
        "renewal sent {} ms before the stop point, the SDK gave up on it 440 ms later; the work stopped {} ms after the stop point",
        stop_point as i64 - failed.at_ms as i64,
        stopped_at as i64 - stop_point as i64
    );
    assert!(
        stopped_at <= stop_point + SCHEDULING_TOLERANCE_MS,
        "stopped at {stopped_at}, {} ms past the stop point {stop_point} (lease until {lease_until})",
        stopped_at - stop_point
    );
    assert!(
        calls.iter().all(|c| c.at_ms <= stopped_at),
        "nothing after the stop"
    );
    assert_eq!(logged(&task_id, "task started"), [Some(1)]);
    assert_eq!(
        logged(&task_id, "work stopped: the lease could not be kept"),
        [Some(1)]
    );
    // The lost renewal landed: the record holds the task a little longer
    // than the attempt knew. Nobody else may start before that lease ends.
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(
        (string(&item, "status"), number(&item, "attempts")),
        ("running".to_owned(), 1)
    );
    let recorded_lease = number(&item, "lease_until");
    assert_eq!(recorded_lease, lease_of(failed));

    let takeover = invoke(&function, &event)
        .await
        .expect("the takeover succeeds");
    assert_eq!(
        takeover.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    assert_eq!(logged(&task_id, "task started"), [Some(1), Some(2)]);
    let claims: Vec<Call> = proxy
        .calls()
        .into_iter()
        .filter(|c| is(c, CLAIM) && c.landed())
        .collect();
    assert_eq!(claims.len(), 2, "{claims:#?}");
    assert!(
        claims[1].at_ms > recorded_lease && recorded_lease > stopped_at,
        "attempt 2 claimed at {} after the lease of {recorded_lease}, attempt 1 stopped at {stopped_at}",
        claims[1].at_ms
    );
}

/// A claim whose answer comes 700 ms late leaves less than two renewal
/// intervals (2 x 500 ms) of its 1.5 s lease, and every renewal is throttled
/// through the SDK's tries. The claim counts nothing and its lease does not
/// matter: the start write that follows takes a fresh lease, so the work
/// starts with two intervals ahead and the task succeeds as attempt 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_answered_late_counts_nothing_and_the_start_takes_a_fresh_lease_for_attempt_1() {
    let _turn = one_at_a_time().await;
    capture_logs();
    let fixture = Fixture::new(&dead_endpoint()).await;
    let task_id = fixture.enqueued_task().await;
    let event = events::task(&task_id, 50);
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|seen| {
            let update = seen.body["UpdateExpression"].as_str().unwrap_or_default();
            if update.contains(CLAIM) {
                Fault::SlowAnswer(Duration::from_millis(700))
            } else if update == RENEWAL {
                Fault::Throttle
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let function = fixture.function_with_dynamodb(proxy.url());
    let outcome = invoke_with_deadline(&function, &event, now_millis() + 15_000)
        .await
        .expect("the task runs");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
    let calls = proxy.calls();
    let claim = calls.iter().find(|c| is(c, CLAIM)).expect("a claim");
    let start = calls.iter().find(|c| is(c, START)).expect("a start");
    assert!(claim.landed() && start.landed());
    assert!(
        lease_of(start) >= lease_of(claim) + 700,
        "a fresh lease: {calls:#?}"
    );
    assert!(
        calls.iter().all(|c| !is(c, RENEWAL)),
        "a 50 ms work needs no renewal: {calls:#?}"
    );
    assert_eq!(logged(&task_id, "task started"), [Some(1)]);
}

/// The start write's answer comes 700 ms late, leaving less than two renewal
/// intervals of the lease it wrote: the work begins only after a renewal
/// gives them back, and the task succeeds as attempt 1, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_answered_late_begins_the_work_only_once_a_renewal_leaves_two_renewal_intervals() {
    let _turn = one_at_a_time().await;
    capture_logs();
    let fixture = Fixture::new(&dead_endpoint()).await;
    let task_id = fixture.enqueued_task().await;
    let event = events::task(&task_id, 50);
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|seen| {
            let update = seen.body["UpdateExpression"].as_str().unwrap_or_default();
            if update.contains(START) {
                Fault::SlowAnswer(Duration::from_millis(700))
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let function = fixture.function_with_dynamodb(proxy.url());
    let outcome = invoke_with_deadline(&function, &event, now_millis() + 15_000)
        .await
        .expect("the task runs");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
    let calls = proxy.calls();
    let start = calls.iter().find(|c| is(c, START)).expect("a start");
    let renewal = calls
        .iter()
        .find(|c| is(c, RENEWAL) && c.landed())
        .expect("a renewal before the work began");
    assert!(renewal.at_ms >= start.at_ms + 700, "{calls:#?}");
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(number(&item, "attempts"), 1);
    assert_eq!(logged(&task_id, "task started"), [Some(1)]);
}
