//! The emulator's state: the invocations queued, handed out and completed,
//! the processes that hold them, and how each ends (a result, a deadline, a
//! process that died).

use std::collections::{HashMap, VecDeque};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{Completed, FunctionId, InitError, InvocationKind, InvokeCall, Outcome, lock};
use crate::async_invoke::{
    AsyncInvoker, EXITED, TIMED_OUT, epoch_millis, exited_message, timed_out_message,
};

/// An event waiting for the binary to ask for it.
pub(super) struct Queued {
    pub(super) request_id: String,
    pub(super) trace_id: String,
    pub(super) payload: Bytes,
    pub(super) client_context: Option<String>,
    pub(super) kind: InvocationKind,
    /// Whether it counts in `events_in_flight` by itself (an `Event` delivered
    /// once); with Lambda's semantics the whole event counts, retries included.
    pub(super) counted: bool,
    pub(super) done: oneshot::Sender<Outcome>,
}

/// An event handed to the binary and not yet answered.
pub(super) struct Running {
    pub(super) trace_id: String,
    pub(super) payload: Bytes,
    pub(super) kind: InvocationKind,
    pub(super) counted: bool,
    /// The process (its listener) it was handed to; 0 is the shared listener.
    pub(super) instance: u64,
    /// Tells this hand-out from a later one of the same request id (a retry).
    pub(super) handout: u64,
    pub(super) done: oneshot::Sender<Outcome>,
}

/// A process started by [`FunctionCommand`], with a listener of its own.
pub(super) struct Instance {
    pub(super) kill: Arc<Notify>,
    pub(super) server: JoinHandle<()>,
}

#[derive(Default)]
pub(super) struct Shared {
    /// The function served, for its ARN and its processes' environment.
    pub(super) function: FunctionId,
    pub(super) queue: Mutex<VecDeque<Queued>>,
    pub(super) queued: Notify,
    pub(super) running: Mutex<HashMap<String, Running>>,
    pub(super) completed: Mutex<Vec<Completed>>,
    pub(super) init_errors: Mutex<Vec<InitError>>,
    pub(super) invoke_calls: Mutex<Vec<InvokeCall>>,
    /// How many times the binary has asked for an event.
    pub(super) next_polls: Mutex<usize>,
    /// When each of those requests arrived (the bench times init by the first).
    pub(super) poll_times: Mutex<Vec<Instant>>,
    /// `Event` invocations queued or running (with Lambda's semantics: events
    /// not yet ended, retries and destination included).
    pub(super) events_in_flight: Mutex<usize>,
    pub(super) events_changed: Notify,
    /// The deadline given to the binary.
    pub(super) timeout: Duration,
    /// Lambda's asynchronous semantics and enforced deadlines.
    pub(super) lambda: bool,
    pub(super) invoker: OnceLock<AsyncInvoker>,
    pub(super) async_log: Mutex<Vec<String>>,
    /// Live processes started by [`FunctionCommand`], by instance number.
    pub(super) instances: Mutex<HashMap<u64, Instance>>,
    /// The `X-Amzn-Trace-Id` of the `Invoke` that queued an event, by the
    /// event's request id: each delivery of it continues that trace.
    pub(super) callers_traces: Mutex<HashMap<String, String>>,
    pub(super) last_instance: AtomicU64,
    pub(super) handouts: AtomicU64,
}

impl Shared {
    /// Queues an invocation; returns its request id and trace header.
    pub(super) fn enqueue(
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

    pub(super) async fn next(&self) -> Queued {
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
    pub(super) fn hand_out(
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
    pub(super) fn complete(&self, request_id: &str, outcome: Outcome, from: Option<u64>) -> bool {
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
    pub(super) fn expire(&self, request_id: &str, handout: u64) {
        let instance = match lock(&self.running).get(request_id) {
            Some(running) if running.handout == handout => running.instance,
            _ => return,
        };
        let outcome = Outcome::Error {
            error_type: TIMED_OUT.to_owned(),
            message: timed_out_message(request_id, self.timeout),
        };
        self.complete(request_id, outcome, None);
        if let Some(process) = lock(&self.instances).get(&instance) {
            process.kill.notify_one();
        }
    }

    /// Process `instance` has ended: what it held fails as Lambda reports it.
    pub(super) fn instance_exited(&self, instance: u64, status: ExitStatus) {
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
                error_type: EXITED.to_owned(),
                message: exited_message(&request_id, &how),
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

/// An X-Ray trace header of the form Lambda passes on: in the trace whose
/// `Root` `caller` names (an `Invoke`'s `X-Amzn-Trace-Id`), or a new one; the
/// `Parent` is always new, as Lambda's own segment is.
pub(super) fn trace_id(caller: Option<&str>) -> String {
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
