//! The asynchronous queue: each accepted event's attempts, retries and
//! destination, run as a background job.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::{AbortHandle, JoinHandle};

use super::{
    Account, Answer, Condition, Delivery, DestinationReport, EventEnd, EventReport, Invocation,
    MessageState, Policy, QueueMessage, Receive, Target, epoch_millis, failed_items,
    invocation_record, receipt_handle, sqs_event,
};

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
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use local_lambda::async_invoke::{
///     Account, Answer, AsyncInvoker, BoxFuture, EventEnd, Invocation, Policy, Target,
/// };
///
/// /// A function that fails every event: three attempts, then the failure record.
/// struct Failing;
///
/// impl Target for Failing {
///     fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
///         Box::pin(async move {
///             if invocation.payload.starts_with(b"{\"Records\"") {
///                 // The failure record, in an SQS event: processed.
///                 Answer::Response(b"{}".to_vec())
///             } else {
///                 Answer::unhandled("Failed", "no")
///             }
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A 90 ms function: retries after 60 ms and 120 ms.
/// let policy = Policy::scaled(Duration::from_millis(90));
/// let invoker = AsyncInvoker::new(policy, Account::default(), Arc::new(Failing), |line| {
///     println!("{line}")
/// });
/// let (request_id, job) = invoker.submit("my-function", br#"{"n": 1}"#.to_vec());
/// let report = job.await.unwrap();
/// assert_eq!(report.request_id, request_id);
/// assert_eq!(report.attempts.len(), 3);
/// let Some(EventEnd::Destination(destination)) = report.end else { unreachable!() };
/// assert_eq!(destination.record["requestContext"]["condition"], "RetriesExhausted");
/// assert_eq!(destination.receives.len(), 1);
/// # }
/// ```
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
