//! `POST /async`'s rules beyond the happy path: only JSON bodies start tasks
//! (415 otherwise), `Location` and `status_url` lead back through the stage or
//! base path the client called, an `Invoke` whose answer was lost makes a 503
//! whose task never runs, and a function that does not exist is a 500. And
//! the task's record until `/async` marks it enqueued: written with the
//! request's deadline (`answer_by`), awaited by a delivery until then,
//! then marked enqueued and run by the delivery itself.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use async_api::tasks::TaskStore;
use async_api::tasks::protocol::Wrote;
use async_api::tasks::store::NOT_ENQUEUED;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, error_body, events};

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

/// The task event the fake Lambda received in call `index`, as JSON.
fn payload(lambda: &FakeLambda, index: usize) -> Value {
    serde_json::from_slice(&lambda.invocations()[index].payload).expect("a JSON task event")
}

fn task_id(reply: &Reply) -> String {
    reply.body["task_id"].as_str().expect("task_id").to_owned()
}

// ---------------------------------------------------------------------------
// 415: a body must be JSON
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_body_of_another_content_type_is_415_and_starts_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    for (content_type, body) in [
        ("text/plain", r#"{"delay_ms": 5}"#),
        ("text/plain;charset=UTF-8", r#"{"delay_ms": 5}"#),
        ("application/x-www-form-urlencoded", "delay_ms=5"),
        (
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Disposition: form-data; name=\"delay_ms\"\r\n\r\n5\r\n--XyZ--\r\n",
        ),
    ] {
        let reply = fixture
            .http_with(
                "POST",
                "/async",
                Some(body),
                &[("content-type", Some(content_type))],
            )
            .await;
        assert_eq!(reply.status, 415, "{content_type}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "unsupported_media_type",
                "Content-Type must be application/json (or a +json type)"
            ),
            "{content_type}"
        );
    }
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0, "no record");
    assert!(lambda.invocations().is_empty(), "no Invoke");
}

#[tokio::test]
async fn json_with_parameters_any_plus_json_type_and_no_content_type_are_read_as_json() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    for content_type in [
        Some("application/json; charset=utf-8"),
        Some("application/vnd.x+json"),
        Some("Application/JSON"),
        None,
    ] {
        let reply = fixture
            .http_with(
                "POST",
                "/async",
                Some(r#"{"delay_ms": 5}"#),
                &[("content-type", content_type)],
            )
            .await;
        assert_eq!(reply.status, 202, "{content_type:?}: {}", reply.body);
        let sent = lambda.invocations().len() - 1;
        assert_eq!(
            payload(&lambda, sent),
            json!({"task_id": task_id(&reply), "delay_ms": 5}),
            "{content_type:?}: the body was read"
        );
    }
}

#[tokio::test]
async fn no_body_takes_the_defaults_whatever_the_content_type() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let reply = fixture
            .http_with(
                "POST",
                "/async",
                None,
                &[("content-type", Some(content_type))],
            )
            .await;
        assert_eq!(reply.status, 202, "{content_type}: {}", reply.body);
        let sent = lambda.invocations().len() - 1;
        assert_eq!(
            payload(&lambda, sent),
            json!({"task_id": task_id(&reply), "delay_ms": 1000}),
            "{content_type}"
        );
    }
}

// ---------------------------------------------------------------------------
// Location and status_url
// ---------------------------------------------------------------------------

/// Checks a 202 of `/async` and returns its `status_url`, which must equal
/// `Location` and be `{base}/tasks/{task_id}`.
fn assert_leads_to_the_task(reply: &Reply, base: &str, case: &str) -> String {
    assert_eq!(reply.status, 202, "{case}: {}", reply.body);
    let task_id = task_id(reply);
    let status_url = format!("{base}/tasks/{task_id}");
    assert_eq!(
        reply.body,
        json!({"message": "Task started", "task_id": task_id, "status_url": status_url}),
        "{case}"
    );
    assert_eq!(
        reply.header("location"),
        Some(status_url.as_str()),
        "{case}"
    );
    status_url
}

