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
use support::runtime_api::{
    FunctionCommand, FunctionProcess, Outcome, RuntimeApi, function_command, test_function,
};
use support::{FUNCTION_NAME, Fixture, events};

#[path = "metrics/requests.rs"]
mod requests;
#[path = "metrics/tasks.rs"]
mod tasks;

const TASK_PATIENCE: Duration = Duration::from_secs(20);
const NAMESPACE: &str = "AsyncApi";

/// The binary as Lambda runs it with the template's JSON log format.
fn json_logging(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    function_command(api, fixture).env("AWS_LAMBDA_LOG_FORMAT", "JSON")
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
