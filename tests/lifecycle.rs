//! Every task ends: the task lifecycle through the real binary and the Runtime
//! API emulator with Lambda's asynchronous semantics (retries with the same
//! request id, the maximum event age, the on-failure destination record as the
//! failure queue's SQS event). Each test ends with the task's exact record
//! (status, attempts, error, result) and what each invocation answered.
//!
//! `failed`, `succeeded` and `canceled` are final: an attempt that fails while
//! Lambda will retry leaves the task `queued` with its error and a
//! `Retry-After` that reaches Lambda's retry (60 s per attempt, not scaled:
//! the function cannot know the tests' scale), and only the last attempt, a
//! failure for good, Lambda's failure record, an abandoned task or the
//! backstop make it `failed`. `attempts` counts the attempts that started the
//! work: each test compares it with the `task started` lines.
//!
//! Time is scaled: a 3 s function timeout, so Lambda's retries come 2 s and 4 s
//! after a failure (its 60 s and 120 s of a 90 s timeout), and the function's
//! lease holds 300 ms, renewed every 100 ms (a tenth and a thirtieth of the
//! invocation's time). DynamoDB's faults come from the proxy of
//! `support/fault_proxy.rs`, aimed at one kind of write each.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;
#[path = "support/task_logs.rs"]
mod task_logs;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_api::lambda_config;
use async_api::tasks::protocol::{CLOCK_SKEW_MS, RETRY_PAUSE_MS, WRITE_LANDS_WITHIN_MS};
use async_api::tasks::record::{ATTEMPT_DIED, NEVER_DELIVERED};
use async_api::tasks::store::NOT_ENQUEUED;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use fault_proxy::{Fault, FaultProxy};
use serde_json::{Value, json};
use support::runtime_api::async_invoke::{
    self, Account, Answer, Condition, EventEnd, MessageState, Policy, QueueMessage,
    invocation_record, sqs_event,
};
use support::runtime_api::{Completed, FunctionCommand, FunctionProcess, Outcome, RuntimeApi};
use support::{FUNCTION_NAME, Fixture};
use task_logs::{LogLine, http, lines_about, log_lines};

/// These tests hold scaled deadlines of a few seconds, and the emulator, as
/// Lambda, ends a process whose invocation outlives its deadline: run many at
/// once on a small machine, and one slowed past its deadline leaves Lambda's
/// retry no process to run on. So they take turns.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// The function timeout every delay is scaled to.
const TIMEOUT: Duration = Duration::from_secs(3);
/// How long a test waits for its events to end, retries and destination included.
const PATIENCE: Duration = Duration::from_secs(60);
/// The function timeout of the tests whose SDK retries (2 s attempt timeout,
/// up to about 3 s of jittered backoff, neither scaled) must fit inside one
/// invocation.
const LONG_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary as Lambda runs it here: JSON logs, as the template sets.
fn command(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    FunctionCommand::new(api, fixture).env("AWS_LAMBDA_LOG_FORMAT", "JSON")
}

/// `POST /async` through the binary; the new task's id.
async fn start_task(api: &RuntimeApi, delay_ms: u64) -> String {
    let answer = http(
        api,
        "POST",
        "/async",
        Some(&json!({"delay_ms": delay_ms}).to_string()),
        &[],
    )
    .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    answer.body["task_id"]
        .as_str()
        .expect("a task id")
        .to_owned()
}

/// Sends `payload` as Lambda's `Invoke` with `InvocationType=Event`; the
/// request id Lambda gave the event.
async fn send_event(api: &RuntimeApi, payload: &Value) -> String {
    let lambda = aws_sdk_lambda::Client::from_conf(
        lambda_config(&support::sdk_config())
            .endpoint_url(api.url())
            .build(),
    );
    let output = lambda
        .invoke()
        .function_name(FUNCTION_NAME)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .expect("Invoke (Event)");
    assert_eq!(output.status_code(), 202);
    api.invoke_calls()
        .last()
        .and_then(|call| call.request_id.clone())
        .expect("the event's request id")
}

/// The task event `/async` sent for `task_id`.
fn event_of(api: &RuntimeApi, task_id: &str) -> Value {
    api.invoke_calls()
        .iter()
        .filter(|call| call.invocation_type == "Event")
        .map(|call| serde_json::from_slice::<Value>(&call.payload).expect("JSON"))
        .find(|payload| payload["task_id"] == task_id)
        .expect("the task's event")
}

