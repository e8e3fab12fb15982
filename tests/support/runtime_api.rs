//! A loopback stand-in for the two Lambda APIs the function binary talks to, so
//! a test can run the real binary exactly as Lambda runs it:
//!
//! - the **Runtime API** (`AWS_LAMBDA_RUNTIME_API`): the binary long-polls
//!   `/runtime/invocation/next` for events and posts each result to
//!   `/runtime/invocation/{id}/response` or `/error`, or an init failure to
//!   `/runtime/init/error`;
//! - the **Invoke API** (`AWS_ENDPOINT_URL_LAMBDA`): `/async` enqueues its task
//!   event through `Invoke` with `InvocationType=Event`, which lands in the same
//!   queue the binary polls, as it does in Lambda.
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
//!   `async_invoke.rs` implements it for local_lambda too. The deadline is
//!   enforced: an invocation still running at it fails with
//!   `Sandbox.Timedout` and its process is killed, as Lambda ends the
//!   execution environment. A failed or dead `Event` invocation is delivered
//!   again with the same payload and the same request id, up to 2 retries; then
//!   the on-failure destination's record reaches the function in an SQS event,
//!   in the formats AWS documents, and comes back while the function fails it
//!   (the template's event source mapping and queue); the function's answers
//!   are recorded ([`RuntimeApi::async_events`], [`InvocationKind::Sqs`]).
//!
//! **Time is scaled** to the function timeout the test chooses (the deadline
//! given to the binary): every delay of Lambda's is taken at the same fraction
//! of it as of template.yaml's 90 s. With a 3 s timeout, retries come 2 s and
//! 4 s after a failure (Lambda's 60 s and 120 s), an event expires after 120 s
//! (3,600 s), and a failure record the function rejects comes back after 18 s
//! (the queue's 540 s), up to 10 receives. [`Policy`] can change any of them.
//!
//! As in Lambda, each invocation gets an X-Ray trace header
//! (`Lambda-Runtime-Trace-Id`): a trace of its own, or, for an event queued by
//! an `Invoke` that carries `X-Amzn-Trace-Id`, the caller's trace (same `Root`,
//! retries included).

#[path = "async_invoke.rs"]
pub mod async_invoke;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use async_invoke::{Account, EventReport, Policy};
use async_invoke::{Answer, AsyncInvoker, BoxFuture, Delivery, Invocation, Target};

use super::{FUNCTION_NAME, Fixture, dynamodb_endpoint};

