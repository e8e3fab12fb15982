//! What the function tells CloudWatch and X-Ray, through the real binary as
//! Lambda runs it (`support::runtime_api`): the embedded metric format (EMF)
//! documents it prints on stdout in Lambda whatever the log format (DEBUG
//! lines under `cargo lambda watch` instead), each checked whole, and the X-Ray trace header its `Invoke` carries, with the emulator
//! giving each invocation a trace id of its own as Lambda does.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_api::tasks::{TaskStatus, TaskStore};
use serde_json::{Map, Value, json};
use support::runtime_api::{FunctionCommand, FunctionProcess, Outcome, RuntimeApi};
use support::{FUNCTION_NAME, Fixture, events};

const TASK_PATIENCE: Duration = Duration::from_secs(20);
const NAMESPACE: &str = "AsyncApi";

/// The binary as Lambda runs it with the template's JSON log format.
fn json_logging(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    FunctionCommand::new(api, fixture).env("AWS_LAMBDA_LOG_FORMAT", "JSON")
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        .try_into()
        .expect("milliseconds fit u64")
}

/// Every EMF document among `lines`, in order, each checked against the EMF
/// specification's shape and with `_aws.Timestamp` taken out once it is
/// checked to be epoch milliseconds within `since_ms` and now.
fn emf_documents(lines: &[String], since_ms: u64) -> Vec<Value> {
    let now_ms = epoch_millis();
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("_aws").is_some())
        .map(|mut document| {
            let aws = document["_aws"].as_object_mut().expect("_aws is an object");
            let timestamp = aws
                .remove("Timestamp")
                .and_then(|t| t.as_u64())
                .unwrap_or_else(|| panic!("_aws.Timestamp is epoch milliseconds: {aws:?}"));
            assert!(
                (since_ms..=now_ms).contains(&timestamp),
                "_aws.Timestamp {timestamp} is not within the test ({since_ms}..={now_ms})"
            );
            assert_valid_emf(&document);
            document
        })
        .collect()
}

/// What the EMF specification asks of a document, whatever its metrics: every
/// dimension and metric it declares is a top-level member, a dimension's a
/// string, a metric's a number.
fn assert_valid_emf(document: &Value) {
    let directives = document["_aws"]["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics is an array");
    assert!(!directives.is_empty(), "{document}");
    for directive in directives {
        assert!(directive["Namespace"].is_string(), "{document}");
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            for name in set.as_array().expect("a dimension set") {
                let name = name.as_str().expect("a dimension name");
                assert!(document[name].is_string(), "dimension {name}: {document}");
            }
        }
        for metric in directive["Metrics"].as_array().expect("Metrics") {
            let name = metric["Name"].as_str().expect("a metric name");
            assert!(document[name].is_number(), "metric {name}: {document}");
        }
    }
}

/// The document the function emits: `metrics` (name, unit, value) under the
/// dimensions `Service` and `dimensions`, with `properties` alongside.
fn expected(
    dimensions: &[(&str, &str)],
    metrics: &[(&str, &str, Value)],
    properties: &[(&str, &str)],
) -> Value {
    let mut names = vec!["Service"];
    names.extend(dimensions.iter().map(|(name, _)| *name));
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut document = Map::new();
    document.insert(
        "_aws".to_owned(),
        json!({"CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [names],
            "Metrics": definitions,
        }]}),
    );
    document.insert("Service".to_owned(), json!(FUNCTION_NAME));
    for (name, value) in dimensions.iter().chain(properties) {
        document.insert((*name).to_owned(), json!(value));
    }
    for (name, _, value) in metrics {
        document.insert((*name).to_owned(), value.clone());
    }
    Value::Object(document)
}

fn cold_start() -> Value {
    expected(&[], &[("ColdStart", "Count", json!(1))], &[])
}

fn requests(route: &str, status_class: &str) -> Value {
    expected(
        &[("Route", route), ("StatusClass", status_class)],
        &[("Requests", "Count", json!(1))],
        &[],
    )
}

fn task_count(metric: &str, task_id: &str) -> Value {
    expected(&[], &[(metric, "Count", json!(1))], &[("task_id", task_id)])
}

