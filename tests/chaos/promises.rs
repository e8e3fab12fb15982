//! What a chaos run's callers are promised (tests/chaos.rs): a final status
//! never changes, nor does the ended task; a caller told 5xx has no task
//! that starts; one Idempotency-Key, one task; a task fails only for a reason
//! the contract names. Judged as tests/chaos/invariants.rs judges the work's.

use std::collections::{BTreeMap, BTreeSet};

use async_api::tasks::store::{ABANDONED, NOT_ENQUEUED};

use crate::fault_proxy::Call;
use crate::invariants::Verdicts;
use crate::report::{Report, is_final, is_finish, number, string, task_of};
use crate::support::runtime_api::Outcome;
use crate::world::{Poll, Sent};

/// Lambda's retries of a failed event (`TASK_MAX_RETRY_ATTEMPTS`'s default):
/// an attempt numbered above it that fails is final.
const MAX_RETRIES: u64 = 2;

/// Whether a landed write made its task final.
pub fn ends_the_task(call: &Call) -> bool {
    let Some(update) = call.update.as_deref() else {
        return false;
    };
    (is_finish(call) && call.values[":done"]["S"] != "queued")
        || update.contains(":canceled")
        || update.contains("#status = :failed")
}

/// Each task's polls in the order sent (one poller a task: each answered
/// before the next is sent).
fn polls_by_task(report: &Report) -> BTreeMap<&str, Vec<&Poll>> {
    let mut by_task: BTreeMap<&str, Vec<&Poll>> = BTreeMap::new();
    for poll in &report.polls {
        by_task.entry(&poll.task_id).or_default().push(poll);
    }
    for polls in by_task.values_mut() {
        polls.sort_by_key(|p| p.sent_ms);
    }
    by_task
}

/// For each task that ended by a write: that write, and every write that
/// landed on the task after it had.
fn writes_after_the_end(report: &Report) -> Vec<(&str, &Call, Vec<&Call>)> {
    let mut ended = Vec::new();
    for task_id in report.records.keys() {
        let writes: Vec<&Call> = report
            .calls
            .iter()
            .filter(|c| {
                c.item_id.as_deref() == Some(task_id.as_str())
                    && c.operation != "GetItem"
                    && c.landed()
            })
            .collect();
        let Some(end) = writes.iter().copied().find(|c| ends_the_task(c)) else {
            continue;
        };
        let landed_ms = end.upstream_ms.unwrap_or(u64::MAX);
        let later = writes
            .into_iter()
            .filter(|c| c.forwarded_ms.is_some_and(|at| at > landed_ms))
            .collect();
        ended.push((task_id.as_str(), end, later));
    }
    ended
}

/// `succeeded`, `failed` and `canceled` are final: a poller that read one
/// never reads another status afterwards, a task's last reading is its
/// record, and no write that sets a status lands once one ended the task.
/// `Retry-After` comes with, and only with, a status that has not ended.
pub fn a_final_status_never_changes(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let by_task = polls_by_task(report);
    let (mut after_final, mut waiting) = (0, 0);
    for (task_id, polls) in &by_task {
        let mut first_final: Option<&Poll> = None;
        for poll in polls {
            if poll.retry_after.is_some() == is_final(&poll.status) {
                problems.push(format!(
                    "{task_id} read {} with Retry-After {:?}",
                    poll.status, poll.retry_after
                ));
            }
            if poll.status == "queued" && !poll.error.is_null() {
                waiting += 1;
            }
            match first_final {
                Some(first) => {
                    after_final += 1;
                    if poll.status != first.status {
                        problems.push(format!(
                            "{task_id} read {} at {}, then {} at {}: {}",
                            first.status,
                            first.answered_ms,
                            poll.status,
                            poll.sent_ms,
                            report.history(task_id)
                        ));
                    }
                }
                None if is_final(&poll.status) => first_final = Some(poll),
                None => {}
            }
        }
        if let Some(first) = first_final
            && first.status != report.status(task_id)
        {
            problems.push(format!(
                "{task_id} read {}, and its record says {}",
                first.status,
                report.status(task_id)
            ));
        }
    }
    let ended = writes_after_the_end(report);
    for (task_id, end, later) in &ended {
        for write in later
            .iter()
            .filter(|c| c.update.as_deref().is_some_and(|u| u.contains("#status")))
        {
            problems.push(format!(
                "{task_id}: {:?} landed at {:?} after {:?} ended it: {}",
                write.update,
                write.upstream_ms,
                end.update,
                report.history(task_id)
            ));
        }
    }
    verdicts.judge(
        "a final status never changes",
        format!(
            "{} polls of {} tasks ({after_final} after a final status, {waiting} of a task queued with its last attempt's error); {} tasks ended by a write, no status written after",
            report.polls.len(),
            by_task.len(),
            ended.len()
        ),
        problems,
    );
}

