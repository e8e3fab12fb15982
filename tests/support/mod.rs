//! What every integration test shares: a local DynamoDB (the one
//! `AWS_ENDPOINT_URL_DYNAMODB` names, as `make test` sets it, else a dynalite
//! started once per test process), fresh tables
//! per test, real Lambda events parsed by lambda_http, and a stand-in for the
//! Lambda `Invoke` API on loopback.
#![allow(dead_code)]

pub mod callers;
pub mod events;
pub mod fake_lambda;
pub mod runtime_api;
pub mod samples;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use async_api::FunctionError;
use async_api::config::Config;
use async_api::{AppState, Function, dynamodb_config, lambda_config};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use lambda_http::{Body, RequestExt};
use serde_json::Value;

/// The name the function invokes itself by, in tests.
pub const FUNCTION_NAME: &str = "async-api-test";

/// The DynamoDB endpoint for this test binary.
pub fn dynamodb_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<(String, Option<Child>)> = OnceLock::new();
    &ENDPOINT
        .get_or_init(|| match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => start_dynalite(),
        })
        .0
}

/// Starts dynalite on a port the OS picks. The child keeps its stdin pipe and
/// exits when the test binary does and the pipe closes.
fn start_dynalite() -> (String, Option<Child>) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new("node")
        .arg(format!("{root}/tests/support/dynalite.js"))
        .arg("--exit-with-stdin")
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start dynalite (run `npm ci` first)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("dynalite stdout"))
        .read_line(&mut line)
        .expect("read dynalite port");
    let port: u16 = line.trim().parse().expect("dynalite prints its port");
    (format!("http://127.0.0.1:{port}"), Some(child))
}

/// `command` without what cargo sets for a test of this package
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_*` and the like), for a command that runs
/// cargo: a build script that reruns when they change (ring's does) would be
/// rebuilt by that cargo, and again by the next plain build.
pub fn without_cargo_test_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"].contains(&&*name)
        {
            command.env_remove(&*name);
        }
    }
    command
}

/// AWS configuration for tests: fixed region and dummy credentials, so nothing
/// on the machine (profiles, instance metadata) is consulted.
pub fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .http_client(async_api::https_client())
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .build()
}

/// A DynamoDB client for `endpoint`, with the function's own timeouts and retries.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        dynamodb_config(&sdk_config())
            .endpoint_url(endpoint)
            .build(),
    )
}

/// A port free now, for another process to listen on (`cargo lambda
/// watch`, `sam local start-api`); unlike [`dead_endpoint`]'s, not kept.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A URL where nothing listens.
pub fn dead_endpoint() -> String {
    // Bound and never listened on, so a connection is refused at once; and
    // kept bound until the test binary exits, so the OS cannot give the port
    // to a server another test starts meanwhile, whose 4xx would make the
    // function's answer a 500 (as in one CI run, 2026-12-06).
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    std::mem::forget(socket);
    format!("http://127.0.0.1:{port}")
}

/// A test's own pair of tables, and the function wired to them.
pub struct Fixture {
    pub users_table: String,
    pub tasks_table: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub function: Function,
}

impl Fixture {
    /// Fresh tables on the local DynamoDB; `Invoke` goes to `lambda_endpoint`.
    pub async fn new(lambda_endpoint: &str) -> Self {
        let dynamodb = dynamodb_client(dynamodb_endpoint());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let users_table = format!("users-{suffix}");
        let tasks_table = format!("tasks-{suffix}");
        create_table(&dynamodb, &users_table, "id").await;
        create_table(&dynamodb, &tasks_table, "task_id").await;
        let function = function_for(
            &users_table,
            &tasks_table,
            dynamodb_endpoint(),
            lambda_endpoint,
        );
        Self {
            users_table,
            tasks_table,
            dynamodb,
            function,
        }
    }

    /// The same tables, reached through another DynamoDB endpoint.
    pub fn function_with_dynamodb(&self, dynamodb_endpoint: &str) -> Function {
        function_for(
            &self.users_table,
            &self.tasks_table,
            dynamodb_endpoint,
            &dead_endpoint(),
        )
    }

