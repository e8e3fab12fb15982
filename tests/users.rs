//! `GET /users` against a real local DynamoDB.

mod support;

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use serde_json::value::RawValue;
use support::{Fixture, dead_endpoint, error_body, events};

/// Follows `next_cursor` from the first page to the last and returns every id seen, in order.
async fn all_ids(fixture: &Fixture, limit: u32) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/users?limit={limit}&cursor={cursor}"),
            None => format!("/users?limit={limit}"),
        };
        let reply = fixture.http("GET", &path, None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let users = reply.body["users"].as_array().expect("users array");
        assert!(users.len() <= limit as usize);
        ids.extend(
            users
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        match &reply.body["next_cursor"] {
            serde_json::Value::Null => return (ids, pages),
            serde_json::Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor is {other}"),
        }
    }
}

#[tokio::test]
async fn empty_table_returns_no_users_and_no_cursor() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let reply = fixture.http("GET", "/users", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({"users": [], "next_cursor": null}));
}

#[tokio::test]
async fn paging_through_2500_users_returns_each_exactly_once() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    fixture.seed_users(2500).await;
    let expected: BTreeSet<String> = (0..2500).map(|i| format!("user-{i:05}")).collect();
    for (limit, min_pages) in [(1000, 3), (100, 25), (7, 358)] {
        let (ids, pages) = all_ids(&fixture, limit).await;
        assert_eq!(
            ids.len(),
            2500,
            "limit {limit}: every user once, no duplicates"
        );
        assert_eq!(
            ids.iter().cloned().collect::<BTreeSet<_>>(),
            expected,
            "limit {limit}"
        );
        assert!(pages >= min_pages, "limit {limit}: {pages} pages");
    }
}

#[tokio::test]
async fn the_default_page_holds_100_users() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    fixture.seed_users(150).await;
    let reply = fixture.http("GET", "/users", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["users"].as_array().map(Vec::len), Some(100));
    assert!(reply.body["next_cursor"].is_string());
}