/// Takes a timing's value out of `document` (the test cannot know it) after
/// checking it is whole milliseconds within `bounds`; "ms" stands in for it.
fn take_millis(document: &mut Value, name: &str, bounds: std::ops::RangeInclusive<u64>) {
    let value = document[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} is whole milliseconds: {document}"));
    assert!(
        bounds.contains(&value),
        "{name} = {value}, not in {bounds:?}"
    );
    document[name] = json!("ms");
}

fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Response(document) => document["statusCode"]
            .as_u64()
            .and_then(|status| status.try_into().ok())
            .unwrap_or_else(|| panic!("no statusCode in {document}")),
        Outcome::Error { .. } => panic!("expected an HTTP answer, got {outcome:?}"),
    }
}

fn body_of(outcome: &Outcome) -> Value {
    let Outcome::Response(document) = outcome else {
        panic!("expected an HTTP answer, got {outcome:?}");
    };
    serde_json::from_str(document["body"].as_str().expect("a text body")).expect("a JSON body")
}

/// A task recorded and enqueued as `/async` leaves it, for a test to deliver
/// its event itself.
async fn queue_task(store: &TaskStore<'_>, task_id: &str) {
    store
        .put_enqueued(task_id)
        .await
        .expect("a queued, enqueued task record");
}

async fn stop_and_read(process: FunctionProcess, since_ms: u64) -> Vec<Value> {
    let output = process.stop().await;
    emf_documents(&output.stdout, since_ms)
}

#[tokio::test]
async fn a_tasks_life_is_counted_and_timed_in_emf_documents() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();

    // A task that succeeds, enqueued by POST /async and run by its event.
    let started = api
        .invoke(events::http_api(
            "POST",
            "/async",
            Some(r#"{"delay_ms": 200}"#),
        ))
        .await;
    assert_eq!(status_of(&started), 202);
    let succeeding = body_of(&started)["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    let delivered = api.wait_for_events(TASK_PATIENCE).await;
    assert_eq!(delivered.len(), 1);
    assert!(matches!(delivered[0].outcome, Outcome::Response(_)));

    // Lambda delivers the same event again: a duplicate, left alone.
    let again = api.invoke(events::task(&succeeding, 200)).await;
    let Outcome::Response(again) = again else {
        panic!("a duplicate delivery succeeds: {again:?}");
    };
    assert_eq!(again["duplicate"], true);

    // A task whose work fails its first attempt.
    let failing = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &failing).await;
    let failed = api
        .invoke(json!({"task_id": failing, "delay_ms": 0, "fail_attempts": 1}).to_string())
        .await;
    assert!(
        matches!(&failed, Outcome::Error { error_type, .. } if error_type == "TaskFailed"),
        "{failed:?}"
    );
    let elapsed_ms = epoch_millis() - since_ms;

    let mut documents = stop_and_read(process, since_ms).await;
    assert_eq!(documents.len(), 8, "{documents:#?}");
    take_millis(&mut documents[3], "TaskQueuedMs", 0..=elapsed_ms);
    take_millis(&mut documents[4], "TaskRunMs", 200..=elapsed_ms);
    take_millis(&mut documents[6], "TaskQueuedMs", 0..=elapsed_ms);
    take_millis(&mut documents[7], "TaskRunMs", 0..=elapsed_ms);
    assert_eq!(
        documents,
        vec![
            cold_start(),
            task_count("TasksEnqueued", &succeeding),
            requests("/async", "2xx"),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &succeeding)]
            ),
            expected(
                &[],
                &[
                    ("TasksSucceeded", "Count", json!(1)),
                    ("TaskRunMs", "Milliseconds", json!("ms"))
                ],
                &[("task_id", &succeeding)]
            ),
            task_count("TaskDuplicateDeliveries", &succeeding),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &failing)]
            ),
            // Attempt 1 failed with a retry to come: the task is not failed.
            expected(
                &[],
                &[
                    ("TaskAttemptsFailed", "Count", json!(1)),
                    ("TaskRunMs", "Milliseconds", json!("ms"))
                ],
                &[("task_id", &failing)]
            ),
        ]
    );
}

