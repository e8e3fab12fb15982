//! The invariants a chaos run must keep (tests/chaos.rs), each judged on its
//! [`Report`] and printed with its counts, `ok` or `FAILED` with the broken
//! cases and their history (every DynamoDB call about the task, its attempts,
//! what each delivery answered, and each of its events' time in Lambda's
//! hands). Here those of the work: every task ends, and until it does some
//! event of it is in Lambda's hands; one attempt at a time inside its lease,
//! each counted once by its start write, never run again once the task ended;
//! what callers are promised is in tests/chaos/promises.rs.

use std::collections::{BTreeMap, BTreeSet};

use async_api::tasks::record::NEVER_DELIVERED;
use async_api::tasks::worker::STARTED_UNKNOWN;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::fault_proxy::Call;
use crate::promises;
use crate::report::{
    Lifeline, Report, is_claim, is_final, is_give_up, is_release, is_start, number, string,
};
use crate::support::runtime_api::Outcome;
use crate::support::runtime_api::async_invoke::{EXITED, TIMED_OUT};

/// How late a line may be stamped: a reading interval, and some.
pub const STAMP_SLACK_MS: u64 = 50;

/// The verdicts so far.
#[derive(Default)]
pub struct Verdicts {
    pub passed: usize,
    pub failed: usize,
}

impl Verdicts {
    pub fn judge(&mut self, name: &str, counts: String, problems: Vec<String>) {
        if problems.is_empty() {
            self.passed += 1;
            println!("ok     {name}: {counts}");
        } else {
            self.failed += 1;
            println!("FAILED {name}: {counts}; {} broken:", problems.len());
            for problem in problems.iter().take(20) {
                println!("         {problem}");
            }
        }
    }
}

/// Prints what the run did, then each invariant with its counts.
pub fn check(report: &Report) -> Verdicts {
    report.print_summary();
    let mut verdicts = Verdicts::default();
    every_task_ended(report, &mut verdicts);
    never_two_attempts_at_once(report, &mut verdicts);
    promises::a_final_status_never_changes(report, &mut verdicts);
    promises::an_ended_task_is_never_written_again(report, &mut verdicts);
    attempts_counts_the_attempts_that_started(report, &mut verdicts);
    promises::a_caller_told_5xx_has_no_task_that_starts(report, &mut verdicts);
    promises::one_task_per_idempotency_key(report, &mut verdicts);
    a_succeeded_task_never_ran_again(report, &mut verdicts);
    a_canceled_task_never_completed(report, &mut verdicts);
    a_task_lambda_gave_up_on_never_ran_again(report, &mut verdicts);
    every_task_not_ended_had_an_event_in_lambdas_hands(report, &mut verdicts);
    promises::a_failed_task_failed_for_a_reason_the_contract_names(report, &mut verdicts);
    verdicts
}

fn enqueued(item: &crate::report::Item) -> bool {
    matches!(item.get("enqueued"), Some(AttributeValue::Bool(true)))
}

/// Once its events have ended, every task is final. The one exception the
/// contract makes is the backstop's: a task no event can ever run (never
/// marked enqueued, none accepted: its request died or could not tell) reads
/// `failed` once its event could no longer come. It counts only if the run
/// waited for that and read it so.
fn every_task_ended(report: &Report, verdicts: &mut Verdicts) {
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut backstopped = 0;
    let mut problems = Vec::new();
    for (task_id, item) in &report.records {
        let status = string(item, "status").unwrap_or_default();
        *by_status.entry(status.clone()).or_default() += 1;
        if is_final(&status) {
            continue;
        }
        let no_event =
            status == "queued" && !enqueued(item) && !report.invoked_tasks.contains(task_id);
        let read = report.backstop.as_ref().and_then(|b| b.get(task_id));
        let read_failed = read.is_some_and(|r| {
            r.status == 200
                && r.body["status"] == "failed"
                && r.body["error"] == NEVER_DELIVERED
                && r.retry_after.is_none()
                && r.delete_status == 409
        });
        if no_event && read_failed {
            backstopped += 1;
            continue;
        }
        problems.push(format!(
            "{task_id} is {status} (enqueued: {}, event accepted: {}{}); after the backstop: {}: {}",
            enqueued(item),
            report.invoked_tasks.contains(task_id),
            if no_event { "" } else { ": stranded, its events all ended" },
            read.map_or("not waited for".to_owned(), |r| format!("{r:?}")),
            report.history(task_id)
        ));
    }
    verdicts.judge(
        "every task ended",
        format!(
            "{} tasks {by_status:?}; {backstopped} that no event could run read failed past the backstop (the backstop {} s away: waited for, or in make test backdated)",
            report.records.len(),
            report.backstop_wait_s
        ),
        problems,
    );
}

