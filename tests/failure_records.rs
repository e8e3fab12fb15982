//! The on-failure destination's records, as the failure queue's event source
//! mapping hands them to the function (SQS events built exactly as AWS
//! documents them, by `support::runtime_api::async_invoke`): the task of each
//! record becomes `failed` with why Lambda gave up, unless it has ended (a
//! task `queued` for Lambda's retry after a failed attempt has not); a record
//! of a task that no longer exists is acknowledged; a message that cannot be
//! read, or not applied, is reported back as a batch item failure.

mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::runtime_api::async_invoke::{
    Account, Answer, Condition, QueueMessage, epoch_millis, invocation_record, sqs_event,
};
use support::{FUNCTION_NAME, Fixture, Reply, dead_endpoint, events};

type Item = HashMap<String, AttributeValue>;

const RETRIES_EXHAUSTED: &str =
    "RetriesExhausted: Lambda gave up on the task event after 3 attempts";
const EVENT_AGE_EXCEEDED: &str =
    "EventAgeExceeded: the task event reached its maximum age before it could run";

fn string(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

/// The destination message Lambda sends when it gives up on `event` for
/// `condition`: after three failed attempts, or with none made (expired in
/// its queue).
fn destination_message(event: &str, condition: Condition) -> QueueMessage {
    let attempts: Vec<Answer> = match condition {
        Condition::RetriesExhausted => (1..=3)
            .map(|attempt| {
                Answer::unhandled(
                    "TaskFailed",
                    &format!("the task failed on attempt {attempt}"),
                )
            })
            .collect(),
        Condition::EventAgeExceeded => Vec::new(),
    };
    let record = invocation_record(
        &Account::default(),
        FUNCTION_NAME,
        &uuid::Uuid::new_v4().to_string(),
        condition,
        event.as_bytes(),
        &attempts,
        epoch_millis(),
    );
    QueueMessage::new(&record, FUNCTION_NAME)
}

/// A message whose body is `body`, as the queue would carry anything sent to it.
fn raw_message(body: &str) -> QueueMessage {
    let mut message = destination_message(
        &events::task(&uuid::Uuid::new_v4().to_string(), 0),
        Condition::RetriesExhausted,
    );
    message.body = body.to_owned();
    message
}

/// The SQS event of the mapping for a batch of `messages`.
fn batch(messages: &[&QueueMessage]) -> String {
    let account = Account::default();
    let now = epoch_millis();
    let records: Vec<Value> = messages
        .iter()
        .map(|message| sqs_event(&account, message, 1, now, "receipt-handle")["Records"][0].clone())
        .collect();
    json!({"Records": records}).to_string()
}

async fn deliver(fixture: &Fixture, messages: &[&QueueMessage]) -> Reply {
    fixture
        .invoke(&batch(messages))
        .await
        .expect("an SQS event is answered, never a function error")
}

/// The answer that lets the mapping delete every message but `failed`.
fn batch_answer(failed: &[&QueueMessage]) -> Value {
    let failures: Vec<Value> = failed
        .iter()
        .map(|message| json!({"itemIdentifier": message.message_id}))
        .collect();
    json!({"batchItemFailures": failures})
}

/// A task started through `/async`, still `queued`; its id and event.
async fn queued_task(fixture: &Fixture, lambda: &FakeLambda) -> (String, String) {
    let reply = fixture
        .http("POST", "/async", Some(r#"{"delay_ms": 0}"#))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let task_id = reply.body["task_id"].as_str().expect("task_id").to_owned();
    let event = lambda
        .invocations()
        .iter()
        .map(|call| String::from_utf8(call.payload.to_vec()).expect("UTF-8"))
        .find(|event| event.contains(&task_id))
        .expect("its event");
    (task_id, event)
}

/// A task left `running` by an attempt that died holding it (its third,
/// under a lease that has not run out yet); its id and event.
async fn running_task(fixture: &Fixture) -> (String, String) {
    let task_id = uuid::Uuid::new_v4().to_string();
    let now_ms = support::now_millis();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());
    let item = HashMap::from([
        ("task_id".to_owned(), s(&task_id)),
        ("status".to_owned(), s("running")),
        ("created_at".to_owned(), s(&now)),
        ("created_ms".to_owned(), n(now_ms)),
        ("updated_at".to_owned(), s(&now)),
        ("attempts".to_owned(), n(3)),
        ("enqueued".to_owned(), AttributeValue::Bool(true)),
        ("lease_until".to_owned(), n(now_ms + 60_000)),
        ("claim_id".to_owned(), s("claim-of-a-dead-attempt")),
        ("expires_at".to_owned(), n(now_ms / 1000 + 7 * 24 * 3600)),
    ]);
    fixture.put_items(&fixture.tasks_table, vec![item]).await;
    (task_id.clone(), events::task(&task_id, 0))
}

async fn item(fixture: &Fixture, task_id: &str) -> Item {
    fixture.task_item(task_id).await.expect("the task record")
}

#[tokio::test]
async fn a_record_fails_its_queued_or_running_task_saying_why_lambda_gave_up() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    for (condition, error) in [
        (Condition::RetriesExhausted, RETRIES_EXHAUSTED),
        (Condition::EventAgeExceeded, EVENT_AGE_EXCEEDED),
    ] {
        for (state, (task_id, event)) in [
            ("queued", queued_task(&fixture, &lambda).await),
            ("running", running_task(&fixture).await),
        ] {
            let case = format!("{} of a {state} task", condition.as_str());
            let before = item(&fixture, &task_id).await;
            let message = destination_message(&event, condition);
            let reply = deliver(&fixture, &[&message]).await;
            assert_eq!(reply.body, batch_answer(&[]), "{case}: acknowledged");

            let after = item(&fixture, &task_id).await;
            assert_eq!(string(&after, "status"), "failed", "{case}");
            assert_eq!(string(&after, "error"), error, "{case}");
            assert_eq!(after["attempts"], before["attempts"], "{case}");
            assert_eq!(after.get("lease_until"), None, "{case}: no lease left");
            let status = fixture
                .http("GET", &format!("/tasks/{task_id}"), None)
                .await;
            assert_eq!(status.status, 200);
            assert_eq!(
                status.body,
                json!({
                    "task_id": task_id, "status": "failed",
                    "created_at": string(&after, "created_at"),
                    "updated_at": string(&after, "updated_at"),
                    "attempts": if state == "queued" { 0 } else { 3 },
                    "error": error,
                    "result": null,
                }),
                "{case}"
            );
            assert_eq!(status.header("retry-after"), None, "{case}: it has ended");
        }
    }
}

/// `event` with the stand-in work told to fail: `field` = `value`.
fn failing(event: &str, field: &str, value: Value) -> String {
    let mut failing: Value = serde_json::from_str(event).expect("event");
    failing[field] = value;
    failing.to_string()
}

#[tokio::test]
async fn a_record_of_a_task_that_has_ended_leaves_it_unchanged() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (succeeded, succeeded_event) = queued_task(&fixture, &lambda).await;
    fixture.invoke(&succeeded_event).await.expect("runs");
    // Failed for good by its work: no retry comes, and the invocation succeeds.
    let (failed, failed_event) = queued_task(&fixture, &lambda).await;
    fixture
        .invoke(&failing(&failed_event, "fail_for_good", json!(true)))
        .await
        .expect("fails for good, without a function error");
    // Failed by its last attempt (the third): the record Lambda then sends
    // leaves the work's own error.
    let (exhausted, exhausted_event) = queued_task(&fixture, &lambda).await;
    let three_failures = failing(&exhausted_event, "fail_attempts", json!(3));
    for _ in 1..=3 {
        fixture
            .invoke(&three_failures)
            .await
            .expect_err("each attempt fails in its work");
    }
    let (canceled, canceled_event) = queued_task(&fixture, &lambda).await;
    let cancel = fixture
        .http("DELETE", &format!("/tasks/{canceled}"), None)
        .await;
    assert_eq!(cancel.status, 200);

    for (task_id, event, status, error) in [
        (&succeeded, &succeeded_event, "succeeded", None),
        (
            &failed,
            &failed_event,
            "failed",
            Some("simulated failure for good (fail_for_good)"),
        ),
        (
            &exhausted,
            &exhausted_event,
            "failed",
            Some("simulated failure (fail_attempts = 3)"),
        ),
        (&canceled, &canceled_event, "canceled", None),
    ] {
        let before = item(&fixture, task_id).await;
        assert_eq!(string(&before, "status"), status);
        assert_eq!(
            before
                .get("error")
                .map(|error| error.as_s().expect("string").as_str()),
            error,
            "{status}"
        );
        for condition in [Condition::RetriesExhausted, Condition::EventAgeExceeded] {
            let message = destination_message(event, condition);
            let reply = deliver(&fixture, &[&message]).await;
            assert_eq!(reply.body, batch_answer(&[]), "{status}: acknowledged");
            assert_eq!(item(&fixture, task_id).await, before, "{status}: unchanged");
        }
    }
}

