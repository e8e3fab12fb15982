//! Failing dependencies: DynamoDB and the Lambda `Invoke` API throttling,
//! failing, hanging, absent or missing a table. Every route answers 503 with
//! `Retry-After` and the contract's error body, names no internal, and answers
//! within a bound well inside API Gateway's 30 s, also when an
//! `Idempotency-Key` cannot be written or read; `/async` never leaves a task
//! `queued` when its event could not be enqueued, and a task whose caller was
//! told 503 never runs, though Lambda delivers the events it accepted; a task
//! event that cannot reach its store fails as a function error.
//!
//! The misbehaving dependencies are small servers on loopback that speak just
//! enough of each protocol, the fake Lambda of `support/fake_lambda.rs`, and
//! the fault proxy of `support/fault_proxy.rs` in front of the real local
//! DynamoDB ("table missing" uses that DynamoDB too). The property of a keyed
//! `/async` under every write fault is in tests/async_write_faults.rs.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_api::Function;
use async_api::FunctionError;
use async_api::tasks::TaskError;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fault_proxy::{Fault, FaultProxy};
use serde_json::json;
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, dead_endpoint, error_body, events};
use tokio::io::AsyncReadExt;

/// Every answer must come well inside API Gateway's 30 s integration timeout.
/// A bound, not a benchmark: the SDK gives up after 6 s (src/state.rs).
const BOUND: Duration = Duration::from_secs(15);
const UNAVAILABLE: &str = "Service temporarily unavailable, retry later";
/// What an error body must never show a client (compared in lowercase).
const INTERNALS: &[&str] = &[
    "serviceerror",
    "dispatch",
    "127.0.0.1",
    "exception",
    "amazonaws",
    "throttl",
    "provisioned",
    "timeout",
    "sdk",
];
/// What a task record says when its event could not be enqueued.
const NOT_ENQUEUED: &str = "The task could not be enqueued";

// ---------------------------------------------------------------------------
// Misbehaving servers
// ---------------------------------------------------------------------------

/// How the fake DynamoDB answers every request.
#[derive(Clone, Copy, Debug)]
enum DynamoDbFault {
    /// A DynamoDB error of the JSON protocol: status and `__type`.
    Error(u16, &'static str),
    /// A bare status with an empty body, as a proxy in between might answer.
    BareStatus(u16),
}

#[derive(Clone)]
struct FaultyDynamoDbState {
    fault: DynamoDbFault,
    /// The `X-Amz-Target` of every request received.
    targets: Arc<Mutex<Vec<String>>>,
}

/// A DynamoDB endpoint on loopback that answers every operation with one fault.
struct FaultyDynamoDb {
    url: String,
    state: FaultyDynamoDbState,
}

impl FaultyDynamoDb {
    async fn start(fault: DynamoDbFault) -> Self {
        let state = FaultyDynamoDbState {
            fault,
            targets: Arc::default(),
        };
        let router = Router::new()
            .route("/", post(answer_dynamodb))
            .with_state(state.clone());
        let url = serve(router).await;
        Self { url, state }
    }

    /// How many requests of each operation (`Scan`, `GetItem`, …) arrived.
    fn requests_per_operation(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for target in self.state.targets.lock().expect("lock").iter() {
            let operation = target
                .strip_prefix("DynamoDB_20120810.")
                .unwrap_or(target)
                .to_owned();
            *counts.entry(operation).or_default() += 1;
        }
        counts
    }
}

async fn answer_dynamodb(State(state): State<FaultyDynamoDbState>, headers: HeaderMap) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    state.targets.lock().expect("lock").push(target);
    match state.fault {
        DynamoDbFault::Error(status, error_type) => (
            StatusCode::from_u16(status).expect("status"),
            [
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amzn-requestid", "fault-request"),
            ],
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"injected {error_type}"}}"#
            ),
        )
            .into_response(),
        DynamoDbFault::BareStatus(status) => {
            StatusCode::from_u16(status).expect("status").into_response()
        }
    }
}

/// A TCP server that accepts every connection, reads what it is sent, and
/// never answers.
struct SilentServer {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl SilentServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0_u8; 4096];
                    // Held open until the client gives up and closes it.
                    while matches!(socket.read(&mut buffer).await, Ok(n) if n > 0) {}
                });
            }
        });
        Self { url, connections }
    }
}

/// A Lambda `Invoke` endpoint that is out of concurrency: 429
/// `TooManyRequestsException`, as Lambda answers it.
struct ThrottledLambda {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl ThrottledLambda {
    async fn start() -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let router = Router::new()
            .route(
                "/2015-03-31/functions/{name}/invocations",
                post(answer_throttled),
            )
            .with_state(requests.clone());
        Self {
            url: serve(router).await,
            requests,
        }
    }
}

