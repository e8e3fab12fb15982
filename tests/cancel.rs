//! `DELETE /tasks/{task_id}` and what follows it: a queued task never runs, a
//! running one stops within a second and its invocation ends without an error,
//! an ended one is a 409; `GET /tasks/{task_id}`'s `Retry-After` while the
//! task has not ended; a task queued for Lambda's retry after a failed
//! attempt can be canceled too, and the retry then does nothing; and the
//! backstop that shows a task whose event can no longer arrive, or whose last
//! attempt died, as `failed`.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_api::tasks::record::{ATTEMPT_DIED, NEVER_DELIVERED};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, error_body};

type Item = HashMap<String, AttributeValue>;

fn string(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

/// Starts a task through `POST /async`; returns its id and the event Lambda
/// was given for it.
async fn start(fixture: &Fixture, lambda: &FakeLambda, delay_ms: u64) -> (String, String) {
    let reply = fixture
        .http(
            "POST",
            "/async",
            Some(&format!(r#"{{"delay_ms": {delay_ms}}}"#)),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let task_id = reply.body["task_id"].as_str().expect("task_id").to_owned();
    let event = lambda
        .invocations()
        .iter()
        .map(|call| String::from_utf8(call.payload.to_vec()).expect("UTF-8"))
        .find(|event| event.contains(&task_id))
        .expect("the task's event");
    (task_id, event)
}

async fn item(fixture: &Fixture, task_id: &str) -> Item {
    fixture.task_item(task_id).await.expect("the task record")
}

/// The record as `GET /tasks/{id}` must show it, from the stored item (a
/// task that has not succeeded: `result` null).
fn shown(item: &Item, status: &str, error: Value) -> Value {
    json!({
        "task_id": string(item, "task_id"),
        "status": status,
        "created_at": string(item, "created_at"),
        "updated_at": string(item, "updated_at"),
        "attempts": item["attempts"].as_n().expect("attempts").parse::<u32>().expect("number"),
        "error": error,
        "result": null,
    })
}

async fn delete(fixture: &Fixture, task_id: &str) -> Reply {
    fixture
        .http("DELETE", &format!("/tasks/{task_id}"), None)
        .await
}

async fn get(fixture: &Fixture, task_id: &str) -> Reply {
    fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await
}

/// Polls until the task reads `status`.
/// Waits until the task reads `status`; `running` also waits for its
/// attempt to have started (a claim is `running` before its start write
/// counts it).
async fn wait_for_status(fixture: &Fixture, task_id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = get(fixture, task_id).await.body;
        if body["status"] == status && (status != "running" || body["attempts"] != 0) {
            return;
        }
        assert!(Instant::now() < deadline, "{task_id} never {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancelling_a_queued_task_answers_it_canceled_and_its_event_then_does_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, event) = start(&fixture, &lambda, 0).await;

    let reply = delete(&fixture, &task_id).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("retry-after"), None);
    let canceled = item(&fixture, &task_id).await;
    assert_eq!(string(&canceled, "status"), "canceled");
    assert_eq!(reply.body, shown(&canceled, "canceled", Value::Null));
    assert_eq!(reply.body["attempts"], 0);

    // Lambda delivers the event anyway: it succeeds and does nothing.
    let delivered = fixture.invoke(&event).await.expect("the delivery succeeds");
    assert_eq!(
        delivered.body,
        json!({"task_id": task_id, "status": "canceled", "attempts": 0, "duplicate": true})
    );
    assert_eq!(item(&fixture, &task_id).await, canceled, "record unchanged");
    let status = get(&fixture, &task_id).await;
    assert_eq!(status.body, reply.body);
    assert_eq!(status.header("retry-after"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_task_stops_it_within_a_second_and_its_invocation_ends_without_error()
{
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, event) = start(&fixture, &lambda, 3000).await;
    let function = fixture.function.clone();
    let started = Instant::now();
    let mut running = tokio::spawn(async move { support::invoke(&function, &event).await });
    wait_for_status(&fixture, &task_id, "running").await;

    let reply = delete(&fixture, &task_id).await;
    let canceled_at = Instant::now();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let canceled = item(&fixture, &task_id).await;
    assert_eq!(reply.body, shown(&canceled, "canceled", Value::Null));
    assert_eq!(reply.body["attempts"], 1);

    let ended = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
    let stopped_after = canceled_at.elapsed();
    eprintln!("running attempt ended {stopped_after:?} after the cancel");
    let outcome = ended
        .unwrap_or_else(|_| panic!("the attempt still ran a second after the cancel"))
        .expect("invocation task");
    let outcome = outcome.expect("the invocation ends without an error, so Lambda does not retry");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "canceled", "attempts": 1, "duplicate": false})
    );
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "stopped before the work's 3 s were up"
    );

    // Past the moment the work would have finished: nothing changed.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(started.elapsed())).await;
    assert_eq!(item(&fixture, &task_id).await, canceled, "record unchanged");
    let status = get(&fixture, &task_id).await;
    assert_eq!(status.body, reply.body);
    assert_eq!(status.header("retry-after"), None);
}

/// A task started through `/async` and taken to `status` (an ended one).
async fn ended_task(fixture: &Fixture, lambda: &FakeLambda, status: &str) -> String {
    let (task_id, event) = start(fixture, lambda, 0).await;
    match status {
        "succeeded" => {
            fixture.invoke(&event).await.expect("succeeds");
        }
        "failed" => {
            // Failed for good at once (a failed attempt with a retry to come
            // would leave it queued).
            let mut failing: Value = serde_json::from_str(&event).expect("event");
            failing["fail_for_good"] = json!(true);
            fixture
                .invoke(&failing.to_string())
                .await
                .expect("the attempt fails for good, without a function error");
        }
        "canceled" => assert_eq!(delete(fixture, &task_id).await.status, 200),
        other => panic!("{other}"),
    }
    assert_eq!(get(fixture, &task_id).await.body["status"], status);
    task_id
}

#[tokio::test]
async fn cancelling_an_ended_task_is_409_conflict_and_changes_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    for status in ["succeeded", "failed", "canceled"] {
        let task_id = ended_task(&fixture, &lambda, status).await;
        let before = item(&fixture, &task_id).await;
        let reply = delete(&fixture, &task_id).await;
        assert_eq!(reply.status, 409, "{status}: {}", reply.body);
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "conflict",
                &format!("Task {task_id} has already ended ({status})")
            )
        );
        assert_eq!(
            reply.header("retry-after"),
            None,
            "{status}: no retry cures it"
        );
        assert_eq!(item(&fixture, &task_id).await, before, "{status}");
    }
}

