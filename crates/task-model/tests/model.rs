//! The task protocol model-checked against DynamoDB and Lambda (the world
//! is this crate's library). The properties (`src/check.rs`), in every
//! state of every path:
//! 1. a task's work never runs in two attempts at once (a crash stops it at
//!    once; the watcher's stop aborts it at once, as `JoinHandle::abort`
//!    does a work that awaits);
//! 2. no task a request wrote or sent before answering a 5xx of its own
//!    ever starts its work (a request that dies answers API Gateway's 5xx:
//!    nothing is promised then);
//! 3. the tasks of the one Idempotency-Key start their work once in all;
//! 4. `succeeded`, `failed` and `canceled`, once shown (`shown_status` at
//!    true time, the backstop included), never change;
//! 5. `attempts` is the number of start writes (`cond::UNSTARTED`) that
//!    landed for the task, and each claim's start lands at most once; every
//!    delivery whose work ran had its start land; and a start that landed
//!    for a delivery whose work never ran is one of: known to have landed
//!    (answered, or read) with fewer than two ticks of its lease left, the
//!    renewal then not giving them back (`worker::two_ticks_ahead`: none
//!    sent once the stop point had come, or it failed, timed out at the stop
//!    point, landed too late, or was refused); sent by a process that died
//!    (a crash, Lambda's kill at its deadline) before its work began; or a
//!    start call that failed or lost a try's answer, after which the read
//!    found the task no longer this claim's (`Begun::NotOurs`), or failed
//!    (the claims themselves count nothing);
//! 7. every change of status, stored or shown, is one of
//!    `protocol::TRANSITIONS`;
//!
//! and, in the last state of every path (the world is finite: each path
//! ends once every process has ended, every event was delivered or aged
//! out and every failure record consumed, so that delivery is fair there):
//! 6. every task has ended, as shown (the backstop included).
//!
//! Each check also asserts examples of what its properties are about (a
//! second attempt starts, a watcher stops the work, a 5xx is answered, an
//! attempt is counted whose work never runs...), lest a property hold for
//! want of the behaviour.
//!
//! `cargo test -p task-model` checks every interleaving of small worlds,
//! one concern each; `make model` checks deeper ones (`MODEL_*` variables,
//! see `from_env`). A counterexample is shrunk and printed as a trace: each
//! action, then the record after it. The counterexamples found are replayed
//! below: those the protocol has fixed as tests that the property now holds
//! on their path, the one still open (`regression_*`) as a test that it
//! fails there; until it is fixed, the checks steer clear of its path
//! (`check::known`), and `MODEL_KNOWN=1` takes it too.

use std::time::Instant;

use async_api::tasks::TaskStatus;
use async_api::tasks::protocol::{WRITE_LANDS_WITHIN_MS, WorkEnd};
use stateright::{Checker, Expectation, Model};

use task_model::check::{Action, Fate, TaskModel};
use task_model::config::Config;
use task_model::trace;
use task_model::world::{self, World};

/// The world's times, in the proportions of the deployed function's (a
/// 90 s invocation, a 3 s lease renewed every 0.5 s, a 30 s key hold),
/// shrunk so that a lease is 3 ticks and an invocation 6. The protocol's own
/// constants are not shrunk: a try's latency (50 ms) stays far below the
/// `WRITE_LANDS_WITHIN_MS` (6 s) within which any write lands, which a try
/// the SDK gave up on may take (`Fate::Stale`); and the backstop's margin
/// past the maximum event age (7 s) outlasts a POST, a delivery and those
/// 6 s (`Config::check`), as the deployed 5 minutes outlast a 90 s
/// invocation and 6 s. Only the instants at which something can differ are
/// visited, so the 6 s cost no states of their own. No bound is set (see
/// `scenario`).
fn base() -> Config {
    Config {
        posts: vec![false],
        deliveries: 0,
        dups: 0,
        crashes: 0,
        faults: 0,
        lost_only: false,
        stale_anytime: false,
        cancels: 0,
        known: false,
        max_retries: 2,
        latency: 50,
        offsets: vec![0, 24],
        post_offsets: vec![0],
        skewed: 1,
        tick: 50,
        span: 150,
        delivery_timeout: 300,
        post_timeout: 300,
        hold: 100,
        max_age: 600,
        margin: 7000,
        outcomes: vec![WorkEnd::Succeeded, WorkEnd::Failed { retryable: true }],
        grid: 0,
        only: Vec::new(),
    }
}

