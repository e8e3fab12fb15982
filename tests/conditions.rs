//! Every condition of the task protocol's writes exists twice in
//! `src/tasks/protocol.rs` (`cond`): as the DynamoDB expression the store
//! sends, and as the predicate over a `TaskView` that the protocol and its
//! model evaluate. These tests prove, on dynalite, that the two agree on an
//! exhaustive set of records (every status; enqueued or not; no claim, this
//! claim or another's; no lease, a lease below, at or above now; no creation
//! time, or one below, at or above the cutoff; `answer_by` below, at or above
//! now): a record is written as the store writes it, an `UpdateItem` with the
//! condition (and the attribute names and values the store passes for it)
//! sets a harmless `probe`, and it must land exactly when the predicate
//! holds, `ConditionalCheckFailedException` otherwise.
//!
//! A condition expression can only depend on the attributes it names, so the
//! tests of each condition send one `UpdateItem` per distinct value of those
//! attributes and check the predicate on every record against the answer for
//! its value (a predicate that reads anything else disagrees somewhere).
//! `every_condition_agrees_with_its_predicate_with_an_update_of_every_record`
//! (ignored: about 10,000 updates, over a minute) sends one for every record.
//! That the records are the views the predicates are evaluated on is proved
//! once for all: each read back through `TaskStore::read` is the `TaskView`
//! it was written from.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_api::tasks::TaskStatus;
use async_api::tasks::TaskStore;
use async_api::tasks::protocol::{TaskView, cond};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use support::Fixture;

/// The clock of the write (`:now_ms`), epoch ms.
const NOW_MS: u64 = 1_767_225_600_000;
/// The backstop's cutoff (`:cutoff`): tasks created before it are undeliverable.
const CUTOFF_MS: u64 = NOW_MS - 3_900_000;
/// The claim of the write (`:claim`).
const MINE: &str = "me";
/// Requests in flight at once per test.
const WORKERS: usize = 16;

/// Each condition: its name, the expression the store sends, the predicate
/// the protocol evaluates (at [`NOW_MS`], [`CUTOFF_MS`], claim [`MINE`]).
type Condition = (&'static str, &'static str, fn(&TaskView) -> bool);
const CONDITIONS: [Condition; 8] = [
    ("CLAIM", cond::CLAIM, |v| cond::claim(v, NOW_MS, CUTOFF_MS)),
    ("OWNED", cond::OWNED, |v| cond::owned(v, MINE)),
    ("MARK_ENQUEUED", cond::MARK_ENQUEUED, cond::mark_enqueued),
    ("UNMARKED", cond::UNMARKED, cond::unmarked),
    ("ADOPT", cond::ADOPT, |v| cond::adopt(v, NOW_MS)),
    ("CANCEL", cond::CANCEL, |v| cond::cancel(v, CUTOFF_MS)),
    ("GIVE_UP", cond::GIVE_UP, cond::give_up),
    ("UNSTARTED", cond::UNSTARTED, |v| cond::unstarted(v, MINE)),
];

const STATUSES: [TaskStatus; 5] = [
    TaskStatus::Queued,
    TaskStatus::Running,
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::Canceled,
];

/// Every combination of what the conditions look at: 5 statuses x enqueued
/// x 3 claims x 4 leases x 4 creation times x 3 `answer_by`s = 1,440
/// records. `attempts` and `retry_at`, which no condition reads, vary with
/// the record's number so that the round trip sees them too.
fn every_view() -> Vec<TaskView> {
    let mut views = Vec::new();
    for status in STATUSES {
        for enqueued in [false, true] {
            for claim_id in [None, Some(MINE), Some("other")] {
                for lease_until in [None, Some(NOW_MS - 1), Some(NOW_MS), Some(NOW_MS + 1)] {
                    for created_ms in [0, CUTOFF_MS - 1, CUTOFF_MS, CUTOFF_MS + 1] {
                        for answer_by in [NOW_MS - 1, NOW_MS, NOW_MS + 1] {
                            let n = views.len();
                            // Claims started before: none, this one, another.
                            let started_claims = match n % 3 {
                                0 => Vec::new(),
                                1 => vec![MINE.to_owned()],
                                _ => vec!["other".to_owned()],
                            };
                            views.push(TaskView {
                                status,
                                enqueued,
                                claim_id: claim_id.map(str::to_owned),
                                lease_until,
                                attempts: (n % 4) as u32,
                                answer_by,
                                created_ms,
                                retry_at: (n % 3 == 0).then_some(NOW_MS + 60_000),
                                started_claims,
                            });
                        }
                    }
                }
            }
        }
    }
    views
}

