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
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use async_api::config::Config;
use async_api::tasks::{TaskError, TaskStore};
use async_api::{AppState, Function, FunctionError, dynamodb_config, lambda_config};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use fault_proxy::{Call, Fault, FaultProxy};
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::runtime_api::{FunctionCommand, Outcome, ProcessOutput, RuntimeApi};
use support::{Fixture, Reply, dead_endpoint, events, invoke, invoke_with_deadline, now_millis};
use tokio::task::JoinSet;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_deliveries_of_one_task_event_run_it_exactly_once() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 300).await;

    let mut deliveries = JoinSet::new();
    for _ in 0..DUPLICATE_DELIVERIES {
        let function = fixture.function.clone();
        let payload = payload.clone();
        deliveries.spawn(async move { invoke(&function, &payload).await });
    }
    let outcomes: Vec<Value> = deliveries
        .join_all()
        .await
        .into_iter()
        .map(|outcome| outcome.expect("every delivery succeeds").body)
        .collect();

    let (ran, duplicates): (Vec<&Value>, Vec<&Value>) = outcomes
        .iter()
        .partition(|outcome| outcome["duplicate"] == json!(false));
    assert_eq!(
        ran,
        [&json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})],
        "exactly one delivery ran the task"
    );
    assert_eq!(duplicates.len(), DUPLICATE_DELIVERIES - 1);
    // A duplicate that finds the task running waits for that attempt's
    // outcome: it never ends as a success that leaves the task to another
    // attempt alone, so every duplicate saw it succeeded.
    for duplicate in duplicates {
        assert_eq!(
            duplicate,
            &json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": true})
        );
    }
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("succeeded".to_owned(), 1, Value::Null)
    );
    let reply = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(reply.body["result"], json!({"waited_ms": 300}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_async_calls_each_get_a_task_that_succeeds_exactly_once() {
    let _turn = one_at_a_time().await;
    capture_logs();
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;

    let mut starts = JoinSet::new();
    for i in 0..CONCURRENT_STARTS {
        let function = fixture.function.clone();
        let body = json!({"delay_ms": i % 50}).to_string();
        starts.spawn(async move {
            invoke(&function, &events::http_api("POST", "/async", Some(&body)))
                .await
                .expect("an HTTP answer")
        });
    }
    let replies: Vec<Reply> = starts.join_all().await;
    let task_ids: HashSet<String> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, 202, "{}", reply.body);
            reply.body["task_id"].as_str().expect("task id").to_owned()
        })
        .collect();
    assert_eq!(
        task_ids.len(),
        CONCURRENT_STARTS,
        "every call got its own task"
    );

    // Every call enqueued exactly its own task's event.
    let payloads: Vec<String> = lambda
        .invocations()
        .iter()
        .map(|invocation| String::from_utf8(invocation.payload.to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(payloads.len(), CONCURRENT_STARTS);
    let enqueued: HashSet<String> = payloads
        .iter()
        .map(|payload| {
            let event: Value = serde_json::from_str(payload).expect("task event");
            event["task_id"].as_str().expect("task id").to_owned()
        })
        .collect();
    assert_eq!(enqueued, task_ids);

    // Lambda delivers every event, each twice, all at once. A delivery that
    // gives its event back (a claim answered too late to start the work, or
    // a lease whose renewals a local DynamoDB busy with two hundred
    // deliveries answered too late, so that its attempt stopped and another
    // took the task over) is delivered again, as Lambda retries it, at most
    // twice.
    let mut deliveries = JoinSet::new();
    for payload in payloads.iter().chain(&payloads) {
        let function = fixture.function.clone();
        let payload = payload.clone();
        deliveries.spawn(async move {
            let mut given_back = Vec::new();
            loop {
                match invoke(&function, &payload).await {
                    Err(FunctionError::Task(
                        err @ (TaskError::LeaseTooShort(_)
                        | TaskError::HeldElsewhere(_)
                        | TaskError::Store(_)),
                    )) if given_back.len() < 2 => given_back.push(err.error_type()),
                    outcome => return (outcome, given_back),
                }
            }
        });
    }
    let mut given_back = Vec::new();
    let outcomes: Vec<Value> = deliveries
        .join_all()
        .await
        .into_iter()
        .map(|(outcome, back)| {
            given_back.extend(back);
            match outcome {
                Ok(reply) => reply.body,
                Err(err) => panic!("every delivery succeeds: {err}"),
            }
        })
        .collect();
    eprintln!("deliveries given back and delivered again: {given_back:?}");
    // Each task: a delivery that ran it to its end. (The other may have
    // waited for that outcome, or had its own attempt taken over.)
    let ran: HashSet<&str> = outcomes
        .iter()
        .filter(|o| o["status"] == "succeeded" && o["duplicate"] == json!(false))
        .filter_map(|o| o["task_id"].as_str())
        .collect();
    assert_eq!(ran.len(), CONCURRENT_STARTS, "every task ran");
    // Each task's work began once per attempt counted, one attempt after
    // another (a lease lost under load is taken over only once it ended),
    // and succeeded once.
    let mut attempts = HashMap::new();
    for task_id in &task_ids {
        let started = logged(task_id, "task started");
        let counted = started.len() as u64;
        assert!((1..=3).contains(&counted), "{task_id}: {started:?}");
        assert_eq!(
            started,
            (1..=counted).map(Some).collect::<Vec<_>>(),
            "{task_id}"
        );
        assert_eq!(logged(task_id, "Task completed").len(), 1, "{task_id}");
        attempts.insert(task_id.clone(), counted);
    }
    let taken_over = attempts.values().filter(|&&n| n > 1).count();
    eprintln!("tasks whose lease was lost and taken over: {taken_over}");

    // The table: exactly the hundred tasks, each succeeded on its first attempt.
    let items = fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert_eq!(
        items.len(),
        CONCURRENT_STARTS,
        "nothing lost, nothing extra"
    );
    // Each with the result of its own work: what its own event asked for.
    let delays: HashMap<String, Value> = payloads
        .iter()
        .map(|payload| {
            let event: Value = serde_json::from_str(payload).expect("task event");
            let task_id = event["task_id"].as_str().expect("task id").to_owned();
            (task_id, event["delay_ms"].clone())
        })
        .collect();
    for item in &items {
        let result: Value = serde_json::from_str(&string(item, "result")).expect("JSON result");
        assert_eq!(
            (
                string(item, "status"),
                number(item, "attempts"),
                item.get("error"),
                result
            ),
            (
                "succeeded".to_owned(),
                attempts[&string(item, "task_id")],
                None,
                json!({"waited_ms": delays[&string(item, "task_id")]})
            ),
            "{item:?}"
        );
    }
    assert_eq!(lambda.invocations().len(), CONCURRENT_STARTS);
}

// ---------------------------------------------------------------------------
// Dead invocations and the lease
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_invocation_died_is_taken_over_once_its_lease_has_passed() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 4000).await;

    // The first delivery's invocation has 3 s left: it claims the task, then is
    // killed at its deadline in the middle of the 4 s task, as Lambda kills a
    // timed-out invocation. Its claim's lease ends at that deadline.
    let lease_ms = 3000;
    let deadline = now_millis() + lease_ms;
    let dying = {
        let function = fixture.function.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(lease_ms),
                invoke_with_deadline(&function, &payload, deadline),
            )
            .await
        })
    };
    wait_for_status(&fixture, &task_id, "running").await;

    // Within the lease, another delivery leaves it alone: it waits for that
    // attempt's outcome while its own time allows, and with too little time
    // left (600 ms) it gives the event back to Lambda, so that Lambda
    // delivers it again, rather than end as a success that leaves the task
    // to an attempt that may die.
    let early = invoke_with_deadline(&fixture.function, &payload, now_millis() + 600).await;
    match early {
        Err(FunctionError::Task(TaskError::HeldElsewhere(id))) => assert_eq!(id, task_id),
        other => panic!("expected TaskHeldElsewhere, got {other:?}"),
    }
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(
        (string(&item, "status"), number(&item, "attempts")),
        ("running".to_owned(), 1),
        "the early delivery changed nothing"
    );
    // It ends at its deadline, before the task: killed, or stopped by itself
    // a renewal interval short of it (then with an error, so that Lambda
    // retries), or short of its lease if a renewal came too late.
    match dying.await.expect("join") {
        Err(_killed) => {}
        Ok(Err(err)) => assert!(
            [
                "task store unavailable: the invocation reached its deadline; the work was stopped",
                "task store unavailable: UpdateItem (lease): not renewed in time",
            ]
            .contains(&err.to_string().as_str()),
            "{err}"
        ),
        Ok(Ok(reply)) => panic!("the first attempt finished: {}", reply.body),
    }

    // Dead, it left the task running, under its lease.
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(string(&item, "status"), "running");
    assert_eq!(number(&item, "attempts"), 1);
    assert!(
        number(&item, "lease_until") <= deadline,
        "a lease never outlives its invocation"
    );
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("running".to_owned(), 1, Value::Null)
    );

    // The next delivery, with time to wait, takes the task over once that
    // lease has passed.
    let takeover = invoke(&fixture.function, &payload)
        .await
        .expect("the takeover succeeds");
    assert_eq!(
        takeover.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("succeeded".to_owned(), 2, Value::Null)
    );
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(
        item.get("lease_until"),
        None,
        "a finished task holds no lease"
    );

    // And a succeeded task never runs again.
    let again = invoke(&fixture.function, &payload)
        .await
        .expect("a duplicate succeeds");
    assert_eq!(
        again.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": true})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_outlives_its_lease_cannot_overwrite_the_attempt_that_took_over() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 2000).await;

    // Attempt 1's invocation has 300 ms (a lease of 150 ms renewed every
    // 50 ms, never past the deadline) and is not killed (Lambda would kill
    // it; this proves the record is safe even if something outlives its
    // lease): it stops its own work a renewal interval before its deadline.
    let deadline = now_millis() + 300;
    let late = {
        let function = fixture.function.clone();
        let payload = payload.clone();
        tokio::spawn(async move { invoke_with_deadline(&function, &payload, deadline).await })
    };
    wait_for_status(&fixture, &task_id, "running").await;
    sleep_until(deadline + 50).await;
    let takeover = {
        let function = fixture.function.clone();
        let payload = payload.clone();
        tokio::spawn(async move { invoke(&function, &payload).await })
    };

    // Attempt 1 ends first, and records nothing over attempt 2's claim.
    let late = late
        .await
        .expect("join")
        .expect_err("attempt 1 is cut short");
    // It stopped its own work: a renewal interval before its deadline, or
    // before its lease when a renewal came too late for its 50 ms interval.
    assert!(
        [
            "task store unavailable: the invocation reached its deadline; the work was stopped",
            "task store unavailable: UpdateItem (lease): not renewed in time",
        ]
        .contains(&late.to_string().as_str()),
        "{late}"
    );
    let takeover = takeover.await.expect("join").expect("attempt 2 succeeds");
    assert_eq!(
        takeover.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("succeeded".to_owned(), 2, Value::Null)
    );
}