/// The deadline the binary is given by [`RuntimeApi::start`].
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest response Lambda accepts from a synchronous invocation (its error
/// message names this exact figure).
const MAX_RESPONSE_BYTES: usize = 6_291_556;
/// How long [`RuntimeApi::invoke`] waits for a result before failing the test.
const INVOKE_PATIENCE: Duration = Duration::from_secs(30);
const ACCOUNT_ID: &str = "123456789012";
const REGION: &str = "us-east-1";
/// The failure queue of the tests' records (its ARN is in every SQS event).
const QUEUE_NAME: &str = "async-api-test-task-failures";

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
    /// The test, through [`RuntimeApi::invoke`] or [`RuntimeApi::submit`].
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

/// An event waiting for the binary to ask for it.
struct Queued {
    request_id: String,
    trace_id: String,
    payload: Bytes,
    client_context: Option<String>,
    kind: InvocationKind,
    /// Whether it counts in `events_in_flight` by itself (an `Event` delivered
    /// once); with Lambda's semantics the whole event counts, retries included.
    counted: bool,
    done: oneshot::Sender<Outcome>,
}

/// An event handed to the binary and not yet answered.
struct Running {
    trace_id: String,
    payload: Bytes,
    kind: InvocationKind,
    counted: bool,
    /// The process (its listener) it was handed to; 0 is the shared listener.
    instance: u64,
    /// Tells this hand-out from a later one of the same request id (a retry).
    handout: u64,
    done: oneshot::Sender<Outcome>,
}

/// A process started by [`FunctionCommand`], with a listener of its own.
struct Instance {
    kill: Arc<Notify>,
    server: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    queued: Notify,
    running: Mutex<HashMap<String, Running>>,
    completed: Mutex<Vec<Completed>>,
    init_errors: Mutex<Vec<InitError>>,
    invoke_calls: Mutex<Vec<InvokeCall>>,
    /// How many times the binary has asked for an event.
    next_polls: Mutex<usize>,
    /// When each of those requests arrived (the bench times init by the first).
    poll_times: Mutex<Vec<Instant>>,
    /// `Event` invocations queued or running (with Lambda's semantics: events
    /// not yet ended, retries and destination included).
    events_in_flight: Mutex<usize>,
    events_changed: Notify,
    /// The deadline given to the binary.
    timeout: Duration,
    /// Lambda's asynchronous semantics and enforced deadlines.
    lambda: bool,
    invoker: OnceLock<AsyncInvoker>,
    async_log: Mutex<Vec<String>>,
    /// Live processes started by [`FunctionCommand`], by instance number.
    instances: Mutex<HashMap<u64, Instance>>,
    /// The `X-Amzn-Trace-Id` of the `Invoke` that queued an event, by the
    /// event's request id: each delivery of it continues that trace.
    callers_traces: Mutex<HashMap<String, String>>,
    last_instance: AtomicU64,
    handouts: AtomicU64,
}

impl Shared {
    /// Queues an invocation; returns its request id and trace header.
    fn enqueue(
        &self,
        request_id: Option<String>,
        payload: Bytes,
        kind: InvocationKind,
        client_context: Option<String>,
    ) -> (String, String, oneshot::Receiver<Outcome>) {
        let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let trace_id = trace_id(
            lock(&self.callers_traces)
                .get(&request_id)
                .map(String::as_str),
        );
        let (done, outcome) = oneshot::channel();
        // With Lambda's semantics the async job counts the event, not each delivery.
        let counted = kind == InvocationKind::Event && !self.lambda;
        if counted {
            *lock(&self.events_in_flight) += 1;
        }
        lock(&self.queue).push_back(Queued {
            request_id: request_id.clone(),
            trace_id: trace_id.clone(),
            payload,
            client_context,
            kind,
            counted,
            done,
        });
        self.queued.notify_one();
        (request_id, trace_id, outcome)
    }

    async fn next(&self) -> Queued {
        loop {
            let notified = self.queued.notified();
            if let Some(queued) = lock(&self.queue).pop_front() {
                return queued;
            }
            notified.await;
        }
    }

    /// Hands `queued` to the process behind listener `instance`, unless that
    /// process has ended (then the event goes back to the front of the queue).
    fn hand_out(
        &self,
        queued: Queued,
        instance: u64,
    ) -> Result<(String, String, Bytes, Option<String>, u64), ()> {
        let instances = lock(&self.instances);
        if instance != 0 && !instances.contains_key(&instance) {
            lock(&self.queue).push_front(queued);
            self.queued.notify_one();
            return Err(());
        }
        let handout = self.handouts.fetch_add(1, Ordering::Relaxed);
        lock(&self.running).insert(
            queued.request_id.clone(),
            Running {
                trace_id: queued.trace_id.clone(),
                payload: queued.payload.clone(),
                kind: queued.kind,
                counted: queued.counted,
                instance,
                handout,
                done: queued.done,
            },
        );
        Ok((
            queued.request_id,
            queued.trace_id,
            queued.payload,
            queued.client_context,
            handout,
        ))
    }

    /// Ends invocation `request_id`; false when no such invocation is running
    /// (or, with `from`, when another process holds it).
    fn complete(&self, request_id: &str, outcome: Outcome, from: Option<u64>) -> bool {
        let running = {
            let mut running = lock(&self.running);
            match running.get(request_id) {
                Some(r) if from.is_none_or(|instance| instance == r.instance) => {
                    running.remove(request_id)
                }
                _ => None,
            }
        };
        let Some(running) = running else {
            return false;
        };
        lock(&self.completed).push(Completed {
            request_id: request_id.to_owned(),
            trace_id: running.trace_id,
            kind: running.kind,
            payload: running.payload,
            outcome: outcome.clone(),
        });
        if running.counted {
            *lock(&self.events_in_flight) -= 1;
            self.events_changed.notify_waiters();
        }
        // The caller may have given up waiting; the record above is what counts.
        let _ = running.done.send(outcome);
        true
    }

    /// The deadline of hand-out `handout` of `request_id` has passed: the
    /// invocation fails as timed out and, as Lambda ends the execution
    /// environment, its process is killed.
    fn expire(&self, request_id: &str, handout: u64) {
        let instance = match lock(&self.running).get(request_id) {
            Some(running) if running.handout == handout => running.instance,
            _ => return,
        };
        let outcome = Outcome::Error {
            error_type: async_invoke::TIMED_OUT.to_owned(),
            message: async_invoke::timed_out_message(request_id, self.timeout),
        };
        self.complete(request_id, outcome, None);
        if let Some(process) = lock(&self.instances).get(&instance) {
            process.kill.notify_one();
        }
    }

    /// Process `instance` has ended: what it held fails as Lambda reports it.
    fn instance_exited(&self, instance: u64, status: ExitStatus) {
        if let Some(process) = lock(&self.instances).remove(&instance) {
            process.server.abort();
        }
        let held: Vec<String> = lock(&self.running)
            .iter()
            .filter(|(_, running)| running.instance == instance)
            .map(|(id, _)| id.clone())
            .collect();
        let how = exit_wording(status);
        for request_id in held {
            let outcome = Outcome::Error {
                error_type: async_invoke::EXITED.to_owned(),
                message: async_invoke::exited_message(&request_id, &how),
            };
            self.complete(&request_id, outcome, None);
        }
    }
}

/// Go's wording of an exit, as Lambda's messages quote it.
fn exit_wording(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal: killed".to_owned(),
        (None, Some(15)) => "signal: terminated".to_owned(),
        (None, Some(6)) => "signal: aborted".to_owned(),
        (None, Some(11)) => "signal: segmentation fault".to_owned(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => "exited".to_owned(),
    }
}

/// What a handler knows: the emulator, and which listener the request came in on.
#[derive(Clone)]
struct Conn {
    shared: Arc<Shared>,
    instance: u64,
}

/// The Runtime API's and the Invoke API's routes, for one listener.
fn routes(conn: Conn) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route(
            "/2015-03-31/functions/{function_name}/invocations",
            post(invoke),
        )
        // Lambda's own limits apply (6 MB responses); axum's 2 MB default must not.
        .layer(DefaultBodyLimit::disable())
        .with_state(conn)
}

