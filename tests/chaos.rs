//! A seeded chaos run of the task lifecycle: many tasks through `POST /async`
//! of the real binary, several function processes on one Runtime API emulator
//! with Lambda's asynchronous semantics (retries, destination records), and
//! between the processes and the local DynamoDB a proxy that throttles, fails,
//! slows and loses answers at random (and makes DynamoDB unavailable now and
//! then), another on the `Invoke` API; processes are killed mid-work,
//! task events are delivered again and at once, tasks canceled and
//! Idempotency-Keys reused at random moments. Then the faults stop, the run
//! waits for every event to end, and checks the invariants, printing each with
//! its counts and a closing `N passed, N failed`.
//!
//! `CHAOS_SEED` (printed first, so a failure replays: the same clients, keys,
//! delays, cancels and duplicates; the faults follow the order calls arrive
//! in, which timing decides), `CHAOS_TASKS` (40: the short run of `make
//! test`; `make chaos` asks for more) and `CHAOS_PROCESSES` (4).
//!
//! Time is scaled as in tests/lifecycle.rs: a 3 s function timeout, Lambda's
//! retries 2 s and 4 s after a failure, the lease renewed every 100 ms. The
//! failure queue's visibility timeout is one function timeout (the template's
//! is six), so a record the function could not take comes back within the run.
//! The SDK's own timeouts (2 s an attempt, 6 s a call) are not scaled: a lost
//! answer costs an invocation more of its time than it would in Lambda.
//!
//! The binary's JSON log lines carry no time (CloudWatch stamps them): the run
//! stamps each line when it reads it, every 10 ms, so the overlap check has
//! that resolution (an attempt stops a lease tick, 100 ms, before another may
//! claim its task).

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;
#[path = "support/task_logs.rs"]
mod task_logs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_api::lambda_config;
use async_api::tasks::store::NOT_ENQUEUED;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use fault_proxy::{Call, Fault, FaultProxy, epoch_millis};
use serde_json::{Value, json};
use support::runtime_api::async_invoke::{EventEnd, MessageState, Policy};
use support::runtime_api::{FunctionCommand, FunctionProcess, RuntimeApi};
use support::{FUNCTION_NAME, Fixture};
use task_logs::{HttpAnswer, LogLine, http_answer, http_event, parse_line};

const TIMEOUT: Duration = Duration::from_secs(3);
/// How often the run reads (and stamps) the processes' log lines.
const STAMP_EVERY: Duration = Duration::from_millis(10);
/// A process is recycled (killed) after this many lines, as Lambda recycles
/// execution environments, which keeps each read of its lines short.
const RECYCLE_AFTER_LINES: usize = 400;
/// How long the calm after the storm may take to settle every event.
const SETTLE_PATIENCE: Duration = Duration::from_secs(120);
/// How late a line may be stamped: a reading interval, and some.
const STAMP_SLACK_MS: u64 = 50;

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/// SplitMix64: small, seedable, good enough to pick faults and moments.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Self(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.range(low, high))
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos, u64::from(std::process::id())).next() % 1_000_000_000
}

// ---------------------------------------------------------------------------
// The faults
// ---------------------------------------------------------------------------

/// The weather of the run: faults while the storm lasts, and now and then an
/// outage, when every DynamoDB call fails.
struct Weather {
    storm: AtomicBool,
    outage: AtomicBool,
}

/// Each DynamoDB call of the function, while the storm lasts: throttled,
/// failed, failed after it landed, slowed either way, or its answer lost;
/// during an outage, every call throttled or failed (some after landing).
fn dynamodb_rule(seed: u64, weather: Arc<Weather>) -> fault_proxy::Rule {
    let rng = Mutex::new(Rng::new(seed, 1));
    Box::new(move |call| {
        if !weather.storm.load(Ordering::SeqCst) {
            return Fault::Pass;
        }
        let mut rng = lock(&rng);
        let roll = rng.range(0, 1000);
        let write = call.operation != "GetItem";
        if weather.outage.load(Ordering::SeqCst) {
            return match roll {
                0..500 => Fault::Throttle,
                500..800 if write => Fault::ServerErrorAfterWrite,
                _ => Fault::ServerError,
            };
        }
        match roll {
            0..40 => Fault::Throttle,
            40..70 => Fault::ServerError,
            70..90 if write => Fault::ServerErrorAfterWrite,
            90..130 => Fault::SlowRequest(rng.millis(50, 800)),
            130..170 => Fault::SlowAnswer(rng.millis(50, 800)),
            170..185 => Fault::LoseAnswer,
            _ => Fault::Pass,
        }
    })
}

/// Each `Invoke` of the function's own event, while the storm lasts: failed
/// (accepted by Lambda or not), slowed, or its answer lost after Lambda
/// accepted the event.
fn lambda_rule(seed: u64, weather: Arc<Weather>) -> fault_proxy::Rule {
    let rng = Mutex::new(Rng::new(seed, 4));
    Box::new(move |_| {
        if !weather.storm.load(Ordering::SeqCst) {
            return Fault::Pass;
        }
        let mut rng = lock(&rng);
        match rng.range(0, 1000) {
            0..30 => Fault::ServerError,
            30..50 => Fault::ServerErrorAfterWrite,
            50..90 => Fault::SlowAnswer(rng.millis(50, 800)),
            90..120 => Fault::LoseAnswer,
            _ => Fault::Pass,
        }
    })
}

