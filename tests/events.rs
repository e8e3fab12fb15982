//! Every sample event in `events/`, replayed through the real function binary
//! as Lambda drives it: the binary polls a local Runtime API for each event and
//! posts back its result, and its `/async` self-invocations go through the same
//! emulator's Invoke API (see `support::runtime_api`).
//!
//! The directory is read when the test runs, and every file must have an entry
//! in [`EXPECTATIONS`]: a new sample event cannot go untested.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::runtime_api::{InvocationKind, Outcome, RuntimeApi, function_command, test_function};
use support::samples::{CHECKED_HEADERS, EXPECTATIONS, Expected, Source, expected_document};
use support::{FUNCTION_NAME, Fixture, events};

/// The task `events/task.json` names.
const SAMPLE_TASK_ID: &str = "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c";
/// Users seeded before the users events; each page holds two (`limit=2`).
const SEEDED_USERS: usize = 3;
/// What the function says of `{"hello":"world"}`.
const HELLO_WORLD_ERROR: &str = "expected an API Gateway (HTTP API or REST API), Application Load \
     Balancer or Lambda Function URL event, a task event {\"task_id\": \"<uuid>\", \"delay_ms\": \
     0..=60000}, or the failure queue's SQS event: not a task event (line 1, column 8)";
/// Long enough for the slowest task (`delay_ms` 1000) and a loaded machine.
const TASK_PATIENCE: Duration = Duration::from_secs(20);

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

