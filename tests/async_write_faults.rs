//! One key, one task, whatever fails on the way: `POST /async` with an
//! `Idempotency-Key` under faults at the wire (issue 15, "What must hold").
//!
//! The function runs in this process, its DynamoDB calls through the fault
//! proxy (support/fault_proxy.rs) and its `Invoke`s to the fake Lambda
//! (support/fake_lambda.rs), with short SDK timeouts ([`ATTEMPT_TIMEOUT`] per
//! attempt, 3 attempts, as the function's own 2 s and 3), so that a lost
//! answer costs about a second rather than six. Its log lines are captured
//! (JSON, as in Lambda) to see which tasks logged `task started`.
//!
//! The property, over every write a fault-free keyed POST makes (the key's
//! reservation, the caller's start counter, the task record, the enqueued
//! mark, the key's answer: counted, not assumed) and each fault kind:
//! - throttled: from the k-th DynamoDB write on, every DynamoDB request is
//!   throttled (the SDK retries, then gives up);
//! - answer lost: from the k-th write on, every request lands (a write is
//!   applied, a condition evaluated) and its answer is lost (the SDK's attempt
//!   timeout cuts it, and it tries again);
//! - and the `Invoke`'s lost answers: Lambda accepts the first m of the SDK's
//!   3 tries and their answers are lost (m = 3: every try).
//!
//! Each case sends the POST, heals the faults, retries with the same key (an
//! immediate retry while the key is held must be a 409; then after the hold,
//! ended by [`end_hold`]), asks once more (a replay), and delivers every
//! event the fake Lambda received through the function, with a deadline:
//! after the retries (the issue's order), and again with the first request's
//! events delivered before the retry (AWS's order: Lambda delivers within
//! seconds, a retry after the hold comes 30 s later; an event given back with
//! a function error is delivered again after the retry, as Lambda retries
//! it). Then:
//! - a caller told 5xx has no task that ever starts its work: no task whose
//!   record that request wrote logs `task started`, has its claim or its
//!   start land, reads `running` or `succeeded`, or counts an attempt;
//! - a 202 task succeeds once delivered (attempts 1: one start landed, its
//!   result), also when
//!   Lambda delivers it before the retry: its delivery marks it once its
//!   request's `answer_by` has passed;
//! - a retry with the key answers that task (the same `task_id`), or, when
//!   the first got 5xx, a fresh task that succeeds; every 202 for the key
//!   names one task, and the replay repeats it with `Idempotent-Replayed`;
//! - per key, at most one task starts its work, once, and only a task some
//!   caller was answered 202 with.
//!
//! Every case is run, and every broken promise reported with the case's trace
//! (the DynamoDB calls with their fault and DynamoDB's status, the events, the
//! answers, the deliveries, the records) before the test fails. The
//! enumeration is fixed: no randomness. The issue's three findings, and a
//! request that outlives its key's hold, are regression cases of their own
//! below.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;
#[path = "support/task_logs.rs"]
mod task_logs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use async_api::Function;
use aws_sdk_dynamodb::types::AttributeValue;
use fault_proxy::{Call, Fault, FaultProxy, Rule, Seen};
use serde_json::{Value, json};
use support::fake_lambda::{FakeLambda, Invocation};
use support::{Fixture, Reply, events, invoke_with_deadline, now_millis};

/// The body of every POST: a short task, so that a delivery runs it at once.
const BODY: &str = r#"{"delay_ms": 50}"#;
/// The result a task of [`BODY`] records.
fn expected_result() -> Value {
    json!({"waited_ms": 50})
}
/// The SDK's attempt timeout in the function under test: a lost answer is
/// given up after this, and tried again (3 attempts in all).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(400);
/// The POST's invocation deadline: its task's `answer_by`, after which a
/// delivery that finds the task unmarked marks it and runs it. Longer than the
/// slowest faulted POST (about 5 s: four calls each given up after 3 lost
/// answers), as Lambda would end the request's invocation there.
const POST_DEADLINE: Duration = Duration::from_secs(8);
/// Each delivery's invocation deadline.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);
/// How late the fake Lambda answers an `Invoke` whose answer is lost: far
/// past the SDK's attempt timeout.
const LATE: Duration = Duration::from_secs(5);
/// Whether an update is the claim (src/tasks/claims.rs): `running` under a
/// new `claim_id`. It lands only when a delivery took the task.
fn is_claim(update: &str) -> bool {
    update.contains("#status = :running") && update.contains("claim_id = :claim")
}

/// Whether an update is the start, which counts an attempt: it lands only
/// when a delivery that holds the task's claim begins its work.
fn is_start(update: &str) -> bool {
    update.contains("attempts = attempts + :one")
}
/// The prefix of a key record's id in the tasks table.
const KEY_RECORD: &str = "idempotency-key#";

// ---------------------------------------------------------------------------
// The function under test, its log lines, the key's hold
// ---------------------------------------------------------------------------

