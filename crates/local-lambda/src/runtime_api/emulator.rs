//! The running emulator ([`RuntimeApi`]): its listeners, how it starts (with
//! or without Lambda's asynchronous semantics), and what a test reads of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::invocations::{Instance, Shared};
use super::invoke_api::EmulatorTarget;
use super::routes::{Conn, routes};
use super::{Completed, FunctionId, InitError, InvocationKind, InvokeCall, Outcome, lock};
use crate::async_invoke::{AsyncInvoker, EventReport, Policy};

/// The deadline the binary is given by [`RuntimeApi::start`].
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(90);
/// How long [`Submitted::outcome`] waits for a result before failing the test.
const INVOKE_PATIENCE: Duration = Duration::from_secs(30);

/// The running emulator; the server stops when it is dropped.
///
/// ```
/// use local_lambda::runtime_api::{FunctionId, RuntimeApi};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let api = RuntimeApi::start(FunctionId::named("my-function")).await;
/// // The function binary would be given `AWS_LAMBDA_RUNTIME_API=<api.address()>`
/// // (see `FunctionCommand`), poll `/next`, and answer this invocation.
/// let submitted = api.submit(r#"{"hello": "world"}"#);
/// assert!(!submitted.request_id.is_empty());
/// assert_eq!(api.waiting(), 1);
/// assert!(api.url().starts_with("http://127.0.0.1:"));
/// # }
/// ```
pub struct RuntimeApi {
    address: SocketAddr,
    pub(super) shared: Arc<Shared>,
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
    /// Starts both APIs for `function` on a loopback port the OS picks: a 90 s
    /// deadline, not enforced, and each `Event` invocation delivered once.
    pub async fn start(function: FunctionId) -> Self {
        Self::serve(Shared {
            function,
            timeout: INVOCATION_TIMEOUT,
            ..Shared::default()
        })
        .await
    }

    /// Starts both APIs with Lambda's semantics (module docs) for a function
    /// of timeout `function_timeout`, every other delay scaled to it.
    pub async fn start_with_async_semantics(
        function: FunctionId,
        function_timeout: Duration,
    ) -> Self {
        Self::start_with_policy(function, Policy::scaled(function_timeout)).await
    }

    /// [`RuntimeApi::start_with_async_semantics`] with delays and bounds of
    /// the test's choosing.
    pub async fn start_with_policy(function: FunctionId, policy: Policy) -> Self {
        let account = function.account.clone();
        let api = Self::serve(Shared {
            function,
            timeout: policy.function_timeout,
            lambda: true,
            ..Shared::default()
        })
        .await;
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

    /// One line per delivery, retry and destination step, as the `local-lambda`
    /// binary logs them.
    pub fn async_log(&self) -> Vec<String> {
        lock(&self.shared.async_log).clone()
    }
}

/// Opens a listener of its own for a process about to start: what it answers
/// there is known to be its own.
pub(super) fn open_instance(shared: &Arc<Shared>, kill: Arc<Notify>) -> (u64, String) {
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