/// A world of `base` with these bounds.
fn scenario(
    keyed: &[bool],
    deliveries: u8,
    dups: u8,
    crashes: u8,
    faults: u8,
    cancels: u8,
) -> Config {
    Config {
        posts: keyed.to_vec(),
        deliveries,
        dups,
        crashes,
        faults,
        cancels,
        ..base()
    }
}

/// `name=value` from the environment, parsed.
fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid value"))
    })
}

fn list<T>(name: &str, parse: impl Fn(&str) -> T) -> Option<Vec<T>> {
    env::<String>(name).map(|v| v.split(',').map(|item| parse(item.trim())).collect())
}

/// `cfg` with what the `MODEL_*` variables set: `MODEL_POSTS` (`key,key`
/// or `nokey`: one word per POST), `MODEL_DELIVERIES`, `MODEL_DUPS`,
/// `MODEL_CRASHES`, `MODEL_FAULTS` (failed calls), `MODEL_LOST_ONLY=1` (the
/// failed calls only lost answers), `MODEL_STALE_ANYTIME=1`
/// (a try the SDK gave up on lands at any instant until its bound),
/// `MODEL_CANCELS`,
/// `MODEL_LATENCY`, `MODEL_TIMEOUT` (a delivery's), `MODEL_OFFSETS` and
/// `MODEL_POST_OFFSETS` (clock offsets, ms), `MODEL_SKEWED` (processes
/// whose clock is off), `MODEL_OUTCOMES` (`s`ucceeded, `r`etryable,
/// for `g`ood, `p`anicked), `MODEL_GRID` (ms), `MODEL_KNOWN=1`,
/// `MODEL_ONLY` (property name prefixes, e.g. `1.,5.`); and, read
/// by `search`, `MODEL_THREADS`, `MODEL_SEARCH` (`bfs` or `dfs`),
/// `MODEL_FIRST=1`.
fn from_env(mut cfg: Config) -> Config {
    if let Some(posts) = list("MODEL_POSTS", |p| p == "key") {
        cfg.posts = posts;
    }
    let number = |name: &str, field: &mut u8| {
        if let Some(n) = env(name) {
            *field = n;
        }
    };
    number("MODEL_DELIVERIES", &mut cfg.deliveries);
    number("MODEL_DUPS", &mut cfg.dups);
    number("MODEL_CRASHES", &mut cfg.crashes);
    number("MODEL_FAULTS", &mut cfg.faults);
    if let Some(n) = env::<u8>("MODEL_LOST_ONLY") {
        cfg.lost_only = n > 0;
    }
    number("MODEL_CANCELS", &mut cfg.cancels);
    number("MODEL_SKEWED", &mut cfg.skewed);
    if let Some(n) = env::<u8>("MODEL_KNOWN") {
        cfg.known = n > 0;
    }
    if let Some(n) = env::<u8>("MODEL_STALE_ANYTIME") {
        cfg.stale_anytime = n > 0;
    }
    if let Some(n) = env("MODEL_LATENCY") {
        cfg.latency = n;
    }
    if let Some(n) = env("MODEL_TIMEOUT") {
        cfg.delivery_timeout = n;
    }
    if let Some(n) = env("MODEL_GRID") {
        cfg.grid = n;
    }
    let ms = |o: &str| o.parse().expect("clock offsets in ms");
    if let Some(offsets) = list("MODEL_OFFSETS", ms) {
        cfg.offsets = offsets;
    }
    if let Some(offsets) = list("MODEL_POST_OFFSETS", ms) {
        cfg.post_offsets = offsets;
    }
    if let Some(only) = list("MODEL_ONLY", str::to_owned) {
        cfg.only = only;
    }
    if let Some(outcomes) = list("MODEL_OUTCOMES", |o| match o {
        "s" => WorkEnd::Succeeded,
        "r" => WorkEnd::Failed { retryable: true },
        "g" => WorkEnd::Failed { retryable: false },
        "p" => WorkEnd::Panicked,
        other => panic!("MODEL_OUTCOMES: {other} is none of s, r, g, p"),
    }) {
        cfg.outcomes = outcomes;
    }
    cfg
}

