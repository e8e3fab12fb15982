//! Hostile and malformed input, as property tests: arbitrary events go through
//! `lambda_http::request::from_str` (what the runtime does with every event) and
//! then `Function::handle`, against a healthy local DynamoDB and a Lambda
//! `Invoke` stand-in that accepts everything.
//!
//! For every case: the function never panics and never hangs; an HTTP request
//! always gets an HTTP answer, never a 5xx (nothing is failing, so any 5xx would
//! be the function's own fault); a 4xx writes nothing and enqueues nothing; every
//! error body is the contract's JSON; an HTTP request never touches a task record
//! (it never runs a task); a non-HTTP event that is not a task of ours is a
//! function error that writes nothing (the failure queue's SQS event gets its
//! batch answer, and writes nothing for a task that is not recorded).
//!
//! What lambda_http does before the function sees an event is the runtime's
//! business: a parse error is the runtime's own function error, and a panic in
//! lambda_http's conversion is caught here, counted and printed with its input
//! (the real runtime turns it into a function error too: see
//! `tests/reliability.rs`).
//!
//! 256 cases per property by default; `PROPTEST_CASES=N` (or `make fuzz`) runs
//! more. Each property prints what it ran and writes it to
//! `target/tmp/fuzz-<property>.txt`.
//!
//! Every run is reproducible: the properties draw their cases from one seed,
//! printed first (`FUZZ_SEED=…`). `make test` runs them from the fixed
//! [`SEED`], so that a green run is the same run on every machine and never
//! green by luck; `FUZZ_RANDOM=1` (`make fuzz`) draws a random seed to explore;
//! `FUZZ_SEED=N` replays a run. What once failed stays a regression case, run
//! before the random cases of every run: the seed of each failing case
//! (proptest saves it in `tests/fuzz-regressions/<property>.txt`: commit it),
//! and the shrunk input itself, in the property's list of regressions (a saved
//! seed only draws the same input while the strategies stay the same).

mod support;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use async_api::tasks::TaskEvent;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, RngSeed, TestCaseError, TestRunner,
};
use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::{Fixture, events, now_millis};

#[path = "fuzz/properties.rs"]
mod properties;
#[path = "fuzz/strategies.rs"]
mod strategies;
use strategies::{
    HttpCase, KNOWN_TASK, Source, apply_json, apply_text, http_case, http_event, json_mutation,
    json_value, nested, odd_string, sample_events, text_mutation,
};

/// Cases per property when `PROPTEST_CASES` is not set: enough to find the
/// shallow bugs on every CI run in a few seconds per property.
const DEFAULT_CASES: u32 = 256;
/// Longest any one event may take; a healthy DynamoDB answers in milliseconds.
const BOUND: Duration = Duration::from_secs(20);
/// A task id that no test table holds (the one of `events/task.json`).
const UNRECORDED_TASK: &str = "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c";
/// Largest body the API reads.
const MAX_BODY: usize = 64 * 1024;
/// The seed of `make test`'s runs. Changing it changes every case drawn.
const SEED: u64 = 20_251_126;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The seed of this run, one for every property, and where it came from:
/// `FUZZ_SEED` when set, a random one when `FUZZ_RANDOM=1`, else [`SEED`].
fn seed() -> (u64, &'static str) {
    static SEED_OF_RUN: OnceLock<(u64, &'static str)> = OnceLock::new();
    *SEED_OF_RUN.get_or_init(|| {
        let random = std::env::var("FUZZ_RANDOM").is_ok_and(|value| value.trim() == "1");
        match std::env::var("FUZZ_SEED") {
            Ok(seed) if !seed.trim().is_empty() => (
                seed.trim().parse().expect("FUZZ_SEED: a whole number"),
                "FUZZ_SEED",
            ),
            _ if random => (
                uuid::Uuid::new_v4().as_u64_pair().0 % 1_000_000_000,
                "random: FUZZ_RANDOM=1",
            ),
            _ => (SEED, "fixed"),
        }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

// ---------------------------------------------------------------------------
// Panics inside lambda_http: caught, recorded, not printed case by case
// ---------------------------------------------------------------------------

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, catching a panic and returning its message (with its location)
/// instead of printing it. Panics elsewhere print as usual.
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let message = info.to_string().replace('\n', " ");
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(message));
            } else {
                default(info);
            }
        }));
    });
    QUIET.with(|quiet| quiet.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|quiet| quiet.set(false));
    result.map_err(|_| LAST_PANIC.with(|last| last.borrow_mut().take().unwrap_or_default()))
}