#[tokio::test]
async fn every_attribute_type_round_trips_exactly() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let item = HashMap::from([
        ("id".to_owned(), AttributeValue::S("u1".into())),
        (
            "name".to_owned(),
            AttributeValue::S("Ada \"Countess\" Lovelace ✓".into()),
        ),
        (
            "big".to_owned(),
            AttributeValue::N("12345678901234567890123456789012345678".into()),
        ),
        (
            "precise".to_owned(),
            AttributeValue::N("3.1415926535897932384626433832795028".into()),
        ),
        ("negative".to_owned(), AttributeValue::N("-42".into())),
        ("tiny".to_owned(), AttributeValue::N("0.000001".into())),
        ("active".to_owned(), AttributeValue::Bool(true)),
        ("nothing".to_owned(), AttributeValue::Null(true)),
        (
            "avatar".to_owned(),
            AttributeValue::B(Blob::new(vec![0, 1, 2, 254, 255])),
        ),
        (
            "address".to_owned(),
            AttributeValue::M(HashMap::from([
                ("city".to_owned(), AttributeValue::S("London".into())),
                ("zip".to_owned(), AttributeValue::N("10001".into())),
            ])),
        ),
        (
            "history".to_owned(),
            AttributeValue::L(vec![
                AttributeValue::S("a".into()),
                AttributeValue::N("1.5".into()),
                AttributeValue::Bool(false),
                AttributeValue::L(vec![]),
            ]),
        ),
        (
            "tags".to_owned(),
            AttributeValue::Ss(vec!["x".into(), "y".into()]),
        ),
        (
            "scores".to_owned(),
            AttributeValue::Ns(vec!["1".into(), "99999999999999999999".into()]),
        ),
        (
            "keys".to_owned(),
            AttributeValue::Bs(vec![Blob::new(b"hi".to_vec()), Blob::new(vec![0])]),
        ),
    ]);
    fixture.put_items(&fixture.users_table, vec![item]).await;

    // Compare the response text itself: a JSON parser here would round the numbers.
    let text = fixture.http_text("GET", "/users").await;
    let body: HashMap<String, Vec<HashMap<String, Box<RawValue>>>> =
        serde_json::from_str(text.replace(r#","next_cursor":null"#, "").as_str()).expect("page");
    let user: HashMap<&str, String> = body["users"][0]
        .iter()
        .map(|(name, raw)| (name.as_str(), raw.get().to_owned()))
        .collect();
    // Sets come back in DynamoDB's order, which need not be the order written.
    let set = |name: &str| {
        let mut members: Vec<String> = serde_json::from_str::<Vec<Box<RawValue>>>(&user[name])
            .expect("set")
            .iter()
            .map(|raw| raw.get().to_owned())
            .collect();
        members.sort();
        members
    };
    assert_eq!(set("tags"), [r#""x""#, r#""y""#]);
    assert_eq!(set("scores"), ["1", "99999999999999999999"]);
    assert_eq!(set("keys"), [r#""AA==""#, r#""aGk=""#]);
    let expected = HashMap::from([
        ("id", r#""u1""#),
        ("name", r#""Ada \"Countess\" Lovelace ✓""#),
        ("big", "12345678901234567890123456789012345678"),
        ("precise", "3.1415926535897932384626433832795028"),
        ("negative", "-42"),
        ("tiny", "0.000001"),
        ("active", "true"),
        ("nothing", "null"),
        ("avatar", r#""AAEC/v8=""#),
        ("history", r#"["a",1.5,false,[]]"#),
    ]);
    for (name, json) in expected {
        assert_eq!(user[name], json, "{name}");
    }
    // An M's members, like an item's attributes, come in DynamoDB's order.
    let address: HashMap<String, Box<RawValue>> =
        serde_json::from_str(&user["address"]).expect("map");
    let address: HashMap<&str, &str> = address
        .iter()
        .map(|(name, raw)| (name.as_str(), raw.get()))
        .collect();
    assert_eq!(
        address,
        HashMap::from([("city", r#""London""#), ("zip", "10001")])
    );
    assert_eq!(user.len(), 14);
}

#[tokio::test]
async fn numbers_keep_every_digit_in_the_response_text() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let item = HashMap::from([
        ("id".to_owned(), AttributeValue::S("u1".into())),
        (
            "precise".to_owned(),
            AttributeValue::N("3.1415926535897932384626433832795028".into()),
        ),
        (
            "big".to_owned(),
            AttributeValue::N("-12345678901234567890123456789012345678".into()),
        ),
    ]);
    fixture.put_items(&fixture.users_table, vec![item]).await;
    let text = fixture.http_text("GET", "/users").await;
    // Attributes come in the order DynamoDB sent them, which it does not promise.
    let user = text
        .strip_prefix(r#"{"users":[{"#)
        .and_then(|rest| rest.strip_suffix(r#"}],"next_cursor":null}"#))
        .unwrap_or_else(|| panic!("{text}"));
    let mut attributes: Vec<&str> = user.split(',').collect();
    attributes.sort_unstable();
    assert_eq!(
        attributes,
        [
            r#""big":-12345678901234567890123456789012345678"#,
            r#""id":"u1""#,
            r#""precise":3.1415926535897932384626433832795028"#,
        ]
    );
}

/// Writes `count` users of `quotes` double quotes each: every one of them
/// doubles when Lambda escapes the body.
async fn seed_bulky_users(fixture: &Fixture, count: usize, quotes: usize) {
    let bulk = "\"".repeat(quotes);
    for i in 0..count {
        let item = HashMap::from([
            ("id".to_owned(), AttributeValue::S(format!("big-{i:02}"))),
            ("bulk".to_owned(), AttributeValue::S(bulk.clone())),
        ]);
        fixture.put_items(&fixture.users_table, vec![item]).await;
    }
}

/// Follows the cursors from the first `limit=1000` page, each page an event
/// that `event` builds, and checks that every page once escaped stays under
/// `limit_bytes` and no user comes twice. Returns the users seen and the
/// number of pages.
async fn follow_every_page(
    fixture: &Fixture,
    event: fn(&str, &str, Option<&str>) -> String,
    limit_bytes: usize,
) -> (BTreeSet<String>, usize) {
    let mut seen = BTreeSet::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let path = if cursor.is_empty() {
            "/users?limit=1000".to_owned()
        } else {
            format!("/users?limit=1000&cursor={cursor}")
        };
        let reply = fixture
            .invoke(&event("GET", &path, None))
            .await
            .expect("answer");
        assert_eq!(reply.status, 200);
        let escaped = serde_json::to_string(&reply.body.to_string())
            .expect("string")
            .len();
        assert!(
            escaped < limit_bytes,
            "page of {escaped} bytes once escaped"
        );
        pages += 1;
        for user in reply.body["users"].as_array().expect("users") {
            assert!(
                seen.insert(user["id"].as_str().expect("id").to_owned()),
                "duplicate"
            );
        }
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return (seen, pages),
        }
    }
}

#[tokio::test]
async fn a_page_stops_before_the_response_outgrows_lambdas_limit() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    // 30 users of ~700 KB once escaped: a page of all of them would pass 6 MB.
    seed_bulky_users(&fixture, 30, 350_000).await;
    let (seen, _) = follow_every_page(&fixture, events::http_api, 6_000_000).await;
    assert_eq!(seen.len(), 30);
}

#[tokio::test]
async fn through_a_load_balancer_a_page_stops_before_the_albs_1_mb() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    // 12 users of ~200 KB once escaped: 2.4 MB in all.
    seed_bulky_users(&fixture, 12, 100_000).await;
    let (seen, pages) = follow_every_page(&fixture, events::alb, 1_000_000).await;
    assert_eq!(seen.len(), 12);
    assert!(pages >= 3, "{pages} pages");
}

#[tokio::test]
async fn a_limit_that_is_not_an_integer_from_1_to_1000_is_rejected() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    for limit in ["0", "1001", "-1", "abc", "1.5", "", "99999999999", "1e2"] {
        let reply = fixture
            .http("GET", &format!("/users?limit={limit}"), None)
            .await;
        assert_eq!(reply.status, 400, "limit={limit}");
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "bad_request",
                "limit must be an integer from 1 to 1000"
            ),
            "limit={limit}"
        );
    }
    for limit in ["1", "1000"] {
        let reply = fixture
            .http("GET", &format!("/users?limit={limit}"), None)
            .await;
        assert_eq!(reply.status, 200, "limit={limit}");
    }
}

#[tokio::test]
async fn a_forged_or_garbled_cursor_is_rejected() {
    use base64::Engine;
    let fixture = Fixture::new(&dead_endpoint()).await;
    fixture.seed_users(3).await;
    let first = fixture.http("GET", "/users?limit=1", None).await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let bad = [
        cursor[..cursor.len() - 3].to_owned(),
        format!("{cursor}AA"),
        "not-base64!".to_owned(),
        encode("not json"),
        encode(r#"{"id":"user-00001","admin":true}"#),
        encode(r#"{"task_id":"x"}"#),
        encode(r#"{"id":{"S":"user-00001"}}"#),
        encode(r#"{"id":1}"#),
        encode("[]"),
    ];
    for cursor in bad {
        let reply = fixture
            .http("GET", &format!("/users?cursor={cursor}"), None)
            .await;
        assert_eq!(reply.status, 400, "cursor={cursor}");
        assert_eq!(
            reply.body,
            error_body(&reply, "bad_request", "cursor is not one this API returned")
        );
    }
    assert_eq!(
        fixture
            .http("GET", &format!("/users?cursor={cursor}"), None)
            .await
            .status,
        200
    );
}