#[tokio::test]
async fn at_the_root_location_and_status_url_are_the_tasks_path() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    type EventFn = fn(&str, &str, Option<&str>) -> String;
    let sources: [(&str, EventFn); 3] = [
        ("HTTP API", events::http_api),
        ("Function URL", events::function_url),
        ("ALB", events::alb),
    ];
    for (source, event) in sources {
        for method in ["POST", "GET"] {
            let reply = fixture
                .invoke(&event(method, "/async", None))
                .await
                .expect("answer");
            let status_url = assert_leads_to_the_task(&reply, "", source);
            let status = fixture
                .invoke(&event("GET", &status_url, None))
                .await
                .expect("answer");
            assert_eq!(status.status, 200, "{source}: {}", status.body);
            assert_eq!(status.body["task_id"], task_id(&reply).as_str());
        }
    }
}

#[tokio::test]
async fn under_a_rest_api_stage_location_leads_back_through_the_stage() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // API Gateway's path carries no stage; a client may still name it in the
    // path the event carries: both are `/Prod/async` to the client.
    for path in ["/async", "/Prod/async"] {
        let reply = fixture
            .invoke(&events::rest_api("Prod", "POST", path, None))
            .await
            .expect("answer");
        let status_url = assert_leads_to_the_task(&reply, "/Prod", path);
        // The client resolves it against the URL it called: the request
        // API Gateway then sends carries `/Prod/tasks/…` as what was called.
        let status = fixture
            .invoke(&events::rest_api("Prod", "GET", &status_url, None))
            .await
            .expect("answer");
        assert_eq!(status.status, 200, "{path}: {}", status.body);
        assert_eq!(status.body["task_id"], task_id(&reply).as_str());
    }
}

/// A REST API event reached through a custom domain whose base path `/v1`
/// maps to the API's stage: API Gateway strips the base path from `path` and
/// keeps what the client called in `requestContext.path`.
fn custom_domain_event(method: &str, route: &str) -> String {
    let mut event: Value =
        serde_json::from_str(&events::rest_api("Prod", method, route, None)).expect("event");
    event["requestContext"]["path"] = json!(format!("/v1{route}"));
    event["requestContext"]["domainName"] = json!("api.example.com");
    event["headers"]["Host"] = json!("api.example.com");
    event["multiValueHeaders"]["Host"] = json!(["api.example.com"]);
    event.to_string()
}

#[tokio::test]
async fn under_a_custom_domains_base_path_location_leads_back_through_it() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let reply = fixture
        .invoke(&custom_domain_event("POST", "/async"))
        .await
        .expect("answer");
    let status_url = assert_leads_to_the_task(&reply, "/v1", "base path /v1");
    let route = status_url.strip_prefix("/v1").expect("under /v1");
    let status = fixture
        .invoke(&custom_domain_event("GET", route))
        .await
        .expect("answer");
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["task_id"], task_id(&reply).as_str());
}

// ---------------------------------------------------------------------------
// The enqueue
// ---------------------------------------------------------------------------

/// The only record in the tasks table.
async fn only_task(fixture: &Fixture) -> HashMap<String, AttributeValue> {
    let items = fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "one record: {items:?}");
    items.into_iter().next().expect("one")
}