/// Runs each delivery of [`AsyncInvoker`] through the emulator's own queue.
struct EmulatorTarget {
    shared: Weak<Shared>,
}

impl Target for EmulatorTarget {
    fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            let Some(shared) = self.shared.upgrade() else {
                return Answer::unhandled("Emulator.Stopped", "the emulator has stopped");
            };
            let kind = match invocation.delivery {
                Delivery::Event { .. } => InvocationKind::Event,
                Delivery::Sqs { .. } => InvocationKind::Sqs,
            };
            let (_, _, outcome) = shared.enqueue(
                Some(invocation.request_id.to_owned()),
                Bytes::copy_from_slice(invocation.payload),
                kind,
                None,
            );
            drop(shared);
            match outcome.await {
                Ok(Outcome::Response(Value::String(text))) if text.is_empty() => {
                    Answer::Response(Vec::new())
                }
                Ok(Outcome::Response(document)) => {
                    Answer::Response(serde_json::to_vec(&document).unwrap_or_default())
                }
                Ok(Outcome::Error {
                    error_type,
                    message,
                }) => Answer::unhandled(&error_type, &message),
                Err(_) => Answer::unhandled("Emulator.Dropped", "the invocation was dropped"),
            }
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running emulator; the server stops when it is dropped.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(invoker) = self.shared.invoker.get() {
            invoker.shutdown();
        }
        for (_, process) in lock(&self.shared.instances).drain() {
            process.server.abort();
        }
    }
}

/// An invocation the test queued and has not awaited yet.
pub struct Submitted {
    pub request_id: String,
    /// The `Lambda-Runtime-Trace-Id` the invocation is given.
    pub trace_id: String,
    outcome: oneshot::Receiver<Outcome>,
}