fn bounds(cfg: &Config) -> String {
    format!(
        "POSTs {} ({}), deliveries {} (of which duplicates {}), crashes {}, failed calls {}{}, cancels {}; \
         max_retries {}, call latency 0 or {} ms (a try given up on lands within {} ms{}), clock \
         offsets {:?} (POST {:?}, {} process(es) off), lease tick {} span {}, timeouts: delivery {} \
         POST {}, key hold {}, max event age {}, backstop {} after it, work ends {:?}{}{}",
        cfg.posts.len(),
        if cfg.keyed() { "one key" } else { "no key" },
        cfg.deliveries,
        cfg.dups,
        cfg.crashes,
        cfg.faults,
        if cfg.lost_only {
            " (lost answers only)"
        } else {
            ""
        },
        cfg.cancels,
        cfg.max_retries,
        cfg.latency,
        WRITE_LANDS_WITHIN_MS,
        if cfg.stale_anytime {
            ", at any instant"
        } else {
            ""
        },
        cfg.offsets,
        cfg.post_offsets,
        cfg.skewed,
        cfg.tick,
        cfg.span,
        cfg.delivery_timeout,
        cfg.post_timeout,
        cfg.hold,
        cfg.max_age,
        cfg.margin,
        cfg.outcomes,
        if cfg.grid > 0 {
            format!(", grid {} ms", cfg.grid)
        } else {
            String::new()
        },
        if cfg.known {
            ", the known counterexample's path taken"
        } else {
            ""
        },
    )
}

/// Checks every interleaving of `cfg`'s world, breadth first (the shortest
/// counterexamples); panics with the shrunk trace of each counterexample.
fn check(name: &str, cfg: Config) {
    search(name, cfg, false)
}

/// As `check`, depth first: the states waiting to be explored take the
/// memory of one path at a time, not of a whole level (a deep world's level
/// outgrows 24 GB).
fn check_deep(name: &str, cfg: Config) {
    search(name, cfg, true)
}

fn search(name: &str, cfg: Config, deep: bool) {
    let deep = env::<String>("MODEL_SEARCH").map_or(deep, |search| search == "dfs");
    // cargo test runs two checks at once (one per core); make model one.
    let threads = env("MODEL_THREADS").unwrap_or(1);
    println!("model {name}: {}", bounds(&cfg));
    let started = Instant::now();
    let model = TaskModel::new(cfg.clone());
    let mut checker = model.checker().threads(threads);
    if env::<u8>("MODEL_FIRST").is_some_and(|first| first > 0) {
        // Stop at the first counterexample (for hunting them).
        checker = checker.finish_when(stateright::HasDiscoveries::AnyFailures);
    }
    if deep {
        report(name, cfg, started, checker.spawn_dfs().join())
    } else {
        report(name, cfg, started, checker.spawn_bfs().join())
    }
}

/// Prints what `checker` explored; panics with the shrunk trace of each
/// counterexample, or the examples it never reached.
fn report(name: &str, cfg: Config, started: Instant, checker: impl Checker<TaskModel>) {
    println!(
        "model {name}: {} states explored ({} unique), depth {}, in {:.1} s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed().as_secs_f64()
    );
    let model = TaskModel::new(cfg);
    let mut failures = String::new();
    for property in model.properties() {
        match (
            property.expectation.clone(),
            checker.discovery(property.name),
        ) {
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

// --- cargo test: one concern each, every interleaving, under a minute in all -----------------

#[test]
fn three_deliveries_of_a_task_retried_twice() {
    check(
        "three deliveries",
        from_env(scenario(&[false], 3, 0, 0, 0, 0)),
    );
}

#[test]
fn a_duplicate_delivery_beside_the_first() {
    check("a duplicate", from_env(scenario(&[false], 2, 1, 0, 0, 0)));
}

#[test]
fn two_crashes_at_any_step() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        ..scenario(&[false], 2, 0, 2, 0, 0)
    };
    check("two crashes", from_env(cfg));
}

#[test]
fn a_failed_call_of_any_kind() {
    let cfg = Config {
        offsets: vec![0],
        ..scenario(&[false], 2, 0, 0, 1, 0)
    };
    check("a failed call", from_env(cfg));
}

/// A try's latency of a tick and a half (in the other checks it is one
/// tick, so that every answer comes a whole number of ticks after its
/// call): a start may then be known with fewer than two ticks of its lease
/// left but before its stop point, and the work begins only under a
/// renewal's lease (`worker::two_ticks_ahead`), or not at all.
#[test]
fn a_start_known_late_renews_before_the_work() {
    let cfg = Config {
        latency: 75,
        offsets: vec![0],
        ..scenario(&[false], 2, 0, 0, 0, 0)
    };
    check("a start known late", from_env(cfg));
}

#[test]
fn a_cancel_at_any_moment() {
    check("a cancel", from_env(scenario(&[false], 2, 0, 0, 0, 1)));
}

#[test]
fn a_key_shared_by_two_posts() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        ..scenario(&[true, true], 1, 0, 0, 0, 0)
    };
    check("one key", from_env(cfg));
}

