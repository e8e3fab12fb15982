//! Attempts that die, panic or fail to finish, a duplicate beside a healthy attempt, an event that expires: each retried by Lambda to its end.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_after_its_claim_is_retried_by_lambda_and_the_retry_succeeds_as_attempt_2()
{
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture);
    let first = command.clone().spawn();

    let task_id = start_task(&api, 1500).await;
    wait_for_line(&[&first], &task_id, "task started").await;
    first.kill();
    let second = command.spawn();
    let events = api.wait_for_events(PATIENCE).await;

    let request_id = &events[0].request_id;
    assert_eq!(
        outcomes(&events),
        [
            Outcome::Error {
                error_type: "Runtime.ExitError".to_owned(),
                message: format!(
                    "RequestId: {request_id} Error: Runtime exited with error: signal: killed"
                ),
            },
            task_answer(&task_id, "succeeded", 2, false),
        ]
    );
    assert_eq!(events[1].request_id, *request_id, "Lambda's retry");
    assert_eq!(record(&api, &task_id).await, succeeded(2, 1500));
    let lines = all_lines(&[&first, &second]);
    assert_eq!(started_attempts(&lines, &task_id), [1, 2]);
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_work_leaves_the_task_queued_with_its_error_until_lambdas_retry_succeeds_as_attempt_2()
 {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();
    let task_id = fixture.enqueued_task().await;

    let request_id = send_event(
        &api,
        &json!({"task_id": task_id, "delay_ms": 100, "panic_attempts": 1}),
    )
    .await;
    // Between the failed attempt and Lambda's retry (2 s later, scaled).
    let failed_by = deliveries_ended(&api, 1).await;
    let error = "the task's work panicked";
    assert_waits_for_lambdas_retry(&api, &fixture, &task_id, 1, error, failed_by).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert!(events.iter().all(|e| e.request_id == request_id));
    assert_eq!(
        outcomes(&events),
        [
            Outcome::Error {
                error_type: "TaskFailed".to_owned(),
                message: format!("task {task_id} failed on attempt 1: the task's work panicked"),
            },
            task_answer(&task_id, "succeeded", 2, false),
        ]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(2, 100));
    let lines = all_lines(&[&function]);
    assert_eq!(started_attempts(&lines, &task_id), [1, 2]);
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_that_panics_on_every_attempt_waits_queued_between_attempts_and_its_last_attempt_ends_it_failed_with_its_own_error()
 {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();
    let task_id = fixture.enqueued_task().await;

    let event = json!({"task_id": task_id, "delay_ms": 100, "panic_attempts": 3});
    send_event(&api, &event).await;
    let error = "the task's work panicked";
    // Never `failed` while Lambda will retry: queued, with the attempt's
    // error, after the first and after the second failure.
    for attempt in [1, 2] {
        let failed_by = deliveries_ended(&api, attempt as usize).await;
        assert_waits_for_lambdas_retry(&api, &fixture, &task_id, attempt, error, failed_by).await;
    }
    let events = api.wait_for_events(PATIENCE).await;

    let panicked = |attempt: u32| Outcome::Error {
        error_type: "TaskFailed".to_owned(),
        message: format!("task {task_id} failed on attempt {attempt}: the task's work panicked"),
    };
    assert_eq!(outcomes(&events), [panicked(1), panicked(2), panicked(3)]);
    let reports = api.async_events();
    let Some(EventEnd::Destination(destination)) = &reports[0].end else {
        panic!("Lambda gave up on the event: {reports:#?}");
    };
    assert_eq!(destination.condition, Condition::RetriesExhausted);
    assert_eq!(destination.record["requestPayload"], event);
    assert_eq!(destination.state, MessageState::Deleted);
    assert_eq!(
        destination
            .receives
            .iter()
            .map(|r| r.answer.clone())
            .collect::<Vec<_>>(),
        [Answer::Response(br#"{"batchItemFailures":[]}"#.to_vec())],
        "the record is taken, and the task keeps its own error"
    );
    assert_eq!(
        record(&api, &task_id).await,
        ended("failed", 3, json!(error))
    );
    let answer = http(&api, "DELETE", &format!("/tasks/{task_id}"), None, &[]).await;
    assert_eq!(answer.status, 409, "failed is final: {answer:?}");
    let lines = all_lines(&[&function]);
    assert_eq!(started_attempts(&lines, &task_id), [1, 2, 3]);
    assert!(lines_about(&lines, &task_id, "Task completed").is_empty());
}

/// The function's DynamoDB behind a proxy that fails (500, nothing written)
/// the first `failures` finish writes (`SET #status = :done …`): the SDK's
/// three tries of one finish each time.
async fn finish_failing(failures: usize) -> FaultProxy {
    let seen = Arc::new(AtomicUsize::new(0));
    FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(move |call| {
            let update = call.body["UpdateExpression"].as_str().unwrap_or_default();
            if call.operation == "UpdateItem"
                && update.contains(":done")
                && seen.fetch_add(1, Ordering::SeqCst) < failures
            {
                Fault::ServerError
            } else {
                Fault::Pass
            }
        }),
    )
    .await
}

async fn a_finish_write_failing_for_attempts(failed_attempts: u64) {
    let proxy = finish_failing(3 * failed_attempts as usize).await;
    // The SDK's three tries of a failing finish back off for up to about 3 s
    // (jittered, not scaled): a 3 s invocation could time out on them, and
    // the emulator's process with it, leaving Lambda's retry nothing to run
    // on (seen once in CI). 10 s holds them; the retries come 6.7 s apart.
    let api = RuntimeApi::start_with_async_semantics(test_function(), LONG_TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .spawn();

    let task_id = start_task(&api, 200).await;
    let events = api.wait_for_events(PATIENCE).await;

    let attempts = failed_attempts + 1;
    let mut expected: Vec<Outcome> = (1..attempts)
        .map(|_| Outcome::Error {
            error_type: "TaskStoreUnavailable".to_owned(),
            message: "task store unavailable: UpdateItem (finish): InternalServerError (HTTP 500)"
                .to_owned(),
        })
        .collect();
    expected.push(task_answer(&task_id, "succeeded", attempts, false));
    assert_eq!(outcomes(&events), expected);
    assert_eq!(record(&api, &task_id).await, succeeded(attempts, 200));
    let finishes: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|call| call.update.as_deref().is_some_and(|u| u.contains(":done")))
        .collect();
    assert_eq!(finishes.len() as u64, 3 * failed_attempts + 1);
    assert_eq!(finishes.iter().filter(|call| call.landed()).count(), 1);
    let lines = all_lines(&[&function]);
    assert_eq!(
        started_attempts(&lines, &task_id),
        (1..=attempts).collect::<Vec<_>>()
    );
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_write_that_fails_is_retried_by_lambda_and_the_retry_succeeds_as_attempt_2() {
    let _turn = one_at_a_time().await;
    a_finish_write_failing_for_attempts(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_write_failing_on_two_attempts_succeeds_on_lambdas_last_retry_as_attempt_3() {
    let _turn = one_at_a_time().await;
    a_finish_write_failing_for_attempts(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivered_while_a_healthy_attempt_runs_waits_for_it_and_answers_its_success_and_the_work_runs_once()
 {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture);
    let (one, two) = (command.clone().spawn(), command.spawn());

    let task_id = start_task(&api, 1500).await;
    wait_for_line(&[&one, &two], &task_id, "task started").await;
    // The same event again, while the first delivery runs it: the process
    // that is not busy takes it.
    let duplicate = send_event(&api, &event_of(&api, &task_id)).await;
    let events = api.wait_for_events(PATIENCE).await;

    // The duplicate does not answer while the first delivery runs (a success
    // then would leave the task to that attempt alone): it waits for its
    // outcome, and ends after it, with the task's final status.
    assert_eq!(
        outcomes(&events),
        [
            task_answer(&task_id, "succeeded", 1, false),
            task_answer(&task_id, "succeeded", 1, true),
        ]
    );
    assert_eq!(events[1].request_id, duplicate);
    let reports = api.async_events();
    assert!(
        reports
            .iter()
            .all(|r| r.attempts.len() == 1 && matches!(r.end, Some(EventEnd::Succeeded))),
        "no retry, no destination: {reports:#?}"
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 1500));
    let lines = all_lines(&[&one, &two]);
    assert_eq!(started_attempts(&lines, &task_id), [1], "the work ran once");
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
    assert_eq!(
        lines_about(&lines, &task_id, "duplicate delivery: the task has ended").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_expires_before_its_delivery_fails_its_task_through_the_destination_record() {
    let _turn = one_at_a_time().await;
    let mut policy = Policy::scaled(TIMEOUT);
    policy.max_event_age = Duration::ZERO;
    let api = RuntimeApi::start_with_policy(test_function(), policy).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();

    let task_id = start_task(&api, 0).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert!(events.is_empty(), "never delivered: {events:#?}");
    let reports = api.async_events();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].attempts.is_empty());
    let Some(EventEnd::Destination(destination)) = &reports[0].end else {
        panic!("the event went to the destination: {reports:#?}");
    };
    assert_eq!(destination.condition, Condition::EventAgeExceeded);
    assert_eq!(destination.state, MessageState::Deleted);
    assert_eq!(
        record(&api, &task_id).await,
        ended(
            "failed",
            0,
            json!("EventAgeExceeded: the task event reached its maximum age before it could run")
        )
    );
    let answer = http(&api, "DELETE", &format!("/tasks/{task_id}"), None, &[]).await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert!(started_attempts(&all_lines(&[&function]), &task_id).is_empty());
}
