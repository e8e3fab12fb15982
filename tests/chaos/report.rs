//! What a chaos run did, gathered once it has settled: the task records (a
//! consistent scan), each attempt at a task's work from the processes' log
//! lines (its `task started` line to its end) and the fault proxy's records of
//! its calls, the requests and polls the clients made, and what Lambda did
//! with each event, and when (its log, stamped as the run read it). tests/chaos/invariants.rs judges it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::fault_proxy::{Call, Fault, FaultProxy};
use crate::support::Fixture;
use crate::support::runtime_api::async_invoke::{EventEnd, EventReport, MessageState};
use crate::support::runtime_api::{Completed, InvokeCall, Outcome};
use crate::world::{Fleet, Poll, Run, Sent, is_end_of_attempt, lock};

pub type Item = HashMap<String, AttributeValue>;

/// One attempt at a task's work, from its `task started` line to its end.
#[derive(Debug)]
pub struct Attempt {
    pub process: usize,
    pub trace_header: String,
    /// The claim it worked under (its landed claim's `:claim`).
    pub claim_id: Option<String>,
    /// When that claim's start write (which counted the attempt) landed, if
    /// it did.
    pub started_ms: Option<u64>,
    pub attempt: u64,
    pub start_ms: u64,
    /// By when its work had ended: the first of its last line, its
    /// process's exit, and the first call it made once the work was over
    /// (its finish write, or the read of a task that ended elsewhere).
    pub end_ms: u64,
    /// What `end_ms` is.
    pub ended_by: String,
    /// Its last line (or the process's exit).
    pub last_line: String,
}

/// What a task past the backstop read once the run had waited for it.
#[derive(Debug)]
pub struct BackstopRead {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
    pub delete_status: u16,
}

pub struct Report {
    pub records: BTreeMap<String, Item>,
    pub attempts: BTreeMap<String, Vec<Attempt>>,
    /// Per task, when each `Task completed` line was seen.
    pub completed: BTreeMap<String, Vec<u64>>,
    pub sent: Vec<Sent>,
    pub polls: Vec<Poll>,
    pub unanswered_polls: usize,
    /// The tasks each request (by request id) wrote a record of or sent an
    /// event for: its calls carry its invocation's trace header.
    pub tasks_of_request: BTreeMap<String, BTreeSet<String>>,
    pub calls: Vec<Call>,
    pub processes: usize,
    pub kills: Vec<&'static str>,
    pub duplicates: usize,
    pub failing_duplicates: usize,
    pub event_reports: Vec<EventReport>,
    /// Every delivery of a task event, and what it answered.
    pub deliveries: Vec<Completed>,
    /// Per task, the life of each of its events in Lambda's hands.
    pub lifelines: BTreeMap<String, Vec<Lifeline>>,
    /// Tasks Lambda accepted an event for.
    pub invoked_tasks: BTreeSet<String>,
    /// The reads of tasks past the backstop, when the run waited for it.
    pub backstop: Option<BTreeMap<String, BackstopRead>>,
    /// How far the backstop was: waited for (`make chaos`) or backdated (`make test`).
    pub backstop_wait_s: u64,
}

