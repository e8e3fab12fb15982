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
            Body::Binary(bytes) => {
                return Err(TestCaseError::fail(format!(
                    "binary body of {} bytes",
                    bytes.len()
                )));
            }
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
                let body = match response.body() {
                    Body::Text(text) => serde_json::from_str::<Value>(text).unwrap_or_default(),
                    _ => Value::Null,
                };
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

/// Strings that have broken parsers before.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "%",
    "%FF",
    "%fe%ff",
    "%C3%28",
    "%00",
    "%2e%2e",
    "%2F",
    "..",
    ".",
    "/..",
    "//",
    "é",
    "😀",
    "\u{202e}",
    "\u{0}",
    "\u{7f}",
    "\\",
    "\"",
    "'",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "?",
    "#",
    "&",
    "=",
    ";",
    "\r\n",
    "\t",
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "0",
    "1",
    "1000",
    "1001",
    "60000",
    "60001",
    "2147483648",
    "9223372036854775808",
    "99999999999999999999999999",
    "1e400",
    "-0",
    "NaN",
    "Infinity",
    "0x10",
    "eyJpZCI6InVzZXItMDAwMDEifQ",
    "eyJpZCI6InVzZXItMDAwMDEifQ==",
    "e30",
    "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
    "0B7E4C1A-2F3D-4E5A-8C6B-9D1E2F3A4B5C",
];

fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(ODD_STRINGS).prop_map(str::to_owned),
        2 => any::<String>(),
        2 => "[ -~]{0,40}",
        1 => (select(ODD_STRINGS), 1..3000usize).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Keys of the events of every source, so that random JSON often looks like one.
