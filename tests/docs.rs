//! The API's self-description: `/openapi.json` matches the routes exactly,
//! states every bound, status and header of the contract, and `/docs` serves
//! Swagger UI for it. Also CORS, which browser clients of `/docs` rely on.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::fake_lambda::FakeLambda;
use support::{Fixture, dead_endpoint, events};

fn documented_operations(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .map(|m| m.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_of_exactly_the_contracts_routes() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let reply = fixture.http("GET", "/openapi.json", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body["openapi"], "3.1.0");
    assert_eq!(
        reply.body,
        serde_json::to_value(async_api::openapi()).expect("document"),
        "src/openapi.json is not the document the code describes: run `make openapi`"
    );

    let set = |methods: &[&str]| {
        methods
            .iter()
            .map(|m| m.to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        documented_operations(&reply.body),
        BTreeMap::from([
            ("/users".to_owned(), set(&["GET"])),
            ("/async".to_owned(), set(&["GET", "POST"])),
            ("/tasks".to_owned(), set(&["GET"])),
            ("/tasks/{task_id}".to_owned(), set(&["GET", "DELETE"])),
            ("/openapi.json".to_owned(), set(&["GET"])),
            ("/docs".to_owned(), set(&["GET"])),
        ])
    );
}

/// The file the binary serves is, byte for byte, what `make openapi` writes.
#[test]
fn src_openapi_json_is_the_generated_document_as_make_openapi_writes_it() {
    let generated = format!(
        "{}\n",
        async_api::openapi().to_pretty_json().expect("document")
    );
    assert!(
        async_api::docs::OPENAPI_JSON == generated,
        "src/openapi.json is not the document the code describes: run `make openapi`"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served_and_every_other_method_is_not() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let doc = serde_json::to_value(async_api::openapi()).expect("document");
    for (path, methods) in documented_operations(&doc) {
        let concrete = path.replace("{task_id}", "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let reply = fixture.http(method, &concrete, None).await;
            if methods.contains(method) {
                assert!(
                    ![404, 405].contains(&reply.status) || path.contains("{task_id}"),
                    "{method} {path}: {}",
                    reply.status
                );
                if reply.status == 404 {
                    assert_eq!(
                        reply.body["error"]["message"],
                        "No task 0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c"
                    );
                }
            } else {
                assert_eq!(
                    reply.status, 405,
                    "{method} {path} is served but not documented"
                );
            }
        }
    }
    for path in [
        "/",
        "/user",
        "/tasks/",
        "/events",
        "/docs/swagger-ui.css",
        "/openapi.yaml",
        "/users/u1",
    ] {
        assert_eq!(
            fixture.http("GET", path, None).await.status,
            404,
            "{path} is served but not documented"
        );
    }
}

#[tokio::test]
async fn the_document_states_every_bound_status_and_header() {
    let doc = serde_json::to_value(async_api::openapi()).expect("document");
    let users = &doc["paths"]["/users"]["get"];
    let limit = users["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit");
    assert_eq!(limit["in"], "query");
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(1000))
    );
    assert_eq!(limit["schema"]["default"], 100);
    let cursor = users["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .find(|p| p["name"] == "cursor")
        .expect("cursor");
    assert_eq!(cursor["in"], "query");

    let body = &doc["components"]["schemas"]["StartTask"];
    assert_eq!(
        (
            &body["properties"]["delay_ms"]["minimum"],
            &body["properties"]["delay_ms"]["maximum"]
        ),
        (&json!(0), &json!(60000))
    );
    assert_eq!(body["additionalProperties"], false);

    let statuses = |op: &Value| {
        op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    let set = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(statuses(users), set(&["200", "400", "401", "500", "503"]));
    for (method, codes) in [
        (
            "get",
            set(&[
                "202", "400", "401", "409", "413", "422", "429", "500", "503",
            ]),
        ),
        (
            "post",
            set(&[
                "202", "400", "401", "409", "413", "415", "422", "429", "500", "503",
            ]),
        ),
    ] {
        let op = &doc["paths"]["/async"][method];
        assert_eq!(statuses(op), codes, "{method} /async");
        assert!(
            op["responses"]["202"]["headers"]["Location"].is_object(),
            "Location on 202"
        );
        assert!(
            op["responses"]["202"]["headers"]["Idempotent-Replayed"].is_object(),
            "Idempotent-Replayed on 202"
        );
        let key = op["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .expect("Idempotency-Key");
        assert_eq!(key["in"], "header");
        assert_eq!(
            (&key["schema"]["minLength"], &key["schema"]["maxLength"]),
            (&json!(1), &json!(255))
        );
    }
    let request_body = &doc["paths"]["/async"]["post"]["requestBody"];
    assert_ne!(
        request_body["required"], true,
        "the body of POST /async is optional"
    );
    assert_eq!(
        statuses(&doc["paths"]["/tasks/{task_id}"]["get"]),
        set(&["200", "400", "401", "404", "500", "503"])
    );
    assert!(
        doc["paths"]["/tasks/{task_id}"]["get"]["responses"]["200"]["headers"]["Retry-After"]
            .is_object()
    );
    assert_eq!(
        statuses(&doc["paths"]["/tasks/{task_id}"]["delete"]),
        set(&["200", "400", "401", "404", "409", "500", "503"])
    );
    // GET /tasks: its query, its statuses, and the bearer scheme it needs.
    let list = &doc["paths"]["/tasks"]["get"];
    assert_eq!(statuses(list), set(&["200", "400", "401", "500", "503"]));
    let param = |name: &str| {
        list["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    assert_eq!(
        (
            &param("limit")["schema"]["minimum"],
            &param("limit")["schema"]["maximum"]
        ),
        (&json!(1), &json!(100))
    );
    assert_eq!(param("limit")["schema"]["default"], 20);
    assert_eq!(param("cursor")["in"], "query");
    assert_eq!(param("status")["in"], "query");
    assert_eq!(list["security"], json!([{"bearer": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "A JWT from the issuer the deployment trusts (template parameters JwtIssuer and JwtAudience); without one the caller is anonymous"})
    );
    assert_eq!(
        doc["security"],
        json!([{}, {"bearer": []}]),
        "a token is optional elsewhere"
    );
    assert!(
        doc["components"]["responses"]["TooManyRequestsResponse"]["headers"]["Retry-After"]
            .is_object()
    );
    assert!(
        doc["components"]["responses"]["UnauthorizedResponse"]["headers"]["WWW-Authenticate"]
            .is_object()
    );
    assert!(
        doc["components"]["responses"]["ConflictResponse"]["headers"]["Retry-After"].is_object()
    );
    assert!(
        doc["components"]["responses"]["UnavailableResponse"]["headers"]["Retry-After"].is_object()
    );
    assert_eq!(
        doc["components"]["schemas"]["TaskStatus"]["enum"],
        json!(["queued", "running", "succeeded", "failed", "canceled"])
    );
    assert_eq!(
        doc["components"]["schemas"]["ErrorCode"]["enum"],
        json!([
            "bad_request",
            "unauthorized",
            "not_found",
            "method_not_allowed",
            "conflict",
            "payload_too_large",
            "unsupported_media_type",
            "idempotency_key_reused",
            "too_many_requests",
            "service_unavailable",
            "internal"
        ])
    );
}

#[tokio::test]
async fn docs_serves_swagger_ui_for_the_document_from_the_binary_itself() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let event = events::http_api("GET", "/docs", None);
    let request = lambda_http::request::from_str(&event).expect("event");
    let response = fixture.function.handle(request).await.expect("answer");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = std::str::from_utf8(response.body()).expect("a UTF-8 page");
    assert!(page.contains(r#"url: "openapi.json""#));
    assert!(
        page.contains("SwaggerUIBundle"),
        "Swagger UI's script is inline"
    );
    assert!(!page.contains("<script src="), "no script from elsewhere");
    assert!(
        !page.contains("<link rel=\"stylesheet\""),
        "no style from elsewhere"
    );
}

#[tokio::test]
async fn a_cors_preflight_from_an_allowed_origin_is_answered() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let preflight = |origin: &str| {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/users", "rawQueryString": "",
            "headers": {"host": "api.example.com", "origin": origin, "access-control-request-method": "GET"},
            "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "domainPrefix": "api", "http": {"method": "OPTIONS", "path": "/users", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "tests"}, "requestId": "id", "routeKey": "$default",
                "stage": "$default", "time": "26/Nov/2026:08:00:00 +0000", "timeEpoch": 0},
            "isBase64Encoded": false
        })
        .to_string()
    };
    let allowed = fixture
        .invoke(&preflight("https://app.example.com"))
        .await
        .expect("answer");
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(
        allowed
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET") && m.contains("POST"))
    );

    let other = fixture
        .invoke(&preflight("https://evil.example.net"))
        .await
        .expect("answer");
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// The names of a JSON object's members.
fn names(object: &Value) -> BTreeSet<String> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("an object: {object}"))
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_task_schema_names_and_requires_every_key_of_a_task_answer_result_included() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let started = fixture.http("POST", "/async", None).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let status_url = started.body["status_url"].as_str().expect("status_url");
    let task = fixture.http("GET", status_url, None).await;
    assert_eq!(task.status, 200, "{}", task.body);
    let keys = names(&task.body);
    assert!(keys.contains("result"), "{}", task.body);

    let doc = serde_json::to_value(async_api::openapi()).expect("document");
    let schema = &doc["components"]["schemas"]["TaskRecord"];
    assert_eq!(names(&schema["properties"]), keys, "{schema}");
    // Every key is in every answer (`error` and `result` as null).
    let required: BTreeSet<String> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .map(|name| name.as_str().expect("a name").to_owned())
        .collect();
    assert_eq!(required, keys, "{schema}");
    // The work returns any JSON value: no type narrows `result`.
    let result = &schema["properties"]["result"];
    assert_eq!(result.get("type"), None, "{result}");
    assert_eq!(result.get("$ref"), None, "{result}");
    assert!(
        result["description"]
            .as_str()
            .is_some_and(|text| text.contains("`succeeded`")),
        "{result}"
    );
    for (method, status) in [("get", "200"), ("delete", "200")] {
        assert_eq!(
            doc["paths"]["/tasks/{task_id}"][method]["responses"][status]["content"]["application/json"]
                ["schema"],
            json!({"$ref": "#/components/schemas/TaskRecord"}),
            "{method} /tasks/{{task_id}}"
        );
    }
}

#[tokio::test]
async fn a_tasks_documented_retry_after_is_whole_seconds_of_at_least_1() {
    // The contract: "Retry-After (seconds, an integer ≥ 1)".
    let doc = serde_json::to_value(async_api::openapi()).expect("document");
    let retry_after = &doc["paths"]["/tasks/{task_id}"]["get"]["responses"]["200"]["headers"]["Retry-After"]
        ["schema"];
    assert_eq!(retry_after["type"], "integer", "{retry_after}");
    assert_eq!(retry_after["minimum"], 1, "{retry_after}");
}
