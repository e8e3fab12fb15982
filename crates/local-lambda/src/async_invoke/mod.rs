//! Lambda's asynchronous invocation, emulated: what Lambda does with an `Invoke`
//! whose `InvocationType` is `Event` once it has answered 202. One
//! implementation for the `local-lambda` binary (in front of `cargo lambda
//! watch` or `sam local start-lambda`) and for the Runtime API emulator
//! ([`crate::runtime_api`]); a [`Target`] says how one synchronous invocation
//! of the function runs in each.
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
//! / 90 s` ([`REFERENCE_TIMEOUT`]): a 90 s function is retried 60 s and 120 s
//! after its failures and its events expire after 3,600 s
//! ([`LAMBDA_MAX_EVENT_AGE`]) and a failure record the function rejects is
//! received again 540 s later (the queue's `VisibilityTimeout`, six times the
//! function's), up to 10 times (its `maxReceiveCount`); a 3 s function is
//! retried after 2 s and 4 s, its events expire after 120 s and a rejected
//! record comes back after 18 s. Each SQS event carries one message (an event
//! source mapping's `BatchSize` is at most 10). [`Policy`] can change any of
//! them.

mod answer;
mod formats;
mod invoker;
mod records;
mod report;
#[cfg(test)]
mod tests;

pub use answer::*;
pub use formats::*;
pub use invoker::*;
pub use records::*;
pub use report::*;

use std::time::Duration;

/// The function timeout that Lambda's delays below are quoted against: for a
/// function of this timeout they stand as they are.
pub const REFERENCE_TIMEOUT: Duration = Duration::from_secs(90);
/// Lambda's waits before the first and the second retry of a failed event.
pub const LAMBDA_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];
/// The maximum event age (`MaximumEventAgeInSeconds`) of a function of
/// [`REFERENCE_TIMEOUT`]: one hour (Lambda's own default is six).
pub const LAMBDA_MAX_EVENT_AGE: Duration = Duration::from_secs(3600);
/// The failure queue's `VisibilityTimeout`, in function timeouts.
pub const VISIBILITY_TIMEOUTS: u32 = 6;
/// How many times the event source mapping receives a message the function
/// keeps failing before it is given up (the queue's redrive policy's
/// `maxReceiveCount`, which then moves it to the dead-letter queue).
pub const MAX_RECEIVE_COUNT: u32 = 10;
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use local_lambda::async_invoke::Policy;
    ///
    /// let policy = Policy::scaled(Duration::from_secs(3));
    /// assert_eq!(policy.retry_delays, [Duration::from_secs(2), Duration::from_secs(4)]);
    /// assert_eq!(policy.max_event_age, Duration::from_secs(120));
    /// assert_eq!(policy.visibility_timeout, Duration::from_secs(18));
    /// ```
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
///
/// ```
/// use local_lambda::async_invoke::Account;
///
/// let account = Account { queue_name: "my-failures".to_owned(), ..Account::default() };
/// assert_eq!(
///     account.function_arn("my-function"),
///     "arn:aws:lambda:us-east-1:123456789012:function:my-function:$LATEST"
/// );
/// assert_eq!(account.queue_arn(), "arn:aws:sqs:us-east-1:123456789012:my-failures");
/// ```
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
            queue_name: "function-failures".to_owned(),
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