/// The claim's `UpdateItem` lands but its answer is lost; the SDK retries and
/// the retry fails the claim's own condition (the task is `running` now). The
/// delivery must still run the task it claimed (the record holds its claim),
/// as attempt 1: not report a duplicate and succeed, which would leave the
/// task `running` with no invocation behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_still_runs_the_task() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 0).await;
    // The delivery's first DynamoDB call, on the proxy's first connection, is the claim.
    let proxy = support::answer_losing_proxy(support::dynamodb_endpoint()).await;
    let function = fixture.function_with_dynamodb(&proxy);

    let outcome = invoke(&function, &payload)
        .await
        .expect("the delivery succeeds");
    assert_eq!(
        (outcome.body.clone(), task_status(&fixture, &task_id).await),
        (
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false}),
            ("succeeded".to_owned(), 1, Value::Null)
        )
    );
}

// ---------------------------------------------------------------------------
// The lease's margins, at the wire
// ---------------------------------------------------------------------------

/// Every log line the function wrote in this process (JSON with its spans,
/// as in Lambda), for the `task started` lines of the in-process function.
fn captured() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(Mutex::default)
}

/// One log line being written; captured whole when the formatter drops it.
struct LineWriter(Vec<u8>);

impl std::io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let mut lines = captured().lock().unwrap_or_else(|e| e.into_inner());
        lines.extend(text.lines().map(str::to_owned));
    }
}

