//! Who is calling: what API Gateway (or a Function URL's IAM auth) verified,
//! read from the request context of the event, never from a header.
//!
//! One [`Caller`] per request, an axum extractor. Each identity has a stable
//! owner key ([`Caller::owner_key`]): the kind in front (`jwt:`, `iam:`,
//! `lambda:`), then the identity as JSON, so that kinds never collide (a JWT
//! whose `sub` is an IAM ARN is not that IAM user) and no two identities of
//! one kind share a key (`iss` and `sub` are kept apart by the JSON array).
//! Tasks record it as their `owner`; `Idempotency-Key`s and the per-minute
//! limit are scoped by it.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;
use serde_json::Value;

/// The caller of a request, as its source verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No authorizer's verdict in the request context: no authorizer, an
    /// Application Load Balancer, `cargo lambda watch`.
    Anonymous,
    /// A JWT (HTTP API JWT authorizer, or a REST API Cognito authorizer's
    /// claims): its issuer and subject together.
    Jwt { iss: String, sub: String },
    /// IAM auth (HTTP API or Function URL): the caller's ARN.
    Iam { user_arn: String },
    /// A Lambda authorizer's `principalId` (HTTP API or REST API).
    LambdaAuthorizer { principal_id: String },
}

impl Caller {
    /// The caller a request context names: see the contract's "Callers".
    pub fn of(context: Option<&RequestContext>) -> Self {
        match context {
            Some(RequestContext::ApiGatewayV2(context)) => {
                let Some(authorizer) = &context.authorizer else {
                    return Self::Anonymous;
                };
                if let Some(jwt) = &authorizer.jwt
                    && let Some(caller) = jwt_of(
                        jwt.claims.get("iss").map(String::as_str),
                        jwt.claims.get("sub").map(String::as_str),
                    )
                {
                    return caller;
                }
                if let Some(user_arn) = authorizer
                    .iam
                    .as_ref()
                    .and_then(|iam| iam.user_arn.as_deref())
                    .filter(|arn| !arn.is_empty())
                {
                    return Self::Iam {
                        user_arn: user_arn.to_owned(),
                    };
                }
                principal_of(authorizer.fields.get("principalId")).unwrap_or(Self::Anonymous)
            }
            Some(RequestContext::ApiGatewayV1(context)) => {
                let fields = &context.authorizer.fields;
                if let Some(Value::Object(claims)) = fields.get("claims") {
                    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
                    if let Some(caller) = jwt_of(claim("iss"), claim("sub")) {
                        return caller;
                    }
                }
                principal_of(fields.get("principalId")).unwrap_or(Self::Anonymous)
            }
            _ => Self::Anonymous,
        }
    }

    /// The stable key of this identity, as a task's `owner` holds it; `None`
    /// for an anonymous caller.
    pub fn owner_key(&self) -> Option<String> {
        let quoted = |value: &str| Value::from(value).to_string();
        match self {
            Self::Anonymous => None,
            Self::Jwt { iss, sub } => Some(format!(
                "jwt:{}",
                Value::from(vec![iss.as_str(), sub.as_str()])
            )),
            Self::Iam { user_arn } => Some(format!("iam:{}", quoted(user_arn))),
            Self::LambdaAuthorizer { principal_id } => {
                Some(format!("lambda:{}", quoted(principal_id)))
            }
        }
    }

    /// The space this caller's `Idempotency-Key`s and per-minute count live
    /// in: the owner key, or `anonymous` (shared by every anonymous caller;
    /// no owner key is that word, as each has a `:`).
    pub fn scope(&self) -> String {
        self.owner_key().unwrap_or_else(|| "anonymous".to_owned())
    }

    /// Whether this caller may see a task whose `owner` is `owner`: an
    /// anonymous task is anyone's who holds its id; an owned one only its
    /// owner's.
    pub fn may_reach(&self, owner: Option<&str>) -> bool {
        match owner {
            None => true,
            Some(owner) => self.owner_key().as_deref() == Some(owner),
        }
    }

    /// Whether the request carries no verified identity.
    pub fn is_anonymous(&self) -> bool {
        *self == Self::Anonymous
    }
}

fn jwt_of(iss: Option<&str>, sub: Option<&str>) -> Option<Caller> {
    match (iss, sub) {
        (Some(iss), Some(sub)) if !iss.is_empty() && !sub.is_empty() => Some(Caller::Jwt {
            iss: iss.to_owned(),
            sub: sub.to_owned(),
        }),
        _ => None,
    }
}

