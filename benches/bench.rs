//! `make bench`: the function against its floors, on this machine, through the
//! Lambda Runtime API exactly as Lambda drives it.
//!
//! The release binaries (the function and the two floors of `examples/`,
//! `floor_hello` and `floor_io`, one profile) are started by the Runtime API
//! emulator of the tests (`tests/support/runtime_api.rs`) against dynalite
//! seeded with 10,000 users. The driver measures cold starts, warm latency,
//! peak RSS, the arm64 `bootstrap` that `cargo lambda build` made, and many
//! invocations per process (`AWS_LAMBDA_MAX_CONCURRENCY`), then prints one
//! Markdown report and writes it to `target/bench/report.md`.
//!
//! `cargo test --all-targets` builds this file too and runs it without
//! `--bench`: it then only says how to run it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_api::tasks::put_queued_record;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;
use support::runtime_api::{FunctionCommand, FunctionProcess, Outcome, RuntimeApi};
use support::{Fixture, dead_endpoint, dynamodb_endpoint, events};

/// Users in the table: a 1,000-item page is a tenth of it.
const USERS: usize = 10_000;
/// The page of the cold start (the API's default) and of the warm runs.
const COLD_PAGE: usize = 100;
const WARM_PAGE: usize = 1_000;
/// How long one task of the concurrency run waits.
const TASK_MS: u64 = 1_000;
/// The `AWS_LAMBDA_MAX_CONCURRENCY` values of the concurrency runs.
const CONCURRENCY: [usize; 3] = [1, 4, 16];

/// What one run measures; `BENCH_*` variables override the defaults.
struct Settings {
    cold_runs: usize,
    warm_runs: usize,
    throughput_requests: usize,
    report: PathBuf,
    arm64_zip: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let path = |name: &str, default: &str| {
            PathBuf::from(std::env::var(name).unwrap_or_else(|_| default.to_owned()))
        };
        let root = env!("CARGO_MANIFEST_DIR");
        Self {
            cold_runs: number("BENCH_COLD_RUNS", 15).max(1),
            warm_runs: number("BENCH_WARM_RUNS", 500).max(1),
            throughput_requests: number("BENCH_THROUGHPUT_REQUESTS", 320).max(1),
            report: path("BENCH_REPORT", &format!("{root}/target/bench/report.md")),
            arm64_zip: path(
                "BENCH_ARM64_ZIP",
                &format!("{root}/target/lambda/async-api/bootstrap.zip"),
            ),
        }
    }
}

/// The three binaries, built with one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binary {
    Function,
    IoFloor,
    HelloFloor,
}

impl Binary {
    fn label(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::IoFloor => "I/O floor",
            Self::HelloFloor => "hello floor",
        }
    }

    /// Next to the function binary of this build, or in `BENCH_BINARIES` (a
    /// profile's directory, to measure another build).
    fn path(self) -> PathBuf {
        let dir = std::env::var_os("BENCH_BINARIES").map_or_else(
            || {
                let function = PathBuf::from(env!("CARGO_BIN_EXE_async-api"));
                function.parent().map(Path::to_path_buf).unwrap_or_default()
            },
            PathBuf::from,
        );
        match self {
            Self::Function => dir.join("async-api"),
            Self::IoFloor => dir.join("examples/floor_io"),
            Self::HelloFloor => dir.join("examples/floor_hello"),
        }
    }
}

/// Percentiles of a sample, in milliseconds.
struct Stats {
    sorted: Vec<f64>,
}

impl Stats {
    fn new(samples: &[Duration]) -> Self {
        let mut sorted: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        sorted.sort_by(f64::total_cmp);
        Self { sorted }
    }

    /// Nearest-rank percentile.
    fn p(&self, percent: f64) -> f64 {
        let rank = ((percent / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0
        }
    }

    fn min(&self) -> f64 {
        self.sorted[0]
    }

    fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }
}

/// One process's resource use, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    /// Peak resident set (VmHWM), KiB.
    peak_rss_kib: u64,
    /// The resident set now: anonymous (heap, stacks) and file-backed (the
    /// binary's and libc's pages), KiB.
    rss_anon_kib: u64,
    rss_file_kib: u64,
    /// User + system CPU time so far.
    cpu: Duration,
}

