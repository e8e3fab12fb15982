//! `Idempotency-Key` on `/async`: a retry with the same key and body gets the
//! first answer again and starts nothing; another body is a 422; a key whose
//! first request is still being handled is a 409; a first request that failed
//! does not hold its key; keys are remembered for a day (TTL). Counted in task
//! records and in the `Invoke` calls the fake Lambda received.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, error_body, events};

/// Where the function keeps a key's record (in the tasks table).
fn key_record_id(key: &str) -> String {
    format!("idempotency-key#anonymous#{key}")
}

/// Every item of the tasks table, by id: task records and key records.
async fn table(fixture: &Fixture) -> HashMap<String, HashMap<String, AttributeValue>> {
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
        record.get("answer_task_id").and_then(|v| v.as_s().ok()),
        first.body["task_id"].as_str().map(str::to_owned).as_ref(),
        "the record keeps the first answer"
    );
}
