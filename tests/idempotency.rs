//! `Idempotency-Key` on `/async`: a retry with the same key and body gets the
//! first answer again and starts nothing; another body is a 422; a key whose
//! first request is still being handled is a 409; a first request that failed
//! does not hold its key; keys are remembered for a day (TTL); a retry after
//! the hold of a request that died carries on with the key's task (one key,
//! one task); DynamoDB failing on a key is a 503. Counted in task records and
//! in the `Invoke` calls the fake Lambda received.

mod support;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::HashMap;
use std::time::Duration;

use async_api::tasks::TaskStore;
use async_api::tasks::protocol::Wrote;
use aws_sdk_dynamodb::types::AttributeValue;
use fault_proxy::{Fault, FaultProxy};
use serde_json::json;
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, error_body, events};

type Item = HashMap<String, AttributeValue>;

/// Where the function keeps a key's record (in the tasks table).
fn key_record_id(key: &str) -> String {
    format!("idempotency-key#anonymous#{key}")
}

/// Every item of the tasks table, by id: task records and key records.
async fn table(fixture: &Fixture) -> HashMap<String, Item> {
    fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let id = item["task_id"].as_s().expect("task_id").clone();
            (id, item)
        })
        .collect()
}

/// The ids of the task records (not the key records).
async fn task_ids(fixture: &Fixture) -> Vec<String> {
    let mut ids: Vec<String> = table(fixture)
        .await
        .into_keys()
        .filter(|id| !id.starts_with("idempotency-key#"))
        .collect();
    ids.sort();
    ids
}

async fn post(fixture: &Fixture, key: &str, body: Option<&str>) -> Reply {
    fixture
        .http_with("POST", "/async", body, &[("idempotency-key", Some(key))])
        .await
}

/// A first answer: 202, not a replay.
fn assert_first(reply: &Reply) {
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.header("idempotent-replayed"), None);
}