async fn answer_throttled(State(requests): State<Arc<AtomicUsize>>) -> Response {
    requests.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            ("x-amzn-errortype", "TooManyRequestsException"),
            ("content-type", "application/json"),
            ("x-amzn-requestid", "fault-request"),
        ],
        r#"{"Type":"User","message":"Rate exceeded","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#,
    )
        .into_response()
}

/// Serves `router` on a loopback port the OS picks; it stops with the test's runtime.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

// ---------------------------------------------------------------------------
// What every fault must look like to a client
// ---------------------------------------------------------------------------

async fn timed(
    function: &Function,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = support::invoke(function, &events::http_api(method, path, body))
        .await
        .expect("an HTTP request always gets an HTTP answer");
    (reply, started.elapsed())
}

/// The contract's 503: exact body, `Retry-After: 1`, JSON, no internals, in time.
fn assert_unavailable(case: &str, route: &str, reply: &Reply, elapsed: Duration) {
    eprintln!(
        "fault timing: {case:<40} {route:<16} {:>6} ms",
        elapsed.as_millis()
    );
    assert_eq!(reply.status, 503, "{case} {route}: {}", reply.body);
    assert_eq!(
        reply.body,
        error_body(reply, "service_unavailable", UNAVAILABLE),
        "{case} {route}"
    );
    assert_eq!(reply.header("retry-after"), Some("1"), "{case} {route}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{case} {route}"
    );
    let text = reply.body.to_string().to_lowercase();
    for internal in INTERNALS {
        assert!(
            !text.contains(internal),
            "{case} {route}: body names {internal:?}: {text}"
        );
    }
    assert!(
        elapsed < BOUND,
        "{case} {route}: answered after {elapsed:?}, bound {BOUND:?}"
    );
}