fn usage(process: &FunctionProcess) -> Usage {
    let Some(pid) = process.id() else {
        return Usage::default();
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Usage {
        peak_rss_kib: kib("VmHWM:"),
        rss_anon_kib: kib("RssAnon:"),
        rss_file_kib: kib("RssFile:"),
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()),
    }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The status code and body of an HTTP response document.
fn http_answer(outcome: &Outcome) -> (u64, Value) {
    match outcome {
        Outcome::Response(document) => {
            let status = document["statusCode"].as_u64().unwrap_or(0);
            let body = document["body"]
                .as_str()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null);
            (status, body)
        }
        Outcome::Error {
            error_type,
            message,
        } => panic!("function error {error_type}: {message}"),
    }
}

/// Fails the run unless the answer is a page of `expected` users.
fn check_page(binary: Binary, outcome: &Outcome, expected: usize) {
    let (status, body) = http_answer(outcome);
    assert_eq!(status, 200, "{}: {body}", binary.label());
    if binary != Binary::HelloFloor {
        let users = body["users"].as_array().map_or(0, Vec::len);
        assert_eq!(users, expected, "{} page size", binary.label());
    }
}

/// A binary started against its own emulator.
struct Instance {
    binary: Binary,
    api: RuntimeApi,
    process: FunctionProcess,
    spawned: Instant,
}

impl Instance {
    async fn start(binary: Binary, fixture: &Fixture, env: &[(&str, String)]) -> Self {
        let api = RuntimeApi::start().await;
        Self::start_with(binary, api, fixture, env)
    }

    /// Starts the binary against `api`, which may already hold events.
    fn start_with(
        binary: Binary,
        api: RuntimeApi,
        fixture: &Fixture,
        env: &[(&str, String)],
    ) -> Self {
        let mut command = FunctionCommand::new(&api, fixture).program(binary.path());
        for (name, value) in env {
            command = command.env(name, value);
        }
        let spawned = Instant::now();
        let process = command.spawn();
        Self {
            binary,
            api,
            process,
            spawned,
        }
    }

    async fn invoke(&self, event: &str) -> (Duration, Outcome) {
        let started = Instant::now();
        let outcome = self.api.invoke(event.to_owned()).await;
        (started.elapsed(), outcome)
    }

