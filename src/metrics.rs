//! The function's CloudWatch metrics, as embedded metric format (EMF)
//! documents: one JSON line on stdout each, which CloudWatch Logs turns into
//! metrics as it ingests the log. No API call, no latency, nothing to fail.
//!
//! Every document is in the namespace `METRICS_NAMESPACE` with the dimension
//! `Service` (the function's name); `Requests` adds `Route` (the matched route
//! template, or `unmatched`: never a raw path, so the number of metrics stays
//! fixed) and `StatusClass`. A task's documents carry its `task_id` as a plain
//! property (not a dimension): searchable in Logs Insights, free in CloudWatch.
//!
//! The documents are printed whatever the log format
//! (`AWS_LAMBDA_LOG_FORMAT`): CloudWatch Logs extracts EMF from any log event
//! that is such a JSON document, Text or JSON, so a deployer who switches the
//! function to Text logs keeps every metric and alarm. Only under `cargo lambda
//! watch` (`make dev`), told apart by the absence of `AWS_LAMBDA_LOG_GROUP_NAME`
//! (which Lambda and `sam local` set, and watch does not), each one is a DEBUG
//! log line instead, so the log a person reads stays readable
//! (`AWS_LAMBDA_LOG_LEVEL=debug` shows them).
//!
//! A small module rather than an EMF crate: the crates emit through the
//! `metrics` facade, a process-wide registry flushed per invocation, which
//! mixes up the documents of invocations that run at once in one process
//! (`AWS_LAMBDA_MAX_CONCURRENCY`); here each event is its own document,
//! written in one piece.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request};
use axum::http::{Response, StatusCode};
use tower::{Layer, Service};

use crate::config::Config;

/// Where the documents go, set once at init like the log subscriber; until
/// then (the library used in-process by the tests) nothing is emitted.
static SINK: OnceLock<Sink> = OnceLock::new();

/// True until the first invocation of the process has been counted.
static COLD: AtomicBool = AtomicBool::new(true);

struct Sink {
    /// The namespace and the function's name as JSON strings, quoted once.
    namespace: String,
    service: String,
    /// EMF JSON on stdout (in Lambda, whatever its log format); else DEBUG
    /// log lines (`cargo lambda watch`).
    emf: bool,
}

/// Emits this process's metrics from now on, with `config`'s namespace and
/// function name. The first call wins.
pub fn init(config: &Config) {
    let _ = SINK.set(Sink::new(
        &config.metrics_namespace,
        &config.function_name,
        !under_cargo_lambda_watch(),
    ));
}

impl Sink {
    fn new(namespace: &str, service: &str, emf: bool) -> Self {
        Self {
            namespace: quoted(namespace),
            service: quoted(service),
            emf,
        }
    }
}

/// True under `cargo lambda watch`, which sets the Runtime API's variables
/// but not the log group's: Lambda sets `AWS_LAMBDA_LOG_GROUP_NAME` for every
/// function (SnapStart aside, which custom runtimes do not have), and so does
/// `sam local`. The log format decides nothing: a Text-logging function in
/// Lambda still writes EMF, or its metrics and alarms would go silent.
fn under_cargo_lambda_watch() -> bool {
    std::env::var_os("AWS_LAMBDA_LOG_GROUP_NAME").is_none_or(|group| group.is_empty())
}

/// The unit CloudWatch stores a metric in.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric's value in a document.
struct Metric {
    name: &'static str,
    unit: Unit,
    value: u64,
}

fn count(name: &'static str) -> Metric {
    Metric {
        name,
        unit: Unit::Count,
        value: 1,
    }
}

fn millis(name: &'static str, value: u64) -> Metric {
    Metric {
        name,
        unit: Unit::Milliseconds,
        value,
    }
}

/// `ColdStart` = 1, on the first invocation of the process only.
pub fn cold_start() {
    if COLD.swap(false, Ordering::Relaxed) {
        emit(&[count("ColdStart")], &[], &[]);
    }
}

/// `Requests` = 1 for an HTTP answer, by the route [`MarkRouteLayer`] noted on it
/// (`unmatched` when none did: no route matched, or the answer came before
/// routing) and its status class.
pub fn request<B>(response: &Response<B>) {
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    emit(
        &[count("Requests")],
        &[
            ("Route", route),
            ("StatusClass", status_class(response.status())),
        ],
        &[],
    );
}

/// The router's outermost layer: notes on the answer which route template
/// matched the request, for [`request`] to count it by. A layer of its own
/// rather than `from_fn`, which clones the inner service and boxes twice per
/// request: this one boxes once.
#[derive(Clone, Copy)]
pub struct MarkRouteLayer;

impl<S> Layer<S> for MarkRouteLayer {
    type Service = MarkRoute<S>;

    fn layer(&self, inner: S) -> MarkRoute<S> {
        MarkRoute(inner)
    }
}

/// The service of [`MarkRouteLayer`].
#[derive(Clone)]
pub struct MarkRoute<S>(S);

impl<S> Service<Request> for MarkRoute<S>
where
    S: Service<Request, Response = axum::response::Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let response = self.0.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(route) = route {
                response.extensions_mut().insert(route);
            }
            Ok(response)
        })
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// `TasksEnqueued` = 1: a task recorded and its event accepted by Lambda.
pub fn task_enqueued(task_id: &str) {
    emit(&[count("TasksEnqueued")], &[], &[("task_id", task_id)]);
}