/// The function with the fixture's tables, DynamoDB at `dynamodb`, `Invoke`
/// at `lambda`, short SDK bounds (`Fixture::state_through`) and the per-caller
/// limit at its default, so that the caller's start counter is one of the
/// writes.
fn function_through(
    fixture: &Fixture,
    dynamodb: &str,
    lambda: &str,
    attempt_timeout: Duration,
) -> Function {
    let mut state = fixture.state_through(dynamodb, lambda, attempt_timeout);
    state.config.tasks_per_minute_per_caller = 60;
    Function::new(state)
}

/// The cases take turns: their SDK attempts give up after 400 ms, and a
/// case slowed past that by another's load would be another case.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Every log line the function wrote in this test binary (JSON, with its
/// spans, as `AWS_LAMBDA_LOG_FORMAT=JSON` has it).
fn captured() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(Mutex::default)
}

/// One log line being written; captured whole when the formatter drops it.
struct LineWriter(Vec<u8>);

impl std::io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let mut lines = captured().lock().unwrap_or_else(|e| e.into_inner());
        lines.extend(text.lines().map(str::to_owned));
    }
}

/// Installs the capture, once per test binary.
fn capture_logs() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        use lambda_http::tracing::subscriber;
        let _ = subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(subscriber::EnvFilter::new("async_api=info"))
            .with_writer(|| LineWriter(Vec::new()))
            .try_init();
    });
}

/// How many times `task_id` logged `task started`.
fn starts(task_id: &str) -> usize {
    let lines = captured().lock().unwrap_or_else(|e| e.into_inner()).clone();
    task_logs::lines_about(&task_logs::log_lines(&lines), task_id, "task started").len()
}

/// The key record of `key` (its id contains the key), read directly.
async fn key_record(fixture: &Fixture, key: &str) -> Option<HashMap<String, AttributeValue>> {
    let items = fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    items.into_iter().find(|item| {
        matches!(item.get("task_id"), Some(AttributeValue::S(id)) if id.starts_with(KEY_RECORD) && id.ends_with(key))
    })
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(n)) => Some(n.clone()),
        Some(AttributeValue::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// Ends the key's hold now. A retry with the key may take a request over only
/// after the key's 30 s hold (`RESERVATION_HOLD`, src/tasks/idempotency.rs);
/// rather than wait 30 s in every case, the key record's `hold_until` is
/// written into the past directly in the local DynamoDB, as if the hold had
/// passed.
async fn end_hold(fixture: &Fixture, key: &str) {
    let record = key_record(fixture, key).await.expect("the key's record");
    fixture
        .dynamodb
        .update_item()
        .table_name(&fixture.tasks_table)
        .key("task_id", record["task_id"].clone())
        .update_expression("SET hold_until = :past")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((now_millis() - 1_000).to_string()),
        )
        .send()
        .await
        .expect("end the key's hold");
}

/// The event of `POST /async` with [`BODY`] and `key`.
fn keyed_post(key: &str) -> String {
    events::with_headers(
        &events::http_api("POST", "/async", Some(BODY)),
        &[("idempotency-key", Some(key))],
    )
}

/// Sends `POST /async` with `key`, its invocation's deadline
/// [`POST_DEADLINE`] away.
async fn post(function: &Function, key: &str) -> Reply {
    let deadline = now_millis() + POST_DEADLINE.as_millis() as u64;
    invoke_with_deadline(function, &keyed_post(key), deadline)
        .await
        .expect("an HTTP answer")
}

/// Delivers every event the fake Lambda received, in order, through
/// `function`: what each delivery answered (its outcome, or its error).
async fn deliver_all(function: &Function, invocations: &[Invocation]) -> Vec<String> {
    let mut answers = Vec::new();
    for invocation in invocations {
        let payload = String::from_utf8(invocation.payload.to_vec()).expect("UTF-8");
        let deadline = now_millis() + DELIVERY_DEADLINE.as_millis() as u64;
        answers.push(
            match invoke_with_deadline(function, &payload, deadline).await {
                Ok(reply) => reply.body.to_string(),
                Err(err) => format!("function error: {err}"),
            },
        );
    }
    answers
}

fn is_write(operation: &str) -> bool {
    matches!(operation, "PutItem" | "UpdateItem" | "DeleteItem")
}

fn update_has(seen: &Seen<'_>, text: &str) -> bool {
    seen.body["UpdateExpression"]
        .as_str()
        .is_some_and(|update| update.contains(text))
}

// ---------------------------------------------------------------------------
// One case: faults, the POST, the heal, the retries, the deliveries
// ---------------------------------------------------------------------------

/// What goes wrong in a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Nothing: the fault-free request, whose writes are counted.
    None,
    /// From the k-th DynamoDB write on, every DynamoDB request is throttled.
    Throttled { from_write: usize },
    /// From the k-th DynamoDB write on, every request lands and its answer is lost.
    AnswerLost { from_write: usize },
    /// Lambda accepts the first `tries` `Invoke` tries and their answers are lost.
    InvokeAnswerLost { tries: usize },
}