/// The sample events, sorted by file name, with their text.
fn sample_events() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(events_dir())
        .expect("read events/")
        .map(|entry| {
            let path = entry.expect("events/ entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("file name")
                .to_owned();
            let text = std::fs::read_to_string(&path).expect("read event");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn expectation(file: &str) -> Option<(Source, Expected)> {
    EXPECTATIONS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|&(_, source, expected)| (source, expected))
}

fn read_event(file: &str) -> String {
    std::fs::read_to_string(events_dir().join(file)).expect("read event")
}

/// The response document with its `body` parsed and its header maps reduced to
/// [`CHECKED_HEADERS`], and the body's length as sent.
fn http_document(outcome: &Outcome) -> (Value, usize) {
    let Outcome::Response(document) = outcome else {
        panic!("expected an HTTP response document, got {outcome:?}");
    };
    let text = document["body"].as_str().expect("a text body");
    let mut parsed = document.clone();
    parsed["body"] = serde_json::from_str(text).expect("a JSON body");
    for field in ["headers", "multiValueHeaders"] {
        if let Some(headers) = parsed.get_mut(field).and_then(Value::as_object_mut) {
            headers.retain(|name, _| CHECKED_HEADERS.contains(&name.as_str()));
        }
    }
    (parsed, text.len())
}

fn json_headers(length: usize) -> Vec<(&'static str, String)> {
    vec![
        ("content-length", length.to_string()),
        ("content-type", "application/json".to_owned()),
    ]
}

fn seeded_user(id: &str) -> Value {
    let n: usize = id
        .strip_prefix("user-")
        .and_then(|n| n.parse().ok())
        .expect("a seeded user id");
    json!({"id": id, "name": format!("User {n}"), "email": format!("user{n}@example.com")})
}

/// The first page of `limit=2`, from DynamoDB's own Scan order.
async fn first_users_page(fixture: &Fixture) -> Value {
    let scan = fixture
        .dynamodb
        .scan()
        .table_name(&fixture.users_table)
        .limit(2)
        .send()
        .await
        .expect("scan users");
    let ids: Vec<&str> = scan
        .items()
        .iter()
        .map(|item| item["id"].as_s().expect("string id").as_str())
        .collect();
    assert_eq!(ids.len(), 2, "the seeded table holds more than a page");
    let cursor = URL_SAFE_NO_PAD.encode(json!({"id": ids[1]}).to_string());
    json!({"users": [seeded_user(ids[0]), seeded_user(ids[1])], "next_cursor": cursor})
}

fn string_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item[name].as_s().expect("string attribute").clone()
}

/// Checks the 202 of `/async`, then that the Event invocation it enqueued ran
/// the task to `succeeded`, and that `GET /tasks/{id}` through the binary says so.
async fn assert_task_started_and_succeeded(
    api: &RuntimeApi,
    fixture: &Fixture,
    file: &str,
    source: Source,
    outcome: &Outcome,
    delay_ms: u64,
) {
    let (document, length) = http_document(outcome);
    let task_id = document["body"]["task_id"]
        .as_str()
        .expect("a task id")
        .to_owned();
    assert!(
        uuid::Uuid::try_parse(&task_id).is_ok_and(|id| id.hyphenated().to_string() == task_id),
        "{file}: task id {task_id:?} is a lowercase UUID"
    );
    let status_url = format!("/tasks/{task_id}");
    let mut headers = json_headers(length);
    headers.push(("location", status_url.clone()));
    assert_eq!(
        document,
        expected_document(
            source,
            202,
            &headers,
            json!({"message": "Task started", "task_id": task_id, "status_url": status_url}),
        ),
        "{file}"
    );

    let task_event = json!({"task_id": task_id, "delay_ms": delay_ms});
    let call = api
        .invoke_calls()
        .into_iter()
        .find(|call| {
            serde_json::from_slice::<Value>(&call.payload).ok() == Some(task_event.clone())
        })
        .unwrap_or_else(|| panic!("{file}: no Invoke carried {task_event}"));
    assert_eq!(call.function_name, FUNCTION_NAME, "{file}: invokes itself");
    assert_eq!(call.invocation_type, "Event", "{file}: asynchronously");

    let delivered = api.wait_for_events(TASK_PATIENCE).await;
    let delivery = delivered
        .iter()
        .find(|c| Some(&c.request_id) == call.request_id.as_ref())
        .unwrap_or_else(|| panic!("{file}: the task event was not delivered"));
    assert_eq!(
        delivery.outcome,
        Outcome::Response(
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
        ),
        "{file}: the task event's result"
    );

    let item = fixture.task_item(&task_id).await.expect("the task record");
    let status_event = events::http_api("GET", &status_url, None);
    let (document, length) = http_document(&api.invoke(status_event).await);
    assert_eq!(
        document,
        expected_document(
            Source::PayloadV2,
            200,
            &json_headers(length),
            json!({
                "task_id": task_id, "status": "succeeded",
                "created_at": string_attribute(&item, "created_at"),
                "updated_at": string_attribute(&item, "updated_at"),
                "attempts": 1, "error": null, "result": {"waited_ms": delay_ms},
            }),
        ),
        "{file}: GET {status_url} after the task ran"
    );
}

#[test]
fn every_event_file_has_an_expected_outcome_and_every_expectation_a_file() {
    let files: BTreeSet<String> = sample_events().into_iter().map(|(name, _)| name).collect();
    let uncovered: Vec<&String> = files.iter().filter(|f| expectation(f).is_none()).collect();
    assert!(
        uncovered.is_empty(),
        "events/ files with no entry in EXPECTATIONS: {uncovered:?}"
    );
    let stale: Vec<&str> = EXPECTATIONS
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| !files.contains(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "EXPECTATIONS for missing files: {stale:?}"
    );
}

#[tokio::test]
async fn every_sample_event_through_the_binary_gets_the_answer_its_source_expects() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    fixture.seed_users(SEEDED_USERS).await;
    let users_page = first_users_page(&fixture).await;
    let function = function_command(&api, &fixture).spawn();

    for (file, event) in sample_events() {
        let (source, expected) = expectation(&file)
            .unwrap_or_else(|| panic!("events/{file} has no entry in EXPECTATIONS"));
        let invocation = api.submit(event);
        let request_id = invocation.request_id.clone();
        let outcome = invocation.outcome().await;
        match expected {
            Expected::UsersPage => {
                let (document, length) = http_document(&outcome);
                assert_eq!(
                    document,
                    expected_document(source, 200, &json_headers(length), users_page.clone()),
                    "{file}"
                );
            }
            Expected::TaskStarted { delay_ms } => {
                assert_task_started_and_succeeded(
                    &api, &fixture, &file, source, &outcome, delay_ms,
                )
                .await;
            }
            Expected::Ok { body } => {
                let (document, length) = http_document(&outcome);
                let body: Value = serde_json::from_str(body).expect("JSON");
                assert_eq!(
                    document,
                    expected_document(source, 200, &json_headers(length), body),
                    "{file}"
                );
            }
            Expected::NotFound { message } => {
                let (document, length) = http_document(&outcome);
                let body = json!({"error": {"code": "not_found", "message": message, "request_id": request_id}});
                assert_eq!(
                    document,
                    expected_document(source, 404, &json_headers(length), body),
                    "{file}"
                );
            }
            Expected::FunctionError {
                error_type,
                message,
            } => {
                assert_eq!(
                    outcome,
                    Outcome::Error {
                        error_type: error_type.to_owned(),
                        message: message.to_owned(),
                    },
                    "{file}"
                );
            }
            Expected::Answer { document } => {
                let document: Value = serde_json::from_str(document).expect("JSON");
                assert_eq!(outcome, Outcome::Response(document), "{file}");
            }
        }
    }

    assert_eq!(
        fixture.task_item(SAMPLE_TASK_ID).await,
        None,
        "a task event for an unknown task creates no record"
    );
    assert!(api.init_errors().is_empty());
    drop(function);
}