// ---------------------------------------------------------------------------
// The function processes
// ---------------------------------------------------------------------------

/// One process, and its log lines as read (and stamped) so far.
struct Proc {
    number: usize,
    process: Option<FunctionProcess>,
    read: usize,
    lines: Vec<LogLine>,
    /// Trace headers of its attempts that have started and not ended.
    open_attempts: BTreeSet<String>,
    killed: Option<&'static str>,
    exited_ms: Option<u64>,
}

/// The processes of the function: a fixed number alive at any time, as
/// Lambda keeps execution environments ready.
struct Fleet {
    command: FunctionCommand,
    size: usize,
    procs: Mutex<Vec<Proc>>,
    started: AtomicUsize,
}

fn is_end_of_attempt(line: &LogLine) -> bool {
    matches!(
        line.message.as_str(),
        "Task completed"
            | "task failed"
            | "work stopped: the lease could not be renewed"
            | "the task ended elsewhere; this attempt's result is not recorded"
    ) || (line.level == "ERROR" && line.task_id.is_none())
}

impl Fleet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Proc>> {
        self.procs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self, procs: &mut Vec<Proc>) {
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        procs.push(Proc {
            number,
            process: Some(self.command.clone().spawn()),
            read: 0,
            lines: Vec::new(),
            open_attempts: BTreeSet::new(),
            killed: None,
            exited_ms: None,
        });
    }

    /// Reads new lines, notices exits, keeps `size` processes alive (when
    /// `replace`).
    fn tend(&self, replace: bool) {
        let mut procs = self.lock();
        let now = epoch_millis();
        for proc in procs.iter_mut().filter(|p| p.exited_ms.is_none()) {
            let Some(process) = &proc.process else {
                continue;
            };
            let exited = process.id().is_none();
            let lines = process.stdout_lines();
            for text in &lines[proc.read..] {
                if let Some(mut line) = parse_line(text) {
                    line.at_ms = now;
                    if line.message == "task started" {
                        proc.open_attempts
                            .insert(line.trace_header.clone().unwrap_or_default());
                    } else if is_end_of_attempt(&line) {
                        proc.open_attempts
                            .remove(&line.trace_header.clone().unwrap_or_default());
                    }
                    proc.lines.push(line);
                }
            }
            proc.read = lines.len();
            if exited {
                proc.exited_ms = Some(now);
            }
        }
        let alive = procs.iter().filter(|p| p.exited_ms.is_none()).count();
        if replace {
            for _ in alive..self.size {
                self.spawn(&mut procs);
            }
        }
    }

    /// Kills a process: one in the middle of a task's work when `mid_work`
    /// and there is one, else any; what it held fails as `Runtime.ExitError`.
    fn kill(&self, rng: &mut Rng, mid_work: bool, why: &'static str) -> bool {
        let mut procs = self.lock();
        let alive: Vec<usize> = (0..procs.len())
            .filter(|&i| procs[i].exited_ms.is_none() && procs[i].killed.is_none())
            .collect();
        let working: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&i| !procs[i].open_attempts.is_empty())
            .collect();
        let pool = if mid_work && !working.is_empty() {
            &working
        } else {
            &alive
        };
        if pool.is_empty() {
            return false;
        }
        let victim = pool[rng.range(0, pool.len() as u64) as usize];
        let proc = &mut procs[victim];
        if let Some(process) = &proc.process {
            process.kill();
            proc.killed = Some(if proc.open_attempts.is_empty() {
                why
            } else {
                "mid-work"
            });
        }
        true
    }

    /// Recycles a process that has printed a lot.
    fn recycle(&self) {
        let mut procs = self.lock();
        for proc in procs
            .iter_mut()
            .filter(|p| p.exited_ms.is_none() && p.killed.is_none())
        {
            if proc.read > RECYCLE_AFTER_LINES
                && let Some(process) = &proc.process
            {
                process.kill();
                proc.killed = Some("recycled");
            }
        }
    }

    /// Stops every process and reads the last of their lines.
    async fn stop_all(&self) {
        let processes: Vec<(usize, FunctionProcess)> = self
            .lock()
            .iter_mut()
            .filter_map(|p| p.process.take().map(|process| (p.number, process)))
            .collect();
        let mut outputs = HashMap::new();
        for (number, process) in processes {
            outputs.insert(number, process.stop().await.stdout);
        }
        let now = epoch_millis();
        for proc in self.lock().iter_mut() {
            if let Some(stdout) = outputs.get(&proc.number) {
                for text in &stdout[proc.read.min(stdout.len())..] {
                    if let Some(mut line) = parse_line(text) {
                        line.at_ms = proc.exited_ms.unwrap_or(now);
                        proc.lines.push(line);
                    }
                }
                proc.read = stdout.len();
            }
            proc.exited_ms.get_or_insert(now);
        }
    }
}

// ---------------------------------------------------------------------------
// The clients
// ---------------------------------------------------------------------------

/// A request the run sent through the binary, and what it got.
#[derive(Clone, Debug)]
struct Sent {
    method: &'static str,
    key: Option<String>,
    request_id: String,
    /// The trace header the emulator gave its invocation: the function's
    /// DynamoDB calls for it carry it.
    trace_id: String,
    /// `None`: the invocation failed (its process died, or it timed out).
    answer: Option<HttpAnswer>,
}