const EVENT_KEYS: &[&str] = &[
    "version",
    "routeKey",
    "rawPath",
    "rawQueryString",
    "cookies",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "http",
    "method",
    "path",
    "protocol",
    "sourceIp",
    "stage",
    "domainName",
    "elb",
    "targetGroupArn",
    "httpMethod",
    "resource",
    "resourcePath",
    "identity",
    "body",
    "isBase64Encoded",
    "task_id",
    "delay_ms",
    "fail_attempts",
    "host",
    "content-type",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(EVENT_KEYS).prop_map(str::to_owned),
        1 => odd_string(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        odd_string().prop_map(Value::String),
        Just(Value::String(UNRECORDED_TASK.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `depth` nested arrays, with `core` inside.
fn nested(depth: usize, core: &str) -> String {
    format!("{}{core}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A request body and its `isBase64Encoded` flag, honest or not.
fn body() -> impl Strategy<Value = (Option<String>, bool)> {
    let plain = prop_oneof![
        Just(String::new()),
        select(vec![
            "{}",
            "null",
            "[]",
            "{\"delay_ms\": 0}",
            "{\"delay_ms\": 60000}",
            "{\"delay_ms\": 60001}",
            "{\"delay_ms\": -1}",
            "{\"delay_ms\": 1.5}",
            "{\"delay_ms\": 1e3}",
            "{\"delay_ms\": \"5\"}",
            "{\"delay_ms\": null}",
            "{\"delay_ms\": 99999999999999999999999}",
            "{\"delay_ms\": 1e99999}",
            "{\"delay\": 10}",
            "{\"delay_ms\": 0, \"delay_ms\": 1}",
            "{\"fail_attempts\": 3}",
            "{",
            "not json",
            "\u{feff}{}",
            "  \n\t  ",
        ])
        .prop_map(str::to_owned),
        odd_string(),
        json_value().prop_map(|v| v.to_string()),
        (1..3000usize).prop_map(|d| nested(d, "")),
        (1..3000usize).prop_map(|d| format!("{{\"delay_ms\": {}}}", nested(d, "1"))),
        (1..5000usize).prop_map(|n| format!("{{\"delay_ms\": {}}}", "9".repeat(n))),
        (1..5000usize).prop_map(|n| "1".repeat(n)),
        (MAX_BODY - 64..MAX_BODY + 8000).prop_map(|n| {
            let pad = n.saturating_sub(20);
            format!("{{\"pad\": \"{}\"}}", "x".repeat(pad))
        }),
        (MAX_BODY - 8..MAX_BODY + 8).prop_map(|n| format!("{}{{}}", " ".repeat(n - 2))),
        Just(json!({"task_id": UNRECORDED_TASK, "delay_ms": 0}).to_string()),
    ]
    .boxed();
    prop_oneof![
        1 => Just((None, false)),
        // The flag lies now and then: lambda_http panics on such a body.
        6 => (plain.clone(), proptest::bool::weighted(0.1)).prop_map(|(text, lie)| (Some(text), lie)),
        // Base64 of any bytes, flagged as such or not.
        2 => (vec(any::<u8>(), 0..300), any::<bool>())
            .prop_map(|(bytes, flag)| (Some(STANDARD.encode(bytes)), flag)),
        // A text body, honestly base64-encoded.
        2 => plain.prop_map(|text| (Some(STANDARD.encode(text)), true)),
    ]
}

const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "get", "Post",
    "PROPFIND", "BREW", "X-CUSTOM", "G E T", "", "GET\n", "ÄÖÜ",
];

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec!["GET", "POST"]).prop_map(str::to_owned),
        3 => select(METHODS).prop_map(str::to_owned),
        1 => "[A-Za-z!#$%&'*+.^_`|~-]{1,20}",
        1 => (1..2000usize).prop_map(|n| "A".repeat(n)),
    ]
}

/// Stands for the id of the harness's recorded task in a generated path.
const KNOWN_TASK: &str = "{known_task}";

const SEGMENTS: &[&str] = &[
    "users",
    "async",
    "tasks",
    "openapi.json",
    "docs",
    "Prod",
    "prod",
    "$default",
    "events",
    "",
    ".",
    "..",
    "%2e",
    "%2E%2E",
    "%75sers",
    "users%2F",
    "%FF",
    "%C3%28",
    "%00",
    "%20",
    "+",
    "users;x=1",
    "users.json",
    "USERS",
    "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
    "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c%00",
    "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c",
    KNOWN_TASK,
    ":abc",
    "@host",
    "é",
    "😀",
    "%E2%80%AE",
];

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        6 => select(SEGMENTS).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9._~%-]{0,16}",
        1 => odd_string(),
        1 => (1..10_000usize).prop_map(|n| "a".repeat(n)),
    ];
    // The routes of the contract, as such or under a stage.
    let route = (
        select(vec!["", "", "", "/Prod"]),
        select(vec![
            "/users",
            "/async",
            "/openapi.json",
            "/docs",
            "/tasks/{known_task}",
            "/tasks/5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c",
            "/tasks/",
            "/",
        ]),
    )
        .prop_map(|(stage, route)| format!("{stage}{route}"));
    prop_oneof![
        8 => route,
        4 => vec(segment, 0..5).prop_map(|segments| format!("/{}", segments.join("/"))),
        2 => select(vec![
            "/users", "/async", "/Prod/users", "/Prod", "/Prod/", "//users", "/users/", "/./users",
            "/../users", "/users/..", "/tasks/", "/tasks", "/tasks/../users", "/", "", "users",
            "*", "http://evil.example.com/users", "///", "/%2Fusers",
        ])
        .prop_map(str::to_owned),
        1 => odd_string(),
    ]
}