/// The work of a task never ran in two invocations at once: by the log
/// lines, each attempt (its `task started` line to its end) apart from every
/// other attempt of the task, and each worked under a claim that landed. The
/// fault proxy's records of the claims and renewals tell, besides, how close
/// each attempt's end came to its lease's: an attempt whose process stalls
/// (this machine's two cores are shared) may outlive its lease, which is no
/// overlap unless another attempt starts meanwhile; the conditional writes
/// (the claim's id) fence what it does after.
fn never_two_attempts_at_once(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let mut pairs = 0;
    for (task_id, list) in &report.attempts {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                pairs += 1;
                if b.start_ms < a.end_ms {
                    problems.push(format!(
                        "{task_id}: attempt {} (process {}, {}, {}..{} ended by {}) and attempt {} (process {}, {}, from {}, ended by {}) overlap by {} ms: {}",
                        a.attempt, a.process, a.trace_header, a.start_ms, a.end_ms, a.ended_by,
                        b.attempt, b.process, b.trace_header, b.start_ms, b.ended_by,
                        a.end_ms - b.start_ms,
                        report.history(task_id)
                    ));
                }
            }
            if a.claim_id.is_none() {
                problems.push(format!(
                    "{task_id}: attempt {} started with no landed claim: {}",
                    a.attempt,
                    report.history(task_id)
                ));
            }
        }
    }
    let ran: usize = report.attempts.values().map(Vec::len).sum();
    let unended = report
        .attempts
        .values()
        .flatten()
        .filter(|a| a.end_ms == u64::MAX)
        .count();
    if unended > 0 {
        problems.push(format!("{unended} attempts never ended"));
    }
    let leases = Leases::of(report);
    verdicts.judge(
        "the work never ran in two invocations at once",
        format!(
            "{ran} attempts of {} tasks, {pairs} pairs of attempts of one task compared; {} renewals landed while they ran, the least lease left at an attempt's end {} ms; {} attempts outlived their lease (by {} ms at most; {} of them sent no renewal while it ran out: their process stalled)",
            report.attempts.len(),
            leases.renewals,
            leases.least_margin,
            leases.outlived,
            leases.most_overrun,
            leases.stalled
        ),
        problems,
    );
}

/// Each attempt's lease, from the fault proxy's records: its claim's and
/// renewals' `lease_until` that had landed before its work ended.
struct Leases {
    renewals: usize,
    least_margin: i64,
    outlived: usize,
    most_overrun: i64,
    stalled: usize,
}

impl Leases {
    fn of(report: &Report) -> Self {
        let mut leases = Self {
            renewals: 0,
            least_margin: i64::MAX,
            outlived: 0,
            most_overrun: 0,
            stalled: 0,
        };
        for (task_id, list) in &report.attempts {
            for attempt in list {
                let Some(claim_id) = &attempt.claim_id else {
                    continue;
                };
                let writes: Vec<&Call> = report
                    .calls
                    .iter()
                    .filter(|c| {
                        c.item_id.as_deref() == Some(task_id.as_str())
                            && c.values[":claim"]["S"] == claim_id.as_str()
                            && c.values[":lease"]["N"].is_string()
                    })
                    .collect();
                let landed: Vec<&&Call> = writes
                    .iter()
                    .filter(|c| c.landed() && c.forwarded_ms.is_some_and(|at| at <= attempt.end_ms))
                    .collect();
                leases.renewals += landed
                    .iter()
                    .filter(|c| !is_claim(c) && !is_start(c))
                    .count();
                let until = landed
                    .iter()
                    .filter_map(|c| c.values[":lease"]["N"].as_str()?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0);
                let margin = until as i64 - attempt.end_ms as i64;
                leases.least_margin = leases.least_margin.min(margin);
                if margin < -(STAMP_SLACK_MS as i64) {
                    leases.outlived += 1;
                    leases.most_overrun = leases.most_overrun.max(-margin);
                    let sent_meanwhile = writes.iter().any(|c| {
                        !is_claim(c)
                            && !is_start(c)
                            && c.at_ms + 200 > until
                            && c.at_ms <= attempt.end_ms
                    });
                    leases.stalled += usize::from(!sent_meanwhile);
                }
            }
        }
        if leases.least_margin == i64::MAX {
            leases.least_margin = 0;
        }
        leases
    }
}

