//! Strategies: the events, headers, bodies, queries and items the properties are given.

use super::*;

/// Strings that have broken parsers before.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "%",
    "%FF",
    "%fe%ff",
    "%C3%28",
    "%00",
    "%2e%2e",
    "%2F",
    "..",
    ".",
    "/..",
    "//",
    "é",
    "😀",
    "\u{202e}",
    "\u{0}",
    "\u{7f}",
    "\\",
    "\"",
    "'",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "?",
    "#",
    "&",
    "=",
    ";",
    "\r\n",
    "\t",
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "0",
    "1",
    "1000",
    "1001",
    "60000",
    "60001",
    "2147483648",
    "9223372036854775808",
    "99999999999999999999999999",
    "1e400",
    "-0",
    "NaN",
    "Infinity",
    "0x10",
    "eyJpZCI6InVzZXItMDAwMDEifQ",
    "eyJpZCI6InVzZXItMDAwMDEifQ==",
    "e30",
    "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
    "0B7E4C1A-2F3D-4E5A-8C6B-9D1E2F3A4B5C",
];

pub(super) fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(ODD_STRINGS).prop_map(str::to_owned),
        2 => any::<String>(),
        2 => "[ -~]{0,40}",
        1 => (select(ODD_STRINGS), 1..3000usize).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Keys of the events of every source, so that random JSON often looks like one.
const EVENT_KEYS: &[&str] = &[
    "version",
    "routeKey",
    "rawPath",
    "rawQueryString",
    "cookies",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "http",
    "method",
    "path",
    "protocol",
    "sourceIp",
    "stage",
    "domainName",
    "elb",
    "targetGroupArn",
    "httpMethod",
    "resource",
    "resourcePath",
    "identity",
    "body",
    "isBase64Encoded",
    "task_id",
    "delay_ms",
    "fail_attempts",
    "host",
    "content-type",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(EVENT_KEYS).prop_map(str::to_owned),
        1 => odd_string(),
    ]
}

pub(super) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        odd_string().prop_map(Value::String),
        Just(Value::String(UNRECORDED_TASK.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `depth` nested arrays, with `core` inside.
pub(super) fn nested(depth: usize, core: &str) -> String {
    format!("{}{core}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A request body and its `isBase64Encoded` flag, honest or not.
fn body() -> impl Strategy<Value = (Option<String>, bool)> {
    let plain = prop_oneof![
        Just(String::new()),
        select(vec![
            "{}",
            "null",
            "[]",
            "{\"delay_ms\": 0}",
            "{\"delay_ms\": 60000}",
            "{\"delay_ms\": 60001}",
            "{\"delay_ms\": -1}",
            "{\"delay_ms\": 1.5}",
            "{\"delay_ms\": 1e3}",
            "{\"delay_ms\": \"5\"}",
            "{\"delay_ms\": null}",
            "{\"delay_ms\": 99999999999999999999999}",
            "{\"delay_ms\": 1e99999}",
            "{\"delay\": 10}",
            "{\"delay_ms\": 0, \"delay_ms\": 1}",
            "{\"fail_attempts\": 3}",
            "{",
            "not json",
            "\u{feff}{}",
            "  \n\t  ",
        ])
        .prop_map(str::to_owned),
        odd_string(),
        json_value().prop_map(|v| v.to_string()),
        (1..3000usize).prop_map(|d| nested(d, "")),
        (1..3000usize).prop_map(|d| format!("{{\"delay_ms\": {}}}", nested(d, "1"))),
        (1..5000usize).prop_map(|n| format!("{{\"delay_ms\": {}}}", "9".repeat(n))),
        (1..5000usize).prop_map(|n| "1".repeat(n)),
        (MAX_BODY - 64..MAX_BODY + 8000).prop_map(|n| {
            let pad = n.saturating_sub(20);
            format!("{{\"pad\": \"{}\"}}", "x".repeat(pad))
        }),
        (MAX_BODY - 8..MAX_BODY + 8).prop_map(|n| format!("{}{{}}", " ".repeat(n - 2))),
        Just(json!({"task_id": UNRECORDED_TASK, "delay_ms": 0}).to_string()),
    ]
    .boxed();
    prop_oneof![
        1 => Just((None, false)),
        // The flag lies now and then: lambda_http panics on such a body.
        6 => (plain.clone(), proptest::bool::weighted(0.1)).prop_map(|(text, lie)| (Some(text), lie)),
        // Base64 of any bytes, flagged as such or not.
        2 => (vec(any::<u8>(), 0..300), any::<bool>())
            .prop_map(|(bytes, flag)| (Some(STANDARD.encode(bytes)), flag)),
        // A text body, honestly base64-encoded.
        2 => plain.prop_map(|text| (Some(STANDARD.encode(text)), true)),
    ]
}

const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "get", "Post",
    "PROPFIND", "BREW", "X-CUSTOM", "G E T", "", "GET\n", "ÄÖÜ",
];

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec!["GET", "POST"]).prop_map(str::to_owned),
        3 => select(METHODS).prop_map(str::to_owned),
        1 => "[A-Za-z!#$%&'*+.^_`|~-]{1,20}",
        1 => (1..2000usize).prop_map(|n| "A".repeat(n)),
    ]
}

