//! `Idempotency-Key` on `POST /async` (after the IETF httpapi draft): a client
//! that retries after a lost answer gets the first answer again, not a second
//! task.
//!
//! Keys are the caller's own ([`scoped`]): each is a record in the tasks table
//! under `idempotency-key#<caller>#<key>`, which no task id (a UUID) can take, and expires through the same TTL a day
//! later. A request *reserves* its key with a conditional write that also
//! names the key's task before that task is recorded: one key, one task. The
//! reservation becomes the answer once the task is enqueued, or is released
//! when the task can never run (a 503), so that a retry is handled afresh. A
//! reservation whose request died or outlived [`RESERVATION_HOLD`] is taken
//! over by a retry, which carries on with the same task
//! ([`super::protocol::adopt`]).

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::HeaderMap;
use uuid::Uuid;

use super::protocol::{self, KeyNext, KeyState, KeyView, Wrote};
use super::store::{TaskStore, epoch_millis, is_condition_failure, wrote};
use crate::caller::Caller;
use crate::error::{ApiError, sdk_summary};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// How long a key is remembered.
const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a reservation holds while its request is handled: longer than
/// any request can take (API Gateway gives up after 30 s).
const RESERVATION_HOLD: Duration = Duration::from_secs(30);

/// The key of a request, if it sent one. A key is 1 to 255 visible ASCII
/// characters (`!` to `~`); the draft's quoted form `"key"` is the same key.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("Send one Idempotency-Key header, not several".to_owned());
    }
    let raw = value.as_bytes();
    let key = match raw {
        [b'"', inner @ .., b'"'] => inner,
        _ => raw,
    };
    if (1..=255).contains(&key.len()) && key.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(Some(String::from_utf8_lossy(key).into_owned()))
    } else {
        Err("Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned())
    }
}

/// `key` as the key records know it: in the space of `caller`
/// ([`Caller::scope`]: two callers' equal keys are two keys; every anonymous
/// caller shares one space). A scope ends where it must (`anonymous`, or an
/// owner key whose identity is JSON), so no key of one scope is another's.
pub fn scoped(caller: &Caller, key: &str) -> String {
    format!("{}#{key}", caller.scope())
}

/// The first answer to a key, as a replay repeats it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub task_id: String,
    pub status_url: String,
}

/// What reserving a key came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// This request holds the key, as `reservation`, for the key's task
    /// `task_id`: handle it, then [`KeyStore::answer`] (or
    /// [`KeyStore::release`] when the task can never run). `adopted`: the
    /// task was the key's before (taken over from a request that outlived its
    /// hold, or died): it may exist, and its event may have left.
    Ours {
        reservation: String,
        task_id: String,
        adopted: bool,
    },
    /// The key's first request is still being handled.
    InProgress,
    /// The key was first sent with another request.
    Reused,
    /// The key's first request was answered.
    Answered(Answer),
}

/// How many times a request tries to reserve a key that keeps changing hands.
const RESERVE_TRIES: usize = 3;

/// The key records, in the tasks table.
#[derive(Clone, Copy)]
pub struct KeyStore<'a>(pub TaskStore<'a>);