/// The claim a write of an attempt names (`:claim`).
fn claim_of(call: &Call) -> &str {
    call.values[":claim"]["S"].as_str().unwrap_or_default()
}

/// What the worker answers when a start's answer (or the read that showed
/// it landed) came too late to begin the work, and no renewal made up for
/// it (src/tasks/worker.rs).
const STARTED_TOO_LATE: &str = "started, but its answer came too late to begin the work";

/// `attempts` counts the attempts that started the work, each once: a claim
/// counts nothing, its start write counts it (at most once per claim: a
/// retried try of it is refused), so a task's `attempts` is the number of
/// distinct claims whose start landed. Every attempt that ran the work (a
/// `task started` line) had its claim's start land, and is numbered by it
/// (the n-th start to land on the task is attempt n); the attempt that
/// finished a succeeded task is its last; no release lands for a claim
/// that started. And a start that landed ran its work, with two exceptions
/// the protocol cannot avoid, each recognised as said:
/// - the documented one (docs/task-protocol.md, "The lease"): the start's
///   answer, or the read that told it had landed, came too late to begin the
///   work and no renewal made up for it. Its delivery answered
///   `TaskStoreUnavailable` with [`STARTED_TOO_LATE`], or with
///   [`STARTED_UNKNOWN`] when the start's answer was lost and no read of the
///   record succeeded before the lease's stop point; or, when that renewal
///   was refused or that read found the task no longer the claim's, it ended
///   without an error (not a duplicate) after a cancel, a give-up or another
///   claim had landed on the task since the start;
/// - its process died after sending it (killed, or its invocation timed
///   out): its delivery answered `Runtime.ExitError` or `Sandbox.Timedout`.
fn attempts_counts_the_attempts_that_started(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let (mut claims, mut starts, mut releases, mut ran, mut idle) = (0, 0, 0, 0, 0);
    let mut never_ran: BTreeMap<&str, usize> = BTreeMap::new();
    for (task_id, item) in &report.records {
        let writes = report.landed_writes(task_id);
        let landed_claims: Vec<&Call> = writes.iter().copied().filter(|c| is_claim(c)).collect();
        let started: Vec<&Call> = writes.iter().copied().filter(|c| is_start(c)).collect();
        let released: Vec<&Call> = writes.iter().copied().filter(|c| is_release(c)).collect();
        claims += landed_claims.len();
        starts += started.len();
        releases += released.len();
        let mut started_claims = BTreeSet::new();
        for start in &started {
            if !started_claims.insert(claim_of(start)) {
                problems.push(format!(
                    "{task_id}: claim {} started twice: {}",
                    claim_of(start),
                    report.history(task_id)
                ));
            }
        }
        let recorded = number(item, "attempts");
        if recorded != started_claims.len() as u64 {
            problems.push(format!(
                "{task_id}: attempts {recorded}, but the starts of {} claims landed: {}",
                started_claims.len(),
                report.history(task_id)
            ));
        }
        for release in &released {
            if started.iter().any(|start| {
                claim_of(start) == claim_of(release) && start.upstream_ms <= release.upstream_ms
            }) {
                problems.push(format!(
                    "{task_id}: claim {} was released after it started: {}",
                    claim_of(release),
                    report.history(task_id)
                ));
            }
        }
        idle += landed_claims
            .iter()
            .filter(|c| {
                !started_claims.contains(claim_of(c))
                    && !released.iter().any(|r| claim_of(r) == claim_of(c))
            })
            .count();

        let attempts = report.attempts.get(task_id).map_or(&[][..], Vec::as_slice);
        let mut numbers = BTreeSet::new();
        for attempt in attempts {
            let rank = attempt.claim_id.as_deref().and_then(|id| {
                started
                    .iter()
                    .position(|start| claim_of(start) == id)
                    .map(|i| i as u64 + 1)
            });
            match rank {
                None => problems.push(format!(
                    "{task_id}: attempt {} ran the work, but no start of its claim {:?} landed: {}",
                    attempt.attempt,
                    attempt.claim_id,
                    report.history(task_id)
                )),
                Some(rank) if rank != attempt.attempt => problems.push(format!(
                    "{task_id}: attempt {} ran under the start that landed {rank}th: {}",
                    attempt.attempt,
                    report.history(task_id)
                )),
                Some(_) => {}
            }
            if !numbers.insert(attempt.attempt) {
                problems.push(format!(
                    "{task_id}: attempt {} ran more than once: {}",
                    attempt.attempt,
                    report.history(task_id)
                ));
            }
        }
        for start in &started {
            if attempts
                .iter()
                .any(|a| a.claim_id.as_deref() == Some(claim_of(start)))
            {
                ran += 1;
                continue;
            }
            match why_it_never_ran(report, start, &writes) {
                Some(why) => *never_ran.entry(why).or_default() += 1,
                None => problems.push(format!(
                    "{task_id}: the start of claim {} landed at {:?}, and its work never ran ({}){}: {}",
                    claim_of(start),
                    start.upstream_ms,
                    report
                        .delivery_of(start.trace_header.as_deref())
                        .map_or("no delivery of its trace".to_owned(), |d| format!(
                            "its delivery answered {:?}",
                            d.outcome
                        )),
                    if started_unknown(report, start) {
                        ": no answer of the start came back, nor could the record be read after \
                         it, so its delivery gave the event back with the attempt counted, a \
                         case docs/task-protocol.md does not name"
                    } else {
                        ""
                    },
                    report.history(task_id)
                )),
            }
        }
        if let Some((_, Some(finisher))) = report.finisher(task_id)
            && finisher.attempt != recorded
        {
            problems.push(format!(
                "{task_id}: succeeded with attempts {recorded}, finished by attempt {}",
                finisher.attempt
            ));
        }
    }
    verdicts.judge(
        "attempts counts the attempts that started the work",
        format!(
            "{claims} claims landed, {starts} of them started (counted), {releases} released, {idle} neither (their delivery died or ended first); {ran} starts ran the work, the others {never_ran:?}; {} attempts ran",
            report.attempts.values().map(Vec::len).sum::<usize>()
        ),
        problems,
    );
}

