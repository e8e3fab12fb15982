//! Lambda's asynchronous invocation, emulated: what Lambda does with an `Invoke`
//! whose `InvocationType` is `Event` once it has answered 202. One
//! implementation for `examples/local_lambda.rs` (in front of `cargo lambda
//! watch` or `sam local start-lambda`) and for the Runtime API emulator of the
//! tests (`runtime_api.rs`); a [`Target`] says how one synchronous invocation of
//! the function runs in each.
//!
//! As the AWS Lambda Developer Guide describes it ("How Lambda handles errors
//! and retries with asynchronous invocation", "Capturing records of Lambda
//! asynchronous invocations"):
//! - the event is queued and the function runs with it, synchronously;
//! - a function error (one the code returns, or the runtime's: a timeout, a
//!   crash) is retried twice, one minute and then two minutes after the failed
//!   attempt, with the same payload and the same request id;
//! - an event older than the maximum event age is not tried again;
//! - an event Lambda gives up on becomes an invocation record (version 1.0,
//!   `requestContext`, `requestPayload`, `responseContext`, `responsePayload`)
//!   sent to the on-failure destination: here an SQS queue (its message body is
//!   the record's JSON text), read by an event source mapping with
//!   `ReportBatchItemFailures` that hands each message back to the function in
//!   an SQS event and redelivers it, after the queue's visibility timeout, while
//!   the function fails it, up to a maximum receive count (where a redrive
//!   policy would move it to a dead-letter queue).
//!
//! Throttling and Lambda's own 5xx (retried for up to 6 hours with backoff)
//! have no local counterpart: whatever keeps an attempt from returning a result
//! counts as a function error of that attempt.
//!
//! **Time is scaled.** Every delay is Lambda's, multiplied by `function timeout
//! / 90 s` (90 s is template.yaml's `Timeout`): a 90 s function is retried 60 s
//! and 120 s after its failures and its events expire after 3,600 s (the
//! template's `TaskEventMaxAgeSeconds` default) and a failure record the
//! function rejects is received again 540 s later (the queue's
//! `VisibilityTimeout`, six times the function's), up to 10 times (its
//! `maxReceiveCount`); a test's 3 s function is retried after 2 s and 4 s, its
//! events expire after 120 s and a rejected record comes back after 18 s.
//! Each SQS event carries one message (the mapping's `BatchSize` is at most 10).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::{AbortHandle, JoinHandle};

/// The function timeout that Lambda's delays below are quoted against:
/// template.yaml's `Timeout`.
pub const REFERENCE_TIMEOUT: Duration = Duration::from_secs(90);
/// Lambda's waits before the first and the second retry of a failed event.
pub const LAMBDA_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];
/// template.yaml's `MaximumEventAgeInSeconds` (`TaskEventMaxAgeSeconds`'s default).
pub const LAMBDA_MAX_EVENT_AGE: Duration = Duration::from_secs(3600);
/// The failure queue's `VisibilityTimeout`, in function timeouts.
pub const VISIBILITY_TIMEOUTS: u32 = 6;
/// How many times the event source mapping receives a message the function
/// keeps failing before it is given up (the queue's redrive policy's
/// `maxReceiveCount`, which then moves it to the dead-letter queue).
pub const MAX_RECEIVE_COUNT: u32 = 10;
/// The role id of the (emulated) execution role that sends the destination's
/// messages: an SQS `SenderId` is `<role id>:<session name>`.
const SENDER_ROLE_ID: &str = "AROAEXAMPLEEXECROLE01";

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How events are retried, aged and redelivered.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The function's timeout: what each invocation may take.
    pub function_timeout: Duration,
    /// The wait before each retry; its length is `MaximumRetryAttempts` (0 to 2).
    pub retry_delays: Vec<Duration>,
    /// An event this old is not tried again (`MaximumEventAgeInSeconds`).
    pub max_event_age: Duration,
    /// How long a message the function failed stays invisible in the queue.
    pub visibility_timeout: Duration,
    /// Receives of one message before it is given up.
    pub max_receive_count: u32,
    /// Invocations of the function in flight at once, all events together.
    pub max_parallel: usize,
}