fn principal_of(principal: Option<&Value>) -> Option<Caller> {
    match principal {
        Some(Value::String(id)) if !id.is_empty() => Some(Caller::LambdaAuthorizer {
            principal_id: id.clone(),
        }),
        _ => None,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::of(parts.extensions.get::<RequestContext>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The caller of an HTTP API v2 / Function URL event with this request
    /// context's `authorizer` (and these headers).
    fn v2(authorizer: Value, headers: Value) -> Caller {
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/tasks", "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "http": {"method": "GET", "path": "/tasks", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": "$default",
                "time": "26/Nov/2026:08:00:00 +0000", "timeEpoch": 0, "authorizer": authorizer
            },
            "isBase64Encoded": false
        });
        caller_of(&event)
    }

    fn v1(authorizer: Value) -> Caller {
        let event = json!({
            "resource": "/tasks", "path": "/tasks", "httpMethod": "GET",
            "headers": {"Authorization": "Bearer x"}, "multiValueHeaders": {},
            "requestContext": {
                "accountId": "123456789012", "resourceId": "r", "stage": "Prod", "requestId": "r",
                "identity": {"sourceIp": "127.0.0.1"}, "resourcePath": "/tasks", "httpMethod": "GET",
                "apiId": "api", "path": "/Prod/tasks", "authorizer": authorizer
            },
            "isBase64Encoded": false
        });
        caller_of(&event)
    }

    fn caller_of(event: &Value) -> Caller {
        let request = lambda_http::request::from_str(&event.to_string()).expect("event");
        Caller::of(request.extensions().get::<RequestContext>())
    }

    const ISS: &str = "https://issuer.example.com/";

    #[test]
    fn an_http_api_jwt_authorizer_names_the_caller_by_iss_and_sub() {
        let caller = v2(
            json!({"jwt": {"claims": {"iss": ISS, "sub": "ada", "aud": "api"}, "scopes": null}}),
            json!({}),
        );
        assert_eq!(
            caller,
            Caller::Jwt {
                iss: ISS.to_owned(),
                sub: "ada".to_owned()
            }
        );
        assert_eq!(
            caller.owner_key().as_deref(),
            Some(r#"jwt:["https://issuer.example.com/","ada"]"#)
        );
    }

    #[test]
    fn iam_auth_on_an_http_api_or_a_function_url_names_the_user_arn() {
        let arn = "arn:aws:iam::123456789012:user/ada";
        let caller = v2(
            json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA", "userArn": arn, "userId": "AIDA"}}),
            json!({}),
        );
        assert_eq!(
            caller,
            Caller::Iam {
                user_arn: arn.to_owned()
            }
        );
        assert_eq!(
            caller.owner_key().as_deref(),
            Some(r#"iam:"arn:aws:iam::123456789012:user/ada""#)
        );
    }

    #[test]
    fn an_http_api_lambda_authorizer_names_its_principal_id() {
        let caller = v2(
            json!({"lambda": {"principalId": "user-7", "tier": "gold"}}),
            json!({}),
        );
        assert_eq!(
            caller,
            Caller::LambdaAuthorizer {
                principal_id: "user-7".to_owned()
            }
        );
        assert_eq!(caller.owner_key().as_deref(), Some(r#"lambda:"user-7""#));
    }

    #[test]
    fn a_rest_api_reads_cognito_claims_first_then_the_principal_id() {
        assert_eq!(
            v1(json!({"claims": {"iss": ISS, "sub": "ada", "email": "a@x"}, "principalId": "p"})),
            Caller::Jwt {
                iss: ISS.to_owned(),
                sub: "ada".to_owned()
            }
        );
        assert_eq!(
            v1(json!({"principalId": "user-7", "integrationLatency": 12})),
            Caller::LambdaAuthorizer {
                principal_id: "user-7".to_owned()
            }
        );
        assert_eq!(v1(json!({"claims": {"sub": "ada"}})), Caller::Anonymous);
        assert_eq!(v1(json!(null)), Caller::Anonymous);
    }

    #[test]
    fn headers_name_no_one_and_an_alb_or_no_authorizer_is_anonymous() {
        let headers = json!({"authorization": "Bearer eyJhbGciOi", "x-user": "ada", "x-amzn-oidc-identity": "ada"});
        assert_eq!(v2(Value::Null, headers), Caller::Anonymous);
        assert_eq!(v2(json!({}), json!({})), Caller::Anonymous);
        assert_eq!(
            v2(json!({"jwt": {"claims": {"sub": "ada"}}}), json!({})),
            Caller::Anonymous,
            "a JWT without iss names no one"
        );
        let alb = json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/0"}},
            "httpMethod": "GET", "path": "/tasks", "queryStringParameters": {},
            "headers": {"authorization": "Bearer x", "x-amzn-oidc-identity": "ada"},
            "body": "", "isBase64Encoded": false
        });
        assert_eq!(caller_of(&alb), Caller::Anonymous);
        assert_eq!(Caller::of(None), Caller::Anonymous);
        assert_eq!(Caller::Anonymous.owner_key(), None);
        assert_eq!(Caller::Anonymous.scope(), "anonymous");
    }

    #[test]
    fn identities_of_different_kinds_or_split_differently_never_share_a_key() {
        let arn = "arn:aws:iam::123456789012:user/ada".to_owned();
        let callers = [
            Caller::Jwt {
                iss: ISS.to_owned(),
                sub: arn.clone(),
            },
            Caller::Iam {
                user_arn: arn.clone(),
            },
            Caller::LambdaAuthorizer {
                principal_id: arn.clone(),
            },
            Caller::Jwt {
                iss: "a\",\"b".to_owned(),
                sub: "c".to_owned(),
            },
            Caller::Jwt {
                iss: "a".to_owned(),
                sub: "b\",\"c".to_owned(),
            },
            Caller::LambdaAuthorizer {
                principal_id: "anonymous".to_owned(),
            },
        ];
        let mut keys: Vec<String> = callers.iter().map(Caller::scope).collect();
        keys.push(Caller::Anonymous.scope());
        let count = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), count, "{keys:?}");
    }

    #[test]
    fn an_anonymous_task_is_anyones_and_an_owned_one_only_its_owners() {
        let ada = Caller::LambdaAuthorizer {
            principal_id: "ada".to_owned(),
        };
        let bob = Caller::LambdaAuthorizer {
            principal_id: "bob".to_owned(),
        };
        let owner = ada.owner_key();
        assert!(ada.may_reach(None));
        assert!(Caller::Anonymous.may_reach(None));
        assert!(ada.may_reach(owner.as_deref()));
        assert!(!bob.may_reach(owner.as_deref()));
        assert!(!Caller::Anonymous.may_reach(owner.as_deref()));
    }
}
