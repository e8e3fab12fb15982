//! `GET /users`: one page of a DynamoDB Scan of the users table.
//!
//! The page's items become plain JSON (every attribute type kept, numbers with
//! every digit), the Scan's `LastEvaluatedKey` becomes an opaque cursor, and the
//! page is cut short before the response could outgrow what Lambda may return.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::AppState;
use crate::error::{ApiError, BadRequestResponse, InternalResponse, UnavailableResponse};
use utoipa::{IntoParams, ToSchema};

/// Page size when the client gives no `limit`.
pub const DEFAULT_LIMIT: i32 = 100;
/// Largest `limit` a client may ask for.
pub const MAX_LIMIT: i32 = 1000;
/// The users table's partition key.
const KEY: &str = "id";
/// DynamoDB's largest partition key value, in bytes.
const MAX_KEY_BYTES: usize = 2048;
/// Budget for the body as it travels inside Lambda's JSON response (where every
/// `"` and `\` is escaped once more), well under Lambda's 6 MB response limit
/// to leave room for headers and the envelope.
const MAX_BODY_BUDGET: usize = 5_000_000;

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
/// base64), attributes in name order.
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
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Json<UsersPage>, ApiError> {
    let Query(query) = query?;
    let limit = parse_limit(query.limit.as_deref())?;
    let start_key = query.cursor.as_deref().map(decode_cursor).transpose()?;

    let output = state
        .dynamodb
        .scan()
        .table_name(&state.config.users_table)
        .limit(limit)
        .set_exclusive_start_key(start_key)
        .send()
        .await
        .map_err(|err| ApiError::from_sdk("Scan users", &err))?;

    let items = output.items();
    let mut users = Vec::with_capacity(items.len());
    let mut budget_used = 0;
    let mut last_key = output.last_evaluated_key().cloned();
    for (index, item) in items.iter().enumerate() {
        let json = serde_json::value::to_raw_value(&Item(item))
            .map_err(|err| ApiError::Internal(format!("user item not renderable: {err}")))?;
        let cost = escaped_len(json.get()) + 1;
        if index > 0 && budget_used + cost > MAX_BODY_BUDGET {
            // Stop here and let the next page start after the last item sent.
            last_key = Some(key_of(&items[index - 1]));
            break;
        }
        users.push(json);
        budget_used += cost;
    }
    let next_cursor = last_key.as_ref().map(encode_cursor).transpose()?;
    Ok(Json(UsersPage { users, next_cursor }))
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

/// Bytes `json` takes once embedded as a string in Lambda's response document.
fn escaped_len(json: &str) -> usize {
    json.len() + json.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

fn key_of(item: &HashMap<String, AttributeValue>) -> HashMap<String, AttributeValue> {
    item.iter()
        .filter(|(name, _)| name.as_str() == KEY)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The cursor is the key the next Scan starts after, `{"id": "…"}`, as
/// unpadded base64url JSON.
fn encode_cursor(key: &HashMap<String, AttributeValue>) -> Result<String, ApiError> {
    match (key.len(), key.get(KEY)) {
        (1, Some(AttributeValue::S(id))) => {
            let json = serde_json::json!({ KEY: id }).to_string();
            Ok(URL_SAFE_NO_PAD.encode(json))
        }
        _ => Err(ApiError::Internal(
            "users table key is not a single string attribute `id`".to_owned(),
        )),
    }
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
            let start = HashMap::from([(KEY.to_owned(), AttributeValue::S(id.clone()))]);
            if encode_cursor(&start)? == cursor {
                Ok(start)
            } else {
                Err(invalid())
            }
        }
        _ => Err(invalid()),
    }
}

/// A DynamoDB item rendered as plain JSON, attributes in name order.
struct Item<'a>(&'a HashMap<String, AttributeValue>);

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        let mut map = serializer.serialize_map(Some(names.len()))?;
        for name in names {
            map.serialize_entry(name, &Attribute(&self.0[name]))?;
        }
        map.end()
    }
}