#[tokio::test]
async fn an_invoke_whose_answer_was_lost_is_503_and_its_delivered_event_never_runs_the_task() {
    let lambda = FakeLambda::start(202).await;
    // Lambda accepts each event, but answers after the SDK's 2 s attempt
    // timeout: every attempt's answer is lost.
    lambda.set_delay(Duration::from_millis(2500));
    let fixture = Fixture::new(&lambda.url).await;
    let reply = fixture
        .http("POST", "/async", Some(r#"{"delay_ms": 0}"#))
        .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "service_unavailable",
            "Service temporarily unavailable, retry later"
        )
    );
    let item = only_task(&fixture).await;
    let task_id = string(&item, "task_id");
    assert_eq!(string(&item, "status"), "failed");
    assert_eq!(string(&item, "error"), NOT_ENQUEUED);
    assert_eq!(item["attempts"], AttributeValue::N("0".to_owned()));

    // Lambda has the event (once per attempt of the SDK's): each delivery of
    // it succeeds and does nothing.
    let accepted = lambda.invocations();
    assert!(!accepted.is_empty(), "Lambda accepted the event");
    for invocation in &accepted {
        let event = String::from_utf8(invocation.payload.to_vec()).expect("UTF-8");
        let outcome = fixture.invoke(&event).await.expect("the delivery succeeds");
        assert_eq!(
            outcome.body,
            json!({"task_id": task_id, "status": "failed", "attempts": 0, "duplicate": true})
        );
    }
    assert_eq!(
        fixture.task_item(&task_id).await.as_ref(),
        Some(&item),
        "the record is unchanged: the work never ran"
    );
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(
        status.body,
        json!({
            "task_id": task_id, "status": "failed",
            "created_at": string(&item, "created_at"),
            "updated_at": string(&item, "updated_at"),
            "attempts": 0, "error": NOT_ENQUEUED, "result": null,
        })
    );
    assert_eq!(status.header("retry-after"), None);
}

#[tokio::test]
async fn an_invoke_whose_first_answer_was_lost_but_whose_retry_was_accepted_runs_the_task_once() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&support::answer_losing_proxy(&lambda.url).await).await;
    let reply = fixture
        .http("POST", "/async", Some(r#"{"delay_ms": 0}"#))
        .await;
    let status_url = assert_leads_to_the_task(&reply, "", "first answer lost");
    let task_id = task_id(&reply);
    let accepted = lambda.invocations();
    assert_eq!(accepted.len(), 2, "the lost attempt and the SDK's retry");

    let mut outcomes = Vec::new();
    for invocation in &accepted {
        let event = String::from_utf8(invocation.payload.to_vec()).expect("UTF-8");
        outcomes.push(fixture.invoke(&event).await.expect("succeeds").body);
    }
    assert_eq!(
        outcomes,
        vec![
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false}),
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": true}),
        ]
    );
    let status = fixture.http("GET", &status_url, None).await;
    assert_eq!(status.body["status"], "succeeded");
    assert_eq!(status.body["attempts"], 1);
    assert_eq!(status.body["result"], json!({"waited_ms": 0}));
}

#[tokio::test]
async fn a_function_that_does_not_exist_is_500_not_503_and_the_task_failed() {
    let lambda = FakeLambda::start(404).await;
    let fixture = Fixture::new(&lambda.url).await;
    let reply = fixture.http("POST", "/async", None).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), None, "no retry cures it");
    assert_eq!(reply.body, error_body(&reply, "internal", "Internal error"));
    assert_eq!(lambda.invocations().len(), 1, "not retried");
    let item = only_task(&fixture).await;
    assert_eq!(string(&item, "status"), "failed");
    assert_eq!(string(&item, "error"), NOT_ENQUEUED);
}

// ---------------------------------------------------------------------------
// Until the task is marked enqueued
// ---------------------------------------------------------------------------

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().expect("a number"),
        other => panic!("{name} is {other:?}"),
    }
}

fn store(fixture: &Fixture) -> TaskStore<'_> {
    TaskStore {
        dynamodb: &fixture.dynamodb,
        table: &fixture.tasks_table,
    }
}

/// A task written as `/async` writes it, not marked enqueued yet: its
/// request can mark it until `answer_by` (epoch ms).
async fn unmarked_task(fixture: &Fixture, answer_by: u64) -> String {
    let task_id = uuid::Uuid::new_v4().to_string();
    store(fixture)
        .put_queued(&task_id, answer_by)
        .await
        .expect("an unmarked task");
    task_id
}