impl Submitted {
    /// Waits for the function's result; fails the test after 30 s.
    pub async fn outcome(self) -> Outcome {
        match tokio::time::timeout(INVOKE_PATIENCE, self.outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => panic!("invocation {} was dropped", self.request_id),
            Err(_) => panic!(
                "no result for invocation {} within {INVOKE_PATIENCE:?}: is the binary running?",
                self.request_id
            ),
        }
    }
}

impl RuntimeApi {
    /// Starts both APIs on a loopback port the OS picks: a 90 s deadline, not
    /// enforced, and each `Event` invocation delivered once.
    pub async fn start() -> Self {
        Self::serve(Shared {
            timeout: INVOCATION_TIMEOUT,
            ..Shared::default()
        })
        .await
    }

    /// Starts both APIs with Lambda's semantics (module docs) for a function
    /// of timeout `function_timeout`, every other delay scaled to it.
    pub async fn start_with_async_semantics(function_timeout: Duration) -> Self {
        Self::start_with_policy(Policy::scaled(function_timeout)).await
    }

    /// [`RuntimeApi::start_with_async_semantics`] with delays and bounds of
    /// the test's choosing.
    pub async fn start_with_policy(policy: Policy) -> Self {
        let api = Self::serve(Shared {
            timeout: policy.function_timeout,
            lambda: true,
            ..Shared::default()
        })
        .await;
        let account = Account {
            region: REGION.to_owned(),
            account_id: ACCOUNT_ID.to_owned(),
            queue_name: QUEUE_NAME.to_owned(),
        };
        let target = Arc::new(EmulatorTarget {
            shared: Arc::downgrade(&api.shared),
        });
        let log = Arc::downgrade(&api.shared);
        let invoker = AsyncInvoker::new(policy, account, target, move |line| {
            if let Some(shared) = log.upgrade() {
                lock(&shared.async_log).push(line);
            }
        });
        if api.shared.invoker.set(invoker).is_err() {
            unreachable!("the invoker is set once, here");
        }
        api
    }

    async fn serve(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API emulator");
        let address = listener.local_addr().expect("emulator address");
        let router = routes(Conn {
            shared: shared.clone(),
            instance: 0,
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("Runtime API emulator");
        });
        Self {
            address,
            shared,
            server,
        }
    }

    /// The deadline each invocation gets (enforced with Lambda's semantics).
    pub fn function_timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// `host:port`, the form `AWS_LAMBDA_RUNTIME_API` takes.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// `http://host:port`, for `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Queues `payload` as an invocation and returns at once.
    pub fn submit(&self, payload: impl Into<Bytes>) -> Submitted {
        let (request_id, trace_id, outcome) =
            self.shared
                .enqueue(None, payload.into(), InvocationKind::Direct, None);
        Submitted {
            request_id,
            trace_id,
            outcome,
        }
    }

    /// Queues `payload` as an invocation and waits for its result.
    pub async fn invoke(&self, payload: impl Into<Bytes>) -> Outcome {
        self.submit(payload).outcome().await
    }