#[derive(Default)]
struct Journal {
    sent: Mutex<Vec<Sent>>,
    duplicates: AtomicUsize,
}

struct Run {
    api: RuntimeApi,
    lambda: aws_sdk_lambda::Client,
    journal: Journal,
}

impl Run {
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<String>,
        key: Option<&str>,
    ) -> Option<HttpAnswer> {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        let submitted = self
            .api
            .submit(http_event(method, path, body.as_deref(), &headers));
        let (request_id, trace_id) = (submitted.request_id.clone(), submitted.trace_id.clone());
        let outcome = submitted.outcome().await;
        let answer = http_answer(&outcome);
        lock(&self.journal.sent).push(Sent {
            method,
            key: key.map(str::to_owned),
            request_id,
            trace_id,
            answer: answer.clone(),
        });
        answer
    }

    /// The task's event again, as Lambda's at-least-once delivery may bring it.
    async fn duplicate(&self, task_id: &str, delay_ms: u64) {
        let payload = json!({"task_id": task_id, "delay_ms": delay_ms}).to_string();
        let sent = self
            .lambda
            .invoke()
            .function_name(FUNCTION_NAME)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await;
        if sent.is_ok() {
            self.journal.duplicates.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One client: starts a task (maybe with a key, maybe again), and at random
/// moments cancels it, replays its key, or has its event delivered again.
async fn client(run: Arc<Run>, seed: u64, number: u64, start_after: Duration) {
    let mut rng = Rng::new(seed, 1000 + number);
    tokio::time::sleep(start_after).await;
    // Mostly short work, some long enough (within the 3 s timeout) to be
    // killed or canceled while it runs.
    let delay_ms = if rng.chance(0.2) {
        rng.range(800, 1600)
    } else {
        rng.range(0, 800)
    };
    let body = json!({"delay_ms": delay_ms}).to_string();
    let key = if rng.chance(0.15) {
        // A key several clients share: at most one task for all of them.
        Some(format!("chaos-{seed}-shared-{}", number % 3))
    } else if rng.chance(0.35) {
        Some(format!("chaos-{seed}-client-{number}"))
    } else {
        None
    };

    let mut task_id = None;
    for _ in 0..6 {
        let answer = run
            .send("POST", "/async", Some(body.clone()), key.as_deref())
            .await;
        match answer.as_ref().map(|a| a.status) {
            Some(202) => {
                task_id = answer.and_then(|a| a.body["task_id"].as_str().map(str::to_owned));
                break;
            }
            // In progress under the key: look again when told.
            Some(409) => tokio::time::sleep(Duration::from_secs(1)).await,
            // Unavailable, or no answer at all: a client with a key retries
            // safely; one without sometimes retries anyway (a second task).
            Some(503) | None if key.is_some() || rng.chance(0.3) => {
                tokio::time::sleep(rng.millis(100, 1000)).await;
            }
            _ => break,
        }
    }
    let Some(task_id) = task_id else {
        return;
    };

    let mut later = Vec::new();
    if let Some(key) = key.clone()
        && rng.chance(0.4)
    {
        // The same request again (sometimes twice at once), or another body.
        let copies = if rng.chance(0.3) { 2 } else { 1 };
        let other = rng.chance(0.2);
        let wait = rng.millis(0, 2000);
        for _ in 0..copies {
            let run = run.clone();
            let key = key.clone();
            let body = if other {
                json!({"delay_ms": delay_ms + 1}).to_string()
            } else {
                body.clone()
            };
            later.push(tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                run.send("POST", "/async", Some(body), Some(&key)).await;
            }));
        }
    }
    if rng.chance(0.25) {
        let copies = rng.range(1, 4);
        let wait = rng.millis(0, 1500);
        for _ in 0..copies {
            let (run, task_id) = (run.clone(), task_id.clone());
            later.push(tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                run.duplicate(&task_id, delay_ms).await;
            }));
        }
    }
    if rng.chance(0.15) {
        // While queued, running or done.
        let wait = rng.millis(0, delay_ms + 300);
        let (run, task_id) = (run.clone(), task_id.clone());
        later.push(tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            run.send("DELETE", &format!("/tasks/{task_id}"), None, None)
                .await;
        }));
    }
    for job in later {
        let _ = job.await;
    }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_chaos_run_keeps_every_task_lifecycle_invariant() {
    let seed = match std::env::var("CHAOS_SEED") {
        Ok(seed) if !seed.trim().is_empty() => seed.trim().parse().expect("CHAOS_SEED: a number"),
        _ => random_seed(),
    };
    let tasks = env_number("CHAOS_TASKS", 40);
    let process_count = env_number("CHAOS_PROCESSES", 4) as usize;
    println!("CHAOS_SEED={seed} CHAOS_TASKS={tasks} CHAOS_PROCESSES={process_count}");

    let weather = Arc::new(Weather {
        storm: AtomicBool::new(true),
        outage: AtomicBool::new(false),
    });
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        dynamodb_rule(seed, weather.clone()),
    )
    .await;
    let mut policy = Policy::scaled(TIMEOUT);
    policy.visibility_timeout = TIMEOUT;
    let max_age = policy.max_event_age;
    let api = RuntimeApi::start_with_policy(policy).await;
    let fixture = Fixture::new(&api.url()).await;
    let lambda_proxy = FaultProxy::start(&api.url(), lambda_rule(seed, weather.clone())).await;
    let command = FunctionCommand::new(&api, &fixture)
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .env("AWS_ENDPOINT_URL_LAMBDA", lambda_proxy.url())
        .env("TASK_EVENT_MAX_AGE_SECONDS", &max_age.as_secs().to_string());
    let fleet = Arc::new(Fleet {
        command,
        size: process_count,
        procs: Mutex::new(Vec::new()),
        started: AtomicUsize::new(0),
    });
    fleet.tend(true);
    let lambda = aws_sdk_lambda::Client::from_conf(
        lambda_config(&support::sdk_config())
            .endpoint_url(api.url())
            .build(),
    );
    let run = Arc::new(Run {
        api,
        lambda,
        journal: Journal::default(),
    });

    // The processes: read and stamped every 10 ms, replaced when they die.
    let tending = Arc::new(AtomicBool::new(true));
    let tender = {
        let (fleet, tending) = (fleet.clone(), tending.clone());
        tokio::spawn(async move {
            while tending.load(Ordering::SeqCst) {
                fleet.tend(true);
                tokio::time::sleep(STAMP_EVERY).await;
            }
        })
    };
    // DynamoDB outages: 0.3 to 1.2 s, every 3 to 6 s of the storm.
    let outages = {
        let weather = weather.clone();
        tokio::spawn(async move {
            let mut rng = Rng::new(seed, 5);
            let mut count = 0;
            while weather.storm.load(Ordering::SeqCst) {
                tokio::time::sleep(rng.millis(3000, 6000)).await;
                if weather.storm.load(Ordering::SeqCst) {
                    weather.outage.store(true, Ordering::SeqCst);
                    tokio::time::sleep(rng.millis(300, 1200)).await;
                    weather.outage.store(false, Ordering::SeqCst);
                    count += 1;
                }
            }
            count
        })
    };
    // The killer: every 0.5 to 2.5 s during the storm.
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (fleet, weather, kills) = (fleet.clone(), weather.clone(), kills.clone());
        tokio::spawn(async move {
            let mut rng = Rng::new(seed, 2);
            while weather.storm.load(Ordering::SeqCst) {
                tokio::time::sleep(rng.millis(500, 2500)).await;
                if weather.storm.load(Ordering::SeqCst) {
                    let mid_work = rng.chance(0.8);
                    if fleet.kill(&mut rng, mid_work, "at random") {
                        kills.fetch_add(1, Ordering::SeqCst);
                    }
                    fleet.recycle();
                }
            }
        })
    };

    // The storm: the clients arrive over a quarter of a second per task.
    let storm_started = std::time::Instant::now();
    let mut arrivals = Rng::new(seed, 3);
    let spread_ms = tasks * 250;
    let clients: Vec<_> = (0..tasks)
        .map(|number| {
            let start_after = arrivals.millis(0, spread_ms.max(1));
            tokio::spawn(client(run.clone(), seed, number, start_after))
        })
        .collect();
    for client in clients {
        client.await.expect("a client of the run");
    }
    weather.storm.store(false, Ordering::SeqCst);
    let _ = killer.await;
    let outages = outages.await.unwrap_or(0);
    let storm_took = storm_started.elapsed();

    // The calm: no more faults or kills; every event ends, retries and
    // destination records included.
    let settle_started = std::time::Instant::now();
    run.api.wait_for_events(SETTLE_PATIENCE).await;
    let settle_took = settle_started.elapsed();
    tending.store(false, Ordering::SeqCst);
    let _ = tender.await;
    fleet.tend(false);
    fleet.stop_all().await;
    proxy.settle(Duration::from_secs(10)).await;

    let report = Report::gather(&run, &fleet, &proxy, &fixture).await;
    println!(
        "storm {:.1}s ({outages} DynamoDB outages, {} kills), calm {:.1}s",
        storm_took.as_secs_f64(),
        kills.load(Ordering::SeqCst),
        settle_took.as_secs_f64()
    );
    print_faults("Invoke calls", &lambda_proxy.calls());
    let (passed, failed) = report.check();
    println!("{passed} passed, {failed} failed (CHAOS_SEED={seed})");
    assert_eq!(
        failed, 0,
        "invariants broken: replay with CHAOS_SEED={seed}"
    );
}

