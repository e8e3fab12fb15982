//! The invariants a chaos run must keep (tests/chaos.rs), each judged on its
//! [`Report`] and printed with its counts, `ok` or `FAILED` with the broken
//! cases and their history (every DynamoDB call about the task, its attempts
//! and what each delivery answered). Here those of the work: every task ends,
//! one attempt at a time inside its lease, counted, never run again once it
//! ended; what callers are promised is in tests/chaos/promises.rs.

use std::collections::{BTreeMap, BTreeSet};

use async_api::tasks::record::NEVER_DELIVERED;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::fault_proxy::Call;
use crate::promises;
use crate::report::{Report, is_claim, is_final, is_give_up, number, string, task_of};
use crate::support::runtime_api::Outcome;

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
    a_delivery_that_succeeded_left_its_task_ended(report, &mut verdicts);
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
            "{} tasks {by_status:?}; {backstopped} that no event could run read failed past the backstop (waited {} s)",
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
                leases.renewals += landed.iter().filter(|c| !is_claim(c)).count();
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
                        !is_claim(c) && c.at_ms + 200 > until && c.at_ms <= attempt.end_ms
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

/// `attempts` is the number of attempts that started the work: the task's
/// `task started` lines, each numbered once, the finisher's number the last.
fn attempts_counts_the_attempts_that_started(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let mut landed_claims: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for call in report.calls.iter().filter(|c| c.landed() && is_claim(c)) {
        if let (Some(id), Some(claim)) = (&call.item_id, call.values[":claim"]["S"].as_str()) {
            landed_claims.entry(id).or_default().insert(claim);
        }
    }
    let released: BTreeSet<&str> = report
        .calls
        .iter()
        .filter(|c| {
            c.landed()
                && c.update
                    .as_deref()
                    .is_some_and(|u| u.contains("attempts = attempts - :one"))
        })
        .filter_map(|c| c.values[":claim"]["S"].as_str())
        .collect();
    let mut unstarted = 0;
    for (task_id, item) in &report.records {
        let recorded = number(item, "attempts");
        let started: Vec<u64> = report
            .attempts
            .get(task_id)
            .map(|l| l.iter().map(|a| a.attempt).collect())
            .unwrap_or_default();
        let distinct: BTreeSet<u64> = started.iter().copied().collect();
        if recorded != started.len() as u64
            || distinct.len() != started.len()
            || started.iter().any(|&a| a == 0 || a > recorded)
        {
            // The claims that landed and started nothing, nor were released.
            let ran: BTreeSet<&str> = report
                .attempts
                .get(task_id)
                .into_iter()
                .flatten()
                .filter_map(|a| a.claim_id.as_deref())
                .collect();
            let idle: Vec<&&str> = landed_claims
                .get(task_id.as_str())
                .into_iter()
                .flatten()
                .filter(|c| !ran.contains(**c) && !released.contains(**c))
                .collect();
            unstarted += idle.len();
            problems.push(format!(
                "{task_id}: attempts {recorded}, but attempts {started:?} started; claims counted without starting the work: {idle:?}: {}",
                report.history(task_id)
            ));
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
            "{} claims landed, {} released, {} attempts started ({unstarted} claims counted that started nothing)",
            landed_claims.values().map(BTreeSet::len).sum::<usize>(),
            released.len(),
            report.attempts.values().map(Vec::len).sum::<usize>()
        ),
        problems,
    );
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

/// A delivery that ended without an error left its task ended (or could not
/// read it: `status` null). It never answers success for a task another
/// attempt still holds, nor for one that waits for a retry: that would leave
/// the task to an attempt that may yet die, with no event of this delivery's
/// behind it.
fn a_delivery_that_succeeded_left_its_task_ended(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for delivery in &report.deliveries {
        let Outcome::Response(answer) = &delivery.outcome else {
            continue;
        };
        let status = answer["status"].as_str().unwrap_or("null");
        *answers.entry(status.to_owned()).or_default() += 1;
        if status != "null" && !is_final(status) {
            let task_id = task_of(delivery);
            problems.push(format!(
                "{task_id}: delivery {} succeeded with {answer}: {}",
                delivery.request_id,
                report.history(&task_id)
            ));
        }
    }
    verdicts.judge(
        "a delivery that succeeded left its task ended",
        format!("deliveries that succeeded, by the status they answered: {answers:?}"),
        problems,
    );
}
