//! Real Lambda events of every source the contract names, as JSON text, so
//! that lambda_http itself parses them in the tests.

use serde_json::{Map, Value, json};

fn split(path_and_query: &str) -> (&str, &str) {
    path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""))
}

fn query_map(query: &str) -> Map<String, Value> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_owned(), Value::String(v.to_owned()))
        })
        .collect()
}

fn multi_query_map(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let values = map.entry(k).or_insert_with(|| json!([]));
        values.as_array_mut().expect("array").push(json!(v));
    }
    map
}

fn v2(domain: &str, stage: &str, method: &str, path_and_query: &str, body: Option<&str>) -> String {
    let (path, query) = split(path_and_query);
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": domain, "content-type": "application/json", "user-agent": "tests"},
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query_map(query)) },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": domain,
            "domainPrefix": domain.split('.').next().unwrap_or_default(),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
            "requestId": "gw-request-id",
            "routeKey": "$default",
            "stage": stage,
            "time": "26/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1_795_680_000_000_u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// API Gateway HTTP API, payload format 2.0, `$default` stage.
pub fn http_api(method: &str, path_and_query: &str, body: Option<&str>) -> String {
    v2(
        "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "$default",
        method,
        path_and_query,
        body,
    )
}

/// Lambda Function URL (payload format 2.0 on a `lambda-url` domain).
pub fn function_url(method: &str, path_and_query: &str, body: Option<&str>) -> String {
    v2(
        "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
        "$default",
        method,
        path_and_query,
        body,
    )
}

/// API Gateway REST API (payload format 1.0) on stage `stage`, with `path` as
/// the event carries it (normally without the stage).
pub fn rest_api(stage: &str, method: &str, path_and_query: &str, body: Option<&str>) -> String {
    let (path, query) = split(path_and_query);
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Host": "abcdef1234.execute-api.us-east-1.amazonaws.com", "Content-Type": "application/json"},
        "multiValueHeaders": {"Host": ["abcdef1234.execute-api.us-east-1.amazonaws.com"], "Content-Type": ["application/json"]},
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query_map(query)) },
        "multiValueQueryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(multi_query_map(query)) },
        "pathParameters": {"proxy": path.trim_start_matches('/')},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "abc123",
            "stage": stage,
            "requestId": "gw-request-id",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "tests"},
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "apiId": "abcdef1234",
            // What the client called: the stage in front, once.
            "path": if path.starts_with(&format!("/{stage}/")) { path.to_owned() } else { format!("/{stage}{path}") },
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": 1_795_680_000_000_u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// Application Load Balancer target-group event.
pub fn alb(method: &str, path_and_query: &str, body: Option<&str>) -> String {
    let (path, query) = split(path_and_query);
    json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/0123456789abcdef"}},
        "httpMethod": method,
        "path": path,
        "queryStringParameters": query_map(query),
        "headers": {"host": "api.example.com", "content-type": "application/json", "x-forwarded-proto": "https"},
        "body": body.unwrap_or_default(),
        "isBase64Encoded": false
    })
    .to_string()
}

/// The function's own task event.
pub fn task(task_id: &str, delay_ms: u64) -> String {
    json!({"task_id": task_id, "delay_ms": delay_ms}).to_string()
}

/// `event` with its request headers changed: each `(name, Some(value))` set,
/// each `(name, None)` removed, names matched regardless of case, in both the
/// single-value and the multi-value maps the event carries.
pub fn with_headers(event: &str, changes: &[(&str, Option<&str>)]) -> String {
    let mut event: Value = serde_json::from_str(event).expect("event JSON");
    for (field, multi) in [("headers", false), ("multiValueHeaders", true)] {
        let Some(headers) = event.get_mut(field).and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, value) in changes {
            headers.retain(|existing, _| !existing.eq_ignore_ascii_case(name));
            if let Some(value) = value {
                let value = if multi { json!([value]) } else { json!(value) };
                headers.insert((*name).to_owned(), value);
            }
        }
    }
    event.to_string()
}
