//! The Markdown report: every figure against its floor and its budget.

use super::*;

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(crate) fn kib_as_mib(kib: u64) -> String {
    mib(kib * 1024)
}

pub(crate) fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

/// Lambda allots CPU in proportion to memory: 1,769 MB is one vCPU.
pub(crate) const ONE_VCPU_MB: f64 = 1769.0;
/// The memory of the template's function.
pub(crate) const FUNCTION_MB: f64 = 128.0;

/// What `cpu_ms` of CPU time takes of billed time at [`FUNCTION_MB`], where
/// the function has a fraction `128 / 1769` of a vCPU.
pub(crate) fn billed_ms(cpu_ms: f64) -> f64 {
    cpu_ms * ONE_VCPU_MB / FUNCTION_MB
}

/// The zipped bootstrap's budget.
pub(crate) const ZIP_BUDGET_MIB: f64 = 3.6;

pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

pub(crate) fn machine() -> String {
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

pub(crate) struct Results {
    pub(crate) seconds: f64,
    /// The 1-minute load average before and after: anything above the bench's
    /// own load means another process shared the CPUs.
    pub(crate) load: (String, String),
    pub(crate) cold: HashMap<&'static str, ColdStart>,
    pub(crate) warm: Vec<(Binary, Warm)>,
    pub(crate) async_run: AsyncRun,
    pub(crate) concurrency: Vec<Concurrency>,
    pub(crate) bootstrap: Option<Bootstrap>,
}

pub(crate) fn report(settings: &Settings, results: &Results) -> String {
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
        "{}. Release profile of `Cargo.toml` (the I/O floor: its `[profile.floor]`, opt-level 3 throughout); {USERS} users in dynalite; every binary driven through the Runtime API emulator of `crates/local-lambda`. Times in ms.\n",
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
    let warm_cpu = |binary: Binary| warm(binary).cpu_per_call.as_secs_f64() * 1e3;

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
    let cpu_ratio = warm_cpu(Binary::Function) / warm_cpu(Binary::IoFloor);
    let _ = writeln!(
        out,
        "| CPU per warm {WARM_PAGE}-item page | ≤ 1.05 × I/O floor | {} vs {} = **{cpu_ratio:.2} ×**; at {FUNCTION_MB:.0} MB as Lambda bills it (× {ONE_VCPU_MB:.0} / {FUNCTION_MB:.0}): {} vs {}; minor page faults per page {:.1} vs {:.1} | {} |",
        ms(warm_cpu(Binary::Function)),
        ms(warm_cpu(Binary::IoFloor)),
        ms(billed_ms(warm_cpu(Binary::Function))),
        ms(billed_ms(warm_cpu(Binary::IoFloor))),
        warm(Binary::Function).faults_per_call,
        warm(Binary::IoFloor).faults_per_call,
        verdict(cpu_ratio <= 1.05)
    );
    for run in results.concurrency.iter().filter(|c| c.max_concurrency > 1) {
        let (function, floor) = (&run.throughput[0].1, &run.throughput[1].1);
        let ratio = run.round_ratios.median();
        let _ = writeln!(
            out,
            "| `/users` per second at `AWS_LAMBDA_MAX_CONCURRENCY={}` | ≥ 0.97 × I/O floor | **{ratio:.2} ×**, the median of {ROUNDS} rounds' ratios [{:.2}–{:.2}]; in all {:.0} vs {:.0} | {} |",
            run.max_concurrency,
            run.round_ratios.min(),
            run.round_ratios.max(),
            function.per_second,
            floor.per_second,
            verdict(ratio >= 0.97)
        );
    }
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
                "| zipped arm64 `bootstrap` | ≤ {ZIP_BUDGET_MIB} MiB | **{}** ({} raw) | {} |",
                mib(size.zipped),
                mib(size.raw),
                verdict(size.zipped as f64 <= ZIP_BUDGET_MIB * 1024.0 * 1024.0)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| zipped arm64 `bootstrap` | ≤ {ZIP_BUDGET_MIB} MiB | not built: no {} | **missed** |",
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
        "\n**Warm**: {} invocations each after 20 untimed, the function and the I/O floor swapping places every round, the hello floor last; `/async` each on an idle process (its task event run before the next request).\n",
        settings.warm_runs
    );
    let _ = writeln!(
        out,
        "| invocation | p50 | p90 | p99 | ÷ floor p50 / p90 / p99 | CPU per invocation [at {FUNCTION_MB:.0} MB, billed] | peak RSS |"
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
            "| {name} | {} | {} | {} | {ratio} | {} [{}] | {} |",
            ms(stats.p(50.0)),
            ms(stats.p(90.0)),
            ms(stats.p(99.0)),
            ms(warm_cpu(binary)),
            ms(billed_ms(warm_cpu(binary))),
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
    let update = Stats::new(&async_run.bare_update_item);
    let hello = Stats::new(&warm(Binary::HelloFloor).latency);
    let floor_sum = |p: f64| hello.p(p) + put.p(p) + invoke.p(p) + update.p(p);
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
    for (name, samples) in [
        (
            "`POST /async` with an `Idempotency-Key`, function",
            &async_run.with_key,
        ),
        (
            "`DELETE /tasks/{task_id}` of a queued task, function",
            &async_run.cancel,
        ),
        (
            "`POST /async` from a JWT caller (owner, per-caller counter), function",
            &async_run.as_caller,
        ),
        (
            "`GET /tasks?limit=20` of that caller, function",
            &async_run.list,
        ),
    ] {
        let stats = Stats::new(samples);
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | | | |",
            ms(stats.p(50.0)),
            ms(stats.p(90.0)),
            ms(stats.p(99.0)),
        );
    }
    for (name, stats) in [
        ("bare `Invoke` (`Event`) to the emulator", &invoke),
        ("bare `PutItem` of a task record", &put),
        ("bare `UpdateItem` marking it enqueued", &update),
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
        "| round trip + `PutItem` + `Invoke` + `UpdateItem` (sum of each percentile) | {} | {} | {} | | | |",
        ms(floor_sum(50.0)),
        ms(floor_sum(90.0)),
        ms(floor_sum(99.0)),
    );

    let _ = writeln!(out, "\n{rss_note}");

    // Concurrency.
    let _ = writeln!(
        out,
        "\n**Many invocations per process** (`AWS_LAMBDA_MAX_CONCURRENCY=N`): tasks of 1 s queued at once; then {} `/users` ({COLD_PAGE} items) for each binary, in {ROUNDS} rounds of {} queued at once, each round the function and the I/O floor back to back (which goes first alternating); req/s over all rounds, and ÷ floor the median of the rounds' ratios.\n",
        settings.throughput_requests,
        settings.throughput_requests.div_ceil(ROUNDS)
    );
    let _ = writeln!(
        out,
        "| N | `/next` polls waiting | tasks of 1 s → wall | `/users` req/s, function | I/O floor | ÷ floor | CPU per `/users`, function [at {FUNCTION_MB:.0} MB, billed] | I/O floor | peak RSS, function |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for run in &results.concurrency {
        let (function, floor) = (&run.throughput[0].1, &run.throughput[1].1);
        let _ = writeln!(
            out,
            "| {} | {} | {} → {:.3} s | {:.0} | {:.0} | {:.2} | {} [{}] | {} [{}] | {} |",
            run.max_concurrency,
            run.polls_waiting,
            run.tasks,
            run.tasks_wall.as_secs_f64(),
            function.per_second,
            floor.per_second,
            run.round_ratios.median(),
            ms(function.cpu_per_call.as_secs_f64() * 1e3),
            ms(billed_ms(function.cpu_per_call.as_secs_f64() * 1e3)),
            ms(floor.cpu_per_call.as_secs_f64() * 1e3),
            ms(billed_ms(floor.cpu_per_call.as_secs_f64() * 1e3)),
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
