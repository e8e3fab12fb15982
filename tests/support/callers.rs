//! Requests from callers of every kind the contract names: the events of
//! tests/support/events.rs with an authorizer's verdict in their request
//! context, as API Gateway and Function URLs deliver them.

use serde_json::{Value, json};

use super::events;

/// The JWT issuer of the tests' callers.
pub const ISSUER: &str = "https://issuer.example.com/";

/// Who sends a request, and through which source.
#[derive(Clone, Debug)]
pub enum Via {
    /// No authorizer: an HTTP API v2 request as it is today.
    Anonymous,
    /// An HTTP API JWT authorizer's claims (`iss` = [`ISSUER`], `sub`).
    HttpJwt(&'static str),
    /// An HTTP API with IAM auth (`userArn`).
    HttpIam(&'static str),
    /// A Function URL with IAM auth (`userArn`).
    FunctionUrlIam(&'static str),
    /// An HTTP API Lambda authorizer's context (`principalId`).
    HttpLambda(&'static str),
    /// A REST API Cognito authorizer's claims (`iss` = [`ISSUER`], `sub`), stage `Prod`.
    RestCognito(&'static str),
    /// A REST API Lambda authorizer's `principalId`, stage `Prod`.
    RestLambda(&'static str),
}

/// The IAM ARN of a user named `name`.
pub fn arn(name: &str) -> String {
    format!("arn:aws:iam::123456789012:user/{name}")
}

impl Via {
    /// The event of `method path_and_query` (with `body`) from this caller.
    pub fn event(&self, method: &str, path_and_query: &str, body: Option<&str>) -> String {
        let (event, authorizer) = match self {
            Self::Anonymous => return events::http_api(method, path_and_query, body),
            Self::HttpJwt(sub) => (
                events::http_api(method, path_and_query, body),
                json!({"jwt": {"claims": {"iss": ISSUER, "sub": sub, "aud": "async-api"}, "scopes": null}}),
            ),
            Self::HttpIam(user) => (events::http_api(method, path_and_query, body), iam(user)),
            Self::FunctionUrlIam(user) => (
                events::function_url(method, path_and_query, body),
                iam(user),
            ),
            Self::HttpLambda(principal) => (
                events::http_api(method, path_and_query, body),
                json!({"lambda": {"principalId": principal}}),
            ),
            Self::RestCognito(sub) => (
                events::rest_api("Prod", method, path_and_query, body),
                json!({"claims": {"iss": ISSUER, "sub": sub, "token_use": "id"}}),
            ),
            Self::RestLambda(principal) => (
                events::rest_api("Prod", method, path_and_query, body),
                json!({"principalId": principal, "integrationLatency": 3}),
            ),
        };
        let mut event: Value = serde_json::from_str(&event).expect("event JSON");
        event["requestContext"]["authorizer"] = authorizer;
        event.to_string()
    }
}

fn iam(user: &str) -> Value {
    json!({"iam": {"accessKey": "AKIAEXAMPLE", "accountId": "123456789012", "callerId": "AIDAEXAMPLE",
        "principalOrgId": null, "userArn": arn(user), "userId": "AIDAEXAMPLE"}})
}
