//! Duplicate delivery, load, dead invocations and what the logs show.
//!
//! Lambda delivers a task event at least once, maybe many times at once; an
//! invocation may die at its deadline in the middle of a task; `/async` may be
//! called by many clients together. None of that may lose a task or run one
//! twice. And whatever happens, neither the logs nor an answer may carry
//! credentials, a request's body, a stack trace or an SDK error dump.
//!
//! The lease's margins are proved at the wire, through the fault proxy of
//! `support/fault_proxy.rs`: an attempt whose renewal fails stops its work a
//! renewal interval before its lease ends, and a claim that leaves less than
//! two never starts it.
//!
//! Failing dependencies and least privilege are in tests/faults.rs and
//! tests/template.rs; a failing task retried to `succeeded` (attempts = 2) is in
//! tests/tasks.rs.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;
#[path = "support/task_logs.rs"]
mod task_logs;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_api::tasks::TaskError;
use async_api::{Function, FunctionError};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use fault_proxy::{Call, Fault, FaultProxy};
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::runtime_api::{
    FunctionCommand, Outcome, ProcessOutput, RuntimeApi, function_command, test_function,
};
use support::{Fixture, Reply, dead_endpoint, events, invoke, invoke_with_deadline, now_millis};
use tokio::task::JoinSet;

#[path = "reliability/dead_invocations.rs"]
mod dead_invocations;
#[path = "reliability/duplicates.rs"]
mod duplicates;
#[path = "reliability/lease_margins.rs"]
mod lease_margins;
#[path = "reliability/logs_and_answers.rs"]
mod logs_and_answers;
use lease_margins::logged;
use task_logs::capture_logs;

/// Concurrent deliveries of one task event.
const DUPLICATE_DELIVERIES: usize = 50;
/// Concurrent `/async` calls.
const CONCURRENT_STARTS: usize = 100;

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().expect("number"),
        other => panic!("{name} is {other:?}"),
    }
}

/// Starts a task through `POST /async`; returns its id and the event it enqueued.
async fn start_task(fixture: &Fixture, lambda: &FakeLambda, delay_ms: u64) -> (String, String) {
    let before = lambda.invocations().len();
    let reply = fixture
        .http(
            "POST",
            "/async",
            Some(&json!({"delay_ms": delay_ms}).to_string()),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let task_id = reply.body["task_id"].as_str().expect("task id").to_owned();
    let invocations = lambda.invocations();
    assert_eq!(invocations.len(), before + 1);
    let payload = String::from_utf8(invocations[before].payload.to_vec()).expect("utf-8");
    (task_id, payload)
}

/// The task as `GET /tasks/{id}` shows it: (status, attempts, error).
async fn task_status(fixture: &Fixture, task_id: &str) -> (String, u64, Value) {
    let reply = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    (
        reply.body["status"].as_str().expect("status").to_owned(),
        reply.body["attempts"].as_u64().expect("attempts"),
        reply.body["error"].clone(),
    )
}

/// Waits (at most 10 s) until the task's record says `status`.
/// Waits until the task reads `status`; `running` also waits for its
/// attempt to have started (a claim is `running` before its start write
/// counts it).
async fn wait_for_status(fixture: &Fixture, task_id: &str, status: &str) {
    for _ in 0..1000 {
        let item = fixture.task_item(task_id).await.expect("record");
        if string(&item, "status") == status
            && (status != "running" || number(&item, "attempts") > 0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {task_id} never became {status}");
}

/// The tests that load the local DynamoDB (hundreds of deliveries) and those
/// whose leases are a few hundred milliseconds take turns: a renewal slowed
/// past its stop point by another test's load would prove nothing.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

async fn sleep_until(epoch_ms: u64) {
    let now = now_millis();
    if epoch_ms > now {
        tokio::time::sleep(Duration::from_millis(epoch_ms - now)).await;
    }
}

// ---------------------------------------------------------------------------
// Duplicate delivery and load
// ---------------------------------------------------------------------------
