//! Final failures (no retries left, work that fails for good), a cancel while Lambda waits to retry, and the start and the lease near their limits.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_retries_configured_the_first_failed_attempt_is_final_and_lambdas_record_leaves_its_error()
 {
    let _turn = one_at_a_time().await;
    // TASK_MAX_RETRY_ATTEMPTS and the EventInvokeConfig's MaximumRetryAttempts
    // come from one template parameter: 0 for both.
    let mut policy = Policy::scaled(TIMEOUT);
    policy.retry_delays.clear();
    let api = RuntimeApi::start_with_policy(test_function(), policy).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture)
        .env("TASK_MAX_RETRY_ATTEMPTS", "0")
        .spawn();
    let task_id = fixture.enqueued_task().await;

    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 1});
    send_event(&api, &event).await;
    let events = api.wait_for_events(PATIENCE).await;

    let error = "simulated failure (fail_attempts = 1)";
    assert_eq!(
        outcomes(&events),
        [Outcome::Error {
            error_type: "TaskFailed".to_owned(),
            message: format!("task {task_id} failed on attempt 1: {error}"),
        }],
        "a function error still: the destination record follows"
    );
    let reports = api.async_events();
    let Some(EventEnd::Destination(destination)) = &reports[0].end else {
        panic!("Lambda gave up on the event: {reports:#?}");
    };
    assert_eq!(destination.condition, Condition::RetriesExhausted);
    assert_eq!(destination.state, MessageState::Deleted);
    assert_eq!(
        record(&api, &task_id).await,
        ended("failed", 1, json!(error))
    );
    assert_eq!(
        fixture
            .task_item(&task_id)
            .await
            .expect("record")
            .get("retry_at"),
        None,
        "no retry to wait for"
    );
    assert_eq!(started_attempts(&all_lines(&[&function]), &task_id), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_that_fails_for_good_ends_failed_at_once_without_a_function_error_so_lambda_neither_retries_nor_records_it()
 {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();
    let task_id = fixture.enqueued_task().await;

    send_event(
        &api,
        &json!({"task_id": task_id, "delay_ms": 0, "fail_for_good": true}),
    )
    .await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "failed", 1, false)]
    );
    let reports = api.async_events();
    assert!(
        matches!(reports[0].end, Some(EventEnd::Succeeded)),
        "{reports:#?}"
    );
    assert!(api.sqs_deliveries().is_empty());
    assert_eq!(
        record(&api, &task_id).await,
        ended(
            "failed",
            1,
            json!("simulated failure for good (fail_for_good)")
        )
    );
    let lines = all_lines(&[&function]);
    assert_eq!(started_attempts(&lines, &task_id), [1]);
    assert_eq!(
        lines_about(&lines, &task_id, "task failed for good").len(),
        1,
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waiting_for_lambdas_retry_can_be_canceled_and_the_retry_then_does_nothing() {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();
    let task_id = fixture.enqueued_task().await;

    let request_id = send_event(
        &api,
        &json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 1}),
    )
    .await;
    let failed_by = deliveries_ended(&api, 1).await;
    let error = "simulated failure (fail_attempts = 1)";
    assert_waits_for_lambdas_retry(&api, &fixture, &task_id, 1, error, failed_by).await;
    let answer = http(&api, "DELETE", &format!("/tasks/{task_id}"), None, &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        (&answer.body["status"], &answer.body["attempts"]),
        (&json!("canceled"), &json!(1))
    );
    assert_eq!(answer.header("retry-after"), None);
    let events = api.wait_for_events(PATIENCE).await;

    assert!(events.iter().all(|e| e.request_id == request_id));
    assert_eq!(
        outcomes(&events),
        [
            Outcome::Error {
                error_type: "TaskFailed".to_owned(),
                message: format!("task {task_id} failed on attempt 1: {error}"),
            },
            task_answer(&task_id, "canceled", 1, true),
        ],
        "Lambda's retry came, and found the task canceled"
    );
    assert!(matches!(
        api.async_events()[0].end,
        Some(EventEnd::Succeeded)
    ));
    let (status, attempts, _, result) = record(&api, &task_id).await;
    assert_eq!(
        (status.as_str(), attempts, result),
        ("canceled", 1, Value::Null)
    );
    assert_eq!(started_attempts(&all_lines(&[&function]), &task_id), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_process_dies_before_the_work_starts_is_not_an_attempt() {
    let _turn = one_at_a_time().await;
    // The first claim lands at once, its answer held 1.5 s (within the SDK's
    // attempt timeout): its process is killed meanwhile, before it could
    // start the work, and Lambda's retry, 2 s later, takes over the lapsed
    // lease. Only the retry started the work: it is attempt 1. (The chaos
    // run meets the same when a process dies, or its invocation times out,
    // between a claim and the start of its work.)
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        first_call(
            |call| update_is(call, is_claim),
            Fault::SlowAnswer(Duration::from_millis(1500)),
        ),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
    let first = command.clone().spawn();
    let task_id = fixture.enqueued_task().await;

    let request_id = send_event(&api, &json!({"task_id": task_id, "delay_ms": 100})).await;
    let sent = Instant::now();
    while !proxy
        .calls()
        .iter()
        .any(|call| call.update.as_deref().is_some_and(is_claim) && call.landed())
    {
        assert!(sent.elapsed() < Duration::from_secs(10), "no claim landed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let second = command.spawn();
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [
            Outcome::Error {
                error_type: "Runtime.ExitError".to_owned(),
                message: format!(
                    "RequestId: {request_id} Error: Runtime exited with error: signal: killed"
                ),
            },
            task_answer(&task_id, "succeeded", 1, false),
        ]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    assert_eq!(
        landed(&proxy, &task_id, is_claim),
        [true, true],
        "both claims landed: {}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(
        landed(&proxy, &task_id, is_start),
        [true],
        "only the retry's claim started: {}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(
        started_attempts(&all_lines(&[&first, &second]), &task_id),
        [1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_answered_past_its_leases_stop_point_is_a_counted_attempt_that_never_ran_and_lambdas_retry_runs_attempt_2()
 {
    let _turn = one_at_a_time().await;
    // The start lands at once, its answer held 600 ms: past the stop point of
    // the 300 ms lease it took (a tick, 100 ms, before that lease ends), so
    // no renewal may make up for it either (another delivery may take the
    // lapsed lease over). The work does not begin, and the attempt stays
    // counted: the one case where a counted attempt never ran its work
    // (docs/task-protocol.md, "The lease"). The delivery ends in an error,
    // and Lambda's retry runs the work as attempt 2.
    let Faulted {
        proxy,
        api,
        fixture: _fixture,
        function,
        task_id,
    } = faulted(
        first_call(
            |call| update_is(call, is_start),
            Fault::SlowAnswer(Duration::from_millis(600)),
        ),
        TIMEOUT,
    )
    .await;

    let request_id = send_event(&api, &json!({"task_id": task_id, "delay_ms": 100})).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert!(events.iter().all(|e| e.request_id == request_id));
    assert_eq!(
        outcomes(&events),
        [
            Outcome::Error {
                error_type: "TaskStoreUnavailable".to_owned(),
                message: "task store unavailable: attempt 1 started, but its answer came too late to begin the work".to_owned(),
            },
            task_answer(&task_id, "succeeded", 2, false),
        ],
        "{}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(record(&api, &task_id).await, succeeded(2, 100));
    assert_eq!(landed(&proxy, &task_id, is_claim), [true, true]);
    assert_eq!(
        landed(&proxy, &task_id, is_start),
        [true, true],
        "each claim started once: {}",
        writes_of(&proxy, &task_id)
    );
    assert!(landed(&proxy, &task_id, is_release).is_empty());
    let lines = all_lines(&[&function]);
    assert_eq!(started_attempts(&lines, &task_id), [2]);
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_landed_but_whose_answer_failed_counts_its_attempt_once_and_runs_it() {
    let _turn = one_at_a_time().await;
    // The first try of the start lands and is answered 500. The SDK's next
    // try, within a second, is refused (the claim is in `started_claims`):
    // it counts nothing. The read after it finds the claim started, its
    // lease (3 s, from a 30 s invocation) still short of its stop point, and
    // the work runs as attempt 1.
    let Faulted {
        proxy,
        api,
        fixture: _fixture,
        function,
        task_id,
    } = faulted(
        first_call(
            |call| update_is(call, is_start),
            Fault::ServerErrorAfterWrite,
        ),
        Duration::from_secs(30),
    )
    .await;

    send_event(&api, &json!({"task_id": task_id, "delay_ms": 100})).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)],
        "{}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    assert_eq!(landed(&proxy, &task_id, is_claim), [true]);
    assert_eq!(
        landed(&proxy, &task_id, is_start),
        [true, false],
        "landed, then the SDK's retry refused: {}",
        writes_of(&proxy, &task_id)
    );
    let lines = all_lines(&[&function]);
    assert_eq!(started_attempts(&lines, &task_id), [1]);
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_comes_too_late_stops_the_work_and_each_attempt_that_started_is_counted_once()
 {
    let _turn = one_at_a_time().await;
    // The first renewal is held 400 ms on its way: the attempt gives up on
    // it at its lease's stop point and stops the work. It started, so it
    // stays counted; Lambda's retry runs the work again as attempt 2.
    let Faulted {
        proxy,
        api,
        fixture: _fixture,
        function,
        task_id,
    } = faulted(
        first_call(
            |call| update_is(call, is_renewal),
            Fault::SlowRequest(Duration::from_millis(400)),
        ),
        TIMEOUT,
    )
    .await;

    send_event(&api, &json!({"task_id": task_id, "delay_ms": 1000})).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [
            Outcome::Error {
                error_type: "TaskStoreUnavailable".to_owned(),
                message: "task store unavailable: UpdateItem (lease): not renewed in time"
                    .to_owned(),
            },
            task_answer(&task_id, "succeeded", 2, false),
        ],
        "{}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(record(&api, &task_id).await, succeeded(2, 1000));
    assert_eq!(landed(&proxy, &task_id, is_start), [true, true]);
    let lines = all_lines(&[&function]);
    assert_eq!(started_attempts(&lines, &task_id), [1, 2]);
    assert_eq!(
        lines_about(
            &lines,
            &task_id,
            "work stopped: the lease could not be kept"
        )
        .len(),
        1
    );
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_lands_too_close_to_its_tasks_backstop_is_released_counting_nothing_and_the_backstop_ends_the_task()
 {
    let _turn = one_at_a_time().await;
    // The task is made so old that a write sent more than 0.6 s from now
    // could land after its backstop. The claim is sent before then (its
    // cutoff lets it land) and held 1.5 s on its way: once it has landed,
    // fewer than two ticks of a lease are left before that point, so the
    // claim is released (`queued` again, nothing to take back) and the event
    // given back. Lambda's retry, 2 s later, may no longer claim the task: it
    // answers it ended (failed by the backstop), and a client reads so once
    // the backstop has passed.
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        first_call(
            |call| update_is(call, is_claim),
            Fault::SlowRequest(Duration::from_millis(1500)),
        ),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let max_age = Policy::scaled(TIMEOUT).max_event_age;
    let function = command(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .env("TASK_EVENT_MAX_AGE_SECONDS", &max_age.as_secs().to_string())
        .spawn();
    let task_id = fixture.enqueued_task().await;
    let horizon_ms = (max_age + Duration::from_secs(5 * 60)).as_millis() as u64;
    let last_write_ms = support::now_millis() + 600;
    let created_ms = last_write_ms + WRITE_LANDS_WITHIN_MS + CLOCK_SKEW_MS - horizon_ms;
    fixture
        .backdate(&task_id, created_ms)
        .send()
        .await
        .expect("backdate the record");

    let request_id = send_event(&api, &json!({"task_id": task_id, "delay_ms": 100})).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert!(events.iter().all(|e| e.request_id == request_id));
    assert_eq!(
        outcomes(&events),
        [
            Outcome::Error {
                error_type: "TaskLeaseTooShort".to_owned(),
                message: format!("task {task_id}: too little time is left to start the work"),
            },
            task_answer(&task_id, "failed", 0, true),
        ],
        "{}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(
        landed(&proxy, &task_id, is_claim),
        [true, false],
        "the retry's claim is refused by its cutoff: {}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(landed(&proxy, &task_id, is_release), [true]);
    assert!(
        landed(&proxy, &task_id, is_start).is_empty(),
        "never started"
    );
    // Until the backstop, a client still reads it queued, nothing counted.
    assert_eq!(
        record(&api, &task_id).await,
        ended("queued", 0, Value::Null)
    );
    let backstop_ms = created_ms + horizon_ms;
    tokio::time::sleep(Duration::from_millis(
        (backstop_ms + 100).saturating_sub(support::now_millis()),
    ))
    .await;
    assert_eq!(
        record(&api, &task_id).await,
        ended("failed", 0, json!(NEVER_DELIVERED))
    );
    let answer = http(&api, "DELETE", &format!("/tasks/{task_id}"), None, &[]).await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert!(started_attempts(&all_lines(&[&function]), &task_id).is_empty());
}
