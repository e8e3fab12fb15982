//! `GET /users`: one page of a DynamoDB Scan of the users table.
//!
//! The Scan's answer is read as DynamoDB sent it, straight into the page's
//! plain JSON (the `item-json` crate of this workspace, `crates/item-json`),
//! its `LastEvaluatedKey` becomes an opaque cursor, and the page is cut short
//! before the response could outgrow what Lambda may return.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use item_json::{KeepAnswer, ScanAnswer, Unreadable};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{
    ApiError, BadRequestResponse, InternalResponse, UnauthorizedResponse, UnavailableResponse,
};
use crate::http_event::ResponseBudget;
use crate::state::AppState;
use utoipa::{IntoParams, ToSchema};

/// Page size when the client gives no `limit`.
pub const DEFAULT_LIMIT: i32 = 100;
/// Largest `limit` a client may ask for.
pub const MAX_LIMIT: i32 = 1000;
/// The users table's partition key.
const KEY: &str = "id";
/// DynamoDB's largest partition key value, in bytes.
const MAX_KEY_BYTES: usize = 2048;

/// The query string of `GET /users`. Both arrive as text so that a bad value
/// gets this API's own message; the document states their real types.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// How many users the page may hold.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 1000, default = 100)]
    limit: Option<String>,
    /// Where the page starts: `next_cursor` of the previous page, exactly as returned.
    #[param(value_type = Option<String>, min_length = 1)]
    cursor: Option<String>,
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsersPage {
    /// The users of this page, each the DynamoDB item as plain JSON.
    #[schema(value_type = Vec<User>)]
    users: Vec<Box<RawValue>>,
    /// The cursor of the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A user: the DynamoDB item with every attribute as plain JSON (S string, N
/// number with every digit, BOOL, NULL, M object, L array, SS/NS arrays, B/BS
/// base64), attributes in the order DynamoDB sent them.
#[derive(ToSchema)]
#[schema(example = json!({"id": "u01", "name": "Ada Lovelace", "email": "ada@example.com"}))]
pub struct User {
    /// The partition key.
    pub id: String,
}

/// `GET /users`: awaits one page of a DynamoDB Scan of the users table.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(UsersQuery),
    responses(
        (status = 200, description = "One page of users; follow `next_cursor` for the rest", body = UsersPage),
        (status = 400, response = BadRequestResponse),
        (status = 401, response = UnauthorizedResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    budget: Option<Extension<ResponseBudget>>,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Extension(ResponseBudget(budget)) = budget.unwrap_or_default();
    let Query(query) = query?;
    let limit = parse_limit(query.limit.as_deref())?;
    let start_key = query.cursor.as_deref().map(decode_cursor).transpose()?;

    let kept = KeepAnswer::default();
    state
        .dynamodb
        .scan()
        .table_name(&state.config.users_table)
        .limit(limit)
        .set_exclusive_start_key(start_key)
        .customize()
        .interceptor(kept.clone())
        .send()
        .await
        .map_err(|err| ApiError::from_sdk("Scan users", &err))?;
    let answer = kept.take();
    let json = answer
        .as_ref()
        .and_then(|body| body.bytes())
        .unwrap_or_default();
    let unreadable = |err: Unreadable| ApiError::Internal(format!("Scan's answer: {err}"));
    let mut scan = ScanAnswer::new(json, KEY).map_err(unreadable)?;

    // The page is written straight into the body, each user where it goes,
    // as `UsersPage` would serialize: no item built, no buffer per user, no
    // second copy. The users' JSON is never longer than DynamoDB's (each
    // value loses its type's wrapper), so the body grows on the way only
    // for the longest cursors.
    let mut body = Vec::with_capacity(json.len() + 64);
    body.extend_from_slice(PAGE_START);
    let mut page_budget = PageBudget::new(budget);
    // The key of the last user sent, and whether the page was cut after it.
    let mut last_sent = None;
    let mut cut = false;
    for index in 0.. {
        let before = body.len();
        if index > 0 {
            body.push(b',');
        }
        let Some(item) = scan.next_item(&mut body).map_err(unreadable)? else {
            body.truncate(before);
            break;
        };
        if !page_budget.admits(&body, before, index) {
            // Stop here and let the next page start after the last item sent.
            body.truncate(before);
            cut = true;
            break;
        }
        last_sent = item.key;
    }
    let next_cursor = if cut {
        let key = last_sent.ok_or_else(key_not_a_string)?;
        let id: String = serde_json::from_slice(key).map_err(|_| key_not_a_string())?;
        Some(encode_cursor(&id))
    } else {
        match scan.last_evaluated_key().map_err(unreadable)? {
            Some(key) => {
                let key: StartKey = serde_json::from_slice(key).map_err(|_| key_not_a_string())?;
                Some(encode_cursor(&key.id.s))
            }
            None => None,
        }
    };
    body.extend_from_slice(br#"],"next_cursor":"#);
    serde_json::to_writer(&mut body, &next_cursor)
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    body.push(b'}');
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, json)], body).into_response())
}

