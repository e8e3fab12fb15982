//! `/async`, the task event it enqueues, and `GET /tasks/{task_id}`, against a
//! real local DynamoDB and a loopback stand-in for the Lambda `Invoke` API:
//! how a delivery runs, retries, fails (for now, and for good) and defers to
//! another delivery of the same task.

mod support;

use std::collections::HashMap;

use async_api::FunctionError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::{FUNCTION_NAME, Fixture, Reply, dead_endpoint, error_body, events};

type Item = HashMap<String, AttributeValue>;

fn string(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

fn number(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().expect("a number"),
        other => panic!("{name} is {other:?}"),
    }
}

/// The `errorType` and `errorMessage` Lambda reports for a function error.
fn diagnostic(err: FunctionError) -> (String, String) {
    let diagnostic = lambda_http::lambda_runtime::Diagnostic::from(err);
    (diagnostic.error_type, diagnostic.error_message)
}

/// The task event of `task_id` whose stand-in work fails its first
/// `fail_attempts` attempts.
fn failing_event(task_id: &str, delay_ms: u64, fail_attempts: u32) -> String {
    json!({"task_id": task_id, "delay_ms": delay_ms, "fail_attempts": fail_attempts}).to_string()
}

async fn get(fixture: &Fixture, task_id: &str) -> Reply {
    fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await
}

/// What `GET /tasks/{task_id}` must show of the stored `item`, whole.
fn shown(item: &Item, status: &str, error: Value, result: Value) -> Value {
    json!({
        "task_id": string(item, "task_id"),
        "status": status,
        "created_at": string(item, "created_at"),
        "updated_at": string(item, "updated_at"),
        "attempts": number(item, "attempts"),
        "error": error,
        "result": result,
    })
}

/// `Retry-After` in whole seconds.
fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", reply.headers))
        .parse()
        .expect("whole seconds")
}

/// Starts a task and returns the reply and the event it enqueued.
async fn start(
    fixture: &Fixture,
    lambda: &FakeLambda,
    method: &str,
    body: Option<&str>,
) -> (Reply, String) {
    let before = lambda.invocations().len();
    let reply = fixture.http(method, "/async", body).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let invocations = lambda.invocations();
    assert_eq!(invocations.len(), before + 1);
    let payload = String::from_utf8(invocations[before].payload.to_vec()).expect("utf-8 payload");
    (reply, payload)
}

#[tokio::test]
async fn post_async_records_a_queued_task_and_enqueues_an_event_invocation() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, payload) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 5}"#)).await;

    let task_id = reply.body["task_id"].as_str().expect("task_id").to_owned();
    assert_eq!(
        reply.body,
        json!({"message": "Task started", "task_id": task_id, "status_url": format!("/tasks/{task_id}")})
    );
    assert_eq!(
        reply.header("location"),
        Some(format!("/tasks/{task_id}").as_str())
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));

    let invocation = &lambda.invocations()[0];
    assert_eq!(invocation.function_name, FUNCTION_NAME);
    assert_eq!(invocation.invocation_type.as_deref(), Some("Event"));
    assert_eq!(
        serde_json::from_str::<Value>(&payload).expect("json"),
        json!({"task_id": task_id, "delay_ms": 5})
    );

    let item = fixture.task_item(&task_id).await.expect("record written");
    assert_eq!(string(&item, "status"), "queued");
    let status = get(&fixture, &task_id).await;
    assert_eq!(status.status, 200);
    assert_eq!(
        status.body,
        shown(&item, "queued", Value::Null, Value::Null),
        "every key, `result` null until the task succeeded"
    );
    // TTL: a week from now, in epoch seconds.
    let Some(AttributeValue::N(expires_at)) = item.get("expires_at") else {
        panic!("expires_at")
    };
    let expires_at: u64 = expires_at.parse().expect("number");
    let week_from_now = support::now_millis() / 1000 + 7 * 24 * 3600;
    assert!(
        expires_at.abs_diff(week_from_now) < 60,
        "expires_at {expires_at}"
    );
}

