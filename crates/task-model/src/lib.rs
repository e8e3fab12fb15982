//! The world around the task protocol (async-api's `src/tasks/protocol.rs`):
//! DynamoDB, Lambda, the function's processes and the caller, as a Stateright
//! model whose every interleaving `tests/model.rs` checks (issue 19).
//!
//! The model runs the same functions the function runs (`cond::*`,
//! `write_cutoff`, `Attempt::cutoff`, `next`, `narrowed`, `may_start_now`,
//! `claimed_until`, `begun`, `stop_at`, `wake_at`, `on_wake`, `renewed`,
//! `verdict`, `after_put`, `after_invoke`, `after_mark_enqueued`,
//! `after_mark_not_enqueued`, `after_settle`, `after_key_read`, `adopt`,
//! `TaskView::shown_status`, `protocol::is_transition`), driven step by step
//! as `src/tasks/http.rs`, `idempotency.rs`, `worker.rs`, `claims.rs` and
//! `destination.rs` drive them ([`procs`]), in a world of
//! ([`world`]):
//! - a linearizable tasks table whose conditional writes are the protocol's
//!   conditions ([`table`]); a try of a call takes from no time to
//!   `latency` (it lands at either end), and may fail: its request landed or
//!   not, the caller sees an error, and the SDK may try again while the
//!   call's `WRITE_LANDS_WITHIN_MS` allow; a try the SDK gave up on may
//!   still land, as late as `WRITE_LANDS_WITHIN_MS` after its call was sent
//!   (the protocol's assumption, taken at its word);
//! - Lambda's asynchronous delivery: an accepted event, duplicates,
//!   `max_retries` retries after a failed, crashed or timed-out invocation,
//!   the maximum event age, then the failure record, whose consumer gives up
//!   on the task;
//! - processes (invocations) that crash at any step, Lambda's kill at the
//!   deadline, clocks ahead of true time by up to `CLOCK_SKEW_MS` - 1;
//! - the caller's POSTs (with or without the one Idempotency-Key) and
//!   DELETE, each at any moment that matters ([`check`]).
//!
//! Time is discrete and moves to the next instant at which something can
//! differ ([`time`]); a watcher's wake-up is never skipped.
//!
//! `cargo test` builds this crate and Stateright optimized (the root
//! Cargo.toml's `profile.dev.package`): a check explores millions of states.

pub mod calls;
pub mod check;
pub mod config;
pub mod invocation;
pub mod procs;
pub mod properties;
pub mod table;
pub mod time;
pub mod trace;
pub mod world;