/// Stands for the id of the harness's recorded task in a generated path.
pub(super) const KNOWN_TASK: &str = "{known_task}";

const SEGMENTS: &[&str] = &[
    "users",
    "async",
    "tasks",
    "openapi.json",
    "docs",
    "Prod",
    "prod",
    "$default",
    "events",
    "",
    ".",
    "..",
    "%2e",
    "%2E%2E",
    "%75sers",
    "users%2F",
    "%FF",
    "%C3%28",
    "%00",
    "%20",
    "+",
    "users;x=1",
    "users.json",
    "USERS",
    "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
    "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c%00",
    "5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c",
    KNOWN_TASK,
    ":abc",
    "@host",
    "é",
    "😀",
    "%E2%80%AE",
];

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        6 => select(SEGMENTS).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9._~%-]{0,16}",
        1 => odd_string(),
        1 => (1..10_000usize).prop_map(|n| "a".repeat(n)),
    ];
    // The routes of the contract, as such or under a stage.
    let route = (
        select(vec!["", "", "", "/Prod"]),
        select(vec![
            "/users",
            "/async",
            "/openapi.json",
            "/docs",
            "/tasks/{known_task}",
            "/tasks/5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c",
            "/tasks/",
            "/",
        ]),
    )
        .prop_map(|(stage, route)| format!("{stage}{route}"));
    prop_oneof![
        8 => route,
        4 => vec(segment, 0..5).prop_map(|segments| format!("/{}", segments.join("/"))),
        2 => select(vec![
            "/users", "/async", "/Prod/users", "/Prod", "/Prod/", "//users", "/users/", "/./users",
            "/../users", "/users/..", "/tasks/", "/tasks", "/tasks/../users", "/", "", "users",
            "*", "http://evil.example.com/users", "///", "/%2Fusers",
        ])
        .prop_map(str::to_owned),
        1 => odd_string(),
    ]
}

/// Percent-encodes everything but unreserved characters and `%`, as a client
/// would before sending; the rest of the time the raw text goes through.
fn encode_query_part(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~%".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => select(vec!["limit", "cursor"]).prop_map(str::to_owned),
        1 => select(vec!["Limit", "limit[]", "x", "", "delay_ms", "task_id"]).prop_map(str::to_owned),
        1 => odd_string(),
    ];
    let value = prop_oneof![
        3 => odd_string(),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{1,40}",
        1 => "[A-Za-z0-9_-]{0,40}",
        1 => "[a-z0-9-]{1,20}".prop_map(|id| base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"id": id}).to_string())),
    ];
    let pairs = vec((key, value, any::<bool>()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, with_value)| {
                if with_value {
                    format!("{}={}", encode_query_part(&k), encode_query_part(&v))
                } else {
                    encode_query_part(&k)
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    prop_oneof![
        6 => pairs,
        1 => odd_string(),
        1 => select(vec!["", "&&&", "=", "limit=1&limit=2", "limit=", "cursor=", "limit=1&cursor="])
            .prop_map(str::to_owned),
    ]
}

const HEADER_NAMES: &[&str] = &[
    "host",
    "Host",
    "content-type",
    "Content-Type",
    "content-length",
    "origin",
    "Origin",
    "x-forwarded-proto",
    "cookie",
    "authorization",
    "accept",
    "transfer-encoding",
    "access-control-request-method",
    "x-amzn-trace-id",
    "x-forwarded-for",
    "x-http-method-override",
];

const HEADER_VALUES: &[&str] = &[
    "",
    "a b",
    "example.com:99999",
    "[::1",
    "[::1]:8080",
    "evil.example.com/path",
    "user@host",
    "http",
    "javascript",
    "ftp",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "multipart/form-data; boundary=x",
    "-1",
    "99999999999999999999",
    "https://app.example.com",
    "https://evil.example.com",
    "*",
    "null",
    "GET",
    "DELETE",
    "chunked",
    "é",
];

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        4 => select(HEADER_NAMES).prop_map(str::to_owned),
        1 => "[a-z-]{1,24}",
        1 => odd_string(),
    ];
    let value = prop_oneof![
        3 => select(HEADER_VALUES).prop_map(str::to_owned),
        1 => odd_string(),
    ];
    vec((name, value), 0..5)
}