/// Every record of [`every_view`], each under its own task id.
fn every_record() -> Vec<(String, TaskView)> {
    every_view()
        .into_iter()
        .enumerate()
        .map(|(n, view)| (format!("record-{n:04}"), view))
        .collect()
}

/// The item of `view` as the store writes it (`put_queued`, the claim, the
/// finish): absent `claim_id`, `lease_until`, `retry_at` when `None`, absent
/// `created_ms` when 0 (a record from before it was written).
fn item_of(task_id: &str, view: &TaskView) -> HashMap<String, AttributeValue> {
    let n = |value: u64| AttributeValue::N(value.to_string());
    let s = |value: &str| AttributeValue::S(value.to_owned());
    let mut item = HashMap::from([
        ("task_id".to_owned(), s(task_id)),
        ("status".to_owned(), view.status.attribute()),
        ("created_at".to_owned(), s("2026-01-01T00:00:00Z")),
        ("updated_at".to_owned(), s("2026-01-01T00:00:00Z")),
        ("attempts".to_owned(), n(u64::from(view.attempts))),
        ("enqueued".to_owned(), AttributeValue::Bool(view.enqueued)),
        ("answer_by".to_owned(), n(view.answer_by)),
        ("expires_at".to_owned(), n(NOW_MS / 1000 + 7 * 24 * 3600)),
    ]);
    if let Some(claim_id) = &view.claim_id {
        item.insert("claim_id".to_owned(), s(claim_id));
    }
    if let Some(lease_until) = view.lease_until {
        item.insert("lease_until".to_owned(), n(lease_until));
    }
    if view.created_ms != 0 {
        item.insert("created_ms".to_owned(), n(view.created_ms));
    }
    if let Some(retry_at) = view.retry_at {
        item.insert("retry_at".to_owned(), n(retry_at));
    }
    if !view.started_claims.is_empty() {
        item.insert(
            "started_claims".to_owned(),
            AttributeValue::Ss(view.started_claims.clone()),
        );
    }
    item
}

/// Every attribute [`item_of`] may write.
const ATTRIBUTES: [&str; 13] = [
    "task_id",
    "status",
    "created_at",
    "updated_at",
    "attempts",
    "enqueued",
    "answer_by",
    "expires_at",
    "claim_id",
    "lease_until",
    "created_ms",
    "retry_at",
    "started_claims",
];
/// The words of condition expressions that name no attribute.
const KEYWORDS: [&str; 5] = ["AND", "OR", "NOT", "IN", "contains"];
/// The attribute names the store passes (`#name` -> name).
const NAMES: [(&str, &str); 1] = [("#status", "status")];

/// Every expression attribute value the store passes with a condition
/// (`src/tasks/store.rs`, `src/tasks/claims.rs`), with this test's clock,
/// cutoff and claim.
fn store_values() -> [(&'static str, AttributeValue); 7] {
    [
        (":queued", TaskStatus::Queued.attribute()),
        (":running", TaskStatus::Running.attribute()),
        (":true", AttributeValue::Bool(true)),
        (":false", AttributeValue::Bool(false)),
        (":now_ms", AttributeValue::N(NOW_MS.to_string())),
        (":cutoff", AttributeValue::N(CUTOFF_MS.to_string())),
        (":claim", AttributeValue::S(MINE.to_owned())),
    ]
}

/// The words of an expression: its `#name`s, `:value`s, attribute names and
/// keywords.
fn words(expression: &str) -> BTreeSet<&str> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '#'))
        .filter(|word| !word.is_empty())
        .collect()
}

/// The attributes `expression` reads. Panics on a word that is neither a
/// keyword, a placeholder the store passes, nor an attribute a record may
/// have, so that no attribute it reads is missed.
fn attributes_read(name: &str, expression: &str) -> BTreeSet<&'static str> {
    let mut read = BTreeSet::new();
    for word in words(expression) {
        if KEYWORDS.contains(&word) || word.starts_with(':') {
            continue;
        }
        let attribute = NAMES
            .iter()
            .find(|(placeholder, _)| *placeholder == word)
            .map(|(_, attribute)| *attribute)
            .or_else(|| ATTRIBUTES.iter().copied().find(|a| *a == word))
            .unwrap_or_else(|| panic!("{name}: {word:?} in {expression:?} is no known attribute"));
        read.insert(attribute);
    }
    read
}