#[tokio::test]
async fn the_enqueued_event_delivered_back_takes_the_task_to_succeeded() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, payload) = start(&fixture, &lambda, "GET", None).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id").to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&payload).expect("json")["delay_ms"],
        1000,
        "default delay"
    );

    let outcome = fixture.invoke(&payload).await.expect("task succeeds");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );

    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(status.status, 200);
    let created_at = status.body["created_at"]
        .as_str()
        .expect("created_at")
        .to_owned();
    let updated_at = status.body["updated_at"]
        .as_str()
        .expect("updated_at")
        .to_owned();
    assert!(updated_at > created_at, "{created_at} .. {updated_at}");
    assert_eq!(
        status.body,
        json!({"task_id": task_id, "status": "succeeded", "created_at": created_at,
               "updated_at": updated_at, "attempts": 1, "error": null,
               "result": {"waited_ms": 1000}})
    );
    assert_eq!(status.header("retry-after"), None);
    for stamp in [&created_at, &updated_at] {
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    }
}

#[tokio::test]
async fn an_enqueue_the_lambda_api_refuses_answers_503_and_records_failed() {
    let lambda = FakeLambda::start(500).await;
    let fixture = Fixture::new(&lambda.url).await;
    let reply = fixture.http("POST", "/async", None).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "service_unavailable",
            "Service temporarily unavailable, retry later"
        )
    );
    assert_only_task_failed_to_enqueue(&fixture).await;
}

#[tokio::test]
async fn an_enqueue_with_nothing_listening_answers_503_and_records_failed() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let reply = fixture.http("POST", "/async", None).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "service_unavailable",
            "Service temporarily unavailable, retry later"
        )
    );
    assert_only_task_failed_to_enqueue(&fixture).await;
}

async fn assert_only_task_failed_to_enqueue(fixture: &Fixture) {
    let items = fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1);
    assert_eq!(string(&items[0], "status"), "failed");
    assert_eq!(string(&items[0], "error"), "The task could not be enqueued");
    let task_id = string(&items[0], "task_id");
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(status.body["status"], "failed");
    assert_eq!(status.body["error"], "The task could not be enqueued");
}

#[tokio::test]
async fn the_same_task_event_delivered_twice_at_once_runs_once_and_both_end_with_it_succeeded() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, _) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 300}"#)).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id");
    let event = events::task(task_id, 300);

    let (first, second) = tokio::join!(fixture.invoke(&event), fixture.invoke(&event));
    let mut outcomes = [first.expect("ok").body, second.expect("ok").body];
    outcomes.sort_by_key(|o| o["duplicate"].as_bool());
    // The second waited for the first attempt's outcome: it reports the
    // task's final status, never `running`.
    assert_eq!(
        outcomes,
        [
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false}),
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": true}),
        ]
    );
    let status = get(&fixture, task_id).await;
    let item = fixture.task_item(task_id).await.expect("record");
    assert_eq!(
        status.body,
        shown(&item, "succeeded", Value::Null, json!({"waited_ms": 300}))
    );
}

#[tokio::test]
async fn a_delivery_that_waited_for_an_attempt_that_then_failed_runs_the_next_attempt_itself() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, _) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 300}"#)).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id");
    let event = failing_event(task_id, 300, 1);

    // Two deliveries at once: one claims and fails attempt 1; the other,
    // waiting on its lease, finds the task queued again and runs attempt 2
    // at once, without waiting a minute for Lambda's retry.
    let (first, second) = tokio::join!(fixture.invoke(&event), fixture.invoke(&event));
    let (failed, succeeded) = match (first, second) {
        (Err(failed), Ok(succeeded)) | (Ok(succeeded), Err(failed)) => (failed, succeeded),
        (first, second) => panic!("expected one failure and one success: {first:?}, {second:?}"),
    };
    assert_eq!(
        diagnostic(failed),
        (
            "TaskFailed".to_owned(),
            format!("task {task_id} failed on attempt 1: simulated failure (fail_attempts = 1)")
        )
    );
    assert_eq!(
        succeeded.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    let item = fixture.task_item(task_id).await.expect("record");
    assert_eq!(
        get(&fixture, task_id).await.body,
        shown(&item, "succeeded", Value::Null, json!({"waited_ms": 300}))
    );
    assert_eq!(item.get("retry_at"), None, "no retry is awaited");

    // Lambda's retry of the failed invocation comes later: it does nothing.
    let retry = fixture.invoke(&event).await.expect("the retry succeeds");
    assert_eq!(
        retry.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": true})
    );
    assert_eq!(fixture.task_item(task_id).await.expect("record"), item);
}

#[tokio::test]
async fn a_succeeded_task_delivered_again_is_left_alone() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, payload) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 0}"#)).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id");
    fixture.invoke(&payload).await.expect("first run");
    let before = fixture.task_item(task_id).await.expect("record");

    let again = fixture.invoke(&payload).await.expect("duplicate succeeds");
    assert_eq!(
        again.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": true})
    );
    assert_eq!(
        fixture.task_item(task_id).await.expect("record"),
        before,
        "record untouched"
    );
}