// --- make model: each of the issue's bounds, with as much else as fits ----------------------

#[test]
#[ignore = "make model"]
fn deep_three_deliveries_one_a_duplicate() {
    check_deep(
        "deep: deliveries",
        from_env(scenario(&[false], 3, 1, 0, 0, 0)),
    );
}

#[test]
#[ignore = "make model"]
fn deep_two_crashes() {
    check_deep("deep: crashes", from_env(scenario(&[false], 3, 0, 2, 0, 0)));
}

#[test]
#[ignore = "make model"]
fn deep_two_lost_answers() {
    check_deep(
        "deep: lost answers",
        from_env(scenario(&[false], 2, 0, 0, 2, 0)),
    );
}

#[test]
#[ignore = "make model"]
fn deep_a_cancel() {
    check_deep(
        "deep: a cancel",
        from_env(scenario(&[false], 3, 0, 1, 0, 1)),
    );
}

/// Two POSTs with one key, with a failed call of any kind, then with a
/// crash: every work that starts succeeds and no clock is off (what the key
/// decides does not depend on either, which the other deep checks cover).
/// Measured on 2 threads (2026-12-06): with no failed call this world has
/// 481,194 states (1.4 s); with one, 64,899,872 (204 s), of which the
/// failures of the POSTs' own calls make nearly all (61 M with only those
/// failing) and throttles and late tries about two thirds of them (24 M with
/// lost answers only). Two failed calls of any kind would be billions of
/// states; two lost answers fit (`deep_one_key_two_lost_answers`).
#[test]
#[ignore = "make model"]
fn deep_one_key_a_lost_answer() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        offsets: vec![0],
        ..scenario(&[true, true], 1, 0, 0, 1, 0)
    };
    check_deep("deep: one key, a lost answer", from_env(cfg));
}

/// Two POSTs with one key and two lost answers: any two calls (the POSTs',
/// the delivery's, the `Invoke`) land and lose their answers, or a read goes
/// unanswered; the world otherwise as `deep_one_key_a_lost_answer`'s. About
/// 954 million states, an hour on 2 threads and 20 GB (Stateright keeps a
/// fingerprint of each state), measured 2026-12-07; its first run found the
/// counterexample that `replays` replays as
/// `a_retry_whose_takeover_lost_its_answer_adopts_the_keys_running_task_and_answers_202`.
#[test]
#[ignore = "make model"]
fn deep_one_key_two_lost_answers() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        offsets: vec![0],
        lost_only: true,
        ..scenario(&[true, true], 1, 0, 0, 2, 0)
    };
    check_deep("deep: one key, two lost answers", from_env(cfg));
}

#[test]
#[ignore = "make model"]
fn deep_one_key_a_crash() {
    let cfg = Config {
        outcomes: vec![WorkEnd::Succeeded],
        offsets: vec![0],
        ..scenario(&[true, true], 1, 0, 1, 0, 0)
    };
    check_deep("deep: one key, a crash", from_env(cfg));
}

// --- the counterexamples found, replayed: model/replays.rs ----------------------------------

#[path = "model/replays.rs"]
mod replays;

/// A random walk through the model (`MODEL_WALKS` walks), printing the
/// longest: for finding where a model change made it loop.
#[test]
#[ignore = "a tool"]
fn random_walks() {
    let model = TaskModel::new(from_env(scenario(&[false], 3, 1, 2, 2, 1)));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut longest: Vec<Action> = Vec::new();
    for _ in 0..env("MODEL_WALKS").unwrap_or(0) {
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
    let shown: Vec<Action> = longest.iter().take(300).cloned().collect();
    println!(
        "longest walk: {} actions\n{}",
        longest.len(),
        trace::render(&model, &init, &shown)
    );
}