/// Percent-encodes everything but unreserved characters and `%`, as a client
/// would before sending; the rest of the time the raw text goes through.
fn encode_query_part(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~%".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => select(vec!["limit", "cursor"]).prop_map(str::to_owned),
        1 => select(vec!["Limit", "limit[]", "x", "", "delay_ms", "task_id"]).prop_map(str::to_owned),
        1 => odd_string(),
    ];
    let value = prop_oneof![
        3 => odd_string(),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{1,40}",
        1 => "[A-Za-z0-9_-]{0,40}",
        1 => "[a-z0-9-]{1,20}".prop_map(|id| base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"id": id}).to_string())),
    ];
    let pairs = vec((key, value, any::<bool>()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, with_value)| {
                if with_value {
                    format!("{}={}", encode_query_part(&k), encode_query_part(&v))
                } else {
                    encode_query_part(&k)
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    prop_oneof![
        6 => pairs,
        1 => odd_string(),
        1 => select(vec!["", "&&&", "=", "limit=1&limit=2", "limit=", "cursor=", "limit=1&cursor="])
            .prop_map(str::to_owned),
    ]
}

const HEADER_NAMES: &[&str] = &[
    "host",
    "Host",
    "content-type",
    "Content-Type",
    "content-length",
    "origin",
    "Origin",
    "x-forwarded-proto",
    "cookie",
    "authorization",
    "accept",
    "transfer-encoding",
    "access-control-request-method",
    "x-amzn-trace-id",
    "x-forwarded-for",
    "x-http-method-override",
];

const HEADER_VALUES: &[&str] = &[
    "",
    "a b",
    "example.com:99999",
    "[::1",
    "[::1]:8080",
    "evil.example.com/path",
    "user@host",
    "http",
    "javascript",
    "ftp",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "multipart/form-data; boundary=x",
    "-1",
    "99999999999999999999",
    "https://app.example.com",
    "https://evil.example.com",
    "*",
    "null",
    "GET",
    "DELETE",
    "chunked",
    "é",
];

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        4 => select(HEADER_NAMES).prop_map(str::to_owned),
        1 => "[a-z-]{1,24}",
        1 => odd_string(),
    ];
    let value = prop_oneof![
        3 => select(HEADER_VALUES).prop_map(str::to_owned),
        1 => odd_string(),
    ];
    vec((name, value), 0..5)
}

/// The HTTP sources of the contract.
#[derive(Clone, Copy, Debug)]
enum Source {
    HttpApi,
    FunctionUrl,
    RestApi,
    Alb,
}

/// One HTTP request of one source, every part of it chosen.
#[derive(Clone, Debug)]
struct HttpCase {
    source: Source,
    stage: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    base64: bool,
}

fn http_case() -> impl Strategy<Value = HttpCase> {
    let source = select(vec![
        Source::HttpApi,
        Source::FunctionUrl,
        Source::RestApi,
        Source::Alb,
    ]);
    let stage = prop_oneof![
        8 => select(vec!["$default", "Prod"]).prop_map(str::to_owned),
        1 => select(vec!["prod", "", "a b", "..", "?x", "#", "/", "Prod/users", "%2F", "users"])
            .prop_map(str::to_owned),
        1 => odd_string(),
    ];
    (source, stage, method(), path(), query(), headers(), body()).prop_map(
        |(source, stage, method, path, query, headers, (body, base64))| HttpCase {
            source,
            stage,
            method,
            path,
            query,
            headers,
            body,
            base64,
        },
    )
}

fn query_maps(query: &str) -> (Value, Value) {
    let mut single = serde_json::Map::new();
    let mut multi = serde_json::Map::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        single.insert(k.to_owned(), json!(v));
        let values = multi.entry(k).or_insert_with(|| json!([]));
        if let Some(values) = values.as_array_mut() {
            values.push(json!(v));
        }
    }
    (Value::Object(single), Value::Object(multi))
}

