//! The task protocol (`src/tasks/protocol.rs`), model-checked with
//! Stateright against DynamoDB and Lambda (issue 19).
//!
//! The model runs the same functions the function runs (`cond::*`,
//! `Attempt::next`, `may_start`, `claimed_until`, `stop_at`, `wake_at`,
//! `on_wake`, `renewed`, `verdict`, `after_put`, `after_invoke`,
//! `after_mark_enqueued`, `after_mark_not_enqueued`, `after_settle`,
//! `after_key_read`, `adopt`, `TaskView::shown_status`), driven step by step
//! as `src/tasks/http.rs`, `idempotency.rs`, `worker.rs` and
//! `destination.rs` drive them (`model/procs.rs`), in a world of:
//! - a linearizable tasks table whose conditional writes are the protocol's
//!   conditions (`model/table.rs`); any call may fail for its caller while
//!   its request lands at once, later (before its sender's deadline) or
//!   never, and the SDK may retry it;
//! - Lambda's asynchronous delivery: an accepted event, duplicates,
//!   `max_retries` retries after a failed, crashed or timed-out invocation,
//!   the maximum event age, then the failure record whose consumer gives up;
//! - processes (invocations) that crash at any step, Lambda's kill at the
//!   deadline, clocks offset from true time by `offsets`;
//! - the caller's POSTs (with or without the one Idempotency-Key) and
//!   DELETE, each at any moment.
//!
//! `cargo test --test model` checks every interleaving within small bounds;
//! `make model` (`MODEL_*` variables, below) within deeper ones. A
//! counterexample is shrunk and printed as a trace: each action, then the
//! record after it.

#[path = "model/check.rs"]
mod check;
#[path = "model/procs.rs"]
mod procs;
#[path = "model/table.rs"]
mod table;
#[path = "model/time.rs"]
mod time;
#[path = "model/trace.rs"]
mod trace;
#[path = "model/world.rs"]
mod world;

use std::time::Instant;

use async_api::tasks::protocol::WorkEnd;
use stateright::{Checker, Expectation, Model};

use check::{Action, TaskModel};
use world::Config;

/// The small world of `cargo test`.
fn base() -> Config {
    Config {
        posts: vec![false],
        deliveries: 3,
        dups: 1,
        crashes: 2,
        faults: 2,
        cancels: 1,
        max_retries: 2,
        latency: 150,
        offsets: vec![0, 24],
        post_offsets: vec![0, 24],
        skewed: 1,
        tick: 50,
        span: 150,
        delivery_timeout: 400,
        post_timeout: 300,
        hold: 150,
        max_age: 600,
        margin: 800,
        outcomes: vec![
            WorkEnd::Succeeded,
            WorkEnd::Failed { retryable: true },
            WorkEnd::Failed { retryable: false },
        ],
        grid: 0,
    }
}

/// `name=value` from the environment, parsed.
fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid value"))
    })
}

/// `config` with what `MODEL_*` variables set.
fn from_env(mut cfg: Config) -> Config {
    if let Some(posts) = env::<String>("MODEL_POSTS") {
        // e.g. "key,key" or "nokey": one word per POST.
        cfg.posts = posts.split(',').map(|p| p.trim() == "key").collect();
    }
    if let Some(n) = env("MODEL_DELIVERIES") {
        cfg.deliveries = n;
    }
    if let Some(n) = env("MODEL_DUPS") {
        cfg.dups = n;
    }
    if let Some(n) = env("MODEL_CRASHES") {
        cfg.crashes = n;
    }
    if let Some(n) = env("MODEL_FAULTS") {
        cfg.faults = n;
    }
    if let Some(n) = env("MODEL_CANCELS") {
        cfg.cancels = n;
    }
    if let Some(offsets) = env::<String>("MODEL_OFFSETS") {
        cfg.offsets = offsets
            .split(',')
            .map(|o| o.trim().parse().expect("MODEL_OFFSETS: ms"))
            .collect();
    }
    if let Some(offsets) = env::<String>("MODEL_POST_OFFSETS") {
        cfg.post_offsets = offsets
            .split(',')
            .map(|o| o.trim().parse().expect("MODEL_POST_OFFSETS: ms"))
            .collect();
    }
    if let Some(n) = env("MODEL_SKEWED") {
        cfg.skewed = n;
    }
    if let Some(n) = env("MODEL_TIMEOUT") {
        cfg.delivery_timeout = n;
    }
    if let Some(n) = env("MODEL_LATENCY") {
        cfg.latency = n;
    }
    if let Some(outcomes) = env::<String>("MODEL_OUTCOMES") {
        // s: succeeded, r: failed (retryable), g: failed for good, p: panicked.
        cfg.outcomes = outcomes
            .split(',')
            .map(|o| match o.trim() {
                "s" => WorkEnd::Succeeded,
                "r" => WorkEnd::Failed { retryable: true },
                "g" => WorkEnd::Failed { retryable: false },
                "p" => WorkEnd::Panicked,
                other => panic!("MODEL_OUTCOMES: {other} is none of s, r, g, p"),
            })
            .collect();
    }
    if let Some(n) = env("MODEL_GRID") {
        cfg.grid = n;
    }
    cfg
}