fn capture_logs() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        use lambda_http::tracing::subscriber;
        let _ = subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(subscriber::EnvFilter::new("async_api=info"))
            .with_writer(|| LineWriter(Vec::new()))
            .try_init();
    });
}

/// The attempts of `task_id`'s lines that say `message`.
fn logged(task_id: &str, message: &str) -> Vec<Option<u64>> {
    let lines = captured().lock().unwrap_or_else(|e| e.into_inner()).clone();
    task_logs::lines_about(&task_logs::log_lines(&lines), task_id, message)
        .iter()
        .map(|line| line.attempt())
        .collect()
}

/// The function on the fixture's tables, DynamoDB at `dynamodb`, with
/// `attempts` SDK attempts of `attempt_timeout` each.
fn function_with_sdk(
    fixture: &Fixture,
    dynamodb: &str,
    attempt_timeout: Duration,
    attempts: u32,
) -> Function {
    let sdk = support::sdk_config();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(attempt_timeout)
        .operation_timeout(attempt_timeout * (attempts + 1))
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(20));
    Function::new(AppState {
        config: Config {
            users_table: fixture.users_table.clone(),
            tasks_table: fixture.tasks_table.clone(),
            function_name: support::FUNCTION_NAME.to_owned(),
            cors_allowed_origins: Vec::new(),
            metrics_namespace: "AsyncApi".to_owned(),
            task_event_max_age: Duration::from_secs(3600),
            task_max_retry_attempts: 2,
            require_caller: false,
            tasks_per_minute_per_caller: 0,
        },
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            dynamodb_config(&sdk)
                .endpoint_url(dynamodb)
                .timeout_config(timeouts.clone())
                .retry_config(retries.clone())
                .build(),
        ),
        lambda: aws_sdk_lambda::Client::from_conf(
            lambda_config(&sdk)
                .endpoint_url(dead_endpoint())
                .timeout_config(timeouts)
                .retry_config(retries)
                .build(),
        ),
    })
}