#[tokio::test]
async fn the_record_is_written_with_the_requests_deadline_as_the_time_it_can_be_marked_by() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let deadline = support::now_millis() + 30_000;
    let event = events::http_api("POST", "/async", None);
    let reply = support::invoke_with_deadline(&fixture.function, &event, deadline)
        .await
        .expect("answer");
    assert_eq!(reply.status, 202, "{}", reply.body);
    let item = only_task(&fixture).await;
    assert_eq!(number(&item, "answer_by"), deadline);
    assert_eq!(item["enqueued"], AttributeValue::Bool(true));

    // `cargo lambda watch` gives every invocation a deadline in 1970: the
    // request is taken to have Lambda's longest timeout, 15 minutes.
    let fixture = Fixture::new(&lambda.url).await;
    let before = support::now_millis();
    let reply = support::invoke_with_deadline(&fixture.function, &event, 600_000)
        .await
        .expect("answer");
    assert_eq!(reply.status, 202, "{}", reply.body);
    let answer_by = number(&only_task(&fixture).await, "answer_by");
    let after = support::now_millis();
    assert!(
        (before + 900_000..=after + 900_000).contains(&answer_by),
        "answer_by {answer_by}"
    );
}

#[tokio::test]
async fn a_delivery_that_comes_before_its_task_is_marked_waits_for_the_mark_and_runs_it() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    let task_id = unmarked_task(&fixture, support::now_millis() + 5_000).await;
    let function = fixture.function.clone();
    let event = events::task(&task_id, 0);
    let delivery = tokio::spawn(async move { support::invoke(&function, &event).await });

    // Lambda can deliver the event before `/async` has its answer: the mark
    // comes 1.5 s later, well within the request's time.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!delivery.is_finished(), "the delivery waits for the mark");
    assert_eq!(store(&fixture).mark_enqueued(&task_id).await, Wrote::Done);
    let outcome = delivery
        .await
        .expect("delivery")
        .expect("the delivery runs the task");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
}

#[tokio::test]
async fn a_delivery_whose_own_time_runs_out_before_the_mark_gives_the_event_back_unchanged() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    let task_id = unmarked_task(&fixture, support::now_millis() + 60_000).await;
    let before = fixture.task_item(&task_id).await.expect("record");

    let deadline = support::now_millis() + 1_000;
    let err =
        support::invoke_with_deadline(&fixture.function, &events::task(&task_id, 0), deadline)
            .await
            .expect_err("a function error, so that Lambda delivers it again");
    assert!(
        support::now_millis() < deadline,
        "given back before its deadline"
    );
    let diagnostic = lambda_http::lambda_runtime::Diagnostic::from(err);
    assert_eq!(
        (diagnostic.error_type.as_str(), diagnostic.error_message),
        (
            "TaskNotEnqueued",
            format!("task {task_id} is not enqueued yet")
        )
    );
    assert_eq!(fixture.task_item(&task_id).await, Some(before), "unchanged");
}

#[tokio::test]
async fn a_delivery_marks_and_runs_a_task_its_request_can_no_longer_say_503_for() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    // The request that wrote it is over (it answered 202 unable to tell, or
    // died: never the function's 503, which fails the task first), 100 ms ago.
    let task_id = unmarked_task(&fixture, support::now_millis() - 100).await;
    let event = events::task(&task_id, 0);

    let outcome = fixture.invoke(&event).await.expect("the delivery succeeds");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(item.get("enqueued"), Some(&AttributeValue::Bool(true)));
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(
        status.body,
        json!({
            "task_id": task_id, "status": "succeeded",
            "created_at": string(&item, "created_at"),
            "updated_at": string(&item, "updated_at"),
            "attempts": 1, "error": null, "result": {"waited_ms": 0},
        })
    );
    let again = fixture.invoke(&event).await.expect("a duplicate succeeds");
    assert_eq!(
        again.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": true})
    );
}