fn bounds(cfg: &Config) -> String {
    format!(
        "POSTs {:?} (true: with the key), call latency {}, POST clock offsets {:?}, skewed processes {}, deliveries {} (duplicates {}), crashes {}, failed calls {}, cancels {}, \
         max_retries {}, clock offsets {:?} ms, lease tick {} span {}, timeouts delivery {} POST {}, key hold {}, \
         max event age {} + backstop margin {}, work ends {:?}, grid {}",
        cfg.posts,
        cfg.latency,
        cfg.post_offsets,
        cfg.skewed,
        cfg.deliveries,
        cfg.dups,
        cfg.crashes,
        cfg.faults,
        cfg.cancels,
        cfg.max_retries,
        cfg.offsets,
        cfg.tick,
        cfg.span,
        cfg.delivery_timeout,
        cfg.post_timeout,
        cfg.hold,
        cfg.max_age,
        cfg.margin,
        cfg.outcomes,
        cfg.grid
    )
}

/// Checks every interleaving of `cfg`'s world; panics with the shrunk
/// trace of each counterexample.
fn check(name: &str, cfg: Config) {
    let threads = env("MODEL_THREADS").unwrap_or(2);
    println!("model {name}: {}", bounds(&cfg));
    let started = Instant::now();
    let model = TaskModel::new(cfg.clone());
    let checker = model.checker().threads(threads).spawn_bfs().join();
    let elapsed = started.elapsed();
    println!(
        "model {name}: {} states explored ({} unique), depth {}, in {:.1} s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        elapsed.as_secs_f64()
    );
    let model = TaskModel::new(cfg);
    let mut failures = String::new();
    for property in model.properties() {
        let found = checker.discovery(property.name);
        match (property.expectation.clone(), found) {
            (Expectation::Sometimes, None) => {
                failures += &format!(
                    "\nno example of \"{}\": the model is vacuous there\n",
                    property.name
                );
            }
            (Expectation::Sometimes, Some(_)) | (_, None) => {}
            (_, Some(path)) => {
                let actions: Vec<Action> = path.into_actions();
                let shrunk = trace::shrink(&model, &property, &actions);
                let init = model.init_states().remove(0);
                failures += &format!(
                    "\nCOUNTEREXAMPLE to \"{}\" ({} actions, shrunk from {}):\n{}\nas actions: {:?}\n",
                    property.name,
                    shrunk.len(),
                    actions.len(),
                    trace::render(&model, &init, &shrunk),
                    shrunk
                );
            }
        }
    }
    assert!(failures.is_empty(), "model {name}:{failures}");
}

#[test]
#[ignore = "unfinished: at these bounds the check runs for over ten minutes (issue 19 stays open); make model runs it"]
fn without_a_key_every_property_holds() {
    check("without a key", from_env(base()));
}

/// A random walk through the model (`MODEL_WALKS` walks), printing the
/// longest: for finding where the model loops.
#[test]
#[ignore]
fn random_walks() {
    let model = TaskModel::new(from_env(base()));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut longest: Vec<Action> = Vec::new();
    for _ in 0..env("MODEL_WALKS").unwrap_or(200) {
        let mut w = model.init_states().remove(0);
        let mut path = Vec::new();
        let mut actions = Vec::new();
        while path.len() < 3000 {
            actions.clear();
            model.actions(&w, &mut actions);
            if actions.is_empty() {
                break;
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let action = actions[(seed % actions.len() as u64) as usize].clone();
            w = model.next_state(&w, action.clone()).unwrap();
            path.push(action);
        }
        if path.len() > longest.len() {
            longest = path;
        }
    }
    let init = model.init_states().remove(0);
    let shown: Vec<Action> = longest.iter().take(200).cloned().collect();
    println!(
        "longest walk: {} actions\n{}",
        longest.len(),
        trace::render(&model, &init, &shown)
    );
}

#[test]
#[ignore]
fn debug_cancel() {
    let mut cfg = base();
    cfg.deliveries = 2;
    cfg.dups = 0;
    cfg.crashes = 0;
    cfg.faults = 0;
    cfg.latency = 50;
    cfg.delivery_timeout = 300;
    let model = TaskModel::new(cfg);
    use Action::*;
    use check::Fate::Ok as Fine;
    let steps = vec![
        (Post(0), 0),
        (Step(0), 0),
        (Land(0, Fine), 0),
        (Land(0, Fine), 0),
        (Land(0, Fine), 0),
        (Tick, 2377),
        (Cancel(0, 0), 0),
        (Step(1), 0),
        (Tick, 2427),
        (Land(1, Fine), 0),
    ];
    let played = trace::replay_timed(&model, &steps, true);
    match played {
        Some((_, taken)) => {
            let init = model.init_states().remove(0);
            println!("{}", trace::render(&model, &init, &taken));
        }
        None => println!("not playable"),
    }
}