    /// Waits until `count` `/next` requests have arrived (the workers are polling).
    async fn wait_for_polls(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.api.poll_times().len() < count {
            assert!(
                Instant::now() < deadline,
                "{} never polled {count} times; stderr: {:?}",
                self.binary.label(),
                self.process.stderr_lines()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn stop(self) -> Usage {
        let usage = usage(&self.process);
        self.process.stop().await;
        usage
    }
}

fn users_event(limit: usize) -> String {
    events::http_api("GET", &format!("/users?limit={limit}"), None)
}

/// The environment a binary gets beyond Lambda's own: the floor's page size.
fn page_env(limit: usize) -> Vec<(&'static str, String)> {
    vec![("SCAN_LIMIT", limit.to_string())]
}

// --- cold start ------------------------------------------------------------------------------

struct ColdStart {
    init: Vec<Duration>,
    first_response: Vec<Duration>,
    peak_rss_kib: Vec<u64>,
}

/// One fresh process: the first `/users` event is queued before the spawn, as
/// Lambda queues the event that causes a cold start.
async fn cold_start(binary: Binary, fixture: &Fixture) -> (Duration, Duration, u64) {
    let api = RuntimeApi::start().await;
    let submitted = api.submit(users_event(COLD_PAGE));
    let instance = Instance::start_with(binary, api, fixture, &page_env(COLD_PAGE));
    let outcome = submitted.outcome().await;
    let first_response = instance.spawned.elapsed();
    check_page(binary, &outcome, COLD_PAGE);
    let init = instance.api.poll_times()[0] - instance.spawned;
    let usage = instance.stop().await;
    (init, first_response, usage.peak_rss_kib)
}

async fn cold_starts(settings: &Settings, fixture: &Fixture) -> HashMap<&'static str, ColdStart> {
    const BINARIES: [Binary; 3] = [Binary::Function, Binary::IoFloor, Binary::HelloFloor];
    // One untimed round brings the binaries into the page cache.
    for binary in BINARIES {
        cold_start(binary, fixture).await;
    }
    let mut results: HashMap<&'static str, ColdStart> = HashMap::new();
    // Round-robin, so that any drift of the machine touches all three alike.
    for _ in 0..settings.cold_runs {
        for binary in BINARIES {
            let (init, first_response, rss) = cold_start(binary, fixture).await;
            let entry = results.entry(binary.label()).or_insert(ColdStart {
                init: Vec::new(),
                first_response: Vec::new(),
                peak_rss_kib: Vec::new(),
            });
            entry.init.push(init);
            entry.first_response.push(first_response);
            entry.peak_rss_kib.push(rss);
        }
    }
    results
}

// --- warm latency ----------------------------------------------------------------------------

struct Warm {
    latency: Vec<Duration>,
    cpu_per_call: Duration,
    usage: Usage,
}

/// Warm `/users` with a 1,000-item page through the function, the I/O floor
/// and the hello floor, one invocation of each in turn.
async fn warm_users(settings: &Settings, fixture: &Fixture) -> Vec<(Binary, Warm)> {
    let mut instances = Vec::new();
    for binary in [Binary::Function, Binary::IoFloor, Binary::HelloFloor] {
        instances.push(Instance::start(binary, fixture, &page_env(WARM_PAGE)).await);
    }
    let event = users_event(WARM_PAGE);
    for instance in &instances {
        for _ in 0..20 {
            let (_, outcome) = instance.invoke(&event).await;
            check_page(instance.binary, &outcome, WARM_PAGE);
        }
    }
    let cpu_before: Vec<Duration> = instances.iter().map(|i| usage(&i.process).cpu).collect();
    let mut latency = vec![Vec::with_capacity(settings.warm_runs); instances.len()];
    for _ in 0..settings.warm_runs {
        for (instance, samples) in instances.iter().zip(&mut latency) {
            let (elapsed, outcome) = instance.invoke(&event).await;
            check_page(instance.binary, &outcome, WARM_PAGE);
            samples.push(elapsed);
        }
    }
    let mut results = Vec::new();
    for ((instance, samples), before) in instances.into_iter().zip(latency).zip(cpu_before) {
        let binary = instance.binary;
        let usage = instance.stop().await;
        results.push((
            binary,
            Warm {
                latency: samples,
                cpu_per_call: (usage.cpu.saturating_sub(before)) / settings.warm_runs as u32,
                usage,
            },
        ));
    }
    results
}

struct AsyncRun {
    function: Vec<Duration>,
    peak_rss_kib: u64,
    bare_invoke: Vec<Duration>,
    bare_put_item: Vec<Duration>,
}

/// `POST /async` through the function (each task event is let run before the
/// next request, so every request finds the process idle), beside the same
/// two calls made bare from here: `PutItem` of a task record and `Invoke`
/// (`Event`) to the emulator.
async fn warm_async(settings: &Settings, fixture: &Fixture) -> AsyncRun {
    let instance = Instance::start(Binary::Function, fixture, &[]).await;
    let event = events::http_api("POST", "/async", Some(r#"{"delay_ms": 0}"#));
    let mut function = Vec::with_capacity(settings.warm_runs);
    for run in 0..settings.warm_runs + 20 {
        let (elapsed, outcome) = instance.invoke(&event).await;
        let (status, body) = http_answer(&outcome);
        assert_eq!(status, 202, "POST /async: {body}");
        instance.api.wait_for_events(Duration::from_secs(30)).await;
        if run >= 20 {
            function.push(elapsed);
        }
    }
    let peak_rss_kib = instance.stop().await.peak_rss_kib;

    // An emulator with no function behind it: the events only queue up.
    let api = RuntimeApi::start().await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        async_api::lambda_config(&support::sdk_config())
            .endpoint_url(api.url())
            .build(),
    );
    let dynamodb = support::dynamodb_client(dynamodb_endpoint());
    let mut bare_invoke = Vec::with_capacity(settings.warm_runs);
    let mut bare_put_item = Vec::with_capacity(settings.warm_runs);
    for run in 0..settings.warm_runs + 20 {
        let task_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        put_queued_record(&dynamodb, &fixture.tasks_table, &task_id)
            .await
            .expect("PutItem task record");
        let put = started.elapsed();
        let started = Instant::now();
        lambda
            .invoke()
            .function_name(support::FUNCTION_NAME)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(events::task(&task_id, 0)))
            .send()
            .await
            .expect("bare Invoke");
        let invoke = started.elapsed();
        if run >= 20 {
            bare_put_item.push(put);
            bare_invoke.push(invoke);
        }
    }
    AsyncRun {
        function,
        peak_rss_kib,
        bare_invoke,
        bare_put_item,
    }
}

// --- many invocations per process ------------------------------------------------------------

struct Concurrency {
    max_concurrency: usize,
    /// `/next` requests waiting at once before any event was queued.
    polls_waiting: usize,
    tasks: usize,
    tasks_wall: Duration,
    /// `/users` (default page) through the function and the I/O floor.
    throughput: Vec<(Binary, Throughput)>,
    peak_rss_kib: u64,
}

struct Throughput {
    per_second: f64,
    cpu_per_call: Duration,
}

/// `tasks` task events of 1 s each, queued at once, on a process started with
/// `AWS_LAMBDA_MAX_CONCURRENCY=max_concurrency`; the time until all are done.
async fn tasks_at_once(fixture: &Fixture, instance: &Instance, tasks: usize) -> Duration {
    let mut ids = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let task_id = uuid::Uuid::new_v4().to_string();
        put_queued_record(&fixture.dynamodb, &fixture.tasks_table, &task_id)
            .await
            .expect("PutItem task record");
        ids.push(task_id);
    }
    let started = Instant::now();
    let submitted: Vec<_> = ids
        .iter()
        .map(|id| instance.api.submit(events::task(id, TASK_MS)))
        .collect();
    for submitted in submitted {
        match submitted.outcome().await {
            Outcome::Response(document) => {
                assert_eq!(document["status"], "succeeded", "{document}");
                assert_eq!(document["duplicate"], false, "{document}");
            }
            Outcome::Error {
                error_type,
                message,
            } => panic!("task failed: {error_type}: {message}"),
        }
    }
    started.elapsed()
}

/// `requests` `/users` events queued at once; the process's workers drain them.
async fn throughput(instance: &Instance, requests: usize) -> Throughput {
    let event = users_event(COLD_PAGE);
    let cpu_before = usage(&instance.process).cpu;
    let started = Instant::now();
    let submitted: Vec<_> = (0..requests)
        .map(|_| instance.api.submit(event.clone()))
        .collect();
    for submitted in submitted {
        check_page(instance.binary, &submitted.outcome().await, COLD_PAGE);
    }
    let wall = started.elapsed();
    let cpu = usage(&instance.process).cpu.saturating_sub(cpu_before);
    Throughput {
        per_second: requests as f64 / wall.as_secs_f64(),
        cpu_per_call: cpu / requests as u32,
    }
}

async fn concurrency(settings: &Settings, fixture: &Fixture) -> Vec<Concurrency> {
    let mut results = Vec::new();
    for max_concurrency in CONCURRENCY {
        let mut env = page_env(COLD_PAGE);
        env.push(("AWS_LAMBDA_MAX_CONCURRENCY", max_concurrency.to_string()));
        let function = Instance::start(Binary::Function, fixture, &env).await;
        function.wait_for_polls(max_concurrency).await;
        // Give any extra worker time to show up: there must be exactly N.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let polls_waiting = function.api.poll_times().len();
        let tasks = max_concurrency.max(4);
        let tasks_wall = tasks_at_once(fixture, &function, tasks).await;

        let floor = Instance::start(Binary::IoFloor, fixture, &env).await;
        floor.wait_for_polls(max_concurrency).await;
        // Warm both, then measure each alone.
        throughput(&function, 4 * max_concurrency).await;
        throughput(&floor, 4 * max_concurrency).await;
        let function_throughput = throughput(&function, settings.throughput_requests).await;
        let floor_throughput = throughput(&floor, settings.throughput_requests).await;
        floor.stop().await;
        let peak_rss_kib = function.stop().await.peak_rss_kib;
        results.push(Concurrency {
            max_concurrency,
            polls_waiting,
            tasks,
            tasks_wall,
            throughput: vec![
                (Binary::Function, function_throughput),
                (Binary::IoFloor, floor_throughput),
            ],
            peak_rss_kib,
        });
    }
    results
}

// --- size ------------------------------------------------------------------------------------

/// The zip's size, and the uncompressed size of its `bootstrap`.
struct Bootstrap {
    zipped: u64,
    raw: u64,
}

fn bootstrap(zip: &Path) -> Option<Bootstrap> {
    let bytes = std::fs::read(zip).ok()?;
    let u16_at = |at: usize| -> Option<usize> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |at: usize| -> Option<u64> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as u64)
    };
    // The central directory's entry for `bootstrap` holds its uncompressed size.
    let raw = (0..bytes.len().saturating_sub(46))
        .filter(|&at| bytes[at..].starts_with(b"PK\x01\x02"))
        .find(|&at| {
            u16_at(at + 28)
                .is_some_and(|len| bytes.get(at + 46..at + 46 + len) == Some(b"bootstrap"))
        })
        .and_then(|at| u32_at(at + 24))?;
    Some(Bootstrap {
        zipped: bytes.len() as u64,
        raw,
    })
}

