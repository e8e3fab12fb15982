//! What Lambda runs: [`Function::handle`] takes every event the function gets
//! and sends it, by its kind, to the module that serves it.
//!
//! The request context alone tells the kinds apart: lambda_http gives an HTTP
//! event (API Gateway, Function URL, ALB) its own context, and any other event
//! (the `pass_through` feature) a `PassThrough` one. So an HTTP request, on any
//! path and with any body, can never run a task. A non-HTTP payload that is no
//! JSON object is no event at all, decided before anything parses it: serde
//! reads a struct from a JSON array too, field by field (`[[]]` would be an
//! empty SQS batch, `["<uuid>", 1]` a task event). A new event source is a new
//! `Event` variant, the line of `Event::of` that recognises it, and its arm of
//! the `match` in [`Function::handle`].

use axum::response::IntoResponse;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::app::Api;
use crate::http_event;
use crate::metrics;
use crate::state::AppState;
use crate::tasks::destination::{self, SqsEvent};
use crate::tasks::{MAX_DELAY_MS, TaskError, TaskEvent, worker};
use crate::trace;

/// The kinds of event the function accepts.
enum Event {
    /// API Gateway (HTTP or REST API), Function URL or ALB: served by the router.
    Http,
    /// The failure queue's SQS event: Lambda's records of task events it gave
    /// up on (a non-HTTP event with a `Records` list).
    FailureRecords,
    /// Any other non-HTTP JSON object: the function's own task event.
    Task,
    /// A non-HTTP payload that is no JSON object (an array, a string, a
    /// number, a boolean or null): none of the events above; says what it is.
    Unrecognized(&'static str),
}

impl Event {
    fn of(request: &Request) -> Self {
        match request.request_context_ref() {
            Some(RequestContext::PassThrough) => Self::of_payload(request.body()),
            _ => Self::Http,
        }
    }

    /// A non-HTTP event's kind, from its payload.
    fn of_payload(payload: &[u8]) -> Self {
        let first = payload
            .iter()
            .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
        match first {
            Some(b'{') if destination::is_sqs_event(payload) => Self::FailureRecords,
            Some(b'{') => Self::Task,
            Some(b'[') => Self::Unrecognized("the event is a JSON array, not a JSON object"),
            Some(b'"') => Self::Unrecognized("the event is a JSON string, not a JSON object"),
            Some(b'-' | b'0'..=b'9') => {
                Self::Unrecognized("the event is a JSON number, not a JSON object")
            }
            Some(b't' | b'f') => {
                Self::Unrecognized("the event is a JSON boolean, not a JSON object")
            }
            Some(b'n') => Self::Unrecognized("the event is null, not a JSON object"),
            Some(_) => Self::Unrecognized("the event is not JSON"),
            None => Self::Unrecognized("the event is empty, not a JSON object"),
        }
    }
}

/// The Lambda function: every event goes through [`Function::handle`].
#[derive(Clone)]
pub struct Function {
    state: AppState,
    api: Api,
}

impl Function {
    /// Builds the function around its state.
    pub fn new(state: AppState) -> Self {
        let api = Api::new(state.clone());
        Self { state, api }
    }

    /// Serves one event. An HTTP request always gets an HTTP answer; a task
    /// event that fails, or an event of no kind this function accepts, returns
    /// a function error to Lambda.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, FunctionError> {
        metrics::cold_start();
        let trace_header = request
            .lambda_context_ref()
            .and_then(|context| context.xray_trace_id.clone());
        trace::scope(trace_header, self.serve(request)).await
    }

    /// The task's and the failure queue's arms are boxed: a future is as large
    /// as its largest state, and the task worker's would make every HTTP
    /// request's future as large (about 16 KB, copied each time the future
    /// moves) where an HTTP request's own is about 1.4 KB.
    async fn serve(&self, request: Request) -> Result<Response<Body>, FunctionError> {
        match Event::of(&request) {
            Event::Http => {
                let response = http_event::serve(&self.api, request).await;
                metrics::request(&response);
                Ok(response)
            }
            Event::FailureRecords => {
                let event = SqsEvent::parse(request.body()).ok_or_else(|| {
                    FunctionError::NotAnEvent(
                        "an SQS event whose messages have no messageId".to_owned(),
                    )
                })?;
                let answer = Box::pin(destination::consume(&self.state, event)).await;
                Ok(http_event::into_lambda_response(axum::Json(answer).into_response()).await)
            }
            Event::Task => {
                // The invocation's deadline (epoch milliseconds) is the claim's lease.
                let deadline_ms = request.lambda_context_ref().map_or(0, |c| c.deadline);
                let event = TaskEvent::parse(request.body()).map_err(FunctionError::NotAnEvent)?;
                let outcome = Box::pin(worker::run(&self.state, event, deadline_ms)).await?;
                Ok(http_event::into_lambda_response(axum::Json(outcome).into_response()).await)
            }
            Event::Unrecognized(what) => Err(FunctionError::NotAnEvent(what.to_owned())),
        }
    }
}

/// Why an event ended in a function error (so Lambda's retries and on-failure
/// destination apply to a task event).
#[derive(thiserror::Error)]
pub enum FunctionError {
    /// No kind of event this function accepts; says which kinds it does.
    #[error(
        "expected an API Gateway (HTTP API or REST API), Application Load Balancer or Lambda Function URL event, \
         a task event {{\"task_id\": \"<uuid>\", \"delay_ms\": 0..={MAX_DELAY_MS}}}, or the failure queue's SQS event: {0}"
    )]
    NotAnEvent(String),
    /// A task event that did not end well.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// The runtime logs a function error with `{:?}`: make that the readable message.
impl std::fmt::Debug for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<FunctionError> for lambda_http::lambda_runtime::Diagnostic {
    fn from(err: FunctionError) -> Self {
        let error_type = match &err {
            FunctionError::NotAnEvent(_) => "UnrecognizedEvent",
            FunctionError::Task(task) => task.error_type(),
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}
