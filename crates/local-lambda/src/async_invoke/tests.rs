//! The asynchronous invocation's unit tests: the records' and events' forms,
//! the policy's scaling, and the invoker's attempts against a scripted target.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::*;

fn account() -> Account {
    Account {
        region: "us-east-1".to_owned(),
        account_id: "123456789012".to_owned(),
        queue_name: "task-failures".to_owned(),
    }
}

fn failure(message: &str) -> Answer {
    Answer::unhandled("TaskFailed", message)
}

#[test]
fn the_invocation_record_of_exhausted_retries_has_the_form_aws_documents() {
    let payload = br#"{"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 0}"#;
    let attempts = vec![failure("first"), failure("second"), failure("third")];
    let record = invocation_record(
        &account(),
        "async-api",
        "e4b46cbf-b738-4f4b-8880-a18cdf61200e",
        Condition::RetriesExhausted,
        payload,
        &attempts,
        1_573_755_365_568,
    );
    assert_eq!(
        record,
        json!({
            "version": "1.0",
            "timestamp": "2019-11-14T18:16:05.568Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-4f4b-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:async-api:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": {"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 0},
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled"
            },
            "responsePayload": {"errorType": "TaskFailed", "errorMessage": "third"}
        })
    );
}

#[test]
fn an_event_that_expired_before_any_attempt_has_no_response_in_its_record() {
    let record = invocation_record(
        &account(),
        "async-api",
        "id",
        Condition::EventAgeExceeded,
        b"{}",
        &[],
        0,
    );
    assert_eq!(
        record,
        json!({
            "version": "1.0",
            "timestamp": "1970-01-01T00:00:00.000Z",
            "requestContext": {
                "requestId": "id",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:async-api:$LATEST",
                "condition": "EventAgeExceeded",
                "approximateInvokeCount": 0
            },
            "requestPayload": {}
        })
    );
}

#[test]
fn the_sqs_event_carries_the_record_as_its_body_with_the_attributes_sqs_sets() {
    let message = QueueMessage {
        message_id: "059f36b4-87a3-44ab-83d2-661975830a7d".to_owned(),
        body: "test".to_owned(),
        sent_timestamp_ms: 1_545_082_649_183,
        sender_id: "AROAEXAMPLEEXECROLE01:async-api".to_owned(),
    };
    let event = sqs_event(
        &account(),
        &message,
        2,
        1_545_082_649_185,
        "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
    );
    assert_eq!(
        event,
        json!({"Records": [{
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
            "body": "test",
            "attributes": {
                "ApproximateReceiveCount": "2",
                "SentTimestamp": "1545082649183",
                "SenderId": "AROAEXAMPLEEXECROLE01:async-api",
                "ApproximateFirstReceiveTimestamp": "1545082649185"
            },
            "messageAttributes": {},
            // AWS's sample SQS event: the MD5 of "test".
            "md5OfBody": "098f6bcd4621d373cade4e832627b4f6",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:task-failures",
            "awsRegion": "us-east-1"
        }]})
    );
}

#[test]
fn md5_matches_the_rfc_1321_test_suite() {
    for (input, digest) in [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ] {
        assert_eq!(md5_hex(input.as_bytes()), digest, "{input:?}");
    }
}

#[test]
fn timestamps_are_utc_with_milliseconds() {
    assert_eq!(iso8601_millis(951_782_400_007), "2000-02-29T00:00:00.007Z");
    assert_eq!(
        iso8601_millis(4_102_444_799_999),
        "2099-12-31T23:59:59.999Z"
    );
}