impl Kind {
    fn name(self) -> String {
        match self {
            Self::None => "fault-free".to_owned(),
            Self::Throttled { from_write } => format!("throttled from write {from_write}"),
            Self::AnswerLost { from_write } => format!("answer lost from write {from_write}"),
            Self::InvokeAnswerLost { tries } => format!("Invoke answer lost on {tries} of 3 tries"),
        }
    }
}

/// When Lambda delivers the events the first request enqueued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// After the retries (as the issue's property has it).
    RetryThenDeliver,
    /// At once, before the retry: as in AWS, where an event is delivered
    /// within seconds and a retry after the key's hold comes 30 s later.
    DeliverThenRetry,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Self::RetryThenDeliver => "retry, then deliver",
            Self::DeliverThenRetry => "deliver, then retry",
        }
    }
}

/// The proxy's state for a case: counts writes, trips at the k-th, heals.
#[derive(Default)]
struct Plan {
    writes: AtomicUsize,
    tripped: AtomicBool,
    healed: AtomicBool,
}

/// The proxy rule of `kind`, driven by `plan`.
fn rule_of(kind: Kind, plan: Arc<Plan>) -> Rule {
    let (from_write, fault) = match kind {
        Kind::Throttled { from_write } => (from_write, Fault::Throttle),
        Kind::AnswerLost { from_write } => (from_write, Fault::LoseAnswer),
        Kind::None | Kind::InvokeAnswerLost { .. } => (usize::MAX, Fault::Pass),
    };
    Box::new(move |seen| {
        if plan.healed.load(Ordering::SeqCst) {
            return Fault::Pass;
        }
        if is_write(seen.operation) && plan.writes.fetch_add(1, Ordering::SeqCst) + 1 >= from_write
        {
            plan.tripped.store(true, Ordering::SeqCst);
        }
        if plan.tripped.load(Ordering::SeqCst) {
            fault
        } else {
            Fault::Pass
        }
    })
}

/// An answer as the trace shows it.
#[derive(Clone, Debug)]
struct Answered {
    what: &'static str,
    status: u16,
    task_id: Option<String>,
    replayed: bool,
    body: Value,
    retry_after: Option<String>,
}

impl Answered {
    /// A request that got no answer.
    fn none(what: &'static str) -> Self {
        Self {
            what,
            status: 0,
            task_id: None,
            replayed: false,
            body: Value::Null,
            retry_after: None,
        }
    }

    fn of(what: &'static str, reply: &Reply) -> Self {
        Self {
            what,
            status: reply.status,
            task_id: reply.body["task_id"].as_str().map(str::to_owned),
            replayed: reply.header("idempotent-replayed") == Some("true"),
            body: reply.body.clone(),
            retry_after: reply.header("retry-after").map(str::to_owned),
        }
    }
}

/// What a case did and came to.
struct Run {
    name: String,
    order: Order,
    elapsed: Duration,
    /// The DynamoDB writes sent before the heal (the first request's).
    first_writes: Vec<String>,
    calls: Vec<Call>,
    /// How many calls were made before the heal.
    calls_before_heal: usize,
    events: Vec<String>,
    answers: Vec<Answered>,
    deliveries: Vec<String>,
    /// Every task id: record, event or answer; with its record and its starts.
    tasks: BTreeMap<String, TaskSeen>,
    t0: u64,
}

#[derive(Debug)]
struct TaskSeen {
    /// Its record at the end, if any.
    record: Option<HashMap<String, AttributeValue>>,
    starts: usize,
    /// Claims that landed on it (the proxy's records).
    claims_landed: usize,
    /// Starts (each counts an attempt) that landed on it.
    starts_landed: usize,
    /// Whether its record was written by the first request.
    written_by_first: bool,
}

fn short(id: &str) -> String {
    if id.starts_with(KEY_RECORD) {
        "key".to_owned()
    } else if id.starts_with("tasks-per-minute#") {
        "counter".to_owned()
    } else {
        id.chars().take(8).collect()
    }
}

