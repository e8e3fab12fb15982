//! The start write (src/tasks/claims.rs), which counts an attempt, settled at
//! the wire when its answer never comes: the model's counterexample
//! (crates/task-model) of a try that lands after the worker read its claim
//! unstarted, replayed through the fault proxy one write at a time.

mod support;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_api::Function;
use fault_proxy::{Call, Fault, FaultProxy, Seen};
use serde_json::json;
use support::{Fixture, dead_endpoint, events};

fn update_of<'a>(call: &Seen<'a>) -> &'a str {
    match call.operation {
        "UpdateItem" => call.body["UpdateExpression"].as_str().unwrap_or_default(),
        _ => "",
    }
}

/// The start: `attempts + 1`, once per claim.
fn is_start(update: &str) -> bool {
    update.contains("attempts = attempts + :one")
}

/// The release of a claim that did not start: `queued` again.
fn is_release(update: &str) -> bool {
    update.contains("#status = :queued") && !update.contains(":done")
}

fn calls_of(calls: &[Call], write: fn(&str) -> bool) -> Vec<&Call> {
    calls
        .iter()
        .filter(|call| call.update.as_deref().is_some_and(write))
        .collect()
}

/// The first try of the start is held on its way in until the worker's read
/// of the task has been answered; the SDK cuts that try (its attempt
/// timeout, 300 ms here) and its two retries are throttled, so the start
/// fails. The read finds the claim unstarted, and the held try lands just
/// after it: the attempt is counted. The release, on its way meanwhile, is
/// then refused (the claim has started: it was held 150 ms, within its
/// attempt timeout), and a second read finds the claim
/// started with most of its lease left: the work runs, once, as attempt 1.
/// Before the second read, the worker took the refused release for a task
/// that was not its own any more and failed the delivery: an attempt counted
/// whose work never ran, though nothing kept it from running.
#[tokio::test]
async fn a_start_that_lands_after_the_worker_read_its_claim_unstarted_is_found_by_a_second_read_and_its_work_runs_once()
 {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let task_id = fixture.enqueued_task().await;

    let starts = AtomicUsize::new(0);
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(move |call| {
            let update = update_of(call);
            if is_start(update) {
                match starts.fetch_add(1, Ordering::SeqCst) {
                    0 => Fault::HoldUntilAnswered("GetItem"),
                    _ => Fault::Throttle,
                }
            } else if is_release(update) {
                Fault::SlowRequest(Duration::from_millis(150))
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let function = Function::new(fixture.state_through(
        proxy.url(),
        &dead_endpoint(),
        Duration::from_millis(300),
        3,
    ));

    let deadline_ms = support::now_millis() + 30_000;
    let delivered =
        support::invoke_with_deadline(&function, &events::task(&task_id, 100), deadline_ms)
            .await
            .unwrap_or_else(|err| panic!("the delivery failed: {err:?}\n{:#?}", proxy.calls()));
    assert_eq!(
        delivered.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );

    proxy.settle(Duration::from_secs(5)).await;
    let calls = proxy.calls();
    let starts = calls_of(&calls, is_start);
    assert_eq!(starts.len(), 3, "{calls:#?}");
    assert!(starts[0].landed(), "the held try landed: {calls:#?}");
    assert!(
        starts[1..].iter().all(|call| call.forwarded_ms.is_none()),
        "the SDK's retries were throttled: {calls:#?}"
    );
    let first_read = calls
        .iter()
        .find(|call| call.operation == "GetItem" && call.at_ms >= starts[0].at_ms)
        .expect("the worker read the task after its start failed");
    assert!(
        first_read.upstream_ms <= starts[0].forwarded_ms,
        "the start landed after the read: {calls:#?}"
    );
    let releases = calls_of(&calls, is_release);
    assert_eq!(releases.len(), 1, "{calls:#?}");
    assert_eq!(
        releases[0].upstream_status,
        Some(400),
        "the release was refused, the claim having started: {calls:#?}"
    );
    assert!(
        calls.iter().any(|call| call.operation == "GetItem"
            && call.at_ms > releases[0].at_ms
            && call.upstream_status == Some(200)),
        "a second read after the refused release: {calls:#?}"
    );

    let record = fixture.task_item(&task_id).await.expect("the task record");
    assert_eq!(record["status"].as_s().map(String::as_str), Ok("succeeded"));
    assert_eq!(record["attempts"].as_n().map(String::as_str), Ok("1"));
}
