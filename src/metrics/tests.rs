use serde_json::{Value, json};

use super::*;

fn parsed(document: String) -> Value {
    serde_json::from_str(&document).expect("a JSON document")
}

fn sink() -> Sink {
    Sink::new("AsyncApi", "async-api", true)
}

#[test]
fn a_document_declares_its_metrics_and_dimensions_and_holds_each_value_at_the_top() {
    let document = parsed(document(
        &sink(),
        1_700_000_000_123,
        &[count("Requests")],
        &[("Route", "/tasks/{task_id}"), ("StatusClass", "4xx")],
        &[],
    ));
    assert_eq!(
        document,
        json!({
            "_aws": {
                "Timestamp": 1_700_000_000_123_u64,
                "CloudWatchMetrics": [{
                    "Namespace": "AsyncApi",
                    "Dimensions": [["Service", "Route", "StatusClass"]],
                    "Metrics": [{"Name": "Requests", "Unit": "Count"}],
                }],
            },
            "Service": "async-api",
            "Route": "/tasks/{task_id}",
            "StatusClass": "4xx",
            "Requests": 1,
        })
    );
}

#[test]
fn several_metrics_share_one_document_and_properties_are_not_dimensions() {
    let document = parsed(document(
        &sink(),
        1,
        &[count("TasksSucceeded"), millis("TaskRunMs", 1003)],
        &[],
        &[("task_id", "t1")],
    ));
    assert_eq!(
        document["_aws"]["CloudWatchMetrics"][0]["Metrics"],
        json!([
            {"Name": "TasksSucceeded", "Unit": "Count"},
            {"Name": "TaskRunMs", "Unit": "Milliseconds"},
        ])
    );
    assert_eq!(
        document["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Service"]])
    );
    assert_eq!(document["TasksSucceeded"], 1);
    assert_eq!(document["TaskRunMs"], 1003);
    assert_eq!(document["task_id"], "t1");
}

#[test]
fn strings_from_outside_are_escaped_into_valid_json() {
    let sink = Sink::new("Shop/\"Orders\"", "back\\slash", true);
    let document = parsed(document(
        &sink,
        1,
        &[count("ColdStart")],
        &[],
        &[("task_id", "a\nb")],
    ));
    assert_eq!(
        document["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Shop/\"Orders\""
    );
    assert_eq!(document["Service"], "back\\slash");
    assert_eq!(document["task_id"], "a\nb");
}

#[test]
fn the_readable_form_names_each_value_and_label() {
    assert_eq!(
        summary(
            &[count("Requests")],
            &[("Route", "unmatched"), ("StatusClass", "4xx")],
            &[]
        ),
        "Requests=1 Route=unmatched StatusClass=4xx"
    );
}

#[test]
fn status_classes_are_the_hundreds() {
    for (status, class) in [(200, "2xx"), (202, "2xx"), (404, "4xx"), (503, "5xx")] {
        assert_eq!(status_class(StatusCode::from_u16(status).unwrap()), class);
    }
}