impl Run {
    /// The trace: every DynamoDB call, event, answer, delivery and record.
    fn trace(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "--- {} ({:.1} s)",
            self.name,
            self.elapsed.as_secs_f64()
        );
        // Consecutive calls alike (a delivery polling, the SDK's tries) as one line.
        let line = |call: &Call| {
            format!(
                "{:<10} {:<8} {:<60} {:<10} -> {}",
                call.operation,
                call.item_id.as_deref().map(short).unwrap_or_default(),
                call.update
                    .as_deref()
                    .unwrap_or_default()
                    .chars()
                    .take(60)
                    .collect::<String>(),
                format!("{:?}", call.fault),
                match (call.upstream_status, call.landed()) {
                    (Some(_), true) if is_write(&call.operation) => "landed".to_owned(),
                    (Some(status), _) => format!("DynamoDB {status}"),
                    (None, _) => "not forwarded".to_owned(),
                }
            )
        };
        let mut i = 0;
        while i < self.calls.len() {
            if i == self.calls_before_heal {
                let _ = writeln!(out, "  ~~ healed ~~");
            }
            let text = line(&self.calls[i]);
            let mut n = 1;
            while i + n < self.calls.len()
                && i + n != self.calls_before_heal
                && line(&self.calls[i + n]) == text
            {
                n += 1;
            }
            let times = if n > 1 {
                format!(
                    " x{n} (to {} ms)",
                    self.calls[i + n - 1].at_ms.saturating_sub(self.t0)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:>6} ms {text}{times}",
                self.calls[i].at_ms.saturating_sub(self.t0)
            );
            i += n;
        }
        let _ = writeln!(
            out,
            "  events: {:?}",
            self.events.iter().map(|t| short(t)).collect::<Vec<_>>()
        );
        for answer in &self.answers {
            let _ = writeln!(
                out,
                "  {}: {} task {} replayed {} retry-after {:?} {}",
                answer.what,
                answer.status,
                answer.task_id.as_deref().map(short).unwrap_or_default(),
                answer.replayed,
                answer.retry_after,
                if answer.status == 202 {
                    String::new()
                } else {
                    answer.body.to_string()
                }
            );
        }
        for (i, delivery) in self.deliveries.iter().enumerate() {
            let _ = writeln!(out, "  delivery {}: {delivery}", i + 1);
        }
        for (task_id, seen) in &self.tasks {
            let record = seen.record.as_ref().map(|item| {
                ["status", "attempts", "enqueued", "error", "result"]
                    .iter()
                    .filter_map(|name| text(item, name).map(|v| format!("{name}={v}")))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            let _ = writeln!(
                out,
                "  task {}: {} · task started x{} · claims landed {} · starts landed {} · written by the first request: {}",
                short(task_id),
                record.unwrap_or_else(|| "no record".to_owned()),
                seen.starts,
                seen.claims_landed,
                seen.starts_landed,
                seen.written_by_first
            );
        }
        out
    }

    /// One line for the summary.
    fn summary(&self) -> String {
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|a| {
                format!(
                    "{} {}{}",
                    a.what,
                    a.status,
                    a.task_id
                        .as_deref()
                        .map(|t| format!(" {}", short(t)))
                        .unwrap_or_default()
                )
            })
            .collect();
        let started: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, seen)| seen.starts > 0)
            .map(|(id, seen)| format!("{} x{}", short(id), seen.starts))
            .collect();
        format!(
            "{:<40} {:>5.1} s · {} · {} event(s) · started: [{}]",
            self.name,
            self.elapsed.as_secs_f64(),
            answers.join(", "),
            self.events.len(),
            started.join(", ")
        )
    }

    /// Every promise of the property this run broke.
    fn violations(&self) -> Vec<String> {
        let mut broken = Vec::new();
        let first = &self.answers[0];
        let replay = self.answers.last().expect("a replay");
        // The last retry before the replay.
        let retry = &self.answers[self.answers.len() - 2];
        if !matches!(first.status, 0 | 202 | 503) {
            broken.push(format!(
                "the first request answered {} (202, 503, or none when it died): {}",
                first.status, first.body
            ));
        }
        for answer in &self.answers[1..self.answers.len() - 1] {
            if answer.status == 409 && answer.retry_after.is_none() {
                broken.push(format!("{}: a 409 without Retry-After", answer.what));
            }
        }
        let accepted: BTreeSet<&str> = self
            .answers
            .iter()
            .filter(|a| a.status == 202)
            .filter_map(|a| a.task_id.as_deref())
            .collect();
        if accepted.len() > 1 {
            broken.push(format!("one key answered several tasks: {accepted:?}"));
        }
        if first.status >= 500 {
            for (task_id, seen) in self.tasks.iter().filter(|(_, s)| s.written_by_first) {
                let status = seen.record.as_ref().and_then(|r| text(r, "status"));
                let attempts = seen.record.as_ref().and_then(|r| text(r, "attempts"));
                if seen.starts > 0
                    || seen.claims_landed > 0
                    || seen.starts_landed > 0
                    || matches!(status.as_deref(), Some("running" | "succeeded"))
                    || attempts.as_deref().is_some_and(|a| a != "0")
                {
                    broken.push(format!(
                        "the first request answered {} and its task {task_id} ran: task started x{}, claims landed {}, starts landed {}, status {status:?}, attempts {attempts:?}",
                        first.status, seen.starts, seen.claims_landed, seen.starts_landed
                    ));
                }
            }
        }
        if retry.status != 202 {
            broken.push(format!(
                "{} after the heal answered {}: {}",
                retry.what, retry.status, retry.body
            ));
        } else if first.status == 202 && retry.task_id != first.task_id {
            broken.push(format!(
                "{} answered task {:?}, the first request {:?}",
                retry.what, retry.task_id, first.task_id
            ));
        }
        if replay.status != 202 || replay.task_id != retry.task_id || !replay.replayed {
            broken.push(format!(
                "the replay answered {} task {:?} replayed {} (expected 202, {:?}, replayed)",
                replay.status, replay.task_id, replay.replayed, retry.task_id
            ));
        }
        for task_id in &accepted {
            let Some(seen) = self.tasks.get(*task_id) else {
                broken.push(format!("task {task_id} answered 202 is not known"));
                continue;
            };
            let record = seen.record.as_ref();
            let status = record.and_then(|r| text(r, "status"));
            let attempts = record.and_then(|r| text(r, "attempts"));
            let result = record
                .and_then(|r| text(r, "result"))
                .and_then(|r| serde_json::from_str::<Value>(&r).ok());
            let succeeded = status.as_deref() == Some("succeeded")
                && attempts.as_deref() == Some("1")
                && result == Some(expected_result())
                && seen.starts == 1
                && seen.starts_landed == 1;
            if !succeeded {
                broken.push(format!(
                    "task {task_id}, answered 202, did not succeed once delivered ({}): status {status:?}, attempts {attempts:?}, result {result:?}, task started x{}, starts landed {}",
                    self.order.name(),
                    seen.starts,
                    seen.starts_landed
                ));
            }
        }
        let started: Vec<(&String, usize)> = self
            .tasks
            .iter()
            .filter(|(_, seen)| seen.starts > 0)
            .map(|(id, seen)| (id, seen.starts))
            .collect();
        if started.len() > 1 || started.iter().any(|(_, n)| *n > 1) {
            broken.push(format!("more than one start for the key: {started:?}"));
        }
        for (task_id, _) in &started {
            if !accepted.contains(task_id.as_str()) {
                broken.push(format!(
                    "task {task_id} started its work but no caller was answered 202 with it"
                ));
            }
        }
        broken
    }
}