// ---------------------------------------------------------------------------
// What happened, and the invariants
// ---------------------------------------------------------------------------

/// One attempt at a task's work, from its `task started` line to its end.
#[derive(Debug)]
struct Attempt {
    process: usize,
    trace_header: String,
    attempt: u64,
    start_ms: u64,
    /// By when its work had ended: the first of its last line, its
    /// process's exit, and the first call it made once the work was over
    /// (its finish write, or the read of a task that ended elsewhere).
    end_ms: u64,
    /// What `end_ms` is.
    ended_by: String,
    /// Its last line (or the process's exit).
    last_line: String,
}

struct Report {
    records: BTreeMap<String, HashMap<String, AttributeValue>>,
    attempts: BTreeMap<String, Vec<Attempt>>,
    /// Per task, when each `Task completed` line was seen.
    completed: BTreeMap<String, Vec<u64>>,
    sent: Vec<Sent>,
    /// The task each answered `POST /async` created (by its trace header).
    created_by: BTreeMap<String, String>,
    calls: Vec<Call>,
    processes: usize,
    kills: Vec<&'static str>,
    duplicates: usize,
    event_reports: Vec<support::runtime_api::async_invoke::EventReport>,
    invoked_tasks: BTreeSet<String>,
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

impl Report {
    async fn gather(run: &Run, fleet: &Fleet, proxy: &FaultProxy, fixture: &Fixture) -> Self {
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
                if !id.starts_with("idempotency-key#") {
                    records.insert(id, item.clone());
                }
            }
            start_key = page.last_evaluated_key().cloned();
            if start_key.is_none() {
                break;
            }
        }

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
                            l.trace_header.as_deref() == Some(trace.as_str())
                                && is_end_of_attempt(l)
                        });
                        let exited = proc.exited_ms.unwrap_or(u64::MAX);
                        let (end_ms, ended_by) = match end {
                            Some(end) => (end.at_ms.min(exited), end.message.clone()),
                            None => (exited, format!("process exit ({:?})", proc.killed)),
                        };
                        attempts.entry(task_id.clone()).or_default().push(Attempt {
                            process: proc.number,
                            trace_header: trace,
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
        let calls = proxy.calls();
        for (task_id, list) in &mut attempts {
            list.sort_by_key(|a| a.start_ms);
            for attempt in list {
                let after_work = calls.iter().find(|c| {
                    c.item_id.as_deref() == Some(task_id.as_str())
                        && c.trace_header.as_deref() == Some(attempt.trace_header.as_str())
                        && c.at_ms >= attempt.start_ms
                        && (c.operation == "GetItem" || is_finish(c))
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
        // The queued record's PutItem carries the trace header of the
        // invocation that wrote it: that ties a task to its POST.
        let put_trace: HashMap<String, String> = calls
            .iter()
            .filter(|c| c.operation == "PutItem" && c.landed())
            .filter_map(|c| Some((c.trace_header.clone()?, c.item_id.clone()?)))
            .filter(|(_, id)| !id.starts_with("idempotency-key#"))
            .collect();
        let mut created_by = BTreeMap::new();
        for s in sent.iter().filter(|s| s.method == "POST") {
            if let Some(task_id) = put_trace.get(&s.trace_id) {
                created_by.insert(s.request_id.clone(), task_id.clone());
            }
        }
        let invoked_tasks = run
            .api
            .invoke_calls()
            .iter()
            .filter_map(|call| {
                serde_json::from_slice::<Value>(&call.payload).ok()?["task_id"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        Self {
            records,
            attempts,
            completed,
            sent,
            created_by,
            calls,
            processes: procs.len(),
            kills: procs.iter().filter_map(|p| p.killed).collect(),
            duplicates: run.journal.duplicates.load(Ordering::SeqCst),
            event_reports: run.api.async_events(),
            invoked_tasks,
        }
    }

    fn status(&self, task_id: &str) -> String {
        self.records
            .get(task_id)
            .and_then(|r| string(r, "status"))
            .unwrap_or_else(|| "missing".to_owned())
    }

    /// The finish write of the task that landed (the condition lets one
    /// land), and the attempt that made it (by its trace header).
    fn finisher(&self, task_id: &str) -> Option<(&Call, Option<&Attempt>)> {
        let write = self
            .calls
            .iter()
            .find(|c| c.landed() && c.item_id.as_deref() == Some(task_id) && is_finish(c))?;
        let attempt = self.attempts.get(task_id).and_then(|list| {
            list.iter()
                .find(|a| Some(&a.trace_header) == write.trace_header.as_ref())
        });
        Some((write, attempt))
    }

    /// Every DynamoDB call about the task and every attempt of it, for a
    /// broken invariant's report.
    fn history(&self, task_id: &str) -> String {
        let mut lines = vec![String::new()];
        for call in self
            .calls
            .iter()
            .filter(|c| c.item_id.as_deref() == Some(task_id))
        {
            lines.push(format!(
                "    {} {} {:?} fault {:?} -> {:?} at {:?} (trace {})",
                call.at_ms,
                call.operation,
                call.update.as_deref().unwrap_or(""),
                call.fault,
                call.upstream_status,
                call.upstream_ms,
                call.trace_header.as_deref().unwrap_or("-")
            ));
        }
        for attempt in self.attempts.get(task_id).into_iter().flatten() {
            lines.push(format!("    {attempt:?}"));
        }
        lines.join("\n")
    }

    /// What the POST that wrote the task was answered: a status, `no answer`,
    /// or `unknown` when no answered POST wrote it.
    fn answer_of_creator(&self, task_id: &str) -> String {
        self.created_by
            .iter()
            .find(|(_, task)| task.as_str() == task_id)
            .and_then(|(request_id, _)| self.sent.iter().find(|s| &s.request_id == request_id))
            .map_or("unknown".to_owned(), |post| {
                post.answer
                    .as_ref()
                    .map_or("no answer".to_owned(), |a| a.status.to_string())
            })
    }

    /// The claims of the task that reached DynamoDB after `write` had
    /// landed, and landed: none may.
    fn claims_after(&self, task_id: &str, write: &Call) -> Vec<&Call> {
        let landed_ms = write.upstream_ms.unwrap_or(u64::MAX);
        self.calls
            .iter()
            .filter(|c| {
                c.item_id.as_deref() == Some(task_id)
                    && is_claim(c)
                    && c.landed()
                    && c.forwarded_ms.is_some_and(|at| at > landed_ms)
            })
            .collect()
    }

    /// Prints what the run did, then each invariant with its counts; returns
    /// (passed, failed).
    fn check(&self) -> (usize, usize) {
        self.print_summary();
        let mut passed = 0;
        let mut failed = 0;
        let mut verdict = |name: &str, counts: String, problems: Vec<String>| {
            if problems.is_empty() {
                passed += 1;
                println!("ok     {name}: {counts}");
            } else {
                failed += 1;
                println!("FAILED {name}: {counts}; {} broken:", problems.len());
                for problem in problems.iter().take(20) {
                    println!("         {problem}");
                }
            }
        };

        // Every task terminal (a task never marked enqueued whose event never
        // left is the backstop's: it reads failed once its event can no
        // longer come).
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        let mut backstop: BTreeMap<String, usize> = BTreeMap::new();
        let mut problems = Vec::new();
        for (task_id, item) in &self.records {
            let status = string(item, "status").unwrap_or_default();
            *by_status.entry(status.clone()).or_default() += 1;
            let never_enqueued = !matches!(item.get("enqueued"), Some(AttributeValue::Bool(true)));
            match status.as_str() {
                "succeeded" | "failed" | "canceled" => {}
                "queued" if never_enqueued && !self.invoked_tasks.contains(task_id) => {
                    // Its POST died before its Invoke, or its Invoke and the
                    // write of `failed` both failed: the POST had no 202.
                    let answer = self.answer_of_creator(task_id);
                    *backstop.entry(answer.clone()).or_default() += 1;
                    if answer == "202" {
                        problems.push(format!("{task_id} answered 202 but has no event"));
                    }
                }
                _ => problems.push(format!(
                    "{task_id} is {status} (enqueued: {}, event sent: {}, attempts {:?})",
                    !never_enqueued,
                    self.invoked_tasks.contains(task_id),
                    self.attempts.get(task_id)
                )),
            }
        }
        verdict(
            "every task terminal",
            format!(
                "{} tasks {by_status:?}; queued with no event behind them, for the backstop, by their POST's answer: {backstop:?}",
                self.records.len()
            ),
            problems,
        );

        // No task's work ran in two invocations at once.
        let mut problems = Vec::new();
        let mut pairs = 0;
        for (task_id, list) in &self.attempts {
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    pairs += 1;
                    if b.start_ms < a.end_ms {
                        problems.push(format!(
                            "{task_id}: attempt {} (process {}, {}, {}..{} ended by {}) and attempt {} (process {}, {}, from {}, ended by {}) overlap by {} ms",
                            a.attempt, a.process, a.trace_header, a.start_ms, a.end_ms, a.ended_by,
                            b.attempt, b.process, b.trace_header, b.start_ms, b.ended_by,
                            a.end_ms - b.start_ms
                        ));
                    }
                }
            }
        }
        let ran: usize = self.attempts.values().map(Vec::len).sum();
        let unended = self
            .attempts
            .values()
            .flatten()
            .filter(|a| a.end_ms == u64::MAX)
            .count();
        if unended > 0 {
            problems.push(format!("{unended} attempts never ended"));
        }
        verdict(
            "no task's work ran in two invocations at once",
            format!(
                "{ran} attempts of {} tasks, {pairs} pairs of attempts of one task compared",
                self.attempts.len()
            ),
            problems,
        );

        // A succeeded task never ran again: its record was written by an
        // attempt that ran, and no claim landed once that write had. Its
        // `Task completed` line, at most one, is that attempt's (an attempt
        // whose process died, or whose answers DynamoDB never gave back, after
        // its write landed logs none).
        let mut problems = Vec::new();
        let mut silent: BTreeMap<String, usize> = BTreeMap::new();
        for (task_id, item) in &self.records {
            let completed = self.completed.get(task_id).map_or(0, Vec::len);
            if completed > 1 {
                problems.push(format!("{task_id} logged Task completed {completed} times"));
            }
            if string(item, "status").as_deref() != Some("succeeded") {
                if completed > 0 {
                    problems.push(format!(
                        "{task_id} logged Task completed but reads {}",
                        self.status(task_id)
                    ));
                }
                continue;
            }
            let Some((write, finisher)) = self.finisher(task_id) else {
                problems.push(format!(
                    "{task_id} reads succeeded, but no attempt's finish landed: {}",
                    self.history(task_id)
                ));
                continue;
            };
            let Some(finisher) = finisher else {
                problems.push(format!(
                    "{task_id} was finished by an invocation that never started it: {}",
                    self.history(task_id)
                ));
                continue;
            };
            for claim in self.claims_after(task_id, write) {
                problems.push(format!(
                    "{task_id} was claimed at {} after it succeeded: {}",
                    claim.at_ms,
                    self.history(task_id)
                ));
            }
            match completed {
                0 => *silent.entry(finisher.last_line.clone()).or_default() += 1,
                _ if finisher.last_line != "Task completed" => problems.push(format!(
                    "{task_id}: Task completed logged, but not by attempt {} that finished it",
                    finisher.attempt
                )),
                _ => {}
            }
        }
        verdict(
            "a succeeded task never ran again",
            format!(
                "{} tasks succeeded, {} logged Task completed (the finishing attempt of the others ended with {silent:?})",
                by_status.get("succeeded").copied().unwrap_or(0),
                self.completed.len()
            ),
            problems,
        );

        // A canceled task never completed: nothing claimed it once the
        // cancel landed, and an attempt running then (or starting on a claim
        // that landed just before it) stopped within a second.
        let mut problems = Vec::new();
        let mut stopped = Vec::new();
        for (task_id, item) in &self.records {
            let canceled = string(item, "status").as_deref() == Some("canceled");
            if canceled && self.completed.contains_key(task_id) {
                problems.push(format!("{task_id} is canceled but logged Task completed"));
            }
            let Some(cancel) = self.calls.iter().find(|c| {
                c.landed()
                    && c.item_id.as_deref() == Some(task_id.as_str())
                    && c.update.as_deref().is_some_and(|u| u.contains(":canceled"))
            }) else {
                if canceled {
                    problems.push(format!("{task_id} reads canceled, but no cancel landed"));
                }
                continue;
            };
            if !canceled {
                problems.push(format!(
                    "{task_id} was canceled, but reads {}",
                    self.status(task_id)
                ));
            }
            for claim in self.claims_after(task_id, cancel) {
                problems.push(format!(
                    "{task_id} was claimed at {} after its cancel: {}",
                    claim.at_ms,
                    self.history(task_id)
                ));
            }
            let landed_ms = cancel.upstream_ms.unwrap_or(0);
            for attempt in self.attempts.get(task_id).into_iter().flatten() {
                // Running then, or started on a claim that landed just before.
                if attempt.end_ms > landed_ms {
                    let took = attempt.end_ms - landed_ms;
                    stopped.push(took);
                    if took > 1000 + STAMP_SLACK_MS {
                        problems.push(format!(
                            "{task_id}: attempt {} stopped {took} ms after its cancel: {}",
                            attempt.attempt,
                            self.history(task_id)
                        ));
                    }
                }
            }
        }
        let deletes = self.sent.iter().filter(|s| s.method == "DELETE").count();
        let answered = self
            .sent
            .iter()
            .filter(|s| s.method == "DELETE" && s.answer.as_ref().is_some_and(|a| a.status == 200))
            .count();
        verdict(
            "a canceled task never completed",
            format!(
                "{deletes} DELETEs, {answered} answered 200, {} tasks canceled, {} of them while running (stopped {} ms after the cancel at most)",
                by_status.get("canceled").copied().unwrap_or(0),
                stopped.len(),
                stopped.iter().max().unwrap_or(&0)
            ),
            problems,
        );

        // A task whose POST got 503 never ran.
        let mut problems = Vec::new();
        let unavailable: Vec<&Sent> = self
            .sent
            .iter()
            .filter(|s| s.method == "POST" && s.answer.as_ref().is_some_and(|a| a.status == 503))
            .collect();
        let mut linked = 0;
        let mut left_queued = 0;
        for post in &unavailable {
            let Some(task_id) = self.created_by.get(&post.request_id) else {
                continue;
            };
            linked += 1;
            if let Some(list) = self.attempts.get(task_id) {
                problems.push(format!(
                    "{task_id}: its POST got 503, and it ran {} times: {}",
                    list.len(),
                    self.history(task_id)
                ));
            }
            let item = &self.records[task_id];
            match (string(item, "status").as_deref(), string(item, "error")) {
                (Some("failed"), Some(error)) if error == NOT_ENQUEUED => {}
                (Some("failed"), _) => {}
                (Some("queued"), _) => left_queued += 1,
                (status, error) => problems.push(format!(
                    "{task_id}: its POST got 503, and it reads {status:?} ({error:?})"
                )),
            }
        }
        verdict(
            "a task whose POST got 503 never ran",
            format!(
                "{} POSTs answered 503, {linked} of them had written a task ({left_queued} left queued, never enqueued)",
                unavailable.len()
            ),
            problems,
        );

        // One task per Idempotency-Key.
        let mut problems = Vec::new();
        let mut keys: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
        for s in self.sent.iter().filter(|s| s.method == "POST") {
            if let Some(key) = &s.key {
                keys.entry(key).or_default().push(s);
            }
        }
        let (mut replays, mut conflicts, mut reused, mut unheld) = (0, 0, 0, 0);
        for (key, posts) in &keys {
            let answered: BTreeSet<&str> = posts
                .iter()
                .filter_map(|p| p.answer.as_ref())
                .filter(|a| a.status == 202)
                .filter_map(|a| a.body["task_id"].as_str())
                .collect();
            if answered.len() > 1 {
                problems.push(format!("key {key} answered 202 with tasks {answered:?}"));
            }
            for post in posts {
                let Some(answer) = &post.answer else { continue };
                match answer.status {
                    202 if answer.header("idempotent-replayed") == Some("true") => replays += 1,
                    409 => conflicts += 1,
                    422 => reused += 1,
                    _ => {}
                }
            }
            // A task the key's requests wrote besides the one answered: its
            // request got no 202 (a 503, or no answer at all), and so did not
            // hold the key.
            for post in posts {
                let Some(task_id) = self.created_by.get(&post.request_id) else {
                    continue;
                };
                if answered.contains(task_id.as_str()) {
                    continue;
                }
                match post.answer.as_ref().map(|a| a.status) {
                    Some(503) | None => unheld += 1,
                    other => problems.push(format!(
                        "key {key}: {task_id} written by a request answered {other:?}, besides {answered:?}"
                    )),
                }
            }
        }
        verdict(
            "one task per Idempotency-Key",
            format!(
                "{} keys, {} POSTs with a key, {replays} replays, {conflicts} 409s, {reused} 422s, {unheld} tasks written by a request that got no 202",
                keys.len(),
                keys.values().map(Vec::len).sum::<usize>()
            ),
            problems,
        );

        // `attempts` agrees with the attempts that ran.
        let mut problems = Vec::new();
        let mut claims: BTreeMap<&str, u64> = BTreeMap::new();
        for call in &self.calls {
            if call.landed()
                && is_claim(call)
                && let Some(id) = &call.item_id
            {
                *claims.entry(id).or_default() += 1;
            }
        }
        let mut by_claim_id: BTreeMap<&str, usize> = BTreeMap::new();
        for call in self.calls.iter().filter(|c| c.landed() && is_claim(c)) {
            if let Some(id) = call.values[":claim"]["S"].as_str() {
                *by_claim_id.entry(id).or_default() += 1;
            }
        }
        for (id, count) in &by_claim_id {
            if *count > 1 {
                problems.push(format!("claim {id} landed {count} times"));
            }
        }
        let mut lost_claims = 0;
        for (task_id, item) in &self.records {
            let recorded = number(item, "attempts");
            let landed = claims.get(task_id.as_str()).copied().unwrap_or(0);
            let started: Vec<u64> = self
                .attempts
                .get(task_id)
                .map(|l| l.iter().map(|a| a.attempt).collect())
                .unwrap_or_default();
            if recorded != landed {
                problems.push(format!(
                    "{task_id}: attempts {recorded}, but {landed} claims landed"
                ));
            }
            let distinct: BTreeSet<u64> = started.iter().copied().collect();
            if distinct.len() != started.len() || started.iter().any(|&a| a == 0 || a > recorded) {
                problems.push(format!(
                    "{task_id}: attempts {recorded}, but attempts {started:?} started"
                ));
            }
            lost_claims += recorded.saturating_sub(started.len() as u64);
            if let Some((_, Some(finisher))) = self.finisher(task_id)
                && finisher.attempt != recorded
            {
                problems.push(format!(
                    "{task_id}: {} with attempts {recorded}, finished by attempt {}",
                    self.status(task_id),
                    finisher.attempt
                ));
            }
        }
        verdict(
            "attempts agrees with the attempts that ran",
            format!(
                "{} claims landed, {} attempts started, {lost_claims} claims that ran no work (their process died or their answer was lost)",
                claims.values().sum::<u64>(),
                self.attempts.values().map(Vec::len).sum::<usize>()
            ),
            problems,
        );

        // Lambda gave up on it: the task stays failed (nothing claims it once
        // the destination record's write landed).
        let mut problems = Vec::new();
        let mut given_up = 0;
        for task_id in self.records.keys() {
            let Some(give_up) = self.calls.iter().find(|c| {
                c.landed()
                    && c.item_id.as_deref() == Some(task_id.as_str())
                    && c.update.as_deref().is_some_and(|u| u.contains("given_up"))
            }) else {
                continue;
            };
            given_up += 1;
            if self.status(task_id) != "failed" {
                problems.push(format!(
                    "{task_id} was given up on, but reads {}",
                    self.status(task_id)
                ));
            }
            for claim in self.claims_after(task_id, give_up) {
                problems.push(format!(
                    "{task_id} was claimed at {} after Lambda gave up on it: {}",
                    claim.at_ms,
                    self.history(task_id)
                ));
            }
        }
        verdict(
            "a task Lambda gave up on never ran again",
            format!("{given_up} tasks failed by a destination record"),
            problems,
        );

        (passed, failed)
    }

    fn print_summary(&self) {
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
        let mut deliveries = 0;
        let mut receives = 0;
        for report in &self.event_reports {
            deliveries += report.attempts.len();
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
            "events: {} accepted ({} duplicates sent by the run), {deliveries} deliveries, {receives} SQS receives, ends {ends:?}",
            self.event_reports.len(),
            self.duplicates
        );
    }
}

/// Whether a call is a claim of a task (the worker's conditional UpdateItem).
fn is_claim(call: &Call) -> bool {
    call.update
        .as_deref()
        .is_some_and(|u| u.contains("attempts = attempts + :one"))
}

/// Whether a call is an attempt's finish write.
fn is_finish(call: &Call) -> bool {
    call.update.as_deref().is_some_and(|u| u.contains(":done"))
}

/// How many calls met each fault.
fn print_faults(what: &str, calls: &[Call]) {
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
        };
        *faults.entry(name).or_default() += 1;
    }
    println!("{what}: {} {faults:?}", calls.len());
}