#[tokio::test]
async fn a_retried_attempt_counts_its_run_but_not_a_second_queue_wait() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let task_id = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &task_id).await;

    // Lambda's retry of a failed event: the second attempt succeeds.
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 1}).to_string();
    assert!(matches!(
        api.invoke(event.clone()).await,
        Outcome::Error { .. }
    ));
    assert!(matches!(api.invoke(event).await, Outcome::Response(_)));

    let mut documents = stop_and_read(process, since_ms).await;
    assert_eq!(
        metric_names(&documents),
        vec![
            vec!["ColdStart"],
            vec!["TaskQueuedMs"],
            vec!["TaskAttemptsFailed", "TaskRunMs"],
            vec!["TasksSucceeded", "TaskRunMs"],
        ]
    );
    take_millis(
        &mut documents[3],
        "TaskRunMs",
        0..=epoch_millis() - since_ms,
    );
    assert_eq!(
        documents[3],
        expected(
            &[],
            &[
                ("TasksSucceeded", "Count", json!(1)),
                ("TaskRunMs", "Milliseconds", json!("ms"))
            ],
            &[("task_id", &task_id)]
        )
    );
}

/// The names of the metrics of each document, in order.
fn metric_names(documents: &[Value]) -> Vec<Vec<&str>> {
    documents
        .iter()
        .map(|document| {
            document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .expect("Metrics")
                .iter()
                .map(|metric| metric["Name"].as_str().expect("Name"))
                .collect()
        })
        .collect()
}

/// A failed attempt's document: `TaskAttemptsFailed`, with `TasksFailed` when
/// the task failed for good, and the run's time ("ms").
fn attempt_failed(task_id: &str, for_good: bool) -> Value {
    let mut metrics = vec![("TaskAttemptsFailed", "Count", json!(1))];
    if for_good {
        metrics.push(("TasksFailed", "Count", json!(1)));
    }
    metrics.push(("TaskRunMs", "Milliseconds", json!("ms")));
    expected(&[], &metrics, &[("task_id", task_id)])
}

#[tokio::test]
async fn every_failed_attempt_counts_task_attempts_failed_and_only_the_last_tasks_failed() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let task_id = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &task_id).await;

    // Lambda's three attempts all fail; then a duplicate of the event comes.
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 3}).to_string();
    for attempt in 1..=3 {
        let outcome = api.invoke(event.clone()).await;
        assert!(
            matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "TaskFailed"),
            "attempt {attempt}: {outcome:?}"
        );
    }
    let duplicate = api.invoke(event).await;
    assert!(matches!(duplicate, Outcome::Response(_)), "{duplicate:?}");

    let mut documents = stop_and_read(process, since_ms).await;
    let elapsed_ms = epoch_millis() - since_ms;
    assert_eq!(documents.len(), 6, "{documents:#?}");
    take_millis(&mut documents[1], "TaskQueuedMs", 0..=elapsed_ms);
    for document in &mut documents[2..5] {
        take_millis(document, "TaskRunMs", 0..=elapsed_ms);
    }
    assert_eq!(
        documents,
        vec![
            cold_start(),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &task_id)]
            ),
            attempt_failed(&task_id, false),
            attempt_failed(&task_id, false),
            attempt_failed(&task_id, true),
            task_count("TaskDuplicateDeliveries", &task_id),
        ]
    );
}

#[tokio::test]
async fn work_that_fails_for_good_counts_tasks_failed_and_task_attempts_failed_once_each() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let task_id = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &task_id).await;

    let outcome = api
        .invoke(json!({"task_id": task_id, "delay_ms": 0, "fail_for_good": true}).to_string())
        .await;
    let Outcome::Response(outcome) = outcome else {
        panic!("work that fails for good is no function error: {outcome:?}");
    };
    assert_eq!(outcome["status"], "failed");

    let mut documents = stop_and_read(process, since_ms).await;
    let elapsed_ms = epoch_millis() - since_ms;
    assert_eq!(
        metric_names(&documents),
        vec![
            vec!["ColdStart"],
            vec!["TaskQueuedMs"],
            vec!["TaskAttemptsFailed", "TasksFailed", "TaskRunMs"],
        ]
    );
    take_millis(&mut documents[2], "TaskRunMs", 0..=elapsed_ms);
    assert_eq!(documents[2], attempt_failed(&task_id, true));
}

