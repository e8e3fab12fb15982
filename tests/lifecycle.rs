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
    self, Answer, Condition, EventEnd, MessageState, Policy, QueueMessage, invocation_record,
    sqs_event,
};
use support::runtime_api::{
    Completed, FunctionCommand, FunctionProcess, Outcome, RuntimeApi, function_command,
    test_function,
};
use support::{FUNCTION_NAME, Fixture};
use task_logs::{LogLine, http, lines_about, log_lines};

#[path = "lifecycle/attempts.rs"]
mod attempts;
#[path = "lifecycle/backstop_and_cancel.rs"]
mod backstop_and_cancel;
#[path = "lifecycle/final_failures.rs"]
mod final_failures;
#[path = "lifecycle/lost_answers.rs"]
mod lost_answers;
use lost_answers::{
    Faulted, faulted, first_call, is_claim, is_release, is_renewal, is_start, landed, update_is,
    writes_of,
};

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
    function_command(api, fixture).env("AWS_LAMBDA_LOG_FORMAT", "JSON")
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