/// The event the case's source sends, built by tests/support/events.rs and then
/// given exactly the case's path, query, stage, headers, body and flag.
fn http_event(case: &HttpCase) -> String {
    let base = match case.source {
        Source::HttpApi => events::http_api(&case.method, "/", None),
        Source::FunctionUrl => events::function_url(&case.method, "/", None),
        Source::RestApi => events::rest_api(&case.stage, &case.method, "/", None),
        Source::Alb => events::alb(&case.method, "/", None),
    };
    let mut event: Value = serde_json::from_str(&base).expect("builder JSON");
    let (single, multi) = query_maps(&case.query);
    match case.source {
        Source::HttpApi | Source::FunctionUrl => {
            event["rawPath"] = json!(case.path);
            event["requestContext"]["http"]["path"] = json!(case.path);
            event["rawQueryString"] = json!(case.query);
            event["queryStringParameters"] = single;
            if matches!(case.source, Source::HttpApi) {
                event["requestContext"]["stage"] = json!(case.stage);
            }
        }
        Source::RestApi => {
            event["path"] = json!(case.path);
            event["requestContext"]["path"] = json!(format!("/{}{}", case.stage, case.path));
            event["pathParameters"] = json!({"proxy": case.path.trim_start_matches('/')});
            event["queryStringParameters"] = single;
            event["multiValueQueryStringParameters"] = multi;
        }
        Source::Alb => {
            event["path"] = json!(case.path);
            event["queryStringParameters"] = single;
        }
    }
    for (name, value) in &case.headers {
        event["headers"][name.as_str()] = json!(value);
        if matches!(case.source, Source::RestApi) {
            event["multiValueHeaders"][name.as_str()] = json!([value]);
        }
    }
    event["body"] = json!(case.body);
    event["isBase64Encoded"] = json!(case.base64);
    event.to_string()
}

/// Every sample of events/, and events built for every source and route.
fn sample_events() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut samples: Vec<String> = std::fs::read_dir(&dir)
        .expect("events/")
        .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("event file"))
        .collect();
    samples.sort();
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"id":"user-00001"}"#);
    let users = format!("/users?limit=2&cursor={cursor}");
    let task = format!("/tasks/{UNRECORDED_TASK}");
    for (method, path, body) in [
        ("GET", users.as_str(), None),
        ("POST", "/async", Some(r#"{"delay_ms": 0}"#)),
        ("GET", "/async", None),
        ("GET", task.as_str(), None),
        ("GET", "/openapi.json", None),
        (
            "POST",
            "/events",
            Some(r#"{"task_id": "x", "delay_ms": 0}"#),
        ),
    ] {
        samples.push(events::http_api(method, path, body));
        samples.push(events::function_url(method, path, body));
        samples.push(events::rest_api("Prod", method, path, body));
        samples.push(events::alb(method, path, body));
    }
    samples.push(events::task(UNRECORDED_TASK, 0));
    samples
        .push(json!({"task_id": UNRECORDED_TASK, "delay_ms": 0, "fail_attempts": 1}).to_string());
    samples
}

/// One step from a JSON path in the event.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    At(usize),
}

/// Every path of `value`, the root first.
fn json_paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(Step::Key(key.clone()));
                json_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Step::At(i));
                json_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |value, step| match step {
        Step::Key(key) => &mut value[key.as_str()],
        Step::At(i) => &mut value[*i],
    })
}

/// A change to one node of an event's JSON.
#[derive(Clone, Debug)]
enum JsonMutation {
    Replace(Index, Value),
    ReplaceWithString(Index, String),
    Remove(Index),
    Insert(Index, String, Value),
    /// The node becomes its own JSON text, as a string.
    Stringify(Index),
    FlipBool(Index),
}

/// A change to the event's text.
#[derive(Clone, Debug)]
enum TextMutation {
    Truncate(Index),
    Delete(Index, usize),
    Insert(Index, String),
    Duplicate(Index, usize),
}

fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        3 => (any::<Index>(), json_value()).prop_map(|(i, v)| JsonMutation::Replace(i, v)),
        3 => (any::<Index>(), odd_string()).prop_map(|(i, s)| JsonMutation::ReplaceWithString(i, s)),
        2 => any::<Index>().prop_map(JsonMutation::Remove),
        2 => (any::<Index>(), json_key(), json_value()).prop_map(|(i, k, v)| JsonMutation::Insert(i, k, v)),
        1 => any::<Index>().prop_map(JsonMutation::Stringify),
        1 => any::<Index>().prop_map(JsonMutation::FlipBool),
    ]
}