/// The failure queue's SQS event for Lambda's record of `event`, given up
/// on after three failed attempts.
fn failure_record_event(event: &str) -> String {
    use support::runtime_api::async_invoke::{
        self, Account, Answer, Condition, QueueMessage, invocation_record, sqs_event,
    };
    let attempts: Vec<Answer> = (1..=3)
        .map(|_| Answer::unhandled("TaskFailed", "the task failed"))
        .collect();
    let account = Account::default();
    let now = async_invoke::epoch_millis();
    let record = invocation_record(
        &account,
        FUNCTION_NAME,
        &uuid::Uuid::new_v4().to_string(),
        Condition::RetriesExhausted,
        event.as_bytes(),
        &attempts,
        now,
    );
    let message = QueueMessage::new(&record, FUNCTION_NAME);
    sqs_event(&account, &message, 1, now, "receipt-handle").to_string()
}

#[tokio::test]
async fn a_failure_record_that_fails_its_task_counts_tasks_failed_and_one_of_an_ended_task_nothing()
{
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    // One task still queued (its event never ran), one that has ended.
    let given_up = uuid::Uuid::new_v4().to_string();
    queue_task(&store, &given_up).await;
    let ended = uuid::Uuid::new_v4().to_string();
    queue_task(&store, &ended).await;
    store
        .cancel(&ended, 0, &async_api::caller::Caller::Anonymous)
        .await
        .expect("cancel the ended task");

    for task_id in [&given_up, &ended] {
        let answer = api
            .invoke(failure_record_event(&events::task(task_id, 0)))
            .await;
        assert_eq!(
            answer,
            Outcome::Response(json!({"batchItemFailures": []})),
            "{task_id}"
        );
    }
    let failed = store
        .read(&given_up)
        .await
        .expect("read")
        .expect("the record");
    assert_eq!(failed.record.status, TaskStatus::Failed);

    // The task became failed, for good: counted once; the ended one not at all.
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), task_count("TasksFailed", &given_up)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_is_counted_and_the_stopped_attempt_counts_only_its_run() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    // Two invocations at once: the task's, and the DELETE while it runs.
    let process = json_logging(&api, &fixture)
        .env("AWS_LAMBDA_MAX_CONCURRENCY", "2")
        .spawn();
    let dynamodb = support::dynamodb_client(support::dynamodb_endpoint());
    let store = TaskStore {
        dynamodb: &dynamodb,
        table: &fixture.tasks_table,
    };
    let task_id = uuid::Uuid::new_v4().to_string();
    queue_task(&store, &task_id).await;
    let running = api.submit(events::task(&task_id, 60_000));
    // Started: claimed, and its start write landed (the claim alone counts
    // nothing, and a cancel before the start leaves no attempt to time).
    while store
        .read(&task_id)
        .await
        .expect("read the task")
        .is_none_or(|stored| {
            stored.record.status != TaskStatus::Running || stored.record.attempts == 0
        })
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let canceled = api
        .invoke(events::http_api(
            "DELETE",
            &format!("/tasks/{task_id}"),
            None,
        ))
        .await;
    assert_eq!(status_of(&canceled), 200);
    let stopped = running.outcome().await;
    assert!(matches!(stopped, Outcome::Response(_)), "{stopped:?}");

    let mut documents = stop_and_read(process, since_ms).await;
    let elapsed_ms = epoch_millis() - since_ms;
    assert_eq!(documents.len(), 5, "{documents:#?}");
    // The stopped attempt's document comes when it notices the cancel; the
    // others come in order, each invocation's own in sequence.
    let run_at = documents
        .iter()
        .position(|document| document.get("TaskRunMs").is_some())
        .unwrap_or_else(|| panic!("no TaskRunMs: {documents:#?}"));
    let mut run = documents.remove(run_at);
    take_millis(&mut run, "TaskRunMs", 0..=elapsed_ms);
    // Neither TasksSucceeded nor TasksFailed: the record says canceled.
    assert_eq!(
        run,
        expected(
            &[],
            &[("TaskRunMs", "Milliseconds", json!("ms"))],
            &[("task_id", &task_id)]
        )
    );
    take_millis(&mut documents[1], "TaskQueuedMs", 0..=elapsed_ms);
    assert_eq!(
        documents,
        vec![
            cold_start(),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &task_id)]
            ),
            task_count("TasksCanceled", &task_id),
            requests("/tasks/{task_id}", "2xx"),
        ]
    );
}

