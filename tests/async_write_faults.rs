//! One key, one task, whatever fails on the way: `POST /async` with an
//! `Idempotency-Key` under faults at the wire (issue 15, "What must hold").
//!
//! The function runs in this process, its DynamoDB calls through the fault
//! proxy (support/fault_proxy.rs) and its `Invoke`s to the fake Lambda
//! (support/fake_lambda.rs), with short SDK timeouts ([`ATTEMPT_TIMEOUT`] per
//! attempt, 3 attempts, as the function's own 2 s and 3), so that a lost
//! answer costs about a second rather than six. Its log lines are captured
//! (JSON, as in Lambda) to see which tasks logged `task started`.
//!
//! The property, over every write a fault-free keyed POST makes (the key's
//! reservation, the caller's start counter, the task record, the enqueued
//! mark, the key's answer: counted, not assumed) and each fault kind:
//! - throttled: from the k-th DynamoDB write on, every DynamoDB request is
//!   throttled (the SDK retries, then gives up);
//! - answer lost: from the k-th write on, every request lands (a write is
//!   applied, a condition evaluated) and its answer is lost (the SDK's attempt
//!   timeout cuts it, and it tries again);
//! - and the `Invoke`'s lost answers: Lambda accepts the first m of the SDK's
//!   3 tries and their answers are lost (m = 3: every try).
//!
//! Each case sends the POST, heals the faults, retries with the same key (an
//! immediate retry while the key is held must be a 409; then after the hold,
//! ended by [`end_hold`]), asks once more (a replay), and delivers every
//! event the fake Lambda received through the function, with a deadline:
//! after the retries (the issue's order), and again with the first request's
//! events delivered before the retry (AWS's order: Lambda delivers within
//! seconds, a retry after the hold comes 30 s later; an event given back with
//! a function error is delivered again after the retry, as Lambda retries
//! it). Then:
//! - a caller told 5xx has no task that ever starts its work: no task whose
//!   record that request wrote logs `task started`, has its claim or its
//!   start land, reads `running` or `succeeded`, or counts an attempt;
//! - a 202 task succeeds once delivered (attempts 1: one start landed, its
//!   result), also when
//!   Lambda delivers it before the retry: its delivery marks it once its
//!   request's `answer_by` has passed;
//! - a retry with the key answers that task (the same `task_id`), or, when
//!   the first got 5xx, a fresh task that succeeds; every 202 for the key
//!   names one task, and the replay repeats it with `Idempotent-Replayed`;
//! - per key, at most one task starts its work, once, and only a task some
//!   caller was answered 202 with.
//!
//! Every case is run, and every broken promise reported with the case's trace
//! (the DynamoDB calls with their fault and DynamoDB's status, the events, the
//! answers, the deliveries, the records) before the test fails. The
//! enumeration is fixed: no randomness. The issue's three findings, and a
//! request that outlives its key's hold, are regression cases of their own
//! below.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;
#[path = "support/task_logs.rs"]
mod task_logs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_api::Function;
use aws_sdk_dynamodb::types::AttributeValue;
use fault_proxy::{Call, Fault, FaultProxy, Rule, Seen};
use serde_json::{Value, json};
use support::fake_lambda::{FakeLambda, Invocation};
use support::{Fixture, Reply, events, invoke_with_deadline, now_millis};
use task_logs::capture_logs;

#[path = "async_write_faults/case.rs"]
mod case;
#[path = "async_write_faults/property.rs"]
mod property;
use case::{First, Kind, Order, Plan, Run, assert_no_violations, run_case, run_with};

/// The body of every POST: a short task, so that a delivery runs it at once.
const BODY: &str = r#"{"delay_ms": 50}"#;
/// The result a task of [`BODY`] records.
fn expected_result() -> Value {
    json!({"waited_ms": 50})
}
/// The SDK's attempt timeout in the function under test: a lost answer is
/// given up after this, and tried again (3 attempts in all).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(400);
/// The POST's invocation deadline: its task's `answer_by`, after which a
/// delivery that finds the task unmarked marks it and runs it. Longer than the
/// slowest faulted POST (about 5 s: four calls each given up after 3 lost
/// answers), as Lambda would end the request's invocation there.
const POST_DEADLINE: Duration = Duration::from_secs(8);
/// Each delivery's invocation deadline.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);
/// How late the fake Lambda answers an `Invoke` whose answer is lost: far
/// past the SDK's attempt timeout.
const LATE: Duration = Duration::from_secs(5);
/// Whether an update is the claim (src/tasks/claims.rs): `running` under a
/// new `claim_id`. It lands only when a delivery took the task.
fn is_claim(update: &str) -> bool {
    update.contains("#status = :running") && update.contains("claim_id = :claim")
}