/// A task as `/async` leaves it once Lambda has its event; the event.
async fn enqueued_task(fixture: &Fixture, delay_ms: u64) -> (String, String) {
    let task_id = uuid::Uuid::new_v4().to_string();
    TaskStore {
        dynamodb: &fixture.dynamodb,
        table: &fixture.tasks_table,
    }
    .put_enqueued(&task_id)
    .await
    .expect("a queued, enqueued task");
    let event = events::task(&task_id, delay_ms);
    (task_id, event)
}

/// A renewal of the lease (src/tasks/claims.rs), and nothing else.
const RENEWAL: &str = "SET lease_until = :lease";
/// The claim's update.
const CLAIM: &str = "claim_id = :claim";
/// The start's update: it counts the attempt.
const START: &str = "attempts = attempts + :one";
/// How late past its due time a timer may fire and a line be written here
/// (two shared cores, a debug build): well under the 500 ms renewal interval
/// the margins are counted in.
const SCHEDULING_TOLERANCE_MS: u64 = 100;

fn is(call: &Call, update: &str) -> bool {
    call.update.as_deref().is_some_and(|u| u.contains(update))
}

/// The lease value a claim or renewal asked for.
fn lease_of(call: &Call) -> u64 {
    call.values[":lease"]["N"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("a lease")
}

/// A 15 s invocation holds a 1.5 s lease renewed every 500 ms. Its first two
/// renewals are answered; the third lands but its answer is lost, and the
/// SDK (one attempt of 440 ms here) gives up on it 60 ms before the stop
/// point: the attempt must stop its work at the stop point, one renewal
/// interval before the lease it knows of ends, not sleep another interval
/// past it. A delivery that waits for the task takes it over only after
/// that, and runs it to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_renewal_fails_just_before_the_stop_point_stops_its_work_a_renewal_interval_before_its_lease_ends()
 {
    let _turn = one_at_a_time().await;
    capture_logs();
    let fixture = Fixture::new(&dead_endpoint()).await;
    let (task_id, event) = enqueued_task(&fixture, 5_000).await;
    let renewals = AtomicUsize::new(0);
    let renewals_of = task_id.clone();
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(move |seen| {
            let renews = seen.operation == "UpdateItem"
                && seen.body["UpdateExpression"] == RENEWAL
                && seen.body["Key"]["task_id"]["S"] == renewals_of.as_str();
            // The task's third renewal, the first attempt's; every other passes.
            if renews && renewals.fetch_add(1, Ordering::SeqCst) == 2 {
                Fault::LoseAnswer
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let tick_ms = 500;
    let function = function_with_sdk(&fixture, proxy.url(), Duration::from_millis(440), 1);
    let deadline = now_millis() + 15_000;
    let first = invoke_with_deadline(&function, &event, deadline).await;
    let stopped_at = now_millis();
    match first {
        Err(FunctionError::Task(TaskError::Store(message))) => {
            assert_eq!(message, "UpdateItem (lease): not renewed in time")
        }
        other => panic!("expected the work stopped for its lease, got {other:?}"),
    }

    let calls = proxy.calls();
    let renewals: Vec<&Call> = calls.iter().filter(|c| is(c, RENEWAL)).collect();
    assert_eq!(
        renewals.iter().map(|c| c.fault).collect::<Vec<_>>(),
        [Fault::Pass, Fault::Pass, Fault::LoseAnswer],
        "no renewal after the failed one: {renewals:#?}"
    );
    // The lease the attempt knows it holds: its last renewal that was answered.
    let lease_until = lease_of(renewals[1]);
    let stop_point = lease_until - tick_ms;
    let failed = renewals[2];
    eprintln!(
        "renewal sent {} ms before the stop point, the SDK gave up on it 440 ms later; the work stopped {} ms after the stop point",
        stop_point as i64 - failed.at_ms as i64,
        stopped_at as i64 - stop_point as i64
    );
    assert!(
        stopped_at <= stop_point + SCHEDULING_TOLERANCE_MS,
        "stopped at {stopped_at}, {} ms past the stop point {stop_point} (lease until {lease_until})",
        stopped_at - stop_point
    );
    assert!(
        calls.iter().all(|c| c.at_ms <= stopped_at),
        "nothing after the stop"
    );
    assert_eq!(logged(&task_id, "task started"), [Some(1)]);
    assert_eq!(
        logged(&task_id, "work stopped: the lease could not be kept"),
        [Some(1)]
    );
    // The lost renewal landed: the record holds the task a little longer
    // than the attempt knew. Nobody else may start before that lease ends.
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(
        (string(&item, "status"), number(&item, "attempts")),
        ("running".to_owned(), 1)
    );
    let recorded_lease = number(&item, "lease_until");
    assert_eq!(recorded_lease, lease_of(failed));

    let takeover = invoke(&function, &event)
        .await
        .expect("the takeover succeeds");
    assert_eq!(
        takeover.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
    );
    assert_eq!(logged(&task_id, "task started"), [Some(1), Some(2)]);
    let claims: Vec<Call> = proxy
        .calls()
        .into_iter()
        .filter(|c| is(c, CLAIM) && c.landed())
        .collect();
    assert_eq!(claims.len(), 2, "{claims:#?}");
    assert!(
        claims[1].at_ms > recorded_lease && recorded_lease > stopped_at,
        "attempt 2 claimed at {} after the lease of {recorded_lease}, attempt 1 stopped at {stopped_at}",
        claims[1].at_ms
    );
}

/// A claim whose answer comes 700 ms late leaves less than two renewal
/// intervals (2 x 500 ms) of its 1.5 s lease, and every renewal is throttled
/// through the SDK's tries. The claim counts nothing and its lease does not
/// matter: the start write that follows takes a fresh lease, so the work
/// starts with two intervals ahead and the task succeeds as attempt 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_answered_late_counts_nothing_and_the_start_takes_a_fresh_lease_for_attempt_1() {
    let _turn = one_at_a_time().await;
    capture_logs();
    let fixture = Fixture::new(&dead_endpoint()).await;
    let (task_id, event) = enqueued_task(&fixture, 50).await;
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|seen| {
            let update = seen.body["UpdateExpression"].as_str().unwrap_or_default();
            if update.contains(CLAIM) {
                Fault::SlowAnswer(Duration::from_millis(700))
            } else if update == RENEWAL {
                Fault::Throttle
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let function = fixture.function_with_dynamodb(proxy.url());
    let outcome = invoke_with_deadline(&function, &event, now_millis() + 15_000)
        .await
        .expect("the task runs");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
    let calls = proxy.calls();
    let claim = calls.iter().find(|c| is(c, CLAIM)).expect("a claim");
    let start = calls.iter().find(|c| is(c, START)).expect("a start");
    assert!(claim.landed() && start.landed());
    assert!(
        lease_of(start) >= lease_of(claim) + 700,
        "a fresh lease: {calls:#?}"
    );
    assert!(
        calls.iter().all(|c| !is(c, RENEWAL)),
        "a 50 ms work needs no renewal: {calls:#?}"
    );
    assert_eq!(logged(&task_id, "task started"), [Some(1)]);
}

/// The start write's answer comes 700 ms late, leaving less than two renewal
/// intervals of the lease it wrote: the work begins only after a renewal
/// gives them back, and the task succeeds as attempt 1, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_answered_late_begins_the_work_only_once_a_renewal_leaves_two_renewal_intervals() {
    let _turn = one_at_a_time().await;
    capture_logs();
    let fixture = Fixture::new(&dead_endpoint()).await;
    let (task_id, event) = enqueued_task(&fixture, 50).await;
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|seen| {
            let update = seen.body["UpdateExpression"].as_str().unwrap_or_default();
            if update.contains(START) {
                Fault::SlowAnswer(Duration::from_millis(700))
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let function = fixture.function_with_dynamodb(proxy.url());
    let outcome = invoke_with_deadline(&function, &event, now_millis() + 15_000)
        .await
        .expect("the task runs");
    assert_eq!(
        outcome.body,
        json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
    );
    let calls = proxy.calls();
    let start = calls.iter().find(|c| is(c, START)).expect("a start");
    let renewal = calls
        .iter()
        .find(|c| is(c, RENEWAL) && c.landed())
        .expect("a renewal before the work began");
    assert!(renewal.at_ms >= start.at_ms + 700, "{calls:#?}");
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(number(&item, "attempts"), 1);
    assert_eq!(logged(&task_id, "task started"), [Some(1)]);
}

// ---------------------------------------------------------------------------
// What the logs and the answers show
// ---------------------------------------------------------------------------

/// Stand-ins for secrets: the credentials the binary is given.
const SECRET_KEY: &str = "SECRETKEYMARKER0wJalrXUtnFEMIK7MDENG";
const ACCESS_KEY: &str = "AKIAACCESSKEYMARKER7";
const SESSION_TOKEN: &str = "SESSIONTOKENMARKERIQoJb3JpZ2luX2Vj";
/// A stand-in for what a client sends: bodies, query strings, task ids.
const CLIENT_DATA: &str = "clientdatamarker-4f7a";
/// A stand-in for what a failing DynamoDB says in its error messages.
const SERVICE_DETAIL: &str = "servicedetailmarker-91c2";

/// What no log line and no answer may contain, in any case.
const NEVER_SHOWN: &[&str] = &[
    SECRET_KEY,
    ACCESS_KEY,
    SESSION_TOKEN,
    CLIENT_DATA,
    SERVICE_DETAIL,
    "ServiceError",
    "DispatchFailure",
    "panicked",
    "stack backtrace",
    "Credentials",
];

/// A DynamoDB that throttles every call, with a message an SDK error dump
/// would show.
async fn chatty_throttling_dynamodb() -> String {
    let router = Router::new().route(
        "/",
        post(|| async {
            (
                StatusCode::BAD_REQUEST,
                [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amzn-requestid", "CHATTYREQUESTID"),
                ],
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                    "message": format!("Rate of requests exceeds the allowed throughput {SERVICE_DETAIL}"),
                })
                .to_string(),
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Requests that carry client data where the function must not echo it.
fn hostile_requests() -> Vec<(String, u16)> {
    let big = format!(
        r#"{{"delay_ms": 1, "pad": "{}"}}"#,
        CLIENT_DATA.repeat(70 * 1024 / CLIENT_DATA.len())
    );
    let unknown_task = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let post = |body: &str| events::http_api("POST", "/async", Some(body));
    let get = |path: &str| events::http_api("GET", path, None);
    vec![
        (post(&format!(r#"{{"delay_ms": "{CLIENT_DATA}"}}"#)), 400),
        (post(&format!("not json {CLIENT_DATA}")), 400),
        (post(&format!(r#"{{"{CLIENT_DATA}": 1}}"#)), 400),
        (
            post(&format!(r#"{{"delay_ms": 1, "{CLIENT_DATA}": 1}}"#)),
            400,
        ),
        (post(&format!(r#"{{"delay_ms": [{CLIENT_DATA}]}}"#)), 400),
        (post(&big), 413),
        (get(&format!("/users?cursor={CLIENT_DATA}")), 400),
        (get(&format!("/users?limit={CLIENT_DATA}")), 400),
        (get(&format!("/users?limit=1&limit={CLIENT_DATA}")), 400),
        (get(&format!("/users?cursor=a&cursor={CLIENT_DATA}")), 400),
        (get(&format!("/tasks/{CLIENT_DATA}")), 400),
        (get(&format!("/tasks/{CLIENT_DATA}%FF")), 400),
        (
            get(&format!("/tasks/{unknown_task}?note={CLIENT_DATA}")),
            404,
        ),
        (
            events::http_api(
                "POST",
                "/events",
                Some(&json!({"task_id": CLIENT_DATA, "delay_ms": 1}).to_string()),
            ),
            404,
        ),
    ]
}

/// Requests that reach DynamoDB or Lambda, their query carrying client data.
fn dependency_requests() -> Vec<String> {
    vec![
        events::http_api("GET", &format!("/users?limit=5&note={CLIENT_DATA}"), None),
        events::http_api(
            "GET",
            &format!("/tasks/0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c?note={CLIENT_DATA}"),
            None,
        ),
        events::http_api(
            "POST",
            &format!("/async?note={CLIENT_DATA}"),
            Some(r#"{"delay_ms": 1}"#),
        ),
    ]
}

/// The HTTP status of a response document (0 for a function error).
fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Response(document) => document["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0),
        Outcome::Error { .. } => 0,
    }
}

/// Every place a forbidden string shows up: (where, the text).
fn leaks(what: &str, texts: impl IntoIterator<Item = String>) -> Vec<String> {
    texts
        .into_iter()
        .filter(|text| {
            let text = text.to_lowercase();
            NEVER_SHOWN
                .iter()
                .any(|never| text.contains(&never.to_lowercase()))
        })
        .map(|text| format!("{what}: {text}"))
        .collect()
}

fn output_leaks(name: &str, output: &ProcessOutput) -> Vec<String> {
    leaks(
        &format!("{name} log"),
        output.stdout.iter().chain(&output.stderr).cloned(),
    )
}

/// The binary with marker credentials, pointed at `api` and `fixture`'s tables.
fn binary_with_marker_credentials(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    FunctionCommand::new(api, fixture)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_answers_never_show_credentials_client_data_or_error_dumps() {
    let _turn = one_at_a_time().await;
    let healthy_api = RuntimeApi::start().await;
    let fixture = Fixture::new(&healthy_api.url()).await;
    fixture.seed_users(3).await;
    // As in Lambda: JSON logs. The faulty ones below log as text, as locally.
    let healthy = binary_with_marker_credentials(&healthy_api, &fixture)
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .spawn();

    let mut answers = Vec::new();
    let mut statuses = Vec::new();
    for (event, expected) in hostile_requests() {
        let outcome = healthy_api.invoke(event).await;
        statuses.push((status_of(&outcome), expected));
        answers.push(format!("{outcome:?}"));
    }
    // Task events with client data where a task id or delay belongs.
    for event in [
        json!({"task_id": CLIENT_DATA, "delay_ms": 1}),
        json!({"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 1}),
    ] {
        let outcome = healthy_api.invoke(event.to_string()).await;
        assert!(matches!(outcome, Outcome::Error { .. }), "{outcome:?}");
        answers.push(format!("{outcome:?}"));
    }

    // DynamoDB unreachable; DynamoDB throttling with a talkative message;
    // Lambda unreachable.
    let mut faulty = Vec::new();
    for (name, dynamodb, lambda, expected) in [
        ("dynamodb-dead", dead_endpoint(), None, [503, 503, 503]),
        (
            "dynamodb-throttling",
            chatty_throttling_dynamodb().await,
            None,
            [503, 503, 503],
        ),
        (
            "lambda-dead",
            support::dynamodb_endpoint().to_owned(),
            Some(dead_endpoint()),
            // Only /async needs Lambda.
            [200, 404, 503],
        ),
    ] {
        let api = RuntimeApi::start().await;
        let mut command = binary_with_marker_credentials(&api, &fixture)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb);
        if let Some(lambda) = &lambda {
            command = command.env("AWS_ENDPOINT_URL_LAMBDA", lambda);
        }
        let process = command.spawn();
        for (event, expected) in dependency_requests().into_iter().zip(expected) {
            let outcome = api.invoke(event).await;
            statuses.push((status_of(&outcome), expected));
            answers.push(format!("{name}: {outcome:?}"));
        }
        if lambda.is_none() {
            let task = events::task("0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", 1);
            let outcome = api.invoke(task).await;
            assert!(
                matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "TaskStoreUnavailable"),
                "{name}: {outcome:?}"
            );
            answers.push(format!("{name}: {outcome:?}"));
        }
        faulty.push((name, api, process));
    }

    let mut found = leaks("answer", answers);
    let healthy_output = healthy.stop().await;
    found.extend(output_leaks("healthy", &healthy_output));
    let mut logged = healthy_output.stdout.clone();
    for (name, _api, process) in faulty {
        let output = process.stop().await;
        found.extend(output_leaks(name, &output));
        logged.extend(output.stdout);
    }
    assert!(found.is_empty(), "leaked:\n{}", found.join("\n"));
    assert!(
        statuses.iter().all(|(got, expected)| got == expected),
        "(answered, expected): {statuses:?}"
    );
    // The logs are not empty: rejections and failures are there, summarised.
    for expected in [
        "request rejected",
        "dependency unavailable",
        "task store unavailable",
    ] {
        assert!(
            logged.iter().any(|line| line.contains(expected)),
            "no log line says {expected:?}: {logged:#?}"
        );
    }
}

/// A task event whose fields are of the wrong type: serde's message quotes the
/// value, and the function error (which the runtime logs and returns to the
/// invoker) must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_task_events_error_does_not_quote_the_event() {
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = binary_with_marker_credentials(&api, &fixture).spawn();
    let mut answers = Vec::new();
    for event in [
        json!({"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": CLIENT_DATA}),
        json!({"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 1, CLIENT_DATA: 1}),
        json!({CLIENT_DATA: 1}),
    ] {
        let outcome = api.invoke(event.to_string()).await;
        assert!(
            matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "UnrecognizedEvent"),
            "{outcome:?}"
        );
        answers.push(format!("{outcome:?}"));
    }
    let mut found = leaks("answer", answers);
    found.extend(output_leaks("binary", &process.stop().await));
    assert!(found.is_empty(), "leaked:\n{}", found.join("\n"));
}

// ---------------------------------------------------------------------------
// Events lambda_http cannot convert
// ---------------------------------------------------------------------------

/// lambda_http panics converting some events (found by tests/fuzz.rs): a body
/// flagged base64 that is not, a Host header that is no host. The runtime
/// catches the panic: the invocation is a function error, and the binary goes
/// on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_lambda_http_panics_on_is_a_function_error_and_the_binary_serves_on() {
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = FunctionCommand::new(&api, &fixture).spawn();

    let mut lying_base64: Value =
        serde_json::from_str(&events::http_api("POST", "/async", Some("{}"))).expect("json");
    lying_base64["isBase64Encoded"] = json!(true);
    let mut bad_host: Value =
        serde_json::from_str(&events::alb("GET", "/users", None)).expect("json");
    bad_host["headers"]["host"] = json!("[::1");
    for event in [lying_base64, bad_host] {
        match api.invoke(event.to_string()).await {
            Outcome::Error { message, .. } => {
                assert!(message.starts_with("Lambda panicked: "), "{message}")
            }
            other => panic!("expected a function error, got {other:?}"),
        }
        let next = api.invoke(events::http_api("GET", "/users", None)).await;
        assert_eq!(status_of(&next), 200, "{next:?}");
    }
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);
    let output = process.stop().await;
    assert!(
        output.status.code().is_none(),
        "the binary ran until stopped: {:?}",
        output.status
    );
}
