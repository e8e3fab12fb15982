//! One synchronous invocation of the function: what it is given
//! ([`Invocation`]), what it answers ([`Answer`], in Lambda's words for a
//! timeout or a dead runtime), and who runs it ([`Target`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Value, json};

/// A boxed future that may be sent between threads: what [`Target::invoke`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
///
/// ```
/// use std::time::Duration;
/// use local_lambda::async_invoke::Answer;
///
/// let answer = Answer::timed_out("7d3c1a2b", Duration::from_secs(3));
/// assert!(answer.is_error());
/// assert_eq!(answer.summary(), "Unhandled Sandbox.Timedout");
/// let Answer::Error { payload, .. } = answer else { unreachable!() };
/// let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
/// assert_eq!(
///     payload["errorMessage"],
///     "RequestId: 7d3c1a2b Error: Task timed out after 3.00 seconds"
/// );
/// ```
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

/// Runs invocations of the function: an HTTP `Invoke` (the binary's
/// [`HttpTarget`](crate::http_target::HttpTarget)) or the Runtime API
/// emulator's own queue.
///
/// ```
/// use local_lambda::async_invoke::{Answer, BoxFuture, Invocation, Target};
///
/// /// A function that answers every event with its own payload.
/// struct Echo;
///
/// impl Target for Echo {
///     fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
///         Box::pin(async move { Answer::Response(invocation.payload.to_vec()) })
///     }
/// }
/// ```
pub trait Target: Send + Sync + 'static {
    fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer>;
}