    /// The same tables and `Invoke` endpoint, with the configuration changed
    /// by `change` (e.g. `REQUIRE_CALLER`, `TASKS_PER_MINUTE_PER_CALLER`).
    pub fn function_with(
        &self,
        lambda_endpoint: &str,
        change: impl FnOnce(&mut Config),
    ) -> Function {
        let mut state = state_for(
            &self.users_table,
            &self.tasks_table,
            dynamodb_endpoint(),
            lambda_endpoint,
            vec![lambda_http::http::HeaderValue::from_static(CORS_ORIGIN)],
        );
        change(std::sync::Arc::make_mut(&mut state.config));
        Function::new(state)
    }

    /// The same tables and `Invoke` endpoint, with no CORS origin configured.
    pub fn function_without_cors(&self, lambda_endpoint: &str) -> Function {
        Function::new(state_for(
            &self.users_table,
            &self.tasks_table,
            dynamodb_endpoint(),
            lambda_endpoint,
            Vec::new(),
        ))
    }

    /// The same tables and `Invoke` endpoint, with the configuration changed
    /// by `configure` (as the environment would set it at init).
    pub fn function_with_config(
        &self,
        lambda_endpoint: &str,
        configure: impl FnOnce(&mut Config),
    ) -> Function {
        let mut state = state_for(
            &self.users_table,
            &self.tasks_table,
            dynamodb_endpoint(),
            lambda_endpoint,
            vec![lambda_http::http::HeaderValue::from_static(CORS_ORIGIN)],
        );
        configure(std::sync::Arc::make_mut(&mut state.config));
        Function::new(state)
    }

    /// Writes `count` users `user-00000`… with a name and an email.
    pub async fn seed_users(&self, count: usize) {
        let items: Vec<HashMap<String, AttributeValue>> = (0..count)
            .map(|i| {
                HashMap::from([
                    ("id".to_owned(), AttributeValue::S(format!("user-{i:05}"))),
                    ("name".to_owned(), AttributeValue::S(format!("User {i}"))),
                    (
                        "email".to_owned(),
                        AttributeValue::S(format!("user{i}@example.com")),
                    ),
                ])
            })
            .collect();
        self.put_items(&self.users_table, items).await;
    }

    /// The exact body text of an HTTP API v2 request's answer.
    pub async fn http_text(&self, method: &str, path_and_query: &str) -> String {
        let event = events::http_api(method, path_and_query, None);
        let request = lambda_http::request::from_str(&event).expect("event");
        body_text(
            self.function
                .handle(request)
                .await
                .expect("answer")
                .into_body(),
        )
    }

    /// Writes items with BatchWriteItem, 25 at a time.
    pub async fn put_items(&self, table: &str, items: Vec<HashMap<String, AttributeValue>>) {
        for chunk in items.chunks(25) {
            let requests = chunk
                .iter()
                .map(|item| {
                    aws_sdk_dynamodb::types::WriteRequest::builder()
                        .put_request(
                            aws_sdk_dynamodb::types::PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .expect("put request"),
                        )
                        .build()
                })
                .collect();
            let mut pending = Some(HashMap::from([(table.to_owned(), requests)]));
            while let Some(batch) = pending.take().filter(|b| !b.is_empty()) {
                let out = self
                    .dynamodb
                    .batch_write_item()
                    .set_request_items(Some(batch))
                    .send()
                    .await
                    .expect("batch write");
                pending = out.unprocessed_items;
            }
        }
    }