/// The start of a long input, and its length.
fn excerpt(event: &str) -> String {
    let mut input: String = event.chars().take(2000).collect();
    if input.len() < event.len() {
        input.push_str(&format!("… ({} bytes)", event.len()));
    }
    input
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned())
}

// ---------------------------------------------------------------------------
// The harness: one pair of tables per property, and what was seen
// ---------------------------------------------------------------------------

/// What a property ran into, for the summary it prints.
#[derive(Default)]
struct Stats {
    cases: usize,
    /// Events lambda_http refused (the runtime's own function error).
    unparsed: usize,
    /// Panics inside lambda_http's conversion: (message, the input, cut short).
    lambda_http_panics: Vec<(String, String)>,
    /// HTTP answers by status.
    statuses: BTreeMap<u16, usize>,
    /// Function errors of non-HTTP events, by error type.
    event_errors: BTreeMap<String, usize>,
}

/// What DynamoDB and the Lambda stand-in hold, before and after an event.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: usize,
    tasks: usize,
    known_task: Option<HashMap<String, AttributeValue>>,
    invocations: usize,
}

struct Harness {
    name: &'static str,
    lambda: FakeLambda,
    fixture: Fixture,
    /// A task recorded through `POST /async` before the cases run: HTTP events
    /// carry its id and its task event, and must never change it.
    known_task: String,
    stats: Mutex<Stats>,
}

