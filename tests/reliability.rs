//! Duplicate delivery, load, dead invocations and what the logs show.
//!
//! Lambda delivers a task event at least once, maybe many times at once; an
//! invocation may die at its deadline in the middle of a task; `/async` may be
//! called by many clients together. None of that may lose a task or run one
//! twice. And whatever happens, neither the logs nor an answer may carry
//! credentials, a request's body, a stack trace or an SDK error dump.
//!
//! Failing dependencies and least privilege are in tests/faults.rs and
//! tests/template.rs; a failing task retried to `succeeded` (attempts = 2) is in
//! tests/tasks.rs.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
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
async fn wait_for_status(fixture: &Fixture, task_id: &str, status: &str) {
    for _ in 0..1000 {
        let item = fixture.task_item(task_id).await.expect("record");
        if string(&item, "status") == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {task_id} never became {status}");
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
    for duplicate in duplicates {
        // A duplicate sees the task running, or done if it came late.
        let status = duplicate["status"].as_str().expect("status");
        assert!(matches!(status, "running" | "succeeded"), "{duplicate}");
        assert_eq!(
            duplicate,
            &json!({"task_id": task_id, "status": status, "attempts": 1, "duplicate": true})
        );
    }
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("succeeded".to_owned(), 1, Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_async_calls_each_get_a_task_that_runs_exactly_once() {
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

    // Lambda delivers every event, each twice, all at once.
    let mut deliveries = JoinSet::new();
    for payload in payloads.iter().chain(&payloads) {
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
    let mut runs: HashMap<String, usize> = HashMap::new();
    for outcome in &outcomes {
        if outcome["duplicate"] == json!(false) {
            assert_eq!(outcome["status"], "succeeded", "{outcome}");
            assert_eq!(outcome["attempts"], 1, "{outcome}");
            *runs
                .entry(outcome["task_id"].as_str().expect("id").to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(
        runs.keys().cloned().collect::<HashSet<_>>(),
        task_ids,
        "every task ran"
    );
    assert!(
        runs.values().all(|&count| count == 1),
        "no task ran twice: {runs:?}"
    );

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
    for item in &items {
        assert_eq!(
            (
                string(item, "status"),
                number(item, "attempts"),
                item.get("error")
            ),
            ("succeeded".to_owned(), 1, None),
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
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 3000).await;

    // The first delivery's invocation has 2 s left: it claims the task, then is
    // killed at its deadline in the middle of the 3 s task, as Lambda kills a
    // timed-out invocation. Its claim's lease ends at that deadline.
    let lease_ms = 2000;
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

    // Within the lease, another delivery leaves it alone.
    let early = invoke(&fixture.function, &payload)
        .await
        .expect("a duplicate succeeds");
    assert_eq!(
        early.body,
        json!({"task_id": task_id, "status": "running", "attempts": 1, "duplicate": true})
    );
    // It ends at its deadline, before the task: killed, or stopped by itself
    // a renewal short of it (then with an error, so that Lambda retries).
    match dying.await.expect("join") {
        Err(_killed) => {}
        Ok(Err(err)) => assert_eq!(
            err.to_string(),
            "task store unavailable: the invocation reached its deadline; the work was stopped"
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

    // Once the lease has passed, the next delivery takes the task over.
    sleep_until(deadline + 50).await;
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
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 2000).await;

    // Attempt 1 holds a lease of 300 ms but is not killed (Lambda would kill
    // it; this proves the record is safe even if something outlives its
    // lease): it stops its own work at its deadline.
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
    assert_eq!(
        late.to_string(),
        "task store unavailable: the invocation reached its deadline; the work was stopped"
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
/// delivery must still run the task it claimed; today it reports a duplicate
/// and returns success, so Lambda never retries, and the task stays `running`
/// with no invocation behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_still_runs_the_task() {
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