/// The HTTP sources of the contract.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source {
    HttpApi,
    FunctionUrl,
    RestApi,
    Alb,
}

/// One HTTP request of one source, every part of it chosen.
#[derive(Clone, Debug)]
pub(super) struct HttpCase {
    pub(super) source: Source,
    pub(super) stage: String,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<String>,
    pub(super) base64: bool,
}

pub(super) fn http_case() -> impl Strategy<Value = HttpCase> {
    let source = select(vec![
        Source::HttpApi,
        Source::FunctionUrl,
        Source::RestApi,
        Source::Alb,
    ]);
    let stage = prop_oneof![
        8 => select(vec!["$default", "Prod"]).prop_map(str::to_owned),
        1 => select(vec!["prod", "", "a b", "..", "?x", "#", "/", "Prod/users", "%2F", "users"])
            .prop_map(str::to_owned),
        1 => odd_string(),
    ];
    (source, stage, method(), path(), query(), headers(), body()).prop_map(
        |(source, stage, method, path, query, headers, (body, base64))| HttpCase {
            source,
            stage,
            method,
            path,
            query,
            headers,
            body,
            base64,
        },
    )
}

fn query_maps(query: &str) -> (Value, Value) {
    let mut single = serde_json::Map::new();
    let mut multi = serde_json::Map::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        single.insert(k.to_owned(), json!(v));
        let values = multi.entry(k).or_insert_with(|| json!([]));
        if let Some(values) = values.as_array_mut() {
            values.push(json!(v));
        }
    }
    (Value::Object(single), Value::Object(multi))
}

/// The event the case's source sends, built by tests/support/events.rs and then
/// given exactly the case's path, query, stage, headers, body and flag.
pub(super) fn http_event(case: &HttpCase) -> String {
    let base = match case.source {
        Source::HttpApi => events::http_api(&case.method, "/", None),
        Source::FunctionUrl => events::function_url(&case.method, "/", None),
        Source::RestApi => events::rest_api(&case.stage, &case.method, "/", None),
        Source::Alb => events::alb(&case.method, "/", None),
    };
    let mut event: Value = serde_json::from_str(&base).expect("builder JSON");
    let (single, multi) = query_maps(&case.query);
    match case.source {
        Source::HttpApi | Source::FunctionUrl => {
            event["rawPath"] = json!(case.path);
            event["requestContext"]["http"]["path"] = json!(case.path);
            event["rawQueryString"] = json!(case.query);
            event["queryStringParameters"] = single;
            if matches!(case.source, Source::HttpApi) {
                event["requestContext"]["stage"] = json!(case.stage);
            }
        }
        Source::RestApi => {
            event["path"] = json!(case.path);
            event["requestContext"]["path"] = json!(format!("/{}{}", case.stage, case.path));
            event["pathParameters"] = json!({"proxy": case.path.trim_start_matches('/')});
            event["queryStringParameters"] = single;
            event["multiValueQueryStringParameters"] = multi;
        }
        Source::Alb => {
            event["path"] = json!(case.path);
            event["queryStringParameters"] = single;
        }
    }
    for (name, value) in &case.headers {
        event["headers"][name.as_str()] = json!(value);
        if matches!(case.source, Source::RestApi) {
            event["multiValueHeaders"][name.as_str()] = json!([value]);
        }
    }
    event["body"] = json!(case.body);
    event["isBase64Encoded"] = json!(case.base64);
    event.to_string()
}

/// Every sample of events/, and events built for every source and route.
pub(super) fn sample_events() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut samples: Vec<String> = std::fs::read_dir(&dir)
        .expect("events/")
        .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("event file"))
        .collect();
    samples.sort();
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"id":"user-00001"}"#);
    let users = format!("/users?limit=2&cursor={cursor}");
    let task = format!("/tasks/{UNRECORDED_TASK}");
    for (method, path, body) in [
        ("GET", users.as_str(), None),
        ("POST", "/async", Some(r#"{"delay_ms": 0}"#)),
        ("GET", "/async", None),
        ("GET", task.as_str(), None),
        ("GET", "/openapi.json", None),
        (
            "POST",
            "/events",
            Some(r#"{"task_id": "x", "delay_ms": 0}"#),
        ),
    ] {
        samples.push(events::http_api(method, path, body));
        samples.push(events::function_url(method, path, body));
        samples.push(events::rest_api("Prod", method, path, body));
        samples.push(events::alb(method, path, body));
    }
    samples.push(events::task(UNRECORDED_TASK, 0));
    samples
        .push(json!({"task_id": UNRECORDED_TASK, "delay_ms": 0, "fail_attempts": 1}).to_string());
    samples
}

/// One step from a JSON path in the event.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    At(usize),
}

/// Every path of `value`, the root first.
fn json_paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(Step::Key(key.clone()));
                json_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Step::At(i));
                json_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |value, step| match step {
        Step::Key(key) => &mut value[key.as_str()],
        Step::At(i) => &mut value[*i],
    })
}