impl Harness {
    fn new(name: &'static str) -> Self {
        runtime().block_on(async {
            let lambda = FakeLambda::start(202).await;
            let fixture = Fixture::new(&lambda.url).await;
            fixture.seed_users(5).await;
            let reply = fixture
                .http("POST", "/async", Some(r#"{"delay_ms": 0}"#))
                .await;
            assert_eq!(reply.status, 202, "{}", reply.body);
            let known_task = reply.body["task_id"].as_str().expect("task id").to_owned();
            Self {
                name,
                lambda,
                fixture,
                known_task,
                stats: Mutex::default(),
            }
        })
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The known task's own event, as `/async` enqueued it.
    fn known_task_event(&self) -> String {
        events::task(&self.known_task, 0)
    }

    async fn count(&self, table: &str) -> usize {
        let mut total = 0;
        let mut start = None;
        loop {
            let page = self
                .fixture
                .dynamodb
                .scan()
                .table_name(table)
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("count items");
            total += usize::try_from(page.count()).expect("count");
            start = page.last_evaluated_key;
            if start.is_none() {
                return total;
            }
        }
    }

    async fn snapshot(&self) -> Snapshot {
        Snapshot {
            users: self.count(&self.fixture.users_table).await,
            tasks: self.count(&self.fixture.tasks_table).await,
            known_task: self.fixture.task_item(&self.known_task).await,
            invocations: self.lambda.invocations().len(),
        }
    }

    /// Feeds one event to the function, as the runtime would, and checks every
    /// property of the module documentation.
    fn check(&self, event: &str) -> Result<(), TestCaseError> {
        self.stats().cases += 1;
        let request = match quietly(|| lambda_http::request::from_str(event)) {
            Err(message) => {
                self.stats()
                    .lambda_http_panics
                    .push((message, excerpt(event)));
                return Ok(());
            }
            Ok(Err(_)) => {
                self.stats().unparsed += 1;
                return Ok(());
            }
            Ok(Ok(request)) => request,
        };
        let pass_through = matches!(
            request.request_context_ref(),
            Some(RequestContext::PassThrough)
        );
        let method = request.method().as_str().to_owned();
        let request_id = format!("fuzz-{}", uuid::Uuid::new_v4());
        let mut context = lambda_http::Context::default();
        context.request_id = request_id.clone();
        context.deadline = now_millis() + 90_000;
        let request = request.with_lambda_context(context);

        let rt = runtime();
        let before = rt.block_on(self.snapshot());
        let answer = panic::catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                tokio::time::timeout(BOUND, self.fixture.function.handle(request)).await
            })
        }))
        .map_err(|payload| {
            TestCaseError::fail(format!(
                "the function panicked: {}",
                panic_message(payload.as_ref())
            ))
        })?
        .map_err(|_| TestCaseError::fail(format!("no answer within {BOUND:?}")))?;
        let after = rt.block_on(self.snapshot());

        if pass_through {
            return self.check_event_answer(event, answer, &before, &after);
        }
        let response = answer.map_err(|err| {
            TestCaseError::fail(format!("an HTTP request got a function error: {err}"))
        })?;
        let status = response.status().as_u16();
        *self.stats().statuses.entry(status).or_default() += 1;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = match response.into_body() {
            Body::Empty => String::new(),
            Body::Text(text) => text,
            Body::Binary(bytes) => String::from_utf8(bytes)
                .map_err(|err| TestCaseError::fail(format!("a body that is not UTF-8: {err}")))?,
            _ => return Err(TestCaseError::fail("unknown body kind")),
        };

        prop_assert!(status < 500, "a client's request answered {status}: {text}");
        prop_assert_eq!(
            &after.known_task,
            &before.known_task,
            "an HTTP request changed a task record"
        );
        prop_assert_eq!(after.users, before.users, "the users table changed");
        if (400..500).contains(&status) {
            prop_assert_eq!(&after, &before, "a rejected request wrote or enqueued");
            // HEAD answers carry no body; every other error is the contract's JSON.
            if !(method == "HEAD" && text.is_empty()) {
                prop_assert_eq!(content_type.as_str(), "application/json");
                let body: Value = serde_json::from_str(&text)
                    .map_err(|_| TestCaseError::fail(format!("error body not JSON: {text}")))?;
                let code = match status {
                    400 => "bad_request",
                    401 => "unauthorized",
                    404 => "not_found",
                    405 => "method_not_allowed",
                    409 => "conflict",
                    413 => "payload_too_large",
                    415 => "unsupported_media_type",
                    422 => "idempotency_key_reused",
                    429 => "too_many_requests",
                    other => return Err(TestCaseError::fail(format!("unexpected {other}"))),
                };
                let message = body["error"]["message"].as_str().unwrap_or_default();
                prop_assert!(!message.is_empty(), "no message: {}", body);
                prop_assert_eq!(
                    &body,
                    &json!({"error": {"code": code, "message": message, "request_id": request_id}})
                );
            }
        } else if status == 202 {
            prop_assert_eq!(after.tasks, before.tasks + 1, "202 records one task");
            prop_assert_eq!(
                after.invocations,
                before.invocations + 1,
                "202 enqueues one"
            );
            // HEAD is GET without the body (axum serves it with the GET
            // handler): `HEAD /async` starts a task too.
            if !(method == "HEAD" && text.is_empty()) {
                let body: Value = serde_json::from_str(&text)
                    .map_err(|_| TestCaseError::fail(format!("202 body not JSON: {text}")))?;
                prop_assert_eq!(body["message"].as_str(), Some("Task started"));
            }
        } else {
            prop_assert_eq!(&after, &before, "a {} wrote or enqueued", status);
            // A body is JSON, but for the /docs page; HEAD and a CORS preflight have none.
            if !text.is_empty() && !content_type.starts_with("text/html") {
                prop_assert_eq!(content_type.as_str(), "application/json");
                prop_assert!(
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "body not JSON: {}",
                    text
                );
            }
        }
        Ok(())
    }

    /// A non-HTTP event: only a task event of a recorded task may succeed, and
    /// none of the generated ones names one; nothing is written. The failure
    /// queue's SQS event (a `Records` list) is answered with its batch response:
    /// a record of a task that is not recorded is acknowledged, writing nothing.
    fn check_event_answer(
        &self,
        event: &str,
        answer: Result<lambda_http::Response<Body>, async_api::FunctionError>,
        before: &Snapshot,
        after: &Snapshot,
    ) -> Result<(), TestCaseError> {
        let parsed = serde_json::from_str::<Value>(event).ok();
        // An array, a string, a number, a boolean or null is no event at all
        // (a serde struct reads an array as its fields, in order).
        let object = parsed.as_ref().is_some_and(Value::is_object);
        let names_a_recorded_task = object
            && serde_json::from_str::<TaskEvent>(event)
                .is_ok_and(|task| task.task_id == self.known_task);
        prop_assume!(!names_a_recorded_task);
        let records = parsed
            .as_ref()
            .is_some_and(|event| event.get("Records").is_some_and(Value::is_array));
        match answer {
            Ok(response) if records => {
                let body = serde_json::from_slice::<Value>(response.body()).unwrap_or_default();
                prop_assert!(
                    body["batchItemFailures"].is_array(),
                    "an SQS event's answer: {:?}",
                    response.body()
                );
                prop_assert_eq!(after, before, "an SQS event of no recorded task wrote");
                Ok(())
            }
            Ok(response) => Err(TestCaseError::fail(format!(
                "a non-HTTP event that is no task of ours succeeded: {:?}",
                response.body()
            ))),
            Err(err) => {
                let diagnostic = lambda_http::lambda_runtime::Diagnostic::from(err);
                prop_assert!(
                    matches!(
                        diagnostic.error_type.as_str(),
                        "UnrecognizedEvent" | "UnknownTask"
                    ),
                    "{:?}",
                    diagnostic
                );
                prop_assert!(
                    object || diagnostic.error_type == "UnrecognizedEvent",
                    "an event that is no JSON object: {:?}",
                    diagnostic
                );
                *self
                    .stats()
                    .event_errors
                    .entry(diagnostic.error_type)
                    .or_default() += 1;
                prop_assert_eq!(after, before, "a rejected event wrote");
                Ok(())
            }
        }
    }

    /// Checks each input of `regressions`, then runs `strategy` through
    /// [`Harness::check`] from the run's seed (the seeds of cases that failed
    /// before first), then checks that no task ever left `queued` and prints
    /// and records the summary.
    fn run<S>(
        &self,
        regressions: &[String],
        strategy: S,
        to_event: impl Fn(&Self, &S::Value) -> String,
    ) where
        S: Strategy,
        S::Value: std::fmt::Debug,
    {
        let (seed, source) = seed();
        println!(
            "fuzz {}: FUZZ_SEED={seed} ({source}), {} cases",
            self.name,
            cases()
        );
        let mut failures = self.check_each(regressions);
        // Where proptest keeps the seed of every case that failed (it reads
        // them back and runs them first), one file per property.
        let saved_seeds: &'static str = Box::leak(
            format!(
                "{}/tests/fuzz-regressions/{}.txt",
                env!("CARGO_MANIFEST_DIR"),
                self.name
            )
            .into_boxed_str(),
        );
        let config = Config {
            cases: cases(),
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(saved_seeds))),
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(seed),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |value| self.check(&to_event(self, &value)));
        if let Err(err) = result {
            failures.push(format!("{err}"));
        }
        self.report();
        assert!(
            failures.is_empty(),
            "{} (FUZZ_SEED={seed}): {}",
            self.name,
            failures.join("\n")
        );
        runtime().block_on(self.assert_no_task_left_queued());
    }

    /// Every failure of the events of `corpus`, checked in order.
    fn check_each(&self, corpus: &[String]) -> Vec<String> {
        corpus
            .iter()
            .filter_map(|event| {
                self.check(event)
                    .err()
                    .map(|err| format!("{err}\n  input: {}", excerpt(event)))
            })
            .collect()
    }

    /// Checks every event of `corpus`, in order.
    fn run_each(&self, corpus: &[String]) {
        let failures = self.check_each(corpus);
        self.report();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        runtime().block_on(self.assert_no_task_left_queued());
    }

    /// Every task record is still `queued` with no attempt: nothing ran one.
    async fn assert_no_task_left_queued(&self) {
        let mut start = None;
        loop {
            let page = self
                .fixture
                .dynamodb
                .scan()
                .table_name(&self.fixture.tasks_table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan tasks");
            for item in page.items() {
                assert_eq!(
                    (item.get("status"), item.get("attempts")),
                    (
                        Some(&AttributeValue::S("queued".to_owned())),
                        Some(&AttributeValue::N("0".to_owned()))
                    ),
                    "a task record changed: {item:?}"
                );
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return;
            }
        }
    }

    /// Prints the summary and writes it to `target/tmp/fuzz-<property>.txt`.
    fn report(&self) {
        let summary = self.summary();
        println!("{summary}");
        let path = format!("{}/fuzz-{}.txt", env!("CARGO_TARGET_TMPDIR"), self.name);
        // The file is a convenience; the test's verdict does not depend on it.
        let _ = std::fs::write(&path, &summary);
    }

    fn summary(&self) -> String {
        let stats = self.stats();
        let mut out = format!(
            "fuzz {} (FUZZ_SEED={}): {} cases run; lambda_http refused {}, panicked on {}; \
             HTTP answers by status {:?}; non-HTTP event errors {:?}",
            self.name,
            seed().0,
            stats.cases,
            stats.unparsed,
            stats.lambda_http_panics.len(),
            stats.statuses,
            stats.event_errors,
        );
        let mut kinds: BTreeMap<String, (usize, &String)> = BTreeMap::new();
        for (message, input) in &stats.lambda_http_panics {
            let entry = kinds.entry(message.clone()).or_insert((0, input));
            entry.0 += 1;
        }
        for (message, (count, input)) in kinds {
            out.push_str(&format!(
                "\n  lambda_http panic x{count}: {message}\n    first input: {input}"
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------
