//! What every measurement shares: the three binaries, percentiles, a process's
//! resource use from `/proc`, and a binary started against its own Runtime API
//! emulator.

use super::*;

/// The three binaries: the function and the hello floor built with one
/// profile, the I/O floor with its own, for speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binary {
    Function,
    IoFloor,
    HelloFloor,
}

impl Binary {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::IoFloor => "I/O floor",
            Self::HelloFloor => "hello floor",
        }
    }

    /// The function as it is deployed: `make bench` builds it with `cargo build
    /// --release --bin async-api` (the features `cargo lambda build` gives it)
    /// into the target directory's `bench/bin/`. The binary `cargo bench`
    /// builds beside itself is not that one: it gets the dev-dependencies'
    /// features too (tokio's `full`, axum's `http1` and `tokio`), 0.5 MB more
    /// code on x86_64 and about 1.1 × the deployed build's CPU per page. The
    /// hello floor is the bench's own build of `examples/floor_hello.rs`; the
    /// I/O floor is built with a profile of its own (`cargo build --profile
    /// floor -p floor-io`), in the target directory's `floor/`.
    /// `BENCH_BINARIES` (a directory with `async-api` and
    /// `examples/floor_hello`) and `BENCH_IO_FLOOR` measure other builds.
    pub(crate) fn path(self) -> PathBuf {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_async-api"));
        let profile_dir = built.parent().unwrap_or(Path::new(""));
        let target = profile_dir.parent().unwrap_or(Path::new(""));
        let dir = std::env::var_os("BENCH_BINARIES").map(PathBuf::from);
        match self {
            Self::Function => dir
                .unwrap_or_else(|| target.join("bench/bin"))
                .join("async-api"),
            Self::IoFloor => std::env::var_os("BENCH_IO_FLOOR")
                .map_or_else(|| target.join("floor/floor-io"), PathBuf::from),
            Self::HelloFloor => dir
                .unwrap_or_else(|| profile_dir.to_path_buf())
                .join("examples/floor_hello"),
        }
    }
}

/// Percentiles of a sample, in milliseconds.
pub(crate) struct Stats {
    pub(crate) sorted: Vec<f64>,
}

impl Stats {
    /// Durations, in milliseconds.
    pub(crate) fn new(samples: &[Duration]) -> Self {
        Self::of(samples.iter().map(|d| d.as_secs_f64() * 1e3).collect())
    }

    /// Any values (the throughput rounds' ratios), as they are.
    pub(crate) fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self { sorted: values }
    }

    /// Nearest-rank percentile.
    pub(crate) fn p(&self, percent: f64) -> f64 {
        let rank = ((percent / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub(crate) fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0
        }
    }

    pub(crate) fn min(&self) -> f64 {
        self.sorted[0]
    }

    pub(crate) fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }
}

/// One process's resource use, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    /// Peak resident set (VmHWM), KiB.
    pub(crate) peak_rss_kib: u64,
    /// The resident set now: anonymous (heap, stacks) and file-backed (the
    /// binary's and libc's pages), KiB.
    pub(crate) rss_anon_kib: u64,
    pub(crate) rss_file_kib: u64,
    /// User + system CPU time so far.
    pub(crate) cpu: Duration,
    /// Minor page faults so far: pages the process touched that the kernel
    /// had to map (fresh heap pages among them), each a trap and a zeroed page.
    pub(crate) minor_faults: u64,
}

pub(crate) fn usage(process: &FunctionProcess) -> Usage {
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
    // Fields after the parenthesised command name: minflt is the 8th, utime
    // and stime the 12th and 13th.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|field| field.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let field = |n: usize| fields.get(n).copied().unwrap_or(0);
    let ticks = field(11) + field(12);
    Usage {
        peak_rss_kib: kib("VmHWM:"),
        rss_anon_kib: kib("RssAnon:"),
        rss_file_kib: kib("RssFile:"),
        cpu: process_cpu_time(pid)
            .unwrap_or_else(|| Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())),
        minor_faults: field(7),
    }
}

/// The CPU time of every thread of process `pid`, the exited ones
/// included, to the nanosecond (its CPU-time clock): `/proc`'s utime and
/// stime come in clock ticks, 10 ms each, which on a second of a warm run's
/// CPU time is a rounding of about 1 % at each end.
fn process_cpu_time(pid: u32) -> Option<Duration> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls only write the values they are given pointers to.
    let read = unsafe {
        libc::clock_getcpuclockid(pid, &mut clock) == 0 && libc::clock_gettime(clock, &mut now) == 0
    };
    read.then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

pub(crate) fn clock_ticks_per_second() -> f64 {
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
pub(crate) fn http_answer(outcome: &Outcome) -> (u64, Value) {
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
pub(crate) fn check_page(binary: Binary, outcome: &Outcome, expected: usize) {
    let (status, body) = http_answer(outcome);
    assert_eq!(status, 200, "{}: {body}", binary.label());
    if binary != Binary::HelloFloor {
        let users = body["users"].as_array().map_or(0, Vec::len);
        assert_eq!(users, expected, "{} page size", binary.label());
    }
}

/// A binary started against its own emulator.
pub(crate) struct Instance {
    pub(crate) binary: Binary,
    pub(crate) api: RuntimeApi,
    pub(crate) process: FunctionProcess,
    pub(crate) spawned: Instant,
}

impl Instance {
    pub(crate) async fn start(binary: Binary, fixture: &Fixture, env: &[(&str, String)]) -> Self {
        let api = RuntimeApi::start(test_function()).await;
        Self::start_with(binary, api, fixture, env)
    }

    /// Starts the binary against `api`, which may already hold events.
    pub(crate) fn start_with(
        binary: Binary,
        api: RuntimeApi,
        fixture: &Fixture,
        env: &[(&str, String)],
    ) -> Self {
        let mut command = function_command(&api, fixture).program(binary.path());
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

    pub(crate) async fn invoke(&self, event: &str) -> (Duration, Outcome) {
        let started = Instant::now();
        let outcome = self.api.invoke(event.to_owned()).await;
        (started.elapsed(), outcome)
    }

    /// Waits until `count` `/next` requests have arrived (the workers are polling).
    pub(crate) async fn wait_for_polls(&self, count: usize) {
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

    pub(crate) async fn stop(self) -> Usage {
        let usage = usage(&self.process);
        self.process.stop().await;
        usage
    }
}

pub(crate) fn users_event(limit: usize) -> String {
    events::http_api("GET", &format!("/users?limit={limit}"), None)
}

/// The environment a binary gets beyond Lambda's own: the floor's page size.
pub(crate) fn page_env(limit: usize) -> Vec<(&'static str, String)> {
    vec![("SCAN_LIMIT", limit.to_string())]
}