/// Nor does anything else of a task once it has ended: a poller reads the
/// same attempts and error, and no write lands on it at all.
pub fn an_ended_task_is_never_written_again(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    for (task_id, polls) in &polls_by_task(report) {
        let Some(end) = polls.iter().position(|p| is_final(&p.status)) else {
            continue;
        };
        let first = polls[end];
        for poll in &polls[end + 1..] {
            if (poll.attempts, &poll.error) != (first.attempts, &first.error) {
                problems.push(format!(
                    "{task_id} read {} (attempts {}, error {}) at {}, then attempts {}, error {} at {}",
                    first.status,
                    first.attempts,
                    first.error,
                    first.answered_ms,
                    poll.attempts,
                    poll.error,
                    poll.sent_ms
                ));
            }
        }
    }
    let ended = writes_after_the_end(report);
    let mut written = 0;
    for (task_id, end, later) in &ended {
        written += usize::from(!later.is_empty());
        for write in later {
            problems.push(format!(
                "{task_id}: {:?} {} landed at {:?} after {:?} ended it: {}",
                write.update,
                write.values,
                write.upstream_ms,
                end.update,
                report.history(task_id)
            ));
        }
    }
    verdicts.judge(
        "an ended task is never written again",
        format!(
            "{} tasks ended by a write, {written} written after",
            ended.len()
        ),
        problems,
    );
}

/// A caller told 5xx has no task that starts: no task its request wrote, or
/// sent an event for, ever logs `task started`.
pub fn a_caller_told_5xx_has_no_task_that_starts(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let told: Vec<&Sent> = report
        .sent
        .iter()
        .filter(|s| s.method == "POST" && s.answer.as_ref().is_some_and(|a| a.status >= 500))
        .collect();
    let mut tasks = 0;
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for post in &told {
        for task_id in report
            .tasks_of_request
            .get(&post.request_id)
            .into_iter()
            .flatten()
        {
            tasks += 1;
            *statuses.entry(report.status(task_id)).or_default() += 1;
            if let Some(list) = report.attempts.get(task_id) {
                problems.push(format!(
                    "{task_id}: its POST got {}, and it started {} times: {}",
                    post.answer.as_ref().map_or(0, |a| a.status),
                    list.len(),
                    report.history(task_id)
                ));
            }
        }
    }
    verdicts.judge(
        "a caller told 5xx has no task that starts",
        format!(
            "{} POSTs answered 5xx, {tasks} tasks they wrote or sent an event for, now {statuses:?}",
            told.len()
        ),
        problems,
    );
}

/// Per Idempotency-Key, at most one task starts, and every 202 names it.
pub fn one_task_per_idempotency_key(report: &Report, verdicts: &mut Verdicts) {
    let mut problems = Vec::new();
    let mut keys: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
    for s in report.sent.iter().filter(|s| s.method == "POST") {
        if let Some(key) = &s.key {
            keys.entry(key).or_default().push(s);
        }
    }
    let (mut replays, mut conflicts, mut reused, mut others) = (0, 0, 0, 0);
    for (key, posts) in &keys {
        let answered: BTreeSet<&str> = posts
            .iter()
            .filter_map(|p| p.answer.as_ref())
            .filter(|a| a.status == 202)
            .filter_map(|a| a.body["task_id"].as_str())
            .collect();
        for answer in posts.iter().filter_map(|p| p.answer.as_ref()) {
            match answer.status {
                202 if answer.header("idempotent-replayed") == Some("true") => replays += 1,
                409 => conflicts += 1,
                422 => reused += 1,
                _ => {}
            }
        }
        let tasks: BTreeSet<&String> = posts
            .iter()
            .filter_map(|p| report.tasks_of_request.get(&p.request_id))
            .flatten()
            .collect();
        let started: Vec<&&String> = tasks
            .iter()
            .filter(|t| report.attempts.contains_key(t.as_str()))
            .collect();
        if started.len() > 1 {
            problems.push(format!(
                "key {key}: tasks {started:?} all started: {}",
                key_history(report, key, posts, &tasks)
            ));
        } else if let Some(task) = started.first()
            && !answered.is_empty()
            && !answered.contains(task.as_str())
        {
            problems.push(format!(
                "key {key}: {task} started, but the key answered {answered:?}: {}",
                key_history(report, key, posts, &tasks)
            ));
        } else if answered.len() > 1 {
            problems.push(format!(
                "key {key} answered 202 with tasks {answered:?}: {}",
                key_history(report, key, posts, &tasks)
            ));
        }
        others += tasks.len().saturating_sub(1);
    }
    verdicts.judge(
        "one task per Idempotency-Key",
        format!(
            "{} keys, {} POSTs with a key, {replays} replays, {conflicts} 409s, {reused} 422s, {others} tasks written besides each key's first, none started",
            keys.len(),
            keys.values().map(Vec::len).sum::<usize>()
        ),
        problems,
    );
}

