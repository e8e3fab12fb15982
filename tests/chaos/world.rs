//! The world of a chaos run (tests/chaos.rs): its seeded randomness, the
//! faults of DynamoDB and of the `Invoke` API, the function's processes (read,
//! stamped, killed and replaced), and the clients: each starts a task, maybe
//! with an Idempotency-Key and maybe again, and at random moments cancels it,
//! replays its key, has its event delivered again (some copies asking the work
//! to fail its first attempts), while a poller follows it with `GET
//! /tasks/{id}` as a client would.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::{Value, json};

use crate::fault_proxy::{self, Fault, epoch_millis};
use crate::support::FUNCTION_NAME;
use crate::support::runtime_api::{FunctionCommand, FunctionProcess, RuntimeApi};
use crate::task_logs::{HttpAnswer, LogLine, http_answer, http_event, parse_line};

/// A process is recycled (killed) after this many lines, as Lambda recycles
/// execution environments, which keeps each read of its lines short.
const RECYCLE_AFTER_LINES: usize = 400;
/// How long a client waits for an answer: API Gateway gives up at 29 s, and
/// the emulator fails the test at 30 s. The invocation goes on; the client
/// has no answer, as when its process died.
const CLIENT_PATIENCE: Duration = Duration::from_secs(25);

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/// SplitMix64: small, seedable, good enough to pick faults and moments.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Self(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next();
        rng
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `low..high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.range(low, high))
    }
}

/// A seed of its own for a run nobody chose one for.
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos, u64::from(std::process::id())).next() % 1_000_000_000
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The faults
// ---------------------------------------------------------------------------

/// The weather of the run: faults while the storm lasts, and now and then an
/// outage, when every DynamoDB call fails.
pub struct Weather {
    pub storm: AtomicBool,
    pub outage: AtomicBool,
}

/// Each DynamoDB call of the function, while the storm lasts: throttled,
/// failed, failed after it landed, slowed either way, or its answer lost;
/// during an outage, every call throttled or failed (some after landing).
pub fn dynamodb_rule(seed: u64, weather: Arc<Weather>) -> fault_proxy::Rule {
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
pub fn lambda_rule(seed: u64, weather: Arc<Weather>) -> fault_proxy::Rule {
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
pub struct Proc {
    pub number: usize,
    process: Option<FunctionProcess>,
    read: usize,
    pub lines: Vec<LogLine>,
    /// Trace headers of its attempts that have started and not ended.
    open_attempts: BTreeSet<String>,
    pub killed: Option<&'static str>,
    pub exited_ms: Option<u64>,
}

/// The processes of the function: at least `size` alive at any time, as
/// Lambda keeps execution environments ready, and more (up to
/// [`MOST_PROCESSES`] times as many) while invocations wait for one, as
/// Lambda scales out. A delivery that waits for another attempt's outcome
/// holds its process meanwhile.
pub struct Fleet {
    command: FunctionCommand,
    size: usize,
    procs: Mutex<Vec<Proc>>,
    started: AtomicUsize,
    /// When the last process was added for waiting invocations, epoch ms.
    scaled_ms: std::sync::atomic::AtomicU64,
}

/// How far the fleet scales out, in multiples of its size.
const MOST_PROCESSES: usize = 3;
/// How often the fleet adds a process while invocations wait.
const SCALE_EVERY_MS: u64 = 250;

/// Whether a line ends the attempt whose invocation logged it: its work
/// completed, failed (the line of a failed attempt carries `attempt`, and its
/// message is the work's error: see the report), was stopped, or its
/// invocation ended in an error outside the task's span.
pub fn is_end_of_attempt(line: &LogLine) -> bool {
    matches!(
        line.message.as_str(),
        "Task completed"
            | "task attempt failed"
            | "task failed for good"
            | "work stopped: the lease could not be kept"
            | "the task ended elsewhere; this attempt's result is not recorded"
    ) || (line.level == "ERROR" && line.task_id.is_none())
        || (line.level == "ERROR" && line.message != "task started" && line.attempt().is_some())
}

impl Fleet {
    pub fn new(command: FunctionCommand, size: usize) -> Self {
        Self {
            command,
            size,
            procs: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
            scaled_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Proc>> {
        lock(&self.procs)
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

    /// Reads new lines, notices exits, keeps `size` processes alive and adds
    /// one while `waiting` invocations wait (when `replace`).
    pub fn tend(&self, replace: bool, waiting: usize) {
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
            let scaled = self.scaled_ms.load(Ordering::SeqCst);
            if waiting > 0 && alive < self.size * MOST_PROCESSES && now >= scaled + SCALE_EVERY_MS {
                self.scaled_ms.store(now, Ordering::SeqCst);
                self.spawn(&mut procs);
            }
        }
    }

    /// Kills a process: one in the middle of a task's work when `mid_work`
    /// and there is one, else any; what it held fails as `Runtime.ExitError`.
    pub fn kill(&self, rng: &mut Rng, mid_work: bool, why: &'static str) -> bool {
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
    pub fn recycle(&self) {
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
    pub async fn stop_all(&self) {
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
pub struct Sent {
    pub method: &'static str,
    pub key: Option<String>,
    pub request_id: String,
    /// The trace header the emulator gave its invocation: the function's
    /// DynamoDB and `Invoke` calls for it carry it.
    pub trace_id: String,
    /// `None`: the invocation failed (its process died, or it timed out).
    pub answer: Option<HttpAnswer>,
    /// When it was sent and answered, epoch ms.
    pub sent_ms: u64,
    pub answered_ms: u64,
}

/// One `GET /tasks/{id}` of a poller, answered 200.
#[derive(Clone, Debug)]
pub struct Poll {
    pub task_id: String,
    pub sent_ms: u64,
    pub answered_ms: u64,
    pub status: String,
    pub attempts: u64,
    pub error: Value,
    pub retry_after: Option<String>,
}

#[derive(Default)]
pub struct Journal {
    pub sent: Mutex<Vec<Sent>>,
    pub polls: Mutex<Vec<Poll>>,
    /// Polls that got no 200 (a 503 during an outage, a killed process).
    pub unanswered_polls: AtomicUsize,
    pub duplicates: AtomicUsize,
    /// Of them, copies that ask the work to fail its first attempts.
    pub failing_duplicates: AtomicUsize,
    /// The emulator's log of what Lambda did with each event (queued,
    /// delivered, retried, given up, its record taken), each line stamped
    /// when the run read it.
    pub lambda_log: Mutex<Vec<(u64, String)>>,
}

pub struct Run {
    pub api: RuntimeApi,
    pub lambda: aws_sdk_lambda::Client,
    pub journal: Journal,
    /// Pollers poll while this holds.
    pub polling: AtomicBool,
}

impl Run {
    /// Stamps the emulator's new log lines with the time: the run calls it
    /// every 10 ms.
    pub fn stamp_lambda_log(&self) {
        let lines = self.api.async_log();
        let mut stamped = lock(&self.journal.lambda_log);
        let now = epoch_millis();
        let read = stamped.len();
        stamped.extend(lines.into_iter().skip(read).map(|line| (now, line)));
    }

    pub async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<String>,
        key: Option<&str>,
    ) -> Option<HttpAnswer> {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        let sent_ms = epoch_millis();
        let submitted = self
            .api
            .submit(http_event(method, path, body.as_deref(), &headers));
        let (request_id, trace_id) = (submitted.request_id.clone(), submitted.trace_id.clone());
        let answer = tokio::time::timeout(CLIENT_PATIENCE, submitted.outcome())
            .await
            .ok()
            .and_then(|outcome| http_answer(&outcome));
        lock(&self.journal.sent).push(Sent {
            method,
            key: key.map(str::to_owned),
            request_id,
            trace_id,
            answer: answer.clone(),
            sent_ms,
            answered_ms: epoch_millis(),
        });
        answer
    }

    /// The task's event again, as Lambda's at-least-once delivery may bring
    /// it; `fail_attempts` asks the work to fail its first attempts when this
    /// copy runs them.
    async fn duplicate(&self, task_id: &str, delay_ms: u64, fail_attempts: u64) {
        let mut payload = json!({"task_id": task_id, "delay_ms": delay_ms});
        if fail_attempts > 0 {
            payload["fail_attempts"] = json!(fail_attempts);
        }
        let sent = self
            .lambda
            .invoke()
            .function_name(FUNCTION_NAME)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await;
        if sent.is_ok() {
            self.journal.duplicates.fetch_add(1, Ordering::SeqCst);
            if fail_attempts > 0 {
                self.journal
                    .failing_duplicates
                    .fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Follows a task as a client does: `GET /tasks/{id}` every 0.5 to 1.5 s
    /// until it reads a final status, then twice more, 1 to 2 s apart (a
    /// final status must read the same), or until the run stops polling.
    async fn follow(&self, task_id: &str, mut rng: Rng) {
        let mut after_end = 0;
        while after_end < 3 && self.polling.load(Ordering::SeqCst) {
            let sent_ms = epoch_millis();
            let answer = self
                .send_poll(&format!("/tasks/{task_id}"))
                .await
                .filter(|a| a.status == 200);
            let Some(answer) = answer else {
                self.journal.unanswered_polls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(rng.millis(500, 1500)).await;
                continue;
            };
            let status = answer.body["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ended = matches!(status.as_str(), "succeeded" | "failed" | "canceled");
            lock(&self.journal.polls).push(Poll {
                task_id: task_id.to_owned(),
                sent_ms,
                answered_ms: epoch_millis(),
                status,
                attempts: answer.body["attempts"].as_u64().unwrap_or(u64::MAX),
                error: answer.body["error"].clone(),
                retry_after: answer.header("retry-after").map(str::to_owned),
            });
            let pause = if ended {
                after_end += 1;
                rng.millis(1000, 2000)
            } else {
                rng.millis(500, 1500)
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// A GET of the poller: not journaled with the requests that change things.
    async fn send_poll(&self, path: &str) -> Option<HttpAnswer> {
        let submitted = self.api.submit(http_event("GET", path, None, &[]));
        let outcome = tokio::time::timeout(CLIENT_PATIENCE, submitted.outcome()).await;
        http_answer(&outcome.ok()?)
    }
}

/// One client: starts a task (maybe with a key, maybe again), follows it,
/// and at random moments cancels it, replays its key, or has its event
/// delivered again. Its poller is handed back, to be awaited after the storm.
pub async fn client(
    run: Arc<Run>,
    seed: u64,
    number: u64,
    start_after: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
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
    let task_id = task_id?;
    let poller = {
        let (run, task_id, rng) = (run.clone(), task_id.clone(), Rng::new(seed, 5000 + number));
        tokio::spawn(async move { run.follow(&task_id, rng).await })
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
        // Some copies ask the work to fail its first one or two attempts:
        // whichever delivery runs such an attempt leaves the task queued for
        // a retry (never failed: a third attempt succeeds).
        let fail_attempts = if rng.chance(0.3) { rng.range(1, 3) } else { 0 };
        for _ in 0..copies {
            let (run, task_id) = (run.clone(), task_id.clone());
            later.push(tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                run.duplicate(&task_id, delay_ms, fail_attempts).await;
            }));
        }
    }
    if rng.chance(0.15) {
        // While queued, running, waiting for a retry, or done.
        let wait = rng.millis(0, delay_ms + 2500);
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
    Some(poller)
}