#[tokio::test]
async fn the_sample_task_event_fails_as_unknown_task_until_its_task_is_recorded_then_succeeds_once()
{
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let _function = function_command(&api, &fixture).spawn();
    let event = read_event("task.json");

    assert_eq!(
        api.invoke(event.clone()).await,
        Outcome::Error {
            error_type: "UnknownTask".to_owned(),
            message: format!("no task {SAMPLE_TASK_ID} is recorded"),
        }
    );
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);

    // What `/async` writes before it enqueues the event.
    let now = "2025-11-26T08:15:31Z";
    let expires_at = support::now_millis() / 1000 + 7 * 24 * 60 * 60;
    fixture
        .put_items(
            &fixture.tasks_table,
            vec![HashMap::from([
                (
                    "task_id".to_owned(),
                    AttributeValue::S(SAMPLE_TASK_ID.to_owned()),
                ),
                ("status".to_owned(), AttributeValue::S("queued".to_owned())),
                ("created_at".to_owned(), AttributeValue::S(now.to_owned())),
                ("updated_at".to_owned(), AttributeValue::S(now.to_owned())),
                ("attempts".to_owned(), AttributeValue::N("0".to_owned())),
                ("enqueued".to_owned(), AttributeValue::Bool(true)),
                (
                    "expires_at".to_owned(),
                    AttributeValue::N(expires_at.to_string()),
                ),
            ])],
        )
        .await;

    assert_eq!(
        api.invoke(event.clone()).await,
        Outcome::Response(json!({
            "task_id": SAMPLE_TASK_ID, "status": "succeeded", "attempts": 1, "duplicate": false,
        }))
    );
    let item = fixture.task_item(SAMPLE_TASK_ID).await.expect("the record");
    assert_eq!(string_attribute(&item, "status"), "succeeded");
    assert_eq!(item["attempts"], AttributeValue::N("1".to_owned()));

    // Lambda may deliver the same event again: a succeeded task never reruns.
    assert_eq!(
        api.invoke(event).await,
        Outcome::Response(json!({
            "task_id": SAMPLE_TASK_ID, "status": "succeeded", "attempts": 1, "duplicate": true,
        }))
    );
    assert_eq!(
        fixture.task_item(SAMPLE_TASK_ID).await.expect("the record"),
        item
    );
}

#[tokio::test]
async fn an_event_that_is_neither_http_nor_a_task_is_an_unrecognized_event_error_and_writes_nothing()
 {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    fixture.seed_users(SEEDED_USERS).await;
    let _function = function_command(&api, &fixture).spawn();

    assert_eq!(
        api.invoke(r#"{"hello":"world"}"#).await,
        Outcome::Error {
            error_type: "UnrecognizedEvent".to_owned(),
            message: HELLO_WORLD_ERROR.to_owned(),
        }
    );
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);
    assert_eq!(fixture.count(&fixture.users_table).await, SEEDED_USERS);
    assert!(api.invoke_calls().is_empty(), "no self-invocation");
}