/// Whether the start's delivery ended with the start's own failure: every
/// try of it unanswered or failed (one landed), and the read after it failed
/// too (src/tasks/worker.rs, `start`).
fn started_unknown(report: &Report, start: &Call) -> bool {
    report
        .delivery_of(start.trace_header.as_deref())
        .is_some_and(|d| {
            matches!(&d.outcome, Outcome::Error { error_type, message }
                if error_type == "TaskStoreUnavailable" && message.contains("UpdateItem (start)"))
        })
}

/// Why a start that landed never ran its work, when the protocol allows it
/// (see [`attempts_counts_the_attempts_that_started`]); `None` otherwise.
fn why_it_never_ran(report: &Report, start: &Call, writes: &[&Call]) -> Option<&'static str> {
    let delivery = report.delivery_of(start.trace_header.as_deref())?;
    match &delivery.outcome {
        Outcome::Error {
            error_type,
            message,
        } if error_type == "TaskStoreUnavailable" && message.contains(STARTED_TOO_LATE) => {
            Some("answered too late (documented)")
        }
        Outcome::Error {
            error_type,
            message,
        } if error_type == "TaskStoreUnavailable" && message.contains(STARTED_UNKNOWN) => {
            Some("answer lost and the record unreadable until the stop point (documented)")
        }
        Outcome::Error { error_type, .. } if error_type == EXITED || error_type == TIMED_OUT => {
            Some("their process died")
        }
        Outcome::Response(answer) if answer["duplicate"] != true => {
            let landed_ms = start.upstream_ms?;
            let lost = writes.iter().any(|w| {
                w.upstream_ms.is_some_and(|at| at > landed_ms)
                    && (is_give_up(w)
                        || w.update.as_deref().is_some_and(|u| u.contains(":canceled"))
                        || (is_claim(w) && claim_of(w) != claim_of(start)))
            });
            lost.then_some("answered too late, the task no longer theirs (documented)")
        }
        Outcome::Error { .. } | Outcome::Response(_) => None,
    }
}

