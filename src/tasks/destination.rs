//! The on-failure destination: when Lambda gives up on a task event (its
//! retries exhausted, or its maximum age reached), it sends a record of it to
//! the failure queue, and the queue's event source mapping delivers those
//! records back to this function as an SQS event.
//!
//! Each record's task becomes `failed`, its `error` saying why, unless it has
//! ended already; a record of a task that no longer exists (expired) is
//! acknowledged and logged. A message that cannot be read, or whose task
//! could not be written, is reported back as a batch item failure
//! (`ReportBatchItemFailures`), so SQS delivers it again: never dropped
//! silently.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use super::TaskEvent;
use super::store::{TaskStore, Written};
use crate::state::AppState;

/// An SQS event: the only part the function reads of each message.
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    records: Vec<SqsMessage>,
}

#[derive(Debug, Deserialize)]
struct SqsMessage {
    #[serde(rename = "messageId")]
    message_id: String,
    #[serde(default)]
    body: String,
}

/// Lambda's invocation record of an event it gave up on (its documented
/// format; the fields this function uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationRecord {
    request_context: RequestContext,
    request_payload: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    /// `RetriesExhausted` or `EventAgeExceeded`.
    condition: String,
    #[serde(default)]
    approximate_invoke_count: u32,
}

/// The answer to an SQS event, as `ReportBatchItemFailures` reads it.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// A message SQS must deliver again.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl SqsEvent {
    /// Reads an SQS event; `None` if the payload is not one.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }
}

/// Whether a non-HTTP payload is an SQS event (a `Records` list) rather than
/// a task event.
pub fn is_sqs_event(payload: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "Records")]
        _records: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(payload).is_ok()
}

/// Marks the task of every record failed; reports the messages to deliver
/// again.
pub async fn consume(state: &AppState, event: SqsEvent) -> BatchResponse {
    let store = TaskStore::of(state);
    let mut response = BatchResponse::default();
    for message in event.records {
        let span = tracing::info_span!("failure_record", message_id = %message.message_id);
        if !consume_one(store, &message.body).instrument(span).await {
            response.batch_item_failures.push(BatchItemFailure {
                item_identifier: message.message_id,
            });
        }
    }
    response
}

/// Whether the message is done with (true), or must come again.
async fn consume_one(store: TaskStore<'_>, body: &str) -> bool {
    let (event, reason) = match read(body) {
        Ok(read) => read,
        Err(why) => {
            tracing::error!(why, "failure record unreadable: reported for redelivery");
            return false;
        }
    };
    let span = tracing::info_span!("task", task_id = %event.task_id);
    async {
        match store.give_up(&event.task_id, &reason).await {
            Ok(Written::Done(())) => {
                tracing::error!(reason, "task failed: Lambda gave up on its event");
                crate::metrics::task_failed(&event.task_id);
                true
            }
            Ok(Written::Refused) => {
                tracing::info!(
                    reason,
                    "failure record of a task that has ended or no longer exists: acknowledged"
                );
                true
            }
            Err(detail) => {
                tracing::warn!(
                    detail,
                    "failure record not applied: reported for redelivery"
                );
                false
            }
        }
    }
    .instrument(span)
    .await
}

/// The task event a record is about, and the `error` its task gets.
fn read(body: &str) -> Result<(TaskEvent, String), String> {
    let record: InvocationRecord =
        serde_json::from_str(body).map_err(|_| "not an invocation record".to_owned())?;
    let payload = serde_json::to_vec(&record.request_payload)
        .map_err(|_| "request payload not serializable".to_owned())?;
    let event = TaskEvent::parse(&payload)?;
    let context = record.request_context;
    let reason = match context.condition.as_str() {
        "RetriesExhausted" => format!(
            "RetriesExhausted: Lambda gave up on the task event after {} attempts",
            context.approximate_invoke_count
        ),
        "EventAgeExceeded" => {
            "EventAgeExceeded: the task event reached its maximum age before it could run"
                .to_owned()
        }
        other => format!("{other}: Lambda gave up on the task event"),
    };
    Ok((event, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";

    fn record(condition: &str, payload: Value) -> String {
        serde_json::json!({
            "version": "1.0",
            "timestamp": "2026-11-30T10:00:00.000Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-4d0c-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:api:$LATEST",
                "condition": condition,
                "approximateInvokeCount": 3
            },
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "TaskFailed", "errorMessage": "boom"}
        })
        .to_string()
    }

    #[test]
    fn a_record_names_its_task_and_says_why_lambda_gave_up() {
        let payload = serde_json::json!({"task_id": ID, "delay_ms": 10});
        let (event, reason) = read(&record("RetriesExhausted", payload.clone())).unwrap();
        assert_eq!(event.task_id, ID);
        assert_eq!(
            reason,
            "RetriesExhausted: Lambda gave up on the task event after 3 attempts"
        );
        let (_, reason) = read(&record("EventAgeExceeded", payload)).unwrap();
        assert_eq!(
            reason,
            "EventAgeExceeded: the task event reached its maximum age before it could run"
        );
    }

    #[test]
    fn a_record_of_anything_but_a_task_event_is_unreadable() {
        assert_eq!(read("{}").unwrap_err(), "not an invocation record");
        assert_eq!(read("not json").unwrap_err(), "not an invocation record");
        let other = record("RetriesExhausted", serde_json::json!({"hello": 1}));
        assert_eq!(
            read(&other).unwrap_err(),
            "not a task event (line 1, column 8)"
        );
    }

    #[test]
    fn only_a_records_list_is_an_sqs_event() {
        assert!(is_sqs_event(br#"{"Records": []}"#));
        assert!(is_sqs_event(br#"{"Records": [{"messageId": "m"}]}"#));
        assert!(!is_sqs_event(br#"{"task_id": "x", "delay_ms": 1}"#));
        assert!(!is_sqs_event(br#"{"Records": {}}"#));
        assert!(!is_sqs_event(b"[]"));
    }

    #[test]
    fn the_answer_is_the_batch_item_failures_document() {
        let response = BatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: "m1".to_owned(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"m1"}]}"#
        );
    }
}