/// What the function says of an event that is valid JSON but no object, by
/// the kind of JSON it is.
fn not_an_object_error(kind: &str) -> String {
    let prefix = HELLO_WORLD_ERROR
        .split_once("SQS event: ")
        .expect("the message names what was expected")
        .0;
    format!("{prefix}SQS event: the event is {kind}, not a JSON object")
}

#[tokio::test]
async fn a_json_array_string_number_or_null_event_is_an_unrecognized_event_error_and_writes_nothing()
 {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let _function = function_command(&api, &fixture).spawn();
    // A queued task, as `/async` records it: an array that a serde struct would
    // read as its task event would run it.
    let now = "2025-11-26T08:15:31Z";
    let expires_at = support::now_millis() / 1000 + 7 * 24 * 60 * 60;
    fixture
        .put_items(
            &fixture.tasks_table,
            vec![HashMap::from([
                (
                    "task_id".to_owned(),
                    AttributeValue::S(SAMPLE_TASK_ID.to_owned()),
                ),
                ("status".to_owned(), AttributeValue::S("queued".to_owned())),
                ("created_at".to_owned(), AttributeValue::S(now.to_owned())),
                ("updated_at".to_owned(), AttributeValue::S(now.to_owned())),
                ("attempts".to_owned(), AttributeValue::N("0".to_owned())),
                ("enqueued".to_owned(), AttributeValue::Bool(true)),
                (
                    "expires_at".to_owned(),
                    AttributeValue::N(expires_at.to_string()),
                ),
            ])],
        )
        .await;
    let recorded = fixture.task_item(SAMPLE_TASK_ID).await.expect("the record");

    let task_object = json!({"task_id": SAMPLE_TASK_ID, "delay_ms": 1}).to_string();
    let cases = [
        // serde reads a struct from a JSON sequence: an empty SQS batch...
        ("[[]]".to_owned(), "a JSON array"),
        ("[]".to_owned(), "a JSON array"),
        // ...or the task event's fields in order.
        (format!("[{task_object}]"), "a JSON array"),
        (format!("[\"{SAMPLE_TASK_ID}\", 1]"), "a JSON array"),
        (" \n[[]]".to_owned(), "a JSON array"),
        ("\"x\"".to_owned(), "a JSON string"),
        ("1".to_owned(), "a JSON number"),
        ("-1.5".to_owned(), "a JSON number"),
        ("true".to_owned(), "a JSON boolean"),
        ("null".to_owned(), "null"),
    ];
    for (event, kind) in cases {
        assert_eq!(
            api.invoke(event.clone()).await,
            Outcome::Error {
                error_type: "UnrecognizedEvent".to_owned(),
                message: not_an_object_error(kind),
            },
            "{event}"
        );
        assert_eq!(
            fixture.task_item(SAMPLE_TASK_ID).await.as_ref(),
            Some(&recorded),
            "{event} changed the task record"
        );
        assert_eq!(fixture.count(&fixture.tasks_table).await, 1, "{event}");
    }
    assert!(api.invoke_calls().is_empty(), "no self-invocation");
    assert!(api.init_errors().is_empty());
}

#[tokio::test]
async fn a_missing_users_table_stops_init_with_a_nonzero_exit_that_names_it() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let output = function_command(&api, &fixture)
        .without_env("USERS_TABLE")
        .spawn()
        .wait_for_exit(Duration::from_secs(20))
        .await;

    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        output
            .stdout
            .iter()
            .chain(&output.stderr)
            .any(|line| line.contains("USERS_TABLE")),
        "the output names the variable: {output:?}"
    );
    // main returns before the runtime starts, so the binary never polls for an
    // event and reports nothing to /runtime/init/error (lambda_runtime posts
    // there only for SnapStart hooks); Lambda itself turns the exit into a
    // Runtime.ExitError and the stderr line into the function's log.
    assert_eq!(api.next_polls(), 0);
    assert_eq!(api.init_errors(), vec![]);
}