/// `GET /users`, `GET /tasks/{id}` and `POST /async`, at once, each answer 503.
async fn assert_every_route_unavailable(case: &str, function: &Function) {
    let task_path = format!("/tasks/{}", uuid::Uuid::new_v4());
    let (users, task, start) = tokio::join!(
        timed(function, "GET", "/users", None),
        timed(function, "GET", &task_path, None),
        timed(function, "POST", "/async", Some(r#"{"delay_ms": 0}"#)),
    );
    assert_unavailable(case, "GET /users", &users.0, users.1);
    assert_unavailable(case, "GET /tasks/{id}", &task.0, task.1);
    assert_unavailable(case, "POST /async", &start.0, start.1);
}

/// Each operation reached the fake at least once and at most the SDK's 3
/// attempts, and nothing else did: `/async`, whose record was never written,
/// went no further (an enqueue attempt would have been followed by the
/// UpdateItem that marks the task failed).
fn assert_bounded_attempts(case: &str, dynamodb: &FaultyDynamoDb) {
    let counts = dynamodb.requests_per_operation();
    eprintln!("fault attempts: {case:<40} {counts:?}");
    for operation in ["Scan", "GetItem", "PutItem"] {
        let count = counts.get(operation).copied().unwrap_or_default();
        assert!(
            (1..=3).contains(&count),
            "{case}: {operation} sent {count} times: {counts:?}"
        );
    }
    assert_eq!(
        counts.len(),
        3,
        "{case}: only Scan, GetItem and PutItem: {counts:?}"
    );
}

async fn dynamodb_fault_case(case: &str, fault: DynamoDbFault) {
    let dynamodb = FaultyDynamoDb::start(fault).await;
    let fixture = Fixture::new(&dead_endpoint()).await;
    let function = fixture.function_with_dynamodb(&dynamodb.url);
    assert_every_route_unavailable(case, &function).await;
    assert_bounded_attempts(case, &dynamodb);
}

// ---------------------------------------------------------------------------
// DynamoDB faults
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_route_answers_503_when_dynamodb_exceeds_provisioned_throughput() {
    dynamodb_fault_case(
        "DynamoDB ProvisionedThroughputExceeded",
        DynamoDbFault::Error(400, "ProvisionedThroughputExceededException"),
    )
    .await;
}

#[tokio::test]
async fn every_route_answers_503_when_dynamodb_throttles() {
    dynamodb_fault_case(
        "DynamoDB ThrottlingException",
        DynamoDbFault::Error(400, "ThrottlingException"),
    )
    .await;
}

#[tokio::test]
async fn every_route_answers_503_when_dynamodb_answers_500() {
    dynamodb_fault_case(
        "DynamoDB 500 InternalServerError",
        DynamoDbFault::Error(500, "InternalServerError"),
    )
    .await;
}

#[tokio::test]
async fn every_route_answers_503_when_dynamodb_answers_a_bare_500() {
    dynamodb_fault_case("DynamoDB bare 500", DynamoDbFault::BareStatus(500)).await;
}

#[tokio::test]
async fn every_route_answers_503_in_bounded_time_when_dynamodb_never_answers() {
    let dynamodb = SilentServer::start().await;
    let fixture = Fixture::new(&dead_endpoint()).await;
    let function = fixture.function_with_dynamodb(&dynamodb.url);
    assert_every_route_unavailable("DynamoDB hangs", &function).await;
    let connections = dynamodb.connections.load(Ordering::SeqCst);
    eprintln!("fault attempts: DynamoDB hangs: {connections} connections for 3 routes");
    assert!(
        (3..=9).contains(&connections),
        "3 routes, at most 3 attempts each: {connections} connections"
    );
}

#[tokio::test]
async fn every_route_answers_503_when_nothing_listens_for_dynamodb() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let function = fixture.function_with_dynamodb(&dead_endpoint());
    assert_every_route_unavailable("DynamoDB refused", &function).await;
}

#[tokio::test]
async fn every_route_answers_503_when_the_tables_do_not_exist() {
    // The real local DynamoDB, the fixture's tables deleted under the function.
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    for table in [&fixture.users_table, &fixture.tasks_table] {
        fixture
            .dynamodb
            .delete_table()
            .table_name(table)
            .send()
            .await
            .expect("delete table");
        let mut waited = 0;
        while fixture
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .is_ok()
        {
            waited += 1;
            assert!(waited < 100, "{table} is still there");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_every_route_unavailable("DynamoDB table missing", &fixture.function).await;
    assert!(
        lambda.invocations().is_empty(),
        "no task record, so no event may be enqueued"
    );
}

// ---------------------------------------------------------------------------
// Idempotency-Key faults: a key that cannot be written or read
// ---------------------------------------------------------------------------

const KEYED_BODY: &str = r#"{"delay_ms": 0}"#;

/// `POST /async` with `key`, timed.
async fn keyed_post(function: &Function, key: &str) -> (Reply, Duration) {
    let event = events::with_headers(
        &events::http_api("POST", "/async", Some(KEYED_BODY)),
        &[("idempotency-key", Some(key))],
    );
    let started = Instant::now();
    let reply = support::invoke(function, &event)
        .await
        .expect("an HTTP answer");
    (reply, started.elapsed())
}

/// DynamoDB failing while the key is reserved (its first write) is the
/// contract's 503 with `Retry-After`, never a 500, and nothing else is tried.
#[tokio::test]
async fn a_keyed_async_answers_503_with_retry_after_when_dynamodb_fails_writing_the_key() {
    for (case, fault) in [
        (
            "key write, DynamoDB throttles",
            DynamoDbFault::Error(400, "ThrottlingException"),
        ),
        (
            "key write, DynamoDB 500",
            DynamoDbFault::Error(500, "InternalServerError"),
        ),
        (
            "key write, DynamoDB bare 500",
            DynamoDbFault::BareStatus(500),
        ),
    ] {
        let dynamodb = FaultyDynamoDb::start(fault).await;
        let fixture = Fixture::new(&dead_endpoint()).await;
        let function = fixture.function_with_dynamodb(&dynamodb.url);
        let (reply, elapsed) = keyed_post(&function, "write-fault").await;
        assert_unavailable(case, "POST /async keyed", &reply, elapsed);
        let counts = dynamodb.requests_per_operation();
        assert_eq!(
            counts.len(),
            1,
            "{case}: only the key's PutItem: {counts:?}"
        );
        assert!((1..=3).contains(&counts["PutItem"]), "{case}: {counts:?}");
    }
}

/// The key exists (a first request was answered 202), a retry's reservation
/// is refused, and the read of the key record fails: 503 with `Retry-After`,
/// never a 500; nothing is written, and the key still replays its task once
/// DynamoDB answers again.
#[tokio::test]
async fn a_keyed_async_answers_503_with_retry_after_when_dynamodb_fails_reading_the_key() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (first, _) = keyed_post(&fixture.function, "read-fault").await;
    assert_eq!(first.status, 202, "{}", first.body);
    let items = fixture.count(&fixture.tasks_table).await;

    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|seen| {
            if seen.operation == "GetItem" {
                Fault::Throttle
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let function = fixture.function_with_dynamodb(proxy.url());
    let (reply, elapsed) = keyed_post(&function, "read-fault").await;
    assert_unavailable(
        "key read, DynamoDB throttles",
        "POST /async keyed",
        &reply,
        elapsed,
    );
    let calls: Vec<(String, u16)> = proxy
        .calls()
        .iter()
        .map(|c| (c.operation.clone(), c.upstream_status.unwrap_or(0)))
        .collect();
    assert_eq!(
        calls.first(),
        Some(&("PutItem".to_owned(), 400)),
        "the reservation was refused: the key exists: {calls:?}"
    );
    assert!(
        calls[1..]
            .iter()
            .all(|(operation, _)| operation == "GetItem")
            && calls.len() >= 2,
        "then only the key's read, throttled: {calls:?}"
    );
    assert_eq!(fixture.count(&fixture.tasks_table).await, items);
    assert_eq!(lambda.invocations().len(), 1, "nothing enqueued");

    let (replay, _) = keyed_post(&fixture.function, "read-fault").await;
    assert_eq!(
        (
            replay.status,
            &replay.body["task_id"],
            replay.header("idempotent-replayed")
        ),
        (202, &first.body["task_id"], Some("true"))
    );
}

// ---------------------------------------------------------------------------
// Lambda Invoke faults: the record is written, the enqueue fails
// ---------------------------------------------------------------------------

/// The one task record in the fixture's tasks table.
async fn only_task(fixture: &Fixture) -> HashMap<String, AttributeValue> {
    let items = fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan tasks")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "exactly one task recorded: {items:?}");
    items.into_iter().next().expect("one item")
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

/// `POST /async` answers 503, and the record it wrote says `failed`, never
/// `queued`, both in the table and through `GET /tasks/{id}`; `events`, the
/// task events Lambda received (and may have accepted), each delivered, leave
/// it alone: a task whose caller was told 503 never runs.
async fn assert_enqueue_failure_marks_task_failed(
    case: &str,
    lambda_url: &str,
    events: impl Fn() -> Vec<String>,
) {
    let fixture = Fixture::new(lambda_url).await;
    let (reply, elapsed) = timed(
        &fixture.function,
        "POST",
        "/async",
        Some(r#"{"delay_ms": 0}"#),
    )
    .await;
    assert_unavailable(case, "POST /async", &reply, elapsed);

    let item = only_task(&fixture).await;
    let task_id = string(&item, "task_id");
    assert_eq!(string(&item, "status"), "failed", "{case}: {item:?}");
    assert_eq!(string(&item, "error"), NOT_ENQUEUED, "{case}");
    assert_eq!(
        fixture.task_item(&task_id).await.as_ref(),
        Some(&item),
        "{case}"
    );

    assert_eq!(
        item.get("enqueued"),
        Some(&AttributeValue::Bool(false)),
        "{case}: never marked enqueued"
    );

    let status = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(status.status, 200, "{case}: {}", status.body);
    assert_eq!(
        status.body,
        json!({
            "task_id": task_id,
            "status": "failed",
            "created_at": status.body["created_at"],
            "updated_at": status.body["updated_at"],
            "attempts": 0,
            "error": NOT_ENQUEUED,
            "result": null,
        }),
        "{case}"
    );
    assert_eq!(
        status.header("retry-after"),
        None,
        "{case}: failed is final"
    );

    for event in events() {
        let delivered = support::invoke(&fixture.function, &event)
            .await
            .expect("the delivery succeeds, doing nothing");
        assert_eq!(
            delivered.body,
            json!({"task_id": task_id, "status": "failed", "attempts": 0, "duplicate": true}),
            "{case}"
        );
    }
    let item = only_task(&fixture).await;
    assert_eq!(string(&item, "status"), "failed", "{case}: {item:?}");
}

/// The task events a fake Lambda received.
fn payloads(lambda: &FakeLambda) -> Vec<String> {
    lambda
        .invocations()
        .iter()
        .map(|invocation| String::from_utf8(invocation.payload.to_vec()).expect("UTF-8"))
        .collect()
}

#[tokio::test]
async fn async_answers_503_and_marks_the_task_failed_when_lambda_answers_500() {
    let lambda = FakeLambda::start(500).await;
    assert_enqueue_failure_marks_task_failed("Lambda 500 ServiceException", &lambda.url, || {
        payloads(&lambda)
    })
    .await;
    let attempts = lambda.invocations().len();
    eprintln!("fault attempts: Lambda 500: {attempts} Invoke requests");
    assert!((1..=3).contains(&attempts), "{attempts} Invoke requests");
}

#[tokio::test]
async fn async_answers_503_and_marks_the_task_failed_when_lambda_throttles() {
    let lambda = ThrottledLambda::start().await;
    assert_enqueue_failure_marks_task_failed("Lambda 429 TooManyRequests", &lambda.url, Vec::new)
        .await;
    let attempts = lambda.requests.load(Ordering::SeqCst);
    eprintln!("fault attempts: Lambda 429: {attempts} Invoke requests");
    assert!((1..=3).contains(&attempts), "{attempts} Invoke requests");
}

#[tokio::test]
async fn async_answers_503_and_marks_the_task_failed_when_nothing_listens_for_lambda() {
    assert_enqueue_failure_marks_task_failed("Lambda refused", &dead_endpoint(), Vec::new).await;
}

#[tokio::test]
async fn async_answers_503_in_bounded_time_and_marks_the_task_failed_when_lambda_never_answers() {
    let lambda = SilentServer::start().await;
    assert_enqueue_failure_marks_task_failed("Lambda hangs", &lambda.url, Vec::new).await;
    let connections = lambda.connections.load(Ordering::SeqCst);
    eprintln!("fault attempts: Lambda hangs: {connections} connections");
    assert!((1..=3).contains(&connections), "{connections} connections");
}

/// Lambda accepts every try of the `Invoke` and the answers never come back
/// (a timeout after Lambda accepted the event): the caller is told 503, so
/// the task must never run, though Lambda delivers each of the events it
/// accepted.
#[tokio::test]
async fn async_answers_503_and_the_task_never_runs_when_lambda_accepts_the_event_and_its_answer_is_lost()
 {
    let lambda = FakeLambda::start(202).await;
    lambda.set_delay(Duration::from_secs(3600));
    assert_enqueue_failure_marks_task_failed("Lambda answer lost", &lambda.url, || {
        payloads(&lambda)
    })
    .await;
    let attempts = lambda.invocations().len();
    eprintln!("fault attempts: Lambda answer lost: {attempts} Invoke requests");
    assert!((1..=3).contains(&attempts), "{attempts} Invoke requests");
}

// ---------------------------------------------------------------------------
// Task events
// ---------------------------------------------------------------------------

async fn assert_task_event_fails_with_store_error(case: &str, dynamodb_url: &str) {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let function = fixture.function_with_dynamodb(dynamodb_url);
    let task_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let outcome = support::invoke(&function, &events::task(&task_id, 0)).await;
    let elapsed = started.elapsed();
    eprintln!(
        "fault timing: {case:<40} {:<16} {:>6} ms",
        "task event",
        elapsed.as_millis()
    );
    match outcome {
        Err(FunctionError::Task(TaskError::Store(message))) => {
            assert!(message.starts_with("UpdateItem (claim): "), "{message}")
        }
        other => panic!("{case}: expected TaskError::Store, got {other:?}"),
    }
    assert!(elapsed < BOUND, "{case}: failed after {elapsed:?}");
}

#[tokio::test]
async fn a_task_event_fails_with_a_store_error_when_nothing_listens_for_dynamodb() {
    assert_task_event_fails_with_store_error("task event, DynamoDB refused", &dead_endpoint())
        .await;
}

#[tokio::test]
async fn a_task_event_fails_with_a_store_error_when_dynamodb_throttles() {
    let dynamodb = FaultyDynamoDb::start(DynamoDbFault::Error(400, "ThrottlingException")).await;
    assert_task_event_fails_with_store_error("task event, DynamoDB throttles", &dynamodb.url).await;
}

// ---------------------------------------------------------------------------
// A write that lands but whose answer is lost
// ---------------------------------------------------------------------------

/// The record's PutItem lands but its answer is lost, so the SDK retries and
/// the retry fails its own `attribute_not_exists(task_id)` condition: that must
/// count as written. With Lambda unreachable the answer is then 503 and the
/// record `failed`, never a 500 with the task left `queued`.
#[tokio::test]
async fn async_never_leaves_a_task_queued_when_the_record_write_answer_is_lost() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let proxy = support::answer_losing_proxy(support::dynamodb_endpoint()).await;
    // Invoke goes nowhere: the contract's answer is then 503 and `failed`.
    let function = fixture.function_with_dynamodb(&proxy);
    let (reply, elapsed) = timed(&function, "POST", "/async", Some(r#"{"delay_ms": 0}"#)).await;
    assert!(elapsed < BOUND, "answered after {elapsed:?}");
    let item = only_task(&fixture).await;
    assert_eq!(
        reply.status,
        503,
        "answered {} and left the task {:?}",
        reply.body,
        item.get("status")
    );
    assert_unavailable("record answer lost", "POST /async", &reply, elapsed);
    assert_eq!(string(&item, "status"), "failed");
    assert_eq!(string(&item, "error"), NOT_ENQUEUED);
}