pub fn string(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

pub fn number(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

pub fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// Every task record (not the idempotency keys, nor the callers' counters),
/// by a consistent scan.
pub async fn scan_tasks(fixture: &Fixture) -> BTreeMap<String, Item> {
    let mut records = BTreeMap::new();
    let mut start_key = None;
    loop {
        let page = fixture
            .dynamodb
            .scan()
            .table_name(&fixture.tasks_table)
            .consistent_read(true)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .expect("scan the tasks");
        for item in page.items() {
            let id = string(item, "task_id").unwrap_or_default();
            if async_api::tasks::is_task_id(&id) {
                records.insert(id, item.clone());
            }
        }
        start_key = page.last_evaluated_key().cloned();
        if start_key.is_none() {
            return records;
        }
    }
}

/// The attempts each process's lines show, by task; and when each `Task
/// completed` line was seen.
type Lines = (BTreeMap<String, Vec<Attempt>>, BTreeMap<String, Vec<u64>>);

fn attempts_of(fleet: &Fleet) -> Lines {
    let procs = fleet.lock();
    let mut attempts: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
    let mut completed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for proc in procs.iter() {
        for (at, line) in proc.lines.iter().enumerate() {
            let Some(task_id) = &line.task_id else {
                continue;
            };
            match line.message.as_str() {
                "task started" => {
                    let trace = line.trace_header.clone().unwrap_or_default();
                    let end = proc.lines[at + 1..].iter().find(|l| {
                        l.trace_header.as_deref() == Some(trace.as_str()) && is_end_of_attempt(l)
                    });
                    let exited = proc.exited_ms.unwrap_or(u64::MAX);
                    let (end_ms, ended_by) = match end {
                        Some(end) => (end.at_ms.min(exited), end.message.clone()),
                        None => (exited, format!("process exit ({:?})", proc.killed)),
                    };
                    attempts.entry(task_id.clone()).or_default().push(Attempt {
                        process: proc.number,
                        trace_header: trace,
                        claim_id: None,
                        started_ms: None,
                        attempt: line.attempt().unwrap_or(0),
                        start_ms: line.at_ms,
                        end_ms,
                        last_line: ended_by.clone(),
                        ended_by,
                    });
                }
                "Task completed" => completed
                    .entry(task_id.clone())
                    .or_default()
                    .push(line.at_ms),
                _ => {}
            }
        }
    }
    (attempts, completed)
}

impl Report {
    pub async fn gather(
        run: &Run,
        fleet: &Fleet,
        proxy: &FaultProxy,
        fixture: &Fixture,
        backstop: Option<BTreeMap<String, BackstopRead>>,
        backstop_wait_s: u64,
    ) -> Self {
        let records = scan_tasks(fixture).await;
        let (mut attempts, completed) = attempts_of(fleet);
        let calls = proxy.calls();
        for (task_id, list) in &mut attempts {
            list.sort_by_key(|a| a.start_ms);
            for attempt in list {
                let mine = |c: &&Call| {
                    c.item_id.as_deref() == Some(task_id.as_str())
                        && c.trace_header.as_deref() == Some(attempt.trace_header.as_str())
                };
                attempt.claim_id = calls
                    .iter()
                    .filter(mine)
                    .find(|c| is_claim(c) && c.landed())
                    .and_then(|c| c.values[":claim"]["S"].as_str().map(str::to_owned));
                attempt.started_ms = calls
                    .iter()
                    .filter(mine)
                    .find(|c| {
                        is_start(c)
                            && c.landed()
                            && attempt
                                .claim_id
                                .as_deref()
                                .is_some_and(|id| c.values[":claim"]["S"] == id)
                    })
                    .and_then(|c| c.upstream_ms);
                let after_work = calls.iter().filter(mine).find(|c| {
                    c.at_ms >= attempt.start_ms && (c.operation == "GetItem" || is_finish(c))
                });
                if let Some(call) = after_work
                    && call.at_ms < attempt.end_ms
                {
                    attempt.end_ms = call.at_ms;
                    attempt.ended_by = format!("its {} call", call.operation);
                }
            }
        }

        let sent = lock(&run.journal.sent).clone();
        let invoke_calls = run.api.invoke_calls();
        // A request's trace header is on every call it made: the queued
        // record's PutItem and the Invoke of its event tie a task to it.
        let mut by_trace: HashMap<String, BTreeSet<String>> = HashMap::new();
        for call in calls
            .iter()
            .filter(|c| c.operation == "PutItem" && c.landed())
        {
            if let (Some(trace), Some(id)) = (&call.trace_header, &call.item_id)
                && async_api::tasks::is_task_id(id)
            {
                by_trace
                    .entry(trace.clone())
                    .or_default()
                    .insert(id.clone());
            }
        }
        let task_of = |call: &InvokeCall| {
            serde_json::from_slice::<Value>(&call.payload).ok()?["task_id"]
                .as_str()
                .map(str::to_owned)
        };
        for call in &invoke_calls {
            if let (Some(trace), Some(id)) = (&call.trace_header, task_of(call)) {
                by_trace.entry(trace.clone()).or_default().insert(id);
            }
        }
        let tasks_of_request = sent
            .iter()
            .filter(|s| s.method == "POST")
            .filter_map(|s| Some((s.request_id.clone(), by_trace.get(&s.trace_id)?.clone())))
            .collect();
        let invoked_tasks = invoke_calls.iter().filter_map(task_of).collect();
        let deliveries = run
            .api
            .completed()
            .into_iter()
            .filter(|c| c.kind == crate::support::runtime_api::InvocationKind::Event)
            .collect();
        let event_reports = run.api.async_events();
        run.stamp_lambda_log();
        let lifelines = lifelines(&event_reports, &lock(&run.journal.lambda_log));
        let procs = fleet.lock();
        Self {
            records,
            attempts,
            completed,
            sent,
            polls: lock(&run.journal.polls).clone(),
            unanswered_polls: run.journal.unanswered_polls.load(Ordering::SeqCst),
            tasks_of_request,
            calls,
            processes: procs.len(),
            kills: procs.iter().filter_map(|p| p.killed).collect(),
            duplicates: run.journal.duplicates.load(Ordering::SeqCst),
            failing_duplicates: run.journal.failing_duplicates.load(Ordering::SeqCst),
            event_reports,
            deliveries,
            lifelines,
            invoked_tasks,
            backstop,
            backstop_wait_s,
        }
    }

    pub fn status(&self, task_id: &str) -> String {
        self.records
            .get(task_id)
            .and_then(|r| string(r, "status"))
            .unwrap_or_else(|| "missing".to_owned())
    }

    /// The finish write that made the task `succeeded` (the condition lets
    /// one land), and the attempt that made it (by its trace header).
    pub fn finisher(&self, task_id: &str) -> Option<(&Call, Option<&Attempt>)> {
        let write = self.calls.iter().find(|c| {
            c.landed()
                && c.item_id.as_deref() == Some(task_id)
                && is_finish(c)
                && c.values[":done"]["S"] == "succeeded"
        })?;
        let attempt = self.attempts.get(task_id).and_then(|list| {
            list.iter()
                .find(|a| Some(&a.trace_header) == write.trace_header.as_ref())
        });
        Some((write, attempt))
    }

    /// Every DynamoDB call about the task and every attempt of it, for a
    /// broken invariant's report.
    pub fn history(&self, task_id: &str) -> String {
        let mut lines = vec![String::new()];
        for call in self
            .calls
            .iter()
            .filter(|c| c.item_id.as_deref() == Some(task_id))
        {
            lines.push(format!(
                "    {} {} {:?} {} fault {:?} -> {:?} at {:?} (trace {})",
                call.at_ms,
                call.operation,
                call.update.as_deref().unwrap_or(""),
                call.values,
                call.fault,
                call.upstream_status,
                call.upstream_ms,
                call.trace_header.as_deref().unwrap_or("-")
            ));
        }
        for attempt in self.attempts.get(task_id).into_iter().flatten() {
            lines.push(format!("    {attempt:?}"));
        }
        for delivery in self.deliveries.iter().filter(|d| task_of(d) == task_id) {
            lines.push(format!(
                "    delivery {} (trace {}): {:?}",
                delivery.request_id, delivery.trace_id, delivery.outcome
            ));
        }
        for life in self.lifelines.get(task_id).into_iter().flatten() {
            lines.push(format!("    {life}"));
        }
        lines.join("\n")
    }

    /// The delivery whose invocation had trace header `trace`.
    pub fn delivery_of(&self, trace: Option<&str>) -> Option<&Completed> {
        let trace = trace?;
        self.deliveries.iter().find(|d| d.trace_id == trace)
    }

    /// The landed writes of the task, in the order they landed.
    pub fn landed_writes(&self, task_id: &str) -> Vec<&Call> {
        let mut writes: Vec<&Call> = self
            .calls
            .iter()
            .filter(|c| {
                c.item_id.as_deref() == Some(task_id) && c.operation != "GetItem" && c.landed()
            })
            .collect();
        writes.sort_by_key(|c| c.upstream_ms);
        writes
    }

    /// The claims and starts of the task that reached DynamoDB after
    /// `write` had landed, and landed: none may.
    pub fn claims_after(&self, task_id: &str, write: &Call) -> Vec<&Call> {
        let landed_ms = write.upstream_ms.unwrap_or(u64::MAX);
        self.calls
            .iter()
            .filter(|c| {
                c.item_id.as_deref() == Some(task_id)
                    && (is_claim(c) || is_start(c))
                    && c.landed()
                    && c.forwarded_ms.is_some_and(|at| at > landed_ms)
            })
            .collect()
    }

    /// Prints what the run did: requests, faults, processes, events.
    pub fn print_summary(&self) {
        let posts: Vec<&Sent> = self.sent.iter().filter(|s| s.method == "POST").collect();
        let mut answers: BTreeMap<String, usize> = BTreeMap::new();
        for post in &posts {
            let key = post
                .answer
                .as_ref()
                .map_or("no answer".to_owned(), |a| a.status.to_string());
            *answers.entry(key).or_default() += 1;
        }
        println!("POST /async: {} sent, answers {answers:?}", posts.len());
        print_faults("DynamoDB calls", &self.calls);
        let traced = self
            .calls
            .iter()
            .filter(|c| c.trace_header.is_some())
            .count();
        println!("  {traced} of them carried their invocation's trace header");
        let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
        for kill in &self.kills {
            *kills.entry(kill).or_default() += 1;
        }
        println!("processes: {} started, killed {kills:?}", self.processes);
        let mut ends: BTreeMap<String, usize> = BTreeMap::new();
        let mut receives = 0;
        for report in &self.event_reports {
            let end = match &report.end {
                Some(EventEnd::Succeeded) => "succeeded".to_owned(),
                Some(EventEnd::Destination(d)) => {
                    receives += d.receives.len();
                    format!(
                        "destination {} ({})",
                        d.condition.as_str(),
                        if d.state == MessageState::Deleted {
                            "taken"
                        } else {
                            "not taken"
                        }
                    )
                }
                Some(EventEnd::Abandoned) => "abandoned".to_owned(),
                None => "pending".to_owned(),
            };
            *ends.entry(end).or_default() += 1;
        }
        println!(
            "events: {} accepted ({} duplicates sent by the run, {} of them failing their first attempts), {} deliveries, {receives} SQS receives, ends {ends:?}",
            self.event_reports.len(),
            self.duplicates,
            self.failing_duplicates,
            self.deliveries.len(),
        );
        let mut answered: BTreeMap<String, usize> = BTreeMap::new();
        for delivery in &self.deliveries {
            let answer = match &delivery.outcome {
                Outcome::Response(r) => format!(
                    "{}{}",
                    r["status"].as_str().unwrap_or("null"),
                    if r["duplicate"] == true {
                        " (duplicate)"
                    } else {
                        ""
                    }
                ),
                Outcome::Error { error_type, .. } => error_type.clone(),
            };
            *answered.entry(answer).or_default() += 1;
        }
        println!("  deliveries answered {answered:?}");
        let deletes = self.sent.iter().filter(|s| s.method == "DELETE").count();
        println!(
            "cancels: {deletes} DELETEs sent; polls: {} answered 200, {} not",
            self.polls.len(),
            self.unanswered_polls
        );
    }
}

/// The task a delivery was about.
pub fn task_of(delivery: &Completed) -> String {
    serde_json::from_slice::<Value>(&delivery.payload)
        .ok()
        .and_then(|p| p["task_id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether a call is a claim of a task: `running` under a new `claim_id`
/// and lease (src/tasks/claims.rs). It counts nothing.
pub fn is_claim(call: &Call) -> bool {
    call.update
        .as_deref()
        .is_some_and(|u| u.contains("#status = :running") && u.contains("claim_id = :claim"))
}

/// Whether a call is a claim's start: it counts the attempt (`attempts + 1`)
/// and puts the claim into `started_claims`, once per claim.
pub fn is_start(call: &Call) -> bool {
    call.update
        .as_deref()
        .is_some_and(|u| u.contains("attempts = attempts + :one"))
}

/// Whether a call is the release of a claim that could not start: `queued`
/// again, nothing counted back.
pub fn is_release(call: &Call) -> bool {
    call.update
        .as_deref()
        .is_some_and(|u| u.contains("#status = :queued") && !u.contains(":done"))
}

/// Whether a call is an attempt's finish write.
pub fn is_finish(call: &Call) -> bool {
    call.update.as_deref().is_some_and(|u| u.contains(":done"))
}

/// Whether a call is the failure record's give-up of a task.
pub fn is_give_up(call: &Call) -> bool {
    call.update
        .as_deref()
        .is_some_and(|u| u.contains(":failed") && u.contains("REMOVE lease_until"))
}

/// How many calls met each fault.
pub fn print_faults(what: &str, calls: &[Call]) {
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        let name = match call.fault {
            Fault::Pass => "passed",
            Fault::Throttle => "throttled",
            Fault::ServerError => "500",
            Fault::ServerErrorAfterWrite => "500 after landing",
            Fault::SlowRequest(_) => "slowed on the way in",
            Fault::SlowAnswer(_) => "answer slowed",
            Fault::LoseAnswer => "answer lost",
            Fault::HoldUntilAnswered(_) => "held until another call was answered",
        };
        *faults.entry(name).or_default() += 1;
    }
    println!("{what}: {} {faults:?}", calls.len());
}

/// The life of one event in Lambda's hands: from when Lambda queued it to
/// when an attempt of it succeeded, or its destination record was taken (or
/// given up on) by the failure queue; in between, Lambda delivers it, retries
/// it, or sends its record, each of which ends the task or runs it on. The
/// times are when the run read the emulator's log line (every 10 ms): never
/// early, and in the order Lambda logged them.
#[derive(Debug)]
pub struct Lifeline {
    pub request_id: String,
    pub queued_ms: u64,
    /// `None`: it never left Lambda's hands within the run.
    pub ended_ms: Option<u64>,
    /// Lambda's last line about it.
    pub last_line: String,
}

impl std::fmt::Display for Lifeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event {}: in Lambda's hands from {} to {}, last: {}",
            self.request_id,
            self.queued_ms,
            self.ended_ms
                .map_or("the end of the run".to_owned(), |e| e.to_string()),
            self.last_line
        )
    }
}

/// The event an emulator log line is about: `event {id} …`, or
/// `message {id} (event {id}) …`.
fn event_of_line(line: &str) -> Option<&str> {
    let rest = match line.strip_prefix("event ") {
        Some(rest) => rest,
        None => line.split_once("(event ")?.1,
    };
    rest.split([' ', ')']).next()
}

/// Each task's events' lives, from the emulator's stamped log lines.
fn lifelines(reports: &[EventReport], log: &[(u64, String)]) -> BTreeMap<String, Vec<Lifeline>> {
    let task_of_event: HashMap<&str, String> = reports
        .iter()
        .filter_map(|r| {
            let payload = serde_json::from_slice::<Value>(&r.payload).ok()?;
            Some((
                r.request_id.as_str(),
                payload["task_id"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut lives: BTreeMap<&str, Lifeline> = BTreeMap::new();
    for (at_ms, line) in log {
        let Some(event) = event_of_line(line) else {
            continue;
        };
        let life = lives.entry(event).or_insert_with(|| Lifeline {
            request_id: event.to_owned(),
            queued_ms: *at_ms,
            ended_ms: None,
            last_line: String::new(),
        });
        life.last_line = line.clone();
        let ended = line.contains(" succeeded in ")
            || line.contains("processed, deleted")
            || line.contains("given up after");
        if ended && life.ended_ms.is_none() {
            life.ended_ms = Some(*at_ms);
        }
    }
    let mut by_task: BTreeMap<String, Vec<Lifeline>> = BTreeMap::new();
    for (event, life) in lives {
        if let Some(task_id) = task_of_event.get(event) {
            by_task.entry(task_id.clone()).or_default().push(life);
        }
    }
    by_task
}