impl KeyStore<'_> {
    /// Reserves `key` for a request whose normalised body is `request`, with
    /// `task_id` as its task if the key is new. DynamoDB failing is a 503.
    pub async fn reserve(
        self,
        key: &str,
        request: &str,
        task_id: &str,
    ) -> Result<Reservation, ApiError> {
        let reservation = Uuid::new_v4().to_string();
        for _ in 0..RESERVE_TRIES {
            let now_ms = epoch_millis();
            let reserved = self
                .0
                .dynamodb
                .put_item()
                .table_name(self.0.table)
                .item("task_id", record_id(key))
                .item("key_state", AttributeValue::S("in_progress".to_owned()))
                .item("request", AttributeValue::S(request.to_owned()))
                .item("reservation", AttributeValue::S(reservation.clone()))
                .item("key_task_id", AttributeValue::S(task_id.to_owned()))
                .item("hold_until", AttributeValue::N(hold_from(now_ms)))
                .item(
                    "expires_at",
                    AttributeValue::N((now_ms / 1000 + KEY_TTL.as_secs()).to_string()),
                )
                .condition_expression(
                    "attribute_not_exists(task_id) OR key_state = :released OR expires_at < :now_s",
                )
                .expression_attribute_values(":released", AttributeValue::S("released".to_owned()))
                .expression_attribute_values(
                    ":now_s",
                    AttributeValue::N((now_ms / 1000).to_string()),
                )
                .send()
                .await;
            match reserved {
                Ok(_) => {
                    return Ok(Reservation::Ours {
                        reservation,
                        task_id: task_id.to_owned(),
                        adopted: false,
                    });
                }
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(PutItemError::is_conditional_check_failed_exception) => {}
                Err(err) => return Err(unavailable("PutItem idempotency key", &err)),
            }
            let (view, status_url) = self.read(key).await?.unzip();
            let next = protocol::after_key_read(
                view.as_ref(),
                request,
                &reservation,
                task_id,
                epoch_millis(),
            );
            match next {
                KeyNext::Ours {
                    task_id: key_task,
                    adopted,
                } => {
                    return Ok(Reservation::Ours {
                        reservation,
                        task_id: key_task,
                        adopted,
                    });
                }
                KeyNext::Reserve => continue,
                KeyNext::TakeOver {
                    reservation: held_by,
                    task_id,
                } => {
                    if self.take_over(key, &held_by, &reservation).await? {
                        return Ok(Reservation::Ours {
                            reservation,
                            task_id,
                            adopted: true,
                        });
                    }
                }
                KeyNext::Replay { task_id } => {
                    return Ok(Reservation::Answered(Answer {
                        status_url: status_url
                            .filter(|url| !url.is_empty())
                            .unwrap_or_else(|| format!("/tasks/{task_id}")),
                        task_id,
                    }));
                }
                KeyNext::Reused => return Ok(Reservation::Reused),
                KeyNext::InProgress => return Ok(Reservation::InProgress),
            }
        }
        Ok(Reservation::InProgress)
    }

    /// The key record and its answer's status URL, `None` if there is none.
    async fn read(self, key: &str) -> Result<Option<(KeyView, String)>, ApiError> {
        let item = self
            .0
            .dynamodb
            .get_item()
            .table_name(self.0.table)
            .key("task_id", record_id(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem idempotency key", &err))?
            .item;
        Ok(item.map(|item| {
            let string = |name: &str| match item.get(name) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => String::new(),
            };
            let now_s = epoch_millis() / 1000;
            let expired = matches!(item.get("expires_at"), Some(AttributeValue::N(n)) if n.parse::<u64>().is_ok_and(|at| at < now_s));
            let view = KeyView {
                state: match string("key_state").as_str() {
                    _ if expired => KeyState::Released,
                    "answered" => KeyState::Answered,
                    "released" => KeyState::Released,
                    _ => KeyState::InProgress,
                },
                request: string("request"),
                reservation: string("reservation"),
                task_id: string("key_task_id"),
                hold_until: match item.get("hold_until") {
                    Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                    _ => 0,
                },
            };
            (view, string("answer_status_url"))
        }))
    }

    /// Takes over the key held by `held_by`, whose hold has ended, keeping
    /// its task. `false`: another request changed it first.
    async fn take_over(
        self,
        key: &str,
        held_by: &str,
        reservation: &str,
    ) -> Result<bool, ApiError> {
        let now_ms = epoch_millis();
        let taken = self
            .0
            .dynamodb
            .update_item()
            .table_name(self.0.table)
            .key("task_id", record_id(key))
            .update_expression("SET reservation = :mine, hold_until = :hold")
            .condition_expression(
                "reservation = :held_by AND key_state = :in_progress AND hold_until < :now_ms",
            )
            .expression_attribute_values(":mine", AttributeValue::S(reservation.to_owned()))
            .expression_attribute_values(":held_by", AttributeValue::S(held_by.to_owned()))
            .expression_attribute_values(
                ":in_progress",
                AttributeValue::S("in_progress".to_owned()),
            )
            .expression_attribute_values(":hold", AttributeValue::N(hold_from(now_ms)))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        match taken {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(unavailable("UpdateItem idempotency key", &err)),
        }
    }

    /// The key's task can never run and the key gets `task_id` instead. The
    /// write must land before that task is written: otherwise the answer is
    /// a 503 and the key still names the old task.
    pub async fn replace_task(
        self,
        key: &str,
        reservation: &str,
        task_id: &str,
    ) -> Result<(), ApiError> {
        let replaced = self
            .0
            .dynamodb
            .update_item()
            .table_name(self.0.table)
            .key("task_id", record_id(key))
            .update_expression("SET key_task_id = :task")
            .condition_expression("reservation = :reservation")
            .expression_attribute_values(":task", AttributeValue::S(task_id.to_owned()))
            .expression_attribute_values(":reservation", AttributeValue::S(reservation.to_owned()))
            .send()
            .await;
        match replaced {
            Ok(_) => Ok(()),
            Err(err) => Err(unavailable("UpdateItem idempotency key", &err)),
        }
    }

    /// The request that holds `reservation` was answered 202 with `answer`:
    /// from now on the key replays it. If this write fails, the key still
    /// names its task, and a retry after the hold answers that same task.
    pub async fn answer(self, key: &str, reservation: &str, answer: &Answer) {
        let answered = self
            .0
            .dynamodb
            .update_item()
            .table_name(self.0.table)
            .key("task_id", record_id(key))
            .update_expression(
                "SET key_state = :answered, key_task_id = :task, answer_status_url = :url",
            )
            .condition_expression("reservation = :reservation")
            .expression_attribute_values(":answered", AttributeValue::S("answered".to_owned()))
            .expression_attribute_values(":task", AttributeValue::S(answer.task_id.clone()))
            .expression_attribute_values(":url", AttributeValue::S(answer.status_url.clone()))
            .expression_attribute_values(":reservation", AttributeValue::S(reservation.to_owned()))
            .send()
            .await;
        if let Err(err) = answered {
            tracing::warn!(
                detail = sdk_summary(&err),
                "Idempotency-Key answer not recorded: a retry after the hold answers the same task"
            );
        }
    }

    /// The request that holds `reservation` cannot start its task: the key is
    /// free again, unless another request took it over
    /// ([`protocol::after_key_release`] says what that means for the answer).
    pub async fn release(self, key: &str, reservation: &str) -> Wrote {
        let released = self
            .0
            .dynamodb
            .update_item()
            .table_name(self.0.table)
            .key("task_id", record_id(key))
            .update_expression("SET key_state = :released")
            .condition_expression("reservation = :reservation")
            .expression_attribute_values(":released", AttributeValue::S("released".to_owned()))
            .expression_attribute_values(":reservation", AttributeValue::S(reservation.to_owned()))
            .send()
            .await;
        wrote(key, "Idempotency-Key release", released)
    }

    /// The key record as read to settle a release whose answer was lost
    /// (`None` when the read failed or found none).
    pub async fn settle(self, key: &str) -> Option<KeyView> {
        self.read(key).await.ok().flatten().map(|(view, _)| view)
    }
}

/// A key's hold from `now_ms`, as stored.
fn hold_from(now_ms: u64) -> String {
    (now_ms + RESERVATION_HOLD.as_millis() as u64).to_string()
}

/// DynamoDB failing while a key is read or written is a 503, whatever the SDK said.
fn unavailable<E: ProvideErrorMetadata>(
    operation: &str,
    err: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> ApiError {
    ApiError::Unavailable(format!("{operation}: {}", sdk_summary(err)))
}

fn record_id(key: &str) -> AttributeValue {
    AttributeValue::S(format!("idempotency-key#{key}"))
}

#[cfg(test)]
mod tests;