/// Delivers `event`, whose attempt must fail with `message`, and returns the
/// epoch milliseconds before and after it.
async fn deliver_failing(
    function: &async_api::Function,
    task_id: &str,
    event: &str,
    attempt: u32,
    message: &str,
) -> (u64, u64) {
    let before = support::now_millis();
    let err = support::invoke(function, event)
        .await
        .expect_err("the invocation fails, so that Lambda retries it");
    let after = support::now_millis();
    assert_eq!(
        diagnostic(err),
        (
            "TaskFailed".to_owned(),
            format!("task {task_id} failed on attempt {attempt}: {message}")
        ),
        "attempt {attempt}"
    );
    (before, after)
}

#[tokio::test]
async fn a_failed_attempt_leaves_the_task_queued_with_its_error_until_lambdas_retry_succeeds() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, _) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 0}"#)).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id");
    let event = failing_event(task_id, 0, 1);
    let message = "simulated failure (fail_attempts = 1)";

    let (before, after) = deliver_failing(&fixture.function, task_id, &event, 1, message).await;
    // Not `failed`: Lambda will retry the event, about a minute later.
    let item = fixture.task_item(task_id).await.expect("record");
    let retry_at = number(&item, "retry_at");
    assert!(
        (before + 60_000..=after + 60_000).contains(&retry_at),
        "retry_at {retry_at}: a minute after the failure ({before}..{after})"
    );
    assert_eq!(item.get("lease_until"), None);
    let status = get(&fixture, task_id).await;
    assert_eq!(status.status, 200);
    assert_eq!(
        status.body,
        shown(&item, "queued", json!(message), Value::Null)
    );
    let wait = retry_after(&status);
    assert!(
        (59..=60).contains(&wait),
        "Retry-After {wait}: no sooner than Lambda's retry"
    );

    // Lambda's retry delivers the same event again: the second attempt succeeds.
    let retry = fixture.invoke(&event).await.expect("the retry succeeds");
    assert_eq!(
        retry.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    let item = fixture.task_item(task_id).await.expect("record");
    assert_eq!(item.get("retry_at"), None);
    let status = get(&fixture, task_id).await;
    assert_eq!(
        status.body,
        shown(&item, "succeeded", Value::Null, json!({"waited_ms": 0})),
        "the error of attempt 1 is gone, the result is there"
    );
    assert_eq!(status.header("retry-after"), None);
}

#[tokio::test]
async fn the_third_failed_attempt_fails_the_task_for_good_and_a_fourth_delivery_does_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let task_id = fixture.enqueued_task().await;
    let event = failing_event(&task_id, 0, 3);
    let message = "simulated failure (fail_attempts = 3)";

    // Attempts 1 and 2: queued for Lambda's retries, a minute and two later.
    for attempt in 1..=2_u32 {
        let (before, after) =
            deliver_failing(&fixture.function, &task_id, &event, attempt, message).await;
        let item = fixture.task_item(&task_id).await.expect("record");
        let pause = 60_000 * u64::from(attempt);
        let retry_at = number(&item, "retry_at");
        assert!(
            (before + pause..=after + pause).contains(&retry_at),
            "attempt {attempt}: retry_at {retry_at}"
        );
        let status = get(&fixture, &task_id).await;
        assert_eq!(
            status.body,
            shown(&item, "queued", json!(message), Value::Null),
            "attempt {attempt}"
        );
        let wait = retry_after(&status);
        assert!(
            (pause / 1000 - 1..=pause / 1000).contains(&wait),
            "attempt {attempt}: Retry-After {wait}"
        );
    }

    // Attempt 3, Lambda's last: the task is failed for good, and the
    // invocation still fails (its failure record follows).
    deliver_failing(&fixture.function, &task_id, &event, 3, message).await;
    let failed = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(failed.get("retry_at"), None);
    let status = get(&fixture, &task_id).await;
    assert_eq!(
        status.body,
        shown(&failed, "failed", json!(message), Value::Null)
    );
    assert_eq!(number(&failed, "attempts"), 3);
    assert_eq!(status.header("retry-after"), None, "it has ended");

    // A fourth delivery (a duplicate of the event): it succeeds and does nothing.
    let again = fixture
        .invoke(&event)
        .await
        .expect("the duplicate succeeds");
    assert_eq!(
        again.body,
        json!({"task_id": task_id, "status": "failed", "attempts": 3, "duplicate": true})
    );
    assert_eq!(
        fixture.task_item(&task_id).await.expect("record"),
        failed,
        "failed is final"
    );
}