/// A succeeded task never ran again: an attempt that ran wrote it, no claim
/// landed once that write had, and its `Task completed` line, at most one, is
/// that attempt's (one whose process died, or whose answers were lost, after
/// its write landed logs none).
fn a_succeeded_task_never_ran_again(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let mut silent: BTreeMap<String, usize> = BTreeMap::new();
    let mut succeeded = 0;
    for (task_id, item) in &report.records {
        let completed = report.completed.get(task_id).map_or(0, Vec::len);
        if completed > 1 {
            problems.push(format!("{task_id} logged Task completed {completed} times"));
        }
        if string(item, "status").as_deref() != Some("succeeded") {
            if completed > 0 {
                problems.push(format!(
                    "{task_id} logged Task completed but reads {}",
                    report.status(task_id)
                ));
            }
            continue;
        }
        succeeded += 1;
        let Some((write, finisher)) = report.finisher(task_id) else {
            problems.push(format!(
                "{task_id} reads succeeded, but no attempt's finish landed: {}",
                report.history(task_id)
            ));
            continue;
        };
        let Some(finisher) = finisher else {
            problems.push(format!(
                "{task_id} was finished by an invocation that never started it: {}",
                report.history(task_id)
            ));
            continue;
        };
        for claim in report.claims_after(task_id, write) {
            problems.push(format!(
                "{task_id} was claimed at {} after it succeeded: {}",
                claim.at_ms,
                report.history(task_id)
            ));
        }
        match completed {
            0 => *silent.entry(finisher.last_line.clone()).or_default() += 1,
            _ if finisher.last_line != "Task completed" => problems.push(format!(
                "{task_id}: Task completed logged, but not by attempt {} that finished it",
                finisher.attempt
            )),
            _ => {}
        }
    }
    verdicts.judge(
        "a succeeded task never ran again",
        format!(
            "{succeeded} tasks succeeded, {} logged Task completed (the finishing attempt of the others ended with {silent:?})",
            report.completed.len()
        ),
        problems,
    );
}

/// A canceled task never completed: nothing claimed it once the cancel
/// landed, and an attempt running then stopped within a second.
fn a_canceled_task_never_completed(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let mut stopped = Vec::new();
    let mut canceled_tasks = 0;
    for (task_id, item) in &report.records {
        let canceled = string(item, "status").as_deref() == Some("canceled");
        canceled_tasks += usize::from(canceled);
        if canceled && report.completed.contains_key(task_id) {
            problems.push(format!("{task_id} is canceled but logged Task completed"));
        }
        let Some(cancel) = report.calls.iter().find(|c| {
            c.landed()
                && c.item_id.as_deref() == Some(task_id.as_str())
                && c.update.as_deref().is_some_and(|u| u.contains(":canceled"))
        }) else {
            if canceled {
                problems.push(format!("{task_id} reads canceled, but no cancel landed"));
            }
            continue;
        };
        if !canceled {
            problems.push(format!(
                "{task_id} was canceled, but reads {}",
                report.status(task_id)
            ));
        }
        for claim in report.claims_after(task_id, cancel) {
            problems.push(format!(
                "{task_id} was claimed at {} after its cancel: {}",
                claim.at_ms,
                report.history(task_id)
            ));
        }
        let landed_ms = cancel.upstream_ms.unwrap_or(0);
        for attempt in report.attempts.get(task_id).into_iter().flatten() {
            if attempt.end_ms > landed_ms {
                let took = attempt.end_ms - landed_ms;
                stopped.push(took);
                if took > 1000 + STAMP_SLACK_MS {
                    problems.push(format!(
                        "{task_id}: attempt {} stopped {took} ms after its cancel: {}",
                        attempt.attempt,
                        report.history(task_id)
                    ));
                }
            }
        }
    }
    let deletes = report.sent.iter().filter(|s| s.method == "DELETE").count();
    let answered = report
        .sent
        .iter()
        .filter(|s| s.method == "DELETE" && s.answer.as_ref().is_some_and(|a| a.status == 200))
        .count();
    verdicts.judge(
        "a canceled task never completed",
        format!(
            "{deletes} DELETEs, {answered} answered 200, {canceled_tasks} tasks canceled, {} of them while running (stopped {} ms after the cancel at most)",
            stopped.len(),
            stopped.iter().max().unwrap_or(&0)
        ),
        problems,
    );
}

