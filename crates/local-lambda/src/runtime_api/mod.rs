//! A loopback stand-in for the two Lambda APIs a function binary talks to, so
//! a test can run the real binary exactly as Lambda runs it:
//!
//! - the **Runtime API** (`AWS_LAMBDA_RUNTIME_API`): the binary long-polls
//!   `/runtime/invocation/next` for events and posts each result to
//!   `/runtime/invocation/{id}/response` or `/error`, or an init failure to
//!   `/runtime/init/error`;
//! - the **Invoke API** (`AWS_ENDPOINT_URL_LAMBDA`): a function that invokes
//!   itself (or another) with `InvocationType=Event` has its event land in the
//!   same queue the binary polls, as it does in Lambda.
//!
//! Both are one axum server on `127.0.0.1:0`. [`FunctionCommand`] starts the
//! binary against it with the environment Lambda sets and captures its output;
//! each process it starts polls a listener of its own, so the emulator knows
//! which process holds which invocation. A process that ends while it holds
//! invocations fails them as Lambda does (`Runtime.ExitError`).
//!
//! Two ways to run:
//! - [`RuntimeApi::start`]: a deadline of 90 s given and not enforced, and each
//!   `Event` invocation delivered once: a test sees each delivery's outcome and
//!   sends a retry itself when it wants one.
//! - [`RuntimeApi::start_with_async_semantics`]: Lambda's own behaviour, as
//!   [`crate::async_invoke`] implements it for the `local-lambda` binary too. The deadline is
//!   enforced: an invocation still running at it fails with
//!   `Sandbox.Timedout` and its process is killed, as Lambda ends the
//!   execution environment. A failed or dead `Event` invocation is delivered
//!   again with the same payload and the same request id, up to 2 retries; then
//!   the on-failure destination's record reaches the function in an SQS event,
//!   in the formats AWS documents, and comes back while the function fails it
//!   (an event source mapping on the failure queue); the function's answers
//!   are recorded ([`RuntimeApi::async_events`], [`InvocationKind::Sqs`]).
//!
//! **Time is scaled** to the function timeout the test chooses (the deadline
//! given to the binary): every delay of Lambda's is taken at the same fraction
//! of it as of a 90 s function's. With a 3 s timeout, retries come 2 s and
//! 4 s after a failure (Lambda's 60 s and 120 s), an event expires after 120 s
//! (3,600 s), and a failure record the function rejects comes back after 18 s
//! (the queue's 540 s), up to 10 receives. [`Policy`] can change any of them.
//!
//! As in Lambda, each invocation gets an X-Ray trace header
//! (`Lambda-Runtime-Trace-Id`): a trace of its own, or, for an event queued by
//! an `Invoke` that carries `X-Amzn-Trace-Id`, the caller's trace (same `Root`,
//! retries included).

mod emulator;
mod invocations;
mod invoke_api;
mod process;
mod routes;

pub use emulator::{RuntimeApi, Submitted};
pub use process::{FunctionCommand, FunctionProcess, ProcessOutput};

use std::sync::Mutex;

use axum::body::Bytes;
use serde_json::Value;

use crate::async_invoke::Account;

/// The function the emulator stands in for: its name, and the account and
/// region of its ARN (`Lambda-Runtime-Invoked-Function-Arn`, the records'
/// `functionArn`) and of its failure queue (the SQS events' `eventSourceARN`).
///
/// ```
/// use local_lambda::async_invoke::Account;
/// use local_lambda::runtime_api::FunctionId;
///
/// let function = FunctionId::named("my-function");
/// assert_eq!(function.arn(), "arn:aws:lambda:us-east-1:123456789012:function:my-function");
/// let elsewhere = FunctionId {
///     account: Account { region: "eu-west-1".to_owned(), ..Account::default() },
///     ..function
/// };
/// assert_eq!(elsewhere.arn(), "arn:aws:lambda:eu-west-1:123456789012:function:my-function");
/// ```
#[derive(Clone, Debug)]
pub struct FunctionId {
    pub name: String,
    pub account: Account,
}

impl FunctionId {
    /// The function `name` in [`Account::default`].
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            account: Account::default(),
        }
    }

    /// The function's unqualified ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.account.region, self.account.account_id, self.name
        )
    }
}

impl Default for FunctionId {
    /// A function named `function`.
    fn default() -> Self {
        Self::named("function")
    }
}

/// How an invocation ended, as Lambda reports it to the caller.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function's response document (what `/response` received), as JSON.
    Response(Value),
    /// A function error: the `errorType` and `errorMessage` posted to `/error`.
    Error { error_type: String, message: String },
}

/// Who asked for an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvocationKind {
    /// The caller, through [`RuntimeApi::invoke`] or [`RuntimeApi::submit`].
    Direct,
    /// An `Invoke` call with `X-Amz-Invocation-Type: Event`.
    Event,
    /// An `Invoke` call with `X-Amz-Invocation-Type: RequestResponse` (the default).
    RequestResponse,
    /// The on-failure destination's record, delivered as an SQS event source
    /// mapping delivers it (with [`RuntimeApi::start_with_async_semantics`]).
    Sqs,
}

/// An invocation that has ended.
#[derive(Clone, Debug)]
pub struct Completed {
    pub request_id: String,
    /// The `Lambda-Runtime-Trace-Id` the invocation was given.
    pub trace_id: String,
    pub kind: InvocationKind,
    pub payload: Bytes,
    pub outcome: Outcome,
}

/// One call the function made to the Invoke API.
#[derive(Clone, Debug)]
pub struct InvokeCall {
    pub function_name: String,
    pub invocation_type: String,
    pub payload: Bytes,
    /// The request id of the invocation it queued (none for `DryRun`).
    pub request_id: Option<String>,
    /// The `X-Amzn-Trace-Id` header the call carried.
    pub trace_header: Option<String>,
}

/// What the binary posted to `/runtime/init/error`.
#[derive(Clone, Debug, PartialEq)]
pub struct InitError {
    /// The `Lambda-Runtime-Function-Error-Type` header.
    pub header_error_type: Option<String>,
    /// The body as posted, normally `{"errorType", "errorMessage"}`.
    pub body: Value,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