    /// Waits until no `Event` invocation is queued or running (with Lambda's
    /// semantics: until every event has ended, its retries and its destination
    /// record included), and returns every `Event` invocation completed so far,
    /// each retry one more. Fails the test after `timeout`.
    pub async fn wait_for_events(&self, timeout: Duration) -> Vec<Completed> {
        let settled = async {
            loop {
                let changed = self.shared.events_changed.notified();
                if *lock(&self.shared.events_in_flight) == 0 {
                    return;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(timeout, settled).await.is_err() {
            panic!(
                "{} Event invocation(s) still pending after {timeout:?}",
                lock(&self.shared.events_in_flight)
            );
        }
        self.completed()
            .into_iter()
            .filter(|c| c.kind == InvocationKind::Event)
            .collect()
    }

    /// How many invocations wait for a process to ask for them: Lambda would
    /// start execution environments for them.
    pub fn waiting(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Every invocation completed so far, in the order they ended.
    pub fn completed(&self) -> Vec<Completed> {
        lock(&self.shared.completed).clone()
    }

    /// Every call the function made to the Invoke API.
    pub fn invoke_calls(&self) -> Vec<InvokeCall> {
        lock(&self.shared.invoke_calls).clone()
    }

    /// How many times the binary has asked for an event (`/next`), answered or not.
    pub fn next_polls(&self) -> usize {
        *lock(&self.shared.next_polls)
    }

    /// When each `/next` request arrived, in order.
    pub fn poll_times(&self) -> Vec<Instant> {
        lock(&self.shared.poll_times).clone()
    }

    /// Every init error the binary reported.
    pub fn init_errors(&self) -> Vec<InitError> {
        lock(&self.shared.init_errors).clone()
    }

    /// With Lambda's semantics, every `Event` invocation accepted so far and
    /// what became of it: each attempt's answer, and the destination record
    /// with each SQS event the function was given and its answer.
    pub fn async_events(&self) -> Vec<EventReport> {
        self.shared
            .invoker
            .get()
            .map(AsyncInvoker::reports)
            .unwrap_or_default()
    }

    /// The SQS events of destination records the function was given, and its
    /// answers, in the order they ended.
    pub fn sqs_deliveries(&self) -> Vec<Completed> {
        self.completed()
            .into_iter()
            .filter(|c| c.kind == InvocationKind::Sqs)
            .collect()
    }

    /// One line per delivery, retry and destination step, as local_lambda logs them.
    pub fn async_log(&self) -> Vec<String> {
        lock(&self.shared.async_log).clone()
    }
}

/// Opens a listener of its own for a process about to start: what it answers
/// there is known to be its own.
fn open_instance(shared: &Arc<Shared>, kill: Arc<Notify>) -> (u64, String) {
    {
        let instance = shared.last_instance.fetch_add(1, Ordering::Relaxed) + 1;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .and_then(tokio::net::TcpListener::from_std)
            .expect("bind a process's Runtime API listener");
        let address = listener.local_addr().expect("listener address").to_string();
        let router = routes(Conn {
            shared: shared.clone(),
            instance,
        });
        let server = tokio::spawn(async move {
            // Aborted when its process ends, or with the emulator.
            let _ = axum::serve(listener, router).await;
        });
        lock(&shared.instances).insert(instance, Instance { kill, server });
        (instance, address)
    }
}

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn function_arn() -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}")
}

/// An X-Ray trace header of the form Lambda passes on: in the trace whose
/// `Root` `caller` names (an `Invoke`'s `X-Amzn-Trace-Id`), or a new one; the
/// `Parent` is always new, as Lambda's own segment is.
fn trace_id(caller: Option<&str>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let root = caller
        .and_then(|header| {
            header
                .split(';')
                .find_map(|field| field.strip_prefix("Root="))
        })
        .map_or_else(
            || format!("1-{:08x}-{}", epoch_millis() / 1000, &random[..24]),
            str::to_owned,
        );
    format!("Root={root};Parent={};Sampled=0", &random[16..32])
}

/// `GET /runtime/invocation/next`: hands out the next event, waiting for one.
async fn next_invocation(State(conn): State<Conn>) -> Response {
    let shared = conn.shared;
    lock(&shared.poll_times).push(Instant::now());
    *lock(&shared.next_polls) += 1;
    let queued = shared.next().await;
    let Ok((request_id, trace_id, payload, client_context, handout)) =
        shared.hand_out(queued, conn.instance)
    else {
        // The process behind this listener has ended; nobody reads this.
        return StatusCode::GONE.into_response();
    };
    let deadline = epoch_millis() + shared.timeout.as_millis();
    if shared.lambda {
        let weak = Arc::downgrade(&shared);
        let (timeout, request_id) = (shared.timeout, request_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(shared) = weak.upgrade() {
                shared.expire(&request_id, handout);
            }
        });
    }
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json".to_owned());
    set("lambda-runtime-aws-request-id", request_id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", function_arn());
    set("lambda-runtime-trace-id", trace_id);
    if let Some(client_context) = client_context {
        set("lambda-runtime-client-context", client_context);
    }
    (StatusCode::OK, headers, payload).into_response()
}

/// The Runtime API's answer to a request it refuses.
fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn unknown_request(request_id: &str) -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("Invalid request ID {request_id}"),
    )
}