fn text_mutation() -> impl Strategy<Value = TextMutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(TextMutation::Truncate),
        1 => (any::<Index>(), 1..40usize).prop_map(|(i, n)| TextMutation::Delete(i, n)),
        1 => (any::<Index>(), odd_string()).prop_map(|(i, s)| TextMutation::Insert(i, s)),
        1 => (any::<Index>(), 1..200usize).prop_map(|(i, n)| TextMutation::Duplicate(i, n)),
    ]
}

fn apply_json(event: &mut Value, mutation: &JsonMutation) {
    let mut paths = Vec::new();
    json_paths(event, &mut Vec::new(), &mut paths);
    let pick = |index: &Index| paths[index.index(paths.len())].clone();
    match mutation {
        JsonMutation::Replace(i, v) => *at_path(event, &pick(i)) = v.clone(),
        JsonMutation::ReplaceWithString(i, s) => *at_path(event, &pick(i)) = json!(s),
        JsonMutation::Remove(i) => {
            let mut path = pick(i);
            match path.pop() {
                Some(Step::Key(key)) => {
                    if let Some(map) = at_path(event, &path).as_object_mut() {
                        map.remove(&key);
                    }
                }
                Some(Step::At(at)) => {
                    if let Some(items) = at_path(event, &path).as_array_mut() {
                        items.remove(at);
                    }
                }
                None => *event = Value::Null,
            }
        }
        JsonMutation::Insert(i, key, v) => match at_path(event, &pick(i)) {
            Value::Object(map) => {
                map.insert(key.clone(), v.clone());
            }
            Value::Array(items) => items.push(v.clone()),
            other => *other = json!({key.as_str(): v}),
        },
        JsonMutation::Stringify(i) => {
            let node = at_path(event, &pick(i));
            *node = Value::String(node.to_string());
        }
        JsonMutation::FlipBool(i) => {
            let node = at_path(event, &pick(i));
            *node = match node {
                Value::Bool(b) => Value::Bool(!*b),
                Value::Null => Value::Bool(true),
                _ => Value::Null,
            };
        }
    }
}