/// What a key's requests got, every call on its record, and the history of
/// each task they wrote, for a broken invariant's report.
fn key_history(report: &Report, key: &str, posts: &[&Sent], tasks: &BTreeSet<&String>) -> String {
    let mut lines = vec![String::new()];
    for post in posts {
        lines.push(format!(
            "    POST {} (trace {}) {}..{}: {}",
            post.request_id,
            post.trace_id,
            post.sent_ms,
            post.answered_ms,
            post.answer
                .as_ref()
                .map_or("no answer".to_owned(), |a| format!(
                    "{} {} {:?}",
                    a.status,
                    a.body,
                    a.header("idempotent-replayed")
                )),
        ));
    }
    let record = format!("#{key}");
    for call in report.calls.iter().filter(|c| {
        c.item_id
            .as_deref()
            .is_some_and(|id| id.starts_with("idempotency-key#") && id.ends_with(&record))
    }) {
        lines.push(format!(
            "    {} {} {:?} {} {} fault {:?} -> {:?} at {:?} (trace {})",
            call.at_ms,
            call.operation,
            call.update.as_deref().unwrap_or(""),
            call.values,
            call.item,
            call.fault,
            call.upstream_status,
            call.upstream_ms,
            call.trace_header.as_deref().unwrap_or("-")
        ));
    }
    for task in tasks {
        lines.push(format!("  task {task}:{}", report.history(task)));
    }
    lines.join("\n")
}

/// `failed` only when the task will not run again: its request could not
/// enqueue it, or ended before it could (abandoned), Lambda gave up on its
/// event, or its last attempt failed (the run's work fails only its first
/// two attempts, so none does). Each delivery that ended without an error
/// and without running the task answered a final status.
pub fn a_failed_task_failed_for_a_reason_the_contract_names(
    report: &Report,
    verdicts: &mut Verdicts,
) {
    let mut problems = Vec::new();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for (task_id, item) in &report.records {
        if string(item, "status").as_deref() != Some("failed") {
            continue;
        }
        let error = string(item, "error").unwrap_or_default();
        let reason = match error.as_str() {
            NOT_ENQUEUED => "not enqueued",
            ABANDONED => "abandoned",
            e if e.starts_with("RetriesExhausted: ") => "RetriesExhausted",
            e if e.starts_with("EventAgeExceeded: ") => "EventAgeExceeded",
            _ if number(item, "attempts") > MAX_RETRIES => "its last attempt failed",
            _ => {
                problems.push(format!(
                    "{task_id} failed with {error:?} after {} attempts: {}",
                    number(item, "attempts"),
                    report.history(task_id)
                ));
                continue;
            }
        };
        *reasons.entry(reason).or_default() += 1;
    }
    let mut duplicates = 0;
    for delivery in &report.deliveries {
        let Outcome::Response(answer) = &delivery.outcome else {
            continue;
        };
        if answer["duplicate"] == true {
            duplicates += 1;
            if !answer["status"].as_str().is_some_and(is_final) {
                problems.push(format!(
                    "{}: a duplicate delivery answered {answer} while the task had not ended: {}",
                    task_of(delivery),
                    report.history(&task_of(delivery))
                ));
            }
        }
    }
    verdicts.judge(
        "a failed task failed for a reason the contract names",
        format!(
            "{reasons:?}; {duplicates} deliveries answered duplicate, each with a final status"
        ),
        problems,
    );
}