    /// Sets a task's `created_ms`, as if `/async` had created it then: how
    /// the tests pass the backstop's 5 minutes (unscaled) without waiting.
    /// Send it, with any condition or further change added.
    pub fn backdate(
        &self,
        task_id: &str,
        created_ms: u64,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.dynamodb
            .update_item()
            .table_name(&self.tasks_table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET created_ms = :created")
            .expression_attribute_values(":created", AttributeValue::N(created_ms.to_string()))
    }

    /// A task recorded and enqueued as `/async` leaves it once Lambda has its
    /// event, for a test that delivers the event itself; its id.
    pub async fn enqueued_task(&self) -> String {
        let task_id = uuid::Uuid::new_v4().to_string();
        async_api::tasks::TaskStore {
            dynamodb: &self.dynamodb,
            table: &self.tasks_table,
        }
        .put_enqueued(&task_id)
        .await
        .expect("a queued, enqueued task record");
        task_id
    }

    /// The state of a function on this fixture's tables whose DynamoDB is
    /// `dynamodb` and whose `Invoke` is `lambda` (a fault proxy, a dead
    /// endpoint), with SDK bounds short enough that a lost answer is retried
    /// within the test: `attempts` attempts of `attempt_timeout` each, 20 ms
    /// of backoff apart at first, and one attempt's time more for the call.
    pub fn state_through(
        &self,
        dynamodb: &str,
        lambda: &str,
        attempt_timeout: Duration,
        attempts: u32,
    ) -> AppState {
        let sdk = sdk_config();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_attempt_timeout(attempt_timeout)
            .operation_timeout(attempt_timeout * (attempts + 1))
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(Duration::from_millis(20));
        AppState {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                dynamodb_config(&sdk)
                    .endpoint_url(dynamodb)
                    .timeout_config(timeouts.clone())
                    .retry_config(retries.clone())
                    .build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                lambda_config(&sdk)
                    .endpoint_url(lambda)
                    .timeout_config(timeouts)
                    .retry_config(retries)
                    .build(),
            ),
            ..state_for(
                &self.users_table,
                &self.tasks_table,
                dynamodb,
                lambda,
                Vec::new(),
            )
        }
    }

    /// The raw task record, if any.
    pub async fn task_item(&self, task_id: &str) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(&self.tasks_table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("get task")
            .item
    }

    /// How many items a table holds.
    pub async fn count(&self, table: &str) -> usize {
        let out = self
            .dynamodb
            .scan()
            .table_name(table)
            .send()
            .await
            .expect("scan");
        out.items().len()
    }

    /// Delivers an event as Lambda would and returns what the function answers.
    pub async fn invoke(&self, event: &str) -> Result<Reply, FunctionError> {
        invoke(&self.function, event).await
    }

    /// Sends an HTTP API v2 request and returns the answer.
    pub async fn http(&self, method: &str, path_and_query: &str, body: Option<&str>) -> Reply {
        self.invoke(&events::http_api(method, path_and_query, body))
            .await
            .expect("an HTTP request always gets an HTTP answer")
    }

    /// [`Self::http`] with request headers set (`Some`) or removed (`None`):
    /// see [`events::with_headers`].
    pub async fn http_with(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&str>,
        headers: &[(&str, Option<&str>)],
    ) -> Reply {
        let event = events::with_headers(&events::http_api(method, path_and_query, body), headers);
        self.invoke(&event)
            .await
            .expect("an HTTP request always gets an HTTP answer")
    }
}

/// The origin the fixtures' functions allow CORS for.
pub const CORS_ORIGIN: &str = "https://app.example.com";

fn function_for(
    users: &str,
    tasks: &str,
    dynamodb_endpoint: &str,
    lambda_endpoint: &str,
) -> Function {
    Function::new(state_for(
        users,
        tasks,
        dynamodb_endpoint,
        lambda_endpoint,
        vec![lambda_http::http::HeaderValue::from_static(CORS_ORIGIN)],
    ))
}

/// The state of a function on `users` and `tasks` through these endpoints.
pub fn state_for(
    users: &str,
    tasks: &str,
    dynamodb_endpoint: &str,
    lambda_endpoint: &str,
    cors_allowed_origins: Vec<lambda_http::http::HeaderValue>,
) -> AppState {
    let sdk = sdk_config();
    AppState {
        config: std::sync::Arc::new(Config {
            users_table: users.to_owned(),
            tasks_table: tasks.to_owned(),
            function_name: FUNCTION_NAME.to_owned(),
            cors_allowed_origins,
            metrics_namespace: "AsyncApi".to_owned(),
            task_event_max_age: Duration::from_secs(3600),
            task_max_retry_attempts: 2,
            // Off here, so that a test's table holds only its tasks and keys;
            // tests/rate_limit.rs and tests/callers.rs turn them on.
            require_caller: false,
            tasks_per_minute_per_caller: 0,
        }),
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            dynamodb_config(&sdk)
                .endpoint_url(dynamodb_endpoint)
                .build(),
        ),
        lambda: aws_sdk_lambda::Client::from_conf(
            lambda_config(&sdk).endpoint_url(lambda_endpoint).build(),
        ),
    }
}