/// `POST /runtime/invocation/{id}/response`: the function's result. A streamed
/// response (`Lambda-Runtime-Function-Response-Mode: streaming`) is a JSON
/// prelude, eight NUL bytes, then the body; it is recorded as a response
/// document of the same shape a buffered HTTP response has.
async fn invocation_response(
    State(conn): State<Conn>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (shared, from) = (conn.shared, Some(conn.instance));
    if body.len() > MAX_RESPONSE_BYTES {
        let message = format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            body.len()
        );
        let outcome = Outcome::Error {
            error_type: "Function.ResponseSizeTooLarge".to_owned(),
            message: message.clone(),
        };
        return if shared.complete(&request_id, outcome, from) {
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &message,
            )
        } else {
            unknown_request(&request_id)
        };
    }
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"streaming"));
    let document = if streaming {
        streamed_document(&body)
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    if shared.complete(&request_id, Outcome::Response(document), from) {
        accepted()
    } else {
        unknown_request(&request_id)
    }
}

fn streamed_document(body: &[u8]) -> Value {
    const DELIMITER: &[u8] = &[0; 8];
    let split = body
        .windows(DELIMITER.len())
        .position(|window| window == DELIMITER);
    let (prelude, rest) = match split {
        Some(at) => (&body[..at], &body[at + DELIMITER.len()..]),
        None => (&[][..], body),
    };
    let mut document: Value = serde_json::from_slice(prelude).unwrap_or_else(|_| json!({}));
    document["body"] = Value::String(String::from_utf8_lossy(rest).into_owned());
    document
}

/// Reads `{errorType, errorMessage}`; anything else is kept whole as the message.
fn diagnostic(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (value["errorType"].as_str(), value["errorMessage"].as_str()) {
        (Some(error_type), Some(message)) => (error_type.to_owned(), message.to_owned()),
        _ => (
            "Unknown".to_owned(),
            String::from_utf8_lossy(body).into_owned(),
        ),
    }
}

/// `POST /runtime/invocation/{id}/error`: a function error.
async fn invocation_error(
    State(conn): State<Conn>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let (error_type, message) = diagnostic(&body);
    if conn.shared.complete(
        &request_id,
        Outcome::Error {
            error_type,
            message,
        },
        Some(conn.instance),
    ) {
        accepted()
    } else {
        unknown_request(&request_id)
    }
}

/// `POST /runtime/init/error`: the function could not start.
async fn init_error(State(conn): State<Conn>, headers: HeaderMap, body: Bytes) -> Response {
    lock(&conn.shared.init_errors).push(InitError {
        header_error_type: headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
    });
    accepted()
}

