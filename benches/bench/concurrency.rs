//! Many invocations per process (`AWS_LAMBDA_MAX_CONCURRENCY`): tasks at once,
//! and requests per second.

use super::*;

pub(crate) struct Concurrency {
    pub(crate) max_concurrency: usize,
    /// `/next` requests waiting at once before any event was queued.
    pub(crate) polls_waiting: usize,
    pub(crate) tasks: usize,
    pub(crate) tasks_wall: Duration,
    /// `/users` (default page) through the function and the I/O floor.
    pub(crate) throughput: Vec<(Binary, Throughput)>,
    /// Each round's `/users` per second, the function's over the floor's
    /// (the two run back to back). Their median is the throughput's ratio:
    /// a slow spell of the machine or of dynalite (one node process serves
    /// both, the busiest process here) weighs on one round's ratio, not on
    /// the figure.
    pub(crate) round_ratios: Stats,
    pub(crate) peak_rss_kib: u64,
}

pub(crate) struct Throughput {
    pub(crate) per_second: f64,
    pub(crate) cpu_per_call: Duration,
}

/// `tasks` task events of 1 s each, queued at once, on a process started with
/// `AWS_LAMBDA_MAX_CONCURRENCY=max_concurrency`; the time until all are done.
pub(crate) async fn tasks_at_once(
    fixture: &Fixture,
    instance: &Instance,
    tasks: usize,
) -> Duration {
    let mut ids = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let task_id = uuid::Uuid::new_v4().to_string();
        // Recorded as /async leaves a task: queued, and enqueued.
        let store = TaskStore {
            dynamodb: &fixture.dynamodb,
            table: &fixture.tasks_table,
        };
        store
            .put_enqueued(&task_id)
            .await
            .expect("a queued, enqueued task record");
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

/// Rounds of the throughput measurement per concurrency level: each a ratio
/// of its own, so that their median is not one slow spell's.
pub(crate) const ROUNDS: usize = 32;

/// The rounds of one binary, summed: requests over their wall time, CPU over
/// their requests.
#[derive(Default)]
struct Rounds {
    requests: usize,
    wall: Duration,
    cpu: Duration,
}

impl Rounds {
    fn add(&mut self, (requests, wall, cpu): (usize, Duration, Duration)) {
        self.requests += requests;
        self.wall += wall;
        self.cpu += cpu;
    }

    fn total(&self) -> Throughput {
        Throughput {
            per_second: self.requests as f64 / self.wall.as_secs_f64(),
            cpu_per_call: self.cpu / self.requests.max(1) as u32,
        }
    }
}

/// `requests` `/users` events queued at once; the process's workers drain
/// them. The requests, their wall time and the process's CPU time.
pub(crate) async fn throughput(
    instance: &Instance,
    requests: usize,
) -> (usize, Duration, Duration) {
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
    (requests, wall, cpu)
}

pub(crate) async fn concurrency(settings: &Settings, fixture: &Fixture) -> Vec<Concurrency> {
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
        // In rounds, the two back to back and the first of each round
        // alternating, so that a slow second of the machine falls on one
        // round's ratio (see `Concurrency::round_ratios`).
        let mut function_throughput = Rounds::default();
        let mut floor_throughput = Rounds::default();
        let mut round_ratios = Vec::with_capacity(ROUNDS);
        let per_round = settings.throughput_requests.div_ceil(ROUNDS);
        for round in 0..ROUNDS {
            let (function_round, floor_round) = if round % 2 == 0 {
                let function_round = throughput(&function, per_round).await;
                (function_round, throughput(&floor, per_round).await)
            } else {
                let floor_round = throughput(&floor, per_round).await;
                (throughput(&function, per_round).await, floor_round)
            };
            // Both rounds serve `per_round` requests: the ratio of rates is
            // that of wall times, inverted.
            round_ratios.push(floor_round.1.as_secs_f64() / function_round.1.as_secs_f64());
            function_throughput.add(function_round);
            floor_throughput.add(floor_round);
        }
        let function_throughput = function_throughput.total();
        let floor_throughput = floor_throughput.total();
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
            round_ratios: Stats::of(round_ratios),
            peak_rss_kib,
        });
    }
    results
}
