//! The Runtime API emulator with Lambda's asynchronous semantics
//! (`RuntimeApi::start_with_async_semantics`), against the real binary: a
//! failed or dead `Event` invocation is delivered again with its payload and
//! request id, an invocation past its deadline times out and its process is
//! killed, and the event Lambda gives up on reaches the function as the failure
//! queue's SQS event, in the formats AWS documents. The tests of retries and of
//! the failure destination stand on this. Function timeouts of 1 to 3 s keep
//! Lambda's delays (scaled to them) short.
//!
//! What the function answers each delivery is the task protocol's: a failed
//! attempt is a function error (`TaskFailed`) whether Lambda will retry it
//! (the task waits `queued`) or not (its last attempt writes `failed`), and a
//! task event's answer is its `TaskOutcome`.

mod support;

use std::time::Duration;

use async_api::lambda_config;
use async_api::tasks::TaskStore;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::{Value, json};
use support::runtime_api::async_invoke::{Answer, EventEnd, MessageState, Policy, md5_hex};
use support::runtime_api::{
    Completed, InvocationKind, Outcome, RuntimeApi, function_command, test_function,
};
use support::{FUNCTION_NAME, Fixture};

const PATIENCE: Duration = Duration::from_secs(60);

/// Sends `payload` as Lambda's `Invoke` with `InvocationType=Event`, as the
/// function's own `/async` does, and returns the request id it was given.
async fn send_event(api: &RuntimeApi, payload: &Value) -> String {
    let lambda = aws_sdk_lambda::Client::from_conf(
        lambda_config(&support::sdk_config())
            .endpoint_url(api.url())
            .build(),
    );
    let output = lambda
        .invoke()
        .function_name(FUNCTION_NAME)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .expect("Invoke (Event)");
    assert_eq!(output.status_code(), 202);
    api.invoke_calls()
        .last()
        .and_then(|call| call.request_id.clone())
        .expect("the request id of the event")
}

/// A loopback endpoint that accepts connections and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// A queued task as `/async` leaves it once Lambda has accepted its event
/// (marked enqueued: only then may a delivery claim it).
async fn queued_task(fixture: &Fixture) -> String {
    let task_id = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &fixture.dynamodb,
        table: &fixture.tasks_table,
    };
    store
        .put_enqueued(&task_id)
        .await
        .expect("a queued, enqueued task record");
    task_id
}