/// `reply` is `first` again: same status, body and `Location`, marked replayed.
fn assert_replay_of(reply: &Reply, first: &Reply, case: &str) {
    assert_eq!(reply.status, 202, "{case}: {}", reply.body);
    assert_eq!(reply.body, first.body, "{case}");
    assert_eq!(reply.header("location"), first.header("location"), "{case}");
    assert_eq!(reply.header("idempotent-replayed"), Some("true"), "{case}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_answer_with_one_task_and_one_invoke() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let body = Some(r#"{"delay_ms": 5}"#);
    let first = post(&fixture, "order-1", body).await;
    assert_first(&first);
    let task_id = first.body["task_id"].as_str().expect("task_id").to_owned();
    assert_eq!(
        first.header("location"),
        Some(format!("/tasks/{task_id}").as_str())
    );
    for _ in 0..2 {
        assert_replay_of(&post(&fixture, "order-1", body).await, &first, "retry");
    }
    assert_eq!(task_ids(&fixture).await, vec![task_id.clone()]);
    assert_eq!(lambda.invocations().len(), 1, "one Invoke");

    // The replay is the first answer, whatever the task has done since.
    let event = String::from_utf8(lambda.invocations()[0].payload.to_vec()).expect("UTF-8");
    fixture.invoke(&event).await.expect("the task runs");
    assert_replay_of(
        &post(&fixture, "order-1", body).await,
        &first,
        "after the task ran",
    );

    // Another key is another request.
    let other = post(&fixture, "order-2", body).await;
    assert_first(&other);
    assert_ne!(other.body["task_id"], first.body["task_id"]);
    assert_eq!(lambda.invocations().len(), 2);
}

#[tokio::test]
async fn an_empty_object_no_body_null_the_default_delay_and_get_are_the_same_request() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let first = post(&fixture, "k", Some("{}")).await;
    assert_first(&first);
    for body in [
        None,
        Some(r#"{"delay_ms":1000}"#),
        Some(r#"{ "delay_ms": 1e3 }"#),
        Some("null"),
    ] {
        assert_replay_of(
            &post(&fixture, "k", body).await,
            &first,
            &format!("{body:?}"),
        );
    }
    let get = fixture
        .http_with("GET", "/async", None, &[("idempotency-key", Some("k"))])
        .await;
    assert_replay_of(&get, &first, "GET /async");
    assert_eq!(task_ids(&fixture).await.len(), 1);
    assert_eq!(lambda.invocations().len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_nothing_is_written_or_invoked() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let first = post(&fixture, "k", Some(r#"{"delay_ms": 5}"#)).await;
    assert_first(&first);
    let before = table(&fixture).await;
    for body in [Some(r#"{"delay_ms": 6}"#), None, Some("{}")] {
        let reply = post(&fixture, "k", body).await;
        assert_eq!(reply.status, 422, "{body:?}: {}", reply.body);
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request body"
            ),
            "{body:?}"
        );
        assert_eq!(reply.header("idempotent-replayed"), None);
    }
    assert_eq!(table(&fixture).await, before, "nothing written");
    assert_eq!(lambda.invocations().len(), 1, "nothing invoked");
    assert_replay_of(
        &post(&fixture, "k", Some(r#"{"delay_ms": 5}"#)).await,
        &first,
        "the first body still replays",
    );
}

#[tokio::test]
async fn a_quoted_key_is_the_same_key() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let first = post(&fixture, "k-1", None).await;
    assert_first(&first);
    assert_replay_of(&post(&fixture, "\"k-1\"", None).await, &first, "quoted");
    let quoted_first = post(&fixture, "\"k-2\"", None).await;
    assert_first(&quoted_first);
    assert_replay_of(
        &post(&fixture, "k-2", None).await,
        &quoted_first,
        "unquoted",
    );
    assert_eq!(lambda.invocations().len(), 2);
}

#[tokio::test]
async fn an_invalid_key_is_400_and_starts_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let too_long = "k".repeat(256);
    for key in ["", "\"\"", &too_long, "has space", "caf\u{e9}", "tab\there"] {
        let reply = post(&fixture, key, None).await;
        assert_eq!(reply.status, 400, "{key:?}: {}", reply.body);
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "bad_request",
                "Idempotency-Key must be 1 to 255 visible ASCII characters"
            ),
            "{key:?}"
        );
    }
    assert_eq!(
        fixture.count(&fixture.tasks_table).await,
        0,
        "nothing written"
    );
    assert!(lambda.invocations().is_empty(), "nothing invoked");
    // The bounds themselves are keys.
    for key in ["k".repeat(255), "!~".to_owned()] {
        assert_first(&post(&fixture, &key, None).await);
    }
}

#[tokio::test]
async fn a_first_request_that_failed_does_not_hold_its_key() {
    let lambda = FakeLambda::start(500).await;
    let fixture = Fixture::new(&lambda.url).await;
    let key = [("idempotency-key", Some("retry-me"))];

    // 503: Lambda answering 500, then throttling, then nothing listening.
    let refused = post(&fixture, "retry-me", None).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    lambda.set_status(429);
    let throttled = post(&fixture, "retry-me", None).await;
    assert_eq!(throttled.status, 503, "{}", throttled.body);
    let unreachable = fixture.function_with_dynamodb(support::dynamodb_endpoint());
    let event = events::with_headers(&events::http_api("POST", "/async", None), &key);
    let dead = support::invoke(&unreachable, &event).await.expect("answer");
    assert_eq!(dead.status, 503, "{}", dead.body);
    for reply in [&refused, &throttled, &dead] {
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(reply.header("idempotent-replayed"), None);
    }
    let failed_tasks = task_ids(&fixture).await;
    assert_eq!(failed_tasks.len(), 3, "each attempt recorded a failed task");

    // A 4xx holds nothing either: the same key then takes another body.
    let bad = post(&fixture, "retry-me", Some(r#"{"delay_ms": -1}"#)).await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    lambda.set_status(202);
    let accepted = post(&fixture, "retry-me", None).await;
    assert_first(&accepted);
    assert_replay_of(&post(&fixture, "retry-me", None).await, &accepted, "after");
    let task_id = accepted.body["task_id"].as_str().expect("task_id");
    assert!(!failed_tasks.iter().any(|id| id == task_id), "a new task");
    assert_eq!(task_ids(&fixture).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_simultaneous_requests_with_one_key_make_one_task_and_one_invoke() {
    let lambda = FakeLambda::start(202).await;
    // Long enough that the others arrive while the first is being handled.
    lambda.set_delay(Duration::from_millis(300));
    let fixture = Fixture::new(&lambda.url).await;
    let event = events::with_headers(
        &events::http_api("POST", "/async", Some(r#"{"delay_ms": 5}"#)),
        &[("idempotency-key", Some("one-key"))],
    );
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let function = fixture.function.clone();
            let event = event.clone();
            tokio::spawn(async move { support::invoke(&function, &event).await.expect("answer") })
        })
        .collect();
    let mut replies = Vec::new();
    for request in requests {
        replies.push(request.await.expect("request task"));
    }

    let tasks = task_ids(&fixture).await;
    assert_eq!(tasks.len(), 1, "one task: {tasks:?}");
    assert_eq!(lambda.invocations().len(), 1, "one Invoke");
    let task_id = &tasks[0];
    let (mut first, mut replays, mut conflicts) = (0, 0, 0);
    for reply in &replies {
        match (reply.status, reply.header("idempotent-replayed")) {
            (202, replayed) => {
                assert_eq!(reply.body["task_id"], task_id.as_str(), "{}", reply.body);
                assert_eq!(
                    reply.header("location"),
                    Some(format!("/tasks/{task_id}").as_str())
                );
                match replayed {
                    None => first += 1,
                    Some("true") => replays += 1,
                    Some(other) => panic!("Idempotent-Replayed: {other}"),
                }
            }
            (409, _) => {
                conflicts += 1;
                assert_eq!(reply.header("retry-after"), Some("1"));
                assert_eq!(
                    reply.body,
                    error_body(
                        reply,
                        "conflict",
                        "A request with this Idempotency-Key is still being handled"
                    )
                );
            }
            (status, _) => panic!("{status}: {}", reply.body),
        }
    }
    eprintln!("20 requests, one key: 1 first answer, {replays} replays, {conflicts} conflicts");
    assert_eq!(first, 1, "exactly one request started the task");
    assert_eq!(first + replays + conflicts, 20);

    // Once the first is answered, every retry is a replay.
    let retry = support::invoke(&fixture.function, &event)
        .await
        .expect("answer");
    assert_eq!(retry.status, 202);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["task_id"], task_id.as_str());
}

#[tokio::test]
async fn a_key_is_remembered_for_24_hours_through_the_tables_ttl() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let first = post(&fixture, "ttl-key", None).await;
    assert_first(&first);
    let record = table(&fixture)
        .await
        .remove(&key_record_id("ttl-key"))
        .expect("the key's record");
    let Some(AttributeValue::N(expires_at)) = record.get("expires_at") else {
        panic!("no numeric expires_at: {record:?}")
    };
    let expires_at: u64 = expires_at.parse().expect("epoch seconds");
    let day_from_now = support::now_millis() / 1000 + 24 * 60 * 60;
    assert!(
        expires_at.abs_diff(day_from_now) < 60,
        "expires_at {expires_at}, a day from now {day_from_now}"
    );
    assert_eq!(
        record.get("key_task_id").and_then(|v| v.as_s().ok()),
        first.body["task_id"].as_str().map(str::to_owned).as_ref(),
        "the record keeps the key's task"
    );
    assert_eq!(
        record.get("key_state").and_then(|v| v.as_s().ok()),
        Some(&"answered".to_owned())
    );
}

// ---------------------------------------------------------------------------
// DynamoDB failing on a key
// ---------------------------------------------------------------------------

/// The 503 the contract promises when DynamoDB fails.
fn assert_unavailable(reply: &Reply, case: &str) {
    assert_eq!(reply.status, 503, "{case}: {}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"), "{case}");
    assert_eq!(
        reply.body,
        error_body(
            reply,
            "service_unavailable",
            "Service temporarily unavailable, retry later"
        ),
        "{case}"
    );
}

#[tokio::test]
async fn dynamodb_failing_while_a_key_is_written_or_read_is_503_with_retry_after_never_500() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let event = events::with_headers(
        &events::http_api("POST", "/async", None),
        &[("idempotency-key", Some("flaky"))],
    );

    // Nothing listens where DynamoDB should be: the key cannot be written.
    let unreachable = fixture.function_with_dynamodb(&support::dead_endpoint());
    let reply = support::invoke(&unreachable, &event).await.expect("answer");
    assert_unavailable(&reply, "the key's write");

    // The key is taken (its first request answered); a retry finds it so, and
    // the read of whose it is fails.
    let first = post(&fixture, "flaky", None).await;
    assert_first(&first);
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|seen| {
            let of_a_key = seen.body["Key"]["task_id"]["S"]
                .as_str()
                .is_some_and(|id| id.starts_with("idempotency-key#"));
            if seen.operation == "GetItem" && of_a_key {
                Fault::ServerError
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let flaky = fixture.function_with_dynamodb(proxy.url());
    let before = table(&fixture).await;
    let reply = support::invoke(&flaky, &event).await.expect("answer");
    assert_unavailable(&reply, "the key's read");
    let operations: Vec<String> = proxy.calls().into_iter().map(|c| c.operation).collect();
    assert_eq!(operations.first().map(String::as_str), Some("PutItem"));
    assert!(
        operations[1..]
            .iter()
            .all(|operation| operation == "GetItem"),
        "only the key's reservation and reads: {operations:?}"
    );
    assert_eq!(table(&fixture).await, before, "nothing written");
    assert_eq!(
        lambda.invocations().len(),
        1,
        "only the first request's Invoke"
    );

    // DynamoDB back: the retry is the first answer again.
    assert_replay_of(&post(&fixture, "flaky", None).await, &first, "recovered");
}

// ---------------------------------------------------------------------------
// A retry after the hold of a request that died: one key, one task
// ---------------------------------------------------------------------------

/// The task store of the fixture's table.
fn store(fixture: &Fixture) -> TaskStore<'_> {
    TaskStore {
        dynamodb: &fixture.dynamodb,
        table: &fixture.tasks_table,
    }
}

/// Writes the record a request leaves when it dies holding `key` (sent with
/// no body) for the key's task `task_id`: reserved, never answered, its
/// 30 s hold over.
async fn key_of_a_request_that_died(fixture: &Fixture, key: &str, task_id: &str) -> Item {
    let now_ms = support::now_millis();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());
    let record = HashMap::from([
        ("task_id".to_owned(), s(&key_record_id(key))),
        ("key_state".to_owned(), s("in_progress")),
        ("request".to_owned(), s(r#"{"delay_ms":1000}"#)),
        (
            "reservation".to_owned(),
            s("reservation-of-a-request-that-died"),
        ),
        ("key_task_id".to_owned(), s(task_id)),
        ("hold_until".to_owned(), n(now_ms - 1_000)),
        ("expires_at".to_owned(), n(now_ms / 1000 + 24 * 60 * 60)),
    ]);
    fixture
        .put_items(&fixture.tasks_table, vec![record.clone()])
        .await;
    record
}

/// The key's record now: answered, naming `task_id`, held by a reservation
/// other than the dead request's.
async fn assert_key_answered_with(fixture: &Fixture, key: &str, task_id: &str) {
    let record = table(fixture)
        .await
        .remove(&key_record_id(key))
        .expect("the key's record");
    let string = |name: &str| record.get(name).and_then(|v| v.as_s().ok()).cloned();
    assert_eq!(string("key_state").as_deref(), Some("answered"));
    assert_eq!(string("key_task_id").as_deref(), Some(task_id));
    assert_eq!(
        string("answer_status_url"),
        Some(format!("/tasks/{task_id}"))
    );
    assert_ne!(
        string("reservation").as_deref(),
        Some("reservation-of-a-request-that-died"),
        "taken over"
    );
}

/// A 202 answering `task_id`, the key's task; `replayed`: the first request
/// had enqueued it (so it answered 202 with it, or died before it could),
/// and this answer is that one again.
fn assert_answers_task(reply: &Reply, task_id: &str, replayed: bool) {
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Task started", "task_id": task_id, "status_url": format!("/tasks/{task_id}")})
    );
    assert_eq!(
        reply.header("location"),
        Some(format!("/tasks/{task_id}").as_str())
    );
    assert_eq!(
        reply.header("idempotent-replayed"),
        replayed.then_some("true")
    );
}

fn bool_attribute(item: &Item, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

fn number_attribute(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name}: {item:?}"))
}

#[tokio::test]
async fn a_retry_after_the_hold_answers_the_keys_enqueued_task_with_no_new_task_or_invoke() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // The request that died had enqueued its task before it could answer.
    let task_id = uuid::Uuid::new_v4().to_string();
    store(&fixture)
        .put_enqueued(&task_id)
        .await
        .expect("the key's task, queued and enqueued");
    key_of_a_request_that_died(&fixture, "died-after-invoke", &task_id).await;
    let task_before = fixture.task_item(&task_id).await.expect("the task");

    let reply = post(&fixture, "died-after-invoke", None).await;
    assert_answers_task(&reply, &task_id, true);
    assert_eq!(
        task_ids(&fixture).await,
        vec![task_id.clone()],
        "no new task"
    );
    assert!(lambda.invocations().is_empty(), "no second Invoke");
    assert_eq!(fixture.task_item(&task_id).await, Some(task_before));
    assert_key_answered_with(&fixture, "died-after-invoke", &task_id).await;

    // From now on the key replays that answer.
    assert_replay_of(
        &post(&fixture, "died-after-invoke", None).await,
        &reply,
        "after the takeover",
    );
    assert!(lambda.invocations().is_empty());
}

#[tokio::test]
async fn a_retry_after_the_hold_replaces_a_key_task_that_can_never_run_with_a_new_one() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // The request that died had failed its task (its event did not leave).
    let dead_task = uuid::Uuid::new_v4().to_string();
    store(&fixture)
        .put_queued(&dead_task, support::now_millis())
        .await
        .expect("the key's task");
    assert_eq!(
        store(&fixture).mark_not_enqueued(&dead_task).await,
        Wrote::Done
    );
    key_of_a_request_that_died(&fixture, "died-after-failing", &dead_task).await;
    let dead_before = fixture.task_item(&dead_task).await.expect("the task");

    let reply = post(&fixture, "died-after-failing", None).await;
    assert_first(&reply);
    let new_task = reply.body["task_id"].as_str().expect("task_id").to_owned();
    assert_ne!(new_task, dead_task, "a new task");
    assert_answers_task(&reply, &new_task, false);
    let mut expected = vec![dead_task.clone(), new_task.clone()];
    expected.sort();
    assert_eq!(task_ids(&fixture).await, expected);
    assert_key_answered_with(&fixture, "died-after-failing", &new_task).await;
    assert_eq!(
        fixture.task_item(&dead_task).await,
        Some(dead_before),
        "the old task untouched"
    );

    let invocations = lambda.invocations();
    assert_eq!(invocations.len(), 1, "one Invoke, of the new task");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&invocations[0].payload).expect("JSON"),
        json!({"task_id": new_task, "delay_ms": 1000})
    );
    let new_record = fixture.task_item(&new_task).await.expect("the new task");
    assert_eq!(
        new_record
            .get("status")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("queued")
    );
    assert_eq!(bool_attribute(&new_record, "enqueued"), Some(true));
}