/// How the first request goes, besides the faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    /// It is sent and answered.
    Plain,
    /// Its process dies once Lambda has its event: the request's future is
    /// dropped while the fake Lambda holds the `Invoke`'s answer.
    DiesAfterInvoke,
    /// It outlives its key's hold: the fake Lambda answers its `Invoke` late,
    /// and meanwhile the hold ends and a retry takes the key over.
    OutlivesHold,
}

/// Sends the keyed POST under `kind`'s faults, heals, retries, replays and
/// delivers, in `order`.
async fn run_case(kind: Kind, order: Order) -> Run {
    let name = format!("{} · {}", kind.name(), order.name());
    run_with(name, kind, None, First::Plain, order).await
}

/// [`run_case`] with the proxy's `rule` instead of `kind`'s (the `Plan` it
/// heals by), and the first request going as `first` says.
async fn run_with(
    name: String,
    kind: Kind,
    rule: Option<(Rule, Arc<Plan>)>,
    first: First,
    order: Order,
) -> Run {
    capture_logs();
    let started = Instant::now();
    let t0 = now_millis();
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (rule, plan) = match rule {
        Some(given) => given,
        None => {
            let plan = Arc::new(Plan::default());
            (rule_of(kind, plan.clone()), plan)
        }
    };
    let proxy = FaultProxy::start(support::dynamodb_endpoint(), rule).await;
    let attempt_timeout = match first {
        // Its Invoke must outlast the hold's end and the retry: not cut short.
        First::OutlivesHold => Duration::from_secs(5),
        First::Plain | First::DiesAfterInvoke => ATTEMPT_TIMEOUT,
    };
    let function = function_through(&fixture, proxy.url(), &lambda.url, attempt_timeout);
    if let Kind::InvokeAnswerLost { tries } = kind {
        lambda.answer_late(tries, LATE);
    }
    let key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let spawn_first = || {
        let (function, key) = (function.clone(), key.clone());
        tokio::spawn(async move { post(&function, &key).await })
    };

    let mut answers = Vec::new();
    match first {
        First::Plain => {
            let first = post(&function, &key).await;
            answers.push(Answered::of("first request", &first));
        }
        First::DiesAfterInvoke => {
            lambda.answer_late(1, Duration::from_secs(60));
            let request = spawn_first();
            wait_for_invocations(&lambda, 1).await;
            request.abort();
            assert!(request.await.is_err(), "the first request was cut short");
            answers.push(Answered::none(
                "first request (its process died after the Invoke)",
            ));
        }
        First::OutlivesHold => {
            lambda.answer_late(1, Duration::from_millis(1500));
            let request = spawn_first();
            wait_for_invocations(&lambda, 1).await;
            // Its hold ends while it waits for Lambda's answer: a retry
            // takes the key over and carries its task on.
            end_hold(&fixture, &key).await;
            let retry = post(&function, &key).await;
            let first = request.await.expect("the first request answers");
            answers.push(Answered::of("first request", &first));
            answers.push(Answered::of("retry after the hold", &retry));
        }
    }

    // Heal: DynamoDB answers again, and Lambda at once.
    plan.healed.store(true, Ordering::SeqCst);
    lambda.answer_late(0, Duration::ZERO);
    proxy.settle(Duration::from_secs(5)).await;
    let calls_before_heal = proxy.calls().len();

    let mut deliveries = Vec::new();
    let mut delivered = 0;
    let mut given_back = Vec::new();
    if order == Order::DeliverThenRetry {
        let invocations = lambda.invocations();
        for (invocation, answer) in invocations
            .iter()
            .zip(deliver_all(&function, &invocations).await)
        {
            if answer.starts_with("function error") {
                given_back.push(invocation.clone());
            }
            deliveries.push(format!("(before the retry) {answer}"));
        }
        delivered = invocations.len();
    }
    if first != First::OutlivesHold {
        retry_after_heal(&fixture, &function, &key, &mut answers).await;
    }
    let replay = post(&function, &key).await;
    answers.push(Answered::of("replay", &replay));

    let invocations = lambda.invocations();
    deliveries.extend(deliver_all(&function, &invocations[delivered..]).await);
    // Lambda retries an event whose delivery ended in a function error.
    for answer in deliver_all(&function, &given_back).await {
        deliveries.push(format!("(Lambda's retry) {answer}"));
    }
    proxy.settle(Duration::from_secs(5)).await;
    finish_run(
        name,
        order,
        started,
        t0,
        &fixture,
        &proxy,
        calls_before_heal,
        &invocations,
        answers,
        deliveries,
    )
    .await
}