/// Which records a check sends an `UpdateItem` for.
#[derive(Clone, Copy, PartialEq)]
enum Sweep {
    /// One per distinct value of the attributes the expression reads; every
    /// other record takes that one's answer.
    OnePerValueRead,
    /// Every record.
    EveryRecord,
}

/// What one condition came to over every record.
struct Tally {
    /// Records whose answer was compared with the predicate.
    records: usize,
    /// `UpdateItem`s sent.
    sent: usize,
    /// Records whose update landed (or whose value's did).
    landed: usize,
    /// Records on which the expression and the predicate disagree.
    disagreements: Vec<String>,
}

/// Sends `expression` as the condition of a `SET probe` on the records
/// `sweep` says, each written first as the store writes it, and compares
/// what DynamoDB did with `predicate` on every record.
async fn check((name, expression, predicate): Condition, sweep: Sweep) -> Tally {
    let records = every_record();
    let read = attributes_read(name, expression);
    // For each record, the record whose update answers for it.
    let mut first_of_value = BTreeMap::new();
    let answered_by: Vec<usize> = records
        .iter()
        .enumerate()
        .map(|(n, (task_id, view))| match sweep {
            Sweep::EveryRecord => n,
            Sweep::OnePerValueRead => {
                let item = item_of(task_id, view);
                let value: Vec<String> = read
                    .iter()
                    .map(|attribute| format!("{:?}", item.get(*attribute)))
                    .collect();
                *first_of_value.entry(value).or_insert(n)
            }
        })
        .collect();
    let sent: BTreeSet<usize> = answered_by.iter().copied().collect();

    let fixture = Fixture::new(&support::dead_endpoint()).await;
    fixture
        .put_items(
            &fixture.tasks_table,
            sent.iter()
                .map(|&n| item_of(&records[n].0, &records[n].1))
                .collect(),
        )
        .await;

    let used = words(expression);
    let values: Vec<(&str, AttributeValue)> = store_values()
        .into_iter()
        .filter(|(placeholder, _)| used.contains(placeholder))
        .collect();
    let names: Vec<(&str, &str)> = NAMES
        .into_iter()
        .filter(|(placeholder, _)| used.contains(placeholder))
        .collect();
    let placeholders: BTreeSet<&str> = used
        .iter()
        .copied()
        .filter(|word| word.starts_with(':') || word.starts_with('#'))
        .collect();
    let passed: BTreeSet<&str> = values
        .iter()
        .map(|(placeholder, _)| *placeholder)
        .chain(names.iter().map(|(placeholder, _)| *placeholder))
        .collect();
    assert_eq!(
        placeholders, passed,
        "{name}: the store passes no value for some placeholder of {expression:?}"
    );

    let mut workers = tokio::task::JoinSet::new();
    let sent_ids: Vec<(usize, String)> = sent.iter().map(|&n| (n, records[n].0.clone())).collect();
    for worker in 0..WORKERS {
        let share: Vec<(usize, String)> = sent_ids
            .iter()
            .skip(worker)
            .step_by(WORKERS)
            .cloned()
            .collect();
        let dynamodb = fixture.dynamodb.clone();
        let table = fixture.tasks_table.clone();
        let (values, names) = (values.clone(), names.clone());
        workers.spawn(async move {
            let mut answers = Vec::new();
            for (n, task_id) in share {
                let mut update = dynamodb
                    .update_item()
                    .table_name(&table)
                    .key("task_id", AttributeValue::S(task_id.clone()))
                    .update_expression("SET probe = :probe")
                    .condition_expression(expression)
                    .expression_attribute_values(":probe", AttributeValue::S(task_id.clone()));
                for (placeholder, attribute) in &names {
                    update = update.expression_attribute_names(*placeholder, *attribute);
                }
                for (placeholder, value) in &values {
                    update = update.expression_attribute_values(*placeholder, value.clone());
                }
                let landed = match update.send().await {
                    Ok(_) => true,
                    Err(err)
                        if err.as_service_error().is_some_and(
                            UpdateItemError::is_conditional_check_failed_exception,
                        ) =>
                    {
                        false
                    }
                    Err(err) => panic!("{name}: UpdateItem {task_id}: {err:?}"),
                };
                answers.push((n, landed));
            }
            answers
        });
    }
    let mut landed_by = HashMap::new();
    while let Some(answers) = workers.join_next().await {
        landed_by.extend(answers.expect("worker"));
    }

    let mut tally = Tally {
        records: 0,
        sent: landed_by.len(),
        landed: 0,
        disagreements: Vec::new(),
    };
    for ((_, view), by) in records.iter().zip(&answered_by) {
        let landed = landed_by[by];
        let holds = predicate(view);
        tally.records += 1;
        tally.landed += usize::from(landed);
        if landed != holds {
            tally.disagreements.push(format!(
                "{view:?}: the expression {} (record-{by:04}), the predicate says {holds}",
                if landed { "landed" } else { "was refused" },
            ));
        }
    }
    println!(
        "{name}: {} records checked with {} UpdateItems (reading {read:?}): {} landed, {} refused, {} disagreements",
        tally.records,
        tally.sent,
        tally.landed,
        tally.records - tally.landed,
        tally.disagreements.len()
    );
    assert_agree(name, expression, &tally);
    tally
}