// --- report ----------------------------------------------------------------------------------

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn kib_as_mib(kib: u64) -> String {
    mib(kib * 1024)
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "rustc ?".to_owned(), |v| v.trim().to_owned());
    format!(
        "{cpu}, {cores} cores, {memory_gib:.0} GiB, {} {}; {rustc}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

struct Results {
    seconds: f64,
    /// The 1-minute load average before and after: anything above the bench's
    /// own load means another process shared the CPUs.
    load: (String, String),
    cold: HashMap<&'static str, ColdStart>,
    warm: Vec<(Binary, Warm)>,
    async_run: AsyncRun,
    concurrency: Vec<Concurrency>,
    bootstrap: Option<Bootstrap>,
}

fn report(settings: &Settings, results: &Results) -> String {
    let mut out = String::new();
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    );
    let _ = writeln!(out, "### `make bench`, {date}\n");
    let _ = writeln!(
        out,
        "{}. Release profile of `Cargo.toml`; {USERS} users in dynalite; every binary driven through the Runtime API emulator of `tests/support/runtime_api.rs`. Times in ms.\n",
        machine()
    );

    let cold = |binary: Binary| &results.cold[binary.label()];
    let cold_median = |binary: Binary| Stats::new(&cold(binary).first_response).median();
    let warm = |binary: Binary| {
        &results
            .warm
            .iter()
            .find(|(b, _)| *b == binary)
            .expect("warm run")
            .1
    };
    let warm_p50 = |binary: Binary| Stats::new(&warm(binary).latency).median();
    let function_peak = cold(Binary::Function)
        .peak_rss_kib
        .iter()
        .copied()
        .chain([
            warm(Binary::Function).usage.peak_rss_kib,
            results.async_run.peak_rss_kib,
        ])
        .chain(results.concurrency.iter().map(|c| c.peak_rss_kib))
        .max()
        .unwrap_or(0);
    let n16 = results.concurrency.iter().find(|c| c.max_concurrency == 16);

    // The budget.
    let cold_ratio = cold_median(Binary::Function) / cold_median(Binary::IoFloor);
    let warm_ratio = warm_p50(Binary::Function) / warm_p50(Binary::IoFloor);
    let _ = writeln!(out, "| budget | target | measured | |");
    let _ = writeln!(out, "|---|---|---|---|");
    let _ = writeln!(
        out,
        "| cold start to the first `/users` (median) | ≤ 1.25 × I/O floor | {} vs {} = **{cold_ratio:.2} ×** | {} |",
        ms(cold_median(Binary::Function)),
        ms(cold_median(Binary::IoFloor)),
        verdict(cold_ratio <= 1.25)
    );
    let _ = writeln!(
        out,
        "| warm `/users`, {WARM_PAGE}-item page (p50) | ≤ 1.10 × I/O floor | {} vs {} = **{warm_ratio:.2} ×** | {} |",
        ms(warm_p50(Binary::Function)),
        ms(warm_p50(Binary::IoFloor)),
        verdict(warm_ratio <= 1.10)
    );
    let _ = writeln!(
        out,
        "| peak RSS of the function (VmHWM, worst run) | ≤ 16 MiB | **{}** | {} |",
        kib_as_mib(function_peak),
        verdict(function_peak <= 16 * 1024)
    );
    match &results.bootstrap {
        Some(size) => {
            let _ = writeln!(
                out,
                "| zipped arm64 `bootstrap` | ≤ 3.5 MiB | **{}** ({} raw) | {} |",
                mib(size.zipped),
                mib(size.raw),
                verdict(size.zipped * 2 <= 7 * 1024 * 1024)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| zipped arm64 `bootstrap` | ≤ 3.5 MiB | not built: no {} | **missed** |",
                settings.arm64_zip.display()
            );
        }
    }
    if let Some(n16) = n16 {
        let seconds = n16.tasks_wall.as_secs_f64();
        let _ = writeln!(
            out,
            "| {} tasks of 1 s at `AWS_LAMBDA_MAX_CONCURRENCY=16`, one process | ≤ 1.5 s | **{seconds:.3} s** | {} |",
            n16.tasks,
            verdict(seconds <= 1.5)
        );
    }

    // Cold start.
    let _ = writeln!(
        out,
        "\n**Cold start**: {} fresh processes each, the event queued before the spawn; median [min–max].\n",
        settings.cold_runs
    );
    let _ = writeln!(
        out,
        "| binary | spawn → first `/next` (init) | spawn → first response (`/users`, {COLD_PAGE} items) | ÷ I/O floor | peak RSS, median [max] |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for binary in [Binary::Function, Binary::IoFloor, Binary::HelloFloor] {
        let run = cold(binary);
        let init = Stats::new(&run.init);
        let first = Stats::new(&run.first_response);
        let mut rss = run.peak_rss_kib.clone();
        rss.sort_unstable();
        let _ = writeln!(
            out,
            "| {} | {} [{}–{}] | {} [{}–{}] | {:.2} | {} [{}] |",
            binary.label(),
            ms(init.median()),
            ms(init.min()),
            ms(init.max()),
            ms(first.median()),
            ms(first.min()),
            ms(first.max()),
            first.median() / cold_median(Binary::IoFloor),
            kib_as_mib(rss[rss.len() / 2]),
            kib_as_mib(rss[rss.len() - 1]),
        );
    }

    // Warm latency.
    let floor = Stats::new(&warm(Binary::IoFloor).latency);
    let _ = writeln!(
        out,
        "\n**Warm**: {} invocations each after 20 untimed, the three processes in turn; `/async` each on an idle process (its task event run before the next request).\n",
        settings.warm_runs
    );
    let _ = writeln!(
        out,
        "| invocation | p50 | p90 | p99 | ÷ floor p50 / p90 / p99 | CPU per invocation | peak RSS |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (binary, name) in [
        (
            Binary::Function,
            format!("`GET /users?limit={WARM_PAGE}`, function"),
        ),
        (Binary::IoFloor, "the same page, I/O floor".to_owned()),
        (
            Binary::HelloFloor,
            "hello floor (the Runtime API round trip)".to_owned(),
        ),
    ] {
        let run = warm(binary);
        let stats = Stats::new(&run.latency);
        let ratio = if binary == Binary::HelloFloor {
            String::new()
        } else {
            format!(
                "{:.2} / {:.2} / {:.2}",
                stats.p(50.0) / floor.p(50.0),
                stats.p(90.0) / floor.p(90.0),
                stats.p(99.0) / floor.p(99.0)
            )
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {ratio} | {} | {} |",
            ms(stats.p(50.0)),
            ms(stats.p(90.0)),
            ms(stats.p(99.0)),
            ms(run.cpu_per_call.as_secs_f64() * 1e3),
            kib_as_mib(run.usage.peak_rss_kib),
        );
    }
    let async_run = &results.async_run;
    let function = Stats::new(&async_run.function);
    let rss_note = {
        let usage = warm(Binary::Function).usage;
        format!(
            "The function's resident set after the warm run: {} anonymous (heap, stacks) + {} file-backed (the pages of the binary and of libc it touched).",
            kib_as_mib(usage.rss_anon_kib),
            kib_as_mib(usage.rss_file_kib)
        )
    };
    let put = Stats::new(&async_run.bare_put_item);
    let invoke = Stats::new(&async_run.bare_invoke);
    let hello = Stats::new(&warm(Binary::HelloFloor).latency);
    let floor_sum = |p: f64| hello.p(p) + put.p(p) + invoke.p(p);
    let _ = writeln!(
        out,
        "| `POST /async`, function | {} | {} | {} | {:.2} / {:.2} / {:.2} of the sum below | | {} |",
        ms(function.p(50.0)),
        ms(function.p(90.0)),
        ms(function.p(99.0)),
        function.p(50.0) / floor_sum(50.0),
        function.p(90.0) / floor_sum(90.0),
        function.p(99.0) / floor_sum(99.0),
        kib_as_mib(async_run.peak_rss_kib),
    );
    for (name, stats) in [
        ("bare `Invoke` (`Event`) to the emulator", &invoke),
        ("bare `PutItem` of a task record", &put),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | | | |",
            ms(stats.p(50.0)),
            ms(stats.p(90.0)),
            ms(stats.p(99.0)),
        );
    }
    let _ = writeln!(
        out,
        "| round trip + `PutItem` + `Invoke` (sum of each percentile) | {} | {} | {} | | | |",
        ms(floor_sum(50.0)),
        ms(floor_sum(90.0)),
        ms(floor_sum(99.0)),
    );

    let _ = writeln!(out, "\n{rss_note}");

    // Concurrency.
    let _ = writeln!(
        out,
        "\n**Many invocations per process** (`AWS_LAMBDA_MAX_CONCURRENCY=N`): tasks of 1 s queued at once; then {} `/users` ({COLD_PAGE} items) queued at once, function and I/O floor each alone.\n",
        settings.throughput_requests
    );
    let _ = writeln!(
        out,
        "| N | `/next` polls waiting | tasks of 1 s → wall | `/users` req/s, function | I/O floor | ÷ floor | CPU per `/users`, function | I/O floor | peak RSS, function |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for run in &results.concurrency {
        let (function, floor) = (&run.throughput[0].1, &run.throughput[1].1);
        let _ = writeln!(
            out,
            "| {} | {} | {} → {:.3} s | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
            run.max_concurrency,
            run.polls_waiting,
            run.tasks,
            run.tasks_wall.as_secs_f64(),
            function.per_second,
            floor.per_second,
            function.per_second / floor.per_second,
            ms(function.cpu_per_call.as_secs_f64() * 1e3),
            ms(floor.cpu_per_call.as_secs_f64() * 1e3),
            kib_as_mib(run.peak_rss_kib),
        );
    }
    let _ = writeln!(
        out,
        "\nMeasured in {:.0} s; 1-minute load average {} before, {} after.",
        results.seconds, results.load.0, results.load.1
    );
    out
}

