//! One case: its faults, the POST, the heal, the retries, the deliveries, and what must hold after.

use super::*;

/// What goes wrong in a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) fn name(self) -> String {
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
pub(super) enum Order {
    /// After the retries (as the property has it).
    RetryThenDeliver,
    /// At once, before the retry: as in AWS, where an event is delivered
    /// within seconds and a retry after the key's hold comes 30 s later.
    DeliverThenRetry,
}

impl Order {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::RetryThenDeliver => "retry, then deliver",
            Self::DeliverThenRetry => "deliver, then retry",
        }
    }
}

/// The proxy's state for a case: counts writes, trips at the k-th, heals.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) writes: AtomicUsize,
    pub(super) tripped: AtomicBool,
    pub(super) healed: AtomicBool,
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
pub(super) struct Answered {
    pub(super) what: &'static str,
    pub(super) status: u16,
    pub(super) task_id: Option<String>,
    pub(super) replayed: bool,
    pub(super) body: Value,
    pub(super) retry_after: Option<String>,
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
pub(super) struct Run {
    pub(super) name: String,
    pub(super) order: Order,
    pub(super) elapsed: Duration,
    /// The DynamoDB writes sent before the heal (the first request's).
    pub(super) first_writes: Vec<String>,
    pub(super) calls: Vec<Call>,
    /// How many calls were made before the heal.
    pub(super) calls_before_heal: usize,
    pub(super) events: Vec<String>,
    pub(super) answers: Vec<Answered>,
    pub(super) deliveries: Vec<String>,
    /// Every task id: record, event or answer; with its record and its starts.
    pub(super) tasks: BTreeMap<String, TaskSeen>,
    pub(super) t0: u64,
}

#[derive(Debug)]
pub(super) struct TaskSeen {
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
    pub(super) fn trace(&self) -> String {
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
    pub(super) fn summary(&self) -> String {
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
pub(super) enum First {
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
pub(super) async fn run_case(kind: Kind, order: Order) -> Run {
    let name = format!("{} · {}", kind.name(), order.name());
    run_with(name, kind, None, First::Plain, order).await
}

/// [`run_case`] with the proxy's `rule` instead of `kind`'s (the `Plan` it
/// heals by), and the first request going as `first` says.
pub(super) async fn run_with(
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
pub(super) fn assert_no_violations(runs: &[Run]) {
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