impl Policy {
    /// Lambda's behaviour for a function of timeout `function_timeout`, every
    /// delay at the same fraction of it as for a 90 s function (module docs).
    pub fn scaled(function_timeout: Duration) -> Self {
        let scale = function_timeout.as_secs_f64() / REFERENCE_TIMEOUT.as_secs_f64();
        Self {
            function_timeout,
            retry_delays: LAMBDA_RETRY_DELAYS
                .iter()
                .map(|d| d.mul_f64(scale))
                .collect(),
            max_event_age: LAMBDA_MAX_EVENT_AGE.mul_f64(scale),
            visibility_timeout: function_timeout * VISIBILITY_TIMEOUTS,
            max_receive_count: MAX_RECEIVE_COUNT,
            max_parallel: 64,
        }
    }
}

/// Where the emulated resources live, for their ARNs.
#[derive(Clone, Debug)]
pub struct Account {
    pub region: String,
    pub account_id: String,
    /// The on-failure destination's queue.
    pub queue_name: String,
}

impl Default for Account {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
            queue_name: "async-api-task-failures".to_owned(),
        }
    }
}

impl Account {
    /// The ARN of the version that ran, as the invocation record names it.
    pub fn function_arn(&self, function_name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{function_name}:$LATEST",
            self.region, self.account_id
        )
    }

    pub fn queue_arn(&self) -> String {
        format!(
            "arn:aws:sqs:{}:{}:{}",
            self.region, self.account_id, self.queue_name
        )
    }
}

/// The `errorType` of an invocation that ran past the function timeout.
pub const TIMED_OUT: &str = "Sandbox.Timedout";
/// The `errorType` of an invocation whose runtime process ended.
pub const EXITED: &str = "Runtime.ExitError";

/// Lambda's `errorMessage` for a timeout.
pub fn timed_out_message(request_id: &str, timeout: Duration) -> String {
    format!(
        "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
        timeout.as_secs_f64()
    )
}

/// Lambda's `errorMessage` for a runtime process that ended; `how` is Go's
/// wording of the exit (`signal: killed`, `exit status 1`).
pub fn exited_message(request_id: &str, how: &str) -> String {
    format!("RequestId: {request_id} Error: Runtime exited with error: {how}")
}

/// How one synchronous invocation ended, as Lambda's `Invoke` reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The function returned this response payload.
    Response(Vec<u8>),
    /// A function error: the `X-Amz-Function-Error` value (`Unhandled` for
    /// anything a custom runtime reports) and the error payload.
    Error {
        function_error: String,
        payload: Vec<u8>,
    },
}

impl Answer {
    /// An `Unhandled` error with Lambda's `{errorType, errorMessage}` payload.
    pub fn unhandled(error_type: &str, message: &str) -> Self {
        Self::Error {
            function_error: "Unhandled".to_owned(),
            payload: json!({"errorType": error_type, "errorMessage": message})
                .to_string()
                .into_bytes(),
        }
    }

    /// What Lambda reports when an invocation runs past the function timeout.
    pub fn timed_out(request_id: &str, timeout: Duration) -> Self {
        Self::unhandled(TIMED_OUT, &timed_out_message(request_id, timeout))
    }

    /// What Lambda reports when the runtime process ends during an
    /// invocation; `how` is Go's wording of the exit (`signal: killed`,
    /// `exit status 1`).
    pub fn exited(request_id: &str, how: &str) -> Self {
        Self::unhandled(EXITED, &exited_message(request_id, how))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error { .. })
    }

    /// A few words for a log line: the error type, or `response`.
    pub fn summary(&self) -> String {
        match self {
            Self::Response(_) => "response".to_owned(),
            Self::Error {
                function_error,
                payload,
            } => {
                let error: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
                match error["errorType"].as_str() {
                    Some(error_type) => format!("{function_error} {error_type}"),
                    None => function_error.clone(),
                }
            }
        }
    }
}

