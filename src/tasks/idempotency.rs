//! `Idempotency-Key` on `POST /async` (after the IETF httpapi draft): a client
//! that retries after a lost answer gets the first answer again, not a second
//! task.
//!
//! Each key is a record in the tasks table under `idempotency-key#<key>`,
//! which no task id (a UUID) can take, and expires through the same TTL a day
//! later. A request *reserves* its key with a conditional write before it
//! records its task; the reservation becomes the answer once the task is
//! enqueued, or is released when the request fails (4xx, 5xx), so that a retry
//! is handled afresh. A reservation whose request died holds for
//! [`RESERVATION_HOLD`], then a retry may take it over.

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::HeaderMap;
use uuid::Uuid;

use super::store::{StoreError, TaskStore, epoch_millis};
use crate::error::sdk_summary;

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

/// The first answer to a key, as a replay repeats it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub task_id: String,
    pub status_url: String,
}

/// What reserving a key came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// This request holds the key: handle it, then [`KeyStore::answer`] or
    /// [`KeyStore::release`] with this reservation id.
    Ours(String),
    /// The key's first request is still being handled.
    InProgress { request: String },
    /// The key's first request was answered.
    Answered { request: String, answer: Answer },
}

/// The key records, in the tasks table.
#[derive(Clone, Copy)]
pub struct KeyStore<'a>(pub TaskStore<'a>);

impl KeyStore<'_> {
    /// Reserves `key` for a request whose normalised body is `request`.
    pub async fn reserve(
        self,
        key: &str,
        request: &str,
    ) -> Result<Reservation, StoreError<PutItemError>> {
        let reservation = Uuid::new_v4().to_string();
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
            .item(
                "hold_until",
                AttributeValue::N((now_ms + RESERVATION_HOLD.as_millis() as u64).to_string()),
            )
            .item(
                "expires_at",
                AttributeValue::N((now_ms / 1000 + KEY_TTL.as_secs()).to_string()),
            )
            .condition_expression(
                "attribute_not_exists(task_id) OR key_state = :released OR (key_state = :in_progress AND hold_until < :now_ms) OR expires_at < :now_s",
            )
            .expression_attribute_values(":released", AttributeValue::S("released".to_owned()))
            .expression_attribute_values(":in_progress", AttributeValue::S("in_progress".to_owned()))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":now_s", AttributeValue::N((now_ms / 1000).to_string()))
            .send()
            .await;
        match reserved {
            Ok(_) => return Ok(Reservation::Ours(reservation)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) => {}
            Err(err) => return Err(StoreError::Sdk(Box::new(err))),
        }
        // Held by a request (this one, if the SDK retried a write whose answer
        // was lost): read whose, and how far it got.
        let item = self
            .0
            .dynamodb
            .get_item()
            .table_name(self.0.table)
            .key("task_id", record_id(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::Record(format!("GetItem key: {}", sdk_summary(&err))))?
            .item
            .unwrap_or_default();
        let string = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        };
        if string("reservation") == reservation {
            return Ok(Reservation::Ours(reservation));
        }
        let request = string("request");
        Ok(match string("key_state").as_str() {
            "answered" => Reservation::Answered {
                request,
                answer: Answer {
                    task_id: string("answer_task_id"),
                    status_url: string("answer_status_url"),
                },
            },
            // In progress, or released or expired since the write failed: a
            // retry after `Retry-After` is handled afresh.
            _ => Reservation::InProgress { request },
        })
    }

    /// The request that holds `reservation` was answered 202 with `answer`:
    /// from now on the key replays it.
    pub async fn answer(self, key: &str, reservation: &str, answer: &Answer) {
        let answered = self
            .0
            .dynamodb
            .update_item()
            .table_name(self.0.table)
            .key("task_id", record_id(key))
            .update_expression(
                "SET key_state = :answered, answer_task_id = :task, answer_status_url = :url",
            )
            .condition_expression("reservation = :reservation")
            .expression_attribute_values(":answered", AttributeValue::S("answered".to_owned()))
            .expression_attribute_values(":task", AttributeValue::S(answer.task_id.clone()))
            .expression_attribute_values(":url", AttributeValue::S(answer.status_url.clone()))
            .expression_attribute_values(":reservation", AttributeValue::S(reservation.to_owned()))
            .send()
            .await;
        if let Err(err) = answered {
            tracing::error!(
                detail = sdk_summary(&err),
                "Idempotency-Key answer not recorded: a retry after the reservation's hold starts afresh"
            );
        }
    }

    /// The request that holds `reservation` failed: the key is free again.
    pub async fn release(self, key: &str, reservation: &str) {
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
        if let Err(err) = released {
            tracing::warn!(
                detail = sdk_summary(&err),
                "Idempotency-Key not released: it frees itself when the reservation's hold ends"
            );
        }
    }
}

fn record_id(key: &str) -> AttributeValue {
    AttributeValue::S(format!("idempotency-key#{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(values: &[&[u8]]) -> Result<Option<String>, String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, HeaderValue::from_bytes(value).unwrap());
        }
        key_of(&headers)
    }

    #[test]
    fn a_key_is_1_to_255_visible_ascii_characters_quoted_or_not() {
        assert_eq!(key(&[]), Ok(None));
        assert_eq!(key(&[b"abc-123"]), Ok(Some("abc-123".to_owned())));
        assert_eq!(key(&[b"\"abc-123\""]), Ok(Some("abc-123".to_owned())));
        assert_eq!(key(&[b"!~"]), Ok(Some("!~".to_owned())));
        assert_eq!(key(&[&[b'k'; 255]]), Ok(Some("k".repeat(255))));
        assert_eq!(key(&[b"\"a"]), Ok(Some("\"a".to_owned())));
    }

    #[test]
    fn anything_else_is_refused() {
        let refused = Err("Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned());
        for bad in [
            &b""[..],
            b"\"\"",
            b"has space",
            b"tab\there",
            &[b'k'; 256],
            b"\xc3\xa9",
        ] {
            assert_eq!(key(&[bad]), refused, "{bad:?}");
        }
        assert_eq!(
            key(&[b"a", b"b"]),
            Err("Send one Idempotency-Key header, not several".to_owned())
        );
    }
}