#[tokio::test]
async fn json_logs_carry_each_invocations_request_id_and_the_tasks_lines_its_task_id() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = function_command(&api, &fixture)
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .spawn();

    let start = api.submit(read_event("http-post-async.json"));
    let start_id = start.request_id.clone();
    let (started, _) = http_document(&start.outcome().await);
    let task_id = started["body"]["task_id"]
        .as_str()
        .expect("task id")
        .to_owned();
    let delivered = api.wait_for_events(TASK_PATIENCE).await;
    assert_eq!(delivered.len(), 1);
    let task_request_id = delivered[0].request_id.clone();
    assert_eq!(delivered[0].kind, InvocationKind::Event);
    let unknown = api.submit(read_event("http-get-unknown.json"));
    let unknown_id = unknown.request_id.clone();
    unknown.outcome().await;
    // All lines are in once the process has ended; init logs nothing at INFO.
    let output = function.stop().await;

    let order = [
        start_id.as_str(),
        task_request_id.as_str(),
        unknown_id.as_str(),
    ];
    let mut seen = Vec::new();
    for line in &output.stdout {
        let log: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        if log.get("_aws").is_some() {
            // A metrics document (tests/metrics.rs), not a log line.
            continue;
        }
        let invoke_span = &log["spans"][0];
        assert_eq!(invoke_span["name"], "Lambda runtime invoke", "{line}");
        let request_id = invoke_span["requestId"].as_str().expect("requestId");
        let position = order
            .iter()
            .position(|id| *id == request_id)
            .unwrap_or_else(|| panic!("line of no invocation of this test: {line}"));
        if seen.last() != Some(&position) {
            seen.push(position);
        }
        if request_id == task_request_id {
            assert_eq!(
                log["spans"][1],
                json!({"name": "task", "task_id": task_id}),
                "every line of the task's invocation carries its task id: {line}"
            );
        }
    }
    assert_eq!(
        seen,
        vec![0, 1, 2],
        "each invocation logs, its lines together, in delivery order: {:#?}",
        output.stdout
    );
    let completed: Vec<Value> = output
        .stdout
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| log["fields"]["message"] == "Task completed")
        .collect();
    assert_eq!(completed.len(), 1, "{:#?}", output.stdout);
    assert_eq!(completed[0]["level"], "INFO");
    assert_eq!(
        completed[0]["span"],
        json!({"name": "task", "task_id": task_id})
    );
    assert_eq!(completed[0]["spans"][0]["requestId"], task_request_id);
}

#[tokio::test]
async fn a_synchronous_invoke_returns_the_binarys_result_and_flags_its_function_error() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    fixture.seed_users(SEEDED_USERS).await;
    let users_page = first_users_page(&fixture).await;
    let _function = function_command(&api, &fixture).spawn();
    let lambda = aws_sdk_lambda::Client::from_conf(
        async_api::lambda_config(&support::sdk_config())
            .endpoint_url(api.url())
            .build(),
    );

    let answer = lambda
        .invoke()
        .function_name(FUNCTION_NAME)
        .payload(aws_sdk_lambda::primitives::Blob::new(read_event(
            "http-get-users.json",
        )))
        .send()
        .await
        .expect("invoke");
    assert_eq!(answer.status_code(), 200);
    assert_eq!(answer.function_error(), None);
    let document: Value =
        serde_json::from_slice(answer.payload().expect("payload").as_ref()).expect("JSON");
    let (document, length) = http_document(&Outcome::Response(document));
    assert_eq!(
        document,
        expected_document(Source::PayloadV2, 200, &json_headers(length), users_page)
    );

    let answer = lambda
        .invoke()
        .function_name(FUNCTION_NAME)
        .payload(aws_sdk_lambda::primitives::Blob::new(
            r#"{"hello":"world"}"#,
        ))
        .send()
        .await
        .expect("invoke");
    assert_eq!(answer.status_code(), 200);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let error: Value =
        serde_json::from_slice(answer.payload().expect("payload").as_ref()).expect("JSON");
    assert_eq!(
        error,
        json!({"errorType": "UnrecognizedEvent", "errorMessage": HELLO_WORLD_ERROR})
    );
    assert_eq!(
        api.completed().iter().map(|c| c.kind).collect::<Vec<_>>(),
        vec![InvocationKind::RequestResponse; 2]
    );
}