#[tokio::test]
async fn a_retry_after_the_hold_sends_the_event_of_the_keys_unmarked_task_and_marks_it() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // The request that died had written its task, and may or may not have
    // sent its event: the task is queued, never marked enqueued.
    let task_id = uuid::Uuid::new_v4().to_string();
    let died_by = support::now_millis() - 500;
    store(&fixture)
        .put_queued(&task_id, died_by)
        .await
        .expect("the key's task");
    key_of_a_request_that_died(&fixture, "died-before-marking", &task_id).await;

    let asked = support::now_millis();
    let reply = post(&fixture, "died-before-marking", None).await;
    assert_answers_task(&reply, &task_id, false);
    assert_eq!(
        task_ids(&fixture).await,
        vec![task_id.clone()],
        "no new task"
    );
    let invocations = lambda.invocations();
    assert_eq!(invocations.len(), 1, "the task's event, sent again");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&invocations[0].payload).expect("JSON"),
        json!({"task_id": task_id, "delay_ms": 1000})
    );
    let record = fixture.task_item(&task_id).await.expect("the task");
    assert_eq!(
        record
            .get("status")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("queued")
    );
    assert_eq!(bool_attribute(&record, "enqueued"), Some(true), "marked");
    // This request's to mark now: a delivery waits for it until its own
    // deadline (support::invoke gives 90 s), not the dead request's.
    let answer_by = number_attribute(&record, "answer_by");
    assert!(
        answer_by >= asked + 85_000,
        "answer_by {answer_by} extended from {died_by}"
    );
    assert_key_answered_with(&fixture, "died-before-marking", &task_id).await;

    // Its event runs it.
    let event = String::from_utf8(invocations[0].payload.to_vec()).expect("UTF-8");
    let outcome = fixture.invoke(&event).await.expect("the task runs");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
}

#[tokio::test]
async fn a_retry_after_the_hold_of_a_request_that_died_before_writing_its_task_starts_that_task() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // The key names its task before the task is written: the request died
    // in between.
    let task_id = uuid::Uuid::new_v4().to_string();
    key_of_a_request_that_died(&fixture, "died-before-writing", &task_id).await;

    let reply = post(&fixture, "died-before-writing", None).await;
    assert_answers_task(&reply, &task_id, false);
    assert_eq!(task_ids(&fixture).await, vec![task_id.clone()]);
    let invocations = lambda.invocations();
    assert_eq!(invocations.len(), 1);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&invocations[0].payload).expect("JSON"),
        json!({"task_id": task_id, "delay_ms": 1000})
    );
    let record = fixture.task_item(&task_id).await.expect("the task");
    assert_eq!(bool_attribute(&record, "enqueued"), Some(true));
    assert_key_answered_with(&fixture, "died-before-writing", &task_id).await;
}