/// Waits (at most 10 s) until the fake Lambda has received `count` events.
async fn wait_for_invocations(lambda: &FakeLambda, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lambda.invocations().len() < count {
        assert!(Instant::now() < deadline, "Lambda never got {count} events");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Retries with `key` after the heal: at once if the key was answered or
/// released; else a retry now must be a 409 (the key is held), and another
/// after the hold takes it over.
async fn retry_after_heal(
    fixture: &Fixture,
    function: &Function,
    key: &str,
    answers: &mut Vec<Answered>,
) {
    let held = key_record(fixture, key)
        .await
        .is_some_and(|record| text(&record, "key_state").as_deref() == Some("in_progress"));
    let retry = post(function, key).await;
    if held {
        answers.push(Answered::of("retry within the hold", &retry));
        end_hold(fixture, key).await;
        let retry = post(function, key).await;
        answers.push(Answered::of("retry after the hold", &retry));
    } else {
        answers.push(Answered::of("retry", &retry));
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_run(
    name: String,
    order: Order,
    started: Instant,
    t0: u64,
    fixture: &Fixture,
    proxy: &FaultProxy,
    calls_before_heal: usize,
    invocations: &[Invocation],
    answers: Vec<Answered>,
    deliveries: Vec<String>,
) -> Run {
    let calls = proxy.calls();
    let events: Vec<String> = invocations
        .iter()
        .map(|invocation| {
            let event: Value = serde_json::from_slice(&invocation.payload).expect("JSON");
            event["task_id"].as_str().expect("task id").to_owned()
        })
        .collect();
    let mut ids: BTreeSet<String> = events.iter().cloned().collect();
    ids.extend(answers.iter().filter_map(|a| a.task_id.clone()));
    // Task ids are UUIDs: the key records and the start counters are not.
    ids.extend(calls.iter().filter_map(|call| call.item_id.clone()));
    ids.retain(|id| uuid::Uuid::parse_str(id).is_ok());
    let mut tasks = BTreeMap::new();
    for task_id in ids {
        let seen = TaskSeen {
            record: fixture.task_item(&task_id).await,
            starts: starts(&task_id),
            claims_landed: landed_on(&calls, &task_id, is_claim),
            starts_landed: landed_on(&calls, &task_id, is_start),
            written_by_first: calls[..calls_before_heal].iter().any(|c| {
                c.operation == "PutItem"
                    && c.item_id.as_deref() == Some(task_id.as_str())
                    && c.landed()
            }),
        };
        tasks.insert(task_id, seen);
    }
    let first_writes = calls[..calls_before_heal]
        .iter()
        .filter(|c| is_write(&c.operation))
        .map(|c| {
            format!(
                "{} {} {}",
                c.operation,
                c.item_id.as_deref().map(short).unwrap_or_default(),
                c.update.as_deref().unwrap_or_default()
            )
        })
        .collect();
    Run {
        name,
        order,
        elapsed: started.elapsed(),
        first_writes,
        calls,
        calls_before_heal,
        events,
        answers,
        deliveries,
        tasks,
        t0,
    }
}

/// How many updates of kind `write` landed on the task.
fn landed_on(calls: &[Call], task_id: &str, write: fn(&str) -> bool) -> usize {
    calls
        .iter()
        .filter(|c| {
            c.item_id.as_deref() == Some(task_id)
                && c.landed()
                && c.update.as_deref().is_some_and(write)
        })
        .count()
}

/// Fails with every broken promise of `runs`, each with its case's trace.
fn assert_no_violations(runs: &[Run]) {
    let mut report = String::new();
    for run in runs {
        let broken = run.violations();
        if !broken.is_empty() {
            let _ = writeln!(report, "{}:", run.name);
            for promise in broken {
                let _ = writeln!(report, "  - {promise}");
            }
            report.push_str(&run.trace());
        }
    }
    assert!(report.is_empty(), "broken promises:\n{report}");
}

// ---------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------

/// Runs every case of the enumeration with the events delivered in `order`:
/// the fault-free request first (its writes set k's range), then both
/// DynamoDB fault kinds for k = 1..=writes, then the `Invoke`'s lost answers
/// on 1, 2 and 3 of the SDK's tries; fails with every broken promise.
async fn property_holds(order: Order) {
    let baseline = run_case(Kind::None, order).await;
    let writes = baseline.first_writes.len();
    eprintln!(
        "a fault-free keyed POST makes {writes} DynamoDB writes: {:#?}",
        baseline.first_writes
    );
    assert!(writes >= 3, "{:#?}", baseline.first_writes);
    let mut kinds = Vec::new();
    for from_write in 1..=writes {
        kinds.push(Kind::Throttled { from_write });
    }
    for from_write in 1..=writes {
        kinds.push(Kind::AnswerLost { from_write });
    }
    for tries in 1..=3 {
        kinds.push(Kind::InvokeAnswerLost { tries });
    }
    let mut runs = vec![baseline];
    for kind in kinds {
        let run = run_case(kind, order).await;
        eprintln!("{}", run.summary());
        eprint!("{}", run.trace());
        runs.push(run);
    }
    eprintln!("\nsummary ({} cases):", runs.len());
    for run in &runs {
        eprintln!("  {}", run.summary());
    }
    assert_no_violations(&runs);
}

/// The issue's property, in its order: the retries, then the deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_async_under_any_write_fault_starts_at_most_one_task_which_is_the_one_its_retries_answer_and_never_one_told_5xx()
 {
    let _turn = one_at_a_time().await;
    property_holds(Order::RetryThenDeliver).await;
}

/// The same property with Lambda delivering the first request's events
/// before the retry, as in AWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_async_under_any_write_fault_starts_at_most_one_task_which_is_the_one_its_retries_answer_also_when_lambda_delivers_before_the_retry()
 {
    let _turn = one_at_a_time().await;
    property_holds(Order::DeliverThenRetry).await;
}

// ---------------------------------------------------------------------------
// The issue's findings, and a request that outlives its key's hold
// ---------------------------------------------------------------------------

/// A rule that gives `fault` to every call `picks` until the plan heals.
fn until_healed(
    picks: impl Fn(&Seen<'_>) -> Option<Fault> + Send + Sync + 'static,
) -> (Rule, Arc<Plan>) {
    let plan = Arc::new(Plan::default());
    let healed = plan.clone();
    let rule: Rule = Box::new(move |seen| {
        if healed.healed.load(Ordering::SeqCst) {
            return Fault::Pass;
        }
        picks(seen).unwrap_or(Fault::Pass)
    });
    (rule, plan)
}

fn is_key_record(seen: &Seen<'_>) -> bool {
    ["Key", "Item"].iter().any(|part| {
        seen.body[part]["task_id"]["S"]
            .as_str()
            .is_some_and(|id| id.starts_with(KEY_RECORD))
    })
}

/// The calls of the first request (before the heal) that `matches`.
fn first_calls(run: &Run, matches: impl Fn(&Call) -> bool) -> Vec<&Call> {
    run.calls[..run.calls_before_heal]
        .iter()
        .filter(|call| matches(call))
        .collect()
}

fn updates(call: &Call, text: &str) -> bool {
    call.update.as_deref().is_some_and(|u| u.contains(text))
}

/// Issue 15's first finding: the enqueued mark lands but every answer to it
/// is lost, the write that would fail the task is refused (the task is
/// marked) and the read that would settle it loses its answer too. The
/// function cannot tell, so it answers 202, and the task runs, once; a retry
/// replays that task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_that_landed_unanswered_whose_undo_was_refused_and_whose_settling_read_was_lost_answers_202_and_the_task_runs_once()
 {
    let _turn = one_at_a_time().await;
    let rule = until_healed(|seen| {
        let marks = seen.operation == "UpdateItem" && update_has(seen, "SET enqueued = :true");
        let settles = seen.operation == "GetItem" && !is_key_record(seen);
        (marks || settles).then_some(Fault::LoseAnswer)
    });
    let run = run_with(
        "mark landed, answers lost".to_owned(),
        Kind::None,
        Some(rule),
        First::Plain,
        Order::RetryThenDeliver,
    )
    .await;
    eprint!("{}", run.trace());
    assert_no_violations(std::slice::from_ref(&run));
    let task_id = run.answers[0].task_id.clone().expect("202 with a task");
    assert_eq!(run.answers[0].status, 202);
    // It went as the issue tells it.
    let marks = first_calls(&run, |c| updates(c, "SET enqueued = :true"));
    assert!(marks.iter().all(|c| c.landed()), "{marks:#?}");
    assert!(!marks.is_empty());
    let undo = first_calls(&run, |c| {
        updates(c, ":failed") && c.item_id.as_deref() == Some(task_id.as_str())
    });
    assert!(
        !undo.is_empty() && undo.iter().all(|c| c.upstream_status == Some(400)),
        "mark_not_enqueued refused by its condition: {undo:#?}"
    );
    let settles = first_calls(&run, |c| {
        c.operation == "GetItem" && c.item_id.as_deref() == Some(task_id.as_str())
    });
    assert!(!settles.is_empty(), "a settling read was made");
    assert_eq!(run.events, std::slice::from_ref(&task_id));
    assert_eq!(run.answers[1].what, "retry");
    assert!(run.answers[1].replayed, "the key was answered: a replay");
}

/// Issue 15's second finding: the write of the key's answer is throttled
/// through every one of the SDK's tries. The caller has its 202; the key
/// stays held; a retry within the hold is a 409, and one after it answers the
/// same task, without a second `Invoke` or a second task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_answer_write_was_throttled_through_the_sdks_retries_answers_the_same_task_after_the_hold_and_starts_no_second()
 {
    let _turn = one_at_a_time().await;
    let rule = until_healed(|seen| {
        let answers = seen.operation == "UpdateItem"
            && is_key_record(seen)
            && update_has(seen, "key_state = :answered");
        answers.then_some(Fault::Throttle)
    });
    let run = run_with(
        "key answer throttled".to_owned(),
        Kind::None,
        Some(rule),
        First::Plain,
        Order::RetryThenDeliver,
    )
    .await;
    eprint!("{}", run.trace());
    assert_no_violations(std::slice::from_ref(&run));
    let throttled = first_calls(&run, |c| {
        c.fault == Fault::Throttle && updates(c, "key_state = :answered")
    });
    assert!(throttled.len() >= 2, "the SDK tried again: {throttled:#?}");
    let task_id = run.answers[0].task_id.clone().expect("202 with a task");
    let answered: Vec<(&str, u16, Option<&str>)> = run
        .answers
        .iter()
        .map(|a| (a.what, a.status, a.task_id.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [
            ("first request", 202, Some(task_id.as_str())),
            ("retry within the hold", 409, None),
            ("retry after the hold", 202, Some(task_id.as_str())),
            ("replay", 202, Some(task_id.as_str())),
        ]
    );
    assert_eq!(run.events, [task_id], "no second Invoke");
}

/// Issue 15's third finding: the process dies between the `Invoke`, which
/// Lambda accepted, and its answer: no mark, no answer for the key. A retry
/// within the hold is a 409; one after it carries the same task on (sends its
/// event again, marks it) and answers it; the task runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_process_died_between_the_invoke_and_its_answer_is_carried_on_by_a_retry_after_the_hold_with_the_same_task()
 {
    let _turn = one_at_a_time().await;
    let run = died_after_invoke(Order::RetryThenDeliver).await;
    let task_id = run.events[0].clone();
    assert_eq!(
        run.events,
        [task_id.clone(), task_id],
        "the dead request's event, and the retry's"
    );
}

/// The same, with Lambda delivering the dead request's event before the
/// retry, as it would in AWS (within seconds; the retry comes after the
/// key's 30 s hold): the delivery marks the task its request can no longer
/// mark once that request is over and runs it, and the retry must answer
/// that task ("every later
/// request with that key and body answers that task, whatever failed on the
/// way: ... a process that died between the `Invoke` and its answer",
/// API.md), not start another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_process_died_after_the_invoke_is_answered_with_its_task_also_when_lambda_delivered_it_before_the_retry()
 {
    let _turn = one_at_a_time().await;
    died_after_invoke(Order::DeliverThenRetry).await;
}

/// Runs the died-after-`Invoke` case in `order` and checks its answers: the
/// retry after the hold and the replay answer the task of the dead
/// request's event.
async fn died_after_invoke(order: Order) -> Run {
    let run = run_with(
        format!("process died after the Invoke · {}", order.name()),
        Kind::None,
        None,
        First::DiesAfterInvoke,
        order,
    )
    .await;
    eprint!("{}", run.trace());
    let task_id = run.events[0].clone();
    let answered: Vec<(&str, u16, Option<&str>)> = run
        .answers
        .iter()
        .map(|a| (a.what, a.status, a.task_id.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [
            ("first request (its process died after the Invoke)", 0, None),
            ("retry within the hold", 409, None),
            ("retry after the hold", 202, Some(task_id.as_str())),
            ("replay", 202, Some(task_id.as_str())),
        ],
        "{}",
        run.trace()
    );
    assert_no_violations(std::slice::from_ref(&run));
    run
}

/// The same promise for a request that is alive but outlives its key's hold
/// (API Gateway has answered its client 504 at 30 s): the retry that takes
/// the key over carries its task on, the late request then answers that task
/// too, and it runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_its_keys_hold_and_the_retry_that_takes_the_key_over_answer_one_task_that_runs_once()
 {
    let _turn = one_at_a_time().await;
    let run = run_with(
        "request outlives the hold".to_owned(),
        Kind::None,
        None,
        First::OutlivesHold,
        Order::RetryThenDeliver,
    )
    .await;
    eprint!("{}", run.trace());
    assert_no_violations(std::slice::from_ref(&run));
    let task_id = run.events[0].clone();
    let answered: Vec<(&str, u16, Option<&str>)> = run
        .answers
        .iter()
        .map(|a| (a.what, a.status, a.task_id.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [
            ("first request", 202, Some(task_id.as_str())),
            ("retry after the hold", 202, Some(task_id.as_str())),
            ("replay", 202, Some(task_id.as_str())),
        ]
    );
    assert_eq!(run.events, [task_id.clone(), task_id]);
}