/// Why an invocation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Attempt `attempt` (1, 2, 3) of an asynchronous event.
    Event { attempt: u32 },
    /// Receive `receive` of a destination record, through the event source mapping.
    Sqs { receive: u32 },
}

/// One synchronous invocation to run.
#[derive(Clone, Copy, Debug)]
pub struct Invocation<'a> {
    pub function_name: &'a str,
    pub request_id: &'a str,
    pub payload: &'a [u8],
    pub delivery: Delivery,
    /// The function timeout: the target reports [`Answer::timed_out`] past it.
    pub timeout: Duration,
}

/// Runs invocations of the function: an HTTP `Invoke` (local_lambda) or the
/// Runtime API's own queue (the tests' emulator).
pub trait Target: Send + Sync + 'static {
    fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer>;
}

/// Why Lambda gave up on an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    RetriesExhausted,
    EventAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetriesExhausted => "RetriesExhausted",
            Self::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

/// One asynchronous event and what became of it.
#[derive(Clone, Debug)]
pub struct EventReport {
    pub request_id: String,
    pub function_name: String,
    pub payload: Vec<u8>,
    /// Each attempt's answer, in order.
    pub attempts: Vec<Answer>,
    /// `None` while attempts are under way.
    pub end: Option<EventEnd>,
}

#[derive(Clone, Debug)]
pub enum EventEnd {
    /// An attempt succeeded.
    Succeeded,
    /// Lambda gave up; the record went to the on-failure destination.
    Destination(DestinationReport),
    /// The emulator stopped first (local_lambda's Ctrl-C).
    Abandoned,
}

/// The destination record of an event and its trip through the queue.
#[derive(Clone, Debug)]
pub struct DestinationReport {
    pub condition: Condition,
    /// The invocation record, as sent (the message body is its JSON text).
    pub record: Value,
    pub message_id: String,
    /// Each time the event source mapping handed the message to the function.
    pub receives: Vec<Receive>,
    pub state: MessageState,
}

/// Where a destination message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageState {
    /// In the queue: being received, or invisible until its next receive.
    InQueue,
    /// Processed: the mapping deleted it.
    Deleted,
    /// Failed [`Policy::max_receive_count`] receives: a redrive policy would
    /// have moved it to a dead-letter queue.
    GivenUp,
}

/// One SQS event the function was given, and its answer.
#[derive(Clone, Debug)]
pub struct Receive {
    pub request_id: String,
    pub event: Value,
    pub answer: Answer,
    /// Whether the mapping counts the message as failed (function error, or
    /// the message named in `batchItemFailures`, or an answer it cannot read).
    pub failed: bool,
}

type Log = Arc<dyn Fn(String) + Send + Sync>;

struct Inner {
    policy: Policy,
    account: Account,
    target: Arc<dyn Target>,
    permits: Semaphore,
    log: Log,
    reports: Mutex<Vec<EventReport>>,
    jobs: Mutex<Vec<AbortHandle>>,
}

/// The asynchronous queue: [`AsyncInvoker::submit`] accepts an event and
/// returns at once; a background job delivers, retries and, if need be, sends
/// the destination record through the queue.
#[derive(Clone)]
pub struct AsyncInvoker {
    inner: Arc<Inner>,
}