/// `POST /2015-03-31/functions/{name}/invocations`: Lambda's `Invoke`.
/// `Event` queues and answers 202 at once (with Lambda's semantics, through
/// the asynchronous queue of `async_invoke.rs`); `RequestResponse` (the default)
/// waits for the result. A function that invokes itself synchronously while
/// it runs one invocation at a time waits for ever, as it would in Lambda.
async fn invoke(
    State(conn): State<Conn>,
    Path(function_name): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    let shared = conn.shared;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let invocation_type = header("x-amz-invocation-type").unwrap_or("RequestResponse".to_owned());
    let trace_header = header("x-amzn-trace-id");
    let kind = match invocation_type.as_str() {
        "Event" => InvocationKind::Event,
        "RequestResponse" => InvocationKind::RequestResponse,
        "DryRun" => {
            record_call(
                &shared,
                function_name,
                invocation_type,
                payload,
                None,
                trace_header,
            );
            return StatusCode::NO_CONTENT.into_response();
        }
        other => {
            return (
                StatusCode::BAD_REQUEST,
                [("x-amzn-errortype", "InvalidParameterValueException")],
                axum::Json(json!({
                    "Type": "User",
                    "message": format!("Unsupported invocation type {other}"),
                })),
            )
                .into_response();
        }
    };
    if kind == InvocationKind::Event
        && let Some(invoker) = shared.invoker.get()
    {
        // Lambda's semantics: the event counts as in flight until it has
        // ended, retries and destination included.
        let (request_id, job) = invoker.submit(&function_name, payload.to_vec());
        if let Some(caller) = &trace_header {
            lock(&shared.callers_traces).insert(request_id.clone(), caller.clone());
        }
        *lock(&shared.events_in_flight) += 1;
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let _ = job.await;
            if let Some(shared) = weak.upgrade() {
                *lock(&shared.events_in_flight) -= 1;
                shared.events_changed.notify_waiters();
            }
        });
        record_call(
            &shared,
            function_name,
            invocation_type,
            payload,
            Some(request_id.clone()),
            trace_header,
        );
        return (StatusCode::ACCEPTED, [("x-amzn-requestid", request_id)]).into_response();
    }
    let client_context = header("x-amz-client-context")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Some(caller) = &trace_header {
        lock(&shared.callers_traces).insert(request_id.clone(), caller.clone());
    }
    let (request_id, _, outcome) =
        shared.enqueue(Some(request_id), payload.clone(), kind, client_context);
    record_call(
        &shared,
        function_name,
        invocation_type,
        payload,
        Some(request_id.clone()),
        trace_header,
    );
    let request_id_header = [("x-amzn-requestid", request_id.clone())];
    if kind == InvocationKind::Event {
        return (StatusCode::ACCEPTED, request_id_header).into_response();
    }
    match outcome.await {
        Ok(Outcome::Response(document)) => (
            StatusCode::OK,
            request_id_header,
            [("x-amz-executed-version", "$LATEST")],
            axum::Json(document),
        )
            .into_response(),
        Ok(Outcome::Error {
            error_type,
            message,
        }) => (
            StatusCode::OK,
            request_id_header,
            [
                ("x-amz-executed-version", "$LATEST"),
                ("x-amz-function-error", "Unhandled"),
            ],
            axum::Json(json!({"errorType": error_type, "errorMessage": message})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-amzn-errortype", "ServiceException")],
            axum::Json(json!({"Type": "Service", "message": "invocation dropped"})),
        )
            .into_response(),
    }
}

fn record_call(
    shared: &Shared,
    function_name: String,
    invocation_type: String,
    payload: Bytes,
    request_id: Option<String>,
    trace_header: Option<String>,
) {
    lock(&shared.invoke_calls).push(InvokeCall {
        function_name,
        invocation_type,
        payload,
        request_id,
        trace_header,
    });
}

/// The function binary as Lambda would start it: the environment of a
/// `provided.al2023` function of 128 MB, pointed at the emulator and at a
/// fixture's tables. Nothing else is inherited from the test's environment.
/// Clone it to start another process of the same function (Lambda starts a
/// new execution environment after one died).
#[derive(Clone)]
pub struct FunctionCommand {
    program: PathBuf,
    env: BTreeMap<String, String>,
    /// The emulator, and the address of its shared listener.
    api: (Arc<Shared>, String),
}

impl FunctionCommand {
    /// The environment for the function named [`FUNCTION_NAME`], served by
    /// `api`, over `fixture`'s tables on the local DynamoDB.
    pub fn new(api: &RuntimeApi, fixture: &Fixture) -> Self {
        let env = [
            ("AWS_LAMBDA_RUNTIME_API", api.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{FUNCTION_NAME}"),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2025/11/26/[$LATEST]0123456789abcdef0123456789abcdef".to_owned(),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint().to_owned()),
            ("AWS_ENDPOINT_URL_LAMBDA", api.url()),
            ("USERS_TABLE", fixture.users_table.clone()),
            ("TASKS_TABLE", fixture.tasks_table.clone()),
            // The per-caller limit's counter is written, as in production,
            // but never reached by a test's or the bench's hundreds of tasks.
            ("TASKS_PER_MINUTE_PER_CALLER", "10000".to_owned()),
            ("TZ", ":UTC".to_owned()),
        ];
        Self {
            program: PathBuf::from(env!("CARGO_BIN_EXE_async-api")),
            env: env
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            api: (api.shared.clone(), api.address()),
        }
    }

