//! `/async`, the task event it enqueues, and `GET /tasks/{task_id}`, against a
//! real local DynamoDB and a loopback stand-in for the Lambda `Invoke` API.

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::{FUNCTION_NAME, Fixture, Reply, dead_endpoint, error_body, events};

fn string(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
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
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "queued");
    assert_eq!(status.body["attempts"], 0);
    assert_eq!(status.body["error"], Value::Null);
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
               "updated_at": updated_at, "attempts": 1, "error": null})
    );
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
async fn the_same_task_event_delivered_twice_at_once_runs_once() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, _) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 300}"#)).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id");
    let event = events::task(task_id, 300);

    let (first, second) = tokio::join!(fixture.invoke(&event), fixture.invoke(&event));
    let mut outcomes = [first.expect("ok").body, second.expect("ok").body];
    outcomes.sort_by_key(|o| o["duplicate"].as_bool());
    assert_eq!(
        outcomes,
        [
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false}),
            json!({"task_id": task_id, "status": "running", "attempts": 1, "duplicate": true}),
        ]
    );
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(
        (
            status.body["status"].as_str(),
            status.body["attempts"].as_u64()
        ),
        (Some("succeeded"), Some(1))
    );
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

#[tokio::test]
async fn a_failing_task_records_failed_with_its_message_and_returns_an_error() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (reply, _) = start(&fixture, &lambda, "POST", Some(r#"{"delay_ms": 0}"#)).await;
    let task_id = reply.body["task_id"].as_str().expect("task_id");
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 1}).to_string();

    let err = fixture
        .invoke(&event)
        .await
        .expect_err("the invocation fails");
    let diagnostic = lambda_http::lambda_runtime::Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "TaskFailed");
    assert_eq!(
        diagnostic.error_message,
        format!("task {task_id} failed on attempt 1: simulated failure (fail_attempts = 1)")
    );
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(status.body["status"], "failed");
    assert_eq!(status.body["attempts"], 1);
    assert_eq!(
        status.body["error"],
        "simulated failure (fail_attempts = 1)"
    );

    // Lambda's retry delivers the same event again: the second attempt succeeds.
    let retry = fixture.invoke(&event).await.expect("the retry succeeds");
    assert_eq!(
        retry.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(
        (
            status.body["status"].clone(),
            status.body["attempts"].clone(),
            status.body["error"].clone()
        ),
        (json!("succeeded"), json!(2), Value::Null)
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