#[tokio::test]
async fn cancelling_an_unknown_task_is_404_and_a_malformed_id_400() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    let unknown = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let reply = delete(&fixture, unknown).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(
        reply.body,
        error_body(&reply, "not_found", &format!("No task {unknown}"))
    );
    for bad in [
        "not-a-uuid",
        "0B7E4C1A-2F3D-4E5A-8C6B-9D1E2F3A4B5C",
        "idempotency-key%23k",
    ] {
        let reply = delete(&fixture, bad).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "bad_request",
                "task_id must be a task id this API returned (a lowercase UUID)"
            ),
            "{bad}"
        );
    }
    assert_eq!(
        fixture.count(&fixture.tasks_table).await,
        0,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_task_says_retry_after_1_while_queued_or_running_and_nothing_once_ended() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;

    let (task_id, event) = start(&fixture, &lambda, 1500).await;
    let queued = get(&fixture, &task_id).await;
    assert_eq!(queued.body["status"], "queued");
    assert_eq!(queued.header("retry-after"), Some("1"), "queued");

    let function = fixture.function.clone();
    let running = tokio::spawn(async move { support::invoke(&function, &event).await });
    wait_for_status(&fixture, &task_id, "running").await;
    let reply = get(&fixture, &task_id).await;
    assert_eq!(reply.header("retry-after"), Some("1"), "running");
    running.await.expect("task").expect("succeeds");

    let reply = get(&fixture, &task_id).await;
    assert_eq!(reply.body["status"], "succeeded");
    assert_eq!(reply.header("retry-after"), None, "succeeded");
    for status in ["failed", "canceled"] {
        let task_id = ended_task(&fixture, &lambda, status).await;
        let reply = get(&fixture, &task_id).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("retry-after"), None, "{status}");
    }
}

/// A `running` record created `age` ago, whose attempt (its first) died
/// holding a lease that ran out three seconds after the task was created.
fn running_record(task_id: &str, age: Duration) -> Item {
    let mut item = queued_record(task_id, age);
    let created_ms: u64 = item["created_ms"].as_n().expect("ms").parse().expect("ms");
    let s = |v: &str| AttributeValue::S(v.to_owned());
    item.insert("status".to_owned(), s("running"));
    item.insert("attempts".to_owned(), AttributeValue::N("1".to_owned()));
    item.insert("claim_id".to_owned(), s("claim-of-a-dead-attempt"));
    item.insert(
        "lease_until".to_owned(),
        AttributeValue::N((created_ms + 3_000).to_string()),
    );
    item
}