/// The task as `GET /tasks/{id}` shows it: (status, attempts, error, result).
/// A task that has not ended carries `Retry-After`, one that has does not.
async fn record(api: &RuntimeApi, task_id: &str) -> (String, u64, Value, Value) {
    let answer = http(api, "GET", &format!("/tasks/{task_id}"), None, &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let status = answer.body["status"].as_str().expect("status").to_owned();
    let ended = matches!(status.as_str(), "succeeded" | "failed" | "canceled");
    assert_eq!(
        answer.header("retry-after").is_none(),
        ended,
        "Retry-After while (and only while) the task has not ended: {answer:?}"
    );
    (
        status,
        answer.body["attempts"].as_u64().expect("attempts"),
        answer.body["error"].clone(),
        answer.body["result"].clone(),
    )
}

/// A succeeded task of the stand-in work, as `record` reads it.
fn succeeded(attempts: u64, delay_ms: u64) -> (String, u64, Value, Value) {
    (
        "succeeded".to_owned(),
        attempts,
        Value::Null,
        json!({"waited_ms": delay_ms}),
    )
}

/// A task that ended otherwise, as `record` reads it (no result).
fn ended(status: &str, attempts: u64, error: Value) -> (String, u64, Value, Value) {
    (status.to_owned(), attempts, error, Value::Null)
}

/// Waits until `count` deliveries of task events have ended; returns when it
/// saw that (epoch ms): the last of them had failed or succeeded by then.
async fn deliveries_ended(api: &RuntimeApi, count: usize) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ended = api
            .completed()
            .iter()
            .filter(|c| c.kind == support::runtime_api::InvocationKind::Event)
            .count();
        if ended >= count {
            return support::now_millis();
        }
        assert!(Instant::now() < deadline, "{count} deliveries never ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The task between a failed attempt `attempt` (ended by `failed_by_ms`) and
/// Lambda's retry: `queued` with the attempt's error and no result, its
/// `retry_at` 60 s per attempt after the failure, and `Retry-After` the
/// seconds until then (Lambda's retry is no sooner in Lambda's own time).
async fn assert_waits_for_lambdas_retry(
    api: &RuntimeApi,
    fixture: &Fixture,
    task_id: &str,
    attempt: u64,
    error: &str,
    failed_by_ms: u64,
) {
    let before = support::now_millis();
    let answer = http(api, "GET", &format!("/tasks/{task_id}"), None, &[]).await;
    let after = support::now_millis();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        (
            &answer.body["status"],
            &answer.body["attempts"],
            &answer.body["error"],
            &answer.body["result"]
        ),
        (
            &json!("queued"),
            &json!(attempt),
            &json!(error),
            &Value::Null
        ),
        "{answer:?}"
    );
    let item = fixture.task_item(task_id).await.expect("the record");
    let Some(AttributeValue::N(retry_at)) = item.get("retry_at") else {
        panic!("no retry_at: {item:?}");
    };
    let retry_at: u64 = retry_at.parse().expect("retry_at");
    let pause = RETRY_PAUSE_MS * attempt;
    assert!(
        (failed_by_ms.saturating_sub(1500) + pause..=failed_by_ms + pause).contains(&retry_at),
        "retry_at {retry_at}: {pause} ms after the failure, by {failed_by_ms}"
    );
    let retry_after: u64 = answer
        .header("retry-after")
        .expect("Retry-After while queued")
        .parse()
        .expect("seconds");
    let seconds_until = |now: u64| retry_at.saturating_sub(now).div_ceil(1000).max(1);
    assert!(
        (seconds_until(after)..=seconds_until(before)).contains(&retry_after),
        "Retry-After {retry_after}, retry_at {retry_at}, asked at {before}..{after}"
    );
}

/// Waits (at most 20 s) until some process has logged `message` for `task_id`.
async fn wait_for_line(processes: &[&FunctionProcess], task_id: &str, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if processes
            .iter()
            .any(|p| !lines_about(&log_lines(&p.stdout_lines()), task_id, message).is_empty())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "no process logged {message:?} for {task_id}: {:#?}",
        processes
            .iter()
            .map(|p| p.stdout_lines())
            .collect::<Vec<_>>()
    );
}

/// Every log line of these processes.
fn all_lines(processes: &[&FunctionProcess]) -> Vec<LogLine> {
    processes
        .iter()
        .flat_map(|p| log_lines(&p.stdout_lines()))
        .collect()
}