#[tokio::test]
async fn with_task_max_retry_attempts_0_the_first_failed_attempt_is_final() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // TASK_MAX_RETRY_ATTEMPTS=0: Lambda never retries a failed event.
    let function = fixture.function_with_config(&lambda.url, |config| {
        config.task_max_retry_attempts = 0;
    });
    let task_id = fixture.enqueued_task().await;
    let event = failing_event(&task_id, 0, 1);
    let message = "simulated failure (fail_attempts = 1)";

    deliver_failing(&function, &task_id, &event, 1, message).await;
    let failed = fixture.task_item(&task_id).await.expect("record");
    let status = get(&fixture, &task_id).await;
    assert_eq!(
        status.body,
        shown(&failed, "failed", json!(message), Value::Null)
    );
    assert_eq!(number(&failed, "attempts"), 1);
    assert_eq!(status.header("retry-after"), None);

    let again = support::invoke(&function, &event)
        .await
        .expect("a duplicate succeeds");
    assert_eq!(
        again.body,
        json!({"task_id": task_id, "status": "failed", "attempts": 1, "duplicate": true})
    );
    assert_eq!(fixture.task_item(&task_id).await.expect("record"), failed);
}

#[tokio::test]
async fn work_that_fails_for_good_ends_the_task_failed_at_once_without_a_function_error() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let task_id = fixture.enqueued_task().await;
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_for_good": true}).to_string();

    // No function error: Lambda must not retry what no retry can cure.
    let outcome = fixture
        .invoke(&event)
        .await
        .expect("the invocation succeeds");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "failed", "attempts": 1, "duplicate": false})
    );
    let failed = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(failed.get("retry_at"), None);
    let status = get(&fixture, &task_id).await;
    assert_eq!(
        status.body,
        shown(
            &failed,
            "failed",
            json!("simulated failure for good (fail_for_good)"),
            Value::Null
        )
    );
    assert_eq!(status.header("retry-after"), None);

    let again = fixture.invoke(&event).await.expect("a duplicate succeeds");
    assert_eq!(
        again.body,
        json!({"task_id": task_id, "status": "failed", "attempts": 1, "duplicate": true})
    );
    assert_eq!(fixture.task_item(&task_id).await.expect("record"), failed);
}

#[tokio::test]
async fn a_claim_too_late_to_start_the_work_is_released_and_the_next_attempt_is_1() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let task_id = fixture.enqueued_task().await;
    let event = events::task(&task_id, 0);

    // An invocation 100 ms from its deadline: its claim's lease can never
    // hold two renewal intervals (50 ms each), so the work must not start.
    let deadline = support::now_millis() + 100;
    let err = support::invoke_with_deadline(&fixture.function, &event, deadline)
        .await
        .expect_err("the event is given back to Lambda");
    assert_eq!(
        diagnostic(err),
        (
            "TaskLeaseTooShort".to_owned(),
            format!("task {task_id}: too little time is left to start the work")
        )
    );
    let released = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(string(&released, "status"), "queued");
    assert_eq!(
        number(&released, "attempts"),
        0,
        "no attempt started the work"
    );
    assert_eq!(released.get("lease_until"), None);
    assert_eq!(
        get(&fixture, &task_id).await.body,
        shown(&released, "queued", Value::Null, Value::Null)
    );

    // Lambda's retry claims it at once and runs attempt 1.
    let retry = fixture.invoke(&event).await.expect("the retry succeeds");
    assert_eq!(
        retry.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
}

#[tokio::test]
async fn a_task_event_for_an_unknown_task_is_an_error_and_writes_nothing() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let task_id = uuid::Uuid::new_v4().to_string();
    let err = fixture
        .invoke(&events::task(&task_id, 0))
        .await
        .expect_err("unknown task");
    let diagnostic = lambda_http::lambda_runtime::Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "UnknownTask");
    assert_eq!(
        diagnostic.error_message,
        format!("no task {task_id} is recorded")
    );
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);
}