/// A `queued` record as `/async` writes it, created `age` ago, its event
/// accepted by Lambda.
fn queued_record(task_id: &str, age: Duration) -> Item {
    let created_ms = support::now_millis() - age.as_millis() as u64;
    let created_at =
        time::OffsetDateTime::from_unix_timestamp_nanos(created_ms as i128 * 1_000_000)
            .expect("time")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());
    HashMap::from([
        ("task_id".to_owned(), s(task_id)),
        ("status".to_owned(), s("queued")),
        ("created_at".to_owned(), s(&created_at)),
        ("created_ms".to_owned(), n(created_ms)),
        ("updated_at".to_owned(), s(&created_at)),
        ("attempts".to_owned(), n(0)),
        ("enqueued".to_owned(), AttributeValue::Bool(true)),
        (
            "expires_at".to_owned(),
            n(created_ms / 1000 + 7 * 24 * 3600),
        ),
    ])
}

#[tokio::test]
async fn a_queued_task_older_than_its_event_can_be_reads_failed_and_cannot_be_canceled() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    // The fixture's TASK_EVENT_MAX_AGE_SECONDS is 3600; Lambda's retries add 300 s.
    let horizon = Duration::from_secs(3600 + 300);
    let stale_id = "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c";
    let fresh_id = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let stale = queued_record(stale_id, horizon + Duration::from_secs(60));
    let fresh = queued_record(fresh_id, horizon - Duration::from_secs(60));
    fixture
        .put_items(&fixture.tasks_table, vec![stale.clone(), fresh.clone()])
        .await;

    let reply = get(&fixture, stale_id).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, shown(&stale, "failed", json!(NEVER_DELIVERED)));
    assert_eq!(reply.header("retry-after"), None);
    let reply = delete(&fixture, stale_id).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "conflict",
            &format!("Task {stale_id} has already ended (failed)")
        )
    );
    assert_eq!(
        item(&fixture, stale_id).await,
        stale,
        "shown failed, stored as is"
    );

    let reply = get(&fixture, fresh_id).await;
    assert_eq!(
        reply.body,
        shown(&fresh, "queued", Value::Null),
        "still deliverable"
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(delete(&fixture, fresh_id).await.status, 200);
}

#[tokio::test]
async fn a_running_task_older_than_its_event_can_be_reads_failed_its_attempt_died_and_stays_so() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    // Older than TASK_EVENT_MAX_AGE_SECONDS (3600) and Lambda's retries (300 s):
    // no lease can still hold, so its last attempt died without a result.
    let horizon = Duration::from_secs(3600 + 300);
    let stale_id = "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c";
    let stale = running_record(stale_id, horizon + Duration::from_secs(60));
    fixture
        .put_items(&fixture.tasks_table, vec![stale.clone()])
        .await;

    let reply = get(&fixture, stale_id).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, shown(&stale, "failed", json!(ATTEMPT_DIED)));
    assert_eq!(reply.header("retry-after"), None, "it has ended");
    let reply = delete(&fixture, stale_id).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "conflict",
            &format!("Task {stale_id} has already ended (failed)")
        )
    );

    // Its lease ran out long ago, yet a late delivery does not claim it.
    let delivered = fixture
        .invoke(&support::events::task(stale_id, 0))
        .await
        .expect("the delivery succeeds");
    assert_eq!(
        delivered.body,
        json!({"task_id": stale_id, "status": "failed", "attempts": 1, "duplicate": true})
    );
    assert_eq!(
        item(&fixture, stale_id).await,
        stale,
        "shown failed, stored as is"
    );

    // One still within its event's reach is shown as it is.
    let fresh_id = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let fresh = running_record(fresh_id, horizon - Duration::from_secs(60));
    fixture
        .put_items(&fixture.tasks_table, vec![fresh.clone()])
        .await;
    let reply = get(&fixture, fresh_id).await;
    assert_eq!(reply.body, shown(&fresh, "running", Value::Null));
    assert_eq!(reply.header("retry-after"), Some("1"));
}

