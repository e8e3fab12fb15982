//! What Lambda sends to an on-failure destination (the invocation record), the
//! SQS message that carries it, the event an SQS event source mapping makes of
//! it, and how the mapping reads the function's partial batch response.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Account, Answer, Condition, epoch_millis, iso8601_millis, md5_hex};

/// The role id of the (emulated) execution role that sends the destination's
/// messages: an SQS `SenderId` is `<role id>:<session name>`.
const SENDER_ROLE_ID: &str = "AROAEXAMPLEEXECROLE01";

/// A JSON payload as JSON; anything else (Lambda accepts only JSON, but a
/// target may answer otherwise) as a string.
fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The invocation record Lambda sends to an on-failure destination. With no
/// attempt made (the event expired in the queue) it has no response parts.
pub fn invocation_record(
    account: &Account,
    function_name: &str,
    request_id: &str,
    condition: Condition,
    payload: &[u8],
    attempts: &[Answer],
    timestamp_ms: u128,
) -> Value {
    let mut record = json!({
        "version": "1.0",
        "timestamp": iso8601_millis(timestamp_ms),
        "requestContext": {
            "requestId": request_id,
            "functionArn": account.function_arn(function_name),
            "condition": condition.as_str(),
            "approximateInvokeCount": attempts.len(),
        },
        "requestPayload": json_or_text(payload),
    });
    if let Some(last) = attempts.last() {
        let (context, response) = match last {
            Answer::Response(body) => (
                json!({"statusCode": 200, "executedVersion": "$LATEST"}),
                json_or_text(body),
            ),
            Answer::Error {
                function_error,
                payload,
            } => (
                json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": function_error}),
                json_or_text(payload),
            ),
        };
        record["responseContext"] = context;
        record["responsePayload"] = response;
    }
    record
}

/// A message in the destination queue.
#[derive(Clone, Debug)]
pub struct QueueMessage {
    pub message_id: String,
    /// The record's JSON text.
    pub body: String,
    pub sent_timestamp_ms: u128,
    pub sender_id: String,
}

impl QueueMessage {
    /// `record`, sent now by `function_name`'s execution role.
    pub fn new(record: &Value, function_name: &str) -> Self {
        Self {
            message_id: uuid::Uuid::new_v4().to_string(),
            body: record.to_string(),
            sent_timestamp_ms: epoch_millis(),
            sender_id: format!("{SENDER_ROLE_ID}:{function_name}"),
        }
    }
}

/// A receipt handle: opaque, new for every receive.
pub(super) fn receipt_handle() -> String {
    let bytes: Vec<u8> = (0..6)
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect();
    STANDARD.encode(bytes)
}

/// The event an SQS event source mapping delivers for one message (a batch of
/// one), receive `receive_count` of it.
pub fn sqs_event(
    account: &Account,
    message: &QueueMessage,
    receive_count: u32,
    first_receive_ms: u128,
    receipt_handle: &str,
) -> Value {
    json!({"Records": [{
        "messageId": message.message_id,
        "receiptHandle": receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "SentTimestamp": message.sent_timestamp_ms.to_string(),
            "SenderId": message.sender_id,
            "ApproximateFirstReceiveTimestamp": first_receive_ms.to_string(),
        },
        "messageAttributes": {},
        "md5OfBody": md5_hex(message.body.as_bytes()),
        "eventSource": "aws:sqs",
        "eventSourceARN": account.queue_arn(),
        "awsRegion": account.region,
    }]})
}

/// Which of a batch's `message_ids` an event source mapping with
/// `ReportBatchItemFailures` retries, given the function's response (Lambda
/// Developer Guide, "Handling errors for an SQS event source"): no response,
/// `null`, `{}` or an empty or null `batchItemFailures` is a complete success;
/// the listed messages fail; an entry with no, a null, an empty or an unknown
/// `itemIdentifier`, or a response that is not such an object, fails the
/// whole batch.
///
/// ```
/// use local_lambda::async_invoke::failed_items;
///
/// let batch = ["m1", "m2"];
/// assert_eq!(failed_items(b"{}", &batch), Vec::<&str>::new());
/// assert_eq!(
///     failed_items(br#"{"batchItemFailures": [{"itemIdentifier": "m2"}]}"#, &batch),
///     ["m2"]
/// );
/// assert_eq!(failed_items(b"not json", &batch), ["m1", "m2"]);
/// ```
pub fn failed_items<'a>(response: &[u8], message_ids: &[&'a str]) -> Vec<&'a str> {
    let whole_batch = message_ids.to_vec();
    if response.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    let Ok(response) = serde_json::from_slice::<Value>(response) else {
        return whole_batch;
    };
    let failures = match &response {
        Value::Null => return Vec::new(),
        Value::Object(object) => match object.get("batchItemFailures") {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => return whole_batch,
        },
        _ => return whole_batch,
    };
    let mut failed = Vec::new();
    for item in failures {
        let identifier = item.get("itemIdentifier").and_then(Value::as_str);
        match message_ids.iter().find(|id| Some(**id) == identifier) {
            Some(id) if !failed.contains(id) => failed.push(*id),
            Some(_) => {}
            None => return whole_batch,
        }
    }
    failed
}