#[tokio::test]
async fn no_http_request_on_any_path_runs_a_task() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, payload) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 0}"#)).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id");
    let before = fixture.task_item(task_id).await.expect("record");

    for (method, path) in [
        ("POST", "/events"),
        ("POST", "/"),
        ("POST", "/tasks"),
        ("PUT", "/events"),
        ("POST", "/async/run"),
    ] {
        for event in [
            events::http_api(method, path, Some(&payload)),
            events::rest_api("Prod", method, path, Some(&payload)),
            events::alb(method, path, Some(&payload)),
            events::function_url(method, path, Some(&payload)),
        ] {
            let reply = fixture.invoke(&event).await.expect("an HTTP answer");
            assert!(
                matches!(reply.status, 404 | 405),
                "{method} {path}: {}",
                reply.status
            );
        }
    }
    // POST /async with a task-shaped body is a bad request, never a task run.
    let reply = fixture.http("POST", "/async", Some(&payload)).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        fixture.task_item(task_id).await.expect("record"),
        before,
        "the task never ran"
    );
    assert_eq!(lambda.invocations().len(), 1);
}

#[tokio::test]
async fn a_non_http_event_that_is_not_a_task_is_an_error_and_writes_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    for event in [
        r#"{"hello": "world"}"#,
        r#"{"task_id": "not-a-uuid", "delay_ms": 1}"#,
        r#"{"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 60001}"#,
        r#"{"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}"#,
        "[]",
        "42",
        r#""text""#,
        "null",
    ] {
        let err = fixture.invoke(event).await.expect_err("not a task");
        let diagnostic = lambda_http::lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "UnrecognizedEvent", "{event}");
        assert!(
            diagnostic.error_message.starts_with(
                "expected an API Gateway (HTTP API or REST API), Application Load Balancer or Lambda Function URL event, a task event"
            ),
            "{event}: {}",
            diagnostic.error_message
        );
    }
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);
    assert_eq!(lambda.invocations().len(), 0);
}

#[tokio::test]
async fn a_bad_async_body_is_rejected_and_nothing_is_written() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let range = "delay_ms must be an integer from 0 to 60000";
    let shape =
        "Invalid JSON body: expected an object with an optional integer delay_ms from 0 to 60000";
    for (body, message) in [
        (r#"{"delay_ms": 60001}"#, range),
        (r#"{"delay_ms": 99999999999999999999}"#, range),
        (r#"{"delay_ms": -1}"#, range),
        (r#"{"delay_ms": 1.5}"#, range),
        (r#"{"delay_ms": 60000.5}"#, range),
        (r#"{"delay_ms": "secret-value"}"#, shape),
        (r#"{"delay": 10}"#, shape),
        ("[]", shape),
        ("[null]", shape),
        ("[1000]", shape),
        ("1000", shape),
        ("{", "Invalid JSON body: not valid JSON (line 1, column 1)"),
        // A body of whitespace alone is not JSON, whatever the whitespace.
        ("\r", "Invalid JSON body: not valid JSON (line 1, column 1)"),
        (
            " \t\n",
            "Invalid JSON body: not valid JSON (line 2, column 0)",
        ),
        (
            "\x0c",
            "Invalid JSON body: not valid JSON (line 1, column 1)",
        ),
        (
            "not json",
            "Invalid JSON body: not valid JSON (line 1, column 2)",
        ),
    ] {
        let reply = fixture.http("POST", "/async", Some(body)).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.body,
            error_body(&reply, "bad_request", message),
            "{body}"
        );
    }
    for (body, status) in [
        (r#"{"delay_ms": 0}"#, 202),
        (r#"{"delay_ms": 60000}"#, 202),
        (r#"{"delay_ms": 54.0}"#, 202),
        ("{}", 202),
        ("null", 202),
        ("", 202),
        (" null\n", 202),
    ] {
        assert_eq!(
            fixture.http("POST", "/async", Some(body)).await.status,
            status,
            "{body}"
        );
    }
    assert_eq!(
        fixture.count(&fixture.tasks_table).await,
        7,
        "only the accepted bodies wrote"
    );
}

#[tokio::test]
async fn a_task_id_that_cannot_be_ours_is_400_and_an_unknown_one_404() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let bad = "task_id must be a task id this API returned (a lowercase UUID)";
    for id in [
        "nope",
        "0B7E4C1A-2F3D-4E5A-8C6B-9D1E2F3A4B5C",
        "0b7e4c1a2f3d4e5a8c6b9d1e2f3a4b5c",
        "%20",
    ] {
        let reply = fixture.http("GET", &format!("/tasks/{id}"), None).await;
        assert_eq!(reply.status, 400, "{id}");
        assert_eq!(reply.body, error_body(&reply, "bad_request", bad));
    }
    let unknown = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let reply = fixture
        .http("GET", &format!("/tasks/{unknown}"), None)
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        error_body(&reply, "not_found", &format!("No task {unknown}"))
    );
}