/// The model's counterexample (crates/task-model): a DELETE sent just before a
/// task's backstop whose write lands just after it, once a reader has seen
/// the task `failed`, changed `failed` to `canceled`. A cancel, and a claim,
/// that could land after the backstop (sent within the SDK's 6 s operation
/// timeout and the clock skew of it) are refused: the task reads `queued`
/// until its backstop and `failed` after, and neither write changes it.
#[tokio::test]
async fn a_cancel_or_a_claim_that_could_land_after_the_backstop_is_refused_and_the_task_never_changes()
 {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    let horizon = Duration::from_secs(3600 + 300);
    let near_id = "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c";
    // Its backstop comes in 3 s: closer than a write's 6 s reach.
    let near = queued_record(near_id, horizon - Duration::from_secs(3));
    fixture
        .put_items(&fixture.tasks_table, vec![near.clone()])
        .await;

    let reply = get(&fixture, near_id).await;
    assert_eq!(reply.body, shown(&near, "queued", Value::Null), "not yet");
    let reply = delete(&fixture, near_id).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "conflict",
            &format!("Task {near_id} has already ended (failed)")
        )
    );
    let delivered = fixture
        .invoke(&support::events::task(near_id, 0))
        .await
        .expect("the delivery succeeds");
    assert_eq!(
        delivered.body,
        json!({"task_id": near_id, "status": "failed", "attempts": 0, "duplicate": true})
    );
    assert_eq!(item(&fixture, near_id).await, near, "nothing written");

    // Ten seconds from its backstop, both still go through.
    let far_id = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let far = queued_record(far_id, horizon - Duration::from_secs(10));
    fixture
        .put_items(&fixture.tasks_table, vec![far.clone()])
        .await;
    assert_eq!(delete(&fixture, far_id).await.status, 200);
}

/// A task started through `/async` whose first attempt failed with Lambda's
/// retry still to come: its id, its (failing) event and the failure's message.
async fn task_waiting_for_its_retry(
    fixture: &Fixture,
    lambda: &FakeLambda,
) -> (String, String, &'static str) {
    let (task_id, event) = start(fixture, lambda, 0).await;
    let mut failing: Value = serde_json::from_str(&event).expect("event");
    failing["fail_attempts"] = json!(1);
    let failing = failing.to_string();
    fixture
        .invoke(&failing)
        .await
        .expect_err("attempt 1 fails, so that Lambda retries it");
    let message = "simulated failure (fail_attempts = 1)";
    let waiting = get(fixture, &task_id).await;
    assert_eq!(waiting.body["status"], "queued");
    assert_eq!(waiting.body["error"], message);
    (task_id, failing, message)
}

#[tokio::test]
async fn a_task_queued_for_lambdas_retry_can_be_canceled_and_the_retry_then_does_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, failing, _) = task_waiting_for_its_retry(&fixture, &lambda).await;

    let reply = delete(&fixture, &task_id).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), None);
    let canceled = item(&fixture, &task_id).await;
    assert_eq!(string(&canceled, "status"), "canceled");
    assert_eq!(canceled.get("retry_at"), None, "no retry is awaited");
    for (key, value) in [
        ("task_id", json!(task_id)),
        ("status", json!("canceled")),
        ("attempts", json!(1)),
        ("result", Value::Null),
        ("updated_at", json!(string(&canceled, "updated_at"))),
    ] {
        assert_eq!(reply.body[key], value, "{key}: {}", reply.body);
    }

    // Lambda's retry comes: it succeeds, does nothing, and runs no attempt.
    let retried = fixture.invoke(&failing).await.expect("the retry succeeds");
    assert_eq!(
        retried.body,
        json!({"task_id": task_id, "status": "canceled", "attempts": 1, "duplicate": true})
    );
    assert_eq!(item(&fixture, &task_id).await, canceled, "record unchanged");
    let status = get(&fixture, &task_id).await;
    assert_eq!(status.body, reply.body);
    assert_eq!(status.header("retry-after"), None);
}

#[tokio::test]
async fn a_task_canceled_while_waiting_for_its_retry_shows_error_null_as_its_schema_says() {
    // The schema of `error` (TaskRecord, in /openapi.json): how the last
    // attempt failed while the task waits for Lambda's retry, why it failed
    // once `failed`, `null` otherwise.
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, _, _) = task_waiting_for_its_retry(&fixture, &lambda).await;

    let reply = delete(&fixture, &task_id).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let canceled = item(&fixture, &task_id).await;
    assert_eq!(reply.body, shown(&canceled, "canceled", Value::Null));
    assert_eq!(get(&fixture, &task_id).await.body, reply.body);
}

#[tokio::test]
async fn the_sample_cancel_request_cancels_its_task_once_that_task_is_recorded() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/http-delete-task.json"),
    )
    .expect("events/http-delete-task.json");
    let task_id = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let queued = queued_record(task_id, Duration::from_secs(5));
    fixture.put_items(&fixture.tasks_table, vec![queued]).await;

    let reply = fixture.invoke(&sample).await.expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let canceled = item(&fixture, task_id).await;
    assert_eq!(reply.body, shown(&canceled, "canceled", Value::Null));
}
