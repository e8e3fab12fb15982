//! `make bench`: the function against its floors, on this machine, through the
//! Lambda Runtime API exactly as Lambda drives it.
//!
//! The release binaries (the function and its two floors: `floor_hello` of
//! `examples/`, of the function's profile, and the I/O floor `crates/floor-io`,
//! built for speed with a profile of its own) are started by the Runtime API
//! emulator of the tests (`crates/local-lambda`) against dynalite
//! seeded with 10,000 users. The driver measures cold starts, warm latency,
//! peak RSS, the arm64 `bootstrap` that `cargo lambda build` made, and many
//! invocations per process (`AWS_LAMBDA_MAX_CONCURRENCY`), then prints one
//! Markdown report and writes it to `target/bench/report.md`.
//!
//! `cargo test --all-targets` builds this file too and runs it without
//! `--bench`: it then only says how to run it.

#[path = "../../tests/support/mod.rs"]
mod support;

mod cold;
mod concurrency;
mod harness;
mod report;
mod size;
mod warm;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_api::tasks::TaskStore;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;
use support::runtime_api::{FunctionProcess, Outcome, RuntimeApi, function_command, test_function};
use support::{Fixture, dead_endpoint, dynamodb_endpoint, events};

use cold::*;
use concurrency::*;
use harness::*;
use report::*;
use size::*;
use warm::*;

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
            throughput_requests: number("BENCH_THROUGHPUT_REQUESTS", 7680).max(1),
            report: path("BENCH_REPORT", &format!("{root}/target/bench/report.md")),
            arm64_zip: path(
                "BENCH_ARM64_ZIP",
                &format!("{root}/target/lambda/async-api/bootstrap.zip"),
            ),
        }
    }
}

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
        eprintln!("benches/bench/ measures release binaries: run `make bench`");
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