    /// Sets (or replaces) one variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Runs another executable in the same environment (the bench's floors).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Leaves one variable out.
    pub fn without_env(mut self, name: &str) -> Self {
        self.env.remove(name);
        self
    }

    /// Starts the binary; it is killed when the returned handle is dropped.
    /// Pointed at the emulator, it polls a listener of its own.
    pub fn spawn(self) -> FunctionProcess {
        let (shared, shared_address) = &self.api;
        let kill = Arc::new(Notify::new());
        let mut env = self.env.clone();
        let instance = match env.get("AWS_LAMBDA_RUNTIME_API") {
            Some(address) if address == shared_address => {
                let (instance, address) = open_instance(shared, kill.clone());
                env.insert("AWS_LAMBDA_RUNTIME_API".to_owned(), address);
                Some(instance)
            }
            _ => None,
        };
        let spawned = tokio::process::Command::new(&self.program)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                if let Some(instance) = instance
                    && let Some(process) = lock(&shared.instances).remove(&instance)
                {
                    process.server.abort();
                }
                panic!("start the function binary: {err}");
            }
        };
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            capture(child.stdout.take().expect("stdout pipe"), stdout.clone()),
            capture(child.stderr.take().expect("stderr pipe"), stderr.clone()),
        ];
        let pid = child.id();
        let (exited, exit) = tokio::sync::watch::channel(None);
        let weak = Arc::downgrade(shared);
        let killed = kill.clone();
        // Owns the child: ends it when asked (by the test, or by the
        // emulator at a deadline), and tells the emulator when it has ended.
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                () = killed.notified() => {
                    // It may have exited already; wait() reports how.
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let status = status.expect("wait for the function binary");
            if let (Some(instance), Some(shared)) = (instance, weak.upgrade()) {
                shared.instance_exited(instance, status);
            }
            let _ = exited.send(Some(status));
        });
        FunctionProcess {
            pid,
            kill,
            exit,
            stdout,
            stderr,
            readers,
        }
    }
}

fn capture(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lock(&lines).push(line);
        }
    })
}

/// The running binary and what it has printed.
pub struct FunctionProcess {
    pid: Option<u32>,
    /// Asks the task that owns the child to kill it.
    kill: Arc<Notify>,
    /// `Some` once the process has ended.
    exit: tokio::sync::watch::Receiver<Option<ExitStatus>>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Everything a process printed, once it has ended.
#[derive(Debug)]
pub struct ProcessOutput {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill.notify_one();
    }
}

impl FunctionProcess {
    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.exit.borrow().is_none().then_some(self.pid).flatten()
    }

    /// The stdout lines read so far (the function's logs).
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// The stderr lines read so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        lock(&self.stderr).clone()
    }

    /// Kills the process (SIGKILL) and returns at once, as a crash would end
    /// it: whatever invocation it holds fails with `Runtime.ExitError`.
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Waits until the process has ended, however.
    async fn ended(&mut self) -> ExitStatus {
        let status = self
            .exit
            .wait_for(Option::is_some)
            .await
            .expect("the task that owns the function binary");
        status.expect("an exit status")
    }

    /// Waits for the process to exit on its own (failing the test after
    /// `timeout`) and returns all it printed.
    pub async fn wait_for_exit(mut self, timeout: Duration) -> ProcessOutput {
        let status = match tokio::time::timeout(timeout, self.ended()).await {
            Ok(status) => status,
            Err(_) => panic!(
                "the function binary still runs after {timeout:?}; stdout: {:?}, stderr: {:?}",
                self.stdout_lines(),
                self.stderr_lines()
            ),
        };
        self.collect(status).await
    }

    /// Kills the process and returns all it printed, to the last line.
    pub async fn stop(mut self) -> ProcessOutput {
        self.kill.notify_one();
        let status = self.ended().await;
        self.collect(status).await
    }

    async fn collect(mut self, status: ExitStatus) -> ProcessOutput {
        for reader in self.readers.drain(..) {
            // A reader ends at EOF, which follows the exit.
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        ProcessOutput {
            status,
            stdout: self.stdout_lines(),
            stderr: self.stderr_lines(),
        }
    }
}