#[test]
fn a_partial_batch_response_fails_what_aws_says_it_fails() {
    let ids = ["m1", "m2"];
    let failed = |body: &str| failed_items(body.as_bytes(), &ids);
    // Complete successes.
    for body in [
        "",
        "null",
        "{}",
        r#"{"batchItemFailures": []}"#,
        r#"{"batchItemFailures": null}"#,
    ] {
        assert_eq!(failed(body), Vec::<&str>::new(), "{body:?}");
    }
    assert_eq!(
        failed(r#"{"batchItemFailures": [{"itemIdentifier": "m2"}]}"#),
        vec!["m2"]
    );
    // Complete failures.
    for body in [
        "not json",
        r#""ok""#,
        r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
        r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
        r#"{"batchItemFailures": [{"itemId": "m1"}]}"#,
        r#"{"batchItemFailures": [{"itemIdentifier": "m3"}]}"#,
    ] {
        assert_eq!(failed(body), vec!["m1", "m2"], "{body:?}");
    }
}

#[test]
fn lambdas_delays_scale_with_the_function_timeout() {
    let lambda = Policy::scaled(Duration::from_secs(90));
    assert_eq!(
        lambda.retry_delays,
        [Duration::from_secs(60), Duration::from_secs(120)]
    );
    assert_eq!(lambda.max_event_age, Duration::from_secs(3600));
    let test = Policy::scaled(Duration::from_secs(3));
    assert_eq!(
        test.retry_delays,
        [Duration::from_secs(2), Duration::from_secs(4)]
    );
    assert_eq!(test.max_event_age, Duration::from_secs(120));
    assert_eq!(test.visibility_timeout, Duration::from_secs(18));
}

/// A target that answers from a script and records what it was given.
struct Scripted {
    answers: Mutex<Vec<Answer>>,
    seen: Mutex<Vec<(String, Delivery, Vec<u8>)>>,
}

impl Target for Scripted {
    fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
        self.seen.lock().unwrap().push((
            invocation.request_id.to_owned(),
            invocation.delivery,
            invocation.payload.to_vec(),
        ));
        let answer = self.answers.lock().unwrap().remove(0);
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn a_failing_event_is_tried_three_times_with_one_request_id_then_reaches_the_function_through_sqs()
 {
    let target = Arc::new(Scripted {
        answers: Mutex::new(vec![
            failure("1"),
            failure("2"),
            failure("3"),
            Answer::unhandled("UnrecognizedEvent", "not yet"),
            Answer::Response(br#"{"batchItemFailures": []}"#.to_vec()),
        ]),
        seen: Mutex::new(Vec::new()),
    });
    let invoker = AsyncInvoker::new(
        Policy::scaled(Duration::from_millis(90)),
        account(),
        target.clone(),
        |_| {},
    );
    let (request_id, job) = invoker.submit("async-api", br#"{"task": 1}"#.to_vec());
    let report = job.await.expect("the job ends");

    let seen = target.seen.lock().unwrap().clone();
    let deliveries: Vec<Delivery> = seen.iter().map(|s| s.1).collect();
    assert_eq!(
        deliveries,
        [
            Delivery::Event { attempt: 1 },
            Delivery::Event { attempt: 2 },
            Delivery::Event { attempt: 3 },
            Delivery::Sqs { receive: 1 },
            Delivery::Sqs { receive: 2 },
        ]
    );
    assert!(
        seen[..3]
            .iter()
            .all(|s| s.0 == request_id && s.2 == br#"{"task": 1}"#)
    );
    assert_eq!(report.attempts.len(), 3);
    let Some(EventEnd::Destination(destination)) = report.end else {
        panic!("expected the destination: {report:?}");
    };
    assert_eq!(destination.condition, Condition::RetriesExhausted);
    assert_eq!(destination.state, MessageState::Deleted);
    assert_eq!(destination.receives.len(), 2);
    for (receive, (count, delivered)) in destination
        .receives
        .iter()
        .zip([("1", &seen[3]), ("2", &seen[4])])
    {
        let event: serde_json::Value = serde_json::from_slice(&delivered.2).expect("JSON");
        assert_eq!(event, receive.event);
        let record = &event["Records"][0];
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], count);
        assert_eq!(record["messageId"], destination.message_id.as_str());
        let body: serde_json::Value =
            serde_json::from_str(record["body"].as_str().expect("body")).expect("the record");
        assert_eq!(body, destination.record);
        assert_eq!(body["requestContext"]["requestId"], request_id.as_str());
        assert_eq!(body["responsePayload"]["errorMessage"], "3");
    }
}

#[tokio::test]
async fn an_event_that_succeeds_on_its_retry_ends_there() {
    let target = Arc::new(Scripted {
        answers: Mutex::new(vec![failure("1"), Answer::Response(b"{}".to_vec())]),
        seen: Mutex::new(Vec::new()),
    });
    let invoker = AsyncInvoker::new(
        Policy::scaled(Duration::from_millis(90)),
        account(),
        target.clone(),
        |_| {},
    );
    let (_, job) = invoker.submit("async-api", b"{}".to_vec());
    let report = job.await.expect("the job ends");
    assert_eq!(report.attempts.len(), 2);
    assert!(matches!(report.end, Some(EventEnd::Succeeded)));
}

#[tokio::test]
async fn an_event_whose_retry_would_come_after_its_maximum_age_is_given_up_as_event_age_exceeded() {
    let target = Arc::new(Scripted {
        answers: Mutex::new(vec![failure("1"), Answer::Response(b"null".to_vec())]),
        seen: Mutex::new(Vec::new()),
    });
    let mut policy = Policy::scaled(Duration::from_millis(90));
    policy.max_event_age = Duration::from_millis(30);
    let invoker = AsyncInvoker::new(policy, account(), target.clone(), |_| {});
    let (_, job) = invoker.submit("async-api", b"{}".to_vec());
    let report = job.await.expect("the job ends");
    let Some(EventEnd::Destination(destination)) = report.end else {
        panic!("expected the destination: {report:?}");
    };
    assert_eq!(destination.condition, Condition::EventAgeExceeded);
    assert_eq!(
        destination.record["requestContext"]["approximateInvokeCount"],
        1
    );
    assert_eq!(destination.state, MessageState::Deleted);
}