impl AsyncInvoker {
    /// `log` receives one line per delivery, retry and destination step.
    pub fn new(
        policy: Policy,
        account: Account,
        target: Arc<dyn Target>,
        log: impl Fn(String) + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(policy.max_parallel.max(1)),
                policy,
                account,
                target,
                log: Arc::new(log),
                reports: Mutex::new(Vec::new()),
                jobs: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Queues `payload` for `function_name` under a fresh request id; the
    /// handle resolves once the event has ended.
    pub fn submit(
        &self,
        function_name: &str,
        payload: Vec<u8>,
    ) -> (String, JoinHandle<EventReport>) {
        let request_id = uuid::Uuid::new_v4().to_string();
        let index = {
            let mut reports = lock(&self.inner.reports);
            reports.push(EventReport {
                request_id: request_id.clone(),
                function_name: function_name.to_owned(),
                payload: payload.clone(),
                attempts: Vec::new(),
                end: None,
            });
            reports.len() - 1
        };
        (self.inner.log)(format!(
            "event {request_id} queued for {function_name} ({} bytes)",
            payload.len()
        ));
        let job = tokio::spawn(run_event(
            self.inner.clone(),
            index,
            function_name.to_owned(),
            request_id.clone(),
            payload,
        ));
        let mut jobs = lock(&self.inner.jobs);
        jobs.retain(|job| !job.is_finished());
        jobs.push(job.abort_handle());
        (request_id, job)
    }

    /// Every event so far, ended or not, in the order they were queued.
    pub fn reports(&self) -> Vec<EventReport> {
        lock(&self.inner.reports).clone()
    }

    /// Stops every job; returns the events that had not ended, now `Abandoned`.
    pub fn shutdown(&self) -> Vec<EventReport> {
        for job in lock(&self.inner.jobs).drain(..) {
            job.abort();
        }
        let mut reports = lock(&self.inner.reports);
        let mut abandoned = Vec::new();
        let open = |r: &EventReport| match &r.end {
            None => true,
            Some(EventEnd::Destination(d)) => d.state == MessageState::InQueue,
            Some(_) => false,
        };
        for report in reports.iter_mut().filter(|r| open(r)) {
            report.end = Some(EventEnd::Abandoned);
            abandoned.push(report.clone());
        }
        abandoned
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    async fn invoke(&self, invocation: Invocation<'_>) -> Answer {
        // The semaphore is never closed.
        let _permit = self.permits.acquire().await.ok();
        self.target.invoke(invocation).await
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut EventReport)) -> EventReport {
        let mut reports = lock(&self.reports);
        change(&mut reports[index]);
        reports[index].clone()
    }
}

/// Attempts, retries, and the destination for one event.
async fn run_event(
    inner: Arc<Inner>,
    index: usize,
    function_name: String,
    request_id: String,
    payload: Vec<u8>,
) -> EventReport {
    let policy = &inner.policy;
    let accepted = Instant::now();
    let mut attempts: Vec<Answer> = Vec::new();
    let condition = loop {
        if accepted.elapsed() >= policy.max_event_age {
            break Condition::EventAgeExceeded;
        }
        let attempt = attempts.len() as u32 + 1;
        let started = Instant::now();
        let answer = inner
            .invoke(Invocation {
                function_name: &function_name,
                request_id: &request_id,
                payload: &payload,
                delivery: Delivery::Event { attempt },
                timeout: policy.function_timeout,
            })
            .await;
        let took = started.elapsed();
        attempts.push(answer.clone());
        inner.update(index, |r| r.attempts.push(answer.clone()));
        if !answer.is_error() {
            (inner.log)(format!(
                "event {request_id} attempt {attempt} succeeded in {:.1}s",
                took.as_secs_f64()
            ));
            return inner.update(index, |r| r.end = Some(EventEnd::Succeeded));
        }
        let Some(delay) = policy.retry_delays.get(attempts.len() - 1).copied() else {
            (inner.log)(format!(
                "event {request_id} attempt {attempt} failed ({}) in {:.1}s: no retry left",
                answer.summary(),
                took.as_secs_f64()
            ));
            break Condition::RetriesExhausted;
        };
        let age_left = policy.max_event_age.saturating_sub(accepted.elapsed());
        if delay >= age_left {
            (inner.log)(format!(
                "event {request_id} attempt {attempt} failed ({}): it reaches its maximum age in {:.1}s, before its retry",
                answer.summary(),
                age_left.as_secs_f64()
            ));
            tokio::time::sleep(age_left).await;
            break Condition::EventAgeExceeded;
        }
        (inner.log)(format!(
            "event {request_id} attempt {attempt} failed ({}) in {:.1}s: retry {attempt} in {:.1}s",
            answer.summary(),
            took.as_secs_f64(),
            delay.as_secs_f64()
        ));
        tokio::time::sleep(delay).await;
    };

    let record = invocation_record(
        &inner.account,
        &function_name,
        &request_id,
        condition,
        &payload,
        &attempts,
        epoch_millis(),
    );
    let message = QueueMessage::new(&record, &function_name);
    (inner.log)(format!(
        "event {request_id} given up ({}, {} attempt(s)): record sent to {} as message {}",
        condition.as_str(),
        attempts.len(),
        inner.account.queue_name,
        message.message_id
    ));
    let mut destination = DestinationReport {
        condition,
        record,
        message_id: message.message_id.clone(),
        receives: Vec::new(),
        state: MessageState::InQueue,
    };
    inner.update(index, |r| {
        r.end = Some(EventEnd::Destination(destination.clone()))
    });
    let mut first_receive_ms = None;
    for receive in 1..=policy.max_receive_count.max(1) {
        let receive_ms = epoch_millis();
        let first = *first_receive_ms.get_or_insert(receive_ms);
        let event = sqs_event(&inner.account, &message, receive, first, &receipt_handle());
        let event_bytes = event.to_string().into_bytes();
        let sqs_request_id = uuid::Uuid::new_v4().to_string();
        let answer = inner
            .invoke(Invocation {
                function_name: &function_name,
                request_id: &sqs_request_id,
                payload: &event_bytes,
                delivery: Delivery::Sqs { receive },
                timeout: policy.function_timeout,
            })
            .await;
        let failed = match &answer {
            Answer::Error { .. } => true,
            Answer::Response(body) => failed_items(body, &[&message.message_id])
                .iter()
                .any(|id| *id == message.message_id),
        };
        destination.receives.push(Receive {
            request_id: sqs_request_id,
            event,
            answer: answer.clone(),
            failed,
        });
        if !failed {
            destination.state = MessageState::Deleted;
            (inner.log)(format!(
                "message {} (event {request_id}) receive {receive}: processed, deleted from the queue",
                message.message_id
            ));
            break;
        }
        let verdict = match &answer {
            Answer::Error { .. } => answer.summary(),
            Answer::Response(_) => "reported in batchItemFailures".to_owned(),
        };
        if receive >= policy.max_receive_count {
            destination.state = MessageState::GivenUp;
            (inner.log)(format!(
                "message {} (event {request_id}) receive {receive}: failed ({verdict}); given up after {receive} receives",
                message.message_id
            ));
            break;
        }
        (inner.log)(format!(
            "message {} (event {request_id}) receive {receive}: failed ({verdict}); visible again in {:.1}s",
            message.message_id,
            policy.visibility_timeout.as_secs_f64()
        ));
        inner.update(index, |r| {
            r.end = Some(EventEnd::Destination(destination.clone()))
        });
        tokio::time::sleep(policy.visibility_timeout).await;
    }
    inner.update(index, |r| r.end = Some(EventEnd::Destination(destination)))
}

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
fn receipt_handle() -> String {
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

pub fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// `2019-11-14T18:16:05.568Z`: the record's `timestamp` form (UTC, milliseconds).
pub fn iso8601_millis(epoch_ms: u128) -> String {
    let seconds = (epoch_ms / 1000) as i64;
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        epoch_ms % 1000
    )
}

/// MD5 (RFC 1321) as lowercase hex: SQS's `md5OfBody`. No crate of the
/// project provides it, and it is only a checksum here.
pub fn md5_hex(data: &[u8]) -> String {
    const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    // K[i] = floor(|sin(i + 1)| * 2^32), exact in f64 for every i < 64.
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in message.chunks_exact(64) {
        let words: Vec<u32> = chunk
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(words[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(SHIFTS[i / 16 * 4 + i % 4]));
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d]) {
            *word = word.wrapping_add(add);
        }
    }
    state
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