#[tokio::test]
async fn a_record_fails_a_task_queued_for_its_retry_and_no_later_delivery_runs_it() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, event) = queued_task(&fixture, &lambda).await;
    let one_failure = failing(&event, "fail_attempts", json!(1));
    fixture
        .invoke(&one_failure)
        .await
        .expect_err("attempt 1 fails in its work");
    let waiting = item(&fixture, &task_id).await;
    assert_eq!(
        string(&waiting, "status"),
        "queued",
        "waiting for the retry"
    );
    assert!(waiting.contains_key("retry_at"));

    // Lambda gives up before the retry (the event reached its maximum age):
    // the task has not ended, so the record ends it.
    let message = destination_message(&one_failure, Condition::EventAgeExceeded);
    let reply = deliver(&fixture, &[&message]).await;
    assert_eq!(reply.body, batch_answer(&[]));
    let failed = item(&fixture, &task_id).await;
    assert_eq!(string(&failed, "status"), "failed");
    assert_eq!(string(&failed, "error"), EVENT_AGE_EXCEEDED);
    assert_eq!(failed["attempts"], waiting["attempts"]);
    assert_eq!(failed.get("retry_at"), None, "no retry is awaited");
    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(
        status.body,
        json!({
            "task_id": task_id, "status": "failed",
            "created_at": string(&failed, "created_at"),
            "updated_at": string(&failed, "updated_at"),
            "attempts": 1, "error": EVENT_AGE_EXCEEDED, "result": null,
        })
    );
    assert_eq!(status.header("retry-after"), None);

    // A delivery of its event after all: `failed` is final.
    let late = fixture.invoke(&one_failure).await.expect("succeeds");
    assert_eq!(
        late.body,
        json!({"task_id": task_id, "status": "failed", "attempts": 1, "duplicate": true})
    );
    assert_eq!(item(&fixture, &task_id).await, failed);
}

