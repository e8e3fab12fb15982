//! The backstop and the cancel: a task no delivery can end reads failed; a canceled task never runs, or stops.

use super::*;

/// A task past the backstop: `TASK_EVENT_MAX_AGE_SECONDS` as the scaled
/// maximum event age (120 s), and the record made older than that plus the
/// backstop's 5 unscaled minutes, instead of waiting for it. `change` sets
/// what else the record says (besides `created_ms`).
async fn past_the_backstop(
    api: &RuntimeApi,
    fixture: &Fixture,
    change: &str,
    values: &[(&str, AttributeValue)],
) -> (String, FunctionProcess) {
    let max_age = Policy::scaled(TIMEOUT).max_event_age;
    let function = command(api, fixture)
        .env("TASK_EVENT_MAX_AGE_SECONDS", &max_age.as_secs().to_string())
        .spawn();
    let task_id = fixture.enqueued_task().await;
    let horizon = max_age + Duration::from_secs(5 * 60);
    let created_ms = support::now_millis() - horizon.as_millis() as u64 - 1000;
    let mut update = fixture
        .backdate(&task_id, created_ms)
        .update_expression(format!("SET created_ms = :created{change}"));
    if change.contains("#status") {
        update = update.expression_attribute_names("#status", "status");
    }
    for (name, value) in values {
        update = update.expression_attribute_values(*name, value.clone());
    }
    update.send().await.expect("backdate the record");
    (task_id, function)
}

/// What a task past the backstop answers: `failed` with `error`, no
/// `Retry-After`; DELETE 409; and a delivery of its event leaves it alone.
async fn assert_ended_by_the_backstop(
    api: &RuntimeApi,
    function: &FunctionProcess,
    task_id: &str,
    attempts: u64,
    error: &str,
) {
    assert_eq!(
        record(api, task_id).await,
        ended("failed", attempts, json!(error))
    );
    let answer = http(api, "DELETE", &format!("/tasks/{task_id}"), None, &[]).await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "conflict");
    send_event(api, &json!({"task_id": task_id, "delay_ms": 0})).await;
    let events = api.wait_for_events(PATIENCE).await;
    assert_eq!(
        outcomes(&events),
        [task_answer(task_id, "failed", attempts, true)],
        "no delivery claims it"
    );
    assert_eq!(
        record(api, task_id).await,
        ended("failed", attempts, json!(error))
    );
    assert!(started_attempts(&all_lines(&[function]), task_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_task_whose_event_never_comes_reads_failed_once_it_can_no_longer_be_delivered() {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let (task_id, function) = past_the_backstop(&api, &fixture, "", &[]).await;

    assert_ended_by_the_backstop(&api, &function, &task_id, 0, NEVER_DELIVERED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_whose_last_attempt_died_reads_failed_past_the_backstop_and_no_delivery_claims_it()
 {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    // As an attempt that died leaves it: running, counted, its lease lapsed.
    let lapsed = (support::now_millis() - 60_000).to_string();
    let (task_id, function) = past_the_backstop(
        &api,
        &fixture,
        ", #status = :running, attempts = :one, lease_until = :lease, claim_id = :claim",
        &[
            (":running", AttributeValue::S("running".to_owned())),
            (":one", AttributeValue::N("1".to_owned())),
            (":lease", AttributeValue::N(lapsed)),
            (":claim", AttributeValue::S("a-dead-attempt".to_owned())),
        ],
    )
    .await;

    assert_ended_by_the_backstop(&api, &function, &task_id, 1, ATTEMPT_DIED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_queued_task_never_runs_and_its_event_does_nothing() {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();
    let task_id = fixture.enqueued_task().await;

    let answer = http(&api, "DELETE", &format!("/tasks/{task_id}"), None, &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        (
            answer.body["status"].clone(),
            answer.body["attempts"].clone(),
            answer.body["error"].clone()
        ),
        (json!("canceled"), json!(0), Value::Null)
    );
    // Its event comes after the cancel.
    send_event(&api, &json!({"task_id": task_id, "delay_ms": 100})).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "canceled", 0, true)]
    );
    assert_eq!(
        record(&api, &task_id).await,
        ended("canceled", 0, Value::Null)
    );
    assert!(started_attempts(&all_lines(&[&function]), &task_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_running_task_stops_within_a_second_its_invocation_ends_without_error_and_is_not_retried()
 {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture);
    let (one, two) = (command.clone().spawn(), command.spawn());

    let task_id = start_task(&api, 2500).await;
    wait_for_line(&[&one, &two], &task_id, "task started").await;
    // The process that is not running the task takes the request.
    let answer = http(&api, "DELETE", &format!("/tasks/{task_id}"), None, &[]).await;
    let canceled_at = Instant::now();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        (
            answer.body["status"].clone(),
            answer.body["attempts"].clone()
        ),
        (json!("canceled"), json!(1))
    );
    let stopped = loop {
        let ended = api.completed().into_iter().any(|c| {
            c.kind == support::runtime_api::InvocationKind::Event
                && serde_json::from_slice::<Value>(&c.payload)
                    .is_ok_and(|p| p["task_id"] == task_id)
        });
        if ended || canceled_at.elapsed() > Duration::from_secs(5) {
            break canceled_at.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let events = api.wait_for_events(PATIENCE).await;

    assert!(
        stopped < Duration::from_secs(1),
        "stopped after {stopped:?}"
    );
    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "canceled", 1, false)],
        "no error, so no retry"
    );
    let reports = api.async_events();
    assert_eq!(reports[0].attempts.len(), 1);
    assert!(matches!(reports[0].end, Some(EventEnd::Succeeded)));
    assert_eq!(
        record(&api, &task_id).await,
        ended("canceled", 1, Value::Null)
    );
    let lines = all_lines(&[&one, &two]);
    assert_eq!(started_attempts(&lines, &task_id), [1]);
    assert!(lines_about(&lines, &task_id, "Task completed").is_empty());
}
