//! Dead invocations and the lease.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_invocation_died_is_taken_over_once_its_lease_has_passed() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 4000).await;

    // The first delivery's invocation has 3 s left: it claims the task, then is
    // killed at its deadline in the middle of the 4 s task, as Lambda kills a
    // timed-out invocation. Its claim's lease ends at that deadline.
    let lease_ms = 3000;
    let deadline = now_millis() + lease_ms;
    let dying = {
        let function = fixture.function.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(lease_ms),
                invoke_with_deadline(&function, &payload, deadline),
            )
            .await
        })
    };
    wait_for_status(&fixture, &task_id, "running").await;

    // Within the lease, another delivery leaves it alone: it waits for that
    // attempt's outcome while its own time allows, and with too little time
    // left (600 ms) it gives the event back to Lambda, so that Lambda
    // delivers it again, rather than end as a success that leaves the task
    // to an attempt that may die.
    let early = invoke_with_deadline(&fixture.function, &payload, now_millis() + 600).await;
    match early {
        Err(FunctionError::Task(TaskError::HeldElsewhere(id))) => assert_eq!(id, task_id),
        other => panic!("expected TaskHeldElsewhere, got {other:?}"),
    }
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(
        (string(&item, "status"), number(&item, "attempts")),
        ("running".to_owned(), 1),
        "the early delivery changed nothing"
    );
    // It ends at its deadline, before the task: killed, or stopped by itself
    // a renewal interval short of it (then with an error, so that Lambda
    // retries), or short of its lease if a renewal came too late.
    match dying.await.expect("join") {
        Err(_killed) => {}
        Ok(Err(err)) => assert!(
            [
                "task store unavailable: the invocation reached its deadline; the work was stopped",
                "task store unavailable: UpdateItem (lease): not renewed in time",
            ]
            .contains(&err.to_string().as_str()),
            "{err}"
        ),
        Ok(Ok(reply)) => panic!("the first attempt finished: {}", reply.body),
    }

    // Dead, it left the task running, under its lease.
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(string(&item, "status"), "running");
    assert_eq!(number(&item, "attempts"), 1);
    assert!(
        number(&item, "lease_until") <= deadline,
        "a lease never outlives its invocation"
    );
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("running".to_owned(), 1, Value::Null)
    );

    // The next delivery, with time to wait, takes the task over once that
    // lease has passed.
    let takeover = invoke(&fixture.function, &payload)
        .await
        .expect("the takeover succeeds");
    assert_eq!(
        takeover.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("succeeded".to_owned(), 2, Value::Null)
    );
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(
        item.get("lease_until"),
        None,
        "a finished task holds no lease"
    );

    // And a succeeded task never runs again.
    let again = invoke(&fixture.function, &payload)
        .await
        .expect("a duplicate succeeds");
    assert_eq!(
        again.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": true})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_outlives_its_lease_cannot_overwrite_the_attempt_that_took_over() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 2000).await;

    // Attempt 1's invocation has 300 ms (a lease of 150 ms renewed every
    // 50 ms, never past the deadline) and is not killed (Lambda would kill
    // it; this proves the record is safe even if something outlives its
    // lease): it stops its own work a renewal interval before its deadline.
    let deadline = now_millis() + 300;
    let late = {
        let function = fixture.function.clone();
        let payload = payload.clone();
        tokio::spawn(async move { invoke_with_deadline(&function, &payload, deadline).await })
    };
    wait_for_status(&fixture, &task_id, "running").await;
    sleep_until(deadline + 50).await;
    let takeover = {
        let function = fixture.function.clone();
        let payload = payload.clone();
        tokio::spawn(async move { invoke(&function, &payload).await })
    };

    // Attempt 1 ends first, and records nothing over attempt 2's claim.
    let late = late
        .await
        .expect("join")
        .expect_err("attempt 1 is cut short");
    // It stopped its own work: a renewal interval before its deadline, or
    // before its lease when a renewal came too late for its 50 ms interval.
    assert!(
        [
            "task store unavailable: the invocation reached its deadline; the work was stopped",
            "task store unavailable: UpdateItem (lease): not renewed in time",
        ]
        .contains(&late.to_string().as_str()),
        "{late}"
    );
    let takeover = takeover.await.expect("join").expect("attempt 2 succeeds");
    assert_eq!(
        takeover.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("succeeded".to_owned(), 2, Value::Null)
    );
}

/// The claim's `UpdateItem` lands but its answer is lost; the SDK retries and
/// the retry fails the claim's own condition (the task is `running` now). The
/// delivery must still run the task it claimed (the record holds its claim),
/// as attempt 1: not report a duplicate and succeed, which would leave the
/// task `running` with no invocation behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_still_runs_the_task() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 0).await;
    // The delivery's first DynamoDB call, on the proxy's first connection, is the claim.
    let proxy = support::answer_losing_proxy(support::dynamodb_endpoint()).await;
    let function = fixture.function_with_dynamodb(&proxy);

    let outcome = invoke(&function, &payload)
        .await
        .expect("the delivery succeeds");
    assert_eq!(
        (outcome.body.clone(), task_status(&fixture, &task_id).await),
        (
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false}),
            ("succeeded".to_owned(), 1, Value::Null)
        )
    );
}