async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    let create = dynamodb.create_table();
    // The tasks table's index by owner, as template.yaml makes it.
    let create = if key == "task_id" {
        create
            .attribute_definitions(attribute("owner", ScalarAttributeType::S))
            .attribute_definitions(attribute("created_ms", ScalarAttributeType::N))
            .global_secondary_indexes(
                aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                    .index_name(async_api::tasks::store::OWNER_INDEX)
                    .key_schema(key_element("owner", KeyType::Hash))
                    .key_schema(key_element("created_ms", KeyType::Range))
                    .projection(
                        aws_sdk_dynamodb::types::Projection::builder()
                            .projection_type(aws_sdk_dynamodb::types::ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index"),
            )
    } else {
        create
    };
    create
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("create table");
    // A table takes writes once ACTIVE: seconds on DynamoDB, and on dynalite a timer after
    // CreateTable answered, which a loaded machine may run after the test's first write arrived
    // (a ResourceNotFoundException, as in one make test run, 2026-12-07).
    loop {
        let table = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe table");
        let status = table.table().and_then(|t| t.table_status());
        if status == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("attribute")
}

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key")
}

/// What the function answered, as a client sees it.
#[derive(Debug)]
pub struct Reply {
    /// The Lambda request id this invocation ran under.
    pub request_id: String,
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Parses `event` with lambda_http, as the runtime does, and serves it with a
/// Lambda context whose request id is `req-<uuid>` and deadline 90 s away.
pub async fn invoke(function: &Function, event: &str) -> Result<Reply, FunctionError> {
    invoke_with_deadline(function, event, now_millis() + 90_000).await
}

/// [`invoke`] with the invocation's deadline (epoch milliseconds) chosen: a
/// task's lease ends there.
pub async fn invoke_with_deadline(
    function: &Function,
    event: &str,
    deadline_ms: u64,
) -> Result<Reply, FunctionError> {
    let request = lambda_http::request::from_str(event).expect("lambda_http parses the event");
    let mut context = lambda_http::Context::default();
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    context.request_id = request_id.clone();
    context.deadline = deadline_ms;
    let response = function
        .handle(request.with_lambda_context(context))
        .await?;
    let (parts, body) = response.into_parts();
    // JSON where the body is JSON (every answer but /docs), the text otherwise.
    let text = body_text(body);
    let body = match text.as_str() {
        "" => Value::Null,
        _ => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    };
    Ok(Reply {
        request_id,
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// The error body the contract promises for `code` and `message`.
pub fn error_body(reply: &Reply, code: &str, message: &str) -> Value {
    serde_json::json!({"error": {"code": code, "message": message, "request_id": reply.request_id}})
}

/// A TCP proxy to `upstream` that forwards the first connection's request but
/// swallows its answer (the write lands, the client times out); later
/// connections pass through.
pub async fn answer_losing_proxy(upstream: &str) -> String {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let lose_answer = std::mem::take(&mut first);
            tokio::spawn(async move {
                if lose_answer {
                    let (mut from_client, _to_client) = client.split();
                    let (mut from_server, mut to_server) = server.split();
                    let mut lost = tokio::io::sink();
                    let _ = tokio::join!(
                        tokio::io::copy(&mut from_client, &mut to_server),
                        tokio::io::copy(&mut from_server, &mut lost),
                    );
                } else {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    url
}

/// A body as the function returns it, as text: lambda_http writes a JSON or
/// `text/*` body as text, and every answer of this API is UTF-8.
pub fn body_text(body: Body) -> String {
    match body {
        Body::Empty => String::new(),
        Body::Text(text) => text,
        Body::Binary(bytes) => String::from_utf8(bytes).expect("a UTF-8 body"),
        _ => panic!("unexpected body"),
    }
}