/// Lambda gave up on it: the task stays failed, and nothing claims it once
/// the destination record's write landed.
fn a_task_lambda_gave_up_on_never_ran_again(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let (mut given_up, mut while_running) = (0, 0);
    for task_id in report.records.keys() {
        let Some(give_up) = report.calls.iter().find(|c| {
            c.landed() && c.item_id.as_deref() == Some(task_id.as_str()) && is_give_up(c)
        }) else {
            continue;
        };
        given_up += 1;
        let landed_ms = give_up.upstream_ms.unwrap_or(0);
        while_running += usize::from(
            report
                .attempts
                .get(task_id)
                .into_iter()
                .flatten()
                .any(|a| a.start_ms < landed_ms && landed_ms < a.end_ms),
        );
        if report.status(task_id) != "failed" {
            problems.push(format!(
                "{task_id} was given up on, but reads {}",
                report.status(task_id)
            ));
        }
        for claim in report.claims_after(task_id, give_up) {
            problems.push(format!(
                "{task_id} was claimed at {} after Lambda gave up on it: {}",
                claim.at_ms,
                report.history(task_id)
            ));
        }
    }
    verdicts.judge(
        "a task Lambda gave up on never ran again",
        format!(
            "{given_up} tasks failed by a destination record ({while_running} while an attempt of another event of theirs ran the work)"
        ),
        problems,
    );
}

/// Every task that has not ended has an event in Lambda's hands (a
/// delivery under way, a retry or its destination record still to come)
/// until a write ends it: else nothing but the backstop would. A delivery
/// ends without an error on a task that has not ended only when the task is
/// no longer its own: canceled, given up on, or held by another delivery (or
/// queued for a retry of another event) whose event Lambda still has, and
/// which ends the task or hands it on in turn. Judged per task over the run:
/// from when Lambda first queued one of its events until the write that
/// ended it landed, some event of it was always in Lambda's hands (a
/// [`Lifeline`]).
fn every_task_not_ended_had_an_event_in_lambdas_hands(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut handed_on = 0;
    for delivery in &report.deliveries {
        let Outcome::Response(answer) = &delivery.outcome else {
            continue;
        };
        let status = answer["status"].as_str().unwrap_or("null");
        *answers.entry(status.to_owned()).or_default() += 1;
        handed_on += usize::from(!is_final(status));
    }
    let mut followed = 0;
    for task_id in report.records.keys() {
        let Some(lives) = report.lifelines.get(task_id) else {
            continue;
        };
        let mut lives: Vec<&Lifeline> = lives.iter().collect();
        lives.sort_by_key(|life| life.queued_ms);
        let Some(first) = lives.first() else {
            continue;
        };
        followed += 1;
        let end_ms = report
            .landed_writes(task_id)
            .into_iter()
            .find(|c| promises::ends_the_task(c))
            .and_then(|c| c.upstream_ms)
            .unwrap_or(u64::MAX);
        // Sweep the events' lives in the order Lambda queued them.
        let mut covered = first.queued_ms;
        let mut last = None;
        let mut gap = None;
        for life in &lives {
            if covered >= end_ms {
                break;
            }
            if life.queued_ms > covered {
                gap = Some((covered, life.queued_ms));
                break;
            }
            let until = life.ended_ms.unwrap_or(u64::MAX);
            if until >= covered {
                (covered, last) = (until, Some(life));
            }
        }
        if gap.is_none() && covered < end_ms {
            gap = Some((covered, end_ms));
        }
        if let Some((from, to)) = gap {
            problems.push(format!(
                "{task_id}: no event of it in Lambda's hands from {from} to {}, and it had not ended (it reads {}; the last event before: {}): {}",
                if to == u64::MAX {
                    "the end of the run".to_owned()
                } else {
                    to.to_string()
                },
                report.status(task_id),
                last.map_or("none".to_owned(), |life| life.to_string()),
                report.history(task_id)
            ));
        }
    }
    verdicts.judge(
        "every task not ended had an event in Lambda's hands",
        format!(
            "{followed} tasks with events followed; deliveries that succeeded, by the status they answered: {answers:?} ({handed_on} left the task to another event's delivery or retry)"
        ),
        problems,
    );
}