/// Whether an update is the start, which counts an attempt: it lands only
/// when a delivery that holds the task's claim begins its work.
fn is_start(update: &str) -> bool {
    update.contains("attempts = attempts + :one")
}
/// The prefix of a key record's id in the tasks table.
const KEY_RECORD: &str = "idempotency-key#";

// ---------------------------------------------------------------------------
// The function under test, its log lines, the key's hold
// ---------------------------------------------------------------------------

/// The function with the fixture's tables, DynamoDB at `dynamodb`, `Invoke`
/// at `lambda`, short SDK bounds (`Fixture::state_through`) and the per-caller
/// limit at its default, so that the caller's start counter is one of the
/// writes.
fn function_through(
    fixture: &Fixture,
    dynamodb: &str,
    lambda: &str,
    attempt_timeout: Duration,
) -> Function {
    let mut state = fixture.state_through(dynamodb, lambda, attempt_timeout, 3);
    std::sync::Arc::make_mut(&mut state.config).tasks_per_minute_per_caller = 60;
    Function::new(state)
}

/// The cases take turns: their SDK attempts give up after 400 ms, and a
/// case slowed past that by another's load would be another case.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// How many times `task_id` logged `task started`.
fn starts(task_id: &str) -> usize {
    task_logs::lines_about(
        &task_logs::log_lines(&task_logs::captured_lines()),
        task_id,
        "task started",
    )
    .len()
}

/// The key record of `key` (its id contains the key), read directly.
async fn key_record(fixture: &Fixture, key: &str) -> Option<HashMap<String, AttributeValue>> {
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
    items.into_iter().find(|item| {
        matches!(item.get("task_id"), Some(AttributeValue::S(id)) if id.starts_with(KEY_RECORD) && id.ends_with(key))
    })
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(n)) => Some(n.clone()),
        Some(AttributeValue::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// Ends the key's hold now. A retry with the key may take a request over only
/// after the key's 30 s hold (`RESERVATION_HOLD`, src/tasks/idempotency.rs);
/// rather than wait 30 s in every case, the key record's `hold_until` is
/// written into the past directly in the local DynamoDB, as if the hold had
/// passed.
async fn end_hold(fixture: &Fixture, key: &str) {
    let record = key_record(fixture, key).await.expect("the key's record");
    fixture
        .dynamodb
        .update_item()
        .table_name(&fixture.tasks_table)
        .key("task_id", record["task_id"].clone())
        .update_expression("SET hold_until = :past")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((now_millis() - 1_000).to_string()),
        )
        .send()
        .await
        .expect("end the key's hold");
}

/// The event of `POST /async` with [`BODY`] and `key`.
fn keyed_post(key: &str) -> String {
    events::with_headers(
        &events::http_api("POST", "/async", Some(BODY)),
        &[("idempotency-key", Some(key))],
    )
}

/// Sends `POST /async` with `key`, its invocation's deadline
/// [`POST_DEADLINE`] away.
async fn post(function: &Function, key: &str) -> Reply {
    let deadline = now_millis() + POST_DEADLINE.as_millis() as u64;
    invoke_with_deadline(function, &keyed_post(key), deadline)
        .await
        .expect("an HTTP answer")
}

/// Delivers every event the fake Lambda received, in order, through
/// `function`: what each delivery answered (its outcome, or its error).
async fn deliver_all(function: &Function, invocations: &[Invocation]) -> Vec<String> {
    let mut answers = Vec::new();
    for invocation in invocations {
        let payload = String::from_utf8(invocation.payload.to_vec()).expect("UTF-8");
        let deadline = now_millis() + DELIVERY_DEADLINE.as_millis() as u64;
        answers.push(
            match invoke_with_deadline(function, &payload, deadline).await {
                Ok(reply) => reply.body.to_string(),
                Err(err) => format!("function error: {err}"),
            },
        );
    }
    answers
}

fn is_write(operation: &str) -> bool {
    matches!(operation, "PutItem" | "UpdateItem" | "DeleteItem")
}

fn update_has(seen: &Seen<'_>, text: &str) -> bool {
    seen.body["UpdateExpression"]
        .as_str()
        .is_some_and(|update| update.contains(text))
}

// ---------------------------------------------------------------------------
// One case: faults, the POST, the heal, the retries, the deliveries
// ---------------------------------------------------------------------------