fn parse_limit(raw: Option<&str>) -> Result<i32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<i32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::BadRequest(format!(
            "limit must be an integer from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// What the body holds before its first user.
const PAGE_START: &[u8] = br#"{"users":["#;

/// The users of a page against its budget: each user costs the bytes of its
/// JSON once escaped in Lambda's response document, and one for the comma or
/// bracket after it; the first user is always sent.
///
/// Escaping at most doubles a byte (only `"` and `\` grow), so while twice
/// the bytes written stay within the budget, no user can be over it and
/// nothing is counted: counting a page byte by byte is left to pages that
/// come near their budget (6 MB, or an ALB's 1 MB), never to a 1,000-user
/// page of a few hundred KB. The page is cut where exact counting from its
/// first user would cut it.
struct PageBudget {
    budget: usize,
    /// `2 × bytes + 1` of every user admitted: never less than their cost.
    bound: usize,
    /// The exact cost of the users admitted, once the bound has passed the budget.
    exact: Option<usize>,
}

impl PageBudget {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            bound: 0,
            exact: None,
        }
    }

    /// Whether user `index`, written at the end of `body` after `before`
    /// (with its comma), still fits; if so it is counted.
    fn admits(&mut self, body: &[u8], before: usize, index: usize) -> bool {
        let start = if index > 0 { before + 1 } else { before };
        let user = &body[start..];
        if self.exact.is_none() {
            self.bound += 2 * user.len() + 1;
            if self.bound <= self.budget {
                return true;
            }
            // Every user before this one once escaped, a comma each but the
            // first, plus one for the first: the sum of their costs.
            let sent = &body[PAGE_START.len()..before];
            self.exact = Some(if index > 0 { escaped_len(sent) + 1 } else { 0 });
        }
        let used = self.exact.get_or_insert(0);
        let cost = escaped_len(user) + 1;
        if index > 0 && *used + cost > self.budget {
            return false;
        }
        *used += cost;
        true
    }
}

/// Bytes `json` takes once embedded as a string in Lambda's response document.
fn escaped_len(json: &[u8]) -> usize {
    json.len() + json.iter().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// A Scan's `LastEvaluatedKey` in the users table: exactly its string key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartKey {
    id: StringValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StringValue {
    #[serde(rename = "S")]
    s: String,
}

fn key_not_a_string() -> ApiError {
    ApiError::Internal("users table key is not a single string attribute `id`".to_owned())
}

/// The cursor is the key the next Scan starts after, `{"id": "…"}`, as
/// unpadded base64url JSON.
fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::json!({ KEY: id }).to_string())
}

/// Accepts only what [`encode_cursor`] makes: exactly the key of the users table.
fn decode_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, ApiError> {
    let invalid = || ApiError::BadRequest("cursor is not one this API returned".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let key: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    match (key.len(), key.get(KEY)) {
        (1, Some(serde_json::Value::String(id))) if !id.is_empty() && id.len() <= MAX_KEY_BYTES => {
            // Re-encoding must give back the same text, so no two cursors name one key.
            if encode_cursor(id) == cursor {
                Ok(HashMap::from([(
                    KEY.to_owned(),
                    AttributeValue::S(id.clone()),
                )]))
            } else {
                Err(invalid())
            }
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_anything_else() {
        let key = HashMap::from([(KEY.to_owned(), AttributeValue::S("user-42".into()))]);
        let cursor = encode_cursor("user-42");
        assert_eq!(decode_cursor(&cursor).unwrap(), key);
        for bad in [
            &cursor[..cursor.len() - 2],
            "!!!",
            "",
            &URL_SAFE_NO_PAD.encode(r#"{"id":"a","x":1}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"task_id":"a"}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"id":7}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"id":""}"#),
            &URL_SAFE_NO_PAD.encode(r#"{ "id":"a"}"#),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limit_is_an_integer_from_1_to_1000_and_defaults_to_100() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        for (raw, limit) in [("1", 1), ("1000", 1000), ("42", 42)] {
            assert_eq!(parse_limit(Some(raw)).unwrap(), limit);
        }
        for bad in ["0", "1001", "-1", "1.0", "", " 5", "ten", "99999999999"] {
            let err = parse_limit(Some(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "limit must be an integer from 1 to 1000",
                "{bad:?}"
            );
        }
    }

    /// Where counting every user exactly from the first would cut the page.
    fn cut_by_exact_count(users: &[Vec<u8>], budget: usize) -> usize {
        let mut used = 0;
        for (index, user) in users.iter().enumerate() {
            let cost = escaped_len(user) + 1;
            if index > 0 && used + cost > budget {
                return index;
            }
            used += cost;
        }
        users.len()
    }

    #[test]
    fn the_page_budget_cuts_where_exact_counting_cuts() {
        // Users of every mix of plain bytes and quotes, against budgets below,
        // near and above what they take.
        let mut seed = 7_u64;
        let mut next = move |below: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % below
        };
        for _ in 0..2000 {
            let users: Vec<Vec<u8>> = (0..1 + next(12))
                .map(|_| {
                    (0..next(40))
                        .map(|_| match next(4) {
                            0 => b'"',
                            1 => b'\\',
                            _ => b'a',
                        })
                        .collect()
                })
                .collect();
            let budget = next(400) as usize;
            let mut body = PAGE_START.to_vec();
            let mut budget_of_page = PageBudget::new(budget);
            let mut sent = users.len();
            for (index, user) in users.iter().enumerate() {
                let before = body.len();
                if index > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(user);
                if !budget_of_page.admits(&body, before, index) {
                    sent = index;
                    break;
                }
            }
            assert_eq!(
                sent,
                cut_by_exact_count(&users, budget),
                "{users:?} {budget}"
            );
        }
    }

    #[test]
    fn the_page_budget_counts_each_quote_and_backslash_twice() {
        assert_eq!(escaped_len(b"{}"), 2);
        // {"a":"\\"}: ten bytes, four quotes, two backslashes.
        assert_eq!(escaped_len(br#"{"a":"\\"}"#), 10 + 4 + 2);
    }
}