#[tokio::test]
async fn cold_start_is_counted_once_per_process_on_its_first_invocation() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    fixture.seed_users(2).await;

    for concurrency in ["1", "4"] {
        let process = json_logging(&api, &fixture)
            .env("AWS_LAMBDA_MAX_CONCURRENCY", concurrency)
            .spawn();
        // Four invocations queued at once: with 4 per process they run together.
        let submitted: Vec<_> = (0..4)
            .map(|_| api.submit(events::http_api("GET", "/users", None)))
            .collect();
        for invocation in submitted {
            assert_eq!(status_of(&invocation.outcome().await), 200);
        }
        let documents = stop_and_read(process, since_ms).await;
        assert_eq!(
            documents[0],
            cold_start(),
            "the first document (AWS_LAMBDA_MAX_CONCURRENCY={concurrency})"
        );
        assert_eq!(
            documents[1..],
            vec![requests("/users", "2xx"); 4],
            "AWS_LAMBDA_MAX_CONCURRENCY={concurrency}"
        );
    }
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_class_never_by_raw_path() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    fixture.seed_users(2).await;
    let process = json_logging(&api, &fixture).spawn();
    let unknown_task = uuid::Uuid::new_v4().to_string();
    let answers = [
        (events::http_api("GET", "/users", None), 200),
        (events::http_api("GET", "/users?limit=0", None), 400),
        (events::rest_api("Prod", "GET", "/users", None), 200),
        (events::alb("GET", "/users", None), 200),
        (events::http_api("DELETE", "/users", None), 405),
        (
            events::function_url("GET", &format!("/tasks/{unknown_task}"), None),
            404,
        ),
        (events::http_api("GET", "/tasks/not-a-task-id", None), 400),
        (events::http_api("GET", "/openapi.json", None), 200),
        (events::http_api("GET", "/secret-path/123", None), 404),
        (events::http_api("POST", "/nope", Some("{}")), 404),
    ];
    for (event, status) in &answers {
        assert_eq!(status_of(&api.invoke(event.clone()).await), *status);
    }
    let documents = stop_and_read(process, since_ms).await;
    assert_eq!(
        documents,
        vec![
            cold_start(),
            requests("/users", "2xx"),
            requests("/users", "4xx"),
            requests("/users", "2xx"),
            requests("/users", "2xx"),
            requests("/users", "4xx"),
            requests("/tasks/{task_id}", "4xx"),
            requests("/tasks/{task_id}", "4xx"),
            requests("/openapi.json", "2xx"),
            requests("unmatched", "4xx"),
            requests("unmatched", "4xx"),
        ]
    );

    // DynamoDB unreachable: a 503, counted as a 5xx of its route.
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let process = json_logging(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &support::dead_endpoint())
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/users", None)).await;
    assert_eq!(status_of(&outcome), 503);
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), requests("/users", "5xx")]
    );
}

#[tokio::test]
async fn the_namespace_is_metrics_namespace_when_set() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture)
        .env("METRICS_NAMESPACE", "Shop/Orders")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    let documents = stop_and_read(process, since_ms).await;
    let namespaces: Vec<&Value> = documents
        .iter()
        .map(|document| &document["_aws"]["CloudWatchMetrics"][0]["Namespace"])
        .collect();
    assert_eq!(namespaces, vec!["Shop/Orders", "Shop/Orders"]);
}

#[tokio::test]
async fn a_namespace_cloudwatch_would_refuse_stops_init_and_says_why() {
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let output = json_logging(&api, &fixture)
        .env("METRICS_NAMESPACE", "AWS/Lambda")
        .spawn()
        .wait_for_exit(Duration::from_secs(20))
        .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        output
            .stdout
            .iter()
            .any(|line| line.contains("METRICS_NAMESPACE") && line.contains("AWS/")),
        "{output:?}"
    );
    assert_eq!(api.next_polls(), 0);
}

#[tokio::test]
async fn with_text_logs_in_lambda_the_emf_documents_are_still_printed() {
    // A deployer who sets `LogFormat: Text` keeps the metrics and the alarms.
    let since_ms = epoch_millis();
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    let process = FunctionCommand::new(&api, &fixture)
        .env("AWS_LAMBDA_LOG_FORMAT", "Text")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), requests("unmatched", "4xx")]
    );

    // And with no log format at all (Text is Lambda's default).
    let since_ms = epoch_millis();
    let process = FunctionCommand::new(&api, &fixture)
        .without_env("AWS_LAMBDA_LOG_FORMAT")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), requests("unmatched", "4xx")]
    );
}