#[tokio::test]
async fn a_record_of_a_task_that_no_longer_exists_is_acknowledged_and_writes_nothing() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let gone = uuid::Uuid::new_v4().to_string();
    let message = destination_message(&events::task(&gone, 0), Condition::RetriesExhausted);
    let reply = deliver(&fixture, &[&message]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, batch_answer(&[]));
    assert_eq!(
        fixture.count(&fixture.tasks_table).await,
        0,
        "no record made"
    );
}

#[tokio::test]
async fn a_message_that_cannot_be_read_is_reported_back_as_a_batch_item_failure() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let not_a_task = invocation_record(
        &Account::default(),
        FUNCTION_NAME,
        "e4b46cbf-b738-4d0c-8880-a18cdf61200e",
        Condition::RetriesExhausted,
        br#"{"hello": "world"}"#,
        &[],
        epoch_millis(),
    )
    .to_string();
    for body in ["not JSON", "{}", "", not_a_task.as_str()] {
        let message = raw_message(body);
        let reply = deliver(&fixture, &[&message]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, batch_answer(&[&message]), "{body:?}");
    }
    assert_eq!(
        fixture.count(&fixture.tasks_table).await,
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn a_batch_acknowledges_what_it_applied_and_reports_only_what_it_could_not_read() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (queued, queued_event) = queued_task(&fixture, &lambda).await;
    let (done, done_event) = queued_task(&fixture, &lambda).await;
    fixture.invoke(&done_event).await.expect("runs");
    let done_before = item(&fixture, &done).await;
    let gone = events::task(&uuid::Uuid::new_v4().to_string(), 0);

    let gives_up = destination_message(&queued_event, Condition::RetriesExhausted);
    let unreadable = raw_message("{\"version\": \"1.0\", truncated");
    let of_ended = destination_message(&done_event, Condition::EventAgeExceeded);
    let of_gone = destination_message(&gone, Condition::RetriesExhausted);
    let also_unreadable = raw_message("[]");
    let reply = deliver(
        &fixture,
        &[
            &gives_up,
            &unreadable,
            &of_ended,
            &of_gone,
            &also_unreadable,
        ],
    )
    .await;
    assert_eq!(reply.body, batch_answer(&[&unreadable, &also_unreadable]));

    let failed = item(&fixture, &queued).await;
    assert_eq!(string(&failed, "status"), "failed");
    assert_eq!(string(&failed, "error"), RETRIES_EXHAUSTED);
    assert_eq!(item(&fixture, &done).await, done_before);
}

