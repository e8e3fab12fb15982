//! Cold starts: a fresh process per run, its first event queued before the
//! spawn, as Lambda queues the event that causes a cold start.

use super::*;

pub(crate) struct ColdStart {
    pub(crate) init: Vec<Duration>,
    pub(crate) first_response: Vec<Duration>,
    pub(crate) peak_rss_kib: Vec<u64>,
}

/// One fresh process: the first `/users` event is queued before the spawn, as
/// Lambda queues the event that causes a cold start.
pub(crate) async fn cold_start(binary: Binary, fixture: &Fixture) -> (Duration, Duration, u64) {
    let api = RuntimeApi::start(test_function()).await;
    let submitted = api.submit(users_event(COLD_PAGE));
    let instance = Instance::start_with(binary, api, fixture, &page_env(COLD_PAGE));
    let outcome = submitted.outcome().await;
    let first_response = instance.spawned.elapsed();
    check_page(binary, &outcome, COLD_PAGE);
    let init = instance.api.poll_times()[0] - instance.spawned;
    let usage = instance.stop().await;
    (init, first_response, usage.peak_rss_kib)
}

pub(crate) async fn cold_starts(
    settings: &Settings,
    fixture: &Fixture,
) -> HashMap<&'static str, ColdStart> {
    pub(crate) const BINARIES: [Binary; 3] =
        [Binary::Function, Binary::IoFloor, Binary::HelloFloor];
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