// --- the run ---------------------------------------------------------------------------------

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

async fn run(settings: Settings) -> String {
    let started = Instant::now();
    let load_before = load_average();
    for binary in [Binary::Function, Binary::IoFloor, Binary::HelloFloor] {
        assert!(
            binary.path().exists(),
            "{} is not built ({}): run `make bench`",
            binary.label(),
            binary.path().display()
        );
    }
    let step = |what: &str| eprintln!("bench: {what} ({:.0} s)", started.elapsed().as_secs_f64());

    step("starting dynalite, seeding users");
    let fixture = Fixture::new(&dead_endpoint()).await;
    fixture.seed_users(USERS).await;
    step("cold starts");
    let cold = cold_starts(&settings, &fixture).await;
    step("warm /users");
    let warm = warm_users(&settings, &fixture).await;
    step("warm /async");
    let async_run = warm_async(&settings, &fixture).await;
    step("concurrency");
    let concurrency = concurrency(&settings, &fixture).await;
    step("done");
    let results = Results {
        seconds: started.elapsed().as_secs_f64(),
        load: (load_before, load_average()),
        cold,
        warm,
        async_run,
        concurrency,
        bootstrap: bootstrap(&settings.arm64_zip),
    };
    report(&settings, &results)
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("benches/bench.rs measures release binaries: run `make bench`");
        return;
    }
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let report_path = settings.report.clone();
    let report = runtime.block_on(run(settings));
    println!("{report}");
    if let Some(dir) = report_path.parent() {
        std::fs::create_dir_all(dir).expect("report directory");
    }
    std::fs::write(&report_path, &report).expect("write the report");
    eprintln!("bench: report written to {}", report_path.display());
}