/// `TaskQueuedMs`: how long the task waited from its creation (`created_ms`,
/// epoch milliseconds; 0 for a record that does not say) until its first
/// attempt claimed it. Later attempts (Lambda's retries) are not counted:
/// their wait is Lambda's backoff, not the queue's.
pub fn task_claimed(task_id: &str, created_ms: u64, attempt: u32) {
    if attempt != 1 || created_ms == 0 {
        return;
    }
    // Another machine's clock wrote `created_ms`: never a negative wait.
    let waited_ms = epoch_millis().saturating_sub(created_ms);
    emit(
        &[millis("TaskQueuedMs", waited_ms)],
        &[],
        &[("task_id", task_id)],
    );
}

/// How an attempt's work ended, as its record now says.
pub enum Ended {
    /// The task `succeeded`.
    Succeeded,
    /// The attempt failed; the task waits `queued` for Lambda's retry.
    AttemptFailed,
    /// The attempt failed and the task is `failed`, for good.
    Failed,
}

/// `TaskRunMs`: how long an attempt's work ran; with `TasksSucceeded`, or
/// `TaskAttemptsFailed` (and `TasksFailed` when the task failed for good) = 1,
/// when its result was recorded (`None`: another delivery or a cancel took the
/// task meanwhile, and the result was dropped).
pub fn task_ran(task_id: &str, ran: Duration, recorded: Option<Ended>) {
    let ran = millis("TaskRunMs", duration_ms(ran));
    let properties = [("task_id", task_id)];
    match recorded {
        Some(Ended::Succeeded) => emit(&[count("TasksSucceeded"), ran], &[], &properties),
        Some(Ended::AttemptFailed) => emit(&[count("TaskAttemptsFailed"), ran], &[], &properties),
        Some(Ended::Failed) => emit(
            &[count("TaskAttemptsFailed"), count("TasksFailed"), ran],
            &[],
            &properties,
        ),
        None => emit(&[ran], &[], &properties),
    }
}

/// `TasksFailed` = 1: a task became `failed` for good without an attempt of
/// it failing here: Lambda's failure record came.
pub fn task_failed(task_id: &str) {
    emit(&[count("TasksFailed")], &[], &[("task_id", task_id)]);
}

/// `TaskDuplicateDeliveries` = 1: a delivery found its task held by another
/// attempt or already done, and left it alone.
pub fn duplicate_delivery(task_id: &str) {
    emit(
        &[count("TaskDuplicateDeliveries")],
        &[],
        &[("task_id", task_id)],
    );
}

/// `TasksRateLimited` = 1: a task start refused with 429, its caller past
/// `TASKS_PER_MINUTE_PER_CALLER`.
pub fn task_rate_limited() {
    emit(&[count("TasksRateLimited")], &[], &[]);
}

/// `TasksCanceled` = 1: a cancel landed on a task that had not ended.
pub fn task_canceled(task_id: &str) {
    emit(&[count("TasksCanceled")], &[], &[("task_id", task_id)]);
}

/// Writes one document: `metrics` under the dimensions `Service` and
/// `dimensions`, with `properties` alongside.
fn emit(metrics: &[Metric], dimensions: &[(&'static str, &str)], properties: &[(&str, &str)]) {
    let Some(sink) = SINK.get() else {
        return;
    };
    if !sink.emf {
        tracing::debug!("metrics {}", summary(metrics, dimensions, properties));
        return;
    }
    let line = document(sink, epoch_millis(), metrics, dimensions, properties) + "\n";
    // One write under stdout's lock: the line never interleaves with a log line.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// The EMF document: `_aws` says which top-level members are metrics (with
/// their units) and which are dimensions; each value is a top-level member.
fn document(
    sink: &Sink,
    timestamp_ms: u64,
    metrics: &[Metric],
    dimensions: &[(&'static str, &str)],
    properties: &[(&str, &str)],
) -> String {
    // Written out rather than built as a serde_json::Value: the same JSON for
    // 3.7 KB less of the zipped binary. Names are this module's constants;
    // the strings that come from outside (configuration, ids) are escaped.
    let mut out = String::with_capacity(320);
    let _ = write!(
        out,
        r#"{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":[{{"Namespace":{},"Dimensions":[["Service""#,
        sink.namespace
    );
    for (name, _) in dimensions {
        let _ = write!(out, r#","{name}""#);
    }
    out.push_str(r#"]],"Metrics":["#);
    for (at, metric) in metrics.iter().enumerate() {
        let comma = if at == 0 { "" } else { "," };
        let _ = write!(
            out,
            r#"{comma}{{"Name":"{}","Unit":"{}"}}"#,
            metric.name,
            metric.unit.as_str()
        );
    }
    let _ = write!(out, r#"]}}]}},"Service":{}"#, sink.service);
    for (name, value) in dimensions.iter().chain(properties) {
        let _ = write!(out, r#","{name}":{}"#, quoted(value));
    }
    for metric in metrics {
        let _ = write!(out, r#","{}":{}"#, metric.name, metric.value);
    }
    out.push('}');
    out
}

/// `value` as a JSON string.
fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The readable form of a document: `Requests=1 Route=/users StatusClass=2xx`.
fn summary(
    metrics: &[Metric],
    dimensions: &[(&'static str, &str)],
    properties: &[(&str, &str)],
) -> String {
    let values = metrics
        .iter()
        .map(|metric| format!("{}={}", metric.name, metric.value));
    let labels = dimensions
        .iter()
        .chain(properties)
        .map(|(name, value)| format!("{name}={value}"));
    values.chain(labels).collect::<Vec<_>>().join(" ")
}

fn duration_ms(duration: Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ms)
}

#[cfg(test)]
mod tests;