/// A change to one node of an event's JSON.
#[derive(Clone, Debug)]
pub(super) enum JsonMutation {
    Replace(Index, Value),
    ReplaceWithString(Index, String),
    Remove(Index),
    Insert(Index, String, Value),
    /// The node becomes its own JSON text, as a string.
    Stringify(Index),
    FlipBool(Index),
}

/// A change to the event's text.
#[derive(Clone, Debug)]
pub(super) enum TextMutation {
    Truncate(Index),
    Delete(Index, usize),
    Insert(Index, String),
    Duplicate(Index, usize),
}

pub(super) fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        3 => (any::<Index>(), json_value()).prop_map(|(i, v)| JsonMutation::Replace(i, v)),
        3 => (any::<Index>(), odd_string()).prop_map(|(i, s)| JsonMutation::ReplaceWithString(i, s)),
        2 => any::<Index>().prop_map(JsonMutation::Remove),
        2 => (any::<Index>(), json_key(), json_value()).prop_map(|(i, k, v)| JsonMutation::Insert(i, k, v)),
        1 => any::<Index>().prop_map(JsonMutation::Stringify),
        1 => any::<Index>().prop_map(JsonMutation::FlipBool),
    ]
}

pub(super) fn text_mutation() -> impl Strategy<Value = TextMutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(TextMutation::Truncate),
        1 => (any::<Index>(), 1..40usize).prop_map(|(i, n)| TextMutation::Delete(i, n)),
        1 => (any::<Index>(), odd_string()).prop_map(|(i, s)| TextMutation::Insert(i, s)),
        1 => (any::<Index>(), 1..200usize).prop_map(|(i, n)| TextMutation::Duplicate(i, n)),
    ]
}

pub(super) fn apply_json(event: &mut Value, mutation: &JsonMutation) {
    let mut paths = Vec::new();
    json_paths(event, &mut Vec::new(), &mut paths);
    let pick = |index: &Index| paths[index.index(paths.len())].clone();
    match mutation {
        JsonMutation::Replace(i, v) => *at_path(event, &pick(i)) = v.clone(),
        JsonMutation::ReplaceWithString(i, s) => *at_path(event, &pick(i)) = json!(s),
        JsonMutation::Remove(i) => {
            let mut path = pick(i);
            match path.pop() {
                Some(Step::Key(key)) => {
                    if let Some(map) = at_path(event, &path).as_object_mut() {
                        map.remove(&key);
                    }
                }
                Some(Step::At(at)) => {
                    if let Some(items) = at_path(event, &path).as_array_mut() {
                        items.remove(at);
                    }
                }
                None => *event = Value::Null,
            }
        }
        JsonMutation::Insert(i, key, v) => match at_path(event, &pick(i)) {
            Value::Object(map) => {
                map.insert(key.clone(), v.clone());
            }
            Value::Array(items) => items.push(v.clone()),
            other => *other = json!({key.as_str(): v}),
        },
        JsonMutation::Stringify(i) => {
            let node = at_path(event, &pick(i));
            *node = Value::String(node.to_string());
        }
        JsonMutation::FlipBool(i) => {
            let node = at_path(event, &pick(i));
            *node = match node {
                Value::Bool(b) => Value::Bool(!*b),
                Value::Null => Value::Bool(true),
                _ => Value::Null,
            };
        }
    }
}

fn char_boundary(text: &str, index: &Index) -> usize {
    let mut at = index.index(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

pub(super) fn apply_text(text: &mut String, mutation: &TextMutation) {
    match mutation {
        TextMutation::Truncate(i) => {
            let at = char_boundary(text, i);
            text.truncate(at);
        }
        TextMutation::Delete(i, n) => {
            let at = char_boundary(text, i);
            let end = text[at..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(offset, _)| at + offset);
            text.replace_range(at..end, "");
        }
        TextMutation::Insert(i, s) => {
            let at = char_boundary(text, i);
            text.insert_str(at, s);
        }
        TextMutation::Duplicate(i, n) => {
            let at = char_boundary(text, i);
            let end = text[at..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(offset, _)| at + offset);
            let copy = text[at..end].to_owned();
            text.insert_str(end, &copy);
        }
    }
}