/// The binary as `cargo lambda watch` runs it: the Runtime API's variables,
/// no log group, no log format.
fn under_watch(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    FunctionCommand::new(api, fixture)
        .without_env("AWS_LAMBDA_LOG_GROUP_NAME")
        .without_env("AWS_LAMBDA_LOG_STREAM_NAME")
        .without_env("AWS_LAMBDA_INITIALIZATION_TYPE")
        .without_env("AWS_LAMBDA_LOG_FORMAT")
}

#[tokio::test]
async fn under_cargo_lambda_watch_the_metrics_are_readable_debug_lines_not_json() {
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;

    // At the default level (INFO), nothing of the metrics shows.
    let process = under_watch(&api, &fixture).spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    let output = process.stop().await;
    assert!(
        !output.stdout.iter().any(|line| line.contains("_aws")
            || line.contains("Requests")
            || line.contains("ColdStart")),
        "{:#?}",
        output.stdout
    );

    // At DEBUG, one line per document, in words.
    let process = under_watch(&api, &fixture)
        .env("AWS_LAMBDA_LOG_LEVEL", "debug")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    let output = process.stop().await;
    let metrics: Vec<&str> = output
        .stdout
        .iter()
        .filter_map(|line| line.split_once(" metrics ").map(|(_, metrics)| metrics))
        .collect();
    assert_eq!(
        metrics,
        vec!["ColdStart=1", "Requests=1 Route=unmatched StatusClass=4xx"],
        "{:#?}",
        output.stdout
    );
    assert!(!output.stdout.iter().any(|line| line.contains("_aws")));
}

/// The `Root` field of an X-Ray trace header.
fn root_of(header: &str) -> &str {
    header
        .split(';')
        .find_map(|field| field.strip_prefix("Root="))
        .unwrap_or_else(|| panic!("no Root in {header:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invoke_carries_the_trace_root_of_the_invocation_that_made_it() {
    let api = RuntimeApi::start().await;
    let fixture = Fixture::new(&api.url()).await;
    // A process-wide trace id left over from another invocation: what the
    // SDK's recursion detection would send if the function passed none.
    let stale = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";

    for concurrency in ["1", "4"] {
        let process = FunctionCommand::new(&api, &fixture)
            .env("AWS_LAMBDA_MAX_CONCURRENCY", concurrency)
            .env("_X_AMZN_TRACE_ID", stale)
            .spawn();
        let submitted: Vec<_> = (0..4)
            .map(|_| {
                api.submit(events::http_api(
                    "POST",
                    "/async",
                    Some(r#"{"delay_ms": 0}"#),
                ))
            })
            .collect();
        // task id -> the trace id of the request that started it.
        let mut started = HashMap::new();
        for invocation in submitted {
            let trace_id = invocation.trace_id.clone();
            let outcome = invocation.outcome().await;
            assert_eq!(status_of(&outcome), 202);
            let task_id = body_of(&outcome)["task_id"]
                .as_str()
                .expect("task_id")
                .to_owned();
            started.insert(task_id, trace_id);
        }
        let delivered = api.wait_for_events(TASK_PATIENCE).await;
        process.stop().await;

        let calls: Vec<_> = api
            .invoke_calls()
            .into_iter()
            .filter(|call| {
                let payload: Value = serde_json::from_slice(&call.payload).expect("JSON payload");
                started.contains_key(payload["task_id"].as_str().expect("task_id"))
            })
            .collect();
        assert_eq!(calls.len(), 4, "concurrency {concurrency}");
        for call in calls {
            let payload: Value = serde_json::from_slice(&call.payload).expect("JSON payload");
            let task_id = payload["task_id"].as_str().expect("task_id");
            let header = call
                .trace_header
                .as_deref()
                .unwrap_or_else(|| panic!("the Invoke of {task_id} has no X-Amzn-Trace-Id"));
            assert_eq!(
                root_of(header),
                root_of(&started[task_id]),
                "the Invoke of task {task_id} (AWS_LAMBDA_MAX_CONCURRENCY={concurrency})"
            );
            // And so, as in Lambda, the task's own invocation is in that trace.
            let task_invocation = delivered
                .iter()
                .find(|completed| Some(&completed.request_id) == call.request_id.as_ref())
                .expect("the task's invocation");
            assert_eq!(
                root_of(&task_invocation.trace_id),
                root_of(&started[task_id])
            );
        }
    }
}