/// The tally's verdict: every record checked, both answers seen (so the
/// check is not vacuous), no disagreement.
fn assert_agree(name: &str, expression: &str, tally: &Tally) {
    assert_eq!(tally.records, every_view().len(), "{name}: records checked");
    assert!(
        tally.disagreements.is_empty(),
        "{name} ({expression}): the expression and the predicate disagree on {} of {} records:\n{}",
        tally.disagreements.len(),
        tally.records,
        tally.disagreements.join("\n")
    );
    assert!(
        tally.landed > 0 && tally.landed < tally.records,
        "{name}: some records must pass and some fail ({} of {} landed)",
        tally.landed,
        tally.records
    );
}

#[tokio::test]
async fn every_record_reads_back_through_the_store_as_the_view_it_was_written_from() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    let records = every_record();
    fixture
        .put_items(
            &fixture.tasks_table,
            records.iter().map(|(id, view)| item_of(id, view)).collect(),
        )
        .await;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let share: Vec<(String, TaskView)> = records
            .iter()
            .skip(worker)
            .step_by(WORKERS)
            .cloned()
            .collect();
        let dynamodb = fixture.dynamodb.clone();
        let table = fixture.tasks_table.clone();
        workers.spawn(async move {
            let store = TaskStore {
                dynamodb: &dynamodb,
                table: &table,
            };
            let mut differences = Vec::new();
            for (task_id, view) in &share {
                let read = store
                    .read(task_id)
                    .await
                    .unwrap_or_else(|err| panic!("read {task_id}: {}", err.summary("GetItem")))
                    .unwrap_or_else(|| panic!("{task_id} is gone"))
                    .view;
                if read != *view {
                    differences.push(format!("wrote {view:?}, read {read:?}"));
                }
            }
            (share.len(), differences)
        });
    }
    let (mut checked, mut differences) = (0, Vec::new());
    while let Some(share) = workers.join_next().await {
        let (count, found) = share.expect("worker");
        checked += count;
        differences.extend(found);
    }
    println!(
        "round trip: {checked} records read back, {} differ",
        differences.len()
    );
    assert_eq!(checked, records.len());
    assert!(
        differences.is_empty(),
        "{} records read back differently:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[tokio::test]
async fn the_claim_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[0], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (160, 135));
}

#[tokio::test]
async fn the_owned_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[1], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (15, 96));
}

#[tokio::test]
async fn the_mark_enqueued_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[2], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (5, 288));
}

#[tokio::test]
async fn the_unmarked_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[3], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (10, 144));
}

#[tokio::test]
async fn the_adopt_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[4], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (30, 48));
}

#[tokio::test]
async fn the_cancel_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[5], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (20, 432));
}

#[tokio::test]
async fn the_start_and_release_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[7], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (45, 64));
}

#[tokio::test]
async fn the_give_up_expression_and_predicate_agree_on_every_record() {
    let tally = check(CONDITIONS[6], Sweep::OnePerValueRead).await;
    assert_eq!((tally.sent, tally.landed), (5, 576));
}

#[tokio::test]
#[ignore = "about 10,000 UpdateItems: over a minute on dynalite"]
async fn every_condition_agrees_with_its_predicate_with_an_update_of_every_record() {
    for condition in CONDITIONS {
        let tally = check(condition, Sweep::EveryRecord).await;
        assert_eq!(tally.sent, every_view().len());
    }
}