/// The attempts with which each `task started` line of `task_id` began.
fn started_attempts(lines: &[LogLine], task_id: &str) -> Vec<u64> {
    lines_about(lines, task_id, "task started")
        .iter()
        .map(|line| line.attempt().expect("attempt"))
        .collect()
}

fn task_answer(task_id: &str, status: &str, attempts: u64, duplicate: bool) -> Outcome {
    Outcome::Response(
        json!({"task_id": task_id, "status": status, "attempts": attempts, "duplicate": duplicate}),
    )
}

fn error_of(outcome: &Outcome) -> (&str, &str) {
    match outcome {
        Outcome::Error {
            error_type,
            message,
        } => (error_type, message),
        Outcome::Response(response) => panic!("expected a function error, got {response}"),
    }
}

fn outcomes(events: &[Completed]) -> Vec<Outcome> {
    events.iter().map(|event| event.outcome.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_after_its_claim_is_retried_by_lambda_and_the_retry_succeeds_as_attempt_2()
{
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(LONG_TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_policy(policy).await;
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
        .dynamodb
        .update_item()
        .table_name(&fixture.tasks_table)
        .key("task_id", AttributeValue::S(task_id.clone()))
        .update_expression(format!("SET created_ms = :created{change}"))
        .expression_attribute_values(":created", AttributeValue::N(created_ms.to_string()));
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let (task_id, function) = past_the_backstop(&api, &fixture, "", &[]).await;

    assert_ended_by_the_backstop(&api, &function, &task_id, 0, NEVER_DELIVERED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_whose_last_attempt_died_reads_failed_past_the_backstop_and_no_delivery_claims_it()
 {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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

/// A TCP proxy that passes every request on and loses every answer: each
/// call lands, and its caller times out.
async fn every_answer_losing_proxy(upstream: &str) -> String {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut from_client, _to_client) = client.split();
                let (mut from_server, mut to_server) = server.split();
                let mut lost = tokio::io::sink();
                let _ = tokio::join!(
                    tokio::io::copy(&mut from_client, &mut to_server),
                    tokio::io::copy(&mut from_server, &mut lost),
                );
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_whose_answer_was_lost_after_lambda_accepted_it_answers_503_and_the_task_never_runs()
 {
    let _turn = one_at_a_time().await;
    // Long enough for the SDK's three tries of the Invoke (6 s) inside the
    // request's own invocation.
    let api = RuntimeApi::start_with_async_semantics(Duration::from_secs(10)).await;
    let fixture = Fixture::new(&api.url()).await;
    let lost = every_answer_losing_proxy(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_LAMBDA", &lost);
    let (one, two) = (command.clone().spawn(), command.spawn());

    let answer = http(&api, "POST", "/async", Some(r#"{"delay_ms": 0}"#), &[]).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "service_unavailable");
    let accepted = api.invoke_calls();
    assert!(!accepted.is_empty(), "Lambda accepted the event");
    let payload: Value = serde_json::from_slice(&accepted[0].payload).expect("JSON");
    let task_id = payload["task_id"].as_str().expect("task id").to_owned();
    assert!(
        accepted
            .iter()
            .all(|call| serde_json::from_slice::<Value>(&call.payload).expect("JSON") == payload),
        "the SDK's tries sent the same event"
    );
    assert_eq!(
        record(&api, &task_id).await,
        ended("failed", 0, json!(NOT_ENQUEUED))
    );
    // Every delivery of every copy of the event left the task alone, the
    // last one answering that it has ended.
    let reports = api.async_events();
    assert_eq!(reports.len(), accepted.len());
    for report in &reports {
        assert!(
            matches!(report.end, Some(EventEnd::Succeeded)),
            "{report:#?}"
        );
    }
    let last_answers: Vec<Outcome> = reports
        .iter()
        .map(|report| {
            events
                .iter()
                .filter(|e| e.request_id == report.request_id)
                .last()
                .expect("delivered")
                .outcome
                .clone()
        })
        .collect();
    assert!(
        last_answers
            .iter()
            .all(|a| *a == task_answer(&task_id, "failed", 0, true)),
        "{last_answers:#?}"
    );
    for delivery in &events {
        if delivery.outcome.clone() != task_answer(&task_id, "failed", 0, true) {
            assert_eq!(
                error_of(&delivery.outcome).0,
                "TaskNotEnqueued",
                "{delivery:#?}"
            );
        }
    }
    assert!(started_attempts(&all_lines(&[&one, &two]), &task_id).is_empty());
}

/// A function whose DynamoDB calls go through a fault proxy ruled by
/// `rule`, under Lambda's asynchronous semantics with invocations of
/// `timeout`, and a task enqueued for it.
struct Faulted {
    proxy: FaultProxy,
    api: RuntimeApi,
    fixture: Fixture,
    function: FunctionProcess,
    task_id: String,
}

async fn faulted(rule: fault_proxy::Rule, timeout: Duration) -> Faulted {
    let proxy = FaultProxy::start(support::dynamodb_endpoint(), rule).await;
    let api = RuntimeApi::start_with_async_semantics(timeout).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .spawn();
    let task_id = fixture.enqueued_task().await;
    Faulted {
        proxy,
        api,
        fixture,
        function,
        task_id,
    }
}

/// A proxy rule: `fault` for the first DynamoDB call that `matches`, then
/// every call passes.
fn first_call(
    matches: impl Fn(&fault_proxy::Seen<'_>) -> bool + Send + Sync + 'static,
    fault: Fault,
) -> fault_proxy::Rule {
    let done = AtomicUsize::new(0);
    Box::new(move |call| {
        if matches(call) && done.fetch_add(1, Ordering::SeqCst) == 0 {
            fault
        } else {
            Fault::Pass
        }
    })
}

fn update_contains(call: &fault_proxy::Seen<'_>, text: &str) -> bool {
    call.operation == "UpdateItem"
        && call.body["UpdateExpression"]
            .as_str()
            .is_some_and(|update| update.contains(text))
}

/// Whether a DynamoDB call is an attempt's write of kind `write` (one of
/// [`is_claim`], [`is_start`], [`is_release`], [`is_renewal`]).
fn update_is(call: &fault_proxy::Seen<'_>, write: fn(&str) -> bool) -> bool {
    call.operation == "UpdateItem" && call.body["UpdateExpression"].as_str().is_some_and(write)
}

/// The claim (src/tasks/claims.rs): `running` under a new `claim_id` and
/// lease. It counts nothing.
fn is_claim(update: &str) -> bool {
    update.contains("#status = :running") && update.contains("claim_id = :claim")
}

/// The start: counts the attempt (`attempts + 1`), once per claim (the claim
/// goes into `started_claims`, and a retried try of it is refused).
fn is_start(update: &str) -> bool {
    update.contains("attempts = attempts + :one")
}

/// The release of a claim that cannot start: `queued` again, nothing counted
/// back.
fn is_release(update: &str) -> bool {
    update.contains("#status = :queued") && !update.contains(":done")
}

/// A renewal of the lease.
fn is_renewal(update: &str) -> bool {
    update == "SET lease_until = :lease"
}

/// Whether each of the proxy's calls of kind `write` on the task landed, in
/// the order they came.
fn landed(proxy: &FaultProxy, task_id: &str, write: fn(&str) -> bool) -> Vec<bool> {
    proxy
        .calls()
        .iter()
        .filter(|call| {
            call.item_id.as_deref() == Some(task_id) && call.update.as_deref().is_some_and(write)
        })
        .map(|call| call.landed())
        .collect()
}

/// The task's writes as the proxy saw them, one a line, for a failure message.
fn writes_of(proxy: &FaultProxy, task_id: &str) -> String {
    proxy
        .calls()
        .iter()
        .filter(|call| call.item_id.as_deref() == Some(task_id) && call.update.is_some())
        .map(|call| {
            format!(
                "{} {:?} claim {} lease {} -> {:?} at {:?} ({:?})",
                call.at_ms,
                call.update.as_deref().unwrap_or_default(),
                call.values[":claim"]["S"],
                call.values[":lease"]["N"],
                call.upstream_status,
                call.upstream_ms,
                call.fault
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_while_async_is_still_marking_its_task_enqueued_runs_the_task() {
    let _turn = one_at_a_time().await;
    // The claim is refused (not enqueued yet), its answer comes after /async
    // has marked the task: the delivery must claim again, not leave the task
    // queued as if another attempt held it.
    let rules = Arc::new(Mutex::new(0usize));
    let seen = rules.clone();
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(move |call| {
            if update_contains(call, "SET enqueued = :true") {
                return Fault::SlowRequest(Duration::from_millis(400));
            }
            if update_is(call, is_claim) {
                let mut claims = seen.lock().unwrap();
                *claims += 1;
                if *claims == 1 {
                    return Fault::SlowAnswer(Duration::from_millis(900));
                }
            }
            Fault::Pass
        }),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
    let (one, two) = (command.clone().spawn(), command.spawn());

    let task_id = start_task(&api, 100).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    assert_eq!(*rules.lock().unwrap(), 2, "refused once, then claimed");
    assert_eq!(started_attempts(&all_lines(&[&one, &two]), &task_id), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_answered_after_its_lease_lapsed_neither_starts_the_work_another_delivery_took_over_nor_counts_and_its_delivery_leaves_the_task_to_that_one()
 {
    let _turn = one_at_a_time().await;
    // The first claim lands at once but its answer comes 1.5 s later, long
    // after its 300 ms lease: a second delivery takes the task meanwhile.
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        first_call(
            |call| update_is(call, is_claim),
            Fault::SlowAnswer(Duration::from_millis(1500)),
        ),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
    let (one, two) = (command.clone().spawn(), command.spawn());
    let task_id = fixture.enqueued_task().await;
    let event = json!({"task_id": task_id, "delay_ms": 2000});

    let first = send_event(&api, &event).await;
    let sent = Instant::now();
    while !proxy
        .calls()
        .iter()
        .any(|call| call.update.as_deref().is_some_and(is_claim) && call.landed())
    {
        assert!(sent.elapsed() < Duration::from_secs(10), "no claim landed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = send_event(&api, &event).await;
    let events = api.wait_for_events(PATIENCE).await;

    // The late claim never started the work: its start is refused (the task
    // is the other claim's), so it counts nothing, and the one that took the
    // task over is attempt 1. Its delivery then ends without an error while
    // that attempt runs (an error would spend one of Lambda's retries, and
    // after the last one the failure record would fail the task under the
    // attempt running it): the task is left to the delivery that holds it,
    // whose own event Lambda still has (it would retry it, were it to fail).
    assert_eq!(
        outcomes(&events),
        [
            task_answer(&task_id, "running", 0, false),
            task_answer(&task_id, "succeeded", 1, false),
        ],
        "{}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(
        (events[0].request_id.as_str(), events[1].request_id.as_str()),
        (first.as_str(), second.as_str())
    );
    assert!(
        api.async_events()
            .iter()
            .all(|r| r.attempts.len() == 1 && matches!(r.end, Some(EventEnd::Succeeded))),
        "no retry, no destination"
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 2000));
    assert_eq!(landed(&proxy, &task_id, is_claim), [true, true]);
    assert_eq!(
        landed(&proxy, &task_id, is_start),
        [true, false],
        "the takeover's start counted, the late claim's was refused: {}",
        writes_of(&proxy, &task_id)
    );
    let lines = all_lines(&[&one, &two]);
    assert_eq!(started_attempts(&lines, &task_id), [1], "the work ran once");
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
    assert_eq!(
        lines_about(
            &lines,
            &task_id,
            "the task ended elsewhere; this attempt's result is not recorded"
        )
        .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_write_that_landed_but_whose_answer_failed_completes_the_task_once() {
    let _turn = one_at_a_time().await;
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        first_call(
            |call| update_contains(call, ":done"),
            Fault::ServerErrorAfterWrite,
        ),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .spawn();

    let task_id = start_task(&api, 100).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    let finishes: Vec<bool> = proxy
        .calls()
        .iter()
        .filter(|call| call.update.as_deref().is_some_and(|u| u.contains(":done")))
        .map(|call| call.landed())
        .collect();
    assert_eq!(
        finishes,
        [true, false],
        "landed, then the SDK's retry refused"
    );
    let lines = all_lines(&[&function]);
    assert_eq!(
        lines_about(&lines, &task_id, "Task completed").len(),
        1,
        "the record says succeeded: the line says so"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_lambda_gave_up_on_stays_failed_when_another_copy_of_its_event_arrives() {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();
    let task_id = fixture.enqueued_task().await;
    let event = json!({"task_id": task_id, "delay_ms": 0});

    // Lambda's record of the event it gave up on, through the failure queue.
    let account = Account {
        region: "us-east-1".to_owned(),
        account_id: "123456789012".to_owned(),
        queue_name: "async-api-test-task-failures".to_owned(),
    };
    let attempts = vec![Answer::unhandled("Sandbox.Timedout", "timed out"); 3];
    let record_json = invocation_record(
        &account,
        FUNCTION_NAME,
        &uuid::Uuid::new_v4().to_string(),
        Condition::RetriesExhausted,
        event.to_string().as_bytes(),
        &attempts,
        async_invoke::epoch_millis(),
    );
    let message = QueueMessage::new(&record_json, FUNCTION_NAME);
    let sqs = sqs_event(&account, &message, 1, message.sent_timestamp_ms, "handle");
    assert_eq!(
        api.invoke(sqs.to_string()).await,
        Outcome::Response(json!({"batchItemFailures": []}))
    );
    // Another copy of the event, delivered after Lambda gave up on the first.
    let late = api.invoke(event.to_string()).await;

    assert_eq!(late, task_answer(&task_id, "failed", 0, true));
    let given_up = ended(
        "failed",
        0,
        json!("RetriesExhausted: Lambda gave up on the task event after 3 attempts"),
    );
    assert_eq!(record(&api, &task_id).await, given_up);
    assert!(started_attempts(&all_lines(&[&function]), &task_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueued_mark_that_landed_though_every_answer_failed_answers_202_and_the_task_runs_once()
 {
    let _turn = one_at_a_time().await;
    // Every try of the mark lands and is answered 500: /async cannot tell it
    // from a mark that failed until it tries to fail the task. The task is
    // enqueued and its event will run it, so the answer must not be 503.
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|call| {
            if update_contains(call, "SET enqueued = :true") {
                Fault::ServerErrorAfterWrite
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
    let (one, two) = (command.clone().spawn(), command.spawn());

    let answer = http(&api, "POST", "/async", Some(r#"{"delay_ms": 100}"#), &[]).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(answer.status, 202, "{answer:?}");
    let task_id = answer.body["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    let marks = proxy
        .calls()
        .iter()
        .filter(|call| {
            call.update
                .as_deref()
                .is_some_and(|u| u.contains("SET enqueued"))
        })
        .count();
    assert_eq!(marks, 3, "the SDK's three tries, each landed");
    assert_eq!(started_attempts(&all_lines(&[&one, &two]), &task_id), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_past_its_lease_is_counted_once() {
    let _turn = one_at_a_time().await;
    // The SDK's retry of the claim comes after its 2 s attempt timeout, when
    // the claim's own 1 s lease has lapsed: it must not claim again (its
    // `:now_ms` is the first try's), and the read after it finds the claim its
    // own. The claim counted nothing: the start, with a fresh lease, counts
    // the attempt, once.
    let Faulted {
        proxy,
        api,
        fixture: _fixture,
        function,
        task_id,
    } = faulted(
        first_call(|call| update_is(call, is_claim), Fault::LoseAnswer),
        LONG_TIMEOUT,
    )
    .await;

    send_event(&api, &json!({"task_id": task_id, "delay_ms": 100})).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    assert_eq!(
        landed(&proxy, &task_id, is_claim),
        [true, false],
        "the retry met its own claim: {}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(landed(&proxy, &task_id, is_start), [true], "counted once");
    assert_eq!(started_attempts(&all_lines(&[&function]), &task_id), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_retries_configured_the_first_failed_attempt_is_final_and_lambdas_record_leaves_its_error()
 {
    let _turn = one_at_a_time().await;
    // TASK_MAX_RETRY_ATTEMPTS and the EventInvokeConfig's MaximumRetryAttempts
    // come from one template parameter: 0 for both.
    let mut policy = Policy::scaled(TIMEOUT);
    policy.retry_delays.clear();
    let api = RuntimeApi::start_with_policy(policy).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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

/// Sets the task's `created_ms`, as if `/async` had created it then.
async fn backdate(fixture: &Fixture, task_id: &str, created_ms: u64) {
    fixture
        .dynamodb
        .update_item()
        .table_name(&fixture.tasks_table)
        .key("task_id", AttributeValue::S(task_id.to_owned()))
        .update_expression("SET created_ms = :created")
        .expression_attribute_values(":created", AttributeValue::N(created_ms.to_string()))
        .send()
        .await
        .expect("backdate the record");
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
    let api = RuntimeApi::start_with_async_semantics(TIMEOUT).await;
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
    backdate(&fixture, &task_id, created_ms).await;

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