fn char_boundary(text: &str, index: &Index) -> usize {
    let mut at = index.index(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply_text(text: &mut String, mutation: &TextMutation) {
    match mutation {
        TextMutation::Truncate(i) => {
            let at = char_boundary(text, i);
            text.truncate(at);
        }
        TextMutation::Delete(i, n) => {
            let at = char_boundary(text, i);
            let end = text[at..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(offset, _)| at + offset);
            text.replace_range(at..end, "");
        }
        TextMutation::Insert(i, s) => {
            let at = char_boundary(text, i);
            text.insert_str(at, s);
        }
        TextMutation::Duplicate(i, n) => {
            let at = char_boundary(text, i);
            let end = text[at..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(offset, _)| at + offset);
            let copy = text[at..end].to_owned();
            text.insert_str(end, &copy);
        }
    }
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

/// Inputs the arbitrary-JSON property once failed on, shrunk: JSON that is no
/// object, which a serde struct reads as a sequence of its fields (`[[]]` was
/// an empty SQS batch, `["<uuid>", 1]` a task event).
fn arbitrary_json_regressions() -> Vec<String> {
    let mut inputs: Vec<String> = ["[[]]", "[]", "\"x\"", "1", "null", "true", " \n[[]]"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    inputs.push(json!([{"task_id": UNRECORDED_TASK, "delay_ms": 1}]).to_string());
    inputs.push(json!([UNRECORDED_TASK, 1]).to_string());
    inputs.push(json!([[{"messageId": "m", "body": "{}"}]]).to_string());
    inputs
}

#[test]
fn arbitrary_json_and_text_never_panic_the_function_nor_write() {
    let harness = Harness::new("arbitrary-json");
    let strategy = prop_oneof![
        4 => json_value().prop_map(|v| v.to_string()),
        1 => any::<String>(),
        1 => odd_string(),
        1 => (1..2000usize).prop_map(|d| nested(d, "")),
        1 => (1..2000usize).prop_map(|d| format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d))),
    ];
    harness.run(&arbitrary_json_regressions(), strategy, |_, event| {
        event.clone()
    });
}

#[test]
fn mutated_and_truncated_real_events_of_every_source_never_5xx_nor_write_when_rejected() {
    let harness = Harness::new("mutated-events");
    let samples = sample_events();
    let strategy = (
        select(samples),
        vec(json_mutation(), 0..4),
        proptest::option::of(text_mutation()),
    );
    harness.run(&[], strategy, |_, (sample, json_mutations, text)| {
        let mut event = match serde_json::from_str::<Value>(sample) {
            Ok(mut value) => {
                for mutation in json_mutations {
                    apply_json(&mut value, mutation);
                }
                value.to_string()
            }
            Err(_) => sample.clone(),
        };
        if let Some(mutation) = text {
            apply_text(&mut event, mutation);
        }
        event
    });
}

#[test]
fn hostile_http_requests_of_every_source_never_5xx_never_write_when_rejected_never_run_a_task() {
    let harness = Harness::new("hostile-http");
    // Half the bodies are the recorded task's own event, sent over HTTP to any
    // path: that must never run it.
    let strategy = (http_case(), any::<bool>());
    harness.run(&[], strategy, |harness, (case, carry_task)| {
        let mut case = case.clone();
        if *carry_task {
            case.body = Some(harness.known_task_event());
            case.base64 = false;
        }
        http_event(&case).replace(KNOWN_TASK, &harness.known_task)
    });
}

/// A fixed corpus, so that the inputs that matter most run on every CI run
/// whatever the random draw.
#[test]
fn a_corpus_of_hostile_requests_gets_contract_answers() {
    let harness = Harness::new("corpus");
    let huge = format!("{{\"delay_ms\": {}}}", "9".repeat(5000));
    let deep = format!("{{\"delay_ms\": {}}}", nested(10_000, "1"));
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let exactly = format!("{}{{}}", " ".repeat(MAX_BODY - 2));
    let binary = STANDARD.encode([0xff_u8, 0xfe, 0x00, 0x80, b'{', b'}']);
    let mut corpus = Vec::new();
    for source in [
        Source::HttpApi,
        Source::FunctionUrl,
        Source::RestApi,
        Source::Alb,
    ] {
        let case = |method: &str, path: &str, query: &str, body: Option<&str>, base64: bool| {
            http_event(&HttpCase {
                source,
                stage: "Prod".to_owned(),
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                headers: vec![],
                body: body.map(str::to_owned),
                base64,
            })
        };
        for (method, path, query) in [
            ("GET", "/tasks/%FF", ""),
            ("GET", "/tasks/%C3%28", ""),
            ("GET", "/tasks/%00", ""),
            ("GET", "/%2e%2e/users", ""),
            ("GET", "/./users", ""),
            ("GET", "//users", ""),
            ("GET", "/Prod/users", "limit=1&limit=2"),
            ("GET", "/users", "limit=99999999999999999999"),
            ("GET", "/users", "limit=%FF"),
            ("GET", "/users", "cursor=%FF"),
            ("GET", "/users", "cursor=%E2%80%AE"),
            ("GET", "/users", "limit=&cursor="),
            ("GET", &format!("/{}", "a".repeat(10_000)), ""),
            ("PROPFIND", "/users", ""),
            ("get", "/users", ""),
        ] {
            corpus.push(case(method, path, query, None, false));
        }
        for (body, base64) in [
            (huge.as_str(), false),
            (deep.as_str(), false),
            (big.as_str(), false),
            (exactly.as_str(), false),
            (binary.as_str(), true),
            (binary.as_str(), false),
            ("{\"delay_ms\": 1e99999}", false),
            ("\u{feff}{}", false),
        ] {
            corpus.push(case("POST", "/async", "", Some(body), base64));
        }
        corpus.push(case(
            "POST",
            "/events",
            "",
            Some(&harness.known_task_event()),
            false,
        ));
    }
    harness.run_each(&corpus);
}