/// One attribute value as plain JSON: S string, N number (the digits DynamoDB
/// stored, not an f64), BOOL, NULL, M object, L array, SS/NS arrays, B/BS base64.
struct Attribute<'a>(&'a AttributeValue);

impl Serialize for Attribute<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::S(s) => serializer.serialize_str(s),
            AttributeValue::N(n) => number(n).map_err(S::Error::custom)?.serialize(serializer),
            AttributeValue::Bool(b) => serializer.serialize_bool(*b),
            AttributeValue::Null(_) => serializer.serialize_unit(),
            AttributeValue::B(blob) => serializer.serialize_str(&STANDARD.encode(blob.as_ref())),
            AttributeValue::M(map) => Item(map).serialize(serializer),
            AttributeValue::L(list) => {
                let mut seq = serializer.serialize_seq(Some(list.len()))?;
                for value in list {
                    seq.serialize_element(&Attribute(value))?;
                }
                seq.end()
            }
            AttributeValue::Ss(strings) => strings.serialize(serializer),
            AttributeValue::Ns(numbers) => {
                let mut seq = serializer.serialize_seq(Some(numbers.len()))?;
                for n in numbers {
                    seq.serialize_element(&number(n).map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
            AttributeValue::Bs(blobs) => {
                let mut seq = serializer.serialize_seq(Some(blobs.len()))?;
                for blob in blobs {
                    seq.serialize_element(&STANDARD.encode(blob.as_ref()))?;
                }
                seq.end()
            }
            _ => Err(S::Error::custom(
                "attribute of a type this API does not know",
            )),
        }
    }
}

/// A DynamoDB number as a raw JSON number, digit for digit.
fn number(n: &str) -> Result<Box<RawValue>, String> {
    let normalized = normalize_number(n).ok_or_else(|| format!("not a number: {n:?}"))?;
    RawValue::from_string(normalized).map_err(|err| err.to_string())
}

/// DynamoDB numbers are decimal strings that JSON may not accept as written
/// (`+1`, `.5`, `5.`, `007`). Rewrite only those forms, never the digits.
fn normalize_number(n: &str) -> Option<String> {
    let (sign, rest) = match n.as_bytes().first()? {
        b'-' => ("-", &n[1..]),
        b'+' => ("", &n[1..]),
        _ => ("", n),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int)
        || !frac.is_none_or(digits)
        || (int.is_empty() && frac.is_none_or(str::is_empty))
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut out = format!("{sign}{}", if int.is_empty() { "0" } else { int });
    if let Some(frac) = frac.filter(|f| !f.is_empty()) {
        out.push('.');
        out.push_str(frac);
    }
    if let Some(exp) = exponent {
        let (exp_sign, exp_digits) = match exp.as_bytes().first()? {
            b'-' => ("-", &exp[1..]),
            b'+' => ("+", &exp[1..]),
            _ => ("", exp),
        };
        if exp_digits.is_empty() || !digits(exp_digits) {
            return None;
        }
        out.push('E');
        out.push_str(exp_sign);
        out.push_str(exp_digits);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_every_digit_and_become_valid_json() {
        for (dynamodb, json) in [
            ("0", "0"),
            ("-12", "-12"),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
            (
                "3.14159265358979323846264338327950288",
                "3.14159265358979323846264338327950288",
            ),
            ("+7", "7"),
            (".5", "0.5"),
            ("5.", "5"),
            ("007", "7"),
            ("1E+125", "1E+125"),
            ("-1e-130", "-1E-130"),
        ] {
            assert_eq!(number(dynamodb).unwrap().get(), json, "{dynamodb}");
        }
        for bad in ["", "-", "abc", "1.2.3", "1e", "0x10", "NaN", "."] {
            assert!(number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_anything_else() {
        let key = HashMap::from([(KEY.to_owned(), AttributeValue::S("user-42".into()))]);
        let cursor = encode_cursor(&key).unwrap();
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
}