fn json_payload(completed: &Completed) -> Value {
    serde_json::from_slice(&completed.payload).expect("a JSON payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_event_whose_first_attempt_fails_is_delivered_again_with_its_payload_and_request_id()
{
    let api =
        RuntimeApi::start_with_async_semantics(test_function(), Duration::from_millis(1500)).await;
    let fixture = Fixture::new(&api.url()).await;
    let _function = function_command(&api, &fixture).spawn();
    let task_id = queued_task(&fixture).await;
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 1});

    let request_id = send_event(&api, &event).await;
    let delivered = api.wait_for_events(PATIENCE).await;

    assert_eq!(delivered.len(), 2, "{delivered:#?}");
    for delivery in &delivered {
        assert_eq!(delivery.request_id, request_id);
        assert_eq!(delivery.kind, InvocationKind::Event);
        assert_eq!(json_payload(delivery), event);
    }
    assert_eq!(
        delivered[0].outcome,
        Outcome::Error {
            error_type: "TaskFailed".to_owned(),
            message: format!(
                "task {task_id} failed on attempt 1: simulated failure (fail_attempts = 1)"
            ),
        }
    );
    assert_eq!(
        delivered[1].outcome,
        Outcome::Response(
            json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
        )
    );
    let reports = api.async_events();
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].end, Some(EventEnd::Succeeded)));
    assert!(api.sqs_deliveries().is_empty());
    let log = api.async_log();
    assert!(
        log.iter().any(|line| line.contains("retry 1 in 1.0s")),
        "Lambda's 60 s of 90 s, scaled: {log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_event_failing_every_attempt_reaches_the_function_as_the_failure_queues_sqs_event() {
    let mut policy = Policy::scaled(Duration::from_millis(1500));
    policy.max_receive_count = 1;
    let api = RuntimeApi::start_with_policy(test_function(), policy).await;
    let fixture = Fixture::new(&api.url()).await;
    let _function = function_command(&api, &fixture).spawn();
    let task_id = queued_task(&fixture).await;
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 3});

    let request_id = send_event(&api, &event).await;
    let attempts = api.wait_for_events(PATIENCE).await;

    assert_eq!(attempts.len(), 3, "two retries: {attempts:#?}");
    assert!(attempts.iter().all(|a| a.request_id == request_id));
    let Outcome::Error {
        error_type,
        message,
    } = &attempts[2].outcome
    else {
        panic!("the last attempt failed: {attempts:#?}");
    };
    let sqs = api.sqs_deliveries();
    assert_eq!(sqs.len(), 1, "{sqs:#?}");
    assert_ne!(
        sqs[0].request_id, request_id,
        "the mapping's own invocation"
    );
    let sqs_event = json_payload(&sqs[0]);
    let message_record = &sqs_event["Records"][0];
    let body = message_record["body"].as_str().expect("a text body");
    let record: Value = serde_json::from_str(body).expect("the body is the record's JSON");
    let timestamp = record["timestamp"].as_str().expect("timestamp");
    assert!(
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .is_ok()
            && timestamp.len() == "2019-11-14T18:16:05.568Z".len()
            && timestamp.ends_with('Z'),
        "{timestamp}"
    );
    assert_eq!(
        record,
        json!({
            "version": "1.0",
            "timestamp": timestamp,
            "requestContext": {
                "requestId": request_id,
                "functionArn": format!("arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}:$LATEST"),
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": error_type, "errorMessage": message}
        })
    );
    let message_id = message_record["messageId"].as_str().expect("messageId");
    assert!(uuid::Uuid::try_parse(message_id).is_ok(), "{message_id}");
    let sent = message_record["attributes"]["SentTimestamp"]
        .as_str()
        .expect("SentTimestamp");
    assert!(sent.parse::<u64>().is_ok(), "{sent}");
    let first_receive = message_record["attributes"]["ApproximateFirstReceiveTimestamp"]
        .as_str()
        .expect("ApproximateFirstReceiveTimestamp");
    assert!(first_receive.parse::<u64>().expect("millis") >= sent.parse::<u64>().expect("millis"));
    assert!(
        !message_record["receiptHandle"]
            .as_str()
            .expect("receiptHandle")
            .is_empty()
    );
    assert_eq!(
        sqs_event,
        json!({"Records": [{
            "messageId": message_id,
            "receiptHandle": message_record["receiptHandle"],
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": sent,
                "SenderId": format!("AROAEXAMPLEEXECROLE01:{FUNCTION_NAME}"),
                "ApproximateFirstReceiveTimestamp": first_receive
            },
            "messageAttributes": {},
            "md5OfBody": md5_hex(body.as_bytes()),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:async-api-test-task-failures",
            "awsRegion": "us-east-1"
        }]})
    );
    // The function's answer to it is kept.
    let reports = api.async_events();
    let Some(EventEnd::Destination(destination)) = &reports[0].end else {
        panic!("the event went to the destination: {reports:#?}");
    };
    assert_eq!(destination.record, record);
    assert_eq!(destination.receives.len(), 1);
    assert_eq!(destination.receives[0].event, sqs_event);
    assert_eq!(destination.receives[0].request_id, sqs[0].request_id);
    // The last attempt wrote `failed` with the work's own error: the record
    // finds the task ended, and is acknowledged (deleted from the queue).
    assert_eq!(
        destination.receives[0].answer,
        Answer::Response(br#"{"batchItemFailures":[]}"#.to_vec())
    );
    assert_eq!(destination.state, MessageState::Deleted);
    let item = fixture.task_item(&task_id).await.expect("the task record");
    assert_eq!(
        (
            item.get("status")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            item.get("attempts")
                .and_then(|v| v.as_n().ok())
                .map(String::as_str),
            item.get("error")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
        ),
        (
            Some("failed"),
            Some("3"),
            Some("simulated failure (fail_attempts = 3)")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_past_its_deadline_times_out_and_its_process_is_killed() {
    let mut policy = Policy::scaled(Duration::from_secs(1));
    policy.retry_delays.clear();
    policy.max_receive_count = 1;
    let api = RuntimeApi::start_with_policy(test_function(), policy).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = function_command(&api, &fixture);
    // The function stops its own work before its deadline; what keeps it past
    // the deadline is a call that hangs: its claim, to a DynamoDB that never
    // answers (the SDK would give up only after 6 s).
    let first = command
        .clone()
        .env("AWS_ENDPOINT_URL_DYNAMODB", &silent_server().await)
        .spawn();
    let task_id = queued_task(&fixture).await;

    let request_id = send_event(&api, &json!({"task_id": task_id, "delay_ms": 5000})).await;
    let ended = first.wait_for_exit(Duration::from_secs(10)).await;

    use std::os::unix::process::ExitStatusExt;
    assert_eq!(ended.status.signal(), Some(9), "killed: {ended:?}");
    let timed_out = Outcome::Error {
        error_type: "Sandbox.Timedout".to_owned(),
        message: format!("RequestId: {request_id} Error: Task timed out after 1.00 seconds"),
    };
    let attempts: Vec<Completed> = api
        .completed()
        .into_iter()
        .filter(|c| c.kind == InvocationKind::Event)
        .collect();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, timed_out);

    // No retry left: the record goes to the failure queue, and a new process
    // (Lambda would start one) gets it.
    let _second = command.spawn();
    api.wait_for_events(PATIENCE).await;
    let sqs = api.sqs_deliveries();
    assert_eq!(sqs.len(), 1);
    let record: Value = serde_json::from_str(
        json_payload(&sqs[0])["Records"][0]["body"]
            .as_str()
            .expect("body"),
    )
    .expect("the record");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(
        record["responsePayload"],
        json!({"errorType": "Sandbox.Timedout", "errorMessage": format!("RequestId: {request_id} Error: Task timed out after 1.00 seconds")})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_whose_process_dies_fails_as_a_runtime_exit_and_is_delivered_again_to_a_new_process()
 {
    let api = RuntimeApi::start_with_async_semantics(test_function(), Duration::from_secs(3)).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = function_command(&api, &fixture);
    let first = command.clone().spawn();
    let task_id = queued_task(&fixture).await;
    let event = json!({"task_id": task_id, "delay_ms": 1000});

    let request_id = send_event(&api, &event).await;
    let started = tokio::time::timeout(PATIENCE, async {
        while !first
            .stdout_lines()
            .iter()
            .any(|line| line.contains("task started"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(started.is_ok(), "{:?}", first.stdout_lines());
    first.kill();
    let _second = command.spawn();
    let delivered = api.wait_for_events(PATIENCE).await;

    assert_eq!(delivered.len(), 2, "{delivered:#?}");
    assert_eq!(
        delivered[0].outcome,
        Outcome::Error {
            error_type: "Runtime.ExitError".to_owned(),
            message: format!(
                "RequestId: {request_id} Error: Runtime exited with error: signal: killed"
            ),
        }
    );
    assert_eq!(delivered[1].request_id, request_id);
    assert_eq!(json_payload(&delivered[1]), event);
    // The dead attempt had started the work, and the retry took its lapsed
    // lease over: attempt 2.
    assert_eq!(
        delivered[1].outcome,
        Outcome::Response(
            json!({"task_id": task_id, "status": "succeeded", "attempts": 2, "duplicate": false})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_record_the_function_does_not_take_is_received_again_up_to_the_receive_bound() {
    let mut policy = Policy::scaled(Duration::from_secs(1));
    policy.retry_delays.clear();
    policy.visibility_timeout = Duration::from_millis(300);
    policy.max_receive_count = 2;
    let api = RuntimeApi::start_with_policy(test_function(), policy).await;
    let fixture = Fixture::new(&api.url()).await;
    let _function = function_command(&api, &fixture).spawn();

    // No task event: its record names no task the function could mark.
    send_event(&api, &json!({"not": "a task event"})).await;
    api.wait_for_events(PATIENCE).await;

    let sqs = api.sqs_deliveries();
    assert_eq!(sqs.len(), 2, "{sqs:#?}");
    let [first, second] = [&sqs[0], &sqs[1]].map(|s| json_payload(s)["Records"][0].clone());
    for field in ["messageId", "body", "md5OfBody"] {
        assert_eq!(first[field], second[field], "{field}");
    }
    assert_eq!(
        first["attributes"]["ApproximateFirstReceiveTimestamp"],
        second["attributes"]["ApproximateFirstReceiveTimestamp"]
    );
    assert_eq!(first["attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(second["attributes"]["ApproximateReceiveCount"], "2");
    assert_ne!(first["receiptHandle"], second["receiptHandle"]);
    let reports = api.async_events();
    let Some(EventEnd::Destination(destination)) = &reports[0].end else {
        panic!("the event went to the destination: {reports:#?}");
    };
    assert_eq!(destination.state, MessageState::GivenUp);
    assert!(destination.receives.iter().all(|r| r.failed));
}