#[tokio::test]
async fn a_record_that_cannot_be_applied_is_reported_back_for_redelivery() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, event) = queued_task(&fixture, &lambda).await;
    let before = item(&fixture, &task_id).await;
    let message = destination_message(&event, Condition::RetriesExhausted);
    let unreachable = fixture.function_with_dynamodb(&dead_endpoint());
    let reply = support::invoke(&unreachable, &batch(&[&message]))
        .await
        .expect("answered");
    assert_eq!(
        reply.body,
        batch_answer(&[&message]),
        "DynamoDB unreachable"
    );
    assert_eq!(item(&fixture, &task_id).await, before);

    // SQS delivers it again; this time it applies.
    let reply = deliver(&fixture, &[&message]).await;
    assert_eq!(reply.body, batch_answer(&[]));
    assert_eq!(
        string(&item(&fixture, &task_id).await, "error"),
        RETRIES_EXHAUSTED
    );
}

#[tokio::test]
async fn the_sample_failure_record_fails_the_sample_task_once_that_task_is_recorded() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/sqs-failure-record.json"),
    )
    .expect("events/sqs-failure-record.json");
    let (task_id, _) = running_task(&fixture).await;
    let mut item = item(&fixture, &task_id).await;
    // The sample names events/task.json's task: record it, queued.
    let sample_task = "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c";
    item.insert(
        "task_id".to_owned(),
        AttributeValue::S(sample_task.to_owned()),
    );
    item.insert("status".to_owned(), AttributeValue::S("queued".to_owned()));
    item.insert("attempts".to_owned(), AttributeValue::N("0".to_owned()));
    item.remove("lease_until");
    item.remove("claim_id");
    fixture.put_items(&fixture.tasks_table, vec![item]).await;

    let reply = fixture.invoke(&sample).await.expect("answered");
    assert_eq!(reply.body, json!({"batchItemFailures": []}));
    let failed = fixture.task_item(sample_task).await.expect("the record");
    assert_eq!(string(&failed, "status"), "failed");
    assert_eq!(string(&failed, "error"), RETRIES_EXHAUSTED);
}
